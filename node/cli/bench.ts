// `quorate bench`: load generator against running nodes. This file parses the command line;
// runBench() from node/bench.ts sends the transactions and prints the numbers.

import { ExitCode, UsageError, intFlag, parseFlags, stringFlag, urlFlag, type CliIo } from './args.js';
import { runBench } from '../bench.js';
import { runOfferedBench } from '../bench-offered.js';
import { setDefaultRpcCredentials, type RpcClientCredentials } from '../rpc/client.js';
import { credentialFlags } from './status.js';

export const BENCH_HELP = `Usage: quorate bench [--rpc URLS] [--txs N] [--concurrency C] [--rate R] [--batch B]
                     [--warmup N] [--private] [--timeline] [--token T] [--ca-file F]
       quorate bench --offered R [--seconds S] [--batch B] [--node-signed] [--rpc URLS]

Submits transactions to running nodes and prints throughput and latency percentiles
(submit-to-accept and submit-to-commit).

  --rpc URLS        comma-separated JSON-RPC URLs, used round-robin
                    (default http://127.0.0.1:8545/)
  --txs N           transactions to send (default 10000)
  --concurrency C   submissions in flight at once (default 64)
  --rate R          target transactions per second; 0 sends as fast as C allows (default 0)
  --batch B         transactions per JSON-RPC batch request (default 1)
  --warmup N        first send N transactions the same way, not counted, so the numbers
                    are those of warm processes (default 5000; 0 measures from cold)
  --private         send private transactions (privateFor the other nodes)
  --timeline        also print, per second of submission, how many were sent and
                    their commit latency p50/p99/max (shows stalls the totals hide)
  --token T         bearer token for nodes that require one (default $QUORATE_RPC_TOKEN)
  --ca-file F       CA certificate (PEM) of https:// nodes (default $QUORATE_RPC_CA_FILE)

Overload mode (open loop):
  --offered R       send R transactions per second on schedule, whatever the answers,
                    for --seconds; refusals are counted, never retried. Prints offered,
                    accepted, refused (by JSON-RPC error code and data.reason, -32010
                    with its data.retryAfterMs), timed out and committed, and the commit latency
                    p50/p99 of the accepted ones. Each is a 200-byte put.
  --seconds S       how long --offered sends (default 15)
  --node-signed     --offered sends quorate_sendTransaction from each node's own account;
                    without it, client-signed raw transactions (one fresh account each,
                    signed before the clock)
  --timeout-ms T    --offered: a request unanswered after T ms counts as timed out
                    (default 10000)
`;

/** Upper bound on --concurrency: every submission in flight holds a socket and a timer. */
export const MAX_BENCH_CONCURRENCY = 4096;
/** Transactions sent before the measured run by default (5 s at 1,000 tx/s). */
export const DEFAULT_BENCH_WARMUP_TXS = 5_000;
/** Upper bound on --txs (memory for per-transaction latencies). */
export const MAX_BENCH_TXS = 10_000_000;

export interface BenchOptions {
  readonly rpcUrls: readonly string[];
  readonly txs: number;
  readonly concurrency: number;
  /** Transactions per second; 0 = unlimited. */
  readonly rate: number;
  /** Client-signed transactions per JSON-RPC batch request (1 = one HTTP request per transaction). */
  readonly batch?: number;
  readonly private: boolean;
  /** Transactions sent first, the same way, and not counted. */
  readonly warmup?: number;
  /** Print per-second submission counts and commit latencies. */
  readonly timeline?: boolean;
  /** Open-loop overload mode: transactions offered per second (0 = off, the count-bounded run). */
  readonly offered?: number;
  /** --offered: seconds of sending. */
  readonly seconds?: number;
  /** --offered: quorate_sendTransaction from the nodes' own accounts instead of raw transactions. */
  readonly nodeSigned?: boolean;
  /** --offered: a request unanswered after this long counts as timed out. */
  readonly timeoutMs?: number;
  /** --token / --ca-file; undefined: the environment's. */
  readonly credentials?: RpcClientCredentials;
}

/** Upper bound on --seconds of --offered (every offered transaction is built before the clock). */
export const MAX_OFFERED_SECONDS = 3_600;
/** Upper bound on --offered x --seconds: transactions built before the clock (memory, ~1 KiB each). */
export const MAX_OFFERED_TXS = 2_000_000;
/** After the last --offered send, how long accepted transactions get to commit before they count as lost. */
export const OFFERED_DRAIN_TIMEOUT_MS = 60_000;

/** Provided by node/bench.ts. Resolves with the exit code (a number) or nothing for 0. */
export type RunBench = (options: BenchOptions) => Promise<unknown>;

export function parseBenchArgs(argv: readonly string[]): BenchOptions | 'help' {
  const { help, values } = parseFlags('bench', argv, {
    rpc: { type: 'string' },
    txs: { type: 'string' },
    concurrency: { type: 'string' },
    rate: { type: 'string' },
    private: { type: 'boolean' },
    batch: { type: 'string' },
    timeline: { type: 'boolean' },
    warmup: { type: 'string' },
    offered: { type: 'string' },
    seconds: { type: 'string' },
    'node-signed': { type: 'boolean' },
    'timeout-ms': { type: 'string' },
    token: { type: 'string' },
    'ca-file': { type: 'string' },
  });
  if (help) return 'help';
  const urls = (stringFlag(values, 'rpc') ?? 'http://127.0.0.1:8545/')
    .split(',')
    .map((u) => u.trim())
    .filter((u) => u.length > 0);
  if (urls.length === 0) throw new UsageError('--rpc needs at least one URL', 'bench');
  const credentials = credentialFlags(values);
  return {
    ...(credentials ? { credentials } : {}),
    rpcUrls: urls.map((u) => urlFlag('bench', u, 'rpc')),
    txs: intFlag('bench', values, 'txs', 10_000, 1, MAX_BENCH_TXS),
    concurrency: intFlag('bench', values, 'concurrency', 64, 1, MAX_BENCH_CONCURRENCY),
    rate: intFlag('bench', values, 'rate', 0, 0, 10_000_000),
    private: values.private === true,
    batch: intFlag('bench', values, 'batch', 1, 1, 256),
    timeline: values.timeline === true,
    warmup: intFlag('bench', values, 'warmup', DEFAULT_BENCH_WARMUP_TXS, 0, MAX_BENCH_TXS),
    ...parseOfferedFlags(values),
  };
}

function parseOfferedFlags(values: Record<string, unknown>): Partial<BenchOptions> {
  const offered = intFlag('bench', values, 'offered', 0, 1, 1_000_000);
  if (offered === 0) {
    for (const f of ['seconds', 'node-signed', 'timeout-ms'])
      if (values[f] !== undefined) throw new UsageError(`--${f} goes with --offered`, 'bench');
    return {};
  }
  for (const f of ['txs', 'rate', 'private', 'warmup', 'timeline'])
    if (values[f] !== undefined) throw new UsageError(`--${f} does not go with --offered`, 'bench');
  const seconds = intFlag('bench', values, 'seconds', 15, 1, MAX_OFFERED_SECONDS);
  if (offered * seconds > MAX_OFFERED_TXS)
    throw new UsageError(
      `--offered x --seconds must be at most ${MAX_OFFERED_TXS} transactions, got ${offered * seconds}`,
      'bench',
    );
  return {
    offered,
    seconds,
    nodeSigned: values['node-signed'] === true,
    timeoutMs: intFlag('bench', values, 'timeout-ms', 10_000, 1, 600_000),
  };
}

export async function benchCommand(argv: readonly string[], io: CliIo): Promise<ExitCode> {
  const options = parseBenchArgs(argv);
  if (options === 'help') {
    io.out(BENCH_HELP);
    return ExitCode.Ok;
  }
  // node/bench.ts builds its own clients: they take these as their default credentials.
  if (options.credentials) setDefaultRpcCredentials(options.credentials);
  const code =
    options.offered !== undefined && options.offered > 0
      ? await runOfferedBench({
          rpcUrls: options.rpcUrls,
          offeredPerSecond: options.offered,
          seconds: options.seconds ?? 15,
          batch: options.batch ?? 1,
          nodeSigned: options.nodeSigned === true,
          requestTimeoutMs: options.timeoutMs ?? 10_000,
          drainTimeoutMs: OFFERED_DRAIN_TIMEOUT_MS,
        })
      : await runBench(options);
  return code === 0 ? ExitCode.Ok : ExitCode.Failure;
}
