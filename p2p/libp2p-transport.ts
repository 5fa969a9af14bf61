// The real PeerTransport: libp2p (TCP + Noise + yamux, built by host.ts) with one long-lived
// stream per (peer, channel) in each direction. The opener of a stream writes its messages and
// requests on it; the acceptor writes the replies back on the same stream. Long-lived streams
// matter: a fresh stream per request is 5-8x slower (docs/stack.md measured rates).
//
// Writes are batched (writeV-style): everything queued for a stream while the previous write was
// in progress — and everything sent in the same synchronous burst — goes out as one send() of
// concatenated length-prefixed frames (up to maxBatchBytes), so Raft's pipelined appends cost one
// yamux frame, one Noise frame and one syscall per batch rather than per message. Replies are
// batched the same way per event-loop turn. Reading decodes every complete frame of a received
// chunk synchronously (framing.ts), with no per-frame promise.

import '../node/polyfills.js';
import type { Connection, PeerId, PrivateKey, Stream } from '@libp2p/interface';
import { peerIdFromPrivateKey, peerIdFromString } from '@libp2p/peer-id';
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import type { P2pClock, P2pTimerHandle } from './clock.js';
import { P2pError, P2pErrorCode, assert } from './errors.js';
import {
  CHANNEL_PROTOCOL,
  FrameKind,
  MAX_FRAME_OVERHEAD_BYTES,
  WIRE_VERSION,
  decodeFrame,
  encodeErrReply,
  encodeHello,
  encodeMessage,
  encodeWithId,
} from './frames.js';
import { FrameTooLargeError, readFrames, writeFrames } from './framing.js';
import { createHost, type P2pHost } from './host.js';
import { defaultP2pLogger, type P2pLogger } from './logger.js';
import {
  Handlers,
  MutableStats,
  PeerEvents,
  PendingRequests,
  RemoteErrorReason,
  assertChannelName,
  reconnectDelayMs,
  remoteError,
  resolveLimits,
  tooLarge,
  type MessageHandler,
  type PeerAddress,
  type PeerEvent,
  type PeerListener,
  type PeerTransport,
  type RequestHandler,
  type RequestOptions,
  type TransportLimits,
  type TransportStats,
} from './transport.js';

/** A new stream must be open and negotiated within this time, or its queued frames are dropped. */
export const STREAM_OPEN_TIMEOUT_MS = 5_000;
/** The acceptor of a stream waits this long for its Hello frame before resetting it. */
export const HELLO_TIMEOUT_MS = 5_000;
/**
 * A connection that lived at least this long counts as healthy: the next loss redials from the
 * base delay. A shorter one (e.g. the remote's gater refusing us right after the handshake)
 * keeps growing the backoff, so a peer that refuses us is not redialled ten times a second.
 */
export const STABLE_CONNECTION_MS = 5_000;
/** How long the member with the larger peer id waits before its first dial (see firstDialDelayMs). */
export const FIRST_DIAL_TIE_BREAK_DELAY_MS = 300;

export interface Libp2pTransportOptions {
  readonly privateKey: PrivateKey;
  /** e.g. ['/ip4/0.0.0.0/tcp/30400']; tests use ['/ip4/127.0.0.1/tcp/0']. */
  readonly listenAddrs: readonly string[];
  readonly limits?: Partial<TransportLimits>;
  readonly logger?: P2pLogger;
  /** `p2p.allowedCidrs`: inbound connections from elsewhere are refused before the Noise handshake. */
  readonly allowedCidrs?: readonly string[];
  /** The node's clock: timers, connection durations, reconnection jitter. */
  readonly clock: P2pClock;
}

interface QueuedFrame {
  readonly frame: Uint8Array;
  /** The request this frame carries, so dropping the frame fails the request at once. */
  readonly requestId?: number;
}

/** The stream this node opened to one peer for one channel, and what waits to be written on it. */
interface OutboundChannel {
  readonly channel: string;
  readonly queue: QueuedFrame[];
  stream: Stream | null;
  /** Bumped per stream; a pending request's tag says on which stream it was written. */
  generation: number;
  flushing: boolean;
}

interface PeerState {
  readonly peerId: string;
  readonly peerIdObj: PeerId;
  addrs: Multiaddr[];
  connected: boolean;
  connectedAtMs: number;
  dialAttempt: number;
  dialTimer: P2pTimerHandle | null;
  dialing: boolean;
  /** A probe stream is being negotiated on a new connection (see verifyConnection). */
  verifying: boolean;
  queuedMessages: number;
  queuedBytes: number;
  readonly channels: Map<string, OutboundChannel>;
  /** Streams the peer opened to us, reset when it is removed from the membership. */
  readonly inboundStreams: Set<Stream>;
  /** Inbound requests running here for this peer. */
  inboundRequests: number;
}

export class Libp2pTransport implements PeerTransport {
  readonly localPeerId: string;
  readonly limits: TransportLimits;
  private readonly logger: P2pLogger;
  private readonly random: () => number;
  private readonly clock: P2pClock;
  private readonly handlers = new Handlers();
  private readonly events = new PeerEvents();
  private readonly stats_ = new MutableStats();
  /** Batched writes made: with messagesSent, shows how well writes are batched. */
  private batchesWritten = 0;
  private readonly pending: PendingRequests;
  private readonly peers = new Map<string, PeerState>();
  private host: P2pHost | null = null;
  private starting: Promise<void> | null = null;
  /** Largest frame accepted from the wire: a maximal payload plus its header. */
  private readonly maxFrameBytes: number;

  constructor(private readonly options: Libp2pTransportOptions) {
    this.limits = resolveLimits(options.limits);
    this.logger = options.logger ?? defaultP2pLogger();
    this.clock = options.clock;
    this.random = () => this.clock.randomFloat();
    this.pending = new PendingRequests(this.limits, this.clock);
    this.maxFrameBytes = this.limits.maxMessageBytes + MAX_FRAME_OVERHEAD_BYTES;
    // Computed from the key without starting libp2p, so the id is known before start().
    this.localPeerId = peerIdFromPrivateKey(options.privateKey).toString();
  }

  async start(): Promise<void> {
    if (this.host !== null) return;
    if (this.starting !== null) return this.starting;
    this.starting = (async () => {
      const host = await createHost({
        privateKey: this.options.privateKey,
        listenAddrs: this.options.listenAddrs,
        allowedPeers: this.peers.keys(),
        logger: this.logger,
        ...(this.options.allowedCidrs ? { allowedCidrs: this.options.allowedCidrs } : {}),
        streamHandlers: [
          {
            protocol: CHANNEL_PROTOCOL,
            handler: (stream, connection) => this.acceptStream(stream, connection),
            options: {
              // Streams per connection for this protocol: one per channel the remote opens to us,
              // plus the short-lived probe of each new connection.
              maxInboundStreams: this.limits.maxChannelsPerPeer + 1,
              maxOutboundStreams: this.limits.maxChannelsPerPeer + 1,
            },
          },
        ],
      });
      host.libp2p.addEventListener('peer:connect', (evt) => this.verifyConnection(evt.detail.toString()));
      host.libp2p.addEventListener('peer:disconnect', (evt) => this.onDisconnect(evt.detail.toString()));
      this.host = host;
      for (const peer of this.peers.values()) {
        peer.dialAttempt = 0;
        this.scheduleDial(peer, this.firstDialDelayMs(peer));
      }
    })();
    try {
      await this.starting;
    } finally {
      this.starting = null;
    }
  }

  async stop(): Promise<void> {
    if (this.starting !== null) await this.starting.catch(() => undefined);
    const host = this.host;
    if (host === null) return;
    this.host = null;
    for (const peer of this.peers.values()) {
      if (peer.dialTimer !== null) peer.dialTimer.cancel();
      peer.dialTimer = null;
      this.dropQueues(peer);
      for (const ch of peer.channels.values()) this.resetChannel(peer, ch, new Error('transport stopping'));
      const wasConnected = peer.connected;
      peer.connected = false;
      if (wasConnected) this.events.emit('peer:disconnect', peer.peerId);
    }
    this.pending.rejectWhere(
      () => true,
      (r) => new P2pError(P2pErrorCode.NotStarted, 'transport stopped', { peerId: r.peerId, channel: r.channel }),
    );
    await host.stop();
  }

  listenAddrs(): string[] {
    return this.host?.listenMultiaddrs() ?? [];
  }

  setPeers(peers: readonly PeerAddress[]): void {
    const next = new Map<string, PeerAddress>();
    for (const peer of peers) if (peer.peerId !== this.localPeerId) next.set(peer.peerId, peer);
    for (const [id, peer] of [...this.peers]) {
      if (!next.has(id)) this.removePeer(peer);
    }
    for (const address of next.values()) {
      let peer = this.peers.get(address.peerId);
      if (peer === undefined) {
        peer = {
          peerId: address.peerId,
          peerIdObj: peerIdFromString(address.peerId),
          addrs: [],
          connected: false,
          connectedAtMs: 0,
          dialAttempt: 0,
          dialTimer: null,
          dialing: false,
          verifying: false,
          queuedMessages: 0,
          queuedBytes: 0,
          channels: new Map(),
          inboundStreams: new Set(),
          inboundRequests: 0,
        };
        this.peers.set(address.peerId, peer);
      }
      peer.addrs = address.addrs.map((text) => withPeerId(text, address.peerId));
    }
    const host = this.host;
    if (host !== null) {
      host
        .setAllowedPeers(next.keys())
        .catch((err: unknown) => this.logger.warn({ err }, 'updating the allowlist failed'));
      for (const peer of this.peers.values()) {
        // A peer that is already up counts as connected the moment it becomes a member.
        if (!peer.connected && host.libp2p.getConnections(peer.peerIdObj).length > 0)
          this.verifyConnection(peer.peerId);
        else if (!peer.connected && peer.dialTimer === null && !peer.dialing && !peer.verifying)
          this.scheduleDial(peer, this.firstDialDelayMs(peer));
      }
    }
  }

  send(peerId: string, channel: string, data: Uint8Array): void {
    assertChannelName(channel);
    if (data.byteLength > this.limits.maxMessageBytes)
      throw tooLarge('message', data.byteLength, this.limits.maxMessageBytes);
    const peer = this.peers.get(peerId);
    if (this.host === null || peer === undefined || !peer.connected) {
      this.stats_.messagesDropped++;
      return;
    }
    // Drop the newest, not the oldest: the queue keeps its order, and Raft resends what it needs.
    if (
      peer.queuedMessages >= this.limits.maxQueuedMessagesPerPeer ||
      peer.queuedBytes + data.byteLength > this.limits.maxQueuedBytesPerPeer
    ) {
      this.stats_.messagesDropped++;
      return;
    }
    const ch = this.outbound(peer, channel);
    this.enqueue(peer, ch, { frame: encodeMessage(data) });
  }

  async request(peerId: string, channel: string, data: Uint8Array, options: RequestOptions = {}): Promise<Uint8Array> {
    assertChannelName(channel);
    if (this.host === null) throw new P2pError(P2pErrorCode.NotStarted, 'transport not started', { peerId, channel });
    if (data.byteLength > this.limits.maxMessageBytes)
      throw tooLarge('request', data.byteLength, this.limits.maxMessageBytes);
    const peer = this.peers.get(peerId);
    if (peer === undefined)
      throw new P2pError(P2pErrorCode.Refused, `${peerId} is not in the membership`, { peerId, channel });
    if (!peer.connected)
      throw new P2pError(P2pErrorCode.PeerUnreachable, `no connection to ${peerId}`, { peerId, channel });
    if (peer.queuedBytes + data.byteLength > this.limits.maxQueuedBytesPerPeer) {
      throw new P2pError(P2pErrorCode.TooManyRequests, `the queue to ${peerId} is full`, { peerId, channel });
    }
    const { request, promise } = this.pending.create(peerId, channel, options);
    try {
      const ch = this.outbound(peer, channel);
      this.enqueue(peer, ch, { frame: encodeWithId(FrameKind.Request, request.id, data), requestId: request.id });
    } catch (err) {
      // Fail the one promise the caller holds (and disarm its timer): thrown past it, the timer
      // would later reject a promise nobody awaits (issue 10 part 6).
      this.pending.reject(request.id, err instanceof Error ? err : new Error(String(err)));
    }
    return promise;
  }

  onMessage(channel: string, handler: MessageHandler): void {
    this.handlers.onMessage(channel, handler);
  }

  onRequest(channel: string, handler: RequestHandler): void {
    this.handlers.onRequest(channel, handler);
  }

  on(event: PeerEvent, listener: PeerListener): () => void {
    return this.events.on(event, listener);
  }

  connectedPeers(): string[] {
    return [...this.peers.values()].filter((p) => p.connected).map((p) => p.peerId);
  }

  stats(): TransportStats {
    return this.stats_.snapshot();
  }

  /** Libp2p-specific counters, beside the shared stats(). */
  wireStats(): { batchesWritten: number; refusedConnections: number } {
    return { batchesWritten: this.batchesWritten, refusedConnections: this.host?.refusedConnectionCount() ?? 0 };
  }

  /** The libp2p host, for metrics and diagnostics (null when stopped). */
  get p2pHost(): P2pHost | null {
    return this.host;
  }

  // -------------------------------------------------------------------------
  // Connections and reconnection
  // -------------------------------------------------------------------------

  /**
   * libp2p reports a connection as soon as the Noise handshake completes on our side, but a remote
   * whose gater refuses us closes it about 200 ms later (docs/stack.md gotcha 3). So a peer counts as
   * connected only once it has negotiated our protocol on the connection — proof that it admitted
   * us and serves our channels. Without this, a refused dialer would flap connect/disconnect.
   */
  private verifyConnection(peerId: string): void {
    const host = this.host;
    const peer = this.peers.get(peerId);
    if (host === null || peer === undefined || peer.connected || peer.verifying) return;
    peer.verifying = true;
    void (async () => {
      let verified = false;
      try {
        const connection = host.libp2p.getConnections(peer.peerIdObj).find((c) => c.status === 'open');
        if (connection !== undefined) {
          const probe = await connection.newStream(CHANNEL_PROTOCOL, {
            signal: AbortSignal.timeout(STREAM_OPEN_TIMEOUT_MS),
          });
          verified = true;
          probe.close().catch((err: Error) => probe.abort(err));
        }
      } catch (err) {
        this.logger.debug({ peerId, err: (err as Error).message }, 'connection not admitted by the peer');
      } finally {
        peer.verifying = false;
      }
      if (this.host !== host || this.peers.get(peerId) !== peer) return;
      if (verified) {
        this.onConnect(peer);
      } else {
        peer.dialAttempt++;
        this.scheduleDial(peer, reconnectDelayMs(peer.dialAttempt, this.limits, this.random));
      }
    })();
  }

  private onConnect(peer: PeerState): void {
    if (peer.connected || this.host === null) return;
    peer.connected = true;
    peer.connectedAtMs = this.clock.monotonicMs();
    if (peer.dialTimer !== null) peer.dialTimer.cancel();
    peer.dialTimer = null;
    this.logger.info({ peerId: peer.peerId }, 'peer connected');
    this.events.emit('peer:connect', peer.peerId);
  }

  /** libp2p's peer:disconnect: the last connection to the peer closed. */
  private onDisconnect(peerId: string): void {
    const peer = this.peers.get(peerId);
    if (peer === undefined || this.host === null) return;
    if (!peer.connected) {
      // A connection that never got verified (e.g. the remote refused us): keep backing off.
      if (peer.dialTimer === null && !peer.dialing && !peer.verifying) {
        peer.dialAttempt++;
        this.scheduleDial(peer, reconnectDelayMs(peer.dialAttempt, this.limits, this.random));
      }
      return;
    }
    peer.connected = false;
    const lasted = this.clock.monotonicMs() - peer.connectedAtMs;
    peer.dialAttempt = lasted >= STABLE_CONNECTION_MS ? 0 : peer.dialAttempt + 1;
    this.dropQueues(peer);
    for (const ch of peer.channels.values()) this.resetChannel(peer, ch, new Error('connection lost'));
    this.pending.rejectWhere(
      (r) => r.peerId === peerId,
      (r) => new P2pError(P2pErrorCode.PeerUnreachable, `connection to ${peerId} lost`, { peerId, channel: r.channel }),
    );
    this.logger.info({ peerId, connectedMs: lasted }, 'peer disconnected');
    this.events.emit('peer:disconnect', peerId);
    this.scheduleDial(peer, reconnectDelayMs(peer.dialAttempt, this.limits, this.random));
  }

  /**
   * When two members learn of each other at once, both would dial and keep two connections. The
   * one with the smaller peer id dials at once; the other waits a little, and usually finds the
   * connection already made. Either still dials on its own if the other never does.
   */
  private firstDialDelayMs(peer: PeerState): number {
    return this.localPeerId < peer.peerId ? 0 : FIRST_DIAL_TIE_BREAK_DELAY_MS;
  }

  private scheduleDial(peer: PeerState, delayMs: number): void {
    if (peer.dialTimer !== null || this.host === null) return;
    peer.dialTimer = this.clock.setTimeout(() => {
      peer.dialTimer = null;
      void this.dial(peer);
    }, delayMs);
    // A pending redial must not keep a process alive that is otherwise done.
    peer.dialTimer.unref?.();
  }

  private async dial(peer: PeerState): Promise<void> {
    const host = this.host;
    if (host === null || peer.connected || peer.dialing || peer.verifying || this.peers.get(peer.peerId) !== peer)
      return;
    if (host.libp2p.getConnections(peer.peerIdObj).length > 0) {
      this.verifyConnection(peer.peerId);
      return;
    }
    if (peer.addrs.length === 0) return; // nothing to dial: the peer will dial us
    peer.dialing = true;
    let dialed = false;
    try {
      await host.libp2p.dial(peer.addrs);
      dialed = true;
    } catch (err) {
      peer.dialAttempt++;
      this.logger.debug({ peerId: peer.peerId, attempt: peer.dialAttempt, err: (err as Error).message }, 'dial failed');
    } finally {
      peer.dialing = false;
    }
    if (this.host !== host || this.peers.get(peer.peerId) !== peer) return;
    if (dialed) this.verifyConnection(peer.peerId);
    else this.scheduleDial(peer, reconnectDelayMs(peer.dialAttempt, this.limits, this.random));
  }

  private removePeer(peer: PeerState): void {
    this.peers.delete(peer.peerId);
    if (peer.dialTimer !== null) peer.dialTimer.cancel();
    peer.dialTimer = null;
    // Fail its requests as Refused first: resetting the streams below would report them as unreachable.
    this.pending.rejectWhere(
      (r) => r.peerId === peer.peerId,
      (r) =>
        new P2pError(P2pErrorCode.Refused, `${peer.peerId} was removed from the membership`, {
          peerId: peer.peerId,
          channel: r.channel,
        }),
    );
    this.dropQueues(peer);
    for (const ch of peer.channels.values()) this.resetChannel(peer, ch, new Error('peer removed from the membership'));
    for (const stream of peer.inboundStreams) stream.abort(new Error('peer removed from the membership'));
    if (peer.connected) {
      peer.connected = false;
      this.events.emit('peer:disconnect', peer.peerId);
    }
  }

  // -------------------------------------------------------------------------
  // Outbound streams: queue, batch, write
  // -------------------------------------------------------------------------

  private outbound(peer: PeerState, channel: string): OutboundChannel {
    let ch = peer.channels.get(channel);
    if (ch === undefined) {
      assert(
        peer.channels.size < this.limits.maxChannelsPerPeer,
        () => `more than ${this.limits.maxChannelsPerPeer} channels to ${peer.peerId}`,
      );
      ch = { channel, queue: [], stream: null, generation: 0, flushing: false };
      peer.channels.set(channel, ch);
    }
    return ch;
  }

  private enqueue(peer: PeerState, ch: OutboundChannel, item: QueuedFrame): void {
    ch.queue.push(item);
    peer.queuedMessages++;
    peer.queuedBytes += item.frame.byteLength;
    if (!ch.flushing) void this.flush(peer, ch);
  }

  /** The single writer of a channel: opens the stream if needed, then writes queued frames in batches. */
  private async flush(peer: PeerState, ch: OutboundChannel): Promise<void> {
    ch.flushing = true;
    try {
      // Let the caller's current synchronous burst of send() calls (Raft's Ready) queue up first,
      // so it goes out as one batch instead of "first message alone, then the rest".
      await Promise.resolve();
      while (ch.queue.length > 0) {
        const host = this.host;
        if (host === null || !peer.connected) {
          this.dropQueue(peer, ch, 'no connection');
          return;
        }
        let prefix: Uint8Array[] = [];
        if (ch.stream === null) {
          const opened = await this.openStream(host, peer, ch);
          if (!opened) {
            this.dropQueue(peer, ch, 'stream could not be opened');
            return;
          }
          prefix = [encodeHello(ch.channel)];
        }
        const stream = ch.stream!;
        const batch = this.takeBatch(peer, ch);
        const frames = prefix.concat(batch.map((item) => item.frame));
        for (const item of batch) {
          if (item.requestId !== undefined) {
            const request = this.pending.get(item.requestId);
            if (request !== undefined) request.tag = ch.generation;
          } else {
            this.stats_.messagesSent++;
          }
        }
        try {
          this.batchesWritten++;
          await writeFrames(stream, frames);
        } catch (err) {
          // The stream broke under us; the batch may be partly delivered. Count the messages as
          // dropped (Raft resends) and fail the requests (the caller may retry).
          const messages = batch.filter((item) => item.requestId === undefined).length;
          this.stats_.messagesSent -= messages;
          this.stats_.messagesDropped += messages;
          this.resetChannel(peer, ch, err as Error);
        }
      }
    } finally {
      ch.flushing = false;
    }
  }

  private takeBatch(peer: PeerState, ch: OutboundChannel): QueuedFrame[] {
    let bytes = 0;
    let count = 0;
    while (count < ch.queue.length) {
      const size = ch.queue[count].frame.byteLength;
      if (count > 0 && bytes + size > this.limits.maxBatchBytes) break;
      bytes += size;
      count++;
    }
    const batch = ch.queue.splice(0, count);
    peer.queuedMessages -= count;
    peer.queuedBytes -= bytes;
    return batch;
  }

  private async openStream(host: P2pHost, peer: PeerState, ch: OutboundChannel): Promise<boolean> {
    const connection = host.libp2p.getConnections(peer.peerIdObj).find((c) => c.status === 'open');
    if (connection === undefined) return false;
    let stream: Stream;
    try {
      stream = await connection.newStream(CHANNEL_PROTOCOL, { signal: AbortSignal.timeout(STREAM_OPEN_TIMEOUT_MS) });
    } catch (err) {
      this.logger.debug(
        { peerId: peer.peerId, channel: ch.channel, err: (err as Error).message },
        'opening a stream failed',
      );
      return false;
    }
    if (this.host !== host || this.peers.get(peer.peerId) !== peer || !peer.connected) {
      stream.abort(new Error('peer went away while the stream opened'));
      return false;
    }
    ch.generation++;
    ch.stream = stream;
    const generation = ch.generation;
    stream.addEventListener('close', () => {
      if (ch.generation === generation && ch.stream === stream) this.resetChannel(peer, ch, new Error('stream closed'));
    });
    readFrames(
      stream,
      this.maxFrameBytes,
      (bytes) => this.onReplyFrame(peer, ch, bytes),
      (err) => {
        this.onReadError(peer.peerId, stream, err);
        if (ch.generation === generation) this.resetChannel(peer, ch, err);
      },
    );
    return true;
  }

  /** A frame the acceptor wrote back on our outbound stream: only replies belong there. */
  private onReplyFrame(peer: PeerState, ch: OutboundChannel, bytes: Uint8Array): void {
    const frame = decodeFrame(bytes);
    if (frame.kind !== FrameKind.Reply && frame.kind !== FrameKind.ErrReply) {
      throw new P2pError(P2pErrorCode.RemoteError, `unexpected frame kind ${frame.kind} on an outbound stream`);
    }
    const request = this.pending.get(frame.id);
    // Only a reply from the peer we asked, on the channel we asked on, settles a request.
    if (request === undefined || request.peerId !== peer.peerId || request.channel !== ch.channel) return;
    if (frame.kind === FrameKind.Reply) this.pending.resolve(frame.id, frame.payload.slice());
    else this.pending.reject(frame.id, remoteError(peer.peerId, ch.channel, frame.reason, frame.message));
  }

  /** Forgets the channel's stream; requests written on it fail. Queued frames wait for a new stream. */
  private resetChannel(peer: PeerState, ch: OutboundChannel, reason: Error): void {
    const stream = ch.stream;
    const generation = ch.generation;
    ch.stream = null;
    if (stream !== null && stream.status === 'open') stream.abort(reason);
    this.pending.rejectWhere(
      (r) => r.peerId === peer.peerId && r.channel === ch.channel && r.tag === generation && generation > 0,
      (r) =>
        new P2pError(
          P2pErrorCode.PeerUnreachable,
          `stream to ${peer.peerId} on ${r.channel} was reset: ${reason.message}`,
          {
            peerId: peer.peerId,
            channel: r.channel,
          },
        ),
    );
  }

  private dropQueues(peer: PeerState): void {
    for (const ch of peer.channels.values()) this.dropQueue(peer, ch, 'no connection');
  }

  private dropQueue(peer: PeerState, ch: OutboundChannel, why: string): void {
    for (const item of ch.queue) {
      peer.queuedMessages--;
      peer.queuedBytes -= item.frame.byteLength;
      if (item.requestId === undefined) this.stats_.messagesDropped++;
      else {
        this.pending.reject(
          item.requestId,
          new P2pError(P2pErrorCode.PeerUnreachable, `request to ${peer.peerId} not sent: ${why}`, {
            peerId: peer.peerId,
            channel: ch.channel,
          }),
        );
      }
    }
    ch.queue.length = 0;
  }

  // -------------------------------------------------------------------------
  // Inbound streams: dispatch messages and requests
  // -------------------------------------------------------------------------

  private acceptStream(stream: Stream, connection: Connection): void {
    const fromId = connection.remotePeer.toString();
    const peer = this.peers.get(fromId);
    // The gater already refused strangers; this catches a peer removed while its stream was negotiated.
    if (peer === undefined || this.host === null) {
      stream.abort(new Error('not a member'));
      return;
    }
    peer.inboundStreams.add(stream);
    stream.addEventListener('close', () => peer.inboundStreams.delete(stream));
    const helloTimer = this.clock.setTimeout(() => {
      this.onReadError(
        fromId,
        stream,
        new P2pError(P2pErrorCode.RemoteError, `no Hello frame within ${HELLO_TIMEOUT_MS} ms`),
      );
    }, HELLO_TIMEOUT_MS);
    stream.addEventListener('close', () => helloTimer.cancel());
    let channel: string | null = null;
    // A dialer's connection probe (verifyConnection) negotiates the protocol and closes its side
    // without a Hello: close ours too, quietly, instead of waiting for the Hello timeout.
    stream.addEventListener('remoteCloseWrite', () => {
      if (channel !== null) return;
      helloTimer.cancel();
      stream.close().catch((err: Error) => stream.abort(err));
    });
    const replies = new ReplyWriter(stream, this.limits, this.clock);
    readFrames(
      stream,
      this.maxFrameBytes,
      (bytes) => {
        const frame = decodeFrame(bytes);
        if (channel === null) {
          if (frame.kind !== FrameKind.Hello || frame.version !== WIRE_VERSION) {
            throw new P2pError(P2pErrorCode.RemoteError, `expected a version ${WIRE_VERSION} Hello frame`);
          }
          assertChannelNameFromWire(frame.channel);
          channel = frame.channel;
          helloTimer.cancel();
        } else if (frame.kind === FrameKind.Message) {
          const handler = this.handlers.message.get(channel);
          if (handler === undefined) {
            this.stats_.unhandledFrames++;
            return;
          }
          this.stats_.messagesReceived++;
          try {
            // A copy: the view would pin the whole received chunk for as long as the handler keeps it.
            handler(fromId, frame.payload.slice());
          } catch (err) {
            // A handler bug must not tear down the stream that carries every later message.
            this.logger.warn({ peerId: fromId, channel, err }, 'message handler threw');
          }
        } else if (frame.kind === FrameKind.Request) {
          this.serveRequest(peer, stream, replies, channel, frame.id, frame.payload.slice());
        } else {
          throw new P2pError(P2pErrorCode.RemoteError, `unexpected frame kind ${frame.kind} on an inbound stream`);
        }
      },
      (err) => this.onReadError(fromId, stream, err),
    );
  }

  private serveRequest(
    peer: PeerState,
    stream: Stream,
    replies: ReplyWriter,
    channel: string,
    id: number,
    payload: Uint8Array,
  ): void {
    const write = (frame: Uint8Array): void => replies.write(frame);
    const handler = this.handlers.request.get(channel);
    if (handler === undefined) {
      this.stats_.unhandledFrames++;
      write(encodeErrReply(id, RemoteErrorReason.NoHandler, `no handler for channel ${channel}`));
      return;
    }
    if (peer.inboundRequests >= this.limits.maxConcurrentInboundRequestsPerPeer) {
      write(encodeErrReply(id, RemoteErrorReason.Busy, `${peer.inboundRequests} requests already running`));
      return;
    }
    peer.inboundRequests++;
    const controller = new AbortController();
    const onClose = (): void => controller.abort(new Error('requester stream closed'));
    stream.addEventListener('close', onClose);
    // new Promise(): a handler that throws synchronously is answered like one that rejects.
    new Promise<Uint8Array>((resolve) => resolve(handler(peer.peerId, payload, controller.signal)))
      .then(
        (result) => {
          if (controller.signal.aborted) return;
          if (result.byteLength > this.limits.maxMessageBytes) {
            write(encodeErrReply(id, RemoteErrorReason.ReplyTooLarge, `reply of ${result.byteLength} bytes`));
          } else {
            write(encodeWithId(FrameKind.Reply, id, result));
          }
        },
        (err: unknown) => {
          if (controller.signal.aborted) return;
          write(encodeErrReply(id, RemoteErrorReason.HandlerFailed, err instanceof Error ? err.message : String(err)));
        },
      )
      .finally(() => {
        peer.inboundRequests--;
        stream.removeEventListener('close', onClose);
      });
  }

  /** An oversized or malformed frame resets the stream (never the process); EOF and resets are normal. */
  private onReadError(peerId: string, stream: Stream, err: unknown): void {
    if (err instanceof FrameTooLargeError) {
      this.stats_.oversizedFramesRejected++;
      this.logger.warn({ peerId, err: (err as Error).message }, 'peer sent a frame over maxMessageBytes; stream reset');
    } else if (err instanceof P2pError) {
      this.logger.warn({ peerId, err: err.message }, 'peer broke the channel protocol; stream reset');
    }
    if (stream.status === 'open') stream.abort(err instanceof Error ? err : new Error(String(err)));
  }
}

function assertChannelNameFromWire(channel: string): void {
  try {
    assertChannelName(channel);
  } catch {
    // A bad name from the wire is the remote's fault, not ours: a protocol error, not an assertion.
    throw new P2pError(P2pErrorCode.RemoteError, `invalid channel name from the wire: ${JSON.stringify(channel)}`);
  }
}

function withPeerId(address: string, peerId: string): Multiaddr {
  const ma = multiaddr(address);
  const existing = ma.getComponents().find((c) => c.name === 'p2p')?.value;
  if (existing !== undefined) {
    assert(existing === peerId, () => `address ${address} names peer ${existing}, not ${peerId}`);
    return ma;
  }
  return ma.encapsulate(`/p2p/${peerId}`);
}

/**
 * Writes the replies of one inbound stream. Replies that become ready in the same event-loop turn
 * (a burst of pipelined requests) go out in one writeV. While a write waits for the remote to
 * drain, replies queue here; a requester that stops reading its replies while they pile up past
 * the bound has its stream reset, so it cannot make us buffer without limit.
 */
class ReplyWriter {
  private readonly queue: Uint8Array[] = [];
  private scheduled = false;
  private writing = false;
  /**
   * Replies waiting to be written: a requester within the shared limits has at most
   * maxInflightRequestsPerPeer outstanding (each answered once, by a reply or a Busy error), so
   * only a peer that ignores its own limit or stops reading can reach this.
   */
  private readonly maxQueuedReplies: number;

  constructor(
    private readonly stream: Stream,
    private readonly limits: TransportLimits,
    private readonly clock: Pick<P2pClock, 'setImmediate'>,
  ) {
    this.maxQueuedReplies = limits.maxInflightRequestsPerPeer + limits.maxConcurrentInboundRequestsPerPeer;
  }

  write(frame: Uint8Array): void {
    if (this.stream.status !== 'open') return; // the requester already saw the reset
    if (this.queue.length >= this.maxQueuedReplies) {
      this.stream.abort(new Error(`requester is not reading its replies (${this.queue.length} queued)`));
      return;
    }
    this.queue.push(frame);
    if (!this.scheduled && !this.writing) {
      this.scheduled = true;
      this.clock.setImmediate(() => void this.flush());
    }
  }

  private async flush(): Promise<void> {
    this.scheduled = false;
    this.writing = true;
    try {
      while (this.queue.length > 0 && this.stream.status === 'open') {
        let bytes = 0;
        let count = 0;
        while (
          count < this.queue.length &&
          (count === 0 || bytes + this.queue[count].byteLength <= this.limits.maxBatchBytes)
        ) {
          bytes += this.queue[count].byteLength;
          count++;
        }
        await writeFrames(this.stream, this.queue.splice(0, count));
      }
    } catch {
      // The stream broke; the requester's pending requests fail on its side when it sees the reset.
      this.queue.length = 0;
    } finally {
      this.writing = false;
    }
  }
}
