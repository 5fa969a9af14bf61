// `npm run sim -- --seeds N [--seed S] [--nodes K] [--steps T] [--workers W] [--variant V] [--profile P] [--trace]`
//
// Runs schedules for seeds S..S+N-1 (S defaults to 1) and ends with the plain line
// `N seeds, V violations`; the exit code is 1 when V > 0. With --seed S alone it runs that one
// seed and prints its statistics (add --trace to print every event of the schedule).
// Without --nodes, even seeds run 3 nodes and odd seeds 5 (the same mix as the test suite).
// --workers W runs the seeds on W worker threads (default 1: the main thread).

import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';
import { performance } from 'node:perf_hooks';
import { BROKEN_VARIANTS } from './variants.js';
import {
  DEFAULT_STEPS,
  formatFailure,
  nodesForSeed,
  runSchedule,
  type SimProfile,
  type SimResult,
} from './simulator.js';

interface CliOptions {
  seeds: number | undefined;
  seed: number | undefined;
  nodes: number | undefined;
  steps: number;
  workers: number;
  variant: string | undefined;
  profile: SimProfile;
  trace: boolean;
}

/** Seeds a worker takes per request: large enough that messaging costs nothing, small enough to balance. */
const SEEDS_PER_CHUNK = 100;
/** Violations printed in full; beyond this only one line each (a broken core fails most seeds). */
const MAX_FULL_REPORTS = 5;
/** Progress lines at most this often, in milliseconds. */
const PROGRESS_INTERVAL_MS = 10_000;

const USAGE =
  'usage: npm run sim -- --seeds N [--seed S] [--nodes K] [--steps T] [--workers W] [--variant NAME] [--profile mixed|churn] [--trace]';

function parseArgs(argv: readonly string[]): CliOptions {
  const opts: CliOptions = {
    seeds: undefined,
    seed: undefined,
    nodes: undefined,
    steps: DEFAULT_STEPS,
    workers: 1,
    variant: undefined,
    profile: 'mixed',
    trace: false,
  };
  const int = (name: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (v === undefined || !Number.isSafeInteger(n) || n < min)
      throw new Error(`${name} needs an integer >= ${min}, got ${v}\n${USAGE}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    switch (a) {
      case '--seeds':
        opts.seeds = int(a, argv[++i], 1);
        break;
      case '--seed':
        opts.seed = int(a, argv[++i], 0);
        break;
      case '--nodes':
        opts.nodes = int(a, argv[++i], 1);
        break;
      case '--steps':
        opts.steps = int(a, argv[++i], 0);
        break;
      case '--workers':
        opts.workers = int(a, argv[++i], 1);
        break;
      case '--variant':
        opts.variant = argv[++i];
        if (opts.variant === undefined || !(opts.variant in BROKEN_VARIANTS)) {
          throw new Error(`--variant must be one of ${Object.keys(BROKEN_VARIANTS).join(', ')}`);
        }
        break;
      case '--profile': {
        const p = argv[++i];
        if (p !== 'mixed' && p !== 'churn') throw new Error(`--profile must be mixed or churn\n${USAGE}`);
        opts.profile = p;
        break;
      }
      case '--trace':
        opts.trace = true;
        break;
      case '--help':
      case '-h':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        throw new Error(`unknown argument ${a}\n${USAGE}`);
    }
  }
  return opts;
}

interface ChunkRequest {
  readonly start: number;
  readonly count: number;
}

interface ChunkReport {
  readonly count: number;
  /** Formatted failures (seed, kind, text). */
  readonly failures: { seed: number; kind: string; text: string; command: string }[];
  readonly ticks: number;
  readonly messages: number;
}

interface WorkerConfig {
  readonly nodes: number | undefined;
  readonly steps: number;
  readonly variant: string | undefined;
  readonly profile: SimProfile;
}

function runChunk(cfg: WorkerConfig, req: ChunkRequest): ChunkReport {
  const failures: ChunkReport['failures'] = [];
  let ticks = 0;
  let messages = 0;
  for (let seed = req.start; seed < req.start + req.count; seed++) {
    const r = runOne(cfg, seed, undefined);
    ticks += r.stats.ticks;
    messages += r.stats.delivered;
    if (r.failure !== undefined)
      failures.push({ seed, kind: r.failure.kind, text: formatFailure(r), command: r.failure.command });
  }
  return { count: req.count, failures, ticks, messages };
}

function runOne(cfg: WorkerConfig, seed: number, trace: ((line: string) => void) | undefined): SimResult {
  return runSchedule({
    seed,
    nodes: cfg.nodes ?? nodesForSeed(seed),
    steps: cfg.steps,
    variant: cfg.variant,
    profile: cfg.profile,
    deps: cfg.variant !== undefined ? BROKEN_VARIANTS[cfg.variant]!.deps : undefined,
    trace,
  });
}

/** A worker thread runs this module too: tsx must be registered in it before the import. */
function spawnWorker(cfg: WorkerConfig): Worker {
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const boot = `import(${JSON.stringify(tsxApi)}).then(({ register }) => { register(); return import(${JSON.stringify(import.meta.url)}); })`;
  return new Worker(boot, { eval: true, workerData: cfg });
}

async function main(): Promise<number> {
  const opts = parseArgs(process.argv.slice(2));
  const cfg: WorkerConfig = { nodes: opts.nodes, steps: opts.steps, variant: opts.variant, profile: opts.profile };
  if (opts.seeds === undefined) {
    if (opts.seed === undefined) throw new Error(USAGE);
    const t0 = performance.now();
    const r = runOne(cfg, opts.seed, opts.trace ? (line) => console.log(line) : undefined);
    const ms = performance.now() - t0;
    console.log(
      JSON.stringify({ seed: r.seed, nodes: r.nodes, steps: r.steps, params: r.params, stats: r.stats }, null, 1),
    );
    if (r.failure !== undefined) console.log(formatFailure(r));
    console.log(`elapsed ${ms.toFixed(1)} ms`);
    console.log(`1 seeds, ${r.failure === undefined ? 0 : 1} violations`);
    return r.failure === undefined ? 0 : 1;
  }

  const total = opts.seeds;
  const first = opts.seed ?? 1;
  const t0 = performance.now();
  let next = first;
  let done = 0;
  let ticks = 0;
  let messages = 0;
  const failures: ChunkReport['failures'] = [];
  let lastProgress = t0;

  const take = (): ChunkRequest | undefined => {
    if (next >= first + total) return undefined;
    const count = Math.min(SEEDS_PER_CHUNK, first + total - next);
    const req = { start: next, count };
    next += count;
    return req;
  };
  const absorb = (rep: ChunkReport): void => {
    done += rep.count;
    ticks += rep.ticks;
    messages += rep.messages;
    for (const f of rep.failures) {
      failures.push(f);
      if (failures.length <= MAX_FULL_REPORTS) console.log(f.text);
      else console.log(`VIOLATION ${f.kind}, seed ${f.seed}: ${f.command}`);
    }
    const now = performance.now();
    if (now - lastProgress >= PROGRESS_INTERVAL_MS) {
      lastProgress = now;
      console.log(
        `progress: ${done}/${total} seeds, ${failures.length} violations, ${((now - t0) / 1000).toFixed(0)} s`,
      );
    }
  };

  if (opts.workers <= 1) {
    for (let req = take(); req !== undefined; req = take()) absorb(runChunk(cfg, req));
  } else {
    await Promise.all(
      Array.from({ length: opts.workers }, () => {
        const w = spawnWorker(cfg);
        return new Promise<void>((resolve, reject) => {
          const feed = (): void => {
            const req = take();
            if (req === undefined) {
              void w.terminate().then(() => resolve());
              return;
            }
            w.postMessage(req);
          };
          w.on('message', (msg: ChunkReport | 'ready') => {
            if (msg !== 'ready') absorb(msg);
            feed();
          });
          w.on('error', reject);
        });
      }),
    );
  }
  const seconds = (performance.now() - t0) / 1000;
  // CPU time of the whole process (all threads): on a shared machine wall time says little.
  const cpu = process.cpuUsage();
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  console.log(
    `elapsed ${seconds.toFixed(1)} s (${((seconds * 1000) / total).toFixed(2)} ms per schedule), ` +
      `cpu ${cpuSeconds.toFixed(1)} s (${((cpuSeconds * 1000) / total).toFixed(2)} ms per schedule), ${opts.workers} worker(s), ` +
      `${ticks} ticks, ${messages} messages delivered`,
  );
  if (failures.length > 0) {
    const kinds = new Map<string, number>();
    for (const f of failures) kinds.set(f.kind, (kinds.get(f.kind) ?? 0) + 1);
    console.log(`violations by kind: ${[...kinds].map(([k, n]) => `${k} ${n}`).join(', ')}`);
  }
  console.log(`${total} seeds, ${failures.length} violations`);
  return failures.length === 0 ? 0 : 1;
}

if (isMainThread) {
  main().then(
    (code) => process.exit(code),
    (err: unknown) => {
      console.error((err as Error).message ?? err);
      process.exit(2);
    },
  );
} else {
  const cfg = workerData as WorkerConfig;
  parentPort!.on('message', (req: ChunkRequest) => parentPort!.postMessage(runChunk(cfg, req)));
  parentPort!.postMessage('ready');
}
