// `quorate bench`: load generator against running nodes. This file parses the command line;
// runBench() from node/bench.ts sends the transactions and prints the numbers.

import { ExitCode, exitCodeOf, UsageError, intFlag, parseFlags, stringFlag, urlFlag, type CliIo } from './args.js';
import { runBench } from '../bench.js';
import { setDefaultRpcCredentials, type RpcClientCredentials } from '../rpc/client.js';
import { credentialFlags } from './status.js';

export const BENCH_HELP = `Usage: quorate bench [--rpc URLS] [--txs N] [--concurrency C] [--rate R] [--batch B]
                     [--warmup N] [--private] [--timeline] [--token T] [--ca-file F]

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
  /** --token / --ca-file; undefined: the environment's. */
  readonly credentials?: RpcClientCredentials;
}

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
  return (await runBench(options)) === 0 ? ExitCode.Ok : ExitCode.Failure;
}
