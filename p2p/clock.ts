// The slice of the node's one Clock (node/clock.ts) that p2p/ uses. Folders depend one way (node
// imports p2p, never the reverse), so p2p/ declares what it needs with the same method names and
// the node injects its Clock, which satisfies it structurally. There is deliberately no
// implementation here: the only real one is node/clock.ts's SystemClock (ManualClock in tests).

export interface P2pTimerHandle {
  cancel(): void;
  /** Real clock only: the pending timer does not keep the process alive. */
  unref?(): void;
}

export interface P2pClock {
  /** Monotonic milliseconds: link delays, connection durations. */
  monotonicMs(): number;
  setTimeout(fn: () => void, delayMs: number): P2pTimerHandle;
  setImmediate(fn: () => void): P2pTimerHandle;
  /** A uniform float in [0, 1): reconnection jitter and simulated loss, never keys. */
  randomFloat(): number;
}
