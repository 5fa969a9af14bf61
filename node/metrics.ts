// The node's Prometheus metrics, declared in one place so their names, labels and meaning are
// reviewed together. Each node owns one registry (no global default registry: several nodes may
// run in one process in tests and for embedders). Components receive `NodeMetrics` and update the
// fields; the RPC server serves `registry.metrics()` at GET /metrics.
//
// Label cardinality is bounded everywhere: `method` is a method of the table or "unknown",
// `code` a JSON-RPC error code (or 0 for success), `peer` a member of the cluster.

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** Values of quorate_raft_role_info's `role` label; the current role is 1, the others 0. */
export const RAFT_ROLES = ['leader', 'follower', 'pre-candidate', 'candidate', 'learner'] as const;
export type RaftRoleLabel = (typeof RAFT_ROLES)[number];

/** Values of quorate_circuit_breaker_state. */
export enum CircuitStateValue {
  Closed = 0,
  HalfOpen = 1,
  Open = 2,
}

export interface NodeMetrics {
  readonly registry: Registry;
  readonly raftTerm: Gauge;
  readonly raftCommitIndex: Gauge;
  readonly raftAppliedIndex: Gauge;
  /** Labels: role. Use `setRaftRole()`. */
  readonly raftRole: Gauge<'role'>;
  readonly raftLeaderChanges: Counter;
  /** The current leader's raftId (0 when none is known). */
  readonly raftLeader: Gauge;
  readonly chainHeadNumber: Gauge;
  readonly blocksCommitted: Counter;
  /** Labels: kind = public | private. */
  readonly txsCommitted: Counter<'kind'>;
  readonly txPoolSize: Gauge;
  /** Labels: method, code ("0" for success, else the JSON-RPC error code). */
  readonly rpcRequests: Counter<'method' | 'code'>;
  readonly rpcDurationSeconds: Histogram<'method'>;
  /** Labels: peer (a remote transaction manager's URL or node id). Values: CircuitStateValue. */
  readonly circuitBreakerState: Gauge<'peer'>;
  readonly p2pPeersConnected: Gauge;
}

export interface NodeMetricsOptions {
  /** Also export Node.js process metrics (heap, event-loop lag, fds). On for a real node; off in tests. */
  readonly processMetrics?: boolean;
  /** Default labels on every series, e.g. `{ node: 'node-1' }` when several nodes share a scrape target. */
  readonly defaultLabels?: Readonly<Record<string, string>>;
}

export function createNodeMetrics(options: NodeMetricsOptions = {}): NodeMetrics {
  const registry = new Registry();
  if (options.defaultLabels) registry.setDefaultLabels({ ...options.defaultLabels });
  if (options.processMetrics) collectDefaultMetrics({ register: registry, prefix: 'quorate_' });
  const registers = [registry];

  const metrics: NodeMetrics = {
    registry,
    raftTerm: new Gauge({ name: 'quorate_raft_term', help: 'Current Raft term of this node', registers }),
    raftCommitIndex: new Gauge({
      name: 'quorate_raft_commit_index',
      help: 'Highest Raft log index known committed',
      registers,
    }),
    raftAppliedIndex: new Gauge({
      name: 'quorate_raft_applied_index',
      help: 'Highest Raft log index applied to the chain',
      registers,
    }),
    raftRole: new Gauge({
      name: 'quorate_raft_role_info',
      help: 'Raft role of this node (1 for the current role)',
      labelNames: ['role'],
      registers,
    }),
    raftLeaderChanges: new Counter({
      name: 'quorate_raft_leader_changes_total',
      help: 'Leader changes seen by this node',
      registers,
    }),
    raftLeader: new Gauge({
      name: 'quorate_raft_leader_id',
      help: 'raftId of the current leader, 0 when none is known',
      registers,
    }),
    chainHeadNumber: new Gauge({ name: 'quorate_chain_head_number', help: 'Number of the head block', registers }),
    blocksCommitted: new Counter({
      name: 'quorate_blocks_committed_total',
      help: 'Blocks applied to the chain',
      registers,
    }),
    txsCommitted: new Counter({
      name: 'quorate_txs_committed_total',
      help: 'Transactions applied, by kind',
      labelNames: ['kind'],
      registers,
    }),
    txPoolSize: new Gauge({ name: 'quorate_txpool_size', help: 'Transactions waiting in the pool', registers }),
    rpcRequests: new Counter({
      name: 'quorate_rpc_requests_total',
      help: 'JSON-RPC calls by method and result code (0 = success)',
      labelNames: ['method', 'code'],
      registers,
    }),
    rpcDurationSeconds: new Histogram({
      name: 'quorate_rpc_duration_seconds',
      help: 'JSON-RPC call duration by method',
      labelNames: ['method'],
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers,
    }),
    circuitBreakerState: new Gauge({
      name: 'quorate_circuit_breaker_state',
      help: 'Circuit breaker per remote transaction manager: 0 closed, 1 half-open, 2 open',
      labelNames: ['peer'],
      registers,
    }),
    p2pPeersConnected: new Gauge({
      name: 'quorate_p2p_peers_connected',
      help: 'Cluster peers with a live connection',
      registers,
    }),
  };
  // Export every role at 0 from the start, so dashboards see the series before the first change.
  setRaftRole(metrics, 'follower');
  return metrics;
}

/** Sets the role gauge: 1 for `role`, 0 for every other role. */
export function setRaftRole(metrics: NodeMetrics, role: RaftRoleLabel): void {
  for (const r of RAFT_ROLES) metrics.raftRole.set({ role: r }, r === role ? 1 : 0);
}
