// QuorateNode: one ledger node — a Raft peer paired with a chain — as an object an embedder can
// create in-process (createNode, node/create-node.ts). This file is the composition root: it
// builds the node's parts, holds its lifecycle (one NodeState), wires Raft to the transport and
// the state machine, and offers the public API. Every other job is a part with its own file and tests:
//
//   node-types.ts        NodeIo, NodeState, NodeStatus (types only)
//   minter.ts            the leader's blocks (speculative minting) and the pool's stewardship
//   apply.ts             the replicated state machine: blocks, membership, snapshots, all chain-store writes
//   private-payloads.ts  fetching a block's private payloads before it is applied (retry, alarm)
//   private-catch-up.ts  after a snapshot: backfilling skipped blocks and replaying private state
//   peers.ts             the p2p allowlist, peer identity and incarnations, vouching
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
//           its hooks (below) update the pool, the minter, the allowlist and answer waiting RPCs.
// Nothing here opens a file or a socket, reads the time or schedules work but through the Clock.

import {
  RaftNode,
  Role,
  SeededRng,
  bootstrapSnapshot,
  type ConfState,
  type LogIndex,
  type Message,
  type RaftId,
} from '../consensus/index.js';
import { RefusalLog } from '../p2p/access.js';
import type { PeerTransport } from '../p2p/transport.js';
import {
  TxPool,
  VerifiedTxCache,
  getNonce,
  type Address,
  type Block,
  type ChainState,
  type ChainStore,
  type Op,
  type Transaction,
} from './chain/index.js';
import { raceDeadline } from './abort.js';
import { ChainApplier, type PrivateCatchUpView } from './apply.js';
import { CHANNEL_BLOCKS, serveBlockRange } from './catch-up.js';
import type { TimerHandle } from './clock.js';
import { ControlChannel, type ExpectedIdentity, type SelfDescription } from './control.js';
import { toNodeError } from './error-map.js';
import { NodeError, NodeErrorCode, nodeAssert } from './errors.js';
import { TxForwarder } from './forward.js';
import type { Logger } from './log.js';
import { findMember, findMemberByPeerId, roleOf, type MemberInfo, type MembershipState } from './membership.js';
import type { NodeOptions } from './options.js';
import { PeerAdmission, dialablePart } from './peers.js';
import { PrivateCatchUp } from './private-catch-up.js';
import { PayloadFetcher } from './private-payloads.js';
import type { PrivacyProvider } from './privacy-provider.js';
import { decodeRaftMessage, encodeRaftMessage } from './raft/codec.js';
import { RaftDriver } from './raft/driver.js';
import { raftLiveStatus } from './raft-status.js';
import { CHANNEL_SNAPSHOT, SnapshotFetcher, SnapshotServer } from './snapshot-transfer.js';
import { MembershipAdmin } from './admin.js';
import { BlockMinter } from './minter.js';
import { NodeState, type CommittedBlockEvent, type NodeIo, type NodeRole, type NodeStatus } from './node-types.js';
import { TxIntake } from './transactions.js';

export type { PrivacyProvider } from './privacy-provider.js';
export type { MembershipStore } from './apply.js';
export type { BootstrapPeer } from './peers.js';

/** The p2p channel of Raft messages (the others: catch-up.ts, control.ts, forward.ts). */
export const CHANNEL_RAFT = 'raft';

/** How often a node checks whether it lags behind a membership change (PeerAdmission.refreshVouched). */
const VOUCH_CHECK_MS = 1_000;
/** How often the pool drops transactions that waited behind a nonce gap past their lifetime. */
const POOL_EXPIRY_CHECK_MS = 30_000;

export { NodeState } from './node-types.js';
export type { CommittedBlockEvent, NodeIo, NodeRole, NodeStatus } from './node-types.js';

export class QuorateNode {
  readonly options: NodeOptions;
  private readonly io: NodeIo;
  private readonly log: Logger;
  private state = NodeState.Created;
  /** Why the node failed (NodeState.Failed), for status() and refusals. */
  private failure: string | undefined;
  private raftId: number;
  private raft?: RaftNode;
  private driver?: RaftDriver;
  private pool!: TxPool;
  private readonly verifiedTxs = new VerifiedTxCache();
  /** The periodic work of a running node (vouching, pool expiry, minting). */
  private readonly timers: TimerHandle[] = [];
  private readonly blockListeners = new Set<(e: CommittedBlockEvent) => void>();
  private readonly membershipListeners = new Set<(m: MembershipState) => void>();

  // Parts.
  private readonly control: ControlChannel;
  private readonly payloads: PayloadFetcher;
  private readonly applier: ChainApplier;
  private readonly snapshotServer: SnapshotServer;
  private readonly catchUp: PrivateCatchUp;
  private readonly peers: PeerAdmission;
  private readonly admin: MembershipAdmin;
  private readonly forwarder: TxForwarder;
  private readonly intake: TxIntake;
  private readonly minter: BlockMinter;

  // Raft as of the last Ready (isLeaderNow/leaderNow read the core's live view).
  private role: NodeRole = 'follower';
  private leaderId = 0;
  private term = 0;

  constructor(options: NodeOptions, io: NodeIo) {
    this.options = options;
    this.io = io;
    this.log = io.logger;
    this.raftId = options.raftId;
    const { transport, clock, logger } = io;
    const membership = () => this.applier.membership;
    this.control = new ControlChannel(transport);
    this.payloads = new PayloadFetcher({ privacy: io.privacy, clock, logger, stopped: () => this.stopped });
    this.snapshotServer = new SnapshotServer({
      clock,
      logger,
      isMember: (peerId) => findMemberByPeerId(this.applier.membership, peerId) !== undefined,
      maxConcurrentTransfers: options.raft.snapshotMaxConcurrentTransfers,
    });
    const snapshotFetcher = new SnapshotFetcher({
      transport,
      store: io.chainStore,
      clock,
      logger,
      chunkBytes: options.raft.snapshotChunkBytes,
      // The MsgSnap's sender (the leader) first, then every other member that may hold the same snapshot.
      candidates: (from) => {
        const first = from === undefined ? undefined : this.peers.peerOf(from)?.peerId;
        const rest = this.applier.membership.members.filter((m) => m.raftId !== this.raftId).map((m) => m.peerId);
        return [...new Set([...(first ? [first] : []), ...rest])];
      },
    });
    this.applier = new ChainApplier({
      snapshots: { server: this.snapshotServer, fetcher: snapshotFetcher },
      store: io.chainStore,
      genesis: io.genesis,
      genesisMembership: io.genesisMembership,
      app: io.app,
      verifiedTxs: this.verifiedTxs,
      payloads: this.payloads,
      logger,
      stopped: () => this.stopped,
      hooks: {
        ownBlock: (hash) => this.minter.ownBlock(hash),
        blockApplied: (block, raftIndex, mine) => this.onBlockApplied(block, raftIndex, mine),
        blockNoop: (mine) => mine && this.minter.reset(),
        membershipChanged: (ctx) => {
          this.membershipChanged();
          if (!ctx) return;
          if (ctx.op === 'remove' && ctx.raftId === this.raftId && this.state === NodeState.Running) {
            this.state = NodeState.Removed;
            this.stopTimers();
          }
          this.admin.onApplied(ctx);
        },
        snapshotInstalled: () => {
          this.minter.reset();
          this.membershipChanged();
          this.catchUp.start();
        },
      },
    });
    this.catchUp = new PrivateCatchUp({
      applier: this.applier,
      blocks: io.chainStore,
      payloads: this.payloads,
      transport,
      clock,
      logger,
      leader: () => this.leaderId,
      active: () => this.state === NodeState.Running || this.state === NodeState.Starting,
      onFatal: (err) => this.fail(err),
    });
    this.peers = new PeerAdmission({
      transport,
      control: this.control,
      store: io.chainStore,
      clock,
      logger,
      incarnation: io.incarnation,
      bootstrapPeers: io.bootstrapPeers,
      addressOverrides: io.addressOverrides,
      self: () => this.raftId,
      membership,
      leader: () => this.leaderId,
      onRefused: (err) => this.fail(err),
    });
    this.admin = new MembershipAdmin(options.admin, {
      control: this.control,
      clock,
      self: () => this.raftId,
      membership,
      isLeader: () => this.isLeaderNow(),
      leader: () => this.leaderNow(),
      raft: () =>
        this.driver && this.raft
          ? {
              proposeConfChange: (cc) => this.driver!.proposeConfChange(cc),
              transferLeadership: (to) => this.driver!.call((r) => r.transferLeadership(to)),
              confState: () => this.raft!.confState(),
            }
          : undefined,
      admitAlso: (extra) => this.peers.updatePeers(extra),
      assertRunning: () => this.assertRunning(),
    });
    this.forwarder = new TxForwarder(options.forward, {
      transport,
      clock,
      self: () => this.raftId,
      leader: () => findMember(membership(), this.leaderNow()),
      isMember: (peerId) => findMemberByPeerId(membership(), peerId) !== undefined,
      assertLeader: () => {
        if (this.isLeaderNow()) return;
        const leader = this.leaderNow();
        throw new NodeError(
          NodeErrorCode.NotLeader,
          `this node is no longer the leader (leader: ${leader || 'unknown'})`,
          {
            leader: leader || null,
            leaderRpcUrl: findMember(membership(), leader)?.rpcUrl ?? null,
          },
        );
      },
      accept: (tx, from) => this.intake.acceptForwarded(tx, from),
    });
    this.intake = new TxIntake({
      chainId: io.genesis.chainId,
      verifiedTxs: this.verifiedTxs,
      pool: () => this.pool,
      forwarder: this.forwarder,
      isLeader: () => this.isLeaderNow(),
      committedNonce: (a) => getNonce(this.applier.chain.state, a),
      accountKeys: io.accountKeys,
      privacy: io.privacy,
      refusals: new RefusalLog(logger, () => clock.monotonicMs()),
    });
    this.minter = new BlockMinter(options.block, {
      app: io.app,
      chainId: io.genesis.chainId,
      minterKey: io.minterKey,
      verifiedTxs: this.verifiedTxs,
      clock,
      logger,
      pool: () => this.pool,
      chain: () => this.applier.chain,
      forwarder: this.forwarder,
      self: () => this.raftId,
      term: () => this.term,
      mayPropose: () => this.role === 'leader' && this.driver !== undefined && this.state === NodeState.Running,
      propose: (data) => this.driver!.propose(data),
    });
  }

  // ------------------------------------------------------------------ lifecycle

  async start(): Promise<void> {
    nodeAssert(this.state === NodeState.Created, 'QuorateNode.start called twice');
    this.state = NodeState.Starting;
    const { transport, clock } = this.io;
    await this.applier.load();
    const pool = this.options.pool;
    this.pool = new TxPool({
      chainId: this.io.genesis.chainId,
      app: this.io.app,
      nonceOf: (a) => getNonce(this.applier.chain.state, a),
      verifiedTxs: this.verifiedTxs,
      maxTxs: pool.txPoolMaxTransactions,
      maxNonceGap: pool.txPoolMaxPerSender,
      queuedLifetimeMs: pool.txPoolQueuedLifetimeMs,
      maxDrainMs: pool.txPoolMaxDrainMs,
      nowMs: () => clock.monotonicMs(),
    });
    await this.peers.start();
    transport.onMessage(CHANNEL_RAFT, (from, data) => this.onRaftMessage(from, data));
    transport.onRequest(CHANNEL_SNAPSHOT, (from, data) => this.snapshotServer.handle(from, data));
    transport.onRequest(CHANNEL_BLOCKS, (from, data) =>
      serveBlockRange(
        {
          isMember: (peerId) => findMemberByPeerId(this.applier.membership, peerId) !== undefined,
          head: () => this.applier.chain.head.header.number,
          getBlock: (n) => this.io.chainStore.getBlockByNumber(n),
          getReceipt: (hash) => this.io.chainStore.getReceipt(hash),
        },
        from,
        data,
      ),
    );
    this.forwarder.serve();
    this.control.serve({
      hello: () => this.selfDescription(),
      ident: (from, raftId, incarnation) => this.peers.answerIdent(from, raftId, incarnation),
      members: (from) => this.peers.answerMembers(from),
      whoami: (from) => ({ raftId: findMemberByPeerId(this.applier.membership, from)?.raftId ?? null }),
      admin: (from, req, signal) => this.admin.answer(from, req, signal),
    });
    this.membershipChanged();
    await transport.start();
    // A restart in the middle of a catch-up resumes it where the store says it stopped.
    this.catchUp.start();
    if (this.raftId === 0) this.pollForId();
    else await this.startRaft();
  }

  async stop(): Promise<void> {
    if (this.state === NodeState.Stopped) return;
    this.state = NodeState.Stopped;
    this.stopTimers();
    await this.catchUp.stop();
    await this.driver?.stop();
    await this.applier.closeSnapshots();
    await this.io.transport.stop();
    this.admin.stop();
  }

  private get stopped(): boolean {
    return this.state === NodeState.Stopped;
  }

  private stopTimers(): void {
    for (const t of this.timers.splice(0)) t.cancel();
    this.peers.stopWaiting();
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

  private async startRaft(): Promise<void> {
    const storage = this.io.raftStorage;
    const o = this.options.raft;
    const joining = this.io.genesisMembership.members.every((m) => m.raftId !== this.raftId);
    if (storage.lastIndex() === 0 && storage.snapshot().metadata.index === 0 && !joining) {
      // A brand-new genesis member: every initial member bootstraps the same first snapshot, so
      // the cluster's log never starts at index 1 and later joiners are caught up by snapshot.
      const voters = this.io.genesisMembership.members.map((m) => m.raftId as RaftId);
      await storage.applySnapshot(bootstrapSnapshot(voters));
    }
    this.raft = new RaftNode({
      id: this.raftId as RaftId,
      storage,
      rng: new SeededRng(o.seed),
      electionTicks: o.electionTicks,
      heartbeatTicks: o.heartbeatTicks,
      appliedIndex: Math.max(this.applier.appliedIndex(), storage.snapshot().metadata.index) as LogIndex,
      maxMessageBytes: o.raftMaxMessageBytes,
      maxInflightMessages: o.raftMaxInflightMessages,
      maxUncommittedEntriesBytes: o.raftMaxUncommittedBytes,
      maxProposalBytes: this.options.block.blockMaxBytes,
      // Ids are never reused: the replicated membership remembers every removed one.
      removedIds: this.applier.membership.removed as RaftId[],
    });
    await this.applier.restoreIfBehind(storage.snapshot());
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
        sender: { send: (m) => this.sendRaft(m) },
        stateMachine: this.applier,
        clock: this.io.clock,
        onCycle: () => this.afterReady(),
        onFatal: (err) => this.fail(err),
      },
    );
    if (this.state !== NodeState.Starting) return; // stopped or failed meanwhile
    this.state = NodeState.Running;
    this.driver.start();
    this.peers.identifyConnected();
    const clock = this.io.clock;
    this.timers.push(
      clock.setInterval(() => void this.peers.refreshVouched(), VOUCH_CHECK_MS),
      clock.setInterval(() => this.minter.expirePool(), Math.min(POOL_EXPIRY_CHECK_MS, this.pool.queuedLifetimeMs)),
      clock.setInterval(() => this.minter.mint(), this.options.block.blockTimeMs),
    );
    // A single-voter cluster elects itself at once instead of waiting an election timeout.
    const cs = this.raft.confState();
    if (cs.voters.length === 1 && cs.voters[0] === this.raftId && cs.votersOutgoing.length === 0)
      void this.driver.call((r) => r.campaign());
    this.log.info(
      { raftId: this.raftId, applied: this.applier.appliedIndex(), head: this.applier.chain.head.header.number },
      'raft started',
    );
  }

  /** A node started with --join waits for its id (PeerAdmission.waitForRaftId), then runs Raft. */
  private pollForId(): void {
    this.peers.waitForRaftId(
      () => this.state === NodeState.Starting && this.raftId === 0,
      async (id) => {
        this.raftId = id;
        await this.io.persistRaftId?.(id);
        this.peers.updatePeers();
        await this.startRaft();
      },
    );
  }

  private selfDescription(): SelfDescription {
    return {
      name: this.options.nodeId,
      peerId: this.io.transport.localPeerId,
      p2pAddrs: this.io.transport.listenAddrs().map(dialablePart),
      rpcUrl: this.options.rpcUrl,
      tmUrl: this.options.tmUrl,
      signingKey: Buffer.from(this.io.minterKey.publicKeyRaw).toString('base64'),
      enclaveKeys: [...this.io.enclaveKeys],
    };
  }

  // ------------------------------------------------------------------ Raft messages and Ready

  private sendRaft(m: Message): void {
    const member = this.peers.peerOf(m.to);
    if (!member) return; // not (yet) known here: Raft retries once the membership is applied
    try {
      this.io.transport.send(member.peerId, CHANNEL_RAFT, encodeRaftMessage(m));
    } catch (err) {
      this.log.warn({ err, to: m.to, type: m.type }, 'raft message not sent');
      if (m.snapshot) void this.driver?.call((r) => r.reportSnapshot(m.to, false));
    }
  }

  private onRaftMessage(from: string, data: Uint8Array): void {
    if (!this.driver) return;
    let m: Message;
    try {
      m = decodeRaftMessage(data);
    } catch (err) {
      this.peers.warnOnce(from, { err }, 'undecodable raft message dropped');
      return;
    }
    if (this.peers.admitsRaftMessage(from, m)) this.driver.step(m);
  }

  /** After every Ready cycle: follow role changes, release answered changes. */
  private afterReady(): void {
    const live = raftLiveStatus(this.raft!);
    const prevRole = this.role;
    const prevLeader = this.leaderId;
    this.term = live.term;
    this.leaderId = live.leader;
    this.role = roleName(live.role, this.raftId, () => this.raft!.confState());
    if (prevRole === 'leader' && this.role !== 'leader') this.minter.reset();
    if (this.role !== 'leader' && this.leaderId !== 0 && this.pool.size > 0)
      void this.minter.handOverPool(this.options.pool.txPoolMaxTransactions);
    if (prevRole !== 'leader' && this.role === 'leader') this.pool.resetInFlight();
    if (prevRole !== this.role || prevLeader !== this.leaderId)
      this.log.info({ role: this.role, term: this.term, leader: this.leaderId }, 'raft role changed');
    this.admin.afterReady();
  }

  /** The core's view right now (this.role lags it until the next Ready cycle ends). */
  private isLeaderNow(): boolean {
    return this.raft !== undefined && raftLiveStatus(this.raft).role === Role.Leader;
  }

  private leaderNow(): number {
    return this.raft ? raftLiveStatus(this.raft).leader : 0;
  }

  // ------------------------------------------------------------------ applied entries (ApplyHooks)

  private onBlockApplied(block: Block, raftIndex: number, mine: boolean): void {
    this.minter.applied(block, mine);
    this.intake.onCommitted(block.transactions);
    for (const l of this.blockListeners) l({ block, raftIndex });
  }

  /** The allowlist and the listeners follow the applied membership. */
  private membershipChanged(): void {
    this.peers.updatePeers();
    for (const l of this.membershipListeners) l(this.applier.membership);
  }

  // ------------------------------------------------------------------ public API: membership

  addPeer(p2pAddress: string, signal?: AbortSignal, expect?: ExpectedIdentity): Promise<number> {
    return this.admin.addPeer(p2pAddress, expect, signal);
  }
  addLearner(p2pAddress: string, signal?: AbortSignal, expect?: ExpectedIdentity): Promise<number> {
    return this.admin.addLearner(p2pAddress, expect, signal);
  }
  promoteToPeer(raftId: number, signal?: AbortSignal): Promise<void> {
    return this.admin.promote(raftId, signal);
  }
  removePeer(raftId: number, signal?: AbortSignal): Promise<void> {
    return this.admin.remove(raftId, signal);
  }
  transferLeadership(raftId: number, signal?: AbortSignal): Promise<void> {
    return this.admin.transfer(raftId, signal);
  }

  // ------------------------------------------------------------------ public API: transactions

  /** Submits a client-signed transaction (raw bytes). Resolves with its hash once accepted by the leader's pool. */
  async submitRaw(bytes: Uint8Array, signal?: AbortSignal): Promise<string> {
    this.assertRunning();
    return this.intake.submitRaw(bytes, signal);
  }

  async submit(tx: Transaction, signal?: AbortSignal): Promise<string> {
    this.assertRunning();
    return this.intake.submit(tx, signal);
  }

  /** quorate_sendTransaction: signs with a key this node holds. */
  async sendTransaction(
    request: { from: Address; ops: readonly Op[]; privateFor?: readonly string[] },
    signal?: AbortSignal,
  ): Promise<string> {
    this.assertRunning();
    return this.intake.sendTransaction(request, signal);
  }

  // ------------------------------------------------------------------ public API: reads

  /** A linearizable read barrier (ReadIndex): after it resolves, local state reflects every write committed before the call. */
  async readBarrier(signal?: AbortSignal): Promise<void> {
    this.assertRunning();
    const timeoutMs = this.options.admin.changeTimeoutMs;
    await raceDeadline(
      this.driver!.readBarrier(),
      { clock: this.io.clock, ...(signal ? { timeoutMs, signal } : {}) },
      () => new NodeError(NodeErrorCode.Timeout, `linearizable read within ${timeoutMs} ms: its outcome is unknown`),
    ).catch((err: unknown) => Promise.reject(toNodeError(err)));
  }

  /** While this node catches up after a snapshot: how far its private state lags (private reads wait). */
  privateCatchUp(): PrivateCatchUpView | undefined {
    return this.applier.privateCatchUp();
  }

  get chainState(): ChainState {
    return this.applier.chain;
  }
  get store(): ChainStore {
    return this.io.chainStore;
  }
  get membership(): MembershipState {
    return this.applier.membership;
  }
  get accounts(): readonly Address[] {
    return this.intake.accounts;
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
    if (this.applier.loaded) listener(this.applier.membership);
    return () => this.membershipListeners.delete(listener);
  }

  onBlock(listener: (e: CommittedBlockEvent) => void): () => void {
    this.blockListeners.add(listener);
    return () => this.blockListeners.delete(listener);
  }

  roleOfMember(raftId: number): 'verifier' | 'learner' | undefined {
    return this.raft ? roleOf(this.raft.confState(), raftId) : undefined;
  }

  status(): NodeStatus {
    const base = {
      raftId: this.raftId,
      state: this.state,
      head: this.applier.loaded ? this.applier.chain.head.header.number : 0,
      peers: this.io.transport.connectedPeers().length,
      appliedIndex: this.applier.appliedIndex(),
    };
    const alarm = this.alarm();
    if (!this.raft) {
      return {
        ...base,
        term: 0,
        role: 'learner',
        leader: null,
        commitIndex: 0,
        voters: [],
        learners: [],
        joint: false,
        alarm: alarm ?? 'waiting to be added to the cluster',
      };
    }
    const s = this.raft.status();
    const cs = s.confState;
    return {
      ...base,
      term: s.hardState.term,
      role: roleName(s.softState.role, this.raftId, () => cs),
      leader: s.softState.leader || null,
      commitIndex: s.hardState.commit,
      voters: [...new Set([...cs.voters, ...cs.votersOutgoing])],
      learners: [...cs.learners, ...cs.learnersNext],
      joint: cs.votersOutgoing.length > 0,
      ...(alarm ? { alarm } : {}),
    };
  }

  private alarm(): string | undefined {
    if (this.failure !== undefined) return `stopped: ${this.failure}`;
    if (this.state === NodeState.Removed) return 'this node was removed from the cluster';
    return this.payloads.alarm;
  }
}

/** The node's role name for the RPC: a follower that is a learner in the configuration says so. */
function roleName(role: Role, self: number, conf: () => ConfState): NodeRole {
  if (role === Role.Leader) return 'leader';
  if (role === Role.Candidate || role === Role.PreCandidate) return 'candidate';
  const cs = conf();
  return cs.learners.includes(self as RaftId) || cs.learnersNext.includes(self as RaftId) ? 'learner' : 'follower';
}

/** The genesis membership from init's genesis members (raft ids 1..N). */
export function genesisMembership(members: readonly MemberInfo[]): MembershipState {
  const maxId = members.reduce((m, x) => Math.max(m, x.raftId), 0);
  return { members: [...members], nextRaftId: maxId + 1, removed: [] };
}
