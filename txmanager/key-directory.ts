// Which enclave public key lives on which node. Fed by the node from the genesis file and the
// replicated membership (every member's keys travel with its membership change), so every
// node knows every key: Tessera's "Recipient not found for key" came from one-sided, slow
// discovery. Lookups of unknown keys are typed errors, never guesses.

import { keyFromBase64 } from '../enclave/index.js';
import { TxManagerError, TxManagerErrorCode } from './errors.js';

/** Most nodes the directory holds: bounds memory and the fan-out of resendAll. */
export const MAX_DIRECTORY_NODES = 1024;
/** Most keys one node may publish (as many as one enclave may hold, enclave/keystore.ts). */
export const MAX_KEYS_PER_NODE = 64;

export interface KeyDirectoryEntry {
  readonly key: string;
  readonly node: string;
}

export class KeyDirectory {
  // Invariant: nodeOfKey and keysOfNode describe the same relation; each key on one node.
  private readonly nodeOfKey = new Map<string, string>();
  private readonly keysOfNode = new Map<string, readonly string[]>();

  /** Replaces the keys of `nodeId` (base64 public keys). Throws InvalidRequest, KeyConflict, LimitExceeded; on error nothing changes. */
  setKeys(nodeId: string, keys: readonly string[]): void {
    if (typeof nodeId !== 'string' || nodeId.length === 0 || nodeId.includes('\u0000')) {
      throw new TxManagerError(
        TxManagerErrorCode.InvalidRequest,
        `node id must be a non-empty string without NUL, got ${JSON.stringify(nodeId)}`,
      );
    }
    if (keys.length > MAX_KEYS_PER_NODE) {
      throw new TxManagerError(
        TxManagerErrorCode.LimitExceeded,
        `node ${nodeId} publishes ${keys.length} keys, limit MAX_KEYS_PER_NODE=${MAX_KEYS_PER_NODE}`,
      );
    }
    if (!this.keysOfNode.has(nodeId) && this.keysOfNode.size >= MAX_DIRECTORY_NODES) {
      throw new TxManagerError(
        TxManagerErrorCode.LimitExceeded,
        `key directory full: MAX_DIRECTORY_NODES=${MAX_DIRECTORY_NODES}`,
      );
    }
    const unique = [...new Set(keys)];
    for (const key of unique) {
      try {
        keyFromBase64(key);
      } catch (error) {
        throw new TxManagerError(
          TxManagerErrorCode.InvalidRequest,
          `node ${nodeId}: ${(error as Error).message}`,
          { nodeId },
          { cause: error },
        );
      }
      const owner = this.nodeOfKey.get(key);
      if (owner !== undefined && owner !== nodeId) {
        throw new TxManagerError(
          TxManagerErrorCode.KeyConflict,
          `key ${key} already belongs to node ${owner}; refusing to assign it to ${nodeId}`,
          { key, owner, nodeId },
        );
      }
    }
    for (const old of this.keysOfNode.get(nodeId) ?? []) this.nodeOfKey.delete(old);
    for (const key of unique) this.nodeOfKey.set(key, nodeId);
    this.keysOfNode.set(nodeId, unique);
  }

  removeNode(nodeId: string): void {
    for (const key of this.keysOfNode.get(nodeId) ?? []) this.nodeOfKey.delete(key);
    this.keysOfNode.delete(nodeId);
  }

  /** The node holding `key`. Throws UnknownRecipientKey. */
  nodeFor(key: string): string {
    const node = this.nodeOfKey.get(key);
    if (node === undefined) {
      throw new TxManagerError(
        TxManagerErrorCode.UnknownRecipientKey,
        `no node is known to hold key ${key} (it is not in genesis or the membership)`,
        { key },
      );
    }
    return node;
  }

  tryNodeFor(key: string): string | undefined {
    return this.nodeOfKey.get(key);
  }

  /** The keys of `nodeId`. Throws UnknownNode. */
  keysOf(nodeId: string): readonly string[] {
    const keys = this.keysOfNode.get(nodeId);
    if (keys === undefined)
      throw new TxManagerError(TxManagerErrorCode.UnknownNode, `node ${nodeId} is not in the key directory`, {
        nodeId,
      });
    return keys;
  }

  hasNode(nodeId: string): boolean {
    return this.keysOfNode.has(nodeId);
  }

  nodes(): string[] {
    return [...this.keysOfNode.keys()];
  }

  entries(): KeyDirectoryEntry[] {
    return [...this.nodeOfKey].map(([key, node]) => ({ key, node }));
  }
}
