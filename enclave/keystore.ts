// Where an enclave's key pairs come from. Two implementations behind one interface, so the
// enclave's compliance suite runs against both (test/enclave/enclave.suite.ts):
//  - MemoryKeyStore: key pairs held in memory (tests, embedders that manage keys themselves);
//  - FileKeyStore: password-protected key files on disk (keyfile.ts), as a node uses.

import { EnclaveError, EnclaveErrorCode } from './errors.js';
import { type BoxKeyPair, generateBoxKeyPair, loadKeyFile } from './keyfile.js';

/** Most key pairs one enclave holds. Tessera nodes hold a handful; the bound keeps lookups and the shared-key cache small. */
export const MAX_KEYS_PER_ENCLAVE = 64;

export interface KeyStore {
  /** Every key pair, unlocked. Called once, when the enclave is built. */
  loadKeyPairs(): Promise<BoxKeyPair[]>;
}

export class MemoryKeyStore implements KeyStore {
  private readonly keyPairs: BoxKeyPair[];
  constructor(keyPairs: readonly BoxKeyPair[]) {
    this.keyPairs = keyPairs.map((k) => ({
      publicKey: Uint8Array.from(k.publicKey),
      secretKey: Uint8Array.from(k.secretKey),
    }));
  }
  /** A store with `count` fresh random key pairs. */
  static generate(count = 1): MemoryKeyStore {
    return new MemoryKeyStore(Array.from({ length: count }, () => generateBoxKeyPair()));
  }
  async loadKeyPairs(): Promise<BoxKeyPair[]> {
    return this.keyPairs.map((k) => ({
      publicKey: Uint8Array.from(k.publicKey),
      secretKey: Uint8Array.from(k.secretKey),
    }));
  }
}

export interface KeyFileRef {
  readonly path: string;
  /** The password of this file; undefined fails with MissingPassword. */
  readonly password: string | undefined;
}

export class FileKeyStore implements KeyStore {
  constructor(private readonly files: readonly KeyFileRef[]) {
    if (files.length > MAX_KEYS_PER_ENCLAVE) {
      throw new EnclaveError(
        EnclaveErrorCode.LimitExceeded,
        `${files.length} key files, limit MAX_KEYS_PER_ENCLAVE=${MAX_KEYS_PER_ENCLAVE}`,
      );
    }
  }
  async loadKeyPairs(): Promise<BoxKeyPair[]> {
    const out: BoxKeyPair[] = [];
    // One at a time: each unlock uses scrypt's full memory cost.
    for (const file of this.files) out.push(await loadKeyFile(file.path, file.password));
    return out;
  }
}
