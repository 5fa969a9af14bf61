// Nothing a joiner says, and nothing committed, can stop the cluster: the member validators on
// their own; a malformed joiner (bad hello, duplicate name, another member's keys, no pinned peer
// id) is refused before anything is proposed and the cluster keeps committing; a committed
// membership change with an invalid context (proposed straight into Raft) is a logged no-op on
// every node, not a crash.

import { afterEach, describe, expect, it } from 'vitest';
import { generateMinterKey } from '../../node/chain/index.js';
import { CHANNEL_CTL } from '../../node/control.js';
import { NodeError, NodeErrorCode } from '../../node/errors.js';
import { createLogger, silentLogger } from '../../node/log.js';
import {
  checkConfContext,
  confChangeFor,
  validateMember,
  validateMemberIn,
  type MemberInfo,
  type MembershipState,
} from '../../node/membership.js';
import { isIdentReply, isMemberAddress } from '../../node/peers.js';
import type { ConfChange } from '../../consensus/index.js';
import { TestCluster, testPeerId, waitFor, type HarnessNode } from '../node/harness.js';
import { guardFile } from './faults.js';

// The process guards count unhandled rejections and uncaught exceptions over this file: 0 at its end.
guardFile();

const key = (b: number): string => Buffer.alloc(32, b).toString('base64');

function valid(raftId = 4): MemberInfo {
  return {
    raftId,
    name: `joiner-${raftId}`,
    peerId: testPeerId(5, raftId),
    p2pAddrs: ['/ip4/10.0.0.4/tcp/30400'],
    rpcUrl: 'https://10.0.0.4:8545',
    tmUrl: 'http://127.0.0.1:9101',
    signingKey: key(raftId),
    enclaveKeys: [key(100 + raftId)],
  };
}

const STATE: MembershipState = { members: [valid(1), valid(2)], nextRaftId: 3, removed: [9] };

function refusal(fn: () => void): string {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(NodeError);
    expect((err as NodeError).code).toBe(NodeErrorCode.MembershipChangeInvalid);
    return (err as Error).message;
  }
  throw new Error('expected a refusal');
}

describe('validateMember', () => {
  it('accepts a complete description', () => {
    expect(() => validateMember(valid())).not.toThrow();
    expect(() => validateMemberIn(STATE, valid(3))).not.toThrow();
  });

  it.each<[string, Record<string, unknown>]>([
    ['a name with spaces', { name: 'a b' }],
    ['an empty name', { name: '' }],
    ['a name over 64 chars', { name: 'n'.repeat(65) }],
    ['a peer id that is not one', { peerId: 'peer-4' }],
    ['a multiaddr that is not one', { p2pAddrs: ['not/a/multiaddr'] }],
    ['a multiaddr ending in another peer id', { p2pAddrs: [`/ip4/1.2.3.4/tcp/1/p2p/${testPeerId(5, 99)}`] }],
    ['too many addresses', { p2pAddrs: Array.from({ length: 17 }, () => '/ip4/1.2.3.4/tcp/1') }],
    ['an ftp URL', { rpcUrl: 'ftp://h/x' }],
    ['a URL with credentials', { tmUrl: 'http://u:p@h/' }],
    ['not a URL', { rpcUrl: 'localhost' }],
    ['a 31-byte signing key', { signingKey: Buffer.alloc(31, 1).toString('base64') }],
    ['a 33-byte signing key', { signingKey: Buffer.alloc(33, 1).toString('base64') }],
    ['a non-canonical base64 key', { signingKey: key(4).replace(/=$/, '') }],
    ['a hex signing key', { signingKey: Buffer.alloc(32, 1).toString('hex') }],
    ['an enclave key of the wrong length', { enclaveKeys: [Buffer.alloc(16).toString('base64')] }],
    ['a repeated enclave key', { enclaveKeys: [key(7), key(7)] }],
    ['enclave keys that are not a list', { enclaveKeys: key(7) }],
    ['an unknown field', { extra: 1 }],
    ['raft id 0', { raftId: 0 }],
    ['a string raft id', { raftId: '4' }],
  ])('refuses %s', (_what, change) => {
    expect(refusal(() => validateMember({ ...valid(), ...change }))).toMatch(/member/);
  });

  it('refuses null, arrays and strings', () => {
    for (const v of [null, [], 'x', 4]) refusal(() => validateMember(v));
  });

  it.each<[string, Partial<MemberInfo>]>([
    ["an existing member's name", { name: 'joiner-1' }],
    ["an existing member's peer id", { peerId: testPeerId(5, 2) }],
    ["an existing member's signing key", { signingKey: key(1) }],
    ["one of an existing member's enclave keys", { enclaveKeys: [key(102)] }],
    ['a removed raft id', { raftId: 9 }],
    ['the raft id of a member with another description', { raftId: 1, name: 'someone-else' }],
  ])('refuses %s among the current members', (_what, change) => {
    refusal(() => validateMemberIn(STATE, { ...valid(3), ...change }));
  });
});

describe('checkConfContext', () => {
  const enc = (v: unknown): Uint8Array => new TextEncoder().encode(typeof v === 'string' ? v : JSON.stringify(v));

  it('accepts a valid add and the core leave-joint (empty) context', () => {
    const r = checkConfContext(STATE, enc({ op: 'add-peer', requestId: 'ab', raftId: 3, member: valid(3) }));
    expect(r.ok).toBe(true);
    expect(checkConfContext(STATE, new Uint8Array())).toEqual({ ok: true, ctx: undefined });
  });

  it.each<[string, Uint8Array, number | undefined]>([
    ['not JSON', enc('{'), undefined],
    ['not UTF-8', Uint8Array.from([0xff, 0xfe]), undefined],
    ['a list', enc([1]), undefined],
    ['an unknown op', enc({ op: 'steal', requestId: 'a', raftId: 3 }), 3],
    ['a raft id out of range', enc({ op: 'remove', requestId: 'a', raftId: 2 ** 40 }), undefined],
    ['a malformed member', enc({ op: 'add-peer', requestId: 'a', raftId: 3, member: { raftId: 3 } }), 3],
    ['a member under another id', enc({ op: 'add-peer', requestId: 'a', raftId: 3, member: valid(4) }), 3],
    ['a member on a remove', enc({ op: 'remove', requestId: 'a', raftId: 3, member: valid(3) }), 3],
    [
      'a duplicate name',
      enc({ op: 'add-peer', requestId: 'a', raftId: 3, member: { ...valid(3), name: 'joiner-2' } }),
      3,
    ],
    ['an unknown field', enc({ op: 'promote', requestId: 'a', raftId: 3, more: 1 }), 3],
  ])('refuses %s without throwing, with the spent raft id when usable', (_what, bytes, raftId) => {
    const r = checkConfContext(STATE, bytes);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.reason.length).toBeGreaterThan(0);
      expect(r.raftId).toBe(raftId);
    }
  });
});

describe('peer replies', () => {
  it('isIdentReply accepts the protocol and refuses the rest', () => {
    expect(isIdentReply({ raftId: 2, incarnation: 'abc' })).toBe(true);
    expect(isIdentReply({ raftId: 2, incarnation: 'abc', refused: 'why' })).toBe(true);
    for (const bad of [
      null,
      [],
      { raftId: -1, incarnation: '' },
      { raftId: 1 },
      { raftId: 1, incarnation: 'a', refused: 5 },
    ])
      expect(isIdentReply(bad)).toBe(false);
  });

  it('isMemberAddress accepts a member address and refuses the rest', () => {
    expect(isMemberAddress({ raftId: 3, peerId: testPeerId(5, 3), p2pAddrs: ['/ip4/1.2.3.4/tcp/1'] })).toBe(true);
    for (const bad of [
      null,
      { raftId: 3, peerId: 'x', p2pAddrs: [] },
      { raftId: 0, peerId: testPeerId(5, 3), p2pAddrs: [] },
      { raftId: 3, peerId: testPeerId(5, 3), p2pAddrs: ['nope'] },
      { raftId: 3, peerId: testPeerId(5, 3), p2pAddrs: 'x' },
      { raftId: 3, peerId: testPeerId(5, 3), p2pAddrs: [7] },
    ])
      expect(isMemberAddress(bad)).toBe(false);
  });
});

// ---------------------------------------------------------------- in-process cluster

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

async function keepsCommitting(c: TestCluster, tag: string): Promise<void> {
  const leader = await c.waitForLeader(c.nodes.slice(0, 3));
  const hash = await leader.node.sendTransaction({
    from: leader.account.address,
    ops: [{ type: 'put', key: tag, value: '1' }],
  });
  const bytes = Buffer.from(hash.slice(2), 'hex');
  await waitFor(
    async () => {
      for (const h of c.nodes.slice(0, 3)) if (!(await h.node.store.getReceipt(bytes))) return false;
      return true;
    },
    10_000,
    `${tag} committed on every node`,
  );
}

/** A "joiner" that answers `hello` with whatever the test wants (a real node answers its own description). */
async function fakeJoiner(
  c: TestCluster,
  i: number,
  hello: unknown,
): Promise<{ peerId: string; stop: () => Promise<void> }> {
  const peerId = testPeerId(7, i);
  const t = c.network.createTransport(peerId, { logger: silentLogger() });
  await t.start();
  t.setPeers(c.nodes.map((h) => ({ peerId: h.peerId, addrs: [`/memory/${h.name}`] })));
  t.onRequest(CHANNEL_CTL, async () => new TextEncoder().encode(JSON.stringify({ ok: hello })));
  return { peerId, stop: () => t.stop() };
}

function hello(c: TestCluster, i: number, change: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    name: `fake-${i}`,
    peerId: testPeerId(7, i),
    p2pAddrs: [`/memory/fake-${i}`],
    rpcUrl: `http://127.0.0.1:0/fake-${i}`,
    tmUrl: `http://127.0.0.1:0/fake-${i}/tm`,
    signingKey: Buffer.from(generateMinterKey().publicKeyRaw).toString('base64'),
    enclaveKeys: [],
    ...change,
  };
}

describe('a malformed joiner', () => {
  it('never becomes a member, and every node keeps committing', async () => {
    cluster = new TestCluster({ nodes: 3 });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const other = cluster.nodes.find((h) => h !== leader)!;
    const otherKey = Buffer.from(other.minterKey.publicKeyRaw).toString('base64');
    const cases: [string, (i: number) => unknown][] = [
      ['a hello that is not an object', () => 'hello'],
      ['a hello with a short signing key', (i) => hello(cluster!, i, { signingKey: 'AAAA' })],
      ['a hello with a bad URL', (i) => hello(cluster!, i, { rpcUrl: 'javascript:alert(1)' })],
      ['a hello missing its keys', (i) => ({ name: `fake-${i}` })],
      ["an existing member's name", (i) => hello(cluster!, i, { name: other.name })],
      ["an existing member's signing key", (i) => hello(cluster!, i, { signingKey: otherKey })],
    ];
    let i = 1;
    for (const [what, make] of cases) {
      const j = await fakeJoiner(cluster, i, make(i));
      const err = await leader.node.addPeer(`/memory/fake-${i}/p2p/${j.peerId}`).catch((e: unknown) => e);
      expect(err, what).toBeInstanceOf(NodeError);
      expect((err as NodeError).code, `${what}: ${(err as Error).message}`).toBe(NodeErrorCode.MembershipChangeInvalid);
      await j.stop();
      i++;
    }
    // The peer id must be pinned in the address the operator gives.
    const noPin = await leader.node.addPeer('/memory/fake-x').catch((e: unknown) => e);
    expect((noPin as NodeError).code).toBe(NodeErrorCode.MembershipChangeInvalid);
    for (const h of cluster.nodes)
      expect(h.node.membership.members.map((m) => m.name)).toEqual(['node-1', 'node-2', 'node-3']);
    await keepsCommitting(cluster, 'after-malformed-joiners');

    // The same path with a well-formed hello does add the member: the refusals above are the
    // validation, not a dialling problem. The member's peer id is the pinned one, whatever it says.
    const j = await fakeJoiner(cluster, 50, hello(cluster, 50, { peerId: testPeerId(7, 51) }));
    const id = await leader.node.addLearner(`/memory/fake-50/p2p/${j.peerId}`);
    await waitFor(
      () => cluster!.nodes.every((h) => h.node.membership.members.some((m) => m.raftId === id)),
      10_000,
      'added',
    );
    expect(leader.node.membership.members.find((m) => m.raftId === id)?.peerId).toBe(j.peerId);
    await keepsCommitting(cluster, 'after-good-joiner');
    await j.stop();
  });
});

describe('a committed invalid membership context', () => {
  it('is a no-op with a logged reason on every node, and the cluster keeps committing', async () => {
    const lines: string[] = [];
    cluster = new TestCluster({
      nodes: 3,
      logger: (name) =>
        createLogger({
          level: 'error',
          base: { nodeId: name },
          destination: { write: (l: string) => void lines.push(l) },
        }),
    });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const before = leader.node.membership.nextRaftId;
    const bad: MemberInfo = { ...(hello(cluster, 60) as unknown as MemberInfo), raftId: before, name: 'node-2' };
    const context = new TextEncoder().encode(
      JSON.stringify({ op: 'add-learner', requestId: 'x', raftId: before, member: bad }),
    );
    // Straight into Raft, past every check before proposal: what a buggy or lying leader could commit.
    type Inside = { parts: { raft: { proposeConfChange(cc: ConfChange): Promise<void> } } };
    const raft = (leader.node as unknown as Inside).parts.raft;
    await raft.proposeConfChange(confChangeFor('add-learner', before, context));
    await waitFor(
      () => cluster!.nodes.every((h) => h.node.membership.nextRaftId > before),
      10_000,
      'the change applied everywhere',
    );
    for (const h of cluster.nodes) {
      expect(h.node.membership.members).toHaveLength(3);
      expect(h.node.lifecycle).toBe(leader.node.lifecycle);
    }
    await keepsCommitting(cluster, 'after-invalid-context');
    // Each node logged why, with the reason (the name is node-2's).
    const ignored = lines
      .map((l) => JSON.parse(l) as Record<string, unknown>)
      .filter((l) => String(l.msg).startsWith('ignored a committed membership change'));
    expect(new Set(ignored.map((l) => l.nodeId))).toEqual(new Set(['node-1', 'node-2', 'node-3']));
    for (const l of ignored) expect(l.reason).toMatch(/name "node-2" is taken/);
    // A restart replays the committed change: still a no-op, the node comes back.
    const follower: HarnessNode = cluster.nodes.find((h) => h !== leader)!;
    await cluster.restart(follower);
    await keepsCommitting(cluster, 'after-restart');
    expect(follower.node.membership.members).toHaveLength(3);
  });
});
