import { describe, expect, it } from 'vitest';
import { generateBoxKeyPair, keyToBase64 } from '../../enclave/index.js';
import { KeyDirectory, MAX_KEYS_PER_NODE, TxManagerError, TxManagerErrorCode } from '../../txmanager/index.js';

const newKey = (): string => keyToBase64(generateBoxKeyPair().publicKey);

function codeOf(fn: () => unknown): TxManagerErrorCode {
  try {
    fn();
  } catch (error) {
    expect(error).toBeInstanceOf(TxManagerError);
    return (error as TxManagerError).code;
  }
  throw new Error('expected a TxManagerError');
}

describe('KeyDirectory', () => {
  it("maps keys to nodes both ways and replaces a node's keys", () => {
    const dir = new KeyDirectory();
    const [a1, a2, b1] = [newKey(), newKey(), newKey()];
    dir.setKeys('node-a', [a1, a2]);
    dir.setKeys('node-b', [b1]);
    expect(dir.nodeFor(a2)).toBe('node-a');
    expect(dir.keysOf('node-b')).toEqual([b1]);
    dir.setKeys('node-a', [a2]);
    expect(dir.tryNodeFor(a1)).toBeUndefined();
    expect(dir.entries()).toEqual(
      expect.arrayContaining([
        { key: a2, node: 'node-a' },
        { key: b1, node: 'node-b' },
      ]),
    );
    expect(dir.entries()).toHaveLength(2);
  });

  it('unknown keys and nodes are typed errors, never guesses', () => {
    const dir = new KeyDirectory();
    dir.setKeys('node-a', [newKey()]);
    expect(codeOf(() => dir.nodeFor(newKey()))).toBe(TxManagerErrorCode.UnknownRecipientKey);
    expect(codeOf(() => dir.keysOf('node-z'))).toBe(TxManagerErrorCode.UnknownNode);
  });

  it('refuses a key claimed by a second node, invalid keys, and too many keys — changing nothing', () => {
    const dir = new KeyDirectory();
    const shared = newKey();
    dir.setKeys('node-a', [shared]);
    const b = newKey();
    expect(codeOf(() => dir.setKeys('node-b', [b, shared]))).toBe(TxManagerErrorCode.KeyConflict);
    expect(dir.hasNode('node-b')).toBe(false);
    expect(dir.tryNodeFor(b)).toBeUndefined();
    expect(codeOf(() => dir.setKeys('node-b', ['not-a-key']))).toBe(TxManagerErrorCode.InvalidRequest);
    expect(codeOf(() => dir.setKeys('node-b', Array.from({ length: MAX_KEYS_PER_NODE + 1 }, newKey)))).toBe(
      TxManagerErrorCode.LimitExceeded,
    );
    expect(codeOf(() => dir.setKeys('', [b]))).toBe(TxManagerErrorCode.InvalidRequest);
  });

  it('removeNode forgets the node and its keys; the key may then move', () => {
    const dir = new KeyDirectory();
    const k = newKey();
    dir.setKeys('node-a', [k]);
    dir.removeNode('node-a');
    expect(dir.hasNode('node-a')).toBe(false);
    expect(codeOf(() => dir.nodeFor(k))).toBe(TxManagerErrorCode.UnknownRecipientKey);
    dir.setKeys('node-b', [k]);
    expect(dir.nodeFor(k)).toBe('node-b');
    expect(dir.nodes()).toEqual(['node-b']);
  });
});
