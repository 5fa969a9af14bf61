// DIR/raft.seq — the sidecar that lets LevelRaftStorage notice that its database was rolled back
// (an old copy of DIR/log restored). See level-storage.ts's header for the design.
//
// Layout, SEQ_FILE_BYTES bytes, always written whole at offset 0:
//   "QRSQ" | version u8 | 3 reserved | writeSeq u64be | incarnation 16 bytes | crc32 u32be (of all before)
// 36 bytes sit inside one disk sector, so an in-place overwrite is not torn in practice; the CRC
// catches it if it ever is.

import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync } from 'node:fs';
import { crc32 } from 'node:zlib';
import { join } from 'node:path';

export const SEQ_FILE_NAME = 'raft.seq';
export const SEQ_FILE_BYTES = 36;
const MAGIC = [0x51, 0x52, 0x53, 0x51]; // "QRSQ"
const VERSION = 1;

export interface SeqRecord {
  readonly writeSeq: number;
  /** Hex of the 16-byte incarnation id (the identity record's `incarnation`). */
  readonly incarnation: string;
}

export type SeqFileRead =
  { kind: 'missing' } | { kind: 'unreadable'; reason: string } | { kind: 'ok'; record: SeqRecord };

export function encodeSeq(record: SeqRecord): Uint8Array {
  const out = new Uint8Array(SEQ_FILE_BYTES);
  out.set(MAGIC, 0);
  out[4] = VERSION;
  const view = new DataView(out.buffer);
  view.setUint32(8, Math.floor(record.writeSeq / 0x1_0000_0000), false);
  view.setUint32(12, record.writeSeq >>> 0, false);
  const inc = Buffer.from(record.incarnation, 'hex');
  if (inc.length !== 16) throw new RangeError(`incarnation ${record.incarnation} is not 16 bytes of hex`);
  out.set(inc, 16);
  view.setUint32(32, crc32(out.subarray(0, 32)) >>> 0, false);
  return out;
}

export function readSeqFile(dir: string): SeqFileRead {
  let bytes: Buffer;
  try {
    bytes = readFileSync(join(dir, SEQ_FILE_NAME));
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return { kind: 'missing' };
    throw err;
  }
  if (bytes.length !== SEQ_FILE_BYTES)
    return { kind: 'unreadable', reason: `${bytes.length} bytes, expected ${SEQ_FILE_BYTES}` };
  if (!MAGIC.every((b, i) => bytes[i] === b)) return { kind: 'unreadable', reason: 'bad magic' };
  if (bytes[4] !== VERSION) return { kind: 'unreadable', reason: `unknown version ${bytes[4]}` };
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (view.getUint32(32, false) !== crc32(bytes.subarray(0, 32)) >>> 0)
    return { kind: 'unreadable', reason: 'checksum mismatch' };
  const hi = view.getUint32(8, false);
  if (hi >= 0x20_0000) return { kind: 'unreadable', reason: 'writeSeq above 2^53' };
  return {
    kind: 'ok',
    record: {
      writeSeq: hi * 0x1_0000_0000 + view.getUint32(12, false),
      incarnation: bytes.subarray(16, 32).toString('hex'),
    },
  };
}

/** Creates or replaces the file durably: temp file, fsync, rename, fsync of the directory. */
export function writeSeqFileDurably(dir: string, record: SeqRecord): void {
  const tmp = join(dir, `${SEQ_FILE_NAME}.tmp`);
  const fd = openSync(tmp, 'w');
  try {
    writeSync(fd, encodeSeq(record), 0, SEQ_FILE_BYTES, 0);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, join(dir, SEQ_FILE_NAME));
  fsyncDir(dir);
}

export function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** The open file, overwritten in place after every batch. */
export class SeqFile {
  private fd: number | null;

  constructor(dir: string) {
    this.fd = openSync(join(dir, SEQ_FILE_NAME), 'r+');
  }

  /**
   * Overwrites the record without fsync (one pwrite into the page cache, a few microseconds).
   * Synchronous on purpose: it runs between two LevelDB batches and a thread-pool round trip
   * would cost more than the write.
   */
  write(record: SeqRecord): void {
    if (this.fd === null) throw new Error('SeqFile: closed');
    writeSync(this.fd, encodeSeq(record), 0, SEQ_FILE_BYTES, 0);
  }

  /** fsync then close: on a clean shutdown the file is exact. */
  close(): void {
    if (this.fd === null) return;
    try {
      fsyncSync(this.fd);
    } finally {
      closeSync(this.fd);
      this.fd = null;
    }
  }
}
