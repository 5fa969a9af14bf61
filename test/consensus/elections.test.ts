// Consensus scenarios 1, 2, 6, 7, 9 (docs/correctness.md): elections, votes, PreVote, CheckQuorum.

import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../consensus/memory-storage.js';
import {
  bootstrapConfState,
  EntryType,
  MessageType,
  RaftError,
  RaftNode,
  Role,
  SeededRng,
  type Entry,
  type LogIndex,
  type Message,
  type RaftId,
  type Term,
} from '../../consensus/index.js';
import { assertAppliedPrefixes, bytes, id, Network } from './network.js';

function entry(index: number, term: number, data = ''): Entry {
  return { index: index as LogIndex, term: term as Term, type: EntryType.Normal, data: bytes(data) };
}

function msg(fields: Partial<Message> & Pick<Message, 'type' | 'from' | 'to' | 'term'>): Message {
  return {
    logTerm: 0 as Term,
    index: 0 as LogIndex,
    entries: [],
    commit: 0 as LogIndex,
    reject: false,
    rejectHint: 0 as LogIndex,
    ...fields,
  };
}

describe('consensus scenarios: elections', () => {
  for (const size of [3, 5]) {
    it(`scenario 1: one leader per term under random loss and duplicate delivery (${size} nodes); votes are durable per term`, () => {
      for (let seed = 1; seed <= 4; seed++) {
        const voters = Array.from({ length: size }, (_, i) => i + 1);
        const net = new Network({ voters, seed });
        net.drop(0.15);
        net.duplicate(0.15);
        net.reorder = true;
        const leaderOfTerm = new Map<number, RaftId>();
        const voteOf = new Map<string, RaftId>();
        let elections = 0;
        net.onPersist = (n) => {
          const st = net.nodes.get(n)!.status();
          if (st.softState.role === Role.Leader) {
            const prev = leaderOfTerm.get(st.hardState.term);
            if (prev === undefined) elections++;
            expect(prev === undefined || prev === n, `two leaders in term ${st.hardState.term}: ${prev} and ${n}`).toBe(
              true,
            );
            leaderOfTerm.set(st.hardState.term, n);
          }
          // What is on "disk" is what a restarted node will believe: one vote per term, never changed.
          const hs = net.storages.get(n)!.hardState();
          if (hs.vote !== 0) {
            const key = `${n}@${hs.term}`;
            const prev = voteOf.get(key);
            expect(prev === undefined || prev === hs.vote, `node ${n} changed its vote in term ${hs.term}`).toBe(true);
            voteOf.set(key, hs.vote);
          }
        };
        const rng = new SeededRng(seed * 31);
        let proposals = 0;
        for (let step = 0; step < 400; step++) {
          net.tickAll(1);
          const r = rng.nextInt(20);
          if (r === 0) {
            // Crash and restart a random node: votes must survive (the restarted node re-reads them).
            const victim = voters[rng.nextInt(size)];
            if (net.nodes.has(id(victim))) {
              net.crash(victim);
              net.restart(victim);
              const st = net.node(victim).status().hardState;
              const disk = net.storages.get(id(victim))!.hardState();
              // (A never-persisted node derives term 1 from the bootstrap snapshot.)
              if (disk.term > 0) expect({ term: st.term, vote: st.vote }).toEqual({ term: disk.term, vote: disk.vote });
            }
          } else if (r < 5 && net.leaders().length > 0) {
            try {
              net.node(net.leader()).propose(bytes(`p${proposals++}`));
            } catch (e) {
              expect(e).toBeInstanceOf(RaftError);
            }
          }
        }
        net.recover();
        net.reorder = false;
        net.tickAll(60);
        expect(net.leaders().length).toBe(1);
        expect(elections).toBeGreaterThan(0);
        assertAppliedPrefixes(net);
      }
    });
  }

  it('scenario 2: a voter refuses a candidate (and a pre-candidate) whose last (term, index) is behind its own', () => {
    // The voter's log: [1@1, 2@2, 3@2] at term 2.
    const mk = (): RaftNode => {
      const storage = new MemoryStorage({
        confState: bootstrapConfState([id(1), id(2), id(3)]),
        entries: [entry(1, 1), entry(2, 2), entry(3, 2)],
        hardState: { term: 2 as Term, vote: 0 as RaftId, commit: 1 as LogIndex },
      });
      return new RaftNode({ id: id(1), storage, rng: new SeededRng(1), electionTicks: 10, heartbeatTicks: 1 });
    };
    const cases: { logTerm: number; index: number; grant: boolean }[] = [
      { logTerm: 1, index: 9, grant: false }, // older last term, however long
      { logTerm: 2, index: 2, grant: false }, // same last term, shorter
      { logTerm: 2, index: 3, grant: true }, // same last term, same length
      { logTerm: 2, index: 4, grant: true }, // same last term, longer
      { logTerm: 3, index: 1, grant: true }, // newer last term, however short
    ];
    for (const type of [MessageType.Vote, MessageType.PreVote]) {
      for (const c of cases) {
        const node = mk();
        node.step(
          msg({
            type,
            from: id(2),
            to: id(1),
            term: 3 as Term,
            logTerm: c.logTerm as Term,
            index: c.index as LogIndex,
          }),
        );
        const rd = node.ready();
        const resp = rd.messages.filter((m) => m.to === 2);
        expect(resp.length).toBe(1);
        expect(resp[0].type).toBe(type === MessageType.Vote ? MessageType.VoteResp : MessageType.PreVoteResp);
        expect(resp[0].reject, `${type} ${JSON.stringify(c)}`).toBe(!c.grant);
        const hs = node.status().hardState;
        if (type === MessageType.Vote) {
          // A real vote moves the term; the vote is recorded only when granted.
          expect(hs.term).toBe(3);
          expect(hs.vote).toBe(c.grant ? 2 : 0);
          expect(rd.mustSync).toBe(true);
        } else {
          // PreVote changes nothing durable.
          expect(hs.term).toBe(2);
          expect(hs.vote).toBe(0);
        }
      }
    }
    // Also through the network: a node with a stale log never wins while the others are up to date.
    const net = new Network({ voters: [1, 2, 3], seed: 5 });
    net.campaign(1);
    net.isolate(3);
    for (let i = 0; i < 5; i++) net.propose(1, `x${i}`);
    net.recover();
    net.cut(1, 2);
    net.cut(1, 3);
    net.crash(1);
    const termBefore = net.term(2);
    net.campaign(3); // 3's log lacks x0..x4: 2 refuses it
    expect(net.role(3)).not.toBe(Role.Leader);
    net.tickAll(40);
    expect(net.leader()).toBe(2);
    expect(net.term(2)).toBeGreaterThan(termBefore);
  });

  it('scenario 6: with PreVote, an isolated follower that timed out many times rejoins without deposing a healthy leader', () => {
    const net = new Network({ voters: [1, 2, 3], seed: 6 });
    net.campaign(1);
    net.propose(1, 'a');
    const term = net.term(1);
    net.isolate(3);
    net.tickAll(200); // 3 times out ~10-20 times
    expect(net.term(3)).toBe(term); // pre-votes never raise the term
    expect(net.sentOf(MessageType.PreVote).filter((m) => m.from === 3).length).toBeGreaterThan(5);
    net.recover();
    net.tickAll(30);
    expect(net.leader()).toBe(1);
    expect(net.term(1)).toBe(term);
    net.propose(1, 'b');
    expect(net.appliedData(3)).toEqual(['a', 'b']);

    // Control: without PreVote and CheckQuorum the same rejoin does disrupt the cluster.
    const bad = new Network({ voters: [1, 2, 3], seed: 6, config: { preVote: false, checkQuorum: false } });
    bad.campaign(1);
    bad.isolate(3);
    bad.tickAll(200);
    expect(bad.term(3)).toBeGreaterThan(term + 5);
    bad.recover();
    bad.tickAll(30);
    expect(bad.term(1)).toBeGreaterThan(term + 5);
  });

  it('scenario 7: CheckQuorum — followers in their lease ignore (pre)votes; a leader that loses its quorum steps down', () => {
    const net = new Network({ voters: [1, 2, 3], seed: 7 });
    net.campaign(1);
    net.tickAll(3);
    const term = net.term(2);
    for (const type of [MessageType.Vote, MessageType.PreVote]) {
      // Node 3 claims a far higher term with an up-to-date log: 2 heard from 1 recently and ignores it.
      const last = net.node(2).status().lastIndex;
      net
        .node(2)
        .step(msg({ type, from: id(3), to: id(2), term: (term + 5) as Term, logTerm: term as Term, index: last }));
      expect(
        net.node(2).hasReady() &&
          net
            .node(2)
            .ready()
            .messages.some((m) => m.to === 3),
      ).toBe(false);
      if (net.node(2).hasReady()) net.node(2).advance(net.node(2).ready());
      expect(net.term(2)).toBe(term);
    }
    net.stabilize();

    // The leader, cut off from everyone, steps down within 2 election timeouts (it checks once per
    // election timeout, judging the activity of the whole previous interval).
    net.isolate(1);
    let ticks = 0;
    while (net.role(1) === Role.Leader) {
      net.tick(1);
      ticks++;
      expect(ticks).toBeLessThanOrEqual(20);
    }
    expect(ticks).toBeGreaterThanOrEqual(10);
    expect(net.role(1)).toBe(Role.Follower);

    // Control: with a quorum the leader stays for ever.
    const ok = new Network({ voters: [1, 2, 3], seed: 7 });
    ok.campaign(1);
    ok.isolate(3);
    ok.tickAll(100);
    expect(ok.leader()).toBe(1);
  });

  it('scenario 9: a node stuck at a higher term rejoins; the cluster converges on one leader without livelock', () => {
    const net = new Network({ voters: [1, 2, 3], seed: 9 });
    net.campaign(1);
    for (let i = 0; i < 3; i++) net.propose(1, `a${i}`);
    // Node 3 comes back from a long partition at term 50 (e.g. it campaigned without PreVote).
    net.crash(3);
    const old = net.storages.get(id(3))!;
    const hs = old.hardState();
    const stuck = new MemoryStorage({
      snapshot: old.snapshot(),
      entries: net.log(3),
      hardState: { term: 50 as Term, vote: 3 as RaftId, commit: hs.commit },
    });
    net.storages.set(id(3), stuck);
    net.restart(3);
    net.tickAll(100);
    expect(net.leaders().length).toBe(1);
    const terms = [1, 2, 3].map((n) => net.term(n));
    expect(new Set(terms).size).toBe(1);
    expect(terms[0]).toBeGreaterThanOrEqual(50);
    expect(terms[0]).toBeLessThan(60); // a few elections, not a livelock
    net.propose(net.leader(), 'after');
    for (const n of [1, 2, 3]) expect(net.appliedData(n)).toEqual(['a0', 'a1', 'a2', 'after']);
    // And it stays stable.
    const t = net.term(1);
    net.tickAll(100);
    expect(net.term(1)).toBe(t);
  });
});
