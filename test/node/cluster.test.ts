// End-to-end behaviour of real QuorateNodes in one process (in-memory transport and stores).

import { afterEach, describe, expect, it } from 'vitest';
import { NodeError, NodeErrorCode } from '../../node/errors.js';
import { TestCluster, waitFor, type HarnessNode } from './harness.js';
import { generateAccountKey, signTransaction } from '../../node/chain/index.js';
import { guardFile } from '../security/faults.js';

// The process guards count unhandled rejections and uncaught exceptions over this file: 0 at its end.
guardFile();

const CHAIN_ID_OF = (h: HarnessNode): number => h.node.chainId;

let cluster: TestCluster | undefined;

afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

async function put(h: HarnessNode, key: string, value: string): Promise<string> {
  return h.node.sendTransaction({ from: h.account.address, ops: [{ type: 'put', key, value }] });
}

async function waitCommitted(nodes: readonly HarnessNode[], txHash: string): Promise<void> {
  const hash = Uint8Array.from(Buffer.from(txHash.slice(2), 'hex'));
  await waitFor(
    async () => {
      for (const h of nodes) if (!(await h.node.store.getReceipt(hash))) return false;
      return true;
    },
    10_000,
    `tx ${txHash} committed on every node`,
  );
}

async function blockHashes(h: HarnessNode): Promise<string[]> {
  const out: string[] = [];
  const head = h.node.chainState.head.header.number;
  for (let n = 0; n <= head; n++) out.push((await h.node.store.getBlockByNumber(n))!.hashHex);
  return out;
}

async function expectSameChain(nodes: readonly HarnessNode[]): Promise<void> {
  const heads = nodes.map((h) => h.node.chainState.head.header.number);
  const height = Math.max(...heads);
  await waitFor(
    () => nodes.every((h) => h.node.chainState.head.header.number === height),
    10_000,
    'all nodes at the same height',
  );
  const chains = await Promise.all(nodes.map(blockHashes));
  for (const c of chains) expect(c).toEqual(chains[0]);
}

describe('an in-process cluster of QuorateNodes', () => {
  it('elects one leader, commits transactions sent to any node, and every node has the same chain', async () => {
    cluster = new TestCluster({ nodes: 3 });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const follower = cluster.nodes.find((h) => h !== leader)!;
    const hashes: string[] = [];
    for (let i = 0; i < 20; i++) hashes.push(await put(i % 2 ? leader : follower, `k${i}`, `v${i}`));
    await waitCommitted(cluster.nodes, hashes[hashes.length - 1]);
    await expectSameChain(cluster.nodes);
    for (const h of cluster.nodes) {
      expect(await h.node.store.getValue('k19')).toBe('v19');
      expect(await h.node.store.getValue('k0')).toBe('v0');
    }
    // One block per Raft entry, and no empty blocks.
    const head = leader.node.chainState.head.header.number;
    for (let n = 1; n <= head; n++)
      expect((await leader.node.store.getBlockByNumber(n))!.transactions.length).toBeGreaterThan(0);
  });

  it('drops a transaction stuck behind a nonce gap after the pool lifetime; the account still transacts', async () => {
    cluster = new TestCluster({ nodes: 3, settings: { pool: { txPoolQueuedLifetimeMs: 300 } } });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const key = generateAccountKey();
    const raw = (nonce: number): Uint8Array =>
      signTransaction(
        { chainId: CHAIN_ID_OF(leader), nonce, ops: [{ type: 'put', key: `gap${nonce}`, value: 'x' }] },
        key,
      ).encoded;
    const before = leader.node.poolSize;
    await leader.node.submitRaw(raw(3)); // nonces 0..2 never come: it can never run
    expect(leader.node.poolSize).toBe(before + 1);
    await waitFor(async () => leader.node.poolSize === before, 5_000, 'the gapped transaction to expire');
    // Nonce 0 is accepted and commits; the expired nonce 3 can be sent again later.
    const h0 = await leader.node.submitRaw(raw(0));
    await waitCommitted(cluster.nodes, h0);
  });

  it('quorate_sendTransaction on a follower moves past nonces its account already has pending at the leader', async () => {
    cluster = new TestCluster({ nodes: 3, blockTimeMs: 200 });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const follower = cluster.nodes.find((h) => h !== leader)!;
    // The follower's account signs elsewhere too (a client holding the same key): nonces 0..9 wait
    // in the leader's pool, which the follower cannot see.
    const raws = Array.from({ length: 10 }, (_, n) =>
      signTransaction(
        { chainId: CHAIN_ID_OF(leader), nonce: n, ops: [{ type: 'put', key: `raw${n}`, value: 'x' }] },
        follower.account,
      ),
    );
    for (const t of raws) await leader.node.submitRaw(t.encoded);
    const hash = await put(follower, 'via-follower', 'v');
    for (const t of raws) expect(hash).not.toBe(t.hashHex);
    await waitCommitted(cluster.nodes, hash);
    const found = await follower.node.store.getTransaction(Uint8Array.from(Buffer.from(hash.slice(2), 'hex')));
    expect(found?.tx.nonce).toBe(10);
    expect(await follower.node.store.getValue('via-follower')).toBe('v');
  });

  it('answers a linearizable read on a follower with a value committed before the read', async () => {
    cluster = new TestCluster({ nodes: 3 });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const follower = cluster.nodes.find((h) => h !== leader)!;
    const hash = await put(leader, 'x', '1');
    await waitCommitted([leader], hash);
    await follower.node.readBarrier();
    expect(await follower.node.store.getValue('x')).toBe('1');
  });

  it('elects a new leader when the leader is cut off, and the old leader converges after healing', async () => {
    cluster = new TestCluster({ nodes: 3 });
    await cluster.start();
    const old = await cluster.waitForLeader();
    const h1 = await put(old, 'before', 'yes');
    await waitCommitted(cluster.nodes, h1);
    cluster.network.isolate(old.peerId);
    const rest = cluster.nodes.filter((h) => h !== old);
    const next = await cluster.waitForLeader(rest);
    expect(next).not.toBe(old);
    const h2 = await put(next, 'after', 'yes');
    await waitCommitted(rest, h2);
    // CheckQuorum: the cut-off leader steps down on its own.
    await waitFor(() => old.node.status().role !== 'leader', 5_000, 'the isolated leader to step down');
    cluster.network.heal();
    await waitCommitted(cluster.nodes, h2);
    await expectSameChain(cluster.nodes);
  });

  it('adds a learner that catches up, promotes it, removes an original member; each change answers after commit', async () => {
    cluster = new TestCluster({ nodes: 3 });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    for (let i = 0; i < 5; i++) await put(leader, `pre${i}`, 'v');
    const joiner = await cluster.addJoiningNode();
    const id = await leader.node.addLearner(cluster.p2pAddress(joiner));
    expect(id).toBe(4);
    // Committed when the call returned: the leader's applied membership has it.
    expect(leader.node.membership.members.map((m) => m.raftId)).toContain(4);
    await waitFor(() => joiner.node.status().raftId === 4, 10_000, 'the joiner to learn its id');
    const hash = await put(leader, 'late', 'v');
    await waitCommitted([joiner], hash);
    expect(await joiner.node.store.getValue('pre0')).toBe('v');
    expect(joiner.node.status().learners).toContain(4);

    await leader.node.promoteToPeer(4);
    expect(leader.node.status().voters).toContain(4);

    const victim = cluster.nodes.find((h) => h !== leader && h !== joiner)!;
    await leader.node.removePeer(victim.raftId);
    expect(leader.node.status().voters).not.toContain(victim.raftId);
    const hash2 = await put(leader, 'after-remove', 'v');
    await waitCommitted([joiner], hash2);
    // Ids are never reused: the next one is 5.
    expect(leader.node.membership.nextRaftId).toBe(5);
  });

  it('refuses a membership change for a non-member and names the problem', async () => {
    cluster = new TestCluster({ nodes: 3 });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    await expect(leader.node.removePeer(42)).rejects.toMatchObject({ code: NodeErrorCode.MembershipChangeInvalid });
    await expect(leader.node.addPeer('/ip4/127.0.0.1/tcp/1')).rejects.toBeInstanceOf(NodeError);
  });

  it('keeps every committed block across a restart of a follower', async () => {
    cluster = new TestCluster({ nodes: 3 });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const follower = cluster.nodes.find((h) => h !== leader)!;
    let last = '';
    for (let i = 0; i < 10; i++) last = await put(leader, `r${i}`, `${i}`);
    await waitCommitted(cluster.nodes, last);
    await cluster.restart(follower);
    const more = await put(leader, 'after-restart', 'v');
    await waitCommitted(cluster.nodes, more);
    expect(await follower.node.store.getValue('r9')).toBe('9');
    await expectSameChain(cluster.nodes);
  });

  it('refuses a member whose data directory was lost: it stops itself, and the others carry on (scenario 18)', async () => {
    cluster = new TestCluster({ nodes: 3 });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const victim = cluster.nodes.find((h) => h !== leader)!;
    const before = await put(leader, 'before-wipe', 'v');
    await waitCommitted(cluster.nodes, before);
    await cluster.wipeAndRestart(victim);
    // Two guards, whichever fires first: a peer refuses its new incarnation, or the leader's
    // heartbeat carries a commit index beyond its (empty) log.
    await waitFor(
      () => /lost or replaced|raft log corrupted, truncated, or lost/.test(victim.node.status().alarm ?? ''),
      10_000,
      'the wiped node to refuse to run',
    );
    const rest = cluster.nodes.filter((h) => h !== victim);
    const after = await put(leader, 'after-wipe', 'v');
    await waitCommitted(rest, after);
    // It never took part: its empty store holds no block of the cluster.
    expect(await victim.node.store.getValue('before-wipe')).toBeNull();
  });

  it("remembers members' incarnations across its own restart: a member wiped while the others were down is still refused", async () => {
    cluster = new TestCluster({ nodes: 3 });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const victim = cluster.nodes.find((h) => h !== leader)!;
    const others = cluster.nodes.filter((h) => h !== victim);
    // Every other member has identified the victim, and stored what it saw.
    await waitFor(
      async () => {
        for (const h of others)
          if ((await h.node.store.knownIncarnations()).get(victim.raftId) !== victim.incarnation) return false;
        return true;
      },
      10_000,
      "the others to store the victim's incarnation",
    );
    const before = await put(leader, 'before-wipe', 'v');
    await waitCommitted(cluster.nodes, before);
    // All down; the victim's data directory is lost; all come back. The others' memory is gone,
    // their stores are not: they must refuse the new incarnation (not only the Raft-level guard).
    for (const h of cluster.nodes) await h.node.stop();
    const wipedInc = `inc-wiped-${victim.name}`;
    for (const h of others) {
      await cluster.restart(h);
      expect((await h.node.store.knownIncarnations()).get(victim.raftId)).toBe(victim.incarnation);
    }
    victim.incarnation = wipedInc;
    await cluster.wipeAndRestart(victim);
    await waitFor(
      () => /lost or replaced/.test(victim.node.status().alarm ?? ''),
      10_000,
      'the wiped node to be refused by its peers',
    );
    const after = await put(await cluster.waitForLeader(others), 'after-wipe', 'v');
    await waitCommitted(others, after);
  });

  it('a member that missed the change adding the current leader still catches up (it admits members vouched for by a member)', async () => {
    cluster = new TestCluster({ nodes: 3 });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const lagging = cluster.nodes.find((h) => h !== leader)!;
    cluster.network.isolate(lagging.peerId);
    const joiner = await cluster.addJoiningNode();
    // As a learner first (one member is cut off: a fourth voter that has not caught up would cost
    // the leader its quorum), promoted once it has caught up.
    const id = await leader.node.addLearner(cluster.p2pAddress(joiner));
    await waitFor(
      () => joiner.node.status().raftId === id && joiner.node.status().appliedIndex >= leader.node.status().commitIndex,
      10_000,
      'the joiner to catch up',
    );
    await leader.node.promoteToPeer(id);
    // Leadership moves to the new member, which the lagging node has never heard of.
    await leader.node.transferLeadership(id);
    const majority = cluster.nodes.filter((h) => h !== lagging);
    await waitFor(() => majority.every((h) => h.node.status().leader === id), 10_000, 'the new member to lead');
    let hash = '';
    await waitFor(
      async () => {
        hash = await put(joiner, 'while-lagging', 'v').catch(() => '');
        return hash !== '';
      },
      10_000,
      'a transaction accepted by the new leader',
    );
    await waitCommitted(majority, hash);
    cluster.network.heal();
    await waitCommitted([lagging], hash);
    expect(lagging.node.membership.members.map((m) => m.raftId)).toContain(id);
  });
});
