// `npm run bench:etcd-vs`: quorate against etcd, side by side in one run, on this machine's loopback.
// Owns the whole comparison: checks that an `etcd` binary is there (Debian's etcd-server; a
// bench-time dependency only, never a runtime one), starts a 3-member etcd cluster in a temp dir,
// drives it with the etcd3 gRPC client (C puts in flight for S seconds), stops it and removes the
// dir; then starts a fresh 3-node quorate cluster the way `quorate up` does (init + one process per
// node), drives it with the same shape of load over JSON-RPC (node:http, keep-alive), stops it, and
// prints one table: committed puts/s, p50/p99 latency, and quorate's ratio to etcd.
//
// Latency is submit-to-commit on both sides: an etcd put answers once committed; a quorate
// transaction is answered when accepted into the pool, so its commit is found by following blocks.

import { spawn, spawnSync } from 'node:child_process';
import { appendFile, mkdtemp, readFile, rm } from 'node:fs/promises';
import { openSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Cleanup, PORT_SEARCH_ATTEMPTS, findFreePortBlock, intArg as sharedIntArg } from './lifecycle.js';
import { Etcd3 } from 'etcd3';
import { generateAccountKey, signTransaction, type AccountKey } from '../node/chain/index.js';
import {
  CommitWatcher,
  ownAccounts,
  percentile,
  rpcBatch,
  rpcRead,
  settleSockets,
  drainCommits,
} from '../node/bench.js';
import { initCluster } from '../node/cli/init.js';
import { formatTable } from '../node/cli/table.js';
import { readClusterDir, spawnNode } from '../node/up.js';

/** Bytes of each etcd put's value (the issue's measurement). */
export const ETCD_VALUE_BYTES = 256;
/** Bytes of each quorate put's value. */
export const QUORATE_VALUE_BYTES = 200;
/** Members of each cluster. */
export const CLUSTER_MEMBERS = 3;
/** Upper bounds of the flags. */
export const MAX_SECONDS = 3_600;
export const MAX_CONCURRENCY = 4_096;
export const MAX_BATCH = 256;
/** How long a cluster gets to elect a leader and answer before the run gives up. */
const CLUSTER_READY_TIMEOUT_MS = 60_000;
/** One request (an etcd put, a quorate JSON-RPC request) unanswered after this long fails (outcome unknown). */
const REQUEST_TIMEOUT_MS = 30_000;
/** After the last quorate submission, how long accepted transactions get to commit. */
const DRAIN_TIMEOUT_MS = 30_000;
/**
 * --raw: transactions signed before the clock, per second of the run, in all (shared by the
 * submitters). Above the issue's measured rates; a submitter that runs out signs as it goes.
 */
const RAW_PRESIGN_PER_SECOND = 2_000;
/** Children get this long after SIGTERM before SIGKILL. */

export const ETCD_VS_HELP = `Usage: npm run bench:etcd-vs -- [--seconds S] [--concurrency C] [--batch B] [--raw]
                                [--etcd-only | --quorate-only] [--etcd PATH]

Runs a 3-member etcd (needs Debian's etcd-server: apt-get install etcd-server) and then a
3-node quorate, each on loopback in a temp dir, under the same closed-loop load (C requests
in flight for S seconds, puts with unique keys spread over the members), and prints committed
puts/s, p50/p99 submit-to-commit latency, and the ratio quorate/etcd.

  --seconds S       load duration for each system (default 15)
  --concurrency C   requests in flight (default 64)
  --batch B         quorate: transactions per JSON-RPC batch request (default 1)
  --raw             quorate: client-signed quorate_sendRawTransaction (signed before the
                    clock) instead of node-signed quorate_sendTransaction
  --etcd-only       run only the etcd side
  --quorate-only    run only the quorate side (no etcd needed)
  --etcd PATH       the etcd binary (default: etcd on PATH)
`;

export interface EtcdVsOptions {
  readonly seconds: number;
  readonly concurrency: number;
  readonly batch: number;
  readonly raw: boolean;
  readonly runEtcd: boolean;
  readonly runQuorate: boolean;
  readonly etcdBin: string;
}

export type EtcdVsErrorCode = 'USAGE' | 'ETCD_MISSING' | 'CLUSTER_START' | 'NO_FREE_PORTS';

export class EtcdVsError extends Error {
  constructor(
    readonly code: EtcdVsErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'EtcdVsError';
  }
}

function intArg(values: Record<string, unknown>, name: string, fallback: number, min: number, max: number): number {
  return sharedIntArg(values, name, fallback, min, max, (m) => new EtcdVsError('USAGE', m));
}

export function parseEtcdVsArgs(argv: readonly string[]): EtcdVsOptions | 'help' {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        seconds: { type: 'string' },
        concurrency: { type: 'string' },
        batch: { type: 'string' },
        raw: { type: 'boolean' },
        'etcd-only': { type: 'boolean' },
        'quorate-only': { type: 'boolean' },
        etcd: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (err) {
    throw new EtcdVsError('USAGE', (err as Error).message.split('. ')[0]);
  }
  if (values.help) return 'help';
  if (values['etcd-only'] && values['quorate-only'])
    throw new EtcdVsError('USAGE', '--etcd-only and --quorate-only exclude each other');
  if (values['etcd-only'] && (values.raw || values.batch !== undefined))
    throw new EtcdVsError('USAGE', '--raw and --batch shape the quorate side; not with --etcd-only');
  return {
    seconds: intArg(values, 'seconds', 15, 1, MAX_SECONDS),
    concurrency: intArg(values, 'concurrency', 64, 1, MAX_CONCURRENCY),
    batch: intArg(values, 'batch', 1, 1, MAX_BATCH),
    raw: values.raw === true,
    runEtcd: values['quorate-only'] !== true,
    runQuorate: values['etcd-only'] !== true,
    etcdBin: typeof values.etcd === 'string' ? values.etcd : 'etcd',
  };
}

/** What one system did under the load. */
export interface LoadResult {
  readonly system: string;
  readonly path: string;
  readonly committed: number;
  readonly seconds: number;
  readonly perSecond: number;
  readonly p50Ms: number;
  readonly p99Ms: number;
  /** Puts that failed or were refused, by message. */
  readonly errors: ReadonlyMap<string, number>;
}

function countError(errors: Map<string, number>, message: string): void {
  const m = message.replace(/0x[0-9a-f]+/gi, '0x…').slice(0, 160);
  errors.set(m, (errors.get(m) ?? 0) + 1);
}

/** A value of exactly `bytes` bytes (ASCII) that starts with the key, so no two are alike. */
function valueOf(key: string, bytes: number): string {
  return key.padEnd(bytes, '.').slice(0, bytes);
}

/** `count` consecutive free loopback ports (bench/lifecycle.ts). */
export async function freePortBlock(count: number): Promise<number> {
  const base = await findFreePortBlock(count);
  if (base === undefined)
    throw new EtcdVsError(
      'NO_FREE_PORTS',
      `no ${count} consecutive free loopback ports after ${PORT_SEARCH_ATTEMPTS} tries`,
    );
  return base;
}

/** Checks that the etcd binary runs; the error says how to install it. */
export function checkEtcd(bin: string): string {
  const r = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  if (r.error || r.status !== 0)
    throw new EtcdVsError(
      'ETCD_MISSING',
      `cannot run "${bin} --version" (${r.error?.message ?? `exit ${r.status}`}). The etcd comparison needs etcd 3.4 ` +
        `(a bench-time dependency only): apt-get install etcd-server, or pass --etcd PATH, or use --quorate-only.`,
    );
  return r.stdout.split('\n')[0].trim();
}

async function logTail(path: string, lines = 10): Promise<string> {
  const text = await readFile(path, 'utf8').catch(() => '(no log)');
  return text.split('\n').slice(-lines).join('\n');
}

/** Starts a 3-member etcd cluster on loopback in `dir`; resolves with its client URLs once every member answers. */
async function startEtcd(bin: string, dir: string, cleanup: Cleanup): Promise<string[]> {
  const base = await freePortBlock(CLUSTER_MEMBERS * 2);
  const members = Array.from({ length: CLUSTER_MEMBERS }, (_, i) => ({
    name: `etcd${i}`,
    client: `http://127.0.0.1:${base + 2 * i}`,
    peer: `http://127.0.0.1:${base + 2 * i + 1}`,
    log: join(dir, `etcd${i}.log`),
  }));
  const initialCluster = members.map((m) => `${m.name}=${m.peer}`).join(',');
  for (const m of members) {
    const fd = openSync(m.log, 'a');
    // Defaults otherwise (fsync on every commit, 100 ms heartbeat, 1 s election): etcd as deployed.
    const child = spawn(
      bin,
      [
        `--name=${m.name}`,
        `--data-dir=${join(dir, m.name)}`,
        `--listen-client-urls=${m.client}`,
        `--advertise-client-urls=${m.client}`,
        `--listen-peer-urls=${m.peer}`,
        `--initial-advertise-peer-urls=${m.peer}`,
        `--initial-cluster=${initialCluster}`,
        '--initial-cluster-state=new',
        `--initial-cluster-token=bench-${process.pid}-${base}`,
        '--logger=zap',
        '--log-outputs=stderr',
        '--log-level=warn',
      ],
      { stdio: ['ignore', fd, fd] },
    );
    closeSync(fd);
    // A failed spawn is reported by the readiness check below (with the log); do not crash here.
    child.on('error', (err) => void appendFile(m.log, `spawn failed: ${err.message}\n`).catch(() => {}));
    cleanup.addChild(child);
  }
  const urls = members.map((m) => m.client);
  const deadline = Date.now() + CLUSTER_READY_TIMEOUT_MS;
  for (const url of urls) {
    const client = new Etcd3({ hosts: url, dialTimeout: 2_000 });
    try {
      for (;;) {
        try {
          await client.put(`bench-ready/${url}`).value('1');
          break;
        } catch (err) {
          if (Date.now() > deadline)
            throw new EtcdVsError(
              'CLUSTER_START',
              `etcd at ${url} did not answer within ${CLUSTER_READY_TIMEOUT_MS} ms: ${(err as Error).message}\n${await logTail(members[urls.indexOf(url)].log)}`,
            );
          await new Promise((r) => setTimeout(r, 200));
        }
      }
    } finally {
      client.close();
    }
  }
  return urls;
}

/** C puts in flight for S seconds, worker w on member w mod 3, each key unique. */
async function etcdLoad(urls: readonly string[], o: EtcdVsOptions): Promise<LoadResult> {
  const clients = urls.map((hosts) => new Etcd3({ hosts, dialTimeout: 5_000 }));
  const latencies: number[] = [];
  const errors = new Map<string, number>();
  try {
    const t0 = performance.now();
    const endAt = t0 + o.seconds * 1000;
    await Promise.all(
      Array.from({ length: o.concurrency }, async (_, w) => {
        const client = clients[w % clients.length];
        for (let n = 0; performance.now() < endAt; n++) {
          const key = `bench/${w}/${n}`;
          const started = performance.now();
          try {
            await withTimeout(client.put(key).value(valueOf(key, ETCD_VALUE_BYTES)).exec(), REQUEST_TIMEOUT_MS);
            latencies.push(performance.now() - started);
          } catch (err) {
            countError(errors, (err as Error).message);
          }
        }
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    latencies.sort((a, b) => a - b);
    return {
      system: 'etcd 3.4',
      path: `etcd3 gRPC put, ${ETCD_VALUE_BYTES} B`,
      committed: latencies.length,
      seconds,
      perSecond: latencies.length / seconds,
      p50Ms: percentile(latencies, 50),
      p99Ms: percentile(latencies, 99),
      errors,
    };
  } finally {
    for (const c of clients) c.close();
  }
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms: outcome unknown`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Starts a fresh 3-node quorate in `dir` (init + one `quorate start` process each, as `quorate up`). */
async function startQuorate(dir: string, cleanup: Cleanup): Promise<string[]> {
  const [rpcPort, p2pPort, tmPort] = [
    await freePortBlock(CLUSTER_MEMBERS),
    await freePortBlock(CLUSTER_MEMBERS),
    await freePortBlock(CLUSTER_MEMBERS),
  ];
  const clusterDir = join(dir, 'cluster');
  await initCluster({
    nodes: CLUSTER_MEMBERS,
    dir: clusterDir,
    hosts: Array.from({ length: CLUSTER_MEMBERS }, () => '127.0.0.1'),
    rpcPort,
    p2pPort,
    tmPort,
    force: false,
    chainId: 1337,
  });
  const nodes = await readClusterDir(clusterDir);
  for (const n of nodes) {
    const child = spawnNode(n);
    cleanup.addChild(child);
  }
  const urls = nodes.map((n) => n.rpcUrl);
  const deadline = Date.now() + CLUSTER_READY_TIMEOUT_MS;
  for (;;) {
    const states = await Promise.all(
      urls.map((u) =>
        rpcBatch(u, [['raft_status', []]], 2_000)
          .then(([r]) => r.result as { role: string; leader: number | null } | undefined)
          .catch(() => undefined),
      ),
    );
    const leaders = new Set(states.map((s) => s?.leader ?? null));
    if (states.some((s) => s?.role === 'leader') && leaders.size === 1 && !leaders.has(null)) break;
    if (Date.now() > deadline) {
      const tails = await Promise.all(nodes.map(async (n) => `--- ${n.name}\n${await logTail(n.logPath)}`));
      throw new EtcdVsError(
        'CLUSTER_START',
        `quorate elected no leader within ${CLUSTER_READY_TIMEOUT_MS} ms\n${tails.join('\n')}`,
      );
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  return urls;
}

/** Longest a worker waits on one -32010 data.retryAfterMs before its next request. */
const MAX_RETRY_AFTER_WAIT_MS = 1_000;

/**
 * C JSON-RPC requests in flight for S seconds, worker w on node w mod 3, B transactions each, one
 * put of a unique key apiece. Node-signed: `from` is the node's own account. --raw: each worker
 * has an account of its own, its transactions signed before the clock; a refused or failed one
 * leaves its nonce's fate unknown, so the worker goes on with a fresh account.
 */
async function quorateLoad(urls: readonly string[], o: EtcdVsOptions): Promise<LoadResult> {
  const [id] = await rpcRead(urls[0], [['eth_chainId', []]], REQUEST_TIMEOUT_MS);
  const chainId = Number(BigInt(id.result as string));
  const accounts = o.raw ? [] : await ownAccounts(urls, REQUEST_TIMEOUT_MS);
  const sign = (key: AccountKey, w: number, nonce: number, account: number): string => {
    const k = `bench/${w}.${account}/${nonce}`;
    const tx = signTransaction(
      { chainId, nonce, ops: [{ type: 'put', key: k, value: valueOf(k, QUORATE_VALUE_BYTES) }] },
      key,
    );
    return `0x${Buffer.from(tx.encoded).toString('hex')}`;
  };
  const perWorker = o.raw ? Math.ceil((RAW_PRESIGN_PER_SECOND * o.seconds) / o.concurrency) : 0;
  const signStarted = performance.now();
  const workers = Array.from({ length: o.concurrency }, (_, w) => {
    const key = generateAccountKey();
    return { key, presigned: Array.from({ length: perWorker }, (_, n) => sign(key, w, n, 0)) };
  });
  if (o.raw)
    process.stdout.write(
      `quorate --raw: signed ${perWorker * o.concurrency} transactions in ${((performance.now() - signStarted) / 1000).toFixed(1)} s before the clock\n`,
    );

  await settleSockets();
  const watcher = new CommitWatcher(urls[0], REQUEST_TIMEOUT_MS);
  await watcher.start();
  const submittedAt = new Map<string, number>();
  const errors = new Map<string, number>();
  const t0 = performance.now();
  const endAt = t0 + o.seconds * 1000;
  await Promise.all(
    workers.map(async (worker, w) => {
      const url = urls[w % urls.length];
      let { key, presigned } = worker;
      let account = 0;
      let nonce = 0;
      for (let n = 0; performance.now() < endAt; n += o.batch) {
        const calls: Array<readonly [string, readonly unknown[]]> = [];
        for (let j = 0; j < o.batch; j++) {
          if (o.raw) {
            calls.push(['quorate_sendRawTransaction', [presigned[nonce] ?? sign(key, w, nonce, account)]]);
            nonce++;
          } else {
            const k = `bench/${w}/${n + j}`;
            const tx = {
              from: accounts[w % accounts.length],
              ops: [{ type: 'put', key: k, value: valueOf(k, QUORATE_VALUE_BYTES) }],
            };
            calls.push(['quorate_sendTransaction', [tx]]);
          }
        }
        const started = performance.now();
        let failed = false;
        let retryAfterMs = 0;
        try {
          for (const r of await rpcBatch(url, calls, REQUEST_TIMEOUT_MS)) {
            if (r.error) {
              failed = true;
              const data = r.error.data as { reason?: unknown; retryAfterMs?: unknown } | undefined;
              // A full pool says when to come back: a client that honours it, as users' should,
              // instead of spinning on refusals that cost the nodes' CPU. Counted by reason (the
              // message carries the varying figures).
              if (typeof data?.retryAfterMs === 'number') {
                retryAfterMs = Math.max(retryAfterMs, data.retryAfterMs);
                countError(errors, `${r.error.code} ${String(data.reason)} (waited data.retryAfterMs)`);
              } else countError(errors, `${r.error.code} ${r.error.message}`);
            } else submittedAt.set(r.result as string, started);
          }
        } catch (err) {
          failed = true;
          countError(errors, (err as Error).message);
        }
        if (retryAfterMs > 0) await new Promise((r) => setTimeout(r, Math.min(retryAfterMs, MAX_RETRY_AFTER_WAIT_MS)));
        if (failed && o.raw) {
          key = generateAccountKey();
          presigned = [];
          account++;
          nonce = 0;
        }
      }
    }),
  );
  const { latencies, lastCommitAt: lastCommit } = await drainCommits(watcher, submittedAt, DRAIN_TIMEOUT_MS, t0);
  const lost = submittedAt.size - latencies.length;
  if (lost > 0) errors.set(`accepted but not committed within ${DRAIN_TIMEOUT_MS} ms after the run`, lost);
  const seconds = (lastCommit - t0) / 1000;
  return {
    system: 'quorate',
    path: `${o.raw ? 'quorate_sendRawTransaction' : 'quorate_sendTransaction'}${o.batch > 1 ? ` x${o.batch}/request` : ''}, ${QUORATE_VALUE_BYTES} B`,
    committed: latencies.length,
    seconds,
    perSecond: seconds > 0 ? latencies.length / seconds : 0,
    p50Ms: percentile(latencies, 50),
    p99Ms: percentile(latencies, 99),
    errors,
  };
}

/** The one table the run ends with, plus the ratio line and any errors. */
export function formatComparison(results: readonly LoadResult[]): string {
  const rows = results.map((r) => [
    r.system,
    r.path,
    String(r.committed),
    r.seconds.toFixed(1),
    r.perSecond.toFixed(0),
    r.p50Ms.toFixed(1),
    r.p99Ms.toFixed(1),
    String([...r.errors.values()].reduce((a, b) => a + b, 0)),
  ]);
  const lines = [formatTable(['system', 'path', 'committed', 'seconds', 'puts/s', 'p50 ms', 'p99 ms', 'errors'], rows)];
  const etcd = results.find((r) => r.system.startsWith('etcd'));
  const quorate = results.find((r) => r.system === 'quorate');
  if (etcd && quorate && etcd.perSecond > 0)
    lines.push(`ratio quorate/etcd puts/s = ${(quorate.perSecond / etcd.perSecond).toFixed(2)}x`);
  for (const r of results)
    for (const [msg, n] of r.errors) lines.push(`${r.system} error count=${n} message=${JSON.stringify(msg)}`);
  return lines.join('\n');
}

export async function runEtcdVs(o: EtcdVsOptions, out: (line: string) => void): Promise<LoadResult[]> {
  const results: LoadResult[] = [];
  const header = `load: ${o.concurrency} in flight for ${o.seconds} s per system, ${CLUSTER_MEMBERS} members each, loopback`;
  out(header);
  const phase = async (name: string, body: (dir: string, cleanup: Cleanup) => Promise<LoadResult>): Promise<void> => {
    const dir = await mkdtemp(join(tmpdir(), `quorate-bench-${name}-`));
    const cleanup = new Cleanup();
    cleanup.add(() => rm(dir, { recursive: true, force: true }));
    // Ctrl-C or kill: stop the children and remove the dir before leaving.
    const onSignal = (signal: NodeJS.Signals) => {
      out(`${signal}: stopping ${name} and removing ${dir}`);
      void cleanup.run().then(() => process.exit(130));
    };
    process.once('SIGINT', onSignal);
    process.once('SIGTERM', onSignal);
    try {
      results.push(await body(dir, cleanup));
    } finally {
      await cleanup.run();
      process.off('SIGINT', onSignal);
      process.off('SIGTERM', onSignal);
    }
  };
  if (o.runEtcd) {
    const version = checkEtcd(o.etcdBin);
    await phase('etcd', async (dir, cleanup) => {
      const urls = await startEtcd(o.etcdBin, dir, cleanup);
      out(`etcd up (${version}) at ${urls.join(' ')}; running the load`);
      return etcdLoad(urls, o);
    });
  }
  if (o.runQuorate)
    await phase('quorate', async (dir, cleanup) => {
      const urls = await startQuorate(dir, cleanup);
      out(`quorate up at ${urls.join(' ')}; running the load`);
      return quorateLoad(urls, o);
    });
  out('');
  out(formatComparison(results));
  return results;
}

async function main(argv: readonly string[]): Promise<number> {
  const out = (line: string) => process.stdout.write(`${line}\n`);
  try {
    const o = parseEtcdVsArgs(argv);
    if (o === 'help') {
      out(ETCD_VS_HELP);
      return 0;
    }
    await runEtcdVs(o, out);
    return 0;
  } catch (err) {
    process.stderr.write(`bench:etcd-vs: ${(err as Error).message}\n`);
    return err instanceof EtcdVsError && err.code === 'USAGE' ? 2 : 1;
  }
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href)
  void main(process.argv.slice(2)).then((code) => process.exit(code));
