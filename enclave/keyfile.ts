// Box key pairs stored sealed at rest under the node's password: a sealed key file
// (sealed.ts) of purpose "enclave-box" whose public part is the box public key (base64) and
// whose secret is the 32-byte box secret key. Version-1 files (the enclave's own format before
// every key was sealed the same way) still open.

import nacl from 'tweetnacl';
import { EnclaveError, EnclaveErrorCode } from './errors.js';
import { bytesEqual, keyToBase64, PUBLIC_KEY_BYTES } from './payload.js';
import {
  DEFAULT_SCRYPT_PARAMS,
  createSealedFile,
  loadSealedFile,
  sealSecret,
  unsealSecret,
  type ScryptParams,
  type SealedSecret,
} from './sealed.js';

export {
  DEFAULT_SCRYPT_PARAMS,
  DEV_SCRYPT_PARAMS,
  MAX_KEY_FILE_BYTES,
  MAX_SCRYPT_LOG_N,
  MAX_SCRYPT_R_TIMES_P,
  MIN_SCRYPT_LOG_N,
  PRODUCTION_SCRYPT_PARAMS,
  type ScryptParams,
} from './sealed.js';

/** The `purpose` of an enclave box key file. */
export const ENCLAVE_KEY_PURPOSE = 'enclave-box';

/** A Curve25519 box key pair. The secret key never leaves enclave/. */
export interface BoxKeyPair {
  readonly publicKey: Uint8Array;
  readonly secretKey: Uint8Array;
}

export function generateBoxKeyPair(): BoxKeyPair {
  const { publicKey, secretKey } = nacl.box.keyPair();
  return { publicKey, secretKey };
}

function content(keyPair: BoxKeyPair): SealedSecret {
  return {
    purpose: ENCLAVE_KEY_PURPOSE,
    public: { publicKey: keyToBase64(keyPair.publicKey) },
    secret: keyPair.secretKey,
  };
}

/** Seals a key pair under a password: the JSON text of a key file. */
export async function sealKeyPair(
  keyPair: BoxKeyPair,
  password: string,
  params: ScryptParams = DEFAULT_SCRYPT_PARAMS,
): Promise<string> {
  return sealSecret(content(keyPair), password, params);
}

function toKeyPair(opened: SealedSecret, path: string): BoxKeyPair {
  const corrupt = (why: string): EnclaveError =>
    new EnclaveError(EnclaveErrorCode.CorruptKeyFile, `enclave key file ${path} is corrupt: ${why}`, { path });
  const publicKey = Uint8Array.from(Buffer.from(opened.public.publicKey ?? '', 'base64'));
  if (publicKey.length !== PUBLIC_KEY_BYTES) throw corrupt(`publicKey is not ${PUBLIC_KEY_BYTES} bytes of base64`);
  if (opened.secret.length !== nacl.box.secretKeyLength)
    throw corrupt(`the sealed secret is ${opened.secret.length} bytes, expected ${nacl.box.secretKeyLength}`);
  const derivedPublic = nacl.box.keyPair.fromSecretKey(opened.secret).publicKey;
  if (!bytesEqual(derivedPublic, publicKey)) throw corrupt('publicKey does not match the sealed secret key');
  return { publicKey, secretKey: opened.secret };
}

/** Opens the JSON text of a key file. `path` only names the file in errors. */
export async function unsealKeyPair(
  text: string,
  password: string | undefined,
  path = '(key file)',
): Promise<BoxKeyPair> {
  return toKeyPair(await unsealSecret(text, password, path, ENCLAVE_KEY_PURPOSE), path);
}

/**
 * Writes a new key file (mode 0600) and returns its public key (base64). Refuses to overwrite
 * an existing file (KeyFileExists); see sealed.ts writeKeyFileExclusive for crash safety.
 */
export async function createKeyFile(
  path: string,
  password: string,
  params: ScryptParams = DEFAULT_SCRYPT_PARAMS,
  keyPair: BoxKeyPair = generateBoxKeyPair(),
): Promise<string> {
  await createSealedFile(path, content(keyPair), password, params);
  return keyToBase64(keyPair.publicKey);
}

/** Reads and opens a key file. Throws WrongPassword, CorruptKeyFile, MissingPassword or KeyFileUnreadable. */
export async function loadKeyFile(path: string, password: string | undefined): Promise<BoxKeyPair> {
  return toKeyPair(await loadSealedFile(path, password, ENCLAVE_KEY_PURPOSE), path);
}
