// The slice of the node's one Clock (node/clock.ts) that txmanager/ uses. Folders depend one way
// (node imports txmanager, never the reverse), so txmanager/ declares what it needs with the same
// method names and the node injects its Clock, which satisfies it structurally. There is
// deliberately no implementation here: the real one is node/clock.ts's SystemClock, and tests use
// its ManualClock (time moves when told, seeded random source).

export interface TmTimerHandle {
  cancel(): void;
  /** Real clock only: the pending timer does not keep the process alive. */
  unref?(): void;
}

export interface TmClock {
  /** Monotonic milliseconds: backoffs and windows must not see wall-clock jumps (NTP). */
  monotonicMs(): number;
  setTimeout(fn: () => void, delayMs: number): TmTimerHandle;
  /** A uniform float in [0, 1): backoff jitter only, never keys. */
  randomFloat(): number;
}
