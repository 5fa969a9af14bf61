// One sleep for the Jepsen harness: resolves after `ms`, or at once when `signal` aborts (a run that
// is being stopped must not wait out its pauses). Never rejects: callers check the signal themselves.

import { harnessClock as clock } from './clock.js';

export function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = clock.setTimeout(done, ms);
    function done(): void {
      t?.cancel();
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
