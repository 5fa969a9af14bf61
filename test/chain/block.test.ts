import { describe, expect, it } from 'vitest';
import {
  BLOCK_VERSION,
  MAX_REASON_BYTES,
  decodeReceipt,
  encodeReceipt,
  receiptToJson,
  truncateReason,
  HEADER_BYTES,
  ChainError,
  ChainErrorCode,
  LedgerApp,
  baseOf,
  blockToJson,
  buildBlock,
  decodeBlock,
  decodeBlockTransaction,
  decodeHeader,
  encodeBlock,
  encodeHeader,
  genesisBlock,
  makeBlock,
  parseGenesis,
  signBlock,
  toHex,
  verifyBlock,
  verifyBlockSignature,
} from '../../node/chain/index.js';
import { CHAIN_ID, fixture, put, tx } from './helpers.js';

const f = fixture();

function code(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return e instanceof ChainError ? e.code : `non-chain error: ${(e as Error).message}`;
  }
  return 'no error';
}

function sampleBlock() {
  const chain = f.newChain();
  const txs = [
    tx(f.accounts[0], 0, [put('a', '1')]),
    tx(f.accounts[1], 0, [{ type: 'transfer', to: f.accounts[2].address, amount: 5n }]),
  ];
  return buildBlock(new LedgerApp(), CHAIN_ID, baseOf(chain), txs, { raftId: 1, key: f.minters[0] }, 5_000, 3).block;
}

describe('blocks', () => {
  it('header and block round-trip; the hash is keccak of the header', () => {
    const b = sampleBlock();
    const d = decodeBlock(encodeBlock(b));
    expect(d.hashHex).toBe(b.hashHex);
    expect(d.header).toEqual(b.header);
    expect(d.transactions.map((t) => t.hashHex)).toEqual(b.transactions.map((t) => t.hashHex));
    expect(decodeHeader(encodeHeader(b.header))).toEqual(b.header);
    expect(decodeBlockTransaction(encodeBlock(b), 1)?.hashHex).toBe(b.transactions[1].hashHex);
    expect(decodeBlockTransaction(encodeBlock(b), 2)).toBeUndefined();
    expect(b.header).toMatchObject({ version: BLOCK_VERSION, number: 1, minterId: 1, raftTerm: 3, timestampMs: 5_000 });
  });

  it('rejects truncation, trailing bytes and a corrupt transaction inside', () => {
    const bytes = encodeBlock(sampleBlock());
    for (const n of [0, 10, 100, bytes.length - 1])
      expect(code(() => decodeBlock(bytes.subarray(0, n)))).toBe(ChainErrorCode.BlockMalformed);
    const longer = new Uint8Array(bytes.length + 1);
    longer.set(bytes);
    expect(code(() => decodeBlock(longer))).toBe(ChainErrorCode.BlockMalformed);
    const badTx = Uint8Array.from(bytes);
    badTx[HEADER_BYTES + 64 + 4 + 4] = 0x7f; // first byte of the first transaction: unknown type
    expect(code(() => decodeBlock(badTx))).toBe(ChainErrorCode.BlockMalformed);
  });

  it('the minter signature verifies only with the minter key and the exact header', () => {
    const b = sampleBlock();
    expect(verifyBlockSignature(b, f.minters[0].publicKeyRaw)).toBe(true);
    expect(verifyBlockSignature(b, f.minters[1].publicKeyRaw)).toBe(false);
    expect(verifyBlock(b, f.minters[0].publicKeyRaw)).toBeUndefined();
    expect(verifyBlock(b, undefined)).toMatch(/not a known member/);
    const moved = makeBlock({ ...b.header, timestampMs: b.header.timestampMs + 1 }, b.signature, b.transactions);
    expect(verifyBlock(moved, f.minters[0].publicKeyRaw)).toMatch(/bad minter signature/);
    const lessTxs = signBlock(b.header, b.transactions.slice(1), f.minters[0]);
    expect(verifyBlock(lessTxs, f.minters[0].publicKeyRaw)).toMatch(/txRoot/);
  });

  it('JSON view has Ethereum-style fields', () => {
    const b = sampleBlock();
    const j = blockToJson(b);
    expect(j).toMatchObject({ number: '0x1', hash: b.hashHex, timestamp: '0x5', timestampMs: 5_000, minter: 1 });
    expect(j.transactions).toEqual(b.transactions.map((t) => t.hashHex));
  });
});

describe('receipts', () => {
  it('round-trip, refuse garbage, and show the private outcome to parties', () => {
    const b = sampleBlock();
    const r = { txHash: b.transactions[0].hash, status: 0 as const, reason: 'cas failed', isPrivate: false };
    expect(decodeReceipt(encodeReceipt(r))).toEqual({ ...r, txHash: Uint8Array.from(r.txHash) });
    const enc = encodeReceipt(r);
    const badStatus = Uint8Array.from(enc);
    badStatus[33] = 2;
    expect(code(() => decodeReceipt(badStatus))).toBe(ChainErrorCode.BlockMalformed);
    expect(code(() => decodeReceipt(encodeReceipt({ ...r, status: 1 })))).toBe(ChainErrorCode.BlockMalformed); // success carries no reason
    expect(code(() => decodeReceipt(enc.subarray(0, enc.length - 1)))).toBe(ChainErrorCode.BlockMalformed);
    expect(truncateReason('é'.repeat(MAX_REASON_BYTES)).length).toBe(MAX_REASON_BYTES / 2);
    const loc = { blockHash: b.hash, blockNumber: 1, index: 0 };
    expect(receiptToJson({ ...r, status: 1, reason: '' }, b.transactions[0], loc)).toMatchObject({
      status: '0x1',
      blockNumber: '0x1',
      transactionIndex: '0x0',
    });
    const pub = { ...r, status: 1 as const, reason: '', isPrivate: true };
    const j = receiptToJson(pub, b.transactions[0], loc, { ...r, isPrivate: true });
    expect(j).toMatchObject({ status: '0x0', reason: 'cas failed', isPrivate: true });
  });
});

describe('genesis', () => {
  it('is deterministic and commits to balances and members', () => {
    const g1 = genesisBlock(parseGenesis(f.genesisJson));
    const g2 = genesisBlock(parseGenesis(JSON.parse(JSON.stringify(f.genesisJson))));
    expect(g1.block.hashHex).toBe(g2.block.hashHex);
    expect(g1.block.header.number).toBe(0);
    expect(toHex(g1.block.header.stateRoot)).toBe(toHex(g1.state.root()));
    const j = JSON.parse(JSON.stringify(f.genesisJson));
    j.alloc[f.accounts[0].address].balance = '999';
    expect(genesisBlock(parseGenesis(j)).block.hashHex).not.toBe(g1.block.hashHex);
    const c = JSON.parse(JSON.stringify(f.genesisJson));
    c.chainId = 1;
    expect(genesisBlock(parseGenesis(c)).block.hashHex).not.toBe(g1.block.hashHex);
    const k = JSON.parse(JSON.stringify(f.genesisJson));
    k.members.pop();
    expect(genesisBlock(parseGenesis(k)).block.hashHex).not.toBe(g1.block.hashHex);
  });

  it('accepts the short alloc form and refuses bad fields with a clear error', () => {
    const short = {
      chainId: 1,
      alloc: { [f.accounts[0].address]: '5' },
      members: [{ raftId: 1, minterPublicKey: toHex(f.minters[0].publicKeyRaw) }],
    };
    expect(parseGenesis(short).alloc.get(f.accounts[0].address)).toBe(5n);
    const bad = (mut: (j: Record<string, unknown>) => void): string => {
      const j = JSON.parse(JSON.stringify(short));
      mut(j);
      return code(() => parseGenesis(j));
    };
    expect(bad((j) => (j.chainId = -1))).toBe(ChainErrorCode.GenesisInvalid);
    expect(bad((j) => (j.alloc = { '0x12': '1' }))).toBe(ChainErrorCode.GenesisInvalid);
    expect(bad((j) => (j.alloc = { [f.accounts[0].address]: '1.5' }))).toBe(ChainErrorCode.GenesisInvalid);
    expect(bad((j) => (j.members = []))).toBe(ChainErrorCode.GenesisInvalid);
    expect(
      bad((j) => (j.members as unknown[]).push({ raftId: 1, minterPublicKey: toHex(f.minters[1].publicKeyRaw) })),
    ).toBe(ChainErrorCode.GenesisInvalid);
    expect(bad((j) => ((j.members as { minterPublicKey: string }[])[0].minterPublicKey = '0x00'))).toBe(
      ChainErrorCode.GenesisInvalid,
    );
  });
});
