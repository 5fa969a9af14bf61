// A cluster of real `quorate start` processes on loopback, for integration tests: the same
// binary, config files and ports a user runs.

import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { initCluster } from '../../node/cli/init.js';
import { addNode } from '../../node/join.js';
import { faultsInLog } from '../../node/process-guards.js';
import { HttpRpcClient } from '../../node/rpc/client.js';
import { readClusterDir, spawnNode, stopChild, type LocalNode } from '../../node/up.js';

export interface ProcNode extends LocalNode {
  readonly rpc: HttpRpcClient;
}

export class ProcessCluster {
  nodes: ProcNode[] = [];
  dir = '';
  private basePort = 0;

  async init(n: number): Promise<void> {
    this.dir = await mkdtemp(join(tmpdir(), 'quorate-cluster-'));
    // A random block of ports per run, so parallel test files and reruns do not collide; all of
    // it (up to basePort + 6_000 + nodes) below Linux's ephemeral range (32768..), where an
    // outgoing connection of any process on the machine could already hold the port (EADDRINUSE).
    this.basePort = 20_000 + Math.floor(Math.random() * 600) * 10;
    await initCluster({
      nodes: n,
      dir: join(this.dir, 'c'),
      hosts: Array.from({ length: n }, () => '127.0.0.1'),
      rpcPort: this.basePort,
      p2pPort: this.basePort + 3_000,
      tmPort: this.basePort + 6_000,
      force: false,
      chainId: 1337,
    });
    this.nodes = (await readClusterDir(join(this.dir, 'c'))).map((l) => ({
      ...l,
      rpc: new HttpRpcClient(l.rpcUrl, { timeoutMs: 10_000 }),
    }));
  }

  start(node: ProcNode, extraArgs: readonly string[] = []): ChildProcess {
    return spawnNode(node, extraArgs);
  }

  startAll(): void {
    for (const n of this.nodes) this.start(n);
  }

  /** Prepares a node that is not in genesis and starts it with --join. */
  async addJoiningNode(): Promise<ProcNode> {
    const r = await addNode({ dir: join(this.dir, 'c'), rpcUrl: this.nodes[0].rpcUrl });
    const node: ProcNode = {
      name: r.name,
      configPath: r.configPath,
      rpcUrl: r.rpcUrl,
      p2pAddress: r.p2pAddress,
      tmUrl: r.tmUrl,
      logPath: join(this.dir, 'c', r.name, 'node.log'),
      rpc: new HttpRpcClient(r.rpcUrl, { timeoutMs: 10_000 }),
    };
    this.nodes.push(node);
    this.start(node, ['--join']);
    return node;
  }

  kill(node: ProcNode, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = node.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => {
      child.once('exit', () => resolve());
      child.kill(signal);
    });
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => (n.child ? stopChild(n.child) : Promise.resolve())));
  }

  async cleanup(): Promise<void> {
    await this.stop();
    if (this.dir) await rm(this.dir, { recursive: true, force: true });
  }

  async status(
    n: ProcNode,
  ): Promise<
    | { role: string; term: number; leader: number | null; raftId: number; voters: number[]; learners: number[] }
    | undefined
  > {
    try {
      return await n.rpc.call('raft_status');
    } catch {
      return undefined;
    }
  }

  /** Waits until the nodes given agree on one leader among them; returns it. */
  async waitForLeader(among: readonly ProcNode[] = this.nodes, timeoutMs = 60_000): Promise<ProcNode> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const states = await Promise.all(among.map((n) => this.status(n)));
      const leaderIdx = states.findIndex((s) => s?.role === 'leader');
      if (leaderIdx >= 0) {
        const id = states[leaderIdx]!.raftId;
        if (states.every((s) => s?.leader === id)) return among[leaderIdx];
      }
      await sleep(100);
    }
    throw new Error(
      `no leader among ${among.map((n) => n.name).join(', ')} within ${timeoutMs} ms\n${await this.logTails(among)}`,
    );
  }

  /**
   * What each node's process guards logged (node/process-guards.ts): unhandled rejections and
   * uncaught exceptions, by node name. A fault suite asserts every count is 0 at its end.
   */
  async processFaults(): Promise<Record<string, { unhandledRejections: number; uncaughtExceptions: number }>> {
    const out: Record<string, { unhandledRejections: number; uncaughtExceptions: number }> = {};
    for (const n of this.nodes) out[n.name] = faultsInLog(await readFile(n.logPath, 'utf8').catch(() => ''));
    return out;
  }

  /** The last lines of each node's log, for a failure message. */
  async logTails(among: readonly ProcNode[], lines = 8): Promise<string> {
    const parts: string[] = [];
    for (const n of among) {
      const text = await readFile(n.logPath, 'utf8').catch(() => '(no log)');
      parts.push(
        `--- ${n.name} (exit ${n.child?.exitCode ?? n.child?.signalCode ?? 'running'}):\n${text.split('\n').slice(-lines).join('\n')}`,
      );
    }
    return parts.join('\n');
  }

  async head(n: ProcNode): Promise<number> {
    return Number(BigInt(await n.rpc.call<string>('eth_blockNumber')));
  }

  async blockHash(n: ProcNode, height: number): Promise<string | undefined> {
    const b = await n.rpc.call<{ hash: string } | null>('eth_getBlockByNumber', [`0x${height.toString(16)}`, false]);
    return b?.hash;
  }

  /** Waits until every node given is at the same height, then returns the hashes at every height. */
  async waitSameChain(among: readonly ProcNode[], timeoutMs = 60_000): Promise<string[][]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const heads = await Promise.all(among.map((n) => this.head(n).catch(() => -1)));
      if (heads.every((h) => h === heads[0] && h >= 0)) {
        const height = heads[0];
        return Promise.all(
          among.map(async (n) => {
            const out: string[] = [];
            for (let i = 0; i <= height; i++) out.push((await this.blockHash(n, i)) ?? 'missing');
            return out;
          }),
        );
      }
      if (Date.now() > deadline) throw new Error(`nodes did not reach the same height: ${heads.join(', ')}`);
      await sleep(100);
    }
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
