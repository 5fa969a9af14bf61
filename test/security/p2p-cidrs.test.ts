// p2p.allowedCidrs on real libp2p hosts over TCP on 127.0.0.1: a member whose address is outside
// the allowed networks is refused before the Noise handshake (the gater's denyInboundConnection),
// logged once, and the same member inside them is admitted. Stranger refusals stay rate-limited.

import { generateKeyPair } from '@libp2p/crypto/keys';
import type { Stream } from '@libp2p/interface';
import { multiaddr } from '@multiformats/multiaddr';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createHost, type P2pHost } from '../../p2p/host.js';

const ECHO = '/quorate-test/echo/1.0.0';

describe('p2p.allowedCidrs and refusal logging on real hosts', () => {
  const hosts: P2pHost[] = [];
  afterEach(async () => {
    await Promise.all(hosts.splice(0).map((h) => h.stop()));
  });

  async function host(allowedPeers: string[], allowedCidrs?: string[]) {
    const lines: Array<Record<string, unknown>> = [];
    const logger = pino(
      { level: 'debug' },
      { write: (l: string) => lines.push(JSON.parse(l) as Record<string, unknown>) },
    );
    const h = await createHost({
      privateKey: await generateKeyPair('Ed25519'),
      listenAddrs: ['/ip4/127.0.0.1/tcp/0'],
      allowedPeers,
      logger,
      ...(allowedCidrs ? { allowedCidrs } : {}),
      streamHandlers: [
        {
          protocol: ECHO,
          handler: async (stream: Stream) => {
            for await (const chunk of stream) stream.send(chunk);
            await stream.close();
          },
        },
      ],
    });
    hosts.push(h);
    return { host: h, lines };
  }

  async function canTalk(from: P2pHost, to: P2pHost): Promise<boolean> {
    try {
      const stream = await from.libp2p.dialProtocol(multiaddr(to.listenMultiaddrs()[0]), ECHO, {
        signal: AbortSignal.timeout(3_000),
      });
      stream.send(Uint8Array.of(1, 2, 3));
      for await (const chunk of stream) {
        await stream.close();
        return chunk.subarray().length === 3;
      }
      return false;
    } catch {
      return false;
    }
  }

  it('refuses a member outside allowedCidrs before Noise, logs it once, and admits it inside them', async () => {
    const member = await host([]);
    // 127.0.0.1 is outside 10.0.0.0/8: the member is in the allowlist but its address is not.
    const fenced = await host([member.host.peerId], ['10.0.0.0/8']);
    await member.host.setAllowedPeers([fenced.host.peerId]);
    for (let i = 0; i < 3; i++) expect(await canTalk(member.host, fenced.host)).toBe(false);
    const cidrLines = fenced.lines.filter((l) => String(l.msg).startsWith('refused a connection from outside'));
    expect(cidrLines.length).toBe(1);
    expect(cidrLines[0].remote).toBe('127.0.0.1');
    // Refused before Noise: the gater never saw a peer id, so no membership refusal was logged.
    expect(fenced.lines.some((l) => String(l.msg).startsWith('refused a peer'))).toBe(false);
    expect(fenced.host.refusedConnectionCount()).toBeGreaterThanOrEqual(3);

    const open = await host([member.host.peerId], ['10.0.0.0/8', '127.0.0.0/8']);
    await member.host.setAllowedPeers([fenced.host.peerId, open.host.peerId]);
    expect(await canTalk(member.host, open.host)).toBe(true);
  });
});
