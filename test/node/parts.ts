// Small fixtures for the unit tests of the node's parts: two started in-memory transports that
// admit each other (p2p/memory-transport.ts, the same transport the in-process clusters use).

import { SystemClock } from '../../node/clock.js';
import { MemoryNetwork, type MemoryTransport } from '../../p2p/memory-transport.js';
import { testPeerId } from './harness.js';

// The system clock: the memory network delivers frames on its clock's timers, which a ManualClock
// nobody advances never fires (the forward and control tests hung until their 60 s timeout).
export async function linkedPair(): Promise<{ a: MemoryTransport; b: MemoryTransport; network: MemoryNetwork }> {
  const network = new MemoryNetwork(new SystemClock());
  const a = network.createTransport(testPeerId(9, 1));
  const b = network.createTransport(testPeerId(9, 2));
  a.setPeers([{ peerId: b.localPeerId, addrs: ['/memory/b'] }]);
  b.setPeers([{ peerId: a.localPeerId, addrs: ['/memory/a'] }]);
  await a.start();
  await b.start();
  return { a, b, network };
}
