import { generateKeyPair } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import { describe, expect, it } from 'vitest';
import { parsePeerAddress } from '../../p2p/address.js';
import { P2pError, P2pErrorCode } from '../../p2p/errors.js';

describe('parsePeerAddress', () => {
  it('splits a member address into its peer id and the address to dial', async () => {
    const peerId = peerIdFromPrivateKey(await generateKeyPair('Ed25519')).toString();
    const address = `/ip4/10.0.0.2/tcp/30400/p2p/${peerId}`;
    expect(parsePeerAddress(address)).toEqual({ peerId, addrs: [address] });
    const dns = `/dns4/node-2.quorate.svc/tcp/30400/p2p/${peerId}`;
    expect(parsePeerAddress(dns).peerId).toBe(peerId);
  });

  it('refuses addresses without a peer id, with a bad peer id, or that are not multiaddrs', () => {
    const bad = [
      '',
      '/ip4/10.0.0.2/tcp/30400',
      '/ip4/10.0.0.2/tcp/30400/p2p/notapeerid',
      'http://10.0.0.2:30400',
      '/p2p/12D3KooWGzxzKZYveHXtpG6AsrUJBcWxHBFS2HsEoGTxrMLvKXtf',
      `/ip4/10.0.0.2/tcp/1/${'x'.repeat(600)}`,
    ];
    for (const address of bad) {
      let caught: unknown;
      try {
        parsePeerAddress(address);
      } catch (err) {
        caught = err;
      }
      expect(caught, address).toBeInstanceOf(P2pError);
      expect((caught as P2pError).code).toBe(P2pErrorCode.InvalidAddress);
    }
  });
});
