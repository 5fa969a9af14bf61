// Workloads and the client runner. A workload draws operations from a seeded rng; the runner drives
// `concurrency` client processes against a `JepsenClient` (the real one speaks JSON-RPC to a node; a
// simulated one runs in memory), and records every operation in the history with Jepsen's rules:
//  - invoke is recorded before the request is sent; the completion after the answer;
//  - `fail` only when the client is certain the operation did not take effect (the node refused it
//    before proposing it); anything else that goes wrong — a timeout, a dropped connection, an
//    exception — is `info`: the outcome is unknown, and the process is retired (a new process id
//    takes its place, because the old operation may still be in flight).

import { SeededRng } from '../../consensus/rng.js';
import { invariant } from './errors.js';
import type { HistoryRecorder } from './history.js';
import type { TimerHandle } from '../clock.js';
import { harnessClock as clock } from './clock.js';

export type WorkloadName = 'register' | 'bank' | 'append' | 'privacy';

export interface OpRequest {
  readonly f: string;
  readonly value: unknown;
}

export interface Workload {
  readonly name: WorkloadName;
  /** The next operation for `process`; `seq` is unique per run, so written values are unique. */
  next(rng: SeededRng, process: number, seq: number): OpRequest;
}

export type ClientOutcome =
  | { readonly type: 'ok'; readonly value: unknown }
  | { readonly type: 'fail'; readonly error: string }
  | { readonly type: 'info'; readonly error: string };

/**
 * One client connection. `invoke` must return `fail` only when the operation certainly did not take
 * effect; it may throw or hang, and the runner turns that into `info`. It should stop when `signal`
 * aborts (the runner's timeout).
 */
export interface JepsenClient {
  invoke(op: OpRequest, signal: AbortSignal): Promise<ClientOutcome>;
}

/** Register: put / get / cas over a few keys (few keys, so operations contend). */
export function registerWorkload(options: { keys?: number } = {}): Workload {
  const keys = options.keys ?? 5;
  invariant(keys >= 1, 'register workload needs a key');
  return {
    name: 'register',
    next(rng, process, seq) {
      const key = `r${rng.nextInt(keys)}`;
      const r = rng.nextInt(10);
      if (r < 4) return { f: 'get', value: { key } };
      const value = `${process}-${seq}`;
      if (r < 7) return { f: 'put', value: { key, value } };
      // cas from a small set of recent-looking values: a fixed guess would almost never match.
      const expectValue =
        rng.nextInt(4) === 0
          ? null
          : `${rng.nextInt(Math.max(1, process + 1))}-${Math.max(0, seq - 1 - rng.nextInt(8))}`;
      return { f: 'cas', value: { key, expect: expectValue, value } };
    },
  };
}

/** Bank: transfers between accounts, and reads of every balance. */
export function bankWorkload(options: { accounts: readonly string[]; maxAmount?: number }): Workload {
  const { accounts } = options;
  const maxAmount = options.maxAmount ?? 5;
  invariant(accounts.length >= 2, 'bank workload needs two accounts');
  return {
    name: 'bank',
    next(rng) {
      if (rng.nextInt(2) === 0) return { f: 'read', value: null };
      const from = accounts[rng.nextInt(accounts.length)];
      let to = accounts[rng.nextInt(accounts.length - 1)];
      if (to === from) to = accounts[accounts.length - 1];
      return { f: 'transfer', value: { from, to, amount: String(1 + rng.nextInt(maxAmount)) } };
    },
  };
}

/** List-append: appends of unique elements to a few lists, and reads of whole lists. */
export function appendWorkload(options: { keys?: number } = {}): Workload {
  const keys = options.keys ?? 3;
  return {
    name: 'append',
    next(rng, process, seq) {
      const key = `l${rng.nextInt(keys)}`;
      if (rng.nextInt(2) === 0) return { f: 'read', value: { key } };
      return { f: 'append', value: { key, value: `${process}-${seq}` } };
    },
  };
}

/**
 * Private puts (privateFor one other member, chosen by the client), each on a key of its own, so
 * that at the end every party must hold the value and every other node none of it (checkPrivacy).
 */
export function privacyWorkload(): Workload {
  return {
    name: 'privacy',
    next(_rng, process, seq) {
      return { f: 'private-put', value: { key: `p${process}-${seq}`, value: `v${seq}` } };
    },
  };
}

export interface RunClientsOptions {
  readonly recorder: HistoryRecorder;
  readonly workload: Workload;
  /** A client for a process id (a retired process's replacement gets a fresh client). */
  readonly clientFor: (process: number) => JepsenClient;
  readonly concurrency: number;
  /**
   * The first process id (default 0). Workloads that share one history take disjoint ranges, so a
   * checker can pick its workload's operations by process id.
   */
  readonly processBase?: number;
  readonly durationMs: number;
  /** Target operations per second over all clients; undefined = as fast as answers come. */
  readonly rateHz?: number;
  /** After this, an unanswered operation is recorded as info and its process retired. */
  readonly opTimeoutMs: number;
  readonly seed: number;
  readonly signal?: AbortSignal;
}

export interface RunClientsStats {
  readonly invoked: number;
  readonly ok: number;
  readonly fail: number;
  readonly info: number;
  readonly processesRetired: number;
}

/** Runs the clients until `durationMs` passes (or `signal` aborts); every operation is completed in the history. */
export async function runClients(options: RunClientsOptions): Promise<RunClientsStats> {
  invariant(options.concurrency >= 1, 'concurrency must be at least 1');
  invariant(options.opTimeoutMs > 0, 'opTimeoutMs must be positive');
  const rng = new SeededRng(options.seed);
  const deadline = clock.monotonicMs() + options.durationMs;
  let seq = 0;
  const base = options.processBase ?? 0;
  let nextProcess = base + options.concurrency;
  const stats = { invoked: 0, ok: 0, fail: 0, info: 0, processesRetired: 0 };
  // Each worker paces itself to concurrency/rate seconds per op, with jitter so workers do not align.
  const periodMs = options.rateHz === undefined ? 0 : (1000 * options.concurrency) / options.rateHz;
  const stopped = (): boolean => clock.monotonicMs() >= deadline || options.signal?.aborted === true;
  const worker = async (slot: number): Promise<void> => {
    let process = base + slot;
    let client = options.clientFor(process);
    while (!stopped()) {
      if (periodMs > 0) await sleepMs(periodMs * (0.5 + rng.nextInt(1000) / 1000), options.signal);
      if (stopped()) break;
      await options.recorder.ready();
      const op = options.workload.next(rng, process, seq++);
      const inv = options.recorder.invoke(process, op.f, op.value);
      stats.invoked++;
      const outcome = await invokeWithTimeout(client, op, options.opTimeoutMs);
      if (outcome.type === 'ok') {
        options.recorder.ok(inv, outcome.value);
        stats.ok++;
      } else if (outcome.type === 'fail') {
        options.recorder.fail(inv, null, outcome.error);
        stats.fail++;
      } else {
        options.recorder.info(inv, null, outcome.error);
        stats.info++;
        stats.processesRetired++;
        process = nextProcess++;
        client = options.clientFor(process);
      }
    }
  };
  await Promise.all(Array.from({ length: options.concurrency }, (_, i) => worker(i)));
  return stats;
}

async function invokeWithTimeout(client: JepsenClient, op: OpRequest, timeoutMs: number): Promise<ClientOutcome> {
  const ac = new AbortController();
  let timer: TimerHandle | undefined;
  const timeout = new Promise<ClientOutcome>((resolve) => {
    timer = clock.setTimeout(() => {
      ac.abort();
      resolve({ type: 'info', error: `timeout after ${timeoutMs} ms` });
    }, timeoutMs);
  });
  try {
    return await Promise.race([
      client.invoke(op, ac.signal).catch((err: unknown): ClientOutcome => ({
        type: 'info',
        error: `client error: ${(err as Error)?.message ?? String(err)}`,
      })),
      timeout,
    ]);
  } finally {
    timer?.cancel();
  }
}

function sleepMs(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const t = clock.setTimeout(done, ms);
    function done(): void {
      t?.cancel();
      signal?.removeEventListener('abort', done);
      resolve();
    }
    signal?.addEventListener('abort', done, { once: true });
  });
}
