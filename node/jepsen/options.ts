// The options of `quorate jepsen`, parsed and validated here so the command line and any embedding
// agree on names, defaults and limits:
//   quorate jepsen [--nodes 3|5] [--time 60] [--workload bank|register|append|privacy|all]
//                  [--nemesis partition,kill,pause,membership,all] [--rate R] [--seed S] [--out DIR]
//                  [--network auto|netns|proxy]
// A --time too short for one fault of every --nemesis kind is refused here (a usage error, exit 2),
// before any cluster starts: such a run could only check a cluster that was never faulted.

import { randomInt } from 'node:crypto';
import { JepsenError, JepsenErrorCode } from './errors.js';
import { ALL_FAULTS, minimumDurationReason, minimumRunTimeS, type FaultKind } from './nemesis.js';
import type { NetworkKind } from './network.js';
import type { WorkloadName } from './workload.js';

export const ALL_WORKLOADS: readonly WorkloadName[] = ['register', 'bank', 'append'];
/**
 * Workloads that may be named with --workload but are not part of "all" yet: `privacy` (private
 * puts, then every live node's private state through checkPrivacy). A node restarted by the
 * nemesis resyncs its transaction manager before it applies private blocks (up to 15 s), and the
 * final read does not yet wait for that reliably.
 */
export const EXTRA_WORKLOADS: readonly WorkloadName[] = ['privacy'];
/** A run longer than a day is a typo, not a soak (soaks are a separate tool). */
export const MAX_RUN_TIME_S = 24 * 3600;
/** Client operations per second, over all clients; beyond this the clients measure themselves, not the cluster. */
export const MAX_RATE_HZ = 10_000;

export interface JepsenOptions {
  readonly nodes: 3 | 5;
  readonly timeS: number;
  readonly workloads: readonly WorkloadName[];
  readonly faults: readonly FaultKind[];
  readonly rateHz: number;
  readonly seed: number;
  /** True when the seed was drawn, not given: the run prints it so it can be reproduced. */
  readonly seedWasRandom: boolean;
  readonly outDir: string;
  readonly network: NetworkKind | 'auto';
}

/** A bad argument: print the message and the usage, exit 2. */
export class JepsenUsageError extends JepsenError {
  constructor(message: string) {
    super(JepsenErrorCode.Usage, message);
    this.name = 'JepsenUsageError';
  }
}

function list<T extends string>(raw: string, all: readonly T[], what: string, extra: readonly T[] = []): T[] {
  const known = [...all, ...extra];
  const parts = raw
    .split(',')
    .map((s) => s.trim())
    .filter((s) => s !== '');
  if (parts.length === 0) throw new JepsenUsageError(`--${what} needs a value (${known.join(', ')} or all)`);
  if (parts.includes('all')) return [...new Set([...all, ...parts.filter((p) => p !== 'all')])] as T[];
  for (const p of parts)
    if (!(known as readonly string[]).includes(p))
      throw new JepsenUsageError(`--${what}: unknown "${p}" (expected ${known.join(', ')} or all)`);
  return [...new Set(parts)] as T[];
}

function int(raw: string, flag: string, min: number, max: number): number {
  if (!/^\d+$/.test(raw)) throw new JepsenUsageError(`--${flag} must be a whole number, got "${raw}"`);
  const n = Number(raw);
  if (n < min || n > max) throw new JepsenUsageError(`--${flag} must be between ${min} and ${max}, got ${n}`);
  return n;
}

/** Parses the arguments after `quorate jepsen`. `now` names the default output directory. */
export function parseJepsenArgs(argv: readonly string[], now: Date = new Date()): JepsenOptions {
  const values = new Map<string, string>();
  const known = new Set(['nodes', 'time', 'workload', 'nemesis', 'rate', 'seed', 'out', 'network']);
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const m = /^--([a-z]+)(?:=(.*))?$/.exec(arg);
    if (m === null || !known.has(m[1])) throw new JepsenUsageError(`unknown argument "${arg}"`);
    let value = m[2];
    if (value === undefined) {
      value = argv[++i];
      if (value === undefined) throw new JepsenUsageError(`--${m[1]} needs a value`);
    }
    values.set(m[1], value);
  }
  const nodes = int(values.get('nodes') ?? '3', 'nodes', 3, 5);
  if (nodes !== 3 && nodes !== 5) throw new JepsenUsageError(`--nodes must be 3 or 5, got ${nodes}`);
  const seedRaw = values.get('seed');
  const network = values.get('network') ?? 'auto';
  if (network !== 'auto' && network !== 'netns' && network !== 'proxy')
    throw new JepsenUsageError(`--network must be auto, netns or proxy, got "${network}"`);
  const stamp = now.toISOString().replace(/[:.]/g, '-');
  const timeS = int(values.get('time') ?? '60', 'time', 1, MAX_RUN_TIME_S);
  const faults = list(values.get('nemesis') ?? 'all', ALL_FAULTS, 'nemesis');
  if (timeS < minimumRunTimeS(faults))
    throw new JepsenUsageError(
      `--time ${timeS} is too short for --nemesis ${faults.join(',')}: the minimum is --time ${minimumRunTimeS(faults)} ` +
        `(${minimumDurationReason(faults)})`,
    );
  return {
    nodes,
    timeS,
    workloads: list(values.get('workload') ?? 'all', ALL_WORKLOADS, 'workload', EXTRA_WORKLOADS),
    faults,
    rateHz: int(values.get('rate') ?? '50', 'rate', 1, MAX_RATE_HZ),
    seed: seedRaw === undefined ? randomInt(1, 2 ** 31) : int(seedRaw, 'seed', 0, 2 ** 32 - 1),
    seedWasRandom: seedRaw === undefined,
    outDir: values.get('out') ?? `jepsen-out/${stamp}`,
    network,
  };
}

/** The command line that reproduces a run (printed in the report and on failure). */
export function reproduceCommand(o: JepsenOptions): string {
  return `quorate jepsen --nodes ${o.nodes} --time ${o.timeS} --workload ${o.workloads.join(',')} --nemesis ${o.faults.join(',')} --rate ${o.rateHz} --seed ${o.seed} --network ${o.network}`;
}
