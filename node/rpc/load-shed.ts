// Refuses transaction submissions at the front door while this process's event loop runs late.
//
// Why: under overload the requests that wait are not in the pool, they are in front of it — in
// the socket buffers and the event loop's queue, before any handler runs — so the pool's own
// drain-time bound (node/chain/pool.ts) cannot see them, and a client waits seconds for an answer
// (measured: accept p99 9.7 s at 2x the sustainable rate). How late a timer fires is how long a
// request that arrives now waits before its handler starts; past `maxDelayMs` a share of the
// submissions is refused at once with -32010 and `retryAfterMs`, so the work the node does take
// (signing, forwarding, minting, replicating) shrinks until the loop is on time again. Reads are
// never shed: clients need them to see their transactions commit, and they are cheap.
//
// Two parts: the policy (SubmissionShedder: delay in, decision out; pure, driven by tests) and
// the probe (EventLoopProbe: one unref'd timer measuring its own lateness).

import { SystemClock, type Clock, type TimerHandle } from '../clock.js';
import { NodeError, NodeErrorCode } from '../errors.js';

/** How often the probe's timer is due; its lateness is the event loop's delay. */
export const EVENT_LOOP_PROBE_INTERVAL_MS = 20;
/** A rise in delay is taken at once; a fall is smoothed by this factor per sample (0.7 = ~90 ms to halve at 20 ms). */
const DELAY_DECAY_PER_SAMPLE = 0.7;
/** Bounds on the retryAfterMs a shed submission is given. */
export const SHED_RETRY_AFTER_MIN_MS = 50;
export const SHED_RETRY_AFTER_MAX_MS = 1_000;

/** Methods that submit transactions: the only ones shed. */
export const SUBMISSION_METHODS: ReadonlySet<string> = new Set([
  'quorate_sendTransaction',
  'quorate_sendRawTransaction',
]);

/**
 * The policy. Below `maxDelayMs` every submission is admitted; from there to twice it the share
 * refused rises linearly from 0 to 1 (a hard cut would swing between admitting all and none, the
 * delay following a step behind). The share is applied by a running credit, not by chance, so a
 * given sequence of delays always gives the same decisions.
 */
export class SubmissionShedder {
  private delayMs = 0;
  private credit = 0;
  private shedCount = 0;

  constructor(private readonly maxDelayMs: number) {
    if (!Number.isInteger(maxDelayMs) || maxDelayMs < 1)
      throw new RangeError(`maxDelayMs must be a positive integer, got ${maxDelayMs}`);
  }

  /** One measurement of the event loop's delay, in ms. */
  observe(delayMs: number): void {
    if (!Number.isFinite(delayMs) || delayMs < 0) return;
    this.delayMs =
      delayMs >= this.delayMs
        ? delayMs
        : this.delayMs * DELAY_DECAY_PER_SAMPLE + delayMs * (1 - DELAY_DECAY_PER_SAMPLE);
  }

  /** The smoothed delay the decisions use. */
  currentDelayMs(): number {
    return this.delayMs;
  }

  /** Share of submissions refused at the current delay, 0..1. */
  shedShare(): number {
    if (this.delayMs <= this.maxDelayMs) return 0;
    return Math.min(1, (this.delayMs - this.maxDelayMs) / this.maxDelayMs);
  }

  /** Submissions refused so far. */
  shed(): number {
    return this.shedCount;
  }

  /** Throws NodeOverloaded (-32010, with retryAfterMs) for a submission that must be refused now. */
  admit(): void {
    const share = this.shedShare();
    if (share === 0) {
      this.credit = 0;
      return;
    }
    this.credit += share;
    if (this.credit < 1) return;
    this.credit -= 1;
    this.refuse();
  }

  /**
   * Throws NodeOverloaded whatever the share: for the submissions of a batch after one of them
   * was refused (a later nonce of the same account must not get in ahead of a refused one).
   */
  refuse(): never {
    this.shedCount++;
    const retryAfterMs = Math.round(Math.min(SHED_RETRY_AFTER_MAX_MS, Math.max(SHED_RETRY_AFTER_MIN_MS, this.delayMs)));
    throw new NodeError(
      NodeErrorCode.NodeOverloaded,
      `the node is overloaded (its event loop runs ${Math.round(this.delayMs)} ms late, limit ${this.maxDelayMs} ms); send it again after retryAfterMs`,
      { retryAfterMs, eventLoopDelayMs: Math.round(this.delayMs), limit: 'rpcMaxEventLoopDelayMs' },
    );
  }
}

/** What the probe needs of a Clock (node/clock.ts), so tests can fire its timer late by hand. */
export type ProbeClock = Pick<Clock, 'monotonicMs' | 'setInterval'>;

/** Feeds a SubmissionShedder with the lateness of a periodic timer. */
export class EventLoopProbe {
  private last = 0;
  private handle: TimerHandle | undefined;

  constructor(
    private readonly shedder: SubmissionShedder,
    private readonly clock: ProbeClock = new SystemClock(),
    private readonly intervalMs: number = EVENT_LOOP_PROBE_INTERVAL_MS,
  ) {}

  start(): void {
    if (this.handle) return;
    this.last = this.clock.monotonicMs();
    const timer = this.clock.setInterval(() => {
      const now = this.clock.monotonicMs();
      this.shedder.observe(Math.max(0, now - this.last - this.intervalMs));
      this.last = now;
    }, this.intervalMs);
    // A probe must never keep a process alive on its own.
    timer.unref?.();
    this.handle = timer;
  }

  stop(): void {
    this.handle?.cancel();
    this.handle = undefined;
  }
}
