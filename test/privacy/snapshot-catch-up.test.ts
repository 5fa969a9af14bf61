// A follower that fell behind the leader's compacted log catches up by snapshot, then fetches the
// blocks the snapshot skipped from its peers and replays their private transactions from its own
// transaction manager (node/catch-up.ts, QuorateNode.runCatchUp). Real nodes, real NodePrivacy,
// LevelDB chain stores, in-memory network.

import { afterEach, describe, expect, it } from 'vitest';
import { NodeBackend } from '../../node/backend.js';
import { NodeError, NodeErrorCode } from '../../node/errors.js';
import { PrivateCluster, waitFor, type PrivateNode, hashBytes, waitCommitted } from './cluster.js';

let cluster: PrivateCluster | undefined;

afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

type Op =
  { type: 'put'; key: string; value: string } | { type: 'cas'; key: string; expect: string | null; value: string };

/** quorate_sendTransaction, retried only when no leader took it (an election). */
async function send(from: PrivateNode, ops: Op[], privateFor?: readonly PrivateNode[]): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await from.node.sendTransaction({
        from: from.account.address,
        ops,
        ...(privateFor ? { privateFor: privateFor.map((p) => p.enclaveKey) } : {}),
      });
    } catch (error) {
      const retry =
        error instanceof NodeError && (error.code === NodeErrorCode.NoLeader || error.code === NodeErrorCode.NotLeader);
      if (!retry || attempt >= 50) throw error;
      await new Promise((r) => setTimeout(r, 50));
    }
  }
}

async function privateReadError(h: PrivateNode, key: string): Promise<NodeError | null> {
  try {
    await new NodeBackend(h.node).getPrivateValue(key, 'latest');
    return null;
  } catch (err) {
    return err as NodeError;
  }
}

describe('catching up after a snapshot', () => {
  it('a follower past the compacted log gets every skipped block, its receipts, and its private state; reads wait meanwhile; a restart resumes', async () => {
    cluster = await PrivateCluster.create({
      nodes: 3,
      deliveryMode: 'queue',
      tm: { queueRetryIntervalMs: 100, breaker: { openBaseMs: 100, openMaxMs: 400 } },
      // Snapshot and compact every few blocks, so a follower down for a while falls past the log.
      settings: { raft: { snapshotEveryEntries: 8, compactionRetainEntries: 2 } },
    });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const [a, b] = [leader, ...cluster.nodes.filter((h) => h !== leader)];
    const c = cluster.nodes.find((h) => h !== a && h !== b)!;
    await waitFor(() => cluster!.nodes.every((h) => h.privacy.knownParties === 2), 5_000, 'keys known');
    for (const h of cluster.nodes) await h.privacy.resynced();

    // Before the gap: c holds some private state of its own already.
    const before = await send(a, [{ type: 'put', key: 'before', value: 'b0' }], [c]);
    await waitCommitted(cluster.nodes, before);
    expect(await c.node.store.getPrivateValue('before')).toBe('b0');
    const cAppliedAtStop = c.node.status().appliedIndex;
    const cHeadAtStop = c.node.status().head;
    await cluster.stopNode(c);
    await cluster.waitForLeader();

    // While c is down: public and private transactions, c a party to some, b to others.
    const skipped: string[] = [];
    const forC: Array<[string, string]> = [];
    const forB: Array<[string, string]> = [];
    /** Hashes of the skipped private transactions c is a party to. */
    const cParty: string[] = [];
    for (let i = 0; i < 30; i++) {
      let h: string;
      if (i % 3 === 0) {
        h = await send(a, [{ type: 'put', key: `pub${i}`, value: `p${i}` }]);
      } else if (i % 3 === 1) {
        h = await send(a, [{ type: 'put', key: `c${i}`, value: `secret-c-${i}` }], [c]);
        forC.push([`c${i}`, `secret-c-${i}`]);
        cParty.push(h);
      } else {
        h = await send(b, [{ type: 'put', key: `b${i}`, value: `secret-b-${i}` }], [a]);
        forB.push([`b${i}`, `secret-b-${i}`]);
      }
      skipped.push(h);
      await waitCommitted([a, b], h);
    }
    // The key an ordering check uses: written in the skipped range, compare-and-set after c returns.
    const ordered = await send(a, [{ type: 'put', key: 'ordered', value: 'v1' }], [c]);
    skipped.push(ordered);
    await waitCommitted([a, b], ordered);
    // The leader compacted its log past what c holds: c can only come back by snapshot.
    const current = cluster.leader()!;
    await waitFor(
      () => current.raftStorage.firstIndex() > cAppliedAtStop + 1,
      10_000,
      'the leader to compact past the stopped follower',
    );

    // c returns with its transaction manager unreachable from the node: it installs the snapshot
    // and fetches the blocks, but cannot replay the private transactions, and must say so to a
    // private read rather than answer from incomplete state.
    c.switch.down = true;
    await cluster.restartNode(c);
    await waitFor(() => c.node.privateCatchUp() !== undefined, 10_000, 'c to install a snapshot and start catching up');
    expect(c.node.status().head).toBeGreaterThan(cHeadAtStop + 1);
    const err = await privateReadError(c, 'before');
    expect(err).toBeInstanceOf(NodeError);
    expect(err!.code).toBe(NodeErrorCode.Unavailable);
    expect(err!.message).toMatch(/private state is catching up after a snapshot, \d+ blocks left/);
    // The skipped blocks arrive (public data) while the private replay waits for the TM.
    await waitFor(() => c.node.privateCatchUp()?.blocksToFetch === 0, 15_000, 'c to fetch every skipped block');
    for (const h of skipped) expect(await c.node.store.getReceipt(hashBytes(h)), h).toBeDefined();
    // A private transaction c is not replayed yet: its receipt is refused, not shown as "included".
    const pendingReceipt = await new NodeBackend(c.node).getTransactionReceipt(skipped[1]).then(
      () => null,
      (e: unknown) => e as NodeError,
    );
    expect(pendingReceipt?.code).toBe(NodeErrorCode.Unavailable);
    // raft_status and /health show the catch-up; the node stays healthy for public service.
    const backend = new NodeBackend(c.node);
    const st = await backend.raftStatus();
    expect(st.privateCatchUp?.blocksToFetch).toBe(0);
    expect(st.privateCatchUp!.blocksLeft).toBeGreaterThan(0);
    expect((await backend.health()).privateCatchUp).toEqual(st.privateCatchUp);
    // "Could not tell" was not taken for "not a party": the replay holds at the first private block.
    expect(c.switch.failedReceives).toBeGreaterThan(0);
    expect(await c.node.store.getPrivateValue('c1')).toBeNull();

    // A restart in the middle of the catch-up resumes it from the store's record.
    await cluster.restartNode(c);
    const resumed = c.node.privateCatchUp();
    expect(resumed).toBeDefined();

    // c falls behind again before it caught up: a second snapshot extends the same catch-up
    // (the private state still starts where it was before the first gap).
    const cAppliedAtSecondStop = c.node.status().appliedIndex;
    await cluster.stopNode(c);
    for (let i = 0; i < 12; i++) {
      const h =
        i % 2 === 0
          ? await send(a, [{ type: 'put', key: `c2-${i}`, value: `second-gap-${i}` }], [c])
          : await send(b, [{ type: 'put', key: `pub2-${i}`, value: `q${i}` }]);
      if (i % 2 === 0) {
        forC.push([`c2-${i}`, `second-gap-${i}`]);
        cParty.push(h);
      }
      skipped.push(h);
      await waitCommitted([a, b], h);
    }
    const leaderNow = cluster.leader()!;
    await waitFor(
      () => leaderNow.raftStorage.firstIndex() > cAppliedAtSecondStop + 1,
      10_000,
      'the leader to compact past the stopped follower again',
    );
    await cluster.restartNode(c);
    const headBeforeSecond = (await c.chainStore.head())!.number;
    await waitFor(() => c.node.status().head > headBeforeSecond, 10_000, 'c to install the second snapshot');
    expect(c.node.privateCatchUp()?.privateThrough).toBe(resumed!.privateThrough);
    await waitFor(
      () => c.node.privateCatchUp()?.blocksToFetch === 0,
      15_000,
      'c to fetch the blocks of the second gap',
    );

    // A new block above the snapshot while c still catches up: its private part must apply
    // after the replayed ones (the cas expects the value written in the skipped range).
    const cas = await send(a, [{ type: 'cas', key: 'ordered', expect: 'v1', value: 'v2' }], [c]);
    await waitCommitted([a, b, c], cas);
    expect(c.node.privateCatchUp()).toBeDefined();

    c.switch.down = false;
    await waitFor(() => c.node.privateCatchUp() === undefined, 30_000, 'c to finish catching up');

    // Every height: the same block on every node.
    await waitFor(
      () => new Set(cluster!.nodes.map((h) => h.node.status().head)).size === 1,
      10_000,
      'same head everywhere',
    );
    const head = a.node.status().head;
    for (let n = 0; n <= head; n++) {
      const hashes = await Promise.all(
        cluster.nodes.map(async (h) => (await h.node.store.getBlockByNumber(n))?.hashHex),
      );
      expect(hashes[0], `block ${n}`).toBeDefined();
      expect(new Set(hashes).size, `block ${n}: ${hashes.join(' ')}`).toBe(1);
    }
    // Receipts and transactions of the skipped range, as the RPC answers them on c.
    const cBackend = new NodeBackend(c.node);
    const aBackend = new NodeBackend(a.node);
    for (const h of skipped) {
      const rc = await cBackend.getTransactionReceipt(h);
      expect(rc, h).not.toBeNull();
      expect(rc!.blockHash).toBe((await aBackend.getTransactionReceipt(h))!.blockHash);
    }
    // c's private state equals the other party's; the non-party (b) has none of it; c has none of b's.
    for (const [k, v] of [...forC, ['before', 'b0'] as [string, string]]) {
      expect(await c.node.store.getPrivateValue(k), k).toBe(v);
      expect(await a.node.store.getPrivateValue(k), k).toBe(v);
      expect(await b.node.store.getPrivateValue(k), k).toBeNull();
    }
    for (const [k, v] of forB) {
      expect(await a.node.store.getPrivateValue(k), k).toBe(v);
      expect(await c.node.store.getPrivateValue(k), k).toBeNull();
    }
    // Chain order: the skipped put, then the newer cas.
    expect(await a.node.store.getPrivateValue('ordered')).toBe('v2');
    expect(await c.node.store.getPrivateValue('ordered')).toBe('v2');
    expect((await c.node.store.getPrivateReceipt(hashBytes(cas)))?.status).toBe(1);
    expect(await cBackend.getPrivateValue('ordered', 'latest')).toBe('v2');
    // c's private receipts of the replayed transactions are its own (a party's outcome).
    expect((await c.node.store.getPrivateReceipt(hashBytes(ordered)))?.status).toBe(1);
    expect(cParty.length).toBe(16);
    for (const h of cParty) expect((await c.node.store.getPrivateReceipt(hashBytes(h)))?.status, h).toBe(1);
  }, 120_000);
});
