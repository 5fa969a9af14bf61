// RaftDriver (node/raft/driver.ts) on its own: three production drivers wired to each other in
// memory, on MemoryStorage and one ManualClock, so every tick, timer and batching point is
// explicit and the runs are deterministic. What it checks: replication and apply order, that the
// driver persists with fsync exactly when rd.mustSync (and that no message leaves before the term,
// vote or entries it promises were synced), linearizable reads, and that a read which times out —
// even while a Ready cycle is stuck on a slow disk — answers its caller and nothing else.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import {
  bootstrapSnapshot,
  MessageType,
  NO_NODE,
  RaftNode,
  Role,
  SeededRng,
  type Entry,
  type HardState,
  type LogIndex,
  type Message,
  type RaftId,
  type Snapshot,
} from '../../consensus/index.js';
import { MemoryStorage } from '../../consensus/memory-storage.js';
import { ManualClock } from '../../node/clock.js';
import { NodeError, NodeErrorCode } from '../../node/errors.js';
import { RaftDriver, type ReplicatedStateMachine } from '../../node/raft/driver.js';

const TICK_MS = 100;
const READ_TIMEOUT_MS = 2_000;

/** MemoryStorage that records what the driver asked to be synced, and can stall its writes. */
class RecordingStorage extends MemoryStorage {
  readonly saves: Array<{ sync: boolean; entries: number; hardState?: HardState }> = [];
  /** What a crash would keep: the state as of the last synced save. */
  synced = { term: 0, vote: NO_NODE as RaftId, lastIndex: 0 };
  /** When set, save() waits for this promise (a slow disk). */
  stall: Promise<void> | undefined;

  override save(
    hardState: HardState | undefined,
    entries: readonly Entry[],
    options?: { sync?: boolean },
  ): void | Promise<void> {
    const stall = this.stall;
    if (stall !== undefined) return stall.then(() => this.record(hardState, entries, options?.sync ?? true));
    this.record(hardState, entries, options?.sync ?? true);
  }

  private record(hardState: HardState | undefined, entries: readonly Entry[], sync: boolean): void {
    super.save(hardState, entries);
    this.saves.push({ sync, entries: entries.length, hardState });
    if (sync) {
      const hs = this.hardState();
      this.synced = { term: hs.term, vote: hs.vote, lastIndex: this.lastIndex() };
    }
  }
}

class ListStateMachine implements ReplicatedStateMachine {
  readonly applied: Entry[] = [];
  private index = 1 as LogIndex;
  async apply(entries: readonly Entry[]): Promise<void> {
    for (const e of entries) {
      expect(e.index).toBe(this.index + 1); // in order, no gap, no repeat
      this.applied.push(e);
      this.index = e.index;
    }
  }
  async restore(snapshot: Snapshot): Promise<void> {
    this.index = snapshot.metadata.index;
  }
  async snapshotData(): Promise<Uint8Array> {
    return new Uint8Array(0);
  }
  appliedIndex(): LogIndex {
    return this.index;
  }
}

interface Member {
  readonly id: RaftId;
  readonly raft: RaftNode;
  readonly storage: RecordingStorage;
  readonly sm: ListStateMachine;
  readonly driver: RaftDriver;
}

class Cluster {
  readonly clock = new ManualClock(1_700_000_000_000, 7);
  readonly members = new Map<RaftId, Member>();
  /** Links that drop every message (both directions). */
  readonly cut = new Set<RaftId>();
  readonly durabilityViolations: string[] = [];
  fatal: unknown[] = [];

  constructor(size: number) {
    const ids = Array.from({ length: size }, (_, i) => (i + 1) as RaftId);
    const snap = bootstrapSnapshot(ids);
    for (const id of ids) {
      const storage = new RecordingStorage({ snapshot: snap });
      const raft = new RaftNode({
        id,
        storage,
        rng: new SeededRng(id * 31),
        electionTicks: 10,
        heartbeatTicks: 1,
        appliedIndex: 1 as LogIndex,
      });
      const sm = new ListStateMachine();
      const driver = new RaftDriver(
        { tickMs: TICK_MS, readTimeoutMs: READ_TIMEOUT_MS },
        {
          raft,
          storage,
          stateMachine: sm,
          clock: this.clock,
          sender: { send: (m) => this.deliver(storage, m) },
          onFatal: (err) => this.fatal.push(err),
        },
      );
      this.members.set(id, { id, raft, storage, sm, driver });
    }
  }

  /** The sender: checks what the message promises is synced, then hands it to the peer. */
  private deliver(from: RecordingStorage, m: Message): void {
    const s = from.synced;
    // A PreVote (and its answer) carries the term the candidate WOULD take, which nobody has
    // taken yet (thesis §9.6); every other message is stamped with a term its sender holds.
    const prevote = m.type === MessageType.PreVote || m.type === MessageType.PreVoteResp;
    if (!prevote && m.term > s.term)
      this.durabilityViolations.push(`${m.type} at term ${m.term} before term ${s.term} synced`);
    if (m.type === MessageType.VoteResp && !m.reject && s.vote !== m.to)
      this.durabilityViolations.push(`vote for ${m.to} sent before it was synced`);
    if (m.type === MessageType.AppResp && !m.reject && m.index > s.lastIndex)
      this.durabilityViolations.push(`AppResp ${m.index} sent with only ${s.lastIndex} synced`);
    if (this.cut.has(m.from) || this.cut.has(m.to)) return;
    this.members.get(m.to)?.driver.step(m);
  }

  start(): void {
    for (const m of this.members.values()) m.driver.start();
  }

  /** Lets the drivers' loops run: fires due immediates, then lets their promises settle. */
  async settle(rounds = 30): Promise<void> {
    for (let i = 0; i < rounds; i++) {
      this.clock.advance(0);
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  /** Awaits a driver call while the loop runs (the loop only moves when the clock does). */
  async within<T>(p: Promise<T>): Promise<T> {
    await this.settle();
    return p;
  }

  async run(ms: number): Promise<void> {
    for (let t = 0; t < ms; t += TICK_MS) {
      this.clock.advance(TICK_MS);
      await this.settle(5);
    }
  }

  leader(): Member | undefined {
    return [...this.members.values()].find((m) => m.raft.basicStatus().softState.role === Role.Leader);
  }

  async stop(): Promise<void> {
    const stops = [...this.members.values()].map((m) => m.driver.stop());
    await this.settle();
    await Promise.all(stops);
  }
}

let unhandled: unknown[] = [];
const onUnhandled = (reason: unknown): void => {
  unhandled.push(reason);
};
beforeEach(() => {
  unhandled = [];
  process.on('unhandledRejection', onUnhandled);
});
afterEach(() => {
  process.off('unhandledRejection', onUnhandled);
});

describe('RaftDriver', () => {
  it('elects a leader on ticks, replicates and applies proposals in order on every node', async () => {
    const c = new Cluster(3);
    c.start();
    await c.run(3_000);
    const leader = c.leader();
    expect(leader).toBeDefined();
    const data = ['a', 'b', 'c'].map((s) => new TextEncoder().encode(s));
    for (const d of data) await c.within(leader!.driver.propose(d));
    await c.run(500);
    for (const m of c.members.values()) {
      const normal = m.sm.applied.filter((e) => e.data.length > 0).map((e) => new TextDecoder().decode(e.data));
      expect(normal).toEqual(['a', 'b', 'c']);
      expect(m.raft.basicStatus().applied).toBe(m.sm.appliedIndex());
    }
    expect(c.fatal).toEqual([]);
    await c.stop();
  });

  it('fsyncs exactly when rd.mustSync: never sends before term, vote or entries are synced, and skips the fsync of commit-only writes', async () => {
    const c = new Cluster(3);
    c.start();
    await c.run(3_000);
    const leader = c.leader()!;
    for (let i = 0; i < 20; i++) await c.within(leader.driver.propose(new Uint8Array([i])));
    await c.run(1_000);
    expect(c.durabilityViolations).toEqual([]);
    const saves = [...c.members.values()].flatMap((m) => m.storage.saves);
    // Entries always synced; a save with only a commit move is not (etcd's MustSync).
    expect(saves.filter((s) => s.entries > 0).every((s) => s.sync)).toBe(true);
    expect(saves.some((s) => !s.sync && s.entries === 0)).toBe(true);
    await c.stop();
  });

  it('serves a linearizable read once the leader confirmed its commit index', async () => {
    const c = new Cluster(3);
    c.start();
    await c.run(3_000);
    const leader = c.leader()!;
    await c.within(leader.driver.propose(new Uint8Array([1])));
    await c.run(300);
    const follower = [...c.members.values()].find((m) => m !== leader)!;
    const read = follower.driver.readBarrier();
    await c.run(500);
    const index = await read;
    expect(index).toBeGreaterThanOrEqual(leader.raft.basicStatus().hardState.commit);
    expect(follower.sm.appliedIndex()).toBeGreaterThanOrEqual(index);
    await c.stop();
  });

  it('a read that times out rejects its caller with Timeout, nothing else: no unhandled rejection', async () => {
    const c = new Cluster(3);
    c.start();
    await c.run(3_000);
    const leader = c.leader()!;
    // The leader alone: CheckQuorum deposes it, no ReadIndex can be confirmed.
    for (const m of c.members.values()) if (m !== leader) c.cut.add(m.id);
    const read = leader.driver.readBarrier();
    const outcome = read.then(
      () => 'resolved',
      (err: unknown) => err,
    );
    await c.run(READ_TIMEOUT_MS + 500);
    const err = await outcome;
    expect(err).toBeInstanceOf(NodeError);
    expect((err as NodeError).code).toBe(NodeErrorCode.Timeout);
    await new Promise<void>((resolve) => setImmediate(resolve));
    expect(unhandled).toEqual([]);
    expect(c.fatal).toEqual([]);
    await c.stop();
  });

  it('a read whose timer fires while a Ready cycle is stuck on a slow disk answers its caller only', async () => {
    // The reported crash: the timeout fired while the ReadIndex input was still queued behind a
    // slow cycle; its rejection had no handler yet and killed the process.
    let release!: () => void;
    const c = new Cluster(1);
    const only = [...c.members.values()][0]!;
    const storage = only.storage;
    c.start();
    await c.run(3_000);
    expect(only.raft.basicStatus().softState.role).toBe(Role.Leader);
    storage.stall = new Promise<void>((resolve) => (release = resolve));
    const stuck = only.driver.propose(new Uint8Array([9])); // its cycle now waits on the disk
    await c.settle();
    const read = only.driver.readBarrier();
    const outcome = read.then(
      () => 'resolved',
      (err: unknown) => err,
    );
    c.clock.advance(READ_TIMEOUT_MS + 1);
    await c.settle();
    const err = await outcome;
    expect((err as NodeError).code).toBe(NodeErrorCode.Timeout);
    expect(unhandled).toEqual([]);
    storage.stall = undefined;
    release();
    await stuck;
    await c.run(500);
    expect(unhandled).toEqual([]);
    expect(c.fatal).toEqual([]);
    await c.stop();
  });

  it('stop() rejects pending reads with Unavailable and refuses new calls', async () => {
    const c = new Cluster(3);
    c.start();
    await c.run(3_000);
    const leader = c.leader()!;
    for (const m of c.members.values()) if (m !== leader) c.cut.add(m.id);
    const outcome = leader.driver.readBarrier().then(
      () => 'resolved',
      (err: unknown) => err,
    );
    await c.settle();
    await c.stop();
    expect(((await outcome) as NodeError).code).toBe(NodeErrorCode.Unavailable);
    await expect(leader.driver.propose(new Uint8Array([1]))).rejects.toMatchObject({
      code: NodeErrorCode.Unavailable,
    });
  });
});
