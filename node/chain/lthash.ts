// LtHash — a homomorphic multiset hash (Bellare & Micciancio 1997, "A New Paradigm for
// Collision-free Hashing: Incrementality at Reduced Cost"; the lattice variant used by Facebook's
// "Securing update propagation with homomorphic hashing", 2019, and by Solana's accounts hash).
//
// The state root must cover the WHOLE state, yet be updated in O(changes) per block. A Merkle tree
// over all keys would be O(changes × log n) with a tree to maintain; LtHash needs no structure:
//   H(S) = Σ_{(k,v) ∈ S} expand(k, v)      (lane-wise addition mod 2^16 over 1024 uint16 lanes)
//   expand(k, v) = SHAKE256(u32be(len(k)) ‖ k ‖ v, 2048 bytes) read as 1024 little-endian uint16
// Setting k from v to v' is H - expand(k, v) + expand(k, v'); adding/removing a key is one add/sub.
// The sum does not depend on the order of updates, so two nodes with the same state have the same
// H regardless of history. The root in the header is keccak256 of the 2048 bytes of H.
// Security rests on the hardness of the short-integer-solution problem at 1024 × 16 bits, the
// parameters proposed in the 2019 paper (~200 bits of security).
//
// SHAKE256 comes from node:crypto (OpenSSL): 12x faster than @noble/hashes' JS for 2 KiB output,
// and the output is the standard SHAKE256 — test/chain/lthash.test.ts checks both agree.

import crypto from 'node:crypto';
import os from 'node:os';
import { assert } from './errors.js';
import { type Hash, keccak256 } from './hash.js';

export const LTHASH_LANES = 1024;
export const LTHASH_BYTES = LTHASH_LANES * 2;

// Lanes are read through a Uint16Array, which uses the platform's byte order. Every supported
// platform (x64, arm64) is little-endian; refuse to run elsewhere rather than compute other roots.
assert(os.endianness() === 'LE', 'LtHash lanes are little-endian; this platform is big-endian');

/** The 1024-lane vector of one (key, value) element. */
export function expandElement(key: Uint8Array, value: Uint8Array): Uint16Array {
  const len = Buffer.allocUnsafe(4);
  len.writeUInt32BE(key.length, 0);
  const out = crypto
    .createHash('shake256', { outputLength: LTHASH_BYTES })
    .update(len)
    .update(key)
    .update(value)
    .digest();
  if (out.byteOffset % 2 === 0) return new Uint16Array(out.buffer, out.byteOffset, LTHASH_LANES);
  return new Uint16Array(Uint8Array.from(out).buffer);
}

export class LtHash {
  readonly lanes: Uint16Array;

  constructor(lanes?: Uint16Array) {
    this.lanes = lanes ? Uint16Array.from(lanes) : new Uint16Array(LTHASH_LANES);
    assert(this.lanes.length === LTHASH_LANES, `LtHash needs ${LTHASH_LANES} lanes`);
  }

  clone(): LtHash {
    return new LtHash(this.lanes);
  }

  /** Adds a lane vector (Uint16Array arithmetic wraps mod 2^16 on assignment). */
  addVector(v: Uint16Array): void {
    const l = this.lanes;
    for (let i = 0; i < LTHASH_LANES; i++) l[i] += v[i];
  }

  subVector(v: Uint16Array): void {
    const l = this.lanes;
    for (let i = 0; i < LTHASH_LANES; i++) l[i] -= v[i];
  }

  add(key: Uint8Array, value: Uint8Array): void {
    this.addVector(expandElement(key, value));
  }

  remove(key: Uint8Array, value: Uint8Array): void {
    this.subVector(expandElement(key, value));
  }

  equals(other: LtHash): boolean {
    for (let i = 0; i < LTHASH_LANES; i++) if (this.lanes[i] !== other.lanes[i]) return false;
    return true;
  }

  bytes(): Uint8Array {
    return new Uint8Array(this.lanes.buffer, this.lanes.byteOffset, LTHASH_BYTES);
  }

  /** The 32-byte root that goes in block headers. */
  root(): Hash {
    return keccak256(this.bytes());
  }
}

/**
 * Bounded cache of element vectors by state key: the vector added for (k, v) in one block is the
 * vector subtracted when k changes again, so hot keys (nonces and balances of active accounts)
 * cost one expansion per change instead of two. A hit requires the cached value to equal the value
 * asked about, so a stale entry is never used. Only values of at most MAX_CACHED_ELEMENT_VALUE_BYTES
 * are cached (the hot keys are small): each entry then holds at most 2 KiB + 1 KiB, so the cache is at
 * most MAX_CACHED_ELEMENT_VECTORS × 3 KiB = 12 MiB. (It held the value whatever its size: 16 KiB
 * values made it up to 4,096 × 18 KiB = 72 MiB.)
 */
export const MAX_CACHED_ELEMENT_VECTORS = 4_096;
/** Largest value whose element vector is cached (see above). */
export const MAX_CACHED_ELEMENT_VALUE_BYTES = 1024;
const vectorCache = new Map<string, { value: Uint8Array; vector: Uint16Array }>();

function valuesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** expandElement(utf8(key), value), through the cache. */
export function expandStateElement(key: string, keyBytes: Uint8Array, value: Uint8Array): Uint16Array {
  const hit = vectorCache.get(key);
  if (hit !== undefined && valuesEqual(hit.value, value)) return hit.vector;
  const vector = expandElement(keyBytes, value);
  if (value.length > MAX_CACHED_ELEMENT_VALUE_BYTES) {
    if (hit !== undefined) vectorCache.delete(key);
    return vector;
  }
  if (hit !== undefined) vectorCache.delete(key);
  else if (vectorCache.size >= MAX_CACHED_ELEMENT_VECTORS)
    vectorCache.delete(vectorCache.keys().next().value as string);
  vectorCache.set(key, { value, vector });
  return vector;
}
