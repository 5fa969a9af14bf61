// Hashing: keccak-256 (as in Ethereum, from @noble/hashes) and the binary Merkle tree used for the
// transactions root and the receipts root of a block header.
//
// Merkle construction (documented because every node must build the same tree):
//   leaf(x)        = keccak256(0x00 ‖ x)                 — x is a 32-byte item hash (tx hash, receipt hash)
//   node(l, r)     = keccak256(0x01 ‖ l ‖ r)
//   level k+1      = pairs of level k, left to right; an odd last node is carried up unchanged
//                    (not duplicated: duplicating makes [a, b, c] and [a, b, c, c] share a root —
//                    the Bitcoin CVE-2012-2459 ambiguity)
//   root([])       = keccak256(empty)  (EMPTY_ROOT)
// The 0x00/0x01 domain prefixes keep a leaf from ever being read as an inner node (second preimage).
// The number of leaves is not mixed in: the header's body is checked against it by re-building it.

import { keccak_256 } from '@noble/hashes/sha3.js';

export type Hash = Uint8Array; // always 32 bytes

export const HASH_BYTES = 32;

export function keccak256(data: Uint8Array): Hash {
  return keccak_256(data);
}

export const EMPTY_ROOT: Hash = keccak256(new Uint8Array(0));

export const ZERO_HASH: Hash = new Uint8Array(32);

const LEAF_PREFIX = 0x00;
const NODE_PREFIX = 0x01;

export function merkleRoot(items: readonly Hash[]): Hash {
  if (items.length === 0) return EMPTY_ROOT;
  let level: Hash[] = new Array(items.length);
  const leafBuf = new Uint8Array(1 + HASH_BYTES);
  leafBuf[0] = LEAF_PREFIX;
  for (let i = 0; i < items.length; i++) {
    leafBuf.set(items[i], 1);
    level[i] = keccak256(leafBuf);
  }
  const nodeBuf = new Uint8Array(1 + 2 * HASH_BYTES);
  nodeBuf[0] = NODE_PREFIX;
  while (level.length > 1) {
    const next: Hash[] = [];
    for (let i = 0; i + 1 < level.length; i += 2) {
      nodeBuf.set(level[i], 1);
      nodeBuf.set(level[i + 1], 1 + HASH_BYTES);
      next.push(keccak256(nodeBuf));
    }
    if (level.length % 2 === 1) next.push(level[level.length - 1]);
    level = next;
  }
  return level[0];
}
