// Transactions: the native, versioned format of docs/interface.md's ledger, signed with Ed25519.
//
// Canonical encoding (all integers big-endian; see codec.ts):
//   u8   type               TxType; the first byte so that later formats (ROADMAP: Ethereum typed
//                           transactions, whose first byte is < 0x7f) can sit beside this one
//   u64  chainId            replay protection across chains
//   [20] from               address = last 20 bytes of keccak256(publicKey)
//   [32] publicKey          raw Ed25519 public key
//   u64  nonce              per account, starts at 0, must equal the account's nonce when applied
//   u8   flags              bit 0: private; other bits must be 0
//   if private:
//     [64] privatePayloadHash   SHA3-512 of the ciphertext, from the transaction manager
//     u8   n, n × [32]         privateFor: recipients' enclave public keys (optional, may be 0)
//   u16  opCount, ops       ops (0 when private: a private tx's ops are its private payload)
//   [64] signature          Ed25519 over "quorate/tx/v1" ‖ all bytes above (Ed25519 hashes its
//                           message with SHA-512 itself; pre-hashing with keccak would only add cost)
// Op encoding: u8 opcode, then per op:
//   transfer: [20] to, biguint amount | put: str16 key, str32 value | delete: str16 key
//   cas: str16 key, u8 hasExpect (0|1), [str32 expect], str32 value | append: str16 key, str32 value
// hash = keccak256(whole encoding). Ed25519 (RFC 8032, OpenSSL) signatures are deterministic and
// verification is strict, so a transaction has one encoding and one hash.

import { ChainError, ChainErrorCode, assert } from './errors.js';
import { Reader, Writer, bytesEqual, fromHex, toHex, toHexBare, utf8, utf8Length } from './codec.js';
import { type Hash, keccak256 } from './hash.js';
import {
  ADDRESS_BYTES,
  PUBLIC_KEY_BYTES,
  SIGNATURE_BYTES,
  type AccountKey,
  type Address,
  addressToBytes,
  cachedAddressOf,
  isAddress,
  sign,
  verifySignature,
} from './keys.js';

// --- limits ------------------------------------------------------------------------------------
/** Largest encoded transaction. Bounds pool memory per tx and the work of one decode. */
export const MAX_TX_BYTES = 64 * 1024;
/** Most ops in one transaction (public, or in one private payload). */
export const MAX_OPS_PER_TX = 64;
/** Largest key of put/delete/cas/append, in UTF-8 bytes. */
export const MAX_KEY_BYTES = 256;
/** Largest value (put/cas/append, and cas's expected value), in UTF-8 bytes. */
export const MAX_VALUE_BYTES = 16 * 1024;
/** Most recipients in privateFor. */
export const MAX_PRIVATE_FOR = 32;
/** Amounts are unsigned 256-bit integers, as in Ethereum. */
export const MAX_AMOUNT_BYTES = 32;
export const MAX_AMOUNT = (1n << 256n) - 1n;
/** Largest private payload (the encoded ops): same bound as a transaction. */
export const MAX_PRIVATE_PAYLOAD_BYTES = MAX_TX_BYTES;

export const PRIVATE_PAYLOAD_HASH_BYTES = 64;
export const ENCLAVE_KEY_BYTES = 32;

export enum TxType {
  /** The native ledger transaction of this file, version 1. */
  LedgerV1 = 0x01,
}

export enum OpCode {
  Transfer = 1,
  Put = 2,
  Delete = 3,
  Cas = 4,
  Append = 5,
}

export type Op =
  | { readonly type: 'transfer'; readonly to: Address; readonly amount: bigint }
  | { readonly type: 'put'; readonly key: string; readonly value: string }
  | { readonly type: 'delete'; readonly key: string }
  | { readonly type: 'cas'; readonly key: string; readonly expect: string | null; readonly value: string }
  | { readonly type: 'append'; readonly key: string; readonly value: string };

export interface UnsignedTransaction {
  readonly type: TxType;
  readonly chainId: number;
  readonly from: Address;
  readonly publicKey: Uint8Array;
  readonly nonce: number;
  /** Empty for a private transaction. */
  readonly ops: readonly Op[];
  readonly privateFor?: readonly Uint8Array[];
  /** Present iff the transaction is private. */
  readonly privatePayloadHash?: Uint8Array;
}

export interface Transaction extends UnsignedTransaction {
  readonly signature: Uint8Array;
  /** The canonical encoding (cached: it is what blocks carry and what is hashed). */
  readonly encoded: Uint8Array;
  readonly hash: Hash;
  /** '0x' + hex of `hash`: the id used by the pool, caches, RPC and the store. */
  readonly hashHex: string;
}

export function isPrivate(tx: UnsignedTransaction): boolean {
  return tx.privatePayloadHash !== undefined;
}

const TX_SIGNING_DOMAIN = utf8('quorate/tx/v1');
const FLAG_PRIVATE = 0x01;

// --- ops -----------------------------------------------------------------------------------------

function malformed(message: string, meta: Record<string, unknown> = {}): never {
  throw new ChainError(ChainErrorCode.TxMalformed, message, meta);
}

function tooLarge(message: string, meta: Record<string, unknown> = {}): never {
  throw new ChainError(ChainErrorCode.TxTooLarge, message, meta);
}

function checkKey(key: unknown): void {
  if (typeof key !== 'string') malformed('op key must be a string');
  // A lone surrogate would be encoded as U+FFFD: what is signed would differ from what was asked.
  if (!key.isWellFormed()) malformed('op key is not well-formed Unicode (lone surrogate)');
  if (utf8Length(key) > MAX_KEY_BYTES)
    tooLarge(`key of ${utf8Length(key)} bytes is over MAX_KEY_BYTES=${MAX_KEY_BYTES}`);
}

function checkValue(value: unknown, field = 'value'): void {
  if (typeof value !== 'string') malformed(`op ${field} must be a string`);
  if (!value.isWellFormed()) malformed(`op ${field} is not well-formed Unicode (lone surrogate)`);
  if (utf8Length(value) > MAX_VALUE_BYTES)
    tooLarge(`${field} of ${utf8Length(value)} bytes is over MAX_VALUE_BYTES=${MAX_VALUE_BYTES}`);
}

/** Checks an op list against the limits; throws ChainError TxMalformed / TxTooLarge. */
export function checkOps(ops: readonly Op[]): void {
  if (!Array.isArray(ops)) malformed('ops must be an array');
  if (ops.length > MAX_OPS_PER_TX) tooLarge(`${ops.length} ops is over MAX_OPS_PER_TX=${MAX_OPS_PER_TX}`);
  for (const op of ops) {
    switch (op?.type) {
      case 'transfer':
        if (!isAddress(op.to)) malformed(`transfer.to is not a lowercase 0x address: ${String(op.to)}`);
        if (typeof op.amount !== 'bigint' || op.amount < 0n || op.amount > MAX_AMOUNT)
          malformed('transfer.amount must be an unsigned 256-bit integer');
        break;
      case 'put':
      case 'append':
        checkKey(op.key);
        checkValue(op.value);
        break;
      case 'delete':
        checkKey(op.key);
        break;
      case 'cas':
        checkKey(op.key);
        if (op.expect !== null) checkValue(op.expect, 'expect');
        checkValue(op.value);
        break;
      default:
        malformed(`unknown op type: ${String((op as { type?: unknown } | undefined)?.type)}`);
    }
  }
}

function writeOps(w: Writer, ops: readonly Op[]): void {
  w.u16(ops.length);
  for (const op of ops) {
    switch (op.type) {
      case 'transfer':
        w.u8(OpCode.Transfer).raw(addressToBytes(op.to)).biguint(op.amount);
        break;
      case 'put':
        w.u8(OpCode.Put).str16(op.key).str32(op.value);
        break;
      case 'delete':
        w.u8(OpCode.Delete).str16(op.key);
        break;
      case 'cas':
        w.u8(OpCode.Cas).str16(op.key);
        if (op.expect === null) w.u8(0);
        else w.u8(1).str32(op.expect);
        w.str32(op.value);
        break;
      case 'append':
        w.u8(OpCode.Append).str16(op.key).str32(op.value);
        break;
    }
  }
}

function readOps(r: Reader): Op[] {
  const n = r.u16();
  if (n > MAX_OPS_PER_TX) tooLarge(`${n} ops is over MAX_OPS_PER_TX=${MAX_OPS_PER_TX}`);
  const ops: Op[] = [];
  for (let i = 0; i < n; i++) {
    const code = r.u8();
    switch (code) {
      case OpCode.Transfer:
        ops.push({ type: 'transfer', to: toHex(r.raw(ADDRESS_BYTES)), amount: r.biguint(MAX_AMOUNT_BYTES) });
        break;
      case OpCode.Put:
        ops.push({ type: 'put', key: r.str16(MAX_KEY_BYTES), value: r.str32(MAX_VALUE_BYTES) });
        break;
      case OpCode.Delete:
        ops.push({ type: 'delete', key: r.str16(MAX_KEY_BYTES) });
        break;
      case OpCode.Cas: {
        const key = r.str16(MAX_KEY_BYTES);
        const has = r.u8();
        if (has > 1) r.fail('cas.hasExpect must be 0 or 1');
        const expect = has === 1 ? r.str32(MAX_VALUE_BYTES) : null;
        ops.push({ type: 'cas', key, expect, value: r.str32(MAX_VALUE_BYTES) });
        break;
      }
      case OpCode.Append:
        ops.push({ type: 'append', key: r.str16(MAX_KEY_BYTES), value: r.str32(MAX_VALUE_BYTES) });
        break;
      default:
        r.fail(`unknown op code ${code}`);
    }
  }
  return ops;
}

const PRIVATE_PAYLOAD_VERSION = 1;

/** The private payload handed to the transaction manager: u8 version ‖ ops. */
export function encodePrivatePayload(ops: readonly Op[]): Uint8Array {
  checkOps(ops);
  const w = new Writer(64);
  w.u8(PRIVATE_PAYLOAD_VERSION);
  writeOps(w, ops);
  const out = w.finish();
  if (out.length > MAX_PRIVATE_PAYLOAD_BYTES)
    tooLarge(`private payload of ${out.length} bytes is over MAX_PRIVATE_PAYLOAD_BYTES=${MAX_PRIVATE_PAYLOAD_BYTES}`);
  return out;
}

export function decodePrivatePayload(bytes: Uint8Array): Op[] {
  if (bytes.length > MAX_PRIVATE_PAYLOAD_BYTES)
    tooLarge(`private payload of ${bytes.length} bytes is over MAX_PRIVATE_PAYLOAD_BYTES=${MAX_PRIVATE_PAYLOAD_BYTES}`);
  const r = new Reader(bytes, ChainErrorCode.TxMalformed, 'private payload');
  const v = r.u8();
  if (v !== PRIVATE_PAYLOAD_VERSION) r.fail(`unknown private payload version ${v}`);
  const ops = readOps(r);
  r.end();
  return ops;
}

// --- transactions --------------------------------------------------------------------------------

function writeUnsigned(w: Writer, tx: UnsignedTransaction): void {
  w.u8(tx.type).u64(tx.chainId).raw(addressToBytes(tx.from)).raw(tx.publicKey).u64(tx.nonce);
  if (tx.privatePayloadHash !== undefined) {
    w.u8(FLAG_PRIVATE).raw(tx.privatePayloadHash);
    const recipients = tx.privateFor ?? [];
    w.u8(recipients.length);
    for (const k of recipients) w.raw(k);
  } else {
    w.u8(0);
  }
  writeOps(w, tx.ops);
}

function checkUnsigned(tx: UnsignedTransaction): void {
  if (tx.type !== TxType.LedgerV1)
    throw new ChainError(ChainErrorCode.TxUnsupportedType, `unsupported transaction type ${tx.type}`);
  if (!Number.isSafeInteger(tx.chainId) || tx.chainId < 0) malformed('chainId must be a non-negative safe integer');
  if (!Number.isSafeInteger(tx.nonce) || tx.nonce < 0) malformed('nonce must be a non-negative safe integer');
  if (!isAddress(tx.from)) malformed(`from is not a lowercase 0x address: ${String(tx.from)}`);
  if (!(tx.publicKey instanceof Uint8Array) || tx.publicKey.length !== PUBLIC_KEY_BYTES)
    malformed('publicKey must be 32 bytes');
  checkOps(tx.ops);
  if (tx.privatePayloadHash !== undefined) {
    if (tx.privatePayloadHash.length !== PRIVATE_PAYLOAD_HASH_BYTES)
      malformed('privatePayloadHash must be 64 bytes (SHA3-512)');
    if (tx.ops.length !== 0) malformed('a private transaction carries no ops on chain (they are its private payload)');
    const recipients = tx.privateFor ?? [];
    if (recipients.length > MAX_PRIVATE_FOR)
      tooLarge(`privateFor has ${recipients.length} keys, over MAX_PRIVATE_FOR=${MAX_PRIVATE_FOR}`);
    for (const k of recipients) if (k.length !== ENCLAVE_KEY_BYTES) malformed('privateFor keys must be 32 bytes');
  } else if (tx.privateFor !== undefined && tx.privateFor.length > 0) {
    malformed('privateFor given without privatePayloadHash');
  }
}

/** The domain prefix keeps a transaction signature from ever being valid as a block signature. */
function signingMessage(unsignedBytes: Uint8Array): Uint8Array {
  const buf = new Uint8Array(TX_SIGNING_DOMAIN.length + unsignedBytes.length);
  buf.set(TX_SIGNING_DOMAIN, 0);
  buf.set(unsignedBytes, TX_SIGNING_DOMAIN.length);
  return buf;
}

/**
 * Builds and signs a transaction with `key`. `from` and `publicKey` come from the key.
 * Throws ChainError TxMalformed / TxTooLarge when a field breaks a rule or a limit.
 */
export function signTransaction(
  fields: {
    chainId: number;
    nonce: number;
    ops: readonly Op[];
    privatePayloadHash?: Uint8Array;
    privateFor?: readonly Uint8Array[];
    type?: TxType;
  },
  key: AccountKey,
): Transaction {
  const unsigned: UnsignedTransaction = {
    type: fields.type ?? TxType.LedgerV1,
    chainId: fields.chainId,
    from: key.address,
    publicKey: key.publicKeyRaw,
    nonce: fields.nonce,
    ops: fields.privatePayloadHash !== undefined ? [] : fields.ops,
    ...(fields.privatePayloadHash !== undefined
      ? { privatePayloadHash: fields.privatePayloadHash, privateFor: fields.privateFor ?? [] }
      : {}),
  };
  if (fields.privatePayloadHash !== undefined && fields.ops.length > 0)
    malformed('a private transaction carries no ops on chain: pass them to the transaction manager');
  checkUnsigned(unsigned);
  const w = new Writer(256);
  writeUnsigned(w, unsigned);
  const unsignedBytes = w.length;
  const signature = sign(key, signingMessage(w.finish()));
  w.raw(signature);
  const encoded = w.finish();
  if (encoded.length > MAX_TX_BYTES)
    tooLarge(`transaction of ${encoded.length} bytes is over MAX_TX_BYTES=${MAX_TX_BYTES}`);
  assert(encoded.length === unsignedBytes + SIGNATURE_BYTES, 'signature appended');
  const hash = keccak256(encoded);
  return { ...unsigned, signature, encoded, hash, hashHex: toHex(hash) };
}

/**
 * Strict decode: refuses trailing bytes, short fields, unknown types, flags and op codes,
 * non-minimal amounts, invalid UTF-8 and anything over a limit. Does NOT verify the signature
 * (verifyTransaction does, once, where the transaction enters the node).
 */
export function decodeTransaction(bytes: Uint8Array): Transaction {
  if (bytes.length > MAX_TX_BYTES)
    tooLarge(`transaction of ${bytes.length} bytes is over MAX_TX_BYTES=${MAX_TX_BYTES}`, { bytes: bytes.length });
  // Copy so that the transaction does not pin (or alias) a larger buffer, e.g. a whole block.
  const encoded = Uint8Array.from(bytes);
  const r = new Reader(encoded, ChainErrorCode.TxMalformed, 'transaction');
  const type = r.u8();
  if (type !== TxType.LedgerV1)
    throw new ChainError(ChainErrorCode.TxUnsupportedType, `unsupported transaction type ${type}`, { type });
  const chainId = r.u64();
  const from = toHex(r.raw(ADDRESS_BYTES));
  const publicKey = r.raw(PUBLIC_KEY_BYTES);
  const nonce = r.u64();
  const flags = r.u8();
  if ((flags & ~FLAG_PRIVATE) !== 0) r.fail(`unknown flags 0x${flags.toString(16)}`);
  let privatePayloadHash: Uint8Array | undefined;
  let privateFor: Uint8Array[] | undefined;
  if (flags & FLAG_PRIVATE) {
    privatePayloadHash = r.raw(PRIVATE_PAYLOAD_HASH_BYTES);
    const n = r.u8();
    if (n > MAX_PRIVATE_FOR) tooLarge(`privateFor has ${n} keys, over MAX_PRIVATE_FOR=${MAX_PRIVATE_FOR}`);
    privateFor = [];
    for (let i = 0; i < n; i++) privateFor.push(r.raw(ENCLAVE_KEY_BYTES));
  }
  const ops = readOps(r);
  if (privatePayloadHash !== undefined && ops.length > 0) r.fail('a private transaction carries no ops on chain');
  const signature = r.raw(SIGNATURE_BYTES);
  r.end();
  const hash = keccak256(encoded);
  return {
    type,
    chainId,
    from,
    publicKey,
    nonce,
    ops,
    ...(privatePayloadHash !== undefined ? { privatePayloadHash, privateFor } : {}),
    signature,
    encoded,
    hash,
    hashHex: toHex(hash),
  };
}

/** Raw form for quorate_sendRawTransaction: 0x-hex of the canonical encoding. */
export function encodeRawTransaction(tx: Transaction): string {
  return toHex(tx.encoded);
}

export function decodeRawTransaction(hex: string): Transaction {
  if (typeof hex !== 'string') malformed('raw transaction must be a 0x-hex string');
  // Check the size before decoding the hex, so an oversized request costs nothing.
  if (hex.length > 2 + 2 * MAX_TX_BYTES) tooLarge(`raw transaction over MAX_TX_BYTES=${MAX_TX_BYTES}`);
  const bytes = fromHex(hex);
  if (bytes === undefined || !hex.startsWith('0x'))
    malformed('raw transaction must be 0x-prefixed hex with an even number of digits');
  return decodeTransaction(bytes);
}

// --- verification ---------------------------------------------------------------------------------

/**
 * Remembers hashes of transactions whose signature this node verified, so a transaction is
 * verified once where it enters the node (pool) and not again when its block is applied
 * (docs/stack.md: Ed25519 verify ≈ 6k/s per core is the cluster's bottleneck otherwise). The hash covers
 * every byte including the signature, so a hit means these exact bytes verified before.
 * Bounded: MAX_VERIFIED_TX_CACHE entries (~100 B each), oldest evicted first.
 */
export const MAX_VERIFIED_TX_CACHE = 200_000;

export class VerifiedTxCache {
  private readonly seen = new Set<string>();
  constructor(readonly maxEntries = MAX_VERIFIED_TX_CACHE) {
    assert(maxEntries > 0, 'VerifiedTxCache needs room for at least one entry');
  }
  has(hashHex: string): boolean {
    return this.seen.has(hashHex);
  }
  add(hashHex: string): void {
    if (this.seen.has(hashHex)) return;
    if (this.seen.size >= this.maxEntries) {
      const oldest = this.seen.values().next().value as string;
      this.seen.delete(oldest);
    }
    this.seen.add(hashHex);
  }
  get size(): number {
    return this.seen.size;
  }
}

/**
 * Checks chainId, that `from` is the address of `publicKey`, and the signature. Throws
 * ChainError TxWrongChainId / TxAddressMismatch / TxBadSignature. With a cache, a transaction
 * verified before is not verified again, and a newly verified one is remembered.
 */
export function verifyTransaction(tx: Transaction, chainId: number, cache?: VerifiedTxCache): void {
  if (tx.chainId !== chainId) {
    throw new ChainError(
      ChainErrorCode.TxWrongChainId,
      `transaction is for chain ${tx.chainId}, this chain is ${chainId}`,
      { txChainId: tx.chainId, chainId, hash: tx.hashHex },
    );
  }
  if (cache?.has(tx.hashHex)) return;
  let address: Address;
  try {
    address = cachedAddressOf(tx.publicKey);
  } catch {
    throw new ChainError(
      ChainErrorCode.TxBadSignature,
      `transaction ${tx.hashHex} carries a public key that is not an Ed25519 key`,
      { hash: tx.hashHex },
    );
  }
  if (address !== tx.from) {
    throw new ChainError(
      ChainErrorCode.TxAddressMismatch,
      `from ${tx.from} is not the address of the transaction's public key`,
      { from: tx.from, hash: tx.hashHex },
    );
  }
  const unsignedBytes = tx.encoded.subarray(0, tx.encoded.length - SIGNATURE_BYTES);
  if (
    !bytesEqual(tx.encoded.subarray(tx.encoded.length - SIGNATURE_BYTES), tx.signature) ||
    !verifySignature(tx.publicKey, signingMessage(unsignedBytes), tx.signature)
  ) {
    throw new ChainError(ChainErrorCode.TxBadSignature, `bad signature on transaction ${tx.hashHex}`, {
      hash: tx.hashHex,
      from: tx.from,
    });
  }
  cache?.add(tx.hashHex);
}

// --- JSON views (RPC) --------------------------------------------------------------------------------

export type OpJson =
  | { type: 'transfer'; to: string; amount: string }
  | { type: 'put'; key: string; value: string }
  | { type: 'delete'; key: string }
  | { type: 'cas'; key: string; expect: string | null; value: string }
  | { type: 'append'; key: string; value: string };

export function opToJson(op: Op): OpJson {
  return op.type === 'transfer' ? { type: 'transfer', to: op.to, amount: op.amount.toString(10) } : { ...op };
}

const DECIMAL_RE = /^(0|[1-9][0-9]*)$/;

/** Parses ops from RPC JSON (quorate_sendTransaction). Throws ChainError TxMalformed / TxTooLarge. */
export function opsFromJson(json: unknown): Op[] {
  if (!Array.isArray(json)) malformed('ops must be an array');
  if (json.length > MAX_OPS_PER_TX) tooLarge(`${json.length} ops is over MAX_OPS_PER_TX=${MAX_OPS_PER_TX}`);
  const ops: Op[] = json.map((raw: unknown, i): Op => {
    if (typeof raw !== 'object' || raw === null) malformed(`op ${i} is not an object`);
    const o = raw as Record<string, unknown>;
    switch (o.type) {
      case 'transfer': {
        if (typeof o.amount !== 'string' || !DECIMAL_RE.test(o.amount) || o.amount.length > 78)
          malformed(`op ${i}: amount must be a decimal string of an unsigned integer`);
        const to = typeof o.to === 'string' ? o.to.toLowerCase() : o.to;
        if (!isAddress(to)) malformed(`op ${i}: to must be a 0x address of 20 bytes`);
        return { type: 'transfer', to, amount: BigInt(o.amount) };
      }
      case 'put':
        return { type: 'put', key: o.key as string, value: o.value as string };
      case 'delete':
        return { type: 'delete', key: o.key as string };
      case 'cas':
        if (o.expect !== null && typeof o.expect !== 'string')
          malformed(`op ${i}: cas.expect must be a string or null`);
        return { type: 'cas', key: o.key as string, expect: o.expect as string | null, value: o.value as string };
      case 'append':
        return { type: 'append', key: o.key as string, value: o.value as string };
      default:
        return malformed(`op ${i}: unknown op type ${JSON.stringify(o.type)}`);
    }
  });
  checkOps(ops);
  return ops;
}

export interface TxLocation {
  readonly blockHash: Hash;
  readonly blockNumber: number;
  readonly index: number;
}

export interface TxJson {
  hash: string;
  type: string;
  chainId: string;
  from: string;
  publicKey: string;
  nonce: string;
  blockHash: string | null;
  blockNumber: string | null;
  transactionIndex: string | null;
  isPrivate: boolean;
  ops?: OpJson[];
  input?: string;
  privateFor?: string[];
}

const quantity = (n: number): string => '0x' + n.toString(16);

/** The RPC view (docs/interface.md): public → `ops`; private → `input` = 0x-hex of the 64-byte payload hash. */
export function txToJson(tx: Transaction, location?: TxLocation): TxJson {
  const out: TxJson = {
    hash: tx.hashHex,
    type: quantity(tx.type),
    chainId: quantity(tx.chainId),
    from: tx.from,
    publicKey: toHex(tx.publicKey),
    nonce: quantity(tx.nonce),
    blockHash: location ? toHex(location.blockHash) : null,
    blockNumber: location ? quantity(location.blockNumber) : null,
    transactionIndex: location ? quantity(location.index) : null,
    isPrivate: isPrivate(tx),
  };
  if (tx.privatePayloadHash !== undefined) {
    out.input = toHex(tx.privatePayloadHash);
    out.privateFor = (tx.privateFor ?? []).map((k) => Buffer.from(k).toString('base64'));
  } else {
    out.ops = tx.ops.map(opToJson);
  }
  return out;
}

/** Map key form of a 64-byte private payload hash (hex, no 0x). */
export function payloadHashKey(hash: Uint8Array): string {
  return toHexBare(hash);
}
