// The data types of quorate's Raft core. Everything here is plain data: the core
// (consensus/raft.ts) consumes and produces these values and performs no IO.
//
// Vocabulary follows the Raft paper (Ongaro & Ousterhout, 2014) and Ongaro's thesis
// (2014, "Consensus: Bridging Theory and Practice"), and the message names of
// etcd-io/raft, so that a reader of either finds their way here.

// ---------------------------------------------------------------------------
// Branded scalars: a Term, a LogIndex and a RaftId are all numbers, and mixing
// them is the classic Raft bug. The brand makes the compiler refuse it.
// All three stay below 2^53 (checked where they are decoded).
// ---------------------------------------------------------------------------
export type Term = number & { readonly __brand: 'Term' };
export type LogIndex = number & { readonly __brand: 'LogIndex' };
export type RaftId = number & { readonly __brand: 'RaftId' };

export const term = (n: number): Term => n as Term;
export const logIndex = (n: number): LogIndex => n as LogIndex;
export const raftId = (n: number): RaftId => n as RaftId;

/** RaftId 0 means "nobody": no vote cast, no leader known. Real ids start at 1. */
export const NO_NODE = 0 as RaftId;

// ---------------------------------------------------------------------------
// Log entries
// ---------------------------------------------------------------------------
export enum EntryType {
  /** Application data (a block, for quorate's node). Empty data = the leader's no-op. */
  Normal = 0,
  /** A membership change; `data` is `encodeConfChange(change)` (consensus/confchange.ts). */
  ConfChange = 1,
}

export interface Entry {
  readonly term: Term;
  readonly index: LogIndex;
  readonly type: EntryType;
  readonly data: Uint8Array;
}

// ---------------------------------------------------------------------------
// Membership (joint consensus, Raft thesis §4.3)
// ---------------------------------------------------------------------------
export enum ConfChangeType {
  AddVoter = 0,
  AddLearner = 1,
  RemoveNode = 2,
}

export interface ConfChangeSingle {
  readonly type: ConfChangeType;
  readonly nodeId: RaftId;
}

export enum ConfChangeTransition {
  /** Single voter change without joint state when possible; otherwise joint, left automatically. */
  Auto = 0,
  /** Always joint, and the leader proposes the leave-joint entry itself once the change applied. */
  JointImplicit = 1,
  /** Always joint, and stays joint until the application proposes an empty ConfChange (leave). */
  JointExplicit = 2,
}

/**
 * A membership change. `changes: []` is the "leave joint state" change.
 * `context` is opaque to the core; the node uses it to carry the new member's
 * addresses and keys, so they are replicated with the change itself.
 */
export interface ConfChange {
  readonly transition: ConfChangeTransition;
  readonly changes: readonly ConfChangeSingle[];
  readonly context: Uint8Array;
}

/**
 * The configuration the cluster is in. Outside a joint state `votersOutgoing` is empty.
 * Invariant: voters ∪ votersOutgoing and learners are disjoint; learnersNext ⊆ votersOutgoing
 * (nodes demoted to learner in C_new that still vote in C_old).
 */
export interface ConfState {
  readonly voters: readonly RaftId[];
  readonly votersOutgoing: readonly RaftId[];
  readonly learners: readonly RaftId[];
  readonly learnersNext: readonly RaftId[];
  /** In a joint state, true when the leader leaves it by itself (Auto / JointImplicit). */
  readonly autoLeave: boolean;
}

// ---------------------------------------------------------------------------
// Persistent state (Raft paper Figure 2, "Persistent state on all servers")
// ---------------------------------------------------------------------------
export interface HardState {
  readonly term: Term;
  /** The candidate voted for in `term`, or NO_NODE. */
  readonly vote: RaftId;
  readonly commit: LogIndex;
}

export interface SnapshotMetadata {
  readonly index: LogIndex;
  readonly term: Term;
  readonly confState: ConfState;
}

export interface Snapshot {
  readonly metadata: SnapshotMetadata;
  /** The application's state at `metadata.index`, opaque to the core. */
  readonly data: Uint8Array;
}

// ---------------------------------------------------------------------------
// Messages between peers
// ---------------------------------------------------------------------------
export enum MessageType {
  /** AppendEntries (Figure 2). */
  App = 'App',
  AppResp = 'AppResp',
  /** RequestVote. */
  Vote = 'Vote',
  VoteResp = 'VoteResp',
  /** PreVote (thesis §9.6): a vote at term+1 that changes no one's term. */
  PreVote = 'PreVote',
  PreVoteResp = 'PreVoteResp',
  /** Heartbeat: carries commit (bounded by the follower's match) and a ReadIndex context. */
  Heartbeat = 'Heartbeat',
  HeartbeatResp = 'HeartbeatResp',
  /** InstallSnapshot (Figure 13). */
  Snap = 'Snap',
  /** Leader transfer (thesis §3.10): the target campaigns at once, ignoring its lease. */
  TimeoutNow = 'TimeoutNow',
  /** A follower forwards a proposal to the leader (unless forwarding is disabled). */
  Prop = 'Prop',
  /** A follower forwards a ReadIndex request to the leader; the answer is ReadIndexResp. */
  ReadIndex = 'ReadIndex',
  ReadIndexResp = 'ReadIndexResp',
  /** A follower forwards a leadership-transfer request to the leader. */
  TransferLeader = 'TransferLeader',
}

export interface Message {
  readonly type: MessageType;
  readonly from: RaftId;
  readonly to: RaftId;
  /** The sender's term (0 for locally forwarded Prop/ReadIndex/TransferLeader). */
  readonly term: Term;
  /** App: term of the entry at `index` (prevLogTerm). Vote/PreVote: candidate's last log term. AppResp reject: hint term. */
  readonly logTerm: Term;
  /** App: prevLogIndex. Vote/PreVote: candidate's last log index. AppResp: the index matched, or the rejected one. */
  readonly index: LogIndex;
  readonly entries: readonly Entry[];
  /** Leader's commit index. */
  readonly commit: LogIndex;
  /** Vote/AppResp: true when refused. */
  readonly reject: boolean;
  /** AppResp on reject: the follower's guess of the index to retry from (fast back-off). */
  readonly rejectHint: LogIndex;
  readonly snapshot?: Snapshot;
  /** ReadIndex context / heartbeat context / TransferLeader target etc. */
  readonly context?: Uint8Array;
}

// ---------------------------------------------------------------------------
// What the core hands back
// ---------------------------------------------------------------------------
export enum Role {
  Follower = 'follower',
  PreCandidate = 'pre-candidate',
  Candidate = 'candidate',
  Leader = 'leader',
}

export interface SoftState {
  readonly leader: RaftId;
  readonly role: Role;
}

/** A ReadIndex answer: reads that started with `context` may be served once applied >= index. */
export interface ReadState {
  readonly index: LogIndex;
  readonly context: Uint8Array;
}

/**
 * One batch of work for the caller. The caller MUST, in this order:
 *   1. persist `snapshot` (if any), then `entries` and `hardState` (if any) — durably when
 *      `mustSync` is true — before anything else;
 *   2. send `messages` (only after step 1: a vote or an AppResp promises durable state);
 *   3. install `snapshot` into the application, then apply `committedEntries` in order;
 *      serve `readStates` once the application has applied up to each one's index;
 *   4. call `advance(ready)`.
 * Leaders may send before persisting (thesis §10.2.1), but quorate's driver does not need to.
 */
export interface Ready {
  readonly softState?: SoftState;
  readonly hardState?: HardState;
  readonly entries: readonly Entry[];
  readonly snapshot?: Snapshot;
  readonly committedEntries: readonly Entry[];
  readonly messages: readonly Message[];
  readonly readStates: readonly ReadState[];
  /**
   * True when hardState's term/vote changed, there are entries or a snapshot, or committedEntries
   * hold a configuration change (then hardState is always present, so its commit is made durable
   * before the change applies): an fsync is required.
   */
  readonly mustSync: boolean;
}

/**
 * The core's state without the leader's per-peer progress (etcd's BasicStatus): cheap enough to
 * read after every Ready cycle or on every request. The node layer reads the core only through
 * this and Status, never through the Raft object.
 */
export interface BasicStatus {
  readonly id: RaftId;
  /** term, vote, commit. */
  readonly hardState: HardState;
  /** leader, role. */
  readonly softState: SoftState;
  readonly applied: LogIndex;
  /** The target of a leadership transfer in progress, or NO_NODE. */
  readonly leadTransferee: RaftId;
}

/** A snapshot of the core's progress, for status pages and tests (builds the progress map). */
export interface Status extends BasicStatus {
  readonly lastIndex: LogIndex;
  readonly confState: ConfState;
  /** Leader only: what it knows of each peer. */
  readonly progress?: ReadonlyMap<
    RaftId,
    {
      match: LogIndex;
      next: LogIndex;
      state: 'probe' | 'replicate' | 'snapshot';
      recentActive: boolean;
      learner: boolean;
    }
  >;
}

// ---------------------------------------------------------------------------
// Seeded randomness: the only randomness the core may use.
// ---------------------------------------------------------------------------
export interface Rng {
  /** A uniformly drawn integer in [0, maxExclusive). */
  nextInt(maxExclusive: number): number;
}
