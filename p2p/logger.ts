// The logging surface the p2p layer needs: the subset of pino's Logger it calls, so the node
// can hand in `rootLogger.child({ module: 'p2p' })` and tests can hand in a pino writing to memory.
// Level policy: `warn` for a condition an operator should see once (a refused peer), `info` for
// membership-level events (a peer connected or left), `debug` for per-attempt noise (redials).
import { pino } from 'pino';

export interface P2pLogger {
  warn(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  debug(obj: object, msg: string): void;
}

/** The default when the caller gives none: structured JSON on stdout, like the rest of the node. */
export function defaultP2pLogger(): P2pLogger {
  return pino({ name: 'p2p', level: process.env.QUORATE_LOG_LEVEL ?? 'info' });
}
