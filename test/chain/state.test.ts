import { describe, expect, it } from 'vitest';
import { shake256 } from '@noble/hashes/sha3.js';
import {
  LTHASH_BYTES,
  LtHash,
  MemoryState,
  StateOverlay,
  expandElement,
  toHex,
  getList,
  getValue,
  stateKeys,
  encodeU64,
  merkleRoot,
  keccak256,
  EMPTY_ROOT,
} from '../../node/chain/index.js';

const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

describe('LtHash', () => {
  it('expansion is standard SHAKE256 (node:crypto agrees with @noble/hashes)', () => {
    const key = enc('v/some key');
    const value = enc('some value');
    const input = new Uint8Array(4 + key.length + value.length);
    new DataView(input.buffer).setUint32(0, key.length);
    input.set(key, 4);
    input.set(value, 4 + key.length);
    const noble = shake256(input, { dkLen: LTHASH_BYTES });
    const ours = expandElement(key, value);
    expect(Uint8Array.from(Buffer.from(ours.buffer, ours.byteOffset, LTHASH_BYTES))).toEqual(Uint8Array.from(noble));
  });

  it('is independent of order, and remove undoes add', () => {
    const a = new LtHash();
    const b = new LtHash();
    const items = Array.from({ length: 20 }, (_, i) => [enc(`k${i}`), enc(`v${i}`)] as const);
    for (const [k, v] of items) a.add(k, v);
    for (const [k, v] of [...items].reverse()) b.add(k, v);
    expect(a.equals(b)).toBe(true);
    expect(toHex(a.root())).toBe(toHex(b.root()));
    a.add(enc('extra'), enc('x'));
    expect(a.equals(b)).toBe(false);
    a.remove(enc('extra'), enc('x'));
    expect(a.equals(b)).toBe(true);
    for (const [k, v] of items) a.remove(k, v);
    expect(a.equals(new LtHash())).toBe(true);
  });

  it('key/value boundaries are part of the element: (ab, c) differs from (a, bc)', () => {
    const a = new LtHash();
    a.add(enc('ab'), enc('c'));
    const b = new LtHash();
    b.add(enc('a'), enc('bc'));
    expect(a.equals(b)).toBe(false);
  });
});

describe('state root over the whole state', () => {
  function history(values: Record<string, string>, order: string[], noise: boolean): MemoryState {
    const s = new MemoryState();
    for (const k of order) {
      const o = new StateOverlay(s);
      if (noise) {
        o.set(stateKeys.value('tmp'), enc('transient'));
        o.set(stateKeys.value(k), enc('old'));
      }
      o.set(stateKeys.value(k), enc(values[k]));
      if (noise) o.delete(stateKeys.value('tmp'));
      s.commit(o);
    }
    return s;
  }

  it('is equal for two states with the same contents built by different histories', () => {
    const values = { a: '1', b: '2', c: '3', d: '4' };
    const s1 = history(values, ['a', 'b', 'c', 'd'], false);
    const s2 = history(values, ['d', 'c', 'b', 'a'], true);
    expect(toHex(s1.root())).toBe(toHex(s2.root()));
    // And equal to a state built in one go.
    const s3 = MemoryState.fromEntries(Object.entries(values).map(([k, v]) => [stateKeys.value(k), enc(v)]));
    expect(toHex(s3.root())).toBe(toHex(s1.root()));
  });

  it('differs when one value differs', () => {
    const s1 = history({ a: '1', b: '2' }, ['a', 'b'], false);
    const s2 = history({ a: '1', b: '3' }, ['a', 'b'], false);
    expect(toHex(s1.root())).not.toBe(toHex(s2.root()));
  });

  it('an overlay root equals the root of the committed result, and nested overlays read through', () => {
    const base = MemoryState.fromEntries([[stateKeys.value('x'), enc('1')]]);
    const o1 = new StateOverlay(base);
    o1.set(stateKeys.value('y'), enc('2'));
    const o2 = o1.child();
    o2.delete(stateKeys.value('x'));
    expect(getValue(o2, 'x')).toBeNull();
    expect(getValue(o2, 'y')).toBe('2');
    expect(getValue(o1, 'x')).toBe('1');
    o2.mergeIntoParent();
    const root = toHex(o1.root());
    base.commit(o1);
    expect(toHex(base.root())).toBe(root);
    expect(toHex(base.root())).toBe(toHex(MemoryState.fromEntries([[stateKeys.value('y'), enc('2')]]).root()));
    expect(() => o1.set('v/z', enc('3'))).toThrow(/sealed/);
  });

  it('lists read back in order', () => {
    const o = new StateOverlay(new MemoryState());
    ['a', 'b', 'c'].forEach((v, i) => o.set(stateKeys.listItem('L', i), enc(v)));
    o.set(stateKeys.listLength('L'), encodeU64(3));
    expect(getList(o, 'L')).toEqual(['a', 'b', 'c']);
    expect(getList(o, 'L', 1, 1)).toEqual(['b']);
    expect(getList(o, 'missing')).toEqual([]);
  });
});

describe('merkle root', () => {
  it('follows the documented construction', () => {
    const h = (n: number): Uint8Array => keccak256(Uint8Array.of(n));
    const node = (l: Uint8Array, r: Uint8Array): Uint8Array => keccak256(Uint8Array.from([1, ...l, ...r]));
    expect(toHex(merkleRoot([]))).toBe(toHex(EMPTY_ROOT));
    expect(toHex(merkleRoot([h(1)]))).toBe(toHex(h(1)));
    const three = node(node(h(1), h(2)), h(3));
    expect(toHex(merkleRoot([h(1), h(2), h(3)]))).toBe(toHex(three));
    const five = node(node(node(h(1), h(2)), node(h(3), h(4))), h(5));
    expect(toHex(merkleRoot([1, 2, 3, 4, 5].map(h)))).toBe(toHex(five));
    // No duplication ambiguity: [a,b,c] and [a,b,c,c] differ.
    expect(toHex(merkleRoot([h(1), h(2), h(3), h(3)]))).not.toBe(toHex(three));
    expect(toHex(merkleRoot([h(2), h(1)]))).not.toBe(toHex(merkleRoot([h(1), h(2)])));
  });
});
