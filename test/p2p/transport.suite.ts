// The one compliance suite every PeerTransport passes (js-libp2p's pattern: the same tests for
// the in-memory and the TCP transport). Each refusal test keeps a positive twin beside it, so a
// transport that refuses everyone (docs/stack.md gotcha 1) cannot pass.

import { afterEach, describe, expect, it } from 'vitest';
import { P2pError, P2pErrorCode } from '../../p2p/errors.js';
import { RemoteErrorReason, type PeerAddress, type PeerTransport, type TransportLimits } from '../../p2p/transport.js';

export interface TransportTestNode {
  readonly peerId: string;
  /** The current instance; replaced by restart(). Started. */
  readonly transport: PeerTransport;
  address(): PeerAddress;
  /** Stops the transport, then starts a new one with the same identity and the same address. */
  restart(): Promise<void>;
}

export interface TransportTestNetwork {
  /** A started node that knows no peers yet. */
  createNode(options?: { limits?: Partial<TransportLimits> }): Promise<TransportTestNode>;
  /** Stops every node created. */
  close(): Promise<void>;
}

/** Limits that keep the suite fast: quick redials. */
export const TEST_LIMITS: Partial<TransportLimits> = { reconnectBaseDelayMs: 20, reconnectMaxDelayMs: 300 };

const enc = (text: string): Uint8Array => new TextEncoder().encode(text);
const dec = (bytes: Uint8Array): string => new TextDecoder().decode(bytes);

export async function waitFor(condition: () => boolean, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}

/** Gives every node every other node as a peer and waits until all pairs are connected. */
export async function connectAll(nodes: readonly TransportTestNode[]): Promise<void> {
  for (const node of nodes) node.transport.setPeers(nodes.filter((n) => n !== node).map((n) => n.address()));
  await waitFor(
    () =>
      nodes.every((node) =>
        nodes.every((other) => other === node || node.transport.connectedPeers().includes(other.peerId)),
      ),
    'all pairs connected',
  );
}

async function expectP2pError(promise: Promise<unknown>, codes: P2pErrorCode[]): Promise<P2pError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(P2pError);
    expect(codes).toContain((err as P2pError).code);
    return err as P2pError;
  }
  throw new Error(`expected a P2pError with code ${codes.join(' or ')}, but the call succeeded`);
}

export function describeTransportCompliance(name: string, makeNetwork: () => Promise<TransportTestNetwork>): void {
  describe(`PeerTransport compliance: ${name}`, () => {
    let network: TransportTestNetwork | null = null;
    const open = async (): Promise<TransportTestNetwork> => {
      network = await makeNetwork();
      return network;
    };
    afterEach(async () => {
      await network?.close();
      network = null;
    });

    it('connects two members, reports them, and delivers a message with the sender id', async () => {
      const net = await open();
      const a = await net.createNode();
      const b = await net.createNode();
      const connectsAtB: string[] = [];
      b.transport.on('peer:connect', (id) => connectsAtB.push(id));
      const received: Array<[string, string]> = [];
      b.transport.onMessage('raft', (from, data) => received.push([from, dec(data)]));
      await connectAll([a, b]);
      a.transport.send(b.peerId, 'raft', enc('hello'));
      await waitFor(() => received.length === 1, 'message delivered');
      expect(received).toEqual([[a.peerId, 'hello']]);
      expect(connectsAtB).toContain(a.peerId);
      expect(a.transport.connectedPeers()).toEqual([b.peerId]);
      expect(a.transport.stats().messagesSent).toBe(1);
      expect(b.transport.stats().messagesReceived).toBe(1);
    });

    it('keeps order per channel, with two channels interleaved and nothing lost', async () => {
      const net = await open();
      const a = await net.createNode();
      const b = await net.createNode();
      const got: Record<string, number[]> = { raft: [], tx: [] };
      b.transport.onMessage('raft', (_from, data) =>
        got.raft.push(new DataView(data.buffer, data.byteOffset).getUint32(0)),
      );
      b.transport.onMessage('tx', (_from, data) =>
        got.tx.push(new DataView(data.buffer, data.byteOffset).getUint32(0)),
      );
      await connectAll([a, b]);
      const count = 2000;
      for (let i = 0; i < count; i++) {
        const buf = new Uint8Array(64);
        new DataView(buf.buffer).setUint32(0, i);
        a.transport.send(b.peerId, i % 3 === 0 ? 'tx' : 'raft', buf);
      }
      const expected = { raft: [] as number[], tx: [] as number[] };
      for (let i = 0; i < count; i++) (i % 3 === 0 ? expected.tx : expected.raft).push(i);
      await waitFor(() => got.raft.length + got.tx.length === count, 'all messages delivered');
      expect(got).toEqual(expected);
      expect(a.transport.stats().messagesDropped).toBe(0);
    });

    it('answers requests, many at once, each with its own reply', async () => {
      const net = await open();
      const a = await net.createNode();
      const b = await net.createNode();
      b.transport.onRequest('payload', async (from, data) => enc(`${from}:${dec(data).toUpperCase()}`));
      await connectAll([a, b]);
      const replies = await Promise.all(
        Array.from({ length: 200 }, (_, i) =>
          a.transport.request(b.peerId, 'payload', enc(`req${i}`), { timeoutMs: 10_000 }),
        ),
      );
      expect(replies.map(dec)).toEqual(Array.from({ length: 200 }, (_, i) => `${a.peerId}:REQ${i}`));
    });

    it('reports a failing remote handler and a missing handler as RemoteError', async () => {
      const net = await open();
      const a = await net.createNode();
      const b = await net.createNode();
      b.transport.onRequest('payload', async () => {
        throw new Error('no such payload');
      });
      b.transport.onRequest('ok', async () => enc('fine'));
      await connectAll([a, b]);
      const failed = await expectP2pError(a.transport.request(b.peerId, 'payload', enc('x')), [
        P2pErrorCode.RemoteError,
      ]);
      expect(failed.meta.reason).toBe(RemoteErrorReason.HandlerFailed);
      expect(String(failed.meta.remoteMessage)).toContain('no such payload');
      const missing = await expectP2pError(a.transport.request(b.peerId, 'nobody-home', enc('x')), [
        P2pErrorCode.RemoteError,
      ]);
      expect(missing.meta.reason).toBe(RemoteErrorReason.NoHandler);
      // The same stream still serves other requests after an error reply.
      expect(dec(await a.transport.request(b.peerId, 'ok', enc('x')))).toBe('fine');
    });

    it('survives handlers that throw: later messages still arrive, a sync throw becomes RemoteError', async () => {
      const net = await open();
      const a = await net.createNode();
      const b = await net.createNode();
      const got: string[] = [];
      b.transport.onMessage('raft', (_from, data) => {
        const text = dec(data);
        if (text === 'boom') throw new Error('handler bug');
        got.push(text);
      });
      b.transport.onRequest('sync-throw', () => {
        throw new Error('thrown before any promise');
      });
      await connectAll([a, b]);
      a.transport.send(b.peerId, 'raft', enc('boom'));
      a.transport.send(b.peerId, 'raft', enc('after'));
      await waitFor(() => got.length === 1, 'message after a throwing handler');
      expect(got).toEqual(['after']);
      const err = await expectP2pError(a.transport.request(b.peerId, 'sync-throw', enc('x')), [
        P2pErrorCode.RemoteError,
      ]);
      expect(err.meta.reason).toBe(RemoteErrorReason.HandlerFailed);
    });

    it('times out a request whose handler never answers, and honours an abort signal', async () => {
      const net = await open();
      const a = await net.createNode();
      const b = await net.createNode();
      const handlerSignals: AbortSignal[] = [];
      b.transport.onRequest('slow', (_from, _data, signal) => {
        handlerSignals.push(signal);
        return new Promise<Uint8Array>(() => undefined);
      });
      b.transport.onRequest('ok', async () => enc('fine'));
      await connectAll([a, b]);
      const started = Date.now();
      await expectP2pError(a.transport.request(b.peerId, 'slow', enc('x'), { timeoutMs: 200 }), [P2pErrorCode.Timeout]);
      expect(Date.now() - started).toBeGreaterThanOrEqual(190);
      const controller = new AbortController();
      const aborted = a.transport.request(b.peerId, 'slow', enc('x'), { signal: controller.signal, timeoutMs: 10_000 });
      setTimeout(() => controller.abort(), 20);
      await expectP2pError(aborted, [P2pErrorCode.Aborted]);
      // Positive twin: a prompt handler on the same peer answers within the same timeout.
      expect(dec(await a.transport.request(b.peerId, 'ok', enc('x'), { timeoutMs: 2_000 }))).toBe('fine');
    });

    it('refuses oversized payloads when sending, and delivers one of exactly the maximum size', async () => {
      const net = await open();
      const maxMessageBytes = 64 * 1024;
      const a = await net.createNode({ limits: { maxMessageBytes } });
      const b = await net.createNode({ limits: { maxMessageBytes } });
      const sizes: number[] = [];
      b.transport.onMessage('raft', (_from, data) => sizes.push(data.byteLength));
      b.transport.onRequest('echo', async (_from, data) => data);
      await connectAll([a, b]);
      const tooBig = new Uint8Array(maxMessageBytes + 1);
      let thrown: unknown;
      try {
        a.transport.send(b.peerId, 'raft', tooBig);
      } catch (err) {
        thrown = err;
      }
      expect(thrown).toBeInstanceOf(P2pError);
      expect((thrown as P2pError).code).toBe(P2pErrorCode.MessageTooLarge);
      await expectP2pError(a.transport.request(b.peerId, 'echo', tooBig), [P2pErrorCode.MessageTooLarge]);
      const exact = new Uint8Array(maxMessageBytes).fill(7);
      a.transport.send(b.peerId, 'raft', exact);
      await waitFor(() => sizes.length === 1, 'maximal message delivered');
      expect(sizes).toEqual([maxMessageBytes]);
      expect(Uint8Array.from(await a.transport.request(b.peerId, 'echo', exact))).toEqual(exact);
    });

    it('resets the stream of a peer that sends an oversized frame, and carries on', async () => {
      const net = await open();
      // a accepts bigger frames than b: what a sends can exceed b's limit on the wire.
      const a = await net.createNode({ limits: { maxMessageBytes: 256 * 1024 } });
      const b = await net.createNode({ limits: { maxMessageBytes: 16 * 1024 } });
      const received: number[] = [];
      b.transport.onMessage('raft', (_from, data) => received.push(data.byteLength));
      b.transport.onRequest('echo', async (_from, data) => data);
      await connectAll([a, b]);
      a.transport.send(b.peerId, 'raft', new Uint8Array(100 * 1024));
      await waitFor(() => b.transport.stats().oversizedFramesRejected === 1, 'oversized frame rejected');
      await expectP2pError(a.transport.request(b.peerId, 'echo', new Uint8Array(100 * 1024)), [
        P2pErrorCode.PeerUnreachable,
      ]);
      expect(b.transport.stats().oversizedFramesRejected).toBe(2);
      // Positive twin: later, small traffic flows again on fresh streams.
      a.transport.send(b.peerId, 'raft', new Uint8Array(10));
      await waitFor(() => received.includes(10), 'small message after the reset');
      expect(received).toEqual([10]);
      expect(dec(await a.transport.request(b.peerId, 'echo', enc('still here')))).toBe('still here');
    });

    it('refuses a peer that is not in the allowlist, while an allowed peer connects and talks', async () => {
      const net = await open();
      const a = await net.createNode();
      const allowed = await net.createNode();
      const stranger = await net.createNode();
      const fromIds: string[] = [];
      const connects: string[] = [];
      a.transport.onMessage('raft', (from) => fromIds.push(from));
      a.transport.on('peer:connect', (id) => connects.push(id));
      // a knows only `allowed`; the stranger knows a and keeps trying.
      a.transport.setPeers([allowed.address()]);
      allowed.transport.setPeers([a.address()]);
      stranger.transport.setPeers([a.address()]);
      await waitFor(
        () =>
          a.transport.connectedPeers().includes(allowed.peerId) &&
          allowed.transport.connectedPeers().includes(a.peerId),
        'allowed peer connected, seen from both ends',
      );
      // Positive: the allowed peer's message arrives.
      allowed.transport.send(a.peerId, 'raft', enc('member'));
      await waitFor(() => fromIds.includes(allowed.peerId), 'member message delivered');
      // Negative: give the stranger time for several redials and sends; nothing gets through.
      const deadline = Date.now() + 800;
      while (Date.now() < deadline) {
        stranger.transport.send(a.peerId, 'raft', enc('stranger'));
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await expectP2pError(stranger.transport.request(a.peerId, 'raft', enc('x'), { timeoutMs: 1_000 }), [
        P2pErrorCode.PeerUnreachable,
        P2pErrorCode.Timeout,
      ]);
      expect(fromIds).not.toContain(stranger.peerId);
      expect(connects).not.toContain(stranger.peerId);
      expect(a.transport.connectedPeers()).toEqual([allowed.peerId]);
      // Asking a non-member is refused locally, without touching the network.
      await expectP2pError(a.transport.request(stranger.peerId, 'raft', enc('x')), [P2pErrorCode.Refused]);
    });

    it('cuts a peer removed from the allowlist at runtime and keeps the others', async () => {
      const net = await open();
      const a = await net.createNode();
      const b = await net.createNode();
      const c = await net.createNode();
      const fromIds: string[] = [];
      a.transport.onMessage('raft', (from) => fromIds.push(from));
      c.transport.onRequest('slow', () => new Promise<Uint8Array>(() => undefined));
      await connectAll([a, b, c]);
      const disconnects: string[] = [];
      a.transport.on('peer:disconnect', (id) => disconnects.push(id));
      const pending = a.transport.request(c.peerId, 'slow', enc('x'), { timeoutMs: 10_000 });
      a.transport.setPeers([b.address()]);
      await expectP2pError(pending, [P2pErrorCode.Refused]);
      expect(disconnects).toEqual([c.peerId]);
      await waitFor(() => !c.transport.connectedPeers().includes(a.peerId), 'c sees a gone');
      // c still lists a and keeps redialling; none of its traffic reaches a.
      const deadline = Date.now() + 600;
      while (Date.now() < deadline) {
        c.transport.send(a.peerId, 'raft', enc('removed'));
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      expect(fromIds).not.toContain(c.peerId);
      expect(a.transport.connectedPeers()).toEqual([b.peerId]);
      // Positive twin: b, still a member, talks to a.
      b.transport.send(a.peerId, 'raft', enc('member'));
      await waitFor(() => fromIds.includes(b.peerId), 'member message delivered');
      // Re-adding c lets it back in.
      a.transport.setPeers([b.address(), c.address()]);
      await waitFor(
        () => a.transport.connectedPeers().includes(c.peerId) && c.transport.connectedPeers().includes(a.peerId),
        'c re-admitted',
      );
      c.transport.send(a.peerId, 'raft', enc('back'));
      await waitFor(() => fromIds.includes(c.peerId), 're-admitted peer message delivered');
    });

    it('reconnects after the remote restarts with the same identity and address', async () => {
      const net = await open();
      const a = await net.createNode();
      const b = await net.createNode();
      await connectAll([a, b]);
      const events: string[] = [];
      a.transport.on('peer:disconnect', (id) => events.push(`down:${id}`));
      a.transport.on('peer:connect', (id) => events.push(`up:${id}`));
      await b.restart();
      const received: string[] = [];
      b.transport.onMessage('raft', (_from, data) => received.push(dec(data)));
      b.transport.onRequest('echo', async (_from, data) => data);
      b.transport.setPeers([a.address()]);
      await waitFor(() => events.includes(`up:${b.peerId}`), 'a sees b again');
      expect(events[0]).toBe(`down:${b.peerId}`);
      await waitFor(() => b.transport.connectedPeers().includes(a.peerId), 'b sees a');
      a.transport.send(b.peerId, 'raft', enc('after restart'));
      await waitFor(() => received.length === 1, 'message after restart');
      expect(received).toEqual(['after restart']);
      expect(dec(await a.transport.request(b.peerId, 'echo', enc('ping')))).toBe('ping');
    });

    it('bounds the outbound queue per peer: drops the newest, counts them, keeps the rest in order', async () => {
      const net = await open();
      const a = await net.createNode({ limits: { maxQueuedMessagesPerPeer: 16 } });
      const b = await net.createNode();
      const got: number[] = [];
      b.transport.onMessage('raft', (_from, data) => got.push(new DataView(data.buffer, data.byteOffset).getUint32(0)));
      await connectAll([a, b]);
      const count = 1000;
      for (let i = 0; i < count; i++) {
        const buf = new Uint8Array(4);
        new DataView(buf.buffer).setUint32(0, i);
        a.transport.send(b.peerId, 'raft', buf);
      }
      const dropped = a.transport.stats().messagesDropped;
      expect(dropped).toBeGreaterThan(0);
      await waitFor(() => got.length === count - dropped, 'queued messages delivered');
      expect([...got].sort((x, y) => x - y)).toEqual(got);
      expect(got[0]).toBe(0); // the oldest is kept: it is the newest that is dropped
      // Positive twin: once the queue drains, sending works again.
      a.transport.send(b.peerId, 'raft', Uint8Array.of(0, 0, 0xff, 0xff));
      await waitFor(() => got.includes(0xffff), 'message after the queue drained');
    });

    it('bounds requests in flight to a peer, and requests running at a peer', async () => {
      const net = await open();
      const a = await net.createNode({ limits: { maxInflightRequestsPerPeer: 2 } });
      const b = await net.createNode({ limits: { maxConcurrentInboundRequestsPerPeer: 1 } });
      const release: Array<() => void> = [];
      b.transport.onRequest(
        'slow',
        () => new Promise<Uint8Array>((resolve) => release.push(() => resolve(enc('done')))),
      );
      await connectAll([a, b]);
      const first = a.transport.request(b.peerId, 'slow', enc('1'));
      const second = a.transport.request(b.peerId, 'slow', enc('2'));
      await expectP2pError(a.transport.request(b.peerId, 'slow', enc('3')), [P2pErrorCode.TooManyRequests]);
      const busy = await expectP2pError(second, [P2pErrorCode.RemoteError]);
      expect(busy.meta.reason).toBe(RemoteErrorReason.Busy);
      await waitFor(() => release.length === 1, 'first request running');
      release[0]();
      expect(dec(await first)).toBe('done');
      // Positive twin: with the slots free again, a request is served.
      const third = a.transport.request(b.peerId, 'slow', enc('4'));
      await waitFor(() => release.length === 2, 'third request running');
      release[1]();
      expect(dec(await third)).toBe('done');
    });

    it('drops and counts messages to a peer that is not connected, and fails requests fast', async () => {
      const net = await open();
      const a = await net.createNode();
      const b = await net.createNode();
      const received: string[] = [];
      b.transport.onMessage('raft', (_from, data) => received.push(dec(data)));
      b.transport.onRequest('echo', async (_from, data) => data);
      await connectAll([a, b]);
      await b.transport.stop();
      await waitFor(() => !a.transport.connectedPeers().includes(b.peerId), 'a sees b down');
      const before = a.transport.stats().messagesDropped;
      a.transport.send(b.peerId, 'raft', enc('lost'));
      expect(a.transport.stats().messagesDropped).toBe(before + 1);
      await expectP2pError(a.transport.request(b.peerId, 'echo', enc('x')), [P2pErrorCode.PeerUnreachable]);
      await expectP2pError(b.transport.request(a.peerId, 'echo', enc('x')), [P2pErrorCode.NotStarted]);
    });
  });
}
