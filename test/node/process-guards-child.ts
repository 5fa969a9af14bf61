// Child process for process-guards.test.ts: installs the guards, then commits the fault named by
// argv[2]. Log lines and the stop are written to stdout as JSON so the parent can check them.

import { installProcessGuards, processFaults } from '../../node/process-guards.js';

const mode = process.argv[2];
const print = (o: object): void => void process.stdout.write(JSON.stringify(o) + '\n');

installProcessGuards({
  log: { error: (obj, msg) => print({ level: 'error', msg, ...obj }) },
  stop: () =>
    mode === 'hanging-stop'
      ? new Promise<void>(() => print({ stopping: true })) // never resolves: the deadline must exit
      : Promise.resolve().then(() => print({ stopped: true, faults: { ...processFaults } })),
  stopTimeoutMs: 300,
});

if (mode === 'rejection' || mode === 'hanging-stop') {
  void Promise.reject(new Error('boom: nobody listens'));
} else if (mode === 'exception') {
  setTimeout(() => {
    throw new Error('boom: escaped a timer');
  }, 1);
} else if (mode === 'clean') {
  print({ clean: true, faults: { ...processFaults } });
}
// Keep the event loop alive long enough for the guard to act (it must exit well before this).
setTimeout(() => print({ stillAlive: true }), 5_000).unref?.();
if (mode !== 'clean') setTimeout(() => undefined, 5_000);
