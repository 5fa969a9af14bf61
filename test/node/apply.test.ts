// The replicated state machine (node/apply.ts) on a real in-memory chain store: blocks, the
// leader's no-ops, undecodable entries and membership changes applied in log order, each moving
// the applied index in the store; a snapshot taken on one node installs on another; the snapshot
// framing is the documented one (u32 little-endian membership length first).

import { describe, expect, it } from 'vitest';
import {
  EntryType,
  encodeConfChange,
  type Entry,
  type LogIndex,
  type Snapshot,
  type Term,
} from '../../consensus/index.js';
import { ChainApplier, decodeSnapshotData, encodeSnapshotData } from '../../node/apply.js';
import { LedgerApp, VerifiedTxCache, createMemoryChainStore, encodeBlock, type Block } from '../../node/chain/index.js';
import { SystemClock } from '../../node/clock.js';
import { silentLogger } from '../../node/log.js';
import {
  confChangeFor,
  encodeConfContext,
  type ConfChangeContext,
  type MemberInfo,
  type MembershipState,
} from '../../node/membership.js';
import { PayloadFetcher } from '../../node/private-payloads.js';
import { deterministicBlock, fixture } from '../chain/helpers.js';
import { testPeerId } from './harness.js';

const f = fixture();

function member(raftId: number): MemberInfo {
  return {
    raftId,
    name: `node-${raftId}`,
    peerId: testPeerId(9, raftId),
    p2pAddrs: [],
    rpcUrl: 'http://r',
    tmUrl: 'http://t',
    signingKey: Buffer.from(f.minters[(raftId - 1) % f.minters.length].publicKeyRaw).toString('base64'),
    enclaveKeys: [],
  };
}
const GENESIS_MEMBERSHIP: MembershipState = { members: [member(1), member(2)], nextRaftId: 3, removed: [] };

function applier() {
  const store = createMemoryChainStore();
  const events: string[] = [];
  const a = new ChainApplier({
    store,
    genesis: f.genesis,
    genesisMembership: GENESIS_MEMBERSHIP,
    app: new LedgerApp(),
    verifiedTxs: new VerifiedTxCache(),
    payloads: new PayloadFetcher({ clock: new SystemClock(), logger: silentLogger(), stopped: () => false }),
    logger: silentLogger(),
    stopped: () => false,
    hooks: {
      ownBlock: () => undefined,
      blockApplied: (b, i) => events.push(`block ${b.header.number}@${i}`),
      blockNoop: () => events.push('noop'),
      membershipChanged: (ctx: ConfChangeContext | undefined, i) => events.push(`conf ${ctx?.op} ${ctx?.raftId}@${i}`),
      snapshotInstalled: () => events.push('snapshot'),
    },
  });
  return { a, store, events };
}

const entry = (index: number, type: EntryType, data: Uint8Array): Entry => ({
  term: 1 as Term,
  index: index as LogIndex,
  type,
  data,
});

describe('the replicated state machine', () => {
  it('applies blocks, no-ops, an undecodable entry and a membership change in order, recording each index', async () => {
    const { a, store, events } = applier();
    await a.load();
    expect(a.chain.head.header.number).toBe(0);
    const chain = f.newChain();
    const b1: Block = deterministicBlock(f, chain, 1, 4);
    const add3 = confChangeFor(
      'add-peer',
      3,
      encodeConfContext({ op: 'add-peer', requestId: 'r1', raftId: 3, member: member(3) }),
    );
    await a.apply([
      entry(1, EntryType.Normal, new Uint8Array(0)),
      entry(2, EntryType.Normal, encodeBlock(b1)),
      entry(3, EntryType.Normal, new Uint8Array([1, 2, 3])),
      entry(4, EntryType.ConfChange, encodeConfChange(add3)),
      entry(5, EntryType.Normal, new Uint8Array(0)),
    ]);
    expect(events).toEqual(['block 1@2', 'conf add-peer 3@4']);
    expect(a.chain.head.header.number).toBe(1);
    expect(a.appliedIndex()).toBe(5);
    expect(await store.appliedIndex()).toBe(5);
    expect(a.membership.members.map((m) => m.raftId)).toEqual([1, 2, 3]);
    // A replay after a restart skips what is applied already.
    await a.apply([entry(2, EntryType.Normal, encodeBlock(b1))]);
    expect(events).toHaveLength(2);
    // The same block again at a new index is a no-op (its parent is no longer the head), on every node alike.
    await a.apply([entry(6, EntryType.Normal, encodeBlock(b1))]);
    expect(events[2]).toBe('noop');
    expect(await store.appliedIndex()).toBe(6);
  });

  it('a snapshot of one node installs on another: head, membership and applied index', async () => {
    const source = applier();
    await source.a.load();
    const chain = f.newChain();
    const b1 = deterministicBlock(f, chain, 1, 4);
    await source.a.apply([entry(7, EntryType.Normal, encodeBlock(b1))]);
    const data = await source.a.snapshotData();
    const target = applier();
    await target.a.load();
    const snapshot = { data, metadata: { index: 7, term: 1, confState: {} } } as unknown as Snapshot;
    await target.a.restore(snapshot);
    expect(target.events).toEqual(['snapshot']);
    expect(target.a.chain.head.hashHex).toBe(b1.hashHex);
    expect(target.a.appliedIndex()).toBe(7);
    expect(target.a.membership).toEqual(source.a.membership);
    // The snapshot skipped block 1 here: a catch-up is due (private state lags).
    expect(target.a.privateCatchUp()).toMatchObject({ privateThrough: 0, blocksLeft: 1 });
  });

  it('frames snapshot data as u32 little-endian membership length, membership, chain', () => {
    const framed = encodeSnapshotData(new Uint8Array([9, 9, 9]), new Uint8Array([7]));
    expect([...framed]).toEqual([3, 0, 0, 0, 9, 9, 9, 7]);
    const parts = decodeSnapshotData(framed);
    expect([...parts.membership]).toEqual([9, 9, 9]);
    expect([...parts.chain]).toEqual([7]);
    expect(() => decodeSnapshotData(new Uint8Array([200, 0, 0, 0, 1]))).toThrow(/out of range/);
  });
});
