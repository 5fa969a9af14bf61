// End to end without a cluster: concurrent clients against in-memory stores, histories recorded by the
// real recorder, checked by the real checkers. A correct store must pass; a store with a known bug
// must be caught.

import { describe, expect, it } from 'vitest';
import { checkAppend, checkBank } from '../../node/jepsen/checkers.js';
import { HistoryRecorder, MemoryHistorySink, parseHistory, type HistoryOp } from '../../node/jepsen/history.js';
import { checkLinearizable } from '../../node/jepsen/linearizability.js';
import {
  appendWorkload,
  bankWorkload,
  registerWorkload,
  runClients,
  type JepsenClient,
  type Workload,
} from '../../node/jepsen/workload.js';
import { SimAppend, SimBank, SimRegister } from './sim-store.js';

async function run(workload: Workload, clientFor: (p: number) => JepsenClient, durationMs = 400): Promise<HistoryOp[]> {
  const sink = new MemoryHistorySink();
  const recorder = new HistoryRecorder({ sink });
  await runClients({ recorder, workload, clientFor, concurrency: 5, durationMs, opTimeoutMs: 30, seed: 1 });
  await recorder.close();
  return parseHistory(sink.text()); // also validates Jepsen's process rules
}

describe('register workload end to end', () => {
  it('a linearizable store passes, with lost answers recorded as info and refusals as fail', async () => {
    const store = new SimRegister(1, 'correct', { lostAnswerPercent: 3, refusePercent: 3 });
    const h = await run(registerWorkload({ keys: 3 }), () => store.client());
    const r = checkLinearizable(h);
    expect(r.valid).toBe(true);
    expect(h.filter((o) => o.type === 'info').length).toBeGreaterThan(0);
    expect(h.filter((o) => o.type === 'fail').length).toBeGreaterThan(0);
    expect(r.stats.searchedOperations).toBeGreaterThan(100);
  });

  it('a store serving reads from a lagging replica is caught with a small counterexample', async () => {
    const store = new SimRegister(2, 'staleReads');
    try {
      const h = await run(registerWorkload({ keys: 2 }), () => store.client());
      const r = checkLinearizable(h);
      expect(r.valid).toBe(false);
      expect(r.counterexample!.stuckOp.f).toBe('get');
      expect(r.counterexample!.ops.length).toBeLessThan(40);
    } finally {
      store.stop();
    }
  });
});

describe('bank workload end to end', () => {
  const accounts = ['a', 'b', 'c', 'd'];
  it('atomic transfers pass', async () => {
    const store = new SimBank(3, accounts, 10n, 'correct', { lostAnswerPercent: 2 });
    const h = await run(bankWorkload({ accounts }), () => store.client());
    const r = checkBank({ history: h, accounts, totalBalance: 40n });
    expect(r.valid).toBe(true);
    expect(r.stats.reads).toBeGreaterThan(20);
  });
  it('non-atomic transfers are caught by a read that sees money missing', async () => {
    const store = new SimBank(4, accounts, 10n, 'nonAtomic');
    const h = await run(bankWorkload({ accounts }), () => store.client());
    const r = checkBank({ history: h, accounts, totalBalance: 40n });
    expect(r.valid).toBe(false);
    expect(r.counterexample!.kind).toBe('wrong-total');
  });
});

describe('append workload end to end', () => {
  it('a correct store passes', async () => {
    const store = new SimAppend(5, 'correct', { lostAnswerPercent: 2, refusePercent: 2 });
    const h = await run(appendWorkload(), () => store.client());
    const r = checkAppend({ history: h, finalLists: Object.fromEntries(store.lists) });
    expect(r.valid).toBe(true);
    expect(r.stats.appendsOk).toBeGreaterThan(20);
  });
  it('a store that drops acknowledged appends is caught', async () => {
    const store = new SimAppend(6, 'loseAcked');
    const h = await run(appendWorkload(), () => store.client());
    const r = checkAppend({ history: h, finalLists: Object.fromEntries(store.lists) });
    expect(r.valid).toBe(false);
    expect(r.anomalies.some((a) => a.kind === 'lost')).toBe(true);
  });
});

describe('runClients', () => {
  it('turns a hang and a thrown error into info, retires the process, and leaves no op open', async () => {
    let calls = 0;
    const clientFor = (): JepsenClient => ({
      invoke: async (_op, signal) => {
        calls++;
        if (calls % 3 === 0) throw new Error('connection reset');
        if (calls % 3 === 1) await new Promise((r) => signal.addEventListener('abort', r, { once: true }));
        return { type: 'ok', value: { key: 'r0', value: null } };
      },
    });
    const sink = new MemoryHistorySink();
    const recorder = new HistoryRecorder({ sink });
    const stats = await runClients({
      recorder,
      workload: registerWorkload(),
      clientFor,
      concurrency: 2,
      durationMs: 150,
      opTimeoutMs: 10,
      seed: 2,
    });
    await recorder.close();
    const h = parseHistory(sink.text());
    expect(stats.info).toBeGreaterThan(0);
    expect(stats.processesRetired).toBe(stats.info);
    expect(h.filter((o) => o.type === 'invoke').length).toBe(stats.invoked);
    expect(h.filter((o) => o.type !== 'invoke').length).toBe(stats.invoked);
    expect(h.some((o) => o.error?.startsWith('timeout after'))).toBe(true);
    expect(h.some((o) => o.error === 'client error: connection reset')).toBe(true);
    expect(new Set(h.map((o) => o.process)).size).toBeGreaterThan(2);
  });

  it('paces operations to the requested rate', async () => {
    const sink = new MemoryHistorySink();
    const recorder = new HistoryRecorder({ sink });
    const store = new SimRegister(7, 'correct');
    const stats = await runClients({
      recorder,
      workload: registerWorkload(),
      clientFor: () => store.client(),
      concurrency: 2,
      durationMs: 500,
      rateHz: 20,
      opTimeoutMs: 50,
      seed: 3,
    });
    await recorder.close();
    // 20/s for 0.5 s is ~10; without pacing it would be hundreds. A wide band: this is not a timing test.
    expect(stats.invoked).toBeGreaterThan(2);
    expect(stats.invoked).toBeLessThan(40);
  });
});
