// Sealed key files: one at-rest format and one KDF for every private key a node holds — the
// enclave's box keys, and (through node/keys.ts) the account, minter and network-identity keys.
// enclave/ imports nothing of ours, so this module knows only "secret bytes with a purpose and
// some public fields"; the callers own what the bytes mean.
//
// File (JSON, `version: 2`, mode 0600, never overwritten):
//   {
//     "version": 2,
//     "type": "quorate-sealed-key",
//     "purpose": "enclave-box" | "account" | "minter" | "network-identity",
//     "public": { ...fields that are not secret: a public key, an address, a peer id },
//     "kdf": { "name": "scrypt", "logN": 18, "r": 8, "p": 1, "dkLen": 32, "salt": base64(32) },
//     "passwordCheck": base64(32),
//     "cipher": { "name": "xsalsa20-poly1305", "nonce": base64(24), "cipherText": base64 }
//   }
// The KDF parameters live in the file, so a file says how to open it, and the cost can be raised
// for new files while old ones keep opening. `passwordCheck` = SHA3-256("quorate-password-check"
// ‖ derivedKey) tells a wrong password (WrongPassword) from a damaged file (CorruptKeyFile); it
// costs an attacker nothing extra, since testing a guess still costs one full scrypt.
// Version 1 (enclave box keys only, written before this module) is still read.
//
// scrypt is node:crypto's (native, ~10x faster than a JS one at the same cost, so production
// parameters stay affordable at start-up) with `maxmem` passed explicitly: node's default of
// 32 MiB refuses N=2^18, r=8 (256 MiB).

import { randomBytes, scrypt, timingSafeEqual } from 'node:crypto';
import { link, open, readFile, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import nacl from 'tweetnacl';
import { sha3_256 } from '@noble/hashes/sha3.js';
import { EnclaveError, EnclaveErrorCode } from './errors.js';

export const SEALED_FILE_VERSION = 2;
export const SEALED_FILE_TYPE = 'quorate-sealed-key';
/** The type of version-1 files (enclave box keys only). */
export const LEGACY_ENCLAVE_FILE_TYPE = 'quorate-enclave-box-key';

export interface ScryptParams {
  /** log2 of scrypt's CPU/memory cost N. Memory used is 128 * r * 2^logN bytes. */
  readonly logN: number;
  /** Block size. */
  readonly r: number;
  /** Parallelism. */
  readonly p: number;
}

/**
 * Production cost: geth's "standard" scrypt (N = 2^18, r = 8, p = 1): 256 MiB and about
 * 0.5-1 s per file on this project's machines. A node opens its keys once, at start.
 */
export const PRODUCTION_SCRYPT_PARAMS: ScryptParams = { logN: 18, r: 8, p: 1 };
/**
 * The local dev cluster (`quorate init` without --hosts, `quorate up`) and tests: N = 2^14
 * (16 MiB, a few ms). Its password sits in a file next to the keys anyway, so a slow KDF would
 * buy nothing there. Never for a deployment across hosts.
 */
export const DEV_SCRYPT_PARAMS: ScryptParams = { logN: 14, r: 8, p: 1 };
/** What a new file gets when the caller names no parameters. */
export const DEFAULT_SCRYPT_PARAMS: ScryptParams = PRODUCTION_SCRYPT_PARAMS;
/** Cheapest parameters accepted (tests use 2^10). Lower in a file is tampering or corruption. */
export const MIN_SCRYPT_LOG_N = 10;
/** Most expensive parameters accepted when loading: 2^22 * 128 * 8 = 4 GiB. A larger value in a file is corruption, not a setting, and must not exhaust memory. */
export const MAX_SCRYPT_LOG_N = 22;
/** Upper bound on r * p accepted from a file, for the same reason. */
export const MAX_SCRYPT_R_TIMES_P = 64;
/** Largest key file accepted (a valid one is well under 1 KiB); larger is corruption. */
export const MAX_KEY_FILE_BYTES = 16 * 1024;
/** Largest sealed secret (a libp2p Ed25519 key in protobuf is 68 bytes). */
export const MAX_SEALED_SECRET_BYTES = 1024;
/** Headroom over scrypt's 128 * r * N working set for `maxmem` (node counts a little more). */
const SCRYPT_MAXMEM_HEADROOM_BYTES = 32 * 1024 * 1024;

const DERIVED_KEY_BYTES = nacl.secretbox.keyLength;
const SALT_BYTES = 32;
const PASSWORD_CHECK_BYTES = 32;
const PASSWORD_CHECK_CONTEXT = new TextEncoder().encode('quorate-password-check');

/** What a sealed file holds once opened. */
export interface SealedSecret {
  /** What the secret is; a loader checks it is the kind it expects. */
  readonly purpose: string;
  /** Non-secret fields stored in the clear (a public key, an address, a peer id). */
  readonly public: Readonly<Record<string, string>>;
  readonly secret: Uint8Array;
}

interface SealedFileJson {
  version: number;
  type: string;
  purpose?: string;
  public?: Record<string, string>;
  /** Version 1 only. */
  publicKey?: string;
  kdf: { name: 'scrypt'; logN: number; r: number; p: number; dkLen: number; salt: string };
  passwordCheck: string;
  cipher: { name: 'xsalsa20-poly1305'; nonce: string; cipherText: string };
}

function requirePassword(password: string | undefined, path: string): string {
  if (password === undefined || password === '') {
    throw new EnclaveError(
      EnclaveErrorCode.MissingPassword,
      `key file ${path} is sealed and needs the node's password, but none was given (set QUORATE_KEY_PASSWORD or keys.passwordFile)`,
      { path },
    );
  }
  return password;
}

/** The `maxmem` scrypt needs for these parameters (passed explicitly: node's default is 32 MiB). */
export function scryptMaxmemBytes(params: ScryptParams): number {
  return 128 * params.r * 2 ** params.logN * params.p + SCRYPT_MAXMEM_HEADROOM_BYTES;
}

function deriveKey(password: string, salt: Uint8Array, params: ScryptParams): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    scrypt(
      password,
      salt,
      DERIVED_KEY_BYTES,
      { N: 2 ** params.logN, r: params.r, p: params.p, maxmem: scryptMaxmemBytes(params) },
      (error, key) => (error ? reject(error) : resolve(key)),
    );
  });
}

function passwordCheck(derivedKey: Uint8Array): Uint8Array {
  const input = new Uint8Array(PASSWORD_CHECK_CONTEXT.length + derivedKey.length);
  input.set(PASSWORD_CHECK_CONTEXT);
  input.set(derivedKey, PASSWORD_CHECK_CONTEXT.length);
  return sha3_256(input);
}

export function validateScryptParams(params: ScryptParams, path: string, errorCode: EnclaveErrorCode): void {
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

const b64 = (bytes: Uint8Array): string => Buffer.from(bytes).toString('base64');

/** Seals `secret` under `password`: the JSON text of a version-2 key file. */
export async function sealSecret(
  content: SealedSecret,
  password: string,
  params: ScryptParams = DEFAULT_SCRYPT_PARAMS,
): Promise<string> {
  requirePassword(password, '(new key file)');
  validateScryptParams(params, '(new key file)', EnclaveErrorCode.LimitExceeded);
  if (content.secret.length === 0 || content.secret.length > MAX_SEALED_SECRET_BYTES) {
    throw new EnclaveError(
      EnclaveErrorCode.LimitExceeded,
      `a sealed secret is 1..${MAX_SEALED_SECRET_BYTES} bytes (MAX_SEALED_SECRET_BYTES), got ${content.secret.length}`,
    );
  }
  const salt = randomBytes(SALT_BYTES);
  const derived = await deriveKey(password, salt, params);
  try {
    const nonce = nacl.randomBytes(nacl.secretbox.nonceLength);
    const cipherText = nacl.secretbox(content.secret, nonce, derived);
    const json: SealedFileJson = {
      version: SEALED_FILE_VERSION,
      type: SEALED_FILE_TYPE,
      purpose: content.purpose,
      public: { ...content.public },
      kdf: { name: 'scrypt', logN: params.logN, r: params.r, p: params.p, dkLen: DERIVED_KEY_BYTES, salt: b64(salt) },
      passwordCheck: b64(passwordCheck(derived)),
      cipher: { name: 'xsalsa20-poly1305', nonce: b64(nonce), cipherText: b64(cipherText) },
    };
    return JSON.stringify(json, null, 2) + '\n';
  } finally {
    derived.fill(0);
  }
}

function corrupt(path: string, why: string, cause?: unknown): EnclaveError {
  return new EnclaveError(EnclaveErrorCode.CorruptKeyFile, `key file ${path} is corrupt: ${why}`, { path }, { cause });
}

function base64Field(value: unknown, name: string, path: string, expectedBytes?: number): Uint8Array {
  if (typeof value !== 'string' || !/^[A-Za-z0-9+/]*={0,2}$/.test(value)) throw corrupt(path, `${name} is not base64`);
  const bytes = Uint8Array.from(Buffer.from(value, 'base64'));
  if (expectedBytes !== undefined && bytes.length !== expectedBytes)
    throw corrupt(path, `${name} is ${bytes.length} bytes, expected ${expectedBytes}`);
  return bytes;
}

/** The KDF parameters a sealed file's header names (without opening it). */
export function sealedFileParams(text: string, path = '(key file)'): ScryptParams {
  const json = parseHeader(text, path);
  return { logN: json.kdf.logN, r: json.kdf.r, p: json.kdf.p };
}

function parseHeader(text: string, path: string): SealedFileJson {
  let json: SealedFileJson;
  try {
    json = JSON.parse(text) as SealedFileJson;
  } catch (error) {
    throw corrupt(
      path,
      'not valid JSON (a key file from before keys were sealed? re-create it with quorate init)',
      error,
    );
  }
  if (json === null || typeof json !== 'object' || Array.isArray(json)) throw corrupt(path, 'not a JSON object');
  if (json.version === 1) {
    if (json.type !== LEGACY_ENCLAVE_FILE_TYPE)
      throw corrupt(path, `type is ${JSON.stringify(json.type)}, expected ${LEGACY_ENCLAVE_FILE_TYPE}`);
  } else if (json.version === SEALED_FILE_VERSION) {
    if (json.type !== SEALED_FILE_TYPE)
      throw corrupt(path, `type is ${JSON.stringify(json.type)}, expected ${SEALED_FILE_TYPE}`);
  } else {
    throw corrupt(
      path,
      `not a sealed key file (version ${JSON.stringify(json.version)}; this build reads 1 and ${SEALED_FILE_VERSION}). A key file written in the clear by an older quorate must be re-created`,
    );
  }
  const kdf = json.kdf;
  if (kdf === null || typeof kdf !== 'object' || kdf.name !== 'scrypt' || kdf.dkLen !== DERIVED_KEY_BYTES)
    throw corrupt(path, 'kdf must be scrypt with dkLen 32');
  validateScryptParams({ logN: kdf.logN, r: kdf.r, p: kdf.p }, path, EnclaveErrorCode.CorruptKeyFile);
  const cipher = json.cipher;
  if (cipher === null || typeof cipher !== 'object' || cipher.name !== 'xsalsa20-poly1305')
    throw corrupt(path, 'cipher must be xsalsa20-poly1305');
  return json;
}

/**
 * Opens the JSON text of a sealed key file. `path` only names the file in errors; when
 * `expectedPurpose` is given, a file sealing something else is refused (CorruptKeyFile).
 * Throws WrongPassword, MissingPassword or CorruptKeyFile; never returns a wrong secret.
 */
export async function unsealSecret(
  text: string,
  password: string | undefined,
  path = '(key file)',
  expectedPurpose?: string,
): Promise<SealedSecret> {
  const json = parseHeader(text, path);
  let purpose: string;
  let publicFields: Record<string, string>;
  if (json.version === 1) {
    purpose = 'enclave-box';
    if (typeof json.publicKey !== 'string') throw corrupt(path, 'publicKey is missing');
    publicFields = { publicKey: json.publicKey };
  } else {
    if (typeof json.purpose !== 'string') throw corrupt(path, 'purpose is missing');
    purpose = json.purpose;
    const pub = json.public;
    if (pub === null || typeof pub !== 'object' || Array.isArray(pub)) throw corrupt(path, 'public is not an object');
    for (const [k, v] of Object.entries(pub))
      if (typeof v !== 'string') throw corrupt(path, `public.${k} is not a string`);
    publicFields = { ...pub };
  }
  if (expectedPurpose !== undefined && purpose !== expectedPurpose)
    throw corrupt(path, `it seals a ${purpose} key, expected a ${expectedPurpose} key`);
  const salt = base64Field(json.kdf.salt, 'kdf.salt', path, SALT_BYTES);
  const check = base64Field(json.passwordCheck, 'passwordCheck', path, PASSWORD_CHECK_BYTES);
  const nonce = base64Field(json.cipher.nonce, 'cipher.nonce', path, nacl.secretbox.nonceLength);
  const sealed = base64Field(json.cipher.cipherText, 'cipher.cipherText', path);
  if (sealed.length <= nacl.secretbox.overheadLength || sealed.length > MAX_SEALED_SECRET_BYTES + 16)
    throw corrupt(path, `cipher.cipherText is ${sealed.length} bytes`);

  // Only now, with a well-formed file, is a missing password the problem to report.
  const pw = requirePassword(password, path);
  const derived = await deriveKey(pw, salt, { logN: json.kdf.logN, r: json.kdf.r, p: json.kdf.p });
  try {
    if (!timingSafeEqual(passwordCheck(derived), check)) {
      throw new EnclaveError(EnclaveErrorCode.WrongPassword, `wrong password for key file ${path}`, { path });
    }
    const secret = nacl.secretbox.open(sealed, nonce, derived);
    if (secret === null) throw corrupt(path, 'the sealed key fails authentication although the password is right');
    return { purpose, public: publicFields, secret };
  } finally {
    derived.fill(0);
  }
}

/**
 * Writes `text` as a new key file (mode 0600). Refuses to overwrite an existing file
 * (KeyFileExists). Written to a temporary file and fsynced, then hard-linked under the real
 * name — link(2) fails atomically if the name exists, where a rename would silently replace a
 * key — and the directory fsynced, so a crash never leaves a half-written key file.
 */
export async function writeKeyFileExclusive(path: string, text: string): Promise<void> {
  const tmp = `${path}.tmp-${process.pid}-${randomBytes(6).toString('hex')}`;
  const handle = await open(tmp, 'wx', 0o600);
  try {
    // Explicit: open()'s mode is filtered by the umask, which could only remove bits, but a
    // chmod also documents the promise (0600) where it is kept.
    await handle.chmod(0o600);
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
        `key file ${path} already exists; refusing to overwrite it`,
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
}

/** Reads a key file's text, bounded. Throws KeyFileUnreadable or CorruptKeyFile (too large). */
export async function readKeyFileText(path: string): Promise<string> {
  let buffer: Buffer;
  try {
    buffer = await readFile(path);
  } catch (error) {
    throw new EnclaveError(
      EnclaveErrorCode.KeyFileUnreadable,
      `key file ${path} cannot be read (${(error as NodeJS.ErrnoException).code ?? String(error)})`,
      { path },
      { cause: error },
    );
  }
  if (buffer.length > MAX_KEY_FILE_BYTES)
    throw corrupt(path, `${buffer.length} bytes, limit MAX_KEY_FILE_BYTES=${MAX_KEY_FILE_BYTES}`);
  return buffer.toString('utf8');
}

/** Seals and writes a new key file (see writeKeyFileExclusive). */
export async function createSealedFile(
  path: string,
  content: SealedSecret,
  password: string,
  params: ScryptParams = DEFAULT_SCRYPT_PARAMS,
): Promise<void> {
  requirePassword(password, path);
  await writeKeyFileExclusive(path, await sealSecret(content, password, params));
}

/** Reads and opens a sealed key file. */
export async function loadSealedFile(
  path: string,
  password: string | undefined,
  expectedPurpose?: string,
): Promise<SealedSecret> {
  return unsealSecret(await readKeyFileText(path), password, path, expectedPurpose);
}
