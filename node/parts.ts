// The node's parts, built from its options and IO edges: the one place that says which part is
// given what, and how their callbacks reach one another (node/node.ts holds the result).
//
// Owns: constructing every part (and the pool, once the chain is loaded), the forwarder's
// not-the-leader refusal, the description this node gives of itself to the other members, and
// registering the parts' p2p channels. May not touch: the lifecycle or the node's listeners (it
// reads and reaches them only through NodeHost), any state of its own (it returns the parts and
// keeps nothing), or IO but through NodeIo.

import { RefusalLog } from '../p2p/access.js';
import { TxPool, VerifiedTxCache, getNonce, type Block } from './chain/index.js';
import { ChainApplier } from './apply.js';
import { CHANNEL_BLOCKS, serveBlockRange } from './catch-up.js';
import { ControlChannel, type SelfDescription } from './control.js';
import { NodeError, NodeErrorCode } from './errors.js';
import { TxForwarder } from './forward.js';
import { MembershipAdmin } from './admin.js';
import { findMember, findMemberByPeerId } from './membership.js';
import { BlockMinter } from './minter.js';
import { NodeState, type NodeIo } from './node-types.js';
import type { NodeOptions } from './options.js';
import { PeerAdmission, dialablePart } from './peers.js';
import { PrivateCatchUp } from './private-catch-up.js';
import { PayloadFetcher } from './private-payloads.js';
import { CHANNEL_RAFT, RaftLink, type RaftViewChange } from './raft-link.js';
import { CHANNEL_SNAPSHOT, SnapshotFetcher, SnapshotServer } from './snapshot-transfer.js';
import { TxIntake } from './transactions.js';

/** What the parts need from the node that holds them (node.ts implements it). */
export interface NodeHost {
  /** This node's raft id; 0 while a --join node waits for one. */
  raftId(): number;
  state(): NodeState;
  /** The pool (built by buildPool once the chain is loaded, before any part uses it). */
  pool(): TxPool;
  /** A part hit an error the node cannot continue after. */
  fail(err: unknown): void;
  /** Throws the node's refusal unless it is Running. */
  assertRunning(): void;
  /** An applied change removed this node from the membership. */
  removed(): void;
  /** A block was applied (`mine`: minted here). */
  blockApplied(block: Block, raftIndex: number, mine: boolean): void;
  /** The applied membership changed (a change or a snapshot). */
  membershipChanged(): void;
  /** After every Ready cycle (RaftLink), with role, leader and term updated. */
  afterReady(change: RaftViewChange): void;
}

export interface NodeParts {
  readonly verifiedTxs: VerifiedTxCache;
  readonly control: ControlChannel;
  readonly payloads: PayloadFetcher;
  readonly snapshotServer: SnapshotServer;
  readonly applier: ChainApplier;
  readonly catchUp: PrivateCatchUp;
  readonly peers: PeerAdmission;
  readonly raft: RaftLink;
  readonly admin: MembershipAdmin;
  readonly forwarder: TxForwarder;
  readonly intake: TxIntake;
  readonly minter: BlockMinter;
}

export function buildParts(options: NodeOptions, io: NodeIo, host: NodeHost): NodeParts {
  const { transport, clock, logger } = io;
  // The parts are declared before they are built and reach each other through closures, read
  // only once every part exists (callbacks run after the constructor: load, start, messages).
  const parts = {} as { -readonly [K in keyof NodeParts]: NodeParts[K] };
  const membership = () => parts.applier.membership;
  const isMember = (peerId: string) => findMemberByPeerId(membership(), peerId) !== undefined;
  const stopped = () => host.state() === NodeState.Stopped;
  const verifiedTxs = new VerifiedTxCache();
  parts.verifiedTxs = verifiedTxs;
  parts.control = new ControlChannel(transport);
  parts.payloads = new PayloadFetcher({ privacy: io.privacy, clock, logger, stopped });
  parts.snapshotServer = new SnapshotServer({
    clock,
    logger,
    isMember,
    maxConcurrentTransfers: options.raft.snapshotMaxConcurrentTransfers,
    maxWindowChunks: options.raft.snapshotWindowChunks,
  });
  const snapshotFetcher = new SnapshotFetcher({
    transport,
    store: io.chainStore,
    clock,
    logger,
    chunkBytes: options.raft.snapshotChunkBytes,
    windowChunks: options.raft.snapshotWindowChunks,
    // The MsgSnap's sender (the leader) first, then every other member that may hold the same snapshot.
    candidates: (from) => {
      const first = from === undefined ? undefined : parts.peers.peerOf(from)?.peerId;
      const rest = membership()
        .members.filter((m) => m.raftId !== host.raftId())
        .map((m) => m.peerId);
      return [...new Set([...(first ? [first] : []), ...rest])];
    },
  });
  parts.applier = new ChainApplier({
    snapshots: { server: parts.snapshotServer, fetcher: snapshotFetcher },
    store: io.chainStore,
    genesis: io.genesis,
    genesisMembership: io.genesisMembership,
    app: io.app,
    verifiedTxs,
    payloads: parts.payloads,
    logger,
    stopped,
    hooks: {
      ownBlock: (hash) => parts.minter.ownBlock(hash),
      blockApplied: (block, raftIndex, mine) => host.blockApplied(block, raftIndex, mine),
      blockNoop: (mine) => mine && parts.minter.reset(),
      membershipChanged: (ctx) => {
        host.membershipChanged();
        if (!ctx) return;
        if (ctx.op === 'remove' && ctx.raftId === host.raftId()) host.removed();
        parts.admin.onApplied(ctx);
      },
      snapshotInstalled: () => {
        parts.minter.reset();
        host.membershipChanged();
        parts.catchUp.start();
      },
    },
  });
  parts.catchUp = new PrivateCatchUp({
    applier: parts.applier,
    blocks: io.chainStore,
    payloads: parts.payloads,
    transport,
    clock,
    logger,
    leader: () => parts.raft.leader,
    active: () => host.state() === NodeState.Running || host.state() === NodeState.Starting,
    onFatal: (err) => host.fail(err),
  });
  parts.peers = new PeerAdmission({
    transport,
    control: parts.control,
    store: io.chainStore,
    clock,
    logger,
    incarnation: io.incarnation,
    bootstrapPeers: io.bootstrapPeers,
    addressOverrides: io.addressOverrides,
    self: () => host.raftId(),
    membership,
    leader: () => parts.raft.leader,
    onRefused: (err) => host.fail(err),
  });
  parts.raft = new RaftLink({
    options: options.raft,
    maxProposalBytes: options.block.blockMaxBytes,
    storage: io.raftStorage,
    transport,
    clock,
    logger,
    genesisVoters: io.genesisMembership.members.map((m) => m.raftId),
    stateMachine: parts.applier,
    peers: parts.peers,
    afterReady: (change) => host.afterReady(change),
    onFatal: (err) => host.fail(err),
  });
  const raft = parts.raft;
  parts.admin = new MembershipAdmin(options.admin, {
    control: parts.control,
    clock,
    self: () => host.raftId(),
    membership,
    isLeader: () => raft.isLeaderNow(),
    leader: () => raft.leaderNow(),
    raft: () => (raft.running ? raft : undefined),
    admitAlso: (extra) => parts.peers.updatePeers(extra),
    assertRunning: () => host.assertRunning(),
    keys: { localPeerId: transport.localPeerId, enclaveKeys: io.enclaveKeys, privacy: io.privacy },
  });
  parts.forwarder = new TxForwarder(options.forward, {
    transport,
    clock,
    self: () => host.raftId(),
    leader: () => findMember(membership(), raft.leaderNow()),
    isMember,
    assertLeader: () => {
      if (raft.isLeaderNow()) return;
      const leader = raft.leaderNow();
      throw new NodeError(
        NodeErrorCode.NotLeader,
        `this node is no longer the leader (leader: ${leader || 'unknown'})`,
        {
          leader: leader || null,
          leaderRpcUrl: findMember(membership(), leader)?.rpcUrl ?? null,
        },
      );
    },
    accept: (tx, from) => parts.intake.acceptForwarded(tx, from),
  });
  parts.intake = new TxIntake({
    chainId: io.genesis.chainId,
    verifiedTxs,
    pool: () => host.pool(),
    forwarder: parts.forwarder,
    isLeader: () => raft.isLeaderNow(),
    committedNonce: (a) => getNonce(parts.applier.chain.state, a),
    accountKeys: io.accountKeys,
    privacy: io.privacy,
    refusals: new RefusalLog(logger, () => clock.monotonicMs()),
  });
  parts.minter = new BlockMinter(options.block, {
    app: io.app,
    chainId: io.genesis.chainId,
    minterKey: io.minterKey,
    verifiedTxs,
    clock,
    logger,
    pool: () => host.pool(),
    chain: () => parts.applier.chain,
    forwarder: parts.forwarder,
    self: () => host.raftId(),
    term: () => raft.term,
    mayPropose: () => raft.role === 'leader' && raft.running && host.state() === NodeState.Running,
    propose: (data) => raft.propose(data),
  });
  return parts;
}

/** The transaction pool, over the loaded chain's nonces (options.pool, config.json's `pool`). */
export function buildPool(options: NodeOptions, io: NodeIo, parts: NodeParts): TxPool {
  const pool = options.pool;
  return new TxPool({
    chainId: io.genesis.chainId,
    app: io.app,
    nonceOf: (a) => getNonce(parts.applier.chain.state, a),
    verifiedTxs: parts.verifiedTxs,
    maxTxs: pool.txPoolMaxTransactions,
    maxNonceGap: pool.txPoolMaxPerSender,
    queuedLifetimeMs: pool.txPoolQueuedLifetimeMs,
    maxDrainMs: pool.txPoolMaxDrainMs,
    nowMs: () => io.clock.monotonicMs(),
  });
}

/** What this node tells another member about itself (control "hello", and raft_addPeer's check). */
export function describeSelf(options: NodeOptions, io: NodeIo): SelfDescription {
  return {
    name: options.nodeId,
    peerId: io.transport.localPeerId,
    p2pAddrs: io.transport.listenAddrs().map(dialablePart),
    rpcUrl: options.rpcUrl,
    tmUrl: options.tmUrl,
    signingKey: Buffer.from(io.minterKey.publicKeyRaw).toString('base64'),
    enclaveKeys: [...io.enclaveKeys],
  };
}

/** Registers every part's p2p channel on the transport (before it starts). */
export function serveChannels(options: NodeOptions, io: NodeIo, parts: NodeParts): void {
  const { transport, chainStore } = io;
  const { applier, peers, admin } = parts;
  const isMember = (peerId: string) => findMemberByPeerId(applier.membership, peerId) !== undefined;
  transport.onMessage(CHANNEL_RAFT, (from, data) => parts.raft.receive(from, data));
  transport.onRequest(CHANNEL_SNAPSHOT, (from, data) => parts.snapshotServer.handle(from, data));
  transport.onRequest(CHANNEL_BLOCKS, (from, data) =>
    serveBlockRange(
      {
        isMember,
        head: () => applier.chain.head.header.number,
        getBlock: (n) => chainStore.getBlockByNumber(n),
        getReceipt: (hash) => chainStore.getReceipt(hash),
      },
      from,
      data,
    ),
  );
  parts.forwarder.serve();
  parts.control.serve({
    hello: () => describeSelf(options, io),
    ident: (from, raftId, incarnation) => peers.answerIdent(from, raftId, incarnation),
    members: (from) => peers.answerMembers(from),
    whoami: (from) => ({ raftId: findMemberByPeerId(applier.membership, from)?.raftId ?? null }),
    admin: (from, req, signal) => admin.answer(from, req, signal),
    prove: (from, challenge, verifierKey) => admin.prove(from, challenge, verifierKey),
  });
}
