// The simulated disk of one node: a synced image plus an unsynced tail of writes that a crash
// may partly drop.
//
// The node's Raft core reads a live MemoryStorage (what the process has in memory). Every write
// the driver makes to it is also recorded here. A write made with sync (fsync) makes itself and
// everything before it durable; a write without sync waits in the tail, as data in the page cache
// does. A crash keeps a random PREFIX of the tail and drops the rest: the file system is modelled
// as writing in order (an ordered journal), which is what the durable storage's single
// append-only batch stream gives. Recovery rebuilds a fresh MemoryStorage from the synced image,
// exactly as the durable storage rebuilds its read cache from disk on restart.

import type { SeededRng } from '../../consensus/rng.js';
import { MemoryStorage } from '../../consensus/memory-storage.js';
import type { ConfState, Entry, HardState, LogIndex, Snapshot } from '../../consensus/types.js';

export type DiskWrite =
  | { readonly kind: 'save'; readonly hardState: HardState | undefined; readonly entries: readonly Entry[] }
  | { readonly kind: 'applySnapshot'; readonly snapshot: Snapshot }
  | {
      readonly kind: 'createSnapshot';
      readonly index: LogIndex;
      readonly confState: ConfState;
      readonly data: Uint8Array;
    }
  | { readonly kind: 'compact'; readonly index: LogIndex };

/**
 * Upper bound on unsynced writes held in the tail. A driver that never syncs would otherwise
 * grow it forever; past the bound the oldest write is flushed, as a kernel flushes dirty pages.
 */
export const MAX_UNSYNCED_WRITES = 1024;

export interface CrashLoss {
  /** Unsynced writes that reached the disk anyway. */
  readonly kept: number;
  /** Unsynced writes that were lost. */
  readonly lost: number;
}

function applyWrite(storage: MemoryStorage, w: DiskWrite): void {
  switch (w.kind) {
    case 'save':
      storage.save(w.hardState, w.entries);
      return;
    case 'applySnapshot':
      storage.applySnapshot(w.snapshot);
      return;
    case 'createSnapshot':
      storage.createSnapshot(w.index, w.confState, w.data);
      return;
    case 'compact':
      storage.compact(w.index);
      return;
  }
}

/** A copy of a MemoryStorage's contents, through its public read API only. */
export function copyStorage(from: MemoryStorage, snapshotRetainEntries: number): MemoryStorage {
  const compacted = from.compacted();
  const first = from.firstIndex();
  const last = from.lastIndex();
  const entries = first <= last ? from.entries(first, (last + 1) as LogIndex, Number.MAX_SAFE_INTEGER) : [];
  return new MemoryStorage({
    hardState: from.hardState(),
    snapshot: from.snapshot(),
    compacted,
    entries,
    snapshotRetainEntries,
  });
}

export class SimDisk {
  /** What survives any crash. */
  private synced: MemoryStorage;
  /** Writes not yet synced, oldest first. */
  private tail: DiskWrite[] = [];
  syncs = 0;

  constructor(
    initial: MemoryStorage,
    private readonly snapshotRetainEntries: number,
  ) {
    this.synced = copyStorage(initial, snapshotRetainEntries);
  }

  /** Records a write the driver made to the live storage. */
  write(w: DiskWrite, sync: boolean): void {
    if (sync) {
      this.flush(this.tail.length);
      applyWrite(this.synced, w);
      this.syncs++;
      return;
    }
    this.tail.push(w);
    if (this.tail.length > MAX_UNSYNCED_WRITES) this.flush(1);
  }

  private flush(count: number): void {
    for (let i = 0; i < count; i++) applyWrite(this.synced, this.tail[i]!);
    this.tail = this.tail.slice(count);
  }

  unsyncedWrites(): number {
    return this.tail.length;
  }

  /** The process died: a random prefix of the unsynced tail reaches the disk, the rest is gone. */
  crash(rng: SeededRng): CrashLoss {
    const kept = rng.nextInt(this.tail.length + 1);
    const lost = this.tail.length - kept;
    this.flush(kept);
    this.tail = [];
    return { kept, lost };
  }

  /** The storage a restarted process reads: a fresh copy of what is on disk. */
  recover(): MemoryStorage {
    return copyStorage(this.synced, this.snapshotRetainEntries);
  }

  /** The synced image, for checkers (read only). */
  syncedImage(): MemoryStorage {
    return this.synced;
  }
}
