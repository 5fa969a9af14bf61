// The in-memory Raft log: the reference implementation of WritableStorage (consensus/storage.ts),
// modelled on etcd-io/raft's MemoryStorage. Tests and the simulator use it directly; the durable
// storage (node/raftlog/level-storage.ts) keeps one of these as its read cache and writes through
// to disk, so both share exactly these semantics and pass one compliance suite (test/raftlog).
//
// Layout: `ents[0]` is a dummy entry at the compaction point. Its index is the last index that was
// dropped ("offset") and its term that entry's term, so term(offset) still answers — the core needs
// the term of the entry just before the first one it reads (prevLogTerm, Raft paper Figure 2).
// Real entries follow at offset+1, offset+2, ...
//
// Invariants (checked on every write; assertions stay on):
//   offset <= snapshot.metadata.index <= lastIndex  — compacted entries are always covered by the
//     snapshot, so a follower that needs one can be sent the snapshot instead (Figure 13);
//   entries are contiguous and their terms never decrease (Log Matching, §5.3);
//   hardState.term never decreases, the vote never changes within a term (§5.2: one vote per term),
//   hardState.commit never decreases and never exceeds lastIndex.
//
// Pure and synchronous: no IO, no clock, no randomness. Imports nothing outside consensus/.

import { assert, RaftError, RaftErrorCode } from './errors.js';
import type { InitialState, WritableStorage } from './storage.js';
import {
  EntryType,
  NO_NODE,
  type ConfState,
  type Entry,
  type HardState,
  type LogIndex,
  type Snapshot,
  type Term,
} from './types.js';

/**
 * Fixed per-entry overhead counted by `entryBytes`, in bytes: term (8) + index (8) + type (1),
 * rounded up with framing. It makes a stream of empty entries (leader no-ops) still count toward
 * every byte limit, so "maxBytes" bounds the number of entries too.
 */
export const ENTRY_OVERHEAD_BYTES = 24;

/** The size of an entry as counted by every `maxBytes` limit (storage reads, messages, quotas). */
export function entryBytes(entry: Entry): number {
  return entry.data.length + ENTRY_OVERHEAD_BYTES;
}

/**
 * How many entries before the snapshot index `createSnapshot` keeps by default. A follower
 * slightly behind then catches up through entries rather than a whole snapshot (etcd's
 * raftexample keeps 10,000 for the same reason). Bounded: it is also the memory the durable
 * storage holds for a log that is snapshotted regularly.
 */
export const DEFAULT_SNAPSHOT_RETAIN_ENTRIES = 10_000;

export const EMPTY_CONF_STATE: ConfState = Object.freeze({
  voters: [],
  votersOutgoing: [],
  learners: [],
  learnersNext: [],
  autoLeave: false,
});

export const EMPTY_HARD_STATE: HardState = Object.freeze({ term: 0 as Term, vote: NO_NODE, commit: 0 as LogIndex });

export interface MemoryStorageOptions {
  /** The persisted term, vote and commit (default: term 0, no vote, commit 0). */
  readonly hardState?: HardState;
  /** The membership when no snapshot is given (a snapshot at index 0 carries it). */
  readonly confState?: ConfState;
  /** The latest snapshot (default: index 0, term 0, `confState`, empty data). */
  readonly snapshot?: Snapshot;
  /**
   * The compaction point: index and term of the last dropped entry. Defaults to the snapshot's.
   * Must be <= the snapshot index; may be lower when entries before the snapshot were retained.
   */
  readonly compacted?: { readonly index: LogIndex; readonly term: Term };
  /** Entries following the compaction point, contiguous from compacted.index + 1. */
  readonly entries?: readonly Entry[];
  /** See DEFAULT_SNAPSHOT_RETAIN_ENTRIES. 0 drops everything up to the snapshot index. */
  readonly snapshotRetainEntries?: number;
}

/** What a `save` changed, for write-through implementations. */
export interface SaveEffect {
  /** The entries that were written (a suffix of the argument: entries already held are skipped). */
  readonly written: readonly Entry[];
  /** Entries with index in [truncatedFrom, previousLastIndex] that are no longer in the log. */
  readonly truncatedFrom: LogIndex;
  readonly previousLastIndex: LogIndex;
  readonly lastIndex: LogIndex;
  readonly hardState: HardState;
  readonly hardStateChanged: boolean;
}

/** What a compaction dropped: entries in [fromIndex, throughIndex] (empty when from > through). */
export interface CompactEffect {
  readonly fromIndex: LogIndex;
  readonly throughIndex: LogIndex;
  /** The new dummy: index and term of the last dropped entry. */
  readonly compacted: { readonly index: LogIndex; readonly term: Term };
}

export class MemoryStorage implements WritableStorage {
  private hard: HardState;
  private snap: Snapshot;
  /** ents[0] is the dummy at the compaction point; see the file header. Invariant: length >= 1. */
  private ents: Entry[];
  /** Sum of entryBytes over ents[1..] (the dummy excluded): what the log holds in memory. */
  private bytesHeld = 0;
  private readonly snapshotRetainEntries: number;

  /** A fresh log for a node that starts a new cluster with this membership. */
  static bootstrap(
    confState: ConfState,
    options: Omit<MemoryStorageOptions, 'confState' | 'snapshot'> = {},
  ): MemoryStorage {
    return new MemoryStorage({ ...options, confState });
  }

  constructor(options: MemoryStorageOptions = {}) {
    this.snap = options.snapshot ?? {
      metadata: { index: 0 as LogIndex, term: 0 as Term, confState: options.confState ?? EMPTY_CONF_STATE },
      data: new Uint8Array(0),
    };
    assert(
      options.snapshot === undefined || options.confState === undefined,
      'MemoryStorage: give either a snapshot or a confState, not both (the snapshot carries the membership)',
    );
    const compacted = options.compacted ?? { index: this.snap.metadata.index, term: this.snap.metadata.term };
    assert(
      compacted.index <= this.snap.metadata.index,
      () =>
        `MemoryStorage: compaction point ${compacted.index} is beyond the snapshot index ${this.snap.metadata.index}`,
    );
    this.ents = [dummy(compacted.index, compacted.term)];
    const entries = options.entries ?? [];
    if (entries.length > 0) {
      assert(
        entries[0].index === compacted.index + 1,
        () => `MemoryStorage: first entry ${entries[0].index} does not follow the compaction point ${compacted.index}`,
      );
      checkContiguous(entries, compacted.term);
      // A loop, not push(...entries): a restored log can hold more entries than a call has arguments.
      for (const e of entries) {
        this.ents.push(e);
        this.bytesHeld += entryBytes(e);
      }
    }
    assert(
      this.snap.metadata.index <= this.lastIndex(),
      () => `MemoryStorage: snapshot index ${this.snap.metadata.index} is beyond lastIndex ${this.lastIndex()}`,
    );
    if (this.snap.metadata.index > compacted.index) {
      const held = this.ents[this.snap.metadata.index - compacted.index].term;
      assert(
        held === this.snap.metadata.term,
        () =>
          `MemoryStorage: snapshot at ${this.snap.metadata.index} has term ${this.snap.metadata.term} but the log holds term ${held}`,
      );
    }
    this.hard = options.hardState ?? EMPTY_HARD_STATE;
    assert(
      this.hard.commit <= this.lastIndex(),
      () =>
        `MemoryStorage: commit ${this.hard.commit} is beyond lastIndex ${this.lastIndex()}. Was the raft log corrupted, truncated, or lost?`,
    );
    const retain = options.snapshotRetainEntries ?? DEFAULT_SNAPSHOT_RETAIN_ENTRIES;
    assert(
      Number.isSafeInteger(retain) && retain >= 0,
      () => `MemoryStorage: snapshotRetainEntries ${retain} must be a non-negative integer`,
    );
    this.snapshotRetainEntries = retain;
  }

  // ---------------------------------------------------------------- read side (Storage)

  initialState(): InitialState {
    return { hardState: this.hard, confState: this.snap.metadata.confState };
  }

  /** The persisted hard state (same as initialState().hardState). */
  hardState(): HardState {
    return this.hard;
  }

  entries(lo: LogIndex, hi: LogIndex, maxBytes: number): Entry[] {
    const offset = this.offset();
    if (lo <= offset) {
      throw new RaftError(
        RaftErrorCode.Compacted,
        `entries [${lo}, ${hi}): index ${lo} is compacted (first index ${offset + 1})`,
        {
          lo,
          hi,
          firstIndex: offset + 1,
        },
      );
    }
    if (hi > this.lastIndex() + 1) {
      throw new RaftError(RaftErrorCode.Unavailable, `entries [${lo}, ${hi}): beyond lastIndex ${this.lastIndex()}`, {
        lo,
        hi,
        lastIndex: this.lastIndex(),
      });
    }
    assert(lo <= hi, () => `entries: lo ${lo} > hi ${hi}`);
    assert(maxBytes >= 0, () => `entries: maxBytes ${maxBytes} must be >= 0`);
    return limitBytes(this.ents, lo - offset, hi - offset, maxBytes);
  }

  term(i: LogIndex): Term {
    const offset = this.offset();
    if (i < offset) {
      throw new RaftError(RaftErrorCode.Compacted, `term(${i}): compacted (compaction point ${offset})`, {
        index: i,
        compactedIndex: offset,
      });
    }
    if (i - offset >= this.ents.length) {
      throw new RaftError(RaftErrorCode.Unavailable, `term(${i}): beyond lastIndex ${this.lastIndex()}`, {
        index: i,
        lastIndex: this.lastIndex(),
      });
    }
    return this.ents[i - offset].term;
  }

  firstIndex(): LogIndex {
    return (this.offset() + 1) as LogIndex;
  }

  lastIndex(): LogIndex {
    return (this.offset() + this.ents.length - 1) as LogIndex;
  }

  snapshot(): Snapshot {
    return this.snap;
  }

  /**
   * Bytes of entries held (entryBytes summed over firstIndex..lastIndex). The log only shrinks
   * when the application snapshots: the node layer snapshots when this passes its limit.
   */
  heldBytes(): number {
    return this.bytesHeld;
  }

  /** Index and term of the last compacted entry (the dummy). */
  compacted(): { index: LogIndex; term: Term } {
    return { index: this.ents[0].index, term: this.ents[0].term };
  }

  // ---------------------------------------------------------------- write side (WritableStorage)

  save(hardState: HardState | undefined, entries: readonly Entry[]): void {
    this.saveWithEffect(hardState, entries);
  }

  /**
   * `save`, returning what changed. Entries already held with the same term are skipped; the log is
   * truncated at the first entry whose term differs (Figure 2, AppendEntries step 3) and the rest is
   * appended. Entries at or below the compaction point are ignored (they are in the snapshot).
   */
  saveWithEffect(hardState: HardState | undefined, entries: readonly Entry[]): SaveEffect {
    const offset = this.offset();
    const previousLastIndex = this.lastIndex();
    checkContiguous(entries, undefined);
    let start = 0;
    while (start < entries.length && entries[start].index <= offset) start++;
    if (start < entries.length) {
      const first = entries[start];
      assert(
        first.index <= previousLastIndex + 1,
        () => `save: entry ${first.index} would leave a gap after lastIndex ${previousLastIndex}. Missing log entries?`,
      );
      // Skip the prefix already held (same index, same term => same entry by Log Matching).
      while (
        start < entries.length &&
        entries[start].index <= previousLastIndex &&
        this.ents[entries[start].index - offset].term === entries[start].term
      ) {
        start++;
      }
    }
    const written = entries.slice(start);
    let truncatedFrom = (previousLastIndex + 1) as LogIndex;
    if (written.length > 0) {
      const first = written[0];
      const before = this.ents[first.index - 1 - offset].term;
      assert(
        first.term >= before,
        () => `save: entry ${first.index} has term ${first.term} below the previous entry's term ${before}`,
      );
      if (first.index <= previousLastIndex) {
        truncatedFrom = first.index;
        assert(
          first.index > this.hard.commit,
          () =>
            `save: entry ${first.index} (term ${first.term}) conflicts with a committed entry (commit ${this.hard.commit})`,
        );
      }
    }

    const nextHard = hardState ?? this.hard;
    const nextLast = written.length > 0 ? written[written.length - 1].index : previousLastIndex;
    this.checkHardState(nextHard, nextLast);

    if (written.length > 0) {
      const keep = written[0].index - offset;
      for (let i = keep; i < this.ents.length; i++) this.bytesHeld -= entryBytes(this.ents[i]);
      this.ents.length = keep;
      for (const e of written) {
        this.ents.push(e);
        this.bytesHeld += entryBytes(e);
      }
    }
    const hardStateChanged = !sameHardState(nextHard, this.hard);
    this.hard = nextHard;
    return {
      written,
      truncatedFrom,
      previousLastIndex,
      lastIndex: this.lastIndex(),
      hardState: this.hard,
      hardStateChanged,
    };
  }

  applySnapshot(snapshot: Snapshot): void {
    this.applySnapshotWithEffect(snapshot);
  }

  /**
   * Replaces the whole log with `snapshot` (the entries it covers are dropped, and so are later
   * ones: the core restores its log from the snapshot, as etcd's does). Raises commit to the
   * snapshot index in the same step: a snapshot only holds committed state, and a crash between
   * "snapshot saved" and "hard state saved" must not leave commit < snapshot index.
   */
  applySnapshotWithEffect(snapshot: Snapshot): {
    previousFirstIndex: LogIndex;
    previousLastIndex: LogIndex;
    hardState: HardState;
  } {
    const { index, term } = snapshot.metadata;
    if (index <= this.snap.metadata.index) {
      throw new RaftError(
        RaftErrorCode.SnapshotOutOfDate,
        `applySnapshot: snapshot at ${index} is not newer than the one held at ${this.snap.metadata.index}`,
        { index, heldIndex: this.snap.metadata.index },
      );
    }
    assert(term >= 1, () => `applySnapshot: snapshot at ${index} has term ${term}; a non-empty log's terms start at 1`);
    assert(
      index >= this.hard.commit,
      () =>
        `applySnapshot: snapshot at ${index} is behind commit ${this.hard.commit}; replacing the log would drop committed entries`,
    );
    const previousFirstIndex = this.firstIndex();
    const previousLastIndex = this.lastIndex();
    this.snap = snapshot;
    this.ents = [dummy(index, term)];
    this.bytesHeld = 0;
    if (this.hard.commit < index) this.hard = { ...this.hard, commit: index };
    return { previousFirstIndex, previousLastIndex, hardState: this.hard };
  }

  createSnapshot(index: LogIndex, confState: ConfState, data: Uint8Array): Snapshot {
    return this.createSnapshotWithEffect(index, confState, data).snapshot;
  }

  /**
   * Records a snapshot the application made of its state at `index` (an applied, hence committed,
   * index) and drops the entries before the last `snapshotRetainEntries` up to it.
   */
  createSnapshotWithEffect(
    index: LogIndex,
    confState: ConfState,
    data: Uint8Array,
  ): { snapshot: Snapshot; compaction: CompactEffect } {
    if (index <= this.snap.metadata.index) {
      throw new RaftError(
        RaftErrorCode.SnapshotOutOfDate,
        `createSnapshot: index ${index} is not newer than the snapshot held at ${this.snap.metadata.index}`,
        { index, heldIndex: this.snap.metadata.index },
      );
    }
    assert(index <= this.lastIndex(), () => `createSnapshot: index ${index} is beyond lastIndex ${this.lastIndex()}`);
    assert(
      index <= this.hard.commit,
      () =>
        `createSnapshot: index ${index} is not committed (commit ${this.hard.commit}); only applied state may be snapshotted`,
    );
    const snapshot: Snapshot = { metadata: { index, term: this.term(index), confState }, data };
    this.snap = snapshot;
    const compactIndex = Math.max(this.offset(), index - this.snapshotRetainEntries) as LogIndex;
    const compaction = this.compactTo(compactIndex);
    return { snapshot, compaction };
  }

  compact(compactIndex: LogIndex): void {
    this.compactWithEffect(compactIndex);
  }

  compactWithEffect(compactIndex: LogIndex): CompactEffect {
    const offset = this.offset();
    if (compactIndex <= offset) {
      throw new RaftError(RaftErrorCode.Compacted, `compact(${compactIndex}): already compacted through ${offset}`, {
        compactIndex,
        compactedIndex: offset,
      });
    }
    assert(
      compactIndex <= this.snap.metadata.index,
      () =>
        `compact(${compactIndex}): beyond the snapshot index ${this.snap.metadata.index}; the dropped entries would be lost`,
    );
    return this.compactTo(compactIndex);
  }

  // ---------------------------------------------------------------- internals

  private offset(): LogIndex {
    return this.ents[0].index;
  }

  private compactTo(compactIndex: LogIndex): CompactEffect {
    const offset = this.offset();
    const fromIndex = (offset + 1) as LogIndex;
    if (compactIndex > offset) {
      for (let i = 1; i <= compactIndex - offset; i++) this.bytesHeld -= entryBytes(this.ents[i]);
      const keep = this.ents.slice(compactIndex - offset);
      keep[0] = dummy(keep[0].index, keep[0].term);
      this.ents = keep;
    }
    return { fromIndex, throughIndex: compactIndex, compacted: this.compacted() };
  }

  private checkHardState(next: HardState, lastIndex: LogIndex): void {
    const prev = this.hard;
    assert(next.term >= prev.term, () => `save: hard state term went back from ${prev.term} to ${next.term}`);
    assert(
      next.term !== prev.term || prev.vote === NO_NODE || next.vote === prev.vote,
      () => `save: vote changed within term ${next.term} from ${prev.vote} to ${next.vote} (one vote per term, §5.2)`,
    );
    assert(next.commit >= prev.commit, () => `save: commit went back from ${prev.commit} to ${next.commit}`);
    assert(
      next.commit <= lastIndex,
      () =>
        `save: commit ${next.commit} is out of range [lastIndex(${lastIndex})]. Was the raft log corrupted, truncated, or lost?`,
    );
  }
}

function dummy(index: LogIndex, term: Term): Entry {
  return { index, term, type: EntryType.Normal, data: EMPTY };
}

const EMPTY = new Uint8Array(0);

function checkContiguous(entries: readonly Entry[], termBefore: Term | undefined): void {
  let prevTerm = termBefore ?? 0;
  for (let i = 0; i < entries.length; i++) {
    const e = entries[i];
    assert(Number.isSafeInteger(e.index) && e.index >= 1, () => `entry index ${e.index} must be a positive integer`);
    assert(
      Number.isSafeInteger(e.term) && e.term >= 1,
      () => `entry ${e.index} has term ${e.term}; terms of entries start at 1`,
    );
    if (i > 0) {
      assert(
        e.index === entries[i - 1].index + 1,
        () => `entries not contiguous: ${entries[i - 1].index} then ${e.index}`,
      );
    }
    assert(e.term >= prevTerm, () => `entry ${e.index} has term ${e.term} below the previous entry's term ${prevTerm}`);
    prevTerm = e.term;
  }
}

/** ents[from, to), at least one entry when from < to, then no more than maxBytes in total (etcd's limitSize). */
function limitBytes(ents: readonly Entry[], from: number, to: number, maxBytes: number): Entry[] {
  if (from >= to) return [];
  let size = entryBytes(ents[from]);
  let end = from + 1;
  while (end < to) {
    size += entryBytes(ents[end]);
    if (size > maxBytes) break;
    end++;
  }
  return ents.slice(from, end);
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}
