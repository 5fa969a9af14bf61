// RaftNode: the synchronous driver interface of the core (etcd-io/raft's RawNode, rewritten).
// The caller loops: feed inputs (tick, step, propose, ...), then while hasReady(): take ready(),
// persist, send, apply in the order documented on Ready (consensus/types.ts), then advance().

import { decodeConfChange } from './confchange.js';
import { resolveConfig, type RaftConfig, type RaftConfigInput } from './config.js';
import { assert, RaftError, RaftInvariantError } from './errors.js';
import { payloadBytes } from './log.js';
import { Raft } from './raft.js';
import {
  EntryType,
  Role,
  type ConfChange,
  type ConfState,
  type HardState,
  type Message,
  type RaftId,
  type BasicStatus,
  type Ready,
  type SoftState,
  type Status,
} from './types.js';

export interface RaftNodeDependencies {
  /**
   * Builds the inner state machine. Tests and the simulator pass a subclass of Raft with a
   * deliberately broken rule to check that their checkers catch it; production never sets it.
   */
  readonly createRaft?: (config: RaftConfig) => Raft;
}

export class RaftNode {
  private readonly raft: Raft;
  private prevSoftState: SoftState;
  private prevHardState: HardState;
  /** A Ready was handed out and not yet advanced (the contract allows one at a time). */
  private outstanding = false;

  constructor(config: RaftConfigInput, dependencies: RaftNodeDependencies = {}) {
    const resolved = resolveConfig(config);
    this.raft = dependencies.createRaft ? dependencies.createRaft(resolved) : new Raft(resolved);
    this.prevSoftState = this.raft.softState();
    this.prevHardState = this.raft.hardState();
  }

  get id(): RaftId {
    return this.raft.id;
  }

  tick(): void {
    this.raft.tick();
  }

  step(m: Message): void {
    this.raft.step(m);
  }

  propose(data: Uint8Array): void {
    this.raft.propose(data);
  }

  proposeConfChange(cc: ConfChange): void {
    this.raft.proposeConfChange(cc);
  }

  readIndex(context: Uint8Array): void {
    this.raft.readIndex(context);
  }

  transferLeadership(target: RaftId): void {
    this.raft.transferLeadership(target);
  }

  campaign(): void {
    this.raft.campaignNow();
  }

  reportUnreachable(id: RaftId): void {
    this.raft.reportUnreachable(id);
  }

  reportSnapshot(id: RaftId, ok: boolean): void {
    this.raft.reportSnapshot(id, ok);
  }

  hasReady(): boolean {
    const r = this.raft;
    r.flushPendingBroadcast();
    const soft = r.softState();
    if (soft.leader !== this.prevSoftState.leader || soft.role !== this.prevSoftState.role) return true;
    const hard = r.hardState();
    if (!sameHardState(hard, this.prevHardState)) return true;
    if (r.raftLog.hasPendingSnapshot()) return true;
    if (r.msgs.length > 0 || r.raftLog.unstableEntries().length > 0 || r.readStates.length > 0) return true;
    return r.raftLog.hasNextCommittedEntries();
  }

  ready(): Ready {
    assert(!this.outstanding, 'ready() called again before advance() of the previous Ready');
    const r = this.raft;
    r.flushPendingBroadcast();
    const soft = r.softState();
    const hard = r.hardState();
    const softChanged = soft.leader !== this.prevSoftState.leader || soft.role !== this.prevSoftState.role;
    const hardChanged = !sameHardState(hard, this.prevHardState);
    const entries = r.raftLog.unstableEntries().slice();
    const snapshot = r.raftLog.unstable.snapshot;
    const committedEntries = r.raftLog.nextCommittedEntries();
    // A configuration change may only be applied once the commit covering it is durable: if a
    // crash rolled commit back below an applied change whose removed members then shut down, the
    // node would restart into a configuration with no live quorum (simulator finding 2). So such
    // a Ready carries the hard state and must be synced even when only commit moved.
    let appliesConfChange = false;
    for (const e of committedEntries) {
      if (e.type === EntryType.ConfChange) {
        appliesConfChange = true;
        break;
      }
    }
    const rd: Ready = {
      softState: softChanged ? soft : undefined,
      hardState: hardChanged || appliesConfChange ? hard : undefined,
      entries,
      snapshot,
      committedEntries,
      messages: r.msgs,
      readStates: r.readStates,
      // Term and vote are promises made to peers, and entries are acknowledged: both need an
      // fsync. A commit-only change does not (commit can be recomputed after a crash), except
      // when it lets a configuration change apply (above).
      mustSync:
        entries.length > 0 ||
        snapshot !== undefined ||
        appliesConfChange ||
        hard.term !== this.prevHardState.term ||
        hard.vote !== this.prevHardState.vote,
    };
    // Messages and read states belong to this Ready now (etcd acceptReady).
    r.msgs = [];
    r.readStates = [];
    this.outstanding = true;
    return rd;
  }

  advance(rd: Ready): void {
    assert(this.outstanding, 'advance() without a Ready');
    this.outstanding = false;
    const r = this.raft;
    if (rd.softState) this.prevSoftState = rd.softState;
    if (rd.hardState) this.prevHardState = rd.hardState;
    if (rd.snapshot) {
      r.raftLog.stableSnapTo(rd.snapshot.metadata.index);
      r.appliedSnapshot(rd.snapshot.metadata.index);
    }
    if (rd.entries.length > 0) {
      const last = rd.entries[rd.entries.length - 1];
      r.raftLog.stableTo(last.index, last.term);
    }
    if (rd.committedEntries.length > 0) {
      for (const e of rd.committedEntries) {
        if (e.type !== EntryType.ConfChange) continue;
        let cc: ConfChange;
        try {
          cc = decodeConfChange(e.data);
        } catch (err) {
          if (err instanceof RaftError) {
            throw new RaftInvariantError(
              `committed configuration change at ${e.index} does not decode (${err.message}): corrupted log?`,
            );
          }
          throw err;
        }
        r.applyConfChange(cc);
      }
      const last = rd.committedEntries[rd.committedEntries.length - 1];
      r.appliedTo(last.index, payloadBytes(rd.committedEntries));
    }
  }

  /** id, term, vote, commit, applied, leader, role, leadTransferee: no allocation beyond two small objects. */
  basicStatus(): BasicStatus {
    const r = this.raft;
    return {
      id: r.id,
      hardState: r.hardState(),
      softState: r.softState(),
      applied: r.raftLog.applied,
      leadTransferee: r.leadTransferee,
    };
  }

  /** basicStatus plus last index, configuration and (on a leader) every peer's progress. */
  status(): Status {
    const r = this.raft;
    let progress: Status['progress'];
    if (r.state === Role.Leader) {
      const map = new Map<
        RaftId,
        {
          match: typeof r.raftLog.committed;
          next: typeof r.raftLog.committed;
          state: 'probe' | 'replicate' | 'snapshot';
          recentActive: boolean;
          learner: boolean;
        }
      >();
      for (const [id, pr] of r.tracker.progress) {
        map.set(id, {
          match: pr.match,
          next: pr.next,
          state: pr.state,
          recentActive: pr.recentActive,
          learner: pr.isLearner,
        });
      }
      progress = map;
    }
    return {
      id: r.id,
      hardState: r.hardState(),
      softState: r.softState(),
      applied: r.raftLog.applied,
      lastIndex: r.raftLog.lastIndex(),
      confState: r.tracker.confState(),
      progress,
      leadTransferee: r.leadTransferee,
    };
  }

  confState(): ConfState {
    return this.raft.tracker.confState();
  }

  /** Ids removed from the configuration (never reused): the node layer persists them. */
  removedIds(): RaftId[] {
    return [...this.raft.removedIds].sort((a, b) => a - b);
  }

  /**
   * The inner state machine, for the core's own tests (read only: its term, vote, state and lead
   * are getters). The node layer reads basicStatus()/status() instead.
   * @deprecated outside consensus tests; node/node.ts still reads it until it moves to basicStatus().
   */
  get inner(): Raft {
    return this.raft;
  }
}

function sameHardState(a: HardState, b: HardState): boolean {
  return a.term === b.term && a.vote === b.vote && a.commit === b.commit;
}
