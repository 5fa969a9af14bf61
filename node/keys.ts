// A node's private keys at rest: creating them sealed (`quorate init`, `add-node`) and opening
// them at start. Every private key file — account.key, minter.key, network.key (the libp2p
// identity) and enclave.key — is a sealed key file (enclave/sealed.ts: scrypt + xsalsa20-poly1305,
// the KDF parameters in the file's header), under ONE password per node.
//
// The password comes from, in order:
//   1. `keys.passwordFile` in config.json (the local dev cluster: node-i/node.password, 0600);
//      `keys.enclave.passwordFile` is read as an alias (configs written before all keys were sealed);
//   2. $QUORATE_KEY_PASSWORD; $QUORATE_ENCLAVE_PASSWORD is read as an alias.
// Both variables are deleted from process.env as soon as they are read, so children the node
// spawns never inherit the password. Without a password the node refuses to start.
//
// Files are created 0600 and the folders holding them 0700; a started node sets its umask to 077,
// so every file its stores create (LevelDB tables, logs) is private to its user as well.

import { randomBytes } from 'node:crypto';
import { chmod, mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import type { PrivateKey } from '@libp2p/interface';
import {
  DEV_SCRYPT_PARAMS,
  EnclaveError,
  EnclaveErrorCode,
  PRODUCTION_SCRYPT_PARAMS,
  createKeyFile,
  createSealedFile,
  loadSealedFile,
  type KeyFileRef,
  type ScryptParams,
} from '../enclave/index.js';
import { accountKeyFromSeed, type AccountKey, type KeyPurpose } from './chain/keys.js';
import type { NodeConfig } from './config.js';

/** The node's password. */
export const KEY_PASSWORD_ENV = 'QUORATE_KEY_PASSWORD';
/** Accepted alias (the enclave key was the only sealed key before). */
export const KEY_PASSWORD_ENV_ALIAS = 'QUORATE_ENCLAVE_PASSWORD';

/** Folder and file modes (owner only). */
export const PRIVATE_DIR_MODE = 0o700;
export const PRIVATE_FILE_MODE = 0o600;
/** The umask a running node sets, so files its stores create are 0600 and folders 0700. */
export const NODE_UMASK = 0o077;

/** `purpose` of each sealed file (enclave-box is enclave/keyfile.ts's). */
export const NETWORK_IDENTITY_PURPOSE = 'network-identity';

/** Which KDF cost to seal new keys with. */
export type KeyProtection = 'dev' | 'production';

export function scryptParamsFor(protection: KeyProtection): ScryptParams {
  return protection === 'dev' ? DEV_SCRYPT_PARAMS : PRODUCTION_SCRYPT_PARAMS;
}

export enum KeyErrorCode {
  /** No password: neither keys.passwordFile nor QUORATE_KEY_PASSWORD. */
  PasswordMissing = 'KEYS_PASSWORD_MISSING',
  /** The password does not open the node's key files. */
  WrongPassword = 'KEYS_WRONG_PASSWORD',
  /** A key file is missing or unreadable. */
  KeyFileUnreadable = 'KEYS_FILE_UNREADABLE',
  /** A key file is damaged, not sealed, or holds another kind of key. */
  KeyFileCorrupt = 'KEYS_FILE_CORRUPT',
}

/** An expected failure to open a node's keys: the node refuses to start with this message. */
export class KeyError extends Error {
  readonly code: KeyErrorCode;
  readonly path: string | undefined;
  constructor(code: KeyErrorCode, message: string, path?: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'KeyError';
    this.code = code;
    this.path = path;
  }
}

function fromEnclaveError(error: unknown): unknown {
  if (!(error instanceof EnclaveError)) return error;
  const path = typeof error.meta.path === 'string' ? error.meta.path : undefined;
  switch (error.code) {
    case EnclaveErrorCode.WrongPassword:
      return new KeyError(
        KeyErrorCode.WrongPassword,
        `${error.message}: the node's password (${KEY_PASSWORD_ENV} or keys.passwordFile) does not open it`,
        path,
        { cause: error },
      );
    case EnclaveErrorCode.MissingPassword:
      return new KeyError(KeyErrorCode.PasswordMissing, error.message, path, { cause: error });
    case EnclaveErrorCode.KeyFileUnreadable:
      return new KeyError(KeyErrorCode.KeyFileUnreadable, error.message, path, { cause: error });
    case EnclaveErrorCode.CorruptKeyFile:
      return new KeyError(KeyErrorCode.KeyFileCorrupt, error.message, path, { cause: error });
    default:
      return error;
  }
}

/**
 * The node's password (see the file comment for where it comes from). Deletes both password
 * variables from `env` (process.env by default) whether or not they were used: children must
 * not inherit them. A trailing newline in the password file is ignored (editors add one).
 */
export async function resolveKeyPassword(
  config: Pick<NodeConfig, 'keys' | 'configPath'>,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  const fromEnv = env[KEY_PASSWORD_ENV] ?? env[KEY_PASSWORD_ENV_ALIAS];
  delete env[KEY_PASSWORD_ENV];
  delete env[KEY_PASSWORD_ENV_ALIAS];
  const file = config.keys.passwordFile ?? config.keys.enclave.passwordFile;
  if (file !== undefined) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new KeyError(
        KeyErrorCode.PasswordMissing,
        `${config.configPath}: keys.passwordFile ${file} cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
        file,
        { cause: err },
      );
    }
    const password = text.replace(/\r?\n$/, '');
    if (password.length === 0)
      throw new KeyError(
        KeyErrorCode.PasswordMissing,
        `${config.configPath}: keys.passwordFile ${file} is empty`,
        file,
      );
    return password;
  }
  if (fromEnv === undefined || fromEnv.length === 0) {
    throw new KeyError(
      KeyErrorCode.PasswordMissing,
      `${config.configPath}: this node's key files are sealed and no password was given: set ${KEY_PASSWORD_ENV} in the node's environment (from a secret store) or keys.passwordFile in its config`,
    );
  }
  return fromEnv;
}

// ------------------------------------------------------------------------- creating keys

/** Creates `dir` (and parents) and makes `dir` itself 0700, whatever the umask. */
export async function mkdirPrivate(dir: string): Promise<void> {
  await mkdir(dir, { recursive: true, mode: PRIVATE_DIR_MODE });
  await chmod(dir, PRIVATE_DIR_MODE);
}

/** Writes a new file 0600 (exclusively: never replaces one). */
export async function writePrivateFile(path: string, text: string): Promise<void> {
  await writeFile(path, text, { mode: PRIVATE_FILE_MODE, flag: 'wx' });
  await chmod(path, PRIVATE_FILE_MODE);
}

/** A fresh 32-byte password for a dev-cluster node (nobody types it; it sits in node.password). */
export function generateDevPassword(): string {
  return randomBytes(32).toString('base64url');
}

async function createAccountKeyFile(
  path: string,
  purpose: KeyPurpose,
  password: string,
  params: ScryptParams,
): Promise<AccountKey> {
  const seed = randomBytes(32);
  const key = accountKeyFromSeed(seed, purpose);
  try {
    await createSealedFile(
      path,
      {
        purpose,
        public: { address: key.address, publicKey: Buffer.from(key.publicKeyRaw).toString('hex') },
        secret: seed,
      },
      password,
      params,
    );
  } finally {
    seed.fill(0);
  }
  return key;
}

async function createNetworkIdentityFile(path: string, password: string, params: ScryptParams): Promise<string> {
  const privateKey = await generateKeyPair('Ed25519');
  const peerId = peerIdFromPrivateKey(privateKey).toString();
  const secret = privateKeyToProtobuf(privateKey);
  try {
    await createSealedFile(path, { purpose: NETWORK_IDENTITY_PURPOSE, public: { peerId }, secret }, password, params);
  } finally {
    secret.fill(0);
  }
  return peerId;
}

export interface NodeKeyFileNames {
  readonly networkIdentity: string;
  readonly nodeSigning: string;
  readonly account: string;
  readonly enclave: string;
}

export interface CreatedNodeKeys {
  readonly peerId: string;
  readonly minter: AccountKey;
  readonly account: AccountKey;
  /** The enclave box public key (base64). */
  readonly enclaveKey: string;
}

/** Creates a node's four sealed key files in `nodeDir` (made 0700), each exclusively. */
export async function createSealedNodeKeys(
  nodeDir: string,
  files: NodeKeyFileNames,
  password: string,
  protection: KeyProtection,
): Promise<CreatedNodeKeys> {
  const params = scryptParamsFor(protection);
  await mkdirPrivate(nodeDir);
  const peerId = await createNetworkIdentityFile(join(nodeDir, files.networkIdentity), password, params);
  const minter = await createAccountKeyFile(join(nodeDir, files.nodeSigning), 'minter', password, params);
  const account = await createAccountKeyFile(join(nodeDir, files.account), 'account', password, params);
  const enclaveKey = await createKeyFile(join(nodeDir, files.enclave), password, params);
  return { peerId, minter, account, enclaveKey };
}

// -------------------------------------------------------------------------- opening keys

async function loadAccountKeyFile(path: string, purpose: KeyPurpose, password: string): Promise<AccountKey> {
  const opened = await loadSealedFile(path, password, purpose);
  try {
    if (opened.secret.length !== 32)
      throw new KeyError(KeyErrorCode.KeyFileCorrupt, `key file ${path}: the sealed seed is not 32 bytes`, path);
    const key = accountKeyFromSeed(opened.secret, purpose);
    if (opened.public.address !== undefined && opened.public.address !== key.address)
      throw new KeyError(KeyErrorCode.KeyFileCorrupt, `key file ${path}: address does not match the sealed key`, path);
    return key;
  } finally {
    opened.secret.fill(0);
  }
}

async function loadNetworkIdentityFile(
  path: string,
  password: string,
): Promise<{ privateKey: PrivateKey; peerId: string }> {
  const opened = await loadSealedFile(path, password, NETWORK_IDENTITY_PURPOSE);
  let privateKey: PrivateKey;
  try {
    privateKey = privateKeyFromProtobuf(opened.secret);
  } catch (err) {
    throw new KeyError(KeyErrorCode.KeyFileCorrupt, `key file ${path}: not a libp2p private key`, path, { cause: err });
  } finally {
    opened.secret.fill(0);
  }
  if (privateKey.type !== 'Ed25519')
    throw new KeyError(
      KeyErrorCode.KeyFileCorrupt,
      `key file ${path} holds a ${privateKey.type} key; quorate uses Ed25519`,
      path,
    );
  const peerId = peerIdFromPrivateKey(privateKey).toString();
  if (opened.public.peerId !== undefined && opened.public.peerId !== peerId)
    throw new KeyError(KeyErrorCode.KeyFileCorrupt, `key file ${path}: peerId does not match the sealed key`, path);
  return { privateKey, peerId };
}

export interface NodeKeys {
  readonly identity: { readonly privateKey: PrivateKey; readonly peerId: string };
  readonly minterKey: AccountKey;
  readonly accountKeys: readonly AccountKey[];
  /**
   * The enclave's key files with the password: the enclave opens them itself (NodePrivacy), so
   * the box secret keys never reach the node layer.
   */
  readonly enclaveKeyFiles: readonly KeyFileRef[];
}

/**
 * Reads the node's password (removing it from the environment) and opens its sealed keys, one
 * file at a time (each unseal uses scrypt's full memory). Throws KeyError with a message that
 * names the file and what to do; never a crash.
 */
export async function loadNodeKeys(config: NodeConfig, env: NodeJS.ProcessEnv = process.env): Promise<NodeKeys> {
  const password = await resolveKeyPassword(config, env);
  try {
    const identity = await loadNetworkIdentityFile(config.keys.networkIdentity, password);
    const minterKey = await loadAccountKeyFile(config.keys.nodeSigning, 'minter', password);
    const accountKeys: AccountKey[] = [];
    for (const path of config.keys.accounts) accountKeys.push(await loadAccountKeyFile(path, 'account', password));
    return { identity, minterKey, accountKeys, enclaveKeyFiles: [{ path: config.keys.enclave.keyFile, password }] };
  } catch (err) {
    throw fromEnclaveError(err);
  }
}

/**
 * Called first thing by a starting node: files and folders its stores create are private.
 * In a worker thread (an embedder's) the umask cannot be set; there the data folder's own 0700
 * (mkdirPrivate) is what keeps other users out.
 */
export function restrictNewFileModes(): void {
  try {
    process.umask(NODE_UMASK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ERR_WORKER_UNSUPPORTED_OPERATION') throw err;
  }
}
