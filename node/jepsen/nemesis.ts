// The nemesis: faults at the network and process level, never by flags inside the node.
//
//  - Partition shapes are pure functions over node names that return the set of directed cuts
//    ("packets from `from` to `to` are dropped"), after Jepsen's nemesis.combined grudges.
//  - A schedule of faults is drawn from one seed (consensus/rng.ts), so a failing run is reproduced
//    with `--seed S`. Shapes that depend on the cluster (the current leader) are resolved when run.
//    The schedule is fitted to the run's length: one fault of every requested kind first, lengths
//    scaled down to named minimums; a run too short for that is refused (minimumDurationMs).
//  - A runner applies a schedule through three interfaces — NetworkController (proxy or network
//    namespaces), ProcessController (SIGKILL/restart, SIGSTOP/SIGCONT) and MembershipController —
//    records every fault in the history as nemesis lines, counts the faults that took effect (the
//    verdict needs every requested kind), and heals everything at the end.

import { sleep } from './sleep.js';
import type { ChildProcess } from 'node:child_process';
import { SeededRng } from '../../consensus/rng.js';
import { JepsenError, JepsenErrorCode, invariant, silentLogger, type JepsenLogger } from './errors.js';
import type { HistoryRecorder } from './history.js';
import { harnessClock as clock } from './clock.js';

export type NodeName = string;

/** Packets sent by `from` never reach `to`. A symmetric partition has both directions. */
export interface Cut {
  readonly from: NodeName;
  readonly to: NodeName;
}

/** The minimal rng the shapes need; `SeededRng` is one. */
export interface ShapeRng {
  nextInt(maxExclusive: number): number;
}

function checkNodes(nodes: readonly NodeName[]): void {
  invariant(nodes.length >= 2, `a partition needs at least two nodes, got ${nodes.length}`);
  invariant(new Set(nodes).size === nodes.length, () => `node names must be distinct: ${nodes.join(',')}`);
}

export function majority(n: number): number {
  return Math.floor(n / 2) + 1;
}

/** Fisher–Yates with the given rng (a copy; the input is not changed). */
export function shuffled<T>(items: readonly T[], rng: ShapeRng): T[] {
  const a = [...items];
  for (let i = a.length - 1; i > 0; i--) {
    const j = rng.nextInt(i + 1);
    [a[i], a[j]] = [a[j], a[i]];
  }
  return a;
}

/** Cuts every pair across two groups, both directions. */
export function cutBetween(groupA: readonly NodeName[], groupB: readonly NodeName[]): Cut[] {
  const cuts: Cut[] = [];
  for (const a of groupA) {
    for (const b of groupB) {
      cuts.push({ from: a, to: b }, { from: b, to: a });
    }
  }
  return cuts;
}

/** Two halves at random: a minority of floor(n/2) nodes and the majority. */
export function halves(nodes: readonly NodeName[], rng: ShapeRng): Cut[] {
  checkNodes(nodes);
  const s = shuffled(nodes, rng);
  const k = Math.floor(nodes.length / 2);
  return cutBetween(s.slice(0, k), s.slice(k));
}

/** One node alone (use it with the current leader for "isolated leader"). */
export function isolateNode(nodes: readonly NodeName[], target: NodeName): Cut[] {
  checkNodes(nodes);
  invariant(nodes.includes(target), `isolate: ${target} is not one of ${nodes.join(',')}`);
  return cutBetween(
    [target],
    nodes.filter((n) => n !== target),
  );
}

/**
 * Jepsen's majorities ring: every node hears from a majority, but no two nodes hear from the same
 * majority. Nodes are put on a ring; node i hears from the majority-sized window centred on it and
 * drops packets from everyone else. With 5 nodes the cuts are symmetric (a 5-cycle); with 3 nodes a
 * symmetric version cannot exist (each node would need exactly one neighbour), so the cuts are
 * one-way — which is why cuts are directed.
 */
export function majorityRing(nodes: readonly NodeName[], rng: ShapeRng): Cut[] {
  checkNodes(nodes);
  invariant(nodes.length >= 3, 'a majority ring needs at least three nodes');
  const ring = shuffled(nodes, rng);
  const n = ring.length;
  const m = majority(n);
  const cuts: Cut[] = [];
  for (let start = 0; start < n; start++) {
    const window = Array.from({ length: m }, (_, k) => ring[(start + k) % n]);
    const centre = window[Math.floor(m / 2)];
    for (const other of ring) {
      if (!window.includes(other)) cuts.push({ from: other, to: centre });
    }
  }
  return cuts;
}

/**
 * Two sides with one bridge node that talks to both (Jepsen's `bridge`): the nodes are split into
 * floor(n/2) and the rest, the bridge is taken from the larger side, and the rest of the sides are
 * cut from each other. With 5 nodes: {a,b} | c | {d,e}; with 3: {a} | b | {c}.
 */
export function bridge(nodes: readonly NodeName[], rng: ShapeRng): Cut[] {
  checkNodes(nodes);
  invariant(nodes.length >= 3, 'a bridge needs at least three nodes');
  const s = shuffled(nodes, rng);
  const k = Math.floor(nodes.length / 2);
  const left = s.slice(0, k);
  const right = s.slice(k + 1); // s[k] is the bridge
  return cutBetween(left, right);
}

/** The nodes whose packets reach `node` (itself included) under `cuts`. */
export function heardBy(node: NodeName, nodes: readonly NodeName[], cuts: readonly Cut[]): Set<NodeName> {
  const dropped = new Set(cuts.filter((c) => c.to === node).map((c) => c.from));
  return new Set(nodes.filter((n) => n === node || !dropped.has(n)));
}

/** The nodes `node` can talk to both ways (itself included). */
export function bidirectionalView(node: NodeName, nodes: readonly NodeName[], cuts: readonly Cut[]): Set<NodeName> {
  const key = (c: Cut): string => `${c.from}\u0000${c.to}`;
  const cut = new Set(cuts.map(key));
  return new Set(
    nodes.filter((n) => n === node || (!cut.has(key({ from: node, to: n })) && !cut.has(key({ from: n, to: node })))),
  );
}

// ---------------------------------------------------------------------------------------------
// Schedule
// ---------------------------------------------------------------------------------------------

export type FaultKind = 'partition' | 'kill' | 'pause' | 'membership';
export const ALL_FAULTS: readonly FaultKind[] = ['partition', 'kill', 'pause', 'membership'];
export type PartitionShape = 'halves' | 'isolate-node' | 'isolate-leader' | 'majority-ring' | 'bridge';
export const ALL_SHAPES: readonly PartitionShape[] = [
  'halves',
  'isolate-node',
  'isolate-leader',
  'majority-ring',
  'bridge',
];

export type NemesisAction =
  /** `cuts` is absent for isolate-leader: it is resolved against the leader when applied. */
  | { readonly kind: 'start-partition'; readonly shape: PartitionShape; readonly cuts?: readonly Cut[] }
  | { readonly kind: 'stop-partition' }
  | { readonly kind: 'kill'; readonly nodes: readonly NodeName[] }
  | { readonly kind: 'restart'; readonly nodes: readonly NodeName[] }
  | { readonly kind: 'pause'; readonly nodes: readonly NodeName[] }
  | { readonly kind: 'resume'; readonly nodes: readonly NodeName[] }
  | { readonly kind: 'remove-member'; readonly node: NodeName }
  | { readonly kind: 'add-member'; readonly node: NodeName };

export interface NemesisEvent {
  /** Milliseconds from the start of the run. */
  readonly atMs: number;
  readonly action: NemesisAction;
}

export interface ScheduleOptions {
  readonly seed: number;
  readonly nodes: readonly NodeName[];
  readonly durationMs: number;
  readonly faults: readonly FaultKind[];
  /**
   * How long one fault lasts, drawn uniformly from [min, max] (default DEFAULT_FAULT_DURATION_MS).
   * Scaled down for a short run and never below the kind's minimum (minFaultMs).
   */
  readonly faultDurationMs?: readonly [number, number];
  /** The quiet time before, between and after faults (default DEFAULT_QUIET_MS); scaled likewise, ≥ MIN_QUIET_MS. */
  readonly quietMs?: readonly [number, number];
}

/** Fault length of a long run: long enough for elections, catch-up and client retries to play out. */
export const DEFAULT_FAULT_DURATION_MS: readonly [number, number] = [5_000, 15_000];
/** Quiet time of a long run: the cluster settles, and each fault is its own interval in the history. */
export const DEFAULT_QUIET_MS: readonly [number, number] = [3_000, 8_000];
/**
 * The shortest partition, kill or pause: longer than the node's longest election timeout (2 s at the
 * default raft tuning: 10 ticks of 100 ms, randomised up to twice that), so a fault that cuts off or
 * stops the leader forces an election instead of passing unnoticed between two heartbeats.
 */
export const MIN_FAULT_MS = 3_000;
/**
 * The shortest membership fault: a member is removed at its start and a fresh node added at its
 * middle, so each half gets MIN_FAULT_MS.
 */
export const MIN_MEMBERSHIP_FAULT_MS = 2 * MIN_FAULT_MS;
/**
 * The shortest quiet before, between and after faults: faults stay separate intervals in the history,
 * and the last one is healed before the clients stop. (The cluster need not recover in between; the
 * final heal and the recovery check cover liveness.)
 */
export const MIN_QUIET_MS = 1_000;

/** The shortest fault of a kind the scheduler will place. */
export function minFaultMs(kind: FaultKind): number {
  return kind === 'membership' ? MIN_MEMBERSHIP_FAULT_MS : MIN_FAULT_MS;
}

/**
 * The shortest run in which one fault of every kind fits, each at its minimum length, with a minimum
 * quiet before, between and after them: quiet, fault, quiet, ..., fault, quiet.
 */
export function minimumDurationMs(faults: readonly FaultKind[]): number {
  const kinds = [...new Set(faults)];
  return kinds.reduce((sum, k) => sum + minFaultMs(k), 0) + (kinds.length + 1) * MIN_QUIET_MS;
}

/** `minimumDurationMs` in whole seconds, rounded up (what `--time` must be at least). */
export function minimumRunTimeS(faults: readonly FaultKind[]): number {
  return Math.ceil(minimumDurationMs(faults) / 1000);
}

/** Why `minimumDurationMs(faults)` is what it is, for error messages. */
export function minimumDurationReason(faults: readonly FaultKind[]): string {
  const kinds = [...new Set(faults)];
  const lengths = kinds.map((k) => `${k} ${minFaultMs(k) / 1000} s`).join(', ');
  return `one fault of each kind at its shortest (${lengths}) with ${MIN_QUIET_MS / 1000} s of quiet before, between and after them`;
}

/** A run too short for one fault of every requested kind: refused rather than run without faults. */
export class ScheduleTooShortError extends JepsenError {
  constructor(
    readonly faults: readonly FaultKind[],
    readonly durationMs: number,
  ) {
    super(
      JepsenErrorCode.Usage,
      `a run of ${durationMs} ms is too short for the nemeses ${faults.join(',')}: it needs at least ` +
        `${minimumDurationMs(faults)} ms, ${minimumDurationReason(faults)}`,
      { faults, durationMs, minimumDurationMs: minimumDurationMs(faults) },
    );
    this.name = 'ScheduleTooShortError';
  }
}

function between(rng: SeededRng, range: readonly [number, number]): number {
  const [lo, hi] = range;
  invariant(lo >= 0 && hi >= lo, `bad range [${lo}, ${hi}]`);
  return lo + rng.nextInt(hi - lo + 1);
}

/** `range` times `scale` (≤ 1), in whole ms, raised to at least `floorMs` at both ends. */
function scaled(range: readonly [number, number], scale: number, floorMs: number): [number, number] {
  const [lo, hi] = range;
  invariant(lo >= 0 && hi >= lo, `bad range [${lo}, ${hi}]`);
  const sLo = Math.max(floorMs, Math.floor(lo * scale));
  return [sLo, Math.max(sLo, Math.floor(hi * scale))];
}

/**
 * Faults a schedule starts, by kind (a membership change made during a partition counts as both).
 * What the run will try; NemesisRunner.injected() says what took effect.
 */
export function scheduledFaults(schedule: readonly NemesisEvent[]): Record<FaultKind, number> {
  const counts: Record<FaultKind, number> = { partition: 0, kill: 0, pause: 0, membership: 0 };
  for (const { action } of schedule) {
    if (action.kind === 'start-partition') counts.partition++;
    else if (action.kind === 'kill') counts.kill++;
    else if (action.kind === 'pause') counts.pause++;
    else if (action.kind === 'remove-member') counts.membership++;
  }
  return counts;
}

/** A minority of 1..floor((n-1)/2) nodes: killing or pausing it must leave a working majority. */
function minority(nodes: readonly NodeName[], rng: SeededRng): NodeName[] {
  const max = Math.max(1, Math.floor((nodes.length - 1) / 2));
  return shuffled(nodes, rng).slice(0, 1 + rng.nextInt(max));
}

export function partitionCuts(
  shape: Exclude<PartitionShape, 'isolate-leader'>,
  nodes: readonly NodeName[],
  rng: ShapeRng,
): Cut[] {
  switch (shape) {
    case 'halves':
      return halves(nodes, rng);
    case 'isolate-node':
      return isolateNode(nodes, nodes[rng.nextInt(nodes.length)]);
    case 'majority-ring':
      return majorityRing(nodes, rng);
    case 'bridge':
      return bridge(nodes, rng);
  }
}

/**
 * The fault schedule for a run: quiet, fault, quiet, fault, ..., quiet. Same seed and options, same
 * schedule. Guarantees, for any `durationMs` ≥ minimumDurationMs(faults) (else ScheduleTooShortError):
 *  - the first round holds one fault of every requested kind, in a seeded order; later rounds draw
 *    the kinds again, each round a fresh permutation, while faults fit;
 *  - every event is at or after 0 and every fault is stopped at least MIN_QUIET_MS before
 *    `durationMs`, so the run ends healed;
 *  - fault and quiet lengths are drawn from the given ranges, scaled down for a run shorter than one
 *    round at their longest (so a short run is a compressed long one, not an empty one), never below
 *    minFaultMs(kind) / MIN_QUIET_MS; in the first round a draw is cut short only as far as needed
 *    to leave room for the kinds still to come.
 * Membership changes happen during a partition when partitions are enabled ("membership changes
 * during faults").
 */
export function generateSchedule(options: ScheduleOptions): NemesisEvent[] {
  checkNodes(options.nodes);
  invariant(options.faults.length > 0, 'a schedule needs at least one fault kind');
  invariant(Number.isFinite(options.durationMs) && options.durationMs >= 0, `bad durationMs ${options.durationMs}`);
  const kinds = [...new Set(options.faults)];
  const durationMs = options.durationMs;
  if (durationMs < minimumDurationMs(kinds)) throw new ScheduleTooShortError(kinds, durationMs);
  const rng = new SeededRng(options.seed);
  const givenFault = options.faultDurationMs ?? DEFAULT_FAULT_DURATION_MS;
  const givenQuiet = options.quietMs ?? DEFAULT_QUIET_MS;
  // One round at its longest: every kind's longest fault, and a longest quiet around each.
  const longestRoundMs = kinds.length * givenFault[1] + (kinds.length + 1) * givenQuiet[1];
  const scale = Math.min(1, durationMs / longestRoundMs);
  const faultRange = scaled(givenFault, scale, 0);
  const quietRange = scaled(givenQuiet, scale, MIN_QUIET_MS);
  const nodes = options.nodes;
  const shapes = ALL_SHAPES.filter(
    (s) => nodes.length >= 3 || s === 'halves' || s === 'isolate-node' || s === 'isolate-leader',
  );
  const events: NemesisEvent[] = [];
  const push = (atMs: number, action: NemesisAction): void => {
    events.push({ atMs, action });
  };
  const startPartition = (at: number): void => {
    const shape = shapes[rng.nextInt(shapes.length)];
    push(
      at,
      shape === 'isolate-leader'
        ? { kind: 'start-partition', shape }
        : { kind: 'start-partition', shape, cuts: partitionCuts(shape, nodes, rng) },
    );
  };
  // Room the kinds still owed in this round need after the current point: each a minimum fault and
  // the minimum quiet after it.
  const owedMs = (owed: readonly FaultKind[]): number => owed.reduce((sum, k) => sum + minFaultMs(k) + MIN_QUIET_MS, 0);

  let round: FaultKind[] = [...kinds];
  let firstRound = true;
  // Leading quiet: capped so that the whole first round still fits after it.
  let t = Math.min(between(rng, quietRange), durationMs - owedMs(kinds));
  for (;;) {
    if (round.length === 0) {
      round = [...kinds];
      firstRound = false;
    }
    let dur = between(rng, faultRange);
    const fault = round.splice(rng.nextInt(round.length), 1)[0];
    dur = Math.max(dur, minFaultMs(fault));
    // The latest this fault may stop: leave the minimum quiet at the end, and in the first round
    // room for the kinds not yet placed.
    const latestStop = durationMs - MIN_QUIET_MS - (firstRound ? owedMs(round) : 0);
    if (t + dur > latestStop) dur = latestStop - t;
    if (dur < minFaultMs(fault)) {
      // Only a later round can run out of room: the first round's room was reserved.
      invariant(!firstRound, () => `first-round ${fault} fault does not fit at ${t} ms of ${durationMs} ms`);
      break;
    }
    const stop = t + dur;
    switch (fault) {
      case 'partition':
        startPartition(t);
        push(stop, { kind: 'stop-partition' });
        break;
      case 'kill': {
        const victims = minority(nodes, rng);
        push(t, { kind: 'kill', nodes: victims });
        push(stop, { kind: 'restart', nodes: victims });
        break;
      }
      case 'pause': {
        const victims = minority(nodes, rng);
        push(t, { kind: 'pause', nodes: victims });
        push(stop, { kind: 'resume', nodes: victims });
        break;
      }
      case 'membership': {
        const node = nodes[rng.nextInt(nodes.length)];
        const withPartition = kinds.includes('partition');
        if (withPartition) startPartition(t);
        const mid = t + Math.floor(dur / 2);
        push(withPartition ? t + 1 : t, { kind: 'remove-member', node });
        push(mid, { kind: 'add-member', node });
        if (withPartition) push(stop, { kind: 'stop-partition' });
        break;
      }
    }
    // The quiet after: in the first round, capped to leave room for the kinds still owed.
    const quiet = between(rng, quietRange);
    t = stop + (firstRound && round.length > 0 ? Math.min(quiet, durationMs - stop - owedMs(round)) : quiet);
  }
  return events;
}

// ---------------------------------------------------------------------------------------------
// Controllers
// ---------------------------------------------------------------------------------------------

/** Cuts and heals links between nodes. Implementations: ProxyNetwork, NetnsNetwork. */
export interface NetworkController {
  readonly kind: 'proxy' | 'netns';
  /** Adds cuts (on top of any already in force). */
  cut(cuts: readonly Cut[]): Promise<void>;
  /** Removes every cut and delay. */
  heal(): Promise<void>;
  /** Tears everything down (listeners, namespaces). Safe to call twice. */
  close(): Promise<void>;
}

/** Process faults. `ChildProcessController` is the real one. */
export interface ProcessController {
  kill(node: NodeName): Promise<void>;
  restart(node: NodeName): Promise<void>;
  pause(node: NodeName): Promise<void>;
  resume(node: NodeName): Promise<void>;
}

/** Membership changes, through the cluster's own API (raft_removePeer / raft_addPeer on a member). */
export interface MembershipController {
  remove(node: NodeName): Promise<void>;
  add(node: NodeName): Promise<void>;
}

/** Where a process runs and how to start it again. */
export type SpawnFn = (node: NodeName) => ChildProcess;

/** Upper bound on waiting for a killed process to be reaped. */
export const PROCESS_EXIT_TIMEOUT_MS = 10_000;

/**
 * Runs one child process per node and injects process faults with real signals: SIGKILL (nothing
 * flushed, as in a power cut), SIGSTOP/SIGCONT (a frozen process whose peers see silence, then a
 * process that wakes up with stale state). Restart spawns the node again with the same data.
 */
export class ChildProcessController implements ProcessController {
  private readonly children = new Map<NodeName, ChildProcess>();
  private readonly paused = new Set<NodeName>();

  constructor(
    private readonly spawnNode: SpawnFn,
    private readonly log: JepsenLogger = silentLogger,
  ) {}

  /** Starts a node's process (refuses a node that is already running). */
  start(node: NodeName): ChildProcess {
    const running = this.children.get(node);
    if (running !== undefined && running.exitCode === null && running.signalCode === null) {
      throw new JepsenError(JepsenErrorCode.ProcessFault, `node ${node} is already running (pid ${running.pid})`, {
        node,
      });
    }
    const child = this.spawnNode(node);
    this.children.set(node, child);
    this.log.debug({ node, pid: child.pid }, 'nemesis: process started');
    return child;
  }

  pid(node: NodeName): number | undefined {
    return this.children.get(node)?.pid;
  }

  isRunning(node: NodeName): boolean {
    const c = this.children.get(node);
    return c !== undefined && c.exitCode === null && c.signalCode === null;
  }

  async kill(node: NodeName): Promise<void> {
    const child = this.require(node);
    if (!this.isRunning(node)) return;
    const exited = waitExit(child);
    child.kill('SIGKILL');
    this.paused.delete(node);
    await exited;
    this.log.debug({ node, pid: child.pid }, 'nemesis: SIGKILL');
  }

  async restart(node: NodeName): Promise<void> {
    if (this.isRunning(node)) {
      throw new JepsenError(JepsenErrorCode.ProcessFault, `restart: node ${node} is still running`, { node });
    }
    this.start(node);
  }

  async pause(node: NodeName): Promise<void> {
    const child = this.require(node);
    if (!this.isRunning(node))
      throw new JepsenError(JepsenErrorCode.ProcessFault, `pause: node ${node} is not running`, { node });
    child.kill('SIGSTOP');
    this.paused.add(node);
    this.log.debug({ node, pid: child.pid }, 'nemesis: SIGSTOP');
  }

  async resume(node: NodeName): Promise<void> {
    const child = this.require(node);
    if (this.isRunning(node)) child.kill('SIGCONT');
    this.paused.delete(node);
    this.log.debug({ node, pid: child.pid }, 'nemesis: SIGCONT');
  }

  /** SIGCONT then SIGKILL every process (a paused process ignores SIGTERM until continued). */
  async stopAll(): Promise<void> {
    await Promise.all(
      [...this.children.keys()].map(async (node) => {
        const child = this.children.get(node)!;
        if (!this.isRunning(node)) return;
        const exited = waitExit(child);
        child.kill('SIGCONT');
        child.kill('SIGKILL');
        await exited;
      }),
    );
    this.paused.clear();
  }

  private require(node: NodeName): ChildProcess {
    const c = this.children.get(node);
    if (c === undefined) throw new JepsenError(JepsenErrorCode.ProcessFault, `node ${node} has no process`, { node });
    return c;
  }
}

function waitExit(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = clock.setTimeout(
      () =>
        reject(
          new JepsenError(
            JepsenErrorCode.ProcessFault,
            `pid ${child.pid} did not exit within ${PROCESS_EXIT_TIMEOUT_MS} ms`,
          ),
        ),
      PROCESS_EXIT_TIMEOUT_MS,
    );
    child.once('exit', () => {
      timer?.cancel();
      resolve();
    });
  });
}

// ---------------------------------------------------------------------------------------------
// Runner
// ---------------------------------------------------------------------------------------------

export interface NemesisRunnerDeps {
  readonly nodes: readonly NodeName[];
  readonly network: NetworkController;
  readonly processes?: ProcessController;
  readonly membership?: MembershipController;
  /** The current leader, for isolate-leader; undefined when there is none (then a random node). */
  readonly leader?: () => Promise<NodeName | undefined>;
  readonly recorder?: HistoryRecorder;
  readonly log?: JepsenLogger;
  /** Seed for choices made at run time (the node isolated when no leader is known). */
  readonly seed?: number;
}

/**
 * Applies a schedule in real time and records each action as a nemesis line ("start-partition",
 * "stop-partition", "start-kill", "stop-kill", ...). Keeps track of what is broken so `healAll()` can
 * undo everything, whatever point a run was stopped at.
 */
export class NemesisRunner {
  private readonly killed = new Set<NodeName>();
  private readonly pausedNodes = new Set<NodeName>();
  private readonly removed = new Set<NodeName>();
  private partitioned = false;
  /** Faults that took effect, by kind: a start action that completed (see injected()). */
  private readonly injectedCounts: Record<FaultKind, number> = { partition: 0, kill: 0, pause: 0, membership: 0 };
  private readonly rng: SeededRng;
  private readonly log: JepsenLogger;

  constructor(private readonly deps: NemesisRunnerDeps) {
    this.rng = new SeededRng(deps.seed ?? 1);
    this.log = deps.log ?? silentLogger;
  }

  /**
   * How many faults of each kind took effect: a partition whose cuts were made, a kill or pause
   * whose signals were all sent, a removal the cluster accepted. A start action that threw, or was
   * never reached because the run ended first, does not count. (A membership change made during a
   * partition also counts its partition.) The run's verdict uses it: a requested kind with zero
   * here makes a passing run inconclusive.
   */
  injected(): Readonly<Record<FaultKind, number>> {
    return { ...this.injectedCounts };
  }

  /** Runs `schedule` from now; stops early (without healing) when `signal` aborts. */
  async run(schedule: readonly NemesisEvent[], signal?: AbortSignal): Promise<void> {
    const startedMs = clock.monotonicMs();
    for (const event of schedule) {
      const waitMs = event.atMs - (clock.monotonicMs() - startedMs);
      if (waitMs > 0) await sleep(waitMs, signal);
      if (signal?.aborted) return;
      await this.apply(event.action);
    }
  }

  async apply(action: NemesisAction): Promise<void> {
    const record = (f: string, value: unknown): void => {
      this.deps.recorder?.nemesis(f, value);
    };
    const need = <T>(c: T | undefined, what: string): T => {
      if (c === undefined)
        throw new JepsenError(
          JepsenErrorCode.ProcessFault,
          `the schedule asks for ${what} but no controller was given`,
        );
      return c;
    };
    this.log.debug({ action }, 'nemesis: applying');
    switch (action.kind) {
      case 'start-partition': {
        let cuts = action.cuts;
        if (cuts === undefined) {
          const leader = (await this.deps.leader?.()) ?? this.deps.nodes[this.rng.nextInt(this.deps.nodes.length)];
          cuts = isolateNode(this.deps.nodes, leader);
        }
        record('start-partition', { shape: action.shape, cuts });
        await this.deps.network.cut(cuts);
        this.partitioned = true;
        this.injectedCounts.partition++;
        return;
      }
      case 'stop-partition':
        await this.deps.network.heal();
        this.partitioned = false;
        record('stop-partition', null);
        return;
      case 'kill':
        record('start-kill', { nodes: action.nodes });
        for (const n of action.nodes) {
          await need(this.deps.processes, 'kill').kill(n);
          this.killed.add(n);
        }
        this.injectedCounts.kill++;
        return;
      case 'restart':
        for (const n of action.nodes) {
          await need(this.deps.processes, 'restart').restart(n);
          this.killed.delete(n);
        }
        record('stop-kill', { nodes: action.nodes });
        return;
      case 'pause':
        record('start-pause', { nodes: action.nodes });
        for (const n of action.nodes) {
          await need(this.deps.processes, 'pause').pause(n);
          this.pausedNodes.add(n);
        }
        this.injectedCounts.pause++;
        return;
      case 'resume':
        for (const n of action.nodes) {
          await need(this.deps.processes, 'resume').resume(n);
          this.pausedNodes.delete(n);
        }
        record('stop-pause', { nodes: action.nodes });
        return;
      case 'remove-member':
        record('start-membership', { remove: action.node });
        await need(this.deps.membership, 'membership').remove(action.node);
        this.removed.add(action.node);
        this.injectedCounts.membership++;
        return;
      case 'add-member':
        await need(this.deps.membership, 'membership').add(action.node);
        this.removed.delete(action.node);
        record('stop-membership', { add: action.node });
        return;
    }
  }

  /** Undoes every fault still in force: heal the network, resume, restart, re-add. */
  async healAll(): Promise<void> {
    if (this.partitioned) await this.apply({ kind: 'stop-partition' });
    else await this.deps.network.heal();
    if (this.pausedNodes.size > 0) await this.apply({ kind: 'resume', nodes: [...this.pausedNodes] });
    if (this.killed.size > 0) await this.apply({ kind: 'restart', nodes: [...this.killed] });
    for (const n of [...this.removed]) await this.apply({ kind: 'add-member', node: n });
  }
}
