// The block-range protocol a node catching up after a snapshot uses (node/catch-up.ts): the
// serving side's limits and refusals, the requester's verification, and the store's catch-up
// record. Real blocks (built and applied by the executor) in a real store.

import { beforeAll, describe, expect, it } from 'vitest';
import {
  BLOCK_RANGE_MAX_BLOCKS,
  BlockRangeError,
  BlockRangeErrorCode,
  decodeBlockRangeReply,
  encodeBlockRangeRequest,
  parentOf,
  serveBlockRange,
  verifyBlockRange,
  type BlockRangeSource,
} from '../../node/catch-up.js';
import {
  MemoryKv,
  MemoryState,
  NO_PRIVATE_CHANGES,
  applyBlock,
  createMemoryChainStore,
  encodeReceipt,
  decodeReceipt,
  type BackfilledBlock,
  type Block,
  type KvChainStore,
} from '../../node/chain/index.js';
import { deterministicBlock, fixture } from '../chain/helpers.js';

const MEMBER = 'QmMember';
const CHAIN_LENGTH = BLOCK_RANGE_MAX_BLOCKS + 12;

const f = fixture();
let store: KvChainStore;
const blocks: Block[] = [];

/** A real chain of CHAIN_LENGTH blocks (one transaction each), committed to a memory store. */
beforeAll(async () => {
  const chain = f.newChain();
  store = createMemoryChainStore();
  await store.init(f.genesis.chainId, chain.head, MemoryState.fromEntries(chain.state.entries()));
  blocks.push(chain.head);
  for (let n = 1; n <= CHAIN_LENGTH; n++) {
    const block = deterministicBlock(f, chain, n, 1);
    const result = applyBlock(chain, block, new Map());
    if (result.kind !== 'applied') throw new Error(`block ${n}: ${result.detail}`);
    await store.commitBlock(block, result.receipts, result.stateChanges, NO_PRIVATE_CHANGES, n);
    chain.advance(result);
    blocks.push(block);
  }
}, 60_000);

function source(overrides: Partial<BlockRangeSource> = {}): BlockRangeSource {
  return {
    isMember: (peerId) => peerId === MEMBER,
    head: () => CHAIN_LENGTH,
    getBlock: (n) => store.getBlockByNumber(n),
    getReceipt: (hash) => store.getReceipt(hash),
    ...overrides,
  };
}

async function ask(from: string, data: Uint8Array, src = source()): Promise<BackfilledBlock[]> {
  return decodeBlockRangeReply(await serveBlockRange(src, from, data));
}

async function refusal(p: Promise<unknown>): Promise<BlockRangeErrorCode> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(BlockRangeError);
  return (err as BlockRangeError).code;
}

describe('serving a block range', () => {
  it('serves a range with the public receipts, ascending, and it verifies against the block above', async () => {
    const got = await ask(MEMBER, encodeBlockRangeRequest({ from: 5, to: 9 }));
    expect(got.map((b) => b.block.header.number)).toEqual([5, 6, 7, 8, 9]);
    for (const { block, receipts } of got) {
      expect(block.hashHex).toBe(blocks[block.header.number].hashHex);
      expect(receipts).toHaveLength(block.transactions.length);
    }
    expect(() => verifyBlockRange(got, parentOf(blocks[10]), 4)).not.toThrow();
    // The top may also be a block held without its receipts (a snapshot's head): its own hash.
    expect(() => verifyBlockRange(got, { number: 9, hash: blocks[9].hash }, 4)).not.toThrow();
  });

  it('refuses a peer that is not a member', async () => {
    expect(await refusal(ask('QmStranger', encodeBlockRangeRequest({ from: 1, to: 2 })))).toBe(
      BlockRangeErrorCode.NotAMember,
    );
  });

  it('answers a malformed request with an error: wrong length, unknown version, reversed range', async () => {
    expect(await refusal(ask(MEMBER, new Uint8Array(3)))).toBe(BlockRangeErrorCode.Malformed);
    const bad = encodeBlockRangeRequest({ from: 1, to: 2 });
    bad[0] = 9;
    expect(await refusal(ask(MEMBER, bad))).toBe(BlockRangeErrorCode.Malformed);
    expect(await refusal(ask(MEMBER, encodeBlockRangeRequest({ from: 7, to: 3 })))).toBe(BlockRangeErrorCode.Malformed);
    const huge = encodeBlockRangeRequest({ from: 0, to: 0 });
    new DataView(huge.buffer).setBigUint64(9, 2n ** 64n - 1n);
    expect(await refusal(ask(MEMBER, huge))).toBe(BlockRangeErrorCode.Malformed);
  });

  it('clips a range over BLOCK_RANGE_MAX_BLOCKS to its top', async () => {
    const got = await ask(MEMBER, encodeBlockRangeRequest({ from: 1, to: CHAIN_LENGTH }));
    expect(got).toHaveLength(BLOCK_RANGE_MAX_BLOCKS);
    expect(got[got.length - 1].block.header.number).toBe(CHAIN_LENGTH);
    expect(got[0].block.header.number).toBe(CHAIN_LENGTH - BLOCK_RANGE_MAX_BLOCKS + 1);
    expect(() => verifyBlockRange(got, { number: CHAIN_LENGTH, hash: blocks[CHAIN_LENGTH].hash }, 0)).not.toThrow();
  });

  it('refuses blocks above its head, and serves only the part it holds', async () => {
    expect(await refusal(ask(MEMBER, encodeBlockRangeRequest({ from: 1, to: CHAIN_LENGTH + 1 })))).toBe(
      BlockRangeErrorCode.NotHeld,
    );
    // A server that itself installed a snapshot at 20 and fetched down to 15 only.
    const partial = source({ getBlock: async (n) => (n >= 15 ? store.getBlockByNumber(n) : undefined) });
    const got = await ask(MEMBER, encodeBlockRangeRequest({ from: 10, to: 20 }), partial);
    expect(got.map((b) => b.block.header.number)).toEqual([15, 16, 17, 18, 19, 20]);
    expect(await refusal(ask(MEMBER, encodeBlockRangeRequest({ from: 3, to: 12 }), partial))).toBe(
      BlockRangeErrorCode.NotHeld,
    );
    // Held without receipts (its own snapshot's head): not served.
    const noReceipts = source({ getReceipt: async () => undefined });
    expect(await refusal(ask(MEMBER, encodeBlockRangeRequest({ from: 3, to: 4 }), noReceipts))).toBe(
      BlockRangeErrorCode.NotHeld,
    );
  });

  it('the requester refuses a reply that does not chain to what it holds, or whose receipts or body were altered', async () => {
    const got = await ask(MEMBER, encodeBlockRangeRequest({ from: 5, to: 9 }));
    const badReply = (fn: () => void) => {
      try {
        fn();
      } catch (e) {
        expect(e).toBeInstanceOf(BlockRangeError);
        return (e as BlockRangeError).code;
      }
      return undefined;
    };
    // Wrong anchor: another block's parent.
    expect(badReply(() => verifyBlockRange(got, parentOf(blocks[11]), 4))).toBe(BlockRangeErrorCode.BadReply);
    // A gap in the middle.
    expect(badReply(() => verifyBlockRange([got[0], got[1], got[3], got[4]], parentOf(blocks[10]), 4))).toBe(
      BlockRangeErrorCode.BadReply,
    );
    // At or below what the requester already has.
    expect(badReply(() => verifyBlockRange(got, parentOf(blocks[10]), 6))).toBe(BlockRangeErrorCode.BadReply);
    // A receipt altered (a private outcome in place of the public "included", say).
    const r = got[2].receipts[0];
    const altered = decodeReceipt(encodeReceipt({ ...r, status: 0, reason: 'forged' }));
    const tampered = got.map((b, i) => (i === 2 ? { block: b.block, receipts: [altered] } : b));
    expect(badReply(() => verifyBlockRange(tampered, parentOf(blocks[10]), 4))).toBe(BlockRangeErrorCode.BadReply);
    // A body swapped for another block's transactions (the header, and so the hash, kept).
    const swapped = got.map((b, i) =>
      i === 2 ? { block: { ...b.block, transactions: got[1].block.transactions }, receipts: got[1].receipts } : b,
    );
    expect(badReply(() => verifyBlockRange(swapped, parentOf(blocks[10]), 4))).toBe(BlockRangeErrorCode.BadReply);
    // Garbage in place of a reply.
    expect(() => decodeBlockRangeReply(Uint8Array.of(0, 0, 0, 0, 1, 0xff))).toThrow(BlockRangeError);
  });
});

describe("the store's catch-up record", () => {
  it('is written by a snapshot install that skips blocks, moved by backfill and replay, survives a restart, and is gone when done', async () => {
    // A follower that holds blocks 0..3, then installs a snapshot at block 10.
    const kv = new MemoryKv();
    const chain = f.newChain();
    const follower = createMemoryChainStore(kv);
    await follower.init(f.genesis.chainId, chain.head, MemoryState.fromEntries(chain.state.entries()));
    for (let n = 1; n <= 3; n++) {
      const result = applyBlock(chain, blocks[n], new Map());
      if (result.kind !== 'applied') throw new Error(result.detail);
      await follower.commitBlock(blocks[n], result.receipts, result.stateChanges, NO_PRIVATE_CHANGES, n);
      chain.advance(result);
    }
    expect(await follower.catchUp()).toBeUndefined();
    const leaderChain = f.newChain();
    for (let n = 1; n <= 10; n++) {
      const result = applyBlock(leaderChain, blocks[n], new Map());
      if (result.kind !== 'applied') throw new Error(result.detail);
      leaderChain.advance(result);
    }
    await follower.installSnapshot({
      appliedRaftIndex: 10,
      head: blocks[10],
      state: MemoryState.fromEntries(leaderChain.state.entries()),
    });
    expect(await follower.catchUp()).toEqual({ privateThrough: 3, backfillNext: 10, snapshotHead: 10 });
    expect(await follower.blockStored(10)).toBe('block-only');
    expect(await follower.blockStored(7)).toBe('none');
    expect(await follower.blockStored(3)).toBe('complete');

    const fetched = await ask(MEMBER, encodeBlockRangeRequest({ from: 6, to: 10 }));
    verifyBlockRange(fetched, { number: 10, hash: blocks[10].hash }, 3);
    await follower.storeBackfilledBlocks(fetched, 5);
    expect(await follower.blockStored(10)).toBe('complete');
    expect(await follower.getReceipt(blocks[8].transactions[0].hash)).toBeDefined();
    expect((await follower.getTransaction(blocks[8].transactions[0].hash))?.location.blockNumber).toBe(8);
    // Neither the head nor the applied index moved.
    expect((await follower.head())?.number).toBe(10);
    expect(await follower.appliedIndex()).toBe(10);

    // A restart: the record is on disk.
    const reopened = createMemoryChainStore(kv);
    expect(await reopened.catchUp()).toEqual({ privateThrough: 3, backfillNext: 5, snapshotHead: 10 });
    const rest = await ask(MEMBER, encodeBlockRangeRequest({ from: 4, to: 5 }));
    verifyBlockRange(rest, parentOf((await reopened.getBlockByNumber(6))!), 3);
    await reopened.storeBackfilledBlocks(rest, 3);
    // The replay: a run with no private changes, then the last block; done deletes the record.
    await reopened.commitPrivateReplay(9, NO_PRIVATE_CHANGES, false);
    expect(await reopened.catchUp()).toEqual({ privateThrough: 9, backfillNext: 3, snapshotHead: 10 });
    // A block already replayed is refused (the replay never goes back).
    await expect(reopened.commitPrivateReplay(9, NO_PRIVATE_CHANGES, false)).rejects.toThrow(
      /not after privateThrough/,
    );
    await reopened.commitPrivateReplay(10, NO_PRIVATE_CHANGES, true);
    expect(await reopened.catchUp()).toBeUndefined();
  });

  it('a record is finished by the replay of the head block', async () => {
    const kv = new MemoryKv();
    const chain = f.newChain();
    const s = createMemoryChainStore(kv);
    await s.init(f.genesis.chainId, chain.head, MemoryState.fromEntries(chain.state.entries()));
    const leaderChain = f.newChain();
    for (let n = 1; n <= 2; n++) {
      const result = applyBlock(leaderChain, blocks[n], new Map());
      if (result.kind !== 'applied') throw new Error(result.detail);
      leaderChain.advance(result);
    }
    await s.installSnapshot({
      appliedRaftIndex: 2,
      head: blocks[2],
      state: MemoryState.fromEntries(leaderChain.state.entries()),
    });
    expect(await s.catchUp()).toEqual({ privateThrough: 0, backfillNext: 2, snapshotHead: 2 });
    await s.storeBackfilledBlocks(await ask(MEMBER, encodeBlockRangeRequest({ from: 1, to: 2 })), 0);
    await expect(s.commitPrivateReplay(1, NO_PRIVATE_CHANGES, true)).rejects.toThrow(/done at block 1/);
    await s.commitPrivateReplay(2, NO_PRIVATE_CHANGES, true);
    expect(await s.catchUp()).toBeUndefined();
  });
});
