// StoredState: the committed state (public, or this node's private state) kept in the chain store
// on disk, behind a bounded in-memory cache. It is what the node runs on (store.loadState).
//
// Block application is synchronous (executor.ts; TigerBeetle's rule), so `get` must be too:
//  - a key in the cache is answered from it;
//  - a key not in the cache is read with LevelDB's synchronous Get (classic-level's getSync, a
//    few microseconds when the block is in LevelDB's own block cache) and cached;
//  - `prefetch(keys)` loads keys with asynchronous reads first, so that applying a block whose
//    keys were prefetched (executor.ts prefetchBlockState) does no disk IO at all.
// A read returns the same bytes whichever way it is served, so the cache never changes a result:
// it only decides how fast a read is. Determinism does not depend on the cache size.
//
// The hash: the 2 KiB LtHash of the whole state is held here and in the store (written with every
// block in the block's batch), so the root needs no pass over the state, at start or ever.
//
// The commit window: the store writes a block's batch, then the node calls commit(overlay). In
// between, a read of a changed key that is not cached would see the new value on disk while the
// hash is still the old one. The store prevents it: before it writes, it calls holdOld(changes),
// which pins the old value of every changed key here until commit() (store.ts commitBlock).
//
// The cache: first-in first-out by bytes (a key written by a block is re-inserted, so hot keys —
// nonces and balances of active accounts — stay). FIFO rather than LRU because reordering on
// every hit would cost a Map delete + insert on the hot path of every read.

import { assert } from './errors.js';
import type { Hash } from './hash.js';
import { LtHash } from './lthash.js';
import type { CommittedState, StateChanges, StateKey, StateOverlay } from './state.js';
import { utf8 } from './codec.js';

/**
 * Default bound of one StoredState's cache (config `state.cacheMaxBytes`): values + keys + overhead.
 * 32 MiB: two states (public, private) then cost at most 64 MiB of a node's memory budget (issue 9:
 * < 400 MB RSS whatever the state's size); a leader's heap at 64 MiB of state held 44 MB of it. Hot
 * keys (nonces, balances) are small; a larger working set is served from LevelDB's own block cache.
 */
export const DEFAULT_STATE_CACHE_MAX_BYTES = 32 * 1024 * 1024;
/** Smallest cache accepted: a block's keys should fit in it (a block touches at most a few MiB). */
export const MIN_STATE_CACHE_MAX_BYTES = 1024 * 1024;
/** Bytes counted per cached entry besides key and value (Map slot, strings, array headers). */
const CACHE_ENTRY_OVERHEAD_BYTES = 96;

/** What StoredState needs from the key-value store (store.ts KvBackend implements it). */
export interface StateKvReader {
  getMany(keys: readonly Uint8Array[]): Promise<(Uint8Array | undefined)[]>;
  getSync(key: Uint8Array): Uint8Array | undefined;
}

/** A consistent read-only view of the store (store.ts KvReadView). */
export interface StateReadView {
  scan(prefix: Uint8Array, after?: Uint8Array): AsyncIterable<[Uint8Array, Uint8Array]>;
  close(): Promise<void>;
}

export interface StoredStateStats {
  /** Reads answered from the cache. */
  hits: number;
  /** Reads that went to disk synchronously (not prefetched). */
  syncReads: number;
  /** Keys loaded by prefetch. */
  prefetched: number;
  /** Bytes the cache holds now (estimate). */
  cacheBytes: number;
  cacheEntries: number;
}

export class StoredState implements CommittedState {
  /** null = known absent (new accounts and keys are read often: cache the miss too). */
  private readonly cache = new Map<StateKey, Uint8Array | null>();
  private cacheBytes = 0;
  /** Old values of the keys of a block written to disk but not yet committed here (see top). */
  private readonly held = new Map<StateKey, Uint8Array | null>();
  private readonly hash: LtHash;
  private cachedRoot: Hash | undefined;
  private readonly counters = { hits: 0, syncReads: 0, prefetched: 0 };

  /**
   * `keyPrefix`: the bytes in front of utf8(key) in the store (the state's slot). `lanes`: the
   * stored LtHash of the state (checked by the store against the head block before handing it out).
   */
  constructor(
    private readonly kv: StateKvReader,
    readonly keyPrefix: Uint8Array,
    lanes: LtHash,
    readonly cacheMaxBytes: number = DEFAULT_STATE_CACHE_MAX_BYTES,
    private readonly viewSource?: () => StateReadView,
  ) {
    assert(
      Number.isSafeInteger(cacheMaxBytes) && cacheMaxBytes >= MIN_STATE_CACHE_MAX_BYTES,
      () => `state cache of ${cacheMaxBytes} bytes is under MIN_STATE_CACHE_MAX_BYTES=${MIN_STATE_CACHE_MAX_BYTES}`,
    );
    this.hash = lanes.clone();
  }

  storeKey(key: StateKey): Uint8Array {
    const k = utf8(key);
    const out = new Uint8Array(this.keyPrefix.length + k.length);
    out.set(this.keyPrefix, 0);
    out.set(k, this.keyPrefix.length);
    return out;
  }

  get(key: StateKey): Uint8Array | undefined {
    if (this.held.size > 0) {
      const h = this.held.get(key);
      if (h !== undefined) return h ?? undefined;
    }
    const c = this.cache.get(key);
    if (c !== undefined) {
      this.counters.hits++;
      return c ?? undefined;
    }
    this.counters.syncReads++;
    const v = this.kv.getSync(this.storeKey(key));
    this.remember(key, v ?? null);
    return v;
  }

  /** Loads `keys` into the cache with asynchronous reads (the prefetch step before applying a block). */
  async prefetch(keys: Iterable<StateKey>): Promise<void> {
    const missing = new Set<StateKey>();
    for (const k of keys) if (!this.cache.has(k) && !this.held.has(k)) missing.add(k);
    if (missing.size === 0) return;
    const wanted = [...missing];
    const values = await this.kv.getMany(wanted.map((k) => this.storeKey(k)));
    for (let i = 0; i < wanted.length; i++) {
      // A key cached meanwhile (a commit) is newer than what was read: keep it.
      if (this.cache.has(wanted[i])) continue;
      this.remember(wanted[i], values[i] ?? null);
      this.counters.prefetched++;
    }
  }

  private remember(key: StateKey, value: Uint8Array | null): void {
    const old = this.cache.get(key);
    if (old !== undefined) {
      this.cacheBytes -= entryBytes(key, old);
      this.cache.delete(key);
    }
    this.cache.set(key, value);
    this.cacheBytes += entryBytes(key, value);
    while (this.cacheBytes > this.cacheMaxBytes && this.cache.size > 1) {
      const [k, v] = this.cache.entries().next().value as [StateKey, Uint8Array | null];
      this.cache.delete(k);
      this.cacheBytes -= entryBytes(k, v);
    }
  }

  /** Pins the current value of every key in `changes` until the next commit (store.ts, before its write). */
  holdOld(changes: StateChanges): void {
    for (const k of changes.keys()) if (!this.held.has(k)) this.held.set(k, this.get(k) ?? null);
  }

  ltHash(): LtHash {
    return this.hash;
  }

  root(): Hash {
    this.cachedRoot ??= this.hash.root();
    return this.cachedRoot;
  }

  commit(overlay: StateOverlay): void {
    assert(overlay.parent === this, 'StoredState.commit: the overlay was not made on this state');
    const delta = overlay.delta();
    this.hash.addVector(delta.lanes);
    for (const [k, v] of overlay.changes) this.remember(k, v);
    this.held.clear();
    this.cachedRoot = undefined;
  }

  /**
   * Opens (synchronously) a consistent view of the store for reading the whole state, e.g. a
   * snapshot export while blocks keep being committed. Entries are under `prefix`.
   */
  openReadView(): { view: StateReadView; prefix: Uint8Array } {
    assert(this.viewSource !== undefined, 'StoredState.openReadView: this state has no view source');
    return { view: this.viewSource(), prefix: this.keyPrefix };
  }

  stats(): StoredStateStats {
    return { ...this.counters, cacheBytes: this.cacheBytes, cacheEntries: this.cache.size };
  }
}

function entryBytes(key: StateKey, value: Uint8Array | null): number {
  return key.length * 2 + (value === null ? 0 : value.length) + CACHE_ENTRY_OVERHEAD_BYTES;
}
