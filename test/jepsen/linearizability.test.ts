import { describe, expect, it } from 'vitest';
import { checkLinearizable } from '../../node/jepsen/linearizability.js';
import { validateHistory } from '../../node/jepsen/history.js';
import { JepsenError } from '../../node/jepsen/errors.js';
import { HistoryBuilder, generateRegisterHistory } from './helpers.js';

const put = (key: string, value: string) => ({ key, value });
const get = (key: string) => ({ key });
const read = (key: string, value: string | null) => ({ key, value });
const cas = (key: string, expectValue: string | null, value: string) => ({ key, expect: expectValue, value });

describe('linearizability: known linearizable histories', () => {
  it('sequential put then get', async () => {
    const h = new HistoryBuilder()
      .invoke(0, 'put', put('x', 'a'))
      .ok(0)
      .invoke(1, 'get', get('x'))
      .ok(1, read('x', 'a'));
    const r = checkLinearizable(await h.lines());
    expect(r.valid).toBe(true);
    expect(r.stats.searchedOperations).toBe(2);
  });

  it('a get concurrent with a put may see either value', async () => {
    for (const seen of [null, 'a']) {
      const h = new HistoryBuilder()
        .invoke(0, 'put', put('x', 'a'))
        .invoke(1, 'get', get('x'))
        .ok(1, read('x', seen))
        .ok(0);
      expect(checkLinearizable(await h.lines()).valid).toBe(true);
    }
  });

  it('reads of an absent key return null; cas with expect null succeeds on an absent key', async () => {
    const h = new HistoryBuilder()
      .invoke(0, 'get', get('x'))
      .ok(0, read('x', null))
      .invoke(0, 'cas', cas('x', null, 'a'))
      .ok(0, { ...cas('x', null, 'a'), swapped: true })
      .invoke(1, 'get', get('x'))
      .ok(1, read('x', 'a'))
      .invoke(1, 'cas', cas('x', null, 'b'))
      .ok(1, { ...cas('x', null, 'b'), swapped: false })
      .invoke(1, 'get', get('x'))
      .ok(1, read('x', 'a'));
    expect(checkLinearizable(await h.lines()).valid).toBe(true);
  });

  it('an info put that must have happened is assumed to have happened', async () => {
    const h = new HistoryBuilder()
      .invoke(0, 'put', put('x', 'a'))
      .info(0)
      .invoke(1, 'get', get('x'))
      .ok(1, read('x', 'a'));
    expect(checkLinearizable(await h.lines()).valid).toBe(true);
  });

  it('an info put may take effect long after it timed out, or never', async () => {
    const late = new HistoryBuilder()
      .invoke(0, 'put', put('x', 'a'))
      .info(0)
      .invoke(1, 'get', get('x'))
      .ok(1, read('x', null))
      .invoke(1, 'get', get('x'))
      .ok(1, read('x', null))
      .invoke(1, 'get', get('x'))
      .ok(1, read('x', 'a'));
    expect(checkLinearizable(await late.lines()).valid).toBe(true);
    const never = new HistoryBuilder()
      .invoke(0, 'put', put('x', 'a'))
      .info(0)
      .invoke(1, 'get', get('x'))
      .ok(1, read('x', null));
    expect(checkLinearizable(await never.lines()).valid).toBe(true);
  });

  it('a failed put is known not to have happened and is ignored', async () => {
    const h = new HistoryBuilder()
      .invoke(0, 'put', put('x', 'a'))
      .fail(0)
      .invoke(1, 'get', get('x'))
      .ok(1, read('x', null));
    expect(checkLinearizable(await h.lines()).valid).toBe(true);
  });

  it('keys are independent (P-compositionality)', async () => {
    const h = new HistoryBuilder()
      .invoke(0, 'put', put('x', 'a'))
      .invoke(1, 'put', put('y', 'b'))
      .ok(0)
      .ok(1)
      .invoke(0, 'get', get('y'))
      .ok(0, read('y', 'b'))
      .invoke(1, 'get', get('x'))
      .ok(1, read('x', 'a'));
    const r = checkLinearizable(await h.lines());
    expect(r.valid).toBe(true);
    expect(r.stats.keys).toBe(2);
  });
});

describe('linearizability: known non-linearizable histories', () => {
  it('stale read: a get that starts after a put completed returns the old value', async () => {
    const h = new HistoryBuilder()
      .invoke(0, 'put', put('x', 'a'))
      .ok(0)
      .invoke(0, 'put', put('x', 'b'))
      .ok(0)
      .invoke(1, 'get', get('x'))
      .ok(1, read('x', 'a'));
    const r = checkLinearizable(await h.lines());
    expect(r.valid).toBe(false);
    const cx = r.counterexample!;
    expect(cx.key).toBe('x');
    expect(cx.stuckOp.f).toBe('get');
    expect(cx.stuckOp.value).toEqual(read('x', 'a'));
    // The shrunk window keeps only what proves the anomaly: the last put and the stale get.
    expect(cx.ops.map((o) => o.f)).toEqual(['put', 'get']);
    expect(cx.initialState).toBe('any');
  });

  it('lost write: an acknowledged put is never seen, later reads see the value before it', async () => {
    const h = new HistoryBuilder()
      .invoke(0, 'put', put('x', 'a'))
      .ok(0)
      .invoke(1, 'put', put('x', 'b'))
      .ok(1)
      .invoke(2, 'get', get('x'))
      .ok(2, read('x', 'a'))
      .invoke(2, 'get', get('x'))
      .ok(2, read('x', 'a'));
    const r = checkLinearizable(await h.lines());
    expect(r.valid).toBe(false);
    expect(r.counterexample!.ops.some((o) => o.f === 'put' && (o.value as { value: string }).value === 'b')).toBe(true);
  });

  it('a read of a value nobody wrote', async () => {
    const h = new HistoryBuilder().invoke(0, 'get', get('x')).ok(0, read('x', 'ghost'));
    const r = checkLinearizable(await h.lines());
    expect(r.valid).toBe(false);
    expect(r.counterexample!.initialState).toBe(null);
  });

  it('cas anomaly: two cas from the same expected value both succeed', async () => {
    const h = new HistoryBuilder()
      .invoke(0, 'put', put('x', 'a'))
      .ok(0)
      .invoke(1, 'cas', cas('x', 'a', 'b'))
      .invoke(2, 'cas', cas('x', 'a', 'c'))
      .ok(1, { ...cas('x', 'a', 'b'), swapped: true })
      .ok(2, { ...cas('x', 'a', 'c'), swapped: true });
    const r = checkLinearizable(await h.lines());
    expect(r.valid).toBe(false);
    expect(r.counterexample!.stuckOp.f).toBe('cas');
  });

  it('cas anomaly: a cas reports a failed compare although the value was the expected one', async () => {
    const h = new HistoryBuilder()
      .invoke(0, 'put', put('x', 'a'))
      .ok(0)
      .invoke(1, 'cas', cas('x', 'a', 'b'))
      .ok(1, { ...cas('x', 'a', 'b'), swapped: false });
    expect(checkLinearizable(await h.lines()).valid).toBe(false);
  });

  it('cas anomaly: a successful cas whose expected value was never there', async () => {
    const h = new HistoryBuilder()
      .invoke(0, 'put', put('x', 'a'))
      .ok(0)
      .invoke(1, 'cas', cas('x', 'z', 'b'))
      .ok(1, { ...cas('x', 'z', 'b'), swapped: true });
    expect(checkLinearizable(await h.lines()).valid).toBe(false);
  });

  it('an info op cannot explain a read that precedes its invocation', async () => {
    const h = new HistoryBuilder()
      .invoke(1, 'get', get('x'))
      .ok(1, read('x', 'a'))
      .invoke(0, 'put', put('x', 'a'))
      .info(0);
    expect(checkLinearizable(await h.lines()).valid).toBe(false);
  });

  it('an info op takes effect at most once: it cannot explain a value coming back', async () => {
    const h = new HistoryBuilder()
      .invoke(0, 'put', put('x', 'a'))
      .info(0)
      .invoke(1, 'get', get('x'))
      .ok(1, read('x', 'a'))
      .invoke(1, 'put', put('x', 'b'))
      .ok(1)
      .invoke(1, 'get', get('x'))
      .ok(1, read('x', 'a'));
    expect(checkLinearizable(await h.lines()).valid).toBe(false);
  });

  it('the counterexample names the failing key among several', async () => {
    const h = new HistoryBuilder()
      .invoke(0, 'put', put('a', '1'))
      .ok(0)
      .invoke(0, 'put', put('b', '1'))
      .ok(0)
      .invoke(0, 'put', put('b', '2'))
      .ok(0)
      .invoke(1, 'get', get('a'))
      .ok(1, read('a', '1'))
      .invoke(1, 'get', get('b'))
      .ok(1, read('b', '1'));
    const r = checkLinearizable(await h.lines());
    expect(r.valid).toBe(false);
    expect(r.counterexample!.key).toBe('b');
  });

  it('shrinks a long failing history to a small window', async () => {
    const gen = generateRegisterHistory({
      seed: 7,
      operations: 2_000,
      processes: 5,
      keys: 1,
      infoPercent: 0,
      failPercent: 0,
    });
    // Append a stale read after everything: it sees a value overwritten long ago.
    const ops = [...gen.ops];
    const lastT = ops[ops.length - 1].timeNs;
    const firstPut = ops.find((o) => o.f === 'put' && o.type === 'invoke')!;
    const stale = (firstPut.value as { value: string }).value;
    ops.push({
      index: ops.length,
      type: 'invoke',
      process: 999,
      f: 'put',
      value: put('k0', 'fresh'),
      timeNs: lastT + 1,
    });
    ops.push({ index: ops.length, type: 'ok', process: 999, f: 'put', value: put('k0', 'fresh'), timeNs: lastT + 2 });
    ops.push({ index: ops.length, type: 'invoke', process: 999, f: 'get', value: get('k0'), timeNs: lastT + 3 });
    ops.push({ index: ops.length, type: 'ok', process: 999, f: 'get', value: read('k0', stale), timeNs: lastT + 4 });
    validateHistory(ops);
    const r = checkLinearizable(ops);
    expect(r.valid).toBe(false);
    expect(r.counterexample!.ops.length).toBeLessThanOrEqual(4);
    expect(r.counterexample!.stuckOp.value).toEqual(read('k0', stale));
  });
});

describe('linearizability: limits and errors', () => {
  it('answers unknown rather than hanging when the search budget runs out', () => {
    const gen = generateRegisterHistory({
      seed: 3,
      operations: 400,
      processes: 5,
      keys: 1,
      infoPercent: 5,
      failPercent: 0,
    });
    const r = checkLinearizable(gen.ops, { maxSearchStepsPerKey: 50 });
    expect(r.valid).toBe('unknown');
    expect(r.stats.unknownKeys).toEqual(['k0']);
  });

  it('bounds timed-out writes by their first reader, so a stale read after many of them is found in few steps', async () => {
    // 60 writes of distinct values each time out (info), and a reader sees each value right after its
    // write; finally it sees the first value again: that write cannot have happened both before the
    // first read and after the last. Left open, each info write could land anywhere up to the end, and
    // the search would try every subset of the writes still pending; bounded by their first reader,
    // they are ordinary completed ops and the search is linear.
    const n = 60;
    const build = (stale: boolean): HistoryBuilder => {
      const h = new HistoryBuilder();
      for (let i = 0; i < n; i++)
        h.invoke(i, 'put', put('x', `v${i}`))
          .info(i)
          .invoke(100, 'get', get('x'))
          .ok(100, read('x', `v${i}`));
      if (stale) h.invoke(100, 'get', get('x')).ok(100, read('x', 'v0'));
      return h;
    };
    const r = checkLinearizable(await build(true).lines());
    expect(r.valid).toBe(false);
    expect(r.stats.infoOperations).toBe(n);
    expect(r.stats.boundedInfoOperations).toBe(n);
    expect(r.stats.searchSteps).toBeLessThan(10 * n);
    expect(r.counterexample!.stuckOp.value).toEqual(read('x', 'v0'));
    // Without the final stale read, the same history is linearizable.
    expect(checkLinearizable(await build(false).lines()).valid).toBe(true);
  });

  it('caps the steps spent shrinking: with none left, the whole failing key is the counterexample', () => {
    const gen = generateRegisterHistory({
      seed: 43,
      operations: 2_000,
      processes: 5,
      keys: 1,
      infoPercent: 2,
      failPercent: 3,
    });
    const ops = gen.ops.map((o) => ({ ...o }));
    const target = ops.findIndex((o, i) => i > ops.length / 2 && o.type === 'ok' && o.f === 'get');
    ops[target] = { ...ops[target], value: read('k0', 'never-written') };
    const unshrunk = checkLinearizable(ops, { maxShrinkSteps: 0 });
    const shrunk = checkLinearizable(ops);
    expect(unshrunk.valid).toBe(false);
    expect(shrunk.valid).toBe(false);
    expect(unshrunk.counterexample!.ops.length).toBe(unshrunk.stats.searchedOperations);
    expect(shrunk.counterexample!.ops.length).toBeLessThan(unshrunk.counterexample!.ops.length / 2);
    expect(unshrunk.stats.searchSteps).toBe(shrunk.stats.searchSteps);
  });

  it('refuses an op the register model does not know', async () => {
    const h = new HistoryBuilder().invoke(0, 'transfer', { key: 'x' }).ok(0);
    const lines = await h.lines();
    expect(() => checkLinearizable(lines)).toThrow(JepsenError);
  });
});

describe('linearizability: large generated histories', () => {
  it('checks a 10,000-op history (5 processes, 8 keys, info and fail ops) that is linearizable by construction', () => {
    const gen = generateRegisterHistory({
      seed: 42,
      operations: 10_000,
      processes: 5,
      keys: 8,
      infoPercent: 2,
      failPercent: 3,
    });
    const started = performance.now();
    const r = checkLinearizable(gen.ops);
    const ms = performance.now() - started;
    console.log(
      `linearizability: 10,000 ops, ${gen.infoCount} info, ${r.stats.keys} keys: ${ms.toFixed(0)} ms, ${r.stats.searchSteps} steps, ${r.stats.cacheEntries} cache entries`,
    );
    expect(r.valid).toBe(true);
    expect(r.stats.operations).toBe(10_000);
  });

  it('finds a single corrupted read in a 10,000-op history', () => {
    const gen = generateRegisterHistory({
      seed: 43,
      operations: 10_000,
      processes: 5,
      keys: 8,
      infoPercent: 2,
      failPercent: 3,
    });
    // Corrupt one ok get in the middle: it reports a value that was never written.
    const ops = gen.ops.map((o) => ({ ...o }));
    const target = ops.findIndex((o, i) => i > ops.length / 2 && o.type === 'ok' && o.f === 'get');
    const key = (ops[target].value as { key: string }).key;
    ops[target] = { ...ops[target], value: read(key, 'never-written') };
    const started = performance.now();
    const r = checkLinearizable(ops);
    console.log(
      `linearizability: corrupted 10,000-op history: ${(performance.now() - started).toFixed(0)} ms, window of ${r.counterexample?.ops.length} ops`,
    );
    expect(r.valid).toBe(false);
    expect(r.counterexample!.key).toBe(key);
    expect(r.counterexample!.stuckOp.value).toEqual(read(key, 'never-written'));
    expect(r.counterexample!.ops.length).toBeLessThan(50);
  });
});
