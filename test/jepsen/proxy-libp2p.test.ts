// The proxy must be transparent to the real transport: libp2p over TCP with Noise and yamux, dialled
// through a proxy port, carries a stream; a cut holds the stream's bytes; a heal delivers them.

import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import { tcp } from '@libp2p/tcp';
import { multiaddr } from '@multiformats/multiaddr';
import { createLibp2p, type Libp2p } from 'libp2p';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cutBetween } from '../../node/jepsen/nemesis.js';
import { ProxyNetwork } from '../../node/jepsen/proxy-network.js';

const ECHO = '/qrt-jepsen-test/echo/1';

async function node(): Promise<Libp2p> {
  const n = await createLibp2p({
    addresses: { listen: ['/ip4/127.0.0.1/tcp/0'] },
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
  });
  await n.handle(ECHO, (stream) => {
    stream.addEventListener('message', (evt) => {
      stream.send(evt.data);
    });
  });
  return n;
}

describe('ProxyNetwork with libp2p (tcp + noise + yamux)', () => {
  let a: Libp2p;
  let b: Libp2p;
  let proxy: ProxyNetwork;
  beforeAll(async () => {
    a = await node();
    b = await node();
    const port = (n: Libp2p) => Number(n.getMultiaddrs()[0].toString().split('/tcp/')[1].split('/')[0]);
    proxy = await ProxyNetwork.start({
      nodes: ['a', 'b'],
      targets: { a: { host: '127.0.0.1', port: port(a) }, b: { host: '127.0.0.1', port: port(b) } },
    });
  });
  afterAll(async () => {
    await a?.stop();
    await b?.stop();
    await proxy?.close();
  });

  it('carries a stream through the proxy, holds it during a cut, and delivers after the heal', async () => {
    const t = proxy.addressFor('a', 'b');
    const stream = await a.dialProtocol(multiaddr(`/ip4/${t.host}/tcp/${t.port}/p2p/${b.peerId.toString()}`), ECHO);
    const received: string[] = [];
    stream.addEventListener('message', (evt) => {
      received.push(new TextDecoder().decode(evt.data.subarray()));
    });
    stream.send(new TextEncoder().encode('one'));
    await expect.poll(() => received.join('')).toBe('one');
    expect(proxy.connectionCount()).toBe(1);

    await proxy.cut(cutBetween(['a'], ['b']));
    stream.send(new TextEncoder().encode('two'));
    await new Promise((r) => setTimeout(r, 300));
    expect(received.join('')).toBe('one');

    await proxy.heal();
    await expect.poll(() => received.join('')).toBe('onetwo');
  });
});
