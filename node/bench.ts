// `quorate bench`: a load generator against running nodes. It signs transactions itself (fresh
// accounts, one per concurrent submitter, so nonces never collide), submits them round-robin to
// the given RPC URLs with quorate_sendRawTransaction, watches the chain for the blocks that
// include them, and prints committed transactions per second and submit-to-commit latency
// percentiles. It ends by checking that every member has the same block hash at a common height
// (block hashes chain their parents, so one equal hash means equal chains below it).

import http from 'node:http';
import { generateAccountKey, signTransaction, type AccountKey } from './chain/index.js';
import type { BenchOptions } from './cli/bench.js';
import { HttpRpcClient } from './rpc/client.js';

/** How often the committed chain is polled for new blocks. */
const COMMIT_POLL_MS = 10;
/** Blocks fetched in one batch by the commit watcher. */
const MAX_BLOCKS_PER_POLL = 256;
/** After the last submission, how long to wait for stragglers to commit. */
const DRAIN_TIMEOUT_MS = 30_000;
/** How long members get to reach the same height for the agreement check. */
const AGREEMENT_TIMEOUT_MS = 15_000;

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
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export async function benchmark(options: BenchOptions, log: (line: string) => void = () => {}): Promise<BenchResult> {
  const clients = options.rpcUrls.map((u) => new HttpRpcClient(u, { timeoutMs: 30_000 }));
  const chainId = Number(BigInt(await clients[0].call<string>('eth_chainId')));
  const privateFor = options.private ? await privatePartyKeys(clients[0]) : undefined;
  const senders = options.private ? await nodeAccounts(clients) : undefined;

  const submitAt = new Map<string, number>();
  const commitAt = new Map<string, number>();
  /** --private: transactions seen committed before quorate_sendTransaction returned their hash. */
  const committedEarly = new Map<string, number>();
  const acceptLatencies: number[] = [];
  const errors = new Map<string, number>();
  let accepted = 0;
  let rejected = 0;
  let next = 0;
  const t0 = performance.now();

  // Commit watcher: follows the leader's head (the first node to apply a block), falling back to
  // the first URL when no leader is known.
  const watchUrl = await leaderRpcUrl(clients[0]).catch(() => options.rpcUrls[0]);
  const watchClient = new HttpRpcClient(watchUrl, { timeoutMs: 30_000 });
  let watching = true;
  let seenHeight = Number(BigInt(await watchClient.call<string>('eth_blockNumber')));
  const watcher = (async () => {
    while (watching) {
      try {
        const head = Number(BigInt(await watchClient.call<string>('eth_blockNumber')));
        // All new blocks in one JSON-RPC batch: one round trip however far the head moved.
        const upTo = Math.min(head, seenHeight + MAX_BLOCKS_PER_POLL);
        if (upTo > seenHeight) {
          const blocks = await batchCall<{ transactions: string[] } | null>(
            watchUrl,
            Array.from({ length: upTo - seenHeight }, (_, i) => ['eth_getBlockByNumber', [`0x${(seenHeight + 1 + i).toString(16)}`, false]]),
          );
          const now = performance.now();
          for (const block of blocks) {
            for (const h of block?.transactions ?? []) {
              if (submitAt.has(h)) commitAt.set(h, now);
              // --private learns a hash only when the node answers, which may be after its block
              // was seen here: remember it (bounded by --txs) so the submitter can match it.
              else if (senders && committedEarly.size < options.txs) committedEarly.set(h, now);
            }
          }
          seenHeight = upTo;
        }
      } catch (err) {
        log(`watcher: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, COMMIT_POLL_MS));
    }
  })();

  const batchSize = Math.max(1, options.batch ?? 1);
  const submitter = async (w: number): Promise<void> => {
    const key: AccountKey = generateAccountKey();
    let nonce = 0;
    const url = options.rpcUrls[w % options.rpcUrls.length];
    for (;;) {
      const first = next;
      if (first >= options.txs) return;
      const count = senders ? 1 : Math.min(batchSize, options.txs - first);
      next += count;
      if (options.rate > 0) {
        const due = t0 + (first * 1000) / options.rate;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      const started = performance.now();
      if (senders && privateFor) {
        const ops = [{ type: 'put' as const, key: `bench/${w}/${first}`, value: `v${first}` }];
        try {
          const from = senders[w % senders.length];
          const hash = await from.client.call<string>('quorate_sendTransaction', [{ from: from.address, ops, privateFor: privateFor.filter((k) => k !== from.enclaveKey).slice(0, 1) }]);
          submitAt.set(hash, started);
          const early = committedEarly.get(hash);
          if (early !== undefined) commitAt.set(hash, early);
          accepted++;
          acceptLatencies.push(performance.now() - started);
        } catch (err) {
          rejected++;
          countError(errors, err);
        }
        continue;
      }
      // Client-signed transactions, `count` of them (consecutive nonces) in one JSON-RPC batch.
      const txs = Array.from({ length: count }, (_, j) => signTransaction({ chainId, nonce: nonce + j, ops: [{ type: 'put' as const, key: `bench/${w}/${nonce + j}`, value: `v${first + j}` }] }, key));
      nonce += count;
      for (const tx of txs) submitAt.set(tx.hashHex, started);
      let failed = false;
      try {
        const results = await postBatch(url, txs.map((tx) => ['quorate_sendRawTransaction', [`0x${Buffer.from(tx.encoded).toString('hex')}`]] as const));
        const took = performance.now() - started;
        results.forEach((r, j) => {
          if (r.error) {
            failed = true;
            rejected++;
            submitAt.delete(txs[j].hashHex);
            countError(errors, new Error(`quorate_sendRawTransaction: ${r.error.message}`));
          } else {
            accepted++;
            acceptLatencies.push(took);
          }
        });
      } catch (err) {
        failed = true;
        rejected += count;
        for (const tx of txs) submitAt.delete(tx.hashHex);
        countError(errors, err);
      }
      // A nonce whose fate is unknown (or refused) would block this account: go on with a fresh one.
      if (failed) return submitter(w + options.concurrency);
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, (_, w) => submitter(w)));
  const submittedAll = performance.now();
  log(`submitted ${options.txs} in ${((submittedAll - t0) / 1000).toFixed(2)} s; waiting for commits`);
  const drainDeadline = performance.now() + DRAIN_TIMEOUT_MS;
  const acceptedHashes = () => [...submitAt.keys()];
  while (performance.now() < drainDeadline && commitAt.size < accepted) await new Promise((r) => setTimeout(r, 50));
  watching = false;
  await watcher;

  const latencies = acceptedHashes()
    .filter((h) => commitAt.has(h))
    .map((h) => commitAt.get(h)! - submitAt.get(h)!)
    .sort((a, b) => a - b);
  const lastCommit = Math.max(t0, ...commitAt.values());
  const seconds = (lastCommit - t0) / 1000;
  const acc = acceptLatencies.sort((a, b) => a - b);
  const agreement = await checkAgreement(clients[0]);
  return {
    submitted: options.txs,
    accepted,
    rejected,
    committed: commitAt.size,
    seconds,
    committedPerSecond: seconds > 0 ? commitAt.size / seconds : 0,
    latencyMs: { p50: percentile(latencies, 50), p95: percentile(latencies, 95), p99: percentile(latencies, 99), max: latencies[latencies.length - 1] ?? 0 },
    acceptLatencyMs: { p50: percentile(acc, 50), p99: percentile(acc, 99) },
    errors,
    agreement,
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

function countError(errors: Map<string, number>, err: unknown): void {
  const msg = (err instanceof Error ? err.message : String(err)).replace(/0x[0-9a-f]+/g, '0x…').slice(0, 160);
  errors.set(msg, (errors.get(msg) ?? 0) + 1);
}

/** One keep-alive agent for the submitters: node:http costs the client far less CPU per request than fetch. */
const submitAgent = new http.Agent({ keepAlive: true, maxSockets: 4096 });

/** POSTs a JSON-RPC batch with node:http; answers in request order (an item is { result } or { error }). */
function postBatch(url: string, calls: ReadonlyArray<readonly [string, readonly unknown[]]>): Promise<Array<{ result?: unknown; error?: { message: string } }>> {
  const body = JSON.stringify(calls.map(([method, params], id) => ({ jsonrpc: '2.0', id, method, params })));
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method: 'POST', agent: submitAgent, headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) }, timeout: 30_000 }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        try {
          const replies = JSON.parse(Buffer.concat(chunks).toString('utf8')) as Array<{ id: number; result?: unknown; error?: { message: string } }> | { error?: { message: string } };
          if (!Array.isArray(replies)) throw new Error(replies.error?.message ?? `HTTP ${res.statusCode}`);
          const out: Array<{ result?: unknown; error?: { message: string } }> = new Array(calls.length);
          for (const r of replies) out[r.id] = r;
          resolve(out);
        } catch (err) {
          reject(err);
        }
      });
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timed out after 30 s: outcome unknown')));
    req.on('error', reject);
    req.end(body);
  });
}

/** A JSON-RPC batch over one HTTP request; results in request order. */
async function batchCall<T>(url: string, calls: ReadonlyArray<readonly [string, readonly unknown[]]>): Promise<T[]> {
  const body = JSON.stringify(calls.map(([method, params], id) => ({ jsonrpc: '2.0', id, method, params })));
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body, signal: AbortSignal.timeout(30_000) });
  const replies = (await res.json()) as Array<{ id: number; result?: T; error?: { message: string } }>;
  const out: T[] = new Array(calls.length);
  for (const r of replies) {
    if (r.error) throw new Error(`${calls[r.id]?.[0]}: ${r.error.message}`);
    out[r.id] = r.result as T;
  }
  return out;
}

async function privatePartyKeys(client: HttpRpcClient): Promise<string[]> {
  const { keysByNode } = await partyDirectory(client);
  const keys = [...keysByNode.values()].flat();
  if (keysByNode.size < 2) throw new Error(`bench --private needs at least two members with enclave keys, found ${keysByNode.size}`);
  return keys;
}

/**
 * The accounts the nodes hold (quorate_sendTransaction signs with them), each with its node's
 * own enclave key, so a sender's privateFor names another node.
 */
async function nodeAccounts(clients: readonly HttpRpcClient[]): Promise<Array<{ client: HttpRpcClient; address: string; enclaveKey: string }>> {
  const { keysByNode } = await partyDirectory(clients[0]);
  const members = await clients[0].call<Array<{ raftId: number; nodeId: string }>>('raft_cluster');
  const out: Array<{ client: HttpRpcClient; address: string; enclaveKey: string }> = [];
  for (const client of clients) {
    const { raftId } = await client.call<{ raftId: number }>('raft_status');
    const name = members.find((m) => m.raftId === raftId)?.nodeId;
    const enclaveKey = name === undefined ? undefined : keysByNode.get(name)?.[0];
    if (enclaveKey === undefined) throw new Error(`node with raft id ${raftId} publishes no enclave key`);
    const accounts = await client.call<string[]>('quorate_accounts');
    for (const address of accounts) out.push({ client, address, enclaveKey });
  }
  if (out.length === 0) throw new Error('bench --private: the nodes hold no accounts (quorate_accounts is empty)');
  return out;
}

/** Waits for every member to reach a common height and compares their block hashes there. */
export async function checkAgreement(entry: HttpRpcClient): Promise<BenchResult['agreement']> {
  const members = await entry.call<Array<{ nodeId: string; rpcUrl: string }>>('raft_cluster');
  const clients = members.map((m) => ({ name: m.nodeId, client: new HttpRpcClient(m.rpcUrl, { timeoutMs: 5_000 }) }));
  const deadline = Date.now() + AGREEMENT_TIMEOUT_MS;
  let heights: number[] = [];
  for (;;) {
    heights = await Promise.all(clients.map(async (c) => Number(BigInt(await c.client.call<string>('eth_blockNumber')))));
    if (heights.every((h) => h === heights[0]) || Date.now() > deadline) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const height = Math.min(...heights);
  const hashes = await Promise.all(
    clients.map(async (c) => (await c.client.call<{ hash: string } | null>('eth_getBlockByNumber', [`0x${height.toString(16)}`, false]))?.hash ?? 'missing'),
  );
  const agree = hashes.every((h) => h === hashes[0]);
  const detail = clients.map((c, i) => `${c.name}@${heights[i]}=${hashes[i].slice(0, 12)}`).join(' ');
  return { height, members: clients.length, agree, detail };
}

export async function runBench(options: BenchOptions): Promise<number> {
  const out = (line: string) => process.stdout.write(`${line}\n`);
  out(`bench txs=${options.txs} concurrency=${options.concurrency} batch=${options.batch ?? 1} rate=${options.rate || 'unlimited'} private=${options.private} rpc=${options.rpcUrls.join(',')}`);
  const r = await benchmark(options, out);
  out(`submitted=${r.submitted} accepted=${r.accepted} rejected=${r.rejected} committed=${r.committed}`);
  out(`seconds=${r.seconds.toFixed(2)} committed_tx_per_s=${r.committedPerSecond.toFixed(0)}`);
  out(`commit_latency_ms p50=${r.latencyMs.p50.toFixed(0)} p95=${r.latencyMs.p95.toFixed(0)} p99=${r.latencyMs.p99.toFixed(0)} max=${r.latencyMs.max.toFixed(0)}`);
  out(`accept_latency_ms p50=${r.acceptLatencyMs.p50.toFixed(1)} p99=${r.acceptLatencyMs.p99.toFixed(1)}`);
  for (const [msg, n] of r.errors) out(`error count=${n} message=${JSON.stringify(msg)}`);
  out(`agreement height=${r.agreement.height} members=${r.agreement.members} agree=${r.agreement.agree} ${r.agreement.detail}`);
  const ok = r.agreement.agree && r.committed === r.accepted;
  out(ok ? 'result=ok' : 'result=FAILED');
  return ok ? 0 : 1;
}
