// The compliance suite every Enclave implementation passes. It receives a factory that
// builds an enclave over `keyCount` fresh key pairs, so it runs against the tweetnacl
// enclave with in-memory keys and with password-protected key files alike.

import { describe, expect, it } from 'vitest';
import {
  decodePayload,
  type Enclave,
  EnclaveError,
  EnclaveErrorCode,
  encodePayload,
  keyToBase64,
  payloadHashBase64,
} from '../../enclave/index.js';

export interface EnclaveHarness {
  /** A fresh enclave holding `keyCount` new key pairs. */
  create(keyCount: number): Promise<Enclave>;
}

const text = (s: string): Uint8Array => new TextEncoder().encode(s);

async function expectCode(promise: Promise<unknown> | (() => unknown), code: EnclaveErrorCode): Promise<EnclaveError> {
  try {
    await (typeof promise === 'function' ? promise() : promise);
  } catch (error) {
    expect(error).toBeInstanceOf(EnclaveError);
    expect((error as EnclaveError).code).toBe(code);
    return error as EnclaveError;
  }
  throw new Error(`expected EnclaveError ${code}, nothing was thrown`);
}

export function runEnclaveSuite(name: string, harness: EnclaveHarness): void {
  describe(`Enclave compliance: ${name}`, () => {
    it('lists its public keys as 32-byte copies', async () => {
      const enclave = await harness.create(2);
      const keys = enclave.publicKeys();
      expect(keys).toHaveLength(2);
      for (const key of keys) expect(key.length).toBe(32);
      keys[0].fill(0);
      expect(enclave.publicKeys()[0].some((b) => b !== 0)).toBe(true);
    });

    it('a recipient and the sender read the payload; a third enclave cannot', async () => {
      const alice = await harness.create(1);
      const bob = await harness.create(1);
      const carol = await harness.create(1);
      const [a] = alice.publicKeys();
      const [b] = bob.publicKeys();
      const encoded = await alice.encryptPayload(text('pay bob 5'), a, [b]);
      expect(encoded.recipientKeys.map(keyToBase64).sort()).toEqual([keyToBase64(a), keyToBase64(b)].sort());
      expect(new TextDecoder().decode(await bob.decryptPayload(encoded))).toBe('pay bob 5');
      expect(new TextDecoder().decode(await bob.decryptPayload(encoded, b))).toBe('pay bob 5');
      expect(new TextDecoder().decode(await alice.decryptPayload(encoded))).toBe('pay bob 5');
      await expectCode(carol.decryptPayload(encoded), EnclaveErrorCode.NotARecipient);
    });

    it('the recipient copy holds only its own box and still opens; the sender opens it too', async () => {
      const alice = await harness.create(1);
      const bob = await harness.create(1);
      const carol = await harness.create(1);
      const [a] = alice.publicKeys();
      const [b] = bob.publicKeys();
      const [c] = carol.publicKeys();
      const encoded = await alice.encryptPayload(text('three-way'), a, [b, c]);
      const bobsCopy = alice.payloadFor(encoded, b);
      expect(bobsCopy.recipientKeys.map(keyToBase64)).toEqual([keyToBase64(b)]);
      expect(bobsCopy.recipientBoxes).toHaveLength(1);
      expect(payloadHashBase64(bobsCopy)).toBe(payloadHashBase64(encoded));
      expect(new TextDecoder().decode(await bob.decryptPayload(bobsCopy))).toBe('three-way');
      await expectCode(carol.decryptPayload(bobsCopy), EnclaveErrorCode.NotARecipient);
      // A rebuilt sender gets only a recipient's copy back through resend and must read it.
      expect(new TextDecoder().decode(await alice.decryptPayload(bobsCopy, a))).toBe('three-way');
      expect(() =>
        alice.payloadFor(
          encoded,
          carol.publicKeys()[0].map(() => 7),
        ),
      ).toThrow(EnclaveError);
    });

    it('tampered cipherText, tampered box, and a forged sender key are DecryptionFailed', async () => {
      const alice = await harness.create(1);
      const bob = await harness.create(1);
      const [a] = alice.publicKeys();
      const [b] = bob.publicKeys();
      const encoded = await alice.encryptPayload(text('integrity'), a, [b]);
      const badCipher = Uint8Array.from(encoded.cipherText);
      badCipher[3] ^= 1;
      await expectCode(bob.decryptPayload({ ...encoded, cipherText: badCipher }), EnclaveErrorCode.DecryptionFailed);
      const boxes = encoded.recipientBoxes.map((x) => Uint8Array.from(x));
      const bi = encoded.recipientKeys.findIndex((k) => keyToBase64(k) === keyToBase64(b));
      boxes[bi][10] ^= 0x80;
      await expectCode(bob.decryptPayload({ ...encoded, recipientBoxes: boxes }), EnclaveErrorCode.DecryptionFailed);
      const mallory = await harness.create(1);
      await expectCode(
        bob.decryptPayload({ ...encoded, senderKey: mallory.publicKeys()[0] }),
        EnclaveErrorCode.DecryptionFailed,
      );
    });

    it('refuses to seal as a key it does not hold, and to open as one', async () => {
      const alice = await harness.create(1);
      const bob = await harness.create(1);
      const [b] = bob.publicKeys();
      await expectCode(alice.encryptPayload(text('x'), b, [b]), EnclaveErrorCode.UnknownKey);
      const encoded = await bob.encryptPayload(text('x'), b, [alice.publicKeys()[0]]);
      await expectCode(alice.decryptPayload(encoded, b), EnclaveErrorCode.UnknownKey);
      await expectCode(
        alice.encryptPayload(text('x'), alice.publicKeys()[0], [new Uint8Array(31)]),
        EnclaveErrorCode.InvalidKey,
      );
    });

    it('asKey selects which of several keys opens the payload', async () => {
      const alice = await harness.create(1);
      const bob = await harness.create(2);
      const [a] = alice.publicKeys();
      const [b1, b2] = bob.publicKeys();
      const encoded = await alice.encryptPayload(text('for b2 only'), a, [b2]);
      expect(new TextDecoder().decode(await bob.decryptPayload(encoded))).toBe('for b2 only');
      expect(new TextDecoder().decode(await bob.decryptPayload(encoded, b2))).toBe('for b2 only');
      await expectCode(bob.decryptPayload(encoded, b1), EnclaveErrorCode.NotARecipient);
    });

    it('addRecipients: the sender adds boxes later, the hash stays, only the sender can', async () => {
      const alice = await harness.create(1);
      const bob = await harness.create(1);
      const [a] = alice.publicKeys();
      const [b] = bob.publicKeys();
      const raw = await alice.encryptPayload(text('signed later'), a, []);
      expect(raw.recipientKeys.map(keyToBase64)).toEqual([keyToBase64(a)]);
      await expectCode(bob.decryptPayload(raw), EnclaveErrorCode.NotARecipient);
      const full = await alice.addRecipients(raw, [b, a]);
      expect(payloadHashBase64(full)).toBe(payloadHashBase64(raw));
      expect(full.recipientKeys.map(keyToBase64)).toEqual([keyToBase64(a), keyToBase64(b)]);
      expect(new TextDecoder().decode(await bob.decryptPayload(full))).toBe('signed later');
      await expectCode(bob.addRecipients(raw, [b]), EnclaveErrorCode.UnknownKey);
      const bad = Uint8Array.from(raw.cipherText);
      bad[0] ^= 1;
      await expectCode(alice.addRecipients({ ...raw, cipherText: bad }, [b]), EnclaveErrorCode.DecryptionFailed);
    });

    it('survives the canonical encoding, and duplicate recipients are sealed once', async () => {
      const alice = await harness.create(1);
      const bob = await harness.create(1);
      const [a] = alice.publicKeys();
      const [b] = bob.publicKeys();
      const encoded = await alice.encryptPayload(new Uint8Array(0), a, [b, b, a]);
      expect(encoded.recipientKeys).toHaveLength(2);
      const decoded = decodePayload(encodePayload(encoded));
      expect(await bob.decryptPayload(decoded)).toEqual(new Uint8Array(0));
    });
  });
}
