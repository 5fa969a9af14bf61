// `quorate start`: one node as an operating-system process. This is the thin outer layer that
// builds the real dependencies — LevelDB stores, the libp2p transport, the system clock, the
// JSON-RPC server, metrics — hands them to a QuorateNode, and owns signals: SIGINT/SIGTERM stop
// the node cleanly (well within 5 s); SIGKILL at any moment loses nothing acknowledged, because
// every acknowledgement waits for a synced write.

import './polyfills.js';
import { randomInt } from 'node:crypto';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { NO_NODE, type RaftId } from '../consensus/index.js';
import { loadNetworkIdentity } from '../p2p/identity.js';
import { Libp2pTransport } from '../p2p/libp2p-transport.js';
import {
  LedgerApp,
  genesisBlock,
  loadAccountKey,
  loadMinterKey,
  openLevelChainStore,
  parseGenesis,
  toHex,
  type GenesisConfig,
} from './chain/index.js';
import type { StartOptions } from './cli/start.js';
import { SystemClock } from './clock.js';
import { loadGenesis, resolveEnclavePassword, type Genesis, type NodeConfig } from './config.js';
import { createLogger, type Logger } from './log.js';
import { createNodeMetrics, setRaftRole, type NodeMetrics } from './metrics.js';
import { NodeBackend } from './backend.js';
import { NodePrivacy } from './privacy.js';
import { DEFAULT_NODE_OPTIONS, QuorateNode, genesisMembership } from './node.js';
import { openOrInit } from './raftlog/level-storage.js';
import type { NodeRpcBackend } from './rpc/backend.js';
import { RpcServer } from './rpc/server.js';

/** A clean stop must finish within this; past it the process exits anyway (data is safe: writes are synced). */
export const STOP_DEADLINE_MS = 4_500;
/** How often gauges are refreshed from the node's status. */
const METRICS_REFRESH_MS = 1_000;
/** The libp2p frame limit for this node: Raft snapshots travel as one message. */
const P2P_MAX_MESSAGE_BYTES = 64 * 1024 * 1024;

/** The chain's genesis (block 0 and its state) from genesis.json as `quorate init` wrote it. */
export function chainGenesis(genesis: Genesis): GenesisConfig {
  return parseGenesis({
    chainId: genesis.chainId,
    timestampMs: genesis.timestampMs,
    alloc: genesis.alloc,
    members: genesis.members.map((m) => ({
      raftId: m.raftId,
      minterPublicKey: toHex(Buffer.from(m.signingKey, 'base64')),
    })),
    txSignatureCheck: genesis.txSignatureCheck,
  });
}

export interface RunningNode {
  readonly node: QuorateNode;
  readonly rpcUrl: string;
  stop(): Promise<void>;
  /** Resolves when the node has stopped (by stop(), a signal, or a fatal error). */
  readonly done: Promise<number>;
}

/** Builds and starts a node from its config. Used by `quorate start` and by embedders who want the real IO. */
export async function startNodeProcess(
  config: NodeConfig,
  // wrapBackend: for test-only broken variants (test/jepsen/broken-node.ts); production never passes it.
  options: { join: boolean; logger?: Logger; wrapBackend?: (backend: NodeRpcBackend) => NodeRpcBackend },
): Promise<RunningNode> {
  const log = options.logger ?? createLogger({ level: config.logLevel, base: { node: config.nodeId } });
  const genesis = await loadGenesis(config.genesis);
  const chainCfg = chainGenesis(genesis);
  const clusterId = genesisBlock(chainCfg).block.hashHex;

  // Keys. The enclave key file is sealed under a password: no password, no start. It is unlocked
  // inside the enclave (NodePrivacy below): the private box key never reaches this layer.
  const password = await resolveEnclavePassword(config);
  const identity = await loadNetworkIdentity(config.keys.networkIdentity);
  const minterKey = loadMinterKey(config.keys.nodeSigning);
  const accountKeys = config.keys.accounts.map((p) => loadAccountKey(p));

  await mkdir(config.dataDir, { recursive: true });
  const joining = options.join || !genesis.members.some((m) => m.raftId === config.raftId);
  const { storage: raftStorage } = await openOrInit(join(config.dataDir, 'raft'), {
    raftId: (joining ? NO_NODE : config.raftId) as RaftId,
    clusterId,
  });
  const storedId = raftStorage.identity().raftId as number;
  const raftId = joining ? storedId : config.raftId;
  const chainStore = await openLevelChainStore(join(config.dataDir, 'chain'));

  // The node's one clock, injected into every part that reads time (issue 8).
  const clock = new SystemClock();
  const transport = new Libp2pTransport({
    clock,
    privateKey: identity.privateKey,
    listenAddrs: [`/ip4/${config.p2p.host}/tcp/${config.p2p.port}`],
    limits: { maxMessageBytes: P2P_MAX_MESSAGE_BYTES, maxQueuedBytesPerPeer: 2 * P2P_MAX_MESSAGE_BYTES },
  });

  // The transaction manager and enclave, over the same libp2p transport ("tm/push", "tm/resend").
  // Opened before the node so that the first block the node applies can already be answered.
  let privacy: NodePrivacy;
  try {
    privacy = await NodePrivacy.open(
      {
        nodeId: config.nodeId,
        dataDir: config.dataDir,
        deliveryMode: config.deliveryMode,
        keyFiles: [{ path: config.keys.enclave.keyFile, password }],
        tm: { pushTimeoutMs: config.limits.tmRequestTimeoutMs, maxPayloadBytes: config.limits.privatePayloadMaxBytes },
      },
      { peers: transport, logger: log },
    );
  } catch (err) {
    await raftStorage.close();
    await chainStore.close();
    throw err;
  }
  const enclaveKeys = privacy.publicKeys();

  const node = new QuorateNode(
    {
      ...DEFAULT_NODE_OPTIONS,
      raftId,
      name: config.nodeId,
      rpcUrl: `http://${config.rpc.host}:${config.rpc.port}`,
      tmUrl: `http://${config.tm.host}:${config.tm.port}`,
      tickMs: config.raft.tickMs,
      electionTicks: config.raft.electionTicks,
      heartbeatTicks: config.raft.heartbeatTicks,
      blockTimeMs: config.blockTimeMs,
      maxBlockTxs: config.limits.blockMaxTransactions,
      maxBlockBytes: config.limits.blockMaxBytes - 4096,
      raftMaxMessageBytes: config.limits.raftMaxMessageBytes,
      raftMaxInflightMessages: config.limits.raftMaxInflightMessages,
      raftMaxUncommittedBytes: config.limits.raftMaxUncommittedBytes,
      poolMaxTxs: config.limits.txPoolMaxTransactions,
      poolMaxNonceGap: config.limits.txPoolMaxPerSender,
      poolQueuedLifetimeMs: config.limits.txPoolQueuedLifetimeMs,
      seed: randomInt(0, 2 ** 31),
    },
    {
      raftStorage,
      chainStore,
      transport,
      clock,
      logger: log,
      app: new LedgerApp(),
      minterKey,
      accountKeys,
      genesis: chainCfg,
      genesisMembership: genesisMembership(genesis.members),
      enclaveKeys,
      privacy,
      bootstrapPeers: config.peers.map((p) => ({
        raftId: p.raftId,
        peerId: p.peerId,
        addrs: [p.p2pAddress.replace(/\/p2p\/[^/]+$/, '')],
      })),
      addressOverrides: new Map(
        Object.entries(config.p2pAddressOverrides).map(([peer, addr]) => [peer, [addr.replace(/\/p2p\/[^/]+$/, '')]]),
      ),
      incarnation: raftStorage.identity().incarnation,
      persistRaftId: (id) => raftStorage.assignRaftId(id as RaftId),
      onFatal: () => void stop(1),
    },
  );

  // The key directory and the party map follow the replicated membership from now on.
  privacy.followMembership(node);

  const metrics = createNodeMetrics({ processMetrics: true });
  const rpc = new RpcServer(
    {
      host: config.rpc.host,
      port: config.rpc.port,
      maxBodyBytes: config.limits.rpcMaxBodyBytes,
      maxBatchLength: config.limits.rpcMaxBatchLength,
      requestTimeoutMs: config.limits.rpcRequestTimeoutMs,
      maxInFlightCalls: config.limits.rpcMaxInFlightCalls,
      maxConnections: config.limits.rpcMaxConnections,
    },
    {
      backend: options.wrapBackend ? options.wrapBackend(new NodeBackend(node)) : new NodeBackend(node),
      logger: log,
      metrics,
    },
  );

  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((resolve) => (resolveDone = resolve));
  let stopping: Promise<void> | undefined;
  const metricsTimer = setInterval(() => {
    refreshMetrics(node, metrics);
    privacy.exportMetrics(metrics);
  }, METRICS_REFRESH_MS);
  metricsTimer.unref();

  async function stop(code = 0): Promise<void> {
    if (stopping) return stopping;
    stopping = (async () => {
      clearInterval(metricsTimer);
      const steps: Array<[string, () => Promise<void>]> = [
        ['rpc', () => rpc.stop()],
        // The node before the TM: a block being applied may still be reading private payloads.
        ['node', () => node.stop()],
        // REST server, then the TM, then its stores.
        ['transaction manager', () => privacy.close()],
        ['raft log', () => raftStorage.close()],
        ['chain store', () => chainStore.close()],
      ];
      for (const [what, step] of steps) {
        try {
          await step();
        } catch (err) {
          log.error({ err, what }, 'error while stopping');
        }
      }
      log.info({ code }, 'node stopped');
      resolveDone(code);
    })();
    return stopping;
  }

  try {
    await rpc.start();
    await privacy.startServer({ host: config.tm.host, port: config.tm.port });
    await node.start();
  } catch (err) {
    await stop(1);
    throw err;
  }
  log.info(
    {
      raftId: raftId || null,
      rpc: `http://${config.rpc.host}:${config.rpc.port}`,
      p2p: transport.listenAddrs(),
      peerId: transport.localPeerId,
      joining: raftId === 0,
    },
    'node started',
  );
  return { node, rpcUrl: `http://${config.rpc.host}:${config.rpc.port}`, stop: () => stop(0), done };
}

function refreshMetrics(node: QuorateNode, metrics: NodeMetrics): void {
  const s = node.status();
  metrics.raftTerm.set(s.term);
  metrics.raftCommitIndex.set(s.commitIndex);
  metrics.raftAppliedIndex.set(s.appliedIndex);
  metrics.raftLeader.set(s.leader ?? 0);
  metrics.chainHeadNumber.set(s.head);
  metrics.txPoolSize.set(node.poolSize);
  metrics.p2pPeersConnected.set(s.peers);
  setRaftRole(metrics, s.role);
}

/** The `quorate start` entry point: runs until a signal or a fatal error, then exits. */
export async function runNode(options: StartOptions): Promise<number> {
  const running = await startNodeProcess(options.config, { join: options.join });
  const onSignal = (signal: NodeJS.Signals): void => {
    const deadline = setTimeout(() => process.exit(1), STOP_DEADLINE_MS + 500);
    deadline.unref();
    void running.stop().then(() => {
      process.exitCode = 0;
      void signal;
    });
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  const code = await running.done;
  process.exitCode = code;
  // Close what a library may keep open (timers in libp2p) so the process ends promptly.
  setTimeout(() => process.exit(code), 200).unref();
  return code;
}
