// Where a node keeps the private payloads it is a party to, keyed by the base64 payload hash.
// The sender keeps the whole EncodedPayload (every box); a recipient keeps only its own copy;
// a node that is not a party keeps nothing (enforced by TransactionManager, tested).
//
// Two implementations behind one interface, both passing test/txmanager/payload-store.suite.ts:
// LevelDB (every write `sync: true`: a payload acknowledged to a sender must survive a crash,
// because the sender will put its hash on chain) and in-memory.
//
// Quota: a store holds at most `maxBytes` of payload bytes (limits.tmStoreMaxBytes, default
// DEFAULT_STORE_MAX_BYTES). A put that would go over is refused with TxManagerError StoreFull
// (HTTP 507 on the REST API; a push from a member is refused the same way): the caller's send
// fails, the node keeps running. The LevelDB store keeps its byte count under STORE_BYTES_KEY,
// written in the same atomic batch as the payloads, so opening does not rescan the store.

import { mkdir } from 'node:fs/promises';
import { Level } from 'level';
import { MAX_ENCODED_PAYLOAD_BYTES } from '../enclave/index.js';
import { assert, TxManagerError, TxManagerErrorCode } from './errors.js';

/**
 * LevelDB table files the payload store keeps open: LevelDB's least (it clamps to 74). LevelDB maps each
 * open table into memory and the pages read stay in the process's RSS: this bounds that part at about
 * 64 tables x 2 MiB however many payloads are stored.
 */
export const PAYLOAD_STORE_MAX_OPEN_FILES = 74;

/** Most entries one scan returns: bounds the memory of a resend page. */
export const MAX_STORE_SCAN_ENTRIES = 1024;
/** Default quota of one node's payload store, in payload bytes: 4 GiB. */
export const DEFAULT_STORE_MAX_BYTES = 4 * 1024 * 1024 * 1024;
/**
 * Where the LevelDB store keeps its byte count. `~` sorts after every base64 character, so the
 * key lies outside the range of payload hashes that scans read.
 */
const STORE_BYTES_KEY = '~bytes-used';
/** Upper bound (exclusive) of payload keys in scans: below STORE_BYTES_KEY. */
const PAYLOAD_KEYS_END = '~';

export interface PayloadStoreOptions {
  /** Quota in payload bytes (DEFAULT_STORE_MAX_BYTES when absent). */
  readonly maxBytes?: number;
}

function storeFull(used: number, adding: number, maxBytes: number): TxManagerError {
  return new TxManagerError(
    TxManagerErrorCode.StoreFull,
    `the payload store is full: ${used} bytes used, a payload of ${adding} bytes would pass the quota of ${maxBytes} bytes (limits.tmStoreMaxBytes)`,
    { usedBytes: used, payloadBytes: adding, maxBytes },
  );
}

function checkMaxBytes(maxBytes: number): number {
  assert(
    Number.isSafeInteger(maxBytes) && maxBytes > 0,
    () => `payload store quota must be a positive integer, got ${maxBytes}`,
  );
  return maxBytes;
}

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
  /** Payload bytes stored (what the quota counts). */
  usedBytes(): number;
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
  private used = 0;
  private readonly maxBytes: number;

  constructor(options: PayloadStoreOptions = {}) {
    this.maxBytes = checkMaxBytes(options.maxBytes ?? DEFAULT_STORE_MAX_BYTES);
  }

  async put(hash: string, encoded: Uint8Array): Promise<void> {
    this.open();
    checkPut(hash, encoded);
    const replaced = this.entries.get(hash)?.length ?? 0;
    if (this.used - replaced + encoded.length > this.maxBytes)
      throw storeFull(this.used, encoded.length, this.maxBytes);
    this.entries.set(hash, Uint8Array.from(encoded));
    this.used += encoded.length - replaced;
  }
  usedBytes(): number {
    return this.used;
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
    this.used -= this.entries.get(hash)?.length ?? 0;
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
  // Invariant: used = the bytes of every stored payload = the value under STORE_BYTES_KEY.
  private used: number;
  // Bytes of queued puts not written yet: counted against the quota at put() time, so
  // concurrent puts cannot together pass it.
  private queuedBytes = 0;

  private constructor(
    private readonly db: Level<string, Uint8Array>,
    used: number,
    private readonly maxBytes: number,
  ) {
    this.used = used;
  }

  /** Opens (creating if needed, folder 0700) the LevelDB at `path`. */
  static async open(path: string, options: PayloadStoreOptions = {}): Promise<LevelPayloadStore> {
    const maxBytes = checkMaxBytes(options.maxBytes ?? DEFAULT_STORE_MAX_BYTES);
    const db = new Level<string, Uint8Array>(path, {
      valueEncoding: 'view',
      maxOpenFiles: PAYLOAD_STORE_MAX_OPEN_FILES,
    });
    let used: number;
    try {
      await mkdir(path, { recursive: true, mode: 0o700 });
      await db.open();
      used = await readUsedBytes(db);
    } catch (error) {
      await db.close().catch(() => undefined);
      throw storageFailure(`open ${path}`, error);
    }
    return new LevelPayloadStore(db, used, maxBytes);
  }

  usedBytes(): number {
    return this.used;
  }

  /** Resolves once the payload is on disk (synced), possibly in one batch with concurrent puts. Rejects StoreFull over the quota. */
  put(hash: string, encoded: Uint8Array): Promise<void> {
    checkPut(hash, encoded);
    // A replaced payload is not subtracted here (that needs a read): near the quota, a
    // re-store of a known payload may be refused; it is rare (re-deliveries) and errs safe.
    if (this.used + this.queuedBytes + encoded.length > this.maxBytes)
      return Promise.reject(storeFull(this.used + this.queuedBytes, encoded.length, this.maxBytes));
    this.queuedBytes += encoded.length;
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
      this.queuedBytes -= bytes;
      try {
        // What each put replaces (a payload stored again), so the count stays exact; the last
        // of two puts of one hash in a group wins, as in the batch.
        const previous = await this.db.getMany(group.map((p) => p.hash));
        const sizes = new Map<string, number>();
        group.forEach((p, i) => {
          if (!sizes.has(p.hash)) sizes.set(p.hash, previous[i]?.length ?? 0);
        });
        let delta = 0;
        for (const size of sizes.values()) delta -= size;
        const last = new Map(group.map((p) => [p.hash, p.encoded.length]));
        for (const size of last.values()) delta += size;
        // A chained batch: 3-7x faster than an array batch in level 10 (docs/stack.md).
        const batch = this.db.batch();
        for (const p of group) batch.put(p.hash, p.encoded);
        batch.put(STORE_BYTES_KEY, encodeCount(this.used + delta));
        await batch.write({ sync: true });
        this.used += delta;
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
      // Behind any flush in progress, so the count it writes is not overtaken.
      await this.flushing;
      const old = await this.db.get(hash);
      if (old === undefined) return;
      await this.db.batch(
        [
          { type: 'del', key: hash },
          { type: 'put', key: STORE_BYTES_KEY, value: encodeCount(this.used - old.length) },
        ],
        { sync: true },
      );
      this.used -= old.length;
    } catch (error) {
      throw storageFailure('delete', error);
    }
  }
  async scan(afterHash: string | null, limit: number): Promise<StoredPayload[]> {
    checkScan(limit);
    try {
      const range =
        afterHash === null ? { lt: PAYLOAD_KEYS_END, limit } : { gt: afterHash, lt: PAYLOAD_KEYS_END, limit };
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

function encodeCount(bytes: number): Uint8Array {
  return new TextEncoder().encode(String(bytes));
}

/** The stored byte count; a store written before the count existed is counted once and the count written. */
async function readUsedBytes(db: Level<string, Uint8Array>): Promise<number> {
  const stored = await db.get(STORE_BYTES_KEY);
  if (stored !== undefined) {
    const n = Number(new TextDecoder().decode(stored));
    assert(Number.isSafeInteger(n) && n >= 0, () => `payload store byte count is damaged: ${JSON.stringify(n)}`);
    return n;
  }
  let used = 0;
  for await (const value of db.values({ lt: PAYLOAD_KEYS_END })) used += value.length;
  await db.put(STORE_BYTES_KEY, encodeCount(used), { sync: true });
  return used;
}
