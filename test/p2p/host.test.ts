import { generateKeyPair } from '@libp2p/crypto/keys';
import type { Stream } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { createHost, type P2pHost } from '../../p2p/host.js';
import { waitFor } from './transport.suite.js';

const ECHO = '/quorate-test/echo/1.0.0';

/** A real pino logger writing JSON lines to memory, so tests can read what an operator would see. */
function recordingLogger() {
  const lines: Array<Record<string, unknown>> = [];
  const logger = pino(
    { level: 'debug' },
    { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) },
  );
  return { logger, lines };
}

describe('createHost: the libp2p factory and its allowlist gater', () => {
  const hosts: P2pHost[] = [];
  afterEach(async () => {
    await Promise.all(hosts.splice(0).map((h) => h.stop()));
  });

  async function host(allowedPeers: string[] = []) {
    const privateKey = await generateKeyPair('Ed25519');
    const log = recordingLogger();
    const h = await createHost({
      privateKey,
      listenAddrs: ['/ip4/127.0.0.1/tcp/0'],
      allowedPeers,
      logger: log.logger,
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
    return { host: h, lines: log.lines };
  }

  /** Opening a stream needs the remote to answer protocol negotiation: proof it admitted us. */
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

  it('listens where told and reports the real port with its peer id', async () => {
    const { host: h } = await host();
    const addrs = h.listenMultiaddrs();
    expect(addrs.length).toBe(1);
    expect(addrs[0]).toMatch(new RegExp(`^/ip4/127\\.0\\.0\\.1/tcp/[1-9][0-9]*/p2p/${h.peerId}$`));
  });

  it('admits allowed peers and refuses others in both directions, logging each refused peer once', async () => {
    const a = await host();
    const b = await host([a.host.peerId]);
    const stranger = await host([a.host.peerId]);
    await a.host.setAllowedPeers([b.host.peerId]);
    // Positive: mutual allowlist, both directions talk.
    expect(await canTalk(b.host, a.host)).toBe(true);
    expect(await canTalk(a.host, b.host)).toBe(true);
    // Negative, inbound: the stranger knows a, a does not know it. Several attempts.
    for (let i = 0; i < 4; i++) expect(await canTalk(stranger.host, a.host)).toBe(false);
    // Negative, outbound to a bare address (no /p2p/ part: only denyOutboundEncryptedConnection sees it).
    const bare = stranger.host.listenMultiaddrs()[0].replace(/\/p2p\/.*$/, '');
    await expect(
      (async () => {
        const conn = await a.host.libp2p.dial(multiaddr(bare), { signal: AbortSignal.timeout(3_000) });
        await conn.newStream(ECHO, { signal: AbortSignal.timeout(3_000) });
      })(),
    ).rejects.toThrow();
    expect(a.host.refusedConnectionCount()).toBeGreaterThanOrEqual(5);
    const refusals = a.lines.filter((l) => String(l.msg).startsWith('refused a peer'));
    expect(refusals.map((l) => l.peerId)).toEqual([stranger.host.peerId]);
    expect(a.host.libp2p.getConnections(peerIdFromString(stranger.host.peerId))).toEqual([]);
  });

  it('closes connections to peers removed from the allowlist, and refuses their return', async () => {
    const a = await host();
    const b = await host([a.host.peerId]);
    const c = await host([a.host.peerId]);
    await a.host.setAllowedPeers([b.host.peerId, c.host.peerId]);
    expect(await canTalk(b.host, a.host)).toBe(true);
    expect(await canTalk(c.host, a.host)).toBe(true);
    await a.host.setAllowedPeers([b.host.peerId]);
    expect(a.host.allowedPeers()).toEqual([b.host.peerId]);
    await waitFor(() => a.host.libp2p.getConnections(peerIdFromString(c.host.peerId)).length === 0, 'c disconnected');
    expect(await canTalk(c.host, a.host)).toBe(false);
    // b is untouched.
    expect(await canTalk(b.host, a.host)).toBe(true);
    expect(a.host.libp2p.getConnections(peerIdFromString(b.host.peerId)).length).toBeGreaterThan(0);
  });

  it('rejects a malformed peer id in the allowlist (a configuration error)', async () => {
    const privateKey = await generateKeyPair('Ed25519');
    await expect(
      createHost({ privateKey, listenAddrs: ['/ip4/127.0.0.1/tcp/0'], allowedPeers: ['not-a-peer-id'] }),
    ).rejects.toThrow();
  });
});
