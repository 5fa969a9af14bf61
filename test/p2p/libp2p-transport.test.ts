import { generateKeyPair } from '@libp2p/crypto/keys';
import { SystemClock } from '../../node/clock.js';
import { pino } from 'pino';
import { lpStream } from '@libp2p/utils';
import { multiaddr } from '@multiformats/multiaddr';
import { describe, expect, it } from 'vitest';
import { CHANNEL_PROTOCOL, encodeHello } from '../../p2p/frames.js';
import { createHost } from '../../p2p/host.js';
import { Libp2pTransport } from '../../p2p/libp2p-transport.js';
import type { PeerTransport, TransportLimits } from '../../p2p/transport.js';
import {
  TEST_LIMITS,
  connectAll,
  describeTransportCompliance,
  waitFor,
  type TransportTestNetwork,
  type TransportTestNode,
} from './transport.suite.js';

/** Real libp2p nodes on 127.0.0.1 with OS-assigned ports; logs are discarded. */
export async function libp2pNetwork(): Promise<TransportTestNetwork> {
  const nodes: Array<{ transport: PeerTransport }> = [];
  const logger = pino({ level: 'silent' });
  return {
    async createNode(options: { limits?: Partial<TransportLimits> } = {}): Promise<TransportTestNode> {
      const privateKey = await generateKeyPair('Ed25519');
      const limits = { ...TEST_LIMITS, ...options.limits };
      let transport = new Libp2pTransport({ clock, privateKey, listenAddrs: ['/ip4/127.0.0.1/tcp/0'], limits, logger });
      await transport.start();
      let addrs = transport.listenAddrs();
      const node = {
        peerId: transport.localPeerId,
        get transport(): PeerTransport {
          return transport;
        },
        address: () => ({ peerId: transport.localPeerId, addrs }),
        async restart() {
          await transport.stop();
          // Same key, same port: the restarted process is found where its peers last saw it.
          const listenAddrs = addrs.map((a) => a.replace(/\/p2p\/.*$/, ''));
          transport = new Libp2pTransport({ clock, privateKey, listenAddrs, limits, logger });
          await transport.start();
          addrs = transport.listenAddrs();
          slot.transport = transport;
        },
      };
      const slot = { transport: transport as PeerTransport };
      nodes.push(slot);
      return node;
    },
    async close() {
      await Promise.all(nodes.map((n) => n.transport.stop()));
    },
  };
}

describeTransportCompliance('Libp2pTransport (TCP + Noise + yamux on 127.0.0.1)', libp2pNetwork);

const clock = new SystemClock();

describe('Libp2pTransport on the wire', () => {
  const enc = (text: string): Uint8Array => new TextEncoder().encode(text);

  it('writes queued messages together (writeV batches), not one write per message', async () => {
    const net = await libp2pNetwork();
    const a = await net.createNode();
    const b = await net.createNode();
    let received = 0;
    b.transport.onMessage('raft', () => received++);
    await connectAll([a, b]);
    const transport = a.transport as Libp2pTransport;
    const before = transport.wireStats().batchesWritten;
    for (let i = 0; i < 2000; i++) a.transport.send(b.peerId, 'raft', new Uint8Array(100));
    await waitFor(() => received === 2000, 'all delivered');
    const batches = transport.wireStats().batchesWritten - before;
    expect(batches).toBeGreaterThan(0);
    expect(batches).toBeLessThan(200);
    await net.close();
  });

  it('survives a member that speaks garbage: its streams are reset, the node keeps serving', async () => {
    const net = await libp2pNetwork();
    const a = await net.createNode();
    const b = await net.createNode();
    const got: string[] = [];
    a.transport.onMessage('raft', (_from, data) => got.push(new TextDecoder().decode(data)));
    // A raw libp2p host holding a member's key: admitted by the gater, but not speaking our protocol.
    const rogueKey = await generateKeyPair('Ed25519');
    const rogue = await createHost({
      privateKey: rogueKey,
      listenAddrs: ['/ip4/127.0.0.1/tcp/0'],
      allowedPeers: [a.peerId],
      logger: pino({ level: 'silent' }),
    });
    try {
      await connectAll([a, b]);
      a.transport.setPeers([b.address(), { peerId: rogue.peerId, addrs: rogue.listenMultiaddrs() }]);
      const target = multiaddr(a.address().addrs[0]);
      const lpOf = async () => lpStream(await rogue.libp2p.dialProtocol(target, CHANNEL_PROTOCOL));
      const attacks: Array<Array<Uint8Array>> = [
        [Uint8Array.of(0x77)], // not a Hello
        [encodeHello('UPPER CASE')], // invalid channel name
        [encodeHello('raft'), Uint8Array.of(0x09, 1, 2)], // unknown frame kind
        [encodeHello('raft'), Uint8Array.of(0x04, 0, 0, 0, 1)], // a reply on an inbound stream
      ];
      for (const frames of attacks) {
        const lp = await lpOf();
        await lp.writeV(frames);
        const err = await lp.read({ signal: AbortSignal.timeout(5_000) }).then(
          () => null,
          (e: Error) => e,
        );
        // Reset by the node, not merely ignored until our own timeout fired.
        expect(err).not.toBeNull();
        expect(['TimeoutError', 'AbortError']).not.toContain(err?.name);
      }
      // A length prefix announcing 100 MiB: refused as oversized before any byte of it is buffered.
      const stream = await rogue.libp2p.dialProtocol(target, CHANNEL_PROTOCOL);
      const lp = lpStream(stream);
      await lp.write(encodeHello('raft'));
      stream.send(Uint8Array.of(0x80, 0x80, 0x80, 0x32)); // varint 100 * 2^20
      await waitFor(() => a.transport.stats().oversizedFramesRejected === 1, 'oversized prefix rejected');
      // Positive twin: the honest member still gets through.
      b.transport.send(a.peerId, 'raft', enc('still serving'));
      await waitFor(() => got.includes('still serving'), 'honest message delivered');
    } finally {
      await rogue.stop();
      await net.close();
    }
  });
});
