// How a fault suite of real processes reads the process guards' counts: each node logs a fault
// at `error` with `kind` (node/process-guards.ts), and faultsInLog counts those lines in its log.

import { describe, expect, it } from 'vitest';
import { createLogger } from '../../node/log.js';
import { faultsInLog } from '../../node/process-guards.js';

describe('faultsInLog', () => {
  it("counts the guard's error lines by kind in a node's pino log, and nothing else", () => {
    const lines: string[] = [];
    const log = createLogger({ level: 'info', destination: { write: (l: string) => void lines.push(l.trimEnd()) } });
    log.info({ kind: 'unhandledRejection' }, 'an info line that happens to have the field');
    log.error(
      { kind: 'unhandledRejection', err: { message: 'x' } },
      'unhandledRejection: stopping the node and exiting',
    );
    log.error({ kind: 'uncaughtException' }, 'uncaughtException: stopping the node and exiting');
    log.error({ kind: 'uncaughtException' }, 'uncaughtException while stopping after an earlier fault');
    log.error({ other: 1 }, 'an error that is not a fault');
    const text = [...lines, 'not json {"kind":"uncaughtException"}', ''].join('\n');
    expect(faultsInLog(text)).toEqual({ unhandledRejections: 1, uncaughtExceptions: 2 });
    expect(faultsInLog('')).toEqual({ unhandledRejections: 0, uncaughtExceptions: 0 });
  });
});
