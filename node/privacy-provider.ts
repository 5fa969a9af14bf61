// What the node needs of its transaction manager: the PrivacyProvider interface, on its own so
// the parts that call it (transactions, payload fetching) and the one that implements it
// (node/privacy.ts) depend on this file only. Owns no code.

import type { KeyProof, KeyProofRequest } from '../enclave/index.js';

/** "Not a party" is `null`; not being able to tell is a thrown error, never null. */
export interface PrivacyProvider {
  /** Encrypts and pushes the payload to its parties; resolves with the 64-byte hash once all acknowledged. */
  send(payload: Uint8Array, privateFor: readonly string[], signal?: AbortSignal): Promise<Uint8Array>;
  /**
   * `privateFor`: the transaction's recipients, so a provider that holds one of them and is still
   * owed the payload answers "could not tell" (throws), never "not a party".
   */
  receive(hash: Uint8Array, privateFor?: readonly Uint8Array[]): Promise<Uint8Array | null>;
  /**
   * Proves that this node holds its enclave keys, for a member's challenge (enclave/key-proof.ts),
   * one proof per key in the order the node announces them. A provider without it cannot prove:
   * a node that announces enclave keys is then refused when it asks to join.
   */
  proveKeys?(request: KeyProofRequest, binding: Uint8Array): Promise<KeyProof[]>;
}
