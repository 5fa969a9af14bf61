// `quorate add-node`: prepares a new node for an existing cluster folder — fresh keys and a
// config whose peers are the cluster's current members (asked over JSON-RPC) — so that it can be
// started with `quorate start --config ... --join` and added with raft_addPeer/raft_addLearner.
// Its raft id is not chosen here: the cluster assigns it when the change commits.

import { existsSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { createNodeKeys, nodeKeysConfig } from './cli/init.js';
import type { KeyProtection } from './keys.js';
import { parseConfig } from './config.js';
import { HttpRpcClient } from './rpc/client.js';
import { credentialsForNewNode } from './cli/init-credentials.js';

export interface AddNodeOptions {
  /** The cluster folder written by `quorate init`. */
  readonly dir: string;
  /** A member's RPC URL to ask for the current membership (default: node-1's). */
  readonly rpcUrl?: string;
  readonly host?: string;
  readonly rpcPort?: number;
  readonly p2pPort?: number;
  readonly tmPort?: number;
  /** Seal the keys under this password and write no password file (a deployment); absent: the dev cluster's node.password. */
  readonly password?: string;
  readonly keyProtection?: KeyProtection;
  /** In a cluster with credentials: serve JSON-RPC over TLS (default true; see InitOptions.rpcTls). */
  readonly rpcTls?: boolean;
}

export interface AddNodeResult {
  readonly name: string;
  readonly configPath: string;
  readonly p2pAddress: string;
  readonly rpcUrl: string;
  readonly tmUrl: string;
}

interface TemplateConfig {
  rpc: { host: string; port: number };
  p2p: { host: string; port: number };
  tm: { host: string; port: number };
  raft: unknown;
  blockTimeMs: number;
  deliveryMode: string;
  logLevel: string;
  peers: Array<{
    raftId: number;
    nodeId: string;
    peerId: string;
    p2pAddress: string;
    rpcUrl: string;
    tmUrl: string;
    enclavePublicKeys: string[];
  }>;
}

export async function addNode(options: AddNodeOptions): Promise<AddNodeResult> {
  const template = JSON.parse(await readFile(join(options.dir, 'node-1', 'config.json'), 'utf8')) as TemplateConfig;
  let k = 1;
  while (existsSync(join(options.dir, `node-${k}`))) k++;
  const name = `node-${k}`;
  const host = options.host ?? template.rpc.host;
  const ports = {
    rpc: options.rpcPort ?? template.rpc.port + k - 1,
    p2p: options.p2pPort ?? template.p2p.port + k - 1,
    tm: options.tmPort ?? template.tm.port + k - 1,
  };

  // The current members, from a running member; the template's list as the fallback.
  const client = new HttpRpcClient(options.rpcUrl ?? `http://${template.rpc.host}:${template.rpc.port}/`, {
    timeoutMs: 5_000,
  });
  let peers = template.peers;
  try {
    const cluster =
      await client.call<Array<{ raftId: number; nodeId: string; p2pAddress: string; rpcUrl: string }>>('raft_cluster');
    peers = cluster.map((m) => {
      const known = template.peers.find((p) => p.raftId === m.raftId);
      return {
        raftId: m.raftId,
        nodeId: m.nodeId,
        peerId: m.p2pAddress.split('/p2p/')[1] ?? '',
        p2pAddress: m.p2pAddress,
        rpcUrl: m.rpcUrl,
        tmUrl: known?.tmUrl ?? m.rpcUrl,
        enclavePublicKeys: known?.enclavePublicKeys ?? [],
      };
    });
  } catch {
    // The cluster is not reachable: the template's peers are the best knowledge we have.
  }

  const nodeDir = join(options.dir, name);
  await mkdir(nodeDir);
  const { peerId } = await createNodeKeys(nodeDir, { protection: options.keyProtection, password: options.password });
  // A cluster made with credentials (init --hosts): a certificate from its CA, the same token hashes.
  const rpcSecurity = await credentialsForNewNode(
    options.dir,
    join(options.dir, 'node-1'),
    nodeDir,
    { nodeId: name, host },
    { tls: options.rpcTls !== false },
  );

  const config = {
    nodeId: name,
    // Not a genesis member: the cluster assigns the id when raft_addPeer/raft_addLearner commits.
    raftId: 0,
    dataDir: 'data',
    rpc: { host, port: ports.rpc, ...rpcSecurity },
    p2p: { host, port: ports.p2p },
    tm: { host: '127.0.0.1', port: ports.tm }, // the TM client API serves local clients only
    keys: nodeKeysConfig(options.password === undefined),
    genesis: '../genesis.json',
    peers,
    raft: template.raft,
    blockTimeMs: template.blockTimeMs,
    limits: {},
    deliveryMode: template.deliveryMode,
    logLevel: template.logLevel,
  };
  const configPath = join(nodeDir, 'config.json');
  parseConfig(config, configPath);
  await writeFile(configPath, JSON.stringify(config, null, 2) + '\n', { mode: 0o600, flag: 'wx' });
  return {
    name,
    configPath,
    p2pAddress: `/ip4/${host}/tcp/${ports.p2p}/p2p/${peerId}`,
    rpcUrl: `${rpcSecurity && options.rpcTls !== false ? 'https' : 'http'}://${host}:${ports.rpc}/`,
    tmUrl: `http://127.0.0.1:${ports.tm}/`, // the TM client API is on the node's own loopback
  };
}
