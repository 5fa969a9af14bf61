// QuorateNode: one ledger node — a Raft peer paired with a chain — as an object an embedder can
// create in-process. The process wiring (node/process.ts) is a thin layer that builds the real
// dependencies (LevelDB stores, libp2p transport, system clock) and hands them to this class;
// tests hand it in-memory ones. Nothing here opens a file or a socket itself.
//
// Data flow:
//   client tx ─► submit() ─► (follower: forward to leader over p2p "tx") ─► leader's pool
//   leader: every blockTimeMs the minter builds a block from the pool (possibly on top of its own
//           not-yet-applied blocks) and proposes it as one Raft entry
//   every node: the Raft driver persists, sends, and hands committed entries to apply() here:
//           blocks are applied by the deterministic executor and written in one synced batch;
//           membership changes update the replicated membership, the p2p allowlist and the
//           minter keys; the RPC that proposed a change is answered only now, after commit.

import { randomBytes } from 'node:crypto';
import {
  EntryType,
  RaftNode,
  Role,
  SeededRng,
  bootstrapSnapshot,
  decodeConfChange,
  type ConfState,
  type Entry,
  type LogIndex,
  type Message,
  type RaftId,
  type Ready,
  type Snapshot,
  type WritableStorage,
} from '../consensus/index.js';
import type { PeerAddress, PeerTransport } from '../p2p/transport.js';
import {
  ChainError,
  ChainErrorCode,
  ChainState,
  MAX_TX_BYTES,
  Reader,
  TxPool,
  Writer,
  VerifiedTxCache,
  applyBlock,
  applyPrivateBlock,
  baseOf,
  buildBlock,
  bytesEqual,
  decodeBlock,
  decodePrivatePayload,
  decodeTransaction,
  encodeBlock,
  encodePrivatePayload,
  exportSnapshot,
  genesisBlock,
  getNonce,
  importSnapshot,
  payloadHashKey,
  privatePayloadKeys,
  signTransaction,
  snapshotChunksFromBytes,
  snapshotToBytes,
  verifyTransaction,
  type AccountKey,
  type Address,
  type Application,
  type Block,
  type BuildBase,
  type BuiltBlock,
  type CatchUpRecord,
  MAX_INCARNATION_CHARS,
  type ChainStore,
  type GenesisConfig,
  type Op,
  type PrivatePayload,
  type Transaction,
} from './chain/index.js';
import type { Clock, TimerHandle } from './clock.js';
import { errorFromWire, errorToWire, toNodeError, type WireError } from './error-map.js';
import { NodeError, NodeErrorCode, nodeAssert } from './errors.js';
import type { Logger } from './log.js';
import {
  applyConfContext,
  confChangeFor,
  decodeConfContext,
  decodeMembership,
  encodeConfContext,
  encodeMembership,
  findMember,
  findMemberByPeerId,
  roleOf,
  type ConfChangeOp,
  type MemberInfo,
  type MembershipState,
} from './membership.js';
import { RaftDriver, type ReplicatedStateMachine } from './raft/driver.js';
import {
  BACKFILL_RETRY_BASE_MS,
  BACKFILL_RETRY_MAX_MS,
  BLOCK_RANGE_MAX_BLOCKS,
  BlockRangeError,
  CHANNEL_BLOCKS,
  parentOf,
  requestBlockRange,
  serveBlockRange,
  verifyBlockRange,
} from './catch-up.js';
import { P2pError } from '../p2p/errors.js';
import { decodeRaftMessage, encodeRaftMessage } from './raft/codec.js';

/** The p2p channels a node speaks. */
export const CHANNEL_RAFT = 'raft';
export const CHANNEL_TX = 'tx';
export const CHANNEL_CTL = 'ctl';

export interface NodeOptions {
  /** This node's Raft id; 0 for a node started with --join that does not know it yet. */
  readonly raftId: number;
  readonly name: string;
  readonly rpcUrl: string;
  readonly tmUrl: string;
  readonly tickMs: number;
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  /** The leader mints at most one block per blockTimeMs, and only when transactions are pending. */
  readonly blockTimeMs: number;
  readonly maxBlockTxs: number;
  readonly maxBlockBytes: number;
  /** Blocks the leader may have proposed but not yet applied (speculative minting depth). */
  readonly maxPendingBlocks: number;
  /** How long a membership change or leadership transfer may take before its outcome is reported unknown. */
  readonly changeTimeoutMs: number;
  /** How long a forwarded transaction waits for the leader's answer. */
  readonly forwardTimeoutMs: number;
  readonly snapshotEveryEntries: number;
  /** How long a pooled transaction behind a nonce gap waits before it is dropped (node/chain/pool.ts). */
  readonly poolQueuedLifetimeMs?: number;
  /** How far a sender's nonce may run ahead of its committed one in the pool (MAX_NONCE_GAP by default). */
  readonly poolMaxNonceGap?: number;
  /** Entries kept behind a snapshot (the driver's default when unset): followers lagging less catch up without one. */
  readonly compactionRetainEntries?: number;
  readonly raftMaxMessageBytes: number;
  readonly raftMaxInflightMessages: number;
  readonly raftMaxUncommittedBytes: number;
  readonly poolMaxTxs: number;
  /** Seed of the election-timeout jitter (from the OS in production, fixed in tests). */
  readonly seed: number;
}

export const DEFAULT_NODE_OPTIONS: Omit<NodeOptions, 'raftId' | 'name' | 'rpcUrl' | 'tmUrl' | 'seed'> = {
  tickMs: 100,
  electionTicks: 10,
  heartbeatTicks: 1,
  blockTimeMs: 50,
  maxBlockTxs: 2_000,
  maxBlockBytes: 4 * 1024 * 1024 - 4096,
  maxPendingBlocks: 4,
  changeTimeoutMs: 15_000,
  forwardTimeoutMs: 5_000,
  snapshotEveryEntries: 10_000,
  raftMaxMessageBytes: 1024 * 1024,
  raftMaxInflightMessages: 256,
  raftMaxUncommittedBytes: 64 * 1024 * 1024,
  poolMaxTxs: 20_000,
};

/**
 * What the node needs of its transaction manager (issue: private transactions). "Not a party"
 * is `null`; not being able to tell is a thrown error, never null.
 */
export interface PrivacyProvider {
  /** Encrypts and pushes the payload to its parties; resolves with the 64-byte hash once all acknowledged. */
  send(payload: Uint8Array, privateFor: readonly string[], signal?: AbortSignal): Promise<Uint8Array>;
  /**
   * `privateFor`: the transaction's recipients, so a provider that holds one of them and is still
   * owed the payload answers "could not tell" (throws), never "not a party".
   */
  receive(hash: Uint8Array, privateFor?: readonly Uint8Array[]): Promise<Uint8Array | null>;
}

export interface NodeDependencies {
  readonly raftStorage: WritableStorage;
  readonly chainStore: ChainStore & MembershipStore;
  readonly transport: PeerTransport;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly app: Application;
  /** Signs the blocks this node mints. */
  readonly minterKey: AccountKey;
  /** Accounts this node signs for (quorate_sendTransaction). */
  readonly accountKeys: readonly AccountKey[];
  readonly genesis: GenesisConfig;
  /** The genesis membership (ids 1..N), used when the store has none yet. */
  readonly genesisMembership: MembershipState;
  /** This node's enclave public keys (base64), announced when it joins. */
  readonly enclaveKeys: readonly string[];
  readonly privacy?: PrivacyProvider;
  /**
   * Members to reach before this node knows the current membership (a node started with --join:
   * whom to ask for its id, and whose Raft traffic to accept until it has caught up). The
   * replicated membership always takes precedence.
   */
  readonly bootstrapPeers?: readonly BootstrapPeer[];
  /** Per peer id, addresses this node dials instead of the membership's (NAT, proxies, fault injection). */
  readonly addressOverrides?: ReadonlyMap<string, readonly string[]>;
  /**
   * Made when this node's Raft log directory was created (LevelRaftStorage identity). Peers
   * remember each member's incarnation; a member that comes back with another one lost or
   * replaced its data and is refused (CORRECTNESS scenario 18).
   */
  readonly incarnation: string;
  /** Persists the id a joining node is given, so a restart keeps it. */
  readonly persistRaftId?: (raftId: number) => Promise<void>;
  /** Called once when the node must stop (divergence, storage failure). */
  readonly onFatal?: (err: unknown) => void;
}

export interface BootstrapPeer {
  readonly raftId: number;
  readonly peerId: string;
  readonly addrs: readonly string[];
}

/** The chain store's extension for the replicated membership, written atomically with the applied index. */
export interface MembershipStore {
  recordMembership(membership: Uint8Array, appliedRaftIndex: number): Promise<void>;
  membership(): Promise<Uint8Array | undefined>;
}

export type NodeRole = 'leader' | 'follower' | 'candidate' | 'learner';

export interface NodeStatus {
  readonly raftId: number;
  readonly term: number;
  readonly role: NodeRole;
  readonly leader: number | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly voters: readonly number[];
  readonly learners: readonly number[];
  readonly joint: boolean;
  readonly head: number;
  readonly peers: number;
  /** Set while the node cannot make progress on its own (private payloads unknown, removed, stopped). */
  readonly alarm?: string;
}

export interface CommittedBlockEvent {
  readonly block: Block;
  readonly raftIndex: number;
}

interface PendingBlock {
  readonly built: BuiltBlock;
}

interface PendingForward {
  readonly tx: Transaction;
  readonly resolve: (hash: string) => void;
  readonly reject: (err: unknown) => void;
}

/** Transactions per forward request (each at most MAX_TX_BYTES: 1,024 × 64 KiB fits the p2p frame limit). */
const MAX_FORWARD_BATCH_TXS = 1_024;
/**
 * Forward batches in flight to the leader at once. While they are out, new transactions queue and
 * leave together when one returns: under load the batches grow instead of the request count (each
 * p2p request costs both sides a few encrypted frames and socket writes), and when idle a lone
 * transaction still goes at once.
 */
const MAX_FORWARDS_IN_FLIGHT = 2;
/** Transactions waiting to be forwarded; beyond it submissions are refused (Unavailable). */
const MAX_FORWARD_QUEUE_TXS = 20_000;

/** A forward batch: u32 count, then per transaction u32 length and its encoding. */
function encodeTxBatch(txs: readonly Transaction[]): Uint8Array {
  const w = new Writer(4 + txs.reduce((n, t) => n + 4 + t.encoded.length, 0)).u32(txs.length);
  for (const t of txs) w.bytes32(t.encoded);
  return w.finish();
}

/** Throws ChainError TxMalformed (TX_MALFORMED to the forwarder) on anything but a well-formed batch. */
function decodeTxBatch(data: Uint8Array): Uint8Array[] {
  const r = new Reader(data, ChainErrorCode.TxMalformed, 'forward batch');
  const n = r.u32();
  if (n > MAX_FORWARD_BATCH_TXS) r.fail(`${n} transactions is over MAX_FORWARD_BATCH_TXS=${MAX_FORWARD_BATCH_TXS}`);
  const out: Uint8Array[] = [];
  for (let i = 0; i < n; i++) out.push(r.bytes32(MAX_TX_BYTES));
  r.end();
  return out;
}

function safeBatchCount(data: Uint8Array): number {
  if (data.length < 4) return 0;
  const n = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0);
  return n <= MAX_FORWARD_BATCH_TXS ? n : 0;
}

interface Waiter {
  readonly check: () => boolean;
  readonly resolve: () => void;
}

interface CtlRequest {
  readonly type: 'hello' | 'whoami' | 'admin' | 'ident' | 'members';
  readonly incarnation?: string;
  readonly op?: ConfChangeOp | 'transfer';
  readonly raftId?: number;
  readonly p2pAddress?: string;
}

/** Bound on a control request's encoding (a member description or an admin call). */
const MAX_CTL_BYTES = 64 * 1024;
/** How often a node checks whether it lags behind a membership change (see refreshVouched). */
const VOUCH_CHECK_MS = 1_000;
/** How long a peer gets to answer the (raft id, incarnation) exchange; a later connect asks again. */
const IDENT_TIMEOUT_MS = 5_000;
/** How long a peer gets to answer a control query ("members", "whoami"); the caller retries on its timer. */
const CTL_QUERY_TIMEOUT_MS = 2_000;
/** quorate_sendTransaction: nonces tried when the guessed one turns out to be taken. */
const MAX_NONCE_ATTEMPTS = 8;
/** How often the pool drops transactions that waited behind a nonce gap past their lifetime. */
const POOL_EXPIRY_CHECK_MS = 30_000;
/** Without a leader this long, a node asks a member for the current membership. */
const VOUCH_AFTER_NO_LEADER_MS = 3_000;
/** Members admitted on another member's word at most. */
const MAX_VOUCHED_PEERS = 256;
/** Raft ids whose incarnation a node remembers (one per member, ever). */
const MAX_KNOWN_INCARNATIONS = 4_096;
/** Transactions of a deposed leader's pool forwarded to the new leader at once. */
const POOL_FORWARD_CONCURRENCY = 64;
/** How long raft_addPeer/raft_addLearner try to reach the new node before giving up. */
const JOIN_HELLO_TIMEOUT_MS = 10_000;
/** How often a node started with --join asks the members for its id. */
const JOIN_POLL_MS = 500;
/** Retry delay while a block's private payloads cannot be fetched (doubles up to the max). */
const PRIVACY_RETRY_BASE_MS = 100;
const PRIVACY_RETRY_MAX_MS = 5_000;
/** A block's private payloads fetched from the transaction manager at once. */
const PRIVACY_FETCH_CONCURRENCY = 64;
/**
 * Blocks without private transactions replayed as one step after a snapshot (one synced write
 * moves the private state past all of them); bounds the blocks read per step.
 */
const REPLAY_SCAN_MAX_BLOCKS = 256;

export class QuorateNode {
  readonly options: NodeOptions;
  private readonly deps: NodeDependencies;
  private readonly log: Logger;
  private raftId: number;
  private raft?: RaftNode;
  private driver?: RaftDriver;
  private chain!: ChainState;
  private pool!: TxPool;
  private readonly verifiedTxs = new VerifiedTxCache();
  private membershipState!: MembershipState;
  private applied = 0;
  private role: NodeRole = 'follower';
  private leaderId = 0;
  private term = 0;
  private readonly pendingBlocks = new Map<string, PendingBlock>();
  private speculativeBase: BuildBase | undefined;
  private minterTimer?: TimerHandle;
  private joinTimer?: TimerHandle;
  private readonly confWaiters = new Map<string, () => void>();
  /** Waiters of changes applied in the current Ready, released by afterCycle (after advance). */
  private confWaitersAfterAdvance: Array<() => void> = [];
  private readonly waiters = new Set<Waiter>();
  private readonly blockListeners = new Set<(e: CommittedBlockEvent) => void>();
  private readonly membershipListeners = new Set<(m: MembershipState) => void>();
  /** Next nonce this node assigned per account it signs for (followers: not yet visible in state). */
  private readonly localNonces = new Map<Address, number>();
  private readonly accountsByAddress = new Map<Address, AccountKey>();
  private alarm: string | undefined;
  private forwardingPool = false;
  /** Peer id → the raft id and incarnation it proved; Raft traffic is accepted only from these. */
  private readonly verifiedPeers = new Map<string, number>();
  /** Raft id → incarnation first seen (a later, different one is refused). */
  private readonly knownIncarnations = new Map<number, string>();
  private readonly identInFlight = new Set<string>();
  /**
   * Members this node has not applied yet, vouched for by a member it knows (see refreshVouched):
   * a node that lags behind a membership change must still admit the leader added by it.
   */
  private vouchedPeers = new Map<string, { raftId: number; addrs: readonly string[] }>();
  private vouchTimer?: TimerHandle;
  private poolExpiryTimer?: TimerHandle;
  private noLeaderSinceMs: number | undefined;
  private readonly forwardQueue: PendingForward[] = [];
  private forwardScheduled = false;
  private forwardsInFlight = 0;
  private removed = false;
  private started = false;
  private stopped = false;
  private fatalError: unknown;
  private readonly warnedPeers = new Set<string>();
  /**
   * Set while this node catches up after installing a peer's snapshot (node/catch-up.ts): the
   * mirror of the store's CatchUpRecord. Changed only under privateLock.
   */
  private catchUpRecord: CatchUpRecord | undefined;
  private catchUpRun: Promise<void> | undefined;
  private catchUpAbort: AbortController | undefined;
  /**
   * Serialises everything that reads or changes the private state or the catch-up record: block
   * application, the catch-up's replay and backfill writes, and snapshot installs.
   */
  private privateLockTail: Promise<unknown> = Promise.resolve();

  constructor(options: NodeOptions, deps: NodeDependencies) {
    this.options = options;
    this.deps = deps;
    this.log = deps.logger;
    this.raftId = options.raftId;
    for (const k of deps.accountKeys) this.accountsByAddress.set(k.address, k);
  }

  // ------------------------------------------------------------------ lifecycle

  async start(): Promise<void> {
    nodeAssert(!this.started, 'QuorateNode.start called twice');
    this.started = true;
    const { chainStore, genesis, transport } = this.deps;
    const { block: genesisBlockValue, state: genesisStateValue } = genesisBlock(genesis);
    await chainStore.init(genesis.chainId, genesisBlockValue, genesisStateValue);
    const stored = await chainStore.membership();
    this.membershipState = stored ? decodeMembership(stored) : this.deps.genesisMembership;
    await this.loadChain();
    this.catchUpRecord = await chainStore.catchUp();
    for (const [raftId, incarnation] of await chainStore.knownIncarnations())
      this.knownIncarnations.set(raftId, incarnation);

    transport.onMessage(CHANNEL_RAFT, (from, data) => this.onRaftMessage(from, data));
    transport.onRequest(CHANNEL_BLOCKS, (from, data) =>
      serveBlockRange(
        {
          isMember: (peerId) => findMemberByPeerId(this.membershipState, peerId) !== undefined,
          head: () => this.chain.head.header.number,
          getBlock: (n) => this.deps.chainStore.getBlockByNumber(n),
          getReceipt: (hash) => this.deps.chainStore.getReceipt(hash),
        },
        from,
        data,
      ),
    );
    transport.onRequest(CHANNEL_TX, (from, data) => this.onForwardedTx(from, data));
    transport.onRequest(CHANNEL_CTL, (from, data, signal) => this.onControl(from, data, signal));
    transport.on('peer:connect', (peer) => void this.identify(peer));
    transport.on('peer:disconnect', (peer) => this.verifiedPeers.delete(peer));
    this.updatePeers();
    await transport.start();
    // A restart in the middle of a catch-up resumes it where the store says it stopped.
    if (this.catchUpRecord) this.startCatchUp();

    if (this.raftId === 0) this.pollForId();
    else await this.startRaft();
  }

  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    this.minterTimer?.cancel();
    this.joinTimer?.cancel();
    this.vouchTimer?.cancel();
    this.poolExpiryTimer?.cancel();
    this.catchUpAbort?.abort();
    await this.catchUpRun;
    await this.driver?.stop();
    await this.deps.transport.stop();
    for (const w of this.waiters) w.resolve();
    this.waiters.clear();
  }

  /** Loads the committed chain (head, state, private state) from the store into memory. */
  private async loadChain(): Promise<void> {
    const store = this.deps.chainStore;
    const head = await store.head();
    nodeAssert(head, 'chain store has no head after init');
    const headBlock = await store.getBlockByNumber(head.number);
    nodeAssert(headBlock, () => `chain store lost its head block ${head.number}`);
    const { state, privateState } = await store.loadState();
    this.chain = new ChainState({
      chainId: this.deps.genesis.chainId,
      app: this.deps.app,
      head: headBlock,
      state,
      privateState,
      verifiedTxs: this.verifiedTxs,
      txSignatureCheck: this.deps.genesis.txSignatureCheck,
    });
    this.registerMemberKeys();
    this.applied = await store.appliedIndex();
    this.pool = new TxPool({
      chainId: this.deps.genesis.chainId,
      app: this.deps.app,
      nonceOf: (a) => getNonce(this.chain.state, a),
      verifiedTxs: this.verifiedTxs,
      maxTxs: this.options.poolMaxTxs,
      ...(this.options.poolQueuedLifetimeMs !== undefined
        ? { queuedLifetimeMs: this.options.poolQueuedLifetimeMs }
        : {}),
      ...(this.options.poolMaxNonceGap !== undefined ? { maxNonceGap: this.options.poolMaxNonceGap } : {}),
      nowMs: () => this.deps.clock.monotonicMs(),
    });
  }

  private registerMemberKeys(): void {
    for (const m of this.membershipState.members) {
      this.chain.registerMember(m.raftId, Buffer.from(m.signingKey, 'base64'));
    }
  }

  private async startRaft(): Promise<void> {
    const storage = this.deps.raftStorage;
    const joining = this.deps.genesisMembership.members.every((m) => m.raftId !== this.raftId);
    if (storage.lastIndex() === 0 && storage.snapshot().metadata.index === 0 && !joining) {
      // A brand-new genesis member: every initial member bootstraps the same first snapshot, so
      // the cluster's log never starts at index 1 and later joiners are caught up by snapshot.
      const voters = this.deps.genesisMembership.members.map((m) => m.raftId as RaftId);
      await storage.applySnapshot(bootstrapSnapshot(voters));
    }
    const snapIndex = storage.snapshot().metadata.index;
    this.raft = new RaftNode({
      id: this.raftId as RaftId,
      storage,
      rng: new SeededRng(this.options.seed),
      electionTicks: this.options.electionTicks,
      heartbeatTicks: this.options.heartbeatTicks,
      appliedIndex: Math.max(this.applied, snapIndex) as LogIndex,
      maxMessageBytes: this.options.raftMaxMessageBytes,
      maxInflightMessages: this.options.raftMaxInflightMessages,
      maxUncommittedEntriesBytes: this.options.raftMaxUncommittedBytes,
      maxProposalBytes: this.options.maxBlockBytes + 4096,
      // Ids are never reused: the replicated membership remembers every removed one.
      removedIds: this.membershipState.removed as RaftId[],
    });
    if (this.applied < snapIndex && storage.snapshot().data.length > 0) {
      // Crashed after persisting a snapshot from the leader but before installing it.
      await this.restore(storage.snapshot());
    }
    const sm: ReplicatedStateMachine = {
      apply: (entries) => this.apply(entries),
      restore: (snapshot) => this.restore(snapshot),
      snapshotData: async () => this.snapshotData(),
      appliedIndex: () => this.applied as LogIndex,
    };
    this.driver = new RaftDriver(
      {
        tickMs: this.options.tickMs,
        snapshotEveryEntries: this.options.snapshotEveryEntries,
        ...(this.options.compactionRetainEntries !== undefined
          ? { compactionRetainEntries: this.options.compactionRetainEntries }
          : {}),
      },
      {
        raft: this.raft,
        storage,
        sender: { send: (m) => this.sendRaft(m) },
        stateMachine: sm,
        clock: this.deps.clock,
        onCycle: (rd) => this.afterCycle(rd),
        onFatal: (err) => this.fail(err),
      },
    );
    this.driver.start();
    for (const peer of this.deps.transport.connectedPeers()) void this.identify(peer);
    this.vouchTimer = this.deps.clock.setInterval(() => void this.refreshVouched(), VOUCH_CHECK_MS);
    this.poolExpiryTimer = this.deps.clock.setInterval(
      () => {
        const dropped = this.pool.expireQueued();
        if (dropped.length > 0)
          this.log.info(
            { dropped: dropped.length, lifetimeMs: this.pool.queuedLifetimeMs },
            'dropped pooled transactions that waited behind a nonce gap past their lifetime',
          );
      },
      Math.min(POOL_EXPIRY_CHECK_MS, this.pool.queuedLifetimeMs),
    );
    this.minterTimer = this.deps.clock.setInterval(() => this.mint(), this.options.blockTimeMs);
    // A single-voter cluster elects itself at once instead of waiting an election timeout.
    const cs = this.raft.confState();
    if (cs.voters.length === 1 && cs.voters[0] === this.raftId && cs.votersOutgoing.length === 0) {
      void this.driver.call((r) => r.campaign());
    }
    this.log.info({ raftId: this.raftId, applied: this.applied, head: this.chain.head.header.number }, 'raft started');
  }

  private fail(err: unknown): void {
    if (this.fatalError !== undefined) return;
    this.fatalError = err;
    this.alarm = `stopped: ${err instanceof Error ? err.message : String(err)}`;
    this.log.fatal({ err }, 'node stopped on a fatal error');
    this.minterTimer?.cancel();
    this.deps.onFatal?.(err);
  }

  // ------------------------------------------------------------------ raft messages

  /** Raft id → peer id: the replicated membership, else the bootstrap peers (a joiner catching up). */
  private peerOf(raftId: number): { raftId: number; peerId: string } | undefined {
    const member = findMember(this.membershipState, raftId);
    if (member) return member;
    for (const [peerId, v] of this.vouchedPeers) if (v.raftId === raftId) return { raftId, peerId };
    return this.deps.bootstrapPeers?.find((p) => p.raftId === raftId);
  }

  private raftIdOfPeer(peerId: string): number | undefined {
    const m = findMemberByPeerId(this.membershipState, peerId);
    if (m) return m.raftId;
    const vouched = this.vouchedPeers.get(peerId);
    if (vouched && !findMember(this.membershipState, vouched.raftId)) return vouched.raftId;
    // Only while this node is not yet in the membership it applied: then the bootstrap list speaks.
    if (findMember(this.membershipState, this.raftId)) return undefined;
    return this.deps.bootstrapPeers?.find((p) => p.peerId === peerId)?.raftId;
  }

  private sendRaft(m: Message): void {
    const member = this.peerOf(m.to);
    if (!member) return; // not (yet) known here: Raft retries once the membership is applied
    try {
      this.deps.transport.send(member.peerId, CHANNEL_RAFT, encodeRaftMessage(m));
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
      this.warnOnce(from, { err }, 'undecodable raft message dropped');
      return;
    }
    // The sender's raft id must be the one the membership gives its (Noise-authenticated) peer id:
    // a member cannot speak for another.
    if (this.verifiedPeers.get(from) !== m.from) {
      // Not identified yet (or refused): no Raft traffic until it proved who it is.
      void this.identify(from);
      return;
    }
    if (this.raftIdOfPeer(from) !== m.from || m.to !== this.raftId) {
      this.warnOnce(
        from,
        { claimedFrom: m.from, to: m.to },
        'raft message from a peer that does not hold that raft id: dropped',
      );
      return;
    }
    this.driver.step(m);
  }

  private warnOnce(peer: string, obj: Record<string, unknown>, msg: string): void {
    if (this.warnedPeers.has(peer) || this.warnedPeers.size > 1024) return;
    this.warnedPeers.add(peer);
    this.log.warn({ peer, ...obj }, msg);
  }

  private afterCycle(rd: Ready): void {
    // Runs after every Ready cycle (the replication loop): read the core's fields directly rather
    // than status(), which builds the leader's whole progress map.
    const core = this.raft!.inner;
    const prevRole = this.role;
    const prevLeader = this.leaderId;
    this.term = core.term;
    this.leaderId = core.lead;
    this.role = roleName(core.state, this.raftId, () => this.raft!.confState());
    if (this.confWaitersAfterAdvance.length > 0) {
      const due = this.confWaitersAfterAdvance;
      this.confWaitersAfterAdvance = [];
      for (const w of due) w();
    }
    if (prevRole === 'leader' && this.role !== 'leader') this.onLostLeadership();
    if (this.role !== 'leader' && this.leaderId !== 0 && this.pool.size > 0 && !this.forwardingPool)
      void this.forwardPool();
    if (prevRole !== 'leader' && this.role === 'leader') this.pool.resetInFlight();
    if (prevRole !== this.role || prevLeader !== this.leaderId) {
      this.log.info({ role: this.role, term: this.term, leader: this.leaderId }, 'raft role changed');
    }
    void rd;
    for (const w of [...this.waiters]) {
      if (w.check()) {
        this.waiters.delete(w);
        w.resolve();
      }
    }
  }

  private onLostLeadership(): void {
    // Blocks proposed but not applied may still commit under the next leader (they are then
    // applied normally) or never; their transactions stay in this pool and nonces decide.
    this.pendingBlocks.clear();
    this.speculativeBase = undefined;
    this.pool.resetInFlight();
  }

  /**
   * A deposed leader still holds transactions it accepted. They are not lost with its leadership:
   * once a new leader is known they are handed to it (nonces make a duplicate harmless).
   */
  private async forwardPool(): Promise<void> {
    this.forwardingPool = true;
    try {
      this.pool.resetInFlight();
      const txs = this.pool.take(this.options.poolMaxTxs, Number.MAX_SAFE_INTEGER);
      this.pool.removeCommitted(txs);
      let forwarded = 0;
      for (let i = 0; i < txs.length; i += POOL_FORWARD_CONCURRENCY) {
        const batch = txs.slice(i, i + POOL_FORWARD_CONCURRENCY);
        const results = await Promise.allSettled(batch.map((tx) => this.forwardTx(tx)));
        forwarded += results.filter((r) => r.status === 'fulfilled').length;
      }
      if (txs.length > 0)
        this.log.info({ pending: txs.length, forwarded }, 'handed the pool of a lost leadership to the new leader');
    } finally {
      this.forwardingPool = false;
    }
  }

  // ------------------------------------------------------------------ minting

  private mint(): void {
    if (this.role !== 'leader' || !this.driver || this.fatalError !== undefined) return;
    if (this.pendingBlocks.size >= this.options.maxPendingBlocks || this.pool.size === 0) return;
    const txs = this.pool.take(this.options.maxBlockTxs, this.options.maxBlockBytes);
    if (txs.length === 0) return;
    const base = this.speculativeBase ?? baseOf(this.chain);
    const built = buildBlock(
      this.deps.app,
      this.deps.genesis.chainId,
      base,
      txs,
      { raftId: this.raftId, key: this.deps.minterKey },
      this.deps.clock.wallMs(),
      this.term,
      { maxTxs: this.options.maxBlockTxs, maxTxBytes: this.options.maxBlockBytes },
      this.verifiedTxs,
    );
    if (built.deferred.length > 0) this.pool.returnTxs(built.deferred);
    if (built.rejected.length > 0) {
      this.pool.removeCommitted(built.rejected.map((r) => r.tx));
      this.log.debug({ rejected: built.rejected.length }, 'transactions dropped from the pool at minting');
    }
    if (built.block.transactions.length === 0) return; // never an empty block
    const hashHex = built.block.hashHex;
    this.pendingBlocks.set(hashHex, { built });
    this.speculativeBase = built.next;
    this.driver.propose(encodeBlock(built.block)).catch((err: unknown) => {
      // Not proposed (lost leadership, transfer in progress, quota): give the transactions back.
      if (this.pendingBlocks.delete(hashHex)) {
        this.speculativeBase = undefined;
        this.pool.resetInFlight();
      }
      this.log.debug({ err }, 'block proposal refused');
    });
  }

  // ------------------------------------------------------------------ applying

  private async apply(entries: readonly Entry[]): Promise<void> {
    let unrecordedIndex = 0;
    for (const e of entries) {
      if (e.index <= this.applied) continue; // replayed after a restart: already in the store
      if (e.type === EntryType.ConfChange) {
        await this.applyConfChange(e);
      } else if (e.data.length === 0) {
        unrecordedIndex = e.index; // the leader's no-op: nothing to do but remember the index
        this.applied = e.index;
      } else {
        await this.applyBlockEntry(e);
      }
      if (e.type !== EntryType.Normal || e.data.length > 0) unrecordedIndex = 0;
    }
    if (unrecordedIndex > 0) await this.deps.chainStore.recordNoop(unrecordedIndex);
  }

  private async applyBlockEntry(e: Entry): Promise<void> {
    let block: Block;
    try {
      block = decodeBlock(e.data);
    } catch (err) {
      // Every node decodes the same bytes the same way: all skip it alike.
      this.log.warn({ err, index: e.index }, 'undecodable block entry skipped');
      await this.deps.chainStore.recordNoop(e.index);
      this.applied = e.index;
      return;
    }
    // While catching up after a snapshot the private state lags the head: the private part of
    // this block waits for the replay (deferPrivate), so no payload is needed now.
    const payloads = this.catchUpRecord === undefined ? await this.prefetchPrivate(block) : undefined;
    await this.withPrivateLock(() => this.applyFetchedBlock(e, block, payloads));
  }

  private async applyFetchedBlock(
    e: Entry,
    block: Block,
    prefetched: Map<string, PrivatePayload> | undefined,
  ): Promise<void> {
    // Private state = the private transactions applied in chain order. While the catch-up replays
    // older blocks into it, a newer block's private part must not go first (a cas or an append
    // depends on what came before; a per-key "newest wins" would be wrong for them): its public
    // part applies now, its private part when the replay reaches it (runCatchUp).
    const deferPrivate = this.catchUpRecord !== undefined;
    let payloads = prefetched;
    // The replay finished while this block waited for the lock: its private part is due now.
    if (!deferPrivate && payloads === undefined) payloads = await this.prefetchPrivate(block);
    if (this.stopped) throw new NodeError(NodeErrorCode.Unavailable, 'stopped while fetching private payloads');
    const mine = this.pendingBlocks.get(block.hashHex);
    // Our own block: the executor reuses what building it computed instead of running it again.
    const result = applyBlock(this.chain, block, payloads ?? new Map(), mine?.built, { deferPrivate });
    if (result.kind === 'applied') {
      await this.deps.chainStore.commitBlock(
        block,
        result.receipts,
        result.stateChanges,
        { entries: result.privateStateChanges, receipts: result.privateReceipts },
        e.index,
      );
      this.chain.advance(result);
      this.applied = e.index;
      this.pool.removeCommitted(block.transactions);
      for (const tx of block.transactions) {
        const next = this.localNonces.get(tx.from);
        if (next !== undefined && next <= tx.nonce + 1) this.localNonces.delete(tx.from);
      }
      if (mine) {
        this.pendingBlocks.delete(block.hashHex);
        if (this.pendingBlocks.size === 0) this.speculativeBase = undefined;
      }
      for (const l of this.blockListeners) l({ block, raftIndex: e.index });
    } else {
      await this.deps.chainStore.recordNoop(e.index);
      this.applied = e.index;
      this.log.info(
        { index: e.index, reason: result.reason, detail: result.detail, mine: mine !== undefined },
        'block entry is a no-op',
      );
      if (mine) {
        // Our speculative chain broke here: every later pending block builds on it and is a no-op too.
        this.pendingBlocks.clear();
        this.speculativeBase = undefined;
        this.pool.resetInFlight();
      }
    }
  }

  /**
   * Asks this node's transaction manager about every private transaction of the block. Retries
   * (with backoff, raising an alarm) until each answer is known: "could not ask" is never taken
   * for "not a party" (GoQuorum's private-state divergence).
   */
  private async prefetchPrivate(block: Block, abandon?: () => boolean): Promise<Map<string, PrivatePayload>> {
    const out = new Map<string, PrivatePayload>();
    if (privatePayloadKeys(block).length === 0) return out;
    const privacy = this.deps.privacy;
    const wanted = new Map<string, Transaction>();
    for (const tx of block.transactions)
      if (tx.privatePayloadHash) wanted.set(payloadHashKey(tx.privatePayloadHash), tx);
    const fetchOne = async (key: string, tx: Transaction): Promise<void> => {
      if (!privacy) throw new NodeError(NodeErrorCode.PrivacyUnavailable, 'this node has no transaction manager');
      try {
        const payload = await privacy.receive(tx.privatePayloadHash!, tx.privateFor ?? []);
        out.set(key, payload === null ? { kind: 'not-party' } : { kind: 'party', ops: decodePrivatePayload(payload) });
      } catch (err) {
        // The payload is there but is not a valid op list: a party applies nothing (status 0).
        if (err instanceof ChainError) out.set(key, { kind: 'party', ops: [] });
        else throw err;
      }
    };
    let delayMs = PRIVACY_RETRY_BASE_MS;
    for (;;) {
      // Stopped, or (the catch-up's replay) the plan changed: the caller checks and does not apply.
      if (this.stopped || abandon?.()) return out;
      const missing = [...wanted].filter(([key]) => !out.has(key));
      if (missing.length === 0) break;
      // Concurrently, a bounded number at a time: the driver waits for the whole block.
      const failures: unknown[] = [];
      for (let i = 0; i < missing.length; i += PRIVACY_FETCH_CONCURRENCY) {
        const results = await Promise.allSettled(
          missing.slice(i, i + PRIVACY_FETCH_CONCURRENCY).map(([key, tx]) => fetchOne(key, tx)),
        );
        for (const r of results) if (r.status === 'rejected') failures.push(r.reason);
      }
      if (failures.length === 0) break;
      const err = failures[0];
      this.alarm = `cannot fetch private payload for block ${block.header.number}: ${err instanceof Error ? err.message : String(err)}`;
      this.log.error(
        { err, block: block.header.number, missing: failures.length },
        'private payload unknown: not applying the block until the transaction manager answers',
      );
      await new Promise<void>((resolve) => this.deps.clock.setTimeout(resolve, delayMs));
      delayMs = Math.min(delayMs * 2, PRIVACY_RETRY_MAX_MS);
    }
    if (this.alarm?.startsWith('cannot fetch private payload')) {
      this.alarm = undefined;
      this.log.info({ block: block.header.number }, 'private payloads known again: applying');
    }
    return out;
  }

  private async applyConfChange(e: Entry): Promise<void> {
    const cc = decodeConfChange(e.data);
    const ctx = decodeConfContext(cc.context);
    this.membershipState = applyConfContext(this.membershipState, ctx);
    if (ctx?.member) this.chain.registerMember(ctx.member.raftId, Buffer.from(ctx.member.signingKey, 'base64'));
    await this.deps.chainStore.recordMembership(encodeMembership(this.membershipState), e.index);
    this.applied = e.index;
    this.updatePeers();
    if (ctx) {
      this.log.info({ op: ctx.op, raftId: ctx.raftId, index: e.index }, 'membership change applied');
      if (ctx.op === 'remove' && ctx.raftId === this.raftId) {
        this.removed = true;
        this.alarm = 'this node was removed from the cluster';
        this.minterTimer?.cancel();
      }
      // Answered after this Ready's advance(), which is when the core applies the change to its
      // configuration: an RPC that returned before would let raft_status still show the old
      // members (the driver applies the rest of the batch, possibly blocks with synced writes, first).
      const waiter = this.confWaiters.get(ctx.requestId);
      if (waiter) {
        this.confWaiters.delete(ctx.requestId);
        this.confWaitersAfterAdvance.push(waiter);
      }
    }
  }

  /** Snapshot = membership + the chain's public state at the applied index (never private state). */
  private async snapshotData(): Promise<Uint8Array> {
    const membership = encodeMembership(this.membershipState);
    const chain = await snapshotToBytes(exportSnapshot(this.chain, this.applied, { includePrivate: false }));
    const out = new Uint8Array(4 + membership.length + chain.length);
    new DataView(out.buffer).setUint32(0, membership.length, true);
    out.set(membership, 4);
    out.set(chain, 4 + membership.length);
    return out;
  }

  private async restore(snapshot: Snapshot): Promise<void> {
    const data = snapshot.data;
    if (data.length === 0) return; // the bootstrap snapshot: genesis is already in the store
    nodeAssert(data.length >= 4, 'snapshot data too short');
    const mlen = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0, true);
    nodeAssert(4 + mlen <= data.length, 'snapshot membership length out of range');
    const membership = decodeMembership(data.subarray(4, 4 + mlen));
    const imported = await importSnapshot(snapshotChunksFromBytes(data.subarray(4 + mlen)), this.deps.chainStore);
    nodeAssert(
      imported.appliedRaftIndex === snapshot.metadata.index,
      () =>
        `snapshot at raft index ${snapshot.metadata.index} carries chain state of index ${imported.appliedRaftIndex}`,
    );
    const previousHead = this.chain.head.header.number;
    await this.withPrivateLock(async () => {
      // One batch: the state and the membership of the same index (a crash between two writes
      // would pair the new state with the old membership), and the catch-up record when the
      // snapshot skipped blocks (a crash must not forget that the private state lags).
      await this.deps.chainStore.installSnapshot({ ...imported, membership: encodeMembership(membership) });
      this.membershipState = membership;
      const { state, privateState } = await this.deps.chainStore.loadState();
      this.chain = this.chain.reset(imported.head, state, privateState);
      this.catchUpRecord = await this.deps.chainStore.catchUp();
    });
    this.registerMemberKeys();
    this.applied = imported.appliedRaftIndex;
    this.pendingBlocks.clear();
    this.speculativeBase = undefined;
    this.updatePeers();
    this.log.info(
      { index: this.applied, head: imported.head.header.number, previousHead, catchUp: this.catchUpRecord },
      'snapshot installed',
    );
    if (this.catchUpRecord) this.startCatchUp();
  }

  // ------------------------------------------------------------------ catching up after a snapshot

  private withPrivateLock<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.privateLockTail.then(fn);
    this.privateLockTail = run.catch(() => undefined);
    return run;
  }

  /**
   * While this node catches up after a snapshot: how far its private state lags. Private reads
   * are refused meanwhile (node/backend.ts) rather than answered from incomplete state.
   */
  privateCatchUp():
    { readonly privateThrough: number; readonly blocksLeft: number; readonly blocksToFetch: number } | undefined {
    const r = this.catchUpRecord;
    if (!r) return undefined;
    return {
      privateThrough: r.privateThrough,
      blocksLeft: this.chain.head.header.number - r.privateThrough,
      blocksToFetch: Math.max(0, r.backfillNext - r.privateThrough),
    };
  }

  private startCatchUp(): void {
    if (this.catchUpRun !== undefined || this.stopped) return;
    const abort = new AbortController();
    this.catchUpAbort = abort;
    this.catchUpRun = this.runCatchUp(abort.signal)
      .catch((err: unknown) => {
        if (!this.stopped) this.fail(err);
      })
      .finally(() => {
        this.catchUpRun = undefined;
        this.catchUpAbort = undefined;
        // A snapshot installed just as the previous run ended: its record still needs a run.
        if (this.catchUpRecord && !this.stopped && !this.removed && this.fatalError === undefined) this.startCatchUp();
      });
  }

  /**
   * After a snapshot skipped blocks (CatchUpRecord): first fetch the missing blocks from peers,
   * from the top down (node/catch-up.ts), then replay their private transactions, from the
   * oldest, into the private state, with this node's own payloads, up to the head. Blocks applied
   * meanwhile keep their private part for the replay (applyFetchedBlock), so the private state is
   * always the chain-order result of a prefix of the chain. Progress is in the store record, so
   * a restart resumes. Network failures are retried with backoff; a store failure is fatal.
   */
  private async runCatchUp(signal: AbortSignal): Promise<void> {
    let delayMs = BACKFILL_RETRY_BASE_MS;
    this.log.info(
      { catchUp: this.catchUpRecord },
      'catching up after a snapshot: fetching the skipped blocks, then replaying their private transactions',
    );
    while (!this.stopped && !signal.aborted && !this.removed && this.fatalError === undefined && this.catchUpRecord) {
      const record = this.catchUpRecord;
      if (record.backfillNext > record.privateThrough) {
        if (await this.backfillStep(record, signal)) {
          delayMs = BACKFILL_RETRY_BASE_MS;
        } else {
          await new Promise<void>((resolve) => {
            const t = this.deps.clock.setTimeout(resolve, delayMs);
            signal.addEventListener('abort', () => (t.cancel(), resolve()), { once: true });
          });
          delayMs = Math.min(delayMs * 2, BACKFILL_RETRY_MAX_MS);
        }
      } else {
        await this.replayStep(signal);
      }
    }
  }

  /** Members to ask for blocks: the leader first (it has every block), then the others. */
  private backfillPeers(): string[] {
    const self = this.deps.transport.localPeerId;
    const leader = findMember(this.membershipState, this.leaderId);
    const out = leader && leader.peerId !== self ? [leader.peerId] : [];
    for (const m of this.membershipState.members) if (m.peerId !== self && !out.includes(m.peerId)) out.push(m.peerId);
    return out;
  }

  /** Fetches, verifies and stores one range of missing blocks. False when no member could serve it. */
  private async backfillStep(record: CatchUpRecord, signal: AbortSignal): Promise<boolean> {
    const store = this.deps.chainStore;
    // Skip what is stored already (a second snapshot's range runs down into the first one's).
    let hi = record.backfillNext;
    while (hi > record.privateThrough && (await store.blockStored(hi)) === 'complete') hi--;
    if (hi <= record.privateThrough) {
      await this.withPrivateLock(async () => {
        if (this.catchUpRecord !== record) return; // a snapshot install changed the plan
        await store.storeBackfilledBlocks([], hi);
        this.catchUpRecord = { ...record, backfillNext: hi };
      });
      return true;
    }
    // The top of the range is authenticated by what this node holds: the block itself when it is
    // here without its receipts (a snapshot's head), else its successor's parentHash.
    const held = await store.getBlockByNumber(hi);
    const successor = held ? undefined : await store.getBlockByNumber(hi + 1);
    nodeAssert(held || successor, () => `catch-up: neither block ${hi} nor its successor is stored`);
    const top = held ? { number: hi, hash: held.hash } : parentOf(successor!);
    let lo = hi;
    while (
      lo - 1 > record.privateThrough &&
      hi - lo + 1 < BLOCK_RANGE_MAX_BLOCKS &&
      (await store.blockStored(lo - 1)) !== 'complete'
    )
      lo--;
    let lastError: unknown;
    for (const peerId of this.backfillPeers()) {
      if (signal.aborted) return false;
      let blocks;
      try {
        blocks = await requestBlockRange(this.deps.transport, peerId, { from: lo, to: hi }, signal);
        verifyBlockRange(blocks, top, record.privateThrough);
      } catch (err) {
        // Whatever a peer or the network did (unreachable, timed out, does not hold them, sent
        // something else: BlockRangeError / P2pError) is the peer's failure, not this node's:
        // ask the next member. Nothing here has written anything yet.
        lastError = err;
        if (!(err instanceof BlockRangeError) && !(err instanceof P2pError))
          this.log.warn({ err, peer: peerId }, 'catch-up: unexpected error asking a peer for blocks');
        continue;
      }
      const lowest = blocks[0].block.header.number;
      if (lowest === record.privateThrough + 1) {
        // The fetched chain is verified from the top (the cluster's); it must also extend the
        // block this node applied last. If not, this node's own history is not the cluster's:
        // replaying on top of it would build private state on a chain nobody else has.
        const own = await store.getBlockByNumber(record.privateThrough);
        nodeAssert(
          own,
          () => `catch-up: block ${record.privateThrough}, where the private state stands, is not stored`,
        );
        if (!bytesEqual(own.hash, blocks[0].block.header.parentHash)) {
          throw new ChainError(
            ChainErrorCode.StoreCorrupt,
            `catch-up: this node's block ${own.header.number} (${own.hashHex}) is not the parent of the cluster's block ${lowest}: this node's chain diverged`,
            { block: own.header.number },
          );
        }
      }
      await this.withPrivateLock(async () => {
        if (this.catchUpRecord !== record) return; // a snapshot install changed the plan: fetch again
        await store.storeBackfilledBlocks(blocks, lowest - 1);
        this.catchUpRecord = { ...record, backfillNext: lowest - 1 };
      });
      this.log.debug({ from: lowest, to: hi, peer: peerId }, 'catch-up: stored blocks fetched from a peer');
      return true;
    }
    this.log.warn({ err: lastError, from: lo, to: hi }, 'catch-up: no member could serve the missing blocks; retrying');
    return false;
  }

  /**
   * Replays the private part of the next block(s) after privateThrough: a run of blocks without
   * private transactions and the first block with some, as one synced write. Payloads come from
   * this node's own transaction manager through prefetchPrivate, which retries until each answer
   * is known ("could not tell" is never "not a party").
   */
  private async replayStep(signal: AbortSignal): Promise<void> {
    const start = await this.withPrivateLock(async () =>
      this.catchUpRecord
        ? { from: this.catchUpRecord.privateThrough + 1, head: this.chain.head.header.number }
        : undefined,
    );
    if (!start) return;
    nodeAssert(
      start.from <= start.head,
      () => `catch-up: private state at ${start.from - 1} is not behind the head ${start.head}`,
    );
    let target: Block | undefined;
    for (let n = start.from; n <= start.head && n < start.from + REPLAY_SCAN_MAX_BLOCKS; n++) {
      const block = await this.deps.chainStore.getBlockByNumber(n);
      if (!block) break; // skipped by a snapshot installed since: the next backfill fetches it
      target = block;
      if (privatePayloadKeys(block).length > 0) break;
    }
    if (!target) {
      nodeAssert(
        this.catchUpRecord === undefined || this.catchUpRecord.backfillNext > this.catchUpRecord.privateThrough,
        () => `catch-up: block ${start.from} is missing with no backfill pending`,
      );
      return;
    }
    const block = target;
    // A snapshot installed while this waits for the transaction manager moves the plan (new blocks
    // to fetch first): give up this block and start over from the new record.
    const planned = this.catchUpRecord;
    const abandoned = () => signal.aborted || this.catchUpRecord !== planned;
    const payloads = await this.prefetchPrivate(block, abandoned);
    if (this.stopped || abandoned()) return;
    await this.withPrivateLock(async () => {
      const record = this.catchUpRecord;
      // Only this loop moves privateThrough; a snapshot install keeps it.
      nodeAssert(
        record !== undefined && record.privateThrough + 1 === start.from,
        () =>
          `catch-up: privateThrough moved under the replay (${String(record?.privateThrough)}, expected ${start.from - 1})`,
      );
      const result = applyPrivateBlock(this.chain, block, payloads);
      const n = block.header.number;
      const done = n === this.chain.head.header.number && record.backfillNext <= record.privateThrough;
      await this.deps.chainStore.commitPrivateReplay(
        n,
        { entries: result.privateStateChanges, receipts: result.privateReceipts },
        done,
      );
      this.chain.advancePrivate(result.privateOverlay);
      this.catchUpRecord = done ? undefined : { ...record, privateThrough: n };
      if (done)
        this.log.info(
          { head: n },
          'caught up after a snapshot: every block is here and the private state is at the head',
        );
    });
  }

  private updatePeers(extra: PeerAddress[] = []): void {
    const self = this.deps.transport.localPeerId;
    const peers = new Map<string, PeerAddress>();
    if (!findMember(this.membershipState, this.raftId)) {
      for (const p of this.deps.bootstrapPeers ?? [])
        if (p.peerId !== self) peers.set(p.peerId, { peerId: p.peerId, addrs: p.addrs });
    }
    for (const [peerId, v] of this.vouchedPeers) if (peerId !== self) peers.set(peerId, { peerId, addrs: v.addrs });
    for (const m of this.membershipState.members)
      if (m.peerId !== self) peers.set(m.peerId, { peerId: m.peerId, addrs: m.p2pAddrs });
    for (const p of extra) peers.set(p.peerId, p);
    const overrides = this.deps.addressOverrides;
    const dialable = [...peers.values()].map((p) =>
      overrides?.has(p.peerId) ? { peerId: p.peerId, addrs: overrides.get(p.peerId)! } : p,
    );
    this.deps.transport.setPeers(dialable);
    if (extra.length === 0) for (const l of this.membershipListeners) l(this.membershipState);
  }

  // ------------------------------------------------------------------ identity of peers

  /**
   * Exchanges (raft id, incarnation) with a peer. A member that lost its data directory comes back
   * with a new incarnation and an empty log: letting it vote could elect two leaders in one term
   * (it forgot its vote). Peers refuse it, and it stops itself once a peer says so.
   */
  private async identify(peerId: string): Promise<void> {
    if (this.raftId === 0 || this.identInFlight.has(peerId) || this.stopped) return;
    this.identInFlight.add(peerId);
    try {
      const reply = (await this.ctlRequest(
        peerId,
        { type: 'ident', raftId: this.raftId, incarnation: this.deps.incarnation },
        IDENT_TIMEOUT_MS,
      )) as { raftId: number; incarnation: string; refused?: string };
      if (reply.refused) {
        this.fail(
          new NodeError(
            NodeErrorCode.Unavailable,
            `refusing to run: ${reply.refused}. This node's data directory was lost or replaced while it was a member. Remove it (raft_removePeer ${this.raftId}) and add it again under a new id (quorate add-node).`,
          ),
        );
        return;
      }
      // A node not yet given an id (started with --join) is not a member: nothing to remember.
      if (reply.raftId === 0) return;
      if ((await this.checkIncarnation(peerId, reply.raftId, reply.incarnation)) === undefined)
        this.verifiedPeers.set(peerId, reply.raftId);
    } catch {
      // Not reachable now; the next connect or Raft message tries again.
    } finally {
      this.identInFlight.delete(peerId);
    }
  }

  /**
   * Returns why the claim is refused, or undefined when it is consistent with what we know. An
   * incarnation seen for the first time is stored (synced) before the peer is trusted, so a restart
   * of this node does not forget it.
   */
  private async checkIncarnation(peerId: string, raftId: number, incarnation: string): Promise<string | undefined> {
    if (
      !Number.isSafeInteger(raftId) ||
      raftId <= 0 ||
      typeof incarnation !== 'string' ||
      incarnation.length === 0 ||
      incarnation.length > MAX_INCARNATION_CHARS
    )
      return 'malformed identity';
    const expected = this.raftIdOfPeer(peerId);
    if (expected !== undefined && expected !== raftId) return `peer ${peerId} holds raft id ${expected}, not ${raftId}`;
    const known = this.knownIncarnations.get(raftId);
    if (known !== undefined && known !== incarnation) {
      const why = `member ${this.raftId} knew raft id ${raftId} with incarnation ${known}, and now sees ${incarnation}`;
      this.warnOnce(
        `incarnation:${peerId}`,
        { raftId, known, now: incarnation },
        'refused a member whose data directory changed',
      );
      return why;
    }
    if (known === undefined) {
      if (this.knownIncarnations.size >= MAX_KNOWN_INCARNATIONS) {
        const oldest = this.knownIncarnations.keys().next().value as number;
        this.knownIncarnations.delete(oldest);
        await this.deps.chainStore.rememberIncarnation(oldest, undefined);
      }
      this.knownIncarnations.set(raftId, incarnation);
      await this.deps.chainStore.rememberIncarnation(raftId, incarnation);
    }
    return undefined;
  }

  /**
   * A node that has had no leader for a while may lag behind a membership change that added the
   * current leader: its allowlist (its applied membership) then refuses the very peer that would
   * catch it up. It asks a member it identified for that member's membership, and admits the
   * members listed there until its own applied membership catches up (members are trusted:
   * Raft here is crash-fault tolerant, and the vouching member was authenticated by Noise).
   */
  private async refreshVouched(): Promise<void> {
    if (this.stopped || this.removed || !this.raft) return;
    const leaderKnown = this.leaderId !== 0 && findMember(this.membershipState, this.leaderId) !== undefined;
    const now = this.deps.clock.monotonicMs();
    if (leaderKnown) {
      this.noLeaderSinceMs = undefined;
      if (this.vouchedPeers.size > 0) {
        this.vouchedPeers = new Map();
        this.updatePeers();
      }
      return;
    }
    this.noLeaderSinceMs ??= now;
    if (now - this.noLeaderSinceMs < VOUCH_AFTER_NO_LEADER_MS) return;
    for (const peerId of this.verifiedPeers.keys()) {
      try {
        const members = (await this.ctlRequest(peerId, { type: 'members' }, CTL_QUERY_TIMEOUT_MS)) as Array<{
          raftId: number;
          peerId: string;
          p2pAddrs: string[];
        }>;
        const next = new Map<string, { raftId: number; addrs: readonly string[] }>();
        for (const m of members.slice(0, MAX_VOUCHED_PEERS)) {
          if (typeof m.raftId !== 'number' || typeof m.peerId !== 'string' || !Array.isArray(m.p2pAddrs)) continue;
          if (m.peerId === this.deps.transport.localPeerId || findMemberByPeerId(this.membershipState, m.peerId))
            continue;
          next.set(m.peerId, { raftId: m.raftId, addrs: m.p2pAddrs.slice(0, 8) });
        }
        if (next.size > 0)
          this.log.info(
            { via: peerId, vouched: [...next.values()].map((v) => v.raftId) },
            'admitting members not applied here yet, vouched for by a member',
          );
        this.vouchedPeers = next;
        this.updatePeers();
        return;
      } catch {
        // ask the next one
      }
    }
  }

  // ------------------------------------------------------------------ joining

  private pollForId(): void {
    const ask = async (): Promise<void> => {
      if (this.stopped || this.raftId !== 0) return;
      const asked = new Map<string, number>();
      for (const m of this.membershipState.members) asked.set(m.peerId, m.raftId);
      for (const p of this.deps.bootstrapPeers ?? []) asked.set(p.peerId, p.raftId);
      for (const [peerId, via] of asked) {
        if (peerId === this.deps.transport.localPeerId) continue;
        try {
          const reply = await this.ctlRequest(peerId, { type: 'whoami' }, CTL_QUERY_TIMEOUT_MS);
          const id = (reply as { raftId?: number | null }).raftId;
          if (typeof id === 'number' && id > 0 && this.raftId === 0) {
            this.raftId = id;
            await this.deps.persistRaftId?.(id);
            this.log.info({ raftId: id, via }, 'joined the cluster');
            this.updatePeers();
            await this.startRaft();
            return;
          }
        } catch {
          // that member is not reachable or does not know us yet: ask the next one
        }
      }
      this.joinTimer = this.deps.clock.setTimeout(() => void ask(), JOIN_POLL_MS);
    };
    this.log.info(
      { peerId: this.deps.transport.localPeerId },
      'waiting to be added to the cluster (raft_addPeer / raft_addLearner on a member)',
    );
    void ask();
  }

  // ------------------------------------------------------------------ control channel

  private async ctlRequest(peerId: string, req: CtlRequest, timeoutMs: number, signal?: AbortSignal): Promise<unknown> {
    const bytes = await this.deps.transport.request(
      peerId,
      CHANNEL_CTL,
      new TextEncoder().encode(JSON.stringify(req)),
      { timeoutMs, signal },
    );
    const reply = JSON.parse(new TextDecoder().decode(bytes)) as { ok?: unknown; error?: WireError };
    if (reply.error) throw errorFromWire(reply.error);
    return reply.ok;
  }

  private async onControl(from: string, data: Uint8Array, signal: AbortSignal): Promise<Uint8Array> {
    const reply = async (): Promise<unknown> => {
      if (data.length > MAX_CTL_BYTES)
        throw new NodeError(NodeErrorCode.MembershipChangeInvalid, 'control request too large');
      const req = JSON.parse(new TextDecoder().decode(data)) as CtlRequest;
      switch (req.type) {
        case 'hello':
          return this.selfInfo();
        case 'ident': {
          if (Number(req.raftId) === 0) return { raftId: this.raftId, incarnation: this.deps.incarnation };
          const refused = await this.checkIncarnation(from, Number(req.raftId), String(req.incarnation ?? ''));
          if (refused) return { raftId: this.raftId, incarnation: this.deps.incarnation, refused };
          this.verifiedPeers.set(from, Number(req.raftId));
          return { raftId: this.raftId, incarnation: this.deps.incarnation };
        }
        case 'members': {
          // Only to a member we identified: it uses the answer to admit members it has not applied yet.
          if (!this.verifiedPeers.has(from)) throw new NodeError(NodeErrorCode.Unavailable, 'identify first');
          return this.membershipState.members.map((m) => ({
            raftId: m.raftId,
            peerId: m.peerId,
            p2pAddrs: m.p2pAddrs,
          }));
        }
        case 'whoami': {
          const m = findMemberByPeerId(this.membershipState, from);
          return { raftId: m ? m.raftId : null };
        }
        case 'admin': {
          // Only members may drive membership changes through another member.
          if (!findMemberByPeerId(this.membershipState, from))
            throw new NodeError(NodeErrorCode.MembershipChangeInvalid, 'not a member');
          return this.runAdminLocally(req, signal);
        }
        default:
          throw new NodeError(
            NodeErrorCode.MembershipChangeInvalid,
            `unknown control request ${String((req as { type?: unknown }).type)}`,
          );
      }
    };
    let out: unknown;
    try {
      out = { ok: await reply() };
    } catch (err) {
      out = { error: errorToWire(err) };
    }
    return new TextEncoder().encode(JSON.stringify(out));
  }

  private selfInfo(): Omit<MemberInfo, 'raftId'> {
    return {
      name: this.options.name,
      peerId: this.deps.transport.localPeerId,
      p2pAddrs: this.deps.transport.listenAddrs().map((a) => a.replace(/\/p2p\/[^/]+$/, '')),
      rpcUrl: this.options.rpcUrl,
      tmUrl: this.options.tmUrl,
      signingKey: Buffer.from(this.deps.minterKey.publicKeyRaw).toString('base64'),
      enclaveKeys: [...this.deps.enclaveKeys],
    };
  }

  // ------------------------------------------------------------------ membership changes

  addPeer(p2pAddress: string, signal?: AbortSignal): Promise<number> {
    return this.admin({ type: 'admin', op: 'add-peer', p2pAddress }, signal) as Promise<number>;
  }
  addLearner(p2pAddress: string, signal?: AbortSignal): Promise<number> {
    return this.admin({ type: 'admin', op: 'add-learner', p2pAddress }, signal) as Promise<number>;
  }
  async promoteToPeer(raftId: number, signal?: AbortSignal): Promise<void> {
    await this.admin({ type: 'admin', op: 'promote', raftId }, signal);
  }
  async removePeer(raftId: number, signal?: AbortSignal): Promise<void> {
    await this.admin({ type: 'admin', op: 'remove', raftId }, signal);
  }
  async transferLeadership(raftId: number, signal?: AbortSignal): Promise<void> {
    await this.admin({ type: 'admin', op: 'transfer', raftId }, signal);
  }

  /** Runs a change on the leader: here, or forwarded to it over the control channel. */
  private async admin(req: CtlRequest, signal?: AbortSignal): Promise<unknown> {
    this.assertRunning();
    if (this.isLeaderNow()) return this.runAdminLocally(req, signal);
    const leader = findMember(this.membershipState, this.leaderNow());
    if (!leader) throw new NodeError(NodeErrorCode.NoLeader, 'no leader is known: retry after an election timeout');
    return this.ctlRequest(leader.peerId, req, this.options.changeTimeoutMs + 2_000, signal);
  }

  private async runAdminLocally(req: CtlRequest, signal?: AbortSignal): Promise<unknown> {
    this.assertRunning();
    if (!this.isLeaderNow()) {
      throw new NodeError(
        NodeErrorCode.NotLeader,
        `this node is not the leader (leader: ${this.leaderNow() || 'unknown'})`,
        { leader: this.leaderNow() || null },
      );
    }
    switch (req.op) {
      case 'add-peer':
      case 'add-learner':
        return this.addMember(req.op, String(req.p2pAddress ?? ''), signal);
      case 'promote': {
        const id = this.requireMember(req.raftId);
        if (!this.raft!.confState().learners.includes(id as RaftId)) {
          throw new NodeError(NodeErrorCode.MembershipChangeInvalid, `raft id ${id} is not a learner`);
        }
        await this.proposeChange('promote', id, undefined, signal);
        return true;
      }
      case 'remove': {
        const id = this.requireMember(req.raftId);
        await this.proposeChange('remove', id, undefined, signal);
        return true;
      }
      case 'transfer': {
        const id = this.requireMember(req.raftId);
        if (id === this.raftId) return true;
        await this.driver!.call((r) => r.transferLeadership(id as RaftId)).catch((err: unknown) => {
          throw toNodeError(err);
        });
        await this.waitUntil(
          () => this.leaderId === id,
          this.options.changeTimeoutMs,
          signal,
          `leadership did not move to ${id}`,
        );
        return true;
      }
      default:
        throw new NodeError(NodeErrorCode.MembershipChangeInvalid, `unknown membership operation ${String(req.op)}`);
    }
  }

  private requireMember(raftId: unknown): number {
    if (typeof raftId !== 'number' || !findMember(this.membershipState, raftId)) {
      throw new NodeError(NodeErrorCode.MembershipChangeInvalid, `raft id ${String(raftId)} is not a member`);
    }
    return raftId;
  }

  private async addMember(op: 'add-peer' | 'add-learner', p2pAddress: string, signal?: AbortSignal): Promise<number> {
    const match = /^(\/.+)\/p2p\/([1-9A-HJ-NP-Za-km-z]+)$/.exec(p2pAddress);
    if (!match)
      throw new NodeError(
        NodeErrorCode.MembershipChangeInvalid,
        `p2p address must be a multiaddr ending in /p2p/<peer id>, got ${JSON.stringify(p2pAddress)}`,
      );
    const [, addr, peerId] = match;
    if (findMemberByPeerId(this.membershipState, peerId)) {
      throw new NodeError(NodeErrorCode.MembershipChangeInvalid, `peer ${peerId} is already a member`);
    }
    // Let the new node in (only it, and only for this change), then ask who it is.
    this.updatePeers([{ peerId, addrs: [addr] }]);
    // The transport dials it now; until the connection is up a request fails at once, so ask again
    // until the deadline.
    let info: Omit<MemberInfo, 'raftId'> | undefined;
    const deadline = this.deps.clock.monotonicMs() + JOIN_HELLO_TIMEOUT_MS;
    let lastError: unknown;
    while (!info && this.deps.clock.monotonicMs() < deadline && !signal?.aborted) {
      try {
        info = (await this.ctlRequest(peerId, { type: 'hello' }, 2_000, signal)) as Omit<MemberInfo, 'raftId'>;
      } catch (err) {
        lastError = err;
        await new Promise<void>((resolve) => this.deps.clock.setTimeout(resolve, 200));
      }
    }
    if (!info) {
      this.updatePeers();
      const why = lastError instanceof Error ? lastError.message : String(lastError);
      throw new NodeError(
        NodeErrorCode.Unavailable,
        `could not reach the new node at ${p2pAddress} within ${JOIN_HELLO_TIMEOUT_MS} ms (is it running with --join?): ${why}`,
      );
    }
    const raftId = this.membershipState.nextRaftId;
    const member: MemberInfo = { ...info, raftId, peerId, p2pAddrs: [addr] };
    try {
      await this.proposeChange(op, raftId, member, signal);
    } finally {
      this.updatePeers();
    }
    return raftId;
  }

  /** Proposes a change and resolves once it is applied here (so: committed). */
  private async proposeChange(
    op: ConfChangeOp,
    raftId: number,
    member: MemberInfo | undefined,
    signal?: AbortSignal,
  ): Promise<void> {
    const requestId = randomBytes(12).toString('hex');
    const context = encodeConfContext({ op, requestId, raftId, ...(member ? { member } : {}) });
    let resolveApplied!: () => void;
    const applied = new Promise<void>((resolve) => (resolveApplied = resolve));
    this.confWaiters.set(requestId, resolveApplied);
    try {
      await this.driver!.proposeConfChange(confChangeFor(op, raftId, context)).catch((err: unknown) => {
        throw toNodeError(err);
      });
      await this.raceTimeout(
        applied,
        this.options.changeTimeoutMs,
        signal,
        `membership change (${op} ${raftId}) did not commit`,
      );
    } finally {
      this.confWaiters.delete(requestId);
    }
  }

  private raceTimeout(
    p: Promise<void>,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    what: string,
  ): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const fail = () =>
        reject(new NodeError(NodeErrorCode.Timeout, `${what} within ${timeoutMs} ms: its outcome is unknown`));
      const timer = this.deps.clock.setTimeout(fail, timeoutMs);
      signal?.addEventListener('abort', fail, { once: true });
      p.then(
        () => {
          timer.cancel();
          resolve();
        },
        (err: unknown) => {
          timer.cancel();
          reject(err);
        },
      );
    });
  }

  private waitUntil(
    check: () => boolean,
    timeoutMs: number,
    signal: AbortSignal | undefined,
    what: string,
  ): Promise<void> {
    if (check()) return Promise.resolve();
    let waiter!: Waiter;
    const p = new Promise<void>((resolve) => {
      waiter = { check, resolve };
      this.waiters.add(waiter);
    });
    return this.raceTimeout(p, timeoutMs, signal, what).finally(() => this.waiters.delete(waiter));
  }

  // ------------------------------------------------------------------ transactions

  /** Submits a client-signed transaction (raw bytes). Resolves with its hash once accepted by the leader's pool. */
  async submitRaw(bytes: Uint8Array, signal?: AbortSignal): Promise<string> {
    let tx: Transaction;
    try {
      tx = decodeTransaction(bytes);
    } catch (err) {
      throw toNodeError(err);
    }
    return this.submit(tx, signal);
  }

  async submit(tx: Transaction, signal?: AbortSignal): Promise<string> {
    this.assertRunning();
    try {
      verifyTransaction(tx, this.deps.genesis.chainId, this.verifiedTxs);
    } catch (err) {
      throw toNodeError(err);
    }
    if (this.isLeaderNow()) {
      try {
        this.pool.add(tx);
      } catch (err) {
        throw toNodeError(err);
      }
      return tx.hashHex;
    }
    return this.forwardTx(tx, signal);
  }

  /**
   * Hands a transaction to the leader's pool over p2p. Forwards are micro-batched: everything
   * queued in one turn of the event loop, or while MAX_FORWARDS_IN_FLIGHT batches are out, travels
   * in one request (up to MAX_FORWARD_BATCH_TXS), so a follower under load costs the leader one p2p
   * round trip per batch, not per transaction.
   */
  private forwardTx(tx: Transaction, signal?: AbortSignal): Promise<string> {
    if (this.forwardQueue.length >= MAX_FORWARD_QUEUE_TXS) {
      return Promise.reject(
        new NodeError(
          NodeErrorCode.Unavailable,
          `${MAX_FORWARD_QUEUE_TXS} transactions already wait to be forwarded to the leader; retry`,
        ),
      );
    }
    if (signal?.aborted) return Promise.reject(new NodeError(NodeErrorCode.Timeout, 'aborted before forwarding'));
    return new Promise<string>((resolve, reject) => {
      this.forwardQueue.push({ tx, resolve, reject });
      if (!this.forwardScheduled) {
        this.forwardScheduled = true;
        setImmediate(() => this.flushForwards());
      }
    });
  }

  private flushForwards(): void {
    this.forwardScheduled = false;
    while (this.forwardQueue.length > 0 && this.forwardsInFlight < MAX_FORWARDS_IN_FLIGHT) {
      this.forwardsInFlight++;
      void this.sendForwardBatch(this.forwardQueue.splice(0, MAX_FORWARD_BATCH_TXS)).finally(() => {
        this.forwardsInFlight--;
        if (this.forwardQueue.length > 0 && !this.forwardScheduled) {
          this.forwardScheduled = true;
          setImmediate(() => this.flushForwards());
        }
      });
    }
  }

  private async sendForwardBatch(batch: readonly PendingForward[]): Promise<void> {
    const leader = findMember(this.membershipState, this.leaderNow());
    if (!leader || leader.raftId === this.raftId) {
      const err = new NodeError(NodeErrorCode.NoLeader, 'no leader is known: retry after an election timeout');
      for (const f of batch) f.reject(err);
      return;
    }
    let replies: Array<{ ok?: string; error?: WireError }>;
    try {
      const reply = await this.deps.transport.request(
        leader.peerId,
        CHANNEL_TX,
        encodeTxBatch(batch.map((f) => f.tx)),
        { timeoutMs: this.options.forwardTimeoutMs },
      );
      replies = JSON.parse(new TextDecoder().decode(reply)) as Array<{ ok?: string; error?: WireError }>;
      if (!Array.isArray(replies) || replies.length !== batch.length)
        throw new Error(
          `leader answered ${Array.isArray(replies) ? replies.length : 'no'} results for ${batch.length} transactions`,
        );
    } catch (err) {
      const e = new NodeError(
        NodeErrorCode.Unavailable,
        `could not forward the transaction to the leader (raft id ${leader.raftId}): ${err instanceof Error ? err.message : String(err)}; its outcome is unknown`,
        { leader: leader.raftId, leaderRpcUrl: leader.rpcUrl },
      );
      for (const f of batch) f.reject(e);
      return;
    }
    batch.forEach((f, i) => {
      const r = replies[i];
      if (r.error) f.reject(errorFromWire(r.error));
      else f.resolve(f.tx.hashHex);
    });
  }

  /**
   * The leader's side of a follower's forward (a batch). The forwarding member verified each
   * signature where the transaction entered (Raft is crash-fault tolerant and members are
   * authenticated by Noise), so the leader does not verify again: one Ed25519 check per
   * transaction per cluster is what lets the ledger reach thousands of transactions per second.
   */
  private async onForwardedTx(from: string, data: Uint8Array): Promise<Uint8Array> {
    const out: Array<{ ok?: string; error?: WireError }> = [];
    let txs: Uint8Array[] = [];
    try {
      if (!findMemberByPeerId(this.membershipState, from))
        throw new NodeError(NodeErrorCode.Unavailable, 'not a member');
      if (!this.isLeaderNow()) {
        const leader = findMember(this.membershipState, this.leaderNow());
        throw new NodeError(
          NodeErrorCode.NotLeader,
          `this node is no longer the leader (leader: ${this.leaderNow() || 'unknown'})`,
          { leader: this.leaderNow() || null, leaderRpcUrl: leader?.rpcUrl ?? null },
        );
      }
      txs = decodeTxBatch(data);
    } catch (err) {
      const e = errorToWire(err);
      const n = safeBatchCount(data);
      return new TextEncoder().encode(JSON.stringify(Array.from({ length: n }, () => ({ error: e }))));
    }
    for (const bytes of txs) {
      try {
        const tx = decodeTransaction(bytes);
        if (this.deps.genesis.chainId === tx.chainId) this.verifiedTxs.add(tx.hashHex);
        verifyTransaction(tx, this.deps.genesis.chainId, this.verifiedTxs);
        this.pool.add(tx);
        out.push({ ok: tx.hashHex });
      } catch (err) {
        out.push({ error: errorToWire(err) });
      }
    }
    return new TextEncoder().encode(JSON.stringify(out));
  }

  /** quorate_sendTransaction: signs with a key this node holds. */
  async sendTransaction(
    request: { from: Address; ops: readonly Op[]; privateFor?: readonly string[] },
    signal?: AbortSignal,
  ): Promise<string> {
    this.assertRunning();
    const key = this.accountsByAddress.get(request.from.toLowerCase());
    if (!key)
      throw new NodeError(
        NodeErrorCode.TxUnknownAccount,
        `this node holds no key for ${request.from}; use quorate_accounts, or sign it yourself and use quorate_sendRawTransaction`,
      );
    let privatePayloadHash: Uint8Array | undefined;
    let privateFor: Uint8Array[] | undefined;
    if (request.privateFor !== undefined) {
      const privacy = this.deps.privacy;
      if (!privacy) throw new NodeError(NodeErrorCode.PrivacyUnavailable, 'this node has no transaction manager');
      privateFor = request.privateFor.map((k) => Buffer.from(k, 'base64'));
      privatePayloadHash = await privacy.send(encodePrivatePayload(request.ops), request.privateFor, signal);
    }
    // The nonce is this node's best guess (a follower does not see the leader's pool): another of
    // this account's transactions may hold it already, e.g. one whose answer was lost in an
    // election. A refusal that says so ("nonce pending" or "too low") moves on to the next nonce,
    // a bounded number of times; the same transaction already pending is this call's success.
    for (let attempt = 1; ; attempt++) {
      const nonce = this.nextNonce(key.address);
      let tx: Transaction;
      try {
        tx = signTransaction(
          {
            chainId: this.deps.genesis.chainId,
            nonce,
            ops: privatePayloadHash ? [] : request.ops,
            privatePayloadHash,
            privateFor,
          },
          key,
        );
      } catch (err) {
        throw toNodeError(err);
      }
      this.localNonces.set(key.address, nonce + 1);
      try {
        return await this.submit(tx, signal);
      } catch (err) {
        const chainCode = err instanceof NodeError ? err.meta.chainCode : undefined;
        if (chainCode === ChainErrorCode.TxDuplicate) return tx.hashHex;
        if (
          (chainCode === ChainErrorCode.NonceAlreadyPending || chainCode === ChainErrorCode.NonceTooLow) &&
          attempt < MAX_NONCE_ATTEMPTS &&
          !signal?.aborted
        ) {
          const next = Number((err as NodeError).meta.next);
          this.localNonces.set(key.address, Math.max(nonce + 1, Number.isSafeInteger(next) ? next : 0));
          continue;
        }
        // The nonce may or may not be used now (a forward that timed out): start again from the chain.
        this.localNonces.delete(key.address);
        throw err;
      }
    }
  }

  private nextNonce(address: Address): number {
    const committed = getNonce(this.chain.state, address);
    const local = this.localNonces.get(address) ?? 0;
    const pooled = this.isLeaderNow() ? this.pool.pendingNonce(address) : 0;
    return Math.max(committed, local, pooled);
  }

  // ------------------------------------------------------------------ reads

  /** A linearizable read barrier (ReadIndex): after it resolves, local state reflects every write committed before the call. */
  async readBarrier(signal?: AbortSignal): Promise<void> {
    this.assertRunning();
    const p = this.driver!.readBarrier().then(() => undefined);
    if (!signal) return p.catch((err: unknown) => Promise.reject(toNodeError(err)));
    return this.raceTimeout(p, this.options.changeTimeoutMs, signal, 'linearizable read').catch((err: unknown) =>
      Promise.reject(toNodeError(err)),
    );
  }

  get chainState(): ChainState {
    return this.chain;
  }
  get store(): ChainStore {
    return this.deps.chainStore;
  }
  get membership(): MembershipState {
    return this.membershipState;
  }
  get accounts(): readonly Address[] {
    return [...this.accountsByAddress.keys()];
  }
  get chainId(): number {
    return this.deps.genesis.chainId;
  }
  get transport(): PeerTransport {
    return this.deps.transport;
  }
  get privacy(): PrivacyProvider | undefined {
    return this.deps.privacy;
  }
  get poolSize(): number {
    return this.pool?.size ?? 0;
  }

  /**
   * Called with the membership now and after every applied change (and snapshot install): every
   * node sees the same sequence. The transaction manager's key directory follows it.
   */
  onMembership(listener: (m: MembershipState) => void): () => void {
    this.membershipListeners.add(listener);
    if (this.membershipState) listener(this.membershipState);
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
      head: this.chain?.head.header.number ?? 0,
      peers: this.deps.transport.connectedPeers().length,
      appliedIndex: this.applied,
    };
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
        alarm: this.alarm ?? 'waiting to be added to the cluster',
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
      ...(this.alarm ? { alarm: this.alarm } : {}),
    };
  }

  /** The core's view right now (this.role lags it until the next Ready cycle ends). */
  private isLeaderNow(): boolean {
    return this.raft?.inner.state === Role.Leader;
  }

  private leaderNow(): number {
    return this.raft?.inner.lead ?? 0;
  }

  private assertRunning(): void {
    if (this.stopped) throw new NodeError(NodeErrorCode.Unavailable, 'node is stopped');
    if (this.fatalError !== undefined)
      throw new NodeError(NodeErrorCode.Unavailable, `node stopped on a fatal error: ${String(this.alarm)}`);
    if (this.removed) throw new NodeError(NodeErrorCode.Unavailable, 'this node was removed from the cluster');
    if (!this.driver) throw new NodeError(NodeErrorCode.Unavailable, 'this node has not joined the cluster yet');
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
