// A circuit breaker per remote party: a recipient that is down fails `send` at once instead
// of after a timeout on every transaction (GoQuorum/Tessera users saw every private
// transaction hang or fail slowly while one recipient was offline).
//
// Pure: no timers, no IO. Time comes from an injected Clock and jitter from an injected Rng,
// so every transition is tested with a manual clock.
//
//   closed ──(≥ minRequests outcomes in the last windowMs, failure rate ≥ threshold)──▶ open
//   open ──(retryAt reached; the next tryAcquire)──▶ half-open (that caller is the single probe)
//   half-open ──probe succeeds──▶ closed (window cleared, backoff reset)
//   half-open ──probe fails──▶ open (backoff doubled, up to openMaxMs)
//
// The open period is openBaseMs · 2^(openings-1), capped at openMaxMs, times a jitter factor
// drawn uniformly from [1 - jitterRatio, 1 + jitterRatio], so that the nodes of a cluster do
// not probe a returning party in lockstep.

import { assert } from './errors.js';
import type { TmClock } from './clock.js';

export enum BreakerState {
  Closed = 'closed',
  Open = 'open',
  HalfOpen = 'half-open',
}

export interface CircuitBreakerOptions {
  /** Outcomes older than this no longer count towards the failure rate. */
  readonly windowMs: number;
  /** Fewer outcomes than this in the window never open the breaker (one lost packet is not an outage). */
  readonly minRequests: number;
  /** Failure rate in (0, 1] at or above which the breaker opens. */
  readonly failureRateThreshold: number;
  /** First open period. */
  readonly openBaseMs: number;
  /** Longest open period, however many probes failed. */
  readonly openMaxMs: number;
  /** Relative jitter of each open period, in [0, 1). */
  readonly jitterRatio: number;
  /** Most outcomes remembered in the window: bounds memory under any request rate. */
  readonly maxWindowSamples: number;
}

export const DEFAULT_CIRCUIT_BREAKER_OPTIONS: CircuitBreakerOptions = {
  windowMs: 30_000,
  minRequests: 3,
  failureRateThreshold: 0.5,
  openBaseMs: 1_000,
  openMaxMs: 60_000,
  jitterRatio: 0.2,
  maxWindowSamples: 256,
};

export interface BreakerSnapshot {
  readonly state: BreakerState;
  /** Outcomes counted in the current window (closed state). */
  readonly windowRequests: number;
  readonly windowFailures: number;
  /** How many times in a row it opened without a successful probe in between. */
  readonly consecutiveOpenings: number;
  /** When open: the earliest time a probe is allowed (clock ms); otherwise null. */
  readonly retryAtMs: number | null;
  readonly probeInFlight: boolean;
}

interface Sample {
  readonly atMs: number;
  readonly ok: boolean;
}

export class CircuitBreaker {
  private readonly options: CircuitBreakerOptions;
  private readonly clock: Pick<TmClock, 'monotonicMs' | 'randomFloat'>;
  private current: BreakerState = BreakerState.Closed;
  // Invariant: samples are in time order and samples.length <= maxWindowSamples.
  private samples: Sample[] = [];
  private consecutiveOpenings = 0;
  // Invariant: retryAtMs !== null iff current === Open.
  private retryAtMs: number | null = null;
  // Invariant: probeInFlight implies current === HalfOpen.
  private probeInFlight = false;

  constructor(options: Partial<CircuitBreakerOptions>, deps: { clock: Pick<TmClock, 'monotonicMs' | 'randomFloat'> }) {
    this.options = { ...DEFAULT_CIRCUIT_BREAKER_OPTIONS, ...options };
    const o = this.options;
    assert(
      o.windowMs > 0 && o.minRequests >= 1 && o.failureRateThreshold > 0 && o.failureRateThreshold <= 1,
      () => `bad breaker options ${JSON.stringify(o)}`,
    );
    assert(
      o.openBaseMs > 0 && o.openMaxMs >= o.openBaseMs && o.jitterRatio >= 0 && o.jitterRatio < 1,
      () => `bad breaker backoff ${JSON.stringify(o)}`,
    );
    assert(
      Number.isInteger(o.maxWindowSamples) && o.maxWindowSamples >= o.minRequests,
      () => `maxWindowSamples must be an integer >= minRequests: ${JSON.stringify(o)}`,
    );
    this.clock = deps.clock;
  }

  /** The state now (an open breaker whose backoff elapsed reports half-open). */
  state(): BreakerState {
    if (this.current === BreakerState.Open && this.clock.monotonicMs() >= (this.retryAtMs as number)) {
      this.current = BreakerState.HalfOpen;
      this.retryAtMs = null;
      this.probeInFlight = false;
    }
    return this.current;
  }

  /**
   * Asks permission for one request. Closed: always. Open: never. Half-open: once, for the
   * single probe, until its outcome is reported. Every `true` must be followed by exactly one
   * of onSuccess, onFailure or cancel.
   */
  tryAcquire(): boolean {
    switch (this.state()) {
      case BreakerState.Closed:
        return true;
      case BreakerState.Open:
        return false;
      case BreakerState.HalfOpen:
        if (this.probeInFlight) return false;
        this.probeInFlight = true;
        return true;
    }
  }

  /** Gives back a permission that was not used (another party's breaker refused first). */
  cancel(): void {
    if (this.current === BreakerState.HalfOpen) this.probeInFlight = false;
  }

  onSuccess(): void {
    if (this.current === BreakerState.HalfOpen) {
      this.current = BreakerState.Closed;
      this.probeInFlight = false;
      this.samples = [];
      this.consecutiveOpenings = 0;
      return;
    }
    // Outcomes of requests that started before the breaker opened are ignored while open.
    if (this.current === BreakerState.Closed) this.record(true);
  }

  onFailure(): void {
    if (this.current === BreakerState.HalfOpen) {
      this.open();
      return;
    }
    if (this.current !== BreakerState.Closed) return;
    this.record(false);
    const { requests, failures } = this.windowCounts();
    if (requests >= this.options.minRequests && failures / requests >= this.options.failureRateThreshold) this.open();
  }

  snapshot(): BreakerSnapshot {
    const state = this.state();
    const { requests, failures } = state === BreakerState.Closed ? this.windowCounts() : { requests: 0, failures: 0 };
    return {
      state,
      windowRequests: requests,
      windowFailures: failures,
      consecutiveOpenings: this.consecutiveOpenings,
      retryAtMs: this.retryAtMs,
      probeInFlight: this.probeInFlight,
    };
  }

  private open(): void {
    this.consecutiveOpenings++;
    const { openBaseMs, openMaxMs, jitterRatio } = this.options;
    const backoffMs = Math.min(openMaxMs, openBaseMs * 2 ** Math.min(this.consecutiveOpenings - 1, 30));
    const jitter = 1 + jitterRatio * (2 * this.clock.randomFloat() - 1);
    this.current = BreakerState.Open;
    this.retryAtMs = this.clock.monotonicMs() + backoffMs * jitter;
    this.probeInFlight = false;
    this.samples = [];
  }

  private record(ok: boolean): void {
    this.samples.push({ atMs: this.clock.monotonicMs(), ok });
    if (this.samples.length > this.options.maxWindowSamples) this.samples.shift();
  }

  private windowCounts(): { requests: number; failures: number } {
    const horizonMs = this.clock.monotonicMs() - this.options.windowMs;
    let firstInside = 0;
    while (firstInside < this.samples.length && this.samples[firstInside].atMs <= horizonMs) firstInside++;
    if (firstInside > 0) this.samples = this.samples.slice(firstInside);
    let failures = 0;
    for (const s of this.samples) if (!s.ok) failures++;
    return { requests: this.samples.length, failures };
  }
}
