// An in-process network of MemoryTransports, for tests and the simulator. It keeps the same
// semantics as Libp2pTransport (test/p2p/transport.suite.ts runs against both):
// a link is up only while both ends are started, each lists the other in setPeers(), and no
// partition cuts it; delivery is asynchronous and FIFO per directed link; a frame larger than
// the receiver's maxMessageBytes is refused and "resets the stream" (pending requests on that
// channel fail), exactly as the real transport does.
//
// Faults for tests: partition(a, b) / isolate(a) / heal(), setDropProbability(p) (random loss of
// messages, requests and replies), setDelayMs(ms) (added latency, order kept).

import type { P2pClock, P2pTimerHandle } from './clock.js';
import { P2pError, P2pErrorCode, assert } from './errors.js';
import { defaultP2pLogger, type P2pLogger } from './logger.js';
import {
  Handlers,
  MutableStats,
  PeerEvents,
  PendingRequests,
  RemoteErrorReason,
  assertChannelName,
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

interface LinkItem {
  readonly atMs: number;
  readonly from: MemoryTransport;
  readonly to: MemoryTransport;
  readonly deliver: () => void;
}

/** One directed link's FIFO of frames in flight. */
interface Link {
  readonly items: LinkItem[];
  timer: P2pTimerHandle | null;
}

export class MemoryNetwork {
  private readonly started = new Map<string, MemoryTransport>();
  /** Cut links, stored as "a\u0000b" with a < b: a partition cuts both directions. */
  private readonly cuts = new Set<string>();
  private readonly links = new Map<string, Link>();
  private dropProbability = 0;
  private delayMs = 0;

  /** The node's clock: link delays and timers, and random loss (a ManualClock's seed makes a run reproducible). */
  constructor(private readonly clock: P2pClock) {}

  createTransport(
    peerId: string,
    options: { limits?: Partial<TransportLimits>; logger?: P2pLogger } = {},
  ): MemoryTransport {
    return new MemoryTransport(
      this,
      peerId,
      resolveLimits(options.limits),
      options.logger ?? defaultP2pLogger(),
      this.clock,
    );
  }

  /** Cuts the link between a and b in both directions; frames in flight on it are lost. */
  partition(a: string, b: string): void {
    this.cuts.add(cutKey(a, b));
    this.refresh();
  }

  /** Cuts every link of `a`, including to nodes started later. */
  isolate(a: string): void {
    this.cuts.add(cutKey(a, '*'));
    this.refresh();
  }

  /** Removes every partition, loss and delay. */
  heal(): void {
    this.cuts.clear();
    this.dropProbability = 0;
    this.delayMs = 0;
    this.refresh();
  }

  setDropProbability(probability: number): void {
    assert(probability >= 0 && probability <= 1, 'drop probability must be in [0, 1]');
    this.dropProbability = probability;
  }

  setDelayMs(delayMs: number): void {
    assert(delayMs >= 0 && Number.isFinite(delayMs), 'delayMs must be a finite number >= 0');
    this.delayMs = delayMs;
  }

  /** @internal */
  register(transport: MemoryTransport): void {
    const current = this.started.get(transport.localPeerId);
    assert(
      current === undefined || current === transport,
      () => `peer id ${transport.localPeerId} is already started on this network`,
    );
    this.started.set(transport.localPeerId, transport);
    this.refresh();
  }

  /** @internal */
  unregister(transport: MemoryTransport): void {
    if (this.started.get(transport.localPeerId) === transport) this.started.delete(transport.localPeerId);
    this.refresh();
  }

  /** @internal Is the link between these two started instances up right now? */
  linkUp(a: MemoryTransport, b: MemoryTransport): boolean {
    return (
      this.started.get(a.localPeerId) === a &&
      this.started.get(b.localPeerId) === b &&
      a.allows(b.localPeerId) &&
      b.allows(a.localPeerId) &&
      !this.cuts.has(cutKey(a.localPeerId, b.localPeerId)) &&
      !this.cuts.has(cutKey(a.localPeerId, '*')) &&
      !this.cuts.has(cutKey(b.localPeerId, '*'))
    );
  }

  /** @internal */
  instance(peerId: string): MemoryTransport | undefined {
    return this.started.get(peerId);
  }

  /** @internal Frames queued on the directed link from -> to. */
  queuedOn(from: MemoryTransport, to: string): number {
    return this.links.get(`${from.localPeerId}\u0000${to}`)?.items.length ?? 0;
  }

  /**
   * @internal Schedules `deliver` on the directed link, after the configured delay and after
   * every frame already on the link. Returns false when the frame was lost (random drop).
   */
  enqueue(from: MemoryTransport, to: MemoryTransport, deliver: () => void): boolean {
    if (this.dropProbability > 0 && this.clock.randomFloat() < this.dropProbability) return false;
    const key = `${from.localPeerId}\u0000${to.localPeerId}`;
    let link = this.links.get(key);
    if (link === undefined) {
      link = { items: [], timer: null };
      this.links.set(key, link);
    }
    const last = link.items[link.items.length - 1];
    const atMs = Math.max(this.clock.monotonicMs() + this.delayMs, last?.atMs ?? 0);
    link.items.push({ atMs, from, to, deliver });
    this.schedule(key, link);
    return true;
  }

  private schedule(key: string, link: Link): void {
    if (link.timer !== null || link.items.length === 0) return;
    const waitMs = link.items[0].atMs - this.clock.monotonicMs();
    const pump = (): void => {
      link.timer = null;
      const now = this.clock.monotonicMs();
      while (link.items.length > 0 && link.items[0].atMs <= now) {
        const item = link.items.shift()!;
        // A frame in flight when the link went down (partition, stop, removal) is lost, as on TCP
        // when the connection breaks.
        if (this.linkUp(item.from, item.to)) item.deliver();
      }
      if (link.items.length === 0) this.links.delete(key);
      else this.schedule(key, link);
    };
    link.timer = waitMs <= 0 ? this.clock.setImmediate(pump) : this.clock.setTimeout(pump, waitMs);
  }

  /** @internal Recomputes every link after a change and tells both ends. */
  refresh(): void {
    for (const transport of this.started.values()) transport.refreshLinks();
  }
}

function cutKey(a: string, b: string): string {
  return a < b ? `${a}\u0000${b}` : `${b}\u0000${a}`;
}

export class MemoryTransport implements PeerTransport {
  private readonly handlers = new Handlers();
  private readonly events = new PeerEvents();
  private readonly stats_ = new MutableStats();
  private readonly pending: PendingRequests;
  private members = new Map<string, PeerAddress>();
  private readonly connected = new Set<string>();
  /** Inbound requests running here, per requesting peer; aborted when that peer's link drops. */
  private readonly inbound = new Map<string, Set<AbortController>>();
  private started = false;

  constructor(
    private readonly network: MemoryNetwork,
    readonly localPeerId: string,
    readonly limits: TransportLimits,
    private readonly logger: P2pLogger,
    clock: P2pClock,
  ) {
    this.pending = new PendingRequests(limits, clock);
  }

  async start(): Promise<void> {
    if (this.started) return;
    this.started = true;
    this.network.register(this);
  }

  async stop(): Promise<void> {
    if (!this.started) return;
    this.started = false;
    this.network.unregister(this);
    this.refreshLinks();
    this.pending.rejectWhere(
      () => true,
      (r) => new P2pError(P2pErrorCode.NotStarted, 'transport stopped', { peerId: r.peerId, channel: r.channel }),
    );
  }

  listenAddrs(): string[] {
    return this.started ? [`/memory/${this.localPeerId}`] : [];
  }

  setPeers(peers: readonly PeerAddress[]): void {
    const next = new Map<string, PeerAddress>();
    for (const peer of peers) if (peer.peerId !== this.localPeerId) next.set(peer.peerId, peer);
    const removed = [...this.members.keys()].filter((id) => !next.has(id));
    this.members = next;
    for (const id of removed) {
      this.pending.rejectWhere(
        (r) => r.peerId === id,
        (r) =>
          new P2pError(P2pErrorCode.Refused, `${id} was removed from the membership`, {
            peerId: id,
            channel: r.channel,
          }),
      );
    }
    // Both ends must re-evaluate: the removed peer loses its link to us too.
    if (this.started) this.network.refresh();
  }

  send(peerId: string, channel: string, data: Uint8Array): void {
    assertChannelName(channel);
    if (data.byteLength > this.limits.maxMessageBytes)
      throw tooLarge('message', data.byteLength, this.limits.maxMessageBytes);
    const target = this.network.instance(peerId);
    if (!this.started || !this.connected.has(peerId) || target === undefined) {
      this.stats_.messagesDropped++;
      return;
    }
    // The per-peer bound of the real transport, applied to frames still in flight on the link.
    if (this.network.queuedOn(this, peerId) >= this.limits.maxQueuedMessagesPerPeer) {
      this.stats_.messagesDropped++;
      return;
    }
    const copy = data.slice(); // the caller may reuse its buffer, as with a real socket
    const sent = this.network.enqueue(this, target, () => target.receiveMessage(this, channel, copy));
    if (sent) this.stats_.messagesSent++;
    else this.stats_.messagesDropped++;
  }

  async request(peerId: string, channel: string, data: Uint8Array, options: RequestOptions = {}): Promise<Uint8Array> {
    assertChannelName(channel);
    if (!this.started) throw new P2pError(P2pErrorCode.NotStarted, 'transport not started', { peerId, channel });
    if (data.byteLength > this.limits.maxMessageBytes)
      throw tooLarge('request', data.byteLength, this.limits.maxMessageBytes);
    if (!this.members.has(peerId)) {
      throw new P2pError(P2pErrorCode.Refused, `${peerId} is not in the membership`, { peerId, channel });
    }
    const target = this.network.instance(peerId);
    if (!this.connected.has(peerId) || target === undefined) {
      throw new P2pError(P2pErrorCode.PeerUnreachable, `no connection to ${peerId}`, { peerId, channel });
    }
    const { request, promise } = this.pending.create(peerId, channel, options);
    const copy = data.slice();
    try {
      // A lost request frame surfaces as a Timeout, as it would over a lossy real network.
      this.network.enqueue(this, target, () => target.receiveRequest(this, channel, request.id, copy));
    } catch (err) {
      // Fail the promise the caller holds rather than leave its timer to reject it unawaited.
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
    return [...this.connected];
  }

  stats(): TransportStats {
    return this.stats_.snapshot();
  }

  /** @internal */
  allows(peerId: string): boolean {
    return this.members.has(peerId);
  }

  /** @internal Called by the network whenever links may have changed. */
  refreshLinks(): void {
    const up = new Set<string>();
    if (this.started) {
      for (const id of this.members.keys()) {
        const other = this.network.instance(id);
        if (other !== undefined && this.network.linkUp(this, other)) up.add(id);
      }
    }
    for (const id of [...this.connected]) {
      if (!up.has(id)) {
        this.connected.delete(id);
        this.linkLost(id);
        queueMicrotask(() => this.events.emit('peer:disconnect', id));
      }
    }
    for (const id of up) {
      if (!this.connected.has(id)) {
        this.connected.add(id);
        queueMicrotask(() => this.events.emit('peer:connect', id));
      }
    }
  }

  private linkLost(peerId: string): void {
    this.pending.rejectWhere(
      (r) => r.peerId === peerId,
      (r) => new P2pError(P2pErrorCode.PeerUnreachable, `connection to ${peerId} lost`, { peerId, channel: r.channel }),
    );
    for (const controller of this.inbound.get(peerId) ?? [])
      controller.abort(new Error(`connection to ${peerId} lost`));
    this.inbound.delete(peerId);
  }

  /** The receiver refused an oversized frame: like a reset stream, every request on the channel fails. */
  private streamReset(peerId: string, channel: string): void {
    this.pending.rejectWhere(
      (r) => r.peerId === peerId && r.channel === channel,
      (r) =>
        new P2pError(P2pErrorCode.PeerUnreachable, `stream to ${peerId} on ${channel} was reset`, {
          peerId,
          channel: r.channel,
        }),
    );
  }

  private receiveMessage(from: MemoryTransport, channel: string, data: Uint8Array): void {
    if (data.byteLength > this.limits.maxMessageBytes) {
      this.stats_.oversizedFramesRejected++;
      from.streamReset(this.localPeerId, channel);
      return;
    }
    const handler = this.handlers.message.get(channel);
    if (handler === undefined) {
      this.stats_.unhandledFrames++;
      return;
    }
    this.stats_.messagesReceived++;
    try {
      handler(from.localPeerId, data);
    } catch (err) {
      // As in Libp2pTransport: a handler bug must not stop delivery of later messages.
      this.logger.warn({ peerId: from.localPeerId, channel, err }, 'message handler threw');
    }
  }

  private receiveRequest(from: MemoryTransport, channel: string, id: number, data: Uint8Array): void {
    const fromId = from.localPeerId;
    if (data.byteLength > this.limits.maxMessageBytes) {
      this.stats_.oversizedFramesRejected++;
      from.streamReset(this.localPeerId, channel);
      return;
    }
    const reply = (outcome: { ok: Uint8Array } | { reason: RemoteErrorReason; message: string }): void => {
      this.network.enqueue(this, from, () => from.receiveReply(this, channel, id, outcome));
    };
    const handler = this.handlers.request.get(channel);
    if (handler === undefined) {
      this.stats_.unhandledFrames++;
      reply({ reason: RemoteErrorReason.NoHandler, message: `no handler for channel ${channel}` });
      return;
    }
    let running = this.inbound.get(fromId);
    if (running === undefined) {
      running = new Set();
      this.inbound.set(fromId, running);
    }
    if (running.size >= this.limits.maxConcurrentInboundRequestsPerPeer) {
      reply({ reason: RemoteErrorReason.Busy, message: `${running.size} requests already running` });
      return;
    }
    const controller = new AbortController();
    running.add(controller);
    const set = running;
    // new Promise(): a handler that throws synchronously is answered like one that rejects.
    new Promise<Uint8Array>((resolve) => resolve(handler(fromId, data, controller.signal))).then(
      (result) => {
        set.delete(controller);
        if (controller.signal.aborted) return;
        if (result.byteLength > this.limits.maxMessageBytes) {
          reply({ reason: RemoteErrorReason.ReplyTooLarge, message: `reply of ${result.byteLength} bytes` });
        } else {
          reply({ ok: result.slice() });
        }
      },
      (err: unknown) => {
        set.delete(controller);
        if (controller.signal.aborted) return;
        reply({ reason: RemoteErrorReason.HandlerFailed, message: err instanceof Error ? err.message : String(err) });
      },
    );
  }

  private receiveReply(
    from: MemoryTransport,
    channel: string,
    id: number,
    outcome: { ok: Uint8Array } | { reason: RemoteErrorReason; message: string },
  ): void {
    const request = this.pending.get(id);
    if (request === undefined || request.peerId !== from.localPeerId) return; // timed out or aborted already
    if ('ok' in outcome) {
      if (outcome.ok.byteLength > this.limits.maxMessageBytes) {
        this.stats_.oversizedFramesRejected++;
        this.streamReset(from.localPeerId, channel);
        return;
      }
      this.pending.resolve(id, outcome.ok);
    } else {
      this.pending.reject(id, remoteError(from.localPeerId, channel, outcome.reason, outcome.message));
    }
  }
}
