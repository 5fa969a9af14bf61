// Translates the typed errors of lower layers (the Raft core, the chain) into the node's own
// operating errors, in one table each, so the RPC layer and embedders see one vocabulary.

import { RaftError, RaftErrorCode } from '../consensus/index.js';
import { ChainError, ChainErrorCode } from './chain/index.js';
import { NodeError, NodeErrorCode } from './errors.js';

const RAFT_TO_NODE: Record<RaftErrorCode, NodeErrorCode> = {
  [RaftErrorCode.ProposalDropped]: NodeErrorCode.NotLeader,
  [RaftErrorCode.NotLeader]: NodeErrorCode.NotLeader,
  [RaftErrorCode.TransferInProgress]: NodeErrorCode.TransferInProgress,
  [RaftErrorCode.UncommittedQuotaExceeded]: NodeErrorCode.Unavailable,
  [RaftErrorCode.ConfChangePending]: NodeErrorCode.MembershipChangePending,
  // The leader has not committed its first entry of this term yet (Ongaro 2015): retry shortly.
  [RaftErrorCode.LeaderNotReady]: NodeErrorCode.Unavailable,
  [RaftErrorCode.InvalidConfChange]: NodeErrorCode.MembershipChangeInvalid,
  [RaftErrorCode.IdReused]: NodeErrorCode.MembershipChangeInvalid,
  [RaftErrorCode.InvalidTransferTarget]: NodeErrorCode.MembershipChangeInvalid,
  [RaftErrorCode.Compacted]: NodeErrorCode.Unavailable,
  [RaftErrorCode.Unavailable]: NodeErrorCode.Unavailable,
  [RaftErrorCode.SnapshotOutOfDate]: NodeErrorCode.Unavailable,
  [RaftErrorCode.ProposalTooLarge]: NodeErrorCode.TxTooLarge,
  [RaftErrorCode.ReadIndexDropped]: NodeErrorCode.ReadNotConfirmed,
};

const CHAIN_TO_NODE: Partial<Record<ChainErrorCode, NodeErrorCode>> = {
  [ChainErrorCode.TxMalformed]: NodeErrorCode.TxMalformed,
  [ChainErrorCode.TxTooLarge]: NodeErrorCode.TxTooLarge,
  [ChainErrorCode.TxBadSignature]: NodeErrorCode.TxBadSignature,
  [ChainErrorCode.TxAddressMismatch]: NodeErrorCode.TxBadSignature,
  [ChainErrorCode.TxWrongChainId]: NodeErrorCode.TxWrongChainId,
  [ChainErrorCode.TxUnsupportedType]: NodeErrorCode.TxMalformed,
  [ChainErrorCode.NonceTooLow]: NodeErrorCode.TxNonceTooLow,
  [ChainErrorCode.NonceGapTooLarge]: NodeErrorCode.TxNonceTooHigh,
  [ChainErrorCode.TxDuplicate]: NodeErrorCode.TxAlreadyKnown,
  [ChainErrorCode.NonceAlreadyPending]: NodeErrorCode.TxAlreadyKnown,
  [ChainErrorCode.PoolFull]: NodeErrorCode.TxPoolFull,
  [ChainErrorCode.HistoryUnavailable]: NodeErrorCode.NotFound,
};

/** Converts an expected error of a lower layer into a NodeError; anything else is returned as is. */
export function toNodeError(err: unknown): unknown {
  if (err instanceof NodeError) return err;
  if (err instanceof RaftError) {
    return new NodeError(RAFT_TO_NODE[err.code], err.message, { raftCode: err.code, ...err.meta }, { cause: err });
  }
  if (err instanceof ChainError && !err.fatal) {
    const code = CHAIN_TO_NODE[err.code];
    if (code) return new NodeError(code, err.message, { chainCode: err.code, ...err.meta }, { cause: err });
  }
  return err;
}

/** For replies over the wire (a forwarded transaction): a NodeError as plain data and back. */
export interface WireError {
  readonly code: string;
  readonly message: string;
  readonly meta?: Record<string, unknown>;
}

export function errorToWire(err: unknown): WireError {
  const e = toNodeError(err);
  if (e instanceof NodeError) return { code: e.code, message: e.message, meta: jsonSafe(e.meta) };
  return { code: NodeErrorCode.Unavailable, message: e instanceof Error ? e.message : String(e) };
}

export function errorFromWire(w: WireError): NodeError {
  const known = (Object.values(NodeErrorCode) as string[]).includes(w.code);
  return new NodeError(known ? (w.code as NodeErrorCode) : NodeErrorCode.Unavailable, w.message, w.meta ?? {});
}

function jsonSafe(meta: Readonly<Record<string, unknown>>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(meta)) {
    if (typeof v === 'bigint') out[k] = v.toString();
    else if (v instanceof Uint8Array) continue;
    else if (v === undefined || typeof v === 'function') continue;
    else out[k] = v;
  }
  return out;
}
