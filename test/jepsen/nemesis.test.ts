import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { SeededRng } from '../../consensus/rng.js';
import { DEFAULT_RAFT_TUNING } from '../../node/config.js';
import {
  ALL_FAULTS,
  ChildProcessController,
  DEFAULT_FAULT_DURATION_MS,
  DEFAULT_QUIET_MS,
  MIN_FAULT_MS,
  MIN_MEMBERSHIP_FAULT_MS,
  MIN_QUIET_MS,
  NemesisRunner,
  ScheduleTooShortError,
  minFaultMs,
  minimumDurationMs,
  minimumRunTimeS,
  scheduledFaults,
  type FaultKind,
  bidirectionalView,
  bridge,
  generateSchedule,
  type ScheduleOptions,
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

/** One fault of a schedule, rebuilt from its events: its kind and when it starts and stops. */
interface PlacedFault {
  readonly kind: FaultKind;
  readonly startMs: number;
  readonly stopMs: number;
}

/**
 * Reads a schedule back as faults, and pushes to `problems` whatever does not pair up. A membership
 * change during a partition is start-partition at t, remove-member at t+1, add-member, stop-partition:
 * one membership fault until the stop; without a partition the fault is the removal, until the add.
 * Faults never overlap, so each start is closed by the next stop of its kind.
 */
function placedFaults(schedule: readonly NemesisEvent[], problems: string[]): PlacedFault[] {
  const out: PlacedFault[] = [];
  let open: { kind: FaultKind; startMs: number } | undefined;
  for (let i = 0; i < schedule.length; i++) {
    const { atMs, action } = schedule[i];
    const start = (kind: FaultKind): void => {
      if (open !== undefined) problems.push(`a ${kind} fault starts at ${atMs} ms while a ${open.kind} is in force`);
      open = { kind, startMs: atMs };
    };
    const stop = (kind: FaultKind): void => {
      if (open?.kind !== kind)
        problems.push(`a ${kind} fault stops at ${atMs} ms, but ${open?.kind ?? 'none'} is open`);
      else out.push({ kind, startMs: open.startMs, stopMs: atMs });
      open = undefined;
    };
    switch (action.kind) {
      case 'start-partition':
        start(schedule[i + 1]?.action.kind === 'remove-member' ? 'membership' : 'partition');
        break;
      case 'stop-partition':
        stop(open?.kind === 'membership' ? 'membership' : 'partition');
        break;
      case 'kill':
        start('kill');
        break;
      case 'restart':
        stop('kill');
        break;
      case 'pause':
        start('pause');
        break;
      case 'resume':
        stop('pause');
        break;
      case 'remove-member':
        if (open?.kind !== 'membership') start('membership');
        break;
      case 'add-member':
        if (open?.kind !== 'membership') problems.push(`add-member at ${atMs} ms outside a membership fault`);
        else if (schedule[i + 1]?.action.kind !== 'stop-partition') stop('membership');
        break;
    }
  }
  if (open !== undefined) problems.push(`a ${open.kind} fault is never stopped`);
  return out;
}

/** The shortest a placed fault may be: a membership fault without a partition is its removal, half of it. */
function minPlacedMs(f: PlacedFault, kinds: readonly FaultKind[]): number {
  return f.kind === 'membership' && !kinds.includes('partition') ? minFaultMs(f.kind) / 2 : minFaultMs(f.kind);
}

/** Every non-empty subset of the fault kinds. */
const KIND_SETS: FaultKind[][] = Array.from({ length: 2 ** ALL_FAULTS.length - 1 }, (_, m) =>
  ALL_FAULTS.filter((_, i) => ((m + 1) >> i) & 1),
);

describe('fault schedule fitted to the run', () => {
  it('has documented minimums: a fault outlasts the longest election timeout, and the minimum run is their sum', () => {
    const longestElectionMs = 2 * DEFAULT_RAFT_TUNING.electionTicks * DEFAULT_RAFT_TUNING.tickMs;
    expect(MIN_FAULT_MS).toBeGreaterThan(longestElectionMs);
    expect(MIN_MEMBERSHIP_FAULT_MS).toBe(2 * MIN_FAULT_MS);
    expect(minimumDurationMs(['partition', 'kill'])).toBe(2 * MIN_FAULT_MS + 3 * MIN_QUIET_MS);
    expect(minimumDurationMs(ALL_FAULTS)).toBe(3 * MIN_FAULT_MS + MIN_MEMBERSHIP_FAULT_MS + 5 * MIN_QUIET_MS);
    expect(minimumDurationMs(['kill', 'kill'])).toBe(minimumDurationMs(['kill']));
    expect(minimumRunTimeS(['partition', 'kill'])).toBe(9);
    expect(minimumRunTimeS(ALL_FAULTS)).toBe(20);
  });

  it('property: for any seed, kinds and duration ≥ the minimum, every kind is in the first round and everything fits', () => {
    const pick = new SeededRng(2026);
    const problems: string[] = [];
    let schedules = 0;
    for (const kinds of KIND_SETS) {
      const minMs = minimumDurationMs(kinds);
      // The minimum itself, just above it, the 20 s, and random lengths up to 10 minutes.
      const durations = [minMs, minMs + 1, minMs + 999, 20_000, 60_000, 300_000];
      for (let k = 0; k < 6; k++) durations.push(minMs + pick.nextInt(600_000 - minMs));
      for (const durationMs of durations) {
        if (durationMs < minMs) continue;
        for (let seed = 0; seed < 30; seed++) {
          const ranges: Partial<ScheduleOptions> =
            seed % 4 === 3 ? { faultDurationMs: [2_000, 4_000], quietMs: [500, 2_000] } : {};
          const nodes = names(seed % 2 === 0 ? 3 : 5);
          const schedule = generateSchedule({ seed, nodes, durationMs, faults: kinds, ...ranges });
          schedules++;
          const ctx = `kinds ${kinds.join(',')}, ${durationMs} ms, seed ${seed}`;
          const check = (ok: boolean, what: string): void => {
            if (!ok) problems.push(`${ctx}: ${what}`);
          };
          const faults = placedFaults(schedule, problems);
          // Every requested kind in the first round (the first faults are a permutation), and no other kind.
          const firstRound = faults.slice(0, kinds.length).map((f) => f.kind);
          check(
            firstRound.length === kinds.length && kinds.every((k) => firstRound.includes(k)),
            `first round ${firstRound.join(',')}`,
          );
          check(
            faults.every((f) => kinds.includes(f.kind)),
            `unrequested kind in ${faults.map((f) => f.kind).join(',')}`,
          );
          // Inside the run, healed before the end, each fault at least its minimum, quiet around each.
          check(
            schedule.every((e, i) => e.atMs >= 0 && (i === 0 || e.atMs >= schedule[i - 1].atMs)),
            'events out of order',
          );
          let lastStop = 0;
          for (const f of faults) {
            check(f.startMs - lastStop >= MIN_QUIET_MS, `quiet of ${f.startMs - lastStop} ms before ${f.startMs}`);
            check(f.stopMs - f.startMs >= minPlacedMs(f, kinds), `${f.kind} of ${f.stopMs - f.startMs} ms`);
            lastStop = f.stopMs;
          }
          const lastEventMs = Math.max(...schedule.map((e) => e.atMs));
          check(durationMs - lastEventMs >= MIN_QUIET_MS, `last event at ${lastEventMs} ms`);
          // The tally the run prints agrees (a membership change during a partition counts both).
          const tally = scheduledFaults(schedule);
          check(
            kinds.every((k) => tally[k] >= 1),
            `tally ${JSON.stringify(tally)}`,
          );
        }
      }
    }
    expect(problems.slice(0, 10)).toEqual([]);
    expect(schedules).toBeGreaterThan(4_000);
  });

  it('refuses a run shorter than the minimum, with a typed error that names it', () => {
    for (const kinds of KIND_SETS) {
      const minMs = minimumDurationMs(kinds);
      const attempt = (): unknown =>
        generateSchedule({ seed: 1, nodes: names(3), durationMs: minMs - 1, faults: kinds });
      expect(attempt).toThrow(ScheduleTooShortError);
      expect(attempt).toThrow(new RegExp(`at least ${minMs} ms`));
    }
  });

  it('issue 9: --time 20 --nemesis partition,kill --seed 5 with the default lengths schedules both kinds', () => {
    const schedule = generateSchedule({ seed: 5, nodes: names(3), durationMs: 20_000, faults: ['partition', 'kill'] });
    const tally = scheduledFaults(schedule);
    expect(tally.partition).toBeGreaterThanOrEqual(1);
    expect(tally.kill).toBeGreaterThanOrEqual(1);
  });

  it('keeps the given lengths when the run is long enough, and scales them down (not below the minimums) when not', () => {
    const lengths = (durationMs: number, seed: number) => {
      const problems: string[] = [];
      const faults = placedFaults(
        generateSchedule({ seed, nodes: names(5), durationMs, faults: ALL_FAULTS }),
        problems,
      );
      expect(problems).toEqual([]);
      // The last fault may be cut short to end before the run does; the first round may be cut to fit.
      const later = faults.slice(ALL_FAULTS.length, -1);
      return { faults, later };
    };
    for (let seed = 1; seed <= 20; seed++) {
      // 4 kinds at their longest: 4 × 15 s + 5 × 8 s = 100 s, so a 600 s run is unscaled.
      const long = lengths(600_000, seed);
      expect(long.later.length).toBeGreaterThan(5);
      for (const f of long.later) {
        expect(f.stopMs - f.startMs).toBeGreaterThanOrEqual(Math.max(DEFAULT_FAULT_DURATION_MS[0], minFaultMs(f.kind)));
        expect(f.stopMs - f.startMs).toBeLessThanOrEqual(DEFAULT_FAULT_DURATION_MS[1]);
      }
      let quiet = long.faults[0].startMs;
      expect(quiet).toBeGreaterThanOrEqual(DEFAULT_QUIET_MS[0]);
      expect(quiet).toBeLessThanOrEqual(DEFAULT_QUIET_MS[1]);
      // A 25 s run is scaled by 0.25: faults of at most 3.75 s (membership: its 6 s minimum).
      const short = lengths(25_000, seed);
      for (const f of short.faults)
        expect(f.stopMs - f.startMs).toBeLessThanOrEqual(Math.max(3_750, minFaultMs(f.kind)));
      quiet = short.faults[0].startMs;
      expect(quiet).toBeLessThanOrEqual(Math.max(MIN_QUIET_MS, 2_000));
    }
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
      // Each start that took effect is counted once; undoing faults counts nothing.
      expect(runner.injected()).toEqual({ partition: 1, kill: 1, pause: 1, membership: 1 });
      await runner.healAll();
      expect(runner.injected()).toEqual({ partition: 1, kill: 1, pause: 1, membership: 1 });
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

describe('NemesisRunner.injected', () => {
  it('counts only faults that took effect: a kill of a node without a process, or a schedule cut short, counts nothing', async () => {
    const nodes = ['n1', 'n2', 'n3'];
    const net = await ProxyNetwork.start({
      nodes,
      targets: Object.fromEntries(nodes.map((n) => [n, { host: '127.0.0.1', port: 1 }])),
    });
    // A real process controller that was never given a process for n1: the kill is refused.
    const pc = new ChildProcessController(() => spawn(process.execPath, ['-e', SLEEPER], { stdio: 'ignore' }));
    const runner = new NemesisRunner({ nodes, network: net, processes: pc });
    try {
      await expect(runner.apply({ kind: 'kill', nodes: ['n1'] })).rejects.toThrow(/has no process/);
      expect(runner.injected().kill).toBe(0);
      // The run ends (abort) before the partition's time comes: it never takes effect.
      const abort = new AbortController();
      const done = runner.run(
        [{ atMs: 60_000, action: { kind: 'start-partition', shape: 'halves', cuts: halves(nodes, new SeededRng(1)) } }],
        abort.signal,
      );
      abort.abort();
      await done;
      expect(runner.injected()).toEqual({ partition: 0, kill: 0, pause: 0, membership: 0 });
      expect(net.isCut('n1', 'n2') || net.isCut('n2', 'n1') || net.isCut('n1', 'n3')).toBe(false);
    } finally {
      await pc.stopAll();
      await net.close();
    }
  });
});
