// The chain store's key-value boundary: KvBackend, with its two implementations run by one
// compliance suite (test/chain/store.test.ts): LevelKv (classic-level, chained batches — docs/stack.md:
// 3-7x faster than array batches) and MemoryKv (the in-memory twin; a store reopened over the same
// MemoryKv models a restart). Also the byte-order helpers both use.

import { Level } from 'level';
import { ChainError, ChainErrorCode } from './errors.js';
import { toHexBare } from './codec.js';
import type { StateReadView } from './state-store.js';

/**
 * LevelDB table files the chain store keeps open (config `state.maxOpenFiles`). LevelDB maps each open
 * table into memory (mmap, up to 1,000 per process), and every page a read touches stays in the node's
 * RSS until the table is closed: with LevelDB's default of 1,000, a leader serving a 1 GiB snapshot
 * reached 2,048 MB RSS (622 MB with 74). LevelDB keeps 10 of these files for itself, so 74 keeps at most
 * 64 tables open: ~128 MiB mapped at ~2 MiB a table (classic-level's maxFileSize; a flushed write buffer
 * makes one of up to ~4 MiB).
 * The price: a point read in a table not open costs an open and an index read (measured on 380 tables:
 * ~190 µs a random get, ~55 µs with all open), which the state cache keeps off the hot path.
 */
export const DEFAULT_STATE_MAX_OPEN_FILES = 74;
/** LevelDB clamps max_open_files to this range (db_impl.cc SanitizeOptions); a value outside is refused. */
export const MIN_STATE_MAX_OPEN_FILES = 74;
export const MAX_STATE_MAX_OPEN_FILES = 50_000;

export interface KvBatch {
  put(key: Uint8Array, value: Uint8Array): void;
  del(key: Uint8Array): void;
  /** Atomic; durable (fsync) before it resolves when sync is true. */
  write(sync: boolean): Promise<void>;
}

/** A consistent read-only view of the store at the moment it was opened (a LevelDB snapshot). */
export type KvReadView = StateReadView;

export interface KvBackend {
  get(key: Uint8Array): Promise<Uint8Array | undefined>;
  /** A synchronous read (StoredState serves cache misses with it during a synchronous apply). */
  getSync(key: Uint8Array): Uint8Array | undefined;
  /** Many reads in one call (the prefetch step: one native request instead of one per key). */
  getMany(keys: readonly Uint8Array[]): Promise<(Uint8Array | undefined)[]>;
  batch(): KvBatch;
  /** Entries whose key starts with `prefix` (and is above `after`, when given), in key order. */
  scan(prefix: Uint8Array, after?: Uint8Array): AsyncIterable<[Uint8Array, Uint8Array]>;
  /** Opens a consistent view now (synchronously): later writes are not seen through it. */
  readView(): KvReadView;
  /** The first entry whose key is >= `from` and starts with `prefix` (one seek). */
  firstAtOrAfter(from: Uint8Array, prefix: Uint8Array): Promise<[Uint8Array, Uint8Array] | undefined>;
  close(): Promise<void>;
}

export class MemoryKv implements KvBackend {
  private readonly map = new Map<string, Uint8Array>();
  /** Counts writes; tests use it to check that one commit is one batch. */
  batchesWritten = 0;

  async get(key: Uint8Array): Promise<Uint8Array | undefined> {
    return this.getSync(key);
  }

  async getMany(keys: readonly Uint8Array[]): Promise<(Uint8Array | undefined)[]> {
    return keys.map((k) => this.getSync(k));
  }

  getSync(key: Uint8Array): Uint8Array | undefined {
    const v = this.map.get(toHexBare(key));
    return v === undefined ? undefined : Uint8Array.from(v);
  }

  readView(): KvReadView {
    // Values are never mutated in place (writes store copies), so a copy of the map is a snapshot.
    return memoryView(new Map(this.map));
  }

  batch(): KvBatch {
    const ops: [string, Uint8Array | null][] = [];
    return {
      put: (k, v) => void ops.push([toHexBare(k), Uint8Array.from(v)]),
      del: (k) => void ops.push([toHexBare(k), null]),
      write: async () => {
        // All or nothing: the ops are applied synchronously in one turn of the event loop.
        for (const [k, v] of ops) {
          if (v === null) this.map.delete(k);
          else this.map.set(k, v);
        }
        this.batchesWritten++;
      },
    };
  }

  scan(prefix: Uint8Array, after?: Uint8Array): AsyncIterable<[Uint8Array, Uint8Array]> {
    return memoryScan(this.map, prefix, after);
  }

  async firstAtOrAfter(from: Uint8Array, prefix: Uint8Array): Promise<[Uint8Array, Uint8Array] | undefined> {
    // Hex of bytes sorts as the bytes do; a linear pass is fine for the in-memory twin.
    const f = toHexBare(from);
    const p = toHexBare(prefix);
    let best: string | undefined;
    for (const k of this.map.keys()) if (k.startsWith(p) && k >= f && (best === undefined || k < best)) best = k;
    if (best === undefined) return undefined;
    return [Uint8Array.from(Buffer.from(best, 'hex')), Uint8Array.from(this.map.get(best)!)];
  }

  async close(): Promise<void> {}
}

async function* memoryScan(
  map: ReadonlyMap<string, Uint8Array>,
  prefix: Uint8Array,
  after?: Uint8Array,
): AsyncIterable<[Uint8Array, Uint8Array]> {
  // Hex of bytes sorts as the bytes do.
  const p = toHexBare(prefix);
  const a = after === undefined ? undefined : toHexBare(after);
  const keys = [...map.keys()].filter((k) => k.startsWith(p) && (a === undefined || k > a)).sort();
  for (const k of keys) {
    const v = map.get(k);
    if (v !== undefined) yield [Uint8Array.from(Buffer.from(k, 'hex')), Uint8Array.from(v)];
  }
}

function memoryView(map: ReadonlyMap<string, Uint8Array>): KvReadView {
  return { scan: (prefix, after) => memoryScan(map, prefix, after), close: async () => {} };
}

function ioError(what: string, cause: unknown): ChainError {
  return new ChainError(
    ChainErrorCode.StoreIo,
    `chain store: ${what} failed: ${cause instanceof Error ? cause.message : String(cause)}`,
    { what },
    { cause },
  );
}

export class LevelKv implements KvBackend {
  private constructor(private readonly db: Level<Uint8Array, Uint8Array>) {}

  static async open(path: string, maxOpenFiles = DEFAULT_STATE_MAX_OPEN_FILES): Promise<LevelKv> {
    const db = new Level<Uint8Array, Uint8Array>(path, { keyEncoding: 'view', valueEncoding: 'view', maxOpenFiles });
    try {
      await db.open();
    } catch (e) {
      throw ioError(`open ${path}`, e);
    }
    return new LevelKv(db);
  }

  async get(key: Uint8Array): Promise<Uint8Array | undefined> {
    try {
      const v = await this.db.get(key);
      // level hands back Buffers; callers compare with plain Uint8Arrays (docs/stack.md gotcha 6).
      return v === undefined ? undefined : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    } catch (e) {
      throw ioError('get', e);
    }
  }

  async getMany(keys: readonly Uint8Array[]): Promise<(Uint8Array | undefined)[]> {
    try {
      const values = await this.db.getMany(keys as Uint8Array[]);
      return values.map((v) => (v === undefined ? undefined : new Uint8Array(v.buffer, v.byteOffset, v.byteLength)));
    } catch (e) {
      throw ioError('getMany', e);
    }
  }

  getSync(key: Uint8Array): Uint8Array | undefined {
    try {
      const v = this.db.getSync(key);
      return v === undefined ? undefined : new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
    } catch (e) {
      throw ioError('get', e);
    }
  }

  readView(): KvReadView {
    const snapshot = this.db.snapshot();
    return {
      scan: (prefix, after) => this.iterate(prefix, after, snapshot),
      close: () => snapshot.close(),
    };
  }

  batch(): KvBatch {
    const b = this.db.batch();
    return {
      put: (k, v) => void b.put(k, v),
      del: (k) => void b.del(k),
      write: async (sync) => {
        try {
          await b.write({ sync });
        } catch (e) {
          throw ioError('batch write', e);
        }
      },
    };
  }

  scan(prefix: Uint8Array, after?: Uint8Array): AsyncIterable<[Uint8Array, Uint8Array]> {
    return this.iterate(prefix, after, undefined);
  }

  private async *iterate(
    prefix: Uint8Array,
    after: Uint8Array | undefined,
    snapshot: ReturnType<Level<Uint8Array, Uint8Array>['snapshot']> | undefined,
  ): AsyncIterable<[Uint8Array, Uint8Array]> {
    const upper = prefixUpperBound(prefix);
    const it = this.db.iterator({
      ...(after !== undefined && compareBytes(after, prefix) >= 0 ? { gt: after } : { gte: prefix }),
      ...(upper ? { lt: upper } : {}),
      ...(snapshot ? { snapshot } : {}),
    });
    try {
      for await (const [k, v] of it)
        yield [
          new Uint8Array(k.buffer, k.byteOffset, k.byteLength),
          new Uint8Array(v.buffer, v.byteOffset, v.byteLength),
        ];
    } catch (e) {
      throw ioError('scan', e);
    } finally {
      await it.close();
    }
  }

  async firstAtOrAfter(from: Uint8Array, prefix: Uint8Array): Promise<[Uint8Array, Uint8Array] | undefined> {
    const upper = prefixUpperBound(prefix);
    try {
      const it = this.db.iterator(upper ? { gte: from, lt: upper, limit: 1 } : { gte: from, limit: 1 });
      try {
        for await (const [k, v] of it) {
          if (!startsWith(k, prefix)) return undefined;
          return [
            new Uint8Array(k.buffer, k.byteOffset, k.byteLength),
            new Uint8Array(v.buffer, v.byteOffset, v.byteLength),
          ];
        }
        return undefined;
      } finally {
        await it.close();
      }
    } catch (e) {
      throw ioError('seek', e);
    }
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}

export function compareBytes(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return a.length - b.length;
}

function startsWith(k: Uint8Array, prefix: Uint8Array): boolean {
  if (k.length < prefix.length) return false;
  for (let i = 0; i < prefix.length; i++) if (k[i] !== prefix[i]) return false;
  return true;
}

function prefixUpperBound(prefix: Uint8Array): Uint8Array | undefined {
  const u = Uint8Array.from(prefix);
  for (let i = u.length - 1; i >= 0; i--) {
    if (u[i] < 0xff) {
      u[i]++;
      return u.subarray(0, i + 1);
    }
  }
  return undefined;
}
