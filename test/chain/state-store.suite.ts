// The compliance suite of the state storage (node/chain/state-store.ts over store.ts's KvBackend):
// one description of what the chain store does with state — on disk behind a bounded cache,
// incremental root, reads at a block, the commit window, the versioned format, snapshot export
// and import with switch-over — run against every KvBackend (the in-memory twin and LevelDB),
// as test/raftlog/storage.suite.ts does for the Raft log.

import crypto from 'node:crypto';
import { describe, expect, it } from 'vitest';
import {
  type Block,
  ChainError,
  ChainErrorCode,
  ChainState,
  KvChainStore,
  type KvBackend,
  type KvBatch,
  LedgerApp,
  MIN_SNAPSHOT_CHUNK_BYTES,
  MIN_STATE_CACHE_MAX_BYTES,
  IMPORT_HISTORY_BATCH_BYTES,
  NO_PRIVATE_CHANGES,
  type Op,
  SnapshotRefusal,
  type StoredState,
  applyBlock,
  baseOf,
  buildBlock,
  exportSnapshot,
  genesisBlock,
  importSnapshot,
  prefetchBlockState,
  signTransaction,
  stateKeys,
  toHex,
} from '../../node/chain/index.js';
import { utf8 } from '../../node/chain/codec.js';
import { CHAIN_ID, fixture } from './helpers.js';

/** Opens the same durable contents on every call (the previous handle must be closed first). */
export interface KvHarness {
  open(): Promise<KvBackend>;
}
export type KvFactory = () => KvHarness;

const f = fixture({ accounts: 4 });
const app = new LedgerApp();
const CACHE = MIN_STATE_CACHE_MAX_BYTES;

interface Node {
  store: KvChainStore;
  chain: ChainState<StoredState>;
  applied: number;
}

async function openNode(kv: KvBackend, cacheMaxBytes = CACHE): Promise<Node> {
  const store = new KvChainStore(kv, { stateCacheMaxBytes: cacheMaxBytes });
  const g = genesisBlock(f.genesis);
  await store.init(CHAIN_ID, g.block, g.state);
  const head = (await store.head())!;
  const headBlock = (await store.getBlockByNumber(head.number))!;
  const { state, privateState } = await store.loadState();
  const chain = new ChainState({ chainId: CHAIN_ID, app, head: headBlock, state, privateState });
  return { store, chain, applied: await store.appliedIndex() };
}

/** Builds, applies, commits and advances one block of `ops` lists (one tx per list, round-robin accounts). */
async function commitOps(node: Node, opsPerTx: Op[][]): Promise<Block> {
  const nonces = new Map<number, number>();
  const txs = opsPerTx.map((ops, i) => {
    const a = i % f.accounts.length;
    const base = node.chain.state.get(stateKeys.nonce(f.accounts[a].address));
    const start = base === undefined ? 0 : Number(new DataView(base.buffer, base.byteOffset, 8).getBigUint64(0));
    const nonce = (nonces.get(a) ?? start) as number;
    nonces.set(a, nonce + 1);
    return signTransaction({ chainId: CHAIN_ID, nonce, ops }, f.accounts[a]);
  });
  const n = node.chain.head.header.number + 1;
  const built = buildBlock(app, CHAIN_ID, baseOf(node.chain), txs, { raftId: 1, key: f.minters[0] }, 10_000 + n, 1);
  expect(built.block.transactions.length).toBe(txs.length);
  const r = applyBlock(node.chain, built.block, new Map(), built);
  if (r.kind !== 'applied') throw new Error(r.detail);
  node.applied++;
  await node.store.commitBlock(r.block, r.receipts, r.stateChanges, NO_PRIVATE_CHANGES, node.applied);
  node.chain.advance(r);
  return r.block;
}

/** Incompressible values (LevelDB compresses: docs/stack.md), `count` puts of `bytes` each, 4 per tx. */
function bigPuts(tag: string, count: number, bytes = 12_000): Op[][] {
  const out: Op[][] = [];
  for (let i = 0; i < count; i += 4) {
    const ops: Op[] = [];
    for (let j = i; j < Math.min(count, i + 4); j++)
      ops.push({ type: 'put', key: `${tag}-${j}`, value: crypto.randomBytes(bytes / 2).toString('hex') });
    out.push(ops);
  }
  return out;
}

function code(e: unknown): string {
  return e instanceof ChainError ? `${e.code}${e.meta.reason ? `/${String(e.meta.reason)}` : ''}` : String(e);
}

async function collect(gen: AsyncIterable<Uint8Array>): Promise<Uint8Array[]> {
  const out: Uint8Array[] = [];
  for await (const c of gen) out.push(c);
  return out;
}

/** A KvBackend whose batches fail, writing nothing, once `budget` batches were written: a power cut. */
class CuttingKv implements KvBackend {
  cut = false;
  /** Largest batch written (keys + values), to check that memory follows the chunk, not the state. */
  maxBatchBytes = 0;
  constructor(
    private readonly inner: KvBackend,
    public budget: number,
  ) {}
  get = (k: Uint8Array) => this.inner.get(k);
  getSync = (k: Uint8Array) => this.inner.getSync(k);
  getMany = (k: readonly Uint8Array[]) => this.inner.getMany(k);
  scan = (p: Uint8Array, a?: Uint8Array) => this.inner.scan(p, a);
  readView = () => this.inner.readView();
  firstAtOrAfter = (from: Uint8Array, p: Uint8Array) => this.inner.firstAtOrAfter(from, p);
  close = () => this.inner.close();
  batch(): KvBatch {
    const b = this.inner.batch();
    let bytes = 0;
    return {
      put: (k, v) => {
        bytes += k.length + v.length;
        b.put(k, v);
      },
      del: (k) => b.del(k),
      write: async (sync) => {
        this.maxBatchBytes = Math.max(this.maxBatchBytes, bytes);
        if (this.budget <= 0) {
          this.cut = true;
          throw new Error('power cut');
        }
        this.budget--;
        await b.write(sync);
      },
    };
  }
}

export function stateStoreSuite(name: string, factory: KvFactory): void {
  describe(`state storage compliance: ${name}`, () => {
    it('keeps the state on disk behind a bounded cache; roots stay incremental and survive a restart', async () => {
      const h = factory();
      const node = await openNode(await h.open());
      // ~3 MiB of incompressible values: three times the cache.
      for (let b = 0; b < 4; b++) await commitOps(node, bigPuts(`b${b}`, 64));
      const stats = node.chain.state.stats();
      expect(stats.cacheBytes).toBeLessThanOrEqual(CACHE);
      // Evicted keys are read back from disk, synchronously, with the same bytes.
      const v = node.chain.state.get(stateKeys.value('b0-0'));
      expect(v?.length).toBe(12_000);
      expect(await node.store.getValue('b0-0')).toBe(Buffer.from(v!).toString());
      expect(node.chain.state.stats().syncReads).toBeGreaterThan(stats.syncReads);
      // The kept hash is the hash of what is stored, recomputed from scratch.
      expect(await node.store.verifyStoredState()).toMatchObject({ public: true, private: true });
      const root = toHex(node.chain.state.root());
      await node.store.close();
      const again = await openNode(await h.open());
      expect(toHex(again.chain.state.root())).toBe(root);
      expect(toHex(again.chain.head.header.stateRoot)).toBe(root);
      await commitOps(again, [[{ type: 'put', key: 'after-restart', value: 'x' }]]);
      expect(await again.store.getValue('after-restart')).toBe('x');
      await again.store.close();
    });

    it('a prefetch step loads what a block touches, so applying it reads nothing from disk', async () => {
      const leader = await openNode(await factory().open());
      const h = factory();
      let follower = await openNode(await h.open());
      const follow = async (node: Node, block: Block, prefetch: boolean) => {
        if (prefetch) await prefetchBlockState(node.chain, block);
        const before = node.chain.state.stats().syncReads;
        const r = applyBlock(node.chain, block, new Map());
        if (r.kind !== 'applied') throw new Error(r.detail);
        const reads = node.chain.state.stats().syncReads - before;
        node.applied++;
        await node.store.commitBlock(r.block, r.receipts, r.stateChanges, NO_PRIVATE_CHANGES, node.applied);
        node.chain.advance(r);
        return reads;
      };
      await follow(follower, await commitOps(leader, bigPuts('x', 16)), false);
      await follower.store.close();
      follower = await openNode(await h.open()); // a cold cache
      const transfer: Op = { type: 'transfer', to: f.accounts[2].address, amount: 5n };
      const block = await commitOps(leader, [[transfer, { type: 'put', key: 'x-1', value: 'y' }], [transfer]]);
      expect(await follow(follower, block, true)).toBe(0);
      expect(follower.chain.state.stats().prefetched).toBeGreaterThan(0);
      expect(toHex(follower.chain.state.root())).toBe(toHex(leader.chain.state.root()));
      await leader.store.close();
      await follower.store.close();
    });

    it('answers reads at a block number from the version history', async () => {
      const h = factory();
      const node = await openNode(await h.open());
      await commitOps(node, [[{ type: 'put', key: 'k', value: 'one' }]]);
      await commitOps(node, [[{ type: 'put', key: 'k', value: 'two' }]]);
      await commitOps(node, [[{ type: 'delete', key: 'k' }]]);
      expect(await node.store.getValue('k', 0)).toBeNull();
      expect(await node.store.getValue('k', 1)).toBe('one');
      expect(await node.store.getValue('k', 2)).toBe('two');
      expect(await node.store.getValue('k', 3)).toBeNull();
      expect(await node.store.getValue('k')).toBeNull();
      expect(code(await node.store.getValue('k', 4).catch((e) => e))).toBe(ChainErrorCode.HistoryUnavailable);
      await node.store.close();
    });

    it('pins the old values between the synced write and advance (no mix of old hash and new values)', async () => {
      const node = await openNode(await factory().open());
      await commitOps(node, [[{ type: 'put', key: 'w', value: 'old' }]]);
      const tx = signTransaction(
        { chainId: CHAIN_ID, nonce: 1, ops: [{ type: 'put', key: 'w', value: 'new' }] },
        f.accounts[0],
      );
      const built = buildBlock(app, CHAIN_ID, baseOf(node.chain), [tx], { raftId: 1, key: f.minters[0] }, 99_999, 1);
      const r = applyBlock(node.chain, built.block, new Map(), built);
      if (r.kind !== 'applied') throw new Error(r.detail);
      await node.store.commitBlock(r.block, r.receipts, r.stateChanges, NO_PRIVATE_CHANGES, 2);
      expect(Buffer.from(node.chain.state.get(stateKeys.value('w'))!).toString()).toBe('old');
      node.chain.advance(r);
      expect(Buffer.from(node.chain.state.get(stateKeys.value('w'))!).toString()).toBe('new');
      expect(toHex(node.chain.state.root())).toBe(toHex(r.block.header.stateRoot));
      await node.store.close();
    });

    it('migrates a format-1 store when it opens, and refuses a newer or unmigratable one without reading it', async () => {
      const h = factory();
      const node = await openNode(await h.open());
      await commitOps(node, [[{ type: 'put', key: 'm', value: 'kept' }]]);
      const root = toHex(node.chain.state.root());
      await node.store.close();
      // Format 1 = the same keys without the format, slot and stored hashes.
      const meta = (s: string) => new Uint8Array([0x4d, ...utf8(s)]);
      let kv = await h.open();
      let b = kv.batch();
      for (const k of ['format', 'stateSlot', 'stateHash', 'privateStateHash']) b.del(meta(k));
      await b.write(true);
      await kv.close();
      const migrated = await openNode(await h.open());
      expect(toHex(migrated.chain.state.root())).toBe(root);
      expect(await migrated.store.getValue('m')).toBe('kept');
      await commitOps(migrated, [[{ type: 'put', key: 'm', value: 'next' }]]);
      await migrated.store.close();
      kv = await h.open();
      const format = await kv.get(meta('format'));
      expect(format && new DataView(format.buffer, format.byteOffset, 4).getUint32(0)).toBe(2);
      // A newer format: refused, with what to do.
      b = kv.batch();
      b.put(meta('format'), Uint8Array.of(0, 0, 0, 3));
      await b.write(true);
      const newer = new KvChainStore(kv);
      const err = await newer.loadState().catch((e) => e);
      expect(code(err)).toBe(ChainErrorCode.StoreFormatUnsupported);
      expect((err as Error).message).toMatch(/newer quorate.*Run the newer quorate, or move the data directory aside/);
      expect(code(await newer.getValue('m').catch((e) => e))).toBe(ChainErrorCode.StoreFormatUnsupported);
      // A format-1 store whose state does not match its head: refused, and left as it was.
      b = kv.batch();
      for (const k of ['format', 'stateSlot', 'stateHash', 'privateStateHash']) b.del(meta(k));
      b.put(new Uint8Array([0x53, ...utf8('v/m')]), utf8('tampered'));
      await b.write(true);
      const broken = new KvChainStore(kv);
      expect(code(await broken.loadState().catch((e) => e))).toBe(ChainErrorCode.StoreFormatUnsupported);
      expect(await kv.get(meta('format'))).toBeUndefined();
      await kv.close();
    });

    it('exports from a consistent view while blocks keep committing, and imports into a fresh slot', async () => {
      const leader = await openNode(await factory().open());
      for (let b = 0; b < 3; b++) await commitOps(leader, bigPuts(`s${b}`, 48));
      const snapHead = leader.chain.head;
      const snapIndex = leader.applied;
      const stream = exportSnapshot(leader.chain, snapIndex, {
        includePrivate: false,
        chunkBytes: MIN_SNAPSHOT_CHUNK_BYTES,
      });
      const first = await stream.next();
      // The leader goes on committing (and overwrites keys) while the stream is read.
      await commitOps(leader, [[{ type: 'put', key: 's0-0', value: 'changed after the snapshot' }]]);
      const chunks = [first.value as Uint8Array, ...(await collect(stream))];
      for (const c of chunks) expect(c.length).toBeLessThanOrEqual(MIN_SNAPSHOT_CHUNK_BYTES);
      expect(chunks.length).toBeGreaterThan(10); // ~1.7 MiB of state in ≤ 96 KiB chunks

      const counting = new CuttingKv(await factory().open(), Number.MAX_SAFE_INTEGER);
      const follower = await openNode(counting);
      await commitOps(follower, [[{ type: 'put', key: 'local', value: 'before' }]]);
      counting.maxBatchBytes = 0;
      const imported = await importSnapshot(chunks, follower.store, { maxChunkBytes: MIN_SNAPSHOT_CHUNK_BYTES });
      // Each chunk is written as it comes, and then the history in batches of IMPORT_HISTORY_BATCH_BYTES
      // (plus the entry that crosses it), never the whole state.
      const stateBytes = chunks.filter((c) => c[0] === 2).reduce((n, c) => n + c.length, 0);
      expect(counting.maxBatchBytes).toBeLessThan(
        Math.max(MIN_SNAPSHOT_CHUNK_BYTES, IMPORT_HISTORY_BATCH_BYTES) + 16 * 1024,
      );
      expect(stateBytes).toBeGreaterThan(5 * counting.maxBatchBytes);
      // Nothing is visible before the switch-over.
      expect(await follower.store.getValue('local')).toBe('before');
      await follower.store.installSnapshot(imported);
      const { state } = await follower.store.loadState();
      expect(toHex(state.root())).toBe(toHex(snapHead.header.stateRoot));
      expect(await follower.store.getValue('s0-0')).toBe(await leader.store.getValue('s0-0', snapHead.header.number));
      expect(await follower.store.getValue('local')).toBeNull();
      expect(await follower.store.appliedIndex()).toBe(snapIndex);
      // History starts at the snapshot's head.
      const n = snapHead.header.number;
      expect(await follower.store.getValue('s1-1', n)).toBe(await leader.store.getValue('s1-1', n));
      // Every key's history at the head is written (import's finish pass), the leader's changes after it not.
      for (const k of ['s0-0', 's0-1', 's1-0', 's2-2'])
        expect(await follower.store.getValue(k, n)).toBe(await leader.store.getValue(k, n));
      expect(await follower.store.getValue('s0-0', n)).not.toBe('changed after the snapshot');
      expect(code(await follower.store.getValue('s1-1', n - 1).catch((e) => e))).toBe(
        ChainErrorCode.HistoryUnavailable,
      );
      expect(await follower.store.verifyStoredState()).toMatchObject({ public: true });
      // The old slot was cleared, and the follower goes on from the snapshot's head.
      const chain = follower.chain.reset(snapHead, state, (await follower.store.loadState()).privateState);
      await commitOps({ store: follower.store, chain, applied: snapIndex }, [[{ type: 'put', key: 'z', value: '1' }]]);
      expect(await follower.store.getValue('z')).toBe('1');
      await leader.store.close();
      await follower.store.close();
    });

    it('refuses a wrong root, a truncated stream, an oversized or malformed chunk — typed, and the old state stays', async () => {
      const leader = await openNode(await factory().open());
      await commitOps(leader, bigPuts('r', 40));
      const chunks = await collect(
        exportSnapshot(leader.chain, leader.applied, { chunkBytes: MIN_SNAPSHOT_CHUNK_BYTES }),
      );
      const follower = await openNode(await factory().open());
      const before = toHex(follower.chain.state.root());
      const attempt = async (c: Uint8Array[], max = MIN_SNAPSHOT_CHUNK_BYTES) =>
        code(await importSnapshot(c, follower.store, { maxChunkBytes: max }).catch((e) => e));
      const tampered = chunks.map((c) => Uint8Array.from(c));
      const entriesAt = tampered.findIndex((c) => c[0] === 2);
      tampered[entriesAt][tampered[entriesAt].length - 1] ^= 1;
      expect(await attempt(tampered)).toBe(`${ChainErrorCode.SnapshotInvalid}/${SnapshotRefusal.RootMismatch}`);
      expect(await attempt(chunks.slice(0, -1))).toBe(`${ChainErrorCode.SnapshotInvalid}/${SnapshotRefusal.Truncated}`);
      expect(await attempt(chunks, 32 * 1024)).toBe(
        `${ChainErrorCode.SnapshotInvalid}/${SnapshotRefusal.ChunkTooLarge}`,
      );
      expect(await attempt([...chunks.slice(0, -1), Uint8Array.of(9, 9)])).toBe(
        `${ChainErrorCode.SnapshotInvalid}/${SnapshotRefusal.Malformed}`,
      );
      const swapped = [...chunks];
      const last = swapped.length - 2;
      [swapped[entriesAt], swapped[last]] = [swapped[last], swapped[entriesAt]];
      expect(await attempt(swapped)).toBe(`${ChainErrorCode.SnapshotInvalid}/${SnapshotRefusal.Malformed}`);
      expect(await attempt([...chunks, chunks[1]])).toBe(
        `${ChainErrorCode.SnapshotInvalid}/${SnapshotRefusal.Malformed}`,
      );
      expect(await attempt([Uint8Array.of(1, 7)])).toMatch(/^CHAIN_SNAPSHOT_INVALID/);
      // None of it touched the live state.
      expect(toHex((await follower.store.loadState()).state.root())).toBe(before);
      expect(await follower.store.verifyStoredState()).toMatchObject({ public: true });
      // And a good stream still goes in.
      await follower.store.installSnapshot(await importSnapshot(chunks, follower.store));
      expect(toHex((await follower.store.loadState()).state.root())).toBe(toHex(leader.chain.state.root()));
      await leader.store.close();
      await follower.store.close();
    });

    it('resumes a cut import after its last written key (from a restarted stream or one that starts there)', async () => {
      const leader = await openNode(await factory().open());
      await commitOps(leader, bigPuts('c', 60));
      const opts = { chunkBytes: MIN_SNAPSHOT_CHUNK_BYTES };
      const chunks = await collect(exportSnapshot(leader.chain, leader.applied, opts));
      const h = factory();
      const follower = await openNode(await h.open());
      async function* cutAfter(n: number): AsyncGenerator<Uint8Array> {
        for (let i = 0; i < n; i++) yield chunks[i];
        throw new Error('connection lost');
      }
      // Cut three chunks before the end: the head block and most entries are in.
      expect(chunks.filter((c) => c[0] === 2).length).toBeGreaterThan(4);
      const cutAt = chunks.length - 3;
      expect(String(await importSnapshot(cutAfter(cutAt), follower.store).catch((e) => e))).toMatch(/connection lost/);
      // A restart in between: the progress is on disk.
      await follower.store.close();
      const restarted = await openNode(await h.open());
      const imp = await restarted.store.stateImport(leader.chain.head, leader.applied);
      expect(imp.progress.entries).toBeGreaterThan(0);
      const lastKey = imp.progress.lastKey;
      await imp.abandon(true);
      // The sender resumes after the receiver's last key: only the rest is sent.
      const rest = await collect(exportSnapshot(leader.chain, leader.applied, { ...opts, startAfterKey: lastKey }));
      expect(rest.length).toBeLessThan(chunks.length);
      await restarted.store.installSnapshot(await importSnapshot(rest, restarted.store));
      expect(toHex((await restarted.store.loadState()).state.root())).toBe(toHex(leader.chain.state.root()));
      expect(await restarted.store.verifyStoredState()).toMatchObject({ public: true });
      // A stream that starts over: what is already written is skipped, the rest goes in.
      const third = await openNode(await factory().open());
      await importSnapshot(cutAfter(cutAt), third.store).catch(() => undefined);
      const progress = await third.store.stateImport(leader.chain.head, leader.applied);
      expect(progress.progress.entries).toBeGreaterThan(0);
      await progress.abandon(true);
      await third.store.installSnapshot(await importSnapshot(chunks, third.store));
      expect(toHex((await third.store.loadState()).state.root())).toBe(toHex(leader.chain.state.root()));
      await third.store.close();
      // A cut import of one snapshot followed by another snapshot starts that one from zero.
      const other = await openNode(await factory().open());
      await importSnapshot(cutAfter(cutAt), other.store).catch(() => undefined);
      await commitOps(leader, [[{ type: 'put', key: 'newer', value: 'y' }]]);
      await other.store.installSnapshot(
        await importSnapshot(exportSnapshot(leader.chain, leader.applied, opts), other.store),
      );
      expect(toHex((await other.store.loadState()).state.root())).toBe(toHex(leader.chain.state.root()));
      expect(await other.store.verifyStoredState()).toMatchObject({ public: true });
      await Promise.all([leader.store.close(), restarted.store.close(), other.store.close()]);
    });

    it('a power cut at any write of an import and switch-over leaves the old state or the new, never a mix', async () => {
      const leader = await openNode(await factory().open());
      await commitOps(leader, bigPuts('p', 40));
      const chunks = await collect(
        exportSnapshot(leader.chain, leader.applied, { chunkBytes: MIN_SNAPSHOT_CHUNK_BYTES }),
      );
      const newRoot = toHex(leader.chain.state.root());
      let completed = false;
      const seen = new Set<string>();
      for (let budget = 0; !completed; budget++) {
        const h = factory();
        const setup = await openNode(await h.open());
        await commitOps(setup, [[{ type: 'put', key: 'old', value: 'state' }]]);
        const oldRoot = toHex(setup.chain.state.root());
        await setup.store.close();
        const cutting = new CuttingKv(await h.open(), budget);
        const store = new KvChainStore(cutting);
        try {
          await store.installSnapshot(await importSnapshot(chunks, store));
          completed = !cutting.cut;
        } catch {
          expect(cutting.cut).toBe(true);
        }
        await store.close();
        const after = await openNode(await h.open());
        const root = toHex(after.chain.state.root());
        expect([oldRoot, newRoot]).toContain(root);
        seen.add(root === oldRoot ? 'old' : 'new');
        expect(await after.store.verifyStoredState()).toMatchObject({ public: true });
        // Whatever survived, a full import now succeeds.
        if (root === oldRoot) await after.store.installSnapshot(await importSnapshot(chunks, after.store));
        expect(toHex((await after.store.loadState()).state.root())).toBe(newRoot);
        await after.store.close();
        expect(budget).toBeLessThan(200);
      }
      expect(seen).toEqual(new Set(['old', 'new']));
      await leader.store.close();
    });
  });
}
