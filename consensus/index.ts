// The public surface of quorate's Raft core. Everything here is synchronous and IO-free.

export * from './types.js';
export * from './errors.js';
export * from './storage.js';
export * from './config.js';
export * from './rng.js';
export { RaftNode, type RaftNodeDependencies } from './node.js';
export { Raft, CAMPAIGN_TRANSFER_CONTEXT } from './raft.js';
export {
  encodeConfChange,
  decodeConfChange,
  bootstrapConfState,
  bootstrapSnapshot,
  MAX_CONF_CHANGES,
  MAX_CONF_CHANGE_CONTEXT_BYTES,
} from './confchange.js';
export {
  VoteResult,
  majorityCommittedIndex,
  jointCommittedIndex,
  majorityVoteResult,
  jointVoteResult,
} from './quorum.js';
export { ProgressState } from './progress.js';
