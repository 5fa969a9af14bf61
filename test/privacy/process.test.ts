// One real-process test of private transactions: three `quorate start` processes from
// `quorate init` on random high loopback ports, driven over JSON-RPC and the transaction
// manager's REST API as a user would, then restarted to show the payloads are durable.

import { afterAll, describe, expect, it } from 'vitest';
import { ProcessCluster, type ProcNode } from '../cluster/process-cluster.js';

const cluster = new ProcessCluster();

afterAll(async () => {
  await cluster.cleanup();
});

async function tm(n: ProcNode, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(new URL(path, n.tmUrl), { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, body: await res.text() };
}

async function waitReceipt(nodes: readonly ProcNode[], txHash: string, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const receipts = await Promise.all(
      nodes.map((n) => n.rpc.call<unknown>('eth_getTransactionReceipt', [txHash]).catch(() => null)),
    );
    if (receipts.every((r) => r !== null)) return;
    if (Date.now() > deadline)
      throw new Error(`tx ${txHash} not committed everywhere\n${await cluster.logTails(nodes)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function sendWithRetry(n: ProcNode, request: unknown): Promise<string> {
  // Right after start a follower may not know the leader yet: retry on "no leader" only.
  for (let attempt = 0; ; attempt++) {
    try {
      return await n.rpc.call<string>('quorate_sendTransaction', [request]);
    } catch (error) {
      if (attempt >= 40 || !/leader/i.test((error as Error).message)) throw error;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

describe('private transactions across real node processes', () => {
  it('privateFor over JSON-RPC reaches only the party, the TM REST API answers as Tessera does, and a restart keeps the payloads', async () => {
    await cluster.init(3);
    cluster.startAll();
    await cluster.waitForLeader(cluster.nodes, 30_000);
    const [a, b, c] = cluster.nodes;

    // The TM REST API of every node.
    for (const n of cluster.nodes) {
      const up = await tm(n, 'upcheck');
      expect(up).toEqual({ status: 200, body: "I'm up!" });
    }
    const keyOf = async (n: ProcNode) =>
      (JSON.parse((await tm(n, 'keys')).body) as { keys: Array<{ key: string }> }).keys.map((k) => k.key);
    const [keyA, keyB, keyC] = await Promise.all(cluster.nodes.map(async (n) => (await keyOf(n))[0]));
    expect(new Set([keyA, keyB, keyC]).size).toBe(3);
    const party = JSON.parse((await tm(c, 'partyinfo/keys')).body) as { keys: Array<{ key: string; node: string }> };
    expect(party.keys.map((k) => `${k.node}=${k.key}`).sort()).toEqual(
      [`${a.name}=${keyA}`, `${b.name}=${keyB}`, `${c.name}=${keyC}`].sort(),
    );

    // A private transaction from A's account, for B.
    const [fromA] = await a.rpc.call<string[]>('quorate_accounts');
    const secret = 'process-private-value';
    const txHash = await sendWithRetry(a, {
      from: fromA,
      ops: [{ type: 'put', key: 'deal', value: secret }],
      privateFor: [keyB],
    });
    await waitReceipt(cluster.nodes, txHash);

    const tx = await c.rpc.call<{ isPrivate: boolean; input: string; ops?: unknown }>('eth_getTransactionByHash', [
      txHash,
    ]);
    expect(tx.isPrivate).toBe(true);
    expect(tx.input).toMatch(/^0x[0-9a-f]{128}$/);
    expect(tx.ops).toBeUndefined();

    expect(await a.rpc.call('quorate_getPrivateValue', ['deal', 'latest'])).toBe(secret);
    expect(await b.rpc.call('quorate_getPrivateValue', ['deal', 'latest'])).toBe(secret);
    expect(await c.rpc.call('quorate_getPrivateValue', ['deal', 'latest'])).toBeNull();
    expect(await b.rpc.call('eth_getQuorumPayload', [tx.input])).not.toBe('0x');
    expect(await c.rpc.call('eth_getQuorumPayload', [tx.input])).toBe('0x');

    const hashPath = `transaction/${encodeURIComponent(Buffer.from(tx.input.slice(2), 'hex').toString('base64'))}`;
    expect((await tm(b, hashPath)).status).toBe(200);
    expect((await tm(c, hashPath)).status).toBe(404);

    // Restart every node: payloads, private state and the REST answers are all still there.
    const payloadAtB = await b.rpc.call<string>('eth_getQuorumPayload', [tx.input]);
    await cluster.stop();
    cluster.startAll();
    await cluster.waitForLeader(cluster.nodes, 30_000);
    expect(await b.rpc.call('eth_getQuorumPayload', [tx.input])).toBe(payloadAtB);
    expect(await b.rpc.call('quorate_getPrivateValue', ['deal', 'latest'])).toBe(secret);
    expect(await c.rpc.call('quorate_getPrivateValue', ['deal', 'latest'])).toBeNull();
    expect((await tm(b, hashPath)).status).toBe(200);
    expect((await tm(c, hashPath)).status).toBe(404);

    // And the cluster still takes private transactions after the restart (B to A this time).
    const [fromB] = await b.rpc.call<string[]>('quorate_accounts');
    const again = await sendWithRetry(b, {
      from: fromB,
      ops: [{ type: 'put', key: 'deal2', value: 'after-restart' }],
      privateFor: [keyA],
    });
    await waitReceipt(cluster.nodes, again);
    expect(await a.rpc.call('quorate_getPrivateValue', ['deal2', 'latest'])).toBe('after-restart');
    expect(await c.rpc.call('quorate_getPrivateValue', ['deal2', 'latest'])).toBeNull();
  }, 90_000);
});
