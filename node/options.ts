// The node's options: ONE tree, nested by the module that uses each option, with config.json's
// field names verbatim (`limits.txPoolMaxPerSender` in config.json is `pool.txPoolMaxPerSender`
// here), so a field cannot be renamed on its way in, nor parsed and then left unused
// (test/node/options.test.ts follows each documented field to the module that reads it).
//
// Modules that live in their own file export their defaults there (forward.ts, admin.ts); the
// parts the composition root wires itself (Raft, pool, minting), the transaction manager (built by
// the process) and the RPC server's limits (node/rpc/server.ts's RPC_SERVER_DEFAULTS) have theirs
// here. config.ts fills config.json's defaults from these, never from literals of its own.

import { MAX_PLAINTEXT_BYTES } from '../enclave/index.js';
import { DEFAULT_STORE_MAX_BYTES } from '../txmanager/payload-store.js';
import { MAX_NONCE_GAP, MAX_POOL_DRAIN_MS, QUEUED_TX_LIFETIME_MS, SNAPSHOT_CHUNK_BYTES } from './chain/index.js';
import { DEFAULT_SNAPSHOT_MAX_CONCURRENT_TRANSFERS, DEFAULT_SNAPSHOT_WINDOW_CHUNKS } from './snapshot-transfer.js';
import { RPC_SERVER_DEFAULTS } from './rpc/server.js';
import { DEFAULT_ADMIN_OPTIONS, type AdminOptions } from './admin.js';
import type { DeliveryMode, NodeConfig } from './config.js';
import { DEFAULT_FORWARD_OPTIONS, type ForwardOptions } from './forward.js';

export interface RaftOptions {
  /** Length of one logical tick. */
  readonly tickMs: number;
  /** Election timeout in ticks (randomised in [electionTicks, 2*electionTicks)). */
  readonly electionTicks: number;
  /** Heartbeat interval in ticks; must be < electionTicks. */
  readonly heartbeatTicks: number;
  readonly raftMaxMessageBytes: number;
  readonly raftMaxInflightMessages: number;
  readonly raftMaxUncommittedBytes: number;
  /** Applied entries between two snapshots (then the log is compacted). config raft.snapshotEveryEntries. */
  readonly snapshotEveryEntries: number;
  /**
   * Also snapshot (and compact) once the entries applied since the last snapshot hold this many
   * bytes of data; 0 turns the byte bound off. config raft.logMaxBytes.
   */
  readonly logMaxBytes: number;
  /** Largest chunk of a streamed snapshot this node asks for and accepts (node/snapshot-transfer.ts). */
  readonly snapshotChunkBytes: number;
  /** Snapshot transfers this node serves at once; more are answered "busy" and retried by the receiver. */
  readonly snapshotMaxConcurrentTransfers: number;
  /**
   * Chunks of one snapshot transfer in flight (flow-control window): the receiver asks this many
   * ahead, the sender grants at most its own. Memory per transfer ≈ window × snapshotChunkBytes
   * on each side. config raft.snapshotWindowChunks.
   */
  readonly snapshotWindowChunks: number;
  /** Entries kept behind a snapshot (the driver's default when unset): followers lagging less catch up without one. */
  readonly compactionRetainEntries?: number;
  /** Seed of the election-timeout jitter (from the OS in production, fixed in tests). */
  readonly seed: number;
}

export interface PoolOptions {
  /** Transactions waiting in the pool. */
  readonly txPoolMaxTransactions: number;
  /** How far a sender's nonce may run ahead of its committed one: bounds its pending transactions. */
  readonly txPoolMaxPerSender: number;
  /** A pooled transaction behind a nonce gap is dropped after this long. */
  readonly txPoolQueuedLifetimeMs: number;
  /** The pool holds at most what the measured commit rate drains in this long (node/chain/pool.ts DrainMeter). */
  readonly txPoolMaxDrainMs: number;
}

export interface BlockOptions {
  /** The leader mints at most one block per blockTimeMs, and only when transactions are pending. */
  readonly blockTimeMs: number;
  readonly blockMaxTransactions: number;
  /** Bytes of one encoded block, i.e. of one Raft proposal (BLOCK_ENVELOPE_BYTES of it are not transactions). */
  readonly blockMaxBytes: number;
  /** Blocks the leader may have proposed but not yet applied (speculative minting depth). */
  readonly maxPendingBlocks: number;
}

export interface PrivacyOptions {
  readonly deliveryMode: DeliveryMode;
  /** A call to a remote transaction manager gives up after this. */
  readonly tmRequestTimeoutMs: number;
  /** Bytes of one private payload (ops of a private transaction). */
  readonly privatePayloadMaxBytes: number;
  /** Bytes of payloads the transaction manager stores at most (a send past it is refused). */
  readonly tmStoreMaxBytes: number;
}

export interface RpcOptions {
  readonly rpcMaxBodyBytes: number;
  readonly rpcMaxBatchLength: number;
  readonly rpcRequestTimeoutMs: number;
  readonly rpcMaxInFlightCalls: number;
  readonly rpcMaxEventLoopDelayMs: number;
  readonly rpcMaxConnections: number;
}

export interface NodeOptions {
  /** This node's Raft id; 0 for a node started with --join that does not know it yet. */
  readonly raftId: number;
  /** The member's name (config.json `nodeId`). */
  readonly nodeId: string;
  readonly rpcUrl: string;
  readonly tmUrl: string;
  readonly raft: RaftOptions;
  readonly pool: PoolOptions;
  readonly block: BlockOptions;
  readonly forward: ForwardOptions;
  readonly admin: AdminOptions;
  readonly privacy: PrivacyOptions;
  readonly rpc: RpcOptions;
}

/** What a caller gives: who the node is, and any option to change from its module's default. */
export type NodeSettings = Pick<NodeOptions, 'raftId' | 'nodeId' | 'rpcUrl' | 'tmUrl'> & {
  readonly [K in Exclude<keyof NodeOptions, 'raftId' | 'nodeId' | 'rpcUrl' | 'tmUrl'>]?: Partial<NodeOptions[K]>;
};

/**
 * The bytes of an encoded block that are not its transactions (header, minter signature, framing),
 * reserved out of blockMaxBytes when the minter fills a block.
 */
export const BLOCK_ENVELOPE_BYTES = 4096;

/** Default byte bound of the Raft log between snapshots (config raft.logMaxBytes). */
export const DEFAULT_RAFT_LOG_MAX_BYTES = 256 * 1024 * 1024;

export const DEFAULT_RAFT_OPTIONS: RaftOptions = {
  tickMs: 100,
  electionTicks: 10,
  heartbeatTicks: 1,
  raftMaxMessageBytes: 1024 * 1024,
  raftMaxInflightMessages: 256,
  raftMaxUncommittedBytes: 64 * 1024 * 1024,
  snapshotEveryEntries: 10_000,
  logMaxBytes: DEFAULT_RAFT_LOG_MAX_BYTES,
  snapshotChunkBytes: SNAPSHOT_CHUNK_BYTES,
  snapshotMaxConcurrentTransfers: DEFAULT_SNAPSHOT_MAX_CONCURRENT_TRANSFERS,
  snapshotWindowChunks: DEFAULT_SNAPSHOT_WINDOW_CHUNKS,
  seed: 1,
};

export const DEFAULT_POOL_OPTIONS: PoolOptions = {
  txPoolMaxTransactions: 20_000,
  txPoolMaxPerSender: MAX_NONCE_GAP,
  txPoolQueuedLifetimeMs: QUEUED_TX_LIFETIME_MS,
  txPoolMaxDrainMs: MAX_POOL_DRAIN_MS,
};

export const DEFAULT_BLOCK_OPTIONS: BlockOptions = {
  // GoQuorum's Raft default block time is 50 ms too.
  blockTimeMs: 50,
  blockMaxTransactions: 2_000,
  blockMaxBytes: 4 * 1024 * 1024,
  maxPendingBlocks: 4,
};

export const DEFAULT_PRIVACY_OPTIONS: PrivacyOptions = {
  deliveryMode: 'fail-fast',
  tmRequestTimeoutMs: 5_000,
  privatePayloadMaxBytes: MAX_PLAINTEXT_BYTES,
  tmStoreMaxBytes: DEFAULT_STORE_MAX_BYTES,
};

export const DEFAULT_RPC_OPTIONS: RpcOptions = {
  rpcMaxBodyBytes: RPC_SERVER_DEFAULTS.maxBodyBytes,
  rpcMaxBatchLength: RPC_SERVER_DEFAULTS.maxBatchLength,
  rpcRequestTimeoutMs: RPC_SERVER_DEFAULTS.requestTimeoutMs,
  rpcMaxInFlightCalls: RPC_SERVER_DEFAULTS.maxInFlightCalls,
  rpcMaxEventLoopDelayMs: RPC_SERVER_DEFAULTS.maxEventLoopDelayMs,
  rpcMaxConnections: RPC_SERVER_DEFAULTS.maxConnections,
};

/** Fills every option the settings leave out with its module's default. */
export function resolveNodeOptions(s: NodeSettings): NodeOptions {
  return {
    raftId: s.raftId,
    nodeId: s.nodeId,
    rpcUrl: s.rpcUrl,
    tmUrl: s.tmUrl,
    raft: { ...DEFAULT_RAFT_OPTIONS, ...s.raft },
    pool: { ...DEFAULT_POOL_OPTIONS, ...s.pool },
    block: { ...DEFAULT_BLOCK_OPTIONS, ...s.block },
    forward: { ...DEFAULT_FORWARD_OPTIONS, ...s.forward },
    admin: { ...DEFAULT_ADMIN_OPTIONS, ...s.admin },
    privacy: { ...DEFAULT_PRIVACY_OPTIONS, ...s.privacy },
    rpc: { ...DEFAULT_RPC_OPTIONS, ...s.rpc },
  };
}

/**
 * config.json → settings. Each group takes config.json's fields as they are named there; only
 * the grouping differs (config.json keeps its limits flat under `limits`).
 */
export function settingsFromConfig(config: NodeConfig, raftId: number, seed: number): NodeSettings {
  const l = config.limits;
  return {
    raftId,
    nodeId: config.nodeId,
    rpcUrl: `http://${config.rpc.host}:${config.rpc.port}`,
    tmUrl: `http://${config.tm.host}:${config.tm.port}`,
    raft: {
      ...config.raft,
      raftMaxMessageBytes: l.raftMaxMessageBytes,
      raftMaxInflightMessages: l.raftMaxInflightMessages,
      raftMaxUncommittedBytes: l.raftMaxUncommittedBytes,
      seed,
    },
    pool: {
      txPoolMaxTransactions: l.txPoolMaxTransactions,
      txPoolMaxPerSender: l.txPoolMaxPerSender,
      txPoolQueuedLifetimeMs: l.txPoolQueuedLifetimeMs,
      txPoolMaxDrainMs: l.txPoolMaxDrainMs,
    },
    block: {
      blockTimeMs: config.blockTimeMs,
      blockMaxTransactions: l.blockMaxTransactions,
      blockMaxBytes: l.blockMaxBytes,
    },
    privacy: {
      deliveryMode: config.deliveryMode,
      tmRequestTimeoutMs: l.tmRequestTimeoutMs,
      privatePayloadMaxBytes: l.privatePayloadMaxBytes,
      tmStoreMaxBytes: l.tmStoreMaxBytes,
    },
    rpc: {
      rpcMaxBodyBytes: l.rpcMaxBodyBytes,
      rpcMaxBatchLength: l.rpcMaxBatchLength,
      rpcRequestTimeoutMs: l.rpcRequestTimeoutMs,
      rpcMaxInFlightCalls: l.rpcMaxInFlightCalls,
      rpcMaxEventLoopDelayMs: l.rpcMaxEventLoopDelayMs,
      rpcMaxConnections: l.rpcMaxConnections,
    },
  };
}

/** The RPC server's options from the tree (node/rpc/server.ts names them without the `rpc` prefix). */
export function rpcServerLimits(rpc: RpcOptions): {
  maxBodyBytes: number;
  maxBatchLength: number;
  requestTimeoutMs: number;
  maxInFlightCalls: number;
  maxEventLoopDelayMs: number;
  maxConnections: number;
} {
  return {
    maxBodyBytes: rpc.rpcMaxBodyBytes,
    maxBatchLength: rpc.rpcMaxBatchLength,
    requestTimeoutMs: rpc.rpcRequestTimeoutMs,
    maxInFlightCalls: rpc.rpcMaxInFlightCalls,
    maxEventLoopDelayMs: rpc.rpcMaxEventLoopDelayMs,
    maxConnections: rpc.rpcMaxConnections,
  };
}

/** The transaction manager's options from the tree (NodePrivacy.open's config). */
export function transactionManagerSettings(privacy: PrivacyOptions): {
  deliveryMode: DeliveryMode;
  tm: { pushTimeoutMs: number; maxPayloadBytes: number; storeMaxBytes: number };
} {
  return {
    deliveryMode: privacy.deliveryMode,
    tm: {
      pushTimeoutMs: privacy.tmRequestTimeoutMs,
      maxPayloadBytes: privacy.privatePayloadMaxBytes,
      storeMaxBytes: privacy.tmStoreMaxBytes,
    },
  };
}
