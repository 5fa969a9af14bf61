// Transaction forwarding (node/forward.ts) between two in-memory transports: a follower's
// transactions reach the leader's `accept` in batches, each answered on its own; refusals come
// back typed; the batch codec refuses what it must.

import { afterEach, describe, expect, it } from 'vitest';
import { ChainError, ChainErrorCode, type Transaction } from '../../node/chain/index.js';
import { SystemClock } from '../../node/clock.js';
import { NodeError, NodeErrorCode } from '../../node/errors.js';
import {
  DEFAULT_FORWARD_OPTIONS,
  MAX_FORWARD_BATCH_TXS,
  TxForwarder,
  decodeTxBatch,
  encodeTxBatch,
} from '../../node/forward.js';
import type { MemberInfo } from '../../node/membership.js';
import type { MemoryTransport } from '../../p2p/memory-transport.js';
import { fixture, put, tx } from '../chain/helpers.js';
import { linkedPair } from './parts.js';

const f = fixture();
let cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup) await c();
  cleanup = [];
});

function member(raftId: number, t: MemoryTransport): MemberInfo {
  return {
    raftId,
    name: `n${raftId}`,
    peerId: t.localPeerId,
    p2pAddrs: [],
    rpcUrl: `http://leader/${raftId}`,
    tmUrl: 'http://tm',
    signingKey: '',
    enclaveKeys: [],
  };
}

async function pair(opts: { leading?: () => boolean; accept?: (tx: Transaction) => void; memberOk?: boolean } = {}) {
  const { a, b } = await linkedPair();
  cleanup.push(
    () => a.stop(),
    () => b.stop(),
  );
  const accepted: Transaction[] = [];
  const requests: number[] = [];
  const leaderSide = new TxForwarder(DEFAULT_FORWARD_OPTIONS, {
    transport: b,
    clock: new SystemClock(),
    self: () => 1,
    leader: () => member(1, b),
    isMember: () => opts.memberOk ?? true,
    assertLeader: () => {
      if (opts.leading && !opts.leading())
        throw new NodeError(NodeErrorCode.NotLeader, 'no longer the leader', { leader: 3 });
    },
    accept: (t) => {
      opts.accept?.(t);
      accepted.push(t);
    },
  });
  leaderSide.serve();
  const follower = new TxForwarder(DEFAULT_FORWARD_OPTIONS, {
    transport: a,
    clock: new SystemClock(),
    self: () => 2,
    leader: () => member(1, b),
    isMember: () => true,
    assertLeader: () => undefined,
    accept: () => undefined,
  });
  const request = a.request.bind(a);
  a.request = (peer, channel, data, o) => {
    requests.push(decodeTxBatch(data).length);
    return request(peer, channel, data, o);
  };
  for (let i = 0; i < 100 && a.connectedPeers().length === 0; i++) await new Promise((r) => setTimeout(r, 1));
  return { follower, accepted, requests };
}

describe('forwarding transactions to the leader', () => {
  it('transactions submitted together travel in few batches, and each one is answered with its hash', async () => {
    const { follower, accepted, requests } = await pair();
    const txs = Array.from({ length: 50 }, (_, i) => tx(f.accounts[0], i, [put(`k${i}`, 'v')]));
    const hashes = await Promise.all(txs.map((t) => follower.forward(t)));
    expect(hashes).toEqual(txs.map((t) => t.hashHex));
    expect(accepted.map((t) => t.hashHex)).toEqual(txs.map((t) => t.hashHex));
    // At most MAX_FORWARDS_IN_FLIGHT (2) go out before the rest queue up behind them.
    expect(requests.length).toBeLessThanOrEqual(3);
    expect(requests.reduce((n, x) => n + x, 0)).toBe(50);
  });

  it("one refused transaction fails alone, with the leader's code", async () => {
    const bad = tx(f.accounts[1], 0, [put('x', 'y')]);
    const { follower } = await pair({
      accept: (t) => {
        if (t.hashHex === bad.hashHex) throw new ChainError(ChainErrorCode.NonceTooLow, 'nonce too low');
      },
    });
    const good = tx(f.accounts[0], 0, [put('a', 'b')]);
    const [r1, r2] = await Promise.allSettled([follower.forward(good), follower.forward(bad)]);
    expect(r1).toEqual({ status: 'fulfilled', value: good.hashHex });
    expect(r2.status).toBe('rejected');
    expect(((r2 as PromiseRejectedResult).reason as NodeError).code).toBe(NodeErrorCode.TxNonceTooLow);
  });

  it("forwardAll (a lost leadership's pool) counts what the leader took and what it refused, by code", async () => {
    const full = new Set<string>();
    const { follower } = await pair({
      accept: (t) => {
        if (full.has(t.hashHex)) throw new ChainError(ChainErrorCode.PoolFull, 'the transaction pool is full');
        if (t.nonce === 0 && t.from === f.accounts[1].address)
          throw new ChainError(ChainErrorCode.NonceTooLow, 'nonce too low');
      },
    });
    const taken = Array.from({ length: 5 }, (_, i) => tx(f.accounts[0], i, [put(`t${i}`, 'v')]));
    const refusedFull = Array.from({ length: 3 }, (_, i) => tx(f.accounts[2], i, [put(`f${i}`, 'v')]));
    for (const t of refusedFull) full.add(t.hashHex);
    const low = tx(f.accounts[1], 0, [put('low', 'v')]);
    const r = await follower.forwardAll([...taken, ...refusedFull, low]);
    expect(r.forwarded).toBe(5);
    expect(Object.fromEntries(r.refused)).toEqual({
      [NodeErrorCode.TxPoolFull]: 3,
      [NodeErrorCode.TxNonceTooLow]: 1,
    });
    expect((await follower.forwardAll([])).refused.size).toBe(0);
  });

  it('a leader that lost its leadership, or a sender that is not a member, refuses the whole batch', async () => {
    const deposed = await pair({ leading: () => false });
    const err = await deposed.follower.forward(tx(f.accounts[0], 0, [put('a', 'b')])).catch((e: unknown) => e);
    expect((err as NodeError).code).toBe(NodeErrorCode.NotLeader);
    expect((err as NodeError).meta.leader).toBe(3);
    const stranger = await pair({ memberOk: false });
    const err2 = await stranger.follower.forward(tx(f.accounts[0], 0, [put('a', 'b')])).catch((e: unknown) => e);
    expect((err2 as NodeError).code).toBe(NodeErrorCode.Unavailable);
    expect(stranger.accepted).toHaveLength(0);
  });

  it('the batch codec round-trips and refuses trailing bytes and an oversized count', () => {
    const txs = [tx(f.accounts[0], 0, [put('a', 'b')]), tx(f.accounts[0], 1, [put('c', 'd')])];
    const bytes = encodeTxBatch(txs);
    expect(decodeTxBatch(bytes).map((b) => Buffer.from(b).toString('hex'))).toEqual(
      txs.map((t) => Buffer.from(t.encoded).toString('hex')),
    );
    const trailing = new Uint8Array([...bytes, 0]);
    expect(() => decodeTxBatch(trailing)).toThrow(ChainError);
    const tooMany = new Uint8Array(4);
    new DataView(tooMany.buffer).setUint32(0, MAX_FORWARD_BATCH_TXS + 1);
    expect(() => decodeTxBatch(tooMany)).toThrow(/MAX_FORWARD_BATCH_TXS/);
  });
});
