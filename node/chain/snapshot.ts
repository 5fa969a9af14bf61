// Snapshots of the public chain state at an applied Raft index, for Raft log compaction and for
// catching up a follower (Raft §7): exported as a stream of bounded chunks from a consistent read
// view, imported into a fresh slot of the chain store, verified, then switched to atomically.
//
// Format (version 2): a sequence of chunks, each at most `chunkBytes` (default 1 MiB):
//   header  (kind 1): u8 kind ‖ u8 version ‖ u64 appliedRaftIndex ‖ [32] head hash ‖ u32 head block bytes
//                     ‖ bytes16 resumeAfterKey (empty: the stream starts at the first key)
//   block   (kind 4): u8 kind ‖ a piece of the head block's encoding (pieces follow the header, in order)
//   entries (kind 2): u8 kind ‖ u32 n ‖ n × (bytes16 key ‖ bytes32 value), keys strictly increasing
//                     across the whole stream (LevelDB's order), so no key can come twice
//   trailer (kind 3): u8 kind ‖ u64 entries in this stream ‖ [32] state root
// The import recomputes the LtHash of what it wrote and compares its root with the head block's
// stateRoot: a stream that does not match is refused before anything becomes visible.
//
// Export: the read view is opened when exportSnapshot is called (synchronously, at the chain's
// head), so the leader keeps committing while the stream is consumed; memory is one chunk.
// Consume the stream to its end or call return() on it: that closes the view.
//
// Import (importSnapshot): writes each chunk's entries into the store's spare slot in one batch
// with a progress record (store.ts stateImport); the next chunk is decoded and hashed while that
// batch is written (at most one write in flight), so memory is two chunks, and an import cut by a
// crash or a lost connection resumes after the last key written — from a stream that starts
// over, or from one exported with startAfterKey. Then store.installSnapshot({ staged }) switches.
//
// Privacy: private state is never in a snapshot. A follower that installs one keeps its private
// state as it was (at its old head), and store.installSnapshot records a CatchUpRecord in the same
// batch. The node then fetches the skipped blocks and their public receipts from its peers
// (node/catch-up.ts) and replays their private transactions, in chain order (QuorateNode.runCatchUp).

import { ChainError, ChainErrorCode, assert } from './errors.js';
import { Reader, Writer, bytesEqual, toHex, toHexBare, utf8 } from './codec.js';
import { type Block, MAX_BLOCK_BYTES, decodeBlock, encodeBlock } from './block.js';
import { MemoryState } from './state.js';
import { LtHash } from './lthash.js';
import { StoredState } from './state-store.js';
import type { ChainState } from './executor.js';
import { compareBytes } from './kv.js';
import { type ChainStore, type StateImportProgress, type StoreSnapshot } from './store.js';

/** Default and largest size of one chunk (config: the snapshot transport's chunk size). */
export const SNAPSHOT_CHUNK_BYTES = 1024 * 1024;
/** Smallest chunk size accepted: one entry (key ≤ 64 KiB framing, value ≤ 16 KiB) always fits. */
export const MIN_SNAPSHOT_CHUNK_BYTES = 96 * 1024;
/** Largest snapshot snapshotToBytes puts in one buffer (the one-message form Raft carries today). */
export const MAX_SNAPSHOT_BYTES = 1024 * 1024 * 1024;
/** Largest value one entry may carry (bounded by the state's own limits; a little headroom). */
export const MAX_SNAPSHOT_VALUE_BYTES = 64 * 1024;
/** Longest state key accepted in a snapshot. */
export const MAX_SNAPSHOT_KEY_BYTES = 4 * 1024;

const VERSION = 2;
const KIND_HEADER = 1;
const KIND_ENTRIES = 2;
const KIND_TRAILER = 3;
const KIND_BLOCK = 4;
/** Framing of one entry besides its key and value bytes. */
const ENTRY_FRAMING_BYTES = 2 + 4;
const ENTRIES_CHUNK_HEADER_BYTES = 1 + 4;

/** Why an import was refused (ChainError SnapshotInvalid, meta.reason). */
export enum SnapshotRefusal {
  /** The imported state's root is not the head block's stateRoot (or the trailer's). */
  RootMismatch = 'root-mismatch',
  /** The stream ended before its trailer. */
  Truncated = 'truncated',
  /** A chunk is over the receiver's maxChunkBytes. */
  ChunkTooLarge = 'chunk-too-large',
  /** A chunk does not decode, is out of order, or a count is wrong. */
  Malformed = 'malformed',
}

function refuse(reason: SnapshotRefusal, why: string): never {
  throw new ChainError(ChainErrorCode.SnapshotInvalid, `snapshot refused (${reason}): ${why}`, { reason });
}

export interface SnapshotExportOptions {
  /** Private state is never exported; the option exists so callers say it. */
  readonly includePrivate?: false;
  /** Largest chunk, in bytes (MIN_SNAPSHOT_CHUNK_BYTES..SNAPSHOT_CHUNK_BYTES); default SNAPSHOT_CHUNK_BYTES. */
  readonly chunkBytes?: number;
  /** Resume: export only the keys after this one (the receiver's StateImportProgress.lastKey). */
  readonly startAfterKey?: Uint8Array;
}

/** A sorted source of (key bytes, value) pairs: a store read view, or a MemoryState's entries. */
interface EntrySource {
  entries(after: Uint8Array | undefined): AsyncIterable<[Uint8Array, Uint8Array]>;
  close(): Promise<void>;
}

function sourceOf(chain: ChainState): EntrySource {
  const state = chain.state;
  if (state instanceof StoredState) {
    const { view, prefix } = state.openReadView();
    return {
      entries: async function* (after) {
        const from = after === undefined ? undefined : concat(prefix, after);
        for await (const [k, v] of view.scan(prefix, from)) yield [k.subarray(prefix.length), v];
      },
      close: () => view.close(),
    };
  }
  assert(state instanceof MemoryState, 'exportSnapshot: the chain state is neither a StoredState nor a MemoryState');
  // Taken now, so later commits to the MemoryState do not show (values are never mutated in place).
  const sorted = [...state.entries()].map(([k, v]) => [utf8(k), v] as [Uint8Array, Uint8Array]);
  sorted.sort((a, b) => compareBytes(a[0], b[0]));
  return {
    entries: async function* (after) {
      for (const e of sorted) if (after === undefined || compareBytes(e[0], after) > 0) yield e;
    },
    close: async () => {},
  };
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

/**
 * The public state at the chain's head, as chunks. The read view is opened now (see the top).
 * `appliedRaftIndex` is the Raft index the head corresponds to.
 */
export function exportSnapshot(
  chain: ChainState,
  appliedRaftIndex: number,
  options: SnapshotExportOptions = {},
): AsyncGenerator<Uint8Array> {
  const chunkBytes = options.chunkBytes ?? SNAPSHOT_CHUNK_BYTES;
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < MIN_SNAPSHOT_CHUNK_BYTES || chunkBytes > SNAPSHOT_CHUNK_BYTES)
    throw new ChainError(
      ChainErrorCode.SnapshotInvalid,
      `snapshot chunk size ${chunkBytes} is outside ${MIN_SNAPSHOT_CHUNK_BYTES}..${SNAPSHOT_CHUNK_BYTES}`,
      { reason: SnapshotRefusal.Malformed },
    );
  const head = chain.head;
  const root = chain.state.root();
  const source = sourceOf(chain);
  return generateChunks(source, head, root, appliedRaftIndex, chunkBytes, options.startAfterKey, true);
}

/**
 * One read view at the chain's head, opened now, that serves many streams (node/snapshot-transfer.ts:
 * every transfer of one Raft snapshot, and each resumed one, reads the same state). close() ends it;
 * a stream still running then fails.
 */
export interface SnapshotView {
  readonly appliedRaftIndex: number;
  readonly head: Block;
  readonly stateRoot: Uint8Array;
  stream(options?: Omit<SnapshotExportOptions, 'includePrivate'>): AsyncGenerator<Uint8Array>;
  close(): Promise<void>;
}

export function openSnapshotView(chain: ChainState, appliedRaftIndex: number): SnapshotView {
  const head = chain.head;
  const root = chain.state.root();
  const source = sourceOf(chain);
  return {
    appliedRaftIndex,
    head,
    stateRoot: root,
    stream: (options = {}) => {
      const chunkBytes = checkedChunkBytes(options.chunkBytes ?? SNAPSHOT_CHUNK_BYTES);
      return generateChunks(source, head, root, appliedRaftIndex, chunkBytes, options.startAfterKey, false);
    },
    close: () => source.close(),
  };
}

function checkedChunkBytes(chunkBytes: number): number {
  if (!Number.isSafeInteger(chunkBytes) || chunkBytes < MIN_SNAPSHOT_CHUNK_BYTES || chunkBytes > SNAPSHOT_CHUNK_BYTES)
    throw new ChainError(
      ChainErrorCode.SnapshotInvalid,
      `snapshot chunk size ${chunkBytes} is outside ${MIN_SNAPSHOT_CHUNK_BYTES}..${SNAPSHOT_CHUNK_BYTES}`,
      { reason: SnapshotRefusal.Malformed },
    );
  return chunkBytes;
}

async function* generateChunks(
  source: EntrySource,
  head: Block,
  root: Uint8Array,
  appliedRaftIndex: number,
  chunkBytes: number,
  startAfterKey: Uint8Array | undefined,
  closeSource: boolean,
): AsyncGenerator<Uint8Array> {
  try {
    const block = encodeBlock(head);
    const resume = startAfterKey ?? new Uint8Array(0);
    yield new Writer(64 + resume.length)
      .u8(KIND_HEADER)
      .u8(VERSION)
      .u64(appliedRaftIndex)
      .raw(head.hash)
      .u32(block.length)
      .bytes16(resume)
      .finish();
    for (let o = 0; o < block.length; o += chunkBytes - 1)
      yield new Writer(chunkBytes)
        .u8(KIND_BLOCK)
        .raw(block.subarray(o, o + chunkBytes - 1))
        .finish();
    // Each entries chunk is written in place into a buffer of chunkBytes (no growing, no copy
    // when it is handed out): the sender's cost per byte is one copy here.
    let buf = new Uint8Array(chunkBytes);
    let view = new DataView(buf.buffer);
    let pos = ENTRIES_CHUNK_HEADER_BYTES;
    let count = 0;
    let total = 0;
    const flush = (): Uint8Array => {
      buf[0] = KIND_ENTRIES;
      view.setUint32(1, count);
      const chunk = buf.subarray(0, pos);
      buf = new Uint8Array(chunkBytes);
      view = new DataView(buf.buffer);
      pos = ENTRIES_CHUNK_HEADER_BYTES;
      count = 0;
      return chunk;
    };
    for await (const [k, v] of source.entries(startAfterKey)) {
      const size = ENTRY_FRAMING_BYTES + k.length + v.length;
      assert(
        size + ENTRIES_CHUNK_HEADER_BYTES <= chunkBytes && k.length <= 0xffff,
        () => `a state entry of ${size} bytes does not fit a chunk of ${chunkBytes}`,
      );
      if (pos + size > chunkBytes) yield flush();
      // bytes16(key) ‖ bytes32(value), big-endian lengths (as Writer writes them).
      view.setUint16(pos, k.length);
      buf.set(k, pos + 2);
      pos += 2 + k.length;
      view.setUint32(pos, v.length);
      buf.set(v, pos + 4);
      pos += 4 + v.length;
      count++;
      total++;
    }
    if (count > 0) yield flush();
    yield new Writer(48).u8(KIND_TRAILER).u64(total).raw(root).finish();
  } finally {
    if (closeSource) await source.close();
  }
}

export interface SnapshotImportOptions {
  /** Chunks over this are refused (SnapshotRefusal.ChunkTooLarge); default SNAPSHOT_CHUNK_BYTES. */
  readonly maxChunkBytes?: number;
}

interface Header {
  readonly appliedRaftIndex: number;
  readonly headHash: Uint8Array;
  readonly blockBytes: number;
  readonly resumeAfterKey: Uint8Array;
}

function parseHeader(chunk: Uint8Array): Header {
  const r = new Reader(chunk, ChainErrorCode.SnapshotInvalid, 'snapshot header');
  if (r.u8() !== KIND_HEADER) refuse(SnapshotRefusal.Malformed, 'the first chunk is not a header');
  const version = r.u8();
  if (version !== VERSION) refuse(SnapshotRefusal.Malformed, `version ${version}, this node reads ${VERSION}`);
  const h = {
    appliedRaftIndex: r.u64(),
    headHash: r.raw(32).slice(),
    blockBytes: r.u32(),
    resumeAfterKey: r.bytes16(),
  };
  r.end();
  if (h.blockBytes > MAX_BLOCK_BYTES) refuse(SnapshotRefusal.Malformed, `head block of ${h.blockBytes} bytes`);
  return { ...h, resumeAfterKey: h.resumeAfterKey.slice() };
}

function parseEntries(chunk: Uint8Array): [Uint8Array, Uint8Array][] {
  const r = new Reader(chunk, ChainErrorCode.SnapshotInvalid, 'snapshot entries');
  r.u8();
  const n = r.u32();
  // Each entry takes at least ENTRY_FRAMING_BYTES: a count that cannot fit is refused before any allocation.
  if (n * ENTRY_FRAMING_BYTES > chunk.length)
    refuse(SnapshotRefusal.Malformed, `${n} entries in ${chunk.length} bytes`);
  const out: [Uint8Array, Uint8Array][] = [];
  for (let i = 0; i < n; i++) out.push([r.bytes16(MAX_SNAPSHOT_KEY_BYTES), r.bytes32(MAX_SNAPSHOT_VALUE_BYTES)]);
  r.end();
  return out;
}

/** Reads chunks with a size check; a decoding failure becomes SnapshotRefusal.Malformed. */
async function* boundedChunks(
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  maxChunkBytes: number,
): AsyncGenerator<Uint8Array> {
  for await (const c of chunks) {
    if (c.length > maxChunkBytes)
      refuse(SnapshotRefusal.ChunkTooLarge, `a chunk of ${c.length} bytes is over maxChunkBytes=${maxChunkBytes}`);
    if (c.length === 0) refuse(SnapshotRefusal.Malformed, 'an empty chunk');
    yield c;
  }
}

/**
 * Writes a snapshot stream into `store`'s spare state slot and verifies it; returns what to pass
 * to store.installSnapshot (add the membership). Refusals are ChainError SnapshotInvalid with
 * meta.reason (SnapshotRefusal): never fatal. A refused or cut import leaves the live state
 * untouched; its progress is kept (except after a root mismatch) so the same snapshot resumes.
 */
export async function importSnapshot(
  chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>,
  store: ChainStore,
  options: SnapshotImportOptions = {},
): Promise<StoreSnapshot> {
  const maxChunkBytes = options.maxChunkBytes ?? SNAPSHOT_CHUNK_BYTES;
  const it = boundedChunks(chunks, maxChunkBytes)[Symbol.asyncIterator]();
  const next = async (what: string): Promise<Uint8Array> => {
    const r = await it.next();
    if (r.done) refuse(SnapshotRefusal.Truncated, `the stream ended before ${what}`);
    return r.value;
  };
  const header = parseHeader(await next('the header'));
  const blockBytes = new Uint8Array(header.blockBytes);
  for (let o = 0; o < header.blockBytes;) {
    const c = await next('the end of the head block');
    if (c[0] !== KIND_BLOCK) refuse(SnapshotRefusal.Malformed, 'the head block is cut short');
    if (o + c.length - 1 > header.blockBytes)
      refuse(SnapshotRefusal.Malformed, 'the head block is longer than declared');
    blockBytes.set(c.subarray(1), o);
    o += c.length - 1;
  }
  let head: Block;
  try {
    head = decodeBlock(blockBytes);
  } catch (e) {
    return refuse(SnapshotRefusal.Malformed, `head block: ${(e as Error).message}`);
  }
  if (!bytesEqual(head.hash, header.headHash))
    refuse(SnapshotRefusal.Malformed, 'the head block is not the announced one');

  const imp = await store.stateImport(head, header.appliedRaftIndex);
  let keepProgress = true;
  // One batch write may run while the next chunk is decoded and hashed (never two: LevelDB must
  // apply them in order, each with its progress record).
  let writing: Promise<void> | undefined;
  try {
    // Keys up to `floor` are already in the store (a resumed import): the stream may repeat them.
    const floor = imp.progress.lastKey;
    if (compareBytes(header.resumeAfterKey, floor) > 0)
      refuse(
        SnapshotRefusal.Malformed,
        `the stream starts after key ${toHexBare(header.resumeAfterKey)}, but this store holds keys only up to ${toHexBare(floor)}`,
      );
    let progress: StateImportProgress = { ...imp.progress, lanes: imp.progress.lanes.clone() };
    let previous = header.resumeAfterKey;
    let streamEntries = 0;
    for (;;) {
      const c = await next('the trailer');
      if (c[0] === KIND_ENTRIES) {
        const accepted: [Uint8Array, Uint8Array][] = [];
        const lanes = progress.lanes.clone();
        for (const e of parseEntries(c)) {
          streamEntries++;
          if (previous.length > 0 && compareBytes(e[0], previous) <= 0)
            refuse(SnapshotRefusal.Malformed, 'keys are not in strictly increasing order');
          previous = e[0];
          if (floor.length > 0 && compareBytes(e[0], floor) <= 0) continue; // already written
          lanes.add(e[0], e[1]);
          accepted.push(e);
        }
        if (accepted.length === 0) continue;
        progress = { lastKey: accepted[accepted.length - 1][0], entries: progress.entries + accepted.length, lanes };
        await writing;
        writing = imp.write(accepted, progress);
        writing.catch(() => undefined); // awaited before the next write (a failure is not unhandled meanwhile)
      } else if (c[0] === KIND_TRAILER) {
        const r = new Reader(c, ChainErrorCode.SnapshotInvalid, 'snapshot trailer');
        r.u8();
        const total = r.u64();
        const root = r.raw(32);
        r.end();
        const extra = await it.next();
        if (!extra.done) refuse(SnapshotRefusal.Malformed, 'data after the trailer');
        await writing;
        if (total !== streamEntries) {
          keepProgress = false;
          refuse(SnapshotRefusal.Malformed, `${streamEntries} entries in the stream, the trailer says ${total}`);
        }
        const mine = progress.lanes.root();
        if (!bytesEqual(mine, head.header.stateRoot) || !bytesEqual(mine, root)) {
          keepProgress = false;
          refuse(
            SnapshotRefusal.RootMismatch,
            `imported state root ${toHex(mine)} is not block ${head.header.number}'s ${toHex(head.header.stateRoot)}`,
          );
        }
        return { appliedRaftIndex: header.appliedRaftIndex, head, staged: await imp.finish() };
      } else {
        refuse(SnapshotRefusal.Malformed, `unexpected chunk kind ${c[0]}`);
      }
    }
  } catch (e) {
    // A write still running finishes (or fails) before the import is given up.
    await writing?.catch(() => undefined);
    await imp.abandon(keepProgress);
    throw e;
  }
}

/**
 * One buffer for Raft's Snapshot.data (the form carried in one message today): u32 length ‖ chunk,
 * repeated. Bounded by MAX_SNAPSHOT_BYTES; the streamed transport replaces it.
 */
export async function snapshotToBytes(chunks: AsyncIterable<Uint8Array> | Iterable<Uint8Array>): Promise<Uint8Array> {
  const parts: Uint8Array[] = [];
  let n = 0;
  for await (const c of chunks) {
    n += 4 + c.length;
    if (n > MAX_SNAPSHOT_BYTES)
      throw new ChainError(ChainErrorCode.SnapshotInvalid, `snapshot over MAX_SNAPSHOT_BYTES=${MAX_SNAPSHOT_BYTES}`, {
        reason: SnapshotRefusal.ChunkTooLarge,
      });
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, c.length);
    parts.push(len, c);
  }
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

export function* snapshotChunksFromBytes(
  bytes: Uint8Array,
  maxChunkBytes = SNAPSHOT_CHUNK_BYTES,
): Generator<Uint8Array> {
  const r = new Reader(bytes, ChainErrorCode.SnapshotInvalid, 'snapshot');
  while (r.remaining > 0) {
    if (r.remaining < 4) refuse(SnapshotRefusal.Truncated, 'a chunk length is cut short');
    const len = new DataView(bytes.buffer, bytes.byteOffset + bytes.length - r.remaining, 4).getUint32(0);
    if (len > maxChunkBytes)
      refuse(SnapshotRefusal.ChunkTooLarge, `a chunk of ${len} bytes is over maxChunkBytes=${maxChunkBytes}`);
    if (len + 4 > r.remaining) refuse(SnapshotRefusal.Truncated, 'the last chunk is cut short');
    yield r.bytes32(maxChunkBytes);
  }
}

/** The LtHash of a sorted entry stream (tests, tools): what an import of it would verify. */
export function ltHashOfEntries(entries: Iterable<readonly [Uint8Array, Uint8Array]>): LtHash {
  const h = new LtHash();
  for (const [k, v] of entries) h.add(k, v);
  return h;
}
