import { describe, expect, it } from 'vitest';
import { RaftInvariantError } from '../../consensus/errors.js';
import { entryBytes, ENTRY_OVERHEAD_BYTES, MemoryStorage } from '../../consensus/memory-storage.js';
import type { LogIndex, Snapshot, Term } from '../../consensus/types.js';
import { CONF, describeStorageCompliance, ent, ents, hs, plain } from './storage.suite.js';

describeStorageCompliance('MemoryStorage', async ({ confState, snapshotRetainEntries }) => ({
  storage: MemoryStorage.bootstrap(confState, { snapshotRetainEntries }),
  dispose: async () => {},
}));

describe('MemoryStorage construction', () => {
  it('counts entry bytes as data plus a fixed overhead', () => {
    expect(entryBytes(ent(1, 1, new Uint8Array(100)))).toBe(100 + ENTRY_OVERHEAD_BYTES);
    expect(entryBytes(ent(1, 1, new Uint8Array(0)))).toBe(ENTRY_OVERHEAD_BYTES);
  });

  it('restores from a snapshot, a compaction point before it, entries and a hard state', () => {
    const snapshot: Snapshot = {
      metadata: { index: 12 as LogIndex, term: 3 as Term, confState: CONF },
      data: Uint8Array.of(5),
    };
    const s = new MemoryStorage({
      snapshot,
      compacted: { index: 10 as LogIndex, term: 2 as Term },
      entries: ents(11, [3, 3, 3, 4]),
      hardState: hs(4, 2, 13),
    });
    expect(s.firstIndex()).toBe(11);
    expect(s.lastIndex()).toBe(14);
    expect(s.term(10 as LogIndex)).toBe(2);
    expect(s.initialState()).toEqual({ hardState: hs(4, 2, 13), confState: CONF });
    expect(s.entries(11 as LogIndex, 15 as LogIndex, Infinity).map(plain)).toEqual(ents(11, [3, 3, 3, 4]).map(plain));
  });

  it('refuses inconsistent restored state with the offending values', () => {
    const snapshot: Snapshot = {
      metadata: { index: 12 as LogIndex, term: 3 as Term, confState: CONF },
      data: new Uint8Array(0),
    };
    expect(() => new MemoryStorage({ snapshot, compacted: { index: 13 as LogIndex, term: 3 as Term } })).toThrow(
      /beyond the snapshot index 12/,
    );
    expect(
      () =>
        new MemoryStorage({
          snapshot,
          compacted: { index: 10 as LogIndex, term: 2 as Term },
          entries: ents(11, [3, 4]),
        }),
    ).toThrow(/snapshot at 12 has term 3 but the log holds term 4/);
    expect(() => new MemoryStorage({ entries: ents(1, [1, 1]), hardState: hs(1, 0, 3) })).toThrow(RaftInvariantError);
    expect(() => new MemoryStorage({ entries: ents(2, [1]) })).toThrow(/does not follow the compaction point 0/);
  });
});
