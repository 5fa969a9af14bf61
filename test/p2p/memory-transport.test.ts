import { pino } from 'pino';
import { SeededRng } from '../../consensus/rng.js';
import { SystemClock } from '../../node/clock.js';
import { describe, expect, it } from 'vitest';
import { MemoryNetwork, type MemoryTransport } from '../../p2p/memory-transport.js';
import type { PeerTransport, TransportLimits } from '../../p2p/transport.js';
import {
  TEST_LIMITS,
  connectAll,
  describeTransportCompliance,
  waitFor,
  type TransportTestNode,
} from './transport.suite.js';

const logger = pino({ level: 'silent' });

/** Real time, seeded loss: the p2p slice of the node's clock with a reproducible random source. */
class SeededRealClock extends SystemClock {
  private readonly rng: SeededRng;
  constructor(seed: number) {
    super();
    this.rng = new SeededRng(seed);
  }
  override randomFloat(): number {
    return this.rng.nextFloat();
  }
}

function memoryNetwork(network = new MemoryNetwork(new SystemClock())) {
  const nodes: Array<{ transport: PeerTransport }> = [];
  let next = 1;
  return {
    network,
    async createNode(options: { limits?: Partial<TransportLimits> } = {}): Promise<TransportTestNode> {
      const peerId = `node-${next++}`;
      const limits = { ...TEST_LIMITS, ...options.limits };
      const node = {
        peerId,
        transport: network.createTransport(peerId, { limits, logger }) as PeerTransport,
        address: () => ({ peerId, addrs: [`/memory/${peerId}`] }),
        async restart() {
          await node.transport.stop();
          node.transport = network.createTransport(peerId, { limits, logger });
          await node.transport.start();
        },
      };
      await node.transport.start();
      nodes.push(node);
      return node;
    },
    async close() {
      for (const node of nodes) await node.transport.stop();
    },
  };
}

describeTransportCompliance('MemoryTransport', async () => memoryNetwork());

describe('MemoryNetwork fault switches', () => {
  const enc = (text: string): Uint8Array => new TextEncoder().encode(text);

  it('partition cuts a link both ways, heal restores it; other links are untouched', async () => {
    const net = memoryNetwork();
    const [a, b, c] = [await net.createNode(), await net.createNode(), await net.createNode()];
    const got: string[] = [];
    for (const node of [a, b, c]) node.transport.onMessage('raft', (from) => got.push(`${from}->${node.peerId}`));
    await connectAll([a, b, c]);
    net.network.partition(a.peerId, b.peerId);
    expect(a.transport.connectedPeers()).toEqual([c.peerId]);
    a.transport.send(b.peerId, 'raft', enc('x'));
    b.transport.send(a.peerId, 'raft', enc('x'));
    a.transport.send(c.peerId, 'raft', enc('x'));
    await waitFor(() => got.length === 1, 'a->c delivered');
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(got).toEqual([`${a.peerId}->${c.peerId}`]);
    net.network.heal();
    await waitFor(() => a.transport.connectedPeers().length === 2, 'healed');
    a.transport.send(b.peerId, 'raft', enc('x'));
    await waitFor(() => got.includes(`${a.peerId}->${b.peerId}`), 'a->b after heal');
    await net.close();
  });

  it('isolate cuts every link of one node', async () => {
    const net = memoryNetwork();
    const [a, b, c] = [await net.createNode(), await net.createNode(), await net.createNode()];
    await connectAll([a, b, c]);
    net.network.isolate(a.peerId);
    expect(a.transport.connectedPeers()).toEqual([]);
    expect(b.transport.connectedPeers()).toEqual([c.peerId]);
    await net.close();
  });

  it('drops a seeded fraction of messages and keeps the survivors in order', async () => {
    // A seeded clock: the same losses on every run.
    const net = memoryNetwork(new MemoryNetwork(new SeededRealClock(42)));
    const [a, b] = [await net.createNode(), await net.createNode()];
    const got: number[] = [];
    b.transport.onMessage('raft', (_from, data) => got.push(data[0] * 256 + data[1]));
    await connectAll([a, b]);
    net.network.setDropProbability(0.3);
    for (let i = 0; i < 1000; i++) a.transport.send(b.peerId, 'raft', Uint8Array.of(i >> 8, i & 255));
    const dropped = a.transport.stats().messagesDropped;
    await waitFor(() => got.length === 1000 - dropped, 'survivors delivered');
    expect(dropped).toBeGreaterThan(200);
    expect(dropped).toBeLessThan(400);
    expect([...got].sort((x, y) => x - y)).toEqual(got);
    await net.close();
  });

  it('delays delivery without reordering', async () => {
    const net = memoryNetwork();
    const [a, b] = [await net.createNode(), await net.createNode()];
    const got: Array<[number, number]> = [];
    b.transport.onMessage('raft', (_from, data) => got.push([data[0], Date.now()]));
    await connectAll([a, b]);
    net.network.setDelayMs(100);
    const sentAt = Date.now();
    for (let i = 0; i < 10; i++) a.transport.send(b.peerId, 'raft', Uint8Array.of(i));
    await waitFor(() => got.length === 10, 'delayed messages');
    expect(got.map(([i]) => i)).toEqual([0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
    expect(got[0][1] - sentAt).toBeGreaterThanOrEqual(95);
    await net.close();
  });

  it('refuses to start two transports with the same id', async () => {
    const network = new MemoryNetwork(new SystemClock());
    const first: MemoryTransport = network.createTransport('x');
    await first.start();
    await expect(network.createTransport('x').start()).rejects.toThrow(/already started/);
    await first.stop();
  });
});
