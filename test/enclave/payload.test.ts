import { describe, expect, it } from 'vitest';
import {
  decodePayload,
  EnclaveError,
  EnclaveErrorCode,
  encodePayload,
  type EncodedPayload,
  keyFromBase64,
  keyToBase64,
  MAX_ENCODED_PAYLOAD_BYTES,
  MAX_PLAINTEXT_BYTES,
  MAX_RECIPIENTS,
  MemoryKeyStore,
  mergePayloads,
  NaclEnclave,
  payloadHash,
  payloadHashBase64,
  selectRecipients,
} from '../../enclave/index.js';
import { sha3_512 } from '@noble/hashes/sha3.js';

function codeOf(fn: () => unknown): EnclaveErrorCode {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(EnclaveError);
    return (error as EnclaveError).code;
  }
  throw new Error('expected an EnclaveError');
}

async function sample(
  recipients = 2,
): Promise<{ enclave: NaclEnclave; encoded: EncodedPayload; others: Uint8Array[] }> {
  const enclave = await NaclEnclave.create(MemoryKeyStore.generate(1));
  const others = await Promise.all(
    Array.from(
      { length: recipients },
      async () => (await NaclEnclave.create(MemoryKeyStore.generate(1))).publicKeys()[0],
    ),
  );
  const encoded = await enclave.encryptPayload(
    new TextEncoder().encode('hello, private world'),
    enclave.publicKeys()[0],
    others,
  );
  return { enclave, encoded, others };
}

describe('EncodedPayload encoding', () => {
  it('round-trips exactly, and encoding is canonical (decode then encode gives the same bytes)', async () => {
    const { encoded } = await sample(3);
    const bytes = encodePayload(encoded);
    const decoded = decodePayload(bytes);
    expect(decoded.senderKey).toEqual(encoded.senderKey);
    expect(decoded.cipherText).toEqual(encoded.cipherText);
    expect(decoded.recipientKeys.map(keyToBase64)).toEqual(encoded.recipientKeys.map(keyToBase64));
    expect(encodePayload(decoded)).toEqual(bytes);
    expect(bytes[0]).toBe(1);
  });

  it('every truncation and any trailing byte is MalformedPayload', async () => {
    const bytes = encodePayload((await sample(1)).encoded);
    for (let length = 0; length < bytes.length; length++) {
      expect(
        codeOf(() => decodePayload(bytes.subarray(0, length))),
        `length ${length}`,
      ).toBe(EnclaveErrorCode.MalformedPayload);
    }
    const longer = new Uint8Array(bytes.length + 1);
    longer.set(bytes);
    expect(codeOf(() => decodePayload(longer))).toBe(EnclaveErrorCode.MalformedPayload);
  });

  it('refuses an unknown version, lying lengths and oversized input before reading it', async () => {
    const bytes = encodePayload((await sample(1)).encoded);
    const v2 = Uint8Array.from(bytes);
    v2[0] = 2;
    expect(codeOf(() => decodePayload(v2))).toBe(EnclaveErrorCode.MalformedPayload);
    const hugeLength = Uint8Array.from(bytes);
    new DataView(hugeLength.buffer).setUint32(1 + 32 + 24 + 24, 0xffffffff);
    expect(codeOf(() => decodePayload(hugeLength))).toBe(EnclaveErrorCode.MalformedPayload);
    expect(codeOf(() => decodePayload(new Uint8Array(MAX_ENCODED_PAYLOAD_BYTES + 1)))).toBe(
      EnclaveErrorCode.MalformedPayload,
    );
  });

  it('refuses duplicate recipient keys and box/key count mismatch', async () => {
    const { encoded } = await sample(1);
    expect(
      codeOf(() => encodePayload({ ...encoded, recipientKeys: [encoded.recipientKeys[0], encoded.recipientKeys[0]] })),
    ).toBe(EnclaveErrorCode.MalformedPayload);
    expect(codeOf(() => encodePayload({ ...encoded, recipientBoxes: encoded.recipientBoxes.slice(1) }))).toBe(
      EnclaveErrorCode.MalformedPayload,
    );
  });

  it('the hash is SHA3-512 of the cipherText (node:crypto agrees with @noble/hashes)', async () => {
    const { encoded } = await sample(1);
    expect(payloadHash(encoded)).toEqual(sha3_512(encoded.cipherText));
    expect(payloadHash(encoded)).toHaveLength(64);
    expect(payloadHashBase64(encoded)).toBe(Buffer.from(sha3_512(encoded.cipherText)).toString('base64'));
    for (const length of [0, 1, 71, 72, 73, 135, 136, 137, 5000]) {
      const bytes = Uint8Array.from({ length }, (_, i) => (i * 31 + length) & 0xff);
      expect(payloadHash({ cipherText: bytes }), `length ${length}`).toEqual(sha3_512(bytes));
    }
  });

  it('limits: plaintext over MAX_PLAINTEXT_BYTES and more than MAX_RECIPIENTS are LimitExceeded', async () => {
    const { enclave } = await sample(0);
    const [a] = enclave.publicKeys();
    await expect(enclave.encryptPayload(new Uint8Array(MAX_PLAINTEXT_BYTES + 1), a, [])).rejects.toMatchObject({
      code: EnclaveErrorCode.LimitExceeded,
    });
    const many = Array.from({ length: MAX_RECIPIENTS }, (_, i) => {
      const k = new Uint8Array(32);
      k[0] = i & 0xff;
      k[1] = i >> 8;
      k[2] = 1;
      return k;
    });
    await expect(enclave.encryptPayload(new Uint8Array(1), a, many)).rejects.toMatchObject({
      code: EnclaveErrorCode.LimitExceeded,
    });
  });

  it('selectRecipients and mergePayloads: copies recombine; different payloads refuse to merge', async () => {
    const { encoded, others } = await sample(2);
    const one = selectRecipients(encoded, [others[0]]);
    const two = selectRecipients(encoded, [others[1]]);
    const both = mergePayloads(one, two);
    expect(both.recipientKeys.map(keyToBase64)).toEqual([others[0], others[1]].map(keyToBase64));
    expect(mergePayloads(both, one).recipientKeys).toHaveLength(2);
    const { encoded: other } = await sample(1);
    expect(codeOf(() => mergePayloads(one, other))).toBe(EnclaveErrorCode.MalformedPayload);
  });

  it('keyFromBase64 accepts only canonical base64 of 32 bytes', async () => {
    const { others } = await sample(1);
    expect(keyFromBase64(keyToBase64(others[0]))).toEqual(others[0]);
    for (const bad of [
      '',
      'abc',
      keyToBase64(others[0]).slice(1),
      Buffer.alloc(33).toString('base64'),
      'A'.repeat(42) + 'B=',
    ]) {
      expect(
        codeOf(() => keyFromBase64(bad)),
        bad,
      ).toBe(EnclaveErrorCode.InvalidKey);
    }
  });
});
