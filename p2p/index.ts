// The p2p layer's public surface. The node and the transaction manager import from here.
export { P2pError, P2pErrorCode } from './errors.js';
export { parsePeerAddress, MAX_P2P_ADDRESS_BYTES } from './address.js';
export {
  createNetworkIdentity,
  loadNetworkIdentity,
  IDENTITY_FILE_MODE,
  MAX_IDENTITY_FILE_BYTES,
  type NetworkIdentity,
} from './identity.js';
export { createHost, MAX_REFUSED_PEERS_REMEMBERED, type HostOptions, type P2pHost } from './host.js';
export { defaultP2pLogger, type P2pLogger } from './logger.js';
export {
  DEFAULT_TRANSPORT_LIMITS,
  MAX_CHANNEL_NAME_BYTES,
  RemoteErrorReason,
  reconnectDelayMs,
  resolveLimits,
  type MessageHandler,
  type PeerAddress,
  type PeerEvent,
  type PeerListener,
  type PeerTransport,
  type RequestHandler,
  type RequestOptions,
  type TransportLimits,
  type TransportStats,
} from './transport.js';
export { Libp2pTransport, type Libp2pTransportOptions } from './libp2p-transport.js';
export { MemoryNetwork, MemoryTransport } from './memory-transport.js';
