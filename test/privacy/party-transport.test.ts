// PeerPartyTransport (node/privacy.ts) passes the PartyTransport compliance suite over both
// PeerTransports: the in-memory one and real libp2p (TCP + Noise + yamux) on 127.0.0.1. Plus the
// identity rule: a push from a peer that is not a member is refused.

import { SystemClock } from '../../node/clock.js';
import { generateKeyPair } from '@libp2p/crypto/keys';
import { pino } from 'pino';
import { describe, expect, it } from 'vitest';
import { PeerPartyTransport, NOT_A_MEMBER_CODE, decodePage, encodePage } from '../../node/party-transport.js';
import { Libp2pTransport } from '../../p2p/libp2p-transport.js';
import { MemoryNetwork } from '../../p2p/memory-transport.js';
import type { PeerTransport } from '../../p2p/transport.js';
import { PartyTransportError, PartyTransportErrorCode } from '../../txmanager/index.js';
import { runPartyTransportSuite, type TransportCluster } from '../txmanager/transport.suite.js';

const TEST_LIMITS = { reconnectBaseDelayMs: 20, reconnectMaxDelayMs: 300 };

interface PeerFactory {
  create(nodeId: string): Promise<PeerTransport>;
}

async function waitConnected(peers: readonly PeerTransport[]): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!peers.every((p) => peers.every((q) => q === p || p.connectedPeers().includes(q.localPeerId)))) {
    if (Date.now() > deadline) throw new Error('peers did not connect');
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** nodeIds → started PeerTransports that allow each other, each with a PeerPartyTransport knowing every node. */
async function buildCluster(
  factory: PeerFactory,
  nodeIds: readonly string[],
  members: (nodeId: string) => readonly string[] = () => nodeIds,
): Promise<TransportCluster & { peers: Map<string, PeerTransport> }> {
  const peers = new Map<string, PeerTransport>();
  for (const id of nodeIds) peers.set(id, await factory.create(id));
  const transports = new Map<string, PeerPartyTransport>();
  for (const id of nodeIds) transports.set(id, new PeerPartyTransport(peers.get(id)!, id));
  for (const id of nodeIds) {
    const self = peers.get(id)!;
    self.setPeers(
      nodeIds
        .filter((o) => o !== id)
        .map((o) => ({ peerId: peers.get(o)!.localPeerId, addrs: peers.get(o)!.listenAddrs() })),
    );
    transports.get(id)!.setParties(members(id).map((o) => ({ nodeId: o, peerId: peers.get(o)!.localPeerId })));
  }
  await waitConnected([...peers.values()]);
  return {
    transports,
    peers,
    async takeDown(nodeId) {
      await peers.get(nodeId)!.stop();
    },
    async close() {
      await Promise.all([...peers.values()].map((p) => p.stop()));
    },
  };
}

function memoryFactory(): PeerFactory {
  const network = new MemoryNetwork(new SystemClock());
  return {
    async create(nodeId) {
      const t = network.createTransport(`peer-${nodeId}`, { limits: TEST_LIMITS });
      await t.start();
      return t;
    },
  };
}

function libp2pFactory(): PeerFactory {
  const logger = pino({ level: 'silent' });
  return {
    async create() {
      const t = new Libp2pTransport({
        clock: new SystemClock(),
        privateKey: await generateKeyPair('Ed25519'),
        listenAddrs: ['/ip4/127.0.0.1/tcp/0'],
        limits: TEST_LIMITS,
        logger,
      });
      await t.start();
      return t;
    },
  };
}

runPartyTransportSuite('PeerPartyTransport over MemoryTransport', {
  create: (ids) => buildCluster(memoryFactory(), ids),
});
runPartyTransportSuite('PeerPartyTransport over Libp2pTransport (127.0.0.1)', {
  create: (ids) => buildCluster(libp2pFactory(), ids),
});

describe.each([
  ['MemoryTransport', memoryFactory],
  ['Libp2pTransport', libp2pFactory],
])('PeerPartyTransport identity over %s', (_name, factory) => {
  it('refuses a push from a peer that is not in its member list, and accepts one from a member', async () => {
    // b lists only c as a member; a is allowed by the p2p layer but not a member for b's TM.
    const cluster = await buildCluster(factory(), ['a', 'b', 'c'], (id) => (id === 'b' ? ['c'] : ['a', 'b', 'c']));
    try {
      const received: string[] = [];
      cluster.transports.get('b')!.handle({
        onPush: async (from) => {
          received.push(from);
        },
        onResendRequest: async () => ({ payloads: [], nextAfterHash: null }),
      });
      const refused = await cluster.transports
        .get('a')!
        .push('b', Uint8Array.from([1]), AbortSignal.timeout(5_000))
        .then(
          () => null,
          (e: unknown) => e,
        );
      expect(refused).toBeInstanceOf(PartyTransportError);
      expect((refused as PartyTransportError).code).toBe(PartyTransportErrorCode.Rejected);
      expect((refused as PartyTransportError).remoteCode).toBe(NOT_A_MEMBER_CODE);
      const resend = await cluster.transports
        .get('a')!
        .resendRequest('b', { afterHash: null, maxPayloads: 4 }, AbortSignal.timeout(5_000))
        .then(
          () => null,
          (e: unknown) => e,
        );
      expect((resend as PartyTransportError).remoteCode).toBe(NOT_A_MEMBER_CODE);
      // Positive control: the member c is served, and b's handler sees c's node id.
      await cluster.transports.get('c')!.push('b', Uint8Array.from([2]), AbortSignal.timeout(5_000));
      expect(received).toEqual(['c']);
    } finally {
      await cluster.close();
    }
  });
});

describe('the resend page codec (chain codec Writer/Reader, same bytes as before)', () => {
  it('writes u16 cursor length (0xffff: none) ‖ cursor ‖ u32 count ‖ (u32 length ‖ payload)…, big-endian', () => {
    const none = encodePage({ payloads: [Uint8Array.from([7, 8])], nextAfterHash: null });
    expect([...none]).toEqual([0xff, 0xff, 0, 0, 0, 1, 0, 0, 0, 2, 7, 8]);
    const withCursor = encodePage({ payloads: [], nextAfterHash: 'ab' });
    expect([...withCursor]).toEqual([0, 2, 0x61, 0x62, 0, 0, 0, 0]);
    expect(decodePage(none)).toEqual({ payloads: [Uint8Array.from([7, 8])], nextAfterHash: null });
    expect(decodePage(withCursor)).toEqual({ payloads: [], nextAfterHash: 'ab' });
  });

  it('refuses a truncated page and trailing bytes', () => {
    const page = encodePage({ payloads: [Uint8Array.from([1, 2, 3])], nextAfterHash: 'x' });
    expect(() => decodePage(page.subarray(0, page.length - 1))).toThrow(/more bytes/);
    expect(() => decodePage(Uint8Array.from([...page, 0]))).toThrow(/trailing/);
  });
});
