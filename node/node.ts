// QuorateNode: one ledger node — a Raft peer paired with a chain — as an object an embedder can
// create in-process (createNode, node/create-node.ts). This file is the composition root: it holds
// the node's parts (built in parts.ts), its lifecycle (one NodeState), the minting wiring (what a
// Ready cycle and an applied block mean for the minter and the pool) and the public API. Every
// other job is a part with its own file and tests:
//
//   node-types.ts        NodeIo, NodeState, NodeStatus (types only)
//   parts.ts             building the parts from options + io, and how they reach one another
//   raft-link.ts         the Raft core and driver, Raft messages on the wire, role as of the last Ready
//   minter.ts            the leader's blocks (speculative minting) and the pool's stewardship
//   apply.ts             the replicated state machine: blocks, membership, snapshots, all chain-store writes
//   private-payloads.ts  fetching a block's private payloads before it is applied (retry, alarm)
//   private-catch-up.ts  after a snapshot: backfilling skipped blocks and replaying private state
//   peers.ts             the p2p allowlist, peer identity and incarnations, vouching, join polling
//   control.ts           the JSON control protocol between members ("ctl")
//   admin.ts             membership changes and leadership transfer
//   forward.ts           follower → leader transaction batches ("tx")
//   transactions.ts      transactions entering the node (verify, pool or forward, nonce retry)
//
// Data flow:
//   client tx ─► TxIntake ─► (follower: TxForwarder ─► leader's pool) ─► leader's pool
//   leader: every blockTimeMs the BlockMinter (minter.ts) builds a block from the pool (possibly
//           on top of its own not-yet-applied blocks) and proposes it as one Raft entry
//   every node: the Raft driver persists, sends, and hands committed entries to the ChainApplier;
//           its hooks (NodeHost, below) update the pool, the minter, the allowlist and the listeners.
// Nothing here opens a file or a socket, reads the time or schedules work but through the Clock.

import type { PeerTransport } from '../p2p/transport.js';
import type { Address, Block, ChainState, ChainStore, Op, Transaction, TxPool } from './chain/index.js';
import { raceDeadline } from './abort.js';
import type { PrivateCatchUpView } from './apply.js';
import type { TimerHandle } from './clock.js';
import type { ExpectedIdentity } from './control.js';
import { toNodeError } from './error-map.js';
import { NodeError, NodeErrorCode, nodeAssert } from './errors.js';
import type { Logger } from './log.js';
import type { MemberInfo, MembershipState } from './membership.js';
import type { NodeOptions } from './options.js';
import { buildParts, buildPool, serveChannels, type NodeHost, type NodeParts } from './parts.js';
import type { PrivacyProvider } from './privacy-provider.js';
import type { RaftStatusPart, RaftViewChange } from './raft-link.js';
import { NodeState, type CommittedBlockEvent, type NodeIo, type NodeStatus } from './node-types.js';

export type { PrivacyProvider } from './privacy-provider.js';
export type { MembershipStore } from './apply.js';
export type { BootstrapPeer } from './peers.js';
export { CHANNEL_RAFT } from './raft-link.js';
export { NodeState } from './node-types.js';
export type { CommittedBlockEvent, NodeIo, NodeRole, NodeStatus } from './node-types.js';

/** How often a node checks whether it lags behind a membership change (PeerAdmission.refreshVouched). */
const VOUCH_CHECK_MS = 1_000;
/** How often the pool drops transactions that waited behind a nonce gap past their lifetime. */
const POOL_EXPIRY_CHECK_MS = 30_000;
/** status()'s Raft half while a --join node waits for its id. */
const NOT_YET_RAFT: RaftStatusPart = {
  term: 0,
  role: 'learner',
  leader: null,
  commitIndex: 0,
  voters: [],
  learners: [],
  joint: false,
};

export class QuorateNode {
  readonly options: NodeOptions;
  private readonly io: NodeIo;
  private readonly log: Logger;
  private state = NodeState.Created;
  /** Why the node failed (NodeState.Failed), for status() and refusals. */
  private failure: string | undefined;
  private raftId: number;
  private pool!: TxPool;
  private readonly parts: NodeParts;
  /** The periodic work of a running node (vouching, pool expiry, minting). */
  private readonly timers: TimerHandle[] = [];
  private readonly blockListeners = new Set<(e: CommittedBlockEvent) => void>();
  private readonly membershipListeners = new Set<(m: MembershipState) => void>();

  constructor(options: NodeOptions, io: NodeIo) {
    this.options = options;
    this.io = io;
    this.log = io.logger;
    this.raftId = options.raftId;
    const host: NodeHost = {
      raftId: () => this.raftId,
      state: () => this.state,
      pool: () => this.pool,
      fail: (err) => this.fail(err),
      assertRunning: () => this.assertRunning(),
      removed: () => {
        if (this.state !== NodeState.Running) return;
        this.state = NodeState.Removed;
        this.stopTimers();
      },
      blockApplied: (block, raftIndex, mine) => this.onBlockApplied(block, raftIndex, mine),
      membershipChanged: () => this.membershipChanged(),
      afterReady: (change) => this.afterReady(change),
    };
    this.parts = buildParts(options, io, host);
  }

  // ------------------------------------------------------------------ lifecycle

  async start(): Promise<void> {
    nodeAssert(this.state === NodeState.Created, 'QuorateNode.start called twice');
    this.state = NodeState.Starting;
    const { applier, peers, catchUp } = this.parts;
    await applier.load();
    this.pool = buildPool(this.options, this.io, this.parts);
    await peers.start();
    serveChannels(this.options, this.io, this.parts);
    this.membershipChanged();
    await this.io.transport.start();
    // A restart in the middle of a catch-up resumes it where the store says it stopped.
    catchUp.start();
    if (this.raftId === 0) this.pollForId();
    else await this.startRaft();
  }

  async stop(): Promise<void> {
    if (this.state === NodeState.Stopped) return;
    this.state = NodeState.Stopped;
    this.stopTimers();
    await this.parts.catchUp.stop();
    await this.parts.raft.stop();
    await this.parts.applier.closeSnapshots();
    await this.io.transport.stop();
    this.parts.admin.stop();
  }

  private stopTimers(): void {
    for (const t of this.timers.splice(0)) t.cancel();
    this.parts.peers.stopWaiting();
  }

  private fail(err: unknown): void {
    if (this.state === NodeState.Failed || this.state === NodeState.Stopped) return;
    this.state = NodeState.Failed;
    this.failure = err instanceof Error ? err.message : String(err);
    this.log.fatal({ err }, 'node stopped on a fatal error');
    this.stopTimers();
    this.io.onFatal?.(err);
  }

  private assertRunning(): void {
    switch (this.state) {
      case NodeState.Running:
        return;
      case NodeState.Stopped:
        throw new NodeError(NodeErrorCode.Unavailable, 'node is stopped');
      case NodeState.Failed:
        throw new NodeError(NodeErrorCode.Unavailable, `node stopped on a fatal error: stopped: ${this.failure}`);
      case NodeState.Removed:
        throw new NodeError(NodeErrorCode.Unavailable, 'this node was removed from the cluster');
      default:
        throw new NodeError(NodeErrorCode.Unavailable, 'this node has not joined the cluster yet');
    }
  }

  /** Starting → Running: builds Raft for the now-known id, then runs it and the node's periodic work. */
  private async startRaft(): Promise<void> {
    const { raft, peers, minter, applier } = this.parts;
    await raft.create(this.raftId);
    if (this.state !== NodeState.Starting) return; // stopped or failed meanwhile
    this.state = NodeState.Running;
    raft.start();
    peers.identifyConnected();
    const clock = this.io.clock;
    this.timers.push(
      clock.setInterval(() => void peers.refreshVouched(), VOUCH_CHECK_MS),
      clock.setInterval(() => minter.expirePool(), Math.min(POOL_EXPIRY_CHECK_MS, this.pool.queuedLifetimeMs)),
      clock.setInterval(() => minter.mint(), this.options.block.blockTimeMs),
    );
    this.log.info(
      { raftId: this.raftId, applied: applier.appliedIndex(), head: applier.chain.head.header.number },
      'raft started',
    );
  }

  /** A node started with --join waits for its id (PeerAdmission.waitForRaftId), then runs Raft. */
  private pollForId(): void {
    this.parts.peers.waitForRaftId(
      () => this.state === NodeState.Starting && this.raftId === 0,
      async (id) => {
        this.raftId = id;
        await this.io.persistRaftId?.(id);
        this.parts.peers.updatePeers();
        await this.startRaft();
      },
    );
  }

  // ------------------------------------------------------------------ minting wiring (NodeHost)

  /** After every Ready cycle: a deposed leader drops its speculative blocks, a follower hands its pool over. */
  private afterReady(c: RaftViewChange): void {
    const { minter, admin } = this.parts;
    if (c.prevRole === 'leader' && c.role !== 'leader') minter.reset();
    if (c.role !== 'leader' && c.leader !== 0 && this.pool.size > 0)
      void minter.handOverPool(this.options.pool.txPoolMaxTransactions);
    if (c.prevRole !== 'leader' && c.role === 'leader') this.pool.resetInFlight();
    admin.afterReady();
  }

  private onBlockApplied(block: Block, raftIndex: number, mine: boolean): void {
    this.parts.minter.applied(block, mine);
    this.parts.intake.onCommitted(block.transactions);
    for (const l of this.blockListeners) l({ block, raftIndex });
  }

  /** The allowlist and the listeners follow the applied membership. */
  private membershipChanged(): void {
    this.parts.peers.updatePeers();
    for (const l of this.membershipListeners) l(this.parts.applier.membership);
  }

  // ------------------------------------------------------------------ public API: membership

  addPeer(p2pAddress: string, signal?: AbortSignal, expect?: ExpectedIdentity): Promise<number> {
    return this.parts.admin.addPeer(p2pAddress, expect, signal);
  }
  addLearner(p2pAddress: string, signal?: AbortSignal, expect?: ExpectedIdentity): Promise<number> {
    return this.parts.admin.addLearner(p2pAddress, expect, signal);
  }
  promoteToPeer(raftId: number, signal?: AbortSignal): Promise<void> {
    return this.parts.admin.promote(raftId, signal);
  }
  removePeer(raftId: number, signal?: AbortSignal): Promise<void> {
    return this.parts.admin.remove(raftId, signal);
  }
  transferLeadership(raftId: number, signal?: AbortSignal): Promise<void> {
    return this.parts.admin.transfer(raftId, signal);
  }

  // ------------------------------------------------------------------ public API: transactions

  /** Submits a client-signed transaction (raw bytes). Resolves with its hash once accepted by the leader's pool. */
  async submitRaw(bytes: Uint8Array, signal?: AbortSignal): Promise<string> {
    this.assertRunning();
    return this.parts.intake.submitRaw(bytes, signal);
  }

  async submit(tx: Transaction, signal?: AbortSignal): Promise<string> {
    this.assertRunning();
    return this.parts.intake.submit(tx, signal);
  }

  /** quorate_sendTransaction: signs with a key this node holds. */
  async sendTransaction(
    request: { from: Address; ops: readonly Op[]; privateFor?: readonly string[] },
    signal?: AbortSignal,
  ): Promise<string> {
    this.assertRunning();
    return this.parts.intake.sendTransaction(request, signal);
  }

  // ------------------------------------------------------------------ public API: reads

  /** A linearizable read barrier (ReadIndex): after it resolves, local state reflects every write committed before the call. */
  async readBarrier(signal?: AbortSignal): Promise<void> {
    this.assertRunning();
    const timeoutMs = this.options.admin.changeTimeoutMs;
    await raceDeadline(
      this.parts.raft.readBarrier(),
      { clock: this.io.clock, ...(signal ? { timeoutMs, signal } : {}) },
      () => new NodeError(NodeErrorCode.Timeout, `linearizable read within ${timeoutMs} ms: its outcome is unknown`),
    ).catch((err: unknown) => Promise.reject(toNodeError(err)));
  }

  /** While this node catches up after a snapshot: how far its private state lags (private reads wait). */
  privateCatchUp(): PrivateCatchUpView | undefined {
    return this.parts.applier.privateCatchUp();
  }

  get chainState(): ChainState {
    return this.parts.applier.chain;
  }
  get store(): ChainStore {
    return this.io.chainStore;
  }
  get membership(): MembershipState {
    return this.parts.applier.membership;
  }
  get accounts(): readonly Address[] {
    return this.parts.intake.accounts;
  }
  get chainId(): number {
    return this.io.genesis.chainId;
  }
  get transport(): PeerTransport {
    return this.io.transport;
  }
  get privacy(): PrivacyProvider | undefined {
    return this.io.privacy;
  }
  get poolSize(): number {
    return this.pool?.size ?? 0;
  }
  get lifecycle(): NodeState {
    return this.state;
  }

  /**
   * Called with the membership now and after every applied change (and snapshot install): every
   * node sees the same sequence. The transaction manager's key directory follows it.
   */
  onMembership(listener: (m: MembershipState) => void): () => void {
    this.membershipListeners.add(listener);
    if (this.parts.applier.loaded) listener(this.parts.applier.membership);
    return () => this.membershipListeners.delete(listener);
  }

  onBlock(listener: (e: CommittedBlockEvent) => void): () => void {
    this.blockListeners.add(listener);
    return () => this.blockListeners.delete(listener);
  }

  roleOfMember(raftId: number): 'verifier' | 'learner' | undefined {
    return this.parts.raft.roleOfMember(raftId);
  }

  status(): NodeStatus {
    const { applier, payloads } = this.parts;
    const base = {
      raftId: this.raftId,
      state: this.state,
      head: applier.loaded ? applier.chain.head.header.number : 0,
      peers: this.io.transport.connectedPeers().length,
      appliedIndex: applier.appliedIndex(),
    };
    const alarm =
      this.failure !== undefined
        ? `stopped: ${this.failure}`
        : this.state === NodeState.Removed
          ? 'this node was removed from the cluster'
          : payloads.alarm;
    const raft = this.parts.raft.status();
    if (!raft) return { ...base, ...NOT_YET_RAFT, alarm: alarm ?? 'waiting to be added to the cluster' };
    return { ...base, ...raft, ...(alarm ? { alarm } : {}) };
  }
}

/** The genesis membership from init's genesis members (raft ids 1..N). */
export function genesisMembership(members: readonly MemberInfo[]): MembershipState {
  const maxId = members.reduce((m, x) => Math.max(m, x.raftId), 0);
  return { members: [...members], nextRaftId: maxId + 1, removed: [] };
}
