// An in-process cluster of real QuorateNodes with real privacy: each node has a NodePrivacy
// (NaclEnclave, durable TransactionManager under a temp dir, PeerPartyTransport over the node's
// own MemoryTransport) and a LevelDB chain store, so a test can look at every byte a node keeps.
// The members publish their enclave keys in the genesis membership, as `quorate init` does.

import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MemoryStorage } from '../../consensus/memory-storage.js';
import { MemoryKeyStore, NaclEnclave } from '../../enclave/index.js';
import {
  generateAccountKey,
  generateMinterKey,
  LedgerApp,
  openLevelChainStore,
  type AccountKey,
  type GenesisConfig,
  type KvChainStore,
} from '../../node/chain/index.js';
import { SystemClock } from '../../node/clock.js';
import { silentLogger } from '../../node/log.js';
import type { MemberInfo } from '../../node/membership.js';
import { createNode } from '../../node/create-node.js';
import { genesisMembership, type PrivacyProvider, type QuorateNode } from '../../node/node.js';
import type { NodeSettings } from '../../node/options.js';
import { testPeerId } from '../node/harness.js';
import { NodePrivacy, type NodePrivacyConfig } from '../../node/privacy.js';
import { MemoryNetwork } from '../../p2p/memory-transport.js';
import type { DeliveryMode } from '../../txmanager/index.js';

export const CHAIN_ID = 4343;

/**
 * A fault switch in front of a node's real NodePrivacy: while `down`, the node's own calls fail
 * as they would with its transaction manager unreachable (every call still reaches nothing).
 */
export class SwitchablePrivacy implements PrivacyProvider {
  down = false;
  failedReceives = 0;
  constructor(public inner: NodePrivacy) {}
  send(payload: Uint8Array, privateFor: readonly string[], signal?: AbortSignal): Promise<Uint8Array> {
    if (this.down) return Promise.reject(new Error('transaction manager unreachable (test fault)'));
    return this.inner.send(payload, privateFor, signal);
  }
  receive(hash: Uint8Array): Promise<Uint8Array | null> {
    if (this.down) {
      this.failedReceives++;
      return Promise.reject(new Error('transaction manager unreachable (test fault)'));
    }
    return this.inner.receive(hash);
  }
}

export interface PrivateNode {
  readonly name: string;
  readonly peerId: string;
  readonly dataDir: string;
  readonly keyStore: MemoryKeyStore;
  readonly enclaveKey: string;
  readonly raftStorage: MemoryStorage;
  readonly minterKey: AccountKey;
  readonly account: AccountKey;
  node: QuorateNode;
  privacy: NodePrivacy;
  readonly switch: SwitchablePrivacy;
  chainStore: KvChainStore;
  running: boolean;
}

export interface PrivateClusterOptions {
  readonly nodes: number;
  readonly deliveryMode?: DeliveryMode;
  readonly tm?: NodePrivacyConfig['tm'];
  /** Overrides of the node options (e.g. a small snapshot interval), by module as in node/options.ts. */
  readonly settings?: Omit<NodeSettings, 'raftId' | 'nodeId' | 'rpcUrl' | 'tmUrl'>;
}

export class PrivateCluster {
  readonly network = new MemoryNetwork(new SystemClock());
  readonly nodes: PrivateNode[] = [];
  private genesis!: GenesisConfig;
  private members: MemberInfo[] = [];
  private seed = 1;

  private constructor(
    private readonly root: string,
    private readonly options: PrivateClusterOptions,
  ) {}

  static async create(options: PrivateClusterOptions): Promise<PrivateCluster> {
    const c = new PrivateCluster(await mkdtemp(join(tmpdir(), 'quorate-privacy-')), options);
    await c.build();
    return c;
  }

  private async build(): Promise<void> {
    const alloc = new Map<string, bigint>();
    for (let i = 1; i <= this.options.nodes; i++) {
      const keyStore = MemoryKeyStore.generate(1);
      const enclave = await NaclEnclave.create(keyStore);
      const name = `node-${i}`;
      const h = {
        name,
        peerId: testPeerId(2, i),
        dataDir: join(this.root, name),
        keyStore,
        enclaveKey: Buffer.from(enclave.publicKeys()[0]).toString('base64'),
        raftStorage: new MemoryStorage(),
        minterKey: generateMinterKey(),
        account: generateAccountKey(),
        running: false,
      } as PrivateNode;
      this.nodes.push(h);
      alloc.set(h.account.address, 1_000_000n);
      this.members.push({
        raftId: i,
        name,
        peerId: h.peerId,
        p2pAddrs: [`/memory/${name}`],
        rpcUrl: `http://127.0.0.1:0/${name}`,
        tmUrl: `http://127.0.0.1:0/${name}/tm`,
        signingKey: Buffer.from(h.minterKey.publicKeyRaw).toString('base64'),
        enclaveKeys: [h.enclaveKey],
      });
    }
    this.genesis = {
      chainId: CHAIN_ID,
      timestampMs: 1_700_000_000_000,
      alloc,
      members: this.nodes.map((n, i) => ({ raftId: i + 1, minterPublicKey: n.minterKey.publicKeyRaw })),
    };
    for (const h of this.nodes) await this.open(h);
  }

  /** Builds the node's stores, privacy and QuorateNode (not started). */
  private async open(h: PrivateNode): Promise<void> {
    const transport = this.network.createTransport(h.peerId);
    const privacy = await NodePrivacy.open(
      {
        nodeId: h.name,
        dataDir: h.dataDir,
        deliveryMode: this.options.deliveryMode ?? 'fail-fast',
        tm: this.options.tm,
      },
      { peers: transport, logger: silentLogger(), enclave: await NaclEnclave.create(h.keyStore) },
    );
    const chainStore = await openLevelChainStore(join(h.dataDir, 'chain'));
    const sw = (h.switch as SwitchablePrivacy | undefined) ?? new SwitchablePrivacy(privacy);
    sw.inner = privacy;
    const extra = this.options.settings ?? {};
    const node = createNode(
      {
        ...extra,
        raftId: this.nodes.indexOf(h) + 1,
        nodeId: h.name,
        rpcUrl: `http://127.0.0.1:0/${h.name}`,
        tmUrl: `http://127.0.0.1:0/${h.name}/tm`,
        // Elections every ~300 ms at the earliest: fsyncing LevelDB stores on a shared 2-core box
        // would otherwise cause needless leader changes.
        raft: { tickMs: 20, electionTicks: 15, seed: this.seed++, ...extra.raft },
        block: { blockTimeMs: 10, ...extra.block },
        admin: { changeTimeoutMs: 5_000, ...extra.admin },
      },
      {
        raftStorage: h.raftStorage,
        chainStore,
        transport,
        clock: new SystemClock(),
        logger: silentLogger(),
        app: new LedgerApp(),
        minterKey: h.minterKey,
        accountKeys: [h.account],
        genesis: this.genesis,
        genesisMembership: genesisMembership(this.members),
        enclaveKeys: privacy.publicKeys(),
        privacy: sw,
        // One per harness node, kept across its restarts (its disk survives them).
        incarnation: `inc-${h.name}`,
      },
    );
    privacy.followMembership(node);
    Object.assign(h, { node, privacy, chainStore, switch: sw });
  }

  async start(): Promise<void> {
    await Promise.all(this.nodes.map((h) => this.startNode(h)));
  }

  async startNode(h: PrivateNode): Promise<void> {
    await h.node.start();
    h.running = true;
  }

  /** Stops the node, its transaction manager and its stores (a process going down). */
  async stopNode(h: PrivateNode): Promise<void> {
    if (!h.running) return;
    h.running = false;
    await h.node.stop();
    await h.privacy.close();
    await h.chainStore.close();
  }

  /** Starts a stopped node again on its data (raft log kept in memory, chain and TM on disk). */
  async restartNode(h: PrivateNode): Promise<void> {
    await this.stopNode(h);
    await this.open(h);
    await this.startNode(h);
  }

  async close(): Promise<void> {
    for (const h of this.nodes) await this.stopNode(h);
    await rm(this.root, { recursive: true, force: true });
  }

  leader(): PrivateNode | undefined {
    return this.nodes
      .filter((h) => h.running && h.node.status().role === 'leader')
      .sort((a, b) => b.node.status().term - a.node.status().term)[0];
  }

  async waitForLeader(): Promise<PrivateNode> {
    let found: PrivateNode | undefined;
    await waitFor(
      () => {
        const l = this.leader();
        if (l && this.nodes.every((h) => !h.running || h.node.status().leader === l.node.status().raftId)) found = l;
        return found !== undefined;
      },
      10_000,
      'a leader',
    );
    return found!;
  }
}

/** Every file under `dir`, concatenated per file: what a node keeps on disk. */
export async function filesUnder(dir: string): Promise<Array<{ path: string; bytes: Buffer }>> {
  const out: Array<{ path: string; bytes: Buffer }> = [];
  for (const entry of await readdir(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    out.push({ path, bytes: await readFile(path) });
  }
  return out;
}

export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

export const hashBytes = (txHash: string): Uint8Array => Uint8Array.from(Buffer.from(txHash.slice(2), 'hex'));

/** Waits until every node in `nodes` holds a receipt for the transaction. */
export async function waitCommitted(nodes: readonly PrivateNode[], txHash: string, timeoutMs = 10_000): Promise<void> {
  await waitFor(
    async () => {
      for (const h of nodes) if (!(await h.node.store.getReceipt(hashBytes(txHash)))) return false;
      return true;
    },
    timeoutMs,
    `tx ${txHash} committed on ${nodes.map((n) => n.name).join(', ')}`,
  );
}
