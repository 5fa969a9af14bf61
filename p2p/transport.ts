// The peer transport: what the node (Raft traffic) and the transaction manager (payload push)
// use to talk to other members. Two implementations pass one compliance suite
// (test/p2p/transport.suite.ts): Libp2pTransport (TCP + Noise + yamux) and MemoryTransport
// (in-process, with partitions, loss and delay for tests and the simulator).
//
// Semantics both implementations keep:
// - Membership is the allowlist: setPeers() says who may connect, in both directions, and whom to
//   keep connected (the transport dials and redials members itself, with bounded backoff).
// - send() is fire-and-forget and ordered per (peer, channel). It never blocks and never throws
//   an operating error: a message that cannot be delivered (peer not connected, queue full,
//   stream reset) is dropped and counted. Raft tolerates loss and retries on its own schedule;
//   a transport that queued without bound would instead grow memory and deliver stale traffic.
// - request() is request/reply, multiplexed by id over the same long-lived stream; it fails
//   with a typed P2pError (PeerUnreachable, Timeout, Refused, RemoteError, MessageTooLarge, ...).
// - A payload is at most `maxMessageBytes`, checked when sending (MessageTooLarge) and when
//   receiving (the offending stream is reset; the process carries on).

import type { P2pClock } from './clock.js';
import { P2pError, P2pErrorCode, assert } from './errors.js';

export interface PeerAddress {
  /** Base58 libp2p peer id (or any unique name for MemoryTransport). */
  readonly peerId: string;
  /** Multiaddrs to dial, e.g. `/ip4/10.0.0.2/tcp/30400`. May be empty: the peer then dials us. */
  readonly addrs: readonly string[];
}

export interface RequestOptions {
  readonly signal?: AbortSignal;
  /** Defaults to `limits.defaultRequestTimeoutMs`. */
  readonly timeoutMs?: number;
}

export type MessageHandler = (from: string, data: Uint8Array) => void;
export type RequestHandler = (from: string, data: Uint8Array, signal: AbortSignal) => Promise<Uint8Array>;
export type PeerEvent = 'peer:connect' | 'peer:disconnect';
export type PeerListener = (peerId: string) => void;

export interface TransportStats {
  /** Messages (send()) handed to the wire. */
  readonly messagesSent: number;
  /** Messages delivered to a local onMessage handler. */
  readonly messagesReceived: number;
  /** Messages given to send() that were not delivered to the wire: queue full, no connection, stream reset. */
  readonly messagesDropped: number;
  /** Inbound frames refused for exceeding maxMessageBytes (each one resets its stream). */
  readonly oversizedFramesRejected: number;
  /** Inbound messages or requests for a channel with no handler (dropped, or answered with RemoteError). */
  readonly unhandledFrames: number;
}

export interface PeerTransport {
  readonly localPeerId: string;
  start(): Promise<void>;
  /** Closes every connection; pending requests fail with NotStarted. May be started again. */
  stop(): Promise<void>;
  /** The addresses other members should dial (actual ports; empty before start). */
  listenAddrs(): string[];
  /** The current membership: the allowlist and the dial targets. Removed peers are disconnected. */
  setPeers(peers: readonly PeerAddress[]): void;
  /** Ordered, fire-and-forget, over one long-lived stream per (peer, channel). Throws only MessageTooLarge / on misuse. */
  send(peerId: string, channel: string, data: Uint8Array): void;
  request(peerId: string, channel: string, data: Uint8Array, options?: RequestOptions): Promise<Uint8Array>;
  /** One handler per channel. Called in order of arrival per (peer, channel). */
  onMessage(channel: string, handler: MessageHandler): void;
  /** One handler per channel. The signal aborts when the requester's connection goes away. */
  onRequest(channel: string, handler: RequestHandler): void;
  /** Returns a function that removes the listener. */
  on(event: PeerEvent, listener: PeerListener): () => void;
  connectedPeers(): string[];
  stats(): TransportStats;
}

// ---------------------------------------------------------------------------
// Limits, shared by both implementations so tests exercise the same numbers.
// ---------------------------------------------------------------------------
export interface TransportLimits {
  /**
   * Largest payload of one message, request or reply. Raft may put one whole entry (a block of
   * up to maxProposalBytes = 8 MiB) in an App message, plus framing: hence 16 MiB.
   */
  readonly maxMessageBytes: number;
  /** Messages waiting to be written to one peer (all channels). Past it send() drops the newest. */
  readonly maxQueuedMessagesPerPeer: number;
  /** Bytes waiting to be written to one peer (all channels). Past it send() drops the newest. */
  readonly maxQueuedBytesPerPeer: number;
  /** Bytes gathered into one writeV batch; a larger single message is written alone. */
  readonly maxBatchBytes: number;
  /** Requests awaiting a reply from one peer. Past it request() fails with TooManyRequests. */
  readonly maxInflightRequestsPerPeer: number;
  /** Inbound requests one peer may have running here at once; past it they are answered "busy". */
  readonly maxConcurrentInboundRequestsPerPeer: number;
  /** Distinct channels per peer (each is one stream per direction). */
  readonly maxChannelsPerPeer: number;
  readonly defaultRequestTimeoutMs: number;
  /** First redial delay after a lost or failed connection; doubles per attempt. */
  readonly reconnectBaseDelayMs: number;
  /** Ceiling of the redial delay: a restarted member is found again within about this long. */
  readonly reconnectMaxDelayMs: number;
}

export const DEFAULT_TRANSPORT_LIMITS: TransportLimits = {
  maxMessageBytes: 16 * 1024 * 1024,
  maxQueuedMessagesPerPeer: 8192,
  maxQueuedBytesPerPeer: 64 * 1024 * 1024,
  maxBatchBytes: 256 * 1024,
  maxInflightRequestsPerPeer: 1024,
  maxConcurrentInboundRequestsPerPeer: 256,
  maxChannelsPerPeer: 32,
  defaultRequestTimeoutMs: 10_000,
  reconnectBaseDelayMs: 100,
  reconnectMaxDelayMs: 5_000,
};

export function resolveLimits(partial: Partial<TransportLimits> = {}): TransportLimits {
  const limits = { ...DEFAULT_TRANSPORT_LIMITS, ...partial };
  assert(
    limits.maxMessageBytes >= 1 && limits.maxMessageBytes <= 64 * 1024 * 1024,
    'maxMessageBytes must be in [1, 64 MiB]',
  );
  assert(
    limits.maxQueuedBytesPerPeer >= limits.maxMessageBytes,
    'maxQueuedBytesPerPeer must hold at least one maximal message',
  );
  assert(
    limits.reconnectBaseDelayMs > 0 && limits.reconnectMaxDelayMs >= limits.reconnectBaseDelayMs,
    'bad reconnect delays',
  );
  return limits;
}

/** Channel names are short identifiers ("raft", "tx", "payload/push"), at most this long. */
export const MAX_CHANNEL_NAME_BYTES = 64;
const CHANNEL_NAME = /^[a-z0-9][a-z0-9._/-]*$/;

export function assertChannelName(channel: string): void {
  assert(
    channel.length > 0 && channel.length <= MAX_CHANNEL_NAME_BYTES && CHANNEL_NAME.test(channel),
    () => `invalid channel name ${JSON.stringify(channel)}: 1..${MAX_CHANNEL_NAME_BYTES} chars of [a-z0-9._/-]`,
  );
}

export function tooLarge(what: string, bytes: number, maxBytes: number): P2pError {
  return new P2pError(P2pErrorCode.MessageTooLarge, `${what} of ${bytes} bytes exceeds maxMessageBytes=${maxBytes}`, {
    bytes,
    maxBytes,
  });
}

// ---------------------------------------------------------------------------
// Reconnection backoff: exponential with jitter, bounded.
// ---------------------------------------------------------------------------
/**
 * Delay before redial number `attempt` (0-based): "equal jitter" (AWS architecture blog) — half of
 * the exponential step is fixed, half random — so members restarted together do not redial in
 * lockstep, yet a delay is never near zero (which would spin on a refusing peer).
 */
export function reconnectDelayMs(attempt: number, limits: TransportLimits, random: () => number): number {
  const step = Math.min(limits.reconnectMaxDelayMs, limits.reconnectBaseDelayMs * 2 ** Math.min(attempt, 30));
  return Math.round(step / 2 + random() * (step / 2));
}

// ---------------------------------------------------------------------------
// Pending requests: ids, timeouts and abort signals, the same for both implementations.
// ---------------------------------------------------------------------------
export interface PendingRequest {
  readonly id: number;
  readonly peerId: string;
  readonly channel: string;
  /** Implementation-defined tag, e.g. the stream generation the request was written on. */
  tag: number;
}

interface PendingEntry extends PendingRequest {
  resolve(data: Uint8Array): void;
  reject(err: Error): void;
  cleanup(): void;
}

export class PendingRequests {
  private nextId = 1;
  private readonly entries = new Map<number, PendingEntry>();
  private readonly perPeer = new Map<string, number>();

  constructor(
    private readonly limits: TransportLimits,
    private readonly clock: Pick<P2pClock, 'setTimeout'>,
  ) {}

  /** Registers a request; the promise settles by reply, timeout, abort, or rejectWhere(). */
  create(
    peerId: string,
    channel: string,
    options: RequestOptions,
  ): { request: PendingRequest; promise: Promise<Uint8Array> } {
    const count = this.perPeer.get(peerId) ?? 0;
    if (count >= this.limits.maxInflightRequestsPerPeer) {
      throw new P2pError(P2pErrorCode.TooManyRequests, `${count} requests already await a reply from ${peerId}`, {
        peerId,
        channel,
      });
    }
    const signal = options.signal;
    if (signal?.aborted) {
      throw new P2pError(
        P2pErrorCode.Aborted,
        'request aborted before it was sent',
        { peerId, channel },
        { cause: signal.reason },
      );
    }
    const timeoutMs = options.timeoutMs ?? this.limits.defaultRequestTimeoutMs;
    assert(Number.isFinite(timeoutMs) && timeoutMs > 0, () => `timeoutMs must be positive, got ${timeoutMs}`);
    // Ids are u32 on the wire; wrapping is safe because at most maxInflightRequestsPerPeer are live.
    const id = this.nextId;
    this.nextId = this.nextId >= 0xffff_ffff ? 1 : this.nextId + 1;
    let entry!: PendingEntry;
    const promise = new Promise<Uint8Array>((resolve, reject) => {
      const timer = this.clock.setTimeout(() => {
        this.settle(id)?.reject(
          new P2pError(P2pErrorCode.Timeout, `no reply from ${peerId} on ${channel} within ${timeoutMs} ms`, {
            peerId,
            channel,
            timeoutMs,
          }),
        );
      }, timeoutMs);
      const onAbort = (): void => {
        this.settle(id)?.reject(
          new P2pError(P2pErrorCode.Aborted, 'request aborted', { peerId, channel }, { cause: signal?.reason }),
        );
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      entry = {
        id,
        peerId,
        channel,
        tag: 0,
        resolve,
        reject,
        cleanup: () => {
          timer.cancel();
          signal?.removeEventListener('abort', onAbort);
        },
      };
    });
    this.entries.set(id, entry);
    this.perPeer.set(peerId, count + 1);
    return { request: entry, promise };
  }

  resolve(id: number, data: Uint8Array): boolean {
    const entry = this.settle(id);
    entry?.resolve(data);
    return entry !== undefined;
  }

  reject(id: number, err: Error): boolean {
    const entry = this.settle(id);
    entry?.reject(err);
    return entry !== undefined;
  }

  get(id: number): PendingRequest | undefined {
    return this.entries.get(id);
  }

  /** Fails every pending request matching `predicate` (a lost stream, a removed peer, stop()). */
  rejectWhere(predicate: (request: PendingRequest) => boolean, makeError: (request: PendingRequest) => Error): void {
    for (const entry of [...this.entries.values()]) {
      if (predicate(entry)) this.reject(entry.id, makeError(entry));
    }
  }

  private settle(id: number): PendingEntry | undefined {
    const entry = this.entries.get(id);
    if (entry === undefined) return undefined;
    this.entries.delete(id);
    const count = (this.perPeer.get(entry.peerId) ?? 1) - 1;
    if (count === 0) this.perPeer.delete(entry.peerId);
    else this.perPeer.set(entry.peerId, count);
    entry.cleanup();
    return entry;
  }
}

// ---------------------------------------------------------------------------
// Remote error reasons, carried in an error reply and in P2pError.meta.reason.
// ---------------------------------------------------------------------------
export enum RemoteErrorReason {
  /** The remote handler threw or rejected. */
  HandlerFailed = 1,
  /** The remote has no onRequest handler for this channel. */
  NoHandler = 2,
  /** The remote is already running maxConcurrentInboundRequestsPerPeer requests from us. */
  Busy = 3,
  /** The remote handler's reply exceeded the remote's maxMessageBytes. */
  ReplyTooLarge = 4,
}

/** Error text carried back to the requester is cut to this length (a reply frame is bounded). */
export const MAX_REMOTE_ERROR_MESSAGE_BYTES = 1024;

export function remoteError(peerId: string, channel: string, reason: RemoteErrorReason, message: string): P2pError {
  return new P2pError(
    P2pErrorCode.RemoteError,
    `request to ${peerId} on ${channel} failed remotely (${RemoteErrorReason[reason] ?? reason}): ${message}`,
    {
      peerId,
      channel,
      reason,
      remoteMessage: message,
    },
  );
}

// ---------------------------------------------------------------------------
// Small shared pieces: listeners and handler registries.
// ---------------------------------------------------------------------------
export class PeerEvents {
  private readonly listeners: Record<PeerEvent, Set<PeerListener>> = {
    'peer:connect': new Set(),
    'peer:disconnect': new Set(),
  };

  on(event: PeerEvent, listener: PeerListener): () => void {
    this.listeners[event].add(listener);
    return () => this.listeners[event].delete(listener);
  }

  emit(event: PeerEvent, peerId: string): void {
    for (const listener of [...this.listeners[event]]) listener(peerId);
  }
}

export class Handlers {
  readonly message = new Map<string, MessageHandler>();
  readonly request = new Map<string, RequestHandler>();

  onMessage(channel: string, handler: MessageHandler): void {
    assertChannelName(channel);
    assert(!this.message.has(channel), () => `a message handler for channel ${channel} is already registered`);
    this.message.set(channel, handler);
  }

  onRequest(channel: string, handler: RequestHandler): void {
    assertChannelName(channel);
    assert(!this.request.has(channel), () => `a request handler for channel ${channel} is already registered`);
    this.request.set(channel, handler);
  }
}

export class MutableStats implements TransportStats {
  messagesSent = 0;
  messagesReceived = 0;
  messagesDropped = 0;
  oversizedFramesRejected = 0;
  unhandledFrames = 0;
  snapshot(): TransportStats {
    return { ...this };
  }
}
