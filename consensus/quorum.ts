// Quorum arithmetic: pure functions over a set of voters (etcd-io/raft's quorum/majority.go and
// quorum/joint.go, rewritten). Kept free of any state so the property tests in
// test/consensus/quorum.test.ts can compare them against a deliberately naive implementation.
//
// A joint configuration C(old,new) (Raft thesis §4.3) needs a majority of BOTH halves for a commit
// and for an election. An empty half places no constraint: the commit index of an empty majority
// is +Infinity (so min() picks the other half) and its vote result is Won.

import type { LogIndex, RaftId } from './types.js';

export enum VoteResult {
  /** Not enough votes yet to decide: keep waiting. */
  Pending = 'pending',
  /** A majority refused: the election is lost. */
  Lost = 'lost',
  /** A majority granted. */
  Won = 'won',
}

/** The commit index of an empty voter set: places no constraint on a joint configuration. */
export const UNBOUNDED_INDEX = Number.POSITIVE_INFINITY as LogIndex;

/**
 * The largest index acknowledged by a majority of `voters` (Figure 2, "Rules for servers, Leaders":
 * the N such that a majority of matchIndex[i] >= N). A voter with no acknowledgement counts as 0.
 */
export function majorityCommittedIndex(
  voters: ReadonlySet<RaftId> | readonly RaftId[],
  acked: (id: RaftId) => LogIndex | undefined,
): LogIndex {
  const n = 'size' in voters ? voters.size : voters.length;
  if (n === 0) return UNBOUNDED_INDEX;
  // Small clusters are the common case: a plain array sort of n numbers is cheap and allocation
  // stays O(n). The quorum-th largest value is at position n - (floor(n/2)+1) in ascending order.
  const srt: number[] = new Array(n);
  let i = 0;
  for (const id of voters) {
    srt[i++] = acked(id) ?? 0;
  }
  if (n === 3) {
    // The hottest path (3 voters): the median without a sort.
    const a = srt[0],
      b = srt[1],
      c = srt[2];
    return Math.max(Math.min(a, b), Math.min(Math.max(a, b), c)) as LogIndex;
  }
  srt.sort((x, y) => x - y);
  return srt[n - (Math.floor(n / 2) + 1)] as LogIndex;
}

/** Joint commit index: the lower of both halves' (an empty half is unbounded). */
export function jointCommittedIndex(
  incoming: ReadonlySet<RaftId> | readonly RaftId[],
  outgoing: ReadonlySet<RaftId> | readonly RaftId[],
  acked: (id: RaftId) => LogIndex | undefined,
): LogIndex {
  const a = majorityCommittedIndex(incoming, acked);
  const b = majorityCommittedIndex(outgoing, acked);
  return (a < b ? a : b) as LogIndex;
}

/**
 * The outcome of an election among `voters` given the votes received so far (true = granted).
 * Votes from non-voters are ignored. An empty voter set wins (by convention, as in etcd, so that a
 * joint configuration with an empty outgoing half depends on the incoming half only).
 */
export function majorityVoteResult(
  voters: ReadonlySet<RaftId> | readonly RaftId[],
  votes: ReadonlyMap<RaftId, boolean>,
): VoteResult {
  const n = 'size' in voters ? voters.size : voters.length;
  if (n === 0) return VoteResult.Won;
  let yes = 0;
  let missing = 0;
  for (const id of voters) {
    const v = votes.get(id);
    if (v === undefined) missing++;
    else if (v) yes++;
  }
  const q = Math.floor(n / 2) + 1;
  if (yes >= q) return VoteResult.Won;
  if (yes + missing >= q) return VoteResult.Pending;
  return VoteResult.Lost;
}

/** Joint vote result: won only if both halves won; lost if either lost; otherwise pending. */
export function jointVoteResult(
  incoming: ReadonlySet<RaftId> | readonly RaftId[],
  outgoing: ReadonlySet<RaftId> | readonly RaftId[],
  votes: ReadonlyMap<RaftId, boolean>,
): VoteResult {
  const r1 = majorityVoteResult(incoming, votes);
  const r2 = majorityVoteResult(outgoing, votes);
  if (r1 === r2) return r1;
  if (r1 === VoteResult.Lost || r2 === VoteResult.Lost) return VoteResult.Lost;
  return VoteResult.Pending;
}
