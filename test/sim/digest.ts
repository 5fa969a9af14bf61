// Cheap, deterministic 53-bit digests for the simulator's checkers.
//
// The checkers compare logs and application states across nodes millions of times per run, so a
// cryptographic hash would dominate the cost of a schedule. Two independent 32-bit FNV-1a/murmur
// lanes packed into one JS number (21 + 32 bits) are enough: a collision can only make a checker
// MISS a divergence (two different histories that look equal), never report a false one, and at
// 2^-53 per comparison that does not matter for schedules of a few thousand entries.

const LANE_HIGH_BITS = 21;
const LANE_HIGH_MASK = (1 << LANE_HIGH_BITS) - 1;
const TWO_POW_32 = 0x1_0000_0000;

function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function pack(high: number, low: number): number {
  return (high & LANE_HIGH_MASK) * TWO_POW_32 + (low >>> 0);
}

function highLane(d: number): number {
  return Math.floor(d / TWO_POW_32);
}

function lowLane(d: number): number {
  return d % TWO_POW_32;
}

/** Digest of a byte string (FNV-1a in two lanes with different offsets). */
export function bytesDigest(data: Uint8Array): number {
  let a = 0x811c9dc5;
  let b = 0x01000193 ^ data.length;
  for (let i = 0; i < data.length; i++) {
    const byte = data[i]!;
    a = Math.imul(a ^ byte, 0x01000193);
    b = Math.imul(b ^ byte, 0x5bd1e995);
  }
  return pack(fmix32(a), fmix32(b ^ data.length));
}

/** Combines a running digest with up to three more numbers (each below 2^53), order-sensitively. */
export function combine(prev: number, x: number, y = 0, z = 0): number {
  let a = highLane(prev) ^ 0x9e3779b9;
  let b = lowLane(prev) >>> 0;
  // Unrolled on purpose: this runs for every entry persisted or applied by every node.
  let low = (x % TWO_POW_32) >>> 0;
  let high = Math.floor(x / TWO_POW_32) >>> 0;
  a = fmix32((Math.imul(a ^ low, 0x01000193) + high) >>> 0);
  b = fmix32((Math.imul((b + high) >>> 0, 0x5bd1e995) ^ low ^ a) >>> 0);
  low = (y % TWO_POW_32) >>> 0;
  high = Math.floor(y / TWO_POW_32) >>> 0;
  a = fmix32((Math.imul(a ^ low, 0x01000193) + high) >>> 0);
  b = fmix32((Math.imul((b + high) >>> 0, 0x5bd1e995) ^ low ^ a) >>> 0);
  low = (z % TWO_POW_32) >>> 0;
  high = Math.floor(z / TWO_POW_32) >>> 0;
  a = fmix32((Math.imul(a ^ low, 0x01000193) + high) >>> 0);
  b = fmix32((Math.imul((b + high) >>> 0, 0x5bd1e995) ^ low ^ a) >>> 0);
  return pack(a, b);
}
