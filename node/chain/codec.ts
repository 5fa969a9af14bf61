// A small canonical binary codec shared by transactions, blocks, receipts, state and snapshots.
// Canonical means: one value has exactly one encoding, and the decoder refuses everything else
// (trailing bytes, short reads, non-minimal big integers, invalid UTF-8). Hashes are taken over
// encodings, so two nodes can only agree on a hash if they agree on the bytes.
//
// Integers are big-endian fixed width (u8/u16/u32/u64-as-safe-integer); byte strings and strings
// carry a length prefix whose width is chosen per field by the caller (u8/u16/u32), so the limits
// of each field are visible where the field is written.

import { ChainError, ChainErrorCode } from './errors.js';

const textEncoder = new TextEncoder();
// fatal: true rejects invalid UTF-8 (overlong forms, lone surrogates), which makes decode∘encode the identity.
const textDecoder = new TextDecoder('utf-8', { fatal: true });

export function utf8(s: string): Uint8Array {
  return textEncoder.encode(s);
}

/** Bytes of a string, UTF-8. Used for limits: limits are on bytes, not on UTF-16 code units. */
export function utf8Length(s: string): number {
  return Buffer.byteLength(s, 'utf8');
}

export class Writer {
  private buf: Uint8Array;
  private view: DataView;
  private pos = 0;

  constructor(initialBytes = 256) {
    this.buf = new Uint8Array(initialBytes);
    this.view = new DataView(this.buf.buffer);
  }

  private reserve(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }

  get length(): number {
    return this.pos;
  }

  u8(v: number): this {
    this.reserve(1);
    this.buf[this.pos++] = v;
    return this;
  }

  u16(v: number): this {
    this.reserve(2);
    this.view.setUint16(this.pos, v);
    this.pos += 2;
    return this;
  }

  u32(v: number): this {
    this.reserve(4);
    this.view.setUint32(this.pos, v);
    this.pos += 4;
    return this;
  }

  /** A non-negative safe integer as 8 bytes big-endian. */
  u64(v: number): this {
    if (!Number.isSafeInteger(v) || v < 0) throw new RangeError(`u64 out of range: ${v}`);
    this.reserve(8);
    this.view.setUint32(this.pos, Math.floor(v / 0x1_0000_0000));
    this.view.setUint32(this.pos + 4, v >>> 0);
    this.pos += 8;
    return this;
  }

  /** Raw bytes, no length prefix (fixed-size fields: hashes, keys, signatures). */
  raw(b: Uint8Array): this {
    this.reserve(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  bytes8(b: Uint8Array): this {
    if (b.length > 0xff) throw new RangeError(`bytes8 too long: ${b.length}`);
    return this.u8(b.length).raw(b);
  }

  bytes16(b: Uint8Array): this {
    if (b.length > 0xffff) throw new RangeError(`bytes16 too long: ${b.length}`);
    return this.u16(b.length).raw(b);
  }

  bytes32(b: Uint8Array): this {
    return this.u32(b.length).raw(b);
  }

  str16(s: string): this {
    return this.bytes16(utf8(s));
  }

  str32(s: string): this {
    return this.bytes32(utf8(s));
  }

  /** An unsigned big integer as a u8 length + minimal big-endian bytes (0 = zero length). */
  biguint(v: bigint): this {
    if (v < 0n) throw new RangeError('biguint must be non-negative');
    return this.bytes8(bigintToBytes(v));
  }

  finish(): Uint8Array {
    return this.buf.slice(0, this.pos);
  }
}

export class Reader {
  private readonly view: DataView;
  pos = 0;

  /** `code` is the error code thrown on malformed input (TxMalformed, BlockMalformed, ...). */
  constructor(
    private readonly buf: Uint8Array,
    private readonly code: ChainErrorCode,
    private readonly what: string,
  ) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }

  fail(reason: string): never {
    throw new ChainError(this.code, `malformed ${this.what}: ${reason} (at byte ${this.pos} of ${this.buf.length})`, {
      offset: this.pos,
      length: this.buf.length,
    });
  }

  private need(n: number): void {
    if (this.pos + n > this.buf.length) this.fail(`needs ${n} more bytes, ${this.buf.length - this.pos} left`);
  }

  get remaining(): number {
    return this.buf.length - this.pos;
  }

  u8(): number {
    this.need(1);
    return this.buf[this.pos++];
  }

  u16(): number {
    this.need(2);
    const v = this.view.getUint16(this.pos);
    this.pos += 2;
    return v;
  }

  u32(): number {
    this.need(4);
    const v = this.view.getUint32(this.pos);
    this.pos += 4;
    return v;
  }

  u64(): number {
    this.need(8);
    const hi = this.view.getUint32(this.pos);
    const lo = this.view.getUint32(this.pos + 4);
    this.pos += 8;
    if (hi > 0x1f_ffff) this.fail('u64 above 2^53');
    return hi * 0x1_0000_0000 + lo;
  }

  /** A view into the buffer (no copy). Copy with .slice() when keeping it beyond the buffer's life. */
  raw(n: number): Uint8Array {
    this.need(n);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }

  bytes8(max = 0xff): Uint8Array {
    const n = this.u8();
    if (n > max) this.fail(`field of ${n} bytes over its limit of ${max}`);
    return this.raw(n);
  }

  bytes16(max = 0xffff): Uint8Array {
    const n = this.u16();
    if (n > max) this.fail(`field of ${n} bytes over its limit of ${max}`);
    return this.raw(n);
  }

  bytes32(max: number): Uint8Array {
    const n = this.u32();
    if (n > max) this.fail(`field of ${n} bytes over its limit of ${max}`);
    return this.raw(n);
  }

  private decodeUtf8(b: Uint8Array): string {
    try {
      return textDecoder.decode(b);
    } catch {
      return this.fail('invalid UTF-8');
    }
  }

  str16(max = 0xffff): string {
    return this.decodeUtf8(this.bytes16(max));
  }

  str32(max: number): string {
    return this.decodeUtf8(this.bytes32(max));
  }

  biguint(maxBytes = 32): bigint {
    const b = this.bytes8(maxBytes);
    if (b.length > 0 && b[0] === 0) this.fail('big integer with a leading zero byte (not minimal)');
    return bytesToBigint(b);
  }

  /** Refuses trailing bytes: a canonical encoding has exactly one length. */
  end(): void {
    if (this.pos !== this.buf.length) this.fail(`${this.buf.length - this.pos} trailing bytes`);
  }
}

export function bigintToBytes(v: bigint): Uint8Array {
  if (v === 0n) return new Uint8Array(0);
  let hex = v.toString(16);
  if (hex.length % 2) hex = '0' + hex;
  return Uint8Array.from(Buffer.from(hex, 'hex'));
}

export function bytesToBigint(b: Uint8Array): bigint {
  if (b.length === 0) return 0n;
  return BigInt('0x' + Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex'));
}

// --- hex -------------------------------------------------------------------------------------

export function toHex(b: Uint8Array): string {
  return '0x' + Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

/** Bare hex without 0x (map keys). */
export function toHexBare(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');
}

const HEX_RE = /^(0x)?([0-9a-fA-F]{2})*$/;

/** Parses 0x-hex (or bare hex). Returns undefined when it is not hex or not `expectedBytes` long. */
export function fromHex(s: string, expectedBytes?: number): Uint8Array | undefined {
  if (typeof s !== 'string' || !HEX_RE.test(s)) return undefined;
  const body = s.startsWith('0x') ? s.slice(2) : s;
  if (expectedBytes !== undefined && body.length !== expectedBytes * 2) return undefined;
  return Uint8Array.from(Buffer.from(body, 'hex'));
}

export function bytesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

export function concatBytes(parts: readonly Uint8Array[]): Uint8Array {
  let n = 0;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
