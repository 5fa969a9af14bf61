// `quorate start`: one node as an operating-system process. This is the thin outer layer that
// builds the real dependencies — LevelDB stores, the libp2p transport, the system clock, the
// JSON-RPC server, metrics — hands them to a QuorateNode, and owns signals: SIGINT/SIGTERM stop
// the node cleanly (well within 5 s); SIGKILL at any moment loses nothing acknowledged, because
// every acknowledgement waits for a synced write.

import './polyfills.js';
import { randomInt } from 'node:crypto';
import { join } from 'node:path';
import { NO_NODE, type RaftId } from '../consensus/index.js';
import { Libp2pTransport } from '../p2p/libp2p-transport.js';
import {
  LedgerApp,
  genesisBlock,
  openLevelChainStore,
  parseGenesis,
  toHex,
  type Application,
  type GenesisConfig,
} from './chain/index.js';
import type { StartOptions } from './cli/start.js';
import { SystemClock, type Clock } from './clock.js';
import { loadGenesis, type Genesis, type NodeConfig } from './config.js';
import { loadNodeKeys, mkdirPrivate, restrictNewFileModes } from './keys.js';
import { createLogger, type Logger } from './log.js';
import { createNodeMetrics, setRaftRole, type NodeMetrics } from './metrics.js';
import { NodeBackend } from './backend.js';
import { NodePrivacy } from './privacy.js';
import { installProcessGuards } from './process-guards.js';
import { createNode } from './create-node.js';
import { genesisMembership, type QuorateNode } from './node.js';
import { resolveNodeOptions, settingsFromConfig, transactionManagerSettings } from './options.js';
import { dialablePart } from './peers.js';
import { openOrInit } from './raftlog/level-storage.js';
import type { NodeRpcBackend } from './rpc/backend.js';
import { RpcServer, securedRpcServerOptions } from './rpc/server.js';
import { ClusterPage, loadPageAssets } from './rpc/page.js';
import { ClusterView } from './page/cluster-view.js';
import { pageSourceFromNode } from './page/node-source.js';

/** A clean stop must finish within this; past it the process exits anyway (data is safe: writes are synced). */
export const STOP_DEADLINE_MS = 4_500;
/** How often gauges are refreshed from the node's status. */
const METRICS_REFRESH_MS = 1_000;
/**
 * The libp2p frame limit for this node. Raft snapshots no longer travel as one message (their state
 * streams in chunks of raft.snapshotChunkBytes, ≤ 1 MiB, node/snapshot-transfer.ts), so no state
 * size needs it; it still bounds one Raft append (raftMaxMessageBytes plus one block entry), a
 * block-range reply and a private payload push.
 */
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
  options: {
    join: boolean;
    logger?: Logger;
    clock?: Clock;
    wrapBackend?: (backend: NodeRpcBackend) => NodeRpcBackend;
    /** The deterministic state machine (node/chain/app.ts); every member must run the same one. Default LedgerApp. */
    app?: Application;
  },
): Promise<RunningNode> {
  const log = options.logger ?? createLogger({ level: config.logLevel, base: { node: config.nodeId } });
  const clock = options.clock ?? new SystemClock();
  const genesis = await loadGenesis(config.genesis);
  const chainCfg = chainGenesis(genesis);
  const clusterId = genesisBlock(chainCfg).block.hashHex;
  // Read before anything is opened: a missing page file fails the start with nothing to close.
  const pageAssets = await loadPageAssets();

  // Keys (node/keys.ts): every key file is sealed under the node's password; no password, no
  // start. The password leaves process.env here. The enclave key is unlocked inside the enclave.
  restrictNewFileModes();
  const { identity, minterKey, accountKeys, enclaveKeyFiles } = await loadNodeKeys(config);

  await mkdirPrivate(config.dataDir);
  const joining = options.join || !genesis.members.some((m) => m.raftId === config.raftId);
  const { storage: raftStorage } = await openOrInit(
    join(config.dataDir, 'raft'),
    { raftId: (joining ? NO_NODE : config.raftId) as RaftId, clusterId },
    { cacheMaxBytes: config.raft.logCacheBytes },
  );
  const storedId = raftStorage.identity().raftId as number;
  const raftId = joining ? storedId : config.raftId;
  // The election-timeout jitter is seeded from the OS here; tests and the simulator fix it.
  const settings = {
    ...settingsFromConfig(config, raftId, randomInt(0, 2 ** 31)),
    // rpc.tls: the members reach this node's JSON-RPC over https (the page, add-node's queries).
    rpcUrl: `${config.rpcSecurity.tls ? 'https' : 'http'}://${config.rpc.host}:${config.rpc.port}`,
  };
  const nodeOptions = resolveNodeOptions(settings);
  const chainStore = await openLevelChainStore(join(config.dataDir, 'chain'), config.state);

  // The node's one clock (`clock` above) is injected into every part that reads time.
  const transport = new Libp2pTransport({
    logger: log,
    clock,
    privateKey: identity.privateKey,
    listenAddrs: [`/ip4/${config.p2p.host}/tcp/${config.p2p.port}`],
    limits: { maxMessageBytes: P2P_MAX_MESSAGE_BYTES, maxQueuedBytesPerPeer: 2 * P2P_MAX_MESSAGE_BYTES },
    ...(config.p2pAllowedCidrs ? { allowedCidrs: config.p2pAllowedCidrs } : {}),
  });

  // The transaction manager and enclave, over the same libp2p transport ("tm/push", "tm/resend").
  // Opened before the node so that the first block the node applies can already be answered.
  let privacy: NodePrivacy;
  try {
    privacy = await NodePrivacy.open(
      {
        nodeId: config.nodeId,
        dataDir: config.dataDir,
        ...transactionManagerSettings(nodeOptions.privacy),
        keyFiles: enclaveKeyFiles,
      },
      { peers: transport, logger: log, clock },
    );
  } catch (err) {
    await raftStorage.close();
    await chainStore.close();
    throw err;
  }
  const enclaveKeys = privacy.publicKeys();

  const node = createNode(settings, {
    raftStorage,
    chainStore,
    transport,
    clock,
    logger: log,
    app: options.app ?? new LedgerApp(),
    minterKey,
    accountKeys,
    genesis: chainCfg,
    genesisMembership: genesisMembership(genesis.members),
    enclaveKeys,
    privacy,
    bootstrapPeers: config.peers.map((p) => ({
      raftId: p.raftId,
      peerId: p.peerId,
      addrs: [dialablePart(p.p2pAddress)],
    })),
    addressOverrides: new Map(
      Object.entries(config.p2pAddressOverrides).map(([peer, addr]) => [peer, [dialablePart(addr)]]),
    ),
    incarnation: raftStorage.identity().incarnation,
    persistRaftId: (id) => raftStorage.assignRaftId(id as RaftId),
    onFatal: () => void stop(1),
  });

  // The key directory and the party map follow the replicated membership from now on.
  privacy.followMembership(node);

  const metrics = createNodeMetrics({ processMetrics: true });
  // The cluster page (GET / on the RPC port): one view built per second, fanned out to its streams.
  const pageView = new ClusterView({}, { source: pageSourceFromNode(node, metrics, clock), clock, logger: log });
  const page = new ClusterPage({}, { view: pageView, assets: pageAssets, logger: log });
  const rpc = new RpcServer(
    // Reads the TLS files and the tokens file; refuses a non-loopback listener without tokens.
    await securedRpcServerOptions(config),
    {
      backend: options.wrapBackend ? options.wrapBackend(new NodeBackend(node)) : new NodeBackend(node),
      logger: log,
      metrics,
      page,
    },
  );

  let resolveDone!: (code: number) => void;
  const done = new Promise<number>((resolve) => (resolveDone = resolve));
  let stopping: Promise<void> | undefined;
  const metricsTimer = clock.setInterval(() => {
    refreshMetrics(node, metrics);
    privacy.exportMetrics(metrics);
  }, METRICS_REFRESH_MS);

  async function stop(code = 0): Promise<void> {
    if (stopping) return stopping;
    stopping = (async () => {
      metricsTimer.cancel();
      pageView.stop();
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
    await privacy.startServer({
      host: config.tm.host,
      port: config.tm.port,
      remoteClients: config.tm.remoteClients,
      socketPath: config.tm.socketPath,
    });
    await node.start();
    pageView.start();
  } catch (err) {
    await stop(1);
    throw err;
  }
  log.info(
    {
      raftId: raftId || null,
      rpc: `${config.rpcSecurity.tls ? 'https' : 'http'}://${config.rpc.host}:${config.rpc.port}`,
      p2p: transport.listenAddrs(),
      peerId: transport.localPeerId,
      joining: raftId === 0,
    },
    'node started',
  );
  return {
    node,
    rpcUrl: `${config.rpcSecurity.tls ? 'https' : 'http'}://${config.rpc.host}:${config.rpc.port}`,
    stop: () => stop(0),
    done,
  };
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
  const clock = new SystemClock();
  const log = createLogger({ level: options.config.logLevel, base: { node: options.config.nodeId } });
  const running = await startNodeProcess(options.config, { join: options.join, clock, logger: log });
  // An unhandled rejection or uncaught exception from here on: logged with its stack at error,
  // the node stopped cleanly, exit 1 (never a silent crash, never running on past a bug).
  installProcessGuards({ log, stop: () => running.stop(), clock });
  const onSignal = (signal: NodeJS.Signals): void => {
    // Past the deadline the process exits anyway (data is safe: every write is synced).
    clock.setTimeout(() => process.exit(1), STOP_DEADLINE_MS + 500);
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
  clock.setTimeout(() => process.exit(code), 200);
  return code;
}
