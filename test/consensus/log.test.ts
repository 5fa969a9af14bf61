// Consensus scenarios 3, 4, 5, 8, 17, 18, 20 (docs/correctness.md): the log — commit rule, repair,
// quotas, snapshots, crashes, and message reordering.

import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../consensus/memory-storage.js';
import {
  bootstrapConfState,
  bootstrapSnapshot,
  EntryType,
  MessageType,
  Raft,
  RaftError,
  RaftErrorCode,
  Role,
  SeededRng,
  type Entry,
  type LogIndex,
  type Message,
  type RaftConfig,
  type RaftId,
  type Term,
} from '../../consensus/index.js';
import { assertAppliedPrefixes, bytes, id, Network, text } from './network.js';

function entry(index: number, term: number, data = ''): Entry {
  return { index: index as LogIndex, term: term as Term, type: EntryType.Normal, data: bytes(data) };
}

/** A log with the given terms at indexes 1.. (data names the writer, to tell entries apart). */
function logOf(terms: number[], tag: string): Entry[] {
  return terms.map((t, i) => entry(i + 1, t, `${tag}-t${t}i${i + 1}`));
}

/** A deliberately broken Raft: commits whatever a quorum holds, ignoring the entry's term (§5.4.2). */
class CommitsOldTermsRaft extends Raft {
  protected override maybeCommit(): boolean {
    const mci = this.tracker.committed();
    if (!Number.isFinite(mci) || mci <= this.raftLog.committed) return false;
    this.raftLog.commitTo(mci);
    return true;
  }
}

/**
 * Figure 8 of the Raft paper, played out on five nodes. Returns S1's commit index at step (c),
 * when its term-T1 entry at index 3 is on a majority but no entry of its current term is.
 */
function figure8(createRaft?: (c: RaftConfig) => Raft): { net: Network; commitAtC: number; t1: number } {
  // One entry per append, so the filter below can hold back exactly one entry.
  const net = new Network({
    voters: [1, 2, 3, 4, 5],
    seed: 8,
    config: { maxMessageBytes: 1, checkQuorum: false },
    createRaft,
  });
  // (a) S1 leads term T1 and replicates index 3 to S2 only.
  net.campaign(1);
  const t1 = net.term(1);
  expect(net.commit(1)).toBe(2);
  net.cut(1, 3);
  net.cut(1, 4);
  net.cut(1, 5);
  net.propose(1, 'x');
  expect(net.log(2).map((e) => e.term)).toEqual([t1, t1]);
  // (b) S1 crashes; S5 is elected (votes of S3, S4) and appends its no-op at index 3 but sends nothing.
  net.crash(1);
  net.filter = (m) => !(m.from === 5 && m.type === MessageType.App);
  for (let i = 0; i < 4 && net.role(5) !== Role.Leader; i++) net.campaign(5);
  expect(net.role(5)).toBe(Role.Leader);
  const t2 = net.term(5);
  expect(net.log(5).map((e) => e.term)).toEqual([t1, t2]);
  // (c) S5 crashes; S1 restarts and is elected in T3; it replicates index 3 (term T1) to S3 but
  // its own no-op (index 4) is held back.
  net.crash(5);
  net.recover();
  net.restart(1);
  net.filter = (m) => {
    if (m.from !== 1 || m.type !== MessageType.App) return true;
    return { ...m, entries: m.entries.filter((e) => e.index < 4) };
  };
  for (let i = 0; i < 4 && net.role(1) !== Role.Leader; i++) net.campaign(1);
  expect(net.role(1)).toBe(Role.Leader);
  net.tickAll(2);
  for (const n of [1, 2, 3]) expect(net.log(n)[1]).toMatchObject({ index: 3, term: t1 });
  return { net, commitAtC: net.commit(1), t1 };
}

describe('consensus scenarios: the log', () => {
  it("scenario 3: Figure 8 — a new leader never commits an earlier term's entry by counting replicas", () => {
    const { net, commitAtC } = figure8();
    // Index 3 is on S1, S2, S3 (a majority) but is of an earlier term: not committed.
    expect(commitAtC).toBe(2);
    // (d) S1 crashes; S5 (last term T2) wins and overwrites index 3 everywhere — which is safe
    // precisely because it was never committed.
    net.crash(1);
    net.recover();
    net.restart(5);
    for (let i = 0; i < 4 && net.role(5) !== Role.Leader; i++) net.campaign(5);
    expect(net.role(5)).toBe(Role.Leader);
    net.tickAll(3);
    const t5 = net.term(5);
    for (const n of [2, 3, 4])
      expect(
        net
          .log(n)
          .map((e) => e.term)
          .slice(0, 2),
      ).toEqual([net.log(5)[0].term, net.log(5)[1].term]);
    expect(net.log(2)[1].term).not.toBe(net.log(2)[0].term);
    expect(t5).toBeGreaterThan(0);
    assertAppliedPrefixes(net);

    // (e) the other branch: once S1's own no-op replicates, index 3 commits with it.
    const e = figure8();
    e.net.filter = undefined;
    e.net.tickAll(2);
    expect(e.net.commit(1)).toBe(4);
    expect(e.net.appliedData(3)).toEqual(['x']);

    // The same script with the commit rule broken commits index 3 at step (c); then S5 — whose
    // log holds a different entry at index 3 — can still win: Leader Completeness is violated
    // and the cluster goes wrong (an assertion fires or the replication never settles).
    const broken = figure8((c) => new CommitsOldTermsRaft(c));
    expect(broken.commitAtC).toBe(3);
    expect(broken.net.appliedData(1)).toEqual(['x']);
    broken.net.crash(1);
    broken.net.recover();
    broken.net.restart(5);
    broken.net.quiesceLimit = 2_000;
    let failure: unknown;
    try {
      for (let i = 0; i < 4; i++) broken.net.campaign(5);
      broken.net.tickAll(3);
    } catch (err) {
      failure = err;
    }
    expect(failure).toBeInstanceOf(Error);
    expect(broken.net.role(5)).toBe(Role.Leader);
    expect(broken.net.log(5)[1]).toMatchObject({ index: 3 });
    expect(broken.net.log(5)[1].term).not.toBe(broken.t1);
  });

  it('scenario 4: log repair — missing, extra and conflicting suffixes converge; back-off skips a term at a time', () => {
    // Figure 7 of the Raft paper: the leader's log and followers (a)–(f).
    const leaderTerms = [1, 1, 1, 4, 4, 5, 5, 6, 6, 6];
    const followers: Record<string, number[]> = {
      a: [1, 1, 1, 4, 4, 5, 5, 6, 6],
      b: [1, 1, 1, 4],
      c: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],
      d: [1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7],
      e: [1, 1, 1, 4, 4, 4, 4],
      f: [1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],
    };
    const cs = bootstrapConfState([id(1), id(2), id(3)]);
    for (const [name, terms] of Object.entries(followers)) {
      const net = new Network({
        voters: [1, 2, 3],
        seed: 4,
        storage: (n) => {
          if (n === 2) {
            const last = terms[terms.length - 1];
            return new MemoryStorage({
              confState: cs,
              entries: logOf(terms, 'e'),
              hardState: { term: last as Term, vote: 0 as RaftId, commit: 3 as LogIndex },
            });
          }
          return new MemoryStorage({
            confState: cs,
            entries: logOf(leaderTerms, 'e'),
            hardState: { term: 7 as Term, vote: 0 as RaftId, commit: 10 as LogIndex },
          });
        },
      });
      net.campaign(1);
      expect(net.role(1), name).toBe(Role.Leader);
      net.tickAll(3);
      const want = net.log(1).map((e) => [e.index, e.term, text(e.data)]);
      expect(want.length).toBe(11);
      expect(
        net.log(2).map((e) => [e.index, e.term, text(e.data)]),
        name,
      ).toEqual(want);
      // Fast back-off: at most one rejected probe per differing term (naive decrement: up to 7).
      const rejects = net.sent.filter((m) => m.type === MessageType.AppResp && m.from === 2 && m.reject).length;
      expect(rejects, name).toBeLessThanOrEqual(2);
    }
  });

  it('scenario 5: uncommitted entries from a higher term are overwritten by a legitimately elected leader', () => {
    // S2 led term 2 and appended index 2 alone; S1 then led term 3 (votes of S1, S3) and appended
    // index 2 alone. S2 is elected in term 4 with S3's vote; S1's term-3 entry must give way.
    const cs = bootstrapConfState([id(1), id(2), id(3)]);
    const logs: Record<number, Entry[]> = {
      1: [entry(1, 1, 'base'), entry(2, 3, 'from-term-3')],
      2: [entry(1, 1, 'base'), entry(2, 2, 'from-term-2')],
      3: [entry(1, 1, 'base')],
    };
    const net = new Network({
      voters: [1, 2, 3],
      storage: (n) =>
        new MemoryStorage({
          confState: cs,
          entries: logs[n],
          hardState: { term: 3 as Term, vote: (n === 2 ? 0 : 1) as RaftId, commit: 1 as LogIndex },
        }),
    });
    net.campaign(2);
    expect(net.role(2)).toBe(Role.Leader);
    net.tickAll(2);
    for (const n of [1, 2, 3]) {
      expect(net.log(n).map((e) => [e.term, text(e.data)])).toEqual([
        [1, 'base'],
        [2, 'from-term-2'],
        [net.term(2), ''],
      ]);
    }
    expect(net.appliedData(1)).toEqual(['base', 'from-term-2']);
  });

  it("scenario 8: a minority leader's proposals never commit, are later overwritten, and its uncommitted log stays under the quota", () => {
    const quotaBytes = 1000;
    const net = new Network({ voters: [1, 2, 3, 4, 5], seed: 8, config: { maxUncommittedEntriesBytes: quotaBytes } });
    net.campaign(1);
    net.propose(1, 'committed');
    const commitBefore = net.commit(1);
    for (const a of [1, 2]) for (const b of [3, 4, 5]) net.cut(a, b);
    let accepted = 0;
    let refused = 0;
    const payload = 'x'.repeat(100);
    for (let i = 0; i < 50; i++) {
      try {
        net.node(1).propose(bytes(`${payload}${i}`));
        accepted++;
      } catch (e) {
        expect(e).toBeInstanceOf(RaftError);
        expect((e as RaftError).code).toBe(RaftErrorCode.UncommittedQuotaExceeded);
        refused++;
      }
      net.stabilize();
    }
    expect(refused).toBeGreaterThan(0);
    const uncommittedBytes = net
      .log(1)
      .filter((e) => e.index > commitBefore)
      .reduce((n, e) => n + e.data.length, 0);
    expect(uncommittedBytes).toBeLessThanOrEqual(quotaBytes + 110);
    expect(accepted * 101).toBeGreaterThan(quotaBytes - 110);
    expect(net.commit(1)).toBe(commitBefore);
    // The majority elects its own leader and commits; the old leader steps down (CheckQuorum).
    net.tickAll(40);
    const newLeader = net.leader();
    expect([3, 4, 5]).toContain(newLeader);
    expect(net.role(1)).not.toBe(Role.Leader);
    net.propose(newLeader, 'majority');
    net.recover();
    net.tickAll(10);
    for (const n of [1, 2, 3, 4, 5]) {
      expect(net.appliedData(n)).toEqual(['committed', 'majority']);
      expect(net.log(n).some((e) => text(e.data).startsWith(payload))).toBe(false);
    }
  });

  it('scenario 17: a follower far behind a compacted log catches up through a snapshot, then through entries', () => {
    const net = new Network({ voters: [1, 2, 3], seed: 17 });
    net.campaign(1);
    net.propose(1, 'a');
    net.isolate(3);
    for (let i = 0; i < 30; i++) net.propose(1, `b${i}`);
    net.snapshotAndCompact(1);
    net.snapshotAndCompact(2);
    expect(net.storages.get(id(1))!.firstIndex()).toBeGreaterThan(net.storages.get(id(3))!.lastIndex() + 1);
    net.recover();
    net.tickAll(5);
    const snaps = net.sentOf(MessageType.Snap).filter((m) => m.to === 3);
    expect(snaps.length).toBeGreaterThanOrEqual(1);
    expect(net.appliedData(3)).toEqual(net.appliedData(1));
    expect(net.storages.get(id(3))!.snapshot().metadata.index).toBe(snaps[0].snapshot!.metadata.index);
    // Then through entries: no further snapshot needed.
    for (let i = 0; i < 5; i++) net.propose(1, `c${i}`);
    expect(net.sentOf(MessageType.Snap).filter((m) => m.to === 3).length).toBe(snaps.length);
    expect(net.appliedData(3)).toEqual(net.appliedData(1));
    expect(net.node(1).status().progress!.get(id(3))!.state).toBe('replicate');
  });

  it('scenario 18: crash and restart at every step loses nothing acknowledged; a lost or rolled-back data directory refuses to rejoin', () => {
    for (let seed = 1; seed <= 6; seed++) {
      const net = new Network({ voters: [1, 2, 3], seed });
      net.crashAfterPersistRate = 0.02;
      const rng = new SeededRng(seed * 977);
      const acknowledged = new Set<string>();
      let next = 0;
      for (let step = 0; step < 300; step++) {
        for (const n of [1, 2, 3]) if (!net.nodes.has(id(n)) && rng.nextInt(4) === 0) net.restart(n);
        const r = rng.nextInt(10);
        if (r < 4) {
          const leaders = net.leaders();
          if (leaders.length > 0) {
            try {
              net.node(leaders[0]).propose(bytes(`v${next++}`));
            } catch (e) {
              expect(e).toBeInstanceOf(RaftError);
            }
          }
        } else if (r === 4) {
          const victim = 1 + rng.nextInt(3);
          if (net.nodes.has(id(victim))) net.crash(victim);
        }
        net.tickAll(1);
        // Acknowledged = applied by some node (the client was told "committed").
        for (const n of net.ids()) for (const d of net.appliedData(n)) acknowledged.add(d);
      }
      net.crashAfterPersistRate = 0;
      for (const n of [1, 2, 3]) if (!net.nodes.has(id(n))) net.restart(n);
      net.tickAll(60);
      assertAppliedPrefixes(net);
      const final = net.appliedData(1);
      expect(net.appliedData(2)).toEqual(final);
      expect(net.appliedData(3)).toEqual(final);
      for (const d of acknowledged) expect(final).toContain(d);
      expect(new Set(final).size).toBe(final.length);
      expect(acknowledged.size).toBeGreaterThan(10);
    }

    // A node whose data directory is lost comes back empty under its old id: the leader's
    // heartbeat carries a commit index it acknowledged before, beyond its log — refused loudly.
    const net = new Network({ voters: [1, 2, 3], seed: 18 });
    net.campaign(1);
    for (let i = 0; i < 5; i++) net.propose(1, `w${i}`);
    net.crash(3);
    // A fresh, bootstrapped storage: exactly what `init` would write again.
    net.storages.set(id(3), new MemoryStorage({ snapshot: bootstrapSnapshot([id(1), id(2), id(3)]) }));
    net.apps.get(id(3))!.appliedIndex = 1 as LogIndex;
    net.restart(3);
    expect(() => net.tickAll(3)).toThrow(
      /out of range \[lastIndex\(1\)\]. Was the raft log corrupted, truncated, or lost\?/,
    );

    // Same for a data directory restored from an old backup (rolled back).
    const net2 = new Network({ voters: [1, 2, 3], seed: 19 });
    net2.campaign(1);
    for (let i = 0; i < 5; i++) net2.propose(1, `w${i}`);
    const old = new MemoryStorage({ snapshot: net2.storages.get(id(3))!.snapshot(), entries: net2.log(3).slice(0, 2) });
    net2.crash(3);
    net2.storages.set(id(3), old);
    net2.apps.get(id(3))!.appliedIndex = 1 as LogIndex;
    net2.restart(3);
    expect(() => net2.tickAll(3)).toThrow(/tocommit\(\d+\) is out of range \[lastIndex\(3\)\]/);
  });

  it('scenario 20: reordered, duplicated and delayed messages change nothing; in-flight appends per follower are bounded', () => {
    for (let seed = 1; seed <= 5; seed++) {
      const net = new Network({ voters: [1, 2, 3, 4, 5], seed });
      net.reorder = true;
      net.duplicate(0.3);
      net.drop(0.05);
      const delayed: Message[] = [];
      let next = 0;
      const rng = new SeededRng(seed);
      for (let step = 0; step < 200; step++) {
        net.tickAll(1);
        if (rng.nextInt(3) === 0 && net.leaders().length > 0) {
          try {
            net.node(net.leader()).propose(bytes(`m${next++}`));
          } catch (e) {
            expect(e).toBeInstanceOf(RaftError);
          }
        }
        // Keep a sample of messages to deliver again, much later.
        for (const m of net.sent.slice(-5)) if (rng.nextInt(10) === 0) delayed.push(m);
      }
      net.recover();
      net.reorder = false;
      net.tickAll(30);
      const logsBefore = [1, 2, 3, 4, 5].map((n) =>
        net
          .log(n)
          .map((e) => `${e.index}/${e.term}`)
          .join(','),
      );
      const commitsBefore = [1, 2, 3, 4, 5].map((n) => net.commit(n));
      // Deliver the stale messages in a random order: nothing committed changes.
      for (let i = delayed.length - 1; i > 0; i--) {
        const j = rng.nextInt(i + 1);
        [delayed[i], delayed[j]] = [delayed[j], delayed[i]];
      }
      for (const m of delayed) {
        const node = net.nodes.get(m.to);
        if (!node) continue;
        node.step(m);
        net.process(m.to);
      }
      net.stabilize();
      net.tickAll(30);
      assertAppliedPrefixes(net);
      for (const [i, n] of [1, 2, 3, 4, 5].entries()) {
        expect(net.commit(n)).toBeGreaterThanOrEqual(commitsBefore[i]);
        // Committed prefixes are untouched.
        const prefix = logsBefore[i].split(',').slice(0, commitsBefore[i] - 1);
        expect(
          net
            .log(n)
            .map((e) => `${e.index}/${e.term}`)
            .slice(0, prefix.length),
        ).toEqual(prefix);
      }
      const final = net.appliedData(1);
      expect(new Set(final).size).toBe(final.length); // nothing applied twice
      for (const n of [2, 3, 4, 5]) expect(net.appliedData(n)).toEqual(final);
    }

    // In-flight bound: a follower that never answers receives at most maxInflightMessages appends.
    for (const limits of [{ maxInflightMessages: 4 }, { maxInflightMessages: 64, maxInflightBytes: 4 * 124 }]) {
      const net = new Network({ voters: [1, 2, 3], seed: 20, config: limits });
      net.campaign(1);
      net.propose(1, 'warm-up');
      expect(net.node(1).status().progress!.get(id(2))!.state).toBe('replicate');
      net.filter = (m) => !(m.from === 2 && m.type === MessageType.AppResp);
      const sentBefore = net.sent.length;
      for (let i = 0; i < 50; i++) net.propose(1, 'x'.repeat(100));
      const appsTo2 = net.sent
        .slice(sentBefore)
        .filter((m) => m.to === 2 && m.type === MessageType.App && m.entries.length > 0);
      expect(appsTo2.length).toBe(4);
      // Node 3 still answers, so everything commits.
      expect(net.appliedData(3).length).toBe(51);
    }
  });
});
