// The page's view of a real QuorateNode (node/page/node-source.ts), on the in-process cluster
// (real nodes, in-memory transport and stores): names and roles, p2p connections mapped to raft
// ids — so a partition shows in the view — breakers as the node's gauge publishes them, and the
// applied blocks that feed the charts.

import { afterEach, describe, expect, it } from 'vitest';
import { SystemClock } from '../../node/clock.js';
import { silentLogger } from '../../node/log.js';
import { CircuitStateValue, createNodeMetrics } from '../../node/metrics.js';
import { ClusterView, type ClusterViewMessage, type PageSource } from '../../node/page/cluster-view.js';
import { pageSourceFromNode } from '../../node/page/node-source.js';
import { TestCluster, waitFor } from '../node/harness.js';

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

async function started(): Promise<{ c: TestCluster; sources: PageSource[] }> {
  const c = new TestCluster({ nodes: 3 });
  cluster = c;
  await c.start();
  await c.waitForLeader();
  const clock = new SystemClock();
  const sources = c.nodes.map((h) => pageSourceFromNode(h.node, createNodeMetrics(), clock));
  return { c, sources };
}

describe('the page source of a real node', () => {
  it('reports name, role, indexes and the members it is connected to; a partition shows', async () => {
    const { c, sources } = await started();
    await waitFor(async () => (await sources[0].sample()).connectedTo.length === 2, 5_000, 'node-1 connected to both');
    const s = await sources[0].sample();
    expect(s).toMatchObject({ raftId: 1, name: 'node-1', connectedTo: [2, 3], privateCatchUp: null, alarm: null });
    expect(['leader', 'follower']).toContain(s.role);
    expect(s.voters).toEqual([1, 2, 3]);
    expect(sources[0].members().map((m) => [m.raftId, m.name, m.membership])).toEqual([
      [1, 'node-1', 'verifier'],
      [2, 'node-2', 'verifier'],
      [3, 'node-3', 'verifier'],
    ]);

    c.network.partition(c.nodes[0].peerId, c.nodes[1].peerId);
    await waitFor(async () => (await sources[0].sample()).connectedTo.length === 1, 5_000, 'the partition');
    expect((await sources[0].sample()).connectedTo).toEqual([3]);
    expect((await sources[1].sample()).connectedTo).toEqual([3]);

    // The cluster view built on node-1, asking the others in process, shows the cut both ways.
    const byRaftId = new Map(sources.map((src, i) => [c.nodes[i].node.status().raftId, src]));
    const view = new ClusterView(
      {},
      {
        source: sources[0],
        clock: new SystemClock(),
        logger: silentLogger(),
        fetchPeer: (url) => {
          const m = sources[0].members().find((x) => x.rpcUrl === url);
          return byRaftId.get(m?.raftId ?? 0)!.sample();
        },
      },
    );
    const views: ClusterViewMessage[] = [];
    view.watch((v) => views.push(v));
    await view.tick();
    expect(views[0].members.map((m) => [m.name, m.up, m.sample?.connectedTo])).toEqual([
      ['node-1', true, [3]],
      ['node-2', true, [3]],
      ['node-3', true, [1, 2]],
    ]);
  });

  it('shows the circuit breakers the node publishes, and counts applied blocks and their transactions', async () => {
    const { c } = await started();
    const metrics = createNodeMetrics();
    const source = pageSourceFromNode(c.nodes[0].node, metrics, new SystemClock());
    expect((await source.sample()).breakers).toEqual([]);
    metrics.circuitBreakerState.set({ peer: 'node-3' }, CircuitStateValue.Open);
    metrics.circuitBreakerState.set({ peer: 'node-2' }, CircuitStateValue.HalfOpen);
    expect((await source.sample()).breakers).toEqual([
      { peer: 'node-2', state: 'half-open' },
      { peer: 'node-3', state: 'open' },
    ]);

    const blocks: { txCount: number; timestampMs: number }[] = [];
    const off = source.onBlock((b) => blocks.push(b));
    const h = c.nodes[0];
    const before = Date.now();
    await h.node.sendTransaction({ from: h.account.address, ops: [{ type: 'put', key: 'k', value: 'v' }] });
    await waitFor(() => blocks.some((b) => b.txCount === 1), 5_000, 'the block with the transaction');
    const b = blocks.find((x) => x.txCount === 1)!;
    expect(b.timestampMs).toBeGreaterThanOrEqual(before - 1_000);
    off();
  });
});
