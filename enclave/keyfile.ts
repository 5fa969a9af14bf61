// Box key pairs stored encrypted at rest under a password.
//
// Key file (JSON, `version: 1`):
//   {
//     "version": 1,
//     "type": "quorate-enclave-box-key",
//     "publicKey": base64(32),
//     "kdf": { "name": "scrypt", "logN": 16, "r": 8, "p": 1, "dkLen": 32, "salt": base64(32) },
//     "passwordCheck": base64(32),
//     "cipher": { "name": "xsalsa20-poly1305", "nonce": base64(24), "cipherText": base64(48) }
//   }
// The KDF parameters live in the file, so they can be raised for new keys while old files
// keep opening. `passwordCheck` = SHA3-256("quorate-password-check" ‖ derivedKey): it lets a
// wrong password (WrongPassword) be told apart from a damaged file (CorruptKeyFile), which an
// AEAD alone cannot do. It costs an attacker nothing extra: checking a guess still costs one
// full scrypt, and the check is a one-way function of the derived key.

import { randomBytes } from 'node:crypto';
import { link, open, readFile, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import nacl from 'tweetnacl';
import { scryptAsync } from '@noble/hashes/scrypt.js';
import { sha3_256 } from '@noble/hashes/sha3.js';
import { EnclaveError, EnclaveErrorCode } from './errors.js';
import { bytesEqual, keyToBase64, PUBLIC_KEY_BYTES } from './payload.js';

export const KEY_FILE_VERSION = 1;
export const KEY_FILE_TYPE = 'quorate-enclave-box-key';

export interface ScryptParams {
  /** log2 of scrypt's CPU/memory cost N. Memory used is 128 * r * 2^logN bytes. */
  readonly logN: number;
  /** Block size. */
  readonly r: number;
  /** Parallelism. */
  readonly p: number;
}

/**
 * Default cost for new key files: N = 2^16, r = 8 → 64 MiB and ~0.5 s per unlock on this
 * project's machines (measured). Above the 2^15 the scrypt paper gives for interactive
 * logins, since a node unlocks its key once at start. Raise logN for new files; old files
 * carry their own parameters.
 */
export const DEFAULT_SCRYPT_PARAMS: ScryptParams = { logN: 16, r: 8, p: 1 };
/** Cheapest parameters accepted when creating or loading (refuses files weakened by tampering). */
export const MIN_SCRYPT_LOG_N = 10;
/** Most expensive parameters accepted when loading: 2^22 * 128 * 8 = 4 GiB. A larger value in a file is corruption, not a setting, and must not exhaust memory. */
export const MAX_SCRYPT_LOG_N = 22;
/** Upper bound on r * p accepted from a file, for the same reason. */
export const MAX_SCRYPT_R_TIMES_P = 64;
/** Largest key file accepted (a valid one is ~400 bytes); larger is corruption. */
export const MAX_KEY_FILE_BYTES = 16 * 1024;

const DERIVED_KEY_BYTES = nacl.secretbox.keyLength;
const SALT_BYTES = 32;
const PASSWORD_CHECK_CONTEXT = new TextEncoder().encode('quorate-password-check');

/** A Curve25519 box key pair. The secret key never leaves enclave/. */
export interface BoxKeyPair {
  readonly publicKey: Uint8Array;
  readonly secretKey: Uint8Array;
}

export function generateBoxKeyPair(): BoxKeyPair {
  const { publicKey, secretKey } = nacl.box.keyPair();
  return { publicKey, secretKey };
}

interface KeyFileJson {
  version: number;
  type: string;
  publicKey: string;
  kdf: { name: 'scrypt'; logN: number; r: number; p: number; dkLen: number; salt: string };
  passwordCheck: string;
  cipher: { name: 'xsalsa20-poly1305'; nonce: string; cipherText: string };
}

function requirePassword(password: string | undefined, path: string): string {
  if (password === undefined || password === '') {
    throw new EnclaveError(
      EnclaveErrorCode.MissingPassword,
      `enclave key file ${path} is encrypted and needs a password, but none was given (set it in the node's config or its password file)`,
      { path },
    );
  }
  return password;
}

async function deriveKey(password: string, salt: Uint8Array, params: ScryptParams): Promise<Uint8Array> {
  const N = 2 ** params.logN;
  return scryptAsync(password, salt, {
    N,
    r: params.r,
    p: params.p,
    dkLen: DERIVED_KEY_BYTES,
    maxmem: 128 * params.r * N * params.p + 128 * params.r * (N + 2) + 1024 * 1024,
  });
}

function passwordCheck(derivedKey: Uint8Array): Uint8Array {
  const input = new Uint8Array(PASSWORD_CHECK_CONTEXT.length + derivedKey.length);
  input.set(PASSWORD_CHECK_CONTEXT);
  input.set(derivedKey, PASSWORD_CHECK_CONTEXT.length);
  return sha3_256(input);
}

function validateParams(params: ScryptParams, path: string, errorCode: EnclaveErrorCode): void {
  const ok =
    Number.isInteger(params.logN) &&
    params.logN >= MIN_SCRYPT_LOG_N &&
    params.logN <= MAX_SCRYPT_LOG_N &&
    Number.isInteger(params.r) &&
    params.r >= 1 &&
    Number.isInteger(params.p) &&
    params.p >= 1 &&
    params.r * params.p <= MAX_SCRYPT_R_TIMES_P;
  if (!ok) {
    throw new EnclaveError(
      errorCode,
      `scrypt parameters out of range in ${path}: logN=${params.logN} (allowed ${MIN_SCRYPT_LOG_N}..${MAX_SCRYPT_LOG_N}), r=${params.r}, p=${params.p} (r*p <= ${MAX_SCRYPT_R_TIMES_P})`,
      { path },
    );
  }
}

/** Seals a key pair under a password: the JSON text of a key file. */
export async function sealKeyPair(
  keyPair: BoxKeyPair,
  password: string,
  params: ScryptParams = DEFAULT_SCRYPT_PARAMS,
): Promise<string> {
  requirePassword(password, '(new key file)');
  validateParams(params, '(new key file)', EnclaveErrorCode.LimitExceeded);
  const salt = randomBytes(SALT_BYTES);
  const derived = await deriveKey(password, salt, params);
  const nonce = nacl.randomBytes(nacl.secretbox.nonceLength);
  const cipherText = nacl.secretbox(keyPair.secretKey, nonce, derived);
  const json: KeyFileJson = {
    version: KEY_FILE_VERSION,
    type: KEY_FILE_TYPE,
    publicKey: keyToBase64(keyPair.publicKey),
    kdf: {
      name: 'scrypt',
      logN: params.logN,
      r: params.r,
      p: params.p,
      dkLen: DERIVED_KEY_BYTES,
      salt: keyToBase64(salt),
    },
    passwordCheck: keyToBase64(passwordCheck(derived)),
    cipher: { name: 'xsalsa20-poly1305', nonce: keyToBase64(nonce), cipherText: keyToBase64(cipherText) },
  };
  derived.fill(0);
  return JSON.stringify(json, null, 2) + '\n';
}

function corrupt(path: string, why: string, cause?: unknown): EnclaveError {
  return new EnclaveError(
    EnclaveErrorCode.CorruptKeyFile,
    `enclave key file ${path} is corrupt: ${why}`,
    { path },
    { cause },
  );
}

function base64Field(value: unknown, expectedBytes: number, name: string, path: string): Uint8Array {
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) throw corrupt(path, `${name} is not base64`);
  const bytes = Uint8Array.from(Buffer.from(value, 'base64'));
  if (bytes.length !== expectedBytes)
    throw corrupt(path, `${name} is ${bytes.length} bytes, expected ${expectedBytes}`);
  return bytes;
}

/** Opens the JSON text of a key file. `path` only names the file in errors. */
export async function unsealKeyPair(
  text: string,
  password: string | undefined,
  path = '(key file)',
): Promise<BoxKeyPair> {
  let json: KeyFileJson;
  try {
    json = JSON.parse(text) as KeyFileJson;
  } catch (error) {
    throw corrupt(path, 'not valid JSON', error);
  }
  if (json === null || typeof json !== 'object') throw corrupt(path, 'not a JSON object');
  if (json.version !== KEY_FILE_VERSION)
    throw corrupt(
      path,
      `unknown version ${JSON.stringify(json.version)} (this build reads version ${KEY_FILE_VERSION})`,
    );
  if (json.type !== KEY_FILE_TYPE)
    throw corrupt(path, `type is ${JSON.stringify(json.type)}, expected ${KEY_FILE_TYPE}`);
  const kdf = json.kdf;
  if (kdf === null || typeof kdf !== 'object' || kdf.name !== 'scrypt' || kdf.dkLen !== DERIVED_KEY_BYTES)
    throw corrupt(path, 'kdf must be scrypt with dkLen 32');
  const params: ScryptParams = { logN: kdf.logN, r: kdf.r, p: kdf.p };
  validateParams(params, path, EnclaveErrorCode.CorruptKeyFile);
  const cipher = json.cipher;
  if (cipher === null || typeof cipher !== 'object' || cipher.name !== 'xsalsa20-poly1305')
    throw corrupt(path, 'cipher must be xsalsa20-poly1305');
  const publicKey = base64Field(json.publicKey, PUBLIC_KEY_BYTES, 'publicKey', path);
  const salt = base64Field(kdf.salt, SALT_BYTES, 'kdf.salt', path);
  const check = base64Field(json.passwordCheck, 32, 'passwordCheck', path);
  const nonce = base64Field(cipher.nonce, nacl.secretbox.nonceLength, 'cipher.nonce', path);
  const sealed = base64Field(
    cipher.cipherText,
    nacl.box.secretKeyLength + nacl.secretbox.overheadLength,
    'cipher.cipherText',
    path,
  );

  // Only now, with a well-formed file, is a missing password the problem to report.
  const pw = requirePassword(password, path);
  const derived = await deriveKey(pw, salt, params);
  try {
    if (!bytesEqual(passwordCheck(derived), check)) {
      throw new EnclaveError(EnclaveErrorCode.WrongPassword, `wrong password for enclave key file ${path}`, { path });
    }
    const secretKey = nacl.secretbox.open(sealed, nonce, derived);
    if (secretKey === null) throw corrupt(path, 'the sealed key fails authentication although the password is right');
    const derivedPublic = nacl.box.keyPair.fromSecretKey(secretKey).publicKey;
    if (!bytesEqual(derivedPublic, publicKey)) throw corrupt(path, 'publicKey does not match the sealed secret key');
    return { publicKey, secretKey };
  } finally {
    derived.fill(0);
  }
}

/**
 * Writes a new key file (mode 0600) and returns its public key (base64). Refuses to overwrite
 * an existing file (KeyFileExists). Written to a temporary file and fsynced, then hard-linked
 * under the real name — link(2) fails atomically if the name exists, where a rename would
 * silently replace a key — and the directory fsynced, so a crash never leaves a half-written
 * key file under the real name.
 */
export async function createKeyFile(
  path: string,
  password: string,
  params: ScryptParams = DEFAULT_SCRYPT_PARAMS,
  keyPair: BoxKeyPair = generateBoxKeyPair(),
): Promise<string> {
  requirePassword(password, path);
  const text = await sealKeyPair(keyPair, password, params);
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  const handle = await open(tmp, 'wx', 0o600);
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
  try {
    await link(tmp, path);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new EnclaveError(
        EnclaveErrorCode.KeyFileExists,
        `enclave key file ${path} already exists; refusing to overwrite it`,
        { path },
      );
    }
    throw error;
  } finally {
    await unlink(tmp).catch(() => undefined);
  }
  const dir = await open(dirname(path), 'r');
  try {
    await dir.sync();
  } finally {
    await dir.close();
  }
  return keyToBase64(keyPair.publicKey);
}

/** Reads and opens a key file. Throws WrongPassword, CorruptKeyFile, MissingPassword or KeyFileUnreadable. */
export async function loadKeyFile(path: string, password: string | undefined): Promise<BoxKeyPair> {
  let buffer: Buffer;
  try {
    buffer = await readFile(path);
  } catch (error) {
    throw new EnclaveError(
      EnclaveErrorCode.KeyFileUnreadable,
      `enclave key file ${path} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
      { path },
      { cause: error },
    );
  }
  if (buffer.length > MAX_KEY_FILE_BYTES)
    throw corrupt(path, `${buffer.length} bytes, limit MAX_KEY_FILE_BYTES=${MAX_KEY_FILE_BYTES}`);
  return unsealKeyPair(buffer.toString('utf8'), password, path);
}
