// What the node needs of its transaction manager: the PrivacyProvider interface, on its own so
// the parts that call it (transactions, payload fetching) and the one that implements it
// (node/privacy.ts) depend on this file only. Owns no code.

/** "Not a party" is `null`; not being able to tell is a thrown error, never null. */
export interface PrivacyProvider {
  /** Encrypts and pushes the payload to its parties; resolves with the 64-byte hash once all acknowledged. */
  send(payload: Uint8Array, privateFor: readonly string[], signal?: AbortSignal): Promise<Uint8Array>;
  /**
   * `privateFor`: the transaction's recipients, so a provider that holds one of them and is still
   * owed the payload answers "could not tell" (throws), never "not a party".
   */
  receive(hash: Uint8Array, privateFor?: readonly Uint8Array[]): Promise<Uint8Array | null>;
}
