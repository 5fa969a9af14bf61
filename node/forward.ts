// Transaction forwarding: a follower hands the transactions it accepted to the leader's pool over
// the p2p channel "tx", micro-batched; the leader answers each one. Owns the batch wire format
// (u32 count, then per transaction u32 length and its encoding: node/chain/codec.ts), the queue
// of transactions waiting to leave, the batches in flight, and the leader's side of a batch. It may
// not touch the pool, the chain or the Raft core: the leader's acceptance is the `accept` callback,
// and who leads is the `leader` callback.

import type { PeerTransport } from '../p2p/transport.js';
import { ChainErrorCode, MAX_TX_BYTES, Reader, Writer, decodeTransaction, type Transaction } from './chain/index.js';
import type { Clock } from './clock.js';
import { errorFromWire, errorToWire, type WireError } from './error-map.js';
import { NodeError, NodeErrorCode } from './errors.js';
import type { MemberInfo } from './membership.js';

export const CHANNEL_TX = 'tx';

export interface ForwardOptions {
  /** How long a forwarded batch waits for the leader's answer. */
  readonly forwardTimeoutMs: number;
}
export const DEFAULT_FORWARD_OPTIONS: ForwardOptions = { forwardTimeoutMs: 5_000 };

/** Transactions per forward request (each at most MAX_TX_BYTES: 1,024 × 64 KiB fits the p2p frame limit). */
export const MAX_FORWARD_BATCH_TXS = 1_024;
/**
 * Forward batches in flight to the leader at once. While they are out, new transactions queue and
 * leave together when one returns: under load the batches grow instead of the request count (each
 * p2p request costs both sides a few encrypted frames and socket writes), and when idle a lone
 * transaction still goes at once.
 */
export const MAX_FORWARDS_IN_FLIGHT = 2;
/** Transactions waiting to be forwarded; beyond it submissions are refused (Unavailable). */
export const MAX_FORWARD_QUEUE_TXS = 20_000;
/** Longest a follower refuses forwards on the strength of one pool-full answer of the leader. */
export const MAX_LEADER_FULL_HOLD_MS = 1_000;
/** Transactions of a deposed leader's pool forwarded to the new leader at once. */
export const POOL_FORWARD_CONCURRENCY = 64;

/** A forward batch: u32 count, then per transaction u32 length and its encoding. */
export function encodeTxBatch(txs: readonly Transaction[]): Uint8Array {
  const w = new Writer(4 + txs.reduce((n, t) => n + 4 + t.encoded.length, 0)).u32(txs.length);
  for (const t of txs) w.bytes32(t.encoded);
  return w.finish();
}

/** Throws ChainError TxMalformed (TX_MALFORMED to the forwarder) on anything but a well-formed batch. */
export function decodeTxBatch(data: Uint8Array): Uint8Array[] {
  const r = new Reader(data, ChainErrorCode.TxMalformed, 'forward batch');
  const n = r.u32();
  if (n > MAX_FORWARD_BATCH_TXS) r.fail(`${n} transactions is over MAX_FORWARD_BATCH_TXS=${MAX_FORWARD_BATCH_TXS}`);
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) out.push(r.bytes32(MAX_TX_BYTES));
  r.end();
  return out;
}

/** The count a refused batch is answered for (one error per transaction), 0 when unreadable. */
function claimedBatchCount(data: Uint8Array): number {
  if (data.length < 4) return 0;
  const n = new Reader(data.subarray(0, 4), ChainErrorCode.TxMalformed, 'forward batch').u32();
  return n <= MAX_FORWARD_BATCH_TXS ? n : 0;
}

type Reply = { ok?: string; error?: WireError };

interface PendingForward {
  readonly tx: Transaction;
  readonly resolve: (hash: string) => void;
  readonly reject: (err: unknown) => void;
}

export interface TxForwarderDeps {
  readonly transport: PeerTransport;
  readonly clock: Clock;
  /** This node's raft id. */
  readonly self: () => number;
  /** The leader as this node knows it right now, if it is a member. */
  readonly leader: () => MemberInfo | undefined;
  /** Leader side: may `from` forward to us (a member)? */
  readonly isMember: (peerId: string) => boolean;
  /** Leader side: throws NotLeader (with the leader's id and RPC URL) unless this node leads now. */
  readonly assertLeader: () => void;
  /** Leader side: puts one forwarded transaction in the pool, or throws why not. */
  readonly accept: (tx: Transaction, fromPeer: string) => void;
}

/** What forwardAll did: how many the leader accepted, and how many it refused, by NodeError code. */
export interface ForwardAllResult {
  readonly forwarded: number;
  readonly refused: ReadonlyMap<string, number>;
}

export class TxForwarder {
  /**
   * The leader's pool said it was full, and until when (its retryAfterMs, on our clock): forwards
   * are refused here at once meanwhile, with the same error, instead of travelling to be refused.
   */
  private leaderFull: { untilMs: number; leader: number; error: WireError } | undefined;
  private readonly queue: PendingForward[] = [];
  private flushScheduled = false;
  private inFlight = 0;

  constructor(
    private readonly options: ForwardOptions,
    private readonly deps: TxForwarderDeps,
  ) {}

  /** Registers the leader's side on the transport (once). */
  serve(): void {
    this.deps.transport.onRequest(CHANNEL_TX, async (from, data) => this.answer(from, data));
  }

  /**
   * Hands a transaction to the leader's pool over p2p. Forwards are micro-batched: everything
   * queued in one turn of the event loop, or while MAX_FORWARDS_IN_FLIGHT batches are out, travels
   * in one request (up to MAX_FORWARD_BATCH_TXS), so a follower under load costs the leader one p2p
   * round trip per batch, not per transaction.
   */
  forward(tx: Transaction, signal?: AbortSignal): Promise<string> {
    try {
      this.checkLeaderRoom();
    } catch (err) {
      return Promise.reject(err);
    }
    if (this.queue.length >= MAX_FORWARD_QUEUE_TXS) {
      return Promise.reject(
        new NodeError(
          NodeErrorCode.Unavailable,
          `${MAX_FORWARD_QUEUE_TXS} transactions already wait to be forwarded to the leader; retry`,
        ),
      );
    }
    if (signal?.aborted) return Promise.reject(new NodeError(NodeErrorCode.Timeout, 'aborted before forwarding'));
    return new Promise<string>((resolve, reject) => {
      this.queue.push({ tx, resolve, reject });
      this.scheduleFlush();
    });
  }

  /**
   * Throws the leader's last pool-full refusal (TxPoolFull, retryAfterMs counting down) while it
   * holds: a follower answers -32010 at once, before signing or forwarding anything.
   */
  checkLeaderRoom(): void {
    const full = this.leaderFull;
    if (full === undefined) return;
    const leftMs = Math.ceil(full.untilMs - this.deps.clock.monotonicMs());
    if (leftMs <= 0 || this.deps.leader()?.raftId !== full.leader) {
      this.leaderFull = undefined;
      return;
    }
    throw errorFromWire({
      code: full.error.code,
      message: `the leader's transaction pool is full; retry in ${leftMs} ms`,
      meta: { ...full.error.meta, retryAfterMs: leftMs },
    });
  }

  /**
   * A deposed leader still holds transactions it accepted. They are not lost with its leadership:
   * once a new leader is known they are handed to it (nonces make a duplicate harmless).
   * Resolves with how many the leader accepted and, by NodeError code, how many it refused.
   */
  async forwardAll(txs: readonly Transaction[]): Promise<ForwardAllResult> {
    let forwarded = 0;
    const refused = new Map<string, number>();
    for (let i = 0; i < txs.length; i += POOL_FORWARD_CONCURRENCY) {
      const batch = txs.slice(i, i + POOL_FORWARD_CONCURRENCY);
      const results = await Promise.allSettled(batch.map((tx) => this.forward(tx)));
      for (const r of results) {
        if (r.status === 'fulfilled') forwarded++;
        else {
          const code = r.reason instanceof NodeError ? r.reason.code : 'ERROR';
          refused.set(code, (refused.get(code) ?? 0) + 1);
        }
      }
    }
    return { forwarded, refused };
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    // A zero delay: what arrives in this turn of the event loop leaves together.
    this.deps.clock.setTimeout(() => this.flush(), 0);
  }

  private flush(): void {
    this.flushScheduled = false;
    while (this.queue.length > 0 && this.inFlight < MAX_FORWARDS_IN_FLIGHT) {
      this.inFlight++;
      void this.sendBatch(this.queue.splice(0, MAX_FORWARD_BATCH_TXS)).finally(() => {
        this.inFlight--;
        if (this.queue.length > 0) this.scheduleFlush();
      });
    }
  }

  private async sendBatch(batch: readonly PendingForward[]): Promise<void> {
    const leader = this.deps.leader();
    if (!leader || leader.raftId === this.deps.self()) {
      const err = new NodeError(NodeErrorCode.NoLeader, 'no leader is known: retry after an election timeout');
      for (const f of batch) f.reject(err);
      return;
    }
    let replies: Reply[];
    try {
      const reply = await this.deps.transport.request(
        leader.peerId,
        CHANNEL_TX,
        encodeTxBatch(batch.map((f) => f.tx)),
        { timeoutMs: this.options.forwardTimeoutMs },
      );
      replies = JSON.parse(new TextDecoder().decode(reply)) as Reply[];
      if (!Array.isArray(replies) || replies.length !== batch.length)
        throw new Error(
          `leader answered ${Array.isArray(replies) ? replies.length : 'no'} results for ${batch.length} transactions`,
        );
      // Each answer is read below: one that is not an object (e.g. `null`) would throw there, outside
      // this catch, and reject a promise nobody awaits.
      if (!replies.every((r) => typeof r === 'object' && r !== null && !Array.isArray(r)))
        throw new Error('leader answered a result that is not an object');
    } catch (err) {
      const e = new NodeError(
        NodeErrorCode.Unavailable,
        `could not forward the transaction to the leader (raft id ${leader.raftId}): ${err instanceof Error ? err.message : String(err)}; its outcome is unknown`,
        { leader: leader.raftId, leaderRpcUrl: leader.rpcUrl },
      );
      for (const f of batch) f.reject(e);
      return;
    }
    batch.forEach((f, i) => {
      const r = replies[i];
      if (r.error) {
        this.noteRefusal(r.error, leader.raftId);
        f.reject(errorFromWire(r.error));
      } else f.resolve(f.tx.hashHex);
    });
  }

  /** A refusal for a full pool (not for one account's refused nonce) holds forwards for its retryAfterMs. */
  private noteRefusal(e: WireError, leader: number): void {
    const after = e.meta?.retryAfterMs;
    if (e.code !== NodeErrorCode.TxPoolFull || typeof after !== 'number' || !(after > 0)) return;
    if (e.meta?.refusedNonce !== undefined) return;
    const untilMs = this.deps.clock.monotonicMs() + Math.min(after, MAX_LEADER_FULL_HOLD_MS);
    if (this.leaderFull === undefined || untilMs > this.leaderFull.untilMs)
      this.leaderFull = { untilMs, leader, error: e };
  }

  /** The leader's side of a batch: one reply per transaction, in order; never throws. */
  private answer(from: string, data: Uint8Array): Uint8Array {
    const out: Reply[] = [];
    let txs: Uint8Array[];
    try {
      if (!this.deps.isMember(from)) throw new NodeError(NodeErrorCode.Unavailable, 'not a member');
      this.deps.assertLeader();
      txs = decodeTxBatch(data);
    } catch (err) {
      const e = errorToWire(err);
      return new TextEncoder().encode(
        JSON.stringify(Array.from({ length: claimedBatchCount(data) }, () => ({ error: e }))),
      );
    }
    for (const bytes of txs) {
      try {
        const tx = decodeTransaction(bytes);
        this.deps.accept(tx, from);
        out.push({ ok: tx.hashHex });
      } catch (err) {
        out.push({ error: errorToWire(err) });
      }
    }
    return new TextEncoder().encode(JSON.stringify(out));
  }
}
