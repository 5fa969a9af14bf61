// The chain store: blocks, receipts, transaction locations, the public state, this node's private
// state and the applied Raft index — on disk (LevelDB) or in memory, behind one interface.
//
// Durability rule (docs/correctness.md, "Crash, then stuck on restart"): a block, its receipts, its
// state changes (public and private) and the Raft index that carried it are written in ONE atomic
// batch with sync: true. A no-op entry writes only the applied index, also synced. After a SIGKILL
// at any moment the store is at a block boundary and `appliedIndex()` says which Raft entries are
// already applied: the node replays from appliedIndex+1 and resumes exactly.
//
// Both implementations are the same KvChainStore over a KvBackend (kv.ts): LevelKv and MemoryKv.
// test/chain/store.test.ts runs one compliance suite on both.
//
// The state lives here, not in memory: the node runs on StoredState (state-store.ts), which reads
// these keys through a bounded cache. Reads of the latest state use the flat map (S/P); reads at a
// past block use the version index (V/W), written in the same batch as each block. Blocks,
// transactions and receipts of every height are served.
//
// Key layout (1-byte prefix; numbers u64 big-endian so blocks iterate in order):
//   M chain    → u64 chainId ‖ [32] genesis hash     (refuses to open another chain's store)
//   M head     → u64 number ‖ [32] hash
//   M applied  → u64 Raft index
//   M membership → the node's replicated membership record (opaque here; node/membership.ts)
//   B <u64>    → block encoding          H <hash> → u64 number
//   T <hash>   → u64 block number ‖ u32 index ‖ [32] block hash    R <hash> → public receipt
//   Q <hash>   → this node's private receipt
//   M format   → u32 on-disk format version (CHAIN_STORE_FORMAT_VERSION; absent = format 1, migrated)
//   M stateSlot → u8: which slot holds the public state (0: S/V, 1: s/v); a snapshot is imported
//                into the other slot and switched to in one synced batch
//   M stateHash, M privateStateHash → the 2 KiB LtHash of the public / private state, in every batch
//                that changes it (the root costs nothing at start)
//   M import   → progress of a snapshot import into the spare slot (decodeImport), for resuming
//   S <key>    → public state value (slot 0; s <key> in slot 1)      P <key>  → private state value
//   V <u16 len><key><u64 MAX-n> → (slot 0; v in slot 1) the public value of <key> as of block n (1-byte tag: 0 deleted,
//                                 1 then the value), written with block n; W … the same, private.
//                                 Inverted block numbers make "the newest version at or before
//                                 block N" the first entry at or after <key, MAX-N>: one seek.
//   M historyFrom → the first block whose state is fully in V/W (0, or a snapshot's head)
//   M catchUp  → u64 privateThrough ‖ u64 backfillNext ‖ u64 snapshotHead: present only while this
//                node catches up after installing a peer's snapshot (CatchUpRecord below)
//
// Historical reads ("state at block N") are served from V/W for every block since historyFrom;
// history is kept for the life of the store (archive mode, like an Ethereum archive node).

import { ChainError, ChainErrorCode, assert } from './errors.js';
import { bytesEqual, concatBytes, toHex, utf8 } from './codec.js';
import type { Hash } from './hash.js';
import type { Address } from './keys.js';
import { type Block, decodeBlock, decodeBlockTransaction, encodeBlock } from './block.js';
import { type Receipt, decodeReceipt, encodeReceipt } from './receipt.js';
import {
  MAX_LIST_READ_ITEMS,
  MemoryState,
  type StateChanges,
  type StateView,
  decodeU64,
  encodeU64,
  getBalance,
  getList,
  getNonce,
  getValue,
  stateKeys,
} from './state.js';
import { LTHASH_BYTES, LtHash, expandStateElement } from './lthash.js';
import { DEFAULT_STATE_CACHE_MAX_BYTES, MIN_STATE_CACHE_MAX_BYTES, StoredState } from './state-store.js';
import { StateOverlay } from './state.js';
import type { Transaction, TxLocation } from './tx.js';
import {
  type KvBackend,
  type KvBatch,
  type KvReadView,
  LevelKv,
  MAX_STATE_MAX_OPEN_FILES,
  MIN_STATE_MAX_OPEN_FILES,
  MemoryKv,
  compareBytes,
} from './kv.js';

/**
 * The on-disk format this code writes (M format). 1: the format before it was recorded (state in
 * S/V only, no stored hash): migrated on open. A store of a higher version is refused.
 */
export const CHAIN_STORE_FORMAT_VERSION = 2;
/** Keys deleted per batch when a state slot is cleared (bounds the memory of one batch). */
export const CLEAR_BATCH_KEYS = 10_000;
/**
 * An import's progress record is written with its first batch after this many bytes of state (and when the
 * import is cut or finishes): at most this much is fetched again after a crash.
 */
export const IMPORT_RECORD_EVERY_BYTES = 32 * 1024 * 1024;
/** Bytes of state read per batch of history written when an import finishes (StateImport.finish). */
export const IMPORT_HISTORY_BATCH_BYTES = 256 * 1024;
/** Recently committed blocks kept decoded: at most this many, and at most blockCacheMaxBytes of them. */
export const RECENT_BLOCKS_CACHED = 64;
/**
 * Default bound, in bytes, of the recently committed blocks kept decoded (config `state.blockCacheMaxBytes`).
 * A block may be up to MAX_BLOCK_BYTES (4 MiB) and is held twice decoded (its transactions' encodings and
 * their decoded fields): 64 full blocks would be ~512 MiB, so the count alone bounded nothing useful.
 * 16 MiB keeps the newest blocks of a busy chain (what clients and the bench's commit watcher read).
 */
export const DEFAULT_BLOCK_CACHE_MAX_BYTES = 16 * 1024 * 1024;

/** What a cached block costs besides its transactions (header, signature, hashes, Map slot). */
const BLOCK_CACHE_OVERHEAD_BYTES = 1024;

export interface HeadInfo {
  readonly number: number;
  readonly hash: Hash;
}

/** This node's private changes of one block. */
export interface PrivateChanges {
  readonly entries: StateChanges;
  /** Keyed by tx hash hex. */
  readonly receipts: ReadonlyMap<string, Receipt>;
}

export const NO_PRIVATE_CHANGES: PrivateChanges = { entries: new Map(), receipts: new Map() };

/** A public state written into the store's spare slot and verified, not yet switched to (stateImport). */
export interface StagedState {
  readonly slot: number;
  readonly lanes: LtHash;
  readonly headHash: Hash;
  readonly entries: number;
}

/**
 * Everything needed to replace the store's public state, head and applied index with a snapshot's
 * (snapshot.ts). Private state is never in a snapshot: this node's stays as it is.
 */
export interface StoreSnapshot {
  readonly appliedRaftIndex: number;
  readonly head: Block;
  /** A state written and verified by importSnapshot (the node's path: bounded memory). */
  readonly staged?: StagedState;
  /** A state held in memory (small states, tests): the store stages it itself. */
  readonly state?: MemoryState;
  /**
   * The membership record at the snapshot's index (see recordMembership). Pass it here rather
   * than in a separate recordMembership call, so a crash cannot leave the new state with the
   * old membership.
   */
  readonly membership?: Uint8Array;
}

/**
 * Progress of catching up after a peer's snapshot moved the head from H0 to S (node/catch-up.ts).
 * Present from the installSnapshot that skipped blocks until the private state holds every block
 * up to the head again. Invariants: privateThrough < head; backfillNext <= snapshotHead.
 */
export interface CatchUpRecord {
  /** The private state holds the private transactions of blocks 0..privateThrough (and none after). */
  readonly privateThrough: number;
  /**
   * Blocks in (privateThrough, backfillNext] may be missing here, or held without their
   * transaction index and receipts (a snapshot's head: installSnapshot stores the block only); they
   * are fetched from peers, top down (each verified against its stored successor). Backfill is
   * done when backfillNext <= privateThrough.
   */
  readonly backfillNext: number;
  /** The head of the last snapshot installed (for messages). */
  readonly snapshotHead: number;
}

/** A block fetched from a peer, with its public receipts (verified against the header's roots by the caller). */
export interface BackfilledBlock {
  readonly block: Block;
  readonly receipts: readonly Receipt[];
}

export interface ChainStore {
  /**
   * Writes the genesis block and state into an empty store, or checks that a non-empty store
   * holds this genesis (same chainId and genesis hash); throws StoreCorrupt otherwise.
   */
  init(chainId: number, genesis: Block, genesisState: MemoryState): Promise<void>;
  /** One atomic, synced batch: block, receipts, public + private changes, applied index. */
  commitBlock(
    block: Block,
    receipts: readonly Receipt[],
    stateChanges: StateChanges,
    privateChanges: PrivateChanges,
    appliedRaftIndex: number,
  ): Promise<void>;
  /** A Raft entry that changed nothing here (no-op block, empty entry, conf change): synced. */
  recordNoop(appliedRaftIndex: number): Promise<void>;
  /**
   * Replaces state, head and applied index with a snapshot's, atomically. A snapshot without
   * private state whose head is above the stored head also records (or extends) the CatchUpRecord
   * in the same batch: this node's private state stays at the old head and the blocks between are
   * not here yet.
   */
  installSnapshot(snapshot: StoreSnapshot): Promise<void>;
  /** The catch-up in progress after a snapshot install, or undefined when the private state is at the head. */
  catchUp(): Promise<CatchUpRecord | undefined>;
  /**
   * The incarnation this node first saw for each member's raft id (node/node.ts, scenario 18),
   * kept across restarts: a node that forgot them would accept a member whose data directory was
   * lost, if it came back while this node was down.
   */
  knownIncarnations(): Promise<Map<number, string>>;
  /** Records (synced) the incarnation first seen for a raft id; undefined forgets it. */
  rememberIncarnation(raftId: number, incarnation: string | undefined): Promise<void>;
  /** What is stored of block `number`: nothing, the block only (a snapshot's head), or the block with its transaction index and receipts. */
  blockStored(number: number): Promise<'none' | 'block-only' | 'complete'>;
  /**
   * Stores blocks fetched from peers below the head, with their transaction locations and public
   * receipts, and moves the record's backfillNext, in one synced batch. Touches neither the state,
   * the head nor the applied index.
   */
  storeBackfilledBlocks(blocks: readonly BackfilledBlock[], backfillNext: number): Promise<void>;
  /**
   * Writes the private changes and private receipts of replayed block `blockNumber` and moves
   * privateThrough to it, in one synced batch. The blocks between privateThrough and blockNumber
   * must have no private transaction (the caller replays a run of such blocks as one step).
   * `done`: it was the last block to replay; the record is deleted in the same batch.
   */
  commitPrivateReplay(blockNumber: number, privateChanges: PrivateChanges, done: boolean): Promise<void>;
  /**
   * The node's replicated membership record (opaque bytes, node/membership.ts), written with the
   * applied index of the entry that changed it in one synced batch. `appliedRaftIndex` may equal
   * the stored one (a snapshot's membership, written right after installSnapshot).
   */
  recordMembership(membership: Uint8Array, appliedRaftIndex: number): Promise<void>;
  membership(): Promise<Uint8Array | undefined>;

  head(): Promise<HeadInfo | undefined>;
  appliedIndex(): Promise<number>;
  getBlockByNumber(number: number): Promise<Block | undefined>;
  getBlockByHash(hash: Hash): Promise<Block | undefined>;
  getTxLocation(txHash: Hash): Promise<TxLocation | undefined>;
  getTransaction(txHash: Hash): Promise<{ tx: Transaction; location: TxLocation } | undefined>;
  getReceipt(txHash: Hash): Promise<Receipt | undefined>;
  getPrivateReceipt(txHash: Hash): Promise<Receipt | undefined>;
  /** Latest state only (see the top of this file). */
  /**
   * State reads. `atBlock` undefined: the latest state. A block number: the state as of that
   * block (throws HistoryUnavailable past the head, or before a snapshot this node was rebuilt from).
   */
  getBalance(address: Address, atBlock?: number): Promise<bigint>;
  getNonce(address: Address, atBlock?: number): Promise<number>;
  getValue(key: string, atBlock?: number): Promise<string | null>;
  getList(key: string, offset?: number, maxItems?: number, atBlock?: number): Promise<string[]>;
  getPrivateValue(key: string, atBlock?: number): Promise<string | null>;
  /**
   * The public and private state at the head, on disk behind bounded caches (state-store.ts);
   * checks the stored public hash against the head block's stateRoot. The states handed out
   * before are stale after installSnapshot: call it again.
   */
  loadState(): Promise<{ state: StoredState; privateState: StoredState }>;
  /**
   * Starts (or resumes, same head and index) writing a snapshot's public state into the spare
   * slot. One import at a time. Nothing is visible until installSnapshot({ staged }).
   */
  stateImport(head: Block, appliedRaftIndex: number): Promise<StateImport>;
  close(): Promise<void>;
}

/** Progress of an import, persisted with every batch it writes (so a cut import resumes). */
export interface StateImportProgress {
  /** The last key written (bytes, state-key order); empty = nothing written yet. */
  readonly lastKey: Uint8Array;
  readonly entries: number;
  /** LtHash of the entries written so far. */
  readonly lanes: LtHash;
}

export interface StateImport {
  /** Where a previous, cut import of the same snapshot stopped. */
  readonly progress: StateImportProgress;
  /** Writes entries (in strictly increasing key order, after progress.lastKey) and the new progress, in one batch. */
  write(entries: readonly (readonly [Uint8Array, Uint8Array])[], progress: StateImportProgress): Promise<void>;
  /**
   * Writes the head block's history of the imported state (one pass over it), then returns the staged
   * state to pass to installSnapshot (the caller has checked the root). Idempotent: a crash during it is
   * resumed by the same import, which ends here again.
   */
  finish(): Promise<StagedState>;
  /**
   * Ends this import without installing it. keepProgress: the same snapshot can resume where it
   * stopped; otherwise the record is dropped (the data is cleared by the next import, or at open).
   */
  abandon(keepProgress: boolean): Promise<void>;
}

export interface ChainStoreOptions {
  /** Bound of each state cache (public, private) in bytes; default DEFAULT_STATE_CACHE_MAX_BYTES. */
  readonly stateCacheMaxBytes?: number;
  /** Bound of the recent-blocks cache in bytes (estimated); default DEFAULT_BLOCK_CACHE_MAX_BYTES; 0 = none cached. */
  readonly blockCacheMaxBytes?: number;
  /** LevelDB table files kept open (each open table is mapped into memory); default DEFAULT_STATE_MAX_OPEN_FILES. */
  readonly maxOpenFiles?: number;
}

// --- the store ---------------------------------------------------------------------------------------

const P = {
  meta: 0x4d, // M
  block: 0x42, // B
  hash: 0x48, // H
  txLoc: 0x54, // T
  receipt: 0x52, // R
  privReceipt: 0x51, // Q
  state: 0x53, // S   public state, slot 0
  privState: 0x50, // P
  history: 0x56, // V   public history, slot 0
  privHistory: 0x57, // W
  stateB: 0x73, // s   public state, slot 1
  historyB: 0x76, // v   public history, slot 1
};

/** The public state lives in one of two slots; a snapshot is imported into the other, then switched to. */
const SLOTS = [
  { state: P.state, history: P.history },
  { state: P.stateB, history: P.historyB },
] as const;

const K_CHAIN = concatBytes([Uint8Array.of(P.meta), utf8('chain')]);
const K_HEAD = concatBytes([Uint8Array.of(P.meta), utf8('head')]);
const K_APPLIED = concatBytes([Uint8Array.of(P.meta), utf8('applied')]);
const K_MEMBERSHIP = concatBytes([Uint8Array.of(P.meta), utf8('membership')]);
const K_HISTORY_FROM = concatBytes([Uint8Array.of(P.meta), utf8('historyFrom')]);
const K_CATCH_UP = concatBytes([Uint8Array.of(P.meta), utf8('catchUp')]);
const K_FORMAT = concatBytes([Uint8Array.of(P.meta), utf8('format')]);
const K_STATE_SLOT = concatBytes([Uint8Array.of(P.meta), utf8('stateSlot')]);
const K_STATE_HASH = concatBytes([Uint8Array.of(P.meta), utf8('stateHash')]);
const K_PRIVATE_STATE_HASH = concatBytes([Uint8Array.of(P.meta), utf8('privateStateHash')]);
const K_IMPORT = concatBytes([Uint8Array.of(P.meta), utf8('import')]);
/** Prefix of the known-incarnation records: then the raft id as 8 bytes, big-endian. */
const K_INCARNATION = concatBytes([Uint8Array.of(P.meta), utf8('incarnation/')]);
/** Longest incarnation string stored (node/node.ts refuses longer ones before they get here). */
export const MAX_INCARNATION_CHARS = 128;

function encodeCatchUp(r: CatchUpRecord): Uint8Array {
  return concatBytes([encodeU64(r.privateThrough), encodeU64(r.backfillNext), encodeU64(r.snapshotHead)]);
}

function decodeCatchUp(v: Uint8Array): CatchUpRecord {
  if (v.length !== 24)
    throw new ChainError(ChainErrorCode.StoreCorrupt, 'chain store: catch-up record is not 24 bytes');
  return {
    privateThrough: decodeU64(v.subarray(0, 8)),
    backfillNext: decodeU64(v.subarray(8, 16)),
    snapshotHead: decodeU64(v.subarray(16, 24)),
  };
}

/** T <hash> value: u64 block number ‖ u32 index ‖ [32] block hash. */
/** The block, its hash → height index, and each transaction's location and public receipt. */
function putBlockBody(b: KvBatch, block: Block, receipts: readonly Receipt[]): void {
  const n = block.header.number;
  b.put(blockKey(n), encodeBlock(block));
  b.put(key(P.hash, block.hash), encodeU64(n));
  for (let i = 0; i < block.transactions.length; i++) {
    const tx = block.transactions[i];
    b.put(key(P.txLoc, tx.hash), txLocationBytes(n, i, block.hash));
    b.put(key(P.receipt, tx.hash), encodeReceipt(receipts[i]));
  }
}

function txLocationBytes(n: number, index: number, blockHash: Hash): Uint8Array {
  const loc = new Uint8Array(44);
  loc.set(encodeU64(n), 0);
  new DataView(loc.buffer).setUint32(8, index);
  loc.set(blockHash, 12);
  return loc;
}

/** Block numbers are stored inverted in version keys (MAX - n), so the newest comes first. */
const HISTORY_MAX_BLOCK = Number.MAX_SAFE_INTEGER;
const TAG_DELETED = 0;
const TAG_PRESENT = 1;

function historyPrefix(space: number, k: string): Uint8Array {
  const kb = utf8(k);
  assert(kb.length <= 0xffff, 'state key over 64 KiB');
  const out = new Uint8Array(3 + kb.length);
  out[0] = space;
  new DataView(out.buffer).setUint16(1, kb.length);
  out.set(kb, 3);
  return out;
}

function historyKey(space: number, k: string, blockNumber: number): Uint8Array {
  return concatBytes([historyPrefix(space, k), encodeU64(HISTORY_MAX_BLOCK - blockNumber)]);
}

/** historyKey for a key given as bytes (snapshot import). */
function historyKeyBytes(space: number, kb: Uint8Array, blockNumber: number): Uint8Array {
  assert(kb.length <= 0xffff, 'state key over 64 KiB');
  const out = new Uint8Array(3 + kb.length + 8);
  out[0] = space;
  new DataView(out.buffer).setUint16(1, kb.length);
  out.set(kb, 3);
  out.set(encodeU64(HISTORY_MAX_BLOCK - blockNumber), 3 + kb.length);
  return out;
}

function formatBytes(): Uint8Array {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, CHAIN_STORE_FORMAT_VERSION);
  return b;
}

interface ImportRecord {
  readonly slot: number;
  readonly headHash: Hash;
  readonly appliedRaftIndex: number;
  readonly progress: StateImportProgress;
}

/** M import: u8 slot ‖ [32] head hash ‖ u64 applied ‖ u64 entries ‖ [2048] lanes ‖ last key (rest). */
function encodeImport(r: ImportRecord): Uint8Array {
  return concatBytes([
    Uint8Array.of(r.slot),
    r.headHash,
    encodeU64(r.appliedRaftIndex),
    encodeU64(r.progress.entries),
    Uint8Array.from(r.progress.lanes.bytes()),
    r.progress.lastKey,
  ]);
}

function decodeImport(v: Uint8Array): ImportRecord {
  const fixed = 1 + 32 + 8 + 8 + LTHASH_BYTES;
  if (v.length < fixed || v[0] > 1)
    throw new ChainError(ChainErrorCode.StoreCorrupt, 'chain store: snapshot import record is malformed');
  return {
    slot: v[0],
    headHash: v.slice(1, 33),
    appliedRaftIndex: decodeU64(v.subarray(33, 41)),
    progress: {
      entries: decodeU64(v.subarray(41, 49)),
      lanes: new LtHash(new Uint16Array(v.slice(49, fixed).buffer)),
      lastKey: v.slice(fixed),
    },
  };
}

function historyValue(v: Uint8Array | null): Uint8Array {
  if (v === null) return Uint8Array.of(TAG_DELETED);
  const out = new Uint8Array(1 + v.length);
  out[0] = TAG_PRESENT;
  out.set(v, 1);
  return out;
}
/** The replicated membership record is a few hundred bytes per member. */
export const MAX_MEMBERSHIP_RECORD_BYTES = 4 * 1024 * 1024;

const key = (prefix: number, rest: Uint8Array): Uint8Array => {
  const k = new Uint8Array(1 + rest.length);
  k[0] = prefix;
  k.set(rest, 1);
  return k;
};
const blockKey = (n: number): Uint8Array => key(P.block, encodeU64(n));
const stateKey = (prefix: number, k: string): Uint8Array => key(prefix, utf8(k));

/** A read-only StateView over the store for one key at a time (async reads made sync by prefetch). */
class PrefetchedView implements StateView {
  constructor(private readonly values: ReadonlyMap<string, Uint8Array | undefined>) {}
  get(k: string): Uint8Array | undefined {
    return this.values.get(k);
  }
  ltHash(): LtHash {
    throw new ChainError(ChainErrorCode.StoreIo, 'a prefetched view has no root');
  }
  root(): Hash {
    throw new ChainError(ChainErrorCode.StoreIo, 'a prefetched view has no root');
  }
}

export class KvChainStore implements ChainStore {
  private closed = false;
  /** Serialises writes: commits must land in order, and a commit must not race a snapshot install. */
  private writeChain: Promise<unknown> = Promise.resolve();
  private cachedHead: HeadInfo | undefined;
  private cachedApplied: number | undefined;

  /** Newest committed blocks, decoded, with their estimated cost (blockCost); FIFO within the two bounds. */
  private readonly recentBlocks = new Map<number, { block: Block; bytes: number }>();
  private recentBlocksBytes = 0;
  private readonly blockCacheMaxBytes: number;
  /** The format check and migration (formatReady), run once before the first state access. */
  private opening: Promise<void> | undefined;
  /** Which slot holds the public state (SLOTS). */
  private slot = 0;
  /** The stored LtHash of the public and private state (kept in step with every batch). */
  private lanes = { public: new LtHash(), private: new LtHash() };
  /** The states handed out by loadState, whose old values commitBlock pins (state-store.ts). */
  private live: { public?: StoredState; private?: StoredState } = {};
  private importing = false;
  /** The clearing of the slot a switch-over left (switchToStaged). */
  private clearing: Promise<void> = Promise.resolve();
  private readonly stateCacheMaxBytes: number;

  constructor(
    private readonly kv: KvBackend,
    options: ChainStoreOptions = {},
  ) {
    this.stateCacheMaxBytes = options.stateCacheMaxBytes ?? DEFAULT_STATE_CACHE_MAX_BYTES;
    this.blockCacheMaxBytes = options.blockCacheMaxBytes ?? DEFAULT_BLOCK_CACHE_MAX_BYTES;
    assert(
      Number.isSafeInteger(this.blockCacheMaxBytes) && this.blockCacheMaxBytes >= 0,
      () => `blockCacheMaxBytes ${this.blockCacheMaxBytes} must be a non-negative integer`,
    );
  }

  private checkOpen(): void {
    if (this.closed) throw new ChainError(ChainErrorCode.StoreIo, 'chain store is closed');
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = async (): Promise<T> => {
      await this.ready();
      return fn();
    };
    const next = this.writeChain.then(run, run);
    this.writeChain = next.catch(() => undefined);
    return next;
  }

  /** Checks (once) the on-disk format, migrating a format-1 store; every state access waits for it. */
  ready(): Promise<void> {
    this.opening ??= this.formatReady();
    return this.opening;
  }

  private async formatReady(): Promise<void> {
    const f = await this.kv.get(K_FORMAT);
    if (f === undefined) {
      if ((await this.kv.get(K_CHAIN)) === undefined) return; // empty: init writes the format
      await this.migrateFromFormat1();
    } else {
      const version = f.length === 4 ? new DataView(f.buffer, f.byteOffset, 4).getUint32(0) : -1;
      if (version !== CHAIN_STORE_FORMAT_VERSION) {
        throw new ChainError(
          ChainErrorCode.StoreFormatUnsupported,
          version > CHAIN_STORE_FORMAT_VERSION
            ? `the chain store is in format ${version}, written by a newer quorate; this one reads format ${CHAIN_STORE_FORMAT_VERSION}. Run the newer quorate, or move the data directory aside and let this node rejoin by snapshot`
            : `the chain store's format record is unreadable (${toHex(f)}); move the data directory aside and let this node rejoin by snapshot`,
          { found: version, supported: CHAIN_STORE_FORMAT_VERSION },
        );
      }
    }
    const slot = await this.kv.get(K_STATE_SLOT);
    this.slot = slot === undefined ? 0 : slot[0];
    if (slot !== undefined && (slot.length !== 1 || slot[0] > 1))
      throw new ChainError(ChainErrorCode.StoreCorrupt, 'chain store: state slot record is not 0 or 1');
    this.lanes = { public: await this.readLanes(K_STATE_HASH), private: await this.readLanes(K_PRIVATE_STATE_HASH) };
    // A crash after a switch-over leaves the old slot's data; an import with no record its own.
    if ((await this.kv.get(K_IMPORT)) === undefined) await this.clearSlot(1 - this.slot);
  }

  private async readLanes(k: Uint8Array): Promise<LtHash> {
    const v = await this.kv.get(k);
    if (v === undefined) return new LtHash();
    if (v.length !== LTHASH_BYTES)
      throw new ChainError(
        ChainErrorCode.StoreCorrupt,
        `chain store: a state hash record is not ${LTHASH_BYTES} bytes`,
      );
    return new LtHash(new Uint16Array(Uint8Array.from(v).buffer));
  }

  /**
   * Format 1 kept the state in S/V (slot 0 here) with no stored hash: the node rebuilt the hash by
   * reading the whole state into memory at every start. Migration computes both hashes with one
   * streaming pass (memory bounded), checks the public one against the head block, and records
   * format, slot and hashes in one synced batch: a crash before it leaves a format-1 store, which
   * the next open migrates again. Nothing is moved.
   */
  private async migrateFromFormat1(): Promise<void> {
    const hashOf = async (prefix: number): Promise<LtHash> => {
      const h = new LtHash();
      for await (const [k, v] of this.kv.scan(Uint8Array.of(prefix))) h.add(k.subarray(1), v);
      return h;
    };
    const pub = await hashOf(P.state);
    const priv = await hashOf(P.privState);
    const head = await this.head();
    const block = head === undefined ? undefined : await this.getBlockByNumber(head.number);
    if (block === undefined || !bytesEqual(block.header.stateRoot, pub.root())) {
      throw new ChainError(
        ChainErrorCode.StoreFormatUnsupported,
        `the chain store is in format 1 and cannot be migrated: its state does not match its head block${block ? ` ${block.header.number}` : ''}. Move the data directory aside and let this node rejoin by snapshot`,
        { found: 1, supported: CHAIN_STORE_FORMAT_VERSION },
      );
    }
    const b = this.kv.batch();
    b.put(K_STATE_HASH, Uint8Array.from(pub.bytes()));
    b.put(K_PRIVATE_STATE_HASH, Uint8Array.from(priv.bytes()));
    b.put(K_STATE_SLOT, Uint8Array.of(0));
    b.put(K_FORMAT, formatBytes());
    await b.write(true);
  }

  /** Deletes a public state slot (state and history) in bounded batches. */
  private async clearSlot(slot: number): Promise<void> {
    for (const prefix of [SLOTS[slot].state, SLOTS[slot].history]) {
      for (;;) {
        const b = this.kv.batch();
        let n = 0;
        for await (const [k] of this.kv.scan(Uint8Array.of(prefix))) {
          b.del(k);
          if (++n >= CLEAR_BATCH_KEYS) break;
        }
        if (n === 0) break;
        await b.write(false);
        if (n < CLEAR_BATCH_KEYS) break;
      }
    }
  }

  private get statePrefix(): number {
    return SLOTS[this.slot].state;
  }

  private get historyPrefix(): number {
    return SLOTS[this.slot].history;
  }

  /**
   * The LtHash of a state after `changes`. When `changes` is an overlay's (the node's case), the
   * stored hash plus the overlay's already computed delta — accepted when it gives `expectedRoot`
   * (the block's stateRoot: proof that the overlay was made on the stored state), or, without an
   * expected root (private state), when the overlay's parent holds the stored hash. Otherwise each
   * change is hashed against the stored value.
   */
  private async lanesAfter(space: 'public' | 'private', changes: StateChanges, expectedRoot?: Hash): Promise<LtHash> {
    const current = this.lanes[space];
    if (changes.size === 0) return current;
    const overlay = StateOverlay.ofChanges(changes);
    if (overlay !== undefined && overlay.isSealed()) {
      if (expectedRoot !== undefined) {
        const candidate = current.clone();
        candidate.addVector(overlay.delta().lanes);
        if (bytesEqual(candidate.root(), expectedRoot)) return candidate;
      } else if (overlay.parent.ltHash().equals(current)) {
        const candidate = current.clone();
        candidate.addVector(overlay.delta().lanes);
        return candidate;
      }
    }
    const h = current.clone();
    const prefix = space === 'public' ? this.statePrefix : P.privState;
    for (const [k, v] of changes) {
      const old = await this.kv.get(stateKey(prefix, k));
      if (old !== undefined && v !== null && bytesEqual(old, v)) continue;
      const kb = utf8(k);
      if (old !== undefined) h.subVector(expandStateElement(k, kb, old));
      if (v !== null) h.addVector(expandStateElement(k, kb, v));
    }
    return h;
  }

  async init(chainId: number, genesis: Block, genesisState: MemoryState): Promise<void> {
    this.checkOpen();
    const chainTag = concatBytes([encodeU64(chainId), genesis.hash]);
    const existing = await this.kv.get(K_CHAIN);
    if (existing !== undefined) {
      if (!bytesEqual(existing, chainTag)) {
        throw new ChainError(
          ChainErrorCode.StoreCorrupt,
          `this data directory holds another chain (chainId/genesis differ from genesis.json); refusing to open it`,
          {
            stored: toHex(existing),
            expected: toHex(chainTag),
          },
        );
      }
      return;
    }
    assert(genesis.header.number === 0, 'genesis must be block 0');
    await this.serial(async () => {
      const b = this.kv.batch();
      b.put(blockKey(0), encodeBlock(genesis));
      b.put(key(P.hash, genesis.hash), encodeU64(0));
      for (const [k, v] of genesisState.entries()) {
        b.put(stateKey(this.statePrefix, k), v);
        b.put(historyKey(this.historyPrefix, k, 0), historyValue(v));
      }
      const lanes = genesisState.ltHash().clone();
      b.put(K_FORMAT, formatBytes());
      b.put(K_STATE_SLOT, Uint8Array.of(this.slot));
      b.put(K_STATE_HASH, Uint8Array.from(lanes.bytes()));
      b.put(K_PRIVATE_STATE_HASH, Uint8Array.from(new LtHash().bytes()));
      b.put(K_HISTORY_FROM, encodeU64(0));
      b.put(K_HEAD, concatBytes([encodeU64(0), genesis.hash]));
      b.put(K_APPLIED, encodeU64(0));
      // The chain tag goes in the same batch: a store with a tag is a fully initialised store.
      b.put(K_CHAIN, chainTag);
      await b.write(true);
      this.lanes = { public: lanes, private: new LtHash() };
      this.cachedHead = { number: 0, hash: genesis.hash };
      this.cachedApplied = 0;
    });
  }

  commitBlock(
    block: Block,
    receipts: readonly Receipt[],
    stateChanges: StateChanges,
    privateChanges: PrivateChanges,
    appliedRaftIndex: number,
  ): Promise<void> {
    this.checkOpen();
    assert(
      receipts.length === block.transactions.length,
      () => `commitBlock: ${receipts.length} receipts for ${block.transactions.length} transactions`,
    );
    return this.serial(async () => {
      const head = await this.head();
      assert(head !== undefined, 'commitBlock before init');
      assert(
        block.header.number === head.number + 1 && bytesEqual(block.header.parentHash, head.hash),
        () => `commitBlock: block ${block.header.number} does not extend the stored head ${head.number}`,
      );
      const applied = await this.appliedIndex();
      assert(
        appliedRaftIndex > applied,
        () => `commitBlock: applied index ${appliedRaftIndex} is not after the stored ${applied}`,
      );
      const n = block.header.number;
      const b = this.kv.batch();
      putBlockBody(b, block, receipts);
      for (const r of privateChanges.receipts.values()) b.put(key(P.privReceipt, r.txHash), encodeReceipt(r));
      const publicLanes = await this.lanesAfter('public', stateChanges, block.header.stateRoot);
      const privateLanes = await this.lanesAfter('private', privateChanges.entries);
      for (const [k, v] of stateChanges) {
        if (v === null) b.del(stateKey(this.statePrefix, k));
        else b.put(stateKey(this.statePrefix, k), v);
        b.put(historyKey(this.historyPrefix, k, n), historyValue(v));
      }
      for (const [k, v] of privateChanges.entries) {
        if (v === null) b.del(stateKey(P.privState, k));
        else b.put(stateKey(P.privState, k), v);
        b.put(historyKey(P.privHistory, k, n), historyValue(v));
      }
      if (stateChanges.size > 0) b.put(K_STATE_HASH, Uint8Array.from(publicLanes.bytes()));
      if (privateChanges.entries.size > 0) b.put(K_PRIVATE_STATE_HASH, Uint8Array.from(privateLanes.bytes()));
      b.put(K_HEAD, concatBytes([encodeU64(n), block.hash]));
      b.put(K_APPLIED, encodeU64(appliedRaftIndex));
      this.live.public?.holdOld(stateChanges);
      this.live.private?.holdOld(privateChanges.entries);
      await b.write(true);
      this.lanes = { public: publicLanes, private: privateLanes };
      this.cachedHead = { number: n, hash: block.hash };
      this.cachedApplied = appliedRaftIndex;
      this.rememberBlock(block);
    });
  }

  recordNoop(appliedRaftIndex: number): Promise<void> {
    this.checkOpen();
    return this.serial(async () => {
      const applied = await this.appliedIndex();
      assert(
        appliedRaftIndex > applied,
        () => `recordNoop: applied index ${appliedRaftIndex} is not after the stored ${applied}`,
      );
      const b = this.kv.batch();
      b.put(K_APPLIED, encodeU64(appliedRaftIndex));
      await b.write(true);
      this.cachedApplied = appliedRaftIndex;
    });
  }

  recordMembership(membership: Uint8Array, appliedRaftIndex: number): Promise<void> {
    this.checkOpen();
    assert(
      membership.length <= MAX_MEMBERSHIP_RECORD_BYTES,
      () => `membership record of ${membership.length} bytes is over ${MAX_MEMBERSHIP_RECORD_BYTES}`,
    );
    return this.serial(async () => {
      const applied = await this.appliedIndex();
      assert(
        appliedRaftIndex >= applied,
        () => `recordMembership: applied index ${appliedRaftIndex} is before the stored ${applied}`,
      );
      const b = this.kv.batch();
      b.put(K_MEMBERSHIP, membership);
      b.put(K_APPLIED, encodeU64(appliedRaftIndex));
      await b.write(true);
      this.cachedApplied = appliedRaftIndex;
    });
  }

  async membership(): Promise<Uint8Array | undefined> {
    this.checkOpen();
    return this.kv.get(K_MEMBERSHIP);
  }

  installSnapshot(s: StoreSnapshot): Promise<void> {
    this.checkOpen();
    assert(
      s.membership === undefined || s.membership.length <= MAX_MEMBERSHIP_RECORD_BYTES,
      'installSnapshot: membership record over MAX_MEMBERSHIP_RECORD_BYTES',
    );
    assert((s.staged === undefined) !== (s.state === undefined), 'installSnapshot: give exactly one of staged, state');
    if (s.state !== undefined)
      assert(
        bytesEqual(s.state.root(), s.head.header.stateRoot),
        'installSnapshot: the state does not match the head block',
      );
    return (async () => {
      const staged = s.staged ?? (await this.stageMemoryState(s.head, s.appliedRaftIndex, s.state!));
      assert(
        bytesEqual(staged.headHash, s.head.hash) && bytesEqual(staged.lanes.root(), s.head.header.stateRoot),
        "installSnapshot: the staged state is not the head block's",
      );
      await this.serial(() => this.switchToStaged(s, staged));
    })();
  }

  /**
   * The switch-over: one synced batch makes the staged slot the live one, with the snapshot's
   * head, applied index, membership and catch-up record. Before it the old state is the store's,
   * after it the new one: a crash never leaves a mix. The old slot is cleared afterwards (and, if
   * a crash cut that, at the next open).
   */
  private async switchToStaged(s: StoreSnapshot, staged: StagedState): Promise<void> {
    const record = await this.kv.get(K_IMPORT);
    assert(
      record !== undefined && decodeImport(record).slot === staged.slot && staged.slot !== this.slot,
      'installSnapshot: the staged state is not the pending import',
    );
    const b = this.kv.batch();
    const oldHead = await this.head();
    const oldRecord = await this.catchUp();
    const n = s.head.header.number;
    // Earlier blocks' public state is not known here any more (historyFrom), and a read of it says so.
    b.put(K_HISTORY_FROM, encodeU64(n));
    b.put(blockKey(n), encodeBlock(s.head));
    b.put(key(P.hash, s.head.hash), encodeU64(n));
    b.put(K_HEAD, concatBytes([encodeU64(n), s.head.hash]));
    b.put(K_APPLIED, encodeU64(s.appliedRaftIndex));
    b.put(K_STATE_SLOT, Uint8Array.of(staged.slot));
    b.put(K_STATE_HASH, Uint8Array.from(staged.lanes.bytes()));
    b.del(K_IMPORT);
    if (s.membership !== undefined) b.put(K_MEMBERSHIP, s.membership);
    if (oldHead !== undefined && n > oldHead.number) {
      // The private state stays where it was (at the old head, or at an earlier catch-up's
      // privateThrough); blocks up to the new head (whose receipts the snapshot lacks) are
      // fetched from peers from the top down.
      const privateThrough = oldRecord?.privateThrough ?? oldHead.number;
      b.put(K_CATCH_UP, encodeCatchUp({ privateThrough, backfillNext: n, snapshotHead: n }));
    }
    await b.write(true);
    const oldSlot = this.slot;
    this.slot = staged.slot;
    this.lanes = { ...this.lanes, public: staged.lanes.clone() };
    this.live = {};
    this.importing = false;
    this.recentBlocks.clear();
    this.recentBlocksBytes = 0;
    this.rememberBlock(s.head);
    this.cachedHead = { number: n, hash: s.head.hash };
    this.cachedApplied = s.appliedRaftIndex;
    // In the background: commits go to the other slot meanwhile. The next import and close wait for it.
    this.clearing = this.clearSlot(oldSlot).catch(() => undefined);
  }

  /** Writes an in-memory state into the spare slot through the same import path importSnapshot uses. */
  private async stageMemoryState(head: Block, appliedRaftIndex: number, state: MemoryState): Promise<StagedState> {
    const imp = await this.stateImport(head, appliedRaftIndex);
    const entries = [...state.entries()]
      .map(([k, v]) => [utf8(k), v] as const)
      .sort((a, b) => compareBytes(a[0], b[0]));
    const lanes = new LtHash();
    for (let i = 0; i < entries.length; i += CLEAR_BATCH_KEYS) {
      const part = entries.slice(i, i + CLEAR_BATCH_KEYS);
      for (const [k, v] of part) lanes.add(k, v);
      await imp.write(part, { lastKey: part[part.length - 1][0], entries: i + part.length, lanes: lanes.clone() });
    }
    return imp.finish();
  }

  async stateImport(head: Block, appliedRaftIndex: number): Promise<StateImport> {
    this.checkOpen();
    await this.ready();
    if (this.importing)
      throw new ChainError(ChainErrorCode.SnapshotInvalid, 'a snapshot import is already running in this store', {
        reason: 'busy',
      });
    this.importing = true;
    try {
      await this.clearing;
      const target = 1 - this.slot;
      const n = head.header.number;
      const existing = await this.kv.get(K_IMPORT);
      let progress: StateImportProgress = { lastKey: new Uint8Array(0), entries: 0, lanes: new LtHash() };
      const prev = existing === undefined ? undefined : decodeImport(existing);
      if (
        prev !== undefined &&
        prev.slot === target &&
        bytesEqual(prev.headHash, head.hash) &&
        prev.appliedRaftIndex === appliedRaftIndex
      ) {
        progress = prev.progress; // the same snapshot, cut before: resume after its last key
      } else {
        // Another snapshot's leftovers (or a crash after a switch-over): start from an empty slot.
        const b = this.kv.batch();
        b.del(K_IMPORT);
        await b.write(false);
        await this.clearSlot(target);
      }
      let current = progress;
      const writeRecord = (b: KvBatch, p: StateImportProgress): void =>
        b.put(K_IMPORT, encodeImport({ slot: target, headHash: head.hash, appliedRaftIndex, progress: p }));
      if (prev === undefined || progress.entries === 0) {
        const b = this.kv.batch();
        writeRecord(b, progress);
        await b.write(false);
      }
      let abandoned = false;
      let bytesSinceRecord = 0;
      const prefixes = SLOTS[target];
      return {
        progress,
        write: async (entries, next) => {
          assert(!abandoned && this.importing, 'stateImport.write after finish or abandon');
          const b = this.kv.batch();
          // The state only: its history is written by finish(), in a pass of its own (see there).
          for (const [k, v] of entries) {
            b.put(key(prefixes.state, k), v);
            bytesSinceRecord += k.length + v.length;
          }
          // The progress record only every IMPORT_RECORD_EVERY_BYTES (and when the import is cut or
          // finishes): one key outside the state's range in every batch made each LevelDB table overlap
          // the next, as the history did (finish()), ~1.5x the import's LevelDB CPU. Not synced: LevelDB
          // keeps batches in order, so what survives a crash is a prefix of them; the entries written
          // after the last record are written again, the same, by the resumed import.
          if (bytesSinceRecord >= IMPORT_RECORD_EVERY_BYTES) {
            writeRecord(b, next);
            bytesSinceRecord = 0;
          }
          await b.write(false);
          current = next;
        },
        finish: async () => {
          assert(!abandoned && this.importing, 'stateImport.finish after finish or abandon');
          const done = this.kv.batch();
          writeRecord(done, current);
          await done.write(false);
          // The history at the head block, from the imported state, in key order. Not in write():
          // there each batch held state and history keys, two key ranges, so every LevelDB table
          // flushed overlapped the next and compaction rewrote them all — importing 128 MiB ran at
          // ~33 MiB/s that way, ~60 MiB/s as two passes (~100 MiB/s for the state alone).
          let b = this.kv.batch();
          let batchBytes = 0;
          for await (const [k, v] of this.kv.scan(Uint8Array.of(prefixes.state))) {
            b.put(historyKeyBytes(prefixes.history, k.subarray(1), n), historyValue(v));
            batchBytes += k.length + v.length;
            if (batchBytes >= IMPORT_HISTORY_BATCH_BYTES) {
              await b.write(false);
              b = this.kv.batch();
              batchBytes = 0;
            }
          }
          if (batchBytes > 0) await b.write(false);
          // The record stays on disk (installSnapshot checks it); another import may start, and
          // would start this slot over if it is not the same snapshot.
          this.importing = false;
          return { slot: target, lanes: current.lanes.clone(), headHash: head.hash, entries: current.entries };
        },
        abandon: async (keepProgress) => {
          abandoned = true;
          this.importing = false;
          if (keepProgress) {
            // Where the cut import stopped, for the next attempt. If this write fails too (a full
            // disk), the last record stays: the resumed import starts a little earlier.
            const b = this.kv.batch();
            writeRecord(b, current);
            await b.write(false).catch(() => undefined);
            return;
          }
          const b = this.kv.batch();
          b.del(K_IMPORT);
          await b.write(false);
        },
      };
    } catch (e) {
      this.importing = false;
      throw e;
    }
  }

  async knownIncarnations(): Promise<Map<number, string>> {
    this.checkOpen();
    const out = new Map<number, string>();
    for await (const [k, v] of this.kv.scan(K_INCARNATION)) {
      const rest = k.subarray(K_INCARNATION.length);
      // A record that does not decode is skipped, not fatal: forgetting one incarnation only loses
      // that member's check until it is seen again.
      if (rest.length !== 8 || v.length === 0 || v.length > MAX_INCARNATION_CHARS) continue;
      out.set(Number(new DataView(rest.buffer, rest.byteOffset, 8).getBigUint64(0)), new TextDecoder().decode(v));
    }
    return out;
  }

  rememberIncarnation(raftId: number, incarnation: string | undefined): Promise<void> {
    this.checkOpen();
    assert(Number.isSafeInteger(raftId) && raftId > 0, () => `rememberIncarnation: bad raft id ${raftId}`);
    assert(
      incarnation === undefined || (incarnation.length > 0 && incarnation.length <= MAX_INCARNATION_CHARS),
      'rememberIncarnation: incarnation of 1..MAX_INCARNATION_CHARS characters',
    );
    const idBytes = new Uint8Array(8);
    new DataView(idBytes.buffer).setBigUint64(0, BigInt(raftId));
    const k = concatBytes([K_INCARNATION, idBytes]);
    return this.serial(async () => {
      const b = this.kv.batch();
      if (incarnation === undefined) b.del(k);
      else b.put(k, utf8(incarnation));
      await b.write(true);
    });
  }

  async catchUp(): Promise<CatchUpRecord | undefined> {
    this.checkOpen();
    const v = await this.kv.get(K_CATCH_UP);
    return v === undefined ? undefined : decodeCatchUp(v);
  }

  async blockStored(number: number): Promise<'none' | 'block-only' | 'complete'> {
    this.checkOpen();
    if (!Number.isSafeInteger(number) || number < 0) return 'none';
    const v = await this.kv.get(blockKey(number));
    if (v === undefined) return 'none';
    // Every block's transactions and receipts are written in its batch (commitBlock,
    // storeBackfilledBlocks), except a snapshot's head: the first receipt tells them apart.
    const first = decodeBlockTransaction(v, 0);
    if (first === undefined) return 'complete';
    return (await this.kv.get(key(P.receipt, first.hash))) === undefined ? 'block-only' : 'complete';
  }

  storeBackfilledBlocks(blocks: readonly BackfilledBlock[], backfillNext: number): Promise<void> {
    this.checkOpen();
    return this.serial(async () => {
      const record = await this.catchUp();
      assert(record !== undefined, 'storeBackfilledBlocks: no catch-up in progress');
      assert(
        backfillNext <= record.backfillNext,
        () => `storeBackfilledBlocks: backfillNext ${backfillNext} moves up from ${record.backfillNext}`,
      );
      const head = await this.head();
      assert(head !== undefined, 'storeBackfilledBlocks before init');
      const b = this.kv.batch();
      for (const { block, receipts } of blocks) {
        const n = block.header.number;
        assert(
          n > record.privateThrough && n <= head.number,
          () => `storeBackfilledBlocks: block ${n} is outside (${record.privateThrough}, ${head.number}]`,
        );
        assert(
          receipts.length === block.transactions.length,
          () => `storeBackfilledBlocks: ${receipts.length} receipts for ${block.transactions.length} transactions`,
        );
        putBlockBody(b, block, receipts);
      }
      b.put(K_CATCH_UP, encodeCatchUp({ ...record, backfillNext }));
      await b.write(true);
    });
  }

  commitPrivateReplay(blockNumber: number, privateChanges: PrivateChanges, done: boolean): Promise<void> {
    this.checkOpen();
    return this.serial(async () => {
      const record = await this.catchUp();
      assert(record !== undefined, 'commitPrivateReplay: no catch-up in progress');
      assert(
        blockNumber > record.privateThrough,
        () => `commitPrivateReplay: block ${blockNumber} is not after privateThrough ${record.privateThrough}`,
      );
      const head = await this.head();
      assert(
        head !== undefined && blockNumber <= head.number,
        () => `commitPrivateReplay: block ${blockNumber} is above the head`,
      );
      assert(
        !done || (blockNumber === head.number && record.backfillNext <= blockNumber),
        () =>
          `commitPrivateReplay: done at block ${blockNumber}, head ${head.number}, backfillNext ${record.backfillNext}`,
      );
      const b = this.kv.batch();
      const privateLanes = await this.lanesAfter('private', privateChanges.entries);
      for (const r of privateChanges.receipts.values()) b.put(key(P.privReceipt, r.txHash), encodeReceipt(r));
      for (const [k, v] of privateChanges.entries) {
        if (v === null) b.del(stateKey(P.privState, k));
        else b.put(stateKey(P.privState, k), v);
        b.put(historyKey(P.privHistory, k, blockNumber), historyValue(v));
      }
      if (privateChanges.entries.size > 0) b.put(K_PRIVATE_STATE_HASH, Uint8Array.from(privateLanes.bytes()));
      if (done) b.del(K_CATCH_UP);
      else b.put(K_CATCH_UP, encodeCatchUp({ ...record, privateThrough: blockNumber }));
      this.live.private?.holdOld(privateChanges.entries);
      await b.write(true);
      this.lanes = { ...this.lanes, private: privateLanes };
    });
  }

  async head(): Promise<HeadInfo | undefined> {
    this.checkOpen();
    if (this.cachedHead) return this.cachedHead;
    const v = await this.kv.get(K_HEAD);
    if (v === undefined) return undefined;
    if (v.length !== 40) throw new ChainError(ChainErrorCode.StoreCorrupt, 'chain store: head record is not 40 bytes');
    this.cachedHead = { number: decodeU64(v.subarray(0, 8)), hash: v.slice(8) };
    return this.cachedHead;
  }

  async appliedIndex(): Promise<number> {
    this.checkOpen();
    if (this.cachedApplied !== undefined) return this.cachedApplied;
    const v = await this.kv.get(K_APPLIED);
    this.cachedApplied = v === undefined ? 0 : decodeU64(v);
    return this.cachedApplied;
  }

  async getBlockByNumber(number: number): Promise<Block | undefined> {
    this.checkOpen();
    if (!Number.isSafeInteger(number) || number < 0) return undefined;
    const cached = this.recentBlocks.get(number);
    if (cached) return cached.block;
    const v = await this.kv.get(blockKey(number));
    return v === undefined ? undefined : decodeBlock(v);
  }

  /**
   * Keeps the last RECENT_BLOCKS_CACHED committed blocks decoded: clients read the newest blocks
   * most (explorers, the bench's commit watcher), and decoding re-hashes every transaction.
   */
  private rememberBlock(block: Block): void {
    const old = this.recentBlocks.get(block.header.number);
    if (old) {
      this.recentBlocks.delete(block.header.number);
      this.recentBlocksBytes -= old.bytes;
    }
    const bytes = blockCost(block);
    this.recentBlocks.set(block.header.number, { block, bytes });
    this.recentBlocksBytes += bytes;
    while (
      this.recentBlocks.size > 0 &&
      (this.recentBlocks.size > RECENT_BLOCKS_CACHED || this.recentBlocksBytes > this.blockCacheMaxBytes)
    ) {
      const [n, oldest] = this.recentBlocks.entries().next().value as [number, { block: Block; bytes: number }];
      this.recentBlocks.delete(n);
      this.recentBlocksBytes -= oldest.bytes;
    }
  }

  /** The recent-blocks cache now: blocks held and their estimated bytes (at most blockCacheMaxBytes). */
  blockCacheStats(): { blocks: number; bytes: number } {
    return { blocks: this.recentBlocks.size, bytes: this.recentBlocksBytes };
  }

  async getBlockByHash(hash: Hash): Promise<Block | undefined> {
    this.checkOpen();
    const n = await this.kv.get(key(P.hash, hash));
    return n === undefined ? undefined : this.getBlockByNumber(decodeU64(n));
  }

  async getTxLocation(txHash: Hash): Promise<TxLocation | undefined> {
    this.checkOpen();
    const v = await this.kv.get(key(P.txLoc, txHash));
    if (v === undefined) return undefined;
    if (v.length !== 44)
      throw new ChainError(ChainErrorCode.StoreCorrupt, `chain store: tx location of ${toHex(txHash)} is not 44 bytes`);
    return {
      blockNumber: decodeU64(v.subarray(0, 8)),
      index: new DataView(v.buffer, v.byteOffset, v.byteLength).getUint32(8),
      blockHash: v.slice(12),
    };
  }

  async getTransaction(txHash: Hash): Promise<{ tx: Transaction; location: TxLocation } | undefined> {
    const location = await this.getTxLocation(txHash);
    if (!location) return undefined;
    const blk = await this.kv.get(blockKey(location.blockNumber));
    if (blk === undefined) return undefined; // below an installed snapshot: the body is not held
    const tx = decodeBlockTransaction(blk, location.index);
    if (!tx || !bytesEqual(tx.hash, txHash))
      throw new ChainError(
        ChainErrorCode.StoreCorrupt,
        `chain store: tx index of ${toHex(txHash)} points to the wrong transaction`,
      );
    return { tx, location };
  }

  async getReceipt(txHash: Hash): Promise<Receipt | undefined> {
    this.checkOpen();
    const v = await this.kv.get(key(P.receipt, txHash));
    return v === undefined ? undefined : decodeReceipt(v);
  }

  async getPrivateReceipt(txHash: Hash): Promise<Receipt | undefined> {
    this.checkOpen();
    const v = await this.kv.get(key(P.privReceipt, txHash));
    return v === undefined ? undefined : decodeReceipt(v);
  }

  /** One state entry: latest (atBlock undefined) from the flat map, else from the version index. */
  private async readState(prefix: number, k: string, atBlock: number | undefined): Promise<Uint8Array | undefined> {
    await this.ready();
    if (atBlock === undefined) return this.kv.get(stateKey(prefix === P.state ? this.statePrefix : prefix, k));
    const space = prefix === P.state ? this.historyPrefix : P.privHistory;
    const found = await this.kv.firstAtOrAfter(historyKey(space, k, atBlock), historyPrefix(space, k));
    if (!found) return undefined;
    const v = found[1];
    if (v.length === 0 || (v[0] !== TAG_DELETED && v[0] !== TAG_PRESENT))
      throw new ChainError(ChainErrorCode.StoreCorrupt, `chain store: bad version record for ${k}`);
    return v[0] === TAG_DELETED ? undefined : v.slice(1);
  }

  /** Checks that state at `atBlock` can be answered here. */
  private async checkHistory(atBlock: number | undefined): Promise<void> {
    if (atBlock === undefined) return;
    const head = await this.head();
    if (head === undefined || atBlock > head.number)
      throw new ChainError(
        ChainErrorCode.HistoryUnavailable,
        `block ${atBlock} is not committed yet (head is ${head?.number ?? 'none'})`,
      );
    const fromBytes = await this.kv.get(K_HISTORY_FROM);
    const from = fromBytes === undefined ? 0 : decodeU64(fromBytes);
    if (atBlock < from) {
      throw new ChainError(
        ChainErrorCode.HistoryUnavailable,
        `state before block ${from} is not kept on this node (it was rebuilt from a snapshot at block ${from}); ask another member`,
        { historyFrom: from },
      );
    }
  }

  private async view(prefix: number, keys: readonly string[], atBlock?: number): Promise<PrefetchedView> {
    this.checkOpen();
    await this.checkHistory(atBlock);
    const m = new Map<string, Uint8Array | undefined>();
    for (const k of keys) m.set(k, await this.readState(prefix, k, atBlock));
    return new PrefetchedView(m);
  }

  async getBalance(address: Address, atBlock?: number): Promise<bigint> {
    return getBalance(await this.view(P.state, [stateKeys.balance(address)], atBlock), address);
  }

  async getNonce(address: Address, atBlock?: number): Promise<number> {
    return getNonce(await this.view(P.state, [stateKeys.nonce(address)], atBlock), address);
  }

  async getValue(k: string, atBlock?: number): Promise<string | null> {
    return getValue(await this.view(P.state, [stateKeys.value(k)], atBlock), k);
  }

  async getPrivateValue(k: string, atBlock?: number): Promise<string | null> {
    return getValue(await this.view(P.privState, [stateKeys.value(k)], atBlock), k);
  }

  async getList(k: string, offset = 0, maxItems = MAX_LIST_READ_ITEMS, atBlock?: number): Promise<string[]> {
    this.checkOpen();
    await this.checkHistory(atBlock);
    const lenBytes = await this.readState(P.state, stateKeys.listLength(k), atBlock);
    const n = lenBytes === undefined ? 0 : decodeU64(lenBytes);
    const keys = [stateKeys.listLength(k)];
    const end = Math.min(n, offset + Math.min(maxItems, MAX_LIST_READ_ITEMS));
    for (let i = offset; i < end; i++) keys.push(stateKeys.listItem(k, i));
    return getList(await this.view(P.state, keys, atBlock), k, offset, maxItems);
  }

  async loadState(): Promise<{ state: StoredState; privateState: StoredState }> {
    this.checkOpen();
    await this.ready();
    const head = await this.head();
    if (head) {
      const block = await this.getBlockByNumber(head.number);
      if (!block)
        throw new ChainError(ChainErrorCode.StoreCorrupt, `chain store: head block ${head.number} is missing`);
      if (!bytesEqual(block.header.stateRoot, this.lanes.public.root())) {
        throw new ChainError(
          ChainErrorCode.StoreCorrupt,
          `chain store: stored state root ${toHex(this.lanes.public.root())} does not match head block ${head.number}'s ${toHex(block.header.stateRoot)}`,
          { head: head.number },
        );
      }
    }
    const state = new StoredState(
      this.kv,
      Uint8Array.of(this.statePrefix),
      this.lanes.public,
      this.stateCacheMaxBytes,
      () => this.kv.readView(),
    );
    const privateState = new StoredState(
      this.kv,
      Uint8Array.of(P.privState),
      this.lanes.private,
      this.stateCacheMaxBytes,
    );
    this.live = { public: state, private: privateState };
    return { state, privateState };
  }

  /**
   * Recomputes the LtHash of the stored public and private state with one streaming pass and
   * compares it with the stored hashes (memory bounded; O(state) time: for checks and tools, not
   * for the hot path, which keeps the hash incrementally).
   */
  async verifyStoredState(): Promise<{ public: boolean; private: boolean; publicEntries: number }> {
    this.checkOpen();
    await this.ready();
    const hashOf = async (prefix: number): Promise<[LtHash, number]> => {
      const h = new LtHash();
      let n = 0;
      for await (const [k, v] of this.kv.scan(Uint8Array.of(prefix))) {
        h.add(k.subarray(1), v);
        n++;
      }
      return [h, n];
    };
    const [pub, publicEntries] = await hashOf(this.statePrefix);
    const [priv] = await hashOf(P.privState);
    return { public: pub.equals(this.lanes.public), private: priv.equals(this.lanes.private), publicEntries };
  }

  /**
   * A consistent view of the live public state, opened now (synchronously), for a snapshot export
   * while the store keeps committing. `prefix` is the key prefix of the state entries in it.
   */
  publicStateView(): { view: KvReadView; prefix: Uint8Array } {
    this.checkOpen();
    return { view: this.kv.readView(), prefix: Uint8Array.of(this.statePrefix) };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.writeChain;
    await this.clearing;
    this.closed = true;
    await this.kv.close();
  }
}

/** Estimated memory of a decoded block: each transaction's encoding plus its decoded fields (about as much again). */
function blockCost(block: Block): number {
  let bytes = BLOCK_CACHE_OVERHEAD_BYTES;
  for (const tx of block.transactions) bytes += 2 * tx.encoded.length;
  return bytes;
}

/**
 * The hook for config.json's `state` object: validates it and gives the options of
 * openLevelChainStore. A bad value throws ChainError(StoreIo) naming the field.
 */
export function chainStoreOptionsFromConfig(
  state: {
    readonly cacheMaxBytes?: unknown;
    readonly blockCacheMaxBytes?: unknown;
    readonly maxOpenFiles?: unknown;
  } = {},
): ChainStoreOptions {
  const v = integerField(
    'cacheMaxBytes',
    state.cacheMaxBytes,
    MIN_STATE_CACHE_MAX_BYTES,
    Number.MAX_SAFE_INTEGER,
    `an integer of at least ${MIN_STATE_CACHE_MAX_BYTES} (MIN_STATE_CACHE_MAX_BYTES)`,
  );
  const b = integerField(
    'blockCacheMaxBytes',
    state.blockCacheMaxBytes,
    0,
    Number.MAX_SAFE_INTEGER,
    'a non-negative integer',
  );
  const f = integerField(
    'maxOpenFiles',
    state.maxOpenFiles,
    MIN_STATE_MAX_OPEN_FILES,
    MAX_STATE_MAX_OPEN_FILES,
    `an integer in ${MIN_STATE_MAX_OPEN_FILES}..${MAX_STATE_MAX_OPEN_FILES} (LevelDB's range)`,
  );
  return {
    ...(v !== undefined ? { stateCacheMaxBytes: v } : {}),
    ...(b !== undefined ? { blockCacheMaxBytes: b } : {}),
    ...(f !== undefined ? { maxOpenFiles: f } : {}),
  };
}

/** `state.<name>`: undefined when absent, else an integer in min..max, refused by name (`wanted` says what). */
function integerField(name: string, v: unknown, min: number, max: number, wanted: string): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'number' || !Number.isSafeInteger(v) || v < min || v > max)
    throw new ChainError(ChainErrorCode.StoreIo, `state.${name} must be ${wanted}, got ${String(v)}`, {
      field: `state.${name}`,
    });
  return v;
}

export async function openLevelChainStore(path: string, options: ChainStoreOptions = {}): Promise<KvChainStore> {
  const store = new KvChainStore(await LevelKv.open(path, options.maxOpenFiles), options);
  // Refuse an unreadable format (or migrate an old one) before the node reads anything.
  try {
    await store.ready();
  } catch (e) {
    await store.close();
    throw e;
  }
  return store;
}

/** In-memory store. Pass the same MemoryKv to a new store to model a restart. */
export function createMemoryChainStore(kv: MemoryKv = new MemoryKv(), options: ChainStoreOptions = {}): KvChainStore {
  return new KvChainStore(kv, options);
}
