// Ed25519 keys for accounts (transaction signing) and for minters (block signing), on node:crypto
// (docs/stack.md: ~18k sign / ~6k verify per second; tweetnacl is 30-60x slower).
//
// An address is `0x` + the last 20 bytes of keccak256(raw 32-byte public key), lowercase hex —
// Ethereum's rule applied to an Ed25519 key.
//
// Key files are JSON, mode 0600, never overwritten, and carry a `purpose` ("account" or "minter")
// so a node's block-signing key and a user's account key cannot be swapped by mistake: they are
// separate files and loading one as the other fails.

import crypto, { type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import { ChainError, ChainErrorCode, assert } from './errors.js';
import { keccak256 } from './hash.js';
import { fromHex, toHex, toHexBare } from './codec.js';

export type Address = string; // '0x' + 40 lowercase hex chars

export const PUBLIC_KEY_BYTES = 32;
export const SIGNATURE_BYTES = 64;
export const ADDRESS_BYTES = 20;

export type KeyPurpose = 'account' | 'minter';

export interface AccountKey {
  readonly purpose: KeyPurpose;
  readonly privateKey: KeyObject;
  readonly publicKey: KeyObject;
  /** The raw 32-byte Ed25519 public key (what transactions carry). */
  readonly publicKeyRaw: Uint8Array;
  readonly address: Address;
}

// DER prefixes of Ed25519 keys (RFC 8410): importing from DER with a fixed prefix is the fastest
// way node:crypto offers to build a KeyObject from raw bytes.
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

const ADDRESS_RE = /^0x[0-9a-f]{40}$/;

export function isAddress(s: unknown): s is Address {
  return typeof s === 'string' && ADDRESS_RE.test(s);
}

export function addressFromPublicKey(publicKeyRaw: Uint8Array): Address {
  assert(publicKeyRaw.length === PUBLIC_KEY_BYTES, `public key must be 32 bytes, got ${publicKeyRaw.length}`);
  return toHex(keccak256(publicKeyRaw).subarray(12));
}

export function addressToBytes(address: Address): Uint8Array {
  const b = fromHex(address, ADDRESS_BYTES);
  assert(b !== undefined && isAddress(address), `not an address: ${address}`);
  return b;
}

function rawPublicKey(publicKey: KeyObject): Uint8Array {
  const der = publicKey.export({ format: 'der', type: 'spki' });
  return Uint8Array.from(der.subarray(der.length - PUBLIC_KEY_BYTES));
}

function keyFromSeed(seed: Uint8Array, purpose: KeyPurpose): AccountKey {
  assert(seed.length === 32, `Ed25519 seed must be 32 bytes, got ${seed.length}`);
  const privateKey = crypto.createPrivateKey({
    key: Buffer.concat([PKCS8_PREFIX, seed]),
    format: 'der',
    type: 'pkcs8',
  });
  const publicKey = crypto.createPublicKey(privateKey);
  const publicKeyRaw = rawPublicKey(publicKey);
  return { purpose, privateKey, publicKey, publicKeyRaw, address: addressFromPublicKey(publicKeyRaw) };
}

export function generateAccountKey(purpose: KeyPurpose = 'account'): AccountKey {
  return keyFromSeed(crypto.randomBytes(32), purpose);
}

/** The same key kind, for a node's block-signing (minter) key. Kept in its own file. */
export function generateMinterKey(): AccountKey {
  return generateAccountKey('minter');
}

/** Deterministic key from a 32-byte seed (tests, benchmarks, and deriving keys in `init`). */
export function accountKeyFromSeed(seed: Uint8Array, purpose: KeyPurpose = 'account'): AccountKey {
  return keyFromSeed(seed, purpose);
}

function seedOf(key: AccountKey): Uint8Array {
  const der = key.privateKey.export({ format: 'der', type: 'pkcs8' });
  return Uint8Array.from(der.subarray(der.length - 32));
}

const KEY_FILE_VERSION = 1;

interface KeyFileJson {
  readonly type: 'quorate-ed25519-key';
  readonly version: number;
  readonly purpose: KeyPurpose;
  readonly address: Address;
  readonly publicKey: string;
  readonly seed: string;
}

/** Writes the key with mode 0600. Refuses to overwrite an existing file (flag 'wx'). */
export function saveAccountKey(path: string, key: AccountKey): void {
  const json: KeyFileJson = {
    type: 'quorate-ed25519-key',
    version: KEY_FILE_VERSION,
    purpose: key.purpose,
    address: key.address,
    publicKey: toHex(key.publicKeyRaw),
    seed: toHex(seedOf(key)),
  };
  let fd: number;
  try {
    fd = fs.openSync(path, 'wx', 0o600);
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    throw new ChainError(
      ChainErrorCode.KeyFile,
      code === 'EEXIST'
        ? `key file ${path} already exists; refusing to overwrite a key`
        : `cannot create key file ${path}: ${code ?? String(cause)}`,
      { path },
      { cause },
    );
  }
  try {
    fs.writeSync(fd, JSON.stringify(json, null, 2) + '\n');
    fs.fsyncSync(fd);
  } finally {
    fs.closeSync(fd);
  }
}

/**
 * Reads a key file written by saveAccountKey. `purpose` is checked: loading a minter key as an
 * account key (or the reverse) fails. The stored public key and address must match the seed.
 */
export function loadAccountKey(path: string, purpose: KeyPurpose = 'account'): AccountKey {
  const fail = (why: string, cause?: unknown): never => {
    throw new ChainError(ChainErrorCode.KeyFile, `key file ${path}: ${why}`, { path }, { cause });
  };
  let text: string;
  try {
    text = fs.readFileSync(path, 'utf8');
  } catch (cause) {
    return fail(`cannot read (${(cause as NodeJS.ErrnoException).code ?? String(cause)})`, cause);
  }
  let json: Partial<KeyFileJson>;
  try {
    json = JSON.parse(text) as Partial<KeyFileJson>;
  } catch (cause) {
    return fail('not JSON', cause);
  }
  if (json.type !== 'quorate-ed25519-key' || json.version !== KEY_FILE_VERSION)
    fail('not a quorate Ed25519 key file of version 1');
  if (json.purpose !== purpose) fail(`holds a ${String(json.purpose)} key, expected a ${purpose} key`);
  const seed = fromHex(String(json.seed), 32);
  if (!seed) return fail('seed is not 32 bytes of hex');
  const key = keyFromSeed(seed, purpose);
  if (json.publicKey !== toHex(key.publicKeyRaw) || json.address !== key.address)
    fail('public key or address does not match the seed');
  return key;
}

export function saveMinterKey(path: string, key: AccountKey): void {
  assert(key.purpose === 'minter', 'saveMinterKey needs a minter key');
  saveAccountKey(path, key);
}

export function loadMinterKey(path: string): AccountKey {
  return loadAccountKey(path, 'minter');
}

// --- signing and verifying -------------------------------------------------------------------

export function sign(key: AccountKey, message: Uint8Array): Uint8Array {
  return crypto.sign(null, message, key.privateKey);
}

/**
 * Bounded cache of public KeyObjects by raw key (docs/stack.md: rebuilding the KeyObject from DER on
 * every verify halves the rate). MAX_CACHED_PUBLIC_KEYS bounds memory at ~a few MiB; eviction is
 * oldest-inserted-first, which for a working set of active accounts is close enough to LRU.
 */
export const MAX_CACHED_PUBLIC_KEYS = 16_384;
const publicKeyCache = new Map<string, { key: KeyObject; address?: Address }>();

function cacheEntry(publicKeyRaw: Uint8Array): { key: KeyObject; address?: Address } {
  assert(publicKeyRaw.length === PUBLIC_KEY_BYTES, `public key must be 32 bytes, got ${publicKeyRaw.length}`);
  const id = toHexBare(publicKeyRaw);
  let entry = publicKeyCache.get(id);
  if (entry === undefined) {
    entry = {
      key: crypto.createPublicKey({ key: Buffer.concat([SPKI_PREFIX, publicKeyRaw]), format: 'der', type: 'spki' }),
    };
    if (publicKeyCache.size >= MAX_CACHED_PUBLIC_KEYS) {
      const oldest = publicKeyCache.keys().next().value as string;
      publicKeyCache.delete(oldest);
    }
    publicKeyCache.set(id, entry);
  }
  return entry;
}

export function publicKeyObject(publicKeyRaw: Uint8Array): KeyObject {
  return cacheEntry(publicKeyRaw).key;
}

/**
 * addressFromPublicKey through the same bounded cache (saves a keccak per verification). Throws
 * like publicKeyObject for a key that is not a valid curve point.
 */
export function cachedAddressOf(publicKeyRaw: Uint8Array): Address {
  const entry = cacheEntry(publicKeyRaw);
  entry.address ??= addressFromPublicKey(publicKeyRaw);
  return entry.address;
}

/** Verifies an Ed25519 signature. Never throws on bad input: a malformed key or signature is false. */
export function verifySignature(publicKeyRaw: Uint8Array, message: Uint8Array, signature: Uint8Array): boolean {
  if (publicKeyRaw.length !== PUBLIC_KEY_BYTES || signature.length !== SIGNATURE_BYTES) return false;
  let key: KeyObject;
  try {
    key = publicKeyObject(publicKeyRaw);
  } catch {
    return false; // not a valid curve point
  }
  return crypto.verify(null, message, key, signature);
}
