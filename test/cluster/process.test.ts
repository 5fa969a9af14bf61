// Issue 3's integration test: real `quorate start` processes on loopback.
//   1,000 transactions → every node has the same block hash at every height;
//   SIGKILL the leader → a new leader commits within two election timeouts, nothing acknowledged is lost;
//   the killed node restarts and catches up;
//   a 4th node joins as a learner, is promoted, and an original member is removed, all under load;
//   bad input of every kind is answered with an error and the node stays healthy.
// One cluster for the whole file (starting processes is the slow part), steps in order.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateAccountKey, signTransaction } from '../../node/chain/index.js';
import { benchmark } from '../../node/bench.js';
import { ProcessCluster, sleep, type ProcNode } from './process-cluster.js';

const cluster = new ProcessCluster();
/** The node config's election timeout: 10 ticks of 100 ms, randomised up to twice that. */
const ELECTION_TIMEOUT_MAX_MS = 2 * 10 * 100;

async function receipt(n: ProcNode, hash: string): Promise<{ status: string } | null> {
  return n.rpc.call('eth_getTransactionReceipt', [hash]);
}

/** What a test reads of a raw answer: an error it expects (a missing one fails on the read). */
interface RawAnswer {
  readonly result?: unknown;
  readonly error: { readonly code: number; readonly message: string; readonly data?: unknown };
}

async function rawCall(url: string, body: string): Promise<{ status: number; json: RawAnswer }> {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  const text = await res.text();
  let json: RawAnswer;
  try {
    json = JSON.parse(text) as RawAnswer;
  } catch {
    throw new Error(`not JSON (HTTP ${res.status}): ${text.slice(0, 200)}`);
  }
  return { status: res.status, json };
}

beforeAll(async () => {
  await cluster.init(3);
  cluster.startAll();
  await cluster.waitForLeader();
}, 120_000);

afterAll(async () => {
  // The process guards of every node (killed ones included) logged no unhandled rejection and no
  // uncaught exception over the whole file.
  const faults = await cluster.processFaults();
  await cluster.cleanup();
  for (const [name, f] of Object.entries(faults))
    expect(f, name).toEqual({ unhandledRejections: 0, uncaughtExceptions: 0 });
}, 60_000);

describe('a 3-node cluster of real processes', () => {
  it('commits 1,000 transactions and every node has the same block hash at every height', async () => {
    const r = await benchmark({
      rpcUrls: cluster.nodes.map((n) => n.rpcUrl),
      txs: 1_000,
      concurrency: 32,
      rate: 0,
      private: false,
    });
    expect(r.rejected).toBe(0);
    expect(r.committed).toBe(1_000);
    expect(r.agreement.agree).toBe(true);
    // The per-second timeline accounts for every transaction, and its latencies bound the totals.
    expect(r.timeline.reduce((n, t) => n + t.submitted, 0)).toBe(1_000);
    expect(r.timeline.reduce((n, t) => n + t.committed, 0)).toBe(1_000);
    expect(Math.max(...r.timeline.map((t) => t.max))).toBe(r.latencyMs.max);
    const chains = await cluster.waitSameChain(cluster.nodes);
    expect(chains[0].length).toBeGreaterThan(1);
    for (const c of chains) expect(c).toEqual(chains[0]);
  }, 180_000);

  let killed: ProcNode;
  it('elects a new leader that commits within two election timeouts of a SIGKILLed leader, losing nothing acknowledged', async () => {
    const leader = await cluster.waitForLeader();
    const acked: string[] = [];
    const key = generateAccountKey();
    const chainId = Number(BigInt(await leader.rpc.call<string>('eth_chainId')));
    let nonce = 0;
    for (let i = 0; i < 20; i++) {
      const tx = signTransaction(
        { chainId, nonce: nonce++, ops: [{ type: 'append', key: 'acked', value: String(i) }] },
        key,
      );
      acked.push(
        await leader.rpc.call<string>('quorate_sendRawTransaction', [`0x${Buffer.from(tx.encoded).toString('hex')}`]),
      );
    }
    // Acknowledged = a receipt was seen.
    for (;;) {
      const rs = await Promise.all(acked.map((h) => receipt(leader, h)));
      if (rs.every((r) => r !== null)) break;
      await sleep(20);
    }
    killed = leader;
    const killedAt = Date.now();
    await cluster.kill(leader);
    const survivors = cluster.nodes.filter((n) => n !== leader);
    // Keep submitting to the survivors until one transaction commits under a new leader.
    let committedAt = 0;
    while (committedAt === 0 && Date.now() - killedAt < 30_000) {
      const target = survivors[Math.floor(Math.random() * survivors.length)];
      try {
        const tx = signTransaction({ chainId, nonce, ops: [{ type: 'put', key: 'after-kill', value: 'yes' }] }, key);
        const h = await target.rpc.call<string>('quorate_sendRawTransaction', [
          `0x${Buffer.from(tx.encoded).toString('hex')}`,
        ]);
        const until = Date.now() + 1_000;
        while (Date.now() < until) {
          if (await receipt(target, h)) {
            committedAt = Date.now();
            nonce++;
            break;
          }
          await sleep(10);
        }
      } catch {
        await sleep(50);
      }
    }
    const elapsedMs = committedAt - killedAt;
    console.log(
      `leader killed → new commit after ${elapsedMs} ms (two election timeouts = ${2 * ELECTION_TIMEOUT_MAX_MS} ms)`,
    );
    expect(committedAt).toBeGreaterThan(0);
    expect(elapsedMs).toBeLessThan(2 * ELECTION_TIMEOUT_MAX_MS + 1_000);
    for (const n of survivors) {
      for (const h of acked) expect(await receipt(n, h)).not.toBeNull();
      expect(await n.rpc.call('quorate_getList', ['acked', 'latest'])).toEqual(acked.map((_, i) => String(i)));
    }
  }, 120_000);

  it('restarts the killed node, which catches up to the same chain', async () => {
    cluster.start(killed);
    const live = cluster.nodes;
    await cluster.waitForLeader(live);
    const chains = await cluster.waitSameChain(live);
    for (const c of chains) expect(c).toEqual(chains[0]);
    expect(await killed.rpc.call('quorate_getValue', ['after-kill', 'latest'])).toBe('yes');
  }, 120_000);

  it('adds a learner, promotes it and removes an original member under load; each change answers after commit', async () => {
    await cluster.waitForLeader();
    const load = benchmark({
      rpcUrls: cluster.nodes.map((n) => n.rpcUrl),
      txs: 1_500,
      concurrency: 8,
      rate: 150,
      private: false,
    });
    const joiner = await cluster.addJoiningNode();
    // The new process needs a moment to listen; addLearner contacts it.
    let newId = 0;
    for (let attempt = 0; attempt < 100 && newId === 0; attempt++) {
      try {
        newId = Number(
          await (
            await cluster.waitForLeader(cluster.nodes.slice(0, 3))
          ).rpc.call('raft_addLearner', [joiner.p2pAddress]),
        );
      } catch {
        // An attempt whose answer timed out may still have committed (its outcome is unknown): the
        // membership says. A later attempt would only be refused as "already a member".
        const members = await cluster.nodes[0].rpc
          .call<Array<{ raftId: number; p2pAddress: string }>>('raft_cluster')
          .catch(() => []);
        const peerId = joiner.p2pAddress.split('/p2p/')[1];
        newId = members.find((m) => m.p2pAddress.endsWith(`/p2p/${peerId}`))?.raftId ?? 0;
        if (newId === 0) await sleep(300);
      }
    }
    expect(newId).toBe(4);
    // Committed: the current leader has applied it (the first leader may have lost the role under load).
    let learners: number[] = [];
    for (let i = 0; i < 50 && !learners.includes(4); i++) {
      learners = (await cluster.status(await cluster.waitForLeader(cluster.nodes.slice(0, 3))))?.learners ?? [];
      if (!learners.includes(4)) await sleep(200);
    }
    expect(learners).toContain(4);
    // It catches up (from genesis through the log, or by snapshot) while the load runs.
    const deadline = Date.now() + 60_000;
    while ((await cluster.status(joiner))?.raftId !== 4 && Date.now() < deadline) await sleep(200);
    expect((await cluster.status(joiner))?.raftId).toBe(4);

    const l2 = await cluster.waitForLeader(cluster.nodes.slice(0, 3));
    expect(await l2.rpc.call('raft_promoteToPeer', [4])).toBe(true);
    expect((await cluster.status(l2))!.voters).toContain(4);

    // Remove an original member that is not the leader.
    const l3 = await cluster.waitForLeader(cluster.nodes.slice(0, 3));
    const victim = cluster.nodes.slice(0, 3).find((n) => n !== l3)!;
    const victimId = (await cluster.status(victim))!.raftId;
    expect(await l3.rpc.call('raft_removePeer', [victimId])).toBe(true);
    expect((await cluster.status(l3))!.voters).not.toContain(victimId);

    const r = await load;
    expect(r.committed).toBe(r.accepted);
    await cluster.kill(victim, 'SIGTERM');
    const rest = cluster.nodes.filter((n) => n !== victim);
    const chains = await cluster.waitSameChain(rest);
    for (const c of chains) expect(c).toEqual(chains[0]);
    // The removed id is never handed out again.
    const cl = await l3.rpc.call<Array<{ raftId: number }>>('raft_cluster');
    expect(cl.map((m) => m.raftId)).not.toContain(victimId);
  }, 240_000);

  it('answers every kind of bad input with a clear error and stays healthy', async () => {
    const leader = await cluster.waitForLeader(
      cluster.nodes.filter((n) => n.child && n.child.exitCode === null && n.child.signalCode === null),
    );
    const url = leader.rpcUrl;
    expect((await rawCall(url, '{not json')).json.error.code).toBe(-32700);
    expect((await rawCall(url, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'no_such' }))).json.error.code).toBe(
      -32601,
    );
    expect(
      (
        await rawCall(
          url,
          JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_getBalance', params: ['0x12', 'latest'] }),
        )
      ).json.error.code,
    ).toBe(-32602);
    expect(
      (
        await rawCall(
          url,
          JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'quorate_sendRawTransaction', params: ['0xdeadbeef'] }),
        )
      ).json.error,
    ).toBeDefined();
    const key = generateAccountKey();
    const chainId = Number(BigInt(await leader.rpc.call<string>('eth_chainId')));
    const good = signTransaction({ chainId, nonce: 0, ops: [{ type: 'put', key: 'bad-input', value: '1' }] }, key);
    const tampered = Uint8Array.from(good.encoded);
    tampered[tampered.length - 1] ^= 0xff;
    const badSig = await rawCall(
      url,
      JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'quorate_sendRawTransaction',
        params: [`0x${Buffer.from(tampered).toString('hex')}`],
      }),
    );
    expect(badSig.json.error.message).toMatch(/signature/i);
    const wrongChain = signTransaction(
      { chainId: chainId + 1, nonce: 0, ops: [{ type: 'put', key: 'x', value: '1' }] },
      key,
    );
    const wc = await rawCall(
      url,
      JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'quorate_sendRawTransaction',
        params: [`0x${Buffer.from(wrongChain.encoded).toString('hex')}`],
      }),
    );
    expect(wc.json.error.message).toMatch(/chain/i);
    const hash = await leader.rpc.call<string>('quorate_sendRawTransaction', [
      `0x${Buffer.from(good.encoded).toString('hex')}`,
    ]);
    while (!(await receipt(leader, hash))) await sleep(20);
    const replay = await rawCall(
      url,
      JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'quorate_sendRawTransaction',
        params: [`0x${Buffer.from(good.encoded).toString('hex')}`],
      }),
    );
    expect(replay.json.error.message).toMatch(/nonce|already/i);
    // Over the body limit: answered 413, or the connection is closed while the client still writes.
    const big = await rawCall(
      url,
      JSON.stringify({
        jsonrpc: '2.0',
        id: 1,
        method: 'quorate_getValue',
        params: ['x'.repeat(6 * 1024 * 1024), 'latest'],
      }),
    ).catch((err: Error) => ({ status: 0, json: { reset: err.message } }));
    expect(big.status === 413 || big.status === 0).toBe(true);
    const health = await fetch(url.replace(/\/$/, '') + '/health');
    expect(health.status).toBe(200);
  }, 60_000);
});
