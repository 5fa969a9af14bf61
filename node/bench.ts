// `quorate bench`: a load generator against running nodes. It signs transactions itself (fresh
// accounts, one per concurrent submitter, so nonces never collide), submits them round-robin to
// the given RPC URLs with quorate_sendRawTransaction, watches the chain for the blocks that
// include them, and prints committed transactions per second and submit-to-commit latency
// percentiles. It ends by checking that every member has the same block hash at a common height
// (block hashes chain their parents, so one equal hash means equal chains below it).

import http from 'node:http';
import https from 'node:https';
import { generateAccountKey, signTransaction, type AccountKey, type Transaction } from './chain/index.js';
import type { BenchOptions } from './cli/bench.js';
import { HttpRpcClient, defaultRpcCredentials } from './rpc/client.js';
import { SystemClock, sleepMs } from './clock.js';

/** The real clock (node/clock.ts): this module has no injected one. */
const clock = new SystemClock();

/** How often the committed chain is polled for new blocks. */
const COMMIT_POLL_MS = 10;
/**
 * Blocks asked for in one poll: the next heights after the last one seen, in one JSON-RPC batch
 * (heights not reached yet answer null). A full answer is followed at once by the next poll.
 */
const BLOCKS_PER_POLL = 32;
/**
 * Transactions signed before the clock starts, in all. Signing on the clock would have the client
 * compete with the nodes for the same cores (an Ed25519 signature costs about as much as a
 * verification); past this bound (memory: ~1 KiB each), submitters sign the rest as they go.
 */
export const MAX_PRESIGNED_TXS = 1_000_000;
/** After the last submission, how long to wait for stragglers to commit. */
const DRAIN_TIMEOUT_MS = 30_000;
/** How long members get to reach the same height for the agreement check. */
const AGREEMENT_TIMEOUT_MS = 15_000;

/** Times one client-signed batch is sent again after a full pool's -32010 (then it counts as rejected). */
export const MAX_POOL_FULL_RESENDS = 20;
/** Longest one wait on data.retryAfterMs. */
export const MAX_RETRY_AFTER_WAIT_MS = 1_000;

/** data.retryAfterMs of a -32010 answer, if it carries one. */
function retryAfterOf(r: { error?: { code?: number; data?: unknown } }): number | undefined {
  if (r.error?.code !== -32010) return undefined;
  const after = (r.error.data as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
  return typeof after === 'number' && Number.isFinite(after) && after >= 0 ? after : undefined;
}

export interface BenchResult {
  readonly submitted: number;
  readonly accepted: number;
  readonly rejected: number;
  readonly committed: number;
  readonly seconds: number;
  readonly committedPerSecond: number;
  readonly latencyMs: { p50: number; p95: number; p99: number; max: number };
  readonly acceptLatencyMs: { p50: number; p99: number };
  readonly errors: ReadonlyMap<string, number>;
  readonly agreement: { height: number; members: number; agree: boolean; detail: string };
  /** Per second of submission (from the start): transactions submitted then, and their commit latency. */
  readonly timeline: ReadonlyArray<{
    second: number;
    submitted: number;
    committed: number;
    p50: number;
    p99: number;
    max: number;
  }>;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export async function benchmark(
  options: BenchOptions,
  log: (line: string) => void = () => {},
  checkChains = true,
): Promise<BenchResult> {
  const clients = options.rpcUrls.map((u) => new HttpRpcClient(u, { timeoutMs: 30_000 }));
  const chainId = Number(BigInt(await clients[0].call<string>('eth_chainId')));
  const privateFor = options.private ? await privatePartyKeys(clients[0]) : undefined;
  const senders = options.private ? await nodeAccounts(clients, options.rpcUrls) : undefined;

  const submitAt = new Map<string, number>();
  const commitAt = new Map<string, number>();
  /** --private: transactions seen committed before quorate_sendTransaction returned their hash. */
  const committedEarly = new Map<string, number>();
  const acceptLatencies: number[] = [];
  const errors = new Map<string, number>();
  let accepted = 0;
  let rejected = 0;
  /** Batches sent again after a -32010 with data.retryAfterMs (client-signed path). */
  let poolFullResends = 0;
  let next = 0;
  // One account per submitter (its nonces never collide with another's), with its transactions
  // signed before the clock starts. Submitters take work as they come free, so each gets a share
  // with some slack; one that runs past its share signs the rest as it goes.
  const signStarted = performance.now();
  const share = senders
    ? 0
    : Math.min(
        Math.ceil((options.txs / options.concurrency) * 1.25) + batchSizeOf(options),
        Math.floor(MAX_PRESIGNED_TXS / options.concurrency),
      );
  const signers = Array.from({ length: options.concurrency }, (_, w) => {
    const key: AccountKey = generateAccountKey();
    return { key, presigned: Array.from({ length: share }, (_, n) => benchTx(chainId, key, w, n)) };
  });
  if (share > 0)
    log(
      `signed ${share * options.concurrency} transactions in ${((performance.now() - signStarted) / 1000).toFixed(2)} s before the clock started`,
    );
  const t0 = performance.now();

  // Commit watcher: follows the leader's head (the first node to apply a block), falling back to
  // the first URL when no leader is known.
  const watchUrl = await leaderRpcUrl(clients[0]).catch(() => options.rpcUrls[0]);
  const watchClient = new HttpRpcClient(watchUrl, { timeoutMs: 30_000 });
  let watching = true;
  let seenHeight = Number(BigInt(await watchClient.call<string>('eth_blockNumber')));
  const watcher = (async () => {
    while (watching) {
      let full = false;
      try {
        // node:http with the keep-alive agent, one request per poll: the watcher runs 100 times a
        // second on the same cores as the nodes, so it must cost little on both sides.
        const answers = await postBatch(
          watchUrl,
          Array.from(
            { length: BLOCKS_PER_POLL },
            (_, i) => ['eth_getBlockByNumber', [`0x${(seenHeight + 1 + i).toString(16)}`, false]] as const,
          ),
        );
        const now = performance.now();
        let got = 0;
        for (const a of answers) {
          if (a.error) throw new Error(`eth_getBlockByNumber: ${a.error.message}`);
          const block = a.result as { transactions: string[] } | null;
          if (block === null) break;
          got++;
          for (const h of block.transactions) {
            if (submitAt.has(h)) commitAt.set(h, now);
            // --private learns a hash only when the node answers, which may be after its block
            // was seen here: remember it (bounded by --txs) so the submitter can match it.
            else if (senders && committedEarly.size < options.txs) committedEarly.set(h, now);
          }
        }
        seenHeight += got;
        full = got === BLOCKS_PER_POLL;
      } catch (err) {
        log(`watcher: ${(err as Error).message}`);
      }
      if (!full) await sleepMs(clock, COMMIT_POLL_MS);
    }
  })();

  const batchSize = batchSizeOf(options);
  const submitter = async (w: number): Promise<void> => {
    // A submitter whose request failed restarts as w + concurrency with a fresh account (the failed
    // nonces may or may not have been taken): it signs as it goes.
    const { key, presigned } = signers[w] ?? { key: generateAccountKey(), presigned: [] };
    let nonce = 0;
    const url = options.rpcUrls[w % options.rpcUrls.length];
    for (;;) {
      const first = next;
      if (first >= options.txs) return;
      const count = Math.min(batchSize, options.txs - first);
      next += count;
      if (options.rate > 0) {
        const due = t0 + (first * 1000) / options.rate;
        const wait = due - performance.now();
        if (wait > 0) await sleepMs(clock, wait);
      }
      const started = performance.now();
      if (senders && privateFor) {
        // The node signs (quorate_sendTransaction with an account it holds); `count` of them in one
        // JSON-RPC batch over node:http, which the node runs concurrently.
        const from = senders[w % senders.length];
        const recipients = privateFor.filter((k) => k !== from.enclaveKey).slice(0, 1);
        const calls = Array.from(
          { length: count },
          (_, j) =>
            [
              'quorate_sendTransaction',
              [
                {
                  from: from.address,
                  ops: [{ type: 'put' as const, key: `bench/${w}/${first + j}`, value: `v${first + j}` }],
                  privateFor: recipients,
                },
              ],
            ] as const,
        );
        try {
          const results = await postBatch(from.rpcUrl, calls);
          const took = performance.now() - started;
          for (const r of results) {
            if (r.error) {
              rejected++;
              countError(errors, new Error(`quorate_sendTransaction: ${r.error.message}`));
              continue;
            }
            const hash = r.result as string;
            submitAt.set(hash, started);
            const early = committedEarly.get(hash);
            if (early !== undefined) commitAt.set(hash, early);
            accepted++;
            acceptLatencies.push(took);
          }
        } catch (err) {
          rejected += count;
          countError(errors, err);
        }
        continue;
      }
      // Client-signed transactions, `count` of them (consecutive nonces) in one JSON-RPC batch.
      const txs = Array.from({ length: count }, (_, j) => presigned[nonce + j] ?? benchTx(chainId, key, w, nonce + j));
      nonce += count;
      for (const tx of txs) submitAt.set(tx.hashHex, started);
      let failed = false;
      let sending = txs;
      try {
        for (let attempt = 1; ; attempt++) {
          const results = await postBatch(
            url,
            sending.map(
              (tx) => ['quorate_sendRawTransaction', [`0x${Buffer.from(tx.encoded).toString('hex')}`]] as const,
            ),
          );
          const took = performance.now() - started;
          // A full pool (-32010 with data.retryAfterMs) refuses from some transaction on (the pool
          // refuses an account's later nonces after a refused one): a client that honours it waits
          // that long and sends the same transactions again; the latency counts from the first send.
          const full = results.findIndex((r) => retryAfterOf(r) !== undefined);
          const resend =
            full >= 0 && attempt < MAX_POOL_FULL_RESENDS && results.slice(full).every((r) => r.error !== undefined);
          results.slice(0, resend ? full : results.length).forEach((r, j) => {
            if (r.error) {
              failed = true;
              rejected++;
              submitAt.delete(sending[j].hashHex);
              countError(errors, new Error(`quorate_sendRawTransaction: ${r.error.message}`));
            } else {
              accepted++;
              acceptLatencies.push(took);
            }
          });
          if (!resend || failed) break;
          poolFullResends++;
          await sleepMs(clock, Math.min(retryAfterOf(results[full])!, MAX_RETRY_AFTER_WAIT_MS));
          sending = sending.slice(full);
        }
      } catch (err) {
        failed = true;
        rejected += sending.length;
        for (const tx of sending) submitAt.delete(tx.hashHex);
        countError(errors, err);
      }
      // A nonce whose fate is unknown (or refused) would block this account: go on with a fresh one.
      if (failed) return submitter(w + options.concurrency);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, (_, w) => submitter(w)));
  const submittedAll = performance.now();
  log(
    `submitted ${options.txs} in ${((submittedAll - t0) / 1000).toFixed(2)} s${poolFullResends > 0 ? ` (${poolFullResends} batches sent again after -32010 data.retryAfterMs)` : ''}; waiting for commits`,
  );
  const drainDeadline = performance.now() + DRAIN_TIMEOUT_MS;
  const acceptedHashes = () => [...submitAt.keys()];
  while (performance.now() < drainDeadline && commitAt.size < accepted) await sleepMs(clock, 50);
  watching = false;
  await watcher;

  const latencies = acceptedHashes()
    .filter((h) => commitAt.has(h))
    .map((h) => commitAt.get(h)! - submitAt.get(h)!)
    .sort((a, b) => a - b);
  const lastCommit = Math.max(t0, ...commitAt.values());
  const seconds = (lastCommit - t0) / 1000;
  const acc = acceptLatencies.sort((a, b) => a - b);
  const buckets = new Map<number, { submitted: number; latencies: number[] }>();
  for (const [h, at] of submitAt) {
    const second = Math.floor((at - t0) / 1000);
    let b = buckets.get(second);
    if (b === undefined) buckets.set(second, (b = { submitted: 0, latencies: [] }));
    b.submitted++;
    const c = commitAt.get(h);
    if (c !== undefined) b.latencies.push(c - at);
  }
  const timeline = [...buckets.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([second, b]) => {
      const l = b.latencies.sort((x, y) => x - y);
      return {
        second,
        submitted: b.submitted,
        committed: l.length,
        p50: percentile(l, 50),
        p99: percentile(l, 99),
        max: l[l.length - 1] ?? 0,
      };
    });
  const agreement = checkChains
    ? await checkAgreement(clients[0])
    : { height: 0, members: 0, agree: true, detail: 'not checked' };
  return {
    submitted: options.txs,
    accepted,
    rejected,
    committed: commitAt.size,
    seconds,
    committedPerSecond: seconds > 0 ? commitAt.size / seconds : 0,
    latencyMs: {
      p50: percentile(latencies, 50),
      p95: percentile(latencies, 95),
      p99: percentile(latencies, 99),
      max: latencies[latencies.length - 1] ?? 0,
    },
    acceptLatencyMs: { p50: percentile(acc, 50), p99: percentile(acc, 99) },
    errors,
    agreement,
    timeline,
  };
}

interface PartyDirectory {
  /** Every member's enclave keys (base64), by member name. */
  readonly keysByNode: ReadonlyMap<string, readonly string[]>;
}

/** The members' enclave keys, as the replicated membership publishes them (raft_cluster). */
async function partyDirectory(client: HttpRpcClient): Promise<PartyDirectory> {
  const members = await client.call<Array<{ nodeId: string; enclaveKeys?: string[] }>>('raft_cluster');
  const keysByNode = new Map<string, readonly string[]>();
  for (const m of members) if (m.enclaveKeys && m.enclaveKeys.length > 0) keysByNode.set(m.nodeId, m.enclaveKeys);
  return { keysByNode };
}

/** Every member's enclave keys, one list: the candidates for privateFor. */
async function leaderRpcUrl(client: HttpRpcClient): Promise<string> {
  const members = await client.call<Array<{ rpcUrl: string; isLeader: boolean }>>('raft_cluster');
  const leader = members.find((m) => m.isLeader);
  if (!leader) throw new Error('no leader');
  return leader.rpcUrl;
}

/** Counts an error by its message (hex figures folded, at most 160 characters). */
export function countError(errors: Map<string, number>, err: unknown): void {
  const msg = (err instanceof Error ? err.message : String(err)).replace(/0x[0-9a-f]+/g, '0x…').slice(0, 160);
  errors.set(msg, (errors.get(msg) ?? 0) + 1);
}

function batchSizeOf(options: BenchOptions): number {
  return Math.max(1, options.batch ?? 1);
}

/** The bench's transaction number `nonce` of submitter `w`: one put of its own key. */
function benchTx(chainId: number, key: AccountKey, w: number, nonce: number): Transaction {
  return signTransaction(
    { chainId, nonce, ops: [{ type: 'put' as const, key: `bench/${w}/${nonce}`, value: `v${nonce}` }] },
    key,
  );
}

/** One keep-alive agent for the submitters: node:http costs the client far less CPU per request than fetch. */
const submitAgent = new http.Agent({ keepAlive: true, maxSockets: 4096 });
/** For https:// nodes and nodes that want a token: built on first use, from --token/--ca-file or the environment. */
let secureSubmit: { agent: https.Agent; headers: Record<string, string> } | undefined;
function submitCredentials(): { agent: https.Agent; headers: Record<string, string> } {
  const c = defaultRpcCredentials();
  secureSubmit ??= {
    agent: new https.Agent({ keepAlive: true, maxSockets: 4096, ...(c.caPem ? { ca: c.caPem } : {}) }),
    headers: c.token ? { authorization: `Bearer ${c.token}` } : {},
  };
  return secureSubmit;
}

/** POSTs a JSON-RPC batch with node:http; answers in request order (an item is { result } or { error }). */
function postBatch(
  url: string,
  calls: ReadonlyArray<readonly [string, readonly unknown[]]>,
): Promise<Array<{ result?: unknown; error?: { message: string; code?: number; data?: unknown } }>> {
  const body = JSON.stringify(calls.map(([method, params], id) => ({ jsonrpc: '2.0', id, method, params })));
  return new Promise((resolve, reject) => {
    const secure = submitCredentials();
    const tls = url.startsWith('https:');
    const req = (tls ? https : http).request(
      url,
      {
        method: 'POST',
        agent: tls ? secure.agent : submitAgent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body), ...secure.headers },
        timeout: 30_000,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          try {
            const replies = JSON.parse(Buffer.concat(chunks).toString('utf8')) as
              | Array<{ id: number; result?: unknown; error?: { message: string; code?: number; data?: unknown } }>
              | { error?: { message: string } };
            if (!Array.isArray(replies)) throw new Error(replies.error?.message ?? `HTTP ${res.statusCode}`);
            const out: Array<{ result?: unknown; error?: { message: string; code?: number; data?: unknown } }> =
              new Array(calls.length);
            for (const r of replies) out[r.id] = r;
            resolve(out);
          } catch (err) {
            reject(err);
          }
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error('timed out after 30 s: outcome unknown')));
    req.on('error', reject);
    req.end(body);
  });
}

async function privatePartyKeys(client: HttpRpcClient): Promise<string[]> {
  const { keysByNode } = await partyDirectory(client);
  const keys = [...keysByNode.values()].flat();
  if (keysByNode.size < 2)
    throw new Error(`bench --private needs at least two members with enclave keys, found ${keysByNode.size}`);
  return keys;
}

/**
 * The accounts the nodes hold (quorate_sendTransaction signs with them), each with its node's
 * own enclave key, so a sender's privateFor names another node.
 */
async function nodeAccounts(
  clients: readonly HttpRpcClient[],
  urls: readonly string[],
): Promise<Array<{ rpcUrl: string; address: string; enclaveKey: string }>> {
  const { keysByNode } = await partyDirectory(clients[0]);
  const members = await clients[0].call<Array<{ raftId: number; nodeId: string }>>('raft_cluster');
  const out: Array<{ rpcUrl: string; address: string; enclaveKey: string }> = [];
  for (const [i, client] of clients.entries()) {
    const { raftId } = await client.call<{ raftId: number }>('raft_status');
    const name = members.find((m) => m.raftId === raftId)?.nodeId;
    const enclaveKey = name === undefined ? undefined : keysByNode.get(name)?.[0];
    if (enclaveKey === undefined) throw new Error(`node with raft id ${raftId} publishes no enclave key`);
    const accounts = await client.call<string[]>('quorate_accounts');
    for (const address of accounts) out.push({ rpcUrl: urls[i], address, enclaveKey });
  }
  if (out.length === 0) throw new Error('bench --private: the nodes hold no accounts (quorate_accounts is empty)');
  return out;
}

/** Waits for every member to reach a common height and compares their block hashes there. */
export async function checkAgreement(entry: HttpRpcClient): Promise<BenchResult['agreement']> {
  const members = await entry.call<Array<{ nodeId: string; rpcUrl: string }>>('raft_cluster');
  const clients = members.map((m) => ({ name: m.nodeId, client: new HttpRpcClient(m.rpcUrl, { timeoutMs: 5_000 }) }));
  const deadline = clock.wallMs() + AGREEMENT_TIMEOUT_MS;
  let heights: number[] = [];
  for (;;) {
    heights = await Promise.all(
      clients.map(async (c) => Number(BigInt(await c.client.call<string>('eth_blockNumber')))),
    );
    if (heights.every((h) => h === heights[0]) || clock.wallMs() > deadline) break;
    await sleepMs(clock, 100);
  }
  const height = Math.min(...heights);
  const hashes = await Promise.all(
    clients.map(
      async (c) =>
        (await c.client.call<{ hash: string } | null>('eth_getBlockByNumber', [`0x${height.toString(16)}`, false]))
          ?.hash ?? 'missing',
    ),
  );
  const agree = hashes.every((h) => h === hashes[0]);
  const detail = clients.map((c, i) => `${c.name}@${heights[i]}=${hashes[i].slice(0, 12)}`).join(' ');
  return { height, members: clients.length, agree, detail };
}

export async function runBench(options: BenchOptions): Promise<number> {
  const out = (line: string) => process.stdout.write(`${line}\n`);
  out(
    `bench txs=${options.txs} concurrency=${options.concurrency} batch=${options.batch ?? 1} rate=${options.rate || 'unlimited'} private=${options.private} warmup=${options.warmup ?? 0} rpc=${options.rpcUrls.join(',')}`,
  );
  if ((options.warmup ?? 0) > 0) {
    // Same load, not counted: the first seconds against fresh processes measure V8 compiling the
    // hot paths and sockets being opened, not the steady state a running ledger is in.
    const w = await benchmark({ ...options, txs: options.warmup! }, () => {}, false);
    out(
      `warmup txs=${w.submitted} committed=${w.committed} seconds=${w.seconds.toFixed(2)} commit_latency_ms p50=${w.latencyMs.p50.toFixed(0)} p99=${w.latencyMs.p99.toFixed(0)} (not counted)`,
    );
  }
  const r = await benchmark(options, out);
  out(`submitted=${r.submitted} accepted=${r.accepted} rejected=${r.rejected} committed=${r.committed}`);
  out(`seconds=${r.seconds.toFixed(2)} committed_tx_per_s=${r.committedPerSecond.toFixed(0)}`);
  out(
    `commit_latency_ms p50=${r.latencyMs.p50.toFixed(0)} p95=${r.latencyMs.p95.toFixed(0)} p99=${r.latencyMs.p99.toFixed(0)} max=${r.latencyMs.max.toFixed(0)}`,
  );
  out(`accept_latency_ms p50=${r.acceptLatencyMs.p50.toFixed(1)} p99=${r.acceptLatencyMs.p99.toFixed(1)}`);
  if (options.timeline) {
    for (const t of r.timeline)
      out(
        `timeline second=${t.second} submitted=${t.submitted} committed=${t.committed} commit_ms p50=${t.p50.toFixed(0)} p99=${t.p99.toFixed(0)} max=${t.max.toFixed(0)}`,
      );
  }
  for (const [msg, n] of r.errors) out(`error count=${n} message=${JSON.stringify(msg)}`);
  out(
    `agreement height=${r.agreement.height} members=${r.agreement.members} agree=${r.agreement.agree} ${r.agreement.detail}`,
  );
  const ok = r.agreement.agree && r.committed === r.accepted;
  out(ok ? 'result=ok' : 'result=FAILED');
  return ok ? 0 : 1;
}

// --- What the time-bounded loads share: `quorate bench --offered` (node/bench-offered.ts) and ---
// `npm run bench:etcd-vs`. The count-bounded benchmark() above measures how fast a fixed amount of
// work commits. Those loads run for a fixed time instead, either closed-loop (C requests in flight,
// as etcd's own benchmark does) or open-loop (a fixed offered rate whatever the answers, so
// overload shows as refusals, timeouts or growing commit latency rather than as a slower client).

/** A JSON-RPC error object as the node sends it (-32010 carries data.retryAfterMs when the node knows it). */
export interface RpcErrorObject {
  readonly code: number;
  readonly message: string;
  readonly data?: unknown;
}

/** One answer of a batch, in request order. */
export interface RpcReply {
  readonly result?: unknown;
  readonly error?: RpcErrorObject;
}

/** Why a whole request failed: no answer in time (outcome unknown), an HTTP-level error, or the socket. */
export type BenchRequestErrorCode = 'TIMEOUT' | 'HTTP' | 'TRANSPORT';

export class BenchRequestError extends Error {
  constructor(
    readonly code: BenchRequestErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'BenchRequestError';
  }
}

/**
 * POSTs a JSON-RPC batch with node:http and the keep-alive agent; answers in request order with the
 * error objects whole (code and data kept, which postBatch drops). Rejects with a BenchRequestError.
 */
export function rpcBatch(
  url: string,
  calls: ReadonlyArray<readonly [string, readonly unknown[]]>,
  timeoutMs: number,
  agent: http.Agent = submitAgent,
): Promise<RpcReply[]> {
  const body = JSON.stringify(calls.map(([method, params], id) => ({ jsonrpc: '2.0', id, method, params })));
  return new Promise((resolve, reject) => {
    const req = http.request(
      url,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
        timeout: timeoutMs,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          let replies: unknown;
          try {
            replies = JSON.parse(Buffer.concat(chunks).toString('utf8'));
          } catch {
            return reject(new BenchRequestError('HTTP', `HTTP ${res.statusCode}: the answer is not JSON`));
          }
          if (!Array.isArray(replies)) {
            // A server that refuses the whole batch answers one error object (e.g. -32010 when overloaded):
            // every call of the batch gets it.
            const one = replies as { error?: RpcErrorObject };
            if (one.error) return resolve(calls.map(() => ({ error: one.error })));
            return reject(new BenchRequestError('HTTP', `HTTP ${res.statusCode}: not a batch answer`));
          }
          const out: RpcReply[] = calls.map(() => ({
            error: { code: -32603, message: 'no answer for this call in the batch' },
          }));
          for (const r of replies as Array<RpcReply & { id: number }>)
            if (r.id >= 0 && r.id < out.length) out[r.id] = r;
          resolve(out);
        });
        res.on('error', (err) => reject(new BenchRequestError('TRANSPORT', err.message)));
      },
    );
    req.on('timeout', () =>
      req.destroy(new BenchRequestError('TIMEOUT', `no answer within ${timeoutMs} ms: outcome unknown`)),
    );
    req.on('error', (err) =>
      reject(err instanceof BenchRequestError ? err : new BenchRequestError('TRANSPORT', err.message)),
    );
    req.end(body);
  });
}

/**
 * rpcBatch for calls that only read, tried once more after a socket error: a keep-alive socket the
 * server closed while this process was busy (signing before the clock blocks the event loop for
 * seconds) fails its next request with "socket hang up" though nothing is wrong with the node.
 */
export async function rpcRead(
  url: string,
  calls: ReadonlyArray<readonly [string, readonly unknown[]]>,
  timeoutMs: number,
  agent: http.Agent = submitAgent,
): Promise<RpcReply[]> {
  try {
    return await rpcBatch(url, calls, timeoutMs, agent);
  } catch (err) {
    if (!(err instanceof BenchRequestError) || err.code !== 'TRANSPORT') throw err;
    return rpcBatch(url, calls, timeoutMs, agent);
  }
}

/**
 * Lets the event loop see sockets the server closed while synchronous work (signing) held it, so
 * the first requests after it do not pick a dead keep-alive socket.
 */
export function settleSockets(): Promise<void> {
  return sleepMs(clock, 20);
}

/**
 * Transaction hashes remembered by the commit watcher, in all (~150 bytes each). Past it the watcher
 * stops remembering and says so: a run that long is measured by its first transactions only.
 */
export const MAX_WATCHED_TXS = 2_000_000;

/**
 * Follows a node's chain from the height it is at when started and remembers when each transaction
 * hash was first seen in a block. Hashes need not be known in advance (a node-signed transaction's
 * hash arrives with the answer, possibly after its block), so every hash in every new block counts.
 */
export class CommitWatcher {
  /** Transaction hash -> performance.now() when its block was first seen. */
  readonly committedAt = new Map<string, number>();
  private height = 0;
  private running = false;
  private loop: Promise<void> = Promise.resolve();
  overflowed = false;
  lastError: string | undefined;
  /**
   * Its own keep-alive socket: sharing the submitters' agent, a poll waited for a free socket or a
   * new connection, which an overloaded node (at its connection limit) refused, so commits were
   * seen seconds late and the commit latency of an overload run measured the watcher, not the node.
   */
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 1 });

  constructor(
    private readonly url: string,
    private readonly requestTimeoutMs = 10_000,
  ) {}

  async start(): Promise<void> {
    const [head] = await rpcRead(this.url, [['eth_blockNumber', []]], this.requestTimeoutMs, this.agent);
    if (head.error) throw new Error(`eth_blockNumber: ${head.error.message}`);
    this.height = Number(BigInt(head.result as string));
    this.running = true;
    this.loop = this.run();
  }

  async stop(): Promise<void> {
    this.running = false;
    await this.loop;
    this.agent.destroy();
  }

  private async run(): Promise<void> {
    while (this.running) {
      let full = false;
      try {
        const answers = await rpcRead(
          this.url,
          Array.from(
            { length: BLOCKS_PER_POLL },
            (_, i) => ['eth_getBlockByNumber', [`0x${(this.height + 1 + i).toString(16)}`, false]] as const,
          ),
          this.requestTimeoutMs,
          this.agent,
        );
        const now = performance.now();
        let got = 0;
        for (const a of answers) {
          if (a.error) throw new Error(`eth_getBlockByNumber: ${a.error.message}`);
          const block = a.result as { transactions: string[] } | null;
          if (block === null) break;
          got++;
          for (const h of block.transactions) {
            if (this.committedAt.size >= MAX_WATCHED_TXS) this.overflowed = true;
            else if (!this.committedAt.has(h)) this.committedAt.set(h, now);
          }
        }
        this.height += got;
        full = got === BLOCKS_PER_POLL;
      } catch (err) {
        this.lastError = (err as Error).message;
      }
      if (!full && this.running) await sleepMs(clock, COMMIT_POLL_MS);
    }
  }
}

export { percentile };

/** Waits (at most `timeoutMs`) until every hash given is seen committed; resolves with how many were. */
export async function waitCommitted(
  watcher: CommitWatcher,
  hashes: Iterable<string>,
  timeoutMs: number,
): Promise<number> {
  const all = [...hashes];
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const done = all.filter((h) => watcher.committedAt.has(h)).length;
    if (done === all.length || performance.now() >= deadline) return done;
    await sleepMs(clock, 50);
  }
}

/**
 * The end of a time-bounded load: waits (at most `drainTimeoutMs`) for the accepted transactions
 * (hash -> when submitted) to commit and stops the watcher. Returns the submit-to-commit latency
 * of each that committed, sorted, and when the last one committed (`startedAt` if none did).
 */
export async function drainCommits(
  watcher: CommitWatcher,
  submittedAt: ReadonlyMap<string, number>,
  drainTimeoutMs: number,
  startedAt: number,
): Promise<{ latencies: number[]; lastCommitAt: number }> {
  await waitCommitted(watcher, submittedAt.keys(), drainTimeoutMs);
  await watcher.stop();
  const latencies: number[] = [];
  let lastCommitAt = startedAt;
  for (const [h, at] of submittedAt) {
    const c = watcher.committedAt.get(h);
    if (c === undefined) continue;
    latencies.push(c - at);
    if (c > lastCommitAt) lastCommitAt = c;
  }
  latencies.sort((a, b) => a - b);
  return { latencies, lastCommitAt };
}

/** Per node, the first account it holds and signs for (quorate_sendTransaction's `from`). */
export async function ownAccounts(rpcUrls: readonly string[], timeoutMs = 10_000): Promise<string[]> {
  return Promise.all(
    rpcUrls.map(async (url) => {
      const [r] = await rpcRead(url, [['quorate_accounts', []]], timeoutMs);
      const accounts = r.result as string[] | undefined;
      if (r.error || !accounts || accounts.length === 0)
        throw new Error(`${url} holds no account for quorate_sendTransaction (${r.error?.message ?? 'empty list'})`);
      return accounts[0];
    }),
  );
}
