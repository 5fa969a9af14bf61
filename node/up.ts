// `quorate up` (and `npm start`): the one-command local cluster. Runs `init` when the folder is
// absent, starts every node as its own child process (real processes, as users and the Jepsen
// harness run them), waits for a leader, prints a table, then watches the cluster and prints
// role and membership changes until Ctrl-C, which stops every node cleanly.

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, openSync, closeSync } from 'node:fs';
import { readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { DEV_PASSWORD_FILE, INIT_DEFAULTS, initCluster } from './cli/init.js';
import { KEY_PASSWORD_ENV, KEY_PASSWORD_ENV_ALIAS, PRIVATE_FILE_MODE } from './keys.js';
import type { UpOptions } from './cli/up.js';
import { formatTable } from './cli/table.js';
import { HttpRpcClient } from './rpc/client.js';
import { SystemClock, sleepMs } from './clock.js';

/** The real clock (node/clock.ts): this module has no injected one. */
const clock = new SystemClock();

/** How long `up` waits for the first leader before it says so (it keeps waiting). */
const LEADER_WAIT_WARN_MS = 15_000;
/** How often the cluster is polled for role and membership changes. */
const WATCH_INTERVAL_MS = 1_000;
/** Children get this long to stop after SIGTERM before SIGKILL. */
const CHILD_STOP_GRACE_MS = 5_000;

const BIN = fileURLToPath(new URL('../bin/quorate.js', import.meta.url));

/**
 * Extra Node.js flags for every node process started here (`quorate up`, the benches), split on
 * whitespace: e.g. QUORATE_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the nodes
 * under load (Node refuses --cpu-prof in NODE_OPTIONS). Unset: none.
 */
export const NODE_ARGS_ENV = 'QUORATE_NODE_ARGS';

export interface LocalNode {
  readonly name: string;
  readonly configPath: string;
  readonly rpcUrl: string;
  readonly p2pAddress: string;
  readonly tmUrl: string;
  readonly logPath: string;
  child?: ChildProcess;
}

/** Reads the cluster folder `quorate init` wrote. */
export async function readClusterDir(dir: string): Promise<LocalNode[]> {
  const genesis = JSON.parse(await readFile(join(dir, 'genesis.json'), 'utf8')) as {
    members: Array<{ name: string; peerId: string; p2pAddrs: string[]; rpcUrl: string; tmUrl: string }>;
  };
  return genesis.members.map((m) => ({
    name: m.name,
    configPath: join(dir, m.name, 'config.json'),
    rpcUrl: m.rpcUrl,
    p2pAddress: `${m.p2pAddrs[0]}/p2p/${m.peerId}`,
    tmUrl: m.tmUrl,
    logPath: join(dir, m.name, 'node.log'),
  }));
}

/**
 * The glibc malloc setting each local node runs with (README "State and memory"), unless its environment
 * already sets the variable (or bench:state --malloc-default):
 * blocks of 128 KiB and more (Raft entries, blocks, snapshot chunks, p2p frames) are mmapped and
 * returned to the OS when freed. glibc's default raises this threshold to the largest block freed
 * so far (up to 32 MiB), after which such blocks come from the heap and what is freed there mostly
 * stays resident: ~200 MB of a leader's RSS at 64 MiB of state was memory neither V8's heap nor
 * its ArrayBuffers held.
 */
export const NODE_MALLOC_ENV: Readonly<Record<string, string>> = { MALLOC_MMAP_THRESHOLD_: '131072' };

/**
 * The environment of a local node: this process's, less the key password (dev-cluster nodes read
 * theirs from node.password; one in this environment is not theirs to inherit), plus `allocatorEnv`
 * where a variable is not set already.
 */
export function localNodeEnv(
  parent: NodeJS.ProcessEnv,
  allocatorEnv: Readonly<Record<string, string>> = NODE_MALLOC_ENV,
): NodeJS.ProcessEnv {
  const env = { ...parent };
  delete env[KEY_PASSWORD_ENV];
  delete env[KEY_PASSWORD_ENV_ALIAS];
  for (const [k, v] of Object.entries(allocatorEnv)) env[k] ??= v;
  return env;
}

/**
 * Starts one node (`quorate start`) as a child process, its output appended to its log file.
 * `allocatorEnv` is added to the environment where a variable is not set already (default
 * NODE_MALLOC_ENV; {} for glibc's defaults).
 */
export function spawnNode(
  n: LocalNode,
  extraArgs: readonly string[] = [],
  allocatorEnv: Readonly<Record<string, string>> = NODE_MALLOC_ENV,
): ChildProcess {
  // The log is private like the rest of the node folder (0600).
  const fd = openSync(n.logPath, 'a', PRIVATE_FILE_MODE);
  const env = localNodeEnv(process.env, allocatorEnv);
  const nodeArgs = (process.env[NODE_ARGS_ENV] ?? '').split(/\s+/).filter((a) => a !== '');
  const child = spawn(process.execPath, [...nodeArgs, BIN, 'start', '--config', n.configPath, ...extraArgs], {
    env,
    stdio: ['ignore', fd, fd],
    detached: false,
  });
  closeSync(fd);
  n.child = child;
  return child;
}

/** SIGTERM, then SIGKILL after the grace period; resolves when the child is gone. */
export function stopChild(child: ChildProcess, graceMs = CHILD_STOP_GRACE_MS): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = clock.setTimeout(() => child.kill('SIGKILL'), graceMs);
    child.once('exit', () => {
      timer?.cancel();
      resolve();
    });
    child.kill('SIGTERM');
  });
}

interface Observed {
  role: string;
  term: number;
  leader: number | null;
  members: string;
}

async function observe(n: LocalNode): Promise<Observed | undefined> {
  const client = new HttpRpcClient(n.rpcUrl, { timeoutMs: 800 });
  try {
    const s = await client.call<{
      role: string;
      term: number;
      leader: number | null;
      voters: number[];
      learners: number[];
    }>('raft_status');
    return {
      role: s.role,
      term: s.term,
      leader: s.leader,
      members: `voters [${s.voters.join(',')}] learners [${s.learners.join(',')}]`,
    };
  } catch {
    return undefined;
  }
}

export async function runUp(options: UpOptions): Promise<void> {
  const out = (line: string) => process.stdout.write(`${line}\n`);
  if (options.fresh && existsSync(options.dir)) await rm(options.dir, { recursive: true, force: true });
  if (!existsSync(options.dir)) {
    out(`initialising a ${options.nodes}-node cluster in ${options.dir}`);
    await initCluster({
      nodes: options.nodes,
      dir: options.dir,
      hosts: Array.from({ length: options.nodes }, () => INIT_DEFAULTS.host),
      rpcPort: INIT_DEFAULTS.rpcPort,
      p2pPort: INIT_DEFAULTS.p2pPort,
      tmPort: INIT_DEFAULTS.tmPort,
      force: false,
      chainId: INIT_DEFAULTS.chainId,
      keyProtection: 'dev',
    });
    out(
      `keys sealed with the light dev KDF; each node's password is in node-i/${DEV_PASSWORD_FILE} (0600) so the nodes start unattended — a local cluster only`,
    );
  }
  const nodes = await readClusterDir(options.dir);
  let stopping = false;
  for (const n of nodes) {
    const child = spawnNode(n);
    child.on('exit', (code, signal) => {
      if (!stopping) out(`${n.name} exited (${signal ?? `code ${code}`}); its log is ${n.logPath}`);
    });
  }

  const stopAll = async (): Promise<void> => {
    if (stopping) return;
    stopping = true;
    out('stopping every node...');
    await Promise.all(nodes.map((n) => (n.child ? stopChild(n.child) : Promise.resolve())));
    out('all nodes stopped');
  };
  const stopped = new Promise<void>((resolve) => {
    const onSignal = () => void stopAll().then(resolve);
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
  });

  // Wait for a leader that every reachable node agrees on.
  const startedAt = clock.wallMs();
  let warned = false;
  let states: (Observed | undefined)[] = [];
  while (!stopping) {
    states = await Promise.all(nodes.map(observe));
    const leaders = new Set(states.filter((s) => s?.leader).map((s) => s!.leader));
    if (leaders.size === 1 && states.some((s) => s?.role === 'leader')) break;
    if (!warned && clock.wallMs() - startedAt > LEADER_WAIT_WARN_MS) {
      warned = true;
      out(
        `no leader yet after ${LEADER_WAIT_WARN_MS / 1000} s; still waiting (logs: ${nodes.map((n) => n.logPath).join(', ')})`,
      );
    }
    await sleepMs(clock, 200);
  }
  if (!stopping) {
    out('');
    out(
      formatTable(
        ['node', 'role', 'rpc', 'p2p', 'tx manager'],
        nodes.map((n, i) => [n.name, states[i]?.role ?? 'down', n.rpcUrl, n.p2pAddress, n.tmUrl]),
      ),
    );
    out('');
    out(`cluster is up (data in ${options.dir}); Ctrl-C stops every node`);
  }

  // Watch for role and membership changes.
  const last = new Map<string, string>();
  states.forEach((s, i) => last.set(nodes[i].name, s ? `${s.role} term ${s.term} ${s.members}` : 'down'));
  while (!stopping) {
    await Promise.race([sleepMs(clock, WATCH_INTERVAL_MS), stopped]);
    if (stopping) break;
    const now = await Promise.all(nodes.map(observe));
    now.forEach((s, i) => {
      const text = s ? `${s.role} term ${s.term} ${s.members}` : 'down';
      if (last.get(nodes[i].name) !== text) {
        out(`${new Date().toISOString()} ${nodes[i].name}: ${text}`);
        last.set(nodes[i].name, text);
      }
    });
  }
  await stopped;
}
