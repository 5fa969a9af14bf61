// An in-process cluster of real QuorateNodes over the in-memory transport and in-memory stores:
// the same node code as production, with only the IO edges swapped (docs/design.md §3).

import { MemoryStorage } from '../../consensus/memory-storage.js';
import { MemoryNetwork } from '../../p2p/memory-transport.js';
import {
  createMemoryChainStore,
  generateAccountKey,
  generateMinterKey,
  LedgerApp,
  MemoryKv,
  type AccountKey,
  type GenesisConfig,
} from '../../node/chain/index.js';
import { publicKeyFromRaw } from '@libp2p/crypto/keys';
import { peerIdFromPublicKey } from '@libp2p/peer-id';
import { SystemClock } from '../../node/clock.js';
import { createNode } from '../../node/create-node.js';
import { silentLogger, type Logger } from '../../node/log.js';
import type { MemberInfo } from '../../node/membership.js';
import { genesisMembership, type PrivacyProvider, type QuorateNode } from '../../node/node.js';
import type { NodeSettings } from '../../node/options.js';

export interface HarnessNode {
  readonly name: string;
  readonly peerId: string;
  node: QuorateNode;
  kv: MemoryKv;
  raftStorage: MemoryStorage;
  readonly minterKey: AccountKey;
  readonly account: AccountKey;
  raftId: number;
  /** Same across restarts of this harness node (its disk survives); a new one models a wiped disk. */
  incarnation: string;
}

export interface ClusterOptions {
  readonly nodes: number;
  readonly tickMs?: number;
  readonly blockTimeMs?: number;
  readonly privacy?: (name: string) => PrivacyProvider | undefined;
  /** Options that differ from the harness's (a small snapshot interval...), by module as in node/options.ts. */
  readonly settings?: Omit<NodeSettings, 'raftId' | 'nodeId' | 'rpcUrl' | 'tmUrl'>;
  /** genesis txSignatureCheck (default: the chain's default, "every-node"). */
  readonly txSignatureCheck?: 'every-node' | 'minter-only';
  /** Each node's logger (default: silent), for tests that check what a node logs. */
  readonly logger?: (name: string) => Logger;
}

/**
 * A valid libp2p peer id (Ed25519, from a fixed key), so p2p addresses built from it pass the same
 * validation (p2p/address.ts) as a real node's. `tag` keeps the ids of two harnesses apart.
 */
export function testPeerId(tag: number, i: number): string {
  const raw = new Uint8Array(32);
  raw[0] = tag;
  raw[1] = i;
  return peerIdFromPublicKey(publicKeyFromRaw(raw)).toString();
}

export const CHAIN_ID = 4242;

export class TestCluster {
  readonly network = new MemoryNetwork(new SystemClock());
  readonly nodes: HarnessNode[] = [];
  readonly genesis: GenesisConfig;
  private readonly members: MemberInfo[];
  private readonly options: ClusterOptions;
  private seed = 1;

  constructor(options: ClusterOptions) {
    this.options = options;
    const members: MemberInfo[] = [];
    const alloc = new Map<string, bigint>();
    for (let i = 1; i <= options.nodes; i++) {
      const h = this.makeNode(i);
      this.nodes.push(h);
      alloc.set(h.account.address, 1_000_000n);
      members.push(memberInfo(h, i));
    }
    this.members = members;
    this.genesis = {
      chainId: CHAIN_ID,
      timestampMs: 1_700_000_000_000,
      alloc,
      members: this.nodes.map((n, i) => ({ raftId: i + 1, minterPublicKey: n.minterKey.publicKeyRaw })),
      ...(options.txSignatureCheck ? { txSignatureCheck: options.txSignatureCheck } : {}),
    };
    for (const h of this.nodes) h.node = this.createNode(h, h.raftId);
  }

  private makeNode(i: number): HarnessNode {
    const name = `node-${i}`;
    return {
      name,
      peerId: testPeerId(1, i),
      node: undefined as unknown as QuorateNode,
      kv: new MemoryKv(),
      raftStorage: new MemoryStorage(),
      minterKey: generateMinterKey(),
      account: generateAccountKey(),
      raftId: i,
      incarnation: `inc-${i}-${Math.random().toString(36).slice(2)}`,
    };
  }

  private createNode(h: HarnessNode, raftId: number): QuorateNode {
    const o = this.options;
    const extra = o.settings ?? {};
    return createNode(
      {
        ...extra,
        raftId,
        nodeId: h.name,
        rpcUrl: `http://127.0.0.1:0/${h.name}`,
        tmUrl: `http://127.0.0.1:0/${h.name}/tm`,
        raft: { tickMs: o.tickMs ?? 10, seed: this.seed++, ...extra.raft },
        block: { blockTimeMs: o.blockTimeMs ?? 10, ...extra.block },
        admin: { changeTimeoutMs: 5_000, ...extra.admin },
      },
      {
        raftStorage: h.raftStorage,
        chainStore: createMemoryChainStore(h.kv),
        transport: this.network.createTransport(h.peerId),
        clock: new SystemClock(),
        logger: o.logger?.(h.name) ?? silentLogger(),
        app: new LedgerApp(),
        minterKey: h.minterKey,
        accountKeys: [h.account],
        genesis: this.genesis,
        genesisMembership: genesisMembership(this.members),
        enclaveKeys: [],
        privacy: o.privacy?.(h.name),
        incarnation: h.incarnation,
        persistRaftId: async (id) => {
          h.raftId = id;
        },
      },
    );
  }

  async start(): Promise<void> {
    await Promise.all(this.nodes.map((h) => h.node.start()));
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((h) => h.node.stop()));
  }

  /** A node that is not in genesis, started in join mode (raft id 0 until the cluster adds it). */
  async addJoiningNode(): Promise<HarnessNode> {
    const h = this.makeNode(this.nodes.length + 1);
    h.raftId = 0;
    this.nodes.push(h);
    h.node = this.createNode(h, 0);
    await h.node.start();
    return h;
  }

  /** Restarts a node on the same stores (a process restart with its disk intact). */
  async restart(h: HarnessNode): Promise<void> {
    await h.node.stop();
    h.node = this.createNode(h, h.raftId);
    await h.node.start();
  }

  /** Restarts a node on EMPTY stores under its old id: its data directory was lost. */
  async wipeAndRestart(h: HarnessNode): Promise<void> {
    await h.node.stop();
    h.kv = new MemoryKv();
    h.raftStorage = new MemoryStorage();
    h.incarnation = `inc-wiped-${Math.random().toString(36).slice(2)}`;
    h.node = this.createNode(h, h.raftId);
    await h.node.start();
  }

  p2pAddress(h: HarnessNode): string {
    return `/memory/${h.name}/p2p/${h.peerId}`;
  }

  leader(among: readonly HarnessNode[] = this.nodes): HarnessNode | undefined {
    const leaders = among.filter((h) => h.node.status().role === 'leader');
    return leaders.sort((a, b) => b.node.status().term - a.node.status().term)[0];
  }

  async waitForLeader(among: readonly HarnessNode[] = this.nodes, timeoutMs = 10_000): Promise<HarnessNode> {
    let found: HarnessNode | undefined;
    await waitFor(
      () => {
        const l = this.leader(among);
        // A leader whose term everyone in `among` has reached: not a stale one in a minority.
        if (l && among.every((h) => h.node.status().leader === l.raftId)) found = l;
        return found !== undefined;
      },
      timeoutMs,
      'a leader known to every node',
    );
    return found!;
  }
}

function memberInfo(h: HarnessNode, raftId: number): MemberInfo {
  return {
    raftId,
    name: h.name,
    peerId: h.peerId,
    p2pAddrs: [`/memory/${h.name}`],
    rpcUrl: `http://127.0.0.1:0/${h.name}`,
    tmUrl: `http://127.0.0.1:0/${h.name}/tm`,
    signingKey: Buffer.from(h.minterKey.publicKeyRaw).toString('base64'),
    enclaveKeys: [],
  };
}

export async function waitFor(check: () => boolean | Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
}

/** Sends a put from the leader's account and waits until every node in `nodes` holds its receipt. */
export async function commitOnAll(
  nodes: readonly HarnessNode[],
  leader: HarnessNode,
  tag: string,
  what = `${tag} committed`,
): Promise<void> {
  const hash = await leader.node.sendTransaction({
    from: leader.account.address,
    ops: [{ type: 'put', key: tag, value: '1' }],
  });
  const b = Buffer.from(hash.slice(2), 'hex');
  await waitFor(
    async () => {
      for (const h of nodes) if (!(await h.node.store.getReceipt(b))) return false;
      return true;
    },
    15_000,
    what,
  );
}
