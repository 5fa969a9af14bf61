// Errors of the Jepsen toolkit, kept in two kinds (docs/design.md §6):
//  - JepsenError: an operating condition the caller can act on (a malformed history file, a full
//    recorder buffer, a namespace command that failed). It carries a stable `code`.
//  - JepsenInvariantError: a programmer error (a completion recorded for an operation that was never
//    invoked by this recorder, a partition over an empty node set). Assertions stay on.

export enum JepsenErrorCode {
  /** A history line is not valid JSON or not a well-formed operation. */
  HistoryMalformed = 'JEPSEN_HISTORY_MALFORMED',
  /** A history line is longer than `MAX_HISTORY_LINE_BYTES`. */
  HistoryLineTooLong = 'JEPSEN_HISTORY_LINE_TOO_LONG',
  /** The recorder's buffer is at its limit; await `recorder.ready()` before invoking more operations. */
  HistoryBufferFull = 'JEPSEN_HISTORY_BUFFER_FULL',
  /** The recorder was closed (or its sink failed); nothing more can be recorded. */
  HistoryClosed = 'JEPSEN_HISTORY_CLOSED',
  /** An `ip` (iproute2) command failed; `meta.stderr` says why. */
  NetnsCommandFailed = 'JEPSEN_NETNS_COMMAND_FAILED',
  /** Network namespaces cannot be used here (not root, no iproute2, no kernel support). */
  NetnsUnavailable = 'JEPSEN_NETNS_UNAVAILABLE',
  /** A proxy listener could not bind, or a node name is unknown to the network. */
  ProxyFailed = 'JEPSEN_PROXY_FAILED',
  /** A `quorate jepsen` argument is unknown, missing or out of range. */
  Usage = 'JEPSEN_USAGE',
  /** A process fault names a node the process controller does not manage, or it is in the wrong state. */
  ProcessFault = 'JEPSEN_PROCESS_FAULT',
}

export class JepsenError extends Error {
  readonly code: JepsenErrorCode;
  readonly meta: Record<string, unknown>;
  constructor(
    code: JepsenErrorCode,
    message: string,
    meta: Record<string, unknown> = {},
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'JepsenError';
    this.code = code;
    this.meta = meta;
  }
}

export class JepsenInvariantError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JepsenInvariantError';
  }
}

/** Stays on in production: a broken invariant throws with the offending values. */
export function invariant(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) {
    throw new JepsenInvariantError(typeof message === 'string' ? message : message());
  }
}

/**
 * The logging surface the toolkit needs. A pino `Logger` satisfies it; tests pass a collector.
 * Policy: `info` for lifecycle (a network set up, torn down, a fallback chosen), `warn` for a degraded
 * but continuing run (a teardown step that failed), `debug` for each fault applied.
 */
export interface JepsenLogger {
  info(obj: object, msg?: string): void;
  warn(obj: object, msg?: string): void;
  debug(obj: object, msg?: string): void;
}

export const silentLogger: JepsenLogger = { info() {}, warn() {}, debug() {} };
