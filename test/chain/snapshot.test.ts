import { describe, expect, it } from 'vitest';
import {
  ChainError,
  ChainErrorCode,
  type ChainState,
  type PrivatePayload,
  SNAPSHOT_CHUNK_BYTES,
  applyBlock,
  baseOf,
  buildBlock,
  exportSnapshot,
  getValue,
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

function applyAll(chain: ChainState, txs: Transaction[], payloads = new Map<string, PrivatePayload>()): void {
  const b = buildBlock(
    chain.app,
    CHAIN_ID,
    baseOf(chain),
    txs,
    { raftId: 1, key: f.minters[0] },
    9_000 + chain.head.header.number,
    1,
  ).block;
  const r = applyBlock(chain, b, payloads);
  if (r.kind !== 'applied') throw new Error(r.detail);
  chain.advance(r);
}

function bigChain(): ChainState {
  const c = f.newChain();
  // ~1.5 MiB of values so the export needs more than one entries chunk.
  const txs = Array.from({ length: 96 }, (_, i) =>
    tx(f.accounts[i % 4], Math.floor(i / 4), [put(`big${i}`, String(i).padEnd(16_000, '.'))]),
  );
  applyAll(c, txs);
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

function snapCode(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return e instanceof ChainError ? e.code : `non-chain error: ${(e as Error).message}`;
  }
  return 'no error';
}

describe('snapshots', () => {
  const chain = bigChain();

  it('round-trip the public and private state in bounded chunks', () => {
    const chunks = [...exportSnapshot(chain, 77, { includePrivate: true })];
    expect(chunks.length).toBeGreaterThan(3);
    for (const c of chunks) expect(c.length).toBeLessThanOrEqual(SNAPSHOT_CHUNK_BYTES + 32_000);
    const s = importSnapshot(chunks);
    expect(s.appliedRaftIndex).toBe(77);
    expect(s.head.hashHex).toBe(chain.head.hashHex);
    expect(toHex(s.state.root())).toBe(toHex(chain.state.root()));
    expect(getValue(s.privateState!, 'secret')).toBe('42');
    // And through the single-buffer form Raft's Snapshot.data uses.
    const again = importSnapshot(
      snapshotChunksFromBytes(snapshotToBytes(exportSnapshot(chain, 77, { includePrivate: true }))),
    );
    expect(toHex(again.state.root())).toBe(toHex(chain.state.root()));
  });

  it('a snapshot for a peer carries no private state', () => {
    const s = importSnapshot(exportSnapshot(chain, 5, { includePrivate: false }));
    expect(s.privateState).toBeUndefined();
    const all = Buffer.concat([...exportSnapshot(chain, 5, { includePrivate: false })]);
    expect(all.includes(Buffer.from('secret'))).toBe(false);
  });

  it('refuses truncated, reordered and tampered snapshots', () => {
    const chunks = [...exportSnapshot(chain, 1, { includePrivate: true })];
    expect(snapCode(() => importSnapshot(chunks.slice(0, -1)))).toBe(ChainErrorCode.SnapshotInvalid);
    expect(snapCode(() => importSnapshot([chunks[0], ...chunks.slice(2)]))).toBe(ChainErrorCode.SnapshotInvalid);
    expect(snapCode(() => importSnapshot(chunks.slice(1)))).toBe(ChainErrorCode.SnapshotInvalid);
    expect(snapCode(() => importSnapshot([...chunks, chunks[1]]))).toBe(ChainErrorCode.SnapshotInvalid);
    const tampered = chunks.map((c) => Uint8Array.from(c));
    const entries = tampered[1];
    entries[entries.length - 1] ^= 1; // last byte of the last value in the first entries chunk
    expect(snapCode(() => importSnapshot(tampered))).toBe(ChainErrorCode.SnapshotInvalid);
    expect(snapCode(() => importSnapshot([Uint8Array.of(9)]))).toBe(ChainErrorCode.SnapshotInvalid);
    const bytes = snapshotToBytes(chunks);
    expect(snapCode(() => importSnapshot(snapshotChunksFromBytes(bytes.subarray(0, bytes.length - 3))))).toBe(
      ChainErrorCode.SnapshotInvalid,
    );
  });
});
