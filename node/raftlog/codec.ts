// On-disk encoding of the Raft log: keys and checksummed, versioned records.
//
// Keys (binary, compared bytewise by LevelDB):
//   0x00 'i'            identity   (raftId, clusterId, incarnation, createdAtMs)
//   0x00 'h'            hard state (term, vote, commit)
//   0x00 's'            snapshot   (index, term, confState, data)
//   0x00 'c'            compaction point (index and term of the last dropped entry)
//   0x00 'w'            writeSeq   (bumped by every batch; see level-storage.ts header)
//   0x01 u64be(index)   one log entry. Fixed-width big-endian, so key order is index order and
//                       a range scan reads the log in order.
//
// Record (every value): [format u8][kind u8][payload][crc32 u32be]
//   format — FORMAT_VERSION; a reader refuses versions it does not know rather than guess.
//   kind   — what the record is, so a value found under the wrong key is caught.
//   crc32  — zlib CRC-32 over key ‖ format ‖ kind ‖ payload. Covering the key catches a record
//            written to, or read from, the wrong place (a misdirected write), not only bit rot.
//            At the end, so one allocation and two CRC calls encode an entry (the hot path).
// u64 fields hold integers below 2^53 (checked on decode), written as two u32be halves.

import { crc32 } from 'node:zlib';
import type {
  ConfState,
  Entry,
  EntryType,
  HardState,
  LogIndex,
  RaftId,
  Snapshot,
  Term,
} from '../../consensus/types.js';
import { StorageError, StorageErrorCode } from './errors.js';

export const FORMAT_VERSION = 1;
const TWO_32 = 0x1_0000_0000;
/** format + kind before the payload, crc32 after it. */
const HEADER_BYTES = 2;
const TRAILER_BYTES = 4;

export enum RecordKind {
  Identity = 1,
  HardState = 2,
  Snapshot = 3,
  Compacted = 4,
  WriteSeq = 5,
  Entry = 6,
}

const META = 0x00;
const ENTRY = 0x01;
export const KEY_IDENTITY = Uint8Array.of(META, 0x69);
export const KEY_HARD_STATE = Uint8Array.of(META, 0x68);
export const KEY_SNAPSHOT = Uint8Array.of(META, 0x73);
export const KEY_COMPACTED = Uint8Array.of(META, 0x63);
export const KEY_WRITE_SEQ = Uint8Array.of(META, 0x77);
/** Every entry key is >= ENTRY_KEY_MIN and < ENTRY_KEY_END. */
export const ENTRY_KEY_MIN = entryKey(0);
export const ENTRY_KEY_END = Uint8Array.of(ENTRY + 1);

export function entryKey(index: number): Uint8Array {
  const key = new Uint8Array(9);
  key[0] = ENTRY;
  writeU64Bytes(key, 1, index);
  return key;
}

export function isEntryKey(key: Uint8Array): boolean {
  return key.length === 9 && key[0] === ENTRY;
}

export function entryIndexOfKey(key: Uint8Array): number {
  return readU64(new DataView(key.buffer, key.byteOffset, key.byteLength), 1, 'entry key');
}

export function keyName(key: Uint8Array): string {
  if (isEntryKey(key)) return `entry ${entryIndexOfKey(key)}`;
  if (key.length === 2 && key[0] === META) return `meta '${String.fromCharCode(key[1])}'`;
  return `key ${Buffer.from(key).toString('hex')}`;
}

// ------------------------------------------------------------------ records

function seal(key: Uint8Array, kind: RecordKind, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(HEADER_BYTES + payload.length + TRAILER_BYTES);
  out.set(payload, HEADER_BYTES);
  return sealInPlace(key, kind, out);
}

/** Fills in the header and checksum of a record whose payload is already in place. */
function sealInPlace(key: Uint8Array, kind: RecordKind, out: Uint8Array): Uint8Array {
  out[0] = FORMAT_VERSION;
  out[1] = kind;
  const end = out.length - TRAILER_BYTES;
  const c = crc32(out.subarray(0, end), crc32(key)) >>> 0;
  out[end] = c >>> 24;
  out[end + 1] = (c >>> 16) & 0xff;
  out[end + 2] = (c >>> 8) & 0xff;
  out[end + 3] = c & 0xff;
  return out;
}

/** Verifies a record's header and checksum and returns its payload; throws StorageError otherwise. */
export function open(key: Uint8Array, kind: RecordKind, record: Uint8Array): Uint8Array {
  if (record.length < HEADER_BYTES + TRAILER_BYTES || record[0] !== FORMAT_VERSION) return refuse(key, record);
  const end = record.length - TRAILER_BYTES;
  const stored = new DataView(record.buffer, record.byteOffset, record.byteLength).getUint32(end, false);
  const computed = crc32(record.subarray(0, end), crc32(key)) >>> 0;
  if (stored !== computed || record[1] !== kind) return refuse(key, record, kind);
  return record.subarray(HEADER_BYTES, end);
}

/** The error for a record `open` did not accept, worked out only then (the names cost strings). */
function refuse(key: Uint8Array, record: Uint8Array, kind?: RecordKind): never {
  const where = keyName(key);
  if (record.length < HEADER_BYTES) {
    throw corrupted(`${where}: record of ${record.length} bytes is shorter than its header`, { key: where });
  }
  if (record[0] !== FORMAT_VERSION) {
    if (record[0] > FORMAT_VERSION) {
      throw new StorageError(
        StorageErrorCode.UnsupportedFormat,
        `${where}: record format ${record[0]} is newer than this program's ${FORMAT_VERSION}: run a newer quorate ` +
          '(if no newer version ever wrote to this directory, the record is corrupted)',
        { key: where, format: record[0], supported: FORMAT_VERSION },
      );
    }
    throw corrupted(`${where}: unknown record format ${record[0]}`, { key: where, format: record[0] });
  }
  if (record.length < HEADER_BYTES + TRAILER_BYTES) {
    throw corrupted(`${where}: record of ${record.length} bytes is shorter than its header and checksum`, {
      key: where,
    });
  }
  const end = record.length - TRAILER_BYTES;
  const stored = new DataView(record.buffer, record.byteOffset, record.byteLength).getUint32(end, false);
  const computed = crc32(record.subarray(0, end), crc32(key)) >>> 0;
  if (stored !== computed) {
    throw corrupted(`${where}: checksum mismatch (stored ${hex32(stored)}, computed ${hex32(computed)})`, {
      key: where,
      stored,
      computed,
    });
  }
  throw corrupted(`${where}: holds a record of kind ${record[1]}, expected ${kind}`, {
    key: where,
    kind: record[1],
    expected: kind,
  });
}

export function corrupted(message: string, meta: Record<string, unknown> = {}): StorageError {
  return new StorageError(
    StorageErrorCode.Corrupted,
    `Raft log corrupted: ${message}. Do not repair it by hand: remove this node from the cluster and re-add it under a new id.`,
    meta,
  );
}

function hex32(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

// ------------------------------------------------------------------ payloads

/** The key and record of an entry, in one allocation each (the hot path of every save). */
export function encodeEntry(entry: Entry): { key: Uint8Array; value: Uint8Array } {
  const key = entryKey(entry.index);
  const out = new Uint8Array(HEADER_BYTES + 9 + entry.data.length + TRAILER_BYTES);
  writeU64Bytes(out, HEADER_BYTES, entry.term);
  out[HEADER_BYTES + 8] = entry.type;
  out.set(entry.data, HEADER_BYTES + 9);
  return { key, value: sealInPlace(key, RecordKind.Entry, out) };
}

export function decodeEntry(key: Uint8Array, record: Uint8Array): Entry {
  const index = entryIndexOfKey(key);
  const p = open(key, RecordKind.Entry, record);
  if (p.length < 9) throw corrupted(`entry ${index}: payload of ${p.length} bytes`);
  const view = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const type = p[8];
  if (type !== 0 && type !== 1) throw corrupted(`entry ${index}: unknown entry type ${type}`);
  // Copy the data out: the record buffer may be a slice of a larger one LevelDB handed us.
  return {
    index: index as LogIndex,
    term: readU64(view, 0, 'term') as Term,
    type: type as EntryType,
    data: p.slice(9),
  };
}

export function encodeHardState(hs: HardState): Uint8Array {
  const payload = new Uint8Array(24);
  const view = new DataView(payload.buffer);
  writeU64(view, 0, hs.term);
  writeU64(view, 8, hs.vote);
  writeU64(view, 16, hs.commit);
  return seal(KEY_HARD_STATE, RecordKind.HardState, payload);
}

export function decodeHardState(record: Uint8Array): HardState {
  const p = open(KEY_HARD_STATE, RecordKind.HardState, record);
  if (p.length !== 24) throw corrupted(`hard state: payload of ${p.length} bytes`);
  const view = new DataView(p.buffer, p.byteOffset, p.byteLength);
  return {
    term: readU64(view, 0, 'term') as Term,
    vote: readU64(view, 8, 'vote') as RaftId,
    commit: readU64(view, 16, 'commit') as LogIndex,
  };
}

export function encodeCompacted(c: { index: LogIndex; term: Term }): Uint8Array {
  const payload = new Uint8Array(16);
  const view = new DataView(payload.buffer);
  writeU64(view, 0, c.index);
  writeU64(view, 8, c.term);
  return seal(KEY_COMPACTED, RecordKind.Compacted, payload);
}

export function decodeCompacted(record: Uint8Array): { index: LogIndex; term: Term } {
  const p = open(KEY_COMPACTED, RecordKind.Compacted, record);
  if (p.length !== 16) throw corrupted(`compaction point: payload of ${p.length} bytes`);
  const view = new DataView(p.buffer, p.byteOffset, p.byteLength);
  return { index: readU64(view, 0, 'index') as LogIndex, term: readU64(view, 8, 'term') as Term };
}

export function encodeWriteSeq(seq: number): Uint8Array {
  const payload = new Uint8Array(8);
  writeU64(new DataView(payload.buffer), 0, seq);
  return seal(KEY_WRITE_SEQ, RecordKind.WriteSeq, payload);
}

export function decodeWriteSeq(record: Uint8Array): number {
  const p = open(KEY_WRITE_SEQ, RecordKind.WriteSeq, record);
  if (p.length !== 8) throw corrupted(`writeSeq: payload of ${p.length} bytes`);
  return readU64(new DataView(p.buffer, p.byteOffset, p.byteLength), 0, 'writeSeq');
}

/** Snapshot payload: index u64, term u64, confState JSON length u32, confState JSON, data. */
export function encodeSnapshot(snap: Snapshot): Uint8Array {
  const conf = Buffer.from(JSON.stringify(snap.metadata.confState), 'utf8');
  const payload = new Uint8Array(20 + conf.length + snap.data.length);
  const view = new DataView(payload.buffer);
  writeU64(view, 0, snap.metadata.index);
  writeU64(view, 8, snap.metadata.term);
  view.setUint32(16, conf.length, false);
  payload.set(conf, 20);
  payload.set(snap.data, 20 + conf.length);
  return seal(KEY_SNAPSHOT, RecordKind.Snapshot, payload);
}

export function decodeSnapshot(record: Uint8Array): Snapshot {
  const p = open(KEY_SNAPSHOT, RecordKind.Snapshot, record);
  if (p.length < 20) throw corrupted(`snapshot: payload of ${p.length} bytes`);
  const view = new DataView(p.buffer, p.byteOffset, p.byteLength);
  const confBytes = view.getUint32(16, false);
  if (20 + confBytes > p.length) throw corrupted(`snapshot: conf state length ${confBytes} overruns the record`);
  let confState: ConfState;
  try {
    confState = parseConfState(JSON.parse(Buffer.from(p.subarray(20, 20 + confBytes)).toString('utf8')));
  } catch (cause) {
    throw corrupted(`snapshot: conf state does not parse (${(cause as Error).message})`);
  }
  return {
    metadata: { index: readU64(view, 0, 'index') as LogIndex, term: readU64(view, 8, 'term') as Term, confState },
    data: p.slice(20 + confBytes),
  };
}

function parseConfState(v: unknown): ConfState {
  const o = v as Record<string, unknown>;
  const ids = (name: string): RaftId[] => {
    const a = o?.[name];
    if (!Array.isArray(a) || !a.every((x) => Number.isSafeInteger(x) && x >= 1))
      throw new Error(`${name} is not a list of raft ids`);
    return a as RaftId[];
  };
  if (typeof o?.autoLeave !== 'boolean') throw new Error('autoLeave is not a boolean');
  return {
    voters: ids('voters'),
    votersOutgoing: ids('votersOutgoing'),
    learners: ids('learners'),
    learnersNext: ids('learnersNext'),
    autoLeave: o.autoLeave,
  };
}

export interface IdentityRecord {
  /** This node's Raft id; 0 (NO_NODE) until a joining node is assigned one. */
  readonly raftId: RaftId;
  /** The cluster this log belongs to (e.g. the genesis hash). */
  readonly clusterId: string;
  /** A random id made when this directory was created. A node that lost its directory comes back
   *  with a new one, which its peers can see (see level-storage.ts header). */
  readonly incarnation: string;
  /** Wall-clock time the directory was created, for operators only (never used by Raft). */
  readonly createdAtMs: number;
}

/** Upper bound on the clusterId, in bytes of UTF-8: it is an id, not a document. */
export const MAX_CLUSTER_ID_BYTES = 256;

export function encodeIdentity(id: IdentityRecord): Uint8Array {
  const json = Buffer.from(JSON.stringify(id), 'utf8');
  return seal(KEY_IDENTITY, RecordKind.Identity, json);
}

export function decodeIdentity(record: Uint8Array): IdentityRecord {
  const p = open(KEY_IDENTITY, RecordKind.Identity, record);
  let o: Record<string, unknown>;
  try {
    o = JSON.parse(Buffer.from(p).toString('utf8')) as Record<string, unknown>;
  } catch (cause) {
    throw corrupted(`identity: does not parse (${(cause as Error).message})`);
  }
  if (
    !Number.isSafeInteger(o.raftId) ||
    (o.raftId as number) < 0 ||
    typeof o.clusterId !== 'string' ||
    typeof o.incarnation !== 'string' ||
    !Number.isSafeInteger(o.createdAtMs)
  ) {
    throw corrupted('identity: fields missing or of the wrong type', { identity: o });
  }
  return {
    raftId: o.raftId as RaftId,
    clusterId: o.clusterId,
    incarnation: o.incarnation,
    createdAtMs: o.createdAtMs as number,
  };
}

// ------------------------------------------------------------------ integers

function writeU64(view: DataView, at: number, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`u64 field: ${n} is not a non-negative safe integer`);
  view.setUint32(at, Math.floor(n / TWO_32), false);
  view.setUint32(at + 4, n >>> 0, false);
}

/** writeU64 without a DataView: big-endian bytes by hand, for the per-entry hot path. */
function writeU64Bytes(out: Uint8Array, at: number, n: number): void {
  if (!Number.isSafeInteger(n) || n < 0) throw new RangeError(`u64 field: ${n} is not a non-negative safe integer`);
  const hi = Math.floor(n / TWO_32);
  const lo = n >>> 0;
  out[at] = hi >>> 24;
  out[at + 1] = (hi >>> 16) & 0xff;
  out[at + 2] = (hi >>> 8) & 0xff;
  out[at + 3] = hi & 0xff;
  out[at + 4] = lo >>> 24;
  out[at + 5] = (lo >>> 16) & 0xff;
  out[at + 6] = (lo >>> 8) & 0xff;
  out[at + 7] = lo & 0xff;
}

function readU64(view: DataView, at: number, what: string): number {
  const hi = view.getUint32(at, false);
  if (hi >= 0x20_0000) throw corrupted(`${what}: value above 2^53`);
  return hi * TWO_32 + view.getUint32(at + 4, false);
}
