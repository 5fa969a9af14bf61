// Snapshots of the whole chain state at an applied Raft index, for Raft log compaction and for
// catching up a follower (Raft §7).
//
// Format: a sequence of chunks, each at most SNAPSHOT_CHUNK_BYTES, so it can be streamed and
// never needs one huge buffer on the receiving side until the node chooses to:
//   chunk 0  (kind 1, header):  u8 kind ‖ u8 version ‖ u64 appliedRaftIndex ‖ bytes32 head block
//                                ‖ u8 includesPrivate ‖ u64 publicEntries ‖ u64 privateEntries
//   chunks   (kind 2, entries): u8 kind ‖ u8 space (0 public, 1 private) ‖ u32 n ‖ n × (str16 key ‖ bytes32 value)
//   last     (kind 3, trailer): u8 kind ‖ [32] public root ‖ [32] private root (zeros when absent)
// Import recomputes the LtHash of what it read and checks it against the head block's stateRoot
// (and the trailer), so a truncated or altered snapshot is refused. Entry order does not matter
// to LtHash, which is why no sorting is needed.
//
// Privacy: a node's private state is its own. Include it only in snapshots this node keeps for
// itself (log compaction); a snapshot sent to a peer must be exported with includePrivate=false.
// A follower that installs such a snapshot keeps its private state as it was (at its old head),
// and store.installSnapshot records a CatchUpRecord in the same batch. The node then fetches the
// skipped blocks and their public receipts from its peers (node/catch-up.ts) and replays their
// private transactions, in chain order, with the payloads of its own transaction manager
// (QuorateNode.runCatchUp); private reads are refused until it is done. GoQuorum lost this
// private state; here it is recovered.
//
// Consistency: exportSnapshot reads the live MemoryState; consume the generator fully before the
// next ChainState.advance (snapshotToBytes does it synchronously).

import { ChainError, ChainErrorCode } from './errors.js';
import { Reader, Writer, bytesEqual, toHex, utf8 } from './codec.js';
import { ZERO_HASH } from './hash.js';
import { type Block, MAX_BLOCK_BYTES, decodeBlock, encodeBlock } from './block.js';
import { MemoryState } from './state.js';
import type { ChainState } from './executor.js';
import type { StoreSnapshot } from './store.js';

/** Target size of one chunk (an entry larger than this gets a chunk of its own). */
export const SNAPSHOT_CHUNK_BYTES = 1024 * 1024;
/** Largest whole snapshot accepted or produced: state must fit in RAM anyway (state.ts). */
export const MAX_SNAPSHOT_BYTES = 1024 * 1024 * 1024;
/** Largest value one entry may carry (bounded by the state's own limits; a little headroom). */
export const MAX_SNAPSHOT_VALUE_BYTES = 1024 * 1024;

const VERSION = 1;
const KIND_HEADER = 1;
const KIND_ENTRIES = 2;
const KIND_TRAILER = 3;

const invalid = (why: string): never => {
  throw new ChainError(ChainErrorCode.SnapshotInvalid, `snapshot: ${why}`);
};

export function* exportSnapshot(
  chain: ChainState,
  appliedRaftIndex: number,
  options: { includePrivate: boolean },
): Generator<Uint8Array> {
  const head = encodeBlock(chain.head);
  yield new Writer(head.length + 32)
    .u8(KIND_HEADER)
    .u8(VERSION)
    .u64(appliedRaftIndex)
    .bytes32(head)
    .u8(options.includePrivate ? 1 : 0)
    .u64(chain.state.size)
    .u64(options.includePrivate ? chain.privateState.size : 0)
    .finish();
  let total = 0;
  const spaces: [number, MemoryState][] = [[0, chain.state]];
  if (options.includePrivate) spaces.push([1, chain.privateState]);
  for (const [space, state] of spaces) {
    let w = new Writer(64 * 1024);
    let count = 0;
    const flush = function* (): Generator<Uint8Array> {
      if (count === 0) return;
      const body = w.finish();
      const chunk = new Writer(body.length + 6).u8(KIND_ENTRIES).u8(space).u32(count).raw(body).finish();
      total += chunk.length;
      if (total > MAX_SNAPSHOT_BYTES) invalid(`state is over MAX_SNAPSHOT_BYTES=${MAX_SNAPSHOT_BYTES}`);
      yield chunk;
      w = new Writer(64 * 1024);
      count = 0;
    };
    for (const [k, v] of state.entries()) {
      w.bytes16(utf8(k)).bytes32(v);
      count++;
      if (w.length >= SNAPSHOT_CHUNK_BYTES - 6) yield* flush();
    }
    yield* flush();
  }
  yield new Writer(65)
    .u8(KIND_TRAILER)
    .raw(chain.state.root())
    .raw(options.includePrivate ? chain.privateState.root() : ZERO_HASH)
    .finish();
}

/** Reads chunks from exportSnapshot; checks sizes, order, counts and roots. */
export function importSnapshot(chunks: Iterable<Uint8Array>): StoreSnapshot {
  let header:
    | { appliedRaftIndex: number; head: Block; includesPrivate: boolean; publicEntries: number; privateEntries: number }
    | undefined;
  const entries: [[string, Uint8Array][], [string, Uint8Array][]] = [[], []];
  let trailer: { publicRoot: Uint8Array; privateRoot: Uint8Array } | undefined;
  let total = 0;
  const dec = new TextDecoder('utf-8', { fatal: true });
  for (const chunk of chunks) {
    total += chunk.length;
    if (total > MAX_SNAPSHOT_BYTES) invalid(`over MAX_SNAPSHOT_BYTES=${MAX_SNAPSHOT_BYTES}`);
    if (trailer) invalid('data after the trailer');
    const r = new Reader(chunk, ChainErrorCode.SnapshotInvalid, 'snapshot chunk');
    const kind = r.u8();
    if (kind === KIND_HEADER) {
      if (header) invalid('two headers');
      if (r.u8() !== VERSION) invalid('unknown version');
      const appliedRaftIndex = r.u64();
      let head: Block;
      try {
        head = decodeBlock(r.bytes32(MAX_BLOCK_BYTES));
      } catch (e) {
        return invalid(`head block: ${(e as Error).message}`);
      }
      const inc = r.u8();
      if (inc > 1) invalid('includesPrivate must be 0 or 1');
      header = { appliedRaftIndex, head, includesPrivate: inc === 1, publicEntries: r.u64(), privateEntries: r.u64() };
      r.end();
    } else if (kind === KIND_ENTRIES) {
      if (!header) invalid('entries before the header');
      const space = r.u8();
      if (space > 1 || (space === 1 && !header!.includesPrivate)) invalid(`bad space ${space}`);
      const n = r.u32();
      const list = entries[space as 0 | 1];
      for (let i = 0; i < n; i++) {
        let k: string;
        try {
          k = dec.decode(r.bytes16());
        } catch (e) {
          if (e instanceof ChainError) throw e;
          return invalid('key is not UTF-8');
        }
        list.push([k, r.bytes32(MAX_SNAPSHOT_VALUE_BYTES).slice()]);
      }
      r.end();
    } else if (kind === KIND_TRAILER) {
      if (!header) invalid('trailer before the header');
      trailer = { publicRoot: r.raw(32).slice(), privateRoot: r.raw(32).slice() };
      r.end();
    } else {
      invalid(`unknown chunk kind ${kind}`);
    }
  }
  if (!header || !trailer) return invalid('truncated: no header or no trailer');
  if (entries[0].length !== header.publicEntries || entries[1].length !== header.privateEntries) {
    invalid(
      `entry counts differ from the header (${entries[0].length}/${header.publicEntries} public, ${entries[1].length}/${header.privateEntries} private)`,
    );
  }
  const state = MemoryState.fromEntries(entries[0]);
  if (state.size !== entries[0].length) invalid('duplicate public keys');
  if (!bytesEqual(state.root(), header.head.header.stateRoot) || !bytesEqual(state.root(), trailer.publicRoot)) {
    invalid(
      `public state root ${toHex(state.root())} does not match the head block's ${toHex(header.head.header.stateRoot)}`,
    );
  }
  let privateState: MemoryState | undefined;
  if (header.includesPrivate) {
    privateState = MemoryState.fromEntries(entries[1]);
    if (privateState.size !== entries[1].length) invalid('duplicate private keys');
    if (!bytesEqual(privateState.root(), trailer.privateRoot)) invalid('private state root does not match the trailer');
  }
  return {
    appliedRaftIndex: header.appliedRaftIndex,
    head: header.head,
    state,
    ...(privateState ? { privateState } : {}),
  };
}

/**
 * One buffer for Raft's Snapshot.data: u32 length ‖ chunk, repeated. Bounded by MAX_SNAPSHOT_BYTES.
 */
export function snapshotToBytes(chunks: Iterable<Uint8Array>): Uint8Array {
  const parts: Uint8Array[] = [];
  let n = 0;
  for (const c of chunks) {
    n += 4 + c.length;
    if (n > MAX_SNAPSHOT_BYTES) invalid(`over MAX_SNAPSHOT_BYTES=${MAX_SNAPSHOT_BYTES}`);
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

export function* snapshotChunksFromBytes(bytes: Uint8Array): Generator<Uint8Array> {
  if (bytes.length > MAX_SNAPSHOT_BYTES) invalid(`over MAX_SNAPSHOT_BYTES=${MAX_SNAPSHOT_BYTES}`);
  const r = new Reader(bytes, ChainErrorCode.SnapshotInvalid, 'snapshot');
  while (r.remaining > 0) yield r.bytes32(SNAPSHOT_CHUNK_BYTES + MAX_SNAPSHOT_VALUE_BYTES + 64);
}
