// The enclave: the only place that holds private keys and does the private-payload crypto
// (Tessera's Enclave). Everything outside sees public keys and EncodedPayloads only.
//
// The crypto methods return promises although the tweetnacl implementation is synchronous:
// Tessera runs its enclave as a separate process behind HTTP, and a remote enclave client
// (ROADMAP) must fit this interface without changing its callers.

import nacl from 'tweetnacl';
import { assert, EnclaveError, EnclaveErrorCode } from './errors.js';
import type { BoxKeyPair } from './keyfile.js';
import { type KeyProof, type KeyProofRequest, proveKeyPossession } from './key-proof.js';
import { type KeyStore, MAX_KEYS_PER_ENCLAVE } from './keystore.js';
import {
  bytesEqual,
  type EncodedPayload,
  keyToBase64,
  MASTER_KEY_BYTES,
  MAX_PLAINTEXT_BYTES,
  MAX_RECIPIENTS,
  PUBLIC_KEY_BYTES,
  selectRecipients,
  validatePayload,
} from './payload.js';

export interface Enclave {
  /** This enclave's public keys; the first is the default sender. Copies: callers may not mutate the enclave's. */
  publicKeys(): Uint8Array[];
  /**
   * Seals `plaintext` for `recipients` and for `senderKey` itself (so the sender can read its own
   * transactions). `senderKey` must be one of publicKeys() (UnknownKey). Duplicate recipients are
   * sealed once. Throws LimitExceeded over MAX_PLAINTEXT_BYTES or MAX_RECIPIENTS, InvalidKey.
   */
  encryptPayload(
    plaintext: Uint8Array,
    senderKey: Uint8Array,
    recipients: readonly Uint8Array[],
  ): Promise<EncodedPayload>;
  /**
   * Opens a payload with `asKey` (one of publicKeys(), else UnknownKey), or with whichever of this
   * enclave's keys has a box in it. Throws NotARecipient when none does, DecryptionFailed when a
   * box or the cipherText fails authentication, MalformedPayload on bad lengths.
   */
  decryptPayload(encoded: EncodedPayload, asKey?: Uint8Array): Promise<Uint8Array>;
  /** The copy `recipientKey` stores: the payload with only its own box. NotARecipient if it has none. */
  payloadFor(encoded: EncodedPayload, recipientKey: Uint8Array): EncodedPayload;
  /**
   * The same payload (same cipherText, so the same hash) with boxes added for `recipients`.
   * Only its sender can do this: the master key is recovered from the sender's own box. This
   * is Tessera's /storeraw then /sendsignedtx flow (the client signs a transaction carrying
   * the hash before the recipients are known). Throws UnknownKey when the sender key is not
   * held here, DecryptionFailed, LimitExceeded.
   */
  addRecipients(encoded: EncodedPayload, recipients: readonly Uint8Array[]): Promise<EncodedPayload>;
  /**
   * Proves possession of every key of publicKeys() (in that order) for a verifier's fresh
   * challenge, bound to `binding` (enclave/key-proof.ts). Throws InvalidKey on a malformed request.
   */
  proveKeys(request: KeyProofRequest, binding: Uint8Array): Promise<KeyProof[]>;
}

/**
 * Most precomputed shared keys (`box.before`) kept. One X25519 costs ~1 ms in tweetnacl, a
 * cached key turns a box into ~25 µs (docs/stack.md). A shared key is 32 bytes plus a ~90-byte map
 * key, so 4096 entries is ~0.5 MiB and covers every pair of a consortium of 64 parties.
 */
export const MAX_SHARED_KEY_CACHE_ENTRIES = 4096;

/** A bounded LRU of shared keys, keyed by "ownKey:otherKey" (base64). Map iteration order is insertion order, so re-inserting on a hit makes the first entry the least recently used. */
export class SharedKeyCache {
  private readonly entries = new Map<string, Uint8Array>();
  hits = 0;
  misses = 0;
  constructor(readonly maxEntries: number = MAX_SHARED_KEY_CACHE_ENTRIES) {
    assert(
      Number.isInteger(maxEntries) && maxEntries >= 1,
      `SharedKeyCache maxEntries must be a positive integer, got ${maxEntries}`,
    );
  }
  get size(): number {
    return this.entries.size;
  }
  sharedKey(own: BoxKeyPair, otherPublicKey: Uint8Array): Uint8Array {
    const id = `${keyToBase64(own.publicKey)}:${keyToBase64(otherPublicKey)}`;
    const cached = this.entries.get(id);
    if (cached !== undefined) {
      this.hits++;
      this.entries.delete(id);
      this.entries.set(id, cached);
      return cached;
    }
    this.misses++;
    const shared = nacl.box.before(otherPublicKey, own.secretKey);
    if (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next().value as string;
      this.entries.delete(oldest);
    }
    this.entries.set(id, shared);
    return shared;
  }
}

export interface NaclEnclaveOptions {
  /** Bound of the shared-key cache; default MAX_SHARED_KEY_CACHE_ENTRIES. */
  readonly maxSharedKeyCacheEntries?: number;
}

/** The enclave on tweetnacl (Tessera's NaclEncryptor with its SharedKey cache). */
export class NaclEnclave implements Enclave {
  private readonly keyPairs: ReadonlyMap<string, BoxKeyPair>;
  private readonly order: readonly BoxKeyPair[];
  private readonly cache: SharedKeyCache;

  private constructor(keyPairs: readonly BoxKeyPair[], options: NaclEnclaveOptions) {
    if (keyPairs.length === 0)
      throw new EnclaveError(
        EnclaveErrorCode.UnknownKey,
        'an enclave needs at least one key pair; the key store holds none',
      );
    if (keyPairs.length > MAX_KEYS_PER_ENCLAVE) {
      throw new EnclaveError(
        EnclaveErrorCode.LimitExceeded,
        `${keyPairs.length} key pairs, limit MAX_KEYS_PER_ENCLAVE=${MAX_KEYS_PER_ENCLAVE}`,
      );
    }
    const map = new Map<string, BoxKeyPair>();
    for (const pair of keyPairs) {
      assert(
        pair.publicKey.length === PUBLIC_KEY_BYTES && pair.secretKey.length === nacl.box.secretKeyLength,
        'key pair of the wrong length',
      );
      assert(
        bytesEqual(nacl.box.keyPair.fromSecretKey(pair.secretKey).publicKey, pair.publicKey),
        () => `key pair ${keyToBase64(pair.publicKey)}: public key does not match its secret key`,
      );
      map.set(keyToBase64(pair.publicKey), pair);
    }
    this.keyPairs = map;
    this.order = [...map.values()];
    this.cache = new SharedKeyCache(options.maxSharedKeyCacheEntries ?? MAX_SHARED_KEY_CACHE_ENTRIES);
  }

  static async create(keyStore: KeyStore, options: NaclEnclaveOptions = {}): Promise<NaclEnclave> {
    return new NaclEnclave(await keyStore.loadKeyPairs(), options);
  }

  /** Cache counters, for metrics and for the benchmark. */
  sharedKeyCacheStats(): { size: number; hits: number; misses: number } {
    return { size: this.cache.size, hits: this.cache.hits, misses: this.cache.misses };
  }

  publicKeys(): Uint8Array[] {
    return this.order.map((k) => Uint8Array.from(k.publicKey));
  }

  private own(key: Uint8Array): BoxKeyPair {
    checkKey(key, 'key');
    const pair = this.keyPairs.get(keyToBase64(key));
    if (pair === undefined)
      throw new EnclaveError(EnclaveErrorCode.UnknownKey, `this enclave holds no private key for ${keyToBase64(key)}`, {
        key: keyToBase64(key),
      });
    return pair;
  }

  async encryptPayload(
    plaintext: Uint8Array,
    senderKey: Uint8Array,
    recipients: readonly Uint8Array[],
  ): Promise<EncodedPayload> {
    if (plaintext.length > MAX_PLAINTEXT_BYTES) {
      throw new EnclaveError(
        EnclaveErrorCode.LimitExceeded,
        `plaintext is ${plaintext.length} bytes, limit MAX_PLAINTEXT_BYTES=${MAX_PLAINTEXT_BYTES}`,
        { bytes: plaintext.length },
      );
    }
    const sender = this.own(senderKey);
    const recipientKeys: Uint8Array[] = [];
    const seen = new Set<string>();
    for (const key of [...recipients, sender.publicKey]) {
      checkKey(key, 'recipient key');
      const id = keyToBase64(key);
      if (!seen.has(id)) {
        seen.add(id);
        recipientKeys.push(Uint8Array.from(key));
      }
    }
    if (recipientKeys.length > MAX_RECIPIENTS) {
      throw new EnclaveError(
        EnclaveErrorCode.LimitExceeded,
        `${recipientKeys.length} recipients (sender included), limit MAX_RECIPIENTS=${MAX_RECIPIENTS}`,
      );
    }
    const masterKey = nacl.randomBytes(MASTER_KEY_BYTES);
    const cipherTextNonce = nacl.randomBytes(nacl.secretbox.nonceLength);
    const recipientNonce = nacl.randomBytes(nacl.box.nonceLength);
    const cipherText = nacl.secretbox(plaintext, cipherTextNonce, masterKey);
    const recipientBoxes = recipientKeys.map((key) =>
      nacl.box.after(masterKey, recipientNonce, this.cache.sharedKey(sender, key)),
    );
    masterKey.fill(0);
    return {
      senderKey: Uint8Array.from(sender.publicKey),
      cipherText,
      cipherTextNonce,
      recipientBoxes,
      recipientNonce,
      recipientKeys,
    };
  }

  async decryptPayload(encoded: EncodedPayload, asKey?: Uint8Array): Promise<Uint8Array> {
    validatePayload(encoded);
    const candidates = asKey !== undefined ? [this.own(asKey)] : this.order;
    const senderId = keyToBase64(encoded.senderKey);
    for (const pair of candidates) {
      const id = keyToBase64(pair.publicKey);
      let index = encoded.recipientKeys.findIndex((k) => keyToBase64(k) === id);
      const isSender = id === senderId;
      // Box i is sealed under shared(senderSecret, recipientKeys[i]), which equals
      // shared(recipientSecret, senderKey): a recipient opens its own box, and the sender can
      // open any box (it is how a rebuilt sender reads the copy a recipient resends to it).
      if (index < 0 && isSender && encoded.recipientKeys.length > 0) index = 0;
      if (index < 0) continue;
      const other = isSender ? encoded.recipientKeys[index] : encoded.senderKey;
      const masterKey = nacl.box.open.after(
        encoded.recipientBoxes[index],
        encoded.recipientNonce,
        this.cache.sharedKey(pair, other),
      );
      if (masterKey === null || masterKey.length !== MASTER_KEY_BYTES) {
        throw new EnclaveError(
          EnclaveErrorCode.DecryptionFailed,
          `the recipient box for ${id} fails authentication (tampered, or sealed by another sender)`,
          { key: id },
        );
      }
      const plaintext = nacl.secretbox.open(encoded.cipherText, encoded.cipherTextNonce, masterKey);
      masterKey.fill(0);
      if (plaintext === null) {
        throw new EnclaveError(EnclaveErrorCode.DecryptionFailed, 'the cipherText fails authentication (tampered)', {
          key: id,
        });
      }
      return plaintext;
    }
    throw new EnclaveError(
      EnclaveErrorCode.NotARecipient,
      asKey !== undefined
        ? `key ${keyToBase64(asKey)} has no box in this payload`
        : "none of this enclave's keys has a box in this payload",
    );
  }

  payloadFor(encoded: EncodedPayload, recipientKey: Uint8Array): EncodedPayload {
    return recipientCopy(encoded, recipientKey);
  }

  async proveKeys(request: KeyProofRequest, binding: Uint8Array): Promise<KeyProof[]> {
    return proveKeyPossession(this.order, request, binding);
  }

  async addRecipients(encoded: EncodedPayload, recipients: readonly Uint8Array[]): Promise<EncodedPayload> {
    validatePayload(encoded);
    const sender = this.own(encoded.senderKey);
    const senderId = keyToBase64(sender.publicKey);
    const ownIndex = encoded.recipientKeys.findIndex((k) => keyToBase64(k) === senderId);
    if (ownIndex < 0)
      throw new EnclaveError(EnclaveErrorCode.NotARecipient, `the payload has no box for its sender ${senderId}`);
    const masterKey = nacl.box.open.after(
      encoded.recipientBoxes[ownIndex],
      encoded.recipientNonce,
      this.cache.sharedKey(sender, sender.publicKey),
    );
    if (masterKey === null || masterKey.length !== MASTER_KEY_BYTES) {
      throw new EnclaveError(
        EnclaveErrorCode.DecryptionFailed,
        `the sender's own box fails authentication (tampered)`,
        { key: senderId },
      );
    }
    try {
      // Proves the cipherText belongs to this master key before anyone is given a box for it.
      if (nacl.secretbox.open(encoded.cipherText, encoded.cipherTextNonce, masterKey) === null) {
        throw new EnclaveError(EnclaveErrorCode.DecryptionFailed, 'the cipherText fails authentication (tampered)', {
          key: senderId,
        });
      }
      const recipientKeys = [...encoded.recipientKeys];
      const recipientBoxes = [...encoded.recipientBoxes];
      const seen = new Set(recipientKeys.map(keyToBase64));
      for (const key of recipients) {
        checkKey(key, 'recipient key');
        const id = keyToBase64(key);
        if (seen.has(id)) continue;
        seen.add(id);
        // The recipientNonce is shared by all boxes of a payload; each box uses a different
        // shared key, so (key, nonce) pairs never repeat.
        recipientKeys.push(Uint8Array.from(key));
        recipientBoxes.push(nacl.box.after(masterKey, encoded.recipientNonce, this.cache.sharedKey(sender, key)));
      }
      if (recipientKeys.length > MAX_RECIPIENTS) {
        throw new EnclaveError(
          EnclaveErrorCode.LimitExceeded,
          `${recipientKeys.length} recipients (sender included), limit MAX_RECIPIENTS=${MAX_RECIPIENTS}`,
        );
      }
      return { ...encoded, recipientKeys, recipientBoxes };
    } finally {
      masterKey.fill(0);
    }
  }
}

/** The copy a recipient stores (pure: needs no private key). Throws NotARecipient. */
export function recipientCopy(encoded: EncodedPayload, recipientKey: Uint8Array): EncodedPayload {
  checkKey(recipientKey, 'recipient key');
  const copy = selectRecipients(encoded, [recipientKey]);
  if (copy.recipientKeys.length === 0) {
    throw new EnclaveError(
      EnclaveErrorCode.NotARecipient,
      `key ${keyToBase64(recipientKey)} has no box in this payload`,
    );
  }
  return copy;
}

function checkKey(key: Uint8Array, what: string): void {
  if (!(key instanceof Uint8Array) || key.length !== PUBLIC_KEY_BYTES) {
    throw new EnclaveError(
      EnclaveErrorCode.InvalidKey,
      `${what} must be ${PUBLIC_KEY_BYTES} bytes, got ${key instanceof Uint8Array ? key.length : typeof key}`,
    );
  }
}
