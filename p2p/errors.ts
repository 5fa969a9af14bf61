// Errors of the p2p layer. Operating errors a caller can act on carry a stable `code`
// (docs/design.md: Lodestar's "one error class per domain with a code enum"). Programmer errors
// (a bad argument from our own code) fail an assertion instead and are never caught here.

export enum P2pErrorCode {
  /** The identity file does not exist. Run `quorate init` or createNetworkIdentity() first. */
  IdentityMissing = 'P2P_IDENTITY_MISSING',
  /** The identity file exists but is not a protobuf-marshalled Ed25519 libp2p private key. */
  IdentityCorrupt = 'P2P_IDENTITY_CORRUPT',
  /** createNetworkIdentity() refuses to overwrite an existing key: that would change the node's peer id. */
  IdentityExists = 'P2P_IDENTITY_EXISTS',
  /** There is no established connection to the peer (it is down, unreachable, or refused us). */
  PeerUnreachable = 'P2P_PEER_UNREACHABLE',
  /** The peer is not in the current membership (allowlist): nothing is sent to it. */
  Refused = 'P2P_REFUSED',
  /** No reply arrived within `timeoutMs`. The remote handler may still have run. */
  Timeout = 'P2P_TIMEOUT',
  /** The caller's AbortSignal fired. */
  Aborted = 'P2P_ABORTED',
  /** The remote request handler failed, or the remote has no handler for the channel. */
  RemoteError = 'P2P_REMOTE_ERROR',
  /** The payload is larger than the transport's `maxMessageBytes`. */
  MessageTooLarge = 'P2P_MESSAGE_TOO_LARGE',
  /** Too many requests are waiting for a reply from this peer (`maxInflightRequestsPerPeer`). */
  TooManyRequests = 'P2P_TOO_MANY_REQUESTS',
  /** A p2p address is not a multiaddr ending in /p2p/<peerId>. */
  InvalidAddress = 'P2P_INVALID_ADDRESS',
  /** The transport is not started, or was stopped while the call was pending. */
  NotStarted = 'P2P_NOT_STARTED',
}

export class P2pError extends Error {
  readonly code: P2pErrorCode;
  readonly meta: Record<string, unknown>;
  constructor(code: P2pErrorCode, message: string, meta: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'P2pError';
    this.code = code;
    this.meta = meta;
  }
}

export class P2pAssertionError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'P2pAssertionError';
  }
}

/** Assertions stay on in production: a broken invariant or a bad argument from our own code crashes loudly. */
export function assert(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) {
    throw new P2pAssertionError(typeof message === 'string' ? message : message());
  }
}
