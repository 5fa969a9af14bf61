import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SeededRng } from '../../consensus/rng.js';
import {
  ALL_FAULTS,
  ChildProcessController,
  NemesisRunner,
  bidirectionalView,
  bridge,
  generateSchedule,
  halves,
  heardBy,
  isolateNode,
  majority,
  majorityRing,
  type NemesisEvent,
} from '../../node/jepsen/nemesis.js';
import { ProxyNetwork } from '../../node/jepsen/proxy-network.js';
import { HistoryRecorder, MemoryHistorySink, nemesisIntervals, parseHistory } from '../../node/jepsen/history.js';

const names = (n: number) => Array.from({ length: n }, (_, i) => `n${i + 1}`);

describe('partition shapes', () => {
  for (const n of [3, 5, 7]) {
    it(`majority ring over ${n} nodes: every node hears a majority, and no two hear the same majority`, () => {
      for (let seed = 1; seed <= 20; seed++) {
        const nodes = names(n);
        const cuts = majorityRing(nodes, new SeededRng(seed));
        const views = nodes.map((x) => [...heardBy(x, nodes, cuts)].sort().join(','));
        for (const v of views) expect(v.split(',').length).toBe(majority(n));
        expect(new Set(views).size).toBe(n);
      }
    });

    it(`bridge over ${n} nodes: exactly one node talks to both sides, the sides do not talk`, () => {
      for (let seed = 1; seed <= 20; seed++) {
        const nodes = names(n);
        const cuts = bridge(nodes, new SeededRng(seed));
        const full = nodes.filter((x) => bidirectionalView(x, nodes, cuts).size === n);
        expect(full.length).toBe(1);
        const others = nodes.filter((x) => x !== full[0]);
        // Every other node sees the bridge, and a strict minority plus the bridge: no side has everyone.
        for (const x of others) {
          const v = bidirectionalView(x, nodes, cuts);
          expect(v.has(full[0])).toBe(true);
          expect(v.size).toBeLessThan(n);
        }
      }
    });

    it(`halves over ${n} nodes: a minority and a majority with every crossing pair cut both ways`, () => {
      const nodes = names(n);
      const cuts = halves(nodes, new SeededRng(9));
      const sizes = nodes.map((x) => bidirectionalView(x, nodes, cuts).size).sort();
      expect(sizes[0]).toBe(Math.floor(n / 2));
      expect(sizes[n - 1]).toBe(n - Math.floor(n / 2));
      expect(cuts.length).toBe(2 * Math.floor(n / 2) * (n - Math.floor(n / 2)));
    });
  }

  it('isolate: the node hears nobody and nobody hears it', () => {
    const nodes = names(5);
    const cuts = isolateNode(nodes, 'n3');
    expect([...bidirectionalView('n3', nodes, cuts)]).toEqual(['n3']);
    expect(bidirectionalView('n1', nodes, cuts).size).toBe(4);
  });

  it('shapes refuse degenerate input', () => {
    expect(() => majorityRing(['a', 'b'], new SeededRng(1))).toThrow();
    expect(() => halves(['a', 'a', 'b'], new SeededRng(1))).toThrow();
    expect(() => isolateNode(['a', 'b'], 'z')).toThrow();
  });
});

describe('fault schedule', () => {
  const opts = { seed: 11, nodes: names(5), durationMs: 120_000, faults: ALL_FAULTS };

  it('is the same for the same seed and differs for another', () => {
    expect(generateSchedule(opts)).toEqual(generateSchedule(opts));
    expect(generateSchedule({ ...opts, seed: 12 })).not.toEqual(generateSchedule(opts));
  });

  it('pairs every fault with its undo, in time order, all before the end, killing or pausing only minorities', () => {
    for (let seed = 1; seed <= 30; seed++) {
      const s = generateSchedule({ ...opts, seed });
      expect(s.length).toBeGreaterThan(0);
      const open = new Map<string, number>();
      let last = 0;
      for (const e of s) {
        expect(e.atMs).toBeGreaterThanOrEqual(last);
        expect(e.atMs).toBeLessThan(opts.durationMs);
        last = e.atMs;
        const a = e.action;
        const bump = (k: string, d: number) => open.set(k, (open.get(k) ?? 0) + d);
        if (a.kind === 'start-partition') bump('partition', 1);
        if (a.kind === 'stop-partition') bump('partition', -1);
        if (a.kind === 'kill' || a.kind === 'pause') {
          expect(a.nodes.length).toBeLessThan(majority(5));
          bump(a.kind, 1);
        }
        if (a.kind === 'restart') bump('kill', -1);
        if (a.kind === 'resume') bump('pause', -1);
        if (a.kind === 'remove-member') bump('membership', 1);
        if (a.kind === 'add-member') bump('membership', -1);
        for (const v of open.values()) expect(v).toBeGreaterThanOrEqual(0);
      }
      for (const v of open.values()) expect(v).toBe(0);
    }
  });

  it('uses only the fault kinds asked for, and runs membership changes during a partition', () => {
    const only = generateSchedule({ ...opts, faults: ['pause'] });
    expect(new Set(only.map((e) => e.action.kind))).toEqual(new Set(['pause', 'resume']));
    const mem = generateSchedule({ ...opts, faults: ['membership', 'partition'], seed: 5 });
    const i = mem.findIndex((e) => e.action.kind === 'remove-member');
    expect(i).toBeGreaterThan(0);
    expect(mem[i - 1].action.kind).toBe('start-partition');
  });
});

const SLEEPER = 'setInterval(() => {}, 1000)';
const procState = (pid: number): string => readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1][0];

describe('ChildProcessController (real processes and signals)', () => {
  it('SIGSTOP freezes, SIGCONT wakes, SIGKILL kills, restart spawns a new process', async () => {
    const pc = new ChildProcessController(() => spawn(process.execPath, ['-e', SLEEPER], { stdio: 'ignore' }));
    try {
      pc.start('n1');
      const pid = pc.pid('n1')!;
      await pc.pause('n1');
      await expect.poll(() => procState(pid)).toBe('T');
      await pc.resume('n1');
      await expect.poll(() => procState(pid)).not.toBe('T');
      await expect(pc.restart('n1')).rejects.toThrow(/still running/);
      await pc.kill('n1');
      expect(pc.isRunning('n1')).toBe(false);
      await pc.restart('n1');
      expect(pc.isRunning('n1')).toBe(true);
      expect(pc.pid('n1')).not.toBe(pid);
      // A paused process is still killed by stopAll.
      await pc.pause('n1');
      await pc.stopAll();
      expect(pc.isRunning('n1')).toBe(false);
    } finally {
      await pc.stopAll();
    }
  });
});

describe('NemesisRunner', () => {
  it('applies a schedule to a real proxy and real processes, records nemesis intervals, and heals everything', async () => {
    const nodes = ['n1', 'n2', 'n3'];
    const net = await ProxyNetwork.start({
      nodes,
      targets: Object.fromEntries(nodes.map((n) => [n, { host: '127.0.0.1', port: 1 }])),
    });
    const pc = new ChildProcessController(() => spawn(process.execPath, ['-e', SLEEPER], { stdio: 'ignore' }));
    for (const n of nodes) pc.start(n);
    const sink = new MemoryHistorySink();
    const recorder = new HistoryRecorder({ sink });
    const membership = {
      removed: new Set<string>(),
      async remove(n: string) {
        this.removed.add(n);
      },
      async add(n: string) {
        this.removed.delete(n);
      },
    };
    const runner = new NemesisRunner({
      nodes,
      network: net,
      processes: pc,
      membership,
      recorder,
      leader: async () => 'n2',
    });
    const schedule: NemesisEvent[] = [
      { atMs: 0, action: { kind: 'start-partition', shape: 'isolate-leader' } },
      { atMs: 20, action: { kind: 'kill', nodes: ['n1'] } },
      { atMs: 40, action: { kind: 'pause', nodes: ['n3'] } },
      { atMs: 60, action: { kind: 'remove-member', node: 'n1' } },
    ];
    try {
      await runner.run(schedule);
      expect(net.isCut('n2', 'n1')).toBe(true);
      expect(net.isCut('n1', 'n3')).toBe(false);
      expect(pc.isRunning('n1')).toBe(false);
      await expect.poll(() => procState(pc.pid('n3')!)).toBe('T');
      expect(membership.removed.has('n1')).toBe(true);
      await runner.healAll();
      expect(net.isCut('n2', 'n1')).toBe(false);
      expect(pc.isRunning('n1')).toBe(true);
      await expect.poll(() => procState(pc.pid('n3')!)).not.toBe('T');
      expect(membership.removed.size).toBe(0);
      await recorder.close();
      const intervals = nemesisIntervals(parseHistory(sink.text()));
      expect(intervals.map((i) => i.fault).sort()).toEqual(['kill', 'membership', 'partition', 'pause']);
      expect(intervals.every((i) => i.stopNs !== undefined)).toBe(true);
      const partition = intervals.find((i) => i.fault === 'partition')!;
      expect((partition.value as { shape: string }).shape).toBe('isolate-leader');
    } finally {
      await pc.stopAll();
      await net.close();
    }
  });
});
