// The compliance suite every WritableStorage passes (the in-memory reference and the LevelDB one):
// one description of what a Raft log storage does, run against each implementation.
// Cases follow etcd-io/raft's storage_test.go and the Raft paper's Figure 2.

import { afterEach, describe, expect, it } from 'vitest';
import { RaftError, RaftErrorCode, RaftInvariantError } from '../../consensus/errors.js';
import { entryBytes } from '../../consensus/memory-storage.js';
import { SeededRng } from '../../consensus/rng.js';
import type { WritableStorage } from '../../consensus/storage.js';
import {
  EntryType,
  type ConfState,
  type Entry,
  type HardState,
  type LogIndex,
  type RaftId,
  type Snapshot,
  type Term,
} from '../../consensus/types.js';

/** What both log storages offer: the core's interface plus the bytes held (the snapshot trigger). */
export type LogStorage = WritableStorage & { heldBytes(): number };

export interface StorageHarness {
  readonly storage: LogStorage;
  /** Releases the storage (closes files, removes temp dirs). */
  dispose(): Promise<void>;
}

export interface StorageFactoryOptions {
  readonly confState: ConfState;
  readonly snapshotRetainEntries: number;
}

export type StorageFactory = (options: StorageFactoryOptions) => Promise<StorageHarness>;

export const CONF: ConfState = {
  voters: [1, 2, 3] as RaftId[],
  votersOutgoing: [],
  learners: [4] as RaftId[],
  learnersNext: [],
  autoLeave: false,
};

export const idx = (n: number): LogIndex => n as LogIndex;
export const hs = (termN: number, vote: number, commit: number): HardState => ({
  term: termN as Term,
  vote: vote as RaftId,
  commit: commit as LogIndex,
});
export function ent(
  index: number,
  termN: number,
  data: string | Uint8Array = `e${index}t${termN}`,
  type = EntryType.Normal,
): Entry {
  return {
    index: index as LogIndex,
    term: termN as Term,
    type,
    data: typeof data === 'string' ? new TextEncoder().encode(data) : data,
  };
}
/** Entries first..first+terms.length-1 with the given terms. */
export function ents(first: number, terms: number[]): Entry[] {
  return terms.map((t, i) => ent(first + i, t));
}

/** Plain comparable form (data as a normal array), so Buffer vs Uint8Array does not matter. */
export function plain(e: Entry): { index: number; term: number; type: number; data: number[] } {
  return { index: e.index, term: e.term, type: e.type, data: Array.from(e.data) };
}

export async function rejectsWithCode(fn: () => unknown, code: RaftErrorCode | string): Promise<void> {
  const err = await (async () => fn())().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `expected an error with code ${code}`).toBeInstanceOf(Error);
  expect((err as RaftError).code).toBe(code);
}

export async function rejectsWithInvariant(fn: () => unknown, message: RegExp): Promise<void> {
  const err = await (async () => fn())().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(RaftInvariantError);
  expect((err as Error).message).toMatch(message);
}

function throwsCode(fn: () => unknown, code: RaftErrorCode): void {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  expect(caught, `expected ${code}`).toBeInstanceOf(RaftError);
  expect((caught as RaftError).code).toBe(code);
}

export function describeStorageCompliance(name: string, factory: StorageFactory): void {
  describe(`${name}: Raft log storage compliance`, () => {
    let harness: StorageHarness | undefined;
    afterEach(async () => {
      await harness?.dispose();
      harness = undefined;
    });
    async function fresh(snapshotRetainEntries = 0): Promise<LogStorage> {
      harness = await factory({ confState: CONF, snapshotRetainEntries });
      return harness.storage;
    }
    /** Log 1..5 with terms [1,1,2,2,3], term 3, commit 0. */
    async function fiveEntries(snapshotRetainEntries = 0): Promise<LogStorage> {
      const s = await fresh(snapshotRetainEntries);
      await s.save(hs(3, 1, 0), ents(1, [1, 1, 2, 2, 3]));
      return s;
    }

    it('starts empty: firstIndex 1, lastIndex 0, term(0) = 0, the bootstrap membership', async () => {
      const s = await fresh();
      expect(s.firstIndex()).toBe(1);
      expect(s.lastIndex()).toBe(0);
      expect(s.term(idx(0))).toBe(0);
      expect(s.entries(idx(1), idx(1), Infinity)).toEqual([]);
      expect(s.snapshot().metadata.index).toBe(0);
      expect(s.initialState()).toEqual({ hardState: hs(0, 0, 0), confState: CONF });
      throwsCode(() => s.term(idx(1)), RaftErrorCode.Unavailable);
    });

    it('reads back saved entries, terms and the index range', async () => {
      const s = await fiveEntries();
      expect(s.firstIndex()).toBe(1);
      expect(s.lastIndex()).toBe(5);
      expect([1, 2, 3, 4, 5].map((i) => s.term(idx(i)))).toEqual([1, 1, 2, 2, 3]);
      expect(s.entries(idx(1), idx(6), Infinity).map(plain)).toEqual(ents(1, [1, 1, 2, 2, 3]).map(plain));
      expect(s.entries(idx(2), idx(4), Infinity).map(plain)).toEqual(ents(2, [1, 2]).map(plain));
      expect(s.entries(idx(3), idx(3), Infinity)).toEqual([]);
      expect(s.entries(idx(1), idx(6), Infinity)[0].type).toBe(EntryType.Normal);
    });

    it('keeps the entry type and arbitrary binary data', async () => {
      const s = await fresh();
      const data = Uint8Array.from({ length: 300 }, (_, i) => (i * 7) & 0xff);
      await s.save(hs(1, 0, 0), [ent(1, 1, data, EntryType.ConfChange), ent(2, 1, new Uint8Array(0))]);
      const got = s.entries(idx(1), idx(3), Infinity);
      expect(got.map(plain)).toEqual([
        plain(ent(1, 1, data, EntryType.ConfChange)),
        plain(ent(2, 1, new Uint8Array(0))),
      ]);
    });

    it('throws Unavailable beyond lastIndex (entries and term)', async () => {
      const s = await fiveEntries();
      throwsCode(() => s.entries(idx(1), idx(7), Infinity), RaftErrorCode.Unavailable);
      throwsCode(() => s.entries(idx(6), idx(7), Infinity), RaftErrorCode.Unavailable);
      throwsCode(() => s.term(idx(6)), RaftErrorCode.Unavailable);
      expect(s.entries(idx(6), idx(6), Infinity)).toEqual([]);
    });

    it('limits entries() by maxBytes, but always returns at least one entry', async () => {
      const s = await fiveEntries();
      const all = s.entries(idx(1), idx(6), Infinity);
      const size = (n: number): number => all.slice(0, n).reduce((sum, e) => sum + entryBytes(e), 0);
      expect(s.entries(idx(1), idx(6), 0)).toHaveLength(1);
      expect(s.entries(idx(1), idx(6), size(1))).toHaveLength(1);
      expect(s.entries(idx(1), idx(6), size(2) - 1)).toHaveLength(1);
      expect(s.entries(idx(1), idx(6), size(2))).toHaveLength(2);
      expect(s.entries(idx(1), idx(6), size(4) + 1)).toHaveLength(4);
      expect(s.entries(idx(1), idx(6), size(5))).toHaveLength(5);
      expect(s.entries(idx(4), idx(6), 0).map(plain)).toEqual([plain(ent(4, 2))]);
    });

    it('truncates a conflicting suffix and appends (Figure 2, AppendEntries step 3)', async () => {
      const s = await fiveEntries();
      await s.save(hs(4, 2, 0), ents(3, [4, 4]));
      expect(s.lastIndex()).toBe(4);
      expect([1, 2, 3, 4].map((i) => s.term(idx(i)))).toEqual([1, 1, 4, 4]);
      throwsCode(() => s.term(idx(5)), RaftErrorCode.Unavailable);
      expect(s.entries(idx(3), idx(5), Infinity).map(plain)).toEqual(ents(3, [4, 4]).map(plain));
    });

    it('keeps entries after a matching prefix, and appends past the end', async () => {
      const s = await fiveEntries();
      await s.save(undefined, ents(2, [1, 2]));
      expect(s.lastIndex()).toBe(5);
      expect(s.entries(idx(1), idx(6), Infinity).map(plain)).toEqual(ents(1, [1, 1, 2, 2, 3]).map(plain));
      await s.save(undefined, ents(5, [3, 3, 3]));
      expect(s.lastIndex()).toBe(7);
      expect(s.entries(idx(5), idx(8), Infinity).map(plain)).toEqual(ents(5, [3, 3, 3]).map(plain));
    });

    it('refuses a write that would leave a gap, decrease terms, or overwrite a committed entry', async () => {
      const s = await fiveEntries();
      await rejectsWithInvariant(() => s.save(undefined, ents(7, [3])), /gap/);
      await rejectsWithInvariant(() => s.save(undefined, ents(6, [2])), /below the previous entry's term/);
      await s.save(hs(3, 1, 3), []);
      await rejectsWithInvariant(() => s.save(undefined, ents(3, [5])), /committed entry/);
      // Nothing of the refused writes reached the log.
      expect(s.lastIndex()).toBe(5);
      expect(s.term(idx(3))).toBe(2);
    });

    it('round-trips the hard state and refuses one that goes back', async () => {
      const s = await fiveEntries();
      await s.save(hs(5, 2, 4), []);
      expect(s.initialState()).toEqual({ hardState: hs(5, 2, 4), confState: CONF });
      await rejectsWithInvariant(() => s.save(hs(4, 2, 4), []), /term went back/);
      await rejectsWithInvariant(() => s.save(hs(5, 3, 4), []), /vote changed within term/);
      await rejectsWithInvariant(() => s.save(hs(5, 2, 3), []), /commit went back/);
      await rejectsWithInvariant(() => s.save(hs(5, 2, 6), []), /out of range/);
      await s.save(hs(6, 0, 5), []);
      expect(s.initialState().hardState).toEqual(hs(6, 0, 5));
    });

    it('saves entries and hard state together (a vote and the entries it covers)', async () => {
      const s = await fresh();
      await s.save(hs(2, 3, 2), ents(1, [1, 2, 2]));
      expect(s.initialState().hardState).toEqual(hs(2, 3, 2));
      expect(s.lastIndex()).toBe(3);
    });

    it('createSnapshot records the snapshot and compacts behind it; older snapshots are refused', async () => {
      const s = await fiveEntries(0);
      await s.save(hs(3, 1, 4), []);
      const data = Uint8Array.of(9, 8, 7);
      const snap = await s.createSnapshot(idx(3), CONF, data);
      expect(snap.metadata).toEqual({ index: 3, term: 2, confState: CONF });
      expect(Array.from(s.snapshot().data)).toEqual([9, 8, 7]);
      expect(s.snapshot().metadata.index).toBe(3);
      expect(s.firstIndex()).toBe(4);
      expect(s.lastIndex()).toBe(5);
      expect(s.term(idx(3))).toBe(2); // the compaction point still answers
      throwsCode(() => s.term(idx(2)), RaftErrorCode.Compacted);
      throwsCode(() => s.entries(idx(3), idx(5), Infinity), RaftErrorCode.Compacted);
      expect(s.entries(idx(4), idx(6), Infinity).map(plain)).toEqual(ents(4, [2, 3]).map(plain));
      await rejectsWithCode(() => s.createSnapshot(idx(3), CONF, data), RaftErrorCode.SnapshotOutOfDate);
      await rejectsWithCode(() => s.createSnapshot(idx(2), CONF, data), RaftErrorCode.SnapshotOutOfDate);
      await rejectsWithInvariant(() => s.createSnapshot(idx(5), CONF, data), /not committed/);
    });

    it('createSnapshot keeps the last snapshotRetainEntries entries for slow followers', async () => {
      const s = await fiveEntries(2);
      await s.save(hs(3, 1, 5), []);
      await s.createSnapshot(idx(4), CONF, new Uint8Array(0));
      expect(s.snapshot().metadata.index).toBe(4);
      expect(s.firstIndex()).toBe(3);
      expect(s.entries(idx(3), idx(6), Infinity).map(plain)).toEqual(ents(3, [2, 2, 3]).map(plain));
      expect(s.term(idx(2))).toBe(1);
    });

    it('compact drops entries up to the index, never past the snapshot', async () => {
      const s = await fiveEntries(10);
      await s.save(hs(3, 1, 5), []);
      await s.createSnapshot(idx(4), CONF, new Uint8Array(0));
      expect(s.firstIndex()).toBe(1);
      await s.compact(idx(2));
      expect(s.firstIndex()).toBe(3);
      expect(s.term(idx(2))).toBe(1);
      await rejectsWithCode(() => s.compact(idx(2)), RaftErrorCode.Compacted);
      await rejectsWithCode(() => s.compact(idx(1)), RaftErrorCode.Compacted);
      await rejectsWithInvariant(() => s.compact(idx(5)), /beyond the snapshot index/);
      await s.compact(idx(4));
      expect(s.firstIndex()).toBe(5);
      expect(s.entries(idx(5), idx(6), Infinity).map(plain)).toEqual([plain(ent(5, 3))]);
    });

    it('ignores saved entries that are already compacted', async () => {
      const s = await fiveEntries(0);
      await s.save(hs(3, 1, 4), []);
      await s.createSnapshot(idx(3), CONF, new Uint8Array(0));
      await s.save(undefined, ents(2, [1, 2, 2, 3, 3]));
      expect(s.firstIndex()).toBe(4);
      expect(s.lastIndex()).toBe(6);
      expect(s.entries(idx(4), idx(7), Infinity).map(plain)).toEqual(ents(4, [2, 3, 3]).map(plain));
    });

    it('applySnapshot replaces the log, raises commit, and brings the snapshot membership', async () => {
      const s = await fiveEntries();
      const conf: ConfState = {
        voters: [1, 2, 5] as RaftId[],
        votersOutgoing: [],
        learners: [],
        learnersNext: [],
        autoLeave: false,
      };
      const snap: Snapshot = {
        metadata: { index: idx(10), term: 4 as Term, confState: conf },
        data: Uint8Array.of(1, 2, 3),
      };
      await s.applySnapshot(snap);
      expect(s.firstIndex()).toBe(11);
      expect(s.lastIndex()).toBe(10);
      expect(s.term(idx(10))).toBe(4);
      throwsCode(() => s.term(idx(9)), RaftErrorCode.Compacted);
      throwsCode(() => s.entries(idx(5), idx(6), Infinity), RaftErrorCode.Compacted);
      expect(s.snapshot().metadata).toEqual(snap.metadata);
      expect(Array.from(s.snapshot().data)).toEqual([1, 2, 3]);
      expect(s.initialState()).toEqual({ hardState: hs(3, 1, 10), confState: conf });
      await rejectsWithCode(() => s.applySnapshot(snap), RaftErrorCode.SnapshotOutOfDate);
      await rejectsWithCode(
        () => s.applySnapshot({ ...snap, metadata: { ...snap.metadata, index: idx(8) } }),
        RaftErrorCode.SnapshotOutOfDate,
      );
      await s.save(hs(4, 1, 10), ents(11, [4, 4]));
      expect(s.lastIndex()).toBe(12);
      expect(s.entries(idx(11), idx(13), Infinity).map(plain)).toEqual(ents(11, [4, 4]).map(plain));
    });

    it('refuses a snapshot behind the commit index (it would drop committed entries)', async () => {
      const s = await fiveEntries();
      await s.save(hs(3, 1, 4), []);
      const snap: Snapshot = { metadata: { index: idx(3), term: 2 as Term, confState: CONF }, data: new Uint8Array(0) };
      await rejectsWithInvariant(() => s.applySnapshot(snap), /behind commit 4/);
      expect(s.lastIndex()).toBe(5);
      expect(s.snapshot().metadata.index).toBe(0);
    });

    it('agrees with a naive model of the log over a seeded random history', async () => {
      const s = await fresh(3);
      const rng = new SeededRng(20261121);
      // The naive model: a plain map from index to entry, plus the compaction point.
      const model = new Map<number, Entry>();
      let compacted = 0;
      let last = 0;
      let hard = hs(0, 0, 0);
      let snapIndex = 0;
      for (let step = 0; step < 300; step++) {
        const roll = rng.nextInt(10);
        if (roll < 6 || hard.term === 0) {
          // New term and a suffix rewrite, or a plain append in the current term.
          const newTerm = roll < 2 || hard.term === 0;
          const termN = hard.term + (newTerm ? 1 : 0);
          const from = newTerm
            ? Math.max(hard.commit, compacted) + 1 + rng.nextInt(last - Math.max(hard.commit, compacted) + 1)
            : last + 1;
          const batch = ents(
            from,
            Array.from({ length: 1 + rng.nextInt(4) }, () => termN),
          );
          const newLast = batch[batch.length - 1].index;
          const commit = Math.min(newLast, hard.commit + rng.nextInt(3));
          const next = hs(termN, newTerm ? 1 + rng.nextInt(3) : hard.vote, commit);
          await s.save(next, batch);
          for (let i = from; i <= last; i++) model.delete(i);
          for (const e of batch) model.set(e.index, e);
          last = newLast;
          hard = next;
        } else if (roll < 8 && hard.commit > snapIndex) {
          const at = snapIndex + 1 + rng.nextInt(hard.commit - snapIndex);
          await s.createSnapshot(idx(at), CONF, Uint8Array.of(step & 0xff));
          snapIndex = at;
          const to = Math.max(compacted, at - 3);
          for (let i = compacted + 1; i <= to; i++) model.delete(i);
          if (to > compacted) compacted = to;
        } else if (snapIndex > compacted) {
          const to = compacted + 1 + rng.nextInt(snapIndex - compacted);
          await s.compact(idx(to));
          for (let i = compacted + 1; i <= to; i++) model.delete(i);
          compacted = to;
        }
        expect(s.firstIndex()).toBe(compacted + 1);
        expect(s.lastIndex()).toBe(last);
        expect(s.initialState().hardState).toEqual(hard);
        expect(s.snapshot().metadata.index).toBe(snapIndex);
        let heldBytes = 0;
        for (let i = compacted + 1; i <= last; i++) heldBytes += entryBytes(model.get(i)!);
        expect(s.heldBytes()).toBe(heldBytes);
        if (last > compacted) {
          const lo = compacted + 1 + rng.nextInt(last - compacted);
          const hi = lo + rng.nextInt(last - lo + 2);
          const want = [];
          for (let i = lo; i < hi; i++) want.push(plain(model.get(i)!));
          expect(s.entries(idx(lo), idx(hi), Infinity).map(plain)).toEqual(want);
          expect(s.term(idx(lo))).toBe(model.get(lo)!.term);
        }
      }
    });
  });
}
