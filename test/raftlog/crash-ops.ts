// A deterministic history of Raft log writes, shared by the crash writer (a child process that
// is SIGKILLed at random points) and the test that replays the same history on a MemoryStorage
// to know exactly what the log must hold after N acknowledged writes.
//
// Operation n is a function of (seed, n, the log's state before it), so a writer restarted on a
// recovered log with n writes continues with the same operations the model expects.

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
import { SeededRng } from '../../consensus/rng.js';
import type { WritableStorage } from '../../consensus/storage.js';

export const CRASH_CONF: ConfState = {
  voters: [1, 2, 3] as RaftId[],
  votersOutgoing: [],
  learners: [],
  learnersNext: [],
  autoLeave: false,
};
/** Small, so that compaction (deletes in the same batch as the snapshot) happens often. */
export const CRASH_RETAIN_ENTRIES = 5;

export type CrashOp =
  | { readonly kind: 'save'; readonly hardState: HardState; readonly entries: readonly Entry[] }
  | { readonly kind: 'createSnapshot'; readonly index: LogIndex; readonly data: Uint8Array }
  | { readonly kind: 'applySnapshot'; readonly snapshot: Snapshot };

export function nextOp(seed: number, n: number, s: WritableStorage): CrashOp {
  const rng = new SeededRng((seed * 1_000_003 + n) >>> 0);
  const hard = s.initialState().hardState;
  const last = s.lastIndex();
  const first = s.firstIndex();
  const snapIndex = s.snapshot().metadata.index;
  const roll = rng.nextInt(100);
  const bytes = (max: number): Uint8Array => Uint8Array.from({ length: rng.nextInt(max + 1) }, () => rng.nextInt(256));
  if (hard.term === 0 || roll < 12) {
    // A new term: vote, and rewrite an uncommitted suffix (a follower taking a new leader's log).
    const termN = (hard.term + 1) as Term;
    const base = Math.max(hard.commit, first - 1);
    const from = base + 1 + rng.nextInt(last - base + 1);
    const entries = Array.from({ length: 1 + rng.nextInt(30) }, (_, i) => entry(from + i, termN, bytes(300)));
    return {
      kind: 'save',
      hardState: { term: termN, vote: (1 + rng.nextInt(3)) as RaftId, commit: hard.commit },
      entries,
    };
  }
  if (roll < 22 && hard.commit > snapIndex) {
    return {
      kind: 'createSnapshot',
      index: (snapIndex + 1 + rng.nextInt(hard.commit - snapIndex)) as LogIndex,
      data: bytes(2000),
    };
  }
  if (roll < 25) {
    const index = (last + 1 + rng.nextInt(50)) as LogIndex;
    return {
      kind: 'applySnapshot',
      snapshot: { metadata: { index, term: hard.term, confState: CRASH_CONF }, data: bytes(2000) },
    };
  }
  // Append in the current term and move commit forward.
  const entries = Array.from({ length: 1 + rng.nextInt(40) }, (_, i) => entry(last + 1 + i, hard.term, bytes(300)));
  const newLast = last + entries.length;
  const commit = Math.min(newLast, hard.commit + rng.nextInt(newLast - hard.commit + 1)) as LogIndex;
  return { kind: 'save', hardState: { ...hard, commit }, entries };
}

export async function applyOp(s: WritableStorage, op: CrashOp): Promise<void> {
  switch (op.kind) {
    case 'save':
      await s.save(op.hardState, op.entries);
      return;
    case 'createSnapshot':
      await s.createSnapshot(op.index, CRASH_CONF, op.data);
      return;
    case 'applySnapshot':
      await s.applySnapshot(op.snapshot);
      return;
  }
}

function entry(index: number, termN: Term, data: Uint8Array): Entry {
  return { index: index as LogIndex, term: termN, type: EntryType.Normal, data };
}

/** Everything a log holds, in plain comparable form. */
export function logState(s: WritableStorage): unknown {
  const snap = s.snapshot();
  const first = s.firstIndex();
  const last = s.lastIndex();
  return {
    hardState: s.initialState().hardState,
    confState: s.initialState().confState,
    snapshot: { ...snap.metadata, data: Array.from(snap.data) },
    firstIndex: first,
    lastIndex: last,
    compactedTerm: s.term((first - 1) as LogIndex),
    entries: s
      .entries(first, (last + 1) as LogIndex, Infinity)
      .map((e) => ({ index: e.index, term: e.term, type: e.type, data: Buffer.from(e.data).toString('hex') })),
  };
}
