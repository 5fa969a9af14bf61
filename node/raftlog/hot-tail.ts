// The Raft log's hot tail (level-storage.ts): the newest entries with their data, bounded in bytes
// (raft.logCacheBytes); older entries are read back from LevelDB. Pure memory bookkeeping, no IO.

import { entryBytes } from '../../consensus/memory-storage.js';
import type { Entry } from '../../consensus/types.js';

/**
 * What one tail entry costs against cacheMaxBytes: entryBytes plus the objects around the data (the
 * Entry, its Uint8Array and ArrayBuffer), so a tail of tiny entries is bounded too.
 */
export const TAIL_ENTRY_OVERHEAD_BYTES = 160;

function tailCost(e: Entry): number {
  return entryBytes(e) + TAIL_ENTRY_OVERHEAD_BYTES;
}

/**
 * Entries from..from+size-1 in an array with a moving head: O(1) append, drop from the front,
 * truncate and lookup by index (a Map cost ~9 µs per append under load in bench:raft).
 */
export class HotTail {
  private items: (Entry | undefined)[] = [];
  private head = 0;
  /** Sum of tailCost over the entries held. */
  bytes = 0;
  constructor(public from: number) {}

  get size(): number {
    return this.items.length - this.head;
  }

  get(index: number): Entry | undefined {
    const k = index - this.from;
    return k >= 0 && k < this.size ? this.items[this.head + k] : undefined;
  }

  /** Appends the entry at from + size. */
  push(e: Entry): void {
    this.items.push(e);
    this.bytes += tailCost(e);
  }

  dropFront(): void {
    const e = this.items[this.head];
    this.items[this.head++] = undefined; // let the data go now
    if (e) this.bytes -= tailCost(e);
    this.from++;
    if (this.head > 1024 && this.head * 2 > this.items.length) {
      this.items.splice(0, this.head);
      this.head = 0;
    }
  }

  /** Drops the oldest entries while the tail costs more than `maxBytes` (callers pass only durable entries' bound). */
  trimTo(maxBytes: number, throughIndex = Infinity): void {
    while (this.bytes > maxBytes && this.size > 0 && this.from <= throughIndex) this.dropFront();
  }

  /** Drops the entries from `index` on; below the tail's start the tail restarts (empty) at `index`. */
  truncateFrom(index: number): void {
    if (index <= this.from) {
      this.clear(index);
      return;
    }
    const keep = this.head + (index - this.from);
    for (let k = keep; k < this.items.length; k++) {
      const e = this.items[k];
      if (e) this.bytes -= tailCost(e);
    }
    if (keep < this.items.length) this.items.length = keep;
  }

  clear(from: number): void {
    this.items = [];
    this.head = 0;
    this.bytes = 0;
    this.from = from;
  }
}
