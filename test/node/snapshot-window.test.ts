// The snapshot transfer's flow-control window (node/snapshot-transfer.ts), on the sender's request
// handler itself: a receiver may have up to the granted window of NEXTs outstanding, they are
// answered in stream order, a NEXT outside the window is refused, and the chunks so served import
// and verify like any stream. Protocol 1 (one chunk at a time) is still served.
import { describe, expect, it } from 'vitest';
import {
  MIN_SNAPSHOT_CHUNK_BYTES,
  Reader,
  Writer,
  applyBlock,
  baseOf,
  buildBlock,
  createMemoryChainStore,
  genesisBlock,
  importSnapshot,
  openSnapshotView,
  type ChainState,
  type MemoryState,
  ChainErrorCode,
} from '../../node/chain/index.js';
import { SystemClock } from '../../node/clock.js';
import { silentLogger } from '../../node/log.js';
import { SnapshotServer } from '../../node/snapshot-transfer.js';
import { CHAIN_ID, fixture, put, tx } from '../chain/helpers.js';

const f = fixture();
const PEER = 'peer-a';
const ST_OK = 0;
const ST_CHUNK = 1;
const ST_END = 2;
const ST_MALFORMED = 6;

function chainWithState(): ChainState<MemoryState> {
  const c = f.newChain();
  // ~1.5 MB of values: about 16 chunks of 96 KiB.
  const txs = Array.from({ length: 96 }, (_, i) =>
    tx(f.accounts[i % 4], Math.floor(i / 4), [put(`big${i}`, String(i).padEnd(16_000, '.'))]),
  );
  const b = buildBlock(c.app, CHAIN_ID, baseOf(c), txs, { raftId: 1, key: f.minters[0] }, 9_000, 1).block;
  const r = applyBlock(c, b, new Map());
  if (r.kind !== 'applied') throw new Error(r.detail);
  c.advance(r);
  return c;
}

function open(version: number, index: number, headHash: Uint8Array, window: number): Uint8Array {
  const w = new Writer(96)
    .u8(version)
    .u8(1)
    .u64(index)
    .raw(headHash)
    .u32(MIN_SNAPSHOT_CHUNK_BYTES)
    .bytes16(new Uint8Array(0));
  return (version === 2 ? w.u16(window) : w).finish();
}
const next = (version: number, session: number, seq: number) =>
  new Writer(16).u8(version).u8(2).u64(session).u32(seq).finish();

function openReply(reply: Uint8Array, version: number): { session: number; window: number } {
  expect(reply[0]).toBe(ST_OK);
  const r = new Reader(reply.subarray(1), ChainErrorCode.SnapshotInvalid, 'reply');
  const session = r.u64();
  r.bytes32(16 * 1024 * 1024);
  const window = version === 2 ? r.u16() : 1;
  r.end();
  return { session, window };
}

function server(maxWindowChunks: number): SnapshotServer {
  return new SnapshotServer({
    clock: new SystemClock(),
    logger: silentLogger(),
    isMember: () => true,
    maxConcurrentTransfers: 2,
    maxWindowChunks,
  });
}

async function freshStore() {
  const s = createMemoryChainStore();
  const g = genesisBlock(f.genesis);
  await s.init(CHAIN_ID, g.block, g.state);
  return s;
}

describe('snapshot transfer window', () => {
  const chain = chainWithState();

  it('grants at most its own window, answers outstanding NEXTs in order, refuses one outside the window', async () => {
    const srv = server(3);
    srv.publish(openSnapshotView(chain, 50));
    const { session, window } = openReply(await srv.handle(PEER, open(2, 50, chain.head.hash, 10)), 2);
    expect(window).toBe(3);

    const chunks: Uint8Array[] = [];
    let seq = 0;
    const inflight: Promise<Uint8Array>[] = [];
    // Three asked at once: all accepted. A fourth ahead of the window is refused.
    for (; seq < window; seq++) inflight.push(srv.handle(PEER, next(2, session, seq)));
    const outside = await srv.handle(PEER, next(2, session, seq + 1));
    expect(outside[0]).toBe(ST_MALFORMED);
    // The same chunk twice is refused too.
    expect((await srv.handle(PEER, next(2, session, seq - 1)))[0]).toBe(ST_MALFORMED);
    let maxOutstanding = 0;
    for (;;) {
      maxOutstanding = Math.max(maxOutstanding, inflight.length);
      const c = await inflight.shift()!;
      if (c[0] === ST_END) break;
      expect(c[0]).toBe(ST_CHUNK);
      expect(c.length - 1).toBeLessThanOrEqual(MIN_SNAPSHOT_CHUNK_BYTES);
      chunks.push(c.subarray(1));
      inflight.push(srv.handle(PEER, next(2, session, seq++)));
    }
    // NEXTs past the end are answered (END or GONE), never left hanging.
    for (const r of await Promise.all(inflight)) expect([ST_END, 4]).toContain(r[0]);
    expect(maxOutstanding).toBe(3);
    expect(chunks.length).toBeGreaterThan(10);
    expect(srv.stats.transfersFinished).toBe(1);

    // What was served, in order, imports and verifies against the head block's state root.
    const store = await freshStore();
    const imported = await importSnapshot(chunks, store, { maxChunkBytes: MIN_SNAPSHOT_CHUNK_BYTES });
    expect(imported.head.hashHex).toBe(chain.head.hashHex);
    expect(imported.staged?.entries).toBeGreaterThan(90);
    await srv.close();
  });

  it('serves protocol 1 (one chunk at a time) to an older receiver', async () => {
    const srv = server(8);
    srv.publish(openSnapshotView(chain, 50));
    const { session, window } = openReply(await srv.handle(PEER, open(1, 50, chain.head.hash, 0)), 1);
    expect(window).toBe(1);
    const first = srv.handle(PEER, next(1, session, 0));
    expect((await srv.handle(PEER, next(1, session, 1)))[0]).toBe(ST_MALFORMED);
    const chunks = [(await first).subarray(1)];
    for (let seq = 1; ; seq++) {
      const c = await srv.handle(PEER, next(1, session, seq));
      if (c[0] === ST_END) break;
      expect(c[0]).toBe(ST_CHUNK);
      chunks.push(c.subarray(1));
    }
    const imported = await importSnapshot(chunks, await freshStore(), { maxChunkBytes: MIN_SNAPSHOT_CHUNK_BYTES });
    expect(imported.head.hashHex).toBe(chain.head.hashHex);
    await srv.close();
  });
});
