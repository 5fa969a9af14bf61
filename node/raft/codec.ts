// Binary wire encoding of Raft messages, for the p2p `raft` channel.
//
// Why binary: a leader under load sends thousands of App messages per second, each carrying
// encoded blocks; JSON would base64 every block and dominate the CPU profile. The layout is
// fixed-width little-endian with explicit lengths, version-tagged, and decoding is strict:
// every length is bounded and checked against the remaining bytes, and trailing bytes are
// refused. A peer's bad frame yields a typed error, never a crash.

import {
  EntryType,
  MessageType,
  type ConfState,
  type Entry,
  type LogIndex,
  type Message,
  type RaftId,
  type Snapshot,
  type Term,
} from '../../consensus/index.js';

const CODEC_VERSION = 1;

/** Upper bound on one encoded Raft message; larger frames are refused on both ends. */
export const MAX_RAFT_MESSAGE_BYTES = 64 * 1024 * 1024;
/** Upper bound on entries in one App message (the core bounds bytes; this bounds count). */
export const MAX_ENTRIES_PER_MESSAGE = 100_000;
/** Upper bound on member ids listed in a snapshot's ConfState. */
const MAX_CONF_IDS = 10_000;

const TYPE_CODES: readonly MessageType[] = [
  MessageType.App,
  MessageType.AppResp,
  MessageType.Vote,
  MessageType.VoteResp,
  MessageType.PreVote,
  MessageType.PreVoteResp,
  MessageType.Heartbeat,
  MessageType.HeartbeatResp,
  MessageType.Snap,
  MessageType.TimeoutNow,
  MessageType.Prop,
  MessageType.ReadIndex,
  MessageType.ReadIndexResp,
  MessageType.TransferLeader,
];
const TYPE_TO_CODE = new Map<MessageType, number>(TYPE_CODES.map((t, i) => [t, i]));

export class RaftCodecError extends Error {
  readonly code = 'RAFT_CODEC_INVALID' as const;
  constructor(message: string) {
    super(message);
    this.name = 'RaftCodecError';
  }
}

class Writer {
  private buf: Uint8Array;
  private view: DataView;
  private pos = 0;
  constructor(initialBytes: number) {
    this.buf = new Uint8Array(initialBytes);
    this.view = new DataView(this.buf.buffer);
  }
  private ensure(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + n) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.buf.subarray(0, this.pos));
    this.buf = next;
    this.view = new DataView(next.buffer);
  }
  u8(v: number): void {
    this.ensure(1);
    this.buf[this.pos++] = v;
  }
  u32(v: number): void {
    this.ensure(4);
    this.view.setUint32(this.pos, v, true);
    this.pos += 4;
  }
  /** An integer in [0, 2^53): Raft terms, indexes and ids. */
  u53(v: number): void {
    if (!Number.isSafeInteger(v) || v < 0) throw new RaftCodecError(`not a non-negative safe integer: ${v}`);
    this.ensure(8);
    this.view.setUint32(this.pos, v % 0x1_0000_0000, true);
    this.view.setUint32(this.pos + 4, Math.floor(v / 0x1_0000_0000), true);
    this.pos += 8;
  }
  bytes(b: Uint8Array): void {
    this.u32(b.length);
    this.ensure(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
  }
  ids(ids: readonly RaftId[]): void {
    this.u32(ids.length);
    for (const id of ids) this.u53(id);
  }
  finish(): Uint8Array {
    return this.buf.subarray(0, this.pos);
  }
}

class Reader {
  private pos = 0;
  private readonly view: DataView;
  constructor(private readonly buf: Uint8Array) {
    this.view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  }
  private need(n: number, what: string): void {
    if (this.pos + n > this.buf.length) {
      throw new RaftCodecError(
        `truncated raft message: ${what} needs ${n} bytes at offset ${this.pos} of ${this.buf.length}`,
      );
    }
  }
  u8(what: string): number {
    this.need(1, what);
    return this.buf[this.pos++];
  }
  u32(what: string): number {
    this.need(4, what);
    const v = this.view.getUint32(this.pos, true);
    this.pos += 4;
    return v;
  }
  u53(what: string): number {
    this.need(8, what);
    const lo = this.view.getUint32(this.pos, true);
    const hi = this.view.getUint32(this.pos + 4, true);
    this.pos += 8;
    if (hi > 0x1f_ffff) throw new RaftCodecError(`${what} exceeds 2^53`);
    return hi * 0x1_0000_0000 + lo;
  }
  bytes(what: string): Uint8Array {
    const len = this.u32(`${what} length`);
    this.need(len, what);
    // A copy, so a retained entry does not pin the whole receive buffer.
    const out = this.buf.slice(this.pos, this.pos + len);
    this.pos += len;
    return out;
  }
  ids(what: string): RaftId[] {
    const n = this.u32(`${what} count`);
    if (n > MAX_CONF_IDS) throw new RaftCodecError(`${what}: ${n} ids exceeds limit ${MAX_CONF_IDS}`);
    const out: RaftId[] = [];
    for (let i = 0; i < n; i++) out.push(this.u53(what) as RaftId);
    return out;
  }
  end(): void {
    if (this.pos !== this.buf.length) {
      throw new RaftCodecError(`raft message has ${this.buf.length - this.pos} trailing bytes`);
    }
  }
}

const FLAG_REJECT = 1;
const FLAG_SNAPSHOT = 2;
const FLAG_CONTEXT = 4;
const FLAG_AUTO_LEAVE = 1;

export function encodeRaftMessage(m: Message): Uint8Array {
  const code = TYPE_TO_CODE.get(m.type);
  if (code === undefined) throw new RaftCodecError(`unknown message type ${String(m.type)}`);
  let sizeHint = 96;
  for (const e of m.entries) sizeHint += 24 + e.data.length;
  if (m.snapshot) sizeHint += m.snapshot.data.length + 64;
  const w = new Writer(sizeHint);
  w.u8(CODEC_VERSION);
  w.u8(code);
  w.u8((m.reject ? FLAG_REJECT : 0) | (m.snapshot ? FLAG_SNAPSHOT : 0) | (m.context ? FLAG_CONTEXT : 0));
  w.u53(m.from);
  w.u53(m.to);
  w.u53(m.term);
  w.u53(m.logTerm);
  w.u53(m.index);
  w.u53(m.commit);
  w.u53(m.rejectHint);
  w.u32(m.entries.length);
  for (const e of m.entries) {
    w.u53(e.term);
    w.u53(e.index);
    w.u8(e.type);
    w.bytes(e.data);
  }
  if (m.snapshot) {
    const md = m.snapshot.metadata;
    w.u53(md.index);
    w.u53(md.term);
    w.ids(md.confState.voters);
    w.ids(md.confState.votersOutgoing);
    w.ids(md.confState.learners);
    w.ids(md.confState.learnersNext);
    w.u8(md.confState.autoLeave ? FLAG_AUTO_LEAVE : 0);
    w.bytes(m.snapshot.data);
  }
  if (m.context) w.bytes(m.context);
  const out = w.finish();
  if (out.length > MAX_RAFT_MESSAGE_BYTES) {
    throw new RaftCodecError(`raft message of ${out.length} bytes exceeds limit ${MAX_RAFT_MESSAGE_BYTES}`);
  }
  return out;
}

export function decodeRaftMessage(buf: Uint8Array): Message {
  if (buf.length > MAX_RAFT_MESSAGE_BYTES) {
    throw new RaftCodecError(`raft message of ${buf.length} bytes exceeds limit ${MAX_RAFT_MESSAGE_BYTES}`);
  }
  const r = new Reader(buf);
  const version = r.u8('version');
  if (version !== CODEC_VERSION) throw new RaftCodecError(`unsupported raft codec version ${version}`);
  const code = r.u8('type');
  const type = TYPE_CODES[code];
  if (type === undefined) throw new RaftCodecError(`unknown raft message type code ${code}`);
  const flags = r.u8('flags');
  const from = r.u53('from') as RaftId;
  const to = r.u53('to') as RaftId;
  const term = r.u53('term') as Term;
  const logTerm = r.u53('logTerm') as Term;
  const index = r.u53('index') as LogIndex;
  const commit = r.u53('commit') as LogIndex;
  const rejectHint = r.u53('rejectHint') as LogIndex;
  const entryCount = r.u32('entry count');
  if (entryCount > MAX_ENTRIES_PER_MESSAGE) {
    throw new RaftCodecError(`${entryCount} entries exceeds limit ${MAX_ENTRIES_PER_MESSAGE}`);
  }
  const entries: Entry[] = [];
  for (let i = 0; i < entryCount; i++) {
    const eTerm = r.u53('entry term') as Term;
    const eIndex = r.u53('entry index') as LogIndex;
    const eType = r.u8('entry type');
    if (eType !== EntryType.Normal && eType !== EntryType.ConfChange) {
      throw new RaftCodecError(`unknown entry type ${eType}`);
    }
    entries.push({ term: eTerm, index: eIndex, type: eType, data: r.bytes('entry data') });
  }
  let snapshot: Snapshot | undefined;
  if (flags & FLAG_SNAPSHOT) {
    const sIndex = r.u53('snapshot index') as LogIndex;
    const sTerm = r.u53('snapshot term') as Term;
    const confState: ConfState = {
      voters: r.ids('voters'),
      votersOutgoing: r.ids('votersOutgoing'),
      learners: r.ids('learners'),
      learnersNext: r.ids('learnersNext'),
      autoLeave: (r.u8('autoLeave') & FLAG_AUTO_LEAVE) !== 0,
    };
    snapshot = { metadata: { index: sIndex, term: sTerm, confState }, data: r.bytes('snapshot data') };
  }
  const context = flags & FLAG_CONTEXT ? r.bytes('context') : undefined;
  r.end();
  return {
    type,
    from,
    to,
    term,
    logTerm,
    index,
    entries,
    commit,
    reject: (flags & FLAG_REJECT) !== 0,
    rejectHint,
    ...(snapshot ? { snapshot } : {}),
    ...(context ? { context } : {}),
  };
}
