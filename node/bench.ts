// `quorate bench`: a load generator against running nodes. It signs transactions itself (fresh
// accounts, one per concurrent submitter, so nonces never collide), submits them round-robin to
// the given RPC URLs with quorate_sendRawTransaction, watches the chain for the blocks that
// include them, and prints committed transactions per second and submit-to-commit latency
// percentiles. It ends by checking that every member has the same block hash at a common height
// (block hashes chain their parents, so one equal hash means equal chains below it).

import { generateAccountKey, signTransaction, type AccountKey } from './chain/index.js';
import type { BenchOptions } from './cli/bench.js';
import { HttpRpcClient } from './rpc/client.js';

/** How often the committed chain is polled for new blocks. */
const COMMIT_POLL_MS = 10;
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
  const acceptLatencies: number[] = [];
  const errors = new Map<string, number>();
  let accepted = 0;
  let rejected = 0;
  let next = 0;
  const t0 = performance.now();

  // Commit watcher: follows the head of the first node.
  let watching = true;
  let seenHeight = Number(BigInt(await clients[0].call<string>('eth_blockNumber')));
  const watcher = (async () => {
    while (watching) {
      try {
        const head = Number(BigInt(await clients[0].call<string>('eth_blockNumber')));
        for (let n = seenHeight + 1; n <= head; n++) {
          const block = await clients[0].call<{ transactions: string[] }>('eth_getBlockByNumber', [`0x${n.toString(16)}`, false]);
          const now = performance.now();
          for (const h of block.transactions) if (submitAt.has(h)) commitAt.set(h, now);
          seenHeight = n;
        }
      } catch (err) {
        log(`watcher: ${(err as Error).message}`);
      }
      await new Promise((r) => setTimeout(r, COMMIT_POLL_MS));
    }
  })();

  const submitter = async (w: number): Promise<void> => {
    const key: AccountKey = generateAccountKey();
    let nonce = 0;
    const client = clients[w % clients.length];
    for (;;) {
      const i = next++;
      if (i >= options.txs) return;
      if (options.rate > 0) {
        const due = t0 + (i * 1000) / options.rate;
        const wait = due - performance.now();
        if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      }
      const ops = [{ type: 'put' as const, key: `bench/${w}/${nonce}`, value: `v${i}` }];
      const started = performance.now();
      try {
        let hash: string;
        if (senders && privateFor) {
          const from = senders[w % senders.length];
          hash = await from.client.call<string>('quorate_sendTransaction', [{ from: from.address, ops, privateFor: privateFor.filter((k) => k !== from.enclaveKey).slice(0, 1) }]);
        } else {
          const tx = signTransaction({ chainId, nonce, ops }, key);
          submitAt.set(tx.hashHex, started);
          hash = await client.call<string>('quorate_sendRawTransaction', [`0x${Buffer.from(tx.encoded).toString('hex')}`]);
          nonce++;
        }
        submitAt.set(hash, started);
        accepted++;
        acceptLatencies.push(performance.now() - started);
      } catch (err) {
        rejected++;
        const msg = (err as Error).message.replace(/0x[0-9a-f]+/g, '0x…').slice(0, 160);
        errors.set(msg, (errors.get(msg) ?? 0) + 1);
        if (!senders) {
          // The nonce's fate is unknown; a fresh account keeps later submissions valid.
          return submitter(w + options.concurrency);
        }
      }
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

async function privatePartyKeys(client: HttpRpcClient): Promise<string[]> {
  const members = await client.call<Array<{ rpcUrl: string }>>('raft_cluster');
  void members;
  throw new Error('bench --private needs the transaction manager: not in this build yet');
}

async function nodeAccounts(clients: readonly HttpRpcClient[]): Promise<Array<{ client: HttpRpcClient; address: string; enclaveKey: string }>> {
  const out: Array<{ client: HttpRpcClient; address: string; enclaveKey: string }> = [];
  for (const client of clients) {
    const accounts = await client.call<string[]>('quorate_accounts');
    for (const address of accounts) out.push({ client, address, enclaveKey: '' });
  }
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
  out(`bench txs=${options.txs} concurrency=${options.concurrency} rate=${options.rate || 'unlimited'} private=${options.private} rpc=${options.rpcUrls.join(',')}`);
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
