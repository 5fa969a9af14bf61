// Catching up after a snapshot install: the blocks a snapshot skipped, fetched from peers.
//
// A follower that fell behind the leader's compacted log installs a Raft snapshot (Raft §7): the
// membership and the PUBLIC state at the snapshot's head, never private state (a node's private
// state is its own). It then lacks (1) the blocks between its old head and the snapshot's head,
// and (2) the effects of the private transactions in those blocks on its private state. This
// module is the p2p side of (1):
//
//   requester                                         any member holding the blocks
//   requestBlockRange(from, to) ── "blocks" ──────►   serveBlockRange: the top of [from, to],
//                               ◄── blocks+receipts   at most BLOCK_RANGE_MAX_BLOCKS / _BYTES
//   verifyBlockRange: the top block's hash is the one this node expects (the snapshot's head, whose
//   header it holds, or the parentHash of a block it holds), each block's hash is its successor's
//   parentHash, and its tx root and receipts root match its body and the receipts sent. Then ChainStore.storeBackfilledBlocks writes them, without touching
//   the state.
//
// Only public data travels: the block bodies (a private transaction's body is its payload hash)
// and the PUBLIC receipts, whose root is in each header. Private receipts and private state are
// never served. (2), the private replay, is the node's (node.ts, runCatchUp): each node re-reads
// its own payloads from its own transaction manager.
//
// Fetched from the top down because the top is what this node can trust: the snapshot's head came
// through Raft; a block hashes to its successor's parentHash, so a verified chain of hashes from
// it authenticates every header below (keccak-256), and each header's roots authenticate the body
// and the receipts. The minter's signature is not needed for that, and a block minted by a member
// removed since could not be checked anyway (its key is not in the current membership).

import {
  ChainError,
  ChainErrorCode,
  MAX_BLOCK_BYTES,
  MAX_BLOCK_TXS,
  Reader,
  Writer,
  bytesEqual,
  decodeBlock,
  decodeReceipt,
  encodeBlock,
  encodeReceipt,
  receiptsRoot,
  toHex,
  txRootOf,
  type BackfilledBlock,
  type Block,
  type Receipt,
} from './chain/index.js';
import type { PeerTransport } from '../p2p/transport.js';

/** The p2p channel of block-range requests. */
export const CHANNEL_BLOCKS = 'blocks';
/** Most blocks in one reply: a bound on the server's reads per request and on one store batch. */
export const BLOCK_RANGE_MAX_BLOCKS = 128;
/**
 * Most bytes of one reply. Under the p2p frame limit (16 MiB by default) with room for one whole
 * block at MAX_BLOCK_BYTES plus its receipts (MAX_BLOCK_TXS × ~550 B), which a reply always
 * carries even when it alone is over this budget.
 */
export const BLOCK_RANGE_MAX_REPLY_BYTES = 12 * 1024 * 1024;
/** How long one block-range request may take before the next peer is asked. */
export const BLOCK_RANGE_REQUEST_TIMEOUT_MS = 10_000;
/** Pause after every member failed to serve a range (doubles up to the max). */
export const BACKFILL_RETRY_BASE_MS = 200;
export const BACKFILL_RETRY_MAX_MS = 5_000;

const REQUEST_VERSION = 1;
const REQUEST_BYTES = 1 + 8 + 8;
const STATUS_OK = 0;
const STATUS_ERROR = 1;
/** Largest receipt encoding (receipt.ts: 1 + 32 + 1 + 1 + 2 + MAX_REASON_BYTES), with headroom. */
const MAX_RECEIPT_BYTES = 1024;
/** Longest error message carried back to a requester. */
const MAX_ERROR_MESSAGE_CHARS = 512;

export enum BlockRangeErrorCode {
  /** The requesting peer is not a member of the replicated membership. */
  NotAMember = 'BLOCK_RANGE_NOT_A_MEMBER',
  /** The request does not decode, or its range is empty or reversed. */
  Malformed = 'BLOCK_RANGE_MALFORMED',
  /** The serving node does not hold the top block of the range (it is behind, or catching up itself): ask another member. */
  NotHeld = 'BLOCK_RANGE_NOT_HELD',
  /** The reply does not decode or does not verify: the peer sent something else than the chain (ask another). */
  BadReply = 'BLOCK_RANGE_BAD_REPLY',
}

export class BlockRangeError extends Error {
  constructor(
    readonly code: BlockRangeErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'BlockRangeError';
  }
}

export interface BlockRangeRequest {
  /** Lowest block wanted. */
  readonly from: number;
  /** Highest block wanted (inclusive). */
  readonly to: number;
}

export function encodeBlockRangeRequest(r: BlockRangeRequest): Uint8Array {
  return new Writer(REQUEST_BYTES).u8(REQUEST_VERSION).u64(r.from).u64(r.to).finish();
}

/** Runs a decoder on the shared Reader, its ChainError turned into a BlockRangeError of `code`. */
function decodeAs<T>(code: BlockRangeErrorCode, decode: () => T): T {
  try {
    return decode();
  } catch (err) {
    if (err instanceof ChainError) throw new BlockRangeError(code, err.message);
    throw err;
  }
}

export function decodeBlockRangeRequest(data: Uint8Array): BlockRangeRequest {
  if (data.length !== REQUEST_BYTES)
    throw new BlockRangeError(
      BlockRangeErrorCode.Malformed,
      `a block-range request is ${REQUEST_BYTES} bytes, got ${data.length}`,
    );
  if (data[0] !== REQUEST_VERSION)
    throw new BlockRangeError(BlockRangeErrorCode.Malformed, `unknown block-range request version ${data[0]}`);
  const r = new Reader(data.subarray(1), ChainErrorCode.BlockMalformed, 'block-range request');
  const [from, to] = decodeAs(BlockRangeErrorCode.Malformed, () => [r.u64(), r.u64()]);
  if (from > to)
    throw new BlockRangeError(BlockRangeErrorCode.Malformed, `empty range: from ${from} is above to ${to}`);
  return { from, to };
}

/** What a serving node reads: its replicated membership and its store. */
export interface BlockRangeSource {
  isMember(peerId: string): boolean;
  /** The serving node's head number. */
  head(): number;
  getBlock(number: number): Promise<Block | undefined>;
  getReceipt(txHash: Uint8Array): Promise<Receipt | undefined>;
}

/**
 * The serving side. Answers the TOP of the requested range (the requester verifies from the top
 * down): at most BLOCK_RANGE_MAX_BLOCKS blocks and BLOCK_RANGE_MAX_REPLY_BYTES (always at least
 * one block), fewer if this node lacks a block below the top (it is catching up itself). Never
 * throws: a refusal is an error reply.
 */
export async function serveBlockRange(source: BlockRangeSource, from: string, data: Uint8Array): Promise<Uint8Array> {
  try {
    if (!source.isMember(from))
      throw new BlockRangeError(BlockRangeErrorCode.NotAMember, 'blocks are served to members only');
    const req = decodeBlockRangeRequest(data);
    if (req.to > source.head())
      throw new BlockRangeError(
        BlockRangeErrorCode.NotHeld,
        `block ${req.to} is above this node's head ${source.head()}`,
      );
    const entries: Array<{ block: Uint8Array; receipts: Uint8Array[] }> = [];
    let bytes = 1 + 4;
    for (let n = req.to; n >= req.from && entries.length < BLOCK_RANGE_MAX_BLOCKS; n--) {
      const block = await source.getBlock(n);
      if (!block) break; // not held here (this node installed a snapshot too): serve what is above
      const receipts: Uint8Array[] = [];
      for (const tx of block.transactions) {
        const r = await source.getReceipt(tx.hash);
        if (!r) break; // a snapshot's head is held without its receipts until fetched
        receipts.push(encodeReceipt(r));
      }
      if (receipts.length !== block.transactions.length) break;
      const entry = { block: encodeBlock(block), receipts };
      const size = 4 + entry.block.length + 4 + receipts.reduce((sum, r) => sum + 4 + r.length, 0);
      if (entries.length > 0 && bytes + size > BLOCK_RANGE_MAX_REPLY_BYTES) break;
      entries.push(entry);
      bytes += size;
    }
    if (entries.length === 0)
      throw new BlockRangeError(BlockRangeErrorCode.NotHeld, `block ${req.to} is not held here`);
    // status ‖ u32 count ‖ per block, ascending: bytes32 block ‖ u32 receipt count ‖ bytes32 receipts
    const w = new Writer(bytes).u8(STATUS_OK).u32(entries.length);
    for (const e of entries.reverse()) {
      w.bytes32(e.block).u32(e.receipts.length);
      for (const r of e.receipts) w.bytes32(r);
    }
    return w.finish();
  } catch (err) {
    const e =
      err instanceof BlockRangeError
        ? err
        : new BlockRangeError(
            BlockRangeErrorCode.NotHeld,
            `could not read the blocks: ${err instanceof Error ? err.message : String(err)}`,
          );
    const body = new TextEncoder().encode(
      JSON.stringify({ code: e.code, message: e.message.slice(0, MAX_ERROR_MESSAGE_CHARS) }),
    );
    const out = new Uint8Array(1 + body.length);
    out[0] = STATUS_ERROR;
    out.set(body, 1);
    return out;
  }
}

/** Decodes a reply (ascending blocks with their receipts). Throws BlockRangeError: the peer's refusal, or BadReply. */
export function decodeBlockRangeReply(data: Uint8Array): BackfilledBlock[] {
  const bad = (why: string): never => {
    throw new BlockRangeError(BlockRangeErrorCode.BadReply, `block-range reply: ${why}`);
  };
  if (data.length < 1) bad('empty');
  if (data[0] === STATUS_ERROR) {
    let parsed: { code?: unknown; message?: unknown };
    try {
      parsed = JSON.parse(new TextDecoder().decode(data.subarray(1))) as { code?: unknown; message?: unknown };
    } catch {
      return bad('undecodable error');
    }
    if (typeof parsed !== 'object' || parsed === null) return bad('error reply is not an object');
    const code = (Object.values(BlockRangeErrorCode) as unknown[]).includes(parsed.code)
      ? (parsed.code as BlockRangeErrorCode)
      : BlockRangeErrorCode.BadReply;
    throw new BlockRangeError(code, `peer refused: ${String(parsed.message).slice(0, MAX_ERROR_MESSAGE_CHARS)}`);
  }
  if (data[0] !== STATUS_OK) bad(`unknown status ${data[0]}`);
  const r = new Reader(data.subarray(1), ChainErrorCode.BlockMalformed, 'block-range reply');
  return decodeAs(BlockRangeErrorCode.BadReply, () => {
    const count = r.u32();
    if (count === 0 || count > BLOCK_RANGE_MAX_BLOCKS) r.fail(`${count} blocks (1..${BLOCK_RANGE_MAX_BLOCKS} allowed)`);
    const out: BackfilledBlock[] = [];
    for (let i = 0; i < count; i++) {
      const block = decodeBlock(r.bytes32(MAX_BLOCK_BYTES));
      const n = r.u32();
      if (n > MAX_BLOCK_TXS) r.fail(`${n} receipts is over MAX_BLOCK_TXS`);
      const receipts: Receipt[] = [];
      for (let j = 0; j < n; j++) receipts.push(decodeReceipt(r.bytes32(MAX_RECEIPT_BYTES)));
      out.push({ block, receipts });
    }
    r.end();
    return out;
  });
}

/** The block a reply must end with: its number and hash, known from a block this node holds. */
export interface RangeTop {
  readonly number: number;
  readonly hash: Uint8Array;
}

/** The top for blocks below a held block: its parent. */
export function parentOf(block: Block): RangeTop {
  return { number: block.header.number - 1, hash: block.header.parentHash };
}

/**
 * Checks fetched blocks (ascending): the last one is `top`, each one's hash is the next one's
 * parentHash, numbers are consecutive, nothing is at or below `floor`; each body matches its
 * txRoot and the receipts match the receiptsRoot (so they are the public receipts every node
 * computed). Throws BadReply.
 */
export function verifyBlockRange(blocks: readonly BackfilledBlock[], top: RangeTop, floor: number): void {
  const bad = (why: string): never => {
    throw new BlockRangeError(BlockRangeErrorCode.BadReply, `block-range reply does not verify: ${why}`);
  };
  if (blocks.length === 0) bad('no blocks');
  let expectedHash = top.hash;
  let expectedNumber = top.number;
  for (let i = blocks.length - 1; i >= 0; i--) {
    const { block, receipts } = blocks[i];
    const n = block.header.number;
    if (n !== expectedNumber) bad(`block number ${n}, expected ${expectedNumber}`);
    if (n <= floor) bad(`block ${n} is at or below ${floor}, which this node already holds`);
    if (!bytesEqual(block.hash, expectedHash))
      bad(`block ${n} hashes to ${block.hashHex}, its successor names ${toHex(expectedHash)}`);
    if (!bytesEqual(txRootOf(block.transactions), block.header.txRoot))
      bad(`block ${n}: body does not match its txRoot`);
    if (receipts.length !== block.transactions.length)
      bad(`block ${n}: ${receipts.length} receipts for ${block.transactions.length} transactions`);
    for (let j = 0; j < receipts.length; j++) {
      if (!bytesEqual(receipts[j].txHash, block.transactions[j].hash))
        bad(`block ${n}: receipt ${j} is for another transaction`);
    }
    if (!bytesEqual(receiptsRoot(receipts), block.header.receiptsRoot))
      bad(`block ${n}: receipts do not match its receiptsRoot`);
    expectedHash = block.header.parentHash;
    expectedNumber = n - 1;
  }
}

/** Asks one peer for blocks [from, to]; resolves with what it served (the top of the range, ascending), unverified. */
export async function requestBlockRange(
  transport: PeerTransport,
  peerId: string,
  range: BlockRangeRequest,
  signal?: AbortSignal,
): Promise<BackfilledBlock[]> {
  const reply = await transport.request(peerId, CHANNEL_BLOCKS, encodeBlockRangeRequest(range), {
    timeoutMs: BLOCK_RANGE_REQUEST_TIMEOUT_MS,
    signal,
  });
  return decodeBlockRangeReply(reply);
}
