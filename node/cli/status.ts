// `quorate status`: asks one node for the membership (raft_cluster), then every member for its
// raft_status, eth_blockNumber and net_peerCount, and prints one table. A member that does not
// answer is a row saying so, not a failed command: status is what an operator runs when
// something is wrong.

import {
  HttpRpcClient,
  RPC_CA_FILE_ENV,
  RPC_TOKEN_ENV,
  RpcCallError,
  RpcTransportError,
  credentialsFromFiles,
  type RpcClient,
  type RpcClientCredentials,
} from '../rpc/client.js';
import type { ClusterMember, RaftStatusView } from '../rpc/backend.js';
import { CommandError, ExitCode, intFlag, parseFlags, stringFlag, urlFlag, type CliIo } from './args.js';
import { formatTable } from './table.js';

export const STATUS_HELP = `Usage: quorate status [--rpc URL] [--timeout-ms MS] [--json] [--token T] [--ca-file F]

Asks the node at URL for the cluster's members, then every member for its role, term, commit
index, head block and peers, and prints one table. Exits 1 when a member does not answer,
so scripts can wait for a healthy cluster.

  --rpc URL         any member's JSON-RPC URL (default http://127.0.0.1:8545/)
  --timeout-ms MS   per call (default 3000)
  --json            print JSON instead of a table
  --token T         bearer token for nodes that require one (default $${RPC_TOKEN_ENV})
  --ca-file F       CA certificate (PEM) of https:// nodes, e.g. the cluster's credentials/ca.crt
                    (default $${RPC_CA_FILE_ENV})
`;

export interface StatusOptions {
  readonly rpcUrl: string;
  readonly timeoutMs: number;
  readonly json: boolean;
  /** Token and CA; undefined: the environment's (node/rpc/client.ts). */
  readonly credentials?: RpcClientCredentials;
}

export interface MemberStatus {
  readonly raftId: number;
  readonly nodeId: string;
  readonly rpcUrl: string;
  readonly membership: 'verifier' | 'learner';
  readonly isLeader: boolean;
  /** Present when the member answered. */
  readonly status?: RaftStatusView;
  readonly head?: number;
  readonly peers?: number;
  /** Why it did not answer. */
  readonly error?: string;
}

export function parseStatusArgs(argv: readonly string[]): StatusOptions | 'help' {
  const { help, values } = parseFlags('status', argv, {
    rpc: { type: 'string' },
    'timeout-ms': { type: 'string' },
    json: { type: 'boolean' },
    token: { type: 'string' },
    'ca-file': { type: 'string' },
  });
  if (help) return 'help';
  const credentials = credentialFlags(values);
  return {
    ...(credentials ? { credentials } : {}),
    rpcUrl: urlFlag('status', stringFlag(values, 'rpc') ?? 'http://127.0.0.1:8545/', 'rpc'),
    timeoutMs: intFlag('status', values, 'timeout-ms', 3000, 1, 600_000),
    json: values.json === true,
  };
}

/**
 * --token and --ca-file (status and bench): explicit credentials, or undefined so clients fall
 * back to QUORATE_RPC_TOKEN / QUORATE_RPC_CA_FILE. A flag replaces its own variable only.
 */
export function credentialFlags(values: Record<string, unknown>): RpcClientCredentials | undefined {
  const token = stringFlag(values, 'token') ?? process.env[RPC_TOKEN_ENV];
  const caFile = stringFlag(values, 'ca-file') ?? process.env[RPC_CA_FILE_ENV];
  if (stringFlag(values, 'token') === undefined && stringFlag(values, 'ca-file') === undefined) return undefined;
  try {
    return credentialsFromFiles({ ...(token ? { token } : {}), ...(caFile ? { caFile } : {}) });
  } catch (err) {
    throw new CommandError((err as Error).message, { cause: err });
  }
}

/** Collects every member's status. `clientFor` is injectable so tests can use in-process clients. */
export async function collectStatus(
  entry: RpcClient,
  clientFor: (rpcUrl: string) => RpcClient,
): Promise<MemberStatus[]> {
  const members = await entry.call<ClusterMember[]>('raft_cluster');
  return Promise.all(
    members.map(async (m): Promise<MemberStatus> => {
      const base = { raftId: m.raftId, nodeId: m.nodeId, rpcUrl: m.rpcUrl, membership: m.role, isLeader: m.isLeader };
      try {
        const c = clientFor(m.rpcUrl);
        const [status, head, peers] = await Promise.all([
          c.call<RaftStatusView>('raft_status'),
          c.call<string>('eth_blockNumber'),
          c.call<string>('net_peerCount'),
        ]);
        return { ...base, status, head: Number.parseInt(head, 16), peers: Number.parseInt(peers, 16) };
      } catch (err) {
        return { ...base, error: describeError(err) };
      }
    }),
  );
}

function describeError(err: unknown): string {
  if (err instanceof RpcTransportError) return `unreachable (${err.code})`;
  if (err instanceof RpcCallError) return `error ${err.code}: ${err.message}`;
  return err instanceof Error ? err.message : String(err);
}

export function formatStatus(rows: readonly MemberStatus[]): string {
  return formatTable(
    ['raftId', 'node', 'role', 'term', 'commit', 'applied', 'head', 'peers', 'rpc'],
    [...rows]
      .sort((a, b) => a.raftId - b.raftId)
      .map((r) =>
        r.status
          ? [
              String(r.raftId),
              r.nodeId,
              r.status.role,
              String(r.status.term),
              String(r.status.commitIndex),
              String(r.status.appliedIndex),
              String(r.head),
              String(r.peers),
              r.rpcUrl,
            ]
          : [String(r.raftId), r.nodeId, r.error ?? 'unknown', '-', '-', '-', '-', '-', r.rpcUrl],
      ),
  );
}

export async function statusCommand(argv: readonly string[], io: CliIo): Promise<ExitCode> {
  const options = parseStatusArgs(argv);
  if (options === 'help') {
    io.out(STATUS_HELP);
    return ExitCode.Ok;
  }
  const clientFor = (url: string): RpcClient =>
    new HttpRpcClient(url, {
      timeoutMs: options.timeoutMs,
      ...(options.credentials ? { credentials: options.credentials } : {}),
    });
  let rows: MemberStatus[];
  try {
    rows = await collectStatus(clientFor(options.rpcUrl), clientFor);
  } catch (err) {
    throw new CommandError(
      `cannot get the membership from ${options.rpcUrl}: ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
  io.out(options.json ? JSON.stringify(rows, null, 2) : formatStatus(rows));
  // Non-zero when a member did not answer, so scripts can wait for a healthy cluster.
  return rows.every((r) => r.status !== undefined) ? ExitCode.Ok : ExitCode.Failure;
}
