// The fault suites run with the process guards (node/process-guards.ts) installed and counting:
// an unhandled rejection or uncaught exception anywhere in the test process during a suite is
// counted by the same handler a node process runs (here with a recorded stop and exit instead of
// stopping the test process), and the suite asserts the counts are 0 at its end.

import { afterAll, beforeAll, expect } from 'vitest';
import { installProcessGuards, processFaults, resetProcessFaults } from '../../node/process-guards.js';

export interface FaultWatch {
  /** Asserts no fault happened since the watch began, printing what the guard logged otherwise. */
  expectNone(): void;
  /** Removes the guard's handlers. */
  stop(): void;
}

export function watchProcessFaults(): FaultWatch {
  resetProcessFaults();
  const logged: Array<Record<string, unknown>> = [];
  const exits: number[] = [];
  const uninstall = installProcessGuards({
    log: { error: (obj, msg) => void logged.push({ msg, ...obj }) },
    stop: async () => undefined,
    exit: (code) => void exits.push(code),
  });
  return {
    expectNone() {
      expect({ ...processFaults }, JSON.stringify(logged).slice(0, 4000)).toEqual({
        unhandledRejections: 0,
        uncaughtExceptions: 0,
      });
      expect(exits).toEqual([]);
    },
    stop: uninstall,
  };
}

/**
 * For a whole test file: the guard counts from the file's first hook to its last, and the file
 * fails (in afterAll) if anything was counted. Call once at the top level of the file.
 */
export function guardFile(): void {
  let watch: FaultWatch | undefined;
  beforeAll(() => {
    watch = watchProcessFaults();
  });
  afterAll(() => {
    try {
      watch?.expectNone();
    } finally {
      watch?.stop();
    }
  });
}
