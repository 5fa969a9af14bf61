// Time and randomness as parameters (STYLE.md: the logic never reads the clock or Math.random
// itself), so the circuit breaker is tested with a manual clock and a seeded generator.

/** Monotonic milliseconds. Only differences are meaningful. */
export interface Clock {
  nowMs(): number;
}

/** performance.now(): monotonic, unaffected by wall-clock jumps (NTP), which a backoff must not see. */
export class SystemClock implements Clock {
  nowMs(): number {
    return performance.now();
  }
}

/** A clock that moves only when told to. */
export class ManualClock implements Clock {
  constructor(private currentMs = 0) {}
  nowMs(): number {
    return this.currentMs;
  }
  advance(ms: number): void {
    if (!(ms >= 0)) throw new RangeError(`ManualClock.advance(${ms}): time only moves forward`);
    this.currentMs += ms;
  }
}

/** A source of uniform floats in [0, 1). consensus/rng.ts's SeededRng satisfies it structurally. */
export interface Rng {
  nextFloat(): number;
}

export class MathRandomRng implements Rng {
  nextFloat(): number {
    return Math.random();
  }
}
