// Unit tests of the simulator's own parts: each safety check fires on a hand-built history that
// breaks it and stays quiet on one that does not; the network's partition shapes cut exactly the
// links they claim; the disk keeps synced writes and only a prefix of the unsynced tail.

import { describe, expect, it } from 'vitest';
import { bootstrapConfState } from '../../consensus/confchange.js';
import { MemoryStorage } from '../../consensus/memory-storage.js';
import { SeededRng } from '../../consensus/rng.js';
import {
  EntryType,
  MessageType,
  type Entry,
  type LogIndex,
  type Message,
  type RaftId,
  type Term,
} from '../../consensus/types.js';
import { CHAIN_ORIGIN, chainNext, SafetyChecker, SimViolation, ViolationKind } from './checker.js';
import { SimDisk } from './disk.js';
import { makePartition, PartitionKind, SimNetwork } from './network.js';

const id = (n: number): RaftId => n as RaftId;
const ent = (index: number, term: number, text: string): Entry => ({
  index: index as LogIndex,
  term: term as Term,
  type: EntryType.Normal,
  data: new TextEncoder().encode(text),
});
const hs = (term: number, vote: number, commit: number) => ({
  term: term as Term,
  vote: id(vote),
  commit: commit as LogIndex,
});

function msg(type: MessageType, from: number, to: number, fields: Partial<Message> = {}): Message {
  return {
    type,
    from: id(from),
    to: id(to),
    term: 1 as Term,
    logTerm: 0 as Term,
    index: 0 as LogIndex,
    entries: [],
    commit: 0 as LogIndex,
    reject: false,
    rejectHint: 0 as LogIndex,
    ...fields,
  };
}

function violationOf(f: () => void): ViolationKind | undefined {
  try {
    f();
    return undefined;
  } catch (e) {
    if (e instanceof SimViolation) return e.kind;
    throw e;
  }
}

function cluster(n: number): SafetyChecker {
  const c = new SafetyChecker();
  const cs = bootstrapConfState(Array.from({ length: n }, (_, i) => id(i + 1)));
  for (let i = 1; i <= n; i++) c.onStart(id(i), MemoryStorage.bootstrap(cs));
  return c;
}

describe('SafetyChecker', () => {
  it('election safety: a second leader in one term is caught, the same leader twice is not', () => {
    const c = cluster(3);
    c.onLeader(id(1), 2);
    expect(violationOf(() => c.onLeader(id(1), 2))).toBeUndefined();
    expect(violationOf(() => c.onLeader(id(2), 3))).toBeUndefined();
    expect(violationOf(() => c.onLeader(id(3), 2))).toBe(ViolationKind.ElectionSafety);
  });

  it('log matching: same index and term with a different prefix is caught', () => {
    const c = cluster(2);
    c.onEntriesPersisted(id(1), [ent(1, 1, 'a'), ent(2, 1, 'b')]);
    expect(violationOf(() => c.onEntriesPersisted(id(2), [ent(1, 1, 'a'), ent(2, 1, 'b')]))).toBeUndefined();
    const d = cluster(2);
    d.onEntriesPersisted(id(1), [ent(1, 1, 'a'), ent(2, 1, 'b')]);
    expect(violationOf(() => d.onEntriesPersisted(id(2), [ent(1, 1, 'x'), ent(2, 1, 'b')]))).toBe(
      ViolationKind.LogMatching,
    );
  });

  it('log matching survives legitimate truncation: a conflicting suffix of a higher term replaces a lower one', () => {
    const c = cluster(2);
    c.onEntriesPersisted(id(1), [ent(1, 1, 'a'), ent(2, 1, 'stale')]);
    expect(violationOf(() => c.onEntriesPersisted(id(1), [ent(2, 2, 'new')]))).toBeUndefined();
    expect(c.lastIndexOf(id(1))).toBe(2);
  });

  it('state-machine safety: nodes committing different entries at one index are caught', () => {
    const c = cluster(2);
    c.onEntriesPersisted(id(1), [ent(1, 1, 'a')]);
    c.onEntriesPersisted(id(2), [ent(1, 2, 'b')]);
    c.onHardState(id(1), hs(1, 1, 1));
    expect(violationOf(() => c.onHardState(id(2), hs(2, 2, 1)))).toBe(ViolationKind.StateMachineSafety);
  });

  it('state-machine safety: a different application state at one index is caught', () => {
    const c = cluster(2);
    const a = ent(1, 1, 'a');
    const b = ent(1, 1, 'b');
    c.onEntriesPersisted(id(1), [a]);
    c.onEntriesPersisted(id(2), [a]);
    c.onHardState(id(1), hs(1, 1, 1));
    c.onHardState(id(2), hs(1, 1, 1));
    c.onApplied(id(1), a, chainNext(CHAIN_ORIGIN, a));
    expect(violationOf(() => c.onApplied(id(2), a, chainNext(CHAIN_ORIGIN, a)))).toBeUndefined();
    expect(violationOf(() => c.onApplied(id(2), b, chainNext(CHAIN_ORIGIN, b)))).toBe(ViolationKind.StateMachineSafety);
  });

  it('applying beyond the commit index is caught', () => {
    const c = cluster(1);
    const a = ent(1, 1, 'a');
    c.onEntriesPersisted(id(1), [a]);
    expect(violationOf(() => c.onApplied(id(1), a, chainNext(CHAIN_ORIGIN, a)))).toBe(ViolationKind.StateMachineSafety);
  });

  it('commit index going back within one run is caught', () => {
    const c = cluster(1);
    c.onEntriesPersisted(id(1), [ent(1, 1, 'a'), ent(2, 1, 'b')]);
    c.onHardState(id(1), hs(1, 1, 2));
    expect(violationOf(() => c.onHardState(id(1), hs(1, 1, 1)))).toBe(ViolationKind.CommitRegressed);
  });

  it('leader completeness: a leader of a later term without a committed entry is caught', () => {
    const c = cluster(3);
    c.onEntriesPersisted(id(1), [ent(1, 1, 'a')]);
    c.onEntriesPersisted(id(2), [ent(1, 1, 'a')]);
    c.onHardState(id(1), hs(1, 1, 1)); // committed in term 1
    expect(violationOf(() => c.onLeader(id(3), 2))).toBe(ViolationKind.LeaderCompleteness);
  });

  it('leader completeness does not blame a stale leader of the same term as the commit', () => {
    // Votes for term 1 delayed in the network may elect node 3 in term 1 after the commit:
    // a leader of term 1 need not hold what was committed in term 1.
    const c = cluster(3);
    c.onEntriesPersisted(id(1), [ent(1, 1, 'a')]);
    c.onHardState(id(1), hs(1, 1, 1));
    expect(violationOf(() => c.onLeader(id(3), 1))).toBeUndefined();
  });

  it('commit safety (Figure 8): an electable node without a committed entry is caught', () => {
    // Node 3 holds a conflicting entry of term 3; nodes 1 and 2 hold index 2 of term 2, which
    // node 1 (leader of term 4) commits by counting. Node 3's log outranks node 2's: electable.
    const c = cluster(3);
    c.onEntriesPersisted(id(1), [ent(1, 1, 'a'), ent(2, 2, 'e')]);
    c.onEntriesPersisted(id(2), [ent(1, 1, 'a'), ent(2, 2, 'e')]);
    c.onEntriesPersisted(id(3), [ent(1, 1, 'a'), ent(2, 3, 'x')]);
    c.onHardState(id(1), hs(4, 1, 2));
    expect(violationOf(() => c.checkCommitSafety([id(1), id(2), id(3)]))).toBe(ViolationKind.LeaderCompleteness);
    // Once the leader's own entry of term 4 is on nodes 1 and 2, node 3 is no longer electable.
    c.onEntriesPersisted(id(1), [ent(3, 4, 'noop')]);
    c.onEntriesPersisted(id(2), [ent(3, 4, 'noop')]);
    expect(violationOf(() => c.checkCommitSafety([id(1), id(2), id(3)]))).toBeUndefined();
  });

  it('durability: a vote or an acknowledgement sent before it is on disk is caught', () => {
    const c = cluster(2);
    const disk = MemoryStorage.bootstrap(bootstrapConfState([id(1), id(2)]));
    disk.save(hs(1, 2, 0), [ent(1, 1, 'a')]);
    expect(violationOf(() => c.onSend(msg(MessageType.VoteResp, 1, 2), disk))).toBeUndefined();
    expect(violationOf(() => c.onSend(msg(MessageType.VoteResp, 1, 3), disk))).toBe(ViolationKind.Durability);
    expect(violationOf(() => c.onSend(msg(MessageType.AppResp, 1, 2, { index: 1 as LogIndex }), disk))).toBeUndefined();
    expect(violationOf(() => c.onSend(msg(MessageType.AppResp, 1, 2, { index: 2 as LogIndex }), disk))).toBe(
      ViolationKind.Durability,
    );
    expect(violationOf(() => c.onSend(msg(MessageType.App, 1, 2, { term: 2 as Term }), disk))).toBe(
      ViolationKind.Durability,
    );
    // PreVote promises nothing durable: it is sent at term + 1 by design (thesis §9.6).
    expect(violationOf(() => c.onSend(msg(MessageType.PreVote, 1, 2, { term: 2 as Term }), disk))).toBeUndefined();
  });

  it('linearizable reads: an answer older than a write committed before the read is caught', () => {
    const c = cluster(1);
    c.onEntriesPersisted(id(1), [ent(1, 1, 'a'), ent(2, 1, 'b')]);
    c.onHardState(id(1), hs(1, 1, 2));
    c.onReadIssued(id(1), 'r1', 10);
    c.onReadIssued(id(1), 'r2', 10);
    expect(violationOf(() => c.onReadServed(id(1), 'r1', 2, 2))).toBeUndefined();
    expect(violationOf(() => c.onReadServed(id(1), 'r2', 1, 1))).toBe(ViolationKind.LinearizableRead);
  });
});

describe('SimNetwork', () => {
  const ids = [1, 2, 3, 4, 5].map(id);
  const pairs = (blocks: (a: RaftId, b: RaftId) => boolean): number => {
    let cut = 0;
    for (const a of ids) for (const b of ids) if (a !== b && blocks(a, b)) cut++;
    return cut;
  };

  it('isolated leader: every link of the leader is cut, no other', () => {
    const p = makePartition(new SeededRng(1), PartitionKind.IsolatedLeader, ids, id(3));
    expect(pairs(p.blocks)).toBe(8);
    expect(p.blocks(id(3), id(1))).toBe(true);
    expect(p.blocks(id(1), id(3))).toBe(true);
    expect(p.blocks(id(1), id(2))).toBe(false);
  });

  it('majority ring with 5 nodes: each node reaches exactly 2 others, and no two see the same majority', () => {
    const p = makePartition(new SeededRng(7), PartitionKind.MajorityRing, ids, id(0));
    const seen = new Set<string>();
    for (const a of ids) {
      const reach = ids.filter((b) => b === a || !p.blocks(a, b));
      expect(reach.length).toBe(3);
      seen.add(reach.join(','));
    }
    expect(seen.size).toBe(5);
  });

  it('halves and bridge cut links symmetrically; one-way cuts one direction only', () => {
    for (let seed = 1; seed <= 20; seed++) {
      for (const kind of [PartitionKind.Halves, PartitionKind.Bridge]) {
        const p = makePartition(new SeededRng(seed), kind, ids, id(1));
        expect(pairs(p.blocks)).toBeGreaterThan(0);
        for (const a of ids) for (const b of ids) expect(p.blocks(a, b)).toBe(p.blocks(b, a));
      }
      const bridge = makePartition(new SeededRng(seed), PartitionKind.Bridge, ids, id(1));
      expect(ids.some((a) => ids.every((b) => !bridge.blocks(a, b)))).toBe(true);
      const oneWay = makePartition(new SeededRng(seed), PartitionKind.OneWay, ids, id(1));
      let asymmetric = 0;
      for (const a of ids) for (const b of ids) if (oneWay.blocks(a, b)) asymmetric += oneWay.blocks(b, a) ? 0 : 1;
      expect(asymmetric).toBeGreaterThan(0);
      expect(asymmetric).toBe(pairs(oneWay.blocks));
    }
  });

  it('delivers after the drawn delay, loses and duplicates at the configured rates', () => {
    const net = new SimNetwork(new SeededRng(3));
    const m = msg(MessageType.Heartbeat, 1, 2);
    net.send(m, 0);
    expect(net.takeDue(0)).toEqual([]);
    expect(net.takeDue(1)).toEqual([m]);
    net.faults = { lossPerMille: 1000, duplicatePerMille: 0, slowPerMille: 0, maxDelayTicks: 1 };
    expect(net.send(m, 1)).toBe(false);
    expect(net.messagesInFlight()).toBe(0);
    net.faults = { lossPerMille: 0, duplicatePerMille: 1000, slowPerMille: 1000, maxDelayTicks: 4 };
    for (let i = 0; i < 50; i++) net.send(m, 10);
    expect(net.messagesInFlight()).toBe(100);
    let delivered = 0;
    for (let t = 11; t <= 14; t++) delivered += net.takeDue(t).length;
    expect(delivered).toBe(100);
  });
});

describe('SimDisk', () => {
  it('a crash keeps synced writes and a prefix of the unsynced tail', () => {
    const cs = bootstrapConfState([id(1)]);
    for (let seed = 1; seed <= 30; seed++) {
      const disk = new SimDisk(MemoryStorage.bootstrap(cs), 0);
      disk.write(
        { kind: 'save', hardState: hs(1, 1, 0), entries: [ent(1, 1, 'a'), ent(2, 1, 'b'), ent(3, 1, 'c')] },
        true,
      );
      disk.write({ kind: 'save', hardState: hs(1, 1, 1), entries: [] }, false);
      disk.write({ kind: 'save', hardState: hs(1, 1, 2), entries: [] }, false);
      disk.write({ kind: 'save', hardState: hs(1, 1, 3), entries: [] }, false);
      expect(disk.unsyncedWrites()).toBe(3);
      const loss = disk.crash(new SeededRng(seed));
      expect(loss.kept + loss.lost).toBe(3);
      const s = disk.recover();
      expect(s.lastIndex()).toBe(3);
      expect(s.hardState().commit).toBe(loss.kept); // the commits are written in order: a prefix survives
    }
  });

  it('a synced write makes everything before it durable', () => {
    const disk = new SimDisk(MemoryStorage.bootstrap(bootstrapConfState([id(1)])), 0);
    disk.write({ kind: 'save', hardState: hs(1, 1, 0), entries: [ent(1, 1, 'a')] }, true);
    disk.write({ kind: 'save', hardState: hs(1, 1, 1), entries: [] }, false);
    disk.write({ kind: 'save', hardState: hs(2, 0, 1), entries: [] }, true);
    disk.crash(new SeededRng(1));
    expect(disk.recover().hardState()).toEqual(hs(2, 0, 1));
  });
});
