import { keccak_256 } from '@noble/hashes/sha3.js';
import { describe, expect, it } from 'vitest';
import { EMPTY_ROOT, keccak256, merkleRoot } from '../../node/chain/hash.js';

// keccak256 runs on hash-wasm; @noble/hashes is an independent implementation to check it against.
describe('keccak256', () => {
  it('matches an independent keccak-256 on known vectors and on inputs of every size class', () => {
    // keccak256("") as Ethereum defines it (not SHA3-256, whose padding differs).
    expect(Buffer.from(keccak256(new Uint8Array(0))).toString('hex')).toBe(
      'c5d2460186f7233c927e7db2dcc703c0e500b653ca82273b7bfad8045d85a470',
    );
    expect(Buffer.from(keccak256(new TextEncoder().encode('abc'))).toString('hex')).toBe(
      '4e03657aea45a94fc7d47ba826c8d667c0d1e6e33a64a036ec44f58fa12d6c45',
    );
    let x = 12345;
    for (const size of [1, 31, 32, 135, 136, 137, 200, 271, 272, 1000, 4096, 65_537, 1_048_576]) {
      const data = new Uint8Array(size);
      for (let i = 0; i < size; i++) data[i] = (x = (Math.imul(x, 1103515245) + 12345) >>> 0) >>> 24;
      expect(Buffer.from(keccak256(data)).equals(Buffer.from(keccak_256(data)))).toBe(true);
    }
  });

  it('returns a fresh array each call: an earlier result is not overwritten by a later one', () => {
    const a = keccak256(new Uint8Array([1]));
    const copy = Uint8Array.from(a);
    const b = keccak256(new Uint8Array([2]));
    expect(a).toEqual(copy);
    expect(a).not.toEqual(b);
    expect(a.length).toBe(32);
  });

  it('builds the documented Merkle tree: inner node = keccak(0x01 ‖ l ‖ r), an odd last node carried up', () => {
    expect(merkleRoot([])).toEqual(EMPTY_ROOT);
    const leaves = [1, 2, 3].map((i) => keccak_256(new Uint8Array([i])));
    const node = (l: Uint8Array, r: Uint8Array): Uint8Array => keccak_256(Uint8Array.from([1, ...l, ...r]));
    expect(merkleRoot([leaves[0]])).toEqual(leaves[0]);
    expect(merkleRoot(leaves)).toEqual(node(node(leaves[0], leaves[1]), leaves[2]));
  });
});
