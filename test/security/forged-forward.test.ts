// A follower that forwards forged transactions straight over the p2p "tx" channel (not through
// its own intake, which would refuse them): the leader verifies every forwarded transaction, so a
// forgery is refused, counted, never pooled or minted, and every node's chain stays the same —
// under both genesis txSignatureCheck settings.

import { afterEach, describe, expect, it } from 'vitest';
import { ADDRESS_BYTES, PUBLIC_KEY_BYTES, generateAccountKey, signTransaction } from '../../node/chain/index.js';
import { CHANNEL_TX, encodeTxBatch } from '../../node/forward.js';
import { decodeTransaction, type Transaction } from '../../node/chain/index.js';
import { TestCluster, waitFor, type HarnessNode } from '../node/harness.js';
import { guardFile } from './faults.js';

// The process guards count unhandled rejections and uncaught exceptions over this file: 0 at its end.
guardFile();

let cluster: TestCluster | undefined;
afterEach(async () => {
  await cluster?.stop();
  cluster = undefined;
});

/** Offsets in the transaction encoding (node/chain/tx.ts): type u8, chainId u64, from, publicKey. */
const FROM_OFFSET = 1 + 8;
const PUBLIC_KEY_OFFSET = FROM_OFFSET + ADDRESS_BYTES;

function forgeries(chainId: number, victim: HarnessNode): { name: string; tx: Transaction }[] {
  const attacker = generateAccountKey();
  const ops = [{ type: 'put' as const, key: 'stolen', value: 'yes' }];
  // 1. The victim's own valid transaction with one signature bit flipped.
  const genuine = signTransaction({ chainId, nonce: 0, ops }, victim.account).encoded.slice();
  genuine[genuine.length - 1] ^= 1;
  // 2. Signed by the attacker, then relabelled as the victim's (address and public key).
  const relabelled = signTransaction({ chainId, nonce: 0, ops }, attacker).encoded.slice();
  relabelled.set(Buffer.from(victim.account.address.slice(2), 'hex'), FROM_OFFSET);
  relabelled.set(victim.account.publicKeyRaw.subarray(0, PUBLIC_KEY_BYTES), PUBLIC_KEY_OFFSET);
  // 3. The attacker's key with the victim's address only (address/key mismatch).
  const mismatched = signTransaction({ chainId, nonce: 0, ops }, attacker).encoded.slice();
  mismatched.set(Buffer.from(victim.account.address.slice(2), 'hex'), FROM_OFFSET);
  // 4. A valid signature for another chain.
  const otherChain = signTransaction({ chainId: chainId + 1, nonce: 0, ops }, victim.account).encoded;
  return [
    { name: 'flipped signature', tx: decodeTransaction(genuine) },
    { name: "attacker's signature under the victim's key", tx: decodeTransaction(relabelled) },
    { name: "victim's address with the attacker's key", tx: decodeTransaction(mismatched) },
    { name: 'another chain id', tx: decodeTransaction(otherChain) },
  ];
}

async function chainOf(h: HarnessNode): Promise<string[]> {
  const out: string[] = [];
  for (let n = 0; n <= h.node.chainState.head.header.number; n++)
    out.push((await h.node.store.getBlockByNumber(n))!.hashHex);
  return out;
}

describe.each(['every-node', 'minter-only'] as const)('txSignatureCheck "%s": a forged forward', (check) => {
  it('is refused by the leader and no node diverges', async () => {
    cluster = new TestCluster({ nodes: 3, txSignatureCheck: check });
    await cluster.start();
    const leader = await cluster.waitForLeader();
    const [follower, victim] = cluster.nodes.filter((h) => h !== leader);
    const forged = forgeries(leader.node.chainId, victim);
    const transport = cluster.network.instance(follower.peerId)!;
    const reply = await transport.request(leader.peerId, CHANNEL_TX, encodeTxBatch(forged.map((f) => f.tx)), {
      timeoutMs: 5_000,
    });
    const answers = JSON.parse(new TextDecoder().decode(reply)) as { ok?: string; error?: { code: string } }[];
    expect(answers).toHaveLength(forged.length);
    answers.forEach((a, i) => {
      expect(a.ok, forged[i].name).toBeUndefined();
      expect(a.error?.code, forged[i].name).toBeTypeOf('string');
    });
    expect(leader.node.poolSize).toBe(0);

    // The cluster goes on: a genuine transaction from the victim commits everywhere, and every
    // node ends with the same chain (same head hash at the same height).
    const hash = await victim.node.sendTransaction({
      from: victim.account.address,
      ops: [{ type: 'put', key: 'honest', value: '1' }],
    });
    const hashBytes = Buffer.from(hash.slice(2), 'hex');
    await waitFor(
      async () => {
        for (const h of cluster!.nodes) if (!(await h.node.store.getReceipt(hashBytes))) return false;
        return true;
      },
      10_000,
      'the honest transaction committed on every node',
    );
    const height = Math.max(...cluster.nodes.map((h) => h.node.chainState.head.header.number));
    await waitFor(
      () => cluster!.nodes.every((h) => h.node.chainState.head.header.number === height),
      10_000,
      'every node at the same height',
    );
    const chains = await Promise.all(cluster.nodes.map(chainOf));
    for (const c of chains) expect(c).toEqual(chains[0]);
    for (const h of cluster.nodes) expect(await h.node.store.getValue('stolen')).toBeNull();
    for (const f of forged) expect(await leader.node.store.getTransaction(f.tx.hash)).toBeUndefined();
  });
});
