// What a leader knows of each peer (Raft paper Figure 2, "Volatile state on leaders": nextIndex and
// matchIndex), with the flow control of etcd-io/raft's tracker package: a peer is probed until its
// match is known, then replicated to with pipelined appends bounded by an Inflights window, or sent
// a snapshot when the entries it needs were compacted. Also the membership configuration and the
// vote tally (ProgressTracker).

import { assert } from './errors.js';
import { jointCommittedIndex, jointVoteResult, VoteResult } from './quorum.js';
import type { ConfState, LogIndex, RaftId } from './types.js';

export enum ProgressState {
  /** Send at most one append per heartbeat interval until the follower's match is found. */
  Probe = 'probe',
  /** Optimistically pipeline appends, bounded by the Inflights window. */
  Replicate = 'replicate',
  /** A snapshot is on its way; send nothing until it is reported or acknowledged. */
  Snapshot = 'snapshot',
}

/**
 * A ring of the last index of each append in flight to one follower, with their entry bytes.
 * Bounded by `maxMessages` (RaftConfig.maxInflightMessages) and `maxBytes`
 * (RaftConfig.maxInflightBytes, 0 = unbounded), so a slow follower cannot make the leader buffer
 * an unbounded amount of data in the transport.
 */
export class Inflights {
  private readonly indexes: number[];
  private readonly sizes: number[];
  private start = 0;
  private countValue = 0;
  private bytesValue = 0;

  constructor(
    readonly maxMessages: number,
    readonly maxBytes: number,
  ) {
    assert(
      Number.isInteger(maxMessages) && maxMessages >= 1,
      () => `Inflights: maxMessages ${maxMessages} must be >= 1`,
    );
    assert(maxBytes >= 0, () => `Inflights: maxBytes ${maxBytes} must be >= 0`);
    // Allocated lazily in chunks would save memory for idle peers; a few hundred slots per peer
    // is small enough to allocate up front.
    this.indexes = new Array<number>(maxMessages);
    this.sizes = new Array<number>(maxMessages);
  }

  get count(): number {
    return this.countValue;
  }

  get bytes(): number {
    return this.bytesValue;
  }

  /** Records an append whose last entry is `index`, carrying `bytes` of entries. */
  add(index: LogIndex, bytes: number): void {
    assert(
      !this.full(),
      () => `Inflights.add(${index}): the window is full (${this.countValue} messages, ${this.bytesValue} bytes)`,
    );
    if (this.countValue > 0) {
      const last = this.indexes[(this.start + this.countValue - 1) % this.maxMessages];
      assert(index > last, () => `Inflights.add(${index}): not above the last in-flight index ${last}`);
    }
    const slot = (this.start + this.countValue) % this.maxMessages;
    this.indexes[slot] = index;
    this.sizes[slot] = bytes;
    this.countValue++;
    this.bytesValue += bytes;
  }

  /** Frees every append whose last index is <= `to` (the follower acknowledged up to `to`). */
  freeLE(to: LogIndex): void {
    while (this.countValue > 0 && this.indexes[this.start] <= to) {
      this.bytesValue -= this.sizes[this.start];
      this.start = (this.start + 1) % this.maxMessages;
      this.countValue--;
    }
    if (this.countValue === 0) this.start = 0;
  }

  full(): boolean {
    return this.countValue === this.maxMessages || (this.maxBytes !== 0 && this.bytesValue >= this.maxBytes);
  }

  /** Copies the window of `other` into this one (same bounds). */
  copyFrom(other: Inflights): void {
    assert(other.maxMessages === this.maxMessages, 'Inflights.copyFrom: different bounds');
    for (let i = 0; i < other.maxMessages; i++) {
      this.indexes[i] = other.indexes[i];
      this.sizes[i] = other.sizes[i];
    }
    this.start = other.start;
    this.countValue = other.countValue;
    this.bytesValue = other.bytesValue;
  }

  reset(): void {
    this.start = 0;
    this.countValue = 0;
    this.bytesValue = 0;
  }
}

export class Progress {
  /** Highest index known to be replicated on the peer. Invariant: match < next. */
  match: LogIndex;
  /** Index of the next entry to send. */
  next: LogIndex;
  state: ProgressState = ProgressState.Probe;
  /** In Snapshot state: the index of the snapshot being sent. */
  pendingSnapshot: LogIndex = 0 as LogIndex;
  /** True when the peer was heard from since the last CheckQuorum round (thesis §6.2). */
  recentActive = false;
  /** Probe: an append was sent and no answer came yet. Replicate: the Inflights window is full. */
  msgAppFlowPaused = false;
  isLearner: boolean;
  readonly inflights: Inflights;

  constructor(
    next: LogIndex,
    match: LogIndex,
    isLearner: boolean,
    maxInflightMessages: number,
    maxInflightBytes: number,
  ) {
    this.next = next;
    this.match = match;
    this.isLearner = isLearner;
    this.inflights = new Inflights(maxInflightMessages, maxInflightBytes);
  }

  /** A deep copy: the configuration changer edits copies, so a refused change leaves no trace. */
  clone(): Progress {
    const pr = new Progress(this.next, this.match, this.isLearner, this.inflights.maxMessages, this.inflights.maxBytes);
    pr.state = this.state;
    pr.pendingSnapshot = this.pendingSnapshot;
    pr.recentActive = this.recentActive;
    pr.msgAppFlowPaused = this.msgAppFlowPaused;
    pr.inflights.copyFrom(this.inflights);
    return pr;
  }

  private resetState(state: ProgressState): void {
    this.msgAppFlowPaused = false;
    this.pendingSnapshot = 0 as LogIndex;
    this.state = state;
    this.inflights.reset();
  }

  becomeProbe(): void {
    // After a snapshot, probe from the snapshot's index: the follower holds at least that much.
    if (this.state === ProgressState.Snapshot) {
      const pending = this.pendingSnapshot;
      this.resetState(ProgressState.Probe);
      this.next = Math.max(this.match + 1, pending + 1) as LogIndex;
    } else {
      this.resetState(ProgressState.Probe);
      this.next = (this.match + 1) as LogIndex;
    }
  }

  becomeReplicate(): void {
    this.resetState(ProgressState.Replicate);
    this.next = (this.match + 1) as LogIndex;
  }

  becomeSnapshot(snapshotIndex: LogIndex): void {
    this.resetState(ProgressState.Snapshot);
    this.pendingSnapshot = snapshotIndex;
  }

  /** Updates the flow-control state after an append with `entries` entries of `bytes` was sent. */
  sentEntries(entries: number, bytes: number): void {
    switch (this.state) {
      case ProgressState.Replicate:
        if (entries > 0) {
          const last = (this.next + entries - 1) as LogIndex;
          this.next = (last + 1) as LogIndex;
          this.inflights.add(last, bytes);
        }
        this.msgAppFlowPaused = this.inflights.full();
        break;
      case ProgressState.Probe:
        // One probe per heartbeat interval: the heartbeat response (or this append's response)
        // un-pauses. Any append in Probe state is a probe, empty or not.
        this.msgAppFlowPaused = true;
        break;
      default:
        assert(false, () => `sentEntries in state ${this.state}`);
    }
  }

  /** The peer acknowledged `n`: returns false when the acknowledgement is stale. */
  maybeUpdate(n: LogIndex): boolean {
    let updated = false;
    if (this.match < n) {
      this.match = n;
      updated = true;
      this.msgAppFlowPaused = false;
    }
    if (this.next < n + 1) this.next = (n + 1) as LogIndex;
    return updated;
  }

  /**
   * The peer rejected an append at index `rejected`; `matchHint` is the highest index that may
   * still match (from the fast back-off, §5.3 "the follower can include the term of the conflicting
   * entry"). Returns false when the rejection is stale (answers an append we no longer care about).
   */
  maybeDecrTo(rejected: LogIndex, matchHint: LogIndex): boolean {
    if (this.state === ProgressState.Replicate) {
      // In pipeline mode a rejection of something at or below match is a stale duplicate.
      if (rejected <= this.match) return false;
      this.next = (this.match + 1) as LogIndex;
      return true;
    }
    // In probe mode only the answer to the one probe in flight (at next-1) counts.
    if (this.next - 1 !== rejected) return false;
    this.next = Math.max(Math.min(rejected, matchHint + 1), this.match + 1, 1) as LogIndex;
    this.msgAppFlowPaused = false;
    return true;
  }

  isPaused(): boolean {
    switch (this.state) {
      case ProgressState.Probe:
      case ProgressState.Replicate:
        return this.msgAppFlowPaused;
      case ProgressState.Snapshot:
        return true;
    }
  }
}

/** The membership (joint when `outgoing` is non-empty). Sets keep lookups O(1). */
export interface TrackerConfig {
  incoming: Set<RaftId>;
  outgoing: Set<RaftId>;
  learners: Set<RaftId>;
  /** Demoted to learner in C_new but still voting in C_old; become learners on leaving joint. */
  learnersNext: Set<RaftId>;
  autoLeave: boolean;
}

export function emptyTrackerConfig(): TrackerConfig {
  return { incoming: new Set(), outgoing: new Set(), learners: new Set(), learnersNext: new Set(), autoLeave: false };
}

export function cloneTrackerConfig(c: TrackerConfig): TrackerConfig {
  return {
    incoming: new Set(c.incoming),
    outgoing: new Set(c.outgoing),
    learners: new Set(c.learners),
    learnersNext: new Set(c.learnersNext),
    autoLeave: c.autoLeave,
  };
}

export function trackerConfigFromConfState(cs: ConfState): TrackerConfig {
  return {
    incoming: new Set(cs.voters),
    outgoing: new Set(cs.votersOutgoing),
    learners: new Set(cs.learners),
    learnersNext: new Set(cs.learnersNext),
    autoLeave: cs.autoLeave,
  };
}

const sortIds = (s: Iterable<RaftId>): RaftId[] => [...s].sort((a, b) => a - b);

export function confStateOf(c: TrackerConfig): ConfState {
  return {
    voters: sortIds(c.incoming),
    votersOutgoing: sortIds(c.outgoing),
    learners: sortIds(c.learners),
    learnersNext: sortIds(c.learnersNext),
    autoLeave: c.autoLeave,
  };
}

export function isJoint(c: TrackerConfig): boolean {
  return c.outgoing.size > 0;
}

/**
 * The configuration's invariants (etcd confchange checkInvariants): every member has a Progress;
 * learnersNext ⊆ outgoing and not learners; learners ∩ voters = ∅; autoLeave only when joint.
 */
export function checkTrackerConfig(c: TrackerConfig, progress: ReadonlyMap<RaftId, Progress>): void {
  for (const set of [c.incoming, c.outgoing, c.learners, c.learnersNext]) {
    for (const id of set) assert(progress.has(id), () => `config: member ${id} has no progress`);
  }
  for (const id of c.learnersNext) {
    assert(c.outgoing.has(id), () => `config: learnerNext ${id} is not in the outgoing voters`);
    assert(!progress.get(id)!.isLearner, () => `config: learnerNext ${id} is already marked as a learner`);
  }
  for (const id of c.learners) {
    assert(!c.incoming.has(id) && !c.outgoing.has(id), () => `config: learner ${id} is also a voter`);
    assert(progress.get(id)!.isLearner, () => `config: learner ${id} is not marked as a learner`);
  }
  for (const id of c.incoming) assert(!progress.get(id)!.isLearner, () => `config: voter ${id} is marked as a learner`);
  if (!isJoint(c)) {
    assert(c.learnersNext.size === 0, 'config: learnersNext outside a joint state');
    assert(!c.autoLeave, 'config: autoLeave outside a joint state');
  }
  for (const id of progress.keys()) {
    assert(
      c.incoming.has(id) || c.outgoing.has(id) || c.learners.has(id) || c.learnersNext.has(id),
      () => `config: progress for ${id}, which is not a member`,
    );
  }
}

/** Membership, per-peer progress and the vote tally of one Raft instance. */
export class ProgressTracker {
  config: TrackerConfig = emptyTrackerConfig();
  progress = new Map<RaftId, Progress>();
  votes = new Map<RaftId, boolean>();

  constructor(
    readonly maxInflightMessages: number,
    readonly maxInflightBytes: number,
  ) {}

  newProgress(next: LogIndex, match: LogIndex, isLearner: boolean): Progress {
    return new Progress(next, match, isLearner, this.maxInflightMessages, this.maxInflightBytes);
  }

  /** The highest index acknowledged by a (joint) quorum of voters. */
  committed(): LogIndex {
    const progress = this.progress;
    return jointCommittedIndex(this.config.incoming, this.config.outgoing, (id) => progress.get(id)?.match);
  }

  isSingleton(): boolean {
    return this.config.incoming.size === 1 && this.config.outgoing.size === 0;
  }

  isVoter(id: RaftId): boolean {
    return this.config.incoming.has(id) || this.config.outgoing.has(id);
  }

  /** Every voter of either half, sorted (deterministic message order). */
  voterIds(): RaftId[] {
    const s = new Set<RaftId>(this.config.incoming);
    for (const id of this.config.outgoing) s.add(id);
    return sortIds(s);
  }

  /** Every member with a Progress, sorted. */
  memberIds(): RaftId[] {
    return sortIds(this.progress.keys());
  }

  /** Thesis §6.2: has a quorum been heard from since the last check? */
  quorumActive(): boolean {
    const active = new Map<RaftId, boolean>();
    for (const [id, pr] of this.progress) {
      if (pr.isLearner) continue;
      active.set(id, pr.recentActive);
    }
    return jointVoteResult(this.config.incoming, this.config.outgoing, active) === VoteResult.Won;
  }

  resetVotes(): void {
    this.votes = new Map();
  }

  /** Records a vote; only the first vote of each peer in an election counts. */
  recordVote(id: RaftId, granted: boolean): void {
    if (!this.votes.has(id)) this.votes.set(id, granted);
  }

  tallyVotes(): { granted: number; rejected: number; result: VoteResult } {
    let granted = 0;
    let rejected = 0;
    for (const [id, v] of this.votes) {
      if (!this.isVoter(id)) continue;
      if (v) granted++;
      else rejected++;
    }
    return { granted, rejected, result: jointVoteResult(this.config.incoming, this.config.outgoing, this.votes) };
  }

  confState(): ConfState {
    return confStateOf(this.config);
  }
}
