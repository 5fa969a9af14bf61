// A fresh cluster of real `quorate start` processes for one Jepsen run, and the controllers the
// nemesis drives it through.
//
// Slots. The nemesis names nodes n1..nN ("slots"), not node folders: a slot is a place in the network
// (a network namespace and its address, or a set of proxy ports) that holds one node incarnation at a
// time. Partitions, kills and pauses act on whatever node is in the slot. A membership change removes
// the slot's node (raft_removePeer, then its process is stopped) and later fills the slot with a
// *fresh* node — new keys, new folder, a raft id the cluster assigns (ids are never reused) — which
// binds the same address, so the network and the clients need no rewiring.
//
// Two network kinds (network.ts chooses):
//  - netns: `quorate init --hosts` with each slot's namespace address; every process is started inside
//    its namespace; the harness talks to nodes through the control relay (relay.ts).
//  - proxy: every node on 127.0.0.1 with its own ports; each node's config gets
//    `p2pAddressOverrides` so that it dials every peer through the proxy port of that ordered pair.
//    Spare nodes for membership additions are prepared before the cluster starts, so their peer ids
//    are in every node's overrides from the first start.

import { sleep } from './sleep.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CREDENTIAL_FILES } from '../cli/init-credentials.js';
import { initCluster } from '../cli/init.js';
import { addNode } from '../join.js';
import { readClusterDir } from '../up.js';
import { JepsenError, JepsenErrorCode, invariant, silentLogger, type JepsenLogger } from './errors.js';
import type { HistoryRecorder } from './history.js';
import {
  ChildProcessController,
  type MembershipController,
  type NetworkController,
  type NodeName,
  type ProcessController,
} from './nemesis.js';
import { NetnsNetwork, cleanupStaleNamespaces } from './netns-network.js';
import type { NetworkKind } from './network.js';
import { ProxyNetwork } from './proxy-network.js';
import { ControlRelay } from './relay.js';
import { JepsenRpc, type RpcTarget } from './rpc.js';
import { harnessClock as clock } from './clock.js';

const BIN = fileURLToPath(new URL('../../bin/quorate.js', import.meta.url));

/** Ports inside each namespace (every node has its own address there, so all use the same ports). */
const NETNS_PORTS = { rpc: 8545, p2p: 30303, tm: 9001 } as const;
/** Timeout of the harness's own calls (status, chain reads, membership). */
export const CONTROL_CALL_TIMEOUT_MS = 5_000;
/** A membership change answers after commit; under faults and load it may wait this long on one member. */
export const MEMBERSHIP_CALL_TIMEOUT_MS = 15_000;
/**
 * How long an addition may take (start listening, addLearner, promote). Short on purpose: during a
 * partition without a quorum it cannot succeed, and waiting longer would stretch the fault past its
 * scheduled end; a failed addition is recorded and the heal adds a fresh node.
 */
export const JOIN_TIMEOUT_MS = 10_000;
/** Blocks fetched per JSON-RPC batch when reading chains (the node's batch limit is 256). */
export const CHAIN_READ_BATCH = 100;

/** How to start a node process: argv for a config (test-only variants pass their own entry point). */
export type NodeCommand = (configPath: string, join: boolean) => readonly string[];

export const defaultNodeCommand: NodeCommand = (configPath, joining) => [
  process.execPath,
  BIN,
  'start',
  '--config',
  configPath,
  ...(joining ? ['--join'] : []),
];

export interface NodeIncarnation {
  /** The node folder name (node-1, node-4...). */
  readonly name: string;
  readonly configPath: string;
  readonly logPath: string;
  readonly p2pAddress: string;
  readonly rpcUrl: string;
  readonly tmUrl: string;
  /** The node's own account (bank accounts are the genesis nodes' accounts). */
  readonly account: string;
  /** Known once the cluster assigned it (genesis nodes: at init). */
  raftId: number;
  readonly joining: boolean;
}

export interface JepsenClusterOptions {
  readonly nodes: number;
  /** The cluster folder (node folders and their logs stay here). */
  readonly dir: string;
  readonly network: NetworkKind;
  /** The slot of each membership addition the schedule will make, in order: one fresh node is prepared for each. */
  readonly spareSlots: readonly NodeName[];
  readonly nodeCommand?: NodeCommand;
  readonly log?: JepsenLogger;
}

export interface RaftStatus {
  readonly raftId: number;
  readonly term: number;
  readonly role: string;
  readonly leader: number | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly voters: readonly number[];
  readonly learners: readonly number[];
}

export class JepsenCluster {
  readonly slots: NodeName[];
  /** The node currently in each slot; undefined while a removed node's slot waits for a fresh one. */
  private readonly occupant = new Map<NodeName, NodeIncarnation | undefined>();
  /** Fresh nodes prepared for additions, per destination slot, in the order they will be used. */
  private readonly spares = new Map<NodeName, NodeIncarnation[]>();
  /** Every incarnation ever started (for logs and the report). */
  readonly incarnations: NodeIncarnation[] = [];
  readonly genesisAccounts: string[] = [];
  readonly processes: ChildProcessController;
  private readonly targets = new Map<NodeName, RpcTarget>();
  private readonly rpcs = new Map<NodeName, JepsenRpc>();
  private readonly log: JepsenLogger;
  private readonly nodeCommand: NodeCommand;
  private socketDir = '';

  private constructor(
    private readonly options: JepsenClusterOptions,
    readonly network: NetworkController,
    private readonly netns: NetnsNetwork | undefined,
    private readonly relay: ControlRelay | undefined,
  ) {
    this.slots = Array.from({ length: options.nodes }, (_, i) => `n${i + 1}`);
    this.log = options.log ?? silentLogger;
    this.nodeCommand = options.nodeCommand ?? defaultNodeCommand;
    this.processes = new ChildProcessController((slot) => this.spawnSlot(slot), this.log);
  }

  /** Builds the network and the node folders; starts nothing. Cleans up what it made on failure. */
  static async create(options: JepsenClusterOptions): Promise<JepsenCluster> {
    invariant(options.nodes >= 1, 'a cluster needs a node');
    const slots = Array.from({ length: options.nodes }, (_, i) => `n${i + 1}`);
    let cluster: JepsenCluster | undefined;
    let network: NetworkController | undefined;
    try {
      if (options.network === 'netns') {
        // A run killed before its clean-up (SIGKILL, a CI timeout) leaves namespaces behind.
        await cleanupStaleNamespaces(options.log);
        const netns = await NetnsNetwork.create({ nodes: slots, log: options.log });
        network = netns;
        const relay = ControlRelay.start((cmd, args) =>
          netns.spawnInControl(cmd, args, { stdio: ['pipe', 'pipe', 'inherit'] }),
        );
        cluster = new JepsenCluster(options, netns, netns, relay);
      } else {
        // Targets are the nodes' real p2p ports, known once the ports are chosen below.
        const basePort = 21_000 + Math.floor(clock.randomFloat() * 1_500) * 10;
        const targets = Object.fromEntries(slots.map((s, i) => [s, { host: '127.0.0.1', port: basePort + 3_000 + i }]));
        network = await ProxyNetwork.start({ nodes: slots, targets, log: options.log });
        cluster = new JepsenCluster(options, network, undefined, undefined);
        cluster.proxyBasePort = basePort;
      }
      await cluster.prepare();
      return cluster;
    } catch (err) {
      if (cluster) await cluster.close();
      else await network?.close();
      throw err;
    }
  }

  private proxyBasePort = 0;

  private async prepare(): Promise<void> {
    const dir = this.options.dir;
    const n = this.options.nodes;
    const hosts = this.slots.map((s) => (this.netns ? this.netns.addressOf(s) : '127.0.0.1'));
    const ports = this.netns
      ? NETNS_PORTS
      : { rpc: this.proxyBasePort, p2p: this.proxyBasePort + 3_000, tm: this.proxyBasePort + 6_000 };
    const init = await initCluster({
      nodes: n,
      dir,
      hosts,
      rpcPort: ports.rpc,
      p2pPort: ports.p2p,
      tmPort: ports.tm,
      force: false,
      chainId: 1337,
      // Namespace addresses are not loopback: the nodes require tokens (read below). No TLS: the
      // relay is a byte pipe that answers a refused dial in plain HTTP (relay.ts).
      rpcTls: false,
    });
    const token = await operatorToken(dir);
    const locals = await readClusterDir(dir);
    this.slots.forEach((slot, i) => {
      const l = locals[i];
      const inc: NodeIncarnation = {
        name: l.name,
        configPath: l.configPath,
        logPath: l.logPath,
        p2pAddress: l.p2pAddress,
        rpcUrl: l.rpcUrl,
        tmUrl: l.tmUrl,
        account: init.nodes[i].account,
        raftId: init.nodes[i].raftId,
        joining: false,
      };
      this.occupant.set(slot, inc);
      this.incarnations.push(inc);
      this.genesisAccounts.push(inc.account);
    });
    // Spares are prepared now, so proxy overrides can name their peer ids from every node's first start.
    // Proxy mode prepares two per addition: a failed addition burns its node (see `add`).
    for (const slot of this.netns ? this.options.spareSlots : this.options.spareSlots.flatMap((s) => [s, s])) {
      // An unreachable RPC URL: addNode then takes the genesis members as its first peers; the
      // current members are written into its config when it is added (rewriteForSlot).
      const i = this.slots.indexOf(slot);
      invariant(i >= 0, `spare for unknown slot ${slot}`);
      const r = await addNode({
        dir,
        rpcUrl: 'http://127.0.0.1:1/',
        host: hosts[i],
        rpcPort: ports.rpc + (this.netns ? 0 : i),
        p2pPort: ports.p2p + (this.netns ? 0 : i),
        tmPort: ports.tm + (this.netns ? 0 : i),
        rpcTls: false,
      });
      const queue = this.spares.get(slot) ?? [];
      queue.push({
        name: r.name,
        configPath: r.configPath,
        logPath: join(dir, r.name, 'node.log'),
        p2pAddress: r.p2pAddress,
        rpcUrl: r.rpcUrl,
        tmUrl: r.tmUrl,
        account: '',
        raftId: 0,
        joining: true,
      });
      this.spares.set(slot, queue);
    }
    // Unix socket paths are limited to ~107 bytes: keep them in a short temporary folder.
    this.socketDir = await mkdtemp(join(tmpdir(), 'qj-'));
    for (let i = 0; i < n; i++) {
      const slot = this.slots[i];
      if (this.netns && this.relay) {
        const socketPath = join(this.socketDir, `${slot}.sock`);
        await this.relay.listen(socketPath, hosts[i], ports.rpc);
        this.targets.set(slot, { socketPath, ...(token === undefined ? {} : { token }) });
      } else {
        this.targets.set(slot, { host: '127.0.0.1', port: ports.rpc + i, ...(token === undefined ? {} : { token }) });
      }
    }
    if (!this.netns) await this.writeProxyOverrides();
  }

  /**
   * Proxy mode: every node (genesis and spares) dials each peer through the proxy port of the ordered
   * pair (its slot, the peer's slot). Nodes of the same slot never run together, so need no entry.
   */
  private async writeProxyOverrides(): Promise<void> {
    const proxy = this.network as ProxyNetwork;
    const placed: Array<[NodeName, NodeIncarnation]> = [
      ...this.slots.map((s): [NodeName, NodeIncarnation] => [s, this.occupant.get(s)!]),
    ];
    for (const [slot, queue] of this.spares) for (const sp of queue) placed.push([slot, sp]);
    for (const [mySlot, me] of placed) {
      const overrides: Record<string, string> = {};
      for (const [slot, other] of placed) {
        if (slot === mySlot) continue;
        const a = proxy.addressFor(mySlot, slot);
        overrides[other.p2pAddress.split('/p2p/')[1]] = `/ip4/${a.host}/tcp/${a.port}`;
      }
      await patchConfig(me.configPath, (c) => ({ ...c, p2pAddressOverrides: overrides }));
    }
  }

  /** The node in a slot (undefined while the slot is empty after a removal). */
  occupantOf(slot: NodeName): NodeIncarnation | undefined {
    return this.occupant.get(slot);
  }

  /** The slot whose genesis node holds `account` (bank transfers go there: only it can sign). */
  slotOfAccount(account: string): NodeName | undefined {
    const i = this.genesisAccounts.indexOf(account);
    return i < 0 ? undefined : this.slots[i];
  }

  targetOf(slot: NodeName): RpcTarget {
    const t = this.targets.get(slot);
    invariant(t !== undefined, `unknown slot ${slot}`);
    return t;
  }

  /** The harness's own client for a slot (status, chain reads, membership). */
  control(slot: NodeName): JepsenRpc {
    let c = this.rpcs.get(slot);
    if (c === undefined) {
      c = new JepsenRpc(this.targetOf(slot), { timeoutMs: CONTROL_CALL_TIMEOUT_MS });
      this.rpcs.set(slot, c);
    }
    return c;
  }

  private spawnSlot(slot: NodeName): ChildProcess {
    const inc = this.occupant.get(slot);
    if (inc === undefined)
      throw new JepsenError(JepsenErrorCode.ProcessFault, `slot ${slot} is empty (its node was removed)`, { slot });
    const [command, ...args] = this.nodeCommand(inc.configPath, inc.joining);
    const fd = openSync(inc.logPath, 'a');
    try {
      const stdio: ['ignore', number, number] = ['ignore', fd, fd];
      return this.netns ? this.netns.spawnIn(slot, command, args, { stdio }) : spawn(command, args, { stdio });
    } finally {
      closeSync(fd);
    }
  }

  startAll(): void {
    for (const s of this.slots) this.processes.start(s);
  }

  async status(slot: NodeName, timeoutMs = CONTROL_CALL_TIMEOUT_MS): Promise<RaftStatus | undefined> {
    if (this.occupant.get(slot) === undefined || !this.processes.isRunning(slot)) return undefined;
    try {
      return await this.control(slot).call<RaftStatus>('raft_status', [], AbortSignal.timeout(timeoutMs));
    } catch {
      return undefined;
    }
  }

  /** Slots whose node is in the cluster and running. */
  liveSlots(): NodeName[] {
    return this.slots.filter((s) => this.occupant.get(s) !== undefined && this.processes.isRunning(s));
  }

  /** The slot of the node that calls itself leader and that every other live node agrees on, if any. */
  async agreedLeader(): Promise<NodeName | undefined> {
    const live = this.liveSlots();
    const states = await Promise.all(live.map((s) => this.status(s, 2_000)));
    const i = states.findIndex((s) => s?.role === 'leader');
    if (i < 0) return undefined;
    const id = states[i]!.raftId;
    return states.every((s) => s?.leader === id) ? live[i] : undefined;
  }

  /** Any slot whose node says it leads (for isolate-leader; disagreement does not matter there). */
  async someLeader(): Promise<NodeName | undefined> {
    const live = this.liveSlots();
    const states = await Promise.all(live.map((s) => this.status(s, 1_000)));
    const i = states.findIndex((s) => s?.role === 'leader');
    return i < 0 ? undefined : live[i];
  }

  /** Calls a method on each live member in turn until one answers (membership RPCs are forwarded to the leader). */
  private async onAnyMember<T>(method: string, params: readonly unknown[], except: NodeName[] = []): Promise<T> {
    let last: unknown;
    const leader = await this.someLeader();
    const order = [...(leader ? [leader] : []), ...this.liveSlots().filter((s) => s !== leader)].filter(
      (s) => !except.includes(s),
    );
    for (const slot of order) {
      try {
        // A client of its own: the control client's shorter timeout would cut a change that is committing.
        const rpc = new JepsenRpc(this.targetOf(slot), { timeoutMs: MEMBERSHIP_CALL_TIMEOUT_MS });
        try {
          return await rpc.call<T>(method, params);
        } finally {
          rpc.close();
        }
      } catch (err) {
        last = err;
      }
    }
    throw new JepsenError(
      JepsenErrorCode.ProcessFault,
      `${method} failed on every member: ${(last as Error)?.message ?? 'no live member'}`,
      { method },
    );
  }

  /** The membership controller: removal stops the node; addition fills the slot with a fresh node. */
  membership(recorder?: HistoryRecorder): MembershipController {
    return {
      remove: async (slot) => {
        const inc = this.occupant.get(slot);
        if (inc === undefined) return;
        // The raft id of a node added earlier is learned from the node itself.
        const raftId = inc.raftId || (await this.status(slot))?.raftId || 0;
        if (raftId === 0)
          throw new JepsenError(JepsenErrorCode.ProcessFault, `remove ${slot}: its raft id is unknown`, { slot });
        await this.onAnyMember('raft_removePeer', [raftId], [slot]);
        this.log.info({ slot, node: inc.name, raftId }, 'jepsen: member removed');
        if (this.processes.isRunning(slot)) {
          await this.processes.resume(slot);
          await this.processes.kill(slot);
        }
        this.occupant.set(slot, undefined);
      },
      add: async (slot) => {
        if (this.occupant.get(slot) !== undefined) return; // the removal did not happen: nothing to refill
        const spare = this.spares.get(slot)?.shift() ?? (this.netns ? await this.prepareSpare(slot) : undefined);
        if (spare === undefined)
          throw new JepsenError(JepsenErrorCode.ProcessFault, `add ${slot}: no spare node left for this slot`, {
            slot,
          });
        const inc = await this.rewriteForSlot(spare, slot);
        this.occupant.set(slot, inc);
        this.incarnations.push(inc);
        this.processes.start(slot);
        try {
          await this.join(slot, inc, recorder);
        } catch (err) {
          // Not a member (or not known to be one): stop it and leave the slot empty, so the next
          // addition (or the final heal) starts another fresh node — never this one, whose id may
          // or may not have been assigned.
          await this.processes.kill(slot).catch(() => undefined);
          this.occupant.set(slot, undefined);
          throw err;
        }
      },
    };
  }

  /** Netns mode: one more fresh node for a slot, made when needed (no proxy overrides to pre-write). */
  private async prepareSpare(slot: NodeName): Promise<NodeIncarnation> {
    const r = await addNode({
      dir: this.options.dir,
      rpcUrl: 'http://127.0.0.1:1/',
      host: this.netns!.addressOf(slot),
      rpcPort: NETNS_PORTS.rpc,
      p2pPort: NETNS_PORTS.p2p,
      tmPort: NETNS_PORTS.tm,
      rpcTls: false,
    });
    return {
      name: r.name,
      configPath: r.configPath,
      logPath: join(this.options.dir, r.name, 'node.log'),
      p2pAddress: r.p2pAddress,
      rpcUrl: r.rpcUrl,
      tmUrl: r.tmUrl,
      account: '',
      raftId: 0,
      joining: true,
    };
  }

  /** The raft id the cluster gave the node with this p2p address, if it is a member. */
  private async raftIdOfPeer(p2pAddress: string): Promise<number | undefined> {
    const peerId = p2pAddress.split('/p2p/')[1];
    try {
      const members = await this.onAnyMember<Array<{ raftId: number; p2pAddress: string }>>('raft_cluster', []);
      return members.find((m) => m.p2pAddress.split('/p2p/')[1] === peerId)?.raftId;
    } catch {
      return undefined;
    }
  }

  /** raft_addLearner, raft_promoteToPeer, then a leadership transfer to the newcomer. */
  private async join(slot: NodeName, inc: NodeIncarnation, recorder: HistoryRecorder | undefined): Promise<void> {
    const deadline = clock.monotonicMs() + JOIN_TIMEOUT_MS;
    let raftId = 0;
    let lastErr: unknown;
    while (raftId === 0 && clock.monotonicMs() < deadline) {
      try {
        raftId = Number(
          await this.onAnyMember('raft_addLearner', [inc.p2pAddress, { rpcUrl: inc.rpcUrl, tmUrl: inc.tmUrl }], [slot]),
        );
      } catch (err) {
        lastErr = err;
        // An earlier attempt whose answer timed out may have committed: the cluster knows its id.
        raftId = (await this.raftIdOfPeer(inc.p2pAddress)) ?? 0;
        if (raftId === 0) await sleep(300);
      }
    }
    if (raftId === 0)
      throw new JepsenError(
        JepsenErrorCode.ProcessFault,
        `add ${slot}: raft_addLearner failed: ${(lastErr as Error)?.message}`,
        { slot },
      );
    inc.raftId = raftId;
    recorder?.nemesis('membership-learner', { slot, node: inc.name, raftId });
    let promoted = false;
    while (!promoted && clock.monotonicMs() < deadline) {
      try {
        await this.onAnyMember('raft_promoteToPeer', [raftId], [slot]);
        promoted = true;
      } catch (err) {
        lastErr = err;
        await sleep(300);
      }
    }
    if (!promoted)
      throw new JepsenError(
        JepsenErrorCode.ProcessFault,
        `add ${slot}: raft_promoteToPeer(${raftId}) failed: ${(lastErr as Error)?.message}`,
        { slot },
      );
    // Hand leadership to the newcomer: a transfer under faults is part of the membership nemesis.
    try {
      await this.onAnyMember('raft_transferLeadership', [raftId], [slot]);
      recorder?.nemesis('transfer-leadership', { to: raftId });
    } catch (err) {
      recorder?.nemesis('transfer-leadership-failed', { to: raftId, error: (err as Error).message });
    }
    this.log.info({ slot, node: inc.name, raftId }, 'jepsen: member added and promoted');
  }

  /** Points a spare at a slot: the slot's address, its proxy links, and the current members as peers. */
  private async rewriteForSlot(spare: NodeIncarnation, slot: NodeName): Promise<NodeIncarnation> {
    const i = this.slots.indexOf(slot);
    let members: Array<{ raftId: number; nodeId: string; p2pAddress: string; rpcUrl: string }> = [];
    try {
      members = await this.onAnyMember('raft_cluster', []);
    } catch {
      // Keep the genesis peers written by addNode.
    }
    const host = this.netns ? this.netns.addressOf(slot) : '127.0.0.1';
    const ports = this.netns
      ? NETNS_PORTS
      : { rpc: this.proxyBasePort + i, p2p: this.proxyBasePort + 3_000 + i, tm: this.proxyBasePort + 6_000 + i };
    const peerId = spare.p2pAddress.split('/p2p/')[1];
    await patchConfig(spare.configPath, (c) => {
      const peers =
        members.length === 0
          ? c.peers
          : members.map((m) => ({
              raftId: m.raftId,
              nodeId: m.nodeId,
              peerId: m.p2pAddress.split('/p2p/')[1] ?? '',
              p2pAddress: m.p2pAddress,
              rpcUrl: m.rpcUrl,
              tmUrl: m.rpcUrl,
              enclavePublicKeys: [],
            }));
      const next: Record<string, unknown> = {
        ...c,
        peers,
        // Keep rpc.auth (required off loopback); the TM client API stays on the node's loopback.
        rpc: { ...(c.rpc as Record<string, unknown>), host, port: ports.rpc },
        p2p: { host, port: ports.p2p },
        tm: { host: '127.0.0.1', port: ports.tm },
      };
      return next;
    });
    return {
      ...spare,
      rpcUrl: `http://${host}:${ports.rpc}/`,
      tmUrl: `http://127.0.0.1:${ports.tm}/`,
      p2pAddress: `/ip4/${host}/tcp/${ports.p2p}/p2p/${peerId}`,
      joining: true,
    };
  }

  /** Stops every process, the relay and the network. Never throws. */
  async close(): Promise<void> {
    await this.processes
      .stopAll()
      .catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'jepsen: stopping nodes failed'));
    for (const c of this.rpcs.values()) c.close();
    await this.relay?.close().catch(() => undefined);
    await this.network
      .close()
      .catch((err: unknown) => this.log.warn({ err: (err as Error).message }, 'jepsen: closing the network failed'));
    if (this.socketDir) await rm(this.socketDir, { recursive: true, force: true }).catch(() => undefined);
  }
}

/** Process faults on slots: a removed node's empty slot is left alone (it has nothing to kill or restart). */
export class SlotProcessController implements ProcessController {
  constructor(private readonly cluster: JepsenCluster) {}
  private has(slot: NodeName): boolean {
    return this.cluster.occupantOf(slot) !== undefined;
  }
  async kill(slot: NodeName): Promise<void> {
    if (this.has(slot)) await this.cluster.processes.kill(slot);
  }
  async restart(slot: NodeName): Promise<void> {
    if (this.has(slot) && !this.cluster.processes.isRunning(slot)) await this.cluster.processes.restart(slot);
  }
  async pause(slot: NodeName): Promise<void> {
    if (this.has(slot) && this.cluster.processes.isRunning(slot)) await this.cluster.processes.pause(slot);
  }
  async resume(slot: NodeName): Promise<void> {
    if (this.has(slot)) await this.cluster.processes.resume(slot);
  }
}

async function patchConfig(path: string, f: (c: Record<string, unknown>) => Record<string, unknown>): Promise<void> {
  const c = JSON.parse(await readFile(path, 'utf8')) as Record<string, unknown>;
  await writeFile(path, JSON.stringify(f(c), null, 2) + '\n');
}

/**
 * The operator's bearer token from a cluster folder's credentials (init writes them when a host is
 * not loopback); undefined for a loopback cluster, whose nodes need none.
 */
async function operatorToken(dir: string): Promise<string | undefined> {
  let text: string;
  try {
    text = await readFile(join(dir, CREDENTIAL_FILES.tokens), 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
  for (const line of text.split('\n')) {
    const [name, , token] = line.trim().split(/\s+/);
    if (name === 'operator' && token) return token;
  }
  throw new JepsenError(JepsenErrorCode.ProcessFault, `no operator token in ${join(dir, CREDENTIAL_FILES.tokens)}`);
}
