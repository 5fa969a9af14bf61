// The log storage seen by the Raft core (read side), modelled on etcd-io/raft's Storage.
// The core only reads through this interface; the caller writes what Ready tells it to.
// Reads are synchronous: the durable implementation (node/raftlog) keeps the unsnapshotted
// log in memory and writes through to disk, as etcd's MemoryStorage + WAL do.

import type { ConfState, Entry, HardState, LogIndex, Snapshot, Term } from './types.js';

export interface InitialState {
  readonly hardState: HardState;
  /**
   * The membership as of the snapshot's index (storage.snapshot().metadata.index). The core
   * re-applies the configuration changes logged after it, up to RaftConfig.appliedIndex, itself.
   */
  readonly confState: ConfState;
}

export interface Storage {
  initialState(): InitialState;
  /**
   * Entries in [lo, hi), at least one if lo < hi, and then no more than maxBytes in total.
   * Throws RaftError Compacted if lo <= the snapshot index, Unavailable if hi > lastIndex+1.
   */
  entries(lo: LogIndex, hi: LogIndex, maxBytes: number): Entry[];
  /** Term of entry i; the snapshot's index also answers (with the snapshot's term). Throws Compacted / Unavailable. */
  term(i: LogIndex): Term;
  /** Index of the first entry that may still be read (snapshot index + 1). */
  firstIndex(): LogIndex;
  lastIndex(): LogIndex;
  /** The most recent snapshot. */
  snapshot(): Snapshot;
}

/**
 * The write side, shared by the in-memory and the durable implementation so both pass one
 * compliance suite (test/compliance). In the durable one each call resolves only once the
 * data is on disk with fsync; the in-memory one resolves at once.
 */
export interface WritableStorage extends Storage {
  /**
   * Persists hard state and entries in one atomic write. Entries overwrite a conflicting suffix.
   * `sync` (default true) is Ready.mustSync: false only when nothing but commit moved, which may
   * then be lost in a crash (it is recomputed); writes stay in order, so a later synced write makes
   * an earlier unsynced one durable too. The in-memory storage ignores it.
   */
  save(
    hardState: HardState | undefined,
    entries: readonly Entry[],
    options?: { readonly sync?: boolean },
  ): Promise<void> | void;
  /** Replaces the log with a snapshot (entries up to its index are dropped). */
  applySnapshot(snapshot: Snapshot): Promise<void> | void;
  /** Records a snapshot the application made at `index` and drops entries before `index - retain`. */
  createSnapshot(index: LogIndex, confState: ConfState, data: Uint8Array): Promise<Snapshot> | Snapshot;
  /** Drops entries up to and including `compactIndex` (must be <= the applied snapshot index). */
  compact(compactIndex: LogIndex): Promise<void> | void;
}
