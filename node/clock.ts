// Time and randomness at the edge: the one Clock of the node layer. The node reads time, schedules
// work and draws non-cryptographic random numbers (jitter, sampling) only through a Clock, so the
// same node code runs against the real clock in production and a manual, seeded one in tests and
// the simulator. Cryptographic randomness (keys, nonces) is not this: it comes from node:crypto.

export interface TimerHandle {
  cancel(): void;
  /** Real clock only: the pending timer does not keep the process alive (Node's unref). */
  unref?(): void;
}

/** Resolves after `delayMs` on `clock` (a real or a manual one). */
export function sleepMs(clock: Pick<Clock, 'setTimeout'>, delayMs: number): Promise<void> {
  return new Promise<void>((resolve) => clock.setTimeout(resolve, delayMs));
}

export interface Clock {
  /** Wall-clock milliseconds since the epoch (the minter stamps blocks with it). May jump (NTP). */
  wallMs(): number;
  /** Monotonic milliseconds, for durations and timeouts. */
  monotonicMs(): number;
  setTimeout(fn: () => void, delayMs: number): TimerHandle;
  setInterval(fn: () => void, periodMs: number): TimerHandle;
  /**
   * Runs fn once the I/O callbacks already due have run (Node's setImmediate): the batching point
   * of the Raft driver, whose next cycle then takes every input that arrived meanwhile. A manual
   * clock runs it at the next advance(), advance(0) included.
   */
  setImmediate(fn: () => void): TimerHandle;
  /** A uniform float in [0, 1): jitter and sampling only, never keys. Seeded in tests. */
  randomFloat(): number;
}

export class SystemClock implements Clock {
  wallMs(): number {
    return Date.now();
  }
  monotonicMs(): number {
    return performance.now();
  }
  setTimeout(fn: () => void, delayMs: number): TimerHandle {
    const t = setTimeout(fn, delayMs);
    return { cancel: () => clearTimeout(t), unref: () => void t.unref() };
  }
  setInterval(fn: () => void, periodMs: number): TimerHandle {
    const t = setInterval(fn, periodMs);
    return { cancel: () => clearInterval(t), unref: () => void t.unref() };
  }
  setImmediate(fn: () => void): TimerHandle {
    const t = setImmediate(fn);
    return { cancel: () => clearImmediate(t) };
  }
  randomFloat(): number {
    return Math.random();
  }
}

/** A clock that moves only when told to: tests and the simulator. */
export class ManualClock implements Clock {
  private nowValueMs: number;
  private readonly timers = new Map<number, { at: number; fn: () => void; periodMs?: number }>();
  private nextId = 1;
  private randomState: number;

  constructor(startMs = 1_700_000_000_000, seed = 1) {
    this.nowValueMs = startMs;
    this.randomState = seed >>> 0 || 1;
  }
  wallMs(): number {
    return this.nowValueMs;
  }
  monotonicMs(): number {
    return this.nowValueMs;
  }
  setTimeout(fn: () => void, delayMs: number): TimerHandle {
    const id = this.nextId++;
    this.timers.set(id, { at: this.nowValueMs + Math.max(0, delayMs), fn });
    return { cancel: () => this.timers.delete(id) };
  }
  setInterval(fn: () => void, periodMs: number): TimerHandle {
    if (!(periodMs > 0)) throw new RangeError(`setInterval period must be > 0, got ${periodMs}`);
    const id = this.nextId++;
    this.timers.set(id, { at: this.nowValueMs + periodMs, fn, periodMs });
    return { cancel: () => this.timers.delete(id) };
  }
  setImmediate(fn: () => void): TimerHandle {
    return this.setTimeout(fn, 0);
  }
  /** xorshift32: deterministic per seed, enough for jitter in tests. */
  randomFloat(): number {
    let x = this.randomState;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.randomState = x >>> 0;
    return this.randomState / 0x1_0000_0000;
  }
  /** Moves time forward, firing due timers in time order. */
  advance(deltaMs: number): void {
    const target = this.nowValueMs + deltaMs;
    for (;;) {
      let nextId = -1;
      let nextAt = Infinity;
      for (const [id, t] of this.timers) {
        if (t.at <= target && t.at < nextAt) {
          nextAt = t.at;
          nextId = id;
        }
      }
      if (nextId < 0) break;
      const timer = this.timers.get(nextId)!;
      this.nowValueMs = timer.at;
      if (timer.periodMs !== undefined) timer.at += timer.periodMs;
      else this.timers.delete(nextId);
      timer.fn();
    }
    this.nowValueMs = target;
  }
}
