// The durable queue of deliveries owed to parties that were down when a payload was sent
// (deliveryMode "queue"). An entry is only (nodeId, payload hash): the payload itself is in
// the sender's PayloadStore, which keeps the whole EncodedPayload.
//
// Bounded (MAX_OWED_DELIVERIES): a party that never returns must not fill the disk. When
// full, `send` in queue mode fails with QueueFull rather than silently dropping what is owed.
//
// Two implementations, one compliance suite (test/txmanager/owed-queue.suite.ts): LevelDB
// (writes `sync: true`: an accepted send promised the delivery) and in-memory. Both keep the
// index in memory; at most MAX_OWED_DELIVERIES small entries (~150 B each).

import { Level } from 'level';
import { assert, TxManagerError, TxManagerErrorCode } from './errors.js';

/** Most owed deliveries held across all parties. 100k × ~150 B ≈ 15 MB of index in memory. */
export const MAX_OWED_DELIVERIES = 100_000;

export interface OwedDelivery {
  readonly nodeId: string;
  readonly hash: string;
}

export interface OwedQueue {
  /** Records that `hash` is owed to `nodeId`. Idempotent. Durable once resolved. Throws QueueFull. */
  add(nodeId: string, hash: string): Promise<void>;
  /** Up to `limit` hashes owed to `nodeId`, oldest first. */
  peek(nodeId: string, limit: number): string[];
  /** Forgets a delivered (or no longer deliverable) entry. Idempotent. */
  remove(nodeId: string, hash: string): Promise<void>;
  /** Nodes that are owed something. */
  nodes(): string[];
  sizeFor(nodeId: string): number;
  size(): number;
  close(): Promise<void>;
}

/** The in-memory index shared by both implementations: nodeId → (hash → sequence number), in insertion order. */
abstract class IndexedOwedQueue implements OwedQueue {
  protected readonly index = new Map<string, Map<string, number>>();
  protected total = 0;
  protected nextSeq = 1;

  constructor(protected readonly maxEntries: number) {
    assert(Number.isInteger(maxEntries) && maxEntries >= 1, `maxEntries must be a positive integer, got ${maxEntries}`);
  }

  protected abstract persistAdd(nodeId: string, hash: string, seq: number): Promise<void>;
  protected abstract persistRemove(nodeId: string, hash: string, seq: number): Promise<void>;

  async add(nodeId: string, hash: string): Promise<void> {
    assert(
      nodeId.length > 0 && !nodeId.includes('\u0000') && hash.length > 0,
      () => `bad owed delivery ${JSON.stringify({ nodeId, hash })}`,
    );
    if (this.index.get(nodeId)?.has(hash)) return;
    if (this.total >= this.maxEntries) {
      throw new TxManagerError(
        TxManagerErrorCode.QueueFull,
        `owed-delivery queue is full (${this.total} entries, limit ${this.maxEntries}); cannot accept a payload for ${nodeId}`,
        { nodeId, limit: this.maxEntries },
      );
    }
    // Indexed before the write so that a concurrent add of the same entry is a no-op rather
    // than a second durable key; undone if the write fails.
    const seq = this.nextSeq++;
    this.insert(nodeId, hash, seq);
    try {
      await this.persistAdd(nodeId, hash, seq);
    } catch (error) {
      this.forget(nodeId, hash);
      throw error;
    }
  }

  private forget(nodeId: string, hash: string): void {
    const forNode = this.index.get(nodeId);
    if (forNode === undefined || !forNode.delete(hash)) return;
    this.total--;
    if (forNode.size === 0) this.index.delete(nodeId);
  }

  protected insert(nodeId: string, hash: string, seq: number): void {
    let forNode = this.index.get(nodeId);
    if (forNode === undefined) {
      forNode = new Map();
      this.index.set(nodeId, forNode);
    }
    if (!forNode.has(hash)) {
      forNode.set(hash, seq);
      this.total++;
    }
    if (seq >= this.nextSeq) this.nextSeq = seq + 1;
  }

  peek(nodeId: string, limit: number): string[] {
    const out: string[] = [];
    for (const hash of this.index.get(nodeId)?.keys() ?? []) {
      if (out.length >= limit) break;
      out.push(hash);
    }
    return out;
  }

  async remove(nodeId: string, hash: string): Promise<void> {
    const forNode = this.index.get(nodeId);
    const seq = forNode?.get(hash);
    if (forNode === undefined || seq === undefined) return;
    await this.persistRemove(nodeId, hash, seq);
    this.forget(nodeId, hash);
  }

  nodes(): string[] {
    return [...this.index.keys()];
  }
  sizeFor(nodeId: string): number {
    return this.index.get(nodeId)?.size ?? 0;
  }
  size(): number {
    return this.total;
  }
  abstract close(): Promise<void>;
}

export class MemoryOwedQueue extends IndexedOwedQueue {
  constructor(maxEntries = MAX_OWED_DELIVERIES) {
    super(maxEntries);
  }
  protected async persistAdd(): Promise<void> {}
  protected async persistRemove(): Promise<void> {}
  async close(): Promise<void> {}
}

// Key layout: "<nodeId>\0<seq as 16 hex digits>" → hash. Sorting by key gives each node's
// entries in insertion order, which is the order rebuilt on open.
const seqKey = (nodeId: string, seq: number): string => `${nodeId}\u0000${seq.toString(16).padStart(16, '0')}`;

export class LevelOwedQueue extends IndexedOwedQueue {
  private constructor(
    private readonly db: Level<string, string>,
    maxEntries: number,
  ) {
    super(maxEntries);
  }

  static async open(path: string, maxEntries = MAX_OWED_DELIVERIES): Promise<LevelOwedQueue> {
    const db = new Level<string, string>(path, { valueEncoding: 'utf8' });
    try {
      await db.open();
      const queue = new LevelOwedQueue(db, maxEntries);
      const loaded: Array<{ nodeId: string; hash: string; seq: number }> = [];
      for await (const [key, hash] of db.iterator()) {
        const cut = key.lastIndexOf('\u0000');
        assert(cut > 0, () => `owed queue key without a separator: ${JSON.stringify(key)}`);
        loaded.push({ nodeId: key.slice(0, cut), hash, seq: Number.parseInt(key.slice(cut + 1), 16) });
      }
      loaded.sort((a, b) => a.seq - b.seq);
      for (const entry of loaded) queue.insert(entry.nodeId, entry.hash, entry.seq);
      return queue;
    } catch (error) {
      await db.close().catch(() => undefined);
      if (error instanceof TxManagerError) throw error;
      throw new TxManagerError(
        TxManagerErrorCode.StorageFailure,
        `owed queue: open ${path} failed: ${(error as Error).message}`,
        {},
        { cause: error },
      );
    }
  }

  protected async persistAdd(nodeId: string, hash: string, seq: number): Promise<void> {
    try {
      await this.db.put(seqKey(nodeId, seq), hash, { sync: true });
    } catch (error) {
      throw new TxManagerError(
        TxManagerErrorCode.StorageFailure,
        `owed queue: add failed: ${(error as Error).message}`,
        {},
        { cause: error },
      );
    }
  }

  protected async persistRemove(nodeId: string, _hash: string, seq: number): Promise<void> {
    try {
      await this.db.del(seqKey(nodeId, seq), { sync: true });
    } catch (error) {
      throw new TxManagerError(
        TxManagerErrorCode.StorageFailure,
        `owed queue: remove failed: ${(error as Error).message}`,
        {},
        { cause: error },
      );
    }
  }

  async close(): Promise<void> {
    await this.db.close();
  }
}
