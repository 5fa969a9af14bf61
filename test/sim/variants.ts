// Deliberately broken variants of the Raft state machine. The simulator proves something only if
// its checks can fail: test/sim/broken.test.ts runs these and requires a violation of the right
// kind within a bounded number of seeds. The CLI runs them too (`npm run sim -- --variant NAME`),
// so a failure of broken.test.ts can be reproduced and traced like any other.

import type { RaftConfig } from '../../consensus/config.js';
import { Raft } from '../../consensus/raft.js';
import { NO_NODE, Role, type HardState, type LogIndex, type Term } from '../../consensus/types.js';
import { ViolationKind } from './checker.js';
import type { RaftNodeDeps } from './simulator.js';

/**
 * Figure 8 of the Raft paper: the leader commits an entry of an EARLIER term as soon as a majority
 * holds it, by counting replicas. A later leader that never had the entry can then overwrite it.
 */
class CommitByCountingRaft extends Raft {
  protected override maybeCommit(): boolean {
    const mci = this.tracker.committed();
    if (!Number.isFinite(mci) || mci <= this.raftLog.committed) return false;
    this.raftLog.commitTo(mci);
    return true;
  }
}

/** §5.4.1 removed: votes (and pre-votes) are granted whatever the candidate's log holds. */
class VoteWithoutLogCheckRaft extends Raft {
  protected override isLogUpToDate(_lastTerm: Term, _lastIndex: LogIndex): boolean {
    return true;
  }
}

/**
 * A node whose vote never reaches its disk: the hard state it hands out for persisting always
 * says "no vote". After a crash it may vote a second time in the same term.
 */
class ForgetfulVoterRaft extends Raft {
  override hardState(): HardState {
    const hs = super.hardState();
    return hs.vote === NO_NODE || this.vote === this.id ? hs : { ...hs, vote: NO_NODE };
  }
}

/**
 * Thesis §6.4 skipped: a leader answers a ReadIndex request issued on it at once with its commit
 * index — neither waiting for its own no-op to commit nor confirming with a heartbeat quorum that
 * it still leads. A deposed leader cut off in a minority then serves stale reads.
 */
class UnconfirmedReadRaft extends Raft {
  override readIndex(context: Uint8Array): void {
    if (this.state !== Role.Leader) return super.readIndex(context);
    this.readStates.push({ index: this.raftLog.committed, context });
  }
}

export interface BrokenVariant {
  readonly description: string;
  readonly deps: RaftNodeDeps;
  /** The violations that count as catching this bug. */
  readonly expected: readonly ViolationKind[];
}

export const BROKEN_VARIANTS: Readonly<Record<string, BrokenVariant>> = {
  'commit-by-counting': {
    description: "a leader commits an earlier term's entry by counting replicas (Figure 8)",
    deps: { createRaft: (config: RaftConfig) => new CommitByCountingRaft(config) },
    // The overwritten entry shows up as a leader without it, as two nodes disagreeing on what
    // was committed, or as two different entries applied at one index.
    expected: [ViolationKind.LeaderCompleteness, ViolationKind.StateMachineSafety],
  },
  'vote-without-log-check': {
    description: 'votes are granted without the election restriction (§5.4.1)',
    deps: { createRaft: (config: RaftConfig) => new VoteWithoutLogCheckRaft(config) },
    expected: [ViolationKind.LeaderCompleteness, ViolationKind.StateMachineSafety],
  },
  'unconfirmed-read': {
    description: 'a leader answers ReadIndex without confirming its leadership (§6.4)',
    deps: { createRaft: (config: RaftConfig) => new UnconfirmedReadRaft(config) },
    expected: [ViolationKind.LinearizableRead],
  },
  'forgetful-voter': {
    description: 'a follower does not persist its vote',
    deps: { createRaft: (config: RaftConfig) => new ForgetfulVoterRaft(config) },
    // Caught at once by the durability check (a vote sent before it is on disk); without that
    // check it surfaces later as two leaders in one term.
    expected: [ViolationKind.Durability, ViolationKind.ElectionSafety],
  },
};
