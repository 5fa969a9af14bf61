import { describe, expect, it } from 'vitest';
import { ManualClock } from '../../node/clock.js';
import { BreakerState, CircuitBreaker } from '../../txmanager/index.js';

const OPTIONS = {
  windowMs: 10_000,
  minRequests: 4,
  failureRateThreshold: 0.5,
  openBaseMs: 1_000,
  openMaxMs: 8_000,
  jitterRatio: 0,
  maxWindowSamples: 16,
};

function make(options: Partial<typeof OPTIONS> = {}, seed = 1): { breaker: CircuitBreaker; clock: ManualClock } {
  // The node's manual clock: time moves when told, jitter from its seeded random source.
  const clock = new ManualClock(1_000_000, seed);
  return { breaker: new CircuitBreaker({ ...OPTIONS, ...options }, { clock }), clock };
}

function fail(breaker: CircuitBreaker, n: number): void {
  for (let i = 0; i < n; i++) {
    expect(breaker.tryAcquire()).toBe(true);
    breaker.onFailure();
  }
}

describe('CircuitBreaker', () => {
  it('stays closed below minRequests even when every request failed', () => {
    const { breaker } = make();
    fail(breaker, 3);
    expect(breaker.state()).toBe(BreakerState.Closed);
    expect(breaker.snapshot()).toMatchObject({ windowRequests: 3, windowFailures: 3 });
  });

  it('opens when the failure rate over the window reaches the threshold, and refuses at once', () => {
    const { breaker } = make();
    breaker.tryAcquire();
    breaker.onSuccess();
    breaker.tryAcquire();
    breaker.onSuccess();
    fail(breaker, 1);
    expect(breaker.state()).toBe(BreakerState.Closed); // 1/3, and under minRequests
    fail(breaker, 1); // 2/4 = 0.5
    expect(breaker.state()).toBe(BreakerState.Open);
    expect(breaker.tryAcquire()).toBe(false);
    expect(breaker.snapshot()).toMatchObject({ state: 'open', consecutiveOpenings: 1, retryAtMs: 1_001_000 });
  });

  it('forgets outcomes older than the window (sliding)', () => {
    const { breaker, clock } = make();
    fail(breaker, 3);
    clock.advance(10_001);
    fail(breaker, 1);
    expect(breaker.state()).toBe(BreakerState.Closed);
    expect(breaker.snapshot().windowRequests).toBe(1);
  });

  it('goes half-open after the backoff and lets exactly one probe through', () => {
    const { breaker, clock } = make();
    fail(breaker, 4);
    clock.advance(999);
    expect(breaker.tryAcquire()).toBe(false);
    clock.advance(1);
    expect(breaker.state()).toBe(BreakerState.HalfOpen);
    expect(breaker.tryAcquire()).toBe(true);
    expect(breaker.tryAcquire()).toBe(false); // the probe is in flight
    expect(breaker.snapshot().probeInFlight).toBe(true);
    breaker.onSuccess();
    expect(breaker.state()).toBe(BreakerState.Closed);
    expect(breaker.snapshot()).toMatchObject({ consecutiveOpenings: 0, windowRequests: 0 });
    expect(breaker.tryAcquire()).toBe(true);
  });

  it('a failed probe reopens with a doubled backoff, capped at openMaxMs', () => {
    const { breaker, clock } = make();
    fail(breaker, 4);
    const expected = [1_000, 2_000, 4_000, 8_000, 8_000];
    for (let i = 0; i < expected.length; i++) {
      const openedAt = clock.monotonicMs();
      expect(breaker.snapshot().retryAtMs).toBe(openedAt + expected[i]);
      clock.advance(expected[i]);
      expect(breaker.tryAcquire()).toBe(true);
      breaker.onFailure();
      expect(breaker.state()).toBe(BreakerState.Open);
    }
  });

  it('a cancelled probe permit is given back', () => {
    const { breaker, clock } = make();
    fail(breaker, 4);
    clock.advance(1_000);
    expect(breaker.tryAcquire()).toBe(true);
    breaker.cancel();
    expect(breaker.tryAcquire()).toBe(true);
  });

  it('jitter comes from the injected rng: same seed, same schedule; within ±jitterRatio', () => {
    const retryAt = (seed: number): number => {
      const { breaker } = make({ jitterRatio: 0.2 }, seed);
      fail(breaker, 4);
      return breaker.snapshot().retryAtMs as number;
    };
    expect(retryAt(7)).toBe(retryAt(7));
    const values = [1, 2, 3, 4, 5, 6].map(retryAt);
    for (const v of values) {
      expect(v - 1_000_000).toBeGreaterThanOrEqual(800);
      expect(v - 1_000_000).toBeLessThanOrEqual(1_200);
    }
    expect(new Set(values).size).toBeGreaterThan(1);
  });

  it('outcomes that arrive while open are ignored; the window keeps at most maxWindowSamples', () => {
    const { breaker } = make({ failureRateThreshold: 1, maxWindowSamples: 16 });
    for (let i = 0; i < 100; i++) {
      breaker.tryAcquire();
      breaker.onSuccess();
    }
    expect(breaker.snapshot().windowRequests).toBe(16);
    const { breaker: b2 } = make();
    fail(b2, 4);
    b2.onSuccess();
    b2.onFailure();
    expect(b2.snapshot()).toMatchObject({ state: 'open', consecutiveOpenings: 1 });
  });
});
