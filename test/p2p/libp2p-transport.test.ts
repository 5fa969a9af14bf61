import { generateKeyPair } from '@libp2p/crypto/keys';
import { pino } from 'pino';
import { Libp2pTransport } from '../../p2p/libp2p-transport.js';
import type { PeerTransport, TransportLimits } from '../../p2p/transport.js';
import { TEST_LIMITS, describeTransportCompliance, type TransportTestNetwork, type TransportTestNode } from './transport.suite.js';

/** Real libp2p nodes on 127.0.0.1 with OS-assigned ports; logs are discarded. */
export async function libp2pNetwork(): Promise<TransportTestNetwork> {
  const nodes: Array<{ transport: PeerTransport }> = [];
  const logger = pino({ level: 'silent' });
  return {
    async createNode(options: { limits?: Partial<TransportLimits> } = {}): Promise<TransportTestNode> {
      const privateKey = await generateKeyPair('Ed25519');
      const limits = { ...TEST_LIMITS, ...options.limits };
      let transport = new Libp2pTransport({ privateKey, listenAddrs: ['/ip4/127.0.0.1/tcp/0'], limits, logger });
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
          transport = new Libp2pTransport({ privateKey, listenAddrs, limits, logger });
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
