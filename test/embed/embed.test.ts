// The embedding entry (node/embed.ts `startNode`) on three in-process nodes with real IO on
// loopback (LevelDB, libp2p, JSON-RPC, transaction managers): block iteration (live, and a slow
// consumer past its bounded buffer served from the store without a gap), reads at a tag and
// linearizable reads across nodes, typed errors, and shutdown through an AbortSignal.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePortBlock } from '../../bench/etcd-vs.js';
import {
  NodeError,
  NodeErrorCode,
  STOP_DEADLINE_MS,
  generateAccountKey,
  initCluster,
  signTransaction,
  loadConfig,
  silentLogger,
  startNode,
  type Block,
  type EmbeddedNode,
} from '../../node/index.js';

const LEADER_WAIT_MS = 30_000;
const POLL_INTERVAL_MS = 50;

let dir: string;
const nodes: EmbeddedNode[] = [];
/** Node 3 has its own controller: the abort test stops it alone. */
const stopAll = new AbortController();
const stopThird = new AbortController();

async function waitFor<T>(what: string, probe: () => T | undefined, limitMs = LEADER_WAIT_MS): Promise<T> {
  const deadline = Date.now() + limitMs;
  for (;;) {
    const v = probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${limitMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, POLL_INTERVAL_MS));
  }
}

/** Sends a put through `via` (signed by via's own key) and waits for it on that node. */
async function put(via: EmbeddedNode, key: string, value: string): Promise<string> {
  const hash = await via.send({ from: via.accounts[0], ops: [{ type: 'put', key, value }] });
  const receipt = await via.waitForReceipt(hash);
  expect(receipt.status).toBe(1);
  return hash;
}

beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'quorate-embed-'));
  const base = await freePortBlock(9);
  const cluster = await initCluster({
    nodes: 3,
    dir,
    hosts: ['127.0.0.1', '127.0.0.1', '127.0.0.1'],
    rpcPort: base,
    p2pPort: base + 3,
    tmPort: base + 6,
    force: false,
    chainId: 1337,
  });
  for (const [i, n] of cluster.nodes.entries()) {
    const signal = i === 2 ? AbortSignal.any([stopAll.signal, stopThird.signal]) : stopAll.signal;
    // The config as a path (startNode loads it), and for node 1 as the loaded object.
    const config = i === 0 ? await loadConfig(n.configPath) : n.configPath;
    nodes.push(await startNode({ config, signal, logger: silentLogger() }));
  }
  await waitFor('a leader known to all three', () => {
    const s = nodes.map((n) => n.status());
    const leader = s.find((x) => x.role === 'leader');
    return leader && s.every((x) => x.leader === leader.raftId) ? true : undefined;
  });
}, 90_000);

afterAll(async () => {
  stopAll.abort();
  await Promise.all(nodes.map((n) => n.stopped));
  if (dir) await rm(dir, { recursive: true, force: true });
}, 30_000);

describe('startNode: an embedded 3-node cluster', () => {
  it('iterates committed blocks in order, live and for a consumer slower than its buffer', async () => {
    const [a, b] = nodes;
    const live = b.blocks();
    // Holds at most 2 blocks; it is not read until 5 more have committed.
    const slow = b.blocks({ bufferBlocks: 2 });
    const startHead = b.status().head;
    const seenByListener: number[] = [];
    const off = b.onBlock(({ block }) => seenByListener.push(block.header.number));

    const hashes: string[] = [];
    for (let i = 0; i < 5; i++) hashes.push(await put(a, `iter-${i}`, `v${i}`));
    await waitFor('node 2 to commit them', () => (b.status().head >= startHead + 5 ? true : undefined));
    off();
    const endHead = b.status().head;

    const collect = async (it: AsyncIterableIterator<Block>): Promise<Block[]> => {
      const out: Block[] = [];
      for await (const block of it) {
        out.push(block);
        if (block.header.number === endHead) break;
      }
      return out;
    };
    for (const [name, it] of [
      ['live', live],
      ['slow', slow],
    ] as const) {
      const blocks = await collect(it);
      const numbers = blocks.map((x) => x.header.number);
      expect(numbers, name).toEqual(Array.from({ length: endHead - startHead }, (_, i) => startHead + 1 + i));
      const txs = blocks.flatMap((x) => x.transactions.map((t) => t.hashHex));
      for (const h of hashes) expect(txs, name).toContain(h);
    }
    // The unsubscribed listener saw exactly the same blocks and nothing after.
    expect(seenByListener).toEqual(Array.from({ length: endHead - startHead }, (_, i) => startHead + 1 + i));
    await put(a, 'after-off', 'x');
    expect(seenByListener.at(-1)).toBe(endHead);

    // `from` replays history from the store.
    const replay = b.blocks({ from: 1 });
    const first = await replay.next();
    expect(first.done).toBe(false);
    expect((first.value as Block).header.number).toBe(1);
    await replay.return!();
    expect((await replay.next()).done).toBe(true);
  });

  it('reads at a tag, and a linearizable read on another node sees a write just acknowledged', async () => {
    const [a, b, c] = nodes;
    const before = a.status().head;
    await put(a, 'colour', 'blue');
    // No wait for c to apply: the read barrier does that.
    expect(await c.getValue('colour', 'linearizable')).toBe('blue');
    expect(await b.getValue('colour', 'linearizable')).toBe('blue');
    // As of the block before the write, the key did not exist.
    expect(await c.getValue('colour', before)).toBeNull();
    const head = await c.getBlock('linearizable');
    expect(head!.header.number).toBeGreaterThan(before);
    expect(await c.getNonce(a.accounts[0], 'latest')).toBeGreaterThan(0);
    expect(await c.getBalance(a.accounts[0])).toBeGreaterThan(0n);
  });

  it('submits a transaction the client signed, as the object and as its bytes', async () => {
    const [a, b] = nodes;
    const key = generateAccountKey();
    const first = signTransaction(
      { chainId: a.chainId, nonce: 0, ops: [{ type: 'put', key: 'signed', value: '1' }] },
      key,
    );
    const second = signTransaction(
      { chainId: a.chainId, nonce: 1, ops: [{ type: 'put', key: 'signed', value: '2' }] },
      key,
    );
    // Through a follower or the leader alike (a follower forwards).
    expect(await b.submit(first)).toBe(first.hashHex);
    expect((await b.waitForReceipt(first.hashHex)).status).toBe(1);
    expect(await a.submit(second.encoded)).toBe(second.hashHex);
    expect((await a.waitForReceipt(second.hashHex)).status).toBe(1);
    expect(await b.getValue('signed', 'linearizable')).toBe('2');
    expect(await b.getNonce(key.address)).toBe(2);
  });

  it('reports failures as NodeError with a code', async () => {
    const [a] = nodes;
    const refused = await a
      .send({ from: '0x' + '00'.repeat(20), ops: [{ type: 'put', key: 'k', value: 'v' }] })
      .catch((e: unknown) => e);
    expect(refused).toBeInstanceOf(NodeError);
    expect((refused as NodeError).code).toBe(NodeErrorCode.TxUnknownAccount);

    const future = await a.getValue('colour', a.status().head + 1_000).catch((e: unknown) => e);
    expect(future).toBeInstanceOf(NodeError);
    expect((future as NodeError).code).toBe(NodeErrorCode.NotFound);

    const unknown = '0x' + 'ab'.repeat(32);
    expect(await a.receipt(unknown)).toBeUndefined();
    const waited = await a.waitForReceipt(unknown, { timeoutMs: 200 }).catch((e: unknown) => e);
    expect(waited).toBeInstanceOf(NodeError);
    expect((waited as NodeError).code).toBe(NodeErrorCode.Timeout);

    // A signal already aborted: nothing is started.
    await expect(
      startNode({ config: join(dir, 'does-not-matter.json'), signal: AbortSignal.abort(new Error('no')) }),
    ).rejects.toThrow('no');
  });

  it('stops cleanly when its AbortSignal fires: iterators end, calls are refused, the others go on', async () => {
    const [a, , c] = nodes;
    const seen: number[] = [];
    const loop = (async () => {
      for await (const block of c.blocks()) seen.push(block.header.number);
    })();
    await put(a, 'before-abort', 'x');
    await waitFor('node 3 to see it', () => (seen.length > 0 ? true : undefined));

    // An iterator with its own signal ends when that signal fires, the node running on.
    const own = new AbortController();
    const mine = c.blocks({ signal: own.signal });
    const pending = mine.next();
    own.abort();
    expect((await pending).done).toBe(true);
    // A wait in progress when the node stops ends with UNAVAILABLE, not at its timeout.
    const waiting = c.waitForReceipt('0x' + 'cd'.repeat(32), { timeoutMs: 60_000 }).catch((e: unknown) => e);

    const t0 = Date.now();
    stopThird.abort();
    expect(await c.stopped).toBe(0);
    expect(Date.now() - t0).toBeLessThan(STOP_DEADLINE_MS);
    await loop; // the for-await loop ended on its own
    expect(((await waiting) as NodeError).code).toBe(NodeErrorCode.Unavailable);
    expect(c.status().state).toBe('stopped');

    const refused = await c.getValue('before-abort').catch((e: unknown) => e);
    expect((refused as NodeError).code).toBe(NodeErrorCode.Unavailable);
    const notSent = await c.send({ from: c.accounts[0], ops: [] }).catch((e: unknown) => e);
    expect((notSent as NodeError).code).toBe(NodeErrorCode.Unavailable);

    // Two of three still commit, once they know a leader among themselves (node 3 may have led: a put
    // forwarded to it before the others notice would fail, correctly, as "outcome unknown").
    const [, b] = nodes;
    await waitFor('a leader among the two left', () => {
      const s = [a.status(), b.status()];
      const leader = s.find((x) => x.role === 'leader');
      return leader && s.every((x) => x.leader === leader.raftId) ? true : undefined;
    });
    await put(a, 'after-abort', 'y');
    expect(await a.getValue('after-abort', 'linearizable')).toBe('y');
  });
});
