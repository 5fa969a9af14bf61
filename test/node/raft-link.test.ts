// This node's Raft peer (node/raft-link.ts) on its own, built by parts.ts over in-memory edges:
// the core, the driver and the "raft" channel. One ManualClock drives Raft and the memory network
// alike, moved by the test: the runs are deterministic and nothing waits on real time. What it
// checks: a new genesis member stores the shared bootstrap snapshot and a lone
// one elects itself; a joiner does not bootstrap; role, leader and term follow each Ready; Raft
// messages leave encoded on the raft channel to the member's peer id; an undecodable message or
// one from a peer that has not identified itself is dropped; two members elect one leader.

import { Writable } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { MessageType, type LogIndex, type Message, type Term } from '../../consensus/index.js';
import { encodeBlock } from '../../node/chain/index.js';
import { ManualClock } from '../../node/clock.js';
import { createLogger } from '../../node/log.js';
import { buildParts, serveChannels, type NodeParts } from '../../node/parts.js';
import { decodeRaftMessage, encodeRaftMessage } from '../../node/raft/codec.js';
import { CHANNEL_RAFT, roleName } from '../../node/raft-link.js';
import { Role, type RaftId } from '../../consensus/index.js';
import type { MemoryTransport } from '../../p2p/memory-transport.js';
import { deterministicBlock, fixture } from '../chain/helpers.js';
import { fixtureMember, nodeIo, RecordingHost } from './node-io.js';
import { MemoryNetwork } from '../../p2p/memory-transport.js';
import { testPeerId } from './harness.js';

const TICK_MS = 10; // nodeIo's raft.tickMs

const cleanup: Array<() => Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanup.splice(0).reverse()) await c();
});

/** Lets due callbacks run: the driver's setImmediate on the ManualClock, then the promises it awaits. */
async function pump(clocks: readonly ManualClock[], deltaMs = 0, rounds = 3): Promise<void> {
  for (let i = 0; i < rounds; i++) {
    for (const c of clocks) c.advance(i === 0 ? deltaMs : 0);
    await new Promise((r) => setImmediate(r));
  }
}

/** Pumps until `done` holds (the condition, not a duration, ends it; the bound is a failure). */
async function pumpUntil(clocks: readonly ManualClock[], done: () => boolean, what: string): Promise<void> {
  for (let i = 0; i < 2_000 && !done(); i++) await pump(clocks, TICK_MS);
  if (!done()) throw new Error(`never: ${what}`);
}

function capturingLogger(lines: string[]) {
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      lines.push(chunk.toString());
      cb();
    },
  });
  return createLogger({ level: 'warn', destination });
}

/** Two started transports that admit each other, on a network driven by `clock`. */
async function pair(clock: ManualClock) {
  const network = new MemoryNetwork(clock);
  const a = network.createTransport(testPeerId(8, 1));
  const b = network.createTransport(testPeerId(8, 2));
  a.setPeers([{ peerId: b.localPeerId, addrs: ['/memory/b'] }]);
  b.setPeers([{ peerId: a.localPeerId, addrs: ['/memory/a'] }]);
  await settle(clock, Promise.all([a.start(), b.start()]));
  cleanup.push(() => settle(clock, Promise.all([a.stop(), b.stop()])));
  return { a, b };
}

/** Awaits `p` while moving `clock` (what it waits on may be a timer or a driver's batching point). */
async function settle(clock: ManualClock, p: Promise<unknown>): Promise<void> {
  let done = false;
  const waited = p.finally(() => (done = true));
  for (let i = 0; i < 1_000 && !done; i++) await pump([clock]);
  await waited;
}

/** Parts of member `self` of the fixture's genesis (one member per fixture minter). */
async function member(
  f: ReturnType<typeof fixture>,
  peerIds: readonly string[],
  self: number,
  transport: MemoryTransport,
  clock: ManualClock,
  logLines?: string[],
) {
  const members = peerIds.map((p, i) => fixtureMember(f, i + 1, p));
  const edges = { transport, clock, ...(logLines ? { logger: capturingLogger(logLines) } : {}) };
  const { io, options, storage } = nodeIo(f, members, self, edges);
  const host = new RecordingHost(self);
  const parts: NodeParts = buildParts(options, io, host);
  await parts.applier.load();
  cleanup.push(() => settle(clock, parts.raft.stop()));
  return { io, options, storage, host, parts, clock };
}

describe('RaftLink (raft-link.ts)', () => {
  it('a lone genesis member stores the bootstrap snapshot, elects itself and applies what it proposes', async () => {
    const f = fixture({ minters: 1 });
    const clock = new ManualClock();
    const { a } = await pair(clock);
    const m = await member(f, [a.localPeerId], 1, a, clock);
    await m.parts.raft.create(1);
    expect(m.storage.snapshot().metadata.index).toBeGreaterThan(0);
    expect(m.storage.snapshot().metadata.confState.voters).toEqual([1]);
    expect(m.parts.raft.running).toBe(true);
    m.parts.raft.start();
    await pumpUntil([m.clock], () => m.parts.raft.role === 'leader', 'leader');
    expect(m.host.changes.find((c) => c.role === 'leader')).toMatchObject({ prevRole: 'follower', leader: 1 });
    expect(m.parts.raft.leader).toBe(1);
    expect(m.parts.raft.term).toBeGreaterThan(0);
    expect(m.parts.raft.isLeaderNow()).toBe(true);
    expect(m.parts.raft.leaderNow()).toBe(1);
    expect(m.parts.raft.roleOfMember(1)).toBe('verifier');
    expect(m.parts.raft.status()).toMatchObject({ role: 'leader', leader: 1, voters: [1], learners: [], joint: false });
    const b1 = deterministicBlock(f, f.newChain(), 1, 2);
    const proposed = m.parts.raft.propose(encodeBlock(b1));
    await pumpUntil([m.clock], () => m.host.events.some((e) => e.startsWith('block 1@')), 'block 1 applied');
    await proposed;
    expect(m.parts.applier.chain.head.hashHex).toBe(b1.hashHex);
    expect(m.host.failures).toEqual([]);
  });

  it('a node that is not a genesis member (a joiner) does not bootstrap', async () => {
    const f = fixture({ minters: 2 });
    const clock = new ManualClock();
    const { a, b } = await pair(clock);
    const m = await member(f, [b.localPeerId, 'unused'], 3, a, clock);
    await m.parts.raft.create(3);
    expect(m.storage.snapshot().metadata.index).toBe(0);
    expect(m.storage.lastIndex()).toBe(0);
    expect(m.parts.raft.status()).toMatchObject({ role: 'follower', leader: null, voters: [] });
  });

  it('sends encoded on the raft channel to the member peer id; drops what it cannot admit', async () => {
    const f = fixture({ minters: 2 });
    const clock = new ManualClock();
    const { a, b } = await pair(clock);
    const lines: string[] = [];
    const m = await member(f, [a.localPeerId, b.localPeerId], 1, a, clock, lines);
    await m.parts.peers.start();
    serveChannels(m.options, m.io, m.parts);
    const got: Array<{ from: string; m: Message }> = [];
    b.onMessage(CHANNEL_RAFT, (from, data) => got.push({ from, m: decodeRaftMessage(data) }));
    await m.parts.raft.create(1);
    m.parts.raft.start();
    // Past an election timeout member 1 campaigns: its (pre-)vote request goes to member 2.
    await pumpUntil([m.clock], () => got.length > 0, 'a message to member 2');
    expect(got[0].from).toBe(a.localPeerId);
    expect(got[0].m).toMatchObject({ from: 1, to: 2 });
    expect([MessageType.PreVote, MessageType.Vote]).toContain(got[0].m.type);
    // From b, which never answered an ident: neither garbage nor a well-formed message is stepped.
    const term = m.parts.raft.status()!.term;
    m.parts.raft.receive(b.localPeerId, new Uint8Array([0xff, 0x00, 0x13]));
    expect(lines.join('')).toContain('undecodable raft message dropped');
    const heartbeat: Message = {
      type: MessageType.Heartbeat,
      from: 2 as RaftId,
      to: 1 as RaftId,
      term: (term + 5) as Term,
      logTerm: 0 as Term,
      index: 0 as LogIndex,
      entries: [],
      commit: 0 as LogIndex,
      reject: false,
      rejectHint: 0 as LogIndex,
    };
    m.parts.raft.receive(b.localPeerId, encodeRaftMessage(heartbeat));
    await pump([m.clock]);
    expect(m.parts.raft.status()!.term).toBe(term);
    expect(m.parts.raft.leader).toBe(0);
  });

  it('two genesis members over the raft channel elect one leader that both know', async () => {
    const f = fixture({ minters: 2 });
    const clock = new ManualClock();
    const { a, b } = await pair(clock);
    const peerIds = [a.localPeerId, b.localPeerId];
    const ms = [await member(f, peerIds, 1, a, clock), await member(f, peerIds, 2, b, clock)];
    for (const m of ms) {
      await m.parts.peers.start();
      serveChannels(m.options, m.io, m.parts);
    }
    for (const [i, m] of ms.entries()) await m.parts.raft.create(i + 1);
    for (const m of ms) m.parts.raft.start();
    await pumpUntil(
      [clock],
      () => ms.some((m) => m.parts.raft.role === 'leader') && ms.every((m) => m.parts.raft.leader !== 0),
      'a leader known to both',
    );
    const leaders = ms.filter((m) => m.parts.raft.role === 'leader');
    expect(leaders).toHaveLength(1);
    const leaderId = leaders[0].host.raftId();
    expect(ms.map((m) => m.parts.raft.leader)).toEqual([leaderId, leaderId]);
    expect(ms.map((m) => m.parts.peers.verifiedPeers().length)).toEqual([1, 1]);
  });

  it('names a follower that is a learner in the configuration "learner"', () => {
    const cs = { voters: [1], learners: [2], votersOutgoing: [], learnersNext: [] } as never;
    expect(roleName(Role.Follower, 2, () => cs)).toBe('learner');
    expect(roleName(Role.Follower, 1 as RaftId, () => cs)).toBe('follower');
    expect(roleName(Role.PreCandidate, 1, () => cs)).toBe('candidate');
    expect(roleName(Role.Leader, 1, () => cs)).toBe('leader');
  });
});
