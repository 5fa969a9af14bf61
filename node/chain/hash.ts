// Hashing: keccak-256 (as in Ethereum) and the binary Merkle tree used for the transactions root and
// the receipts root of a block header.
//
// keccak-256 comes from hash-wasm (WebAssembly): ~10x the rate of @noble/hashes' pure-JS keccak on
// the 150–300-byte inputs a block is made of. Each node hashes every transaction, receipt leaf and
// Merkle node of every block, so at 2,000 tx/s pure-JS keccak alone took most of a core across a
// 3-node cluster. Node's crypto has sha3-256 but not keccak (different padding), hence the library.
// One hasher is created at load (it is synchronous from then on) and reused: this is single-threaded
// code, and `keccak256` runs init/update/digest without yielding.
//
// Merkle construction (documented because every node must build the same tree):
//   leaves         = 32-byte item hashes, used as they are: a transaction's hash (keccak256 of its
//                    encoding) for txRoot; keccak256(0x00 ‖ receipt encoding) for receiptsRoot
//   node(l, r)     = keccak256(0x01 ‖ l ‖ r)
//   level k+1      = pairs of level k, left to right; an odd last node is carried up unchanged
//                    (not duplicated: duplicating makes [a, b, c] and [a, b, c, c] share a root —
//                    the Bitcoin CVE-2012-2459 ambiguity)
//   root([])       = keccak256(empty)  (EMPTY_ROOT)
// A leaf can never be read as an inner node (second preimage): an inner node's preimage is 65
// bytes starting 0x01, while a leaf's preimage is either a transaction encoding (at least 136
// bytes) or starts with 0x00. Using the item hashes directly as leaves saves one keccak per
// transaction and per receipt.
// The number of leaves is not mixed in: the header's body is checked against it by re-building it.

import { createKeccak } from 'hash-wasm';

export type Hash = Uint8Array; // always 32 bytes

export const HASH_BYTES = 32;

const hasher = await createKeccak(256);

export function keccak256(data: Uint8Array): Hash {
  hasher.init();
  hasher.update(data);
  // digest('binary') returns a fresh array each call, never a view of the WASM memory.
  return hasher.digest('binary');
}

export const EMPTY_ROOT: Hash = keccak256(new Uint8Array(0));

export const ZERO_HASH: Hash = new Uint8Array(32);

const NODE_PREFIX = 0x01;
/** Prefix of a receipt's leaf preimage (see above). */
export const RECEIPT_LEAF_PREFIX = 0x00;

export function merkleRoot(leaves: readonly Hash[]): Hash {
  if (leaves.length === 0) return EMPTY_ROOT;
  let level: readonly Hash[] = leaves;
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
