// raceDeadline and sleep (node/abort.ts) on a ManualClock: the one helper for deadlines and aborts.

import { describe, expect, it } from 'vitest';
import { raceDeadline, sleep } from '../../node/abort.js';
import { ManualClock } from '../../node/clock.js';

const expired = () => new Error('expired');

describe('raceDeadline', () => {
  it('settles like the promise when it settles first', async () => {
    const clock = new ManualClock();
    await expect(raceDeadline(Promise.resolve(7), { clock, timeoutMs: 100 }, expired)).resolves.toBe(7);
    await expect(raceDeadline(Promise.reject(new Error('no')), { clock, timeoutMs: 100 }, expired)).rejects.toThrow(
      'no',
    );
  });

  it('rejects with expired() once the timeout passes on the clock', async () => {
    const clock = new ManualClock();
    const p = raceDeadline(new Promise<void>(() => undefined), { clock, timeoutMs: 100 }, expired);
    clock.advance(99);
    let settled = false;
    void p.catch(() => (settled = true));
    await Promise.resolve();
    expect(settled).toBe(false);
    clock.advance(1);
    await expect(p).rejects.toThrow('expired');
  });

  it('rejects when the signal aborts, also when it was aborted before the call', async () => {
    const clock = new ManualClock();
    const ac = new AbortController();
    const p = raceDeadline(new Promise<void>(() => undefined), { clock, signal: ac.signal }, expired);
    ac.abort();
    await expect(p).rejects.toThrow('expired');
    await expect(raceDeadline(Promise.resolve(1), { clock, signal: ac.signal }, expired)).rejects.toThrow('expired');
  });

  it('without a timeout or a signal it is the promise itself', () => {
    const p = Promise.resolve(1);
    expect(raceDeadline(p, { clock: new ManualClock() }, expired)).toBe(p);
  });
});

describe('sleep', () => {
  it('resolves after the delay on the clock, or at once on abort', async () => {
    const clock = new ManualClock();
    let done = false;
    void sleep(clock, 50).then(() => (done = true));
    clock.advance(49);
    await Promise.resolve();
    expect(done).toBe(false);
    clock.advance(1);
    await Promise.resolve();
    expect(done).toBe(true);
    const ac = new AbortController();
    const p = sleep(clock, 10_000, ac.signal);
    ac.abort();
    await expect(p).resolves.toBeUndefined();
  });
});
