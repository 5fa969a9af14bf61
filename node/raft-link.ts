// This node's Raft peer: the consensus core (RaftNode) and its driver (raft/driver.ts), Raft
// messages to and from the other members over the p2p transport (the "raft" channel), and the
// role, leader and term as of the last Ready cycle.
//
// Owns: creating the core (a brand-new genesis member first stores the shared bootstrap snapshot),
// creating and starting the driver, the Raft wire encoding (raft/codec.ts), the single-voter
// self-election, and the role names the RPC reports. May not touch: the chain store or the chain
// state (the state machine it is given applies entries), whom to admit (PeerAdmission decides,
// peers.ts), the lifecycle (the node starts and stops it), or time but through the Clock.

import {
  RaftNode,
  Role,
  SeededRng,
  bootstrapSnapshot,
  type ConfChange,
  type ConfState,
  type LogIndex,
  type Message,
  type RaftId,
  type Snapshot,
  type WritableStorage,
} from '../consensus/index.js';
import type { PeerTransport } from '../p2p/transport.js';
import type { Clock } from './clock.js';
import type { Logger } from './log.js';
import { roleOf, type MembershipState } from './membership.js';
import type { NodeRole, NodeStatus } from './node-types.js';
import type { RaftOptions } from './options.js';
import type { PeerAdmission } from './peers.js';
import { decodeRaftMessage, encodeRaftMessage } from './raft/codec.js';
import { RaftDriver, type ReplicatedStateMachine } from './raft/driver.js';
import { raftLiveStatus } from './raft-status.js';

/** The p2p channel of Raft messages (the others: catch-up.ts, control.ts, forward.ts, snapshot-transfer.ts). */
export const CHANNEL_RAFT = 'raft';

/** What one Ready cycle changed in this node's view of Raft (the fields are as of after the cycle). */
export interface RaftViewChange {
  readonly prevRole: NodeRole;
  readonly role: NodeRole;
  readonly prevLeader: number;
  readonly leader: number;
  readonly term: number;
}

/** The Raft half of NodeStatus. */
export type RaftStatusPart = Pick<
  NodeStatus,
  'term' | 'role' | 'leader' | 'commitIndex' | 'voters' | 'learners' | 'joint'
>;

export interface RaftLinkDeps {
  readonly options: RaftOptions;
  /** The largest proposal (a block) the core accepts (block.blockMaxBytes). */
  readonly maxProposalBytes: number;
  readonly storage: WritableStorage;
  readonly transport: Pick<PeerTransport, 'send'>;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The genesis members' raft ids: a node among them bootstraps; one that is not is joining. */
  readonly genesisVoters: readonly number[];
  readonly stateMachine: ReplicatedStateMachine & {
    restoreIfBehind(snapshot: Snapshot): Promise<void>;
    readonly membership: MembershipState;
  };
  readonly peers: Pick<PeerAdmission, 'peerOf' | 'admitsRaftMessage' | 'warnOnce'>;
  /** After every Ready cycle, once role, leader and term are updated. */
  readonly afterReady: (change: RaftViewChange) => void;
  readonly onFatal: (err: unknown) => void;
}

export class RaftLink {
  private raft?: RaftNode;
  private driver?: RaftDriver;
  private raftId = 0;
  // As of the last Ready (isLeaderNow/leaderNow read the core's live view).
  private roleValue: NodeRole = 'follower';
  private leaderValue = 0;
  private termValue = 0;

  constructor(private readonly deps: RaftLinkDeps) {}

  /** Builds the core and the driver for `raftId` (known: genesis, restart, or just joined). Does not run them. */
  async create(raftId: number): Promise<void> {
    const { storage, options: o } = this.deps;
    this.raftId = raftId;
    const joining = this.deps.genesisVoters.every((id) => id !== raftId);
    if (storage.lastIndex() === 0 && storage.snapshot().metadata.index === 0 && !joining) {
      // A brand-new genesis member: every initial member bootstraps the same first snapshot, so
      // the cluster's log never starts at index 1 and later joiners are caught up by snapshot.
      await storage.applySnapshot(bootstrapSnapshot(this.deps.genesisVoters.map((id) => id as RaftId)));
    }
    const sm = this.deps.stateMachine;
    this.raft = new RaftNode({
      id: raftId as RaftId,
      storage,
      rng: new SeededRng(o.seed),
      electionTicks: o.electionTicks,
      heartbeatTicks: o.heartbeatTicks,
      appliedIndex: Math.max(sm.appliedIndex(), storage.snapshot().metadata.index) as LogIndex,
      maxMessageBytes: o.raftMaxMessageBytes,
      maxInflightMessages: o.raftMaxInflightMessages,
      maxUncommittedEntriesBytes: o.raftMaxUncommittedBytes,
      maxProposalBytes: this.deps.maxProposalBytes,
      // Ids are never reused: the replicated membership remembers every removed one.
      removedIds: sm.membership.removed as RaftId[],
    });
    await sm.restoreIfBehind(storage.snapshot());
    this.driver = new RaftDriver(
      {
        tickMs: o.tickMs,
        snapshotEveryEntries: o.snapshotEveryEntries,
        logMaxBytes: o.logMaxBytes,
        ...(o.compactionRetainEntries !== undefined ? { compactionRetainEntries: o.compactionRetainEntries } : {}),
      },
      {
        raft: this.raft,
        storage,
        sender: { send: (m) => this.send(m) },
        stateMachine: sm,
        clock: this.deps.clock,
        onCycle: () => this.afterReady(),
        onFatal: this.deps.onFatal,
      },
    );
  }

  /** Runs the driver (after create); a single-voter cluster elects itself at once instead of waiting an election timeout. */
  start(): void {
    const raft = this.raft!;
    this.driver!.start();
    const cs = raft.confState();
    if (cs.voters.length === 1 && cs.voters[0] === this.raftId && cs.votersOutgoing.length === 0)
      void this.driver!.call((r) => r.campaign());
  }

  async stop(): Promise<void> {
    await this.driver?.stop();
  }

  /** True once the driver exists: proposals, reads and incoming messages are taken. */
  get running(): boolean {
    return this.driver !== undefined;
  }

  get role(): NodeRole {
    return this.roleValue;
  }
  get leader(): number {
    return this.leaderValue;
  }
  get term(): number {
    return this.termValue;
  }

  /** The core's view right now (role lags it until the next Ready cycle ends). */
  isLeaderNow(): boolean {
    return this.raft !== undefined && raftLiveStatus(this.raft).role === Role.Leader;
  }

  leaderNow(): number {
    return this.raft ? raftLiveStatus(this.raft).leader : 0;
  }

  // ------------------------------------------------------------------ messages

  /** The "raft" channel's handler: decode, let PeerAdmission vouch for the sender, step. */
  receive(from: string, data: Uint8Array): void {
    if (!this.driver) return;
    let m: Message;
    try {
      m = decodeRaftMessage(data);
    } catch (err) {
      this.deps.peers.warnOnce(from, { err }, 'undecodable raft message dropped');
      return;
    }
    if (this.deps.peers.admitsRaftMessage(from, m)) this.driver.step(m);
  }

  private send(m: Message): void {
    const member = this.deps.peers.peerOf(m.to);
    if (!member) return; // not (yet) known here: Raft retries once the membership is applied
    try {
      this.deps.transport.send(member.peerId, CHANNEL_RAFT, encodeRaftMessage(m));
    } catch (err) {
      this.deps.logger.warn({ err, to: m.to, type: m.type }, 'raft message not sent');
      if (m.snapshot) void this.driver?.call((r) => r.reportSnapshot(m.to, false));
    }
  }

  private afterReady(): void {
    const live = raftLiveStatus(this.raft!);
    const prevRole = this.roleValue;
    const prevLeader = this.leaderValue;
    this.termValue = live.term;
    this.leaderValue = live.leader;
    this.roleValue = roleName(live.role, this.raftId, () => this.raft!.confState());
    this.deps.afterReady({
      prevRole,
      role: this.roleValue,
      prevLeader,
      leader: this.leaderValue,
      term: this.termValue,
    });
    if (prevRole !== this.roleValue || prevLeader !== this.leaderValue)
      this.deps.logger.info(
        { role: this.roleValue, term: this.termValue, leader: this.leaderValue },
        'raft role changed',
      );
  }

  // ------------------------------------------------------------------ requests (the driver must run)

  propose(data: Uint8Array): Promise<void> {
    return this.driver!.propose(data);
  }
  proposeConfChange(cc: ConfChange): Promise<void> {
    return this.driver!.proposeConfChange(cc);
  }
  transferLeadership(to: number): Promise<void> {
    return this.driver!.call((r) => r.transferLeadership(to as RaftId));
  }
  readBarrier(): Promise<LogIndex> {
    return this.driver!.readBarrier();
  }
  confState(): ConfState {
    return this.raft!.confState();
  }

  // ------------------------------------------------------------------ status

  /** A member's role in the configuration, once the core exists. */
  roleOfMember(raftId: number): 'verifier' | 'learner' | undefined {
    return this.raft ? roleOf(this.raft.confState(), raftId) : undefined;
  }

  /** The Raft half of status(), undefined before the core exists (a --join node waiting for its id). */
  status(): RaftStatusPart | undefined {
    if (!this.raft) return undefined;
    const s = this.raft.status();
    const cs = s.confState;
    return {
      term: s.hardState.term,
      role: roleName(s.softState.role, this.raftId, () => cs),
      leader: s.softState.leader || null,
      commitIndex: s.hardState.commit,
      voters: [...new Set([...cs.voters, ...cs.votersOutgoing])],
      learners: [...cs.learners, ...cs.learnersNext],
      joint: cs.votersOutgoing.length > 0,
    };
  }
}

/** The node's role name for the RPC: a follower that is a learner in the configuration says so. */
export function roleName(role: Role, self: number, conf: () => ConfState): NodeRole {
  if (role === Role.Leader) return 'leader';
  if (role === Role.Candidate || role === Role.PreCandidate) return 'candidate';
  const cs = conf();
  return cs.learners.includes(self as RaftId) || cs.learnersNext.includes(self as RaftId) ? 'learner' : 'follower';
}
