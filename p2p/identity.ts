// The node's network identity: an Ed25519 libp2p key, stored protobuf-marshalled (the format
// of libp2p's keychain and of go-libp2p's `identity` files), readable by its owner only.
// The peer id derived from it is the node's name in the allowlist of every other member, so
// the file is never overwritten: a new key would lock this node out of its own cluster.

import { constants as fsConstants } from 'node:fs';
import { mkdir, open, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import { peerIdFromPrivateKey } from '@libp2p/peer-id';
import type { PrivateKey } from '@libp2p/interface';
import { P2pError, P2pErrorCode } from './errors.js';

/** A marshalled Ed25519 key is 68 bytes; anything far larger is not a key file. */
export const MAX_IDENTITY_FILE_BYTES = 4096;

/** Owner read/write only: the key authenticates the node to the whole cluster. */
export const IDENTITY_FILE_MODE = 0o600;

export interface NetworkIdentity {
  readonly privateKey: PrivateKey;
  /** Base58 peer id (12D3KooW...). */
  readonly peerId: string;
}

/**
 * Writes a fresh Ed25519 key to `path` (mode 0600) and returns its peer id.
 * Refuses to overwrite: fails with P2pErrorCode.IdentityExists when the file exists.
 */
export async function createNetworkIdentity(path: string): Promise<{ peerId: string }> {
  const privateKey = await generateKeyPair('Ed25519');
  const bytes = privateKeyToProtobuf(privateKey);
  await mkdir(dirname(path), { recursive: true });
  let handle;
  try {
    // O_EXCL makes "exists?" and "create" one atomic step: two concurrent inits cannot both win.
    handle = await open(path, fsConstants.O_WRONLY | fsConstants.O_CREAT | fsConstants.O_EXCL, IDENTITY_FILE_MODE);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new P2pError(
        P2pErrorCode.IdentityExists,
        `network identity ${path} already exists; refusing to overwrite it`,
        { path },
      );
    }
    throw err;
  }
  try {
    await handle.writeFile(bytes);
    // The key must survive a crash right after init: a node that restarts with a new key is a stranger.
    await handle.sync();
  } finally {
    await handle.close();
  }
  return { peerId: peerIdFromPrivateKey(privateKey).toString() };
}

/** Reads the key written by createNetworkIdentity(). Typed errors for a missing or corrupt file. */
export async function loadNetworkIdentity(path: string): Promise<NetworkIdentity> {
  let bytes: Buffer;
  try {
    bytes = await readFile(path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new P2pError(
        P2pErrorCode.IdentityMissing,
        `network identity ${path} does not exist`,
        { path },
        { cause: err },
      );
    }
    throw err;
  }
  if (bytes.byteLength === 0 || bytes.byteLength > MAX_IDENTITY_FILE_BYTES) {
    throw new P2pError(
      P2pErrorCode.IdentityCorrupt,
      `network identity ${path} has ${bytes.byteLength} bytes; not a key file`,
      {
        path,
        bytes: bytes.byteLength,
      },
    );
  }
  let privateKey: PrivateKey;
  try {
    privateKey = privateKeyFromProtobuf(bytes);
  } catch (err) {
    throw new P2pError(
      P2pErrorCode.IdentityCorrupt,
      `network identity ${path} is not a protobuf-marshalled libp2p key`,
      { path },
      { cause: err },
    );
  }
  if (privateKey.type !== 'Ed25519') {
    throw new P2pError(
      P2pErrorCode.IdentityCorrupt,
      `network identity ${path} holds a ${privateKey.type} key; quorate uses Ed25519`,
      {
        path,
        type: privateKey.type,
      },
    );
  }
  return { privateKey, peerId: peerIdFromPrivateKey(privateKey).toString() };
}
