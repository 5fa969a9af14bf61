// A member's p2p address as users and the membership carry it: one multiaddr ending in
// /p2p/<peerId>, e.g. /ip4/10.0.0.2/tcp/30400/p2p/12D3KooW... (what `raft_addPeer` takes and
// what `raft_cluster` shows). The transport wants the peer id and the dialable part apart.

import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { P2pError, P2pErrorCode } from './errors.js';
import type { PeerAddress } from './transport.js';

/** Multiaddrs longer than this are refused outright (they arrive from RPC callers). */
export const MAX_P2P_ADDRESS_BYTES = 512;

/**
 * Parses `/…/p2p/<peerId>` into { peerId, addrs: [the full address] }. Throws P2pError
 * (code InvalidAddress) for anything else, so an RPC handler can answer with a clear error.
 */
export function parsePeerAddress(address: string): PeerAddress {
  const fail = (why: string): never => {
    throw new P2pError(
      P2pErrorCode.InvalidAddress,
      `invalid p2p address ${JSON.stringify(address.slice(0, 80))}: ${why}`,
      { address },
    );
  };
  if (address.length === 0 || address.length > MAX_P2P_ADDRESS_BYTES)
    fail(`length must be 1..${MAX_P2P_ADDRESS_BYTES}`);
  let components;
  try {
    components = multiaddr(address).getComponents();
  } catch (err) {
    return fail(`not a multiaddr (${(err as Error).message})`);
  }
  const last = components[components.length - 1];
  if (last?.name !== 'p2p' || last.value === undefined) return fail('it must end in /p2p/<peerId>');
  if (components.length < 2) fail('it needs a dialable part before /p2p/<peerId>, e.g. /ip4/10.0.0.2/tcp/30400');
  try {
    peerIdFromString(last.value);
  } catch {
    fail('the peer id is malformed');
  }
  return { peerId: last.value, addrs: [address] };
}
