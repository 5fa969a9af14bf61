// The node's wiring (node/parts.ts) on its own: parts built from options + a NodeIo on in-memory
// edges and a recording NodeHost, without a QuorateNode around them. What it checks: the applier's
// hooks reach the host (blocks, membership changes, this node's removal) and the minter; the
// admin refuses through the host's lifecycle; the pool takes the `pool` options; the channels
// registered by serveChannels answer another member (control "hello" is describeSelf); the
// forwarder refuses with NotLeader and the leader's RPC URL while Raft does not run here.

import { afterEach, describe, expect, it } from 'vitest';
import { EntryType, encodeConfChange, type Entry, type LogIndex, type Term } from '../../consensus/index.js';
import { encodeBlock } from '../../node/chain/index.js';
import { ManualClock } from '../../node/clock.js';
import { ControlChannel } from '../../node/control.js';
import { NodeError, NodeErrorCode } from '../../node/errors.js';
import { confChangeFor, encodeConfContext } from '../../node/membership.js';
import { buildParts, buildPool, describeSelf, serveChannels } from '../../node/parts.js';
import type { MemoryTransport } from '../../p2p/memory-transport.js';
import { deterministicBlock, fixture } from '../chain/helpers.js';
import { fixtureMember, nodeIo, RecordingHost } from './node-io.js';
import { linkedPair } from './parts.js';

const f = fixture({ minters: 2 });

const entry = (index: number, type: EntryType, data: Uint8Array): Entry => ({
  term: 1 as Term,
  index: index as LogIndex,
  type,
  data,
});

let transports: MemoryTransport[] = [];
afterEach(async () => {
  await Promise.all(transports.map((t) => t.stop()));
  transports = [];
});

/** Node 1 of a two-member genesis, on transport `a` of a linked pair (b is member 2's). */
async function member1() {
  const { a, b } = await linkedPair();
  transports = [a, b];
  const members = [fixtureMember(f, 1, a.localPeerId), fixtureMember(f, 2, b.localPeerId)];
  const { io, options } = nodeIo(f, members, 1, { transport: a, clock: new ManualClock() });
  const host = new RecordingHost(1);
  const parts = buildParts(options, io, host);
  await parts.applier.load();
  return { a, b, io, options, host, parts };
}

describe('the node parts (parts.ts)', () => {
  it('applied blocks and membership changes reach the host; removing this node says so once', async () => {
    const { host, parts } = await member1();
    const b1 = deterministicBlock(f, f.newChain(), 1, 4);
    const remove1 = confChangeFor('remove', 1, encodeConfContext({ op: 'remove', requestId: 'r1', raftId: 1 }));
    const remove2 = confChangeFor('remove', 2, encodeConfContext({ op: 'remove', requestId: 'r2', raftId: 2 }));
    await parts.applier.apply([
      entry(1, EntryType.Normal, new Uint8Array(0)),
      entry(2, EntryType.Normal, encodeBlock(b1)),
      entry(3, EntryType.ConfChange, encodeConfChange(remove2)),
      entry(4, EntryType.ConfChange, encodeConfChange(remove1)),
    ]);
    expect(host.events).toEqual(['block 1@2', 'membership', 'membership', 'removed']);
    expect(parts.applier.membership.removed).toEqual([2, 1]);
    expect(parts.applier.chain.head.header.number).toBe(1);
    expect(host.failures).toEqual([]);
  });

  it('the admin refuses through the host lifecycle before anything else', async () => {
    const { host, parts } = await member1();
    host.refusal = new NodeError(NodeErrorCode.Unavailable, 'this node has not joined the cluster yet');
    await expect(parts.admin.remove(2)).rejects.toBe(host.refusal);
  });

  it('the pool takes the pool options and the loaded chain nonces', async () => {
    const { io, options, parts } = await member1();
    const pool = buildPool(options, io, parts);
    expect(pool.maxTxs).toBe(options.pool.txPoolMaxTransactions);
    expect(pool.maxNonceGap).toBe(options.pool.txPoolMaxPerSender);
    expect(pool.queuedLifetimeMs).toBe(options.pool.txPoolQueuedLifetimeMs);
    expect(pool.size).toBe(0);
  });

  it('serveChannels answers another member: control hello is describeSelf', async () => {
    const { a, b, io, options, parts } = await member1();
    serveChannels(options, io, parts);
    const self = describeSelf(options, io);
    expect(self).toMatchObject({
      name: 'node-1',
      peerId: a.localPeerId,
      rpcUrl: options.rpcUrl,
      tmUrl: options.tmUrl,
      signingKey: Buffer.from(f.minters[0].publicKeyRaw).toString('base64'),
      enclaveKeys: ['enclave-key-1'],
    });
    const asker = new ControlChannel(b);
    expect(await asker.request(a.localPeerId, { type: 'hello' }, 5_000)).toEqual(self);
    expect(await asker.request(a.localPeerId, { type: 'whoami' }, 5_000)).toEqual({ raftId: 2 });
  });

  it('while Raft does not run here, a forwarded batch is refused with NotLeader', async () => {
    const { parts, host } = await member1();
    expect(parts.raft.running).toBe(false);
    expect(parts.raft.isLeaderNow()).toBe(false);
    expect(parts.raft.status()).toBeUndefined();
    const deps = (parts.forwarder as unknown as { deps: { assertLeader(): void } }).deps;
    expect(() => deps.assertLeader()).toThrow(
      expect.objectContaining({ code: NodeErrorCode.NotLeader, meta: { leader: null, leaderRpcUrl: null } }),
    );
    expect(host.changes).toEqual([]);
  });
});
