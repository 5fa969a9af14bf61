// Peer admission and identity (node/peers.ts): the (raft id, incarnation) claims a node accepts,
// the incarnations it remembers in its store (across a restart), the allowlist it hands the
// transport, and the p2p address helpers.

import { describe, expect, it } from 'vitest';
import { MessageType, type Message, type RaftId } from '../../consensus/index.js';
import { createMemoryChainStore, MemoryKv } from '../../node/chain/index.js';
import { ManualClock } from '../../node/clock.js';
import { ControlChannel } from '../../node/control.js';
import { NodeError } from '../../node/errors.js';
import { silentLogger } from '../../node/log.js';
import type { MemberInfo, MembershipState } from '../../node/membership.js';
import { PeerAdmission, dialablePart, splitPeerAddress } from '../../node/peers.js';
import { MemoryNetwork } from '../../p2p/memory-transport.js';
import { testPeerId } from './harness.js';

const P1 = testPeerId(8, 1);
const P2 = testPeerId(8, 2);
const P3 = testPeerId(8, 3);

function memberInfo(raftId: number, peerId: string): MemberInfo {
  return {
    raftId,
    name: `n${raftId}`,
    peerId,
    p2pAddrs: [`/memory/n${raftId}`],
    rpcUrl: 'http://r',
    tmUrl: 'http://t',
    signingKey: '',
    enclaveKeys: [],
  };
}

async function admission(kv = new MemoryKv()) {
  const transport = new MemoryNetwork(new ManualClock()).createTransport(P1);
  const membership: MembershipState = { members: [memberInfo(1, P1), memberInfo(2, P2)], nextRaftId: 3, removed: [] };
  const refused: NodeError[] = [];
  const a = new PeerAdmission({
    transport,
    control: new ControlChannel(transport),
    store: createMemoryChainStore(kv),
    clock: new ManualClock(),
    logger: silentLogger(),
    incarnation: 'inc-1',
    addressOverrides: new Map([[P2, ['/memory/proxy-for-2']]]),
    self: () => 1,
    membership: () => membership,
    leader: () => 0,
    onRefused: (e) => refused.push(e),
  });
  await a.start();
  return { a, transport, refused, kv };
}

const raftMsg = (from: number, to: number): Message =>
  ({ type: MessageType.Heartbeat, from: from as RaftId, to: to as RaftId, term: 1 }) as unknown as Message;

describe('peer admission', () => {
  it("identifies a member by the raft id the membership gives its peer id, and refuses another id's claim", async () => {
    const { a } = await admission();
    expect(a.admitsRaftMessage(P2, raftMsg(2, 1))).toBe(false); // not identified yet
    expect((await a.answerIdent(P2, 3, 'inc-2')).refused).toMatch(/holds raft id 2, not 3/);
    expect((await a.answerIdent(P2, 2, 'inc-2')).refused).toBeUndefined();
    expect(a.isVerified(P2)).toBe(true);
    expect(a.admitsRaftMessage(P2, raftMsg(2, 1))).toBe(true);
    expect(a.admitsRaftMessage(P2, raftMsg(2, 5))).toBe(false); // not addressed to us
    expect((await a.answerIdent(P3, 2, '')).refused).toBe('malformed identity');
  });

  it('refuses a member that comes back with another incarnation, also after this node restarts', async () => {
    const first = await admission();
    expect((await first.a.answerIdent(P2, 2, 'inc-2')).refused).toBeUndefined();
    expect((await first.a.answerIdent(P2, 2, 'inc-2-wiped')).refused).toMatch(
      /incarnation inc-2, and now sees inc-2-wiped/,
    );
    const restarted = await admission(first.kv);
    expect((await restarted.a.answerIdent(P2, 2, 'inc-2-wiped')).refused).toMatch(/knew raft id 2/);
    expect((await restarted.a.answerIdent(P2, 2, 'inc-2')).refused).toBeUndefined();
  });

  it('answers `members` only to an identified peer', async () => {
    const { a } = await admission();
    expect(() => a.answerMembers(P2)).toThrow(/identify first/);
    await a.answerIdent(P2, 2, 'inc-2');
    expect(a.answerMembers(P2).map((m) => m.raftId)).toEqual([1, 2]);
  });

  it('hands the transport the members (not itself), with address overrides, plus a joiner while it is added', async () => {
    const { a, transport } = await admission();
    const calls: unknown[] = [];
    transport.setPeers = (peers) => void calls.push(peers);
    a.updatePeers();
    a.updatePeers([{ peerId: P3, addrs: ['/memory/n3'] }]);
    expect(calls).toEqual([
      [{ peerId: P2, addrs: ['/memory/proxy-for-2'] }],
      [
        { peerId: P2, addrs: ['/memory/proxy-for-2'] },
        { peerId: P3, addrs: ['/memory/n3'] },
      ],
    ]);
  });
});

describe('p2p addresses', () => {
  it('splits a validated /…/p2p/<id> address and refuses others as MembershipChangeInvalid', () => {
    expect(splitPeerAddress(`/ip4/10.0.0.2/tcp/30400/p2p/${P2}`)).toEqual({
      peerId: P2,
      addr: '/ip4/10.0.0.2/tcp/30400',
    });
    expect(() => splitPeerAddress('/ip4/10.0.0.2/tcp/30400')).toThrow(NodeError);
    expect(() => splitPeerAddress(`/p2p/${P2}`)).toThrow(/dialable part/);
    expect(dialablePart(`/ip4/1.2.3.4/tcp/1/p2p/${P2}`)).toBe('/ip4/1.2.3.4/tcp/1');
    expect(dialablePart('/ip4/1.2.3.4/tcp/1')).toBe('/ip4/1.2.3.4/tcp/1');
  });
});
