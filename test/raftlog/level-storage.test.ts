import { cpSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Level } from 'level';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../consensus/memory-storage.js';
import { NO_NODE, type LogIndex, type RaftId } from '../../consensus/types.js';
import { entryKey, KEY_HARD_STATE } from '../../node/raftlog/codec.js';
import { StorageError, StorageErrorCode } from '../../node/raftlog/errors.js';
import { LevelRaftStorage, openOrInit } from '../../node/raftlog/level-storage.js';
import { SEQ_FILE_NAME } from '../../node/raftlog/seq-file.js';
import { applyOp, CRASH_CONF, logState, nextOp } from './crash-ops.js';
import { describeStorageCompliance, ent, ents, hs, rejectsWithCode } from './storage.suite.js';

describeStorageCompliance('LevelRaftStorage', async ({ confState, snapshotRetainEntries }) => {
  const dir = mkdtempSync(join(tmpdir(), 'quorate-raftlog-'));
  const storage = await LevelRaftStorage.init(
    join(dir, 'raft'),
    { raftId: 1 as RaftId, clusterId: 'test-cluster', confState },
    { snapshotRetainEntries },
  );
  return {
    storage,
    dispose: async () => {
      await storage.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

// The same suite with no hot tail: every entry, once durable, is read back from LevelDB.
describeStorageCompliance('LevelRaftStorage (cacheMaxBytes 0)', async ({ confState, snapshotRetainEntries }) => {
  const dir = mkdtempSync(join(tmpdir(), 'quorate-raftlog-'));
  const storage = await LevelRaftStorage.init(
    join(dir, 'raft'),
    { raftId: 1 as RaftId, clusterId: 'test-cluster', confState },
    { snapshotRetainEntries, cacheMaxBytes: 0 },
  );
  return {
    storage,
    dispose: async () => {
      await storage.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});

// ---------------------------------------------------------------------------------------------
// LevelDB only: durability across reopen, corruption, rollback, lost directories, identity, limits.
// ---------------------------------------------------------------------------------------------

const INIT = { raftId: 1 as RaftId, clusterId: 'c1', confState: CRASH_CONF };

async function openError(dir: string, options = {}): Promise<StorageError> {
  const err = await LevelRaftStorage.open(dir, options).then(
    async (s) => {
      await s.close();
      return undefined;
    },
    (e: unknown) => e,
  );
  expect(err, 'open should have been refused').toBeInstanceOf(StorageError);
  return err as StorageError;
}

/** Edits the raw database (as a disk fault or an operator would), then closes it. */
async function rawEdit(dir: string, edit: (db: Level<Uint8Array, Uint8Array>) => Promise<void>): Promise<void> {
  const db = new Level<Uint8Array, Uint8Array>(join(dir, 'log'), { keyEncoding: 'view', valueEncoding: 'view' });
  await db.open();
  try {
    await edit(db);
  } finally {
    await db.close();
  }
}

describe('LevelRaftStorage durability', () => {
  let root: string;
  let dir: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'quorate-raftlog-'));
    dir = join(root, 'raft');
  });
  afterEach(() => {
    rmSync(root, { recursive: true, force: true });
  });

  /** A log with 60 writes of the seeded history behind it (snapshots, truncations, compactions). */
  async function written(writes = 60): Promise<LevelRaftStorage> {
    const s = await LevelRaftStorage.init(dir, INIT, { snapshotRetainEntries: 5 });
    for (let n = 0; n < writes; n++) await applyOp(s, nextOp(7, n, s));
    return s;
  }

  it('reopens with exactly the state it closed with, identity included', async () => {
    const s = await written();
    const before = logState(s);
    const id = s.identity();
    expect(s.lastIndex()).toBeGreaterThan(50);
    expect(s.firstIndex()).toBeGreaterThan(1);
    await s.close();
    const again = await LevelRaftStorage.open(dir, { snapshotRetainEntries: 5 });
    expect(logState(again)).toEqual(before);
    expect(again.identity()).toEqual(id);
    await again.close();
  });

  it('matches the in-memory reference after the same history', async () => {
    const s = await written();
    const model = MemoryStorage.bootstrap(CRASH_CONF, { snapshotRetainEntries: 5 });
    for (let n = 0; n < 60; n++) await applyOp(model, nextOp(7, n, model));
    expect(logState(s)).toEqual(logState(model));
    await s.close();
  });

  it('keeps only a bounded hot tail of entry data in memory and reads older entries back (cacheMaxBytes)', async () => {
    const cacheMaxBytes = 200;
    const s = await LevelRaftStorage.init(dir, INIT, { snapshotRetainEntries: 5, cacheMaxBytes });
    const model = MemoryStorage.bootstrap(CRASH_CONF, { snapshotRetainEntries: 5 });
    for (let n = 0; n < 60; n++) {
      await applyOp(s, nextOp(7, n, s));
      await applyOp(model, nextOp(7, n, model));
      // Every write is awaited, so every entry is durable and the tail is within its bound.
      expect(s.cachedBytes()).toBeLessThanOrEqual(cacheMaxBytes);
      expect(s.heldBytes()).toBe(model.heldBytes());
    }
    expect(s.heldBytes()).toBeGreaterThan(cacheMaxBytes);
    expect(logState(s)).toEqual(logState(model));
    // maxBytes counts the real sizes, not what the tail holds: the same prefix as the reference.
    const [first, last] = [s.firstIndex(), (s.lastIndex() + 1) as LogIndex];
    for (const maxBytes of [0, 40, 100, 1000])
      expect(s.entries(first, last, maxBytes).map((e) => e.index)).toEqual(
        model.entries(first, last, maxBytes).map((e) => e.index),
      );
    expect(s.stats().coldReads).toBeGreaterThan(0);
    await s.close();
    // Reopening keeps the same bound and the same log.
    const again = await LevelRaftStorage.open(dir, { snapshotRetainEntries: 5, cacheMaxBytes });
    expect(again.cachedBytes()).toBeLessThanOrEqual(cacheMaxBytes);
    expect(again.heldBytes()).toBe(model.heldBytes());
    expect(logState(again)).toEqual(logState(model));
    await again.close();
  });

  it('holds entries not yet on disk whatever cacheMaxBytes says, and serves them without reading the disk', async () => {
    const s = await LevelRaftStorage.init(dir, INIT, { cacheMaxBytes: 0 });
    const first = s.save(hs(1, 1, 0), ents(1, [1, 1, 1]));
    const second = s.save(hs(1, 1, 0), [ent(4, 1, 'queued behind the first write')]);
    // Neither write has resolved: the entries come from memory.
    expect(s.entries(1 as LogIndex, 5 as LogIndex, Infinity).map((e) => Buffer.from(e.data).toString())).toEqual([
      'e1t1',
      'e2t1',
      'e3t1',
      'queued behind the first write',
    ]);
    expect(s.stats().coldReads).toBe(0);
    await Promise.all([first, second]);
    // Durable now: the data has left memory and is read back from LevelDB.
    expect(s.cachedBytes()).toBe(0);
    expect(Buffer.from(s.entries(4 as LogIndex, 5 as LogIndex, Infinity)[0].data).toString()).toBe(
      'queued behind the first write',
    );
    expect(s.stats().coldReads).toBe(1);
    await s.close();
  });

  it('merges writes issued without awaiting into one batch, in order (group commit)', async () => {
    const s = await LevelRaftStorage.init(dir, INIT);
    const seq0 = s.identity().writeSeq;
    const writes = [];
    for (let i = 1; i <= 50; i++) writes.push(s.save(hs(1, 1, 0), [ent(i, 1)]));
    writes.push(s.save(hs(2, 2, 0), ents(40, [2, 2]))); // truncates 40..50 queued just before
    await Promise.all(writes);
    // The first write went alone; every later one waited for it and shared the next batch.
    expect(s.identity().writeSeq).toBe(seq0 + 2);
    expect(s.stats()).toMatchObject({ batches: 2, syncedBatches: 2, writes: 51, maxWritesPerBatch: 50 });
    await s.close();
    const again = await LevelRaftStorage.open(dir);
    expect(again.lastIndex()).toBe(41);
    expect(again.term(40 as LogIndex)).toBe(2);
    expect(again.initialState().hardState).toEqual(hs(2, 2, 0));
    await again.close();
  });

  it('detects a flipped byte in an entry, naming the entry', async () => {
    const s = await written();
    const victim = s.lastIndex() - 1;
    await s.close();
    await rawEdit(dir, async (db) => {
      const value = (await db.get(entryKey(victim)))!;
      const bad = Uint8Array.from(value);
      bad[bad.length - 1] ^= 0x40;
      await db.put(entryKey(victim), bad);
    });
    const err = await openError(dir);
    expect(err.code).toBe(StorageErrorCode.Corrupted);
    expect(err.message).toContain(`entry ${victim}: checksum mismatch`);
  });

  it('detects a record copied under another key (the checksum covers the key)', async () => {
    const s = await written();
    const last = s.lastIndex();
    await s.close();
    await rawEdit(dir, async (db) => {
      await db.put(entryKey(last), (await db.get(entryKey(last - 1)))!);
    });
    const err = await openError(dir);
    expect(err.code).toBe(StorageErrorCode.Corrupted);
    expect(err.message).toContain(`entry ${last}: checksum mismatch`);
  });

  it('detects a corrupt hard state record', async () => {
    await (await written()).close();
    await rawEdit(dir, async (db) => {
      const bad = Uint8Array.from((await db.get(KEY_HARD_STATE))!);
      bad[10] ^= 1;
      await db.put(KEY_HARD_STATE, bad);
    });
    const err = await openError(dir);
    expect(err.code).toBe(StorageErrorCode.Corrupted);
    expect(err.message).toMatch(/meta 'h': checksum mismatch/);
  });

  it('detects a missing entry in the middle of the log', async () => {
    const s = await written();
    const gap = s.lastIndex() - 3;
    await s.close();
    await rawEdit(dir, (db) => db.del(entryKey(gap)));
    const err = await openError(dir);
    expect(err.code).toBe(StorageErrorCode.Corrupted);
    expect(err.message).toContain(`entry ${gap} is missing`);
  });

  it('refuses a record of a newer format version', async () => {
    const s = await written();
    const last = s.lastIndex();
    await s.close();
    await rawEdit(dir, async (db) => {
      const v = Uint8Array.from((await db.get(entryKey(last)))!);
      v[0] = 99;
      await db.put(entryKey(last), v);
    });
    const err = await openError(dir);
    expect(err.code).toBe(StorageErrorCode.UnsupportedFormat);
  });

  it('refuses to open a rolled-back database, with both sequence numbers', async () => {
    await (await written(20)).close();
    const backup = join(root, 'backup');
    cpSync(join(dir, 'log'), backup, { recursive: true });
    const s = await LevelRaftStorage.open(dir, { snapshotRetainEntries: 5 });
    for (let n = 20; n < 30; n++) await applyOp(s, nextOp(7, n, s));
    const seqAfter = s.identity().writeSeq;
    await s.close();
    rmSync(join(dir, 'log'), { recursive: true });
    cpSync(backup, join(dir, 'log'), { recursive: true });
    const err = await openError(dir);
    expect(err.code).toBe(StorageErrorCode.RolledBack);
    expect(err.meta.seqFileWriteSeq).toBe(seqAfter);
    expect(err.meta.dbWriteSeq).toBeLessThan(seqAfter);
    expect(err.message).toContain('re-add it under a new id');
  });

  it('opens a database that is ahead of a lagging sequence file (the safe direction)', async () => {
    const s = await written(10);
    const seqFile = join(dir, SEQ_FILE_NAME);
    const old = readFileSync(seqFile);
    for (let n = 10; n < 15; n++) await applyOp(s, nextOp(7, n, s));
    const state = logState(s);
    await s.close();
    writeFileSync(seqFile, old); // as if the last sidecar writes never reached the disk
    const again = await LevelRaftStorage.open(dir, { snapshotRetainEntries: 5 });
    expect(logState(again)).toEqual(state);
    await again.close();
  });

  it('refuses a lost database (sequence file left behind) and a database of another incarnation', async () => {
    await (await written(5)).close();
    const other = join(root, 'other');
    await (await LevelRaftStorage.init(other, INIT)).close();
    const mine = join(root, 'mine-log');
    cpSync(join(dir, 'log'), mine, { recursive: true });

    rmSync(join(dir, 'log'), { recursive: true });
    expect((await openError(dir)).code).toBe(StorageErrorCode.Lost);
    await rejectsWithCode(() => openOrInit(dir, INIT), StorageErrorCode.Lost);

    cpSync(join(other, 'log'), join(dir, 'log'), { recursive: true });
    const err = await openError(dir);
    expect(err.code).toBe(StorageErrorCode.Lost);
    expect(err.message).toContain('incarnation');

    rmSync(join(dir, 'log'), { recursive: true });
    cpSync(mine, join(dir, 'log'), { recursive: true });
    await (await LevelRaftStorage.open(dir)).close();
  });

  it('refuses a missing sequence file unless told to repair it', async () => {
    await (await written(5)).close();
    rmSync(join(dir, SEQ_FILE_NAME));
    expect((await openError(dir)).code).toBe(StorageErrorCode.SeqFileMissing);
    await (await LevelRaftStorage.open(dir, { repairSeqFile: true })).close();
    expect(existsSync(join(dir, SEQ_FILE_NAME))).toBe(true);
    await (await LevelRaftStorage.open(dir)).close();
  });

  it('completes an init interrupted after the database was in place', async () => {
    await (await LevelRaftStorage.init(dir, INIT)).close();
    rmSync(join(dir, SEQ_FILE_NAME)); // crash before the sidecar was written: writeSeq is still 1
    const s = await LevelRaftStorage.open(dir);
    expect(s.identity().writeSeq).toBe(1);
    await s.close();
  });

  it('refuses a second open of the same directory (Locked)', async () => {
    const s = await LevelRaftStorage.init(dir, INIT);
    expect((await openError(dir)).code).toBe(StorageErrorCode.Locked);
    await s.close();
  });

  it('openOrInit creates once, then opens; never initialises over something else', async () => {
    const a = await openOrInit(dir, INIT);
    expect(a.created).toBe(true);
    const incarnation = a.storage.identity().incarnation;
    expect(incarnation).toMatch(/^[0-9a-f]{32}$/);
    await a.storage.close();
    const b = await openOrInit(dir, INIT);
    expect(b.created).toBe(false);
    expect(b.storage.identity().incarnation).toBe(incarnation);
    await b.storage.close();
    await rejectsWithCode(() => LevelRaftStorage.init(dir, INIT), StorageErrorCode.AlreadyExists);
    await rejectsWithCode(() => openOrInit(dir, { ...INIT, raftId: 2 as RaftId }), StorageErrorCode.IdentityMismatch);
    await rejectsWithCode(() => openOrInit(dir, { ...INIT, clusterId: 'c2' }), StorageErrorCode.IdentityMismatch);

    const foreign = join(root, 'foreign');
    mkdirSync(foreign);
    writeFileSync(join(foreign, 'notes.txt'), 'not a raft log');
    await rejectsWithCode(() => openOrInit(foreign, INIT), StorageErrorCode.NotFound);
    await rejectsWithCode(() => LevelRaftStorage.init(foreign, INIT), StorageErrorCode.AlreadyExists);
    await rejectsWithCode(() => LevelRaftStorage.open(join(root, 'absent')), StorageErrorCode.NotFound);
  });

  it('gives each directory its own incarnation, and a joining node its raft id once', async () => {
    const a = await LevelRaftStorage.init(dir, { ...INIT, raftId: NO_NODE });
    const b = await LevelRaftStorage.init(join(root, 'b'), INIT);
    expect(a.identity().incarnation).not.toBe(b.identity().incarnation);
    expect(a.identity().raftId).toBe(NO_NODE);
    await a.assignRaftId(7 as RaftId);
    await rejectsWithCode(() => a.assignRaftId(8 as RaftId), StorageErrorCode.RaftIdAssigned);
    await rejectsWithCode(() => b.assignRaftId(8 as RaftId), StorageErrorCode.RaftIdAssigned);
    await a.close();
    await b.close();
    const again = await LevelRaftStorage.open(dir);
    expect(again.identity()).toMatchObject({ raftId: 7, clusterId: 'c1' });
    await again.close();
  });

  it('a write that changes nothing costs no batch, unless earlier writes are still queued', async () => {
    const s = await LevelRaftStorage.init(dir, INIT);
    await s.save(hs(1, 1, 0), ents(1, [1, 1]));
    const seq = s.identity().writeSeq;
    await s.save(hs(1, 1, 0), ents(1, [1]));
    expect(s.identity().writeSeq).toBe(seq);
    const first = s.save(hs(2, 2, 0), []);
    let repeatDone = false;
    const repeat = s.save(hs(2, 2, 0), []).then(() => (repeatDone = true));
    expect(repeatDone).toBe(false);
    await first;
    await repeat;
    expect(s.identity().writeSeq).toBeGreaterThan(seq);
    await s.close();
  });

  it('writes a commit-only save unsynced when asked, and keeps the sidecar on synced writeSeqs only', async () => {
    const s = await LevelRaftStorage.init(dir, INIT);
    await s.save(hs(1, 1, 0), ents(1, [1, 1]));
    const synced = s.identity().writeSeq;
    const sidecar = (): number => readFileSync(join(dir, SEQ_FILE_NAME)).readUInt32BE(12);
    expect(sidecar()).toBe(synced);
    await s.save(hs(1, 1, 2), [], { sync: false });
    expect(s.identity().writeSeq).toBe(synced + 1);
    expect(sidecar()).toBe(synced);
    expect(s.stats()).toMatchObject({ batches: 2, syncedBatches: 1 });
    // A synced save of the same state must not return early: the state is not yet synced.
    await s.save(hs(1, 1, 2), []);
    expect(s.identity().writeSeq).toBe(synced + 2);
    expect(sidecar()).toBe(synced + 2);
    await s.close();
    const again = await LevelRaftStorage.open(dir);
    expect(again.initialState().hardState).toEqual(hs(1, 1, 2));
    await again.close();
  });

  it('fails stop after a failed disk write: that write and every later one are refused with IoFailed', async () => {
    const s = await LevelRaftStorage.init(dir, INIT);
    await s.save(hs(1, 1, 0), ents(1, [1]));
    // A real failure of the real database underneath: it is closed behind the storage's back.
    await (s as unknown as { db: { close(): Promise<void> } }).db.close();
    await rejectsWithCode(() => s.save(undefined, ents(2, [1])), StorageErrorCode.IoFailed);
    await rejectsWithCode(() => s.save(undefined, ents(3, [1])), StorageErrorCode.IoFailed);
    await s.close();
    const again = await LevelRaftStorage.open(dir);
    expect(again.lastIndex()).toBe(1);
    await again.close();
  });

  it('refuses entries, batches and snapshots over their limits, writing nothing', async () => {
    const s = await LevelRaftStorage.init(dir, INIT, {
      maxEntryDataBytes: 1000,
      maxBatchBytes: 5000,
      maxSnapshotBytes: 2000,
    });
    await s.save(hs(1, 1, 0), [ent(1, 1, new Uint8Array(1000))]);
    await rejectsWithCode(() => s.save(hs(1, 1, 0), [ent(2, 1, new Uint8Array(1001))]), StorageErrorCode.EntryTooLarge);
    const many = Array.from({ length: 6 }, (_, i) => ent(2 + i, 1, new Uint8Array(900)));
    await rejectsWithCode(() => s.save(undefined, many), StorageErrorCode.BatchTooLarge);
    await s.save(hs(1, 1, 1), []);
    await rejectsWithCode(
      () => s.createSnapshot(1 as LogIndex, CRASH_CONF, new Uint8Array(2001)),
      StorageErrorCode.SnapshotTooLarge,
    );
    // A snapshot over maxBatchBytes but within maxSnapshotBytes is fine: it goes in a batch of its own.
    const big = await LevelRaftStorage.init(join(root, 'big'), INIT, { maxBatchBytes: 1000, maxSnapshotBytes: 4000 });
    await big.save(hs(1, 1, 1), [ent(1, 1)]);
    await big.createSnapshot(1 as LogIndex, CRASH_CONF, new Uint8Array(3000));
    await big.close();
    const bigAgain = await LevelRaftStorage.open(join(root, 'big'));
    expect(bigAgain.snapshot().data.length).toBe(3000);
    await bigAgain.close();
    expect(s.lastIndex()).toBe(1);
    expect(s.snapshot().metadata.index).toBe(0);
    await s.close();
    await rejectsWithCode(() => s.save(undefined, [ent(2, 1)]), StorageErrorCode.Closed);
    const again = await LevelRaftStorage.open(dir);
    expect(again.lastIndex()).toBe(1);
    await again.close();
  });
});
