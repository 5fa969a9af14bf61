// One test per rule of the Raft paper (Figure 2 and §5), plus the codec and the configuration
// changer, on single RaftNodes driven by hand.

import { describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../consensus/memory-storage.js';
import {
  bootstrapConfState,
  ConfChangeTransition,
  ConfChangeType,
  decodeConfChange,
  encodeConfChange,
  EntryType,
  MessageType,
  RaftError,
  RaftErrorCode,
  RaftInvariantError,
  RaftNode,
  Role,
  SeededRng,
  type ConfChange,
  type Entry,
  type LogIndex,
  type Message,
  type RaftConfigInput,
  type RaftId,
  type Term,
} from '../../consensus/index.js';
import { Changer } from '../../consensus/confchange.js';
import { Progress, trackerConfigFromConfState } from '../../consensus/progress.js';
import { bytes, id } from './network.js';

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

interface Made {
  node: RaftNode;
  storage: MemoryStorage;
}

function make(
  nodeId: number,
  voters: number[],
  opts: { entries?: Entry[]; term?: number; vote?: number; commit?: number; config?: Partial<RaftConfigInput> } = {},
): Made {
  const storage = new MemoryStorage({
    confState: bootstrapConfState(voters.map(id)),
    entries: opts.entries ?? [],
    hardState: {
      term: (opts.term ?? 0) as Term,
      vote: (opts.vote ?? 0) as RaftId,
      commit: (opts.commit ?? 0) as LogIndex,
    },
  });
  const node = new RaftNode({
    id: id(nodeId),
    storage,
    rng: new SeededRng(nodeId),
    electionTicks: 10,
    heartbeatTicks: 1,
    ...opts.config,
  });
  return { node, storage };
}

/** Takes every pending Ready (persisting it), returning the messages sent. */
function drain({ node, storage }: Made): Message[] {
  const out: Message[] = [];
  while (node.hasReady()) {
    const rd = node.ready();
    if (rd.snapshot) storage.applySnapshot(rd.snapshot);
    storage.save(rd.hardState, rd.entries);
    out.push(...rd.messages);
    node.advance(rd);
  }
  return out;
}

/** Makes node 1 of a 3-node cluster leader at term 1 (votes granted by hand). */
function leader(opts: Parameters<typeof make>[2] = {}): Made {
  const m = make(1, [1, 2, 3], { config: { preVote: false }, ...opts });
  m.node.campaign();
  drain(m);
  const t = m.node.status().hardState.term;
  m.node.step(msg({ type: MessageType.VoteResp, from: id(2), to: id(1), term: t as Term }));
  drain(m);
  expect(m.node.status().softState.role).toBe(Role.Leader);
  return m;
}

describe('Raft paper rules', () => {
  it('§5.2: a follower campaigns after a randomized election timeout in [electionTicks, 2*electionTicks)', () => {
    const seen = new Set<number>();
    for (let seed = 1; seed <= 40; seed++) {
      const storage = new MemoryStorage({ confState: bootstrapConfState([id(1), id(2), id(3)]) });
      const node = new RaftNode({
        id: id(1),
        storage,
        rng: new SeededRng(seed),
        electionTicks: 10,
        heartbeatTicks: 1,
        preVote: false,
      });
      let ticks = 0;
      while (node.status().softState.role === Role.Follower) {
        node.tick();
        ticks++;
      }
      expect(ticks).toBeGreaterThanOrEqual(10);
      expect(ticks).toBeLessThan(20);
      seen.add(ticks);
    }
    expect(seen.size).toBeGreaterThan(4);
  });

  it('§5.2: a candidate increments its term, votes for itself and asks every voter; a majority makes it leader with a no-op', () => {
    const m = make(1, [1, 2, 3], { term: 4, config: { preVote: false } });
    m.node.campaign();
    const sent = drain(m);
    expect(m.node.status().hardState).toMatchObject({ term: 5, vote: 1 });
    expect(sent.map((x) => [x.type, x.to, x.term])).toEqual([
      [MessageType.Vote, 2, 5],
      [MessageType.Vote, 3, 5],
    ]);
    m.node.step(msg({ type: MessageType.VoteResp, from: id(2), to: id(1), term: 5 as Term }));
    const after = drain(m);
    expect(m.node.status().softState.role).toBe(Role.Leader);
    expect(m.storage.lastIndex()).toBe(1);
    expect(m.storage.entries(1 as LogIndex, 2 as LogIndex, 1000)[0]).toMatchObject({
      term: 5,
      data: new Uint8Array(0),
    });
    expect(after.filter((x) => x.type === MessageType.App).map((x) => x.to)).toEqual([2, 3]);
  });

  it('§5.2: a candidate that hears from a leader of its term becomes its follower; one that loses becomes a follower', () => {
    const m = make(1, [1, 2, 3], { config: { preVote: false } });
    m.node.campaign();
    drain(m);
    const t = m.node.status().hardState.term as Term;
    m.node.step(msg({ type: MessageType.App, from: id(2), to: id(1), term: t }));
    expect(m.node.status().softState).toEqual({ role: Role.Follower, leader: 2 });

    const l = make(1, [1, 2, 3], { config: { preVote: false } });
    l.node.campaign();
    drain(l);
    const t2 = l.node.status().hardState.term as Term;
    l.node.step(msg({ type: MessageType.VoteResp, from: id(2), to: id(1), term: t2, reject: true }));
    l.node.step(msg({ type: MessageType.VoteResp, from: id(3), to: id(1), term: t2, reject: true }));
    expect(l.node.status().softState.role).toBe(Role.Follower);
  });

  it('§5.2: at most one vote per term, first come first served; a repeated request is granted again', () => {
    const m = make(1, [1, 2, 3]);
    m.node.step(msg({ type: MessageType.Vote, from: id(2), to: id(1), term: 1 as Term }));
    m.node.step(msg({ type: MessageType.Vote, from: id(3), to: id(1), term: 1 as Term }));
    m.node.step(msg({ type: MessageType.Vote, from: id(2), to: id(1), term: 1 as Term }));
    const sent = drain(m).filter((x) => x.type === MessageType.VoteResp);
    expect(sent.map((x) => [x.to, x.reject])).toEqual([
      [2, false],
      [3, true],
      [2, false],
    ]);
    expect(m.storage.hardState()).toMatchObject({ term: 1, vote: 2 });
  });

  it('§5.1: a higher term makes anyone a follower; a lower-term append gets an answer that deposes its stale sender', () => {
    const m = leader();
    m.node.step(msg({ type: MessageType.AppResp, from: id(2), to: id(1), term: 9 as Term }));
    expect(m.node.status().softState.role).toBe(Role.Follower);
    expect(m.node.status().hardState.term).toBe(9);
    m.node.step(msg({ type: MessageType.App, from: id(3), to: id(1), term: 2 as Term }));
    const sent = drain(m);
    expect(sent).toContainEqual(expect.objectContaining({ type: MessageType.AppResp, to: 3, term: 9 }));
    expect(m.node.status().hardState.term).toBe(9);
  });

  it('Figure 2, AppendEntries: reject on a prevLog mismatch, truncate a conflicting suffix, commit = min(leaderCommit, last new)', () => {
    const m = make(2, [1, 2, 3], { entries: [entry(1, 1, 'a'), entry(2, 1, 'b'), entry(3, 2, 'x')], term: 2 });
    // prevLog (3, 3) does not match (we hold term 2 at 3): reject, with a hint.
    m.node.step(
      msg({
        type: MessageType.App,
        from: id(1),
        to: id(2),
        term: 3 as Term,
        index: 3 as LogIndex,
        logTerm: 3 as Term,
        entries: [entry(4, 3, 'd')],
      }),
    );
    let sent = drain(m);
    expect(sent[0]).toMatchObject({ type: MessageType.AppResp, reject: true, index: 3, rejectHint: 3, logTerm: 2 });
    // prevLog (2, 1) matches: the conflicting entry 3 is replaced, and commit = min(9, 4) = 4.
    m.node.step(
      msg({
        type: MessageType.App,
        from: id(1),
        to: id(2),
        term: 3 as Term,
        index: 2 as LogIndex,
        logTerm: 1 as Term,
        commit: 9 as LogIndex,
        entries: [entry(3, 3, 'c'), entry(4, 3, 'd')],
      }),
    );
    sent = drain(m);
    expect(sent[0]).toMatchObject({ type: MessageType.AppResp, reject: false, index: 4 });
    expect(
      m.storage.entries(1 as LogIndex, 5 as LogIndex, 1e9).map((e) => [e.term, new TextDecoder().decode(e.data)]),
    ).toEqual([
      [1, 'a'],
      [1, 'b'],
      [3, 'c'],
      [3, 'd'],
    ]);
    expect(m.node.status().hardState.commit).toBe(4);
  });

  it("a heartbeat carries commit bounded by the follower's match; a commit beyond the log is refused loudly", () => {
    const m = leader();
    m.node.propose(bytes('p'));
    drain(m);
    m.node.step(msg({ type: MessageType.AppResp, from: id(2), to: id(1), term: 1 as Term, index: 2 as LogIndex }));
    drain(m);
    expect(m.node.status().hardState.commit).toBe(2);
    m.node.tick();
    const hb = drain(m).filter((x) => x.type === MessageType.Heartbeat);
    expect(hb.map((x) => [x.to, x.commit])).toEqual([
      [2, 2],
      [3, 0],
    ]);
    const f = make(2, [1, 2, 3], { entries: [entry(1, 1)], term: 1 });
    expect(() =>
      f.node.step(msg({ type: MessageType.Heartbeat, from: id(1), to: id(2), term: 1 as Term, commit: 9 as LogIndex })),
    ).toThrow(
      new RaftInvariantError(
        'tocommit(9) is out of range [lastIndex(1)]. Was the raft log corrupted, truncated, or lost?',
      ),
    );
  });

  it('proposals: a follower forwards to its leader; without a leader, or with forwarding disabled, they fail fast', () => {
    const m = make(2, [1, 2, 3]);
    expect(() => m.node.propose(bytes('x'))).toThrow(expect.objectContaining({ code: RaftErrorCode.ProposalDropped }));
    m.node.step(msg({ type: MessageType.Heartbeat, from: id(1), to: id(2), term: 1 as Term }));
    drain(m);
    m.node.propose(bytes('x'));
    const sent = drain(m);
    expect(sent).toEqual([expect.objectContaining({ type: MessageType.Prop, to: 1, term: 0 })]);
    const noFwd = make(2, [1, 2, 3], { config: { disableProposalForwarding: true } });
    noFwd.node.step(msg({ type: MessageType.Heartbeat, from: id(1), to: id(2), term: 1 as Term }));
    expect(() => noFwd.node.propose(bytes('x'))).toThrow(
      expect.objectContaining({ code: RaftErrorCode.ProposalDropped }),
    );
    const big = leader({ config: { preVote: false, maxProposalBytes: 10 } });
    expect(() => big.node.propose(new Uint8Array(11))).toThrow(
      expect.objectContaining({ code: RaftErrorCode.ProposalTooLarge }),
    );
    // The leader accepts a forwarded proposal as its own.
    const l = leader();
    l.node.step(
      msg({ type: MessageType.Prop, from: id(2), to: id(1), term: 0 as Term, entries: [entry(0, 0, 'fwd')] }),
    );
    drain(l);
    expect(l.storage.lastIndex()).toBe(2);
  });

  it('malformed peer messages are ignored without a trace', () => {
    const m = leader();
    const before = JSON.stringify(m.node.status(), (_k, v) => (v instanceof Map ? [...v] : v));
    const rng = new SeededRng(77);
    const types = Object.values(MessageType);
    const junk = [-1, 1.5, Number.NaN, 2 ** 60, undefined, 'x'];
    for (let i = 0; i < 2000; i++) {
      const base = msg({
        type: types[rng.nextInt(types.length)],
        from: id(2),
        to: id(1),
        term: 1 as Term,
        index: rng.nextInt(5) as LogIndex,
        logTerm: 1 as Term,
      });
      const field = ['term', 'index', 'logTerm', 'commit', 'from', 'to', 'rejectHint', 'entries', 'type'][
        rng.nextInt(9)
      ];
      const bad = {
        ...base,
        [field]: field === 'entries' ? [entry(99, 1)] : field === 'to' ? 3 : junk[rng.nextInt(junk.length)],
      } as unknown as Message;
      if (field === 'entries' && bad.type !== MessageType.App) continue;
      m.node.step(bad);
    }
    expect(m.node.hasReady()).toBe(false);
    expect(JSON.stringify(m.node.status(), (_k, v) => (v instanceof Map ? [...v] : v))).toBe(before);
  });

  it('Ready: a vote needs an fsync, a commit-only change does not; one Ready at a time', () => {
    const m = make(1, [1, 2, 3]);
    m.node.step(msg({ type: MessageType.Vote, from: id(2), to: id(1), term: 1 as Term }));
    const rd = m.node.ready();
    expect(rd.mustSync).toBe(true);
    expect(rd.hardState).toMatchObject({ term: 1, vote: 2 });
    expect(() => m.node.ready()).toThrow(RaftInvariantError);
    m.node.advance(rd);
    expect(m.node.hasReady()).toBe(false);
  });
});

describe('configuration changes: codec and changer', () => {
  const cc = (transition: ConfChangeTransition, ...changes: [ConfChangeType, number][]): ConfChange => ({
    transition,
    changes: changes.map(([type, n]) => ({ type, nodeId: id(n) })),
    context: bytes('ctx'),
  });

  it('encode/decode round-trips; garbage is refused with InvalidConfChange', () => {
    const rng = new SeededRng(5);
    for (let i = 0; i < 500; i++) {
      const n = rng.nextInt(6);
      const c: ConfChange = {
        transition: rng.nextInt(3),
        changes: Array.from({ length: n }, () => ({
          type: rng.nextInt(3),
          nodeId: (1 + rng.nextInt(2 ** 31) * 1000) as RaftId,
        })),
        context: Uint8Array.from({ length: rng.nextInt(20) }, () => rng.nextInt(256)),
      };
      expect(decodeConfChange(encodeConfChange(c))).toEqual({ ...c, changes: [...c.changes] });
    }
    const good = encodeConfChange(cc(ConfChangeTransition.Auto, [ConfChangeType.AddVoter, 4]));
    for (let cut = 0; cut < good.length; cut++) {
      expect(() => decodeConfChange(good.slice(0, cut))).toThrow(
        expect.objectContaining({ code: RaftErrorCode.InvalidConfChange }),
      );
    }
    for (let i = 0; i < 300; i++) {
      const g = Uint8Array.from({ length: rng.nextInt(40) }, () => rng.nextInt(256));
      try {
        decodeConfChange(g);
      } catch (e) {
        expect(e).toBeInstanceOf(RaftError);
        expect((e as RaftError).code).toBe(RaftErrorCode.InvalidConfChange);
      }
    }
  });

  function changer(voters: number[], learners: number[] = [], outgoing: number[] = []): Changer {
    const cs = {
      voters: voters.map(id),
      votersOutgoing: outgoing.map(id),
      learners: learners.map(id),
      learnersNext: [],
      autoLeave: false,
    };
    const progress = new Map<RaftId, Progress>();
    for (const v of [...voters, ...outgoing])
      progress.set(id(v), new Progress(1 as LogIndex, 0 as LogIndex, false, 4, 0));
    for (const l of learners) progress.set(id(l), new Progress(1 as LogIndex, 0 as LogIndex, true, 4, 0));
    return new Changer(
      trackerConfigFromConfState(cs),
      progress,
      10 as LogIndex,
      (next, match, learner) => new Progress(next, match, learner, 4, 0),
    );
  }

  it('simple changes touch at most one voter; joint changes may touch many; demoting a voter in joint goes through learnersNext', () => {
    const refuse = (fn: () => unknown) =>
      expect(fn).toThrow(expect.objectContaining({ code: RaftErrorCode.InvalidConfChange }));
    refuse(() =>
      changer([1, 2, 3]).simple(
        cc(ConfChangeTransition.Auto, [ConfChangeType.AddVoter, 4], [ConfChangeType.AddVoter, 5]).changes,
      ),
    );
    refuse(() =>
      changer([1, 2, 3]).simple(
        cc(ConfChangeTransition.Auto, [ConfChangeType.RemoveNode, 3], [ConfChangeType.AddVoter, 5]).changes,
      ),
    );
    refuse(() => changer([1]).apply(cc(ConfChangeTransition.Auto, [ConfChangeType.RemoveNode, 1])));
    refuse(() => changer([1, 2, 3]).leaveJoint());
    refuse(() => changer([1, 2], [], [1, 2, 3]).enterJoint(false, []));
    const j = changer([1, 2, 3]).apply(
      cc(ConfChangeTransition.JointImplicit, [ConfChangeType.AddLearner, 3], [ConfChangeType.AddVoter, 4]),
    );
    expect([...j.config.incoming].sort()).toEqual([1, 2, 4]);
    expect([...j.config.outgoing].sort()).toEqual([1, 2, 3]);
    expect([...j.config.learnersNext]).toEqual([3]);
    expect(j.config.autoLeave).toBe(true);
    const left = new Changer(
      j.config,
      j.progress,
      10 as LogIndex,
      (n, m2, l) => new Progress(n, m2, l, 4, 0),
    ).leaveJoint();
    expect([...left.config.learners]).toEqual([3]);
    expect(left.progress.get(id(3))!.isLearner).toBe(true);
    expect(left.config.outgoing.size).toBe(0);
    // The changer never edits the progress it was given (a refused change leaves no trace).
    expect(j.progress.get(id(3))!.isLearner).toBe(false);
    // Promotion of a learner is a simple change.
    const p = changer([1, 2], [3]).apply(cc(ConfChangeTransition.Auto, [ConfChangeType.AddVoter, 3]));
    expect([...p.config.incoming].sort()).toEqual([1, 2, 3]);
    expect(p.config.learners.size).toBe(0);
  });
});

describe('restart', () => {
  it('an application that applied beyond the persisted commit (commit-only hard states are not synced) restarts fine', () => {
    const storage = new MemoryStorage({
      confState: bootstrapConfState([id(1), id(2), id(3)]),
      entries: [entry(1, 1, 'a'), entry(2, 1, 'b'), entry(3, 1, 'c')],
      hardState: { term: 1 as Term, vote: 1 as RaftId, commit: 1 as LogIndex },
    });
    const node = new RaftNode({ id: id(1), storage, rng: new SeededRng(1), appliedIndex: 3 as LogIndex });
    expect(node.status()).toMatchObject({ applied: 3, hardState: { commit: 3 } });
    expect(node.hasReady() ? node.ready().committedEntries : []).toEqual([]);
  });

  it('an applied index beyond the log, or below its snapshot, is refused with a reason', () => {
    const storage = new MemoryStorage({ confState: bootstrapConfState([id(1)]), entries: [entry(1, 1)] });
    expect(() => new RaftNode({ id: id(1), storage, rng: new SeededRng(1), appliedIndex: 5 as LogIndex })).toThrow(
      /beyond the log's last index 1/,
    );
    const snap = new MemoryStorage({
      snapshot: {
        metadata: { index: 10 as LogIndex, term: 2 as Term, confState: bootstrapConfState([id(1)]) },
        data: new Uint8Array(0),
      },
    });
    expect(
      () => new RaftNode({ id: id(1), storage: snap, rng: new SeededRng(1), appliedIndex: 4 as LogIndex }),
    ).toThrow(/restore the application from storage.snapshot\(\)/);
  });
});

describe('limits and flow control', () => {
  const size = (ents: readonly Entry[]): number => ents.reduce((n, e) => n + e.data.length + 24, 0);

  it('appends carry at most maxMessageBytes of entries (one entry may exceed it alone); Ready bounds committed bytes', () => {
    const m = leader({ config: { preVote: false, maxMessageBytes: 400, maxCommittedBytesPerReady: 300 } });
    // Node 2 is in probe state and silent: queue 20 entries, then let it ask for them.
    for (let i = 0; i < 20; i++) m.node.propose(new Uint8Array(100));
    m.node.propose(new Uint8Array(1000));
    drain(m);
    m.node.step(msg({ type: MessageType.AppResp, from: id(2), to: id(1), term: 1 as Term, index: 1 as LogIndex }));
    const apps = drain(m).filter((x) => x.type === MessageType.App && x.to === 2);
    expect(apps.length).toBeGreaterThan(3);
    for (const a of apps) expect(a.entries.length === 1 || size(a.entries) <= 400).toBe(true);
    expect(apps.flatMap((a) => a.entries.map((e) => e.index))).toEqual(Array.from({ length: 21 }, (_, i) => i + 2));
    // Everything commits once node 2 acknowledges; each Ready hands out <= 300 bytes (or one entry).
    m.node.step(msg({ type: MessageType.AppResp, from: id(2), to: id(1), term: 1 as Term, index: 22 as LogIndex }));
    let applied = 0;
    while (m.node.hasReady()) {
      const rd = m.node.ready();
      m.storage.save(rd.hardState, rd.entries);
      expect(rd.committedEntries.length === 1 || size(rd.committedEntries) <= 300).toBe(true);
      applied += rd.committedEntries.length;
      m.node.advance(rd);
    }
    expect(applied).toBe(21);
  });

  it('reportUnreachable drops a follower back to probing; reportSnapshot resumes one that was sent a snapshot', () => {
    const m = leader();
    m.node.step(msg({ type: MessageType.AppResp, from: id(2), to: id(1), term: 1 as Term, index: 1 as LogIndex }));
    drain(m);
    expect(m.node.status().progress!.get(id(2))!.state).toBe('replicate');
    m.node.reportUnreachable(id(2));
    expect(m.node.status().progress!.get(id(2))!.state).toBe('probe');

    // A follower behind a compacted log is sent a snapshot; a failed send lets the leader retry.
    const l = leader();
    for (let i = 0; i < 5; i++) l.node.propose(bytes(`e${i}`));
    drain(l);
    l.node.step(msg({ type: MessageType.AppResp, from: id(2), to: id(1), term: 1 as Term, index: 6 as LogIndex }));
    drain(l);
    l.storage.createSnapshot(6 as LogIndex, l.node.confState(), bytes('state'));
    l.storage.compact(6 as LogIndex);
    // Node 3 answers a heartbeat (it is alive) but holds nothing: it must get the snapshot.
    l.node.step(msg({ type: MessageType.HeartbeatResp, from: id(3), to: id(1), term: 1 as Term }));
    l.node.step(
      msg({
        type: MessageType.AppResp,
        from: id(3),
        to: id(1),
        term: 1 as Term,
        index: 1 as LogIndex,
        reject: true,
        rejectHint: 0 as LogIndex,
      }),
    );
    let sent = drain(l);
    const snaps = sent.filter((x) => x.type === MessageType.Snap && x.to === 3);
    expect(snaps.length).toBe(1);
    expect(snaps[0].snapshot!.metadata.index).toBe(6);
    expect(l.node.status().progress!.get(id(3))!.state).toBe('snapshot');
    l.node.reportSnapshot(id(3), false);
    expect(l.node.status().progress!.get(id(3))!.state).toBe('probe');
    l.node.step(msg({ type: MessageType.HeartbeatResp, from: id(3), to: id(1), term: 1 as Term }));
    sent = drain(l);
    expect(sent.filter((x) => x.type === MessageType.Snap && x.to === 3).length).toBe(1);
    // The follower installed it and says so: replication resumes with entries.
    l.node.step(msg({ type: MessageType.AppResp, from: id(3), to: id(1), term: 1 as Term, index: 6 as LogIndex }));
    drain(l);
    expect(l.node.status().progress!.get(id(3))!.state).toBe('replicate');
  });
});

describe('Ready.mustSync', () => {
  it('a Ready that applies a configuration change carries the hard state and must be synced', () => {
    const m = leader();
    m.node.step(msg({ type: MessageType.AppResp, from: id(2), to: id(1), term: 1 as Term, index: 1 as LogIndex }));
    drain(m);
    m.node.proposeConfChange({
      transition: ConfChangeTransition.Auto,
      changes: [{ type: ConfChangeType.AddLearner, nodeId: id(4) }],
      context: new Uint8Array(0),
    });
    drain(m);
    m.node.step(msg({ type: MessageType.AppResp, from: id(2), to: id(1), term: 1 as Term, index: 2 as LogIndex }));
    const rd = m.node.ready();
    expect(rd.committedEntries.map((e) => e.type)).toEqual([EntryType.ConfChange]);
    expect(rd.entries).toEqual([]);
    expect(rd.hardState).toMatchObject({ commit: 2 });
    expect(rd.mustSync).toBe(true);
    m.storage.save(rd.hardState, rd.entries);
    m.node.advance(rd);
    expect(m.node.confState().learners).toEqual([4]);
    // A commit-only change that applies a normal entry does not need an fsync.
    m.node.propose(bytes('n'));
    drain(m);
    m.node.step(msg({ type: MessageType.AppResp, from: id(2), to: id(1), term: 1 as Term, index: 3 as LogIndex }));
    const rd2 = m.node.ready();
    expect(rd2.committedEntries.map((e) => e.type)).toEqual([EntryType.Normal]);
    expect(rd2.mustSync).toBe(false);
    m.node.advance(rd2);
  });
});
