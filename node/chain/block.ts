// Blocks: one per Raft entry, as in GoQuorum's Raft mode.
//
// Header encoding (canonical, big-endian):
//   u8 version(1) ‖ u64 number ‖ [32] parentHash ‖ u64 timestampMs ‖ [32] txRoot ‖ [32] stateRoot
//   ‖ [32] receiptsRoot ‖ u64 minterId (Raft id) ‖ u64 raftTerm
// blockHash = keccak256(header encoding). The minter signs keccak256("quorate/block/v1" ‖ blockHash)
// with its minter key (keys.ts, purpose "minter"); every node verifies it on apply. The hash does
// not cover the signature (as a Bitcoin block id does not cover anything outside the header), and
// OpenSSL's Ed25519 verification is strict (canonical S), so one header has one valid signature.
// Block encoding: header ‖ [64] signature ‖ u32 txCount ‖ txCount × (u32 length ‖ tx encoding).
//
// Roots: txRoot = merkleRoot(tx hashes); receiptsRoot = merkleRoot(receiptLeaf of each receipt);
// stateRoot = the LtHash root of the whole public state after the block (state.ts, lthash.ts).
// Receipts and the state are application-independent containers, so another Application keeps
// these encodings (ROADMAP).

import { ChainError, ChainErrorCode } from './errors.js';
import { Reader, Writer, bigintToBytes, concatBytes, fromHex, toHex, utf8 } from './codec.js';
import { EMPTY_ROOT, type Hash, ZERO_HASH, keccak256, merkleRoot } from './hash.js';
import {
  type AccountKey,
  type Address,
  PUBLIC_KEY_BYTES,
  SIGNATURE_BYTES,
  isAddress,
  sign,
  verifySignature,
} from './keys.js';
import { MAX_AMOUNT, MAX_TX_BYTES, type Transaction, decodeTransaction } from './tx.js';
import { MemoryState, encodeU64, stateKeys } from './state.js';

export const BLOCK_VERSION = 1;
export const HEADER_BYTES = 1 + 8 + 32 + 8 + 32 + 32 + 32 + 8 + 8;

/** Most transactions in one block. Bounds apply latency per Raft entry and the minter's batch. */
export const MAX_BLOCK_TXS = 10_000;
/**
 * Largest encoded block. Kept under consensus' default maxProposalBytes (8 MiB) so a full block
 * is never refused by Raft, and small enough to replicate in a few App messages.
 */
export const MAX_BLOCK_BYTES = 4 * 1024 * 1024;

export interface BlockHeader {
  readonly version: number;
  readonly number: number;
  readonly parentHash: Hash;
  readonly timestampMs: number;
  readonly txRoot: Hash;
  readonly stateRoot: Hash;
  readonly receiptsRoot: Hash;
  /** The Raft id of the minter (0 for genesis). */
  readonly minterId: number;
  /** The minter's Raft term when it built the block (0 for genesis). */
  readonly raftTerm: number;
}

export interface Block {
  readonly header: BlockHeader;
  /** Ed25519 by the minter over the header hash; 64 zero bytes for genesis. */
  readonly signature: Uint8Array;
  readonly transactions: readonly Transaction[];
  /** keccak256 of the header encoding (cached). */
  readonly hash: Hash;
  readonly hashHex: string;
}

const BLOCK_SIGNING_DOMAIN = utf8('quorate/block/v1');

export function encodeHeader(h: BlockHeader): Uint8Array {
  return new Writer(HEADER_BYTES)
    .u8(h.version)
    .u64(h.number)
    .raw(h.parentHash)
    .u64(h.timestampMs)
    .raw(h.txRoot)
    .raw(h.stateRoot)
    .raw(h.receiptsRoot)
    .u64(h.minterId)
    .u64(h.raftTerm)
    .finish();
}

function readHeader(r: Reader): BlockHeader {
  const version = r.u8();
  if (version !== BLOCK_VERSION) r.fail(`unknown block version ${version}`);
  return {
    version,
    number: r.u64(),
    parentHash: r.raw(32).slice(),
    timestampMs: r.u64(),
    txRoot: r.raw(32).slice(),
    stateRoot: r.raw(32).slice(),
    receiptsRoot: r.raw(32).slice(),
    minterId: r.u64(),
    raftTerm: r.u64(),
  };
}

export function decodeHeader(bytes: Uint8Array): BlockHeader {
  const r = new Reader(bytes, ChainErrorCode.BlockMalformed, 'block header');
  const h = readHeader(r);
  r.end();
  return h;
}

export function blockHash(header: BlockHeader): Hash {
  return keccak256(encodeHeader(header));
}

function signingMessage(hash: Hash): Uint8Array {
  return keccak256(concatBytes([BLOCK_SIGNING_DOMAIN, hash]));
}

/** Assembles a block from a header and a signature (the hash is computed here). */
export function makeBlock(header: BlockHeader, signature: Uint8Array, transactions: readonly Transaction[]): Block {
  const hash = blockHash(header);
  return { header, signature, transactions, hash, hashHex: toHex(hash) };
}

export function signBlock(header: BlockHeader, transactions: readonly Transaction[], minterKey: AccountKey): Block {
  const hash = blockHash(header);
  return { header, signature: sign(minterKey, signingMessage(hash)), transactions, hash, hashHex: toHex(hash) };
}

/** True when `block.signature` is the signature of `minterPublicKey` over the block hash. */
export function verifyBlockSignature(block: Block, minterPublicKey: Uint8Array): boolean {
  return verifySignature(minterPublicKey, signingMessage(block.hash), block.signature);
}

export function txRootOf(transactions: readonly Transaction[]): Hash {
  return merkleRoot(transactions.map((t) => t.hash));
}

/**
 * Checks what can be checked without state: the signature against the minter's key and the
 * txRoot against the body. Returns a reason when invalid, undefined when valid.
 */
export function verifyBlock(block: Block, minterPublicKey: Uint8Array | undefined): string | undefined {
  if (block.header.version !== BLOCK_VERSION) return `unknown block version ${block.header.version}`;
  if (minterPublicKey === undefined) return `minter ${block.header.minterId} is not a known member`;
  if (!verifyBlockSignature(block, minterPublicKey)) return `bad minter signature (minter ${block.header.minterId})`;
  if (block.transactions.length > MAX_BLOCK_TXS)
    return `${block.transactions.length} transactions is over MAX_BLOCK_TXS=${MAX_BLOCK_TXS}`;
  const root = txRootOf(block.transactions);
  if (toHex(root) !== toHex(block.header.txRoot)) return 'txRoot does not match the body';
  return undefined;
}

export function encodeBlock(block: Block): Uint8Array {
  const w = new Writer(
    HEADER_BYTES + SIGNATURE_BYTES + 4 + block.transactions.reduce((n, t) => n + 4 + t.encoded.length, 0),
  );
  w.raw(encodeHeader(block.header)).raw(block.signature).u32(block.transactions.length);
  for (const t of block.transactions) w.bytes32(t.encoded);
  const out = w.finish();
  if (out.length > MAX_BLOCK_BYTES)
    throw new ChainError(
      ChainErrorCode.BlockTooLarge,
      `block of ${out.length} bytes is over MAX_BLOCK_BYTES=${MAX_BLOCK_BYTES}`,
    );
  return out;
}

/** Strict decode (transactions are decoded strictly too; signatures are not verified here). */
export function decodeBlock(bytes: Uint8Array): Block {
  if (bytes.length > MAX_BLOCK_BYTES)
    throw new ChainError(
      ChainErrorCode.BlockTooLarge,
      `block of ${bytes.length} bytes is over MAX_BLOCK_BYTES=${MAX_BLOCK_BYTES}`,
    );
  const r = new Reader(bytes, ChainErrorCode.BlockMalformed, 'block');
  const header = readHeader(r);
  const signature = r.raw(SIGNATURE_BYTES).slice();
  const n = r.u32();
  if (n > MAX_BLOCK_TXS)
    throw new ChainError(ChainErrorCode.BlockTooLarge, `${n} transactions is over MAX_BLOCK_TXS=${MAX_BLOCK_TXS}`);
  const transactions: Transaction[] = [];
  for (let i = 0; i < n; i++) {
    const txBytes = r.bytes32(MAX_TX_BYTES);
    try {
      transactions.push(decodeTransaction(txBytes));
    } catch (e) {
      if (e instanceof ChainError)
        throw new ChainError(
          ChainErrorCode.BlockMalformed,
          `malformed block: transaction ${i}: ${e.message}`,
          { index: i },
          { cause: e },
        );
      throw e;
    }
  }
  r.end();
  return makeBlock(header, signature, transactions);
}

/**
 * The `index`-th transaction of an encoded block, decoding only that one (RPC lookups by hash
 * must not decode a whole block of thousands of transactions). Undefined when out of range.
 */
export function decodeBlockTransaction(bytes: Uint8Array, index: number): Transaction | undefined {
  const r = new Reader(bytes, ChainErrorCode.BlockMalformed, 'block');
  r.raw(HEADER_BYTES + SIGNATURE_BYTES);
  const n = r.u32();
  if (!Number.isSafeInteger(index) || index < 0 || index >= n) return undefined;
  for (let i = 0; i < index; i++) r.bytes32(MAX_TX_BYTES);
  return decodeTransaction(r.bytes32(MAX_TX_BYTES));
}

// --- JSON view -----------------------------------------------------------------------------------

export interface BlockJson {
  number: string;
  hash: string;
  parentHash: string;
  timestamp: string;
  timestampMs: number;
  transactionsRoot: string;
  stateRoot: string;
  receiptsRoot: string;
  minter: number;
  raftTerm: string;
  signature: string;
  /** tx hashes, or full objects (built by the caller with txToJson) when fullTx. */
  transactions: unknown[];
}

const quantity = (n: number): string => '0x' + n.toString(16);

/** eth_getBlockBy* view. `timestamp` is in seconds as in Ethereum; `timestampMs` keeps the ms. */
export function blockToJson(
  block: Block,
  fullTx: (tx: Transaction, index: number) => unknown = (tx) => tx.hashHex,
): BlockJson {
  const h = block.header;
  return {
    number: quantity(h.number),
    hash: block.hashHex,
    parentHash: toHex(h.parentHash),
    timestamp: quantity(Math.floor(h.timestampMs / 1000)),
    timestampMs: h.timestampMs,
    transactionsRoot: toHex(h.txRoot),
    stateRoot: toHex(h.stateRoot),
    receiptsRoot: toHex(h.receiptsRoot),
    minter: h.minterId,
    raftTerm: quantity(h.raftTerm),
    signature: toHex(block.signature),
    transactions: block.transactions.map((t, i) => fullTx(t, i)),
  };
}

// --- genesis -------------------------------------------------------------------------------------

export interface GenesisMember {
  readonly raftId: number;
  /** The member's minter (block-signing) public key, 32 bytes. */
  readonly minterPublicKey: Uint8Array;
}

/**
 * Who verifies transaction signatures when a block is applied:
 *  - 'every-node' (default): each node verifies every transaction it has not verified before
 *    (in its pool); a block with a bad signature is a no-op everywhere.
 *  - 'minter-only': followers trust the minter's block signature, which covers the txRoot and so
 *    every transaction's bytes; only the minter (buildBlock) and the pools verify. This matches
 *    Raft's crash-fault model (the leader is trusted to replicate what it was given) and saves one
 *    Ed25519 verification per transaction per follower (docs/stack.md: the cluster's main CPU cost).
 * It is part of genesis (and of the genesis hash), so every node of a chain uses the same rule —
 * nodes that differed would diverge on a block with a bad signature.
 */
export type TxSignatureCheck = 'every-node' | 'minter-only';

export interface GenesisConfig {
  readonly chainId: number;
  readonly timestampMs: number;
  /** Initial balances. */
  readonly alloc: ReadonlyMap<Address, bigint>;
  readonly members: readonly GenesisMember[];
  /** Absent = 'every-node'. */
  readonly txSignatureCheck?: TxSignatureCheck;
}

const DECIMAL_RE = /^(0|[1-9][0-9]*)$/;

/**
 * Parses genesis.json:
 *   { "chainId": 1337, "timestampMs": 0,
 *     "alloc": { "0x<address>": { "balance": "1000000" } },   (or "0x<address>": "1000000")
 *     "members": [ { "raftId": 1, "minterPublicKey": "0x<32 bytes hex>", ...other fields ignored } ],
 *     "txSignatureCheck": "every-node" | "minter-only" }   (optional, default "every-node")
 * Other top-level fields (written by `quorate init` for the node layer) are ignored here.
 * Throws ChainError GenesisInvalid naming the bad field.
 */
export function parseGenesis(json: unknown): GenesisConfig {
  const bad = (why: string): never => {
    throw new ChainError(ChainErrorCode.GenesisInvalid, `genesis.json: ${why}`);
  };
  if (typeof json !== 'object' || json === null) bad('not an object');
  const g = json as Record<string, unknown>;
  if (!Number.isSafeInteger(g.chainId) || (g.chainId as number) < 0) bad('chainId must be a non-negative integer');
  const timestampMs = g.timestampMs ?? 0;
  if (!Number.isSafeInteger(timestampMs) || (timestampMs as number) < 0)
    bad('timestampMs must be a non-negative integer');
  const alloc = new Map<Address, bigint>();
  const rawAlloc = g.alloc ?? {};
  if (typeof rawAlloc !== 'object' || rawAlloc === null || Array.isArray(rawAlloc))
    bad('alloc must be an object of address → balance');
  for (const [addr, v] of Object.entries(rawAlloc as Record<string, unknown>)) {
    const a = addr.toLowerCase();
    if (!isAddress(a)) bad(`alloc: ${addr} is not a 0x address of 20 bytes`);
    const bal = typeof v === 'object' && v !== null ? (v as { balance?: unknown }).balance : v;
    if (typeof bal !== 'string' || !DECIMAL_RE.test(bal) || bal.length > 78 || BigInt(bal) > MAX_AMOUNT)
      bad(`alloc ${addr}: balance must be a decimal string of an unsigned 256-bit integer`);
    if (alloc.has(a)) bad(`alloc: ${addr} appears twice`);
    alloc.set(a, BigInt(bal as string));
  }
  if (!Array.isArray(g.members) || g.members.length === 0) bad('members must be a non-empty array');
  const seen = new Set<number>();
  const members = (g.members as unknown[]).map((m, i): GenesisMember => {
    const o = (typeof m === 'object' && m !== null ? m : {}) as Record<string, unknown>;
    if (!Number.isSafeInteger(o.raftId) || (o.raftId as number) < 1)
      bad(`members[${i}].raftId must be an integer >= 1`);
    if (seen.has(o.raftId as number)) bad(`members[${i}].raftId ${String(o.raftId)} appears twice`);
    seen.add(o.raftId as number);
    const key = typeof o.minterPublicKey === 'string' ? fromHex(o.minterPublicKey, PUBLIC_KEY_BYTES) : undefined;
    if (!key) bad(`members[${i}].minterPublicKey must be 0x-hex of 32 bytes`);
    return { raftId: o.raftId as number, minterPublicKey: key as Uint8Array };
  });
  const txSignatureCheck = g.txSignatureCheck ?? 'every-node';
  if (txSignatureCheck !== 'every-node' && txSignatureCheck !== 'minter-only')
    bad('txSignatureCheck must be "every-node" or "minter-only"');
  return {
    chainId: g.chainId as number,
    timestampMs: timestampMs as number,
    alloc,
    members,
    txSignatureCheck: txSignatureCheck as TxSignatureCheck,
  };
}

/** The genesis state: balances, the members' minter keys, the chain id and the signature rule (the genesis root commits to them). */
export function genesisState(cfg: GenesisConfig): MemoryState {
  const entries: [string, Uint8Array][] = [];
  for (const [addr, bal] of [...cfg.alloc].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (bal > 0n) entries.push([stateKeys.balance(addr), bigintToBytes(bal)]);
  }
  for (const m of cfg.members) entries.push([stateKeys.member(m.raftId), Uint8Array.from(m.minterPublicKey)]);
  entries.push([stateKeys.chainId(), encodeU64(cfg.chainId)]);
  // Only the non-default rule is written, so chains that never set it keep their genesis hash.
  if (cfg.txSignatureCheck === 'minter-only') entries.push([stateKeys.txSignatureCheck(), utf8(cfg.txSignatureCheck)]);
  return MemoryState.fromEntries(entries);
}

/** Block 0: deterministic from genesis.json; unsigned (signature = 64 zero bytes). */
export function genesisBlock(cfg: GenesisConfig): { block: Block; state: MemoryState } {
  const state = genesisState(cfg);
  const header: BlockHeader = {
    version: BLOCK_VERSION,
    number: 0,
    parentHash: ZERO_HASH,
    timestampMs: cfg.timestampMs,
    txRoot: EMPTY_ROOT,
    stateRoot: state.root(),
    receiptsRoot: EMPTY_ROOT,
    minterId: 0,
    raftTerm: 0,
  };
  return { block: makeBlock(header, new Uint8Array(SIGNATURE_BYTES), []), state };
}
