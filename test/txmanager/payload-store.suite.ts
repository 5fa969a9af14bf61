// Compliance suite for PayloadStore: the LevelDB and the in-memory implementation both pass it.
import { describe, expect, it } from 'vitest';
import {
  MAX_STORE_SCAN_ENTRIES,
  type PayloadStore,
  TxManagerError,
  TxManagerErrorCode,
} from '../../txmanager/index.js';

export interface PayloadStoreHarness {
  /** A fresh, empty store. */
  open(): Promise<PayloadStore>;
  /** Closes `store` and opens the same data again, when the implementation is durable. */
  reopen?(store: PayloadStore): Promise<PayloadStore>;
}

const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values);

export function runPayloadStoreSuite(name: string, harness: PayloadStoreHarness): void {
  describe(`PayloadStore compliance: ${name}`, () => {
    it('absent is undefined / false; put then get returns equal bytes; put replaces', async () => {
      const store = await harness.open();
      expect(await store.get('h1')).toBeUndefined();
      expect(await store.has('h1')).toBe(false);
      await store.put('h1', bytes(1, 2, 3));
      expect(await store.has('h1')).toBe(true);
      expect(await store.get('h1')).toEqual(bytes(1, 2, 3));
      await store.put('h1', bytes(9));
      expect(await store.get('h1')).toEqual(bytes(9));
      await store.close();
    });

    it('returns copies: mutating what was put or got changes nothing stored', async () => {
      const store = await harness.open();
      const value = bytes(1, 2, 3);
      await store.put('h', value);
      value[0] = 99;
      const got = (await store.get('h')) as Uint8Array;
      expect(got).toEqual(bytes(1, 2, 3));
      got[1] = 99;
      expect(await store.get('h')).toEqual(bytes(1, 2, 3));
      await store.close();
    });

    it('delete removes, and is idempotent', async () => {
      const store = await harness.open();
      await store.put('h', bytes(1));
      await store.delete('h');
      await store.delete('h');
      expect(await store.get('h')).toBeUndefined();
      await store.close();
    });

    it('scan pages through every entry in hash order, resuming after a cursor', async () => {
      const store = await harness.open();
      const hashes = ['c', 'a', 'e', 'b', 'd', 'a+/', 'Z'];
      for (const [i, h] of hashes.entries()) await store.put(h, bytes(i));
      const seen: string[] = [];
      let after: string | null = null;
      for (;;) {
        const page = await store.scan(after, 3);
        seen.push(...page.map((e) => e.hash));
        if (page.length < 3) break;
        after = page[page.length - 1].hash;
      }
      expect(seen).toEqual([...hashes].sort());
      const [first] = await store.scan('b', 1);
      expect(first).toEqual({ hash: 'c', encoded: bytes(0) });
      await expect(store.scan(null, MAX_STORE_SCAN_ENTRIES + 1)).rejects.toThrow(/scan limit/);
      await store.close();
    });

    it('a closed store fails with an error instead of answering "absent"', async () => {
      const store = await harness.open();
      await store.put('h', bytes(1));
      await store.close();
      const error = await store.get('h').then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(TxManagerError);
      expect((error as TxManagerError).code).toBe(TxManagerErrorCode.StorageFailure);
    });

    if (harness.reopen !== undefined) {
      const reopen = harness.reopen;
      it('what was put survives close and reopen', async () => {
        const store = await harness.open();
        await store.put('kept', bytes(4, 5));
        await store.put('gone', bytes(6));
        await store.delete('gone');
        const again = await reopen(store);
        expect(await again.get('kept')).toEqual(bytes(4, 5));
        expect(await again.has('gone')).toBe(false);
        await again.close();
      });

      it('many concurrent puts (more than one group commit) all resolve, read back, and survive reopen; the last put of a key wins', async () => {
        const store = await harness.open();
        const n = 600;
        await Promise.all(
          Array.from({ length: n }, (_, i) => store.put(`k${String(i).padStart(4, '0')}`, bytes(i & 0xff, i >> 8))),
        );
        await Promise.all([store.put('same', bytes(1)), store.put('same', bytes(2)), store.put('same', bytes(3))]);
        for (let i = 0; i < n; i += 37)
          expect(await store.get(`k${String(i).padStart(4, '0')}`)).toEqual(bytes(i & 0xff, i >> 8));
        // A put issued right after a group finished still completes (no put is left waiting).
        await store.put('after', bytes(9));
        const again = await reopen(store);
        expect((await again.scan(null, MAX_STORE_SCAN_ENTRIES)).length).toBe(n + 2);
        expect(await again.get('same')).toEqual(bytes(3));
        expect(await again.get('after')).toEqual(bytes(9));
        await again.close();
      });
    }
  });
}
