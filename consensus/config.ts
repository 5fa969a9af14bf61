// Configuration of one Raft core. Every limit is named, with its unit, and has a default.

import type { Storage } from './storage.js';
import type { LogIndex, RaftId, Rng } from './types.js';

export interface RaftConfig {
  readonly id: RaftId;
  readonly storage: Storage;
  /** The only source of randomness (election timeout jitter). Seeded in tests and the simulator. */
  readonly rng: Rng;
  /** Followers start an election after a random timeout in [electionTicks, 2*electionTicks). */
  readonly electionTicks: number;
  /** The leader sends heartbeats every heartbeatTicks. Must be < electionTicks. */
  readonly heartbeatTicks: number;
  /** The last index the application already applied (on restart). */
  readonly appliedIndex: LogIndex;
  /** Upper bound on the entry bytes of one App message (one entry may exceed it alone). */
  readonly maxMessageBytes: number;
  /** Upper bound on App messages in flight to one follower in replicate state. */
  readonly maxInflightMessages: number;
  /** Upper bound on entry bytes in flight to one follower (0 = no bound beyond messages). */
  readonly maxInflightBytes: number;
  /** A leader refuses proposals while its uncommitted entries exceed this many bytes. */
  readonly maxUncommittedEntriesBytes: number;
  /** Upper bound on the bytes of committed entries handed out in one Ready. */
  readonly maxCommittedBytesPerReady: number;
  /** A single proposal larger than this is refused (ProposalTooLarge). */
  readonly maxProposalBytes: number;
  /** Thesis §9.6. On by default: an isolated node cannot disrupt a healthy cluster. */
  readonly preVote: boolean;
  /** Thesis §6.2: a leader that has not heard from a quorum in an election timeout steps down. On by default. */
  readonly checkQuorum: boolean;
  /** When true a follower does not forward proposals to the leader; propose() fails with ProposalDropped. */
  readonly disableProposalForwarding: boolean;
  /**
   * Upper bound on linearizable reads a leader holds at once (waiting for its no-op to commit or
   * for a heartbeat quorum). Beyond it readIndex() fails with ReadIndexDropped.
   */
  readonly maxPendingReadIndexRequests: number;
  /**
   * Ids removed from the cluster before this start (persisted by the node layer from
   * RaftNode.removedIds()): ids are never reused, so adding one of them fails with IdReused.
   */
  readonly removedIds: readonly RaftId[];
}

export const DEFAULT_RAFT_CONFIG = {
  electionTicks: 10,
  heartbeatTicks: 1,
  appliedIndex: 0 as LogIndex,
  maxMessageBytes: 1024 * 1024,
  maxInflightMessages: 256,
  maxInflightBytes: 32 * 1024 * 1024,
  maxUncommittedEntriesBytes: 64 * 1024 * 1024,
  maxCommittedBytesPerReady: 16 * 1024 * 1024,
  maxProposalBytes: 8 * 1024 * 1024,
  preVote: true,
  checkQuorum: true,
  disableProposalForwarding: false,
  maxPendingReadIndexRequests: 4096,
  removedIds: [] as readonly RaftId[],
} as const;

export type RaftConfigInput = Pick<RaftConfig, 'id' | 'storage' | 'rng'> & Partial<RaftConfig>;

export function resolveConfig(input: RaftConfigInput): RaftConfig {
  return { ...DEFAULT_RAFT_CONFIG, ...input };
}
