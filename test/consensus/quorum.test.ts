// Property tests of the quorum arithmetic against a deliberately naive implementation, over
// thousands of random configurations drawn from SeededRng (etcd-io/raft's quorum datadriven and
// quick-check tests follow the same idea).

import { describe, expect, it } from 'vitest';
import {
  jointCommittedIndex,
  jointVoteResult,
  majorityCommittedIndex,
  majorityVoteResult,
  SeededRng,
  VoteResult,
  type LogIndex,
  type RaftId,
} from '../../consensus/index.js';

// ------------------------------------------------------------------ the naive reference

/** The largest index N such that more than half of the voters acknowledged >= N (brute force). */
function naiveCommitted(voters: RaftId[], acked: Map<RaftId, number>): number {
  if (voters.length === 0) return Number.POSITIVE_INFINITY;
  let best = 0;
  const candidates = new Set<number>([0, ...voters.map((v) => acked.get(v) ?? 0)]);
  for (const n of candidates) {
    const count = voters.filter((v) => (acked.get(v) ?? 0) >= n).length;
    if (count * 2 > voters.length && n > best) best = n;
  }
  return best;
}

/** Enumerates every way the missing votes could go: won if all ways win, lost if none can. */
function naiveVote(voters: RaftId[], votes: Map<RaftId, boolean>): VoteResult {
  if (voters.length === 0) return VoteResult.Won;
  const missing = voters.filter((v) => !votes.has(v));
  let anyWin = false;
  let allWin = true;
  for (let mask = 0; mask < 1 << missing.length; mask++) {
    const yes = voters.filter((v) => (votes.has(v) ? votes.get(v) : ((mask >> missing.indexOf(v)) & 1) === 1)).length;
    const win = yes * 2 > voters.length;
    anyWin ||= win;
    allWin &&= win;
  }
  if (allWin) return VoteResult.Won;
  return anyWin ? VoteResult.Pending : VoteResult.Lost;
}

function naiveJointVote(a: RaftId[], b: RaftId[], votes: Map<RaftId, boolean>): VoteResult {
  // Joint: every completion must win both halves to be "won"; some completion must win both to not be "lost".
  const all = [...new Set([...a, ...b])];
  const missing = all.filter((v) => !votes.has(v));
  let anyWin = false;
  let allWin = true;
  for (let mask = 0; mask < 1 << missing.length; mask++) {
    const filled = new Map(votes);
    missing.forEach((v, i) => filled.set(v, ((mask >> i) & 1) === 1));
    const winA = a.length === 0 || a.filter((v) => filled.get(v)).length * 2 > a.length;
    const winB = b.length === 0 || b.filter((v) => filled.get(v)).length * 2 > b.length;
    anyWin ||= winA && winB;
    allWin &&= winA && winB;
  }
  if (allWin) return VoteResult.Won;
  return anyWin ? VoteResult.Pending : VoteResult.Lost;
}

// ------------------------------------------------------------------ generators

function randomVoters(rng: SeededRng, maxSize: number, pool: number): RaftId[] {
  const size = rng.nextInt(maxSize + 1);
  const s = new Set<RaftId>();
  while (s.size < size) s.add((1 + rng.nextInt(pool)) as RaftId);
  return [...s];
}

describe('quorum arithmetic (property tests against a naive implementation)', () => {
  it('majority committed index', () => {
    const rng = new SeededRng(101);
    for (let i = 0; i < 5000; i++) {
      const voters = randomVoters(rng, 9, 12);
      const acked = new Map<RaftId, number>();
      for (const v of voters) if (rng.nextInt(5) !== 0) acked.set(v, rng.nextInt(20));
      const got = majorityCommittedIndex(voters, (id) => acked.get(id) as LogIndex | undefined);
      expect(got, JSON.stringify({ voters, acked: [...acked] })).toBe(naiveCommitted(voters, acked));
    }
  });

  it('joint committed index is the minimum of both halves, and only counts voters', () => {
    const rng = new SeededRng(102);
    for (let i = 0; i < 5000; i++) {
      const a = randomVoters(rng, 7, 10);
      const b = randomVoters(rng, 7, 10);
      const acked = new Map<RaftId, number>();
      // Learners (not in either half) acknowledge very high indexes: they must not count.
      for (let id = 1; id <= 12; id++)
        acked.set(id as RaftId, a.includes(id as RaftId) || b.includes(id as RaftId) ? rng.nextInt(30) : 1000);
      const got = jointCommittedIndex(a, b, (id) => acked.get(id) as LogIndex | undefined);
      expect(got).toBe(Math.min(naiveCommitted(a, acked), naiveCommitted(b, acked)));
      expect(jointCommittedIndex(a, [], (id) => acked.get(id) as LogIndex | undefined)).toBe(naiveCommitted(a, acked));
    }
  });

  it('majority vote result', () => {
    const rng = new SeededRng(103);
    for (let i = 0; i < 5000; i++) {
      const voters = randomVoters(rng, 9, 12);
      const votes = new Map<RaftId, boolean>();
      for (let id = 1; id <= 12; id++) if (rng.nextInt(3) !== 0) votes.set(id as RaftId, rng.nextInt(2) === 0);
      expect(majorityVoteResult(voters, votes), JSON.stringify({ voters, votes: [...votes] })).toBe(
        naiveVote(voters, votes),
      );
    }
  });

  it('joint vote result', () => {
    const rng = new SeededRng(104);
    for (let i = 0; i < 3000; i++) {
      const a = randomVoters(rng, 6, 9);
      const b = randomVoters(rng, 6, 9);
      const votes = new Map<RaftId, boolean>();
      for (let id = 1; id <= 9; id++) if (rng.nextInt(3) !== 0) votes.set(id as RaftId, rng.nextInt(2) === 0);
      expect(jointVoteResult(a, b, votes), JSON.stringify({ a, b, votes: [...votes] })).toBe(
        naiveJointVote(a, b, votes),
      );
    }
  });

  it('the 3-voter fast path agrees with the general one', () => {
    const rng = new SeededRng(105);
    for (let i = 0; i < 2000; i++) {
      const acked = new Map<RaftId, number>([
        [1 as RaftId, rng.nextInt(10)],
        [2 as RaftId, rng.nextInt(10)],
        [3 as RaftId, rng.nextInt(10)],
      ]);
      const voters = [1, 2, 3] as RaftId[];
      expect(majorityCommittedIndex(voters, (id) => acked.get(id) as LogIndex)).toBe(naiveCommitted(voters, acked));
    }
  });
});
