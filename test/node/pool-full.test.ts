// A full pool refuses at once, with -32010 and data.retryAfterMs, on the leader and through a
// follower's forwarding path alike (in-process cluster: the real node code, in-memory IO).

import { afterEach, describe, expect, it } from 'vitest';
import { generateAccountKey, signTransaction } from '../../node/chain/index.js';
import { NodeError, NodeErrorCode } from '../../node/errors.js';
import { RpcErrorCode, toRpcError } from '../../node/rpc/errors.js';
import { TestCluster } from './harness.js';

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

function raw(chainId: number, i: number): Uint8Array {
  return signTransaction(
    { chainId, nonce: 0, ops: [{ type: 'put', key: `full/${i}`, value: 'x' }] },
    generateAccountKey(),
  ).encoded;
}

async function refusal(p: Promise<unknown>): Promise<NodeError> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  if (!(e instanceof NodeError)) throw new Error(`expected a NodeError, got ${String(e)}`);
  return e;
}

describe('a full pool', () => {
  it('refuses on the leader and through a follower with TX_POOL_FULL, -32010 and retryAfterMs', async () => {
    // The leader mints once a minute: what enters its pool stays there for this test.
    cluster = new TestCluster({ nodes: 3, blockTimeMs: 60_000, settings: { pool: { txPoolMaxTransactions: 4 } } });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const follower = cluster.nodes.find((h) => h !== leader)!;
    const chainId = leader.node.chainId;
    const before = leader.node.poolSize;
    for (let i = before; i < 4; i++) await leader.node.submitRaw(raw(chainId, i));
    expect(leader.node.poolSize).toBe(4);

    const direct = await refusal(leader.node.submitRaw(raw(chainId, 100)));
    const forwarded = await refusal(follower.node.submitRaw(raw(chainId, 101)));
    const nodeSigned = await refusal(
      follower.node.sendTransaction({ from: follower.account.address, ops: [{ type: 'put', key: 'k', value: 'v' }] }),
    );
    for (const e of [direct, forwarded, nodeSigned]) {
      expect(e.code).toBe(NodeErrorCode.TxPoolFull);
      expect(typeof e.meta.retryAfterMs).toBe('number');
      expect(e.meta.retryAfterMs as number).toBeGreaterThan(0);
      const { error } = toRpcError(e);
      expect(error.code).toBe(RpcErrorCode.Unavailable);
      expect(error.data).toMatchObject({ reason: 'TX_POOL_FULL', retryAfterMs: e.meta.retryAfterMs });
    }
    // The follower remembered the leader's answer: its next refusal came from itself, before signing.
    expect(nodeSigned.message).toMatch(/the leader's transaction pool is full; retry in \d+ ms/);
    expect(leader.node.poolSize).toBe(4); // nothing queued behind the refusals
  });
});
