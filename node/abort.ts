// Waiting with a deadline: the one helper that races a promise against a timeout and an
// AbortSignal, and the one sleep that an abort cuts short. Both use the injected Clock, so they
// run on simulated time too. Owns nothing else; it knows no node state.

import type { Clock } from './clock.js';

/**
 * Settles like `p`, unless `timeoutMs` passes first (when given) or `signal` aborts (when given):
 * then rejects with `expired()`. The timer and the abort listener are removed once it settles.
 * `p` itself is not cancelled: the caller says what its outcome means (usually "unknown").
 */
export function raceDeadline<T>(
  p: Promise<T>,
  limits: { readonly clock: Clock; readonly timeoutMs?: number; readonly signal?: AbortSignal },
  expired: () => Error,
): Promise<T> {
  const { clock, timeoutMs, signal } = limits;
  if (timeoutMs === undefined && signal === undefined) return p;
  return new Promise<T>((resolve, reject) => {
    if (signal?.aborted) {
      reject(expired());
      return;
    }
    const fail = (): void => {
      cleanup();
      reject(expired());
    };
    const timer = timeoutMs === undefined ? undefined : clock.setTimeout(fail, timeoutMs);
    signal?.addEventListener('abort', fail, { once: true });
    const cleanup = (): void => {
      timer?.cancel();
      signal?.removeEventListener('abort', fail);
    };
    p.then(
      (v) => {
        cleanup();
        resolve(v);
      },
      (err: unknown) => {
        cleanup();
        reject(err);
      },
    );
  });
}

/** Resolves after `delayMs`, or at once when `signal` aborts (never rejects). */
export function sleep(clock: Clock, delayMs: number, signal?: AbortSignal): Promise<void> {
  return new Promise<void>((resolve) => {
    if (signal?.aborted) {
      resolve();
      return;
    }
    const done = (): void => {
      timer.cancel();
      signal?.removeEventListener('abort', done);
      resolve();
    };
    const timer = clock.setTimeout(done, delayMs);
    signal?.addEventListener('abort', done, { once: true });
  });
}
