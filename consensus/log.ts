// The Raft log as the core sees it (etcd-io/raft's raftLog and unstable, rewritten): a read-only
// view of stable Storage followed by the "unstable" suffix that the caller has not persisted yet
// (handed out in Ready.entries / Ready.snapshot, dropped from here on advance()).
//
//   storage: [firstIndex .. stableLast]   unstable: [offset .. lastIndex]  (offset = stableLast+1,
//                                                   or the unstable snapshot's index + 1)
//
// Invariant: applied <= committed <= lastIndex (asserted where they move).

import { assert, RaftError, RaftErrorCode, RaftInvariantError } from './errors.js';
import { entryBytes } from './memory-storage.js';
import type { Storage } from './storage.js';
import type { Entry, LogIndex, Snapshot, Term } from './types.js';

/** Entries and/or a snapshot not yet persisted by the caller. */
export class Unstable {
  snapshot: Snapshot | undefined;
  entries: Entry[] = [];
  /** Index of entries[0]. */
  offset: LogIndex;

  constructor(offset: LogIndex) {
    this.offset = offset;
  }

  maybeFirstIndex(): LogIndex | undefined {
    return this.snapshot ? ((this.snapshot.metadata.index + 1) as LogIndex) : undefined;
  }

  maybeLastIndex(): LogIndex | undefined {
    if (this.entries.length > 0) return (this.offset + this.entries.length - 1) as LogIndex;
    return this.snapshot ? this.snapshot.metadata.index : undefined;
  }

  maybeTerm(i: LogIndex): Term | undefined {
    if (i < this.offset) {
      if (this.snapshot && this.snapshot.metadata.index === i) return this.snapshot.metadata.term;
      return undefined;
    }
    const last = this.maybeLastIndex();
    if (last === undefined || i > last) return undefined;
    return this.entries[i - this.offset].term;
  }

  /** The caller persisted entries up to (i, t): drop them, unless they were replaced meanwhile. */
  stableTo(i: LogIndex, t: Term): void {
    const gt = this.maybeTerm(i);
    if (gt === undefined) return;
    // Only if the entry at i is still the one persisted (same term) and is an unstable entry.
    if (gt === t && i >= this.offset) {
      const n = i + 1 - this.offset;
      this.entries = n >= this.entries.length ? [] : this.entries.slice(n);
      this.offset = (i + 1) as LogIndex;
    }
  }

  stableSnapTo(i: LogIndex): void {
    if (this.snapshot && this.snapshot.metadata.index === i) this.snapshot = undefined;
  }

  restore(s: Snapshot): void {
    this.offset = (s.metadata.index + 1) as LogIndex;
    this.entries = [];
    this.snapshot = s;
  }

  truncateAndAppend(ents: readonly Entry[]): void {
    const from = ents[0].index;
    if (from === this.offset + this.entries.length) {
      // The common case: a plain append.
      for (const e of ents) this.entries.push(e);
    } else if (from <= this.offset) {
      // Replaces every unstable entry: the log is truncated back to before `offset`.
      this.offset = from;
      this.entries = ents.slice();
    } else {
      // Truncate the unstable suffix at `from`, then append.
      this.entries = this.entries.slice(0, from - this.offset);
      for (const e of ents) this.entries.push(e);
    }
  }

  slice(lo: LogIndex, hi: LogIndex): Entry[] {
    assert(
      lo >= this.offset && hi <= this.offset + this.entries.length && lo <= hi,
      () => `unstable.slice[${lo},${hi}) out of bounds [${this.offset},${this.offset + this.entries.length})`,
    );
    return this.entries.slice(lo - this.offset, hi - this.offset);
  }
}

export class RaftLog {
  readonly storage: Storage;
  readonly unstable: Unstable;
  /** Highest index known to be committed. Invariant: applied <= committed <= lastIndex. */
  committed: LogIndex;
  /** Highest index the application applied (advance() moves it). */
  applied: LogIndex;
  /** Bound on the entry bytes of committed entries handed out in one Ready. */
  readonly maxCommittedBytesPerReady: number;

  constructor(storage: Storage, maxCommittedBytesPerReady: number) {
    this.storage = storage;
    this.maxCommittedBytesPerReady = maxCommittedBytesPerReady;
    const first = storage.firstIndex();
    const last = storage.lastIndex();
    this.unstable = new Unstable((last + 1) as LogIndex);
    this.committed = (first - 1) as LogIndex;
    this.applied = (first - 1) as LogIndex;
  }

  firstIndex(): LogIndex {
    return this.unstable.maybeFirstIndex() ?? this.storage.firstIndex();
  }

  lastIndex(): LogIndex {
    return this.unstable.maybeLastIndex() ?? this.storage.lastIndex();
  }

  lastTerm(): Term {
    const t = this.term(this.lastIndex());
    assert(t !== undefined, () => `lastTerm: no term for lastIndex ${this.lastIndex()}`);
    return t;
  }

  /**
   * Term of entry i, or undefined when i is compacted or beyond the log. The valid range is
   * [firstIndex-1, lastIndex]: the entry just before the first one answers through the snapshot.
   */
  term(i: LogIndex): Term | undefined {
    const t = this.unstable.maybeTerm(i);
    if (t !== undefined) return t;
    if (i < this.firstIndex() - 1 || i > this.lastIndex()) return undefined;
    try {
      return this.storage.term(i);
    } catch (e) {
      if (e instanceof RaftError && (e.code === RaftErrorCode.Compacted || e.code === RaftErrorCode.Unavailable))
        return undefined;
      throw e;
    }
  }

  matchTerm(i: LogIndex, t: Term): boolean {
    const own = this.term(i);
    return own !== undefined && own === t;
  }

  /** Thesis §3.6.1: a log is at least as up-to-date if its last term is higher, or equal with an index >= ours. */
  isUpToDate(lastIndex: LogIndex, lastTerm: Term): boolean {
    const ownTerm = this.lastTerm();
    return lastTerm > ownTerm || (lastTerm === ownTerm && lastIndex >= this.lastIndex());
  }

  /**
   * The index of the first entry of `ents` whose term differs from ours (or that we lack),
   * 0 when all match. Figure 2, AppendEntries receiver step 3.
   */
  findConflict(ents: readonly Entry[]): LogIndex {
    for (const e of ents) {
      if (!this.matchTerm(e.index, e.term)) return e.index;
    }
    return 0 as LogIndex;
  }

  /**
   * The fast back-off (§5.3, last paragraphs; etcd findConflictByTerm): the largest index <= `index`
   * whose term is <= `term`, with that term. An unknown term (compacted) answers (index, 0): a
   * possible match.
   */
  findConflictByTerm(index: LogIndex, t: Term): { index: LogIndex; term: Term } {
    for (let i = index; i > 0; i--) {
      const own = this.term(i as LogIndex);
      if (own === undefined) return { index: i as LogIndex, term: 0 as Term };
      if (own <= t) return { index: i as LogIndex, term: own };
    }
    return { index: 0 as LogIndex, term: 0 as Term };
  }

  /**
   * AppendEntries receiver (Figure 2): if the entry at prevIndex has prevTerm, append what is new
   * (truncating a conflicting suffix) and commit up to min(leaderCommit, last new entry).
   * Returns the last new index, or undefined when the consistency check fails.
   */
  maybeAppend(
    prevIndex: LogIndex,
    prevTerm: Term,
    leaderCommit: LogIndex,
    ents: readonly Entry[],
  ): LogIndex | undefined {
    if (!this.matchTerm(prevIndex, prevTerm)) return undefined;
    const lastNew = (prevIndex + ents.length) as LogIndex;
    const ci = this.findConflict(ents);
    if (ci !== 0) {
      assert(ci > this.committed, () => `entry ${ci} conflicts with committed entry [committed(${this.committed})]`);
      this.append(ents.slice(ci - (prevIndex + 1)));
    }
    this.commitTo(Math.min(leaderCommit, lastNew) as LogIndex);
    return lastNew;
  }

  append(ents: readonly Entry[]): LogIndex {
    if (ents.length === 0) return this.lastIndex();
    const after = ents[0].index - 1;
    assert(after >= this.committed, () => `after(${after}) is out of range [committed(${this.committed})]`);
    this.unstable.truncateAndAppend(ents);
    return this.lastIndex();
  }

  commitTo(toCommit: LogIndex): void {
    // Never decrease commit (Figure 2: commitIndex is monotonic).
    if (this.committed < toCommit) {
      if (this.lastIndex() < toCommit) {
        throw new RaftInvariantError(
          `tocommit(${toCommit}) is out of range [lastIndex(${this.lastIndex()})]. Was the raft log corrupted, truncated, or lost?`,
        );
      }
      this.committed = toCommit;
    }
  }

  /** Commits `maxIndex` if its entry is of term `t` (the caller passes its current term: §5.4.2). */
  maybeCommit(maxIndex: LogIndex, t: Term): boolean {
    if (maxIndex > this.committed && this.term(maxIndex) === t) {
      this.commitTo(maxIndex);
      return true;
    }
    return false;
  }

  appliedTo(i: LogIndex): void {
    if (i === 0) return;
    assert(
      this.committed >= i && i >= this.applied,
      () => `applied(${i}) is out of range [prevApplied(${this.applied}), committed(${this.committed})]`,
    );
    this.applied = i;
  }

  /** The application installed a snapshot at `i`: applied jumps there. */
  appliedSnapshotTo(i: LogIndex): void {
    assert(i <= this.committed, () => `appliedSnapshot(${i}) beyond committed(${this.committed})`);
    if (i > this.applied) this.applied = i;
  }

  stableTo(i: LogIndex, t: Term): void {
    this.unstable.stableTo(i, t);
  }

  stableSnapTo(i: LogIndex): void {
    this.unstable.stableSnapTo(i);
  }

  unstableEntries(): readonly Entry[] {
    return this.unstable.entries;
  }

  hasPendingSnapshot(): boolean {
    return this.unstable.snapshot !== undefined;
  }

  /** Committed entries not yet applied, bounded by maxCommittedBytesPerReady (at least one). */
  nextCommittedEntries(): Entry[] {
    // A snapshot being installed comes first: its entries supersede these.
    if (this.hasPendingSnapshot()) return [];
    const lo = (this.applied + 1) as LogIndex;
    const hi = (this.committed + 1) as LogIndex;
    if (lo >= hi) return [];
    return this.slice(lo, hi, this.maxCommittedBytesPerReady);
  }

  hasNextCommittedEntries(): boolean {
    return !this.hasPendingSnapshot() && this.committed > this.applied;
  }

  snapshot(): Snapshot {
    return this.unstable.snapshot ?? this.storage.snapshot();
  }

  /** Installs a snapshot (Figure 13): the whole log is replaced by it. */
  restore(s: Snapshot): void {
    this.committed = s.metadata.index;
    this.unstable.restore(s);
  }

  /**
   * Entries from `i` to the end, at most maxBytes (at least one). Throws RaftError Compacted when
   * `i` is no longer held: the caller then sends a snapshot.
   */
  entriesFrom(i: LogIndex, maxBytes: number): Entry[] {
    const last = this.lastIndex();
    if (i > last) return [];
    return this.slice(i, (last + 1) as LogIndex, maxBytes);
  }

  /** Entries in [lo, hi), at most maxBytes (at least one). Throws RaftError Compacted below firstIndex. */
  slice(lo: LogIndex, hi: LogIndex, maxBytes: number): Entry[] {
    assert(lo <= hi, () => `invalid slice ${lo} > ${hi}`);
    const first = this.firstIndex();
    if (lo < first) {
      throw new RaftError(RaftErrorCode.Compacted, `slice [${lo},${hi}): compacted (first index ${first})`, {
        lo,
        hi,
        firstIndex: first,
      });
    }
    const length = this.lastIndex() + 1 - first;
    assert(hi <= first + length, () => `slice[${lo},${hi}) out of bound [${first},${this.lastIndex()}]`);
    if (lo === hi) return [];
    const off = this.unstable.offset;
    let ents: Entry[] = [];
    if (lo < off) {
      const stored = this.storage.entries(lo, Math.min(hi, off) as LogIndex, maxBytes);
      // Storage stopped early (byte limit): do not look at the unstable part.
      if (stored.length < Math.min(hi, off) - lo) return stored;
      ents = stored;
    }
    if (hi > off) {
      const uns = this.unstable.slice(Math.max(lo, off) as LogIndex, hi);
      ents = ents.length === 0 ? uns : ents.concat(uns);
    }
    return limitBytes(ents, maxBytes);
  }
}

/** At least one entry, then no more than maxBytes in total (etcd limitSize). */
export function limitBytes(ents: Entry[], maxBytes: number): Entry[] {
  if (ents.length <= 1) return ents;
  let size = entryBytes(ents[0]);
  let end = 1;
  while (end < ents.length) {
    size += entryBytes(ents[end]);
    if (size > maxBytes) break;
    end++;
  }
  return end === ents.length ? ents : ents.slice(0, end);
}

export function entriesBytes(ents: readonly Entry[]): number {
  let n = 0;
  for (const e of ents) n += entryBytes(e);
  return n;
}

/** Payload bytes only (the uncommitted quota counts what the application proposed, as etcd does). */
export function payloadBytes(ents: readonly Entry[]): number {
  let n = 0;
  for (const e of ents) n += e.data.length;
  return n;
}
