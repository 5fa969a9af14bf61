// The NodeRpcBackend contract, run against the node's real backend (node/backend.ts) on a
// 3-node in-process cluster of real QuorateNodes (test/node/harness.ts: in-memory transport and
// stores, the same node code as production). The harness runs without transaction managers.
// The node keeps state at the head only, so reads at past block numbers answer NotFound — short
// of docs/interface.md's quorate_getValue(key, number); reported to the lead.

import { NodeBackend } from '../../node/backend.js';
import { TestCluster } from '../node/harness.js';
import { backendComplianceSuite } from './backend-compliance.js';

backendComplianceSuite('NodeBackend on a 3-node in-process cluster (leader)', async () => {
  const cluster = new TestCluster({ nodes: 3 });
  await cluster.start();
  const leader = await cluster.waitForLeader();
  return {
    backend: new NodeBackend(leader.node),
    fundedAccount: leader.account.address,
    historicalState: true,
    privacy: false,
    stop: () => cluster.stop(),
  };
});

backendComplianceSuite('NodeBackend on a 3-node in-process cluster (follower)', async () => {
  const cluster = new TestCluster({ nodes: 3 });
  await cluster.start();
  const leader = await cluster.waitForLeader();
  const follower = cluster.nodes.find((h) => h !== leader)!;
  return {
    backend: new NodeBackend(follower.node),
    fundedAccount: follower.account.address,
    historicalState: true,
    privacy: false,
    stop: () => cluster.stop(),
  };
});
