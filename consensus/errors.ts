// Errors of the Raft core. Two kinds, kept apart (docs/design.md §6):
//  - RaftError: an expected operating condition the caller can act on (the proposal was
//    dropped, a change is already pending). It carries a stable `code`.
//  - RaftInvariantError: a programmer error or corrupted input. The core never catches it;
//    the process should crash with the offending values in the message.

export enum RaftErrorCode {
  /** This node is not the leader and cannot forward (no leader known, or forwarding disabled). */
  ProposalDropped = 'RAFT_PROPOSAL_DROPPED',
  /** A leadership transfer is in progress; proposals are refused until it ends (thesis §3.10). */
  TransferInProgress = 'RAFT_TRANSFER_IN_PROGRESS',
  /** The uncommitted log of this leader is over its quota; retry once entries commit. */
  UncommittedQuotaExceeded = 'RAFT_UNCOMMITTED_QUOTA_EXCEEDED',
  /** A configuration change is already pending (not yet applied). Only one at a time. */
  ConfChangePending = 'RAFT_CONF_CHANGE_PENDING',
  /** The leader has not yet committed an entry of its own term (Ongaro 2015 fix). */
  LeaderNotReady = 'RAFT_LEADER_NOT_READY',
  /** The configuration change is malformed or not allowed in the current configuration. */
  InvalidConfChange = 'RAFT_INVALID_CONF_CHANGE',
  /** The id was used before and removed; ids are never reused. */
  IdReused = 'RAFT_ID_REUSED',
  /** The transfer target is not a voter, is unknown, or is this leader. */
  InvalidTransferTarget = 'RAFT_INVALID_TRANSFER_TARGET',
  /** This node is not the leader. */
  NotLeader = 'RAFT_NOT_LEADER',
  /** Storage: the requested index was compacted away. */
  Compacted = 'RAFT_COMPACTED',
  /** Storage: the requested index is beyond the last one. */
  Unavailable = 'RAFT_UNAVAILABLE',
  /** Storage: the snapshot is older than what is already held. */
  SnapshotOutOfDate = 'RAFT_SNAPSHOT_OUT_OF_DATE',
  /** A proposal is larger than the maximum message size. */
  ProposalTooLarge = 'RAFT_PROPOSAL_TOO_LARGE',
  /** A linearizable read cannot be started: no leader is known, or too many reads are pending. Retry. */
  ReadIndexDropped = 'RAFT_READ_INDEX_DROPPED',
}

export class RaftError extends Error {
  readonly code: RaftErrorCode;
  readonly meta: Record<string, unknown>;
  constructor(code: RaftErrorCode, message: string, meta: Record<string, unknown> = {}) {
    super(message);
    this.name = 'RaftError';
    this.code = code;
    this.meta = meta;
  }
}

export class RaftInvariantError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RaftInvariantError';
  }
}

/** Assertions stay on in production (TigerBeetle): a broken invariant crashes with its values. */
export function assert(condition: unknown, message: string | (() => string)): asserts condition {
  if (!condition) {
    throw new RaftInvariantError(typeof message === 'string' ? message : message());
  }
}
