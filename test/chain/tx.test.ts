import { describe, expect, it } from 'vitest';
import {
  ChainError,
  ChainErrorCode,
  MAX_KEY_BYTES,
  MAX_OPS_PER_TX,
  MAX_TX_BYTES,
  MAX_VALUE_BYTES,
  type Op,
  VerifiedTxCache,
  decodePrivatePayload,
  decodeRawTransaction,
  decodeTransaction,
  encodePrivatePayload,
  encodeRawTransaction,
  keccak256,
  opsFromJson,
  signTransaction,
  toHex,
  txToJson,
  verifyTransaction,
  accountKeyFromSeed,
} from '../../node/chain/index.js';
import { CHAIN_ID, seed } from './helpers.js';

const alice = accountKeyFromSeed(seed(1));
const bob = accountKeyFromSeed(seed(2));

const allOps: Op[] = [
  { type: 'transfer', to: bob.address, amount: 123n },
  { type: 'transfer', to: bob.address, amount: 0n },
  { type: 'transfer', to: bob.address, amount: (1n << 256n) - 1n },
  { type: 'put', key: 'k', value: 'v' },
  { type: 'put', key: '', value: '' },
  { type: 'delete', key: 'k/ü/🙂' },
  { type: 'cas', key: 'c', expect: null, value: 'one' },
  { type: 'cas', key: 'c', expect: 'one', value: 'two' },
  { type: 'append', key: 'list', value: 'x' },
];

function code(fn: () => unknown): ChainErrorCode | string {
  try {
    fn();
  } catch (e) {
    if (e instanceof ChainError) return e.code;
    return `non-chain error: ${(e as Error).message}`;
  }
  return 'no error';
}

describe('transaction encoding', () => {
  it('round-trips every op type and keeps the hash', () => {
    const t = signTransaction({ chainId: CHAIN_ID, nonce: 7, ops: allOps }, alice);
    const d = decodeTransaction(t.encoded);
    expect(d.ops).toEqual(allOps);
    expect(d.nonce).toBe(7);
    expect(d.from).toBe(alice.address);
    expect(d.hashHex).toBe(t.hashHex);
    expect(toHex(d.hash)).toBe(toHex(keccak256(t.encoded)));
    expect(Uint8Array.from(d.encoded)).toEqual(Uint8Array.from(t.encoded));
    expect(t.encoded[0]).toBe(1); // the type/version byte comes first
  });

  it('round-trips a private transaction (hash on chain, no ops)', () => {
    const payloadHash = new Uint8Array(64).fill(9);
    const recipients = [new Uint8Array(32).fill(1), new Uint8Array(32).fill(2)];
    const t = signTransaction(
      { chainId: CHAIN_ID, nonce: 0, ops: [], privatePayloadHash: payloadHash, privateFor: recipients },
      alice,
    );
    const d = decodeTransaction(t.encoded);
    expect(d.ops).toEqual([]);
    expect(Uint8Array.from(d.privatePayloadHash!)).toEqual(payloadHash);
    expect(d.privateFor!.map((k) => Uint8Array.from(k))).toEqual(recipients);
    expect(() =>
      signTransaction(
        { chainId: CHAIN_ID, nonce: 0, ops: [{ type: 'put', key: 'a', value: 'b' }], privatePayloadHash: payloadHash },
        alice,
      ),
    ).toThrow(ChainError);
  });

  it('rejects every truncation and every trailing byte', () => {
    const t = signTransaction({ chainId: CHAIN_ID, nonce: 1, ops: allOps }, alice);
    for (let n = 0; n < t.encoded.length; n++) {
      expect(code(() => decodeTransaction(t.encoded.subarray(0, n)))).toBe(ChainErrorCode.TxMalformed);
    }
    const longer = new Uint8Array(t.encoded.length + 1);
    longer.set(t.encoded);
    expect(code(() => decodeTransaction(longer))).toBe(ChainErrorCode.TxMalformed);
  });

  it('rejects unknown type, flags and op codes, non-minimal amounts and bad UTF-8', () => {
    const t = signTransaction({ chainId: CHAIN_ID, nonce: 1, ops: [{ type: 'put', key: 'k', value: 'v' }] }, alice);
    const at = (i: number, v: number): Uint8Array => {
      const b = Uint8Array.from(t.encoded);
      b[i] = v;
      return b;
    };
    const flagsAt = 1 + 8 + 20 + 32 + 8;
    const opCodeAt = flagsAt + 1 + 2;
    expect(code(() => decodeTransaction(at(0, 2)))).toBe(ChainErrorCode.TxUnsupportedType);
    expect(code(() => decodeTransaction(at(flagsAt, 2)))).toBe(ChainErrorCode.TxMalformed);
    expect(code(() => decodeTransaction(at(opCodeAt, 99)))).toBe(ChainErrorCode.TxMalformed);
    // key 'k' is at opCodeAt + 1 (u16 len) + 2: make it an invalid UTF-8 byte
    expect(code(() => decodeTransaction(at(opCodeAt + 3, 0xff)))).toBe(ChainErrorCode.TxMalformed);
    // A transfer amount with a leading zero byte is not canonical.
    const tr = signTransaction(
      { chainId: CHAIN_ID, nonce: 1, ops: [{ type: 'transfer', to: bob.address, amount: 5n }] },
      alice,
    );
    const amountLenAt = opCodeAt + 1 + 20;
    expect(tr.encoded[amountLenAt]).toBe(1);
    const b = new Uint8Array(tr.encoded.length + 1);
    b.set(tr.encoded.subarray(0, amountLenAt));
    b[amountLenAt] = 2;
    b[amountLenAt + 1] = 0;
    b.set(tr.encoded.subarray(amountLenAt + 1), amountLenAt + 2);
    expect(code(() => decodeTransaction(b))).toBe(ChainErrorCode.TxMalformed);
  });

  it('decode + verify never throw anything but a ChainError on random corruption', () => {
    const t = signTransaction({ chainId: CHAIN_ID, nonce: 1, ops: allOps }, alice);
    let state = 12345;
    const rnd = (n: number): number => {
      state = (state * 1103515245 + 12345) & 0x7fffffff;
      return state % n;
    };
    for (let i = 0; i < 2000; i++) {
      const b = Uint8Array.from(t.encoded);
      for (let j = 0; j < 1 + rnd(4); j++) b[rnd(b.length)] = rnd(256);
      const c = code(() => verifyTransaction(decodeTransaction(b), CHAIN_ID));
      expect(c === 'no error' || Object.values(ChainErrorCode).includes(c as ChainErrorCode)).toBe(true);
    }
  });

  it('enforces the named limits', () => {
    const big = 'x'.repeat(MAX_VALUE_BYTES + 1);
    expect(
      code(() => signTransaction({ chainId: CHAIN_ID, nonce: 0, ops: [{ type: 'put', key: 'k', value: big }] }, alice)),
    ).toBe(ChainErrorCode.TxTooLarge);
    expect(
      code(() =>
        signTransaction(
          { chainId: CHAIN_ID, nonce: 0, ops: [{ type: 'put', key: 'k'.repeat(MAX_KEY_BYTES + 1), value: '' }] },
          alice,
        ),
      ),
    ).toBe(ChainErrorCode.TxTooLarge);
    const many = Array.from({ length: MAX_OPS_PER_TX + 1 }, (): Op => ({ type: 'delete', key: 'a' }));
    expect(code(() => signTransaction({ chainId: CHAIN_ID, nonce: 0, ops: many }, alice))).toBe(
      ChainErrorCode.TxTooLarge,
    );
    // Many ops each near the value limit exceed the whole-transaction limit.
    const fat = Array.from({ length: 5 }, (): Op => ({ type: 'put', key: 'k', value: 'v'.repeat(MAX_VALUE_BYTES) }));
    expect(code(() => signTransaction({ chainId: CHAIN_ID, nonce: 0, ops: fat }, alice))).toBe(
      ChainErrorCode.TxTooLarge,
    );
    expect(code(() => decodeTransaction(new Uint8Array(MAX_TX_BYTES + 1)))).toBe(ChainErrorCode.TxTooLarge);
    expect(code(() => decodeRawTransaction('0x' + '00'.repeat(MAX_TX_BYTES + 1)))).toBe(ChainErrorCode.TxTooLarge);
  });

  it('raw hex form round-trips and refuses non-hex', () => {
    const t = signTransaction({ chainId: CHAIN_ID, nonce: 3, ops: allOps }, alice);
    const hex = encodeRawTransaction(t);
    expect(hex.startsWith('0x')).toBe(true);
    expect(decodeRawTransaction(hex).hashHex).toBe(t.hashHex);
    expect(code(() => decodeRawTransaction('0xzz'))).toBe(ChainErrorCode.TxMalformed);
    expect(code(() => decodeRawTransaction(hex.slice(2)))).toBe(ChainErrorCode.TxMalformed);
    expect(code(() => decodeRawTransaction(hex + '0'))).toBe(ChainErrorCode.TxMalformed);
  });

  it('private payload round-trips and rejects garbage', () => {
    const p = encodePrivatePayload(allOps);
    expect(decodePrivatePayload(p)).toEqual(allOps);
    expect(code(() => decodePrivatePayload(p.subarray(0, p.length - 1)))).toBe(ChainErrorCode.TxMalformed);
    expect(code(() => decodePrivatePayload(Uint8Array.of(2, 0, 0)))).toBe(ChainErrorCode.TxMalformed);
  });
});

describe('transaction signatures', () => {
  it('verifies a good transaction and caches the result', () => {
    const t = signTransaction({ chainId: CHAIN_ID, nonce: 0, ops: allOps }, alice);
    const cache = new VerifiedTxCache(10);
    verifyTransaction(t, CHAIN_ID, cache);
    expect(cache.has(t.hashHex)).toBe(true);
  });

  it('rejects a flipped signature bit, a changed field, a wrong chain and a foreign public key', () => {
    const t = signTransaction({ chainId: CHAIN_ID, nonce: 0, ops: [{ type: 'put', key: 'k', value: 'v' }] }, alice);
    const sigFlip = Uint8Array.from(t.encoded);
    sigFlip[sigFlip.length - 1] ^= 1;
    expect(code(() => verifyTransaction(decodeTransaction(sigFlip), CHAIN_ID))).toBe(ChainErrorCode.TxBadSignature);
    const nonceChanged = Uint8Array.from(t.encoded);
    nonceChanged[1 + 8 + 20 + 32 + 7] = 1; // nonce 0 → 1, signature unchanged: a replay with another nonce
    expect(code(() => verifyTransaction(decodeTransaction(nonceChanged), CHAIN_ID))).toBe(
      ChainErrorCode.TxBadSignature,
    );
    expect(code(() => verifyTransaction(t, CHAIN_ID + 1))).toBe(ChainErrorCode.TxWrongChainId);
    // Bob's public key under Alice's address.
    const swapped = Uint8Array.from(t.encoded);
    swapped.set(bob.publicKeyRaw, 1 + 8 + 20);
    expect(code(() => verifyTransaction(decodeTransaction(swapped), CHAIN_ID))).toBe(ChainErrorCode.TxAddressMismatch);
  });

  it('the cache is bounded and keyed by the exact bytes', () => {
    const cache = new VerifiedTxCache(2);
    const ts = [0, 1, 2].map((n) => signTransaction({ chainId: CHAIN_ID, nonce: n, ops: [] }, alice));
    for (const t of ts) verifyTransaction(t, CHAIN_ID, cache);
    expect(cache.size).toBe(2);
    expect(cache.has(ts[0].hashHex)).toBe(false);
    expect(cache.has(ts[2].hashHex)).toBe(true);
    // A tampered copy has another hash, so a cached original does not vouch for it.
    const bad = Uint8Array.from(ts[2].encoded);
    bad[bad.length - 1] ^= 1;
    expect(code(() => verifyTransaction(decodeTransaction(bad), CHAIN_ID, cache))).toBe(ChainErrorCode.TxBadSignature);
  });
});

describe('JSON views', () => {
  it('public transactions show ops with decimal amounts; private ones show input', () => {
    const t = signTransaction(
      { chainId: CHAIN_ID, nonce: 2, ops: [{ type: 'transfer', to: bob.address, amount: 10n ** 30n }] },
      alice,
    );
    const j = txToJson(t, { blockHash: new Uint8Array(32).fill(1), blockNumber: 5, index: 0 });
    expect(j).toMatchObject({
      hash: t.hashHex,
      from: alice.address,
      nonce: '0x2',
      blockNumber: '0x5',
      transactionIndex: '0x0',
      isPrivate: false,
    });
    expect(j.ops).toEqual([{ type: 'transfer', to: bob.address, amount: '1000000000000000000000000000000' }]);
    const h = new Uint8Array(64).fill(0xab);
    const p = signTransaction({ chainId: CHAIN_ID, nonce: 3, ops: [], privatePayloadHash: h }, alice);
    const pj = txToJson(p);
    expect(pj.isPrivate).toBe(true);
    expect(pj.input).toBe('0x' + 'ab'.repeat(64));
    expect(pj.ops).toBeUndefined();
    expect(pj.blockHash).toBeNull();
  });

  it('opsFromJson parses docs/interface.md ops and refuses bad ones', () => {
    const ops = opsFromJson([
      { type: 'transfer', to: bob.address.toUpperCase().replace('0X', '0x'), amount: '123' },
      { type: 'cas', key: 'k', expect: null, value: 'v' },
    ]);
    expect(ops[0]).toEqual({ type: 'transfer', to: bob.address, amount: 123n });
    expect(code(() => opsFromJson([{ type: 'transfer', to: bob.address, amount: '-1' }]))).toBe(
      ChainErrorCode.TxMalformed,
    );
    expect(code(() => opsFromJson([{ type: 'transfer', to: bob.address, amount: '01' }]))).toBe(
      ChainErrorCode.TxMalformed,
    );
    expect(code(() => opsFromJson([{ type: 'mint', key: 'k' }]))).toBe(ChainErrorCode.TxMalformed);
    expect(code(() => opsFromJson([{ type: 'put', key: 1, value: 'v' }]))).toBe(ChainErrorCode.TxMalformed);
    expect(code(() => opsFromJson({}))).toBe(ChainErrorCode.TxMalformed);
    expect(code(() => opsFromJson([{ type: 'put', key: 'k', value: '\ud800' }]))).toBe(ChainErrorCode.TxMalformed);
  });
});
