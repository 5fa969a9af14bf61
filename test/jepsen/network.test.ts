// One compliance suite for NetworkController, run against the TCP proxy (always) and network
// namespaces (when root and `ip netns` work here), plus tests specific to each.

import { readFileSync } from 'node:fs';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cutBetween, type Cut, type NetworkController, type NodeName } from '../../node/jepsen/nemesis.js';
import { ProxyNetwork } from '../../node/jepsen/proxy-network.js';
import {
  NETNS_CONTROL_ADDRESS,
  NetnsNetwork,
  cleanupStaleNamespaces,
  detectNetns,
  ip,
  listOwnNamespaces,
} from '../../node/jepsen/netns-network.js';
import { chooseNetworkKind } from '../../node/jepsen/network.js';
import { NetAgent } from './net-agent.js';

const NODES: NodeName[] = ['a', 'b', 'c'];
/** A probe expected to fail waits this long; one expected to pass gets much longer (never flaky). */
const UNREACHABLE_WAIT_MS = 400;
const REACHABLE_WAIT_MS = 5_000;

interface Harness {
  readonly controller: NetworkController;
  canReach(from: NodeName, to: NodeName, expectReachable: boolean): Promise<boolean>;
  close(): Promise<void>;
}

async function proxyHarness(): Promise<Harness> {
  const agents = new Map<NodeName, NetAgent>();
  for (const n of NODES) agents.set(n, await NetAgent.start('127.0.0.1', 0));
  const proxy = await ProxyNetwork.start({
    nodes: NODES,
    targets: Object.fromEntries(NODES.map((n) => [n, { host: '127.0.0.1', port: agents.get(n)!.port }])),
  });
  return {
    controller: proxy,
    canReach: (from, to, expectReachable) => {
      const t = proxy.addressFor(from, to);
      return agents.get(from)!.probe(t.host, t.port, expectReachable ? REACHABLE_WAIT_MS : UNREACHABLE_WAIT_MS);
    },
    close: async () => {
      await proxy.close();
      for (const a of agents.values()) await a.stop();
    },
  };
}

async function netnsHarness(): Promise<Harness> {
  const net = await NetnsNetwork.create({ nodes: NODES });
  const agents = new Map<NodeName, NetAgent>();
  try {
    for (const n of NODES) {
      agents.set(
        n,
        await NetAgent.start(net.addressOf(n), 7000, (argv) =>
          net.spawnIn(n, argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] }),
        ),
      );
    }
  } catch (err) {
    for (const a of agents.values()) await a.stop();
    await net.close();
    throw err;
  }
  return {
    controller: net,
    canReach: (from, to, expectReachable) =>
      agents.get(from)!.probe(net.addressOf(to), 7000, expectReachable ? REACHABLE_WAIT_MS : UNREACHABLE_WAIT_MS),
    close: async () => {
      for (const a of agents.values()) await a.stop();
      await net.close();
    },
  };
}

const netns = await detectNetns();
const implementations: Array<[string, () => Promise<Harness>, string | undefined]> = [
  ['ProxyNetwork', proxyHarness, undefined],
  ['NetnsNetwork', netnsHarness, netns.available ? undefined : netns.reason],
];

async function reachability(h: Harness, expected: (from: NodeName, to: NodeName) => boolean): Promise<void> {
  for (const from of NODES) {
    for (const to of NODES) {
      if (from === to) continue;
      const want = expected(from, to);
      expect({ from, to, reachable: await h.canReach(from, to, want) }).toEqual({ from, to, reachable: want });
    }
  }
}

for (const [name, make, skipReason] of implementations) {
  describe.skipIf(skipReason !== undefined)(
    `NetworkController compliance: ${name}${skipReason ? ` (skipped: ${skipReason})` : ''}`,
    () => {
      let h: Harness;
      beforeAll(async () => {
        h = await make();
      });
      afterAll(async () => {
        await h?.close();
      });

      it('every node reaches every other before any fault', async () => {
        await reachability(h, () => true);
      });

      it('halves: no connection crosses the cut; each side still talks; heal restores all', async () => {
        await h.controller.cut(cutBetween(['a'], ['b', 'c']));
        await reachability(h, (f, t) => (f === 'a') === (t === 'a'));
        await h.controller.heal();
        await reachability(h, () => true);
      });

      it('a one-way cut stops new TCP connections both ways (a handshake needs both directions)', async () => {
        const cut: Cut[] = [{ from: 'a', to: 'b' }];
        await h.controller.cut(cut);
        await h.controller.cut(cut); // idempotent
        await reachability(h, (f, t) => !((f === 'a' && t === 'b') || (f === 'b' && t === 'a')));
        await h.controller.heal();
        await h.controller.heal();
        await reachability(h, () => true);
      });
    },
  );
}

describe('ProxyNetwork specifics (real sockets on 127.0.0.1)', () => {
  let servers: Server[] = [];
  const received = new Map<NodeName, string>();
  const serverSockets = new Map<NodeName, Socket>();
  let proxy: ProxyNetwork;

  beforeAll(async () => {
    const targets: Record<string, { host: string; port: number }> = {};
    for (const n of NODES) {
      received.set(n, '');
      const s = createServer((sock) => {
        serverSockets.set(n, sock);
        sock.on('data', (d) => received.set(n, received.get(n)! + d.toString()));
        sock.on('error', () => {});
      });
      await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
      servers.push(s);
      targets[n] = { host: '127.0.0.1', port: (s.address() as { port: number }).port };
    }
    proxy = await ProxyNetwork.start({ nodes: NODES, targets });
  });
  afterAll(async () => {
    await proxy.close();
    for (const s of servers) await new Promise((r) => s.close(r));
    servers = [];
  });

  const dial = async (from: NodeName, to: NodeName): Promise<{ sock: Socket; got: () => string }> => {
    const t = proxy.addressFor(from, to);
    const sock = connect(t.port, t.host);
    let got = '';
    sock.on('data', (d) => (got += d.toString()));
    sock.on('error', () => {});
    await new Promise((r) => sock.once('connect', r));
    return { sock, got: () => got };
  };
  const until = async (cond: () => boolean, timeoutMs = 5_000): Promise<boolean> => {
    const end = performance.now() + timeoutMs;
    while (!cond()) {
      if (performance.now() > end) return false;
      await new Promise((r) => setTimeout(r, 5));
    }
    return true;
  };
  const settle = (ms: number) => new Promise((r) => setTimeout(r, ms));

  it('holds bytes on an established connection during a cut and delivers them, in order, after the heal; the other direction keeps flowing', async () => {
    received.set('b', '');
    const { sock, got } = await dial('a', 'b');
    sock.write('before;');
    expect(await until(() => received.get('b') === 'before;')).toBe(true);
    await proxy.cut([{ from: 'a', to: 'b' }]);
    sock.write('during1;');
    sock.write('during2;');
    serverSockets.get('b')!.write('reply-during-cut');
    expect(await until(() => got() === 'reply-during-cut')).toBe(true); // b -> a is not cut
    await settle(200);
    expect(received.get('b')).toBe('before;');
    await proxy.heal();
    expect(await until(() => received.get('b') === 'before;during1;during2;')).toBe(true);
    sock.destroy();
  });

  it('delays one direction by the requested time, keeping order', async () => {
    received.set('c', '');
    const { sock } = await dial('a', 'c');
    await proxy.delay('a', 'c', 150);
    const sent = performance.now();
    sock.write('x;');
    sock.write('y;');
    expect(await until(() => received.get('c') === 'x;y;')).toBe(true);
    expect(performance.now() - sent).toBeGreaterThanOrEqual(140);
    await proxy.heal();
    sock.destroy();
  });

  it('reset mode closes affected connections at the cut', async () => {
    const targets = Object.fromEntries(
      NODES.map((n, i) => [n, { host: '127.0.0.1', port: (servers[i].address() as { port: number }).port }]),
    );
    const reset = await ProxyNetwork.start({ nodes: NODES, targets, mode: 'reset' });
    try {
      const t = reset.addressFor('b', 'c');
      const sock = connect(t.port, t.host);
      sock.on('error', () => {});
      await new Promise((r) => sock.once('connect', r));
      expect(await until(() => reset.connectionCount() === 1)).toBe(true);
      const closed = new Promise((r) => sock.once('close', r));
      await reset.cut(cutBetween(['b'], ['c']));
      await closed;
      expect(reset.connectionCount()).toBe(0);
    } finally {
      await reset.close();
    }
  });

  it('a connection to a node that is down closes at once (like a refused connection)', async () => {
    const dead = createServer();
    await new Promise<void>((r) => dead.listen(0, '127.0.0.1', () => r()));
    const port = (dead.address() as { port: number }).port;
    await new Promise((r) => dead.close(r));
    const p = await ProxyNetwork.start({
      nodes: ['x', 'y'],
      targets: { x: { host: '127.0.0.1', port }, y: { host: '127.0.0.1', port } },
    });
    try {
      const t = p.addressFor('x', 'y');
      const sock = connect(t.port, t.host);
      sock.on('error', () => {});
      await new Promise((r) => sock.once('close', r));
    } finally {
      await p.close();
    }
  });
});

describe.skipIf(!netns.available)(
  `NetnsNetwork specifics${netns.available ? '' : ` (skipped: ${netns.reason})`}`,
  () => {
    it('removes all its namespaces on close, and a failed build leaves nothing behind', async () => {
      const net = await NetnsNetwork.create({ nodes: ['p', 'q'] });
      const mine = (await listOwnNamespaces()).filter((n) => n.startsWith(net.runId + '-'));
      expect(mine.sort()).toEqual([`${net.runId}-0`, `${net.runId}-1`, `${net.runId}-hub`]);
      await net.close();
      expect((await listOwnNamespaces()).filter((n) => n.startsWith(net.runId + '-'))).toEqual([]);
      // Make the next build fail half-way: run ids count up, so the next run's second node namespace
      // can be taken in advance. Whatever that build created (hub, first node) must be gone after.
      const seq = Number(/x(\d+)$/.exec(net.runId)![1]);
      const blocker = net.runId.replace(/x\d+$/, `x${seq + 1}`) + '-1';
      await ip(['netns', 'add', blocker]);
      try {
        const before = await listOwnNamespaces();
        await expect(NetnsNetwork.create({ nodes: ['p', 'q', 'r'] })).rejects.toThrow(/netns add/);
        expect((await listOwnNamespaces()).sort()).toEqual(before.sort());
      } finally {
        await ip(['netns', 'del', blocker]);
      }
    });

    it('runs node processes inside their namespace (the pid is the command), and the control namespace reaches every node through any partition', async () => {
      const net = await NetnsNetwork.create({ nodes: ['p', 'q'] });
      const agents: NetAgent[] = [];
      try {
        const sleeper = net.spawnIn('p', 'sleep', ['30'], { stdio: 'ignore' });
        await expect.poll(() => readFileSync(`/proc/${sleeper.pid}/comm`, 'utf8').trim()).toBe('sleep');
        sleeper.kill('SIGKILL');
        for (const n of ['p', 'q'])
          agents.push(
            await NetAgent.start(net.addressOf(n), 7000, (argv) =>
              net.spawnIn(n, argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] }),
            ),
          );
        const control = await NetAgent.start(NETNS_CONTROL_ADDRESS, 7001, (argv) =>
          net.spawnInControl(argv[0], argv.slice(1), { stdio: ['pipe', 'pipe', 'inherit'] }),
        );
        agents.push(control);
        await net.cut(cutBetween(['p'], ['q']));
        expect(await agents[0].probe(net.addressOf('q'), 7000, UNREACHABLE_WAIT_MS)).toBe(false);
        expect(await control.probe(net.addressOf('p'), 7000, REACHABLE_WAIT_MS)).toBe(true);
        expect(await control.probe(net.addressOf('q'), 7000, REACHABLE_WAIT_MS)).toBe(true);
        // A node cannot reach a service on the root namespace's loopback: nothing leaks out of the run.
        const rootEcho = createServer((sock) => sock.pipe(sock));
        await new Promise<void>((r) => rootEcho.listen(0, '127.0.0.1', () => r()));
        try {
          const rootPort = (rootEcho.address() as { port: number }).port;
          expect(await agents[0].probe('127.0.0.1', rootPort, UNREACHABLE_WAIT_MS)).toBe(false);
        } finally {
          await new Promise((r) => rootEcho.close(r));
        }
      } finally {
        for (const a of agents) await a.stop();
        await net.close();
      }
    });

    it('cleans up namespaces left by a dead run, and only those', async () => {
      const { spawnSync } = await import('node:child_process');
      const deadPid = spawnSync(process.execPath, [
        '-e',
        'process.stdout.write(String(process.pid))',
      ]).stdout.toString();
      const stale = `qrt-j${deadPid}x0-hub`;
      await ip(['netns', 'add', stale]);
      const live = await NetnsNetwork.create({ nodes: ['p'] });
      try {
        const deleted = await cleanupStaleNamespaces();
        expect(deleted).toContain(stale);
        const left = await listOwnNamespaces();
        expect(left).not.toContain(stale);
        expect(left).toContain(`${live.runId}-hub`);
      } finally {
        await live.close();
      }
    });
  },
);

describe('choosing the network fault injector', () => {
  it('logs the choice, and honours an explicit proxy', async () => {
    const lines: string[] = [];
    const log = { info: (_o: object, m?: string) => lines.push(m ?? ''), warn() {}, debug() {} };
    expect(await chooseNetworkKind('proxy', log)).toBe('proxy');
    const kind = await chooseNetworkKind('auto', log);
    expect(kind).toBe(netns.available ? 'netns' : 'proxy');
    expect(lines.length).toBe(2);
    expect(lines[1]).toMatch(netns.available ? /network namespaces/ : /falling back to the TCP fault proxy/);
  });
});
