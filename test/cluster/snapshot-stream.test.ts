// Streamed snapshots between real `quorate start` processes (node/snapshot-transfer.ts): with a
// low snapshot interval and the smallest chunk (96 KiB), ~3 MB of public state is many chunks. A
// follower stopped past the compacted log catches up, and a new node joins, both by snapshot; the
// joiner is SIGKILLed part-way through its transfer and finishes after a restart. In a second
// cluster the LEADER is SIGKILLed while a joiner's transfer from it runs: the joiner takes the
// snapshot from a surviving member instead. Every node ends on the same blocks (each header
// carries the state root every node checked) and the same state root.

import { readFile, writeFile } from 'node:fs/promises';
import { randomBytes } from 'node:crypto';
import { afterAll, describe, expect, it } from 'vitest';
import { generateAccountKey, signTransaction, type AccountKey } from '../../node/chain/index.js';
import { ProcessCluster, sleep, type ProcNode } from './process-cluster.js';

const cluster = new ProcessCluster();
const leaderKillCluster = new ProcessCluster();
const RAFT = { snapshotEveryEntries: 20, compactionRetainEntries: 5, snapshotChunkBytes: 96 * 1024 };

afterAll(async () => {
  await cluster.cleanup();
  await leaderKillCluster.cleanup();
}, 60_000);

async function patchRaft(configPath: string, extra: Record<string, unknown> = {}): Promise<void> {
  const c = JSON.parse(await readFile(configPath, 'utf8')) as { raft?: Record<string, unknown> };
  c.raft = { ...(c.raft ?? {}), ...RAFT, ...extra };
  await writeFile(configPath, JSON.stringify(c, null, 2) + '\n');
}

async function until(
  what: string,
  check: () => Promise<boolean>,
  timeoutMs: number,
  nodes: ProcNode[],
  pollMs = 100,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (await check().catch(() => false)) return;
    await sleep(pollMs);
  }
  throw new Error(`timed out waiting for ${what}\n${await cluster.logTails(nodes, 15)}`);
}

let nonce = 0;
async function fill(leader: ProcNode, key: AccountKey, chainId: number, txs: number, tag: string): Promise<void> {
  let last = '';
  for (let i = 0; i < txs; i++) {
    const ops = [0, 1, 2].map((j) => ({
      type: 'put' as const,
      key: `${tag}${i}/${j}`,
      value: randomBytes(7_000).toString('hex'),
    }));
    const tx = signTransaction({ chainId, nonce: nonce++, ops }, key);
    last = await leader.rpc.call<string>('quorate_sendRawTransaction', [
      `0x${Buffer.from(tx.encoded).toString('hex')}`,
    ]);
    // One block per few transactions: enough Raft entries for several snapshots.
    if (i % 2 === 1)
      await until(
        'a receipt',
        async () => (await leader.rpc.call('eth_getTransactionReceipt', [last])) !== null,
        20_000,
        [leader],
      );
  }
  await until(
    'the last receipt',
    async () => (await leader.rpc.call('eth_getTransactionReceipt', [last])) !== null,
    20_000,
    [leader],
  );
}

async function logHas(n: ProcNode, text: string): Promise<boolean> {
  return (await readFile(n.logPath, 'utf8').catch(() => '')).includes(text);
}

describe('streamed snapshots between real processes', () => {
  it('a follower down past compaction and a joiner (SIGKILLed mid-transfer) catch up by snapshot; all agree', async () => {
    await cluster.init(3);
    for (const n of cluster.nodes) await patchRaft(n.configPath);
    cluster.startAll();
    let leader = await cluster.waitForLeader();
    const chainId = Number(BigInt(await leader.rpc.call<string>('eth_chainId')));
    const key = generateAccountKey();
    const down = cluster.nodes.find((n) => n !== leader)!;
    await cluster.kill(down);
    const live = cluster.nodes.filter((n) => n !== down);
    // ~3 MB of incompressible public state (70 transactions of ~42 KB): ~30 chunks of 96 KiB.
    await fill(leader, key, chainId, 70, 'a');

    // The follower comes back: its log position is compacted away on the others.
    cluster.start(down);
    await until(
      'the follower to catch up',
      async () => (await cluster.head(down)) >= (await cluster.head(leader)),
      40_000,
      [down, leader],
    );
    expect(await logHas(down, 'snapshot fetched and verified')).toBe(true);

    // A new node joins (its config copies node-1's raft section, so it asks for 96 KiB chunks).
    const joiner = await cluster.addJoiningNode();
    let newId = 0;
    for (let attempt = 0; attempt < 100 && newId === 0; attempt++) {
      try {
        leader = await cluster.waitForLeader(live);
        newId = Number(await leader.rpc.call('raft_addLearner', [joiner.p2pAddress]));
      } catch {
        await sleep(300);
      }
    }
    expect(newId).toBe(4);
    // SIGKILL it as soon as its transfer has started, then restart it: it finishes.
    await until('the joiner to start fetching', () => logHas(joiner, 'fetching a streamed snapshot'), 30_000, [joiner]);
    await cluster.kill(joiner);
    cluster.start(joiner);
    await fill(leader, key, chainId, 4, 'b');
    await until(
      'the joiner to catch up',
      async () => (await cluster.head(joiner)) >= (await cluster.head(leader)),
      40_000,
      [joiner, leader],
    );
    expect(await logHas(joiner, 'snapshot installed')).toBe(true);

    // Every node holds the same block at every height it has; the tops agree.
    await fill(leader, key, chainId, 2, 'c');
    const nodes = [...cluster.nodes];
    await until(
      'the same head everywhere',
      async () => new Set(await Promise.all(nodes.map((n) => cluster.head(n)))).size === 1,
      20_000,
      nodes,
    );
    const top = await cluster.head(leader);
    const hashes = await Promise.all(nodes.map((n) => cluster.blockHash(n, top)));
    expect(new Set(hashes).size).toBe(1);
    const roots = await Promise.all(
      nodes.map(
        async (n) => (await n.rpc.call<{ stateRoot: string }>('eth_getBlockByNumber', ['latest', false])).stateRoot,
      ),
    );
    expect(new Set(roots).size).toBe(1);
  }, 170_000);
  it('the leader is SIGKILLed while a joiner streams its snapshot: the joiner gets it from a surviving member; all agree', async () => {
    const c = leaderKillCluster;
    await c.init(3);
    // A window of 2 chunks: the transfer runs windowed, and long enough to be caught part-way.
    for (const n of c.nodes) await patchRaft(n.configPath, { snapshotWindowChunks: 2 });
    c.startAll();
    const oldLeader = await c.waitForLeader();
    const chainId = Number(BigInt(await oldLeader.rpc.call<string>('eth_chainId')));
    const key = generateAccountKey();
    nonce = 0;
    // ~1.3 MB of incompressible public state: ~13 chunks of 96 KiB. Then more until the log is surely
    // compacted past a joiner's start (two snapshot intervals plus the retained tail): with fewer entries
    // (30 transactions can land in 15 blocks) the joiner is caught up from the log and never fetches.
    await fill(oldLeader, key, chainId, 30, 'l');
    const compactedAt = 2 * RAFT.snapshotEveryEntries + RAFT.compactionRetainEntries;
    for (let round = 0; round < 40; round++) {
      const s = await oldLeader.rpc.call<{ commitIndex: number }>('raft_status');
      if (s.commitIndex > compactedAt) break;
      await fill(oldLeader, key, chainId, 2, `l${round}-`);
    }
    expect((await oldLeader.rpc.call<{ commitIndex: number }>('raft_status')).commitIndex).toBeGreaterThan(compactedAt);

    const joiner = await c.addJoiningNode();
    let newId = 0;
    for (let attempt = 0; attempt < 100 && newId === 0; attempt++) {
      try {
        newId = Number(await oldLeader.rpc.call('raft_addLearner', [joiner.p2pAddress]));
      } catch {
        await sleep(300);
      }
    }
    expect(newId).toBe(4);
    // Freeze the joiner the moment its fetch starts (its transfer is then part-way at most), and
    // check that it has not finished one; then kill the leader it fetches from, and let it go on.
    await until(
      'the joiner to start fetching',
      () => logHas(joiner, 'fetching a streamed snapshot'),
      30_000,
      [joiner],
      5,
    );
    joiner.child!.kill('SIGSTOP');
    try {
      await sleep(200); // its last log lines reach the file
      expect(await logHas(joiner, 'snapshot fetched and verified')).toBe(false);
      await c.kill(oldLeader);
    } finally {
      joiner.child!.kill('SIGCONT');
    }

    const live = c.nodes.filter((n) => n !== oldLeader && n !== joiner);
    const newLeader = await c.waitForLeader(live);
    await fill(newLeader, key, chainId, 4, 'm');
    await until(
      'the joiner to catch up from the survivors',
      async () => (await c.head(joiner)) >= (await c.head(newLeader)),
      40_000,
      [joiner, ...live],
    );
    expect(await logHas(joiner, 'snapshot installed')).toBe(true);
    // The state came from a surviving member (the old leader is dead).
    const served = await Promise.all(live.map((n) => logHas(n, 'snapshot transfer started')));
    expect(served.some(Boolean)).toBe(true);

    // The old leader comes back as a follower; then every node holds the same block at every
    // height, and the same state root at the top.
    c.start(oldLeader);
    await fill(newLeader, key, chainId, 2, 'n');
    const nodes = [...c.nodes];
    const chains = await c.waitSameChain(nodes, 40_000);
    for (const chainOf of chains.slice(1)) expect(chainOf).toEqual(chains[0]);
    expect(chains[0].includes('missing')).toBe(false);
    const roots = await Promise.all(
      nodes.map(
        async (n) => (await n.rpc.call<{ stateRoot: string }>('eth_getBlockByNumber', ['latest', false])).stateRoot,
      ),
    );
    expect(new Set(roots).size).toBe(1);
  }, 120_000);
});
