// Every documented config.json field that tunes the node reaches the module that uses it, under
// its own name (node/options.ts): config.json → settings → the resolved options tree → the part
// that reads it (the pool, the Raft core and driver, the minter's proposal limit, the RPC server's
// limits, the transaction manager's settings). A field parsed and then dropped, or renamed on the
// way, fails here. The values are distinct from every default so a fallback cannot pass.

import { afterEach, describe, expect, it } from 'vitest';
import type { RaftNode } from '../../consensus/index.js';
import type { TxPool } from '../../node/chain/index.js';
import { DEFAULT_LIMITS, parseConfig, type NodeLimits } from '../../node/config.js';
import {
  resolveNodeOptions,
  rpcServerLimits,
  settingsFromConfig,
  transactionManagerSettings,
  type NodeOptions,
} from '../../node/options.js';
import type { RaftDriver, RaftDriverOptions } from '../../node/raft/driver.js';
import type { NodeParts } from '../../node/parts.js';
import { TestCluster } from './harness.js';

// One distinct value per limit (each at least 1 and within its bound).
const LIMITS: NodeLimits = {
  rpcMaxBodyBytes: 1_000_001,
  rpcMaxBatchLength: 17,
  rpcRequestTimeoutMs: 12_345,
  rpcMaxInFlightCalls: 33,
  rpcMaxEventLoopDelayMs: 222,
  rpcMaxConnections: 44,
  txPoolMaxTransactions: 555,
  txPoolMaxPerSender: 66,
  txPoolQueuedLifetimeMs: 77_000,
  txPoolMaxDrainMs: 1_234,
  blockMaxTransactions: 888,
  blockMaxBytes: 2_000_000,
  privatePayloadMaxBytes: 99_999,
  tmRequestTimeoutMs: 4_321,
  tmStoreMaxBytes: 123_456_789,
  raftMaxMessageBytes: 700_000,
  raftMaxInflightMessages: 71,
  raftMaxUncommittedBytes: 50_000_000,
};
const RAFT = {
  tickMs: 37,
  electionTicks: 23,
  heartbeatTicks: 3,
  snapshotEveryEntries: 777,
  logMaxBytes: 12_345_678,
  snapshotChunkBytes: 200_000,
  snapshotMaxConcurrentTransfers: 3,
  snapshotWindowChunks: 5,
  compactionRetainEntries: 55,
};

function config() {
  return parseConfig(
    {
      nodeId: 'node-9',
      raftId: 1,
      dataDir: 'data',
      rpc: { host: '127.0.0.1', port: 18545 },
      p2p: { host: '127.0.0.1', port: 18600 },
      tm: { host: '127.0.0.1', port: 18700 },
      keys: { networkIdentity: 'n.key', nodeSigning: 'm.key', enclave: { keyFile: 'e.key' } },
      genesis: '../genesis.json',
      raft: RAFT,
      blockTimeMs: 41,
      limits: LIMITS,
      deliveryMode: 'queue',
    },
    '/tmp/quorate-options-test/node-9/config.json',
  );
}

/** The group of the options tree that holds `field` under exactly that name. */
function groupsHolding(options: NodeOptions, field: string): string[] {
  return Object.entries(options)
    .filter(([, v]) => typeof v === 'object' && v !== null && field in v)
    .map(([k]) => k);
}

describe('one options tree, with config.json names', () => {
  let cluster: TestCluster | undefined;
  afterEach(async () => {
    await cluster?.stop();
    cluster = undefined;
  });

  it('the test values differ from every default (a fallback cannot pass)', () => {
    for (const [k, v] of Object.entries(LIMITS)) expect(v, k).not.toBe(DEFAULT_LIMITS[k as keyof NodeLimits]);
    expect(Object.keys(LIMITS).sort()).toEqual(Object.keys(DEFAULT_LIMITS).sort());
  });

  it('every limit, raft field, blockTimeMs and deliveryMode lands in exactly one module group, unrenamed', () => {
    const options = resolveNodeOptions(settingsFromConfig(config(), 1, 7));
    for (const [field, value] of Object.entries({ ...LIMITS, ...RAFT, blockTimeMs: 41, deliveryMode: 'queue' })) {
      const groups = groupsHolding(options, field);
      expect(groups, field).toHaveLength(1);
      expect((options as unknown as Record<string, Record<string, unknown>>)[groups[0]][field], field).toBe(value);
    }
    expect(options.nodeId).toBe('node-9');
    expect(options.rpcUrl).toBe('http://127.0.0.1:18545');
    expect(options.tmUrl).toBe('http://127.0.0.1:18700');
    expect(options.raft.seed).toBe(7);
  });

  it('the RPC server and the transaction manager get their limits from the tree', () => {
    const options = resolveNodeOptions(settingsFromConfig(config(), 1, 7));
    expect(rpcServerLimits(options.rpc)).toEqual({
      maxBodyBytes: LIMITS.rpcMaxBodyBytes,
      maxBatchLength: LIMITS.rpcMaxBatchLength,
      requestTimeoutMs: LIMITS.rpcRequestTimeoutMs,
      maxInFlightCalls: LIMITS.rpcMaxInFlightCalls,
      maxEventLoopDelayMs: LIMITS.rpcMaxEventLoopDelayMs,
      maxConnections: LIMITS.rpcMaxConnections,
    });
    expect(transactionManagerSettings(options.privacy)).toEqual({
      deliveryMode: 'queue',
      tm: {
        pushTimeoutMs: LIMITS.tmRequestTimeoutMs,
        maxPayloadBytes: LIMITS.privatePayloadMaxBytes,
        storeMaxBytes: LIMITS.tmStoreMaxBytes,
      },
    });
  });

  it('a node built by createNode from those settings runs its pool, Raft core and driver with them', async () => {
    const settings = settingsFromConfig(config(), 1, 7);
    cluster = new TestCluster({
      nodes: 1,
      settings: { raft: settings.raft, pool: settings.pool, block: settings.block },
    });
    await cluster.start();
    const node = cluster.nodes[0].node;
    // The parts are private to the node (node/parts.ts); the test looks inside on purpose (read only).
    const parts = (node as unknown as { parts: NodeParts }).parts;
    const link = parts.raft as unknown as { raft: RaftNode; driver: RaftDriver };
    const inside = { pool: (node as unknown as { pool: TxPool }).pool, raft: link.raft, driver: link.driver };
    expect(inside.pool.maxTxs).toBe(LIMITS.txPoolMaxTransactions);
    expect(inside.pool.maxNonceGap).toBe(LIMITS.txPoolMaxPerSender);
    expect(inside.pool.queuedLifetimeMs).toBe(LIMITS.txPoolQueuedLifetimeMs);
    expect(inside.pool.maxDrainMs).toBe(LIMITS.txPoolMaxDrainMs);
    const raftConfig = inside.raft.inner.config;
    expect(raftConfig.electionTicks).toBe(RAFT.electionTicks);
    expect(raftConfig.heartbeatTicks).toBe(RAFT.heartbeatTicks);
    expect(raftConfig.maxMessageBytes).toBe(LIMITS.raftMaxMessageBytes);
    expect(raftConfig.maxInflightMessages).toBe(LIMITS.raftMaxInflightMessages);
    expect(raftConfig.maxUncommittedEntriesBytes).toBe(LIMITS.raftMaxUncommittedBytes);
    // A block is one proposal: blockMaxBytes bounds it.
    expect(raftConfig.maxProposalBytes).toBe(LIMITS.blockMaxBytes);
    const driverOptions = (inside.driver as unknown as { options: RaftDriverOptions }).options;
    expect(driverOptions.tickMs).toBe(RAFT.tickMs);
    expect(driverOptions.snapshotEveryEntries).toBe(RAFT.snapshotEveryEntries);
    expect(driverOptions.logMaxBytes).toBe(RAFT.logMaxBytes);
    expect(driverOptions.compactionRetainEntries).toBe(RAFT.compactionRetainEntries);
    // The snapshot transfer (node/snapshot-transfer.ts): the sender's bound and the receiver's chunk size.
    const transfer = parts as unknown as {
      snapshotServer: { deps: { maxConcurrentTransfers: number; maxWindowChunks: number } };
      applier: { deps: { snapshots: { fetcher: { chunkBytes: number; deps: { windowChunks: number } } } } };
    };
    expect(transfer.snapshotServer.deps.maxConcurrentTransfers).toBe(RAFT.snapshotMaxConcurrentTransfers);
    expect(transfer.snapshotServer.deps.maxWindowChunks).toBe(RAFT.snapshotWindowChunks);
    expect(transfer.applier.deps.snapshots.fetcher.chunkBytes).toBe(RAFT.snapshotChunkBytes);
    expect(transfer.applier.deps.snapshots.fetcher.deps.windowChunks).toBe(RAFT.snapshotWindowChunks);
    expect(node.options.block).toMatchObject({
      blockTimeMs: 41,
      blockMaxTransactions: LIMITS.blockMaxTransactions,
      blockMaxBytes: LIMITS.blockMaxBytes,
    });
  });
});
