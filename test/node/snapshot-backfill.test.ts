// A follower partitioned past the leader's compacted log comes back by snapshot while the cluster
// keeps committing, and fetches the blocks the snapshot skipped from its peers (node/catch-up.ts):
// afterwards every height holds the same block on every node, with its receipts. Public
// transactions only; test/privacy/snapshot-catch-up.test.ts covers private state.

import { afterEach, describe, expect, it } from 'vitest';
import { BLOCK_RANGE_MAX_BLOCKS } from '../../node/catch-up.js';
import { TestCluster, waitFor, type HarnessNode } from './harness.js';

let cluster: TestCluster | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

const hashBytes = (txHash: string) => Uint8Array.from(Buffer.from(txHash.slice(2), 'hex'));

async function put(h: HarnessNode, key: string, value: string): Promise<string> {
  return h.node.sendTransaction({ from: h.account.address, ops: [{ type: 'put', key, value }] });
}

async function waitCommitted(nodes: readonly HarnessNode[], txHash: string): Promise<void> {
  await waitFor(
    async () => {
      for (const h of nodes) if (!(await h.node.store.getReceipt(hashBytes(txHash)))) return false;
      return true;
    },
    10_000,
    `tx ${txHash} committed`,
  );
}

describe('backfilling the blocks a snapshot skipped', () => {
  it('a follower cut off past the compacted log ends with every block and receipt, fetched over several ranges while new blocks commit', async () => {
    cluster = new TestCluster({
      nodes: 3,
      settings: { raft: { snapshotEveryEntries: 16, compactionRetainEntries: 4 } },
    });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const [other, lagging] = cluster.nodes.filter((h) => h !== leader);
    const first = await put(leader, 'before', 'x');
    await waitCommitted(cluster.nodes, first);
    const laggingHead = lagging.node.chainState.head.header.number;
    const laggingApplied = lagging.node.status().appliedIndex;

    cluster.network.isolate(lagging.peerId);
    // More blocks than one range reply carries, so the backfill takes several requests.
    const gap: string[] = [];
    for (let i = 0; i < BLOCK_RANGE_MAX_BLOCKS + 20; i++) {
      const h = await put(i % 2 ? leader : other, `k${i}`, `v${i}`);
      gap.push(h);
      await waitCommitted([leader, other], h);
    }
    await waitFor(
      () => leader.raftStorage.firstIndex() > laggingApplied + 1,
      10_000,
      'the leader to compact past the cut-off follower',
    );
    // Before the heal the gap is absent on the lagging node.
    expect(await lagging.node.store.getReceipt(hashBytes(gap[0]))).toBeUndefined();

    cluster.network.heal();
    // New blocks keep committing while it catches up.
    const during: string[] = [];
    for (let i = 0; i < 10; i++) during.push(await put(leader, `d${i}`, `w${i}`));
    await waitCommitted(cluster.nodes, during[during.length - 1]);
    await waitFor(
      () =>
        lagging.node.privateCatchUp() === undefined &&
        lagging.node.chainState.head.header.number === leader.node.chainState.head.header.number,
      20_000,
      'the lagging node to catch up',
    );
    // The log it needed was gone (checked above), so it came back by snapshot.
    expect(lagging.raftStorage.snapshot().metadata.index).toBeGreaterThan(laggingApplied);
    expect(await lagging.node.store.getValue('k0')).toBe('v0');

    const head = leader.node.chainState.head.header.number;
    expect(head).toBeGreaterThan(laggingHead + BLOCK_RANGE_MAX_BLOCKS);
    for (let n = 0; n <= head; n++) {
      const hashes = await Promise.all(
        cluster.nodes.map(async (h) => (await h.node.store.getBlockByNumber(n))?.hashHex),
      );
      expect(hashes[0], `block ${n}`).toBeDefined();
      expect(new Set(hashes).size, `block ${n}`).toBe(1);
    }
    for (const h of [...gap, ...during]) {
      const r = await lagging.node.store.getReceipt(hashBytes(h));
      expect(r?.status, h).toBe(1);
      const found = await lagging.node.store.getTransaction(hashBytes(h));
      expect(found?.location.blockHash).toEqual(
        (await leader.node.store.getTransaction(hashBytes(h)))?.location.blockHash,
      );
    }
  }, 90_000);
});
