// `quorate jepsen`: a Jepsen-style test of a local cluster under faults. This file parses the
// command line; runJepsen() from node/jepsen/run.ts runs the test and checks the history.

import { randomInt } from 'node:crypto';
import { resolve } from 'node:path';
import { ExitCode, UsageError, intFlag, parseFlags, stringFlag, type CliIo } from './args.js';
import { loadEntryPoint } from './optional.js';

export const JEPSEN_WORKLOADS = ['bank', 'register', 'list-append'] as const;
export type JepsenWorkload = (typeof JEPSEN_WORKLOADS)[number];

/** Faults (CORRECTNESS.md, "Jepsen-style checks"). */
export const JEPSEN_NEMESES = [
  'partition-halves',
  'partition-leader',
  'partition-majority-ring',
  'partition-bridge',
  'kill',
  'pause',
  'membership',
  'lose-unsynced',
] as const;
export type JepsenNemesis = (typeof JEPSEN_NEMESES)[number];

export const JEPSEN_HELP = `Usage: quorate jepsen [--nodes 3|5] [--time SECONDS] [--workload W,..] [--nemesis N,..]
                      [--rate R] [--seed S] [--out DIR]

Starts a local cluster, runs client workloads against it while injecting faults, heals the
network, then checks the recorded history and writes a report.

  --nodes 3|5       cluster size (default 3)
  --time SECONDS    length of the fault phase (default 60)
  --workload W,..   ${JEPSEN_WORKLOADS.join(', ')}, or all (default all)
  --nemesis N,..    ${JEPSEN_NEMESES.join(', ')},
                    all or none (default all)
  --rate R          client operations per second, all clients together (default 50)
  --seed S          seed of every random choice; printed, so a run can be repeated
                    (default: random)
  --out DIR         where to write the history and the report
                    (default jepsen-results/<time>-seed-<S>)
`;

export interface JepsenOptions {
  readonly nodes: 3 | 5;
  readonly timeSeconds: number;
  readonly workloads: readonly JepsenWorkload[];
  readonly nemeses: readonly JepsenNemesis[];
  /** Client operations per second. */
  readonly rate: number;
  readonly seed: number;
  /** Absolute path. */
  readonly outDir: string;
}

/** Provided by node/jepsen/run.ts. */
export type RunJepsen = (options: JepsenOptions) => Promise<unknown>;

function list<T extends string>(flag: string, raw: string | undefined, allowed: readonly T[], allowNone: boolean): T[] {
  if (raw === undefined || raw === 'all') return [...allowed];
  if (raw === 'none' && allowNone) return [];
  const items = raw.split(',').map((s) => s.trim());
  for (const item of items) {
    if (!(allowed as readonly string[]).includes(item)) {
      throw new UsageError(`--${flag} "${item}" is not one of ${allowed.join(', ')}${allowNone ? ', all, none' : ', all'}`, 'jepsen');
    }
  }
  return [...new Set(items)] as T[];
}

export function parseJepsenArgs(argv: readonly string[], now: Date = new Date()): JepsenOptions | 'help' {
  const { help, values } = parseFlags('jepsen', argv, {
    nodes: { type: 'string' },
    time: { type: 'string' },
    workload: { type: 'string' },
    nemesis: { type: 'string' },
    rate: { type: 'string' },
    seed: { type: 'string' },
    out: { type: 'string' },
  });
  if (help) return 'help';
  const nodes = intFlag('jepsen', values, 'nodes', 3, 3, 5);
  if (nodes !== 3 && nodes !== 5) throw new UsageError(`--nodes must be 3 or 5, got ${nodes}`, 'jepsen');
  const seed = intFlag('jepsen', values, 'seed', randomInt(0, 2 ** 31), 0, 2 ** 32 - 1);
  const stamp = now.toISOString().replace(/[:.]/g, '-');
  return {
    nodes,
    timeSeconds: intFlag('jepsen', values, 'time', 60, 1, 24 * 3600),
    workloads: list('workload', stringFlag(values, 'workload'), JEPSEN_WORKLOADS, false),
    nemeses: list('nemesis', stringFlag(values, 'nemesis'), JEPSEN_NEMESES, true),
    rate: intFlag('jepsen', values, 'rate', 50, 1, 100_000),
    seed,
    outDir: resolve(stringFlag(values, 'out') ?? `jepsen-results/${stamp}-seed-${seed}`),
  };
}

export async function jepsenCommand(argv: readonly string[], io: CliIo): Promise<ExitCode> {
  const options = parseJepsenArgs(argv);
  if (options === 'help') {
    io.out(JEPSEN_HELP);
    return ExitCode.Ok;
  }
  const runJepsen = await loadEntryPoint<RunJepsen>('../jepsen/run.js', 'runJepsen', 'jepsen');
  io.err(`jepsen: seed=${options.seed} (repeat with --seed ${options.seed})`);
  await runJepsen(options);
  return ExitCode.Ok;
}
