// Proof of possession of enclave keys: how a member checks that a node joining the cluster holds
// the private halves of the enclave public keys it announces (a node that copied another
// organisation's public keys must not become the party those keys name).
//
// The verifier makes a fresh ephemeral X25519 key pair and a fresh random challenge for every
// check. For each announced key P, the prover returns nacl.box(m, n, E, secret(P)) where E is the
// verifier's ephemeral public key, n a nonce of its own, and
//     m = SHA-512( KEY_PROOF_DOMAIN || challenge || binding )
// (`binding` names the two sides: the node passes the prover's and the verifier's
// Noise-authenticated peer ids, so an answer obtained by relaying the challenge to the real key
// holder names the wrong requester and fails). The box opens only under
// X25519(secret(E), P) = X25519(secret(P), E): the verifier, who alone holds secret(E), can open
// it, and it authenticates as coming from the holder of secret(P). secret(E) is discarded after
// one check, so an answer recorded from an earlier check never opens again (no replay).
//
// What the prover gives away: a box from P to a key of the requester's choice, over a 64-byte
// hash it cannot choose. It is never a decryption (no oracle over the prover's payloads), and a
// 64-byte box content can never pass as a payload's recipient box, whose content is a 32-byte
// master key. The shared-key cache is not used for ephemeral keys (it would only fill up).

import nacl from 'tweetnacl';
import { EnclaveError, EnclaveErrorCode } from './errors.js';
import type { BoxKeyPair } from './keyfile.js';
import { bytesEqual, PUBLIC_KEY_BYTES } from './payload.js';

/** Bytes of a key-proof challenge. */
export const KEY_PROOF_CHALLENGE_BYTES = 32;
/** Bytes of a proof's nonce (NaCl box). */
export const KEY_PROOF_NONCE_BYTES = nacl.box.nonceLength; // 24
/** Bytes of a proof's box: a SHA-512 digest plus the box's authenticator. */
export const KEY_PROOF_BOX_BYTES = nacl.hash.hashLength + nacl.box.overheadLength; // 80
/** Longest binding (the two peer ids and a separator) a proof may cover. */
export const MAX_KEY_PROOF_BINDING_BYTES = 1024;
/** Domain separation: a proof's message is never any other message of the protocol. */
export const KEY_PROOF_DOMAIN = 'quorate/enclave-key-proof/v1';

/** What the verifier sends: a fresh challenge and its ephemeral public key. */
export interface KeyProofRequest {
  readonly challenge: Uint8Array;
  readonly verifierKey: Uint8Array;
}

/** One announced key's proof. */
export interface KeyProof {
  readonly key: Uint8Array;
  readonly nonce: Uint8Array;
  readonly box: Uint8Array;
}

/** The verifier's side of one check: its request, and the ephemeral secret to open the answer with. */
export interface KeyProofChallenge {
  readonly request: KeyProofRequest;
  /** Ephemeral: used for this one check only. */
  readonly verifierSecret: Uint8Array;
}

const encoder = new TextEncoder();

function proofMessage(challenge: Uint8Array, binding: Uint8Array): Uint8Array {
  const domain = encoder.encode(KEY_PROOF_DOMAIN);
  const m = new Uint8Array(domain.length + challenge.length + binding.length);
  m.set(domain, 0);
  m.set(challenge, domain.length);
  m.set(binding, domain.length + challenge.length);
  return nacl.hash(m);
}

function checkRequest(request: KeyProofRequest, binding: Uint8Array): void {
  if (!(request.challenge instanceof Uint8Array) || request.challenge.length !== KEY_PROOF_CHALLENGE_BYTES)
    throw new EnclaveError(EnclaveErrorCode.InvalidKey, `a key-proof challenge is ${KEY_PROOF_CHALLENGE_BYTES} bytes`);
  if (!(request.verifierKey instanceof Uint8Array) || request.verifierKey.length !== PUBLIC_KEY_BYTES)
    throw new EnclaveError(EnclaveErrorCode.InvalidKey, `a key-proof verifier key is ${PUBLIC_KEY_BYTES} bytes`);
  if (binding.length > MAX_KEY_PROOF_BINDING_BYTES)
    throw new EnclaveError(
      EnclaveErrorCode.LimitExceeded,
      `a key-proof binding is at most MAX_KEY_PROOF_BINDING_BYTES=${MAX_KEY_PROOF_BINDING_BYTES} bytes`,
    );
}

/** A fresh challenge (random bytes and an ephemeral key pair): one per check, never reused. */
export function createKeyProofChallenge(): KeyProofChallenge {
  const eph = nacl.box.keyPair();
  return {
    request: { challenge: nacl.randomBytes(KEY_PROOF_CHALLENGE_BYTES), verifierKey: eph.publicKey },
    verifierSecret: eph.secretKey,
  };
}

/** The prover's side, for each of `pairs` (the enclave's own key pairs). */
export function proveKeyPossession(
  pairs: readonly BoxKeyPair[],
  request: KeyProofRequest,
  binding: Uint8Array,
): KeyProof[] {
  checkRequest(request, binding);
  const m = proofMessage(request.challenge, binding);
  return pairs.map((pair) => {
    const nonce = nacl.randomBytes(KEY_PROOF_NONCE_BYTES);
    return {
      key: Uint8Array.from(pair.publicKey),
      nonce,
      box: nacl.box(m, nonce, request.verifierKey, pair.secretKey),
    };
  });
}

/**
 * Whether `proof` shows that its sender holds the private half of `key`, for this challenge and
 * binding. Never throws: a malformed proof is false.
 */
export function verifyKeyProof(
  challenge: KeyProofChallenge,
  key: Uint8Array,
  proof: Pick<KeyProof, 'nonce' | 'box'>,
  binding: Uint8Array,
): boolean {
  if (
    key.length !== PUBLIC_KEY_BYTES ||
    proof.nonce.length !== KEY_PROOF_NONCE_BYTES ||
    proof.box.length !== KEY_PROOF_BOX_BYTES ||
    binding.length > MAX_KEY_PROOF_BINDING_BYTES
  )
    return false;
  const opened = nacl.box.open(proof.box, proof.nonce, key, challenge.verifierSecret);
  if (opened === null) return false;
  return bytesEqual(opened, proofMessage(challenge.request.challenge, binding));
}
