import { describe, expect, it } from 'vitest';
import {
  ChainError,
  ChainErrorCode,
  LedgerApp,
  MAX_NONCE_GAP,
  MAX_TX_BYTES,
  TxPool,
  VerifiedTxCache,
  applyBlock,
  baseOf,
  buildBlock,
  decodeTransaction,
  encodeRawTransaction,
  type ChainState,
  type Transaction,
  getNonce,
} from '../../node/chain/index.js';
import { CHAIN_ID, fixture, put, tx } from './helpers.js';

const f = fixture({ accounts: 4 });
const [alice, bob, carol] = f.accounts;

function newPool(
  chain: ChainState,
  opts: {
    maxTxs?: number;
    maxBytes?: number;
    maxNonceGap?: number;
    queuedLifetimeMs?: number;
    nowMs?: () => number;
  } = {},
): TxPool {
  return new TxPool({
    chainId: CHAIN_ID,
    app: new LedgerApp(),
    nonceOf: (a) => getNonce(chain.state, a),
    verifiedTxs: chain.verifiedTxs,
    ...opts,
  });
}

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return e instanceof ChainError ? e.code : `non-chain error: ${(e as Error).message}`;
  }
  return 'no error';
}

function commit(chain: ChainState, pool: TxPool, txs: Transaction[]): void {
  const b = buildBlock(new LedgerApp(), CHAIN_ID, baseOf(chain), txs, { raftId: 1, key: f.minters[0] }, 50_000, 1);
  const r = applyBlock(chain, b.block, new Map());
  if (r.kind !== 'applied') throw new Error(r.detail);
  chain.advance(r);
  pool.removeCommitted(b.block.transactions);
}

describe('TxPool', () => {
  it('orders by nonce per account whatever the arrival order, and stops at a gap', () => {
    const c = f.newChain();
    const p = newPool(c);
    for (const n of [2, 0, 1, 4]) p.add(tx(alice, n, []));
    const taken = p.take(100, 1 << 20);
    expect(taken.map((t) => t.nonce)).toEqual([0, 1, 2]);
    expect(p.size).toBe(4); // taken ones stay until committed
    expect(p.take(100, 1 << 20)).toEqual([]); // nothing new until nonce 3 arrives
    p.add(tx(alice, 3, []));
    expect(p.take(100, 1 << 20).map((t) => t.nonce)).toEqual([3, 4]);
    expect(p.pendingNonce(alice.address)).toBe(5);
  });

  it('drops transactions stuck behind a nonce gap after their lifetime; runnable ones stay', () => {
    const c = f.newChain();
    let now = 1_000;
    const p = newPool(c, { queuedLifetimeMs: 60_000, nowMs: () => now, maxTxs: 4 });
    p.add(tx(alice, 0, []));
    p.add(tx(alice, 2, [])); // behind the gap at nonce 1
    p.add(tx(bob, 5, [])); // behind the gap at 0..4
    now += 30_000;
    p.add(tx(carol, 3, [])); // queued, but younger
    // The pool is full: a fifth transaction is refused, as before.
    expect(code(() => p.add(tx(carol, 0, [])))).toBe(ChainErrorCode.PoolFull);
    expect(p.expireQueued()).toEqual([]); // nothing is old enough yet
    now += 30_001;
    const dropped = p.expireQueued();
    expect(dropped.map((t) => `${t.from}:${t.nonce}`).sort()).toEqual(
      [`${alice.address}:2`, `${bob.address}:5`].sort(),
    );
    expect(p.size).toBe(2);
    expect(p.pendingOf(alice.address).map((t) => t.nonce)).toEqual([0]); // runnable: never expires
    // Room again; and a gap that gets filled makes the rest runnable, so it no longer expires.
    p.add(tx(carol, 0, []));
    p.add(tx(carol, 1, []));
    expect(code(() => p.add(tx(carol, 2, [])))).toBe(ChainErrorCode.PoolFull);
    now += 10 * 60_000;
    expect(p.expireQueued().map((t) => t.nonce)).toEqual([3]); // carol's 3 still waits for 2
    p.add(tx(carol, 2, []));
    now += 10 * 60_000;
    expect(p.expireQueued()).toEqual([]);
    expect(
      p
        .take(100, 1 << 20)
        .map((t) => `${t.from === carol.address ? 'c' : 'a'}${t.nonce}`)
        .sort(),
    ).toEqual(['a0', 'c0', 'c1', 'c2']);
  });

  it('serves accounts round-robin across takes', () => {
    const c = f.newChain();
    const p = newPool(c);
    for (let n = 0; n < 3; n++) p.add(tx(alice, n, []));
    for (let n = 0; n < 3; n++) p.add(tx(bob, n, []));
    const first = p.take(2, 1 << 20);
    expect(first.map((t) => t.from)).toEqual([alice.address, alice.address]);
    const second = p.take(2, 1 << 20);
    expect(second.map((t) => t.from)).toEqual([bob.address, bob.address]);
    // Each served account goes to the back: after Alice then Bob, Alice leads again.
    const third = p.take(10, 1 << 20);
    expect(third.map((t) => [t.from, t.nonce])).toEqual([
      [alice.address, 2],
      [bob.address, 2],
    ]);
    p.add(tx(alice, 3, []));
    p.add(tx(bob, 3, []));
    expect(p.take(1, 1 << 20).map((t) => t.from)).toEqual([alice.address]);
    expect(p.take(1, 1 << 20).map((t) => t.from)).toEqual([bob.address]);
  });

  it('respects take byte limits', () => {
    const c = f.newChain();
    const p = newPool(c);
    const ts = [0, 1, 2].map((n) => tx(alice, n, [put('k', 'x'.repeat(100))]));
    ts.forEach((t) => p.add(t));
    expect(p.take(10, ts[0].encoded.length * 2).length).toBe(2);
  });

  it('rejects with typed errors: duplicate, stale nonce, gap, pending nonce, wrong chain, bad signature, full', () => {
    const c = f.newChain();
    const p = newPool(c, { maxTxs: 3 });
    const t0 = tx(alice, 0, []);
    p.add(t0);
    expect(code(() => p.add(t0))).toBe(ChainErrorCode.TxDuplicate);
    expect(code(() => p.add(tx(alice, 0, [put('other', 'tx')])))).toBe(ChainErrorCode.NonceAlreadyPending);
    expect(code(() => p.add(tx(alice, MAX_NONCE_GAP + 1, [])))).toBe(ChainErrorCode.NonceGapTooLarge);
    expect(code(() => p.add(tx(alice, 1, [], CHAIN_ID + 1)))).toBe(ChainErrorCode.TxWrongChainId);
    const bad = Uint8Array.from(tx(bob, 0, []).encoded);
    bad[bad.length - 1] ^= 1;
    expect(code(() => p.addRaw(bad))).toBe(ChainErrorCode.TxBadSignature);
    expect(code(() => p.addRaw(bad.subarray(0, 10)))).toBe(ChainErrorCode.TxMalformed);
    expect(code(() => p.addRaw(new Uint8Array(MAX_TX_BYTES + 1)))).toBe(ChainErrorCode.TxTooLarge);
    expect(code(() => p.addRawHex('0x' + '01'.repeat(MAX_TX_BYTES + 1)))).toBe(ChainErrorCode.TxTooLarge);
    p.add(tx(alice, 1, []));
    p.add(tx(bob, 0, []));
    expect(code(() => p.add(tx(carol, 0, [])))).toBe(ChainErrorCode.PoolFull);
    // Committed: nonce 0 and 1 of Alice are now stale.
    commit(c, p, p.take(10, 1 << 20));
    expect(p.size).toBe(0);
    expect(code(() => p.add(t0))).toBe(ChainErrorCode.NonceTooLow);
    expect(code(() => p.add(tx(alice, 1, [put('replay', 'x')])))).toBe(ChainErrorCode.NonceTooLow);
    p.add(tx(carol, 0, []));
  });

  it('is bounded in bytes', () => {
    const c = f.newChain();
    const one = tx(alice, 0, [put('k', 'x'.repeat(1000))]);
    const p = newPool(c, { maxBytes: one.encoded.length * 2 + 10 });
    p.add(one);
    p.add(tx(alice, 1, [put('k', 'x'.repeat(1000))]));
    expect(code(() => p.add(tx(alice, 2, [put('k', 'x'.repeat(1000))])))).toBe(ChainErrorCode.PoolFull);
    expect(p.bytes).toBeLessThanOrEqual(p.maxBytes);
  });

  it('verifies once on entry and shares the verdict with the executor', () => {
    const c = f.newChain();
    const cache = new VerifiedTxCache();
    const p = new TxPool({
      chainId: CHAIN_ID,
      app: new LedgerApp(),
      nonceOf: (a) => getNonce(c.state, a),
      verifiedTxs: cache,
    });
    const t = p.addRawHex(encodeRawTransaction(tx(alice, 0, [])));
    expect(cache.has(t.hashHex)).toBe(true);
  });

  it("returnTxs makes a no-op block's transactions takeable again; foreign ones are re-admitted", () => {
    const c = f.newChain();
    const p = newPool(c);
    const mine = [tx(alice, 0, []), tx(alice, 1, [])];
    mine.forEach((t) => p.add(t));
    const taken = p.take(10, 1 << 20);
    expect(p.take(10, 1 << 20)).toEqual([]);
    expect(p.returnTxs(taken)).toBe(2);
    expect(p.take(10, 1 << 20).map((t) => t.nonce)).toEqual([0, 1]);
    // Transactions from another minter's no-op block that this pool never saw.
    const foreign = decodeTransaction(tx(bob, 0, []).encoded);
    const stale = tx(carol, 0, []);
    commit(c, p, [stale]);
    expect(p.returnTxs([foreign, stale])).toBe(1);
    expect(p.has(foreign.hashHex)).toBe(true);
    expect(p.has(stale.hashHex)).toBe(false);
  });

  it('resetInFlight forgets what was handed out; removeCommitted prunes everything below the committed nonce', () => {
    const c = f.newChain();
    const p = newPool(c);
    for (let n = 0; n < 4; n++) p.add(tx(alice, n, []));
    expect(p.take(2, 1 << 20).length).toBe(2);
    p.resetInFlight();
    expect(p.take(10, 1 << 20).map((t) => t.nonce)).toEqual([0, 1, 2, 3]);
    commit(c, p, p.pendingOf(alice.address).slice(0, 3));
    expect(p.pendingOf(alice.address).map((t) => t.nonce)).toEqual([3]);
    expect(p.size).toBe(1);
  });
});
