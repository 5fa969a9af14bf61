// Operating errors of the node: conditions a caller (an RPC client, the CLI, an embedder)
// can act on. Each carries a stable `code`; the JSON-RPC layer maps codes to numeric
// JSON-RPC error codes in one table (node/rpc/errors.ts), so a code added here without a
// mapping fails the type check there.
//
// Kept apart, as in docs/design.md §6:
//  - NodeError: expected conditions (not the leader, nonce too low, timed out). Handled.
//  - assertions (node/errors.ts `nodeAssert`): programmer errors. They stay on in
//    production and crash with the offending values; nothing catches them on purpose.

export enum NodeErrorCode {
  // --- Raft / leadership -------------------------------------------------------------
  /** This node is not the leader and did not forward; `meta.leader` names the leader (raftId), `meta.leaderRpcUrl` where to go. */
  NotLeader = 'NOT_LEADER',
  /** No leader is known (election in progress or no quorum). Retry after an election timeout. */
  NoLeader = 'NO_LEADER',
  /** A membership change is already pending; only one at a time (Raft thesis §4.1). Retry once it commits. */
  MembershipChangePending = 'MEMBERSHIP_CHANGE_PENDING',
  /** The membership change is not allowed (unknown id, removing the last voter, id reused, not a learner...). */
  MembershipChangeInvalid = 'MEMBERSHIP_CHANGE_INVALID',
  /** A leadership transfer is in progress; proposals are refused until it ends (thesis §3.10). */
  TransferInProgress = 'TRANSFER_IN_PROGRESS',

  // --- Transactions refused before they enter the pool ---------------------------------
  /** The signature does not verify against `from`. */
  TxBadSignature = 'TX_BAD_SIGNATURE',
  /** The transaction's chainId is not this chain's. */
  TxWrongChainId = 'TX_WRONG_CHAIN_ID',
  /** The nonce was already used by a committed transaction of the sender. */
  TxNonceTooLow = 'TX_NONCE_TOO_LOW',
  /** The nonce leaves a gap larger than the pool accepts per sender. */
  TxNonceTooHigh = 'TX_NONCE_TOO_HIGH',
  /** The same transaction is already in the pool or on chain. */
  TxAlreadyKnown = 'TX_ALREADY_KNOWN',
  /** The transaction pool is at its limit; retry later. */
  TxPoolFull = 'TX_POOL_FULL',
  /** The node's event loop runs late (limits.rpcMaxEventLoopDelayMs): a submission refused at the door; retry after `meta.retryAfterMs`. */
  NodeOverloaded = 'NODE_OVERLOADED',
  /** The encoded transaction exceeds the size limit. */
  TxTooLarge = 'TX_TOO_LARGE',
  /** The transaction does not decode, or an op is malformed. */
  TxMalformed = 'TX_MALFORMED',
  /** quorate_sendTransaction: this node holds no key for `from`. */
  TxUnknownAccount = 'TX_UNKNOWN_ACCOUNT',
  /** A privateFor key belongs to no known party. */
  TxUnknownRecipient = 'TX_UNKNOWN_RECIPIENT',

  // --- Private transactions ------------------------------------------------------------
  /** A recipient's transaction manager could not be reached (delivery mode fail-fast, or its circuit breaker is open). */
  PrivacyRecipientUnavailable = 'PRIVACY_RECIPIENT_UNAVAILABLE',
  /** This node's own transaction manager or enclave is not available. */
  PrivacyUnavailable = 'PRIVACY_UNAVAILABLE',

  // --- Generic -------------------------------------------------------------------------
  /** The operation did not finish in time. Its outcome is UNKNOWN, not failed: a submitted tx may still commit. */
  Timeout = 'TIMEOUT',
  /** The requested object (block, transaction, member) does not exist. */
  NotFound = 'NOT_FOUND',
  /** The node is starting, stopping or overloaded; retry later or elsewhere. */
  Unavailable = 'UNAVAILABLE',
  /** A linearizable read could not be confirmed (lost leadership during ReadIndex). Retry. */
  ReadNotConfirmed = 'READ_NOT_CONFIRMED',
}

export class NodeError extends Error {
  readonly code: NodeErrorCode;
  /** Structured, JSON-serialisable details (leader id, expected nonce...). Sent to RPC clients as `data`. */
  readonly meta: Readonly<Record<string, unknown>>;
  constructor(code: NodeErrorCode, message: string, meta: Record<string, unknown> = {}, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'NodeError';
    this.code = code;
    this.meta = meta;
  }
}

/** A broken invariant: a programmer error. Never caught on purpose; the process crashes with the values. */
export class NodeInvariantError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NodeInvariantError';
  }
}

/** Assertions stay on in production (TigerBeetle). */
export function nodeAssert(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) throw new NodeInvariantError(typeof message === 'string' ? message : message());
}
