// All libp2p set-up lives here, in one factory, each limit commented (the way Lodestar builds
// its libp2p node). Nothing else in quorate calls createLibp2p().
//
// What this node is: TCP + Noise + yamux, a fixed membership, no discovery of any kind (no mDNS,
// DHT, bootstrap list or relay: members are told who their peers are by the replicated
// membership), and a connection gater that admits only peer ids in the current allowlist,
// in both directions. The allowlist changes at runtime when the membership changes.

import '../node/polyfills.js';
import { createLibp2p, type Libp2p } from 'libp2p';
import { tcp } from '@libp2p/tcp';
import { noise } from '@chainsafe/libp2p-noise';
import { yamux } from '@chainsafe/libp2p-yamux';
import type { ConnectionGater, PeerId, PrivateKey, StreamHandler, StreamHandlerOptions } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import { multiaddr } from '@multiformats/multiaddr';
import { assert } from './errors.js';
import { defaultP2pLogger, type P2pLogger } from './logger.js';
import { CidrGate, RefusalLog } from './access.js';

// Refusal logging (rate-limited) and the optional CIDR gate live in ./access.ts.
export { MAX_REFUSED_PEERS_REMEMBERED } from './access.js';

export interface HostOptions {
  readonly privateKey: PrivateKey;
  /** Multiaddrs to listen on, e.g. `/ip4/0.0.0.0/tcp/30400`; tests use `/ip4/127.0.0.1/tcp/0`. */
  readonly listenAddrs: readonly string[];
  /** Peer ids (base58) admitted in both directions. This node's own id need not be listed. */
  readonly allowedPeers: Iterable<string>;
  readonly logger?: P2pLogger;
  /**
   * Protocol handlers registered before the node starts listening, so that no peer can connect
   * in a window where our protocols are not yet served (it would see UnsupportedProtocolError).
   */
  readonly streamHandlers?: ReadonlyArray<{ protocol: string; handler: StreamHandler; options?: StreamHandlerOptions }>;
  /** `p2p.allowedCidrs`: inbound sockets from other addresses are closed before the Noise handshake. */
  readonly allowedCidrs?: readonly string[];
}

export interface P2pHost {
  readonly libp2p: Libp2p;
  /** This node's peer id, base58. */
  readonly peerId: string;
  /** The multiaddrs actually listened on (port 0 resolved), each ending in `/p2p/<peerId>`. */
  listenMultiaddrs(): string[];
  isAllowed(peerId: string): boolean;
  allowedPeers(): string[];
  /**
   * Replaces the allowlist. Connections to peers no longer allowed are closed; the returned
   * promise settles once they are.
   */
  setAllowedPeers(peerIds: Iterable<string>): Promise<void>;
  /** How many connection attempts the gater refused since start (every attempt, not once per peer). */
  refusedConnectionCount(): number;
  stop(): Promise<void>;
}

export async function createHost(options: HostOptions): Promise<P2pHost> {
  assert(options.listenAddrs.length > 0, 'createHost: at least one listen address is required');
  const logger = options.logger ?? defaultP2pLogger();
  let allowed = new Set<string>(options.allowedPeers);
  for (const id of allowed) peerIdFromString(id); // throws on a malformed id: a programmer/config error
  const refusals = new RefusalLog(logger);
  const cidrs = options.allowedCidrs ? new CidrGate(options.allowedCidrs) : undefined;

  const deny = (peerId: PeerId, direction: 'inbound' | 'outbound' | 'dial'): boolean => {
    const id = peerId.toString();
    if (allowed.has(id)) return false;
    refusals.refused(id, { peerId: id, direction }, 'refused a peer that is not in the membership');
    return true;
  };

  // Identity is checked after the Noise handshake (the earliest point the remote's key is
  // proven). denyDialPeer alone is not enough: it only sees dials whose address carries
  // /p2p/<id> (docs/stack.md gotcha 3), so the outbound-encrypted hook covers bare addresses.
  const connectionGater: ConnectionGater = {
    denyInboundConnection: (maConn) => {
      if (cidrs === undefined) return false;
      const ip = CidrGate.ipOf(maConn.remoteAddr);
      if (ip !== undefined && cidrs.allows(ip)) return false;
      refusals.refused(ip ?? 'unknown', { remote: ip ?? null }, 'refused a connection from outside p2p.allowedCidrs');
      return true;
    },
    denyDialPeer: (peerId) => deny(peerId, 'dial'),
    denyInboundEncryptedConnection: (peerId) => deny(peerId, 'inbound'),
    denyOutboundEncryptedConnection: (peerId) => deny(peerId, 'outbound'),
    // Private and loopback addresses are normal for a permissioned cluster (libp2p's default
    // gater would also allow them; stated here so nobody "hardens" it into a broken cluster).
    denyDialMultiaddr: () => false,
  };

  const libp2p = await createLibp2p({
    privateKey: options.privateKey,
    addresses: { listen: [...options.listenAddrs] },
    transports: [
      tcp({
        // Bounds the sockets one process holds, whatever the peers do. A cluster has few members;
        // each keeps one or two connections (both sides dial), plus short-lived refused attempts.
        maxConnections: 256,
      }),
    ],
    connectionEncrypters: [noise()],
    streamMuxers: [
      yamux({
        // Default 10: a node opening its channel streams (raft, tx, payload, ...) right after a
        // dial, while the remote is still opening its own, would trip MaxEarlyStreamsError and
        // lose the whole connection (docs/stack.md gotcha 5).
        maxEarlyStreams: 256,
        // Streams are long-lived (one per peer and channel, in each direction): a few dozen at most.
        maxInboundStreams: 256,
        maxOutboundStreams: 256,
      }),
    ],
    // No peerDiscovery, peerRouters, contentRouters or services: membership comes from the ledger.
    connectionGater,
    connectionManager: {
      // Same bound as the TCP listener; libp2p closes the lowest-value connections past it.
      maxConnections: 256,
      // A dial to a dead member must fail fast so the transport's backoff takes over.
      dialTimeout: 5_000,
      // A Noise handshake that has not finished in this time is a stalled or hostile peer.
      inboundUpgradeTimeout: 5_000,
      // Default 5 connections/s per host: members behind one address (tests on 127.0.0.1, a NAT)
      // that reconnect together after a restart would be rate-limited into failures.
      inboundConnectionThreshold: 100,
      // Handshakes in progress at once; beyond it new sockets are closed before any crypto.
      maxIncomingPendingConnections: 64,
      // The transport reconnects members itself with its own bounded backoff.
      reconnectRetries: 0,
    },
    // The connection monitor pings each connection (libp2p default every 10 s) and aborts a
    // connection whose ping fails: that is how a silently dead peer (power loss, cable) is found.
    connectionMonitor: { enabled: true },
    // Started below, once the protocol handlers are in place.
    start: false,
  });
  for (const { protocol, handler, options: handlerOptions } of options.streamHandlers ?? []) {
    await libp2p.handle(protocol, handler, handlerOptions);
  }
  await libp2p.start();

  return {
    libp2p,
    peerId: libp2p.peerId.toString(),
    listenMultiaddrs() {
      const self = libp2p.peerId.toString();
      return libp2p.getMultiaddrs().map((ma) => {
        const text = ma.toString();
        return text.includes('/p2p/') ? text : multiaddr(text).encapsulate(`/p2p/${self}`).toString();
      });
    },
    isAllowed: (peerId) => allowed.has(peerId),
    allowedPeers: () => [...allowed],
    async setAllowedPeers(peerIds) {
      const next = new Set(peerIds);
      for (const id of next) {
        peerIdFromString(id);
        if (!allowed.has(id)) refusals.forget(id);
      }
      const removed = [...allowed].filter((id) => !next.has(id));
      allowed = next;
      // Swapping the set first means a removed peer racing to reconnect is already refused.
      await Promise.all(
        removed.map(async (id) => {
          try {
            await libp2p.hangUp(peerIdFromString(id));
          } catch (err) {
            logger.debug({ peerId: id, err }, 'closing a removed peer connection failed (it is gone anyway)');
          }
        }),
      );
    },
    refusedConnectionCount: () => refusals.refusedCount,
    async stop() {
      await libp2p.stop();
    },
  };
}
