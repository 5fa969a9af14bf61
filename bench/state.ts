// `npm run bench:state -- --mib N`: how quorate holds up as its state grows (issue 9 part 5).
// Owns one run end to end: a fresh 3-node cluster on loopback (initCluster + one `quorate start`
// process per node, LevelDB with sync on, as `quorate up`), N MiB of incompressible public state
// written over JSON-RPC, a forced snapshot (a low raft.snapshotEveryEntries in each config.json,
// when this build's config parser accepts the field), a 4th node added the way an operator adds
// one (add-node, `start --join`, raft_addLearner on the leader with the joiner's p2p address and
// so its identity), then the report (bench/state-parts.ts): fill MiB/s, snapshot send/install
// MiB/s, the joiner's time to the leader's head, each node's peak RSS and data-dir size.
//
// Every wait is bounded in count and time; children are stopped and the folder removed on
// success, on error and on Ctrl-C (unless --keep).

import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { CommitWatcher, rpcBatch, type RpcReply, rpcRead, settleSockets, waitCommitted } from '../node/bench.js';
import { initCluster } from '../node/cli/init.js';
import { SystemClock, sleepMs } from '../node/clock.js';
import { ConfigError, parseConfig } from '../node/config.js';
import { addNode } from '../node/join.js';
import { readClusterDir, spawnNode, type LocalNode } from '../node/up.js';
import { freePortBlock } from './etcd-vs.js';
import { Cleanup } from './lifecycle.js';
import {
  KIB,
  MIB,
  NODE_MALLOC_ENV,
  RssSampler,
  STATE_BENCH_HELP,
  StateBenchError,
  folderBytes,
  formatStateReport,
  incompressibleValue,
  parseStateBenchArgs,
  readLogLines,
  snapshotFigures,
  type NodeFigures,
  type StateBenchOptions,
  type StateBenchResult,
} from './state-parts.js';

const clock = new SystemClock();

/** Members of the cluster before the join. */
const CLUSTER_MEMBERS = 3;
/** Ports reserved per kind: the members and the joiner (add-node takes base + 3). */
const PORTS_PER_KIND = CLUSTER_MEMBERS + 1;
/** How long the cluster gets to elect a leader. */
const CLUSTER_READY_TIMEOUT_MS = 60_000;
/** One JSON-RPC request unanswered after this long fails (outcome unknown). */
const REQUEST_TIMEOUT_MS = 30_000;
/** Attempts per transaction before the fill gives up (refusals under load are retried after a pause). */
const MAX_ATTEMPTS_PER_TX = 20;
/** Pause after a refused or failed submission (the node's retryAfterMs when it gives one, at most this). */
const RETRY_PAUSE_MAX_MS = 2_000;
/** The fill must commit at least this fast on average, or it is stopped as stuck (a 2-core machine shared with other work filled at 0.28 MiB/s). */
const FILL_MIN_BYTES_PER_SECOND = 0.2 * MIB;
/** ...with this much time on top for start-up. */
const FILL_BASE_TIMEOUT_MS = 120_000;
/** After the last submission, how long accepted transactions get to commit (then the missing ones are sent again). */
const DRAIN_TIMEOUT_MS = 30_000;
/** Times the transactions that never committed are sent again before the fill gives up. */
const MAX_RESUBMIT_ROUNDS = 3;
/** The joiner must catch up at least this fast on average, else the run stops (with its figures so far). */
const JOIN_MIN_BYTES_PER_SECOND = 0.25 * MIB;
const JOIN_BASE_TIMEOUT_MS = 120_000;
/** How often the joiner's progress is polled. */
const JOIN_POLL_MS = 100;
/** raft_addLearner attempts while the joiner's process comes up (it must listen before it can be added). */
const ADD_ATTEMPTS = 100;
const ADD_RETRY_MS = 300;
/** After reaching the head, how long the joiner gets to fetch every skipped block (the report says if it did not). */
const CAUGHT_UP_TIMEOUT_MS = 60_000;

type Status = { raftId: number; role: string; leader: number | null; appliedIndex: number; privateCatchUp?: unknown };

async function status(url: string): Promise<Status | undefined> {
  try {
    const [r] = await rpcBatch(url, [['raft_status', []]], 2_000);
    return r.result as Status | undefined;
  } catch {
    return undefined;
  }
}

async function logTail(path: string, lines = 10): Promise<string> {
  const text = await readFile(path, 'utf8').catch(() => '(no log)');
  return text.split('\n').slice(-lines).join('\n');
}

/** A node that died during the run (a fatal error in its log, the OOM killer): said at once, with its last lines. */
async function reportExit(n: LocalNode, how: string, out: (line: string) => void): Promise<void> {
  out(`${n.name} EXITED during the run (${how}); its log is ${n.logPath}; last lines:\n${await logTail(n.logPath, 5)}`);
}

/**
 * Sets raft.snapshotEveryEntries (and compactionRetainEntries 0) in every node's config.json when this build's parser accepts it
 * (the nodes run this same checkout: bin/quorate.js loads ../node from here). Else says why.
 */
export async function setSnapshotEvery(
  configPaths: readonly string[],
  entries: number,
): Promise<StateBenchResult['snapshotSetting']> {
  const updated: Array<[string, unknown]> = [];
  for (const path of configPaths) {
    const config = JSON.parse(await readFile(path, 'utf8')) as { raft?: Record<string, unknown> };
    // Compaction keeps no entries behind the snapshot, so a joiner cannot replay the log instead.
    const next = { ...config, raft: { ...config.raft, snapshotEveryEntries: entries, compactionRetainEntries: 0 } };
    try {
      parseConfig(next, path);
    } catch (err) {
      if (err instanceof ConfigError && err.field.startsWith('raft'))
        return {
          applied: false,
          why: `this build's config.json has no raft.snapshotEveryEntries (${err.message}); the joiner gets the leader's last snapshot at the default interval, or the genesis one and the log`,
        };
      throw err;
    }
    updated.push([path, next]);
  }
  for (const [path, next] of updated) await writeFile(path, JSON.stringify(next, null, 2) + '\n', { mode: 0o600 });
  return { applied: true, entries };
}

/** Waits for one leader every member agrees on; returns its index in `nodes`. */
async function waitForLeader(nodes: readonly LocalNode[]): Promise<number> {
  const deadline = clock.monotonicMs() + CLUSTER_READY_TIMEOUT_MS;
  for (;;) {
    const states = await Promise.all(nodes.map((n) => status(n.rpcUrl)));
    const i = states.findIndex((s) => s?.role === 'leader');
    if (i >= 0 && states.every((s) => s?.leader === states[i]!.raftId)) return i;
    if (clock.monotonicMs() > deadline) {
      const tails = await Promise.all(nodes.map(async (n) => `--- ${n.name}\n${await logTail(n.logPath)}`));
      throw new StateBenchError(
        'CLUSTER_START',
        `no leader within ${CLUSTER_READY_TIMEOUT_MS} ms\n${tails.join('\n')}`,
      );
    }
    await sleepMs(clock, 200);
  }
}

function countError(errors: Map<string, number>, message: string): void {
  const m = message.replace(/0x[0-9a-f]+/gi, '0x…').slice(0, 160);
  errors.set(m, (errors.get(m) ?? 0) + 1);
}

/**
 * C workers take transaction numbers from one counter; transaction t puts keys state/t/0 and
 * state/t/1, so a retry whose first attempt did commit rewrites the same keys (the state's size is
 * unchanged). Node-signed from the leader's own account (no forwarding of 28 KiB bodies).
 */
async function fill(
  leaderUrl: string,
  o: StateBenchOptions,
  out: (line: string) => void,
): Promise<StateBenchResult['fill']> {
  const valueBytes = o.valueKib * KIB;
  const transactions = Math.ceil((o.mib * MIB) / (2 * valueBytes));
  const [acc] = await rpcRead(leaderUrl, [['quorate_accounts', []]], REQUEST_TIMEOUT_MS);
  const from = (acc.result as string[] | undefined)?.[0];
  if (!from) throw new StateBenchError('FILL_FAILED', `the leader holds no account: ${acc.error?.message ?? ''}`);
  const watcher = new CommitWatcher(leaderUrl, REQUEST_TIMEOUT_MS);
  await watcher.start();
  const errors = new Map<string, number>();
  /** Per transaction number, every hash it was accepted under (a resubmission adds one). */
  const hashesOf = new Map<number, string[]>();
  const timeoutMs = FILL_BASE_TIMEOUT_MS + ((o.mib * MIB) / FILL_MIN_BYTES_PER_SECOND) * 1000;
  const t0 = clock.monotonicMs();
  let reported = 0;
  let accepted = 0;

  const submit = async (t: number): Promise<void> => {
    const ops = [0, 1].map((i) => ({ type: 'put', key: `state/${t}/${i}`, value: incompressibleValue(valueBytes) }));
    for (let attempt = 1; ; attempt++) {
      if (clock.monotonicMs() - t0 > timeoutMs)
        throw new StateBenchError('TIMEOUT', `the fill did not finish within ${(timeoutMs / 1000).toFixed(0)} s`);
      let pauseMs: number;
      try {
        const [r] = await rpcBatch(leaderUrl, [['quorate_sendTransaction', [{ from, ops }]]], REQUEST_TIMEOUT_MS);
        if (!r.error) {
          hashesOf.set(t, [...(hashesOf.get(t) ?? []), r.result as string]);
          accepted++;
          break;
        }
        countError(errors, `${r.error.code} ${r.error.message}`);
        const after = (r.error.data as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
        pauseMs = typeof after === 'number' ? Math.min(after, RETRY_PAUSE_MAX_MS) : 200;
      } catch (err) {
        countError(errors, (err as Error).message);
        pauseMs = 500;
      }
      if (attempt >= MAX_ATTEMPTS_PER_TX)
        throw new StateBenchError(
          'FILL_FAILED',
          `transaction ${t} refused ${MAX_ATTEMPTS_PER_TX} times; errors: ${JSON.stringify([...errors])}`,
        );
      await sleepMs(clock, pauseMs);
    }
    const done = Math.floor((accepted * 2 * valueBytes) / (64 * MIB));
    if (done > reported) {
      reported = done;
      out(`  submitted ${done * 64} MiB`);
    }
  };
  /** C workers over `numbers`. */
  const submitAll = async (numbers: readonly number[]): Promise<void> => {
    let next = 0;
    await Promise.all(
      Array.from({ length: o.concurrency }, async () => {
        for (let i = next++; i < numbers.length; i = next++) await submit(numbers[i]);
      }),
    );
  };
  const committedAt = (t: number): number | undefined => {
    const times = (hashesOf.get(t) ?? []).map((h) => watcher.committedAt.get(h)).filter((x) => x !== undefined);
    return times.length > 0 ? Math.min(...times) : undefined;
  };

  try {
    await submitAll(Array.from({ length: transactions }, (_, t) => t));
    // A transaction accepted into a pool can still be lost (a deposed leader's pool, a nonce gap
    // behind a lost one): it is sent again. Its keys are its own, so the state is the same either way.
    for (let round = 0; ; round++) {
      await waitCommitted(watcher, [...hashesOf.values()].flat(), DRAIN_TIMEOUT_MS);
      const missing = Array.from({ length: transactions }, (_, t) => t).filter((t) => committedAt(t) === undefined);
      if (missing.length === 0) break;
      if (round >= MAX_RESUBMIT_ROUNDS)
        throw new StateBenchError(
          'FILL_FAILED',
          `${missing.length} of ${transactions} transactions not committed after ${MAX_RESUBMIT_ROUNDS} resubmissions` +
            (watcher.lastError ? ` (last block-follower error: ${watcher.lastError})` : ''),
        );
      errors.set(
        `accepted but not committed within ${DRAIN_TIMEOUT_MS} ms, sent again`,
        (errors.get(`accepted but not committed within ${DRAIN_TIMEOUT_MS} ms, sent again`) ?? 0) + missing.length,
      );
      out(`  ${missing.length} accepted transactions not committed within ${DRAIN_TIMEOUT_MS} ms: sending them again`);
      await submitAll(missing);
    }
  } finally {
    await watcher.stop();
  }
  let last = t0;
  for (let t = 0; t < transactions; t++) last = Math.max(last, committedAt(t) ?? t0);
  return { valueBytes: transactions * 2 * valueBytes, transactions, seconds: (last - t0) / 1000, errors };
}

/**
 * Makes sure a snapshot covers the filled state: E + 1 small transactions, each waited for in its
 * own block, so at least E entries are applied after the fill and every node snapshots once more.
 */
async function forceSnapshot(leaderUrl: string, entries: number): Promise<void> {
  const [acc] = await rpcRead(leaderUrl, [['quorate_accounts', []]], REQUEST_TIMEOUT_MS);
  const from = (acc.result as string[])[0];
  const watcher = new CommitWatcher(leaderUrl, REQUEST_TIMEOUT_MS);
  await watcher.start();
  try {
    for (let i = 0; i <= entries; i++) {
      const [r] = await rpcBatch(
        leaderUrl,
        [['quorate_sendTransaction', [{ from, ops: [{ type: 'put', key: `snapshot-tick/${i}`, value: String(i) }] }]]],
        REQUEST_TIMEOUT_MS,
      );
      if (r.error) throw new StateBenchError('FILL_FAILED', `snapshot tick ${i}: ${r.error.code} ${r.error.message}`);
      if ((await waitCommitted(watcher, [r.result as string], DRAIN_TIMEOUT_MS)) !== 1)
        throw new StateBenchError('TIMEOUT', `snapshot tick ${i} not committed within ${DRAIN_TIMEOUT_MS} ms`);
    }
  } finally {
    await watcher.stop();
  }
}

interface JoinFigures {
  readonly name: string;
  readonly rpcUrl: string;
  readonly logPath: string;
  readonly addedAtWallMs: number;
  readonly joinToHeadSeconds: number;
  readonly joinCaughtUpSeconds: number | undefined;
}

/** add-node, `start --join`, raft_addLearner on the leader; then follows the joiner to the head. */
/** What joinFourthNode needs: the cluster, the target to reach, and the run's shared parts. */
interface JoinOptions {
  readonly clusterDir: string;
  readonly leaderUrl: string;
  /** The leader's applied index when the join starts: the joiner has caught up once it reaches it. */
  readonly targetIndex: number;
  /** Bytes of state filled: the join's time bound grows with it (JOIN_MIN_BYTES_PER_SECOND). */
  readonly stateBytes: number;
  readonly cleanup: Cleanup;
  readonly sampler: RssSampler;
  /** Node name -> role, for the report; the joiner is added. */
  readonly roles: Map<string, string>;
  readonly out: (line: string) => void;
  readonly allocatorEnv: Readonly<Record<string, string>>;
}

async function joinFourthNode(o: JoinOptions): Promise<JoinFigures> {
  const { clusterDir, leaderUrl, targetIndex, stateBytes, cleanup, sampler, roles, out, allocatorEnv } = o;
  const added = await addNode({ dir: clusterDir, rpcUrl: leaderUrl });
  const node: LocalNode = {
    name: added.name,
    configPath: added.configPath,
    rpcUrl: added.rpcUrl,
    p2pAddress: added.p2pAddress,
    tmUrl: added.tmUrl,
    logPath: join(clusterDir, added.name, 'node.log'),
  };
  const child = spawnNode(node, ['--join'], allocatorEnv);
  cleanup.addChild(child, (how) => void reportExit(node, how, out));
  if (child.pid !== undefined) sampler.watch(node.name, child.pid);
  roles.set(node.name, 'joiner (learner)');

  // The p2p address ends in /p2p/<peer id>: the identity the cluster will accept from the joiner.
  let raftId = 0;
  let lastError = '';
  let addedAt = 0;
  let addedAtWallMs = 0;
  for (let attempt = 0; attempt < ADD_ATTEMPTS && raftId === 0; attempt++) {
    // The join is timed from the call that succeeds: the leader may start sending before it answers.
    addedAt = clock.monotonicMs();
    addedAtWallMs = clock.wallMs();
    if (child.exitCode !== null)
      throw new StateBenchError(
        'NODE_EXITED',
        `${node.name} exited before it was added\n${await logTail(node.logPath)}`,
      );
    const [r] = await rpcBatch(
      leaderUrl,
      [['raft_addLearner', [added.p2pAddress, { rpcUrl: added.rpcUrl, tmUrl: added.tmUrl }]]],
      REQUEST_TIMEOUT_MS,
    ).catch((err: Error): RpcReply[] => [{ error: { code: 0, message: err.message } }]);
    if (r.error) {
      lastError = r.error.message;
      await sleepMs(clock, ADD_RETRY_MS);
    } else raftId = Number(r.result);
  }
  if (raftId === 0)
    throw new StateBenchError('JOIN_FAILED', `raft_addLearner failed ${ADD_ATTEMPTS} times: ${lastError}`);

  const timeoutMs = JOIN_BASE_TIMEOUT_MS + (stateBytes / JOIN_MIN_BYTES_PER_SECOND) * 1000;
  let atHead: number | undefined;
  let caughtUp: number | undefined;
  for (;;) {
    const now = clock.monotonicMs();
    if (child.exitCode !== null)
      throw new StateBenchError('NODE_EXITED', `${node.name} exited while joining\n${await logTail(node.logPath)}`);
    const [mine, leader] = await Promise.all([status(node.rpcUrl), status(leaderUrl)]);
    const head = Math.max(targetIndex, leader?.appliedIndex ?? 0);
    if (atHead === undefined && mine && mine.raftId === raftId && mine.appliedIndex >= head) atHead = now;
    if (atHead !== undefined && mine && mine.privateCatchUp === undefined) caughtUp = now;
    if (caughtUp !== undefined) break;
    if (atHead !== undefined && now - atHead > CAUGHT_UP_TIMEOUT_MS) break;
    if (atHead === undefined && now - addedAt > timeoutMs)
      throw new StateBenchError(
        'TIMEOUT',
        `${node.name} did not reach index ${head} within ${(timeoutMs / 1000).toFixed(0)} s (at ${mine?.appliedIndex ?? 'unknown'})\n${await logTail(node.logPath)}`,
      );
    await sleepMs(clock, JOIN_POLL_MS);
  }
  if (atHead === undefined) throw new StateBenchError('TIMEOUT', `${node.name} never reached the head`); // the loop breaks only past it
  return {
    name: node.name,
    rpcUrl: node.rpcUrl,
    logPath: node.logPath,
    addedAtWallMs,
    joinToHeadSeconds: (atHead - addedAt) / 1000,
    joinCaughtUpSeconds: caughtUp === undefined ? undefined : (caughtUp - addedAt) / 1000,
  };
}

export async function runStateBench(o: StateBenchOptions, out: (line: string) => void): Promise<StateBenchResult> {
  const cleanup = new Cleanup();
  const parent = o.dir === undefined ? await mkdtemp(join(tmpdir(), 'quorate-bench-state-')) : undefined;
  const clusterDir = o.dir === undefined ? join(parent!, 'cluster') : resolve(o.dir);
  if (o.dir !== undefined && existsSync(clusterDir))
    throw new StateBenchError('USAGE', `--dir ${clusterDir} exists; give a folder that does not`);
  if (!o.keep) cleanup.add(() => rm(parent ?? clusterDir, { recursive: true, force: true }));
  const sampler = new RssSampler();
  cleanup.add(async () => sampler.stop());
  const onSignal = (signal: NodeJS.Signals) => {
    out(`${signal}: stopping the nodes${o.keep ? '' : ` and removing ${clusterDir}`}`);
    void cleanup.run().then(() => process.exit(130));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);
  try {
    const [rpcPort, p2pPort, tmPort] = [
      await freePortBlock(PORTS_PER_KIND),
      await freePortBlock(PORTS_PER_KIND),
      await freePortBlock(PORTS_PER_KIND),
    ];
    await initCluster({
      nodes: CLUSTER_MEMBERS,
      dir: clusterDir,
      hosts: Array.from({ length: CLUSTER_MEMBERS }, () => '127.0.0.1'),
      rpcPort,
      p2pPort,
      tmPort,
      force: false,
      chainId: 1337,
      keyProtection: 'dev',
    });
    const nodes = await readClusterDir(clusterDir);
    const snapshotSetting = await setSnapshotEvery(
      nodes.map((n) => n.configPath),
      o.snapshotEveryEntries,
    );
    out(
      snapshotSetting.applied
        ? `raft.snapshotEveryEntries=${snapshotSetting.entries} set in each config.json`
        : `NOTE: ${snapshotSetting.why}`,
    );
    // spawnNode adds the allocator setting where this environment does not set it; --malloc-default: none.
    const mallocEnv = o.mallocDefault === true ? {} : NODE_MALLOC_ENV;
    const inEffect = Object.keys(NODE_MALLOC_ENV)
      .map((k) => [k, process.env[k] ?? mallocEnv[k]] as const)
      .filter(([, v]) => v !== undefined)
      .map(([k, v]) => `${k}=${v}`);
    out(`nodes' malloc environment: ${inEffect.length > 0 ? inEffect.join(' ') : "glibc's defaults"}`);
    for (const n of nodes) {
      const child = spawnNode(n, [], mallocEnv);
      cleanup.addChild(child, (how) => void reportExit(n, how, out));
      if (child.pid !== undefined) sampler.watch(n.name, child.pid);
    }
    sampler.start();
    const leaderIdx = await waitForLeader(nodes);
    const leader = nodes[leaderIdx];
    const roles = new Map(nodes.map((n, i) => [n.name, i === leaderIdx ? 'leader' : 'follower']));
    out(`cluster up in ${clusterDir}; leader ${leader.name}; filling ${o.mib} MiB`);

    await settleSockets();
    sampler.phase('fill');
    const filled = await fill(leader.rpcUrl, o, out);
    sampler.phase('join');
    out(`filled ${(filled.valueBytes / MIB).toFixed(1)} MiB in ${filled.seconds.toFixed(1)} s`);
    if (snapshotSetting.applied) await forceSnapshot(leader.rpcUrl, snapshotSetting.entries);
    const targetIndex = (await status(leader.rpcUrl))?.appliedIndex ?? 0;
    out(`adding a 4th node (leader's applied index ${targetIndex})`);

    const j = await joinFourthNode({
      clusterDir,
      leaderUrl: leader.rpcUrl,
      targetIndex,
      stateBytes: filled.valueBytes,
      cleanup,
      sampler,
      roles,
      out,
      allocatorEnv: mallocEnv,
    });
    const snap = snapshotFigures(
      await readLogLines(leader.logPath),
      await readLogLines(j.logPath),
      j.addedAtWallMs,
      j.joinToHeadSeconds,
      filled.valueBytes,
    );

    sampler.stop();
    const names = [...nodes.map((n) => n.name), j.name];
    // Roles at the end (a leader may have changed under the load); a node that does not answer keeps its last known one.
    const urls = new Map([...nodes.map((n) => [n.name, n.rpcUrl] as const), [j.name, j.rpcUrl] as const]);
    for (const name of names) {
      const s = await status(urls.get(name)!);
      if (s) roles.set(name, s.role === 'learner' || name === j.name ? `joiner (${s.role})` : s.role);
    }
    // Stop the nodes before sizing their folders, so LevelDB has written what it holds.
    await cleanup.stopChildren();
    const figures: NodeFigures[] = [];
    for (const name of names)
      figures.push({
        name,
        role: roles.get(name) ?? '',
        peakRssBytes: sampler.peak(name),
        peakAnonBytes: sampler.peakAnon(name),
        fillRssBytes: sampler.phasePeak(name, 'fill'),
        joinRssBytes: sampler.phasePeak(name, 'join'),
        dataDirBytes: await folderBytes(join(clusterDir, name, 'data')),
      });
    return {
      options: o,
      snapshotSetting,
      fill: filled,
      targetIndex,
      snapshotSent: snap.sent,
      snapshotInstalled: snap.installed,
      joinToHeadSeconds: j.joinToHeadSeconds,
      joinCaughtUpSeconds: j.joinCaughtUpSeconds,
      nodes: figures,
      clusterDir,
      kept: o.keep,
    };
  } finally {
    await cleanup.run();
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}

async function main(argv: readonly string[]): Promise<number> {
  const out = (line: string) => process.stdout.write(`${line}\n`);
  try {
    const o = parseStateBenchArgs(argv);
    if (o === 'help') {
      out(STATE_BENCH_HELP);
      return 0;
    }
    const result = await runStateBench(o, out);
    out('');
    for (const line of formatStateReport(result)) out(line);
    return 0;
  } catch (err) {
    process.stderr.write(`bench:state: ${(err as Error).message}\n`);
    return err instanceof StateBenchError && err.code === 'USAGE' ? 2 : 1;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href)
  void main(process.argv.slice(2)).then((code) => process.exit(code));
