// Property tests: the ledger (executor + LedgerApp + overlays + LtHash) against a deliberately
// naive model (plain Maps), over seeded random transactions; and a deposed-leader race where two
// minters build conflicting blocks, every node applies the same log, no-op blocks return their
// transactions to the pools, and every transaction ends up applied exactly once.
import { describe, expect, it } from 'vitest';
import {
  type ChainState,
  LedgerApp,
  type Op,
  type Transaction,
  TxPool,
  applyBlock,
  baseOf,
  buildBlock,
  getBalance,
  getList,
  getNonce,
  getValue,
  toHex,
  type BuildBase,
} from '../../node/chain/index.js';
import { CHAIN_ID, fixture, tx } from './helpers.js';

function rng(seed: number): (n: number) => number {
  let s = seed >>> 0 || 1;
  return (n: number) => {
    // xorshift32
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s % n;
  };
}

interface Model {
  balances: Map<string, bigint>;
  values: Map<string, string>;
  lists: Map<string, string[]>;
}

/** The naive ledger: docs/interface.md's table, all or nothing per transaction. */
function modelApply(m: Model, from: string, ops: readonly Op[]): 0 | 1 {
  const b = new Map(m.balances);
  const v = new Map(m.values);
  const l = new Map([...m.lists].map(([k, x]) => [k, [...x]]));
  for (const op of ops) {
    if (op.type === 'transfer') {
      const have = b.get(from) ?? 0n;
      if (have < op.amount) return 0;
      b.set(from, have - op.amount);
      b.set(op.to, (b.get(op.to) ?? 0n) + op.amount);
    } else if (op.type === 'put') v.set(op.key, op.value);
    else if (op.type === 'delete') v.delete(op.key);
    else if (op.type === 'cas') {
      if ((v.get(op.key) ?? null) !== op.expect) return 0;
      v.set(op.key, op.value);
    } else l.set(op.key, [...(l.get(op.key) ?? []), op.value]);
  }
  m.balances = b;
  m.values = v;
  m.lists = l;
  return 1;
}

describe('ledger vs a naive model', () => {
  for (const seed of [1, 2, 3]) {
    it(`agrees on every receipt and value (seed=${seed})`, () => {
      const f = fixture({ accounts: 3, balance: 100n });
      const r = rng(seed);
      const chain = f.newChain();
      const model: Model = {
        balances: new Map(f.accounts.map((a) => [a.address, 100n])),
        values: new Map(),
        lists: new Map(),
      };
      const keys = ['a', 'b', 'c'];
      const vals = ['1', '2', '3'];
      const randomOp = (): Op => {
        const k = keys[r(keys.length)];
        switch (r(5)) {
          case 0:
            return { type: 'transfer', to: f.accounts[r(3)].address, amount: BigInt(r(80)) };
          case 1:
            return { type: 'put', key: k, value: vals[r(3)] };
          case 2:
            return { type: 'delete', key: k };
          case 3:
            return { type: 'cas', key: k, expect: r(3) === 0 ? null : vals[r(3)], value: vals[r(3)] };
          default:
            return { type: 'append', key: k, value: vals[r(3)] };
        }
      };
      for (let block = 0; block < 15; block++) {
        const txs: Transaction[] = [];
        const expected: (0 | 1)[] = [];
        const nonces = new Map<string, number>();
        for (let i = 0; i < 6; i++) {
          const who = f.accounts[r(3)];
          const nonce = nonces.get(who.address) ?? getNonce(chain.state, who.address);
          nonces.set(who.address, nonce + 1);
          const ops = Array.from({ length: 1 + r(3) }, randomOp);
          txs.push(tx(who, nonce, ops));
          expected.push(modelApply(model, who.address, ops));
        }
        const built = buildBlock(
          chain.app,
          CHAIN_ID,
          baseOf(chain),
          txs,
          { raftId: 1, key: f.minters[0] },
          1_000 + block,
          1,
        );
        const res = applyBlock(chain, built.block, new Map());
        if (res.kind !== 'applied') throw new Error(res.detail);
        chain.advance(res);
        const where = `seed=${seed} block=${block}`;
        expect(
          res.receipts.map((x) => x.status),
          where,
        ).toEqual(expected);
        for (const a of f.accounts)
          expect(getBalance(chain.state, a.address), where).toBe(model.balances.get(a.address) ?? 0n);
        for (const k of keys) {
          expect(getValue(chain.state, k), where).toBe(model.values.get(k) ?? null);
          expect(getList(chain.state, k), where).toEqual(model.lists.get(k) ?? []);
        }
        // Money is conserved.
        expect(f.accounts.reduce((s, a) => s + getBalance(chain.state, a.address), 0n)).toBe(300n);
      }
    });
  }
});

describe('deposed leader race', () => {
  for (const seed of [7, 8]) {
    it(`every transaction is applied exactly once and all nodes agree (seed=${seed})`, () => {
      const f = fixture({ accounts: 4 });
      const r = rng(seed);
      const app = new LedgerApp();
      const nodes: ChainState[] = [f.newChain(), f.newChain(), f.newChain()];
      const pools = nodes.map(
        (c) => new TxPool({ chainId: CHAIN_ID, app, nonceOf: (a) => getNonce(c.state, a), verifiedTxs: c.verifiedTxs }),
      );
      // Clients send each transaction to two nodes (a retry to another node after a timeout).
      const all: Transaction[] = [];
      for (const a of f.accounts)
        for (let n = 0; n < 6; n++)
          all.push(tx(a, n, [{ type: 'append', key: 'log', value: `${a.address.slice(2, 6)}:${n}` }]));
      for (const t of all) {
        const first = r(3);
        pools[first].add(t);
        pools[(first + 1) % 3].add(t);
      }
      // Minters 0 and 1 both think they lead; each builds speculatively on its own last block.
      const bases: (BuildBase | undefined)[] = [undefined, undefined];
      const log: { block: ReturnType<typeof buildBlock>['block']; minter: number }[] = [];
      let noops = 0;
      let appliedDuringRace = 0;
      for (let step = 0; step < 40 && log.length < 60; step++) {
        const m = r(2);
        const base = bases[m] ?? baseOf(nodes[m]);
        const txs = pools[m].take(1 + r(4), 1 << 20);
        if (txs.length === 0) {
          bases[m] = undefined;
          pools[m].resetInFlight();
          continue;
        }
        const built = buildBlock(
          app,
          CHAIN_ID,
          base,
          txs,
          { raftId: m + 1, key: f.minters[m] },
          1_000 + step,
          1 + m,
          {},
          nodes[m].verifiedTxs,
        );
        pools[m].returnTxs(built.deferred);
        if (built.block.transactions.length === 0) continue;
        bases[m] = built.next;
        log.push({ block: built.block, minter: m });
        // The log commits in order; every node applies every entry.
        while (log.length > 0 && r(3) !== 0) {
          const entry = log.shift()!;
          for (let i = 0; i < 3; i++) {
            const res = applyBlock(nodes[i], entry.block, new Map());
            if (res.kind === 'applied') {
              nodes[i].advance(res);
              pools[i].removeCommitted(entry.block.transactions);
              if (i === 0) appliedDuringRace++;
            } else {
              if (i === 0) noops++;
              pools[i].returnTxs(res.returnedTxs);
              if (i === entry.minter) {
                bases[i] = undefined; // its speculative chain broke
                pools[i].resetInFlight();
              }
            }
          }
        }
      }
      // Drain: apply what is left in the log, then let minter 0 mint until its pool is empty.
      for (const entry of log.splice(0)) {
        for (let i = 0; i < 3; i++) {
          const res = applyBlock(nodes[i], entry.block, new Map());
          if (res.kind === 'applied') {
            nodes[i].advance(res);
            pools[i].removeCommitted(entry.block.transactions);
          } else pools[i].returnTxs(res.returnedTxs);
        }
      }
      for (const p of pools) p.resetInFlight();
      for (let round = 0; round < 50; round++) {
        const m = round % 3;
        const txs = pools[m].take(100, 1 << 20);
        if (txs.length === 0) continue;
        const built = buildBlock(
          app,
          CHAIN_ID,
          baseOf(nodes[m]),
          txs,
          { raftId: m + 1, key: f.minters[m] },
          100_000 + round,
          9,
        );
        for (let i = 0; i < 3; i++) {
          const res = applyBlock(nodes[i], built.block, new Map());
          if (res.kind !== 'applied') throw new Error(res.detail);
          nodes[i].advance(res);
          pools[i].removeCommitted(built.block.transactions);
        }
      }
      // The race really happened: some blocks were no-ops, some applied.
      expect(noops, `seed=${seed}`).toBeGreaterThan(0);
      expect(appliedDuringRace, `seed=${seed}`).toBeGreaterThan(0);
      for (const p of pools) expect(p.size).toBe(0);
      const heads = nodes.map((n) => n.head.hashHex);
      expect(new Set(heads).size).toBe(1);
      expect(new Set(nodes.map((n) => toHex(n.state.root()))).size).toBe(1);
      const appended = getList(nodes[0].state, 'log');
      expect([...appended].sort()).toEqual(all.map((t) => (t.ops[0] as { value: string }).value).sort());
      for (const a of f.accounts) expect(getNonce(nodes[0].state, a.address)).toBe(6);
    });
  }
});
