// LevelRaftStorage — the durable Raft log, on LevelDB (`level` 10 / classic-level).
//
// Reads are synchronous: the unsnapshotted log's index and terms live in an internal MemoryStorage
// (the reference implementation in consensus/), as etcd keeps MemoryStorage beside its WAL. That
// MemoryStorage holds every entry WITHOUT its data (index, term, type), so it costs a few dozen bytes
// per entry whatever the entries carry. The data is held only for the newest entries, the "hot tail",
// bounded in bytes (options.cacheMaxBytes, config raft.logCacheBytes, default DEFAULT_LOG_CACHE_BYTES):
// the entries a leader sends to followers that keep up and the committed entries the node applies
// are served from it. An older entry is read back from LevelDB when asked for (a follower far behind;
// classic-level's synchronous getSync, so reads stay synchronous). Only durable entries leave the
// tail: an entry is read back only after its batch was written. So the log's memory is bounded by
// configuration, not by the log's (or the state's) size — issue 9 item 4.
// Every write changes the MemoryStorage at once (which also checks the Raft invariants before
// anything reaches the disk) and resolves only when the same change is on disk: ONE chained LevelDB batch, `sync: true`
// (docs/stack.md: chained batches are 3–7x faster than array batches; the one exception is a commit-only
// save the caller marks `sync: false`, see save()). A batch is atomic, so a crash at
// any point leaves either all of a write or none of it; test/raftlog proves it by SIGKILLing a
// writer process at random points.
//
// Group commit: writes issued while a batch is in flight are merged into the next batch (up to
// maxBatchBytes), in call order — LevelDB applies a batch's operations in order, so a later put or
// delete of the same key wins, exactly as the in-memory log already did. Writes are never issued to
// LevelDB concurrently: two batches on the thread pool may land in either order.
//
// Fail-stop: if a batch fails, the in-memory log is ahead of the disk and no later write can be
// trusted (after a failed fsync the kernel may have dropped the dirty pages), so every later write
// is refused with IoFailed. The node must stop; reopening reads what is durable.
//
// Directory layout (DIR is what `open`/`init` take; one per node):
//   DIR/log/      the LevelDB database; key layout and record format in codec.ts (every record
//                 is checksummed over its key and carries a format version)
//   DIR/raft.seq  the sequence sidecar (seq-file.ts)
//
// Identity and the two ways a member can come back wrong (docs/correctness.md scenario 18):
//  (a) Lost directory. DIR/log holds an identity record: raftId, clusterId, and an `incarnation`,
//      16 random bytes made when the directory was created. A member that lost its directory and is
//      re-initialised comes back with a new incarnation and an empty log. The node layer announces
//      (raftId, incarnation, lastIndex) to its peers, and peers refuse a member whose incarnation
//      changed (that check is the node layer's; this file provides the data: `identity()`).
//      If only DIR/log is gone and DIR/raft.seq survived, `open` refuses with Lost.
//  (b) Rollback: an old copy of DIR/log restored. Every batch bumps `writeSeq`, stored in the
//      batch itself and then copied to DIR/raft.seq. `open` refuses with RolledBack when the
//      database's writeSeq is behind the sidecar's, naming both numbers.
//      Decision: the sidecar is overwritten in place after every batch WITHOUT fsync, and fsynced on
//      init and on close. Why: a second fsync per batch would halve the write rate, and the
//      sidecar is written only after its batch is durable, so after a power loss it can only lag
//      the database (never lead it) — it never causes a false RolledBack. A lagging sidecar only
//      misses rollbacks shorter than the kernel's writeback delay (~30 s on Linux), while the
//      threat is restored backups and volume snapshots, which are older than that.
//      Limit of the design: a copy of the WHOLE of DIR (sidecar included) restored together is
//      not detectable from inside DIR. Peers catch that one: the node layer should also announce
//      writeSeq and peers remember the highest seen per (raftId, incarnation).
//
// Init is crash-safe: the database is built in DIR/log.init-tmp and renamed to DIR/log once
// complete, then the sidecar is written durably. A crash before the rename leaves no DIR/log (the
// temp directory is removed by the next init); a crash after it leaves writeSeq = 1 and no
// sidecar, which `open` recognises as an interrupted init and completes.

import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Level } from 'level';
import { assert, RaftInvariantError } from '../../consensus/errors.js';
import { entryBytes, EMPTY_CONF_STATE, EMPTY_HARD_STATE, MemoryStorage } from '../../consensus/memory-storage.js';
import type { InitialState, WritableStorage } from '../../consensus/storage.js';
import type { ConfState, Entry, HardState, LogIndex, RaftId, Snapshot, Term } from '../../consensus/types.js';
import { NO_NODE } from '../../consensus/types.js';
import {
  corrupted,
  decodeCompacted,
  decodeEntry,
  decodeHardState,
  decodeIdentity,
  decodeSnapshot,
  decodeWriteSeq,
  encodeCompacted,
  encodeEntry,
  encodeHardState,
  encodeIdentity,
  encodeSnapshot,
  encodeWriteSeq,
  ENTRY_KEY_END,
  ENTRY_KEY_MIN,
  entryIndexOfKey,
  entryKey,
  type IdentityRecord,
  KEY_COMPACTED,
  KEY_HARD_STATE,
  KEY_IDENTITY,
  KEY_SNAPSHOT,
  KEY_WRITE_SEQ,
  MAX_CLUSTER_ID_BYTES,
} from './codec.js';
import { StorageError, StorageErrorCode } from './errors.js';
import { readSeqFile, SeqFile, writeSeqFileDurably, fsyncDir, type SeqRecord } from './seq-file.js';
import { SystemClock } from '../clock.js';
import { HotTail } from './hot-tail.js';

export { TAIL_ENTRY_OVERHEAD_BYTES } from './hot-tail.js';

/** The real clock (node/clock.ts): this module has no injected one. */
const clock = new SystemClock();

/**
 * LevelDB table files the Raft log keeps open: LevelDB's least (it clamps to 74). Each open table is
 * mapped into memory and the pages a read touched stay in RSS (node/chain/store.ts
 * DEFAULT_STATE_MAX_OPEN_FILES says more); the log is compacted, and what a lagging follower reads
 * back is sequential, so a small table cache costs little.
 */
export const RAFT_LOG_MAX_OPEN_FILES = 74;

/**
 * Largest `data` of one entry, in bytes: twice the core's default maxProposalBytes (8 MiB), so a
 * proposal that is too large is refused by the core first, with the clearer error.
 */
export const DEFAULT_MAX_ENTRY_DATA_BYTES = 16 * 1024 * 1024;
/**
 * Largest single write (one save, encoded; snapshots have their own limit), in bytes; also the most a
 * group-committed batch gathers. Above the core's maxUncommittedEntriesBytes (64 MiB), which
 * bounds a leader's unpersisted entries, and its maxInflightBytes (32 MiB), which bounds what a
 * follower receives before it persists: the core's own Readies never hit it.
 */
export const DEFAULT_MAX_BATCH_BYTES = 128 * 1024 * 1024;
/**
 * Largest snapshot data, in bytes. The snapshot is one LevelDB value (LevelDB copies a value whole
 * into its memtable and log), so this stays well below memory. The node's snapshots carry state by
 * reference: Snapshot.data is streamed-snapshot metadata (node/snapshot-transfer.ts: membership,
 * head, root, index — a few KiB, at most MAX_SNAPSHOT_META_MEMBERSHIP_BYTES + 128) and the state
 * is fetched beside Raft, so the node never comes near this bound whatever its state's size; it
 * guards only the older one-buffer form (a snapshot received from a node of the previous version).
 * A snapshot is written in a batch of its own when it is larger than maxBatchBytes.
 */
export const DEFAULT_MAX_SNAPSHOT_BYTES = 256 * 1024 * 1024;
/**
 * Most bytes of writes waiting for the disk. The Ready loop awaits every write, so this is only
 * reached by a caller that does not: it fails loudly instead of growing without bound. Room for
 * one largest snapshot plus one largest batch.
 */
export const DEFAULT_MAX_PENDING_WRITE_BYTES = DEFAULT_MAX_SNAPSHOT_BYTES + DEFAULT_MAX_BATCH_BYTES;
/**
 * Bytes of entries (entryBytes: data + ENTRY_OVERHEAD_BYTES) whose data the log keeps in memory, the
 * newest first (config raft.logCacheBytes). Older durable entries are read from LevelDB on demand. Entries not
 * yet on disk are always held, whatever this says (the core bounds them: raftMaxUncommittedBytes).
 * 16 MiB holds dozens of full blocks: what followers that keep up and the apply loop read.
 */
export const DEFAULT_LOG_CACHE_BYTES = 16 * 1024 * 1024;

export interface LevelRaftStorageOptions {
  /** See DEFAULT_LOG_CACHE_BYTES; 0 keeps no durable entry's data in memory. */
  readonly cacheMaxBytes?: number;
  readonly maxEntryDataBytes?: number;
  readonly maxBatchBytes?: number;
  readonly maxSnapshotBytes?: number;
  readonly maxPendingWriteBytes?: number;
  /** See consensus/memory-storage.ts DEFAULT_SNAPSHOT_RETAIN_ENTRIES. */
  readonly snapshotRetainEntries?: number;
  /**
   * Rewrite a missing or unreadable DIR/raft.seq from the database instead of refusing to open.
   * Only for an operator who knows DIR/log was not restored from a copy.
   */
  readonly repairSeqFile?: boolean;
}

export interface LevelRaftInit {
  /** This node's Raft id; NO_NODE for a node that joins and is assigned one later (assignRaftId). */
  readonly raftId: RaftId;
  /** The cluster this log belongs to (e.g. the genesis hash), at most MAX_CLUSTER_ID_BYTES. */
  readonly clusterId: string;
  /** The membership a founding node starts with (the genesis voters); empty for a joining node. */
  readonly confState?: ConfState;
}

/** Who this log belongs to, for the node layer to announce to peers. */
export interface RaftLogIdentity extends IdentityRecord {
  /** Bumped by every durable batch; the database's copy (the sidecar's may lag, see header). */
  readonly writeSeq: number;
}

export const LOG_DIR_NAME = 'log';
const INIT_TMP_DIR_NAME = 'log.init-tmp';

type Op =
  | { readonly kind: 'put'; readonly key: Uint8Array; readonly value: Uint8Array }
  | { readonly kind: 'del'; readonly key: Uint8Array };

interface PendingWrite {
  readonly ops: Op[];
  /** The first entry index this write puts (Infinity: none): entries from here on are not durable yet. */
  readonly firstEntryIndex: number;
  readonly bytes: number;
  readonly sync: boolean;
  readonly resolve: () => void;
  readonly reject: (err: unknown) => void;
}

type Db = Level<Uint8Array, Uint8Array>;

export class LevelRaftStorage implements WritableStorage {
  private readonly mem: MemoryStorage;
  private readonly db: Db;
  private readonly seqFile: SeqFile;
  private ident: IdentityRecord;
  /** Invariant: the writeSeq of the last durable batch. */
  private writeSeq: number;
  private readonly limits: Required<Omit<LevelRaftStorageOptions, 'repairSeqFile' | 'snapshotRetainEntries'>>;
  /**
   * entryBytes of every entry firstIndex..lastIndex (sizes[i - firstIndex]): mem holds the entries
   * without data, and byte limits (entries' maxBytes, heldBytes) count the real sizes.
   */
  private sizes: number[];
  /** Sum of `sizes`. */
  private logBytes: number;
  /** The hot tail: entries tail.from..lastIndex with their data (see the header). */
  private readonly tail: HotTail;

  private pending: PendingWrite[] = [];
  private pendingBytes = 0;
  private flushing = false;
  private drained: Array<() => void> = [];
  private failure: StorageError | null = null;
  private closed = false;
  /** The last batch written was not synced: a synced write that changes nothing must still sync. */
  private unsyncedTail = false;
  private readonly counters = { batches: 0, syncedBatches: 0, writes: 0, maxWritesPerBatch: 0, coldReads: 0 };

  private constructor(args: {
    mem: MemoryStorage;
    /** entryBytes of every entry in mem, oldest first. */
    sizes: number[];
    /** The newest entries with their data, ending at mem.lastIndex(). */
    tail: HotTail;
    db: Db;
    seqFile: SeqFile;
    identity: IdentityRecord;
    writeSeq: number;
    options: LevelRaftStorageOptions;
  }) {
    this.mem = args.mem;
    this.db = args.db;
    this.seqFile = args.seqFile;
    this.ident = args.identity;
    this.writeSeq = args.writeSeq;
    this.sizes = args.sizes;
    this.logBytes = args.sizes.reduce((a, b) => a + b, 0);
    this.tail = args.tail;
    const o = args.options;
    this.limits = {
      cacheMaxBytes: o.cacheMaxBytes ?? DEFAULT_LOG_CACHE_BYTES,
      maxEntryDataBytes: o.maxEntryDataBytes ?? DEFAULT_MAX_ENTRY_DATA_BYTES,
      maxBatchBytes: o.maxBatchBytes ?? DEFAULT_MAX_BATCH_BYTES,
      maxSnapshotBytes: o.maxSnapshotBytes ?? DEFAULT_MAX_SNAPSHOT_BYTES,
      maxPendingWriteBytes: o.maxPendingWriteBytes ?? DEFAULT_MAX_PENDING_WRITE_BYTES,
    };
  }

  // ------------------------------------------------------------------ lifecycle

  /** Creates a new log in DIR (absent or empty). Refuses with AlreadyExists otherwise. */
  static async init(
    dir: string,
    init: LevelRaftInit,
    options: LevelRaftStorageOptions = {},
  ): Promise<LevelRaftStorage> {
    assert(
      Number.isSafeInteger(init.raftId) && init.raftId >= 0,
      () => `init: raftId ${init.raftId} must be a non-negative integer`,
    );
    assert(
      init.clusterId.length > 0 && Buffer.byteLength(init.clusterId, 'utf8') <= MAX_CLUSTER_ID_BYTES,
      () => `init: clusterId must be 1..${MAX_CLUSTER_ID_BYTES} bytes`,
    );
    mkdirSync(dir, { recursive: true });
    const present = readdirSync(dir).filter((name) => name !== INIT_TMP_DIR_NAME);
    if (present.length > 0) {
      throw new StorageError(
        StorageErrorCode.AlreadyExists,
        `init: ${dir} is not empty (${present.slice(0, 5).join(', ')}); refusing to create a Raft log over it`,
        {
          dir,
          present,
        },
      );
    }
    const tmp = join(dir, INIT_TMP_DIR_NAME);
    rmSync(tmp, { recursive: true, force: true }); // left by an init that crashed: nothing in it was ever acknowledged
    const identity: IdentityRecord = {
      raftId: init.raftId,
      clusterId: init.clusterId,
      incarnation: randomBytes(16).toString('hex'),
      createdAtMs: clock.wallMs(),
    };
    const db: Db = new Level<Uint8Array, Uint8Array>(tmp, {
      keyEncoding: 'view',
      valueEncoding: 'view',
      createIfMissing: true,
      errorIfExists: true,
      maxOpenFiles: RAFT_LOG_MAX_OPEN_FILES,
    });
    await db.open();
    try {
      const snapshot: Snapshot = {
        metadata: { index: 0 as LogIndex, term: 0 as Term, confState: init.confState ?? EMPTY_CONF_STATE },
        data: new Uint8Array(0),
      };
      await db
        .batch()
        .put(KEY_IDENTITY, encodeIdentity(identity))
        .put(KEY_HARD_STATE, encodeHardState(EMPTY_HARD_STATE))
        .put(KEY_SNAPSHOT, encodeSnapshot(snapshot))
        .put(KEY_COMPACTED, encodeCompacted({ index: 0 as LogIndex, term: 0 as Term }))
        .put(KEY_WRITE_SEQ, encodeWriteSeq(1))
        .write({ sync: true });
    } finally {
      await db.close();
    }
    renameSync(tmp, join(dir, LOG_DIR_NAME));
    fsyncDir(dir);
    writeSeqFileDurably(dir, { writeSeq: 1, incarnation: identity.incarnation });
    return LevelRaftStorage.open(dir, options);
  }

  /** Opens an existing log, verifying every record. See the header for what it refuses. */
  static async open(dir: string, options: LevelRaftStorageOptions = {}): Promise<LevelRaftStorage> {
    const logDir = join(dir, LOG_DIR_NAME);
    const seq = readSeqFile(dir);
    if (!existsSync(logDir)) {
      if (seq.kind !== 'missing') {
        throw new StorageError(
          StorageErrorCode.Lost,
          `open: ${dir} has a sequence file but no database (${logDir}): this node's Raft log was lost while it was a member. ` +
            'Remove the node and re-add it under a new id.',
          { dir },
        );
      }
      throw new StorageError(StorageErrorCode.NotFound, `open: ${dir} holds no Raft log`, { dir });
    }
    const db: Db = new Level<Uint8Array, Uint8Array>(logDir, {
      keyEncoding: 'view',
      valueEncoding: 'view',
      createIfMissing: false,
      maxOpenFiles: RAFT_LOG_MAX_OPEN_FILES,
    });
    try {
      await db.open();
    } catch (err) {
      const cause = (err as { cause?: { code?: string } }).cause;
      if (cause?.code === 'LEVEL_LOCKED') {
        throw new StorageError(
          StorageErrorCode.Locked,
          `open: ${logDir} is in use by another process or instance`,
          { dir },
          { cause: err },
        );
      }
      throw err;
    }
    try {
      const loaded = await load(db, options);
      const dbSeq: SeqRecord = { writeSeq: loaded.writeSeq, incarnation: loaded.identity.incarnation };
      if (seq.kind === 'missing') {
        // writeSeq 1 and no sidecar: init crashed between the rename and the sidecar.
        if (loaded.writeSeq !== 1 && options.repairSeqFile !== true) {
          throw new StorageError(
            StorageErrorCode.SeqFileMissing,
            `open: ${join(dir, 'raft.seq')} is missing while the database is at writeSeq ${loaded.writeSeq}; a rollback cannot be ruled out. ` +
              'If you know the database was not restored from a copy, open with repairSeqFile; otherwise remove the node and re-add it under a new id.',
            { dir, dbWriteSeq: loaded.writeSeq },
          );
        }
        writeSeqFileDurably(dir, dbSeq);
      } else if (seq.kind === 'unreadable') {
        if (options.repairSeqFile !== true) {
          throw new StorageError(
            StorageErrorCode.Corrupted,
            `open: ${join(dir, 'raft.seq')} is unreadable (${seq.reason}). If you know the database was not restored from a copy, open with repairSeqFile.`,
            { dir, reason: seq.reason },
          );
        }
        writeSeqFileDurably(dir, dbSeq);
      } else {
        if (seq.record.incarnation !== loaded.identity.incarnation) {
          throw new StorageError(
            StorageErrorCode.Lost,
            `open: the database in ${logDir} is incarnation ${loaded.identity.incarnation} but the sequence file belongs to ${seq.record.incarnation}: ` +
              'the database was replaced. Remove the node and re-add it under a new id.',
            { dir, dbIncarnation: loaded.identity.incarnation, seqIncarnation: seq.record.incarnation },
          );
        }
        if (loaded.writeSeq < seq.record.writeSeq) {
          throw new StorageError(
            StorageErrorCode.RolledBack,
            `open: the database in ${logDir} is at writeSeq ${loaded.writeSeq} but it had reached ${seq.record.writeSeq}: an old copy was restored, ` +
              'and this node may have forgotten votes and entries it acknowledged. Remove the node and re-add it under a new id.',
            { dir, dbWriteSeq: loaded.writeSeq, seqFileWriteSeq: seq.record.writeSeq },
          );
        }
        if (loaded.writeSeq > seq.record.writeSeq) writeSeqFileDurably(dir, dbSeq);
      }
      const seqFile = new SeqFile(dir);
      return new LevelRaftStorage({
        mem: loaded.mem,
        sizes: loaded.sizes,
        tail: loaded.tail,
        db,
        seqFile,
        identity: loaded.identity,
        writeSeq: loaded.writeSeq,
        options,
      });
    } catch (err) {
      await db.close();
      throw err;
    }
  }

  /** Waits for every pending write, fsyncs the sidecar, and closes. Idempotent. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true; // refuse new writes, finish the queued ones
    await this.whenDrained();
    try {
      this.seqFile.close();
    } finally {
      await this.db.close();
    }
  }

  // ------------------------------------------------------------------ read side (sync, from memory)

  initialState(): InitialState {
    return this.mem.initialState();
  }

  hardState(): HardState {
    return this.mem.hardState();
  }

  /**
   * The same entries MemoryStorage would return (same bounds, same errors, same maxBytes rule: at
   * least one entry, then while the total stays within maxBytes), from the hot tail or, for older
   * ones, read from LevelDB.
   */
  entries(lo: LogIndex, hi: LogIndex, maxBytes: number): Entry[] {
    this.mem.entries(lo, hi, 0); // the bounds checks and their errors (Compacted, Unavailable)
    if (lo >= hi) return [];
    const first = this.mem.firstIndex();
    let size = this.sizes[lo - first];
    let end = lo + 1;
    while (end < hi) {
      size += this.sizes[end - first];
      if (size > maxBytes) break;
      end++;
    }
    const out: Entry[] = new Array<Entry>(end - lo);
    for (let i = lo; i < end; i++) out[i - lo] = this.tail.get(i) ?? this.readEntry(i);
    return out;
  }

  term(i: LogIndex): Term {
    return this.mem.term(i);
  }

  firstIndex(): LogIndex {
    return this.mem.firstIndex();
  }

  lastIndex(): LogIndex {
    return this.mem.lastIndex();
  }

  snapshot(): Snapshot {
    return this.mem.snapshot();
  }

  /** Bytes of entries in the log (entryBytes summed over firstIndex..lastIndex), held in memory or not. */
  heldBytes(): number {
    return this.logBytes;
  }

  /**
   * Bytes of the entries whose data is in memory (the hot tail, counted with TAIL_ENTRY_OVERHEAD_BYTES
   * each): at most cacheMaxBytes once they are durable.
   */
  cachedBytes(): number {
    return this.tail.bytes;
  }

  /**
   * Counters since open, for metrics: batches written (synced or not), writes, the largest group
   * commit, entries read back from LevelDB (not in the hot tail).
   */
  stats(): { batches: number; syncedBatches: number; writes: number; maxWritesPerBatch: number; coldReads: number } {
    return { ...this.counters };
  }

  identity(): RaftLogIdentity {
    return { ...this.ident, writeSeq: this.writeSeq };
  }

  // ------------------------------------------------------------------ write side

  /**
   * Persists hard state and entries in one atomic batch, resolved once durable (fsync).
   * `sync: false` is for a Ready whose `mustSync` is false (only commit moved): the batch then
   * survives a process crash but maybe not a power loss, which Raft tolerates because commit can
   * be recomputed (etcd does the same). Writes stay in order either way: a later synced batch
   * makes every earlier one durable too.
   */
  save(
    hardState: HardState | undefined,
    entries: readonly Entry[],
    options: { readonly sync?: boolean } = {},
  ): Promise<void> {
    const sync = options.sync ?? true;
    return this.write(sync, () => {
      let bytes = hardState ? 30 : 0;
      for (const e of entries) {
        if (e.data.length > this.limits.maxEntryDataBytes) {
          throw new StorageError(
            StorageErrorCode.EntryTooLarge,
            `save: entry ${e.index} has ${e.data.length} bytes of data, over maxEntryDataBytes ${this.limits.maxEntryDataBytes}`,
            {
              index: e.index,
              dataBytes: e.data.length,
              maxEntryDataBytes: this.limits.maxEntryDataBytes,
            },
          );
        }
        bytes += entryBytes(e);
      }
      this.checkBatchBytes('save', bytes);
      // mem checks and records index and term only; the data goes to the tail and the disk.
      const effect = this.mem.saveWithEffect(hardState, entries.map(withoutData));
      // effect.written is a suffix of what mem was given, so of `entries` too.
      const written = entries.slice(entries.length - effect.written.length);
      const ops: Op[] = [];
      for (const e of written) {
        const { key, value } = encodeEntry(e);
        ops.push({ kind: 'put', key, value });
      }
      for (let i = effect.lastIndex + 1; i <= effect.previousLastIndex; i++)
        ops.push({ kind: 'del', key: entryKey(i) });
      if (effect.hardStateChanged)
        ops.push({ kind: 'put', key: KEY_HARD_STATE, value: encodeHardState(effect.hardState) });
      this.replaceFrom(written, effect.previousLastIndex);
      return { ops, bytes, firstEntryIndex: written.length > 0 ? written[0].index : Infinity };
    });
  }

  applySnapshot(snapshot: Snapshot): Promise<void> {
    return this.write(true, () => {
      this.checkSnapshotBytes(snapshot.data.length);
      const effect = this.mem.applySnapshotWithEffect(snapshot);
      this.sizes = [];
      this.logBytes = 0;
      this.tail.clear(snapshot.metadata.index + 1);
      const ops: Op[] = [{ kind: 'put', key: KEY_SNAPSHOT, value: encodeSnapshot(snapshot) }];
      for (let i = effect.previousFirstIndex; i <= effect.previousLastIndex; i++)
        ops.push({ kind: 'del', key: entryKey(i) });
      ops.push({ kind: 'put', key: KEY_COMPACTED, value: encodeCompacted(this.mem.compacted()) });
      ops.push({ kind: 'put', key: KEY_HARD_STATE, value: encodeHardState(effect.hardState) });
      return { ops, bytes: snapshot.data.length + 64 };
    });
  }

  createSnapshot(index: LogIndex, confState: ConfState, data: Uint8Array): Promise<Snapshot> {
    let snapshot: Snapshot | undefined;
    return this.write(true, () => {
      this.checkSnapshotBytes(data.length);
      const { snapshot: made, compaction } = this.mem.createSnapshotWithEffect(index, confState, data);
      snapshot = made;
      this.dropThrough(compaction.fromIndex, compaction.throughIndex);
      // The snapshot and the compaction it allows go in one batch: the log never lacks entries
      // that its snapshot does not cover.
      const ops: Op[] = [{ kind: 'put', key: KEY_SNAPSHOT, value: encodeSnapshot(made) }];
      pushCompaction(ops, compaction.fromIndex, compaction.throughIndex, compaction.compacted);
      return { ops, bytes: data.length + 64 };
    }).then(() => snapshot as Snapshot);
  }

  compact(compactIndex: LogIndex): Promise<void> {
    return this.write(true, () => {
      const effect = this.mem.compactWithEffect(compactIndex);
      this.dropThrough(effect.fromIndex, effect.throughIndex);
      const ops: Op[] = [];
      pushCompaction(ops, effect.fromIndex, effect.throughIndex, effect.compacted);
      return { ops, bytes: 64 + ops.length * 16 };
    });
  }

  /** Records the raft id a joining node was assigned (once; the id is part of its identity from then on). */
  assignRaftId(id: RaftId): Promise<void> {
    return this.write(true, () => {
      assert(Number.isSafeInteger(id) && id >= 1, () => `assignRaftId: ${id} is not a raft id`);
      if (this.ident.raftId !== NO_NODE) {
        throw new StorageError(
          StorageErrorCode.RaftIdAssigned,
          `assignRaftId(${id}): this log already belongs to raft id ${this.ident.raftId}`,
          {
            raftId: this.ident.raftId,
            requested: id,
          },
        );
      }
      this.ident = { ...this.ident, raftId: id };
      return { ops: [{ kind: 'put', key: KEY_IDENTITY, value: encodeIdentity(this.ident) }], bytes: 256 };
    });
  }

  // ------------------------------------------------------------------ internals

  /**
   * Runs `change` synchronously (it validates, updates the in-memory log and returns the disk
   * operations), then queues the operations; resolves once they are durable. Errors from `change`
   * come back as a rejection, and leave memory and disk untouched.
   */
  private write(sync: boolean, change: () => { ops: Op[]; bytes: number; firstEntryIndex?: number }): Promise<void> {
    if (this.closed) return Promise.reject(new StorageError(StorageErrorCode.Closed, 'the Raft log storage is closed'));
    if (this.failure) return Promise.reject(this.failure);
    let planned: { ops: Op[]; bytes: number; firstEntryIndex?: number };
    try {
      planned = change();
    } catch (err) {
      return Promise.reject(err);
    }
    // Nothing to write and nothing queued: the state this write describes is already durable.
    // (With writes queued it must wait for them: they may carry the very state it repeats; and
    // after an unsynced batch a synced write must still sync it.)
    if (planned.ops.length === 0 && !this.flushing && this.pending.length === 0 && !(sync && this.unsyncedTail))
      return Promise.resolve();
    return new Promise<void>((resolve, reject) => {
      this.pending.push({
        ops: planned.ops,
        bytes: planned.bytes,
        firstEntryIndex: planned.firstEntryIndex ?? Infinity,
        sync,
        resolve,
        reject,
      });
      this.pendingBytes += planned.bytes;
      if (!this.flushing) void this.flushLoop();
    });
  }

  /**
   * Records `written` (entries from written[0].index on, replacing any held there) in sizes and the
   * tail. `previousLastIndex`: the last index before the write.
   */
  private replaceFrom(written: readonly Entry[], previousLastIndex: number): void {
    if (written.length === 0) return;
    const from = written[0].index;
    const first = this.mem.firstIndex();
    // Entries from `from` on are replaced (truncated, then appended): forget the old ones.
    for (let i = from; i <= previousLastIndex; i++) this.logBytes -= this.sizes[i - first];
    const keep = Math.max(0, from - first);
    if (this.sizes.length > keep) this.sizes.length = keep;
    this.tail.truncateFrom(from);
    for (const e of written) {
      const size = entryBytes(e);
      this.sizes.push(size);
      this.logBytes += size;
      this.tail.push(e);
    }
  }

  /** Forgets entries fromIndex..throughIndex (compacted; fromIndex was the first index). */
  private dropThrough(fromIndex: number, throughIndex: number): void {
    if (throughIndex < fromIndex) return;
    for (const size of this.sizes.splice(0, throughIndex - fromIndex + 1)) this.logBytes -= size;
    while (this.tail.size > 0 && this.tail.from <= throughIndex) this.tail.dropFront();
    if (this.tail.size === 0 && this.tail.from <= throughIndex) this.tail.clear(throughIndex + 1);
  }

  /**
   * Drops the data of the oldest tail entries while the tail holds more than cacheMaxBytes, but only
   * of durable entries: those below the first entry of every write still queued (each entry was
   * written by a batch that completed, or is rewritten by one still queued).
   */
  private trimTail(): void {
    if (this.tail.bytes <= this.limits.cacheMaxBytes) return;
    let durableThrough = this.mem.lastIndex() as number;
    for (const w of this.pending) durableThrough = Math.min(durableThrough, w.firstEntryIndex - 1);
    this.tail.trimTo(this.limits.cacheMaxBytes, durableThrough);
  }

  /** Reads entry `index` (in the log, not in the tail, hence durable) from LevelDB. */
  private readEntry(index: number): Entry {
    const key = entryKey(index);
    let value: Uint8Array | undefined;
    try {
      value = this.db.getSync(key);
    } catch (err) {
      throw new StorageError(
        StorageErrorCode.IoFailed,
        `Raft log read of entry ${index} failed: ${(err as Error).message}`,
        { index },
        { cause: err },
      );
    }
    if (value === undefined) throw corrupted(`entry ${index} is in the log but not in the database`, { index });
    this.counters.coldReads++;
    return decodeEntry(key, value);
  }

  private checkBatchBytes(what: string, bytes: number): void {
    if (bytes > this.limits.maxBatchBytes) {
      throw new StorageError(
        StorageErrorCode.BatchTooLarge,
        `${what}: ${bytes} bytes in one write, over maxBatchBytes ${this.limits.maxBatchBytes}`,
        {
          bytes,
          maxBatchBytes: this.limits.maxBatchBytes,
        },
      );
    }
    this.checkPendingBytes(what, bytes);
  }

  private checkPendingBytes(what: string, bytes: number): void {
    if (this.pendingBytes + bytes > this.limits.maxPendingWriteBytes) {
      throw new StorageError(
        StorageErrorCode.WriteQueueFull,
        `${what}: ${this.pendingBytes} bytes already wait for the disk (maxPendingWriteBytes ${this.limits.maxPendingWriteBytes}); await each write`,
        { pendingBytes: this.pendingBytes, bytes, maxPendingWriteBytes: this.limits.maxPendingWriteBytes },
      );
    }
  }

  private checkSnapshotBytes(bytes: number): void {
    if (bytes > this.limits.maxSnapshotBytes) {
      throw new StorageError(
        StorageErrorCode.SnapshotTooLarge,
        `snapshot of ${bytes} bytes is over maxSnapshotBytes ${this.limits.maxSnapshotBytes}`,
        {
          bytes,
          maxSnapshotBytes: this.limits.maxSnapshotBytes,
        },
      );
    }
    this.checkPendingBytes('snapshot', bytes);
  }

  private async flushLoop(): Promise<void> {
    this.flushing = true;
    while (this.pending.length > 0) {
      // Group commit: take every waiting write that fits, at least one.
      let count = 0;
      let bytes = 0;
      while (
        count < this.pending.length &&
        (count === 0 || bytes + this.pending[count].bytes <= this.limits.maxBatchBytes)
      ) {
        bytes += this.pending[count].bytes;
        count++;
      }
      const group = this.pending.splice(0, count);
      const sync = group.some((w) => w.sync);
      const seq = this.writeSeq + 1;
      try {
        const batch = this.db.batch();
        for (const w of group) {
          for (const op of w.ops) {
            if (op.kind === 'put') batch.put(op.key, op.value);
            else batch.del(op.key);
          }
        }
        batch.put(KEY_WRITE_SEQ, encodeWriteSeq(seq));
        await batch.write({ sync });
        this.writeSeq = seq;
        // Only a synced writeSeq goes to the sidecar: it must never get ahead of what a power
        // loss leaves in the database, or a healthy node would be refused as rolled back.
        if (sync) this.seqFile.write({ writeSeq: seq, incarnation: this.ident.incarnation });
        this.unsyncedTail = !sync;
        this.counters.batches++;
        if (sync) this.counters.syncedBatches++;
        this.counters.writes += group.length;
        this.counters.maxWritesPerBatch = Math.max(this.counters.maxWritesPerBatch, group.length);
      } catch (err) {
        this.failure = new StorageError(
          StorageErrorCode.IoFailed,
          `Raft log write failed at writeSeq ${seq}: ${(err as Error).message}. Stop the node and reopen.`,
          { writeSeq: seq },
          { cause: err },
        );
        for (const w of [...group, ...this.pending.splice(0)]) w.reject(this.failure);
        this.pendingBytes = 0;
        break;
      }
      this.pendingBytes -= bytes;
      this.trimTail();
      for (const w of group) w.resolve();
    }
    this.flushing = false;
    for (const wake of this.drained.splice(0)) wake();
  }

  private whenDrained(): Promise<void> {
    if (!this.flushing && this.pending.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.drained.push(resolve));
  }
}

const NO_DATA = new Uint8Array(0);

/** What the internal MemoryStorage holds of an entry: its place and term, not its data. */
function withoutData(e: Entry): Entry {
  return { index: e.index, term: e.term, type: e.type, data: NO_DATA };
}

function pushCompaction(
  ops: Op[],
  fromIndex: LogIndex,
  throughIndex: LogIndex,
  compacted: { index: LogIndex; term: Term },
): void {
  for (let i = fromIndex; i <= throughIndex; i++) ops.push({ kind: 'del', key: entryKey(i) });
  ops.push({ kind: 'put', key: KEY_COMPACTED, value: encodeCompacted(compacted) });
}

/** Opens DIR if it holds a log, creates one if DIR is absent or empty; never initialises over anything else. */
export async function openOrInit(
  dir: string,
  init: LevelRaftInit,
  options: LevelRaftStorageOptions = {},
): Promise<{ storage: LevelRaftStorage; created: boolean }> {
  const hasLog = existsSync(join(dir, LOG_DIR_NAME));
  const hasAnything = existsSync(dir) && readdirSync(dir).some((name) => name !== INIT_TMP_DIR_NAME);
  if (!hasLog && !hasAnything) {
    return { storage: await LevelRaftStorage.init(dir, init, options), created: true };
  }
  // open() refuses a directory with a sidecar but no database (Lost), and one with neither (NotFound).
  const storage = await LevelRaftStorage.open(dir, options);
  const id = storage.identity();
  if (
    id.clusterId !== init.clusterId ||
    (init.raftId !== NO_NODE && id.raftId !== NO_NODE && id.raftId !== init.raftId)
  ) {
    await storage.close();
    throw new StorageError(
      StorageErrorCode.IdentityMismatch,
      `openOrInit: ${dir} belongs to raft id ${id.raftId} of cluster ${id.clusterId}, not raft id ${init.raftId} of cluster ${init.clusterId}`,
      {
        dir,
        stored: { raftId: id.raftId, clusterId: id.clusterId },
        expected: { raftId: init.raftId, clusterId: init.clusterId },
      },
    );
  }
  return { storage, created: false };
}

/** Entries read per iterator step when opening (bounds the memory of one step, ~1000 x entry size). */
const LOAD_ENTRIES_PER_READ = 1000;

/** Reads and verifies every record; the log must be whole and consistent, or this throws Corrupted. */
async function load(
  db: Db,
  options: LevelRaftStorageOptions,
): Promise<{ mem: MemoryStorage; identity: IdentityRecord; writeSeq: number; sizes: number[]; tail: HotTail }> {
  const [idRec, hsRec, snapRec, compRec, seqRec] = await db.getMany([
    KEY_IDENTITY,
    KEY_HARD_STATE,
    KEY_SNAPSHOT,
    KEY_COMPACTED,
    KEY_WRITE_SEQ,
  ]);
  const missing = [
    ['identity', idRec],
    ['hard state', hsRec],
    ['snapshot', snapRec],
    ['compaction point', compRec],
    ['writeSeq', seqRec],
  ]
    .filter(([, v]) => v === undefined)
    .map(([name]) => name);
  if (missing.length > 0) throw corrupted(`missing record(s): ${missing.join(', ')}`, { missing });
  const identity = decodeIdentity(idRec!);
  const hardState = decodeHardState(hsRec!);
  const snapshot = decodeSnapshot(snapRec!);
  const compacted = decodeCompacted(compRec!);
  const writeSeq = decodeWriteSeq(seqRec!);

  // Entries at or below the compaction point are deleted in the same batch that moves it.
  for await (const key of db.keys({ gte: ENTRY_KEY_MIN, lt: entryKey(compacted.index + 1), limit: 1 })) {
    throw corrupted(`entry ${entryIndexOfKey(key)} survives below the compaction point ${compacted.index}`);
  }
  // Every entry is read and verified; mem keeps each without its data, the tail the newest within
  // cacheMaxBytes: opening a long log costs what the running log does.
  const cacheMaxBytes = options.cacheMaxBytes ?? DEFAULT_LOG_CACHE_BYTES;
  assert(
    Number.isSafeInteger(cacheMaxBytes) && cacheMaxBytes >= 0,
    () => `open: cacheMaxBytes ${cacheMaxBytes} must be a non-negative integer`,
  );
  const entries: Entry[] = [];
  const sizes: number[] = [];
  let expected = compacted.index + 1;
  const tail = new HotTail(expected);
  // nextv: one promise per LOAD_ENTRIES_PER_READ entries rather than one per entry.
  const it = db.iterator({ gte: entryKey(compacted.index + 1), lt: ENTRY_KEY_END });
  try {
    for (;;) {
      const items = await it.nextv(LOAD_ENTRIES_PER_READ);
      if (items.length === 0) break;
      for (const [key, value] of items) {
        const index = entryIndexOfKey(key);
        if (index !== expected)
          throw corrupted(`entry ${expected} is missing (next present: ${index})`, { missing: expected, next: index });
        const e = decodeEntry(key, value);
        const size = entryBytes(e);
        entries.push(withoutData(e));
        sizes.push(size);
        tail.push(e);
        tail.trimTo(cacheMaxBytes); // every loaded entry is durable
        expected++;
      }
    }
  } finally {
    await it.close();
  }
  if (hardState.commit < snapshot.metadata.index) {
    throw corrupted(`commit ${hardState.commit} is below the snapshot index ${snapshot.metadata.index}`);
  }
  try {
    const mem = new MemoryStorage({
      hardState,
      snapshot,
      compacted,
      entries,
      snapshotRetainEntries: options.snapshotRetainEntries,
    });
    return { mem, identity, writeSeq, sizes, tail };
  } catch (err) {
    if (err instanceof RaftInvariantError) throw corrupted(err.message);
    throw err;
  }
}
