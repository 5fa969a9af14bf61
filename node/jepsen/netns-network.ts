// Partitions with Linux network namespaces (needs root and iproute2). Each node runs in its own
// namespace with one interface on a private bridge; a cut drops packets at the sender with a
// blackhole route, so the kernel's real TCP sees real packet loss (retransmits, timeouts, SYNs that
// go unanswered) — closer to a real network than any proxy.
//
// Layout of one run (everything lives inside namespaces of our own; the host's root namespace, its
// interfaces and routes are never touched, so no packet can leave the machine):
//
//   qrt-j<pid>x<seq>-hub     bridge br0 = 10.213.0.1/24 (the control address), and one veth end v<i>
//                            per node enslaved to it
//   qrt-j<pid>x<seq>-<i>     lo, eth0 = 10.213.0.<10+i>/24 (the other end of v<i>)
//
// The root namespace has no route to the bridge, on purpose. The control side of a run (the clients,
// the checks that read every node after healing) runs inside the hub namespace — `spawnInControl` —
// where it reaches every node at 10.213.0.<10+i> and is never cut (cuts are routes in node
// namespaces naming node addresses only), as Jepsen's control node stays connected to every node.
//
// The 10.213.0.0/24 addresses exist only on our private bridge; two runs at once each have their own
// bridge, so they never collide. Names carry the creating process's pid so `cleanupStaleNamespaces`
// can remove what a crashed run left behind without touching a live run's namespaces.

import { execFile, spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { JepsenError, JepsenErrorCode, invariant, silentLogger, type JepsenLogger } from './errors.js';
import type { Cut, NetworkController, NodeName } from './nemesis.js';

/** Every namespace we create starts with this; nothing else is ever deleted. */
export const NETNS_PREFIX = 'qrt-j';
/** Time allowed for one `ip` command. */
export const IP_COMMAND_TIMEOUT_MS = 10_000;
/** Nodes per run: addresses are 10.213.0.10 .. 10.213.0.(10+max-1) and interface names stay short. */
export const MAX_NETNS_NODES = 200;
const SUBNET_PREFIX = '10.213.0.';
/** The hub's own address on the bridge: where the control side (clients) lives. */
export const NETNS_CONTROL_ADDRESS = '10.213.0.1';

let runSeq = 0;

/** Runs `ip` with arguments; rejects with JepsenError(NetnsCommandFailed) carrying stderr. */
export function ip(args: readonly string[], input?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = execFile('ip', args, { timeout: IP_COMMAND_TIMEOUT_MS }, (err, stdout, stderr) => {
      if (err) {
        reject(
          new JepsenError(
            JepsenErrorCode.NetnsCommandFailed,
            `ip ${args.join(' ')} failed: ${String(stderr).trim() || err.message}`,
            { args, stderr: String(stderr) },
            { cause: err },
          ),
        );
      } else {
        resolve(String(stdout));
      }
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

export interface NetnsAvailability {
  readonly available: boolean;
  /** Why not, in words, when unavailable. */
  readonly reason?: string;
}

/** Whether network namespaces can be used here: root, iproute2, and a namespace can be made. */
export async function detectNetns(): Promise<NetnsAvailability> {
  if (process.platform !== 'linux')
    return { available: false, reason: `network namespaces need Linux (this is ${process.platform})` };
  if (typeof process.getuid !== 'function' || process.getuid() !== 0)
    return { available: false, reason: 'network namespaces need root (run as root, or use the TCP proxy)' };
  try {
    await ip(['-V']);
  } catch {
    return { available: false, reason: 'iproute2 (`ip`) is not installed: apt-get install -y iproute2' };
  }
  const probe = `${NETNS_PREFIX}${process.pid}probe`;
  try {
    await ip(['netns', 'add', probe]);
  } catch (err) {
    return { available: false, reason: `cannot create a network namespace: ${(err as Error).message}` };
  }
  try {
    await ip(['netns', 'del', probe]);
  } catch {
    // Nothing to do: the probe name is ours and cleanupStaleNamespaces removes it later.
  }
  return { available: true };
}

/** Lists namespaces created by this toolkit (any run). */
export async function listOwnNamespaces(): Promise<string[]> {
  const out = await ip(['netns', 'list']);
  return out
    .split('\n')
    .map((l) => l.trim().split(/\s+/)[0])
    .filter((n): n is string => n !== undefined && n.startsWith(NETNS_PREFIX));
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Deletes namespaces left by runs whose process is gone. Returns the names deleted. */
export async function cleanupStaleNamespaces(log: JepsenLogger = silentLogger): Promise<string[]> {
  const deleted: string[] = [];
  for (const name of await listOwnNamespaces()) {
    const m = new RegExp(`^${NETNS_PREFIX}(\\d+)`).exec(name);
    if (m === null) continue;
    const pid = Number(m[1]);
    if (pid === process.pid || pidAlive(pid)) continue;
    try {
      await ip(['netns', 'del', name]);
      deleted.push(name);
    } catch (err) {
      log.warn({ name, err: (err as Error).message }, 'jepsen: could not delete a stale namespace');
    }
  }
  if (deleted.length > 0) log.info({ deleted }, 'jepsen: removed namespaces left by earlier runs');
  return deleted;
}

export interface NetnsNetworkOptions {
  readonly nodes: readonly NodeName[];
  readonly log?: JepsenLogger;
}

export class NetnsNetwork implements NetworkController {
  readonly kind = 'netns' as const;
  readonly runId: string;
  private readonly hub: string;
  private readonly nsByNode = new Map<NodeName, string>();
  private readonly ipByNode = new Map<NodeName, string>();
  /** Blackhole routes in force, as "from\0to". */
  private readonly routes = new Set<string>();
  private readonly created: string[] = [];
  private readonly log: JepsenLogger;
  private closed = false;

  private constructor(
    private readonly nodes: readonly NodeName[],
    log: JepsenLogger,
  ) {
    this.runId = `${NETNS_PREFIX}${process.pid}x${runSeq++}`;
    this.hub = `${this.runId}-hub`;
    this.log = log;
    nodes.forEach((n, i) => {
      this.nsByNode.set(n, `${this.runId}-${i}`);
      this.ipByNode.set(n, `${SUBNET_PREFIX}${10 + i}`);
    });
  }

  /** Builds the namespaces and the bridge; on any failure removes whatever it made, then throws. */
  static async create(options: NetnsNetworkOptions): Promise<NetnsNetwork> {
    invariant(
      options.nodes.length >= 1 && options.nodes.length <= MAX_NETNS_NODES,
      `1..${MAX_NETNS_NODES} nodes, got ${options.nodes.length}`,
    );
    invariant(new Set(options.nodes).size === options.nodes.length, 'node names must be distinct');
    const net = new NetnsNetwork(options.nodes, options.log ?? silentLogger);
    try {
      await net.build();
    } catch (err) {
      await net.close();
      throw err;
    }
    net.log.info({ runId: net.runId, nodes: Object.fromEntries(net.ipByNode) }, 'jepsen: network namespaces ready');
    return net;
  }

  namespaceOf(node: NodeName): string {
    const ns = this.nsByNode.get(node);
    if (ns === undefined) throw new JepsenError(JepsenErrorCode.NetnsCommandFailed, `unknown node ${node}`, { node });
    return ns;
  }

  /** The node's address on the private bridge: bind its listeners here, and dial peers here. */
  addressOf(node: NodeName): string {
    this.namespaceOf(node);
    return this.ipByNode.get(node)!;
  }

  /** Starts a process inside the node's namespace (`ip netns exec` execs it: the pid is the command's). */
  spawnIn(node: NodeName, command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
    invariant(!this.closed, 'spawnIn after close');
    return spawn('ip', ['netns', 'exec', this.namespaceOf(node), command, ...args], options);
  }

  /** Starts a process in the hub namespace (address NETNS_CONTROL_ADDRESS), which reaches every node and is never cut. */
  spawnInControl(command: string, args: readonly string[], options: SpawnOptions = {}): ChildProcess {
    invariant(!this.closed, 'spawnInControl after close');
    return spawn('ip', ['netns', 'exec', this.hub, command, ...args], options);
  }

  async cut(cuts: readonly Cut[]): Promise<void> {
    for (const c of cuts) {
      const key = `${c.from}\u0000${c.to}`;
      if (this.routes.has(key)) continue;
      await ip(['-n', this.namespaceOf(c.from), 'route', 'add', 'blackhole', `${this.addressOf(c.to)}/32`]);
      this.routes.add(key);
    }
    this.log.debug({ cuts: cuts.length }, 'netns: cut');
  }

  async heal(): Promise<void> {
    for (const key of [...this.routes]) {
      const [from, to] = key.split('\u0000');
      await ip(['-n', this.namespaceOf(from), 'route', 'del', 'blackhole', `${this.addressOf(to)}/32`]);
      this.routes.delete(key);
    }
    this.log.debug({}, 'netns: healed');
  }

  /** Deletes every namespace of this run (their veths and routes go with them). Never throws. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const ns of [...this.created].reverse()) {
      try {
        await ip(['netns', 'del', ns]);
      } catch (err) {
        this.log.warn(
          { ns, err: (err as Error).message },
          'jepsen: could not delete a namespace (cleanupStaleNamespaces will)',
        );
      }
    }
    this.created.length = 0;
    this.routes.clear();
    this.log.info({ runId: this.runId }, 'jepsen: network namespaces removed');
  }

  private async addNs(name: string): Promise<void> {
    await ip(['netns', 'add', name]);
    this.created.push(name);
    await ip(['-n', name, 'link', 'set', 'lo', 'up']);
  }

  private async build(): Promise<void> {
    await this.addNs(this.hub);
    await ip(['-n', this.hub, 'link', 'add', 'br0', 'type', 'bridge']);
    await ip(['-n', this.hub, 'addr', 'add', `${NETNS_CONTROL_ADDRESS}/24`, 'dev', 'br0']);
    await ip(['-n', this.hub, 'link', 'set', 'br0', 'up']);
    for (let i = 0; i < this.nodes.length; i++) {
      const node = this.nodes[i];
      const ns = this.namespaceOf(node);
      await this.addNs(ns);
      // Both veth ends are created inside our namespaces: the root namespace is never touched.
      await ip(['-n', this.hub, 'link', 'add', `v${i}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns]);
      await ip(['-n', this.hub, 'link', 'set', `v${i}`, 'master', 'br0']);
      await ip(['-n', this.hub, 'link', 'set', `v${i}`, 'up']);
      await ip(['-n', ns, 'addr', 'add', `${this.addressOf(node)}/24`, 'dev', 'eth0']);
      await ip(['-n', ns, 'link', 'set', 'eth0', 'up']);
    }
  }
}
