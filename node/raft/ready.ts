// The ONE Ready loop body: how a Ready of the core is persisted, sent, applied and advanced.
//
// Production's RaftDriver (node/raft/driver.ts), the seeded simulator (test/sim/simulator.ts), the
// consensus scenario network (test/consensus/network.ts) and both Raft benches (node/raft/bench.ts,
// node/raftlog/bench.ts) call processReady, so the loop the simulator checks and the benches time
// is the loop production runs (TigerBeetle's lesson: a simulator that re-implements the driver tests
// a copy, and ours drifted — it honoured mustSync while production always synced).
//
// The order is etcd-io/raft's (README "Usage", and raftexample's serveChannels), documented on
// consensus/types.ts's Ready:
//   1. persist the snapshot (synced), then entries and hard state in one write, fsynced only when
//      rd.mustSync (etcd's WAL.Save syncs only when raft.MustSync says so: a commit-only change is
//      recomputed after a crash). mustSync is true whenever term, vote or the log changed — exactly
//      what a vote, an AppResp or any message stamped with the term promises — so nothing leaves
//      before the state it depends on is durable;
//   2. send the messages;
//   3. install the snapshot into the state machine, apply committed entries, hand over read states;
//   4. advance, then report snapshot sends to the core (a step, so never between ready() and
//      advance()), then the caller's after-advance work (snapshots of its own, waiters).
//
// It lives in node/ and not consensus/ because it awaits IO; it takes interfaces only, so the
// simulator in test/ runs it over simulated storage. It runs synchronously for as long as every
// hook returns synchronously (the simulator, the in-memory network) and continues asynchronously
// from the first hook that returns a promise (the driver's LevelDB writes) — one body, written
// once as a generator, for both.

import {
  MessageType,
  type Entry,
  type HardState,
  type Message,
  type RaftId,
  type RaftNode,
  type ReadState,
  type Ready,
  type Snapshot,
} from '../../consensus/index.js';

type MaybePromise<T> = T | Promise<T>;

/** The write side of the log that step 1 uses (consensus's WritableStorage satisfies it). */
export interface ReadyStorage {
  applySnapshot(snapshot: Snapshot): MaybePromise<void>;
  /** Hard state and entries in one atomic write; with `sync` it resolves once fsynced. */
  save(
    hardState: HardState | undefined,
    entries: readonly Entry[],
    options: { readonly sync: boolean },
  ): MaybePromise<void>;
}

/** What a caller plugs into the loop. Hooks may return a promise; the loop then awaits it. */
export interface ReadyIo {
  readonly storage: ReadyStorage;
  /**
   * After step 1, before any message leaves. Returning false abandons the cycle without sending,
   * applying or advancing: the simulator's "process died right after its disk write".
   */
  afterPersist?(rd: Ready): boolean | void;
  /**
   * Queues one message. Returning false says it is known not to be delivered; a snapshot is then
   * reported failed to the core (etcd's ReportSnapshot(SnapshotFailure)), else reported sent.
   */
  send(message: Message): boolean | void;
  /** Installs a snapshot into the state machine (its log record is already persisted). */
  restore(snapshot: Snapshot): MaybePromise<void>;
  /** Applies committed entries, in order. */
  apply(entries: readonly Entry[]): MaybePromise<void>;
  /** ReadIndex answers, handed over after apply: each is served once applied >= its index. */
  readStates?(readStates: readonly ReadState[]): void;
  /** After advance: the caller's snapshots and compaction, waiters, metrics. */
  afterAdvance?(rd: Ready): MaybePromise<void>;
}

/** The synchronous variant of ReadyIo: every hook returns at once (in-memory storage). */
export interface SyncReadyIo extends ReadyIo {
  readonly storage: {
    applySnapshot(snapshot: Snapshot): void;
    save(hardState: HardState | undefined, entries: readonly Entry[], options: { readonly sync: boolean }): void;
  };
  restore(snapshot: Snapshot): void;
  apply(entries: readonly Entry[]): void;
  afterAdvance?(rd: Ready): void;
}

/**
 * Processes one Ready of `raft` through `io`, in etcd's order. Resolves true once advanced, false
 * when afterPersist abandoned the cycle. Synchronous (returns a boolean) when every hook is.
 */
export function processReady(raft: RaftNode, rd: Ready, io: ReadyIo): boolean | Promise<boolean> {
  return run(cycle(raft, rd, io));
}

/** processReady for callers whose hooks are all synchronous (the simulator, the test network). */
export function processReadySync(raft: RaftNode, rd: Ready, io: SyncReadyIo): boolean {
  const done = processReady(raft, rd, io);
  if (typeof done !== 'boolean') {
    // A programmer error: a hook returned a promise, so the cycle would finish later, unseen.
    throw new Error('processReadySync: a hook returned a promise; use processReady and await it');
  }
  return done;
}

function* cycle(raft: RaftNode, rd: Ready, io: ReadyIo): Generator<unknown, boolean, unknown> {
  // 1. Persist.
  if (rd.snapshot !== undefined) yield io.storage.applySnapshot(rd.snapshot);
  if (rd.entries.length > 0 || rd.hardState !== undefined) {
    yield io.storage.save(rd.hardState, rd.entries, { sync: rd.mustSync });
  }
  if (io.afterPersist?.(rd) === false) return false;
  // 2. Send: what the messages promise is durable now.
  let snapshotsSent: Array<{ to: RaftId; ok: boolean }> | undefined;
  for (const m of rd.messages) {
    const ok = io.send(m) !== false;
    if (m.type === MessageType.Snap) (snapshotsSent ??= []).push({ to: m.to, ok });
  }
  // 3. Apply.
  if (rd.snapshot !== undefined) yield io.restore(rd.snapshot);
  if (rd.committedEntries.length > 0) yield io.apply(rd.committedEntries);
  if (rd.readStates.length > 0) io.readStates?.(rd.readStates);
  // 4. Advance.
  raft.advance(rd);
  if (snapshotsSent !== undefined) for (const s of snapshotsSent) raft.reportSnapshot(s.to, s.ok);
  if (io.afterAdvance !== undefined) yield io.afterAdvance(rd);
  return true;
}

function isPromiseLike(x: unknown): x is PromiseLike<unknown> {
  return typeof x === 'object' && x !== null && typeof (x as { then?: unknown }).then === 'function';
}

/** Drives the generator synchronously until a hook hands back a promise, then asynchronously. */
function run<T>(gen: Generator<unknown, T, unknown>): T | Promise<T> {
  let step = gen.next();
  while (!step.done) {
    if (isPromiseLike(step.value)) return finish(gen, step.value);
    step = gen.next(step.value);
  }
  return step.value;
}

async function finish<T>(gen: Generator<unknown, T, unknown>, pending: PromiseLike<unknown>): Promise<T> {
  let step = gen.next(await pending);
  while (!step.done) step = gen.next(isPromiseLike(step.value) ? await step.value : step.value);
  return step.value;
}
