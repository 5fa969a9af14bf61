// The last line of defence of a node process: process-level `unhandledRejection` and
// `uncaughtException` handlers. Owns only that: what to do when a promise rejected with nobody
// listening, or an exception escaped every handler.
//
// Such an error is a programmer error (every operating error has a handler at its source;
// issue 10 part 6 fixed the ones found, e.g. a linearizable read timing out while a Ready cycle
// was slow), so the process does not carry on in an unknown state: the error is logged at
// `error` with its stack, the node is stopped cleanly (its writes are synced, so what is on disk
// stays consistent), and the process exits with status 1 — never silently, never with Node's bare
// crash trailer. Every occurrence is counted (processFaults), so a test that runs the fault suites
// with these handlers installed can assert that none happened.

import { SystemClock, type Clock } from './clock.js';

/** A clean stop that takes longer than this is abandoned and the process exits anyway. */
export const DEFAULT_FAULT_STOP_TIMEOUT_MS = 10_000;
/** The exit status after a fault. */
export const FAULT_EXIT_CODE = 1;

/** Occurrences since the process started (or since resetProcessFaults, for tests). */
export const processFaults = { unhandledRejections: 0, uncaughtExceptions: 0 };

export function resetProcessFaults(): void {
  processFaults.unhandledRejections = 0;
  processFaults.uncaughtExceptions = 0;
}

/** The `kind` field of the line a fault is logged with (what faultsInLog counts). */
export type ProcessFaultKind = 'unhandledRejection' | 'uncaughtException';

/**
 * The faults a node process logged (its counts, as seen from outside the process: a test of real
 * processes reads each node's log). Counts the JSON lines at level `error` or `fatal` whose
 * `kind` is a ProcessFaultKind; other lines, and lines that are not JSON, are skipped.
 */
export function faultsInLog(text: string): { unhandledRejections: number; uncaughtExceptions: number } {
  const out = { unhandledRejections: 0, uncaughtExceptions: 0 };
  for (const line of text.split('\n')) {
    if (!line.includes('"kind"')) continue;
    let o: { level?: unknown; kind?: unknown };
    try {
      o = JSON.parse(line) as typeof o;
    } catch {
      continue;
    }
    // The node logs level labels (node/log.ts); plain pino logs numbers (error = 50).
    const atError = o.level === 'error' || o.level === 'fatal' || (typeof o.level === 'number' && o.level >= 50);
    if (!atError) continue;
    if (o.kind === 'unhandledRejection') out.unhandledRejections++;
    else if (o.kind === 'uncaughtException') out.uncaughtExceptions++;
  }
  return out;
}

export interface ProcessGuardsOptions {
  /** Where the fault is reported (pino's `error(obj, msg)` satisfies it). */
  readonly log: { error(obj: object, msg: string): void };
  /** Stops the node cleanly (RPC, p2p, Raft driver, storage). Called once, on the first fault. */
  readonly stop: () => Promise<unknown>;
  /** Ends the process; default process.exit. */
  readonly exit?: (code: number) => void;
  readonly stopTimeoutMs?: number;
  readonly clock?: Clock;
}

/**
 * Installs the handlers; returns a function that removes them. The process entry calls it once,
 * right after the node started, with the node's stop.
 */
export function installProcessGuards(options: ProcessGuardsOptions): () => void {
  const exit = options.exit ?? ((code: number) => process.exit(code));
  const clock = options.clock ?? new SystemClock();
  const stopTimeoutMs = options.stopTimeoutMs ?? DEFAULT_FAULT_STOP_TIMEOUT_MS;
  let stopping = false;

  const fault = (kind: ProcessFaultKind, err: unknown): void => {
    if (kind === 'unhandledRejection') processFaults.unhandledRejections++;
    else processFaults.uncaughtExceptions++;
    const e = err instanceof Error ? err : undefined;
    options.log.error(
      {
        kind,
        err: e ? { name: e.name, message: e.message, stack: e.stack, code: (e as { code?: unknown }).code } : err,
        stopping,
      },
      stopping ? `${kind} while stopping after an earlier fault` : `${kind}: stopping the node and exiting`,
    );
    if (stopping) return;
    stopping = true;
    // Exit whether the stop finishes, fails or hangs: a process past a programmer error must end.
    const deadline = clock.setTimeout(() => exit(FAULT_EXIT_CODE), stopTimeoutMs);
    void Promise.resolve()
      .then(options.stop)
      .catch((stopErr: unknown) => {
        options.log.error(
          { err: stopErr instanceof Error ? stopErr.stack : stopErr },
          'clean stop after a fault failed',
        );
      })
      .finally(() => {
        deadline.cancel();
        exit(FAULT_EXIT_CODE);
      });
  };
  const onRejection = (reason: unknown): void => fault('unhandledRejection', reason);
  const onException = (err: unknown): void => fault('uncaughtException', err);
  process.on('unhandledRejection', onRejection);
  process.on('uncaughtException', onException);
  return () => {
    process.off('unhandledRejection', onRejection);
    process.off('uncaughtException', onException);
  };
}
