// Where a node keeps the private payloads it is a party to, keyed by the base64 payload hash.
// The sender keeps the whole EncodedPayload (every box); a recipient keeps only its own copy;
// a node that is not a party keeps nothing (enforced by TransactionManager, tested).
//
// Two implementations behind one interface, both passing test/txmanager/payload-store.suite.ts:
// LevelDB (every write `sync: true`: a payload acknowledged to a sender must survive a crash,
// because the sender will put its hash on chain) and in-memory.

import { Level } from 'level';
import { MAX_ENCODED_PAYLOAD_BYTES } from '../enclave/index.js';
import { assert, TxManagerError, TxManagerErrorCode } from './errors.js';

/** Most entries one scan returns: bounds the memory of a resend page. */
export const MAX_STORE_SCAN_ENTRIES = 1024;

export interface StoredPayload {
  readonly hash: string;
  readonly encoded: Uint8Array;
}

export interface PayloadStore {
  /** Stores (or replaces) the canonical encoding under `hash`. Resolves once durable. */
  put(hash: string, encoded: Uint8Array): Promise<void>;
  /** The stored bytes, or undefined when absent. Absent is an answer; IO failure throws StorageFailure. */
  get(hash: string): Promise<Uint8Array | undefined>;
  has(hash: string): Promise<boolean>;
  delete(hash: string): Promise<void>;
  /** Up to `limit` (<= MAX_STORE_SCAN_ENTRIES) entries with hash > afterHash (null: from the start), in hash order. */
  scan(afterHash: string | null, limit: number): Promise<StoredPayload[]>;
  close(): Promise<void>;
}

function checkPut(hash: string, encoded: Uint8Array): void {
  assert(typeof hash === 'string' && hash.length > 0, 'payload store key must be a non-empty string');
  assert(
    encoded.length <= MAX_ENCODED_PAYLOAD_BYTES,
    () => `stored payload of ${encoded.length} bytes exceeds MAX_ENCODED_PAYLOAD_BYTES=${MAX_ENCODED_PAYLOAD_BYTES}`,
  );
}

function checkScan(limit: number): void {
  assert(
    Number.isInteger(limit) && limit >= 1 && limit <= MAX_STORE_SCAN_ENTRIES,
    () => `scan limit ${limit} outside 1..${MAX_STORE_SCAN_ENTRIES}`,
  );
}

export class MemoryPayloadStore implements PayloadStore {
  private readonly entries = new Map<string, Uint8Array>();
  private closed = false;

  async put(hash: string, encoded: Uint8Array): Promise<void> {
    this.open();
    checkPut(hash, encoded);
    this.entries.set(hash, Uint8Array.from(encoded));
  }
  async get(hash: string): Promise<Uint8Array | undefined> {
    this.open();
    const value = this.entries.get(hash);
    return value === undefined ? undefined : Uint8Array.from(value);
  }
  async has(hash: string): Promise<boolean> {
    this.open();
    return this.entries.has(hash);
  }
  async delete(hash: string): Promise<void> {
    this.open();
    this.entries.delete(hash);
  }
  async scan(afterHash: string | null, limit: number): Promise<StoredPayload[]> {
    this.open();
    checkScan(limit);
    // Sorted on demand: scans serve resend, which is rare; puts stay O(1).
    return [...this.entries.keys()]
      .filter((hash) => afterHash === null || hash > afterHash)
      .sort()
      .slice(0, limit)
      .map((hash) => ({ hash, encoded: Uint8Array.from(this.entries.get(hash) as Uint8Array) }));
  }
  async close(): Promise<void> {
    this.closed = true;
  }
  /** Every stored byte, concatenated: lets a test prove a non-party holds nothing. */
  rawBytes(): Uint8Array {
    return Buffer.concat([...this.entries.values()]);
  }
  private open(): void {
    if (this.closed) throw new TxManagerError(TxManagerErrorCode.StorageFailure, 'payload store is closed');
  }
}

function storageFailure(what: string, error: unknown): TxManagerError {
  if (error instanceof TxManagerError) return error;
  return new TxManagerError(
    TxManagerErrorCode.StorageFailure,
    `payload store: ${what} failed: ${(error as Error)?.message ?? String(error)}`,
    {},
    { cause: error },
  );
}

/** Most puts written in one synced batch (group commit); more wait for the next batch. */
export const MAX_GROUP_COMMIT_ENTRIES = 256;
/** Most payload bytes in one synced batch; a single larger payload is written alone. */
export const MAX_GROUP_COMMIT_BYTES = 16 * 1024 * 1024;

interface QueuedPut {
  readonly hash: string;
  readonly encoded: Uint8Array;
  resolve(): void;
  reject(error: unknown): void;
}

export class LevelPayloadStore implements PayloadStore {
  // Group commit: puts that arrive while a synced write is in flight are written together in
  // the next one (one fsync for many payloads: a synced write costs ~0.5-10 ms whatever its
  // size, and concurrent private sends would otherwise queue behind one fsync each). The first
  // put after an idle period is written at once, so a lone send pays no extra latency.
  // Bounded by the callers: each queued put is an unresolved send or push (the TM bounds those).
  private readonly queued: QueuedPut[] = [];
  private flushing: Promise<void> | null = null;

  private constructor(private readonly db: Level<string, Uint8Array>) {}

  /** Opens (creating if needed) the LevelDB at `path`. */
  static async open(path: string): Promise<LevelPayloadStore> {
    const db = new Level<string, Uint8Array>(path, { valueEncoding: 'view' });
    try {
      await db.open();
    } catch (error) {
      throw storageFailure(`open ${path}`, error);
    }
    return new LevelPayloadStore(db);
  }

  /** Resolves once the payload is on disk (synced), possibly in one batch with concurrent puts. */
  put(hash: string, encoded: Uint8Array): Promise<void> {
    checkPut(hash, encoded);
    return new Promise<void>((resolve, reject) => {
      this.queued.push({ hash, encoded: Uint8Array.from(encoded), resolve, reject });
      if (this.flushing === null) this.flushing = this.flush();
    });
  }

  private async flush(): Promise<void> {
    while (this.queued.length > 0) {
      let bytes = 0;
      let count = 0;
      while (
        count < this.queued.length &&
        count < MAX_GROUP_COMMIT_ENTRIES &&
        (count === 0 || bytes + this.queued[count].encoded.length <= MAX_GROUP_COMMIT_BYTES)
      ) {
        bytes += this.queued[count].encoded.length;
        count++;
      }
      const group = this.queued.splice(0, count);
      try {
        // A chained batch: 3-7x faster than an array batch in level 10 (STACK.md).
        const batch = this.db.batch();
        for (const p of group) batch.put(p.hash, p.encoded);
        await batch.write({ sync: true });
        for (const p of group) p.resolve();
      } catch (error) {
        const failure = storageFailure('put', error);
        for (const p of group) p.reject(failure);
      }
    }
    // Cleared in the same synchronous step as the emptiness check above, so a put arriving
    // from now on starts a new flush instead of waiting on this finished one.
    this.flushing = null;
  }

  async get(hash: string): Promise<Uint8Array | undefined> {
    try {
      const value = await this.db.get(hash);
      return value === undefined ? undefined : Uint8Array.from(value);
    } catch (error) {
      throw storageFailure('get', error);
    }
  }
  async has(hash: string): Promise<boolean> {
    return (await this.get(hash)) !== undefined;
  }
  async delete(hash: string): Promise<void> {
    try {
      await this.db.del(hash, { sync: true });
    } catch (error) {
      throw storageFailure('delete', error);
    }
  }
  async scan(afterHash: string | null, limit: number): Promise<StoredPayload[]> {
    checkScan(limit);
    try {
      const range = afterHash === null ? { limit } : { gt: afterHash, limit };
      const out: StoredPayload[] = [];
      for await (const [hash, encoded] of this.db.iterator(range))
        out.push({ hash, encoded: Uint8Array.from(encoded) });
      return out;
    } catch (error) {
      throw storageFailure('scan', error);
    }
  }
  async close(): Promise<void> {
    await this.flushing;
    await this.db.close();
  }
}
