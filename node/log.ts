// The node's logger: pino, one JSON object per line on stdout, one child logger per component.
//
// Level policy (every component follows it; reviewers check new log lines against it):
//   fatal — the process is about to exit because it cannot continue (corrupt data dir, port taken).
//   error — an operator must act: a peer refuses our identity, the disk fails, a private payload
//           we are owed cannot be fetched, an invariant broke in a subsystem we can survive.
//   warn  — degraded but self-healing: lost the leader, a peer unreachable, a circuit breaker
//           opened, a request limit hit, a client sent something we refused at the edge repeatedly.
//   info  — lifecycle and membership: start/stop, listening addresses, role and term changes,
//           leader changes, members added/removed/promoted, snapshot installed. Rare by design:
//           a healthy idle node logs nothing at info after start-up.
//   debug — per message or per request: RPC calls, Raft messages, blocks minted and applied,
//           client connections (including load-balancer probes that connect and close).
//   trace — payload dumps for debugging only.
//
// Each line carries `component` (rpc, raft, chain, p2p, tm, enclave, cli...) and, from the root,
// `nodeId`, so that the lines of several nodes can be merged and still be told apart.

import { pino, type DestinationStream, type Logger } from 'pino';

export type { Logger } from 'pino';

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export function isLogLevel(value: unknown): value is LogLevel {
  return typeof value === 'string' && (LOG_LEVELS as readonly string[]).includes(value);
}

export interface LoggerOptions {
  readonly level: LogLevel;
  /** Fields on every line (e.g. `{ nodeId: 'node-1' }`). */
  readonly base?: Readonly<Record<string, unknown>>;
  /**
   * Where lines go. Default: stdout, written synchronously — a node that crashes must not lose
   * the lines explaining why, and at the policy above the volume at info is small.
   */
  readonly destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions): Logger {
  const destination = options.destination ?? pino.destination({ dest: 1, sync: true });
  return pino(
    {
      level: options.level,
      base: { ...(options.base ?? {}) },
      timestamp: pino.stdTimeFunctions.isoTime,
      // Level as a word ("warn"), not a number: operators grep and alert on it.
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

/** A scoped child logger: every line it writes carries `component`. */
export function componentLogger(parent: Logger, component: string): Logger {
  return parent.child({ component });
}

/** A logger that writes nothing, for embedders and tests that do not look at logs. */
export function silentLogger(): Logger {
  return pino({ level: 'silent' });
}
