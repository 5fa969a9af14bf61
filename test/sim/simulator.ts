// The seeded Raft simulator (in the spirit of TigerBeetle's VOPR).
//
// N real RaftNode instances run over a simulated network (test/sim/network.ts) and simulated
// disks (test/sim/disk.ts). ONE seed drives everything: the fault rates of the schedule (drawn
// per seed, "swarm testing", so different seeds stress different mixes), message loss,
// duplication, delay and reordering, partitions of every shape, crashes (with loss of unsynced
// writes) and restarts, client proposals, membership changes (single and joint; ids never reused),
// leader transfers, ReadIndex reads, and snapshots/compaction. Every node's randomness (election
// jitter) is drawn from the same seed, so `runSchedule({ seed })` replays a schedule exactly.
//
// The driver of each node follows the Ready contract (consensus/types.ts): persist (snapshot,
// entries, hard state — synced when mustSync), then send, then apply, then advance. The checker
// (test/sim/checker.ts) watches all of it and throws at the first broken guarantee. After the
// fault phase every fault is healed and the cluster must elect a leader and commit a fresh
// proposal on every member within a bounded number of ticks (liveness).

import { RaftNode } from '../../consensus/index.js';
import { bootstrapConfState, bootstrapSnapshot, decodeConfChange } from '../../consensus/confchange.js';
import { RaftError } from '../../consensus/errors.js';
import { MemoryStorage } from '../../consensus/memory-storage.js';
import { SeededRng } from '../../consensus/rng.js';
import {
  ConfChangeTransition,
  ConfChangeType,
  EntryType,
  MessageType,
  Role,
  type ConfChange,
  type ConfChangeSingle,
  type ConfState,
  type Entry,
  type LogIndex,
  type Message,
  type RaftId,
  type ReadState,
  type Term,
  type Ready,
} from '../../consensus/types.js';
import { CHAIN_ORIGIN, chainNext, SafetyChecker, SimViolation, ViolationKind, type CheckerStats } from './checker.js';
import { processReadySync } from '../../node/raft/ready.js';
import { SimDisk } from './disk.js';
import { DEFAULT_EVENTS_KEPT, EventLog } from './events.js';
import {
  CALM_NETWORK,
  makePartition,
  PartitionKind,
  PARTITION_KINDS,
  SimNetwork,
  type NetworkFaults,
  type NetworkStats,
} from './network.js';

/** The dependencies a RaftNode accepts (lets tests run a deliberately broken state machine). */
export type RaftNodeDeps = NonNullable<ConstructorParameters<typeof RaftNode>[1]>;

export const DEFAULT_STEPS = 300;
/** Liveness bound: ticks after healing within which a fresh proposal must commit everywhere. */
export const DEFAULT_LIVENESS_TICKS = 400;
/** Followers time out after [ELECTION_TICKS, 2*ELECTION_TICKS). */
export const ELECTION_TICKS = 10;
/** Upper bound on nodes ever created in one schedule (initial + joined); ids are never reused. */
export const MAX_NODES_PER_SCHEDULE = 12;
/** Upper bound on voters a membership change may produce (keeps quorums small and schedules fast). */
export const MAX_VOTERS = 7;
/** Upper bound on Ready batches drained after one input: a core that never settles is a bug. */
export const MAX_READY_ROUNDS_PER_INPUT = 64;
/** Upper bound on ReadIndex answers a node holds while waiting to apply up to them. */
export const MAX_PENDING_READS_PER_NODE = 1024;

export interface SimOptions {
  readonly seed: number;
  /** Initial voters (3 or 5 in the default suite). */
  readonly nodes: number;
  /** Ticks of the fault phase. */
  readonly steps?: number;
  readonly livenessTicks?: number;
  /** Passed to every RaftNode: a broken variant of the state machine for test/sim/broken.test.ts. */
  readonly deps?: RaftNodeDeps;
  /** Name of that variant, for the reproduce command (`--variant NAME`). */
  readonly variant?: string;
  readonly eventsKept?: number;
  /** Prints every event as it happens. */
  readonly trace?: (line: string) => void;
  /** 'mixed' (default): a quarter of the seeds are churn schedules; 'churn': all of them. */
  readonly profile?: SimProfile;
}

export type SimProfile = 'mixed' | 'churn';

/** The knobs of one schedule, all drawn from its seed. Rates are per tick, in parts per thousand. */
export interface ScheduleParams {
  readonly network: NetworkFaults;
  readonly crashPerMille: number;
  /** Share of crashes that hit between persisting a Ready and sending its messages. */
  readonly crashAfterPersistPerMille: number;
  readonly restartPerMille: number;
  readonly partitionPerMille: number;
  readonly healPerMille: number;
  /**
   * Chance that a freshly elected leader is cut off at once, before its no-op commits: it keeps
   * taking proposals alone, leaving a suffix of its term that the next leader must overwrite
   * (the material of Figure 8).
   */
  readonly isolateNewLeaderPerMille: number;
  readonly proposePerMille: number;
  readonly confChangePerMille: number;
  readonly transferPerMille: number;
  readonly readPerMille: number;
  readonly campaignPerMille: number;
  /** A node misses a tick with this chance (clock skew between nodes). */
  readonly tickSkipPerMille: number;
  readonly snapshotEveryEntries: number;
  readonly snapshotRetainEntries: number;
  readonly heartbeatTicks: number;
  readonly maxInflightMessages: number;
  readonly maxMessageBytes: number;
  readonly maxUncommittedEntriesBytes: number;
  readonly maxCommittedBytesPerReady: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  /**
   * How the cluster is founded. true: founders' storage holds bootstrapSnapshot (index 1, term 1,
   * the membership) and joiners start empty, so they catch up by snapshot. false: every node,
   * founder or joiner, starts from the genesis ConfState at index 0 and replays the log.
   */
  readonly bootstrapWithSnapshot: boolean;
}

/**
 * Swarm testing (Groce et al., 2012; TigerBeetle's VOPR does the same): each seed draws its own
 * mix of faults rather than all faults at a fixed rate, because some bugs need one fault to be
 * frequent and another absent. A quarter of the seeds are "churn" schedules: leaders deposed
 * every few dozen ticks by short partitions and crashes, many proposals, small messages, and no
 * membership changes (which lets the checker run its Figure-8 commit check on every commit).
 */
export function drawParams(rng: SeededRng, profile: SimProfile = 'mixed'): ScheduleParams {
  const between = (lo: number, hi: number): number => lo + rng.nextInt(hi - lo + 1);
  const rarely = (chance: number): boolean => rng.nextInt(1000) < chance;
  const churnDraw = rng.nextInt(4) === 0; // drawn in every profile, so 'mixed' seeds stay stable
  const churn = profile === 'churn' || (profile === 'mixed' && churnDraw);
  return {
    network: {
      lossPerMille: rarely(200) ? 0 : between(0, 150),
      duplicatePerMille: rarely(300) ? 0 : between(0, 100),
      slowPerMille: between(0, 300),
      maxDelayTicks: between(1, 6),
    },
    crashPerMille: churn ? between(10, 40) : rarely(200) ? 0 : between(1, 20),
    crashAfterPersistPerMille: between(0, 500),
    restartPerMille: churn ? between(100, 300) : between(30, 200),
    partitionPerMille: churn ? between(30, 100) : rarely(200) ? 0 : between(2, 30),
    healPerMille: churn ? between(60, 250) : between(20, 120),
    isolateNewLeaderPerMille: churn ? between(200, 700) : rarely(500) ? 0 : between(0, 100),
    proposePerMille: churn ? between(600, 1000) : between(100, 900),
    confChangePerMille: churn || rarely(250) ? 0 : between(5, 50),
    transferPerMille: between(0, 20),
    readPerMille: between(0, 300),
    campaignPerMille: churn ? between(5, 30) : between(0, 5),
    tickSkipPerMille: between(0, 100),
    snapshotEveryEntries: between(3, 40),
    snapshotRetainEntries: between(0, 10),
    heartbeatTicks: between(1, 3),
    maxInflightMessages: between(1, 8),
    maxMessageBytes: churn ? between(64, 512) : between(128, 4096),
    maxUncommittedEntriesBytes: between(2_000, 64_000),
    maxCommittedBytesPerReady: between(256, 8192),
    preVote: !rarely(125),
    checkQuorum: !rarely(125),
    bootstrapWithSnapshot: rng.nextInt(2) === 0,
  };
}

export interface SimStats extends CheckerStats, NetworkStats {
  ticks: number;
  crashes: number;
  crashesAfterPersist: number;
  unsyncedWritesLost: number;
  restarts: number;
  partitions: number;
  proposalsAccepted: number;
  proposalsRefused: number;
  confChangesProposed: number;
  confChangesRefused: number;
  confChangesApplied: number;
  transfersRequested: number;
  snapshotsCreated: number;
  snapshotsInstalled: number;
  nodesCreated: number;
  nodesRemoved: number;
  /** Ticks the liveness phase needed (-1 when it failed). */
  livenessTicksUsed: number;
}

export interface SimFailure {
  readonly kind: ViolationKind;
  readonly detail: string;
  readonly tick: number;
  readonly phase: 'faults' | 'liveness';
  /** The command that replays this schedule. */
  readonly command: string;
  /** The last events before the violation, oldest first. */
  readonly events: readonly string[];
  /** Each node's state at the time (role, term, commit, applied...). */
  readonly nodes: readonly string[];
  readonly stack: string | undefined;
}

export interface SimResult {
  readonly seed: number;
  readonly nodes: number;
  readonly steps: number;
  readonly params: ScheduleParams;
  readonly stats: SimStats;
  readonly failure: SimFailure | undefined;
}

// ----------------------------------------------------------------------------------------------
// The application each node runs: a hash chain over applied entries (state-machine safety is
// then one comparison per index) and a count of client payloads. Snapshots carry it.
// ----------------------------------------------------------------------------------------------

interface AppState {
  applied: number;
  chain: number;
  payloads: number;
}

const APP_SNAPSHOT_BYTES = 24;

function encodeApp(app: AppState): Uint8Array {
  const out = new Uint8Array(APP_SNAPSHOT_BYTES);
  const view = new DataView(out.buffer);
  view.setFloat64(0, app.applied);
  view.setFloat64(8, app.chain);
  view.setFloat64(16, app.payloads);
  return out;
}

function decodeApp(data: Uint8Array, index: number): AppState {
  // The empty log, or the bootstrap snapshot (index 1): the application's initial state.
  if (index <= 1 && data.length === 0) return { applied: index, chain: CHAIN_ORIGIN, payloads: 0 };
  if (data.length !== APP_SNAPSHOT_BYTES) {
    throw new SimViolation(
      ViolationKind.StateMachineSafety,
      `snapshot at ${index} carries ${data.length} bytes, not an application state`,
    );
  }
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const app = { applied: view.getFloat64(0), chain: view.getFloat64(8), payloads: view.getFloat64(16) };
  if (app.applied !== index) {
    throw new SimViolation(
      ViolationKind.StateMachineSafety,
      `snapshot at index ${index} holds the application state of index ${app.applied}`,
    );
  }
  return app;
}

/** First byte of a client payload: 'P' during the fault phase, 'L' for liveness probes. */
const PAYLOAD_TAG_FAULT_PHASE = 0x50;
const PAYLOAD_TAG_LIVENESS = 0x4c;
/** Upper bound on the random padding of a client payload: varies entry sizes against byte limits. */
const MAX_PAYLOAD_PADDING_BYTES = 200;

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

// ----------------------------------------------------------------------------------------------

interface SimNode {
  readonly id: RaftId;
  readonly disk: SimDisk;
  raft: RaftNode | undefined;
  storage: MemoryStorage | undefined;
  app: AppState;
  incarnation: number;
  role: Role;
  /** Set when the node was ever in an applied configuration. */
  joined: boolean;
  /** Removed from the cluster (by a committed change) and stopped for good. */
  removed: boolean;
  /** Index of the applied change that removed it (0: a member, or never joined); still running. */
  leavingAt: number;
  /** A crash is scheduled between persisting the next Ready and sending its messages. */
  crashAfterPersist: boolean;
  /** ReadIndex answers waiting for the application to reach their index. */
  readStates: ReadState[];
  downSinceTick: number;
}

function emptyStats(): SimStats {
  return {
    ticks: 0,
    crashes: 0,
    crashesAfterPersist: 0,
    unsyncedWritesLost: 0,
    restarts: 0,
    partitions: 0,
    proposalsAccepted: 0,
    proposalsRefused: 0,
    confChangesProposed: 0,
    confChangesRefused: 0,
    confChangesApplied: 0,
    transfersRequested: 0,
    snapshotsCreated: 0,
    snapshotsInstalled: 0,
    nodesCreated: 0,
    nodesRemoved: 0,
    livenessTicksUsed: -1,
    leadersElected: 0,
    maxTerm: 0,
    committedIndex: 0,
    readsIssued: 0,
    readsAnswered: 0,
    entriesApplied: 0,
    sent: 0,
    delivered: 0,
    lost: 0,
    duplicated: 0,
    blocked: 0,
    overflowed: 0,
  };
}

/** The default mix of the suite and the CLI: even seeds run 3 nodes, odd seeds 5. */
export function nodesForSeed(seed: number): number {
  return seed % 2 === 0 ? 3 : 5;
}

export function reproduceCommand(
  options: Pick<SimOptions, 'seed' | 'nodes' | 'steps' | 'variant' | 'profile'>,
): string {
  let cmd = `npm run sim -- --seed ${options.seed} --nodes ${options.nodes}`;
  if (options.profile !== undefined && options.profile !== 'mixed') cmd += ` --profile ${options.profile}`;
  if (options.steps !== undefined && options.steps !== DEFAULT_STEPS) cmd += ` --steps ${options.steps}`;
  if (options.variant !== undefined) cmd += ` --variant ${options.variant}`;
  return cmd;
}

class Simulation {
  readonly rng: SeededRng;
  readonly params: ScheduleParams;
  readonly net: SimNetwork;
  readonly checker = new SafetyChecker();
  readonly events: EventLog;
  readonly nodes = new Map<RaftId, SimNode>();
  readonly stats = emptyStats();
  now = 0;
  phase: 'faults' | 'liveness' = 'faults';
  private nextNodeId = 1;
  private proposalSeq = 0;
  private readSeq = 0;
  /** Liveness phase: nodes that applied a liveness probe. */
  private readonly probeApplied = new Set<RaftId>();
  /** Index of the newest membership change applied by any node. */
  private latestConfIndex = 0;
  /** Members of that configuration (voters, outgoing voters, learners). */
  private latestMembers = new Set<RaftId>();
  /** The founding membership: voters 1..nodes. */
  private readonly genesis: ConfState;

  constructor(private readonly options: SimOptions) {
    this.rng = new SeededRng(options.seed);
    this.params = drawParams(this.rng, options.profile);
    this.net = new SimNetwork(this.rng);
    this.net.faults = this.params.network;
    this.events = new EventLog(options.eventsKept ?? DEFAULT_EVENTS_KEPT, options.trace);
    this.genesis = bootstrapConfState(Array.from({ length: options.nodes }, (_, i) => (i + 1) as RaftId));
    this.latestMembers = membersOf(this.genesis);
    if (this.params.bootstrapWithSnapshot) this.checker.onBootstrapSnapshot(1 as LogIndex, 1 as Term);
  }

  // -------------------------------------------------------------------------------- nodes

  private newRaft(id: RaftId, storage: MemoryStorage, applied: number): RaftNode {
    const p = this.params;
    return new RaftNode(
      {
        id,
        storage,
        rng: new SeededRng(this.rng.nextU32()),
        electionTicks: ELECTION_TICKS,
        heartbeatTicks: p.heartbeatTicks,
        appliedIndex: applied as LogIndex,
        maxMessageBytes: p.maxMessageBytes,
        maxInflightMessages: p.maxInflightMessages,
        maxUncommittedEntriesBytes: p.maxUncommittedEntriesBytes,
        maxCommittedBytesPerReady: p.maxCommittedBytesPerReady,
        maxProposalBytes: 1024,
        preVote: p.preVote,
        checkQuorum: p.checkQuorum,
      },
      this.options.deps,
    );
  }

  /**
   * A brand-new node. Founders start from the genesis membership; joiners either from the same
   * genesis ConfState at index 0 (the log's first entries are changes relative to it, so a joiner
   * that replays the log from index 1 must start from the same configuration: FINDINGS.md #1), or,
   * with bootstrapWithSnapshot, from an empty storage, caught up by a snapshot.
   */
  private createNode(founding: boolean): SimNode {
    const id = this.nextNodeId++ as RaftId;
    const retain = { snapshotRetainEntries: this.params.snapshotRetainEntries };
    const initial = !this.params.bootstrapWithSnapshot
      ? MemoryStorage.bootstrap(this.genesis, retain)
      : founding
        ? new MemoryStorage({ snapshot: bootstrapSnapshot([...this.genesis.voters]), ...retain })
        : new MemoryStorage(retain);
    const node: SimNode = {
      id,
      disk: new SimDisk(initial, this.params.snapshotRetainEntries),
      raft: undefined,
      storage: undefined,
      app: { applied: 0, chain: CHAIN_ORIGIN, payloads: 0 },
      incarnation: 0,
      role: Role.Follower,
      joined: founding,
      removed: false,
      leavingAt: 0,
      crashAfterPersist: false,
      readStates: [],
      downSinceTick: 0,
    };
    this.nodes.set(id, node);
    this.stats.nodesCreated++;
    this.start(node);
    return node;
  }

  /** Starts (or restarts) a node from what its disk holds. */
  private start(n: SimNode): void {
    const storage = n.disk.recover();
    const snap = storage.snapshot();
    n.storage = storage;
    n.app = decodeApp(snap.data, snap.metadata.index);
    n.incarnation++;
    n.role = Role.Follower;
    n.crashAfterPersist = false;
    n.readStates = [];
    this.checker.onStart(n.id, storage);
    if (snap.metadata.index > 0) this.checker.onSnapshotRestored(n.id, snap.metadata.index, n.app.chain);
    n.raft = this.guard(n, () => this.newRaft(n.id, storage, snap.metadata.index));
    this.events.note(
      this.now,
      `start node ${n.id} #${n.incarnation} (term ${storage.hardState().term}, commit ${storage.hardState().commit}, snapshot ${snap.metadata.index}, last ${storage.lastIndex()})`,
    );
    this.drain(n);
  }

  private crash(n: SimNode, why: string): void {
    const loss = n.disk.crash(this.rng);
    n.raft = undefined;
    n.storage = undefined;
    n.readStates = [];
    n.downSinceTick = this.now;
    n.crashAfterPersist = false;
    this.stats.crashes++;
    this.stats.unsyncedWritesLost += loss.lost;
    this.events.note(this.now, `crash node ${n.id} ${why} (unsynced writes kept ${loss.kept}, lost ${loss.lost})`);
  }

  private up(): SimNode[] {
    const out: SimNode[] = [];
    for (const n of this.nodes.values()) if (n.raft !== undefined) out.push(n);
    return out;
  }

  private pick<T>(items: readonly T[]): T | undefined {
    return items.length === 0 ? undefined : items[this.rng.nextInt(items.length)];
  }

  private chance(perMille: number): boolean {
    return perMille > 0 && this.rng.nextInt(1000) < perMille;
  }

  /** The up node that believes it leads the highest term, if any. */
  private leader(): SimNode | undefined {
    let best: SimNode | undefined;
    let bestTerm = -1;
    for (const n of this.nodes.values()) {
      if (n.raft === undefined || n.role !== Role.Leader) continue;
      const term = n.raft.basicStatus().hardState.term;
      if (term > bestTerm) {
        best = n;
        bestTerm = term;
      }
    }
    return best;
  }

  /**
   * Runs a call into the core. A RaftError is an operating answer (returned); anything else the
   * core throws is a crash of the state machine, which no schedule may cause.
   */
  private guard<T>(n: SimNode, call: () => T): T {
    try {
      return call();
    } catch (err) {
      if (err instanceof SimViolation) throw err;
      const e = err as Error;
      const violation = new SimViolation(
        ViolationKind.CoreCrash,
        `node ${n.id} threw ${e?.name ?? 'a value'}: ${e?.message ?? String(err)}`,
      );
      violation.stack = e?.stack ?? violation.stack;
      throw violation;
    }
  }

  /** Like guard, but returns a RaftError (a refusal) instead of throwing it. */
  private request(n: SimNode, call: () => void): RaftError | undefined {
    try {
      call();
      return undefined;
    } catch (err) {
      if (err instanceof RaftError) return err;
      return this.guard(n, () => {
        throw err;
      });
    }
  }

  // -------------------------------------------------------------------------------- the driver

  private drain(n: SimNode): void {
    for (let round = 0; n.raft !== undefined && n.raft.hasReady(); round++) {
      if (round >= MAX_READY_ROUNDS_PER_INPUT) {
        throw new SimViolation(
          ViolationKind.CoreCrash,
          `node ${n.id} still has a Ready after ${round} rounds: the core never settles`,
        );
      }
      const raft = n.raft;
      const rd = this.guard(n, () => raft.ready());
      this.guard(n, () => this.handleReady(n, raft, rd));
    }
  }

  /**
   * One Ready through production's loop body (node/raft/ready.ts: persist — synced exactly when
   * rd.mustSync —, send, apply, advance); the hooks below are the simulated disk, network and
   * state machine, and the checker's eyes on each step.
   */
  private handleReady(n: SimNode, raft: RaftNode, rd: Ready): void {
    const storage = n.storage!;
    let confIndex = 0;
    processReadySync(raft, rd, {
      storage: {
        applySnapshot: (snapshot) => {
          storage.applySnapshot(snapshot);
          n.disk.write({ kind: 'applySnapshot', snapshot }, true);
          this.checker.onSnapshotPersisted(n.id, snapshot.metadata.index, snapshot.metadata.term);
          this.stats.snapshotsInstalled++;
        },
        save: (hardState, entries, { sync }) => {
          storage.save(hardState, entries);
          // Unsynced writes go to the tail that a crash may drop (test/sim/disk.ts).
          n.disk.write({ kind: 'save', hardState, entries }, sync);
          this.checker.onEntriesPersisted(n.id, entries);
        },
      },
      afterPersist: (rd) => this.afterPersist(n, raft, rd),
      // Each promise a message makes must already be on disk (the checker's durability check).
      // A snapshot's stream breaks visibly: a lost one is reported failed to the core.
      send: (m) => {
        this.checker.onSend(m, n.disk.syncedImage());
        return this.net.send(m, this.now);
      },
      restore: (snapshot) => {
        n.app = decodeApp(snapshot.data, snapshot.metadata.index);
        this.checker.onSnapshotRestored(n.id, snapshot.metadata.index, n.app.chain);
        this.events.note(
          this.now,
          `node ${n.id} installed snapshot (${snapshot.metadata.index}, term ${snapshot.metadata.term})`,
        );
      },
      apply: (entries) => {
        for (const e of entries) {
          if (e.index <= n.app.applied && rd.snapshot !== undefined) continue; // covered by the snapshot just installed
          if (e.index !== n.app.applied + 1) {
            throw new SimViolation(
              ViolationKind.StateMachineSafety,
              `node ${n.id} was handed entry ${e.index} to apply after applying ${n.app.applied}`,
            );
          }
          this.apply(n, e);
          if (e.type === EntryType.ConfChange) confIndex = e.index;
        }
      },
      readStates: (readStates) => {
        for (const rs of readStates) {
          if (n.readStates.length >= MAX_PENDING_READS_PER_NODE) n.readStates.shift();
          n.readStates.push(rs);
        }
        this.serveReads(n);
      },
      afterAdvance: () => {
        if (confIndex > 0) this.afterConfChange(n, raft, confIndex);
        this.maybeSnapshot(n, raft, storage);
      },
    });
  }

  /** Between persist and send: the checker sees the hard state and role; maybe the process dies. */
  private afterPersist(n: SimNode, raft: RaftNode, rd: Ready): boolean {
    if (rd.hardState !== undefined) {
      const before = this.checker.committedIndex();
      this.checker.onHardState(n.id, rd.hardState);
      // With a membership that never changed, every commit is checked for Figure-8 safety.
      if (this.checker.committedIndex() > before && this.stats.confChangesProposed === 0) {
        this.checker.checkCommitSafety(this.genesis.voters);
      }
    }
    if (rd.softState !== undefined && rd.softState.role !== n.role) {
      n.role = rd.softState.role;
      const term = raft.basicStatus().hardState.term;
      this.events.note(this.now, `node ${n.id} is ${n.role} in term ${term} (leader ${rd.softState.leader})`);
      if (n.role === Role.Leader) {
        this.checker.onLeader(n.id, term);
        if (
          this.phase === 'faults' &&
          this.net.partition === undefined &&
          this.chance(this.params.isolateNewLeaderPerMille)
        ) {
          const ids = [...this.nodes.values()].filter((x) => !x.removed).map((x) => x.id);
          this.net.partition = makePartition(this.rng, PartitionKind.IsolatedLeader, ids, n.id);
          this.stats.partitions++;
          this.events.note(
            this.now,
            `partition ${this.net.partition.kind}: ${this.net.partition.description} (right after its election)`,
          );
        }
      }
    }
    if (n.crashAfterPersist) {
      // The process dies after its disk write returned and before its messages left.
      this.stats.crashesAfterPersist++;
      this.crash(n, `after persisting a Ready, before sending ${rd.messages.length} messages`);
      return false;
    }
    return true;
  }

  private apply(n: SimNode, e: Entry): void {
    n.app.applied = e.index;
    n.app.chain = chainNext(n.app.chain, e);
    if (e.type === EntryType.Normal && e.data.length > 0) {
      n.app.payloads++;
      if (e.data[0] === PAYLOAD_TAG_LIVENESS) this.probeApplied.add(n.id);
    } else if (e.type === EntryType.ConfChange) {
      const cc = decodeConfChange(e.data);
      this.events.note(this.now, `node ${n.id} applied conf change at ${e.index}: ${describeConfChange(cc)}`);
    }
    this.checker.onApplied(n.id, e, n.app.chain);
  }

  private serveReads(n: SimNode): void {
    if (n.readStates.length === 0) return;
    const keep: ReadState[] = [];
    for (const rs of n.readStates) {
      if (rs.index <= n.app.applied) {
        const ctx = textDecoder.decode(rs.context);
        this.events.note(
          this.now,
          `node ${n.id} served read ${ctx} (read index ${rs.index}, applied ${n.app.applied})`,
        );
        this.checker.onReadServed(n.id, ctx, rs.index, n.app.applied);
      } else keep.push(rs);
    }
    n.readStates = keep;
  }

  /**
   * A node applied membership changes up to `confIndex`. When that is the newest configuration
   * applied anywhere, nodes in it are marked as joined, and nodes that were members and are not
   * in it start leaving: they keep running until every member of the new configuration has
   * applied it, then stop for good (see retireLeavers). Stopping them at once can strand the
   * cluster: the remaining members may not yet know the removal committed, and still need the
   * removed nodes' votes under the old configuration. A node applying an older change behind the
   * others changes nothing.
   */
  private afterConfChange(n: SimNode, raft: RaftNode, confIndex: number): void {
    this.stats.confChangesApplied++;
    if (confIndex <= this.latestConfIndex) return;
    this.latestConfIndex = confIndex;
    const cs = raft.confState();
    this.latestMembers = membersOf(cs);
    for (const id of this.latestMembers) {
      const m = this.nodes.get(id);
      if (m !== undefined) m.joined = true;
    }
    for (const other of this.nodes.values()) {
      if (other.joined && !other.removed && other.leavingAt === 0 && !this.latestMembers.has(other.id)) {
        other.leavingAt = confIndex;
        this.events.note(
          this.now,
          `node ${other.id} leaves (config at ${confIndex} applied by node ${n.id}: ${describeConfState(cs)})`,
        );
      }
    }
  }

  /** Stops, for good, leaving nodes whose removal every member of the newest configuration applied. */
  private retireLeavers(): void {
    for (const n of this.nodes.values()) {
      if (n.leavingAt === 0 || n.removed) continue;
      let everywhere = true;
      for (const id of this.latestMembers) {
        const m = this.nodes.get(id);
        if (m === undefined || m.removed) continue;
        // Applied, and durably known as committed: a crash cannot take the member back.
        if (
          m.raft === undefined ||
          m.app.applied < n.leavingAt ||
          m.disk.syncedImage().hardState().commit < n.leavingAt
        )
          everywhere = false;
      }
      if (!everywhere) continue;
      n.removed = true;
      n.raft = undefined;
      n.storage = undefined;
      this.stats.nodesRemoved++;
      this.events.note(this.now, `node ${n.id} stopped: its removal at ${n.leavingAt} is applied on every member`);
    }
  }

  private maybeSnapshot(n: SimNode, raft: RaftNode, storage: MemoryStorage): void {
    if (n.raft !== raft) return; // crashed or stopped meanwhile
    const snapIndex = storage.snapshot().metadata.index;
    if (n.app.applied - snapIndex < this.params.snapshotEveryEntries) return;
    const index = n.app.applied as LogIndex;
    const confState = raft.confState();
    const data = encodeApp(n.app);
    storage.createSnapshot(index, confState, data);
    // Unsynced on purpose: a crash may lose it, and the node must then restart from an older one.
    n.disk.write({ kind: 'createSnapshot', index, confState, data }, false);
    this.stats.snapshotsCreated++;
  }

  // -------------------------------------------------------------------------------- one tick

  private deliver(m: Message): void {
    const to = this.nodes.get(m.to);
    const from = this.nodes.get(m.from);
    if (to === undefined || to.raft === undefined || this.net.blocks(m)) {
      // The transport tells the sender it could not reach the peer, as a failed dial would.
      if (from?.raft !== undefined) this.reportFailure(from, m);
      return;
    }
    this.events.deliver(this.now, m);
    const raft = to.raft;
    const refused = this.request(to, () => raft.step(m));
    if (refused !== undefined) this.events.note(this.now, `node ${to.id} refused ${m.type}: ${refused.code}`);
    this.drain(to);
    if (m.type === MessageType.Snap && from?.raft !== undefined) {
      const sender = from.raft;
      this.guard(from, () => sender.reportSnapshot(m.to, true));
      this.drain(from);
    }
  }

  private reportFailure(from: SimNode, m: Message): void {
    const raft = from.raft!;
    if (m.type === MessageType.Snap) this.guard(from, () => raft.reportSnapshot(m.to, false));
    else if (this.rng.nextInt(2) === 0) this.guard(from, () => raft.reportUnreachable(m.to));
    this.drain(from);
  }

  private tickAll(): void {
    for (const n of this.nodes.values()) {
      if (n.raft === undefined) continue;
      if (this.chance(this.params.tickSkipPerMille)) continue;
      const raft = n.raft;
      this.guard(n, () => raft.tick());
      this.drain(n);
    }
  }

  private step(): void {
    this.now++;
    this.stats.ticks++;
    if (this.phase === 'faults') {
      this.injectFaults();
      this.clientActions();
    }
    this.tickAll();
    const due = this.net.takeDue(this.now);
    for (const m of due) this.deliver(m);
    this.retireLeavers();
  }

  // -------------------------------------------------------------------------------- faults

  private injectFaults(): void {
    const p = this.params;
    if (this.chance(p.crashPerMille)) {
      const victim = this.pick(this.up());
      if (victim !== undefined) {
        if (this.chance(p.crashAfterPersistPerMille)) {
          victim.crashAfterPersist = true;
          this.events.note(this.now, `node ${victim.id} will crash after its next persist`);
        } else this.crash(victim, 'between Readys');
      }
    }
    for (const n of this.nodes.values()) {
      if (n.raft === undefined && !n.removed && this.now - n.downSinceTick > 2 && this.chance(p.restartPerMille)) {
        this.stats.restarts++;
        this.start(n);
      }
    }
    if (this.net.partition === undefined) {
      if (this.chance(p.partitionPerMille)) {
        const ids = [...this.nodes.values()].filter((n) => !n.removed).map((n) => n.id);
        const kind = this.pick(PARTITION_KINDS)!;
        const partition = makePartition(this.rng, kind, ids, this.leader()?.id ?? (0 as RaftId));
        this.net.partition = partition;
        this.stats.partitions++;
        this.events.note(this.now, `partition ${partition.kind}: ${partition.description}`);
      }
    } else if (this.chance(p.healPerMille)) {
      this.net.partition = undefined;
      this.events.note(this.now, 'partition healed');
    }
  }

  // -------------------------------------------------------------------------------- clients

  private clientActions(): void {
    const p = this.params;
    if (this.chance(p.proposePerMille)) this.propose(PAYLOAD_TAG_FAULT_PHASE);
    if (this.chance(p.readPerMille)) this.read();
    if (this.chance(p.confChangePerMille)) this.changeMembership();
    if (this.chance(p.transferPerMille)) this.transfer();
    if (this.chance(p.campaignPerMille)) {
      const n = this.pick(this.up().filter((x) => x.joined));
      if (n !== undefined) {
        this.events.note(this.now, `node ${n.id} told to campaign`);
        const raft = n.raft!;
        const refused = this.request(n, () => raft.campaign());
        if (refused !== undefined) this.events.note(this.now, `campaign refused: ${refused.code}`);
        this.drain(n);
      }
    }
  }

  /** Proposes at the leader most of the time, else at a random node (which forwards it). */
  private proposalTarget(): SimNode | undefined {
    const leader = this.leader();
    if (leader !== undefined && this.rng.nextInt(10) < 7) return leader;
    return this.pick(this.up());
  }

  private propose(tag: number): boolean {
    const n = this.proposalTarget();
    if (n === undefined) return false;
    const seq = ++this.proposalSeq;
    const padding = this.rng.nextInt(MAX_PAYLOAD_PADDING_BYTES + 1);
    const data = new Uint8Array(1 + 4 + padding);
    data[0] = tag;
    new DataView(data.buffer).setUint32(1, seq);
    const raft = n.raft!;
    const refused = this.request(n, () => raft.propose(data));
    if (refused === undefined) {
      this.stats.proposalsAccepted++;
      this.events.note(this.now, `propose #${seq} (${data.length} B) at node ${n.id}`);
    } else {
      this.stats.proposalsRefused++;
      this.events.note(this.now, `propose #${seq} at node ${n.id} refused: ${refused.code}`);
    }
    this.drain(n);
    return refused === undefined;
  }

  private read(): void {
    const n = this.pick(this.up());
    if (n === undefined) return;
    const ctx = `r${++this.readSeq}`;
    const raft = n.raft!;
    const committedBefore = this.checker.committedIndex();
    const refused = this.request(n, () => raft.readIndex(textEncoder.encode(ctx)));
    if (refused !== undefined) {
      this.events.note(this.now, `read ${ctx} at node ${n.id} refused: ${refused.code}`);
      return;
    }
    this.checker.onReadIssued(n.id, ctx, this.now);
    this.events.note(this.now, `read ${ctx} issued at node ${n.id} (committed index ${committedBefore})`);
    this.drain(n);
  }

  private transfer(): void {
    const leader = this.leader();
    if (leader === undefined) return;
    const cs = leader.raft!.confState();
    const candidates = [...cs.voters, ...cs.votersOutgoing].filter((id) => id !== leader.id);
    // Now and then a learner or the leader itself, to see the refusal.
    const target = this.rng.nextInt(10) === 0 ? this.pick([leader.id, ...cs.learners]) : this.pick(candidates);
    if (target === undefined) return;
    this.stats.transfersRequested++;
    const raft = leader.raft!;
    const refused = this.request(leader, () => raft.transferLeadership(target));
    this.events.note(
      this.now,
      `transfer leadership ${leader.id} -> ${target}${refused === undefined ? '' : ` refused: ${refused.code}`}`,
    );
    this.drain(leader);
  }

  private changeMembership(): void {
    const leader = this.leader();
    if (leader === undefined) return;
    const cs = leader.raft!.confState();
    let cc: ConfChange;
    const created: SimNode[] = [];
    if (cs.votersOutgoing.length > 0) {
      // Joint: leave it (needed when explicit; a refusal otherwise is fine to see).
      cc = { transition: ConfChangeTransition.Auto, changes: [], context: new Uint8Array(0) };
    } else {
      const count = this.rng.nextInt(10) < 7 ? 1 : 2 + this.rng.nextInt(2);
      const changes: ConfChangeSingle[] = [];
      const touched = new Set<RaftId>();
      let voters = cs.voters.length;
      for (let k = 0; k < count; k++) {
        const kind = this.rng.nextInt(4);
        if (kind <= 1) {
          if (this.nodes.size + created.length >= MAX_NODES_PER_SCHEDULE) continue;
          if (kind === 0 && voters >= MAX_VOTERS) continue;
          const fresh = this.createNode(false);
          created.push(fresh);
          touched.add(fresh.id);
          if (kind === 0) voters++;
          changes.push({ type: kind === 0 ? ConfChangeType.AddVoter : ConfChangeType.AddLearner, nodeId: fresh.id });
        } else if (kind === 2) {
          const learner = this.pick(cs.learners.filter((id) => !touched.has(id)));
          if (learner === undefined || voters >= MAX_VOTERS) continue;
          touched.add(learner);
          voters++;
          changes.push({ type: ConfChangeType.AddVoter, nodeId: learner });
        } else {
          const victim = this.pick([...cs.voters, ...cs.learners].filter((id) => !touched.has(id)));
          if (victim === undefined) continue;
          if (cs.voters.includes(victim)) {
            if (voters <= 1) continue;
            voters--;
          }
          touched.add(victim);
          changes.push({ type: ConfChangeType.RemoveNode, nodeId: victim });
        }
      }
      if (changes.length === 0) return;
      const transitions = [
        ConfChangeTransition.Auto,
        ConfChangeTransition.JointImplicit,
        ConfChangeTransition.JointExplicit,
      ];
      const transition = this.rng.nextInt(2) === 0 ? ConfChangeTransition.Auto : this.pick(transitions)!;
      cc = { transition, changes, context: new Uint8Array(0) };
    }
    // Mostly at the leader; sometimes through a follower, which forwards it.
    const at = this.rng.nextInt(5) === 0 ? (this.pick(this.up().filter((x) => x.joined)) ?? leader) : leader;
    this.stats.confChangesProposed++;
    const raft = at.raft!;
    const refused = this.request(at, () => raft.proposeConfChange(cc));
    this.events.note(
      this.now,
      `conf change at node ${at.id}: ${describeConfChange(cc)}${refused === undefined ? '' : ` refused: ${refused.code}`}`,
    );
    if (refused !== undefined) {
      this.stats.confChangesRefused++;
      // The fresh nodes were never named in any log: retire them (their ids are still never reused).
      for (const fresh of created) {
        fresh.raft = undefined;
        fresh.storage = undefined;
        fresh.removed = true;
      }
    }
    this.drain(at);
  }

  // -------------------------------------------------------------------------------- phases

  runFaultPhase(steps: number): void {
    for (let i = 0; i < this.options.nodes; i++) this.createNode(true);
    for (let s = 0; s < steps; s++) this.step();
  }

  /** Heals every fault, then requires a leader and a fresh proposal applied on every member. */
  runLivenessPhase(maxTicks: number): void {
    this.phase = 'liveness';
    this.net.partition = undefined;
    this.net.faults = CALM_NETWORK;
    this.events.note(this.now, 'liveness phase: all faults healed');
    for (const n of this.nodes.values()) {
      if (n.crashAfterPersist) n.crashAfterPersist = false;
      if (n.raft === undefined && !n.removed) {
        this.stats.restarts++;
        this.start(n);
      }
    }
    this.probeApplied.clear();
    const startTick = this.now;
    const committedBeforeHeal = this.checker.committedIndex();
    let lastProbeTick = -Infinity;
    while (this.now - startTick < maxTicks) {
      this.step();
      const leader = this.leader();
      if (leader === undefined) continue;
      const members = membersOf(leader.raft!.confState());
      let done = this.probeApplied.size > 0;
      for (const id of members) if (!this.probeApplied.has(id)) done = false;
      if (done) {
        // Durability of acknowledged entries: everything committed before the heal, through
        // every crash of the fault phase, is applied on every member (the chain check in
        // onApplied has compared each of them entry by entry).
        for (const id of members) {
          const m = this.nodes.get(id)!;
          if (m.app.applied < committedBeforeHeal) {
            throw new SimViolation(
              ViolationKind.Durability,
              `member ${id} applied the probe but only up to ${m.app.applied}, below index ${committedBeforeHeal} committed before the heal`,
            );
          }
        }
        this.stats.livenessTicksUsed = this.now - startTick;
        this.events.note(this.now, `liveness: probe applied on all members ${[...members].join(',')}`);
        return;
      }
      // Re-propose now and then: a probe may be lost with the leader that took it.
      if (this.now - lastProbeTick >= 2 * ELECTION_TICKS) {
        const raft = leader.raft!;
        const seq = ++this.proposalSeq;
        const data = new Uint8Array(5);
        data[0] = PAYLOAD_TAG_LIVENESS;
        new DataView(data.buffer).setUint32(1, seq);
        const refused = this.request(leader, () => raft.propose(data));
        this.events.note(
          this.now,
          `liveness probe #${seq} at leader ${leader.id}${refused === undefined ? '' : ` refused: ${refused.code}`}`,
        );
        if (refused === undefined) lastProbeTick = this.now;
        this.drain(leader);
      }
    }
    const leader = this.leader();
    const members = leader !== undefined ? [...membersOf(leader.raft!.confState())] : [];
    throw new SimViolation(
      ViolationKind.Liveness,
      leader === undefined
        ? `no leader ${maxTicks} ticks after all faults healed`
        : `leader ${leader.id} but the probe was applied only on [${[...this.probeApplied].join(',')}] of members [${members.join(',')}] ${maxTicks} ticks after all faults healed`,
    );
  }

  describeNodes(): string[] {
    const out: string[] = [];
    for (const n of this.nodes.values()) {
      if (n.raft === undefined) {
        out.push(`node ${n.id}: ${n.removed ? 'removed' : 'down'} (disk: ${n.disk.unsyncedWrites()} unsynced writes)`);
        continue;
      }
      try {
        const s = n.raft.status();
        out.push(
          `node ${n.id}#${n.incarnation}: ${s.softState.role} term=${s.hardState.term} vote=${s.hardState.vote} leader=${s.softState.leader} ` +
            `commit=${s.hardState.commit} applied=${n.app.applied} last=${s.lastIndex} config=${describeConfState(s.confState)}`,
        );
      } catch (err) {
        out.push(`node ${n.id}: status() threw ${(err as Error).message}`);
      }
    }
    return out;
  }
}

function membersOf(cs: ConfState): Set<RaftId> {
  return new Set<RaftId>([...cs.voters, ...cs.votersOutgoing, ...cs.learners, ...cs.learnersNext]);
}

export function describeConfState(cs: ConfState): string {
  let s = `voters [${cs.voters.join(',')}]`;
  if (cs.votersOutgoing.length > 0)
    s += ` outgoing [${cs.votersOutgoing.join(',')}]${cs.autoLeave ? ' auto-leave' : ''}`;
  if (cs.learners.length > 0) s += ` learners [${cs.learners.join(',')}]`;
  if (cs.learnersNext.length > 0) s += ` learnersNext [${cs.learnersNext.join(',')}]`;
  return s;
}

function describeConfChange(cc: ConfChange): string {
  if (cc.changes.length === 0) return 'leave joint';
  const names = ['add-voter', 'add-learner', 'remove'];
  const transitions = ['auto', 'joint-implicit', 'joint-explicit'];
  return `${transitions[cc.transition]} ${cc.changes.map((c) => `${names[c.type]} ${c.nodeId}`).join(', ')}`;
}

/** Runs one schedule. Never throws for a violation: it is returned in `failure`. */
export function runSchedule(options: SimOptions): SimResult {
  const steps = options.steps ?? DEFAULT_STEPS;
  const sim = new Simulation(options);
  let failure: SimFailure | undefined;
  try {
    sim.runFaultPhase(steps);
    sim.runLivenessPhase(options.livenessTicks ?? DEFAULT_LIVENESS_TICKS);
  } catch (err) {
    const v =
      err instanceof SimViolation
        ? err
        : Object.assign(
            new SimViolation(ViolationKind.CoreCrash, `simulator threw ${(err as Error)?.message ?? String(err)}`),
            {
              stack: (err as Error)?.stack,
            },
          );
    failure = {
      kind: v.kind,
      detail: v.detail,
      tick: sim.now,
      phase: sim.phase,
      command: reproduceCommand({ ...options, steps }),
      events: sim.events.lines(),
      nodes: sim.describeNodes(),
      stack: v.kind === ViolationKind.CoreCrash ? v.stack : undefined,
    };
  }
  const stats: SimStats = { ...sim.stats, ...sim.checker.stats, ...sim.net.stats };
  return { seed: options.seed, nodes: options.nodes, steps, params: sim.params, stats, failure };
}

/** A failure as text: what broke, the seed, the command that reproduces it, the last events. */
export function formatFailure(result: SimResult): string {
  const f = result.failure;
  if (f === undefined) return `seed ${result.seed}: ok`;
  const lines = [
    `VIOLATION ${f.kind} at tick ${f.tick} (${f.phase} phase), seed ${result.seed}, ${result.nodes} nodes`,
    `  ${f.detail}`,
    `  reproduce: ${f.command}`,
    `  nodes:`,
    ...f.nodes.map((s) => `    ${s}`),
    `  last ${f.events.length} events:`,
    ...f.events.map((s) => `    ${s}`),
  ];
  if (f.stack !== undefined) lines.push('  stack:', ...f.stack.split('\n').map((s) => `    ${s}`));
  return lines.join('\n');
}
