import { describe, expect, it } from 'vitest';
import { checkAppend, checkBank, checkChain, checkPrivacy } from '../../node/jepsen/checkers.js';
import { HistoryBuilder } from './helpers.js';

const accounts = ['a', 'b', 'c'];

describe('bank checker', () => {
  it('passes when every read sums to the total with no negative balance (decimal and 0x amounts)', async () => {
    const h = new HistoryBuilder()
      .invoke(0, 'transfer', { from: 'a', to: 'b', amount: '5' })
      .invoke(1, 'read', null)
      .ok(1, { balances: { a: '10', b: '10', c: '10' } })
      .ok(0)
      .invoke(1, 'read', null)
      .ok(1, { balances: { a: '0x5', b: '15', c: 10 } })
      .invoke(2, 'transfer', { from: 'c', to: 'a', amount: '50' })
      .fail(2)
      .invoke(3, 'read', null)
      .info(3);
    const r = checkBank({ history: await h.lines(), accounts, totalBalance: 30n });
    expect(r.valid).toBe(true);
    expect(r.stats).toMatchObject({ reads: 2, badReads: 0, transfersOk: 1, transfersFail: 1 });
  });

  it('finds a read whose total changed', async () => {
    const h = new HistoryBuilder()
      .invoke(1, 'read', null)
      .ok(1, { balances: { a: '10', b: '10', c: '10' } })
      .invoke(1, 'read', null)
      .ok(1, { balances: { a: '5', b: '10', c: '10' } });
    const r = checkBank({ history: await h.lines(), accounts, totalBalance: '30' });
    expect(r.valid).toBe(false);
    expect(r.counterexample).toMatchObject({ kind: 'wrong-total', observedTotal: '25', expectedTotal: '30' });
    expect(r.counterexample!.read.invokeIndex).toBe(2);
  });

  it('finds a negative balance even when the total is right', async () => {
    const h = new HistoryBuilder().invoke(1, 'read', null).ok(1, { balances: { a: '-5', b: '25', c: '10' } });
    const r = checkBank({ history: await h.lines(), accounts, totalBalance: 30 });
    expect(r.valid).toBe(false);
    expect(r.counterexample).toMatchObject({ kind: 'negative-balance', negativeAccounts: ['a'] });
  });

  it('finds a read that misses an account', async () => {
    const h = new HistoryBuilder().invoke(1, 'read', null).ok(1, { balances: { a: '20', b: '10' } });
    const r = checkBank({ history: await h.lines(), accounts, totalBalance: 30 });
    expect(r.counterexample).toMatchObject({ kind: 'wrong-accounts', missingAccounts: ['c'] });
  });
});

describe('append checker', () => {
  const base = () =>
    new HistoryBuilder()
      .invoke(0, 'append', { key: 'l', value: 'x1' })
      .ok(0)
      .invoke(1, 'append', { key: 'l', value: 'x2' })
      .invoke(2, 'read', { key: 'l' })
      .ok(2, { key: 'l', value: ['x1'] })
      .info(1)
      .invoke(0, 'append', { key: 'l', value: 'x3' })
      .ok(0)
      .invoke(3, 'append', { key: 'l', value: 'x4' })
      .fail(3)
      .invoke(2, 'read', { key: 'l' })
      .ok(2, { key: 'l', value: ['x1', 'x3'] });

  it('passes when reads are prefixes and acknowledged elements are present once (info may be absent)', async () => {
    const r = checkAppend({ history: await base().lines(), finalLists: { l: ['x1', 'x3'] } });
    expect(r.valid).toBe(true);
    expect(r.stats).toMatchObject({ reads: 2, appendsOk: 2 });
  });

  it('finds a lost acknowledged element', async () => {
    const r = checkAppend({ history: await base().lines(), finalLists: { l: ['x1'] } });
    expect(r.valid).toBe(false);
    expect(r.counterexample).toMatchObject({ kind: 'lost', element: 'x3' });
    expect(r.anomalies.some((a) => a.kind === 'not-prefix')).toBe(true);
  });

  it('finds a duplicated element', async () => {
    const r = checkAppend({ history: await base().lines(), finalLists: { l: ['x1', 'x3', 'x3'] } });
    expect(r.counterexample).toMatchObject({ kind: 'duplicated', element: 'x3', positions: [1, 2] });
  });

  it('finds a read that is not a prefix of the final list', async () => {
    const r = checkAppend({ history: await base().lines(), finalLists: { l: ['x3', 'x1'] } });
    expect(r.valid).toBe(false);
    expect(r.counterexample).toMatchObject({ kind: 'not-prefix', position: 0, readElement: 'x1', finalElement: 'x3' });
  });

  it('finds an element whose append failed, and one never appended', async () => {
    const r = checkAppend({ history: await base().lines(), finalLists: { l: ['x1', 'x3', 'x4', 'zz'] } });
    expect(r.anomalies.map((a) => a.kind).sort()).toEqual(['failed-append-present', 'never-appended']);
  });
});

describe('chain checker', () => {
  const ok = { n1: ['g', 'b1', 'b2'], n2: ['g', 'b1', 'b2'], n3: ['g', 'b1', 'b2'] };
  it('passes when all nodes agree and every acknowledged tx is there once', () => {
    const r = checkChain({
      blockHashesByNode: ok,
      chainTxHashes: ['t1', 't2', 't3'],
      acknowledgedTxHashes: ['t1', 't3'],
    });
    expect(r.valid).toBe(true);
    expect(r.stats).toMatchObject({ nodes: 3, minHeight: 3, maxHeight: 3 });
  });
  it('finds the first divergent height', () => {
    const r = checkChain({
      blockHashesByNode: { ...ok, n3: ['g', 'b1x', 'b2x'] },
      chainTxHashes: [],
      acknowledgedTxHashes: [],
    });
    expect(r.counterexample).toEqual({ kind: 'divergence', height: 1, hashes: { n1: 'b1', n2: 'b1', n3: 'b1x' } });
    expect(r.stats.divergence).toBe(1);
  });
  it('finds a node that is behind', () => {
    const r = checkChain({
      blockHashesByNode: { ...ok, n2: ['g', 'b1'] },
      chainTxHashes: [],
      acknowledgedTxHashes: [],
    });
    expect(r.counterexample).toMatchObject({ kind: 'height-mismatch', heights: { n1: 3, n2: 2, n3: 3 } });
  });
  it('finds a lost and a duplicated transaction', () => {
    const r = checkChain({
      blockHashesByNode: ok,
      chainTxHashes: ['t1', 't2', 't1'],
      acknowledgedTxHashes: ['t1', 't9'],
    });
    expect(r.valid).toBe(false);
    expect(r.anomalies).toEqual([
      { kind: 'lost-tx', txHash: 't9' },
      { kind: 'duplicate-tx', txHash: 't1', positions: [0, 2] },
    ]);
  });
});

describe('privacy checker', () => {
  const parties = { p12: ['n1', 'n2'], p23: ['n2', 'n3'] };
  it('passes when parties agree and non-parties hold nothing', () => {
    const r = checkPrivacy({
      privateStatesByNode: { n1: { p12: 'v' }, n2: { p12: 'v', p23: 'w' }, n3: { p23: 'w' } },
      partiesByKey: parties,
    });
    expect(r.valid).toBe(true);
  });
  it('finds a leak to a non-party', () => {
    const r = checkPrivacy({
      privateStatesByNode: { n1: { p12: 'v' }, n2: { p12: 'v' }, n3: { p12: 'v' } },
      partiesByKey: parties,
    });
    expect(r.counterexample).toEqual({ kind: 'leak', key: 'p12', node: 'n3', value: 'v' });
  });
  it('finds parties that disagree, including one that holds nothing', () => {
    const r = checkPrivacy({ privateStatesByNode: { n1: { p12: 'v' }, n2: {}, n3: {} }, partiesByKey: parties });
    expect(r.counterexample).toEqual({ kind: 'parties-disagree', key: 'p12', values: { n1: 'v', n2: null } });
  });
  it('is unknown when a party was never read', () => {
    const r = checkPrivacy({
      privateStatesByNode: { n1: { p12: 'v' }, n2: { p12: 'v' } },
      partiesByKey: { p12: ['n1', 'n2', 'n4'] },
    });
    expect(r.valid).toBe('unknown');
  });
});
