// The front door's load shedding (node/rpc/load-shed.ts): the policy driven by hand-fed delays,
// the probe by a hand-driven timer. Nothing here waits on real time.

import { describe, expect, it } from 'vitest';
import { NodeError, NodeErrorCode } from '../../node/errors.js';
import {
  EventLoopProbe,
  SHED_RETRY_AFTER_MAX_MS,
  SHED_RETRY_AFTER_MIN_MS,
  SubmissionShedder,
  type ProbeClock,
} from '../../node/rpc/load-shed.js';

/** Admits `n` submissions; returns how many were refused, and the last refusal. */
function admitMany(s: SubmissionShedder, n: number): { refused: number; last?: NodeError } {
  let refused = 0;
  let last: NodeError | undefined;
  for (let i = 0; i < n; i++) {
    try {
      s.admit();
    } catch (err) {
      expect(err).toBeInstanceOf(NodeError);
      last = err as NodeError;
      refused++;
    }
  }
  return { refused, last };
}

describe('SubmissionShedder', () => {
  it('admits everything while the delay is at or under the limit', () => {
    const s = new SubmissionShedder(100);
    for (const d of [0, 5, 50, 100]) {
      s.observe(d);
      expect(admitMany(s, 100).refused).toBe(0);
    }
    expect(s.shed()).toBe(0);
  });

  it('refuses a share rising linearly from the limit to twice it, exactly by count', () => {
    const s = new SubmissionShedder(100);
    s.observe(125); // a quarter of the way from 100 to 200
    expect(s.shedShare()).toBeCloseTo(0.25);
    expect(admitMany(s, 100).refused).toBe(25);
    s.observe(150);
    expect(admitMany(s, 100).refused).toBe(50);
    s.observe(400); // past twice the limit: everything
    expect(s.shedShare()).toBe(1);
    expect(admitMany(s, 10).refused).toBe(10);
    expect(s.shed()).toBe(85);
  });

  it('refuses with NODE_OVERLOADED and a bounded retryAfterMs naming the limit', () => {
    const s = new SubmissionShedder(40);
    s.observe(90);
    const { last } = admitMany(s, 1);
    expect(last?.code).toBe(NodeErrorCode.NodeOverloaded);
    expect(last?.meta).toEqual({ retryAfterMs: 90, eventLoopDelayMs: 90, limit: 'rpcMaxEventLoopDelayMs' });
    s.observe(10_000);
    expect(admitMany(s, 1).last?.meta.retryAfterMs).toBe(SHED_RETRY_AFTER_MAX_MS);
    const low = new SubmissionShedder(1);
    low.observe(3);
    expect(admitMany(low, 1).last?.meta.retryAfterMs).toBe(SHED_RETRY_AFTER_MIN_MS);
  });

  it('takes a rise at once and lets a fall decay, so one quiet sample does not open the door', () => {
    const s = new SubmissionShedder(100);
    s.observe(300);
    expect(s.currentDelayMs()).toBe(300);
    s.observe(0);
    expect(s.currentDelayMs()).toBeCloseTo(210);
    expect(s.shedShare()).toBe(1);
    for (let i = 0; i < 20; i++) s.observe(0);
    expect(s.currentDelayMs()).toBeLessThan(100);
    expect(admitMany(s, 50).refused).toBe(0);
  });

  it('refuse() refuses whatever the share, counted like any other', () => {
    const s = new SubmissionShedder(100);
    expect(() => s.refuse()).toThrow(NodeError);
    expect(s.shed()).toBe(1);
    expect(admitMany(s, 10).refused).toBe(0);
  });

  it('ignores nonsense measurements and refuses a nonsense limit', () => {
    const s = new SubmissionShedder(100);
    s.observe(Number.NaN);
    s.observe(-5);
    s.observe(Number.POSITIVE_INFINITY);
    expect(s.currentDelayMs()).toBe(0);
    expect(() => new SubmissionShedder(0)).toThrow(RangeError);
    expect(() => new SubmissionShedder(1.5)).toThrow(RangeError);
  });
});

describe('EventLoopProbe', () => {
  /** A timer the test fires by hand at chosen times. */
  function manualTimers(): ProbeClock & { now: number; fire(at: number): void; running(): boolean } {
    let fn: (() => void) | undefined;
    const t = {
      now: 0,
      monotonicMs: () => t.now,
      setInterval(f: () => void) {
        fn = f;
        return { cancel: () => (fn = undefined) };
      },
      fire(at: number) {
        t.now = at;
        fn?.();
      },
      running: () => fn !== undefined,
    };
    return t;
  }

  it('feeds the lateness of each tick to the shedder, and stops', () => {
    const s = new SubmissionShedder(50);
    const timers = manualTimers();
    const probe = new EventLoopProbe(s, timers, 20);
    probe.start();
    timers.fire(20); // on time
    expect(s.currentDelayMs()).toBe(0);
    timers.fire(140); // due at 40, fired at 140: 100 ms late
    expect(s.currentDelayMs()).toBe(100);
    expect(s.shedShare()).toBe(1);
    probe.stop();
    expect(timers.running()).toBe(false);
    timers.fire(10_000);
    expect(s.currentDelayMs()).toBe(100);
  });
});
