// Streamed Raft snapshots: the small metadata Raft carries in Snapshot.data, and the out-of-band
// transfer of the public state it names, on the p2p channel "snapshot" (etcd's design: the Raft
// message names the snapshot, the state streams beside it; rafthttp's snapshot sender).
//
//   Raft Snapshot.data   = SNAPSHOT_META_MARKER (u32 LE 0xffffffff: no membership is that long, so
//                          it never reads as the older one-buffer framing) ‖ u8 version ‖ u64 applied
//                          index ‖ u64 head number ‖ [32] head hash ‖ [32] state root ‖ bytes32
//                          membership. Bounded by the membership, whatever the state's size. The
//                          snapshot's id is (applied index, head hash).
//
//   receiver (follower or joiner)                        sender (any member holding that snapshot's view)
//   OPEN  index, head hash, chunkBytes, startAfterKey, window ─► a session on the read view of that snapshot
//                                   ◄── OK session id ‖ head block ‖ granted window   (or BUSY / GONE / REFUSED)
//   NEXT  session, seq ───────────────────────────────► chunk `seq` of node/chain/snapshot.ts's stream
//                                          ◄── CHUNK bytes | END
//   CLOSE session ────────────────────────────────────► the session ends (also after an idle timeout)
//
// Flow control: a window of chunks (config raft.snapshotWindowChunks; the sender grants at most
// its own). The receiver keeps up to `window` NEXT requests outstanding (seq, seq+1, …); the sender
// reads its stream in order and answers each NEXT with that chunk, so the link stays busy while
// the receiver writes, and neither side holds more than about window × chunkBytes per transfer
// (the sender: the replies being written; the receiver: the replies not yet imported). A NEXT
// outside [next chunk, next chunk + window) is refused. The receiver still imports in stream
// order into the spare slot and checks the state root before anything switches over. A slow disk
// on the receiver slows the sender down: no NEXT goes out until a chunk is taken by the import.
// (Protocol 1, a window of one chunk, is still served: such a receiver asks one chunk at a time.)
// Each member keeps a consistent read view (a LevelDB snapshot) of its latest Raft snapshot open
// while the node keeps committing; an older view stays open while a session reads it and closes
// after. At most `maxConcurrentTransfers` sessions run on one sender; more are answered BUSY and
// the receiver retries later (never fatal). A cut transfer (crash, partition, leader change) is
// retried: the receiver resumes after the last key its import wrote (store progress record),
// from the same member or another one with the same snapshot; a snapshot superseded by a newer
// one starts over (the store clears the spare slot when the import's snapshot changes).
//
// Privacy: only public state travels (node/chain/snapshot.ts); the receiver replays its private
// transactions afterwards (node/private-catch-up.ts).

import type { PeerTransport } from '../p2p/transport.js';
import {
  ChainError,
  ChainErrorCode,
  MAX_BLOCK_BYTES,
  Reader,
  Writer,
  bytesEqual,
  decodeBlock,
  encodeBlock,
  importSnapshot,
  toHex,
  type Block,
  type ChainStore,
  type SnapshotView,
  type StoreSnapshot,
} from './chain/index.js';
import type { Clock } from './clock.js';
import type { Logger } from './log.js';

/** The p2p channel of snapshot transfers. */
export const CHANNEL_SNAPSHOT = 'snapshot';
/** Default number of transfers one member serves at once (config raft.snapshotMaxConcurrentTransfers). */
export const DEFAULT_SNAPSHOT_MAX_CONCURRENT_TRANSFERS = 2;
/**
 * Default flow-control window, in chunks in flight per transfer (config raft.snapshotWindowChunks):
 * with 1 MiB chunks, at most ~8 MiB per transfer on each side, enough to keep a loopback or LAN
 * link busy while the receiver writes.
 */
export const DEFAULT_SNAPSHOT_WINDOW_CHUNKS = 8;
/** Largest window accepted (config validation; the transport queues at most 2 × 64 MiB per peer). */
export const MAX_SNAPSHOT_WINDOW_CHUNKS = 64;
/** A session with no request for this long is closed (its receiver went away); it frees a transfer slot. */
export const SNAPSHOT_SESSION_IDLE_MS = 15_000;
/** How long one OPEN or NEXT may take before the receiver gives up on that member. */
export const SNAPSHOT_REQUEST_TIMEOUT_MS = 30_000;
/** Pause between two rounds of attempts over all members when none could serve (grows to the max). */
export const SNAPSHOT_RETRY_MIN_MS = 200;
export const SNAPSHOT_RETRY_MAX_MS = 5_000;
/** Largest membership in snapshot metadata (what bounds Snapshot.data now): far above any real member list. */
export const MAX_SNAPSHOT_META_MEMBERSHIP_BYTES = 4 * 1024 * 1024;
/** Longest error message carried back to a receiver. */
const MAX_REASON_CHARS = 300;

export const SNAPSHOT_META_MARKER = 0xffffffff;
const META_VERSION = 1;
/** Protocol 2 adds the window (OPEN and its reply); protocol 1 (one chunk at a time) is still served. */
const PROTOCOL_VERSION = 2;
const PROTOCOL_VERSION_STOP_AND_WAIT = 1;
/** What every release answers to a protocol it does not speak (a receiver then falls back to protocol 1). */
const UNKNOWN_VERSION = 'unknown protocol version';
const OP_OPEN = 1;
const OP_NEXT = 2;
const OP_CLOSE = 3;
const ST_OK = 0;
const ST_CHUNK = 1;
const ST_END = 2;
const ST_BUSY = 3;
const ST_GONE = 4;
const ST_REFUSED = 5;
const ST_MALFORMED = 6;

export enum SnapshotTransferErrorCode {
  /** The member serves its maximum of transfers already: retry later or ask another member. */
  Busy = 'SNAPSHOT_TRANSFER_BUSY',
  /** The member no longer (or never) had a view of that snapshot, or the session expired. */
  Gone = 'SNAPSHOT_TRANSFER_GONE',
  /** The requester is not a member. */
  Refused = 'SNAPSHOT_TRANSFER_REFUSED',
  /** A request or reply does not decode, or the stream is not the announced snapshot. */
  Malformed = 'SNAPSHOT_TRANSFER_MALFORMED',
  /** No member could serve the snapshot in this round (each one's error is in meta.errors). */
  Unavailable = 'SNAPSHOT_TRANSFER_UNAVAILABLE',
  /** The receiver's disk is full: the import is kept as far as it got and retried later. */
  DiskFull = 'SNAPSHOT_TRANSFER_DISK_FULL',
  /** The transfer was stopped (node shutting down, or a newer snapshot superseded it). */
  Aborted = 'SNAPSHOT_TRANSFER_ABORTED',
}

export class SnapshotTransferError extends Error {
  constructor(
    readonly code: SnapshotTransferErrorCode,
    message: string,
    readonly meta: Record<string, unknown> = {},
    options?: ErrorOptions,
  ) {
    super(message, options);
    this.name = 'SnapshotTransferError';
  }
}

// ------------------------------------------------------------------ metadata

/** What Raft's Snapshot.data carries for a streamed snapshot. */
export interface SnapshotMeta {
  readonly appliedRaftIndex: number;
  readonly headNumber: number;
  readonly headHash: Uint8Array;
  readonly stateRoot: Uint8Array;
  readonly membership: Uint8Array;
}

export function encodeSnapshotMeta(m: SnapshotMeta): Uint8Array {
  const body = new Writer(128 + m.membership.length)
    .u8(META_VERSION)
    .u64(m.appliedRaftIndex)
    .u64(m.headNumber)
    .raw(m.headHash)
    .raw(m.stateRoot)
    .bytes32(m.membership)
    .finish();
  const out = new Uint8Array(4 + body.length);
  new DataView(out.buffer).setUint32(0, SNAPSHOT_META_MARKER, true);
  out.set(body, 4);
  return out;
}

/** True when Snapshot.data is streamed-snapshot metadata (else the older one-buffer framing, or empty). */
export function isSnapshotMeta(data: Uint8Array): boolean {
  return (
    data.length >= 5 &&
    new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0, true) === SNAPSHOT_META_MARKER
  );
}

export function decodeSnapshotMeta(data: Uint8Array): SnapshotMeta {
  if (!isSnapshotMeta(data))
    throw new SnapshotTransferError(SnapshotTransferErrorCode.Malformed, 'not streamed-snapshot metadata');
  const r = new Reader(data.subarray(4), ChainErrorCode.SnapshotInvalid, 'snapshot metadata');
  const version = r.u8();
  if (version !== META_VERSION)
    throw new SnapshotTransferError(
      SnapshotTransferErrorCode.Malformed,
      `snapshot metadata version ${version}, this node reads ${META_VERSION}`,
    );
  const m = {
    appliedRaftIndex: r.u64(),
    headNumber: r.u64(),
    headHash: r.raw(32).slice(),
    stateRoot: r.raw(32).slice(),
    membership: r.bytes32(MAX_SNAPSHOT_META_MEMBERSHIP_BYTES).slice(),
  };
  r.end();
  return m;
}

// ------------------------------------------------------------------ sender

interface HeldView {
  readonly view: SnapshotView;
  sessions: number;
}

/** A NEXT waiting for its chunk. */
interface Waiter {
  resolve(reply: Uint8Array): void;
  reject(err: unknown): void;
}

interface Session {
  readonly id: number;
  readonly peerId: string;
  readonly held: HeldView;
  readonly stream: AsyncGenerator<Uint8Array>;
  /** The next chunk the stream yields (chunks are read, and answered, in this order). */
  seq: number;
  /** NEXTs accepted ahead of `seq`: at most `window` (granted at OPEN). */
  readonly window: number;
  readonly waiting: Map<number, Waiter>;
  /** The stream is being read (one reader per session). */
  pumping: boolean;
  lastUsedMs: number;
}

export interface SnapshotServerDeps {
  readonly clock: Clock;
  readonly logger: Logger;
  readonly isMember: (peerId: string) => boolean;
  readonly maxConcurrentTransfers: number;
  /** Largest window granted (raft.snapshotWindowChunks); default DEFAULT_SNAPSHOT_WINDOW_CHUNKS. */
  readonly maxWindowChunks?: number;
}

/** Serves this member's snapshot views to receivers (the "snapshot" channel's request handler). */
export class SnapshotServer {
  private readonly views = new Map<number, HeldView>();
  private latest: HeldView | undefined;
  private readonly sessions = new Map<number, Session>();
  private nextSessionId = 1;
  private closed = false;
  /** Counters for status and tests. */
  readonly stats = {
    transfersStarted: 0,
    /** Transfers that started after a key (the receiver had part of the snapshot already). */
    transfersResumed: 0,
    transfersFinished: 0,
    busyRefusals: 0,
    chunksSent: 0,
    bytesSent: 0,
  };

  constructor(private readonly deps: SnapshotServerDeps) {}

  /** A new Raft snapshot was taken: its view becomes the one served; an older one closes once unused. */
  publish(view: SnapshotView): void {
    if (this.closed) {
      void view.close();
      return;
    }
    const held: HeldView = { view, sessions: 0 };
    const old = this.views.get(view.appliedRaftIndex);
    this.views.set(view.appliedRaftIndex, held);
    this.latest = held;
    if (old && old.sessions === 0) void old.view.close();
    this.release();
  }

  /** Closes every session and view (node stop). */
  async close(): Promise<void> {
    this.closed = true;
    for (const s of [...this.sessions.values()]) await this.endSession(s);
    for (const h of this.views.values()) await h.view.close().catch(() => undefined);
    this.views.clear();
    this.latest = undefined;
  }

  /** Views older than the latest with no session reading them are closed. */
  private release(): void {
    for (const [index, h] of this.views)
      if (h !== this.latest && h.sessions === 0) {
        this.views.delete(index);
        void h.view.close().catch(() => undefined);
      }
  }

  /** Ends a session; NEXTs still waiting in it get `reply` (GONE unless the stream ended). */
  private async endSession(s: Session, reply: Uint8Array = status(ST_GONE, `session ${s.id} closed`)): Promise<void> {
    if (!this.sessions.delete(s.id)) return;
    for (const w of s.waiting.values()) w.resolve(reply);
    s.waiting.clear();
    s.held.sessions--;
    await s.stream.return(undefined).catch(() => undefined);
    this.release();
  }

  private async expireIdle(): Promise<void> {
    const now = this.deps.clock.monotonicMs();
    for (const s of [...this.sessions.values()])
      if (!s.pumping && s.waiting.size === 0 && now - s.lastUsedMs > SNAPSHOT_SESSION_IDLE_MS) await this.endSession(s);
  }

  /** The request handler of CHANNEL_SNAPSHOT. Never throws for a bad request: it answers with a status. */
  async handle(from: string, data: Uint8Array): Promise<Uint8Array> {
    try {
      return await this.answer(from, data);
    } catch (err) {
      if (err instanceof ChainError && err.code === ChainErrorCode.SnapshotInvalid)
        return status(ST_MALFORMED, err.message);
      throw err;
    }
  }

  private async answer(from: string, data: Uint8Array): Promise<Uint8Array> {
    if (this.closed) return status(ST_GONE, 'node is stopping');
    if (!this.deps.isMember(from)) return status(ST_REFUSED, 'not a member');
    await this.expireIdle();
    const r = new Reader(data, ChainErrorCode.SnapshotInvalid, 'snapshot transfer request');
    const version = r.u8();
    if (version !== PROTOCOL_VERSION && version !== PROTOCOL_VERSION_STOP_AND_WAIT)
      return status(ST_MALFORMED, UNKNOWN_VERSION);
    const op = r.u8();
    if (op === OP_OPEN) {
      const index = r.u64();
      const headHash = r.raw(32);
      const chunkBytes = r.u32();
      const startAfterKey = r.bytes16().slice();
      const asked = version === PROTOCOL_VERSION ? r.u16() : 1;
      r.end();
      const held = this.views.get(index);
      if (!held || !bytesEqual(held.view.head.hash, headHash))
        return status(
          ST_GONE,
          `no view of the snapshot at index ${index} here (latest: ${this.latest?.view.appliedRaftIndex ?? 'none'})`,
        );
      // A receiver that retries replaces its own earlier session (it was cut): it never locks itself out.
      for (const s of [...this.sessions.values()]) if (s.peerId === from) await this.endSession(s);
      if (this.sessions.size >= this.deps.maxConcurrentTransfers) {
        this.stats.busyRefusals++;
        return status(ST_BUSY, `${this.sessions.size} transfers running (raft.snapshotMaxConcurrentTransfers)`);
      }
      const stream = held.view.stream({ chunkBytes, ...(startAfterKey.length > 0 ? { startAfterKey } : {}) });
      const id = this.nextSessionId++;
      const window = Math.max(1, Math.min(asked, this.deps.maxWindowChunks ?? DEFAULT_SNAPSHOT_WINDOW_CHUNKS));
      held.sessions++;
      this.sessions.set(id, {
        id,
        peerId: from,
        held,
        stream,
        seq: 0,
        window,
        waiting: new Map(),
        pumping: false,
        lastUsedMs: this.deps.clock.monotonicMs(),
      });
      this.stats.transfersStarted++;
      if (startAfterKey.length > 0) this.stats.transfersResumed++;
      this.deps.logger.info(
        { to: from, index, session: id, resume: startAfterKey.length > 0, window },
        'snapshot transfer started',
      );
      const block = encodeBlock(held.view.head);
      const reply = new Writer(24 + block.length).u8(ST_OK).u64(id).bytes32(block);
      return (version === PROTOCOL_VERSION ? reply.u16(window) : reply).finish();
    }
    const id = r.u64();
    const s = this.sessions.get(id);
    if (op === OP_CLOSE) {
      r.end();
      if (s && s.peerId === from) await this.endSession(s);
      return status(ST_END, '');
    }
    if (op !== OP_NEXT) return status(ST_MALFORMED, `unknown op ${op}`);
    const seq = r.u32();
    r.end();
    if (!s || s.peerId !== from) return status(ST_GONE, `no session ${id}`);
    if (seq < s.seq || seq >= s.seq + s.window || s.waiting.has(seq))
      return status(
        ST_MALFORMED,
        `chunk ${seq} asked; chunks ${s.seq}..${s.seq + s.window - 1} may be (window ${s.window}), each once`,
      );
    s.lastUsedMs = this.deps.clock.monotonicMs();
    const reply = new Promise<Uint8Array>((resolve, reject) => s.waiting.set(seq, { resolve, reject }));
    void this.pump(s);
    return reply;
  }

  /** Reads the session's stream in order while the NEXT for its next chunk is waiting. */
  private async pump(s: Session): Promise<void> {
    if (s.pumping) return;
    s.pumping = true;
    try {
      for (let w = s.waiting.get(s.seq); w !== undefined; w = s.waiting.get(s.seq)) {
        s.waiting.delete(s.seq);
        let next: IteratorResult<Uint8Array>;
        try {
          next = await s.stream.next();
        } catch (err) {
          w.reject(err);
          await this.endSession(s);
          return;
        }
        s.seq++;
        s.lastUsedMs = this.deps.clock.monotonicMs();
        if (next.done) {
          this.stats.transfersFinished++;
          w.resolve(status(ST_END, ''));
          await this.endSession(s, status(ST_END, ''));
          return;
        }
        this.stats.chunksSent++;
        this.stats.bytesSent += next.value.length;
        const out = new Uint8Array(1 + next.value.length);
        out[0] = ST_CHUNK;
        out.set(next.value, 1);
        w.resolve(out);
      }
    } finally {
      s.pumping = false;
    }
  }
}

function status(code: number, message: string): Uint8Array {
  return new Writer(8 + message.length * 3).u8(code).str16(message.slice(0, MAX_REASON_CHARS)).finish();
}

// ------------------------------------------------------------------ receiver

export interface SnapshotFetchDeps {
  readonly transport: PeerTransport;
  readonly store: ChainStore;
  readonly logger: Logger;
  /** Largest chunk asked for and accepted (MIN_SNAPSHOT_CHUNK_BYTES..SNAPSHOT_CHUNK_BYTES). */
  readonly chunkBytes: number;
  /** Chunks asked for ahead (raft.snapshotWindowChunks; the sender may grant fewer). Default DEFAULT_SNAPSHOT_WINDOW_CHUNKS. */
  readonly windowChunks?: number;
  readonly requestTimeoutMs?: number;
}

/** Receiver-side counters (status, tests). */
export interface SnapshotFetchStats {
  attempts: number;
  chunksReceived: number;
  bytesReceived: number;
  refusals: number;
}

function transferErrorOf(code: number, message: string, peerId: string): SnapshotTransferError {
  const c =
    code === ST_BUSY
      ? SnapshotTransferErrorCode.Busy
      : code === ST_GONE
        ? SnapshotTransferErrorCode.Gone
        : code === ST_REFUSED
          ? SnapshotTransferErrorCode.Refused
          : SnapshotTransferErrorCode.Malformed;
  return new SnapshotTransferError(c, `snapshot transfer from ${peerId}: ${message}`, { peerId });
}

function statusMessage(reply: Uint8Array): string {
  try {
    return new Reader(reply.subarray(1), ChainErrorCode.SnapshotInvalid, 'snapshot reply').str16();
  } catch {
    return 'undecodable reply';
  }
}

function readStatus(reply: Uint8Array, peerId: string): never {
  throw transferErrorOf(reply[0], statusMessage(reply), peerId);
}

function isDiskFull(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    const code = (e as { code?: unknown }).code;
    if (code === 'ENOSPC' || /ENOSPC|no space left/i.test(e.message)) return true;
  }
  return false;
}

/**
 * One attempt to fetch the snapshot `meta` from one member and import it into the store's spare
 * slot (verified against the head block's state root; not switched to). `knownHead`, when the
 * head block is known from an earlier attempt, lets the transfer resume after the import's last key.
 */
export async function fetchSnapshotFrom(
  deps: SnapshotFetchDeps,
  peerId: string,
  meta: SnapshotMeta,
  knownHead: Block | undefined,
  signal: AbortSignal,
  stats: SnapshotFetchStats,
  onHead: (head: Block) => void = () => undefined,
): Promise<StoreSnapshot> {
  const { transport } = deps;
  const timeoutMs = deps.requestTimeoutMs ?? SNAPSHOT_REQUEST_TIMEOUT_MS;
  let startAfterKey: Uint8Array = new Uint8Array(0);
  if (knownHead) {
    // Peek at the import's progress (the store resumes the same snapshot, or clears a superseded one).
    const imp = await deps.store.stateImport(knownHead, meta.appliedRaftIndex);
    startAfterKey = imp.progress.lastKey;
    await imp.abandon(true);
  }
  const openRequest = (v: number): Uint8Array => {
    const w = new Writer(64 + startAfterKey.length)
      .u8(v)
      .u8(OP_OPEN)
      .u64(meta.appliedRaftIndex)
      .raw(meta.headHash)
      .u32(deps.chunkBytes)
      .bytes16(startAfterKey);
    const asked = Math.max(
      1,
      Math.min(MAX_SNAPSHOT_WINDOW_CHUNKS, deps.windowChunks ?? DEFAULT_SNAPSHOT_WINDOW_CHUNKS),
    );
    return (v === PROTOCOL_VERSION ? w.u16(asked) : w).finish();
  };
  stats.attempts++;
  let version = PROTOCOL_VERSION;
  let reply = await transport.request(peerId, CHANNEL_SNAPSHOT, openRequest(version), { signal, timeoutMs });
  if (reply[0] === ST_MALFORMED && statusMessage(reply) === UNKNOWN_VERSION) {
    // A member on an older release: it serves protocol 1, one chunk at a time.
    version = PROTOCOL_VERSION_STOP_AND_WAIT;
    reply = await transport.request(peerId, CHANNEL_SNAPSHOT, openRequest(version), { signal, timeoutMs });
  }
  if (reply[0] !== ST_OK) readStatus(reply, peerId);
  const r = new Reader(reply.subarray(1), ChainErrorCode.SnapshotInvalid, 'snapshot open reply');
  const session = r.u64();
  const head = decodeBlock(r.bytes32(MAX_BLOCK_BYTES));
  const window = version === PROTOCOL_VERSION ? r.u16() : 1;
  r.end();
  if (window < 1 || window > MAX_SNAPSHOT_WINDOW_CHUNKS)
    throw new SnapshotTransferError(SnapshotTransferErrorCode.Malformed, `${peerId} granted a window of ${window}`, {
      peerId,
    });
  if (!bytesEqual(head.hash, meta.headHash))
    throw new SnapshotTransferError(SnapshotTransferErrorCode.Malformed, `${peerId} sent another head block`, {
      peerId,
    });
  onHead(head);
  let finished = false;
  // Up to `window` NEXTs outstanding, answered in order; one more goes out as each chunk is taken
  // by the import (so a slow disk here slows the sender). Replies not taken are at most `window`.
  async function* chunks(): AsyncGenerator<Uint8Array> {
    const inflight: Promise<Uint8Array>[] = [];
    let asked = 0;
    for (;;) {
      while (inflight.length < window) {
        const next = new Writer(16).u8(version).u8(OP_NEXT).u64(session).u32(asked++).finish();
        const reply = transport.request(peerId, CHANNEL_SNAPSHOT, next, { signal, timeoutMs });
        // Replies past the end, or after the import stopped, are not awaited: their errors are dropped.
        reply.catch(() => undefined);
        inflight.push(reply);
      }
      const c = await inflight.shift()!;
      if (c[0] === ST_END) {
        finished = true;
        return;
      }
      if (c[0] !== ST_CHUNK) readStatus(c, peerId);
      stats.chunksReceived++;
      stats.bytesReceived += c.length - 1;
      yield c.subarray(1);
    }
  }
  try {
    const imported = await importSnapshot(chunks(), deps.store, { maxChunkBytes: deps.chunkBytes });
    if (imported.appliedRaftIndex !== meta.appliedRaftIndex || !bytesEqual(imported.head.hash, meta.headHash))
      throw new SnapshotTransferError(
        SnapshotTransferErrorCode.Malformed,
        `${peerId} streamed the snapshot at index ${imported.appliedRaftIndex}, not ${meta.appliedRaftIndex}`,
        { peerId },
      );
    if (!bytesEqual(imported.head.header.stateRoot, meta.stateRoot))
      throw new SnapshotTransferError(
        SnapshotTransferErrorCode.Malformed,
        `the head block's state root ${toHex(imported.head.header.stateRoot)} is not the snapshot's`,
        { peerId },
      );
    return imported;
  } catch (err) {
    if (err instanceof ChainError && err.code === ChainErrorCode.SnapshotInvalid) stats.refusals++;
    if (isDiskFull(err))
      throw new SnapshotTransferError(
        SnapshotTransferErrorCode.DiskFull,
        `snapshot import stopped: the disk is full (free space, it resumes where it stopped)`,
        { peerId },
        { cause: err },
      );
    throw err;
  } finally {
    if (!finished) {
      // Frees the sender's slot at once (else it expires after SNAPSHOT_SESSION_IDLE_MS).
      const close = new Writer(16).u8(version).u8(OP_CLOSE).u64(session).finish();
      transport.request(peerId, CHANNEL_SNAPSHOT, close, { timeoutMs: 2_000 }).catch(() => undefined);
    }
  }
}

export interface SnapshotFetcherDeps extends SnapshotFetchDeps {
  readonly clock: Clock;
  /** Members to ask, best first (the Raft message's sender, usually the leader, then the others). */
  readonly candidates: (fromRaftId: number | undefined) => string[];
}

/**
 * The receiver: fetches one snapshot with retries, over every candidate member, until it is
 * imported or the signal aborts (a newer snapshot, or the node stopping). Nothing here is fatal.
 */
export class SnapshotFetcher {
  readonly stats: SnapshotFetchStats = { attempts: 0, chunksReceived: 0, bytesReceived: 0, refusals: 0 };
  /** Head blocks learned from OPEN replies, by head hash: they let a retry resume (bounded: the last few). */
  private readonly heads = new Map<string, Block>();

  constructor(private readonly deps: SnapshotFetcherDeps) {}

  get chunkBytes(): number {
    return this.deps.chunkBytes;
  }

  async fetch(meta: SnapshotMeta, fromRaftId: number | undefined, signal: AbortSignal): Promise<StoreSnapshot> {
    const hashHex = toHex(meta.headHash);
    let pauseMs = SNAPSHOT_RETRY_MIN_MS;
    for (;;) {
      const errors: string[] = [];
      for (const peerId of this.deps.candidates(fromRaftId)) {
        if (signal.aborted) throw aborted();
        try {
          const imported = await fetchSnapshotFrom(
            this.deps,
            peerId,
            meta,
            this.heads.get(hashHex),
            signal,
            this.stats,
            (head) => this.learnHead(head),
          );
          return imported;
        } catch (err) {
          if (signal.aborted) throw aborted();
          errors.push(`${peerId}: ${(err as Error).message}`);
          const level =
            err instanceof SnapshotTransferError && err.code === SnapshotTransferErrorCode.Gone ? 'debug' : 'warn';
          this.deps.logger[level](
            { err, peerId, index: meta.appliedRaftIndex },
            'snapshot transfer attempt failed; retrying',
          );
        }
      }
      this.deps.logger.info(
        { index: meta.appliedRaftIndex, errors: errors.slice(0, 5), retryInMs: pauseMs },
        'no member could serve the snapshot yet; retrying',
      );
      await sleep(this.deps.clock, pauseMs, signal);
      pauseMs = Math.min(SNAPSHOT_RETRY_MAX_MS, pauseMs * 2);
    }
  }

  /** Records the head block an OPEN returned (so a retry resumes after the import's last key). */
  private learnHead(head: Block): void {
    this.heads.set(toHex(head.hash), head);
    while (this.heads.size > 4) this.heads.delete(this.heads.keys().next().value as string);
  }
}

function aborted(): SnapshotTransferError {
  return new SnapshotTransferError(SnapshotTransferErrorCode.Aborted, 'snapshot transfer aborted');
}

function sleep(clock: Clock, ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(aborted());
    const t = clock.setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    const onAbort = (): void => {
      t.cancel();
      reject(aborted());
    };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}
