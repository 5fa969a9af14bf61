// JSON-RPC error codes: the stable numbers clients program against. Never renumber; add.
//
// | code   | name                         | meaning / what the client should do                                    |
// |--------|------------------------------|-------------------------------------------------------------------------|
// | -32700 | ParseError                   | The body is not JSON. Fix the client.                                   |
// | -32600 | InvalidRequest               | Not a JSON-RPC 2.0 request object (or an empty batch).                  |
// | -32601 | MethodNotFound               | No such method.                                                         |
// | -32602 | InvalidParams                | A parameter is wrong; the message names it and says why.                |
// | -32603 | InternalError                | A bug in the node. Reported in the node's log at error.                 |
// | -32000 | NotLeader                    | Needs the leader; `data.leader` (raftId) and `data.leaderRpcUrl`.       |
// | -32001 | NoLeader                     | No leader right now (election). Retry after a second.                   |
// | -32002 | Timeout                      | Took too long. The outcome is UNKNOWN: a submitted tx may still commit. |
// | -32003 | TxRejected                   | The transaction was refused; `data.reason` is one of TX_* codes.        |
// | -32004 | NotFound                     | No such block / transaction / member.                                   |
// | -32005 | MembershipChangePending      | Another membership change is pending; retry once it commits.           |
// | -32006 | MembershipChangeInvalid      | The change is not allowed (unknown id, reused id, last voter...).       |
// | -32007 | TransferInProgress           | A leadership transfer is under way; retry shortly.                      |
// | -32008 | PrivacyRecipientUnavailable  | A privateFor party's transaction manager is unreachable (fail-fast).    |
// | -32009 | PrivacyUnavailable           | This node's own transaction manager / enclave is unavailable.           |
// | -32010 | Unavailable                  | The node is starting, stopping or overloaded. Retry, or use another.    |
// |        |                              | A full pool (data.reason TX_POOL_FULL) says when: data.retryAfterMs.    |
// | -32011 | LimitExceeded                | Body too large (HTTP 413) or batch too long; `data.limit` says which.   |
// | -32012 | ReadNotConfirmed             | A linearizable read lost its leader before it was confirmed. Retry.     |
// | -32013 | Unauthenticated              | HTTP 401: no bearer token, or not a valid one. Send `Authorization`.    |
// | -32014 | ScopeMissing                 | HTTP 403: the token lacks a scope a method needs; `data.missing` lists. |
// | -32015 | HostNotAllowed               | HTTP 403: the Host header is not in rpc.vhosts (DNS rebinding guard).   |
// | -32016 | OriginNotAllowed             | HTTP 403: the browser Origin is not in rpc.corsOrigins.                 |
// | -32017 | UnsupportedContentType       | HTTP 415: the body must be sent as Content-Type: application/json.      |

import { NodeError, NodeErrorCode } from '../errors.js';

export enum RpcErrorCode {
  ParseError = -32700,
  InvalidRequest = -32600,
  MethodNotFound = -32601,
  InvalidParams = -32602,
  InternalError = -32603,
  NotLeader = -32000,
  NoLeader = -32001,
  Timeout = -32002,
  TxRejected = -32003,
  NotFound = -32004,
  MembershipChangePending = -32005,
  MembershipChangeInvalid = -32006,
  TransferInProgress = -32007,
  PrivacyRecipientUnavailable = -32008,
  PrivacyUnavailable = -32009,
  Unavailable = -32010,
  LimitExceeded = -32011,
  ReadNotConfirmed = -32012,
  Unauthenticated = -32013,
  ScopeMissing = -32014,
  HostNotAllowed = -32015,
  OriginNotAllowed = -32016,
  UnsupportedContentType = -32017,
}

/**
 * The one table from node error codes to JSON-RPC codes. `Record<NodeErrorCode, ...>` makes the
 * type check fail when a NodeErrorCode is added without a mapping.
 */
export const NODE_ERROR_TO_RPC: Readonly<Record<NodeErrorCode, RpcErrorCode>> = {
  [NodeErrorCode.NotLeader]: RpcErrorCode.NotLeader,
  [NodeErrorCode.NoLeader]: RpcErrorCode.NoLeader,
  [NodeErrorCode.MembershipChangePending]: RpcErrorCode.MembershipChangePending,
  [NodeErrorCode.MembershipChangeInvalid]: RpcErrorCode.MembershipChangeInvalid,
  [NodeErrorCode.TransferInProgress]: RpcErrorCode.TransferInProgress,
  [NodeErrorCode.TxBadSignature]: RpcErrorCode.TxRejected,
  [NodeErrorCode.TxWrongChainId]: RpcErrorCode.TxRejected,
  [NodeErrorCode.TxNonceTooLow]: RpcErrorCode.TxRejected,
  [NodeErrorCode.TxNonceTooHigh]: RpcErrorCode.TxRejected,
  [NodeErrorCode.TxAlreadyKnown]: RpcErrorCode.TxRejected,
  // Not a refusal of this transaction but of load: it may be sent again unchanged, after data.retryAfterMs.
  [NodeErrorCode.TxPoolFull]: RpcErrorCode.Unavailable,
  [NodeErrorCode.NodeOverloaded]: RpcErrorCode.Unavailable,
  [NodeErrorCode.TxTooLarge]: RpcErrorCode.TxRejected,
  [NodeErrorCode.TxMalformed]: RpcErrorCode.TxRejected,
  [NodeErrorCode.TxUnknownAccount]: RpcErrorCode.TxRejected,
  [NodeErrorCode.TxUnknownRecipient]: RpcErrorCode.TxRejected,
  [NodeErrorCode.PrivacyRecipientUnavailable]: RpcErrorCode.PrivacyRecipientUnavailable,
  [NodeErrorCode.PrivacyUnavailable]: RpcErrorCode.PrivacyUnavailable,
  [NodeErrorCode.Timeout]: RpcErrorCode.Timeout,
  [NodeErrorCode.NotFound]: RpcErrorCode.NotFound,
  [NodeErrorCode.Unavailable]: RpcErrorCode.Unavailable,
  [NodeErrorCode.ReadNotConfirmed]: RpcErrorCode.ReadNotConfirmed,
};

/** The `error` member of a JSON-RPC response. */
export interface RpcErrorObject {
  readonly code: number;
  readonly message: string;
  readonly data?: unknown;
}

/** Thrown inside the RPC layer (parameter validation, limits); becomes an error response. */
export class RpcError extends Error {
  readonly code: RpcErrorCode;
  readonly data: unknown;
  constructor(code: RpcErrorCode, message: string, data?: unknown) {
    super(message);
    this.name = 'RpcError';
    this.code = code;
    this.data = data;
  }
}

export function invalidParams(message: string): RpcError {
  return new RpcError(RpcErrorCode.InvalidParams, message);
}

/**
 * Turns whatever a method threw into the response's error object. Typed errors keep their
 * message and details; anything else is a bug: the client gets a generic -32603 (no stack or
 * internals leak) and `internal` is true so the server logs it at error.
 */
export function toRpcError(err: unknown): { error: RpcErrorObject; internal: boolean } {
  if (err instanceof RpcError) {
    return { error: withData(err.code, err.message, err.data), internal: false };
  }
  if (err instanceof NodeError) {
    const code = NODE_ERROR_TO_RPC[err.code];
    // `data.reason` is the node's error code: for TxRejected it is the sub-reason (TX_NONCE_TOO_LOW...).
    const data = { reason: err.code, ...err.meta };
    return { error: withData(code, err.message, data), internal: false };
  }
  return { error: { code: RpcErrorCode.InternalError, message: 'internal error (see the node log)' }, internal: true };
}

function withData(code: number, message: string, data: unknown): RpcErrorObject {
  return data === undefined ? { code, message } : { code, message, data };
}
