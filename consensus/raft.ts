// The Raft state machine (Ongaro & Ousterhout 2014; Ongaro's thesis 2014), in the manner of
// etcd-io/raft's raft.go: one input at a time (a tick, a peer message, a local request), outputs
// queued as data (messages, entries to persist, committed entries). No IO, no clock, no global
// randomness: time is `tick()`, randomness is config.rng.
//
// The hooks a test may override to build deliberately broken variants (the simulator checks that
// its safety checker catches them) are `protected`: maybeCommit (the current-term commit rule,
// §5.4.2) and isLogUpToDate (the election restriction, §5.4.1). Production code never subclasses.

import { Changer, decodeConfChange, encodeConfChange, isLeaveJoint } from './confchange.js';
import type { RaftConfig } from './config.js';
import { assert, RaftError, RaftErrorCode, RaftInvariantError } from './errors.js';
import { entriesBytes, payloadBytes, RaftLog } from './log.js';
import {
  isJoint,
  ProgressState,
  ProgressTracker,
  trackerConfigFromConfState,
  type Progress,
  type TrackerConfig,
} from './progress.js';
import { jointVoteResult, VoteResult } from './quorum.js';
import { ReadOnly } from './read-only.js';
import {
  EntryType,
  MessageType,
  NO_NODE,
  Role,
  type ConfChange,
  type ConfState,
  type Entry,
  type HardState,
  type LogIndex,
  type Message,
  type RaftId,
  type ReadState,
  type Snapshot,
  type SoftState,
  type Term,
  ConfChangeTransition,
  ConfChangeType,
} from './types.js';

/** Marks a Vote sent because of a leader transfer: voters in their lease grant it anyway (thesis §3.10). */
export const CAMPAIGN_TRANSFER_CONTEXT: Uint8Array = new TextEncoder().encode('CampaignTransfer');

const EMPTY_BYTES = new Uint8Array(0);
const NO_ENTRIES: readonly Entry[] = Object.freeze([]) as readonly Entry[];

enum CampaignKind {
  PreElection = 'pre-election',
  Election = 'election',
  Transfer = 'transfer',
}

function sameBytes(a: Uint8Array | undefined, b: Uint8Array): boolean {
  if (!a || a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A RaftId in 8 bytes (the TransferLeader target travels in `context`). */
export function encodeRaftId(id: RaftId): Uint8Array {
  const out = new Uint8Array(8);
  const v = new DataView(out.buffer);
  v.setUint32(0, Math.floor(id / 0x1_0000_0000));
  v.setUint32(4, id >>> 0);
  return out;
}

export function decodeRaftId(b: Uint8Array | undefined): RaftId | undefined {
  if (!b || b.length !== 8) return undefined;
  const v = new DataView(b.buffer, b.byteOffset, 8);
  const id = v.getUint32(0) * 0x1_0000_0000 + v.getUint32(4);
  return Number.isSafeInteger(id) && id >= 1 ? (id as RaftId) : undefined;
}

const isNat = (n: unknown): n is number => typeof n === 'number' && Number.isSafeInteger(n) && n >= 0;
const MESSAGE_TYPES = new Set<string>(Object.values(MessageType));

/**
 * Structural checks on a peer's message, so that garbage is dropped instead of tripping an
 * invariant. Semantic staleness (old terms, old indexes) is handled by the protocol itself.
 */
function isWellFormed(m: Message, self: RaftId): boolean {
  if (m === null || typeof m !== 'object' || !MESSAGE_TYPES.has(m.type)) return false;
  if (m.to !== self || !isNat(m.from) || m.from === NO_NODE || m.from === self) return false;
  if (!isNat(m.term) || !isNat(m.logTerm) || !isNat(m.index) || !isNat(m.commit) || !isNat(m.rejectHint)) return false;
  if (!Array.isArray(m.entries)) return false;
  if (m.context !== undefined && !(m.context instanceof Uint8Array)) return false;
  if (m.type === MessageType.App) {
    let prevTerm = m.logTerm;
    for (let i = 0; i < m.entries.length; i++) {
      const e = m.entries[i];
      if (!e || e.index !== m.index + 1 + i || !isNat(e.term) || e.term < 1 || e.term < prevTerm || e.term > m.term)
        return false;
      if (!(e.data instanceof Uint8Array) || (e.type !== EntryType.Normal && e.type !== EntryType.ConfChange))
        return false;
      prevTerm = e.term;
    }
    if (m.logTerm > m.term) return false;
  } else if (m.type === MessageType.Prop) {
    for (const e of m.entries) if (!e || !(e.data instanceof Uint8Array) || e.type !== EntryType.Normal) return false;
  } else if (m.type === MessageType.Snap) {
    const s = m.snapshot;
    if (
      !s ||
      !s.metadata ||
      !isNat(s.metadata.index) ||
      !isNat(s.metadata.term) ||
      s.metadata.index < 1 ||
      s.metadata.term < 1
    )
      return false;
    if (s.metadata.term > m.term || !(s.data instanceof Uint8Array)) return false;
    const cs = s.metadata.confState;
    if (
      !cs ||
      !Array.isArray(cs.voters) ||
      !Array.isArray(cs.votersOutgoing) ||
      !Array.isArray(cs.learners) ||
      !Array.isArray(cs.learnersNext)
    )
      return false;
    if (cs.voters.length === 0) return false;
    for (const set of [cs.voters, cs.votersOutgoing, cs.learners, cs.learnersNext]) {
      for (const v of set) if (!isNat(v) || v === NO_NODE) return false;
    }
  }
  return true;
}

export class Raft {
  readonly id: RaftId;
  readonly config: RaftConfig;

  // Persistent state (Figure 2), handed out in Ready.hardState and persisted by the caller.
  // term, vote, state, lead and leadTransferee are written only by this class (the getters
  // below are their only public face): nothing outside the core may move them.
  /** Invariant: never decreases. */
  private termValue: Term = 0 as Term;
  /** Invariant: at most one non-empty vote per term (§5.2). */
  private voteValue: RaftId = NO_NODE;

  readonly raftLog: RaftLog;
  readonly tracker: ProgressTracker;
  private stateValue: Role = Role.Follower;
  /** True when this node is a learner in its own applied configuration (it never campaigns). */
  isLearner = false;
  private leadValue: RaftId = NO_NODE;
  /** The target of a leadership transfer in progress (thesis §3.10), or NO_NODE. */
  private leadTransfereeValue: RaftId = NO_NODE;
  /**
   * Only one configuration change may be pending: the index of the last one proposed by this
   * leader (or this leader's last index when it took office). Proposals wait until applied >= it.
   */
  pendingConfIndex: LogIndex = 0 as LogIndex;
  /** Payload bytes this leader appended and that have not been handed out as committed yet. */
  uncommittedSize = 0;
  readOnly = new ReadOnly();
  /** Ticks since the last election timeout reset (followers: since the leader was heard). */
  electionElapsed = 0;
  heartbeatElapsed = 0;
  /** Drawn in [electionTicks, 2*electionTicks) on every reset (§5.2, randomized timeouts). */
  randomizedElectionTimeout = 0;
  /** Outgoing messages, handed out by the next Ready. Bounded by the caller calling ready() each loop. */
  msgs: Message[] = [];
  readStates: ReadState[] = [];
  /** Reads that arrived before this leader committed an entry of its term (thesis §6.4 step 1). */
  pendingReadIndexMessages: Message[] = [];
  /** Ids that left the configuration (from applied changes, plus config.removedIds): never reused. */
  readonly removedIds: Set<RaftId>;

  get term(): Term {
    return this.termValue;
  }
  get vote(): RaftId {
    return this.voteValue;
  }
  get state(): Role {
    return this.stateValue;
  }
  get lead(): RaftId {
    return this.leadValue;
  }
  get leadTransferee(): RaftId {
    return this.leadTransfereeValue;
  }
  /** Appends made by propose() wait for the next ready() to be broadcast in one message per peer. */
  private pendingBroadcast = false;
  /**
   * Leader only: its log holds a configuration change, not yet applied, that leaves this node out
   * of every voter set. It then appends nothing more (proposals fail with ProposalDropped), so
   * that when it steps down its log is no longer than the new configuration's quorum's: otherwise
   * members still counting the old configuration would need the vote of a removed node that can
   * never campaign and refuses them as less up-to-date — a cluster with no possible leader (found
   * by the simulator, seed 186; the apply-time variant of etcd-io/etcd#12359).
   */
  private removingSelf = false;

  // For the invariant checks.
  private checkedTerm: Term = 0 as Term;
  private checkedVote: RaftId = NO_NODE;
  private checkedCommit: LogIndex = 0 as LogIndex;

  constructor(config: RaftConfig) {
    validateConfig(config);
    this.id = config.id;
    this.config = config;
    this.raftLog = new RaftLog(config.storage, config.maxCommittedBytesPerReady);
    this.tracker = new ProgressTracker(config.maxInflightMessages, config.maxInflightBytes);
    this.removedIds = new Set(config.removedIds);

    const { hardState, confState } = config.storage.initialState();
    this.restoreConfState(confState);
    if (!isEmptyHardState(hardState)) this.loadState(hardState);
    // Our term is never below a term in our log (we accepted every entry at a term >= its own).
    // Only a bootstrap snapshot (term 1, bootstrapSnapshot) with no hard state yet breaks that:
    // the first election then happens at term 2, above the bootstrap entry's term.
    const lastTerm = this.raftLog.lastTerm();
    if (this.term < lastTerm) {
      this.termValue = lastTerm;
      this.voteValue = NO_NODE;
    }
    this.loadApplied(config.appliedIndex);
    this.replayAppliedConfChanges();
    this.becomeFollower(this.term, NO_NODE);
    this.checkedTerm = this.term;
    this.checkedVote = this.vote;
    this.checkedCommit = this.raftLog.committed;
    this.checkInvariants();
  }

  /**
   * initialState().confState is the configuration at the snapshot's index. Changes between the
   * snapshot and the application's applied index were applied before a restart, and will not be
   * handed out again: re-apply them here so the configuration matches what was applied.
   */
  private replayAppliedConfChanges(): void {
    const log = this.raftLog;
    let lo = Math.max(log.snapshot().metadata.index + 1, log.firstIndex());
    const hi = log.applied + 1;
    while (lo < hi) {
      const ents = log.slice(lo as LogIndex, hi as LogIndex, this.config.maxCommittedBytesPerReady);
      for (const e of ents) {
        if (e.type === EntryType.ConfChange) this.applyConfChange(decodeConfChange(e.data));
      }
      lo += ents.length;
    }
  }

  private loadState(hs: HardState): void {
    if (hs.commit > this.raftLog.lastIndex()) {
      throw new RaftInvariantError(
        `${this.id} state.commit ${hs.commit} is out of range [${this.raftLog.committed}, ${this.raftLog.lastIndex()}]. Was the raft log corrupted, truncated, or lost?`,
      );
    }
    // A commit below the snapshot index (an older hard state beside a newer snapshot) is not an
    // error: everything up to the snapshot is committed by definition.
    if (hs.commit > this.raftLog.committed) this.raftLog.committed = hs.commit;
    this.termValue = hs.term;
    this.voteValue = hs.vote;
  }

  /**
   * The application's applied index on restart. A commit-only hard state is written without
   * fsync (Ready.mustSync is false), so after a crash the application may have applied more than
   * the persisted commit says: that is not an error ("applied is out of range" made GoQuorum
   * nodes unable to restart) — what was applied was committed, so commit moves up to it.
   */
  private loadApplied(applied: LogIndex): void {
    const log = this.raftLog;
    if (applied === 0) return;
    if (applied > log.lastIndex()) {
      throw new RaftInvariantError(
        `${this.id} applied index ${applied} is beyond the log's last index ${log.lastIndex()}. Was the raft log corrupted, truncated, or lost?`,
      );
    }
    if (applied < log.applied) {
      throw new RaftInvariantError(
        `${this.id} applied index ${applied} is below the log's snapshot index ${log.applied}: restore the application from storage.snapshot() before starting the node`,
      );
    }
    if (applied > log.committed) log.committed = applied;
    log.appliedTo(applied);
  }

  /** Rebuilds membership and progress from a ConfState (on start and when installing a snapshot). */
  private restoreConfState(cs: ConfState): void {
    const config = trackerConfigFromConfState(cs);
    const progress = new Map<RaftId, Progress>();
    const next = (this.raftLog.lastIndex() + 1) as LogIndex;
    for (const id of [...config.incoming, ...config.outgoing, ...config.learnersNext]) {
      if (!progress.has(id)) progress.set(id, this.tracker.newProgress(next, 0 as LogIndex, false));
    }
    for (const id of config.learners) progress.set(id, this.tracker.newProgress(next, 0 as LogIndex, true));
    this.tracker.config = config;
    this.tracker.progress = progress;
    const self = progress.get(this.id);
    if (self) self.maybeUpdate((next - 1) as LogIndex);
    this.isLearner = self !== undefined && self.isLearner;
  }

  // ------------------------------------------------------------------ views

  hardState(): HardState {
    return { term: this.term, vote: this.vote, commit: this.raftLog.committed };
  }

  softState(): SoftState {
    return { leader: this.lead, role: this.state };
  }

  /** True when this node may campaign: a voter of its configuration, with no snapshot being installed. */
  promotable(): boolean {
    const pr = this.tracker.progress.get(this.id);
    return pr !== undefined && !pr.isLearner && !this.raftLog.hasPendingSnapshot();
  }

  // ------------------------------------------------------------------ hooks (overridable by tests)

  /**
   * Figure 2 / §5.4.2: advance commit to the highest index a quorum holds — only if that entry is
   * of the current term; earlier terms' entries then commit indirectly (Figure 8).
   */
  protected maybeCommit(): boolean {
    const mci = this.tracker.committed();
    if (!Number.isFinite(mci)) return false;
    return this.raftLog.maybeCommit(mci, this.term);
  }

  /** §5.4.1: grant a vote only to a candidate whose log is at least as up-to-date as ours. */
  protected isLogUpToDate(lastTerm: Term, lastIndex: LogIndex): boolean {
    return this.raftLog.isUpToDate(lastIndex, lastTerm);
  }

  // ------------------------------------------------------------------ outputs

  protected send(m: Message): void {
    this.msgs.push(m);
  }

  private msg(type: MessageType, to: RaftId, fields: Partial<Message> = {}): Message {
    return {
      type,
      from: this.id,
      to,
      term: this.term,
      logTerm: 0 as Term,
      index: 0 as LogIndex,
      entries: NO_ENTRIES,
      commit: 0 as LogIndex,
      reject: false,
      rejectHint: 0 as LogIndex,
      ...fields,
    };
  }

  /** Sends an append to `to` if flow control allows; returns whether a message went out. */
  maybeSendAppend(to: RaftId, sendIfEmpty: boolean): boolean {
    const pr = this.tracker.progress.get(to);
    if (!pr || pr.isPaused()) return false;
    const prevIndex = (pr.next - 1) as LogIndex;
    const prevTerm = this.raftLog.term(prevIndex);
    if (prevTerm === undefined) return this.maybeSendSnapshot(to, pr);
    let ents: readonly Entry[] = NO_ENTRIES;
    if (pr.state !== ProgressState.Replicate || !pr.inflights.full()) {
      try {
        ents = this.raftLog.entriesFrom(pr.next, this.config.maxMessageBytes);
      } catch (e) {
        if (e instanceof RaftError && e.code === RaftErrorCode.Compacted) return this.maybeSendSnapshot(to, pr);
        throw e;
      }
    }
    if (ents.length === 0 && !sendIfEmpty) return false;
    const commit = this.raftLog.committed;
    this.send({
      type: MessageType.App,
      from: this.id,
      to,
      term: this.term,
      logTerm: prevTerm,
      index: prevIndex,
      entries: ents,
      commit,
      reject: false,
      rejectHint: 0 as LogIndex,
    });
    pr.sentEntries(ents.length, ents.length === 0 ? 0 : entriesBytes(ents));
    return true;
  }

  /** Figure 13: the follower needs entries that were compacted, so it gets the snapshot. */
  private maybeSendSnapshot(to: RaftId, pr: Progress): boolean {
    // Only to a peer that answers: a snapshot is big, and a dead peer would only waste it.
    if (!pr.recentActive) return false;
    const snapshot = this.raftLog.snapshot();
    assert(snapshot.metadata.index > 0, () => `need a non-empty snapshot to send to ${to} (next ${pr.next})`);
    pr.becomeSnapshot(snapshot.metadata.index);
    this.send(this.msg(MessageType.Snap, to, { snapshot }));
    return true;
  }

  private sendHeartbeat(to: RaftId, context: Uint8Array | undefined): void {
    const pr = this.tracker.progress.get(to);
    // The follower may not hold our committed entries yet: never tell it more than its match,
    // or it would commit entries it does not have (and the range check would fire).
    const commit = Math.min(pr ? pr.match : 0, this.raftLog.committed) as LogIndex;
    this.send(this.msg(MessageType.Heartbeat, to, { commit, context }));
  }

  bcastAppend(): void {
    for (const id of this.tracker.progress.keys()) {
      if (id !== this.id) this.maybeSendAppend(id, true);
    }
  }

  private bcastHeartbeat(context?: Uint8Array): void {
    const ctx = context ?? this.readOnly.lastPendingRequestCtx();
    for (const id of this.tracker.progress.keys()) {
      if (id !== this.id) this.sendHeartbeat(id, ctx);
    }
  }

  /** Broadcasts appends deferred by propose(): one message per peer for a whole batch. */
  flushPendingBroadcast(): void {
    if (!this.pendingBroadcast) return;
    this.pendingBroadcast = false;
    if (this.state !== Role.Leader) return;
    for (const id of this.tracker.progress.keys()) {
      if (id !== this.id) this.maybeSendAppend(id, false);
    }
  }

  // ------------------------------------------------------------------ role changes

  private reset(term: Term): void {
    if (this.term !== term) {
      this.termValue = term;
      this.voteValue = NO_NODE;
    }
    this.leadValue = NO_NODE;
    this.electionElapsed = 0;
    this.heartbeatElapsed = 0;
    this.resetRandomizedElectionTimeout();
    this.abortLeaderTransfer();
    this.tracker.resetVotes();
    const last = this.raftLog.lastIndex();
    for (const [id, old] of this.tracker.progress) {
      const pr = this.tracker.newProgress((last + 1) as LogIndex, 0 as LogIndex, old.isLearner);
      if (id === this.id) pr.match = last;
      this.tracker.progress.set(id, pr);
    }
    this.pendingConfIndex = 0 as LogIndex;
    this.uncommittedSize = 0;
    this.readOnly = new ReadOnly();
    this.pendingReadIndexMessages = [];
    this.pendingBroadcast = false;
    this.removingSelf = false;
  }

  private resetRandomizedElectionTimeout(): void {
    this.randomizedElectionTimeout = this.config.electionTicks + this.config.rng.nextInt(this.config.electionTicks);
  }

  becomeFollower(term: Term, lead: RaftId): void {
    this.reset(term);
    this.leadValue = lead;
    this.stateValue = Role.Follower;
  }

  becomeCandidate(): void {
    assert(this.state !== Role.Leader, () => `${this.id} invalid transition [leader -> candidate]`);
    this.reset((this.term + 1) as Term);
    this.voteValue = this.id;
    this.stateValue = Role.Candidate;
  }

  becomePreCandidate(): void {
    assert(this.state !== Role.Leader, () => `${this.id} invalid transition [leader -> pre-candidate]`);
    // Thesis §9.6: a pre-candidate changes neither its term nor its vote.
    this.tracker.resetVotes();
    this.leadValue = NO_NODE;
    this.stateValue = Role.PreCandidate;
  }

  becomeLeader(): void {
    assert(this.state !== Role.Follower, () => `${this.id} invalid transition [follower -> leader]`);
    this.reset(this.term);
    this.leadValue = this.id;
    this.stateValue = Role.Leader;
    const self = this.tracker.progress.get(this.id);
    assert(self !== undefined, () => `${this.id} became leader without being a member`);
    self.becomeReplicate();
    self.recentActive = true;
    // Whether or not a change is pending in our log, wait until everything we hold is applied
    // before accepting a new one (the change might be uncommitted: one at a time).
    this.pendingConfIndex = this.raftLog.lastIndex();
    // §5.4.2 / §8: the no-op of the new term lets earlier entries commit, and marks when
    // read-only requests may be served.
    const ok = this.appendEntries([{ type: EntryType.Normal, data: EMPTY_BYTES }], true);
    assert(ok, 'empty entry was dropped');
    this.removingSelf = this.unappliedChangesRemoveSelf();
  }

  /** Whether the configuration changes in the unapplied part of our log leave us out of every voter set. */
  private unappliedChangesRemoveSelf(): boolean {
    const log = this.raftLog;
    let config = this.tracker.config;
    let progress: ReadonlyMap<RaftId, Progress> = this.tracker.progress;
    let changed = false;
    let lo = log.applied + 1;
    const hi = log.lastIndex() + 1;
    while (lo < hi) {
      const ents = log.slice(lo as LogIndex, hi as LogIndex, this.config.maxCommittedBytesPerReady);
      for (const e of ents) {
        if (e.type !== EntryType.ConfChange) continue;
        try {
          const r = new Changer(config, progress, log.lastIndex(), (next, match, learner) =>
            this.tracker.newProgress(next, match, learner),
          ).apply(decodeConfChange(e.data));
          config = r.config;
          progress = r.progress;
          changed = true;
        } catch (err) {
          // Not applicable on top of the current configuration: it will not be applied either.
          if (!(err instanceof RaftError)) throw err;
        }
      }
      lo += ents.length;
    }
    return changed && !config.incoming.has(this.id) && !config.outgoing.has(this.id);
  }

  // ------------------------------------------------------------------ elections

  private hup(kind: CampaignKind): void {
    if (this.state === Role.Leader) return;
    if (!this.promotable()) return;
    // A committed but unapplied change could make us a non-member: apply first.
    if (this.hasUnappliedConfChanges()) return;
    this.campaign(kind);
  }

  private hasUnappliedConfChanges(): boolean {
    const log = this.raftLog;
    let lo = log.applied + 1;
    const hi = log.committed + 1;
    while (lo < hi) {
      let ents: Entry[];
      try {
        ents = log.slice(lo as LogIndex, hi as LogIndex, this.config.maxCommittedBytesPerReady);
      } catch (e) {
        if (e instanceof RaftError && e.code === RaftErrorCode.Compacted) return false;
        throw e;
      }
      for (const e of ents) if (e.type === EntryType.ConfChange) return true;
      lo += ents.length;
    }
    return false;
  }

  private campaign(kind: CampaignKind): void {
    let voteType: MessageType;
    let voteTerm: Term;
    if (kind === CampaignKind.PreElection) {
      this.becomePreCandidate();
      voteType = MessageType.PreVote;
      // Ask at the term we would have, without moving to it.
      voteTerm = (this.term + 1) as Term;
    } else {
      this.becomeCandidate();
      voteType = MessageType.Vote;
      voteTerm = this.term;
    }
    this.tracker.recordVote(this.id, true);
    const res = this.tracker.tallyVotes().result;
    if (res === VoteResult.Won) {
      // A single-voter configuration wins at once.
      if (kind === CampaignKind.PreElection) this.campaign(CampaignKind.Election);
      else this.becomeLeader();
      return;
    }
    const lastIndex = this.raftLog.lastIndex();
    const lastTerm = this.raftLog.lastTerm();
    const context = kind === CampaignKind.Transfer ? CAMPAIGN_TRANSFER_CONTEXT : undefined;
    for (const id of this.tracker.voterIds()) {
      if (id === this.id) continue;
      this.send(this.msg(voteType, id, { term: voteTerm, index: lastIndex, logTerm: lastTerm, context }));
    }
  }

  // ------------------------------------------------------------------ ticks

  tick(): void {
    if (this.state === Role.Leader) this.tickHeartbeat();
    else this.tickElection();
    this.checkInvariants();
  }

  private tickElection(): void {
    this.electionElapsed++;
    if (this.promotable() && this.electionElapsed >= this.randomizedElectionTimeout) {
      this.electionElapsed = 0;
      this.hup(this.config.preVote ? CampaignKind.PreElection : CampaignKind.Election);
    }
  }

  private tickHeartbeat(): void {
    this.heartbeatElapsed++;
    this.electionElapsed++;
    if (this.electionElapsed >= this.config.electionTicks) {
      this.electionElapsed = 0;
      if (this.config.checkQuorum) {
        // Thesis §6.2: a leader that did not hear from a quorum within an election timeout steps
        // down, so a partitioned leader stops serving (and stops blocking lease-based voters).
        if (!this.tracker.quorumActive()) {
          this.becomeFollower(this.term, NO_NODE);
          return;
        }
        for (const [id, pr] of this.tracker.progress) if (id !== this.id) pr.recentActive = false;
      }
      // Thesis §3.10: a transfer that did not finish within an election timeout is abandoned.
      if (this.leadTransferee !== NO_NODE) this.abortLeaderTransfer();
    }
    if (this.heartbeatElapsed >= this.config.heartbeatTicks) {
      this.heartbeatElapsed = 0;
      this.bcastHeartbeat();
    }
  }

  // ------------------------------------------------------------------ local requests

  /** Starts an election now (PreVote first when enabled). */
  campaignNow(): void {
    this.hup(this.config.preVote ? CampaignKind.PreElection : CampaignKind.Election);
    this.checkInvariants();
  }

  propose(data: Uint8Array): void {
    if (data.length > this.config.maxProposalBytes) {
      throw new RaftError(
        RaftErrorCode.ProposalTooLarge,
        `proposal of ${data.length} bytes exceeds maxProposalBytes ${this.config.maxProposalBytes}`,
        {
          bytes: data.length,
          maxProposalBytes: this.config.maxProposalBytes,
        },
      );
    }
    switch (this.state) {
      case Role.Leader:
        this.leaderAcceptsProposals();
        if (!this.appendEntries([{ type: EntryType.Normal, data }], false)) {
          throw new RaftError(
            RaftErrorCode.UncommittedQuotaExceeded,
            `uncommitted entries exceed ${this.config.maxUncommittedEntriesBytes} bytes; retry once entries commit`,
            {
              uncommittedBytes: this.uncommittedSize,
              maxUncommittedEntriesBytes: this.config.maxUncommittedEntriesBytes,
            },
          );
        }
        this.pendingBroadcast = true;
        break;
      case Role.Follower:
        if (this.lead === NO_NODE)
          throw new RaftError(RaftErrorCode.ProposalDropped, `no leader at term ${this.term}; proposal dropped`, {
            term: this.term,
          });
        if (this.config.disableProposalForwarding) {
          throw new RaftError(RaftErrorCode.ProposalDropped, 'not the leader and proposal forwarding is disabled', {
            leader: this.lead,
          });
        }
        this.send(
          this.msg(MessageType.Prop, this.lead, {
            term: 0 as Term,
            entries: [{ term: 0 as Term, index: 0 as LogIndex, type: EntryType.Normal, data }],
          }),
        );
        break;
      default:
        throw new RaftError(
          RaftErrorCode.ProposalDropped,
          `${this.state} at term ${this.term}: no leader; proposal dropped`,
          { term: this.term },
        );
    }
    this.checkInvariants();
  }

  private leaderAcceptsProposals(): void {
    if (!this.tracker.progress.has(this.id) || this.isLearner) {
      throw new RaftError(
        RaftErrorCode.ProposalDropped,
        `${this.id} is not a member of its configuration; proposal dropped`,
      );
    }
    if (this.removingSelf) {
      throw new RaftError(
        RaftErrorCode.ProposalDropped,
        `${this.id} is being removed from the configuration and hands over leadership; propose to the next leader`,
      );
    }
    if (this.leadTransferee !== NO_NODE) {
      throw new RaftError(
        RaftErrorCode.TransferInProgress,
        `leadership is being transferred to ${this.leadTransferee}; proposal refused`,
        {
          transferee: this.leadTransferee,
        },
      );
    }
  }

  proposeConfChange(cc: ConfChange): void {
    if (this.state !== Role.Leader) {
      throw new RaftError(
        RaftErrorCode.NotLeader,
        `not the leader (leader: ${this.lead || 'unknown'}); propose the change there`,
        { leader: this.lead },
      );
    }
    this.leaderAcceptsProposals();
    // Ongaro (2015, raft-dev "bug in single-server membership changes"): a new leader must commit
    // an entry of its own term before changing the configuration.
    if (!this.committedEntryInCurrentTerm()) {
      throw new RaftError(
        RaftErrorCode.LeaderNotReady,
        'the leader has not committed an entry of its term yet; retry shortly',
        { term: this.term },
      );
    }
    if (this.pendingConfIndex > this.raftLog.applied) {
      throw new RaftError(
        RaftErrorCode.ConfChangePending,
        `a configuration change is pending until index ${this.pendingConfIndex} is applied`,
        {
          pendingConfIndex: this.pendingConfIndex,
          applied: this.raftLog.applied,
        },
      );
    }
    const joint = isJoint(this.tracker.config);
    if (cc.changes.length === 0) {
      if (!isLeaveJoint(cc))
        throw new RaftError(
          RaftErrorCode.InvalidConfChange,
          'an empty change (leave joint) must use the Auto transition',
        );
      if (!joint)
        throw new RaftError(RaftErrorCode.InvalidConfChange, 'not in a joint configuration: nothing to leave');
    } else if (joint) {
      throw new RaftError(
        RaftErrorCode.InvalidConfChange,
        'already in a joint configuration: leave it before entering another (thesis §4.3)',
      );
    }
    for (const ch of cc.changes) {
      if (ch.type !== ConfChangeType.RemoveNode && this.removedIds.has(ch.nodeId)) {
        throw new RaftError(
          RaftErrorCode.IdReused,
          `id ${ch.nodeId} was removed from the cluster; ids are never reused`,
          { nodeId: ch.nodeId },
        );
      }
    }
    // Dry run: the same code that applies it later refuses what is invalid now.
    this.newChanger().apply(cc);
    const data = encodeConfChange(cc);
    if (data.length > this.config.maxProposalBytes) {
      throw new RaftError(
        RaftErrorCode.ProposalTooLarge,
        `configuration change of ${data.length} bytes exceeds maxProposalBytes`,
        { bytes: data.length },
      );
    }
    if (!this.appendEntries([{ type: EntryType.ConfChange, data }], false)) {
      throw new RaftError(
        RaftErrorCode.UncommittedQuotaExceeded,
        'uncommitted entries over quota; retry once entries commit',
        {
          uncommittedBytes: this.uncommittedSize,
        },
      );
    }
    this.pendingConfIndex = this.raftLog.lastIndex();
    this.pendingBroadcast = true;
    this.removingSelf = this.unappliedChangesRemoveSelf();
    this.checkInvariants();
  }

  readIndex(context: Uint8Array): void {
    assert(context.length > 0, 'readIndex: the context must be non-empty (it identifies the read)');
    if (this.state === Role.Leader) {
      const req = this.msg(MessageType.ReadIndex, this.id, { term: 0 as Term, context });
      if (!this.leaderReadIndex(req)) {
        throw new RaftError(
          RaftErrorCode.ReadIndexDropped,
          `too many pending reads (max ${this.config.maxPendingReadIndexRequests}); retry`,
          {
            maxPendingReadIndexRequests: this.config.maxPendingReadIndexRequests,
          },
        );
      }
    } else if (this.state === Role.Follower && this.lead !== NO_NODE) {
      this.send(this.msg(MessageType.ReadIndex, this.lead, { term: 0 as Term, context }));
    } else {
      throw new RaftError(RaftErrorCode.ReadIndexDropped, `no leader at term ${this.term}; read dropped`, {
        term: this.term,
      });
    }
    this.checkInvariants();
  }

  transferLeadership(target: RaftId): void {
    if (this.state === Role.Leader) {
      if (target === this.id) return;
      const pr = this.tracker.progress.get(target);
      if (!pr || pr.isLearner || !this.tracker.isVoter(target)) {
        throw new RaftError(
          RaftErrorCode.InvalidTransferTarget,
          `${target} is not a voter of the current configuration`,
          { target },
        );
      }
      this.handleTransferLeader(target);
    } else if (this.state === Role.Follower && this.lead !== NO_NODE) {
      this.send(this.msg(MessageType.TransferLeader, this.lead, { term: 0 as Term, context: encodeRaftId(target) }));
    } else {
      throw new RaftError(RaftErrorCode.NotLeader, `no leader at term ${this.term}; cannot transfer leadership`, {
        term: this.term,
      });
    }
    this.checkInvariants();
  }

  reportUnreachable(id: RaftId): void {
    if (this.state !== Role.Leader) return;
    const pr = this.tracker.progress.get(id);
    // The transport lost a message: stop pipelining, probe again.
    if (pr && pr.state === ProgressState.Replicate) pr.becomeProbe();
  }

  reportSnapshot(id: RaftId, ok: boolean): void {
    if (this.state !== Role.Leader) return;
    const pr = this.tracker.progress.get(id);
    if (!pr || pr.state !== ProgressState.Snapshot) return;
    if (!ok) pr.pendingSnapshot = 0 as LogIndex;
    pr.becomeProbe();
    // Success: wait for the follower's AppResp before sending more. Failure: wait a heartbeat.
    pr.msgAppFlowPaused = true;
  }

  // ------------------------------------------------------------------ peer messages

  step(m: Message): void {
    if (!isWellFormed(m, this.id)) return;
    if (m.term === 0) {
      // Forwarded requests (Prop, ReadIndex, TransferLeader) carry no term.
      if (m.type !== MessageType.Prop && m.type !== MessageType.ReadIndex && m.type !== MessageType.TransferLeader)
        return;
      if (this.state === Role.Leader) this.stepLeader(m);
      // A non-leader drops forwarded requests rather than forwarding again (no loops); the
      // requester times out and retries with the leader it learns of.
      this.checkInvariants();
      return;
    }
    if (m.term > this.term) {
      if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
        const force = m.type === MessageType.Vote && sameBytes(m.context, CAMPAIGN_TRANSFER_CONTEXT);
        // Leases (thesis §4.2.3 / §6.2): a node that heard from a leader within the minimum
        // election timeout ignores (pre)votes, so a partitioned node cannot disrupt the cluster.
        const inLease =
          this.config.checkQuorum && this.lead !== NO_NODE && this.electionElapsed < this.config.electionTicks;
        if (!force && inLease) {
          this.checkInvariants();
          return;
        }
      }
      if (m.type === MessageType.PreVote) {
        // Never change our term in response to a PreVote.
      } else if (m.type === MessageType.PreVoteResp && !m.reject) {
        // Granted pre-votes come at our term + 1; the term moves only once a quorum granted.
      } else if (m.type === MessageType.App || m.type === MessageType.Heartbeat || m.type === MessageType.Snap) {
        this.becomeFollower(m.term, m.from);
      } else {
        this.becomeFollower(m.term, NO_NODE);
      }
    } else if (m.term < this.term) {
      if (
        (this.config.checkQuorum || this.config.preVote) &&
        (m.type === MessageType.App || m.type === MessageType.Heartbeat)
      ) {
        // A stale leader (e.g. just healed from a partition) would otherwise never learn of the
        // new term: with CheckQuorum/PreVote nobody raises it by voting. Our answer at the higher
        // term makes it step down, and then the cluster converges (etcd's handling).
        this.send(this.msg(MessageType.AppResp, m.from));
      } else if (m.type === MessageType.PreVote) {
        // Answer with our term so a pre-candidate stuck behind learns it and can catch up.
        this.send(this.msg(MessageType.PreVoteResp, m.from, { reject: true }));
      }
      this.checkInvariants();
      return;
    }

    if (m.type === MessageType.Vote || m.type === MessageType.PreVote) {
      this.handleVoteRequest(m);
    } else {
      switch (this.state) {
        case Role.Leader:
          this.stepLeader(m);
          break;
        case Role.Candidate:
        case Role.PreCandidate:
          this.stepCandidate(m);
          break;
        case Role.Follower:
          this.stepFollower(m);
          break;
      }
    }
    this.checkInvariants();
  }

  private handleVoteRequest(m: Message): void {
    const respType = m.type === MessageType.Vote ? MessageType.VoteResp : MessageType.PreVoteResp;
    // We can vote if we already voted for this candidate (a duplicate request), or have not voted
    // and know no leader in this term, or it is a pre-vote for a future term.
    const canVote =
      this.vote === m.from ||
      (this.vote === NO_NODE && this.lead === NO_NODE) ||
      (m.type === MessageType.PreVote && m.term > this.term);
    if (canVote && this.isLogUpToDate(m.logTerm, m.index)) {
      // Answer at the request's term: a pre-candidate counts only answers at the term it asked for.
      this.send(this.msg(respType, m.from, { term: m.term }));
      if (m.type === MessageType.Vote) {
        this.electionElapsed = 0;
        this.voteValue = m.from;
      }
    } else {
      this.send(this.msg(respType, m.from, { reject: true }));
    }
  }

  private stepLeader(m: Message): void {
    switch (m.type) {
      case MessageType.Prop:
        this.leaderHandleForwardedProposal(m);
        return;
      case MessageType.ReadIndex:
        if (m.context && m.context.length > 0) this.leaderReadIndex(m);
        return;
      case MessageType.TransferLeader: {
        const target = decodeRaftId(m.context);
        if (target !== undefined) this.handleTransferLeader(target);
        return;
      }
      default:
        break;
    }
    const pr = this.tracker.progress.get(m.from);
    if (!pr) return;
    switch (m.type) {
      case MessageType.AppResp:
        this.handleAppendResponse(m, pr);
        break;
      case MessageType.HeartbeatResp:
        this.handleHeartbeatResponse(m, pr);
        break;
      default:
        break;
    }
  }

  private leaderHandleForwardedProposal(m: Message): void {
    if (m.entries.length === 0) return;
    if (!this.tracker.progress.has(this.id) || this.isLearner || this.leadTransferee !== NO_NODE || this.removingSelf)
      return;
    for (const e of m.entries) if (e.data.length > this.config.maxProposalBytes) return;
    if (
      this.appendEntries(
        m.entries.map((e) => ({ type: EntryType.Normal, data: e.data })),
        false,
      )
    ) {
      this.bcastAppend();
    }
  }

  private handleAppendResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    if (m.reject) {
      // §5.3 with the fast back-off: the follower told us the highest index whose term is at most
      // the term of our probe; if it gave a term, skip past every entry of ours above that term.
      let nextProbe = m.rejectHint;
      if (m.logTerm > 0) nextProbe = this.raftLog.findConflictByTerm(m.rejectHint, m.logTerm).index;
      if (pr.maybeDecrTo(m.index, nextProbe)) {
        if (pr.state === ProgressState.Replicate) pr.becomeProbe();
        this.maybeSendAppend(m.from, true);
      }
      return;
    }
    const oldPaused = pr.isPaused();
    if (pr.maybeUpdate(m.index) || (pr.match === m.index && pr.state === ProgressState.Probe)) {
      switch (pr.state) {
        case ProgressState.Probe:
          pr.becomeReplicate();
          break;
        case ProgressState.Snapshot:
          // The follower caught up past what the log still holds: resume normal replication.
          if (pr.match + 1 >= this.raftLog.firstIndex()) {
            pr.becomeProbe();
            pr.becomeReplicate();
          }
          break;
        case ProgressState.Replicate:
          pr.inflights.freeLE(m.index);
          break;
      }
      if (this.maybeCommit()) {
        this.releasePendingReadIndexMessages();
        this.bcastAppend();
      } else if (oldPaused) {
        // We had stopped sending to this peer; it answered, so send what it lacks.
        this.maybeSendAppend(m.from, true);
      }
      // Pipelining: keep sending while the window has room (bounded by maxInflightMessages).
      while (this.maybeSendAppend(m.from, false)) {
        /* keep filling the window */
      }
      // Thesis §3.10: once the transfer target caught up, it may campaign at once.
      if (m.from === this.leadTransferee && pr.match === this.raftLog.lastIndex()) {
        this.send(this.msg(MessageType.TimeoutNow, m.from));
      }
    }
  }

  private handleHeartbeatResponse(m: Message, pr: Progress): void {
    pr.recentActive = true;
    pr.msgAppFlowPaused = false;
    if (pr.match < this.raftLog.lastIndex() || pr.state === ProgressState.Probe) this.maybeSendAppend(m.from, true);
    if (!m.context || m.context.length === 0) return;
    const acks = this.readOnly.recvAck(m.from, m.context);
    if (!acks) return;
    if (jointVoteResult(this.tracker.config.incoming, this.tracker.config.outgoing, acks) !== VoteResult.Won) return;
    for (const rs of this.readOnly.advance(m.context)) this.respondToReadIndex(rs.req, rs.index);
  }

  private handleTransferLeader(target: RaftId): void {
    const pr = this.tracker.progress.get(target);
    if (!pr || pr.isLearner || !this.tracker.isVoter(target)) return;
    if (this.leadTransferee !== NO_NODE) {
      if (this.leadTransferee === target) return;
      this.abortLeaderTransfer();
    }
    if (target === this.id) return;
    // The transfer must finish within an election timeout (tickHeartbeat aborts it otherwise).
    this.electionElapsed = 0;
    this.leadTransfereeValue = target;
    if (pr.match === this.raftLog.lastIndex()) this.send(this.msg(MessageType.TimeoutNow, target));
    else this.maybeSendAppend(target, true);
  }

  abortLeaderTransfer(): void {
    this.leadTransfereeValue = NO_NODE;
  }

  // ------------------------------------------------------------------ reads (thesis §6.4)

  committedEntryInCurrentTerm(): boolean {
    return this.raftLog.term(this.raftLog.committed) === this.term;
  }

  /** Returns false when the read was dropped (queue full). */
  private leaderReadIndex(req: Message): boolean {
    if (this.tracker.isSingleton()) {
      this.respondToReadIndex(req, this.raftLog.committed);
      return true;
    }
    if (this.readOnly.size + this.pendingReadIndexMessages.length >= this.config.maxPendingReadIndexRequests)
      return false;
    // Step 1 of §6.4: until this leader committed an entry of its term, its commit index may be
    // behind what an earlier leader committed; hold the read until the no-op commits.
    if (!this.committedEntryInCurrentTerm()) {
      this.pendingReadIndexMessages.push(req);
      return true;
    }
    this.startReadIndex(req);
    return true;
  }

  private startReadIndex(req: Message): void {
    const ctx = req.context!;
    this.readOnly.addRequest(this.raftLog.committed, req, ctx);
    this.readOnly.recvAck(this.id, ctx);
    this.bcastHeartbeat(ctx);
  }

  private releasePendingReadIndexMessages(): void {
    if (this.pendingReadIndexMessages.length === 0 || !this.committedEntryInCurrentTerm()) return;
    const held = this.pendingReadIndexMessages;
    this.pendingReadIndexMessages = [];
    for (const req of held) this.startReadIndex(req);
  }

  private respondToReadIndex(req: Message, index: LogIndex): void {
    if (req.from === this.id) {
      this.readStates.push({ index, context: req.context! });
    } else {
      this.send(this.msg(MessageType.ReadIndexResp, req.from, { index, context: req.context }));
    }
  }

  // ------------------------------------------------------------------ candidate / follower

  private stepCandidate(m: Message): void {
    const myRespType = this.state === Role.PreCandidate ? MessageType.PreVoteResp : MessageType.VoteResp;
    switch (m.type) {
      case MessageType.App:
        this.becomeFollower(m.term, m.from);
        this.handleAppendEntries(m);
        return;
      case MessageType.Heartbeat:
        this.becomeFollower(m.term, m.from);
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.becomeFollower(m.term, m.from);
        this.handleSnapshot(m);
        return;
      case myRespType: {
        this.tracker.recordVote(m.from, !m.reject);
        const res = this.tracker.tallyVotes().result;
        if (res === VoteResult.Won) {
          if (this.state === Role.PreCandidate) {
            this.campaign(CampaignKind.Election);
          } else {
            this.becomeLeader();
            this.bcastAppend();
          }
        } else if (res === VoteResult.Lost) {
          // A pre-candidate that lost returns to its own term as a follower.
          this.becomeFollower(this.term, NO_NODE);
        }
        return;
      }
      default:
        return;
    }
  }

  private stepFollower(m: Message): void {
    switch (m.type) {
      case MessageType.App:
        this.electionElapsed = 0;
        this.leadValue = m.from;
        this.handleAppendEntries(m);
        return;
      case MessageType.Heartbeat:
        this.electionElapsed = 0;
        this.leadValue = m.from;
        this.handleHeartbeat(m);
        return;
      case MessageType.Snap:
        this.electionElapsed = 0;
        this.leadValue = m.from;
        this.handleSnapshot(m);
        return;
      case MessageType.TimeoutNow:
        // Thesis §3.10: the leader asks us to campaign now, skipping PreVote and leases.
        this.hup(CampaignKind.Transfer);
        return;
      case MessageType.ReadIndexResp:
        if (m.context && m.context.length > 0) this.readStates.push({ index: m.index, context: m.context });
        return;
      default:
        return;
    }
  }

  private handleAppendEntries(m: Message): void {
    if (m.index < this.raftLog.committed) {
      // Everything up to our commit index is already known to match.
      this.send(this.msg(MessageType.AppResp, m.from, { index: this.raftLog.committed }));
      return;
    }
    const lastNew = this.raftLog.maybeAppend(m.index, m.logTerm, m.commit, m.entries);
    if (lastNew !== undefined) {
      this.send(this.msg(MessageType.AppResp, m.from, { index: lastNew }));
      return;
    }
    // Consistency check failed (Figure 2 step 2). Hint where to retry: the last index <= the
    // probe whose term is <= the probe's term, so the leader skips whole terms (§5.3).
    const hintIndex = Math.min(m.index, this.raftLog.lastIndex()) as LogIndex;
    const hint = this.raftLog.findConflictByTerm(hintIndex, m.logTerm);
    this.send(
      this.msg(MessageType.AppResp, m.from, {
        index: m.index,
        reject: true,
        rejectHint: hint.index,
        logTerm: hint.term,
      }),
    );
  }

  private handleHeartbeat(m: Message): void {
    // A commit beyond our log means our log lost entries we acknowledged: commitTo throws.
    this.raftLog.commitTo(m.commit);
    this.send(this.msg(MessageType.HeartbeatResp, m.from, { context: m.context }));
  }

  private handleSnapshot(m: Message): void {
    const s = m.snapshot!;
    if (this.restore(s)) {
      this.send(this.msg(MessageType.AppResp, m.from, { index: this.raftLog.lastIndex() }));
    } else {
      this.send(this.msg(MessageType.AppResp, m.from, { index: this.raftLog.committed }));
    }
  }

  /** Figure 13 receiver: returns true when the snapshot replaced the log. */
  private restore(s: Snapshot): boolean {
    const { index, term, confState } = s.metadata;
    if (index <= this.raftLog.committed) return false;
    if (this.state !== Role.Follower) {
      // Defensive (etcd): only a follower installs a snapshot.
      this.becomeFollower((this.term + 1) as Term, NO_NODE);
      return false;
    }
    // Unlike etcd we accept a snapshot whose configuration does not contain us yet: a node that
    // joins gets the leader's latest snapshot, which may predate the change that added it; the
    // entries that follow carry that change. Until it applies, we are not promotable.
    // We already hold the entry the snapshot ends at: just move commit (Figure 13 step 6).
    if (this.raftLog.matchTerm(index, term)) {
      this.raftLog.commitTo(index);
      return false;
    }
    this.raftLog.restore(s);
    const before = [...this.tracker.progress.keys()];
    this.restoreConfState(confState);
    // Membership only shrinks by removal and ids are never reused, so a member we knew that the
    // snapshot's configuration lacks was removed in the history the snapshot covers.
    for (const id of before) if (!this.tracker.progress.has(id)) this.removedIds.add(id);
    return true;
  }

  // ------------------------------------------------------------------ appending

  /**
   * Appends entries of the current term to the leader's log. Refused (false) when the uncommitted
   * quota would be exceeded, unless `force` (the no-op and the automatic leave-joint change).
   */
  private appendEntries(ents: readonly { type: EntryType; data: Uint8Array }[], force: boolean): boolean {
    const last = this.raftLog.lastIndex();
    const full: Entry[] = new Array(ents.length);
    for (let i = 0; i < ents.length; i++) {
      full[i] = { term: this.term, index: (last + 1 + i) as LogIndex, type: ents[i].type, data: ents[i].data };
    }
    const size = payloadBytes(full);
    if (
      !force &&
      this.uncommittedSize > 0 &&
      size > 0 &&
      this.uncommittedSize + size > this.config.maxUncommittedEntriesBytes
    ) {
      return false;
    }
    this.uncommittedSize += size;
    const li = this.raftLog.append(full);
    const self = this.tracker.progress.get(this.id);
    if (self) self.maybeUpdate(li);
    // Only our own acknowledgement moved, and no one else holds the new entries yet: they can
    // commit only where we alone are a quorum of each half (a single-voter cluster). Skipping
    // the quorum computation otherwise saves it on every proposal (the hot path).
    const cfg = this.tracker.config;
    if (cfg.incoming.size <= 1 && cfg.outgoing.size <= 1) this.maybeCommit();
    return true;
  }

  reduceUncommittedSize(bytes: number): void {
    this.uncommittedSize = Math.max(0, this.uncommittedSize - bytes);
  }

  // ------------------------------------------------------------------ configuration

  private newChanger(): Changer {
    return new Changer(this.tracker.config, this.tracker.progress, this.raftLog.lastIndex(), (next, match, learner) =>
      this.tracker.newProgress(next, match, learner),
    );
  }

  /** Applies a committed configuration change (called from advance()); returns the new ConfState. */
  applyConfChange(cc: ConfChange): ConfState {
    const cfg = this.tracker.config;
    if (cfg.incoming.size === 0 && cfg.outgoing.size === 0 && cfg.learners.size === 0) {
      // Applying a change on top of an empty configuration means this node replays a log whose
      // founding membership it never saw (it joined with an empty ConfState and was sent the log
      // from index 1). Going on would make e.g. "add voter 6" yield the configuration {6}: a
      // one-voter cluster of its own (split brain). Found by the simulator (test/sim/FINDINGS.md).
      throw new RaftInvariantError(
        `${this.id} cannot apply a configuration change to an empty configuration: a joining node must start from the ` +
          'genesis membership or be caught up by a snapshot (bootstrap every founder with bootstrapSnapshot)',
      );
    }
    let result;
    try {
      result = this.newChanger().apply(cc);
    } catch (e) {
      if (e instanceof RaftError) {
        // The leader validated it against the configuration it will be applied to (one change
        // pending at a time), so a refusal now means the log is corrupt.
        throw new RaftInvariantError(`${this.id} cannot apply committed configuration change: ${e.message}`);
      }
      throw e;
    }
    const before = [...this.tracker.progress.keys()];
    this.switchToConfig(result.config, result.progress);
    for (const id of before) if (!this.tracker.progress.has(id)) this.removedIds.add(id);
    this.checkInvariants();
    return this.tracker.confState();
  }

  private switchToConfig(config: TrackerConfig, progress: Map<RaftId, Progress>): void {
    this.tracker.config = config;
    this.tracker.progress = progress;
    const self = progress.get(this.id);
    this.isLearner = self !== undefined && self.isLearner;
    if ((!self || this.isLearner) && this.state === Role.Leader) {
      // A leader removed (or demoted) by an applied change steps down; it no longer counts for
      // any quorum and, not being a voter, can never campaign again (thesis §4.2.2). Leadership
      // moves at once to the most up-to-date voter when one holds our whole log (thesis §3.10);
      // otherwise the members elect one after an election timeout.
      const last = this.raftLog.lastIndex();
      let target: RaftId = NO_NODE;
      for (const id of this.tracker.voterIds()) {
        if (id !== this.id && progress.get(id)!.match === last) {
          target = id;
          break;
        }
      }
      if (target !== NO_NODE) this.send(this.msg(MessageType.TimeoutNow, target));
      this.becomeFollower(this.term, NO_NODE);
      return;
    }
    if (this.state !== Role.Leader || config.incoming.size === 0) return;
    if (this.maybeCommit()) {
      // A smaller quorum may commit more now (e.g. a dead node was removed).
      this.releasePendingReadIndexMessages();
      this.bcastAppend();
    } else {
      // Probe new members at once rather than waiting for the next heartbeat.
      for (const id of this.tracker.progress.keys()) if (id !== this.id) this.maybeSendAppend(id, false);
    }
    if (this.leadTransferee !== NO_NODE && !this.tracker.isVoter(this.leadTransferee)) this.abortLeaderTransfer();
  }

  /** Called by advance() once the application applied up to `index`. */
  appliedTo(index: LogIndex, committedBytes: number): void {
    this.raftLog.appliedTo(index);
    this.reduceUncommittedSize(committedBytes);
    const cfg = this.tracker.config;
    if (cfg.autoLeave && isJoint(cfg) && index >= this.pendingConfIndex && this.state === Role.Leader) {
      // Auto / JointImplicit: the leader leaves the joint state itself once entering it applied.
      const data = encodeConfChange({ transition: ConfChangeTransition.Auto, changes: [], context: EMPTY_BYTES });
      this.appendEntries([{ type: EntryType.ConfChange, data }], true);
      this.pendingConfIndex = this.raftLog.lastIndex();
      this.pendingBroadcast = true;
      this.removingSelf = this.unappliedChangesRemoveSelf();
    }
    this.checkInvariants();
  }

  appliedSnapshot(index: LogIndex): void {
    this.raftLog.appliedSnapshotTo(index);
    this.checkInvariants();
  }

  // ------------------------------------------------------------------ invariants

  /** Re-checked after every input (TigerBeetle style): assertions stay on in production. */
  checkInvariants(): void {
    const log = this.raftLog;
    const applied = log.applied;
    const committed = log.committed;
    const last = log.lastIndex();
    if (!(applied <= committed && committed <= last)) {
      throw new RaftInvariantError(
        `${this.id}: applied(${applied}) <= committed(${committed}) <= lastIndex(${last}) violated`,
      );
    }
    if (committed < this.checkedCommit)
      throw new RaftInvariantError(`${this.id}: commit went back from ${this.checkedCommit} to ${committed}`);
    if (this.term < this.checkedTerm)
      throw new RaftInvariantError(`${this.id}: term went back from ${this.checkedTerm} to ${this.term}`);
    if (this.term === this.checkedTerm && this.checkedVote !== NO_NODE && this.vote !== this.checkedVote) {
      throw new RaftInvariantError(
        `${this.id}: voted for ${this.vote} after voting for ${this.checkedVote} in term ${this.term} (one vote per term, §5.2)`,
      );
    }
    if (this.state === Role.Leader) {
      assert(this.lead === this.id, () => `${this.id}: leader with lead ${this.lead}`);
      assert(this.vote === this.id, () => `${this.id}: leader of term ${this.term} did not vote for itself`);
    }
    this.checkedCommit = committed;
    this.checkedTerm = this.term;
    this.checkedVote = this.vote;
  }
}

function isEmptyHardState(hs: HardState): boolean {
  return hs.term === 0 && hs.vote === NO_NODE && hs.commit === 0;
}

function validateConfig(c: RaftConfig): void {
  assert(Number.isSafeInteger(c.id) && c.id >= 1, () => `config: id ${c.id} must be a positive integer`);
  assert(
    Number.isInteger(c.electionTicks) && c.electionTicks >= 1,
    () => `config: electionTicks ${c.electionTicks} must be >= 1`,
  );
  assert(
    Number.isInteger(c.heartbeatTicks) && c.heartbeatTicks >= 1 && c.heartbeatTicks < c.electionTicks,
    () => `config: heartbeatTicks ${c.heartbeatTicks} must be in [1, electionTicks)`,
  );
  assert(c.maxMessageBytes >= 1, 'config: maxMessageBytes must be >= 1');
  assert(
    Number.isInteger(c.maxInflightMessages) && c.maxInflightMessages >= 1,
    'config: maxInflightMessages must be >= 1',
  );
  assert(c.maxInflightBytes >= 0, 'config: maxInflightBytes must be >= 0');
  assert(c.maxUncommittedEntriesBytes >= 1, 'config: maxUncommittedEntriesBytes must be >= 1');
  assert(c.maxCommittedBytesPerReady >= 1, 'config: maxCommittedBytesPerReady must be >= 1');
  assert(c.maxProposalBytes >= 1, 'config: maxProposalBytes must be >= 1');
  assert(
    Number.isInteger(c.maxPendingReadIndexRequests) && c.maxPendingReadIndexRequests >= 1,
    'config: maxPendingReadIndexRequests must be >= 1',
  );
  assert(c.appliedIndex >= 0, 'config: appliedIndex must be >= 0');
}
