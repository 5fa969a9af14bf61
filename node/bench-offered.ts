// `quorate bench --offered R`: the open-loop overload view. Sends R transactions a second on
// schedule whatever the answers, never retries a refusal, and reports how many were accepted,
// refused (by code and data.reason, with data.retryAfterMs), timed out, dropped by the client
// and committed, with the commit latency of the accepted ones. The JSON-RPC plumbing and the
// commit watcher it shares with the closed-loop bench live in node/bench.ts.

import { generateAccountKey, signTransaction } from './chain/index.js';
import { SystemClock, sleepMs } from './clock.js';
import {
  BenchRequestError,
  CommitWatcher,
  countError,
  ownAccounts,
  percentile,
  rpcBatch,
  rpcRead,
  settleSockets,
  drainCommits,
} from './bench.js';

/** The real clock (node/clock.ts): this module has no injected one. */
const clock = new SystemClock();

/**
 * Upper bound on --offered requests waiting for an answer from one node: each holds a socket, and a
 * node refuses connections past its limits.rpcMaxConnections (1,024 by default), which showed as
 * resets; the margin leaves room for the commit watcher. Past it a send is dropped and counted.
 */
export const MAX_OFFERED_IN_FLIGHT_PER_NODE = 960;
/** Sending that took more than this times --seconds is reported as the client falling behind its schedule. */
const OFFERED_SCHEDULE_SLACK = 1.1;
/** How often the open-loop sender wakes to send what is due. */
const OFFERED_TICK_MS = 5;
/** Value of each offered put: the same 200 bytes as the etcd comparison's quorate side. */
export const OFFERED_VALUE_BYTES = 200;

export interface OfferedOptions {
  readonly rpcUrls: readonly string[];
  /** Transactions offered per second, sent on schedule whatever the answers. */
  readonly offeredPerSecond: number;
  readonly seconds: number;
  /** Transactions per JSON-RPC batch request. */
  readonly batch: number;
  /** Node-signed (quorate_sendTransaction, each node's own account) or client-signed (raw, presigned). */
  readonly nodeSigned: boolean;
  /** A request without an answer by then counts as timed out (outcome unknown). */
  readonly requestTimeoutMs: number;
  /** After the last send, how long accepted transactions get to commit. */
  readonly drainTimeoutMs: number;
}

export interface OfferedResult {
  readonly offered: number;
  /** Offered but not sent: MAX_OFFERED_IN_FLIGHT_PER_NODE requests were already waiting on that node. */
  readonly droppedByClient: number;
  readonly accepted: number;
  /** Refused transactions by JSON-RPC error code. */
  readonly refusedByCode: ReadonlyMap<number, number>;
  /** Refused transactions by JSON-RPC code and data.reason (the node's error code), e.g. "-32010 TX_POOL_FULL". */
  readonly refusedByReason: ReadonlyMap<string, number>;
  readonly refused: number;
  /** data.retryAfterMs of the refusals that carried one. */
  readonly retryAfterMs: { count: number; p50: number; max: number };
  readonly timedOut: number;
  /** Requests that failed otherwise (socket, HTTP), by message. */
  readonly failed: ReadonlyMap<string, number>;
  readonly committed: number;
  readonly sendSeconds: number;
  readonly acceptedPerSecond: number;
  readonly committedPerSecond: number;
  /** Submit-to-commit of the accepted transactions that committed. */
  readonly commitLatencyMs: { p50: number; p99: number; max: number };
  readonly acceptLatencyMs: { p50: number; p99: number };
  /** How fast refusals came back: an overloaded node should refuse at once. */
  readonly refuseLatencyMs: { p50: number; p99: number };
  readonly watcherError?: string;
}

/** A put of `valueBytes` bytes under `key`, as one op. */
function putOp(key: string, valueBytes: number): { type: 'put'; key: string; value: string } {
  return { type: 'put', key, value: key.padEnd(valueBytes, '.').slice(0, valueBytes) };
}

/**
 * Sends `offeredPerSecond` transactions a second for `seconds`, never waiting for answers and never
 * retrying a refusal (the refusals are what it measures), then waits for the accepted ones to commit.
 * Client-signed transactions each come from a fresh account (nonce 0), all signed before the clock:
 * a refused nonce then strands nothing behind it.
 */
export async function runOfferedLoad(
  o: OfferedOptions,
  log: (line: string) => void = () => {},
): Promise<OfferedResult> {
  const total = Math.round(o.offeredPerSecond * o.seconds);
  const runId = clock.wallMs().toString(36);
  // The calls of one request, for the node at rpcUrls[urlIndex]: a node-signed transaction must
  // name the account of the node it is sent to (every transaction of a batch goes to one node).
  let callsFor: (first: number, count: number, urlIndex: number) => Array<readonly [string, readonly unknown[]]>;
  if (o.nodeSigned) {
    const from = await ownAccounts(o.rpcUrls, o.requestTimeoutMs);
    callsFor = (first, count, urlIndex) =>
      Array.from(
        { length: count },
        (_, k) =>
          [
            'quorate_sendTransaction',
            [{ from: from[urlIndex], ops: [putOp(`offered/${runId}/${first + k}`, OFFERED_VALUE_BYTES)] }],
          ] as const,
      );
  } else {
    const [id] = await rpcRead(o.rpcUrls[0], [['eth_chainId', []]], o.requestTimeoutMs);
    if (id.error) throw new Error(`eth_chainId: ${id.error.message}`);
    const chainId = Number(BigInt(id.result as string));
    const signStarted = performance.now();
    const calls = Array.from({ length: total }, (_, i) => {
      const tx = signTransaction(
        { chainId, nonce: 0, ops: [putOp(`offered/${runId}/${i}`, OFFERED_VALUE_BYTES)] },
        generateAccountKey(),
      );
      return ['quorate_sendRawTransaction', [`0x${Buffer.from(tx.encoded).toString('hex')}`]] as const;
    });
    callsFor = (first, count) => calls.slice(first, first + count);
    log(`signed ${total} transactions in ${((performance.now() - signStarted) / 1000).toFixed(2)} s before the clock`);
  }
  await settleSockets();

  const watcher = new CommitWatcher(o.rpcUrls[0], o.requestTimeoutMs);
  await watcher.start();
  const submittedAt = new Map<string, number>();
  const acceptLatencies: number[] = [];
  const refuseLatencies: number[] = [];
  const retryAfter: number[] = [];
  const refusedByCode = new Map<number, number>();
  const refusedByReason = new Map<string, number>();
  const failed = new Map<string, number>();
  let accepted = 0;
  let refused = 0;
  let timedOut = 0;
  let dropped = 0;
  const inFlight = new Set<Promise<void>>();
  const inFlightPerNode = o.rpcUrls.map(() => 0);

  const send = (first: number, count: number, urlIndex: number): void => {
    const started = performance.now();
    inFlightPerNode[urlIndex]++;
    const p = rpcBatch(o.rpcUrls[urlIndex], callsFor(first, count, urlIndex), o.requestTimeoutMs)
      .then((replies) => {
        const took = performance.now() - started;
        for (const r of replies) {
          if (r.error) {
            refused++;
            refuseLatencies.push(took);
            refusedByCode.set(r.error.code, (refusedByCode.get(r.error.code) ?? 0) + 1);
            const reason = (r.error.data as { reason?: unknown } | undefined)?.reason;
            const key = `${r.error.code} ${typeof reason === 'string' ? reason : '-'}`;
            refusedByReason.set(key, (refusedByReason.get(key) ?? 0) + 1);
            const after = (r.error.data as { retryAfterMs?: unknown } | undefined)?.retryAfterMs;
            if (typeof after === 'number' && Number.isFinite(after)) retryAfter.push(after);
          } else {
            accepted++;
            acceptLatencies.push(took);
            submittedAt.set(r.result as string, started);
          }
        }
      })
      .catch((err: unknown) => {
        if (err instanceof BenchRequestError && err.code === 'TIMEOUT') timedOut += count;
        else countError(failed, err);
      })
      .finally(() => {
        inFlight.delete(p);
        inFlightPerNode[urlIndex]--;
      });
    inFlight.add(p);
  };

  const t0 = performance.now();
  const endAt = t0 + o.seconds * 1000;
  let sent = 0;
  let request = 0;
  // Bounded by the schedule: it ends when all `total` are sent or dropped, at `seconds` at the latest.
  while (sent < total) {
    const now = performance.now();
    const due = now >= endAt ? total : Math.min(total, Math.floor(((now - t0) / 1000) * o.offeredPerSecond));
    // Whole batches only, as they fall due (the last one may be short).
    while (due - sent >= o.batch || (due === total && sent < total)) {
      const count = Math.min(o.batch, total - sent);
      // Requests go round the nodes, dropped ones included, so the spread does not depend on drops.
      const urlIndex = request++ % o.rpcUrls.length;
      if (inFlightPerNode[urlIndex] >= MAX_OFFERED_IN_FLIGHT_PER_NODE) dropped += count;
      else send(sent, count, urlIndex);
      sent += count;
    }
    if (sent < total) await sleepMs(clock, OFFERED_TICK_MS);
  }
  const sendSeconds = (performance.now() - t0) / 1000;
  log(`offered ${total} in ${sendSeconds.toFixed(2)} s; waiting for answers and commits`);
  await Promise.all([...inFlight]);
  const { latencies, lastCommitAt: lastCommit } = await drainCommits(watcher, submittedAt, o.drainTimeoutMs, t0);
  acceptLatencies.sort((a, b) => a - b);
  refuseLatencies.sort((a, b) => a - b);
  retryAfter.sort((a, b) => a - b);
  const commitSeconds = (lastCommit - t0) / 1000;
  return {
    offered: total,
    droppedByClient: dropped,
    accepted,
    refusedByCode,
    refusedByReason,
    refused,
    retryAfterMs: { count: retryAfter.length, p50: percentile(retryAfter, 50), max: retryAfter.at(-1) ?? 0 },
    timedOut,
    failed,
    committed: latencies.length,
    sendSeconds,
    acceptedPerSecond: sendSeconds > 0 ? accepted / sendSeconds : 0,
    committedPerSecond: commitSeconds > 0 ? latencies.length / commitSeconds : 0,
    commitLatencyMs: {
      p50: percentile(latencies, 50),
      p99: percentile(latencies, 99),
      max: latencies.at(-1) ?? 0,
    },
    acceptLatencyMs: { p50: percentile(acceptLatencies, 50), p99: percentile(acceptLatencies, 99) },
    refuseLatencyMs: { p50: percentile(refuseLatencies, 50), p99: percentile(refuseLatencies, 99) },
    watcherError: watcher.lastError,
  };
}

/** The --offered report, one `key=value` line per aspect (grep-able, like the rest of `quorate bench`). */
export function formatOfferedResult(o: OfferedOptions, r: OfferedResult): string[] {
  const pct = (n: number) => (r.offered > 0 ? ((100 * n) / r.offered).toFixed(1) : '0.0');
  const lines = [
    `offered rate=${o.offeredPerSecond}/s seconds=${o.seconds} batch=${o.batch} signed_by=${o.nodeSigned ? 'node' : 'client'} offered=${r.offered} sent_in_s=${r.sendSeconds.toFixed(2)}`,
    `accepted=${r.accepted} (${pct(r.accepted)}%) refused=${r.refused} (${pct(r.refused)}%) timed_out=${r.timedOut} (${pct(r.timedOut)}%) failed=${[...r.failed.values()].reduce((a, b) => a + b, 0)} dropped_by_client=${r.droppedByClient}`,
    `committed=${r.committed} of accepted=${r.accepted} accepted_per_s=${r.acceptedPerSecond.toFixed(0)} committed_per_s=${r.committedPerSecond.toFixed(0)}`,
    `commit_latency_ms (accepted) p50=${r.commitLatencyMs.p50.toFixed(0)} p99=${r.commitLatencyMs.p99.toFixed(0)} max=${r.commitLatencyMs.max.toFixed(0)}`,
    `accept_latency_ms p50=${r.acceptLatencyMs.p50.toFixed(1)} p99=${r.acceptLatencyMs.p99.toFixed(1)} refuse_latency_ms p50=${r.refuseLatencyMs.p50.toFixed(1)} p99=${r.refuseLatencyMs.p99.toFixed(1)}`,
  ];
  // An open-loop client that cannot keep to its own schedule (this process starved of CPU) offers
  // less than asked: say so, or a calm-looking report could hide that the overload never happened.
  if (r.sendSeconds > o.seconds * OFFERED_SCHEDULE_SLACK)
    lines.push(
      `warning client_behind_schedule: sent in ${r.sendSeconds.toFixed(2)} s instead of ${o.seconds} s, offered_achieved_per_s=${(r.offered / r.sendSeconds).toFixed(0)}`,
    );
  for (const [code, n] of [...r.refusedByCode].sort((a, b) => b[1] - a[1]))
    lines.push(
      `refused code=${code} count=${n}${code === -32010 && r.retryAfterMs.count > 0 ? ` retry_after_ms p50=${r.retryAfterMs.p50} max=${r.retryAfterMs.max} (${r.retryAfterMs.count} carried it)` : ''}`,
    );
  if (r.refusedByReason.size > 0)
    lines.push(
      `refused_by_reason ${[...r.refusedByReason]
        .sort((a, b) => b[1] - a[1])
        .map(([k, n]) => `${k.replace(' ', ':')}=${n}`)
        .join(' ')}`,
    );
  for (const [msg, n] of r.failed) lines.push(`failed count=${n} message=${JSON.stringify(msg)}`);
  if (r.watcherError) lines.push(`watcher last_error=${JSON.stringify(r.watcherError)}`);
  return lines;
}

/** `quorate bench --offered R`: runs the open-loop load and prints its report; 1 when an accepted transaction never committed. */
export async function runOfferedBench(o: OfferedOptions): Promise<number> {
  const out = (line: string) => process.stdout.write(`${line}\n`);
  const r = await runOfferedLoad(o, out);
  for (const line of formatOfferedResult(o, r)) out(line);
  const ok = r.committed === r.accepted;
  out(ok ? 'result=ok' : `result=FAILED (${r.accepted - r.committed} accepted transactions did not commit)`);
  return ok ? 0 : 1;
}
