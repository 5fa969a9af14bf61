// `quorate jepsen`: one run, end to end.
//
//   1. a fresh cluster of real node processes in DIR/cluster (network namespaces when possible, else
//      the TCP fault proxy), and a leader everyone agrees on;
//   2. for `timeS` seconds: seeded concurrent clients of each workload, and the seeded nemesis
//      schedule (partitions of every shape, SIGKILL+restart, SIGSTOP/SIGCONT, membership changes
//      during partitions), all in one history (DIR/history.jsonl);
//   3. heal everything, wait for recovery, check that the healed cluster commits a write;
//   4. read every node's chain and the final state, run the checkers (chain, register
//      linearizability, bank, list-append), write DIR/results.json and DIR/report.html.
// The verdict (report.ts runVerdict) sets the exit status: 0 PASS (every checker passed and every
// requested fault kind took effect at least once), 1 FAIL (a checker found a violation), 3
// INCONCLUSIVE (nothing failed, but a checker could not decide or a requested fault kind never took
// effect). Node logs stay in DIR/cluster/node-*/node.log.

import { setMaxListeners } from 'node:events';
import { mkdir } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { GENESIS_ACCOUNT_BALANCE } from '../cli/init.js';
import { checkAppend, checkPrivacy, checkBank, checkChain } from './checkers.js';
import { JepsenCluster, SlotProcessController, type NodeCommand } from './cluster.js';
import { sleep } from './sleep.js';
import { RpcJepsenClient, type ClientContext } from './clients.js';
import { silentLogger, type JepsenLogger } from './errors.js';
import { FileHistorySink, HistoryRecorder, readHistoryFile, type HistoryOp } from './history.js';
import { checkLinearizable } from './linearizability.js';
import { NemesisRunner, generateSchedule, scheduledFaults, type NemesisEvent } from './nemesis.js';
import { chooseNetworkKind } from './network.js';
import { reproduceCommand, type JepsenOptions } from './options.js';
import {
  VERDICT_EXIT_CODES,
  faultTallyText,
  writeReport,
  type CheckerVerdict,
  type FaultTally,
  type RunVerdict,
} from './report.js';
import {
  appendWorkload,
  bankWorkload,
  privacyWorkload,
  registerWorkload,
  runClients,
  type RunClientsStats,
  type Workload,
  type WorkloadName,
} from './workload.js';
import { sleepMs } from '../clock.js';
import { harnessClock as clock } from './clock.js';

/** Process ids of workload k are PROCESS_RANGE*k ... (a retired process's replacement stays in range). */
export const PROCESS_RANGE = 1_000_000;
/** Time allowed for the first leader after the processes start. */
export const STARTUP_TIMEOUT_MS = 60_000;
/** Time allowed, after healing, for one agreed leader and equal heads on every live node. */
export const RECOVERY_TIMEOUT_MS = 60_000;
/** One recovery write attempt (retried until RECOVERY_TIMEOUT_MS). */
export const RECOVERY_WRITE_TIMEOUT_MS = 10_000;
/** Keys of the register and append workloads (few, so operations contend). */
export const REGISTER_KEYS = 5;
export const APPEND_KEYS = 3;

/** What a test (never the command line) may add to a run. */
export interface RunJepsenExtras {
  /** How to start a node: test-only broken variants pass their own entry point here. */
  readonly nodeCommand?: NodeCommand;
  readonly log?: JepsenLogger;
  /** Lines for the operator (default: stdout). */
  readonly out?: (line: string) => void;
  /** After this an unanswered client operation is recorded as info (default 5 s). */
  readonly opTimeoutMs?: number;
  /**
   * Fault length and quiet time between faults (default DEFAULT_FAULT_DURATION_MS, DEFAULT_QUIET_MS;
   * short tests shrink them). The scheduler scales them down further to fit the run, never below
   * MIN_FAULT_MS / MIN_QUIET_MS (nemesis.ts).
   */
  readonly faultDurationMs?: readonly [number, number];
  readonly quietMs?: readonly [number, number];
  /** Keys of the register workload (default REGISTER_KEYS); fewer keys, more contention. */
  readonly registerKeys?: number;
  /** Client processes per workload (default: two per node). */
  readonly concurrencyPerWorkload?: number;
}

export interface JepsenRunResult {
  /** VERDICT_EXIT_CODES[verdict]. */
  readonly exitCode: number;
  readonly verdict: RunVerdict;
  /** Why the verdict is not PASS (empty for PASS). */
  readonly verdictReasons: readonly string[];
  /** Every checker passed. */
  readonly valid: boolean;
  /** The requested fault kinds and how many of each took effect. */
  readonly faults: FaultTally;
  readonly outDir: string;
  readonly checkers: readonly CheckerVerdict[];
  readonly stats: Readonly<Record<string, RunClientsStats>>;
  readonly schedule: readonly NemesisEvent[];
}

/** The `quorate jepsen` entry point: resolves with the exit code (VERDICT_EXIT_CODES: 0 only for PASS). */
export async function runJepsen(options: JepsenOptions, extras: RunJepsenExtras = {}): Promise<number> {
  return (await runJepsenDetailed(options, extras)).exitCode;
}

export async function runJepsenDetailed(
  options: JepsenOptions,
  extras: RunJepsenExtras = {},
): Promise<JepsenRunResult> {
  const t0 = clock.monotonicMs();
  const write = extras.out ?? ((line: string) => process.stdout.write(`${line}\n`));
  // Each line carries the seconds since the run began: where a slow run spends its time shows.
  const out = (line: string): void => write(`[${((clock.monotonicMs() - t0) / 1000).toFixed(1)} s] ${line}`);
  const log = extras.log ?? silentLogger;
  const outDir = resolve(options.outDir);
  await mkdir(outDir, { recursive: true });
  const durationMs = options.timeS * 1000;
  const repro = reproduceCommand(options);
  out(`jepsen: seed ${options.seed}${options.seedWasRandom ? ' (random)' : ''}; reproduce with: ${repro}`);

  const networkKind = await chooseNetworkKind(options.network, log);
  const slots = Array.from({ length: options.nodes }, (_, i) => `n${i + 1}`);
  const schedule = generateSchedule({
    seed: options.seed,
    nodes: slots,
    durationMs,
    faults: options.faults,
    ...(extras.faultDurationMs ? { faultDurationMs: extras.faultDurationMs } : {}),
    ...(extras.quietMs ? { quietMs: extras.quietMs } : {}),
  });
  const spareSlots = schedule.flatMap((e) => (e.action.kind === 'add-member' ? [e.action.node] : []));
  out(
    `jepsen: ${options.nodes} nodes over ${networkKind}, ${options.timeS} s, workloads ${options.workloads.join(',')}, ${schedule.length} nemesis events (faults: ${faultTallyText({ requested: options.faults, injected: scheduledFaults(schedule) })}); output in ${outDir}`,
  );

  const cluster = await JepsenCluster.create({
    nodes: options.nodes,
    dir: join(outDir, 'cluster'),
    network: networkKind,
    spareSlots,
    nodeCommand: extras.nodeCommand,
    log,
  });
  const historyPath = join(outDir, 'history.jsonl');
  const recorder = new HistoryRecorder({ sink: await FileHistorySink.create(historyPath) });
  const acknowledged = new Set<string>();
  const clients: RpcJepsenClient[] = [];
  const verdicts: CheckerVerdict[] = [];
  const stats: Record<string, RunClientsStats> = {};
  try {
    cluster.startAll();
    const first = await waitFor(() => cluster.agreedLeader(), STARTUP_TIMEOUT_MS);
    if (first === undefined) {
      throw new Error(
        `no leader within ${STARTUP_TIMEOUT_MS} ms of starting the cluster; see the logs in ${join(outDir, 'cluster')}`,
      );
    }
    out(`jepsen: cluster up, leader ${first}; clients and nemesis start`);

    const ctx: ClientContext = {
      targetOf: (slot) => cluster.targetOf(slot),
      slotOfAccount: (a) => cluster.slotOfAccount(a),
      acknowledge: (h) => acknowledged.add(h),
      bankAccounts: cluster.genesisAccounts,
    };
    const workloads: Record<WorkloadName, Workload> = {
      register: registerWorkload({ keys: extras.registerKeys ?? REGISTER_KEYS }),
      append: appendWorkload({ keys: APPEND_KEYS }),
      bank: bankWorkload({ accounts: cluster.genesisAccounts }),
      privacy: privacyWorkload(),
    };
    const concurrency = extras.concurrencyPerWorkload ?? 2 * options.nodes;
    const abort = new AbortController();
    // Every client worker and the nemesis wait on this one signal at once: not a leak.
    setMaxListeners(options.workloads.length * concurrency + 16, abort.signal);
    const clientRuns = options.workloads.map((name, k) =>
      runClients({
        recorder,
        workload: workloads[name],
        processBase: PROCESS_RANGE * k,
        clientFor: (p) => {
          const c = new RpcJepsenClient(slots[(p - PROCESS_RANGE * k) % slots.length], ctx);
          clients.push(c);
          return c;
        },
        concurrency,
        durationMs,
        rateHz: Math.max(1, Math.round(options.rateHz / options.workloads.length)),
        opTimeoutMs: extras.opTimeoutMs ?? 5_000,
        seed: options.seed + 1 + k,
        signal: abort.signal,
      }).then((s) => {
        stats[name] = s;
      }),
    );
    const runner = new NemesisRunner({
      nodes: slots,
      network: cluster.network,
      processes: new SlotProcessController(cluster),
      membership: cluster.membership(recorder),
      leader: () => cluster.someLeader(),
      recorder,
      log,
      seed: options.seed,
    });
    const nemesisErrors: string[] = [];
    const nemesisRun = runSchedule(runner, schedule, abort.signal, (event, err) => {
      const msg = `${event.action.kind} at ${event.atMs} ms: ${(err as Error)?.message ?? String(err)}`;
      nemesisErrors.push(msg);
      recorder.nemesis('nemesis-error', msg);
      log.warn({ err: msg }, 'jepsen: a nemesis action failed');
    });
    await Promise.all(clientRuns);
    abort.abort();
    await nemesisRun;

    // Heal: the network, paused and killed processes, removed members.
    try {
      await runner.healAll();
    } catch (err) {
      nemesisErrors.push(`heal: ${(err as Error).message}`);
      recorder.nemesis('nemesis-error', `heal: ${(err as Error).message}`);
    }
    recorder.nemesis('healed', null);
    out(
      `jepsen: clients done (${Object.entries(stats)
        .map(([w, s]) => `${w}: ${s.ok} ok, ${s.fail} fail, ${s.info} info`)
        .join('; ')}); healed, waiting for recovery`,
    );

    verdicts.push(await checkRecovery(cluster, ctx));
    out('jepsen: recovery checked; reading every chain');
    verdicts.push(await checkChains(cluster, [...acknowledged]));
    out('jepsen: chains read; checking the history');
    await recorder.close();
    const history = await readHistoryFile(historyPath);
    const ofWorkload = (name: WorkloadName): HistoryOp[] => {
      const k = options.workloads.indexOf(name);
      return history.filter(
        (op) =>
          typeof op.process === 'number' && op.process >= PROCESS_RANGE * k && op.process < PROCESS_RANGE * (k + 1),
      );
    };
    if (options.workloads.includes('register')) {
      const r = checkLinearizable(ofWorkload('register'));
      verdicts.push({
        name: 'register (linearizable)',
        valid: r.valid,
        ...(r.counterexample ? { counterexample: r.counterexample } : {}),
        stats: r.stats as unknown as Record<string, unknown>,
      });
    }
    if (options.workloads.includes('bank')) {
      const total = BigInt(GENESIS_ACCOUNT_BALANCE) * BigInt(cluster.genesisAccounts.length);
      const r = checkBank({ history: ofWorkload('bank'), accounts: cluster.genesisAccounts, totalBalance: total });
      verdicts.push({
        name: 'bank',
        valid: r.valid,
        ...(r.counterexample ? { counterexample: r.counterexample } : {}),
        stats: r.stats,
      });
    }
    if (options.workloads.includes('append')) {
      const finalLists = await readFinalLists(cluster);
      const r =
        finalLists === undefined
          ? { valid: 'unknown' as const, stats: { reason: 'no node answered the final list reads' } }
          : checkAppend({ history: ofWorkload('append'), finalLists });
      verdicts.push({
        name: 'list-append',
        valid: r.valid,
        ...('counterexample' in r && r.counterexample ? { counterexample: r.counterexample } : {}),
        stats: r.stats,
      });
    }
    if (options.workloads.includes('privacy')) {
      // Every acknowledged private put names its parties; read every live node's private state.
      const partiesByKey: Record<string, string[]> = {};
      for (const op of ofWorkload('privacy')) {
        const v = op.value as { key?: unknown; parties?: unknown } | null;
        if (op.type === 'ok' && v && typeof v.key === 'string' && Array.isArray(v.parties))
          partiesByKey[v.key] = v.parties as string[];
      }
      const readErrors: string[] = [];
      const privateStatesByNode = await readPrivateStates(cluster, Object.keys(partiesByKey), readErrors);
      const r = checkPrivacy({ privateStatesByNode, partiesByKey });
      verdicts.push({
        name: 'privacy',
        valid: r.valid,
        ...(r.counterexample ? { counterexample: r.counterexample } : {}),
        stats: {
          ...r.stats,
          nodesRead: Object.keys(privateStatesByNode).length,
          ...(readErrors.length > 0 ? { readErrors } : {}),
        },
      });
    }
    const faults: FaultTally = { requested: options.faults, injected: runner.injected() };
    const meta: Record<string, string | number | boolean> = {
      seed: options.seed,
      nodes: options.nodes,
      timeS: options.timeS,
      workloads: options.workloads.join(','),
      nemesis: options.faults.join(','),
      network: networkKind,
      rateHz: options.rateHz,
      nemesisEvents: schedule.length,
      nemesisErrors: nemesisErrors.length,
      acknowledgedTxs: acknowledged.size,
      reproduce: repro,
    };
    const { reportPath, valid, verdict, reasons } = await writeReport(outDir, {
      title: `quorate jepsen, seed ${options.seed}`,
      history,
      checkers: verdicts,
      faults,
      meta,
    });
    for (const v of verdicts)
      out(`jepsen: ${v.valid === true ? 'PASS' : v.valid === false ? 'FAIL' : 'UNKNOWN'} ${v.name}`);
    for (const e of nemesisErrors) out(`jepsen: nemesis error: ${e}`);
    out(`jepsen: faults injected, by requested kind: ${faultTallyText(faults)}`);
    const why = verdict === 'PASS' ? 'every check passed under every requested fault kind' : reasons.join('; ');
    out(`jepsen: ${verdict}: ${why}; report ${reportPath}${verdict === 'PASS' ? '' : `; reproduce with: ${repro}`}`);
    return {
      exitCode: VERDICT_EXIT_CODES[verdict],
      verdict,
      verdictReasons: reasons,
      valid,
      faults,
      outDir,
      checkers: verdicts,
      stats,
      schedule,
    };
  } finally {
    for (const c of clients) c.close();
    await recorder.close().catch(() => undefined);
    await cluster.close();
    out('jepsen: cluster stopped');
  }
}

/** Like NemesisRunner.run, but a failed action is reported and the schedule goes on. */
async function runSchedule(
  runner: NemesisRunner,
  schedule: readonly NemesisEvent[],
  signal: AbortSignal,
  onError: (e: NemesisEvent, err: unknown) => void,
): Promise<void> {
  const startedMs = clock.monotonicMs();
  for (const event of schedule) {
    const waitMs = event.atMs - (clock.monotonicMs() - startedMs);
    if (waitMs > 0) await sleep(waitMs, signal);
    if (signal.aborted) return;
    try {
      await runner.apply(event.action);
    } catch (err) {
      onError(event, err);
    }
  }
}

async function waitFor<T>(f: () => Promise<T | undefined>, timeoutMs: number, pollMs = 200): Promise<T | undefined> {
  const deadline = clock.monotonicMs() + timeoutMs;
  while (clock.monotonicMs() < deadline) {
    const v = await f();
    if (v !== undefined) return v;
    await sleep(pollMs);
  }
  return undefined;
}

/**
 * The healed cluster works: one leader every live node agrees on, and a write through it commits.
 * (TigerBeetle's simulator checks safety, then that a healed cluster makes progress.)
 */
async function checkRecovery(cluster: JepsenCluster, ctx: ClientContext): Promise<CheckerVerdict> {
  const started = clock.monotonicMs();
  const leader = await waitFor(() => cluster.agreedLeader(), RECOVERY_TIMEOUT_MS);
  if (leader === undefined)
    return {
      name: 'recovery',
      valid: false,
      counterexample: {
        reason: `no agreed leader within ${RECOVERY_TIMEOUT_MS} ms of healing`,
        live: cluster.liveSlots(),
      },
      stats: {},
    };
  const client = new RpcJepsenClient(leader, ctx);
  try {
    const deadline = clock.monotonicMs() + RECOVERY_TIMEOUT_MS;
    let last = '';
    while (clock.monotonicMs() < deadline) {
      const r = await client.invoke(
        { f: 'put', value: { key: 'jepsen-recovery', value: String(clock.wallMs()) } },
        AbortSignal.timeout(RECOVERY_WRITE_TIMEOUT_MS),
      );
      if (r.type === 'ok')
        return {
          name: 'recovery',
          valid: true,
          stats: { leader, msToCommitAfterHeal: clock.monotonicMs() - started, liveNodes: cluster.liveSlots().length },
        };
      last = r.error;
      await sleep(200);
    }
    return {
      name: 'recovery',
      valid: false,
      counterexample: {
        reason: `no write committed within ${RECOVERY_TIMEOUT_MS} ms of an agreed leader`,
        lastError: last,
      },
      stats: {},
    };
  } finally {
    client.close();
  }
}

interface BlockHeader {
  hash: string;
  transactions: Array<string | { hash: string }>;
}

/** Every live node at the same height (no client writes any more), then every block hash of each, and the txs of one. */
async function checkChains(cluster: JepsenCluster, acknowledged: string[]): Promise<CheckerVerdict> {
  const live = cluster.liveSlots();
  const headOf = async (slot: string): Promise<number> =>
    Number(BigInt(await cluster.control(slot).call<string>('eth_blockNumber')));
  let heads: number[] = [];
  const same = await waitFor(
    async () => {
      heads = await Promise.all(live.map((s) => headOf(s).catch(() => -1)));
      return heads.every((h) => h >= 0 && h === heads[0]) ? true : undefined;
    },
    RECOVERY_TIMEOUT_MS,
    500,
  );
  const blockHashesByNode: Record<string, string[]> = {};
  let chainTxHashes: string[] = [];
  // The transactions are read from the longest chain (any node when they agree).
  const fullIndex = heads.indexOf(Math.max(...heads));
  for (const [i, slot] of live.entries()) {
    const rpc = cluster.control(slot);
    const height = same ? heads[0] : heads[i];
    if (height < 0) continue;
    const full = i === fullIndex;
    const hashes: string[] = [];
    const txs: string[] = [];
    for (let from = 0; from <= height; from += 100) {
      const to = Math.min(height, from + 99);
      const answers = await rpc.batch(
        Array.from({ length: to - from + 1 }, (_, k) => ({
          method: 'eth_getBlockByNumber',
          params: [`0x${(from + k).toString(16)}`, full],
        })),
      );
      for (const a of answers) {
        const b = a.result as BlockHeader | null;
        hashes.push(b?.hash ?? 'missing');
        if (full && b) for (const t of b.transactions) txs.push(typeof t === 'string' ? t : t.hash);
      }
    }
    blockHashesByNode[`${slot}:${cluster.occupantOf(slot)?.name ?? '?'}`] = hashes;
    if (full) chainTxHashes = txs;
  }
  const r = checkChain({ blockHashesByNode, chainTxHashes, acknowledgedTxHashes: acknowledged });
  return {
    name: 'chain',
    valid: r.valid,
    ...(r.counterexample ? { counterexample: r.counterexample } : {}),
    stats: r.stats,
  };
}

/** Tries per node for the final private-state read (500 ms apart). */
const PRIVATE_READ_ATTEMPTS = 30;

/** Each live node's private value of each key (absent keys left out), by the node's name. */
async function readPrivateStates(
  cluster: JepsenCluster,
  keys: readonly string[],
  errors: string[] = [],
): Promise<Record<string, Record<string, string>>> {
  const out: Record<string, Record<string, string>> = {};
  for (const slot of cluster.liveSlots()) {
    // A node may still be restarting or catching up right after the heal: ask again for a while.
    for (let attempt = 0; attempt < PRIVATE_READ_ATTEMPTS; attempt++) {
      try {
        const rpc = cluster.control(slot);
        const status = await rpc.call<{ raftId: number }>('raft_status');
        const members = await rpc.call<Array<{ raftId: number; nodeId: string }>>('raft_cluster');
        const name = members.find((m) => m.raftId === status.raftId)?.nodeId;
        if (name === undefined) break; // not a member (removed): it holds no state to judge
        const state: Record<string, string> = {};
        for (const key of keys) {
          const v = await rpc.call<string | null>('quorate_getPrivateValue', [key, 'latest']);
          if (v !== null) state[key] = v;
        }
        out[name] = state;
        break;
      } catch (err) {
        if (attempt === PRIVATE_READ_ATTEMPTS - 1) errors.push(`${slot}: ${(err as Error).message}`.slice(0, 300));
        await sleepMs(clock, 500);
      }
    }
  }
  return out;
}

async function readFinalLists(cluster: JepsenCluster): Promise<Record<string, string[]> | undefined> {
  for (const slot of cluster.liveSlots()) {
    try {
      const lists: Record<string, string[]> = {};
      for (let k = 0; k < APPEND_KEYS; k++)
        lists[`l${k}`] = await cluster.control(slot).call<string[]>('quorate_getList', [`l${k}`, 'linearizable']);
      return lists;
    } catch {
      // Try the next node.
    }
  }
  return undefined;
}
