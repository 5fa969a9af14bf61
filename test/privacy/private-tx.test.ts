// Private transactions end to end, in one process: real QuorateNodes, real NodePrivacy
// (enclave, durable transaction manager, PeerPartyTransport), in-memory network.

import { RESYNC_DEADLINE_MS } from '../../node/privacy.js';
import { afterEach, describe, expect, it } from 'vitest';
import { decodePayload } from '../../enclave/index.js';
import { NodeError, NodeErrorCode } from '../../node/errors.js';
import { decodePrivatePayload } from '../../node/chain/index.js';
import { filesUnder, PrivateCluster, waitFor, type PrivateNode, hashBytes, waitCommitted } from './cluster.js';

let cluster: PrivateCluster | undefined;

afterEach(async () => {
  await cluster?.close();
  cluster = undefined;
});

/** quorate_sendTransaction as a client uses it: retried when no leader took it (an election), never otherwise. */
async function put(
  from: PrivateNode,
  key: string,
  value: string,
  privateFor?: readonly PrivateNode[],
): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await from.node.sendTransaction({
        from: from.account.address,
        ops: [{ type: 'put', key, value }],
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

function contains(haystack: Uint8Array, needle: Uint8Array): boolean {
  return Buffer.from(haystack).indexOf(Buffer.from(needle)) >= 0;
}

describe('private transactions in an in-process cluster', () => {
  it('only the parties apply a private transaction; the chain carries the 64-byte hash; a non-party keeps no ciphertext', async () => {
    cluster = await PrivateCluster.create({ nodes: 3 });
    await cluster.start();
    await cluster.waitForLeader();
    const [a, b, c] = cluster.nodes;
    await waitFor(
      () => cluster!.nodes.every((h) => h.privacy.knownParties === 2),
      5_000,
      "every node knows the others' keys",
    );

    const secret = 'the-value-only-a-and-b-see';
    const txHash = await put(a, 'deal', secret, [b]);
    await waitCommitted(cluster.nodes, txHash);

    expect(await a.node.store.getPrivateValue('deal')).toBe(secret);
    expect(await b.node.store.getPrivateValue('deal')).toBe(secret);
    expect(await c.node.store.getPrivateValue('deal')).toBeNull();
    // Public state holds nothing of it anywhere.
    for (const h of cluster.nodes) expect(await h.node.store.getValue('deal')).toBeNull();

    // On chain: the transaction carries the payload hash (64 bytes) and no ops.
    const found = await c.node.store.getTransaction(hashBytes(txHash));
    expect(found).toBeDefined();
    const payloadHash = found!.tx.privatePayloadHash!;
    expect(payloadHash).toHaveLength(64);
    expect(found!.tx.ops).toHaveLength(0);
    expect(contains(found!.tx.encoded, Buffer.from(secret))).toBe(false);
    expect(found!.tx.privateFor?.map((k) => Buffer.from(k).toString('base64'))).toEqual([b.enclaveKey]);

    // The parties read the payload; the non-party's TM answers "not a party".
    const opsOf = async (h: PrivateNode) => {
      const p = await h.privacy.receive(payloadHash);
      return p === null ? null : decodePrivatePayload(p);
    };
    expect(await opsOf(a)).toEqual([{ type: 'put', key: 'deal', value: secret }]);
    expect(await opsOf(b)).toEqual([{ type: 'put', key: 'deal', value: secret }]);
    expect(await opsOf(c)).toBeNull();
    expect((await c.privacy.tm.receive(Buffer.from(payloadHash).toString('base64'))).kind).toBe('not-a-party');

    // The ciphertext is in A's and B's TM stores and nowhere on C's disk (TM stores, chain store).
    const hashB64 = Buffer.from(payloadHash).toString('base64');
    const stored = await a.privacy.payloadStore.get(hashB64);
    expect(stored).toBeDefined();
    const cipherText = decodePayload(stored!).cipherText;
    expect(await b.privacy.payloadStore.has(hashB64)).toBe(true);
    expect(await c.privacy.payloadStore.scan(null, 100)).toEqual([]);
    const probe = cipherText.subarray(0, 24);
    const cFiles = await filesUnder(c.dataDir);
    expect(cFiles.length).toBeGreaterThan(0);
    for (const f of cFiles) expect(contains(f.bytes, probe), f.path).toBe(false);
    // Positive control: the same search finds it on B's disk.
    expect((await filesUnder(b.dataDir)).some((f) => contains(f.bytes, probe))).toBe(true);
  });

  it('fail-fast: a recipient that is down fails the send at once, naming it, and nothing reaches the chain', async () => {
    cluster = await PrivateCluster.create({ nodes: 3 });
    await cluster.start();
    const a = await cluster.waitForLeader();
    const [b, c] = cluster.nodes.filter((h) => h !== a);
    await waitFor(() => a.privacy.knownParties === 2, 5_000, 'keys known');
    await cluster.stopNode(b);
    const started = Date.now();
    const error = await put(a, 'k', 'v', [b]).then(
      () => null,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(NodeError);
    expect((error as NodeError).code).toBe(NodeErrorCode.PrivacyRecipientUnavailable);
    expect((error as NodeError).message).toContain(b.name);
    expect((error as NodeError).meta.nodeIds).toEqual([b.name]);
    // Faster than the push timeout (5 s): the transport said "unreachable" at once.
    expect(Date.now() - started).toBeLessThan(4_000);
    // A private transaction for a live party still goes through.
    const ok = await put(a, 'k2', 'v2', [c]);
    await waitCommitted([a, c], ok);
    expect(await c.node.store.getPrivateValue('k2')).toBe('v2');
    expect(await a.node.store.getPrivateValue('k')).toBeNull();
  });

  it('queue mode: a send to a recipient that is down succeeds, and the recipient gets the payload when it returns', async () => {
    cluster = await PrivateCluster.create({
      nodes: 3,
      deliveryMode: 'queue',
      tm: { queueRetryIntervalMs: 100, breaker: { openBaseMs: 100, openMaxMs: 400 } },
    });
    await cluster.start();
    await cluster.waitForLeader();
    const [a, b, c] = cluster.nodes;
    await waitFor(() => a.privacy.knownParties === 2, 5_000, 'keys known');
    await cluster.stopNode(b);
    await cluster.waitForLeader();
    const txHash = await put(a, 'owed', 'to-b', [b]);
    // node-3's start-up resync may still be waiting on node-2 (stopped right after start): until
    // its deadline (RESYNC_DEADLINE_MS) it cannot tell "not a party" and rightly holds the block.
    await waitCommitted([a, c], txHash, RESYNC_DEADLINE_MS + 10_000);
    expect(a.privacy.tm.owed()).toEqual({ 'node-2': 1 });
    expect(await a.node.store.getPrivateValue('owed')).toBe('to-b');

    await cluster.restartNode(b);
    await waitCommitted([b], txHash, 30_000);
    expect(await b.node.store.getPrivateValue('owed')).toBe('to-b');
    expect(await c.node.store.getPrivateValue('owed')).toBeNull();
    await waitFor(() => Object.keys(a.privacy.tm.owed()).length === 0, 20_000, 'A owes nothing any more');
  });

  it('a party whose transaction manager is unavailable stops applying (alarm) instead of diverging, and resumes when it is back', async () => {
    cluster = await PrivateCluster.create({ nodes: 3 });
    await cluster.start();
    // The faulty party is a follower: the leader and the other follower keep committing.
    const a = await cluster.waitForLeader();
    const [b, c] = cluster.nodes.filter((h) => h !== a);
    await waitFor(() => a.privacy.knownParties === 2, 5_000, 'keys known');
    const before = b.node.chainState.head.header.number;
    b.switch.down = true;
    const txHash = await put(a, 'held', 'x', [b]);
    await waitCommitted([a, c], txHash);
    await waitFor(
      () => b.switch.failedReceives >= 2 && b.node.status().alarm !== undefined,
      10_000,
      'B raised its alarm',
    );
    expect(b.node.status().alarm).toMatch(/private payload/);
    expect(b.node.chainState.head.header.number).toBe(before);
    expect(await b.node.store.getReceipt(hashBytes(txHash))).toBeUndefined();
    expect(await b.node.store.getPrivateValue('held')).toBeNull();
    // A public transaction behind it waits too (blocks apply in order).
    const pub = await put(a, 'public-after', 'y');
    await waitCommitted([a, c], pub);
    expect(await b.node.store.getValue('public-after')).toBeNull();

    b.switch.down = false;
    await waitCommitted([b], pub, 15_000);
    expect(b.node.status().alarm).toBeUndefined();
    expect(await b.node.store.getPrivateValue('held')).toBe('x');
    expect(await b.node.store.getValue('public-after')).toBe('y');
    expect(await c.node.store.getPrivateValue('held')).toBeNull();
  });

  it("1,000 mixed public and private transactions: every party's private state agrees, non-parties hold none of it", async () => {
    cluster = await PrivateCluster.create({ nodes: 3 });
    await cluster.start();
    await cluster.waitForLeader();
    const [a, b, c] = cluster.nodes;
    await waitFor(() => cluster!.nodes.every((h) => h.privacy.knownParties === 2), 5_000, 'keys known');
    // Groups: {a,b} private, {b,c} private, public. Each sender sends its share in order.
    const plan: Array<{ from: PrivateNode; key: string; value: string; privateFor?: PrivateNode[] }> = [];
    for (let i = 0; i < 1000; i++) {
      const kind = i % 3;
      const key = `k${i % 50}`; // keys overwritten many times: order matters
      if (kind === 0) plan.push({ from: i % 2 ? a : b, key: `ab/${key}`, value: `v${i}`, privateFor: [i % 2 ? b : a] });
      else if (kind === 1)
        plan.push({ from: i % 2 ? b : c, key: `bc/${key}`, value: `v${i}`, privateFor: [i % 2 ? c : b] });
      else plan.push({ from: [a, b, c][i % 3], key: `pub/${key}`, value: `v${i}` });
    }
    const bySender = new Map<PrivateNode, typeof plan>();
    for (const p of plan) bySender.set(p.from, [...(bySender.get(p.from) ?? []), p]);
    const last: string[] = [];
    await Promise.all(
      [...bySender.values()].map(async (items) => {
        let h = '';
        for (const p of items) h = await put(p.from, p.key, p.value, p.privateFor);
        last.push(h);
      }),
    );
    for (const h of last) await waitCommitted(cluster.nodes, h, 60_000);

    let privateKeysSeen = 0;
    for (let k = 0; k < 50; k++) {
      const ab = await Promise.all(cluster.nodes.map((h) => h.node.store.getPrivateValue(`ab/k${k}`)));
      const bc = await Promise.all(cluster.nodes.map((h) => h.node.store.getPrivateValue(`bc/k${k}`)));
      const pub = await Promise.all(cluster.nodes.map((h) => h.node.store.getValue(`pub/k${k}`)));
      expect(ab[0]).toBe(ab[1]);
      expect(ab[2]).toBeNull();
      expect(bc[1]).toBe(bc[2]);
      expect(bc[0]).toBeNull();
      expect(new Set(pub).size).toBe(1);
      if (ab[0] !== null) privateKeysSeen++;
      if (bc[1] !== null) privateKeysSeen++;
    }
    expect(privateKeysSeen).toBeGreaterThan(60);
    // Same chain everywhere.
    const height = a.node.chainState.head.header.number;
    await waitFor(
      () => cluster!.nodes.every((h) => h.node.chainState.head.header.number === height),
      10_000,
      'same height',
    );
    const heads = await Promise.all(
      cluster.nodes.map(async (h) => (await h.node.store.getBlockByNumber(height))!.hashHex),
    );
    expect(new Set(heads).size).toBe(1);
  });
});
