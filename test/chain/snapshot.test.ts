// The snapshot stream's one-buffer form (Raft's Snapshot.data today) and its privacy rule, on a
// MemoryState chain. The storage side (import into a fresh slot, refusals, resume, power cuts)
// is in the state storage compliance suite (state-store.suite.ts), run on both backends.
import { describe, expect, it } from 'vitest';
import {
  ChainError,
  ChainErrorCode,
  type ChainState,
  type MemoryState,
  type PrivatePayload,
  SNAPSHOT_CHUNK_BYTES,
  SnapshotRefusal,
  applyBlock,
  baseOf,
  buildBlock,
  createMemoryChainStore,
  exportSnapshot,
  genesisBlock,
  importSnapshot,
  privatePayloadKeys,
  signTransaction,
  snapshotChunksFromBytes,
  snapshotToBytes,
  toHex,
  type Transaction,
} from '../../node/chain/index.js';
import { CHAIN_ID, fixture, put, tx } from './helpers.js';

const f = fixture();

function applyAll(chain: ChainState<MemoryState>, txs: Transaction[], payloads = new Map<string, PrivatePayload>()) {
  const b = buildBlock(chain.app, CHAIN_ID, baseOf(chain), txs, { raftId: 1, key: f.minters[0] }, 9_000, 1).block;
  const r = applyBlock(chain, b, payloads);
  if (r.kind !== 'applied') throw new Error(r.detail);
  chain.advance(r);
  return b;
}

function bigChain(): ChainState<MemoryState> {
  const c = f.newChain();
  // ~1.5 MiB of values so the export needs more than one entries chunk.
  applyAll(
    c,
    Array.from({ length: 96 }, (_, i) =>
      tx(f.accounts[i % 4], Math.floor(i / 4), [put(`big${i}`, String(i).padEnd(16_000, '.'))]),
    ),
  );
  const ptx = signTransaction(
    { chainId: CHAIN_ID, nonce: 24, ops: [], privatePayloadHash: new Uint8Array(64).fill(8) },
    f.accounts[0],
  );
  const b = buildBlock(c.app, CHAIN_ID, baseOf(c), [ptx], { raftId: 1, key: f.minters[0] }, 20_000, 1).block;
  const r = applyBlock(c, b, new Map([[privatePayloadKeys(b)[0], { kind: 'party', ops: [put('secret', '42')] }]]));
  if (r.kind !== 'applied') throw new Error(r.detail);
  c.advance(r);
  return c;
}

async function freshStore() {
  const s = createMemoryChainStore();
  const g = genesisBlock(f.genesis);
  await s.init(CHAIN_ID, g.block, g.state);
  return s;
}

describe('snapshots', () => {
  const chain = bigChain();

  it('round-trip through the one-buffer form, in bounded chunks, without private state', async () => {
    const chunks: Uint8Array[] = [];
    for await (const c of exportSnapshot(chain, 77, { includePrivate: false })) chunks.push(c);
    expect(chunks.length).toBeGreaterThan(3);
    for (const c of chunks) expect(c.length).toBeLessThanOrEqual(SNAPSHOT_CHUNK_BYTES);
    expect(Buffer.concat(chunks).includes(Buffer.from('secret'))).toBe(false);
    const bytes = await snapshotToBytes(exportSnapshot(chain, 77));
    const store = await freshStore();
    const s = await importSnapshot(snapshotChunksFromBytes(bytes), store);
    expect(s.appliedRaftIndex).toBe(77);
    expect(s.head.hashHex).toBe(chain.head.hashHex);
    await store.installSnapshot(s);
    expect(toHex((await store.loadState()).state.root())).toBe(toHex(chain.state.root()));
    expect(await store.getPrivateValue('secret')).toBeNull();
  });

  it('refuses a one-buffer snapshot cut short or with an oversized length, typed', async () => {
    const bytes = await snapshotToBytes(exportSnapshot(chain, 1));
    const reason = async (b: Uint8Array) => {
      const e = await importSnapshot(snapshotChunksFromBytes(b), await freshStore()).catch((x) => x);
      expect(e).toBeInstanceOf(ChainError);
      expect((e as ChainError).code).toBe(ChainErrorCode.SnapshotInvalid);
      return (e as ChainError).meta.reason;
    };
    expect(await reason(bytes.subarray(0, bytes.length - 3))).toBe(SnapshotRefusal.Truncated);
    const big = Uint8Array.from(bytes);
    new DataView(big.buffer).setUint32(0, SNAPSHOT_CHUNK_BYTES + 1);
    expect(await reason(big)).toBe(SnapshotRefusal.ChunkTooLarge);
  });
});
