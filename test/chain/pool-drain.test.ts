// The pool's drain bound (node/chain/pool.ts): the DrainMeter's committed-tx/s EWMA and the
// admission rule built on it, on a manual clock (deterministic: no real time is read).

import { describe, expect, it } from 'vitest';
import {
  ChainError,
  ChainErrorCode,
  DRAIN_IDLE_GAP_MS,
  DrainMeter,
  LedgerApp,
  MIN_ADMISSIBLE_POOL_TXS,
  TxPool,
  getNonce,
  signTransaction,
  applyBlock,
  baseOf,
  buildBlock,
  type ChainState,
  type Transaction,
} from '../../node/chain/index.js';
import { ManualClock } from '../../node/clock.js';
import { CHAIN_ID, fixture, tx } from './helpers.js';

const f = fixture({ accounts: 4 });
const [alice, bob] = f.accounts;

/** `count` commits of `txs` transactions, one every `everyMs`, on `clock`. */
function feed(meter: DrainMeter, clock: ManualClock, count: number, txs: number, everyMs: number): void {
  for (let i = 0; i < count; i++) {
    clock.advance(everyMs);
    meter.committed(txs, clock.monotonicMs());
  }
}

function refusal(fn: () => unknown): ChainError {
  try {
    fn();
  } catch (e) {
    if (e instanceof ChainError) return e;
    throw e;
  }
  throw new Error('not refused');
}

describe('DrainMeter', () => {
  it('measures committed tx/s from the commits it is told of, on the given clock', () => {
    const clock = new ManualClock();
    const m = new DrainMeter(1_000, 100, 1_000);
    expect(m.rate).toBe(0);
    m.committed(100, clock.monotonicMs()); // opens the first sample
    expect(m.rate).toBe(0);
    feed(m, clock, 2, 100, 50); // 200 txs in 100 ms: the first sample sets the rate
    expect(m.rate).toBe(2_000);
    expect(m.commitIntervalMs).toBe(50);
    feed(m, clock, 40, 100, 50); // the same pace: unchanged
    expect(m.rate).toBeCloseTo(2_000, 9);
  });

  it('moves toward a new rate with time constant tau, whatever the block cadence', () => {
    const clock = new ManualClock();
    const m = new DrainMeter(1_000, 100, 1_000);
    m.committed(0, clock.monotonicMs());
    feed(m, clock, 2, 100, 50); // 2,000 tx/s
    // One tau (1 s) at 1,000 tx/s: 10 samples of 100 ms, each weighted 1 - e^(-0.1).
    feed(m, clock, 20, 50, 50);
    expect(m.rate).toBeCloseTo(1_000 + 1_000 * Math.exp(-1), 6);
    // The same second in 25 ms blocks (4 per sample) lands on the same value.
    const m2 = new DrainMeter(1_000, 100, 1_000);
    const c2 = new ManualClock();
    m2.committed(0, c2.monotonicMs());
    feed(m2, c2, 4, 50, 25);
    feed(m2, c2, 40, 25, 25);
    expect(m2.rate).toBeCloseTo(1_000 + 1_000 * Math.exp(-1), 6);
  });

  it('leaves idle gaps out: a quiet node keeps its last measured rate', () => {
    const clock = new ManualClock();
    const m = new DrainMeter();
    m.committed(0, clock.monotonicMs());
    feed(m, clock, 20, 100, 50);
    const before = m.rate;
    clock.advance(DRAIN_IDLE_GAP_MS + 5_000);
    m.committed(1, clock.monotonicMs()); // after the gap: opens a new sample, changes nothing
    expect(m.rate).toBe(before);
    feed(m, clock, 2, 100, 50);
    expect(m.rate).toBeCloseTo(before, 9);
  });
});

describe('TxPool drain bound', () => {
  function pool(chain: ChainState, clock: ManualClock, maxDrainMs: number, maxTxs?: number): TxPool {
    return new TxPool({
      chainId: CHAIN_ID,
      app: new LedgerApp(),
      nonceOf: (a) => getNonce(chain.state, a),
      verifiedTxs: chain.verifiedTxs,
      maxDrainMs,
      maxTxs,
      nowMs: () => clock.monotonicMs(),
    });
  }
  /** Tells the pool's meter of `count` commits of `txs` (no transaction is removed: the chain does not change). */
  function commits(p: TxPool, clock: ManualClock, count: number, txs: number, everyMs: number): void {
    for (let i = 0; i < count; i++) {
      clock.advance(everyMs);
      p.drain.committed(txs, clock.monotonicMs());
    }
  }

  it('committed(block txs) feeds the meter on the pool clock and drops them from the pool', () => {
    const c = f.newChain();
    const clock = new ManualClock();
    const p = pool(c, clock, 1_000);
    const txs = [0, 1, 2, 3].map((n) => tx(alice, n, []));
    for (const t of txs) p.add(t);
    p.committed([]);
    clock.advance(100);
    p.committed(txs);
    expect(p.drain.rate).toBe(40); // 4 transactions in 100 ms
    expect(p.drain.commitIntervalMs).toBe(100);
  });

  it('admits MIN_ADMISSIBLE_POOL_TXS before any rate is measured, and never more than maxTxs', () => {
    const c = f.newChain();
    const clock = new ManualClock();
    expect(pool(c, clock, 1_000).admissible).toBe(MIN_ADMISSIBLE_POOL_TXS);
    const small = pool(c, clock, 1_000, 3);
    for (let n = 0; n < 3; n++) small.add(tx(alice, n, []));
    const e = refusal(() => small.add(tx(alice, 3, [])));
    expect(e.code).toBe(ChainErrorCode.PoolFull);
    expect(e.message).toMatch(/limits 3,/);
  });

  it('bounds the transactions waiting to be minted, not those already in proposed blocks', () => {
    const c = f.newChain();
    const clock = new ManualClock();
    const p = pool(c, clock, 1_000);
    const floor = MIN_ADMISSIBLE_POOL_TXS;
    for (let n = 0; n < floor; n++) p.add(tx(alice, n, []));
    expect(p.waiting).toBe(floor);
    expect(refusal(() => p.checkRoom()).meta).toMatchObject({ waiting: floor, size: floor });
    // The minter takes 100 into a block: they are on their way, no longer waiting; 100 more fit.
    expect(p.take(100, 1 << 30)).toHaveLength(100);
    expect(p.waiting).toBe(floor - 100);
    for (let n = floor; n < floor + 100; n++) p.add(tx(alice, n, []));
    expect(p.size).toBe(floor + 100);
    expect(refusal(() => p.checkRoom()).code).toBe(ChainErrorCode.PoolFull);
    // The block turned out a no-op: they wait again (cursor back), as after a lost leadership.
    p.returnTxs(p.pendingOf(alice.address).slice(0, 100));
    expect(p.waiting).toBe(floor + 100);
    p.take(50, 1 << 30);
    expect(p.waiting).toBe(floor + 50);
    p.resetInFlight();
    expect(p.waiting).toBe(floor + 100);
  });

  it('admits the measured rate × maxDrainMs, then refuses at once with PoolFull and retryAfterMs', () => {
    const c = f.newChain();
    const clock = new ManualClock();
    const p = pool(c, clock, 300);
    p.drain.committed(0, clock.monotonicMs());
    commits(p, clock, 2, 200, 50); // 4,000 tx/s: 300 ms of it is 1,200
    expect(p.drain.rate).toBe(4_000);
    expect(p.admissible).toBe(1_200);
    // At 2,000 tx/s measured, 300 ms drains 600: the bound follows the rate down (above the floor).
    commits(p, clock, 200, 100, 50);
    expect(p.drain.rate).toBeCloseTo(2_000, 0);
    expect(p.admissible).toBe(600);
    const txs: Transaction[] = [];
    for (let n = 0; n < 600; n++) txs.push(tx(alice, n, []));
    for (const t of txs) p.add(t);
    expect(p.size).toBe(600);
    // Full: the 601st is refused, before its (bad) signature is even looked at.
    const forged = signTransaction({ chainId: CHAIN_ID, nonce: 600, ops: [] }, bob);
    const e = refusal(() => p.add({ ...forged, from: alice.address }));
    expect(e.code).toBe(ChainErrorCode.PoolFull);
    // Room for one more appears with the next commit: one commit interval (50 ms) away.
    expect(e.meta.retryAfterMs).toBe(50);
    expect(e.meta).toMatchObject({ size: 600, admissible: 600, committedPerSecond: 2_000 });
    expect(refusal(() => p.checkRoom()).code).toBe(ChainErrorCode.PoolFull);
  });

  it('retryAfterMs grows with how far over the bound the pool is (the rate fell after it filled)', () => {
    const c = f.newChain();
    const clock = new ManualClock();
    const p = pool(c, clock, 1_000);
    p.drain.committed(0, clock.monotonicMs());
    commits(p, clock, 2, 70, 100); // 700 tx/s: admits 700
    expect(p.admissible).toBe(700);
    for (let n = 0; n < 700; n++) p.add(tx(alice, n % 1_000, []));
    // The rate falls to 500 tx/s (a slow disk): the bound is now 500; the pool is 200 over it.
    commits(p, clock, 100, 50, 100);
    expect(p.drain.rate).toBeCloseTo(500, 1);
    expect(p.admissible).toBe(500);
    const e = refusal(() => p.checkRoom());
    // 201 transactions must commit first: 201 / 500 tx/s = 402 ms.
    expect(e.meta.retryAfterMs).toBe(402);
  });
});

describe('TxPool refused nonces', () => {
  function commit(chain: ChainState, p: TxPool, txs: Transaction[]): void {
    const b = buildBlock(new LedgerApp(), CHAIN_ID, baseOf(chain), txs, { raftId: 1, key: f.minters[0] }, 50_000, 1);
    const r = applyBlock(chain, b.block, new Map());
    if (r.kind !== 'applied') throw new Error(r.detail);
    chain.advance(r);
    p.committed(b.block.transactions);
  }

  it("refuses an account's later nonces after refusing one for want of room, until it is sent again", () => {
    const c = f.newChain();
    const clock = new ManualClock();
    const p = new TxPool({
      chainId: CHAIN_ID,
      app: new LedgerApp(),
      nonceOf: (a) => getNonce(c.state, a),
      verifiedTxs: c.verifiedTxs,
      maxTxs: 3,
      nowMs: () => clock.monotonicMs(),
    });
    const b0 = tx(bob, 0, []);
    p.add(tx(alice, 0, []));
    p.add(tx(alice, 1, []));
    p.add(b0);
    expect(refusal(() => p.add(tx(alice, 2, []))).code).toBe(ChainErrorCode.PoolFull); // full: a hole at 2
    commit(c, p, [b0]);
    expect(p.size).toBe(2);
    // Room again, but alice's 3 would wait behind the refused 2: refused, with retryAfterMs.
    const gap = refusal(() => p.add(tx(alice, 3, [])));
    expect(gap.code).toBe(ChainErrorCode.PoolFull);
    expect(gap.message).toMatch(/nonce 2 of .* was refused/);
    expect(typeof gap.meta.retryAfterMs).toBe('number');
    expect(p.size).toBe(2);
    // Her 2 sent again fills the hole; her later nonces are admitted again (room permitting).
    p.add(tx(alice, 2, []));
    commit(c, p, p.take(10, 1 << 20));
    expect(p.size).toBe(0);
    p.add(tx(alice, 3, []));
    p.add(tx(alice, 4, []));
    expect(p.pendingNonce(alice.address)).toBe(5);
  });
});
