// Compliance suite for OwedQueue: LevelDB and in-memory.
import { describe, expect, it } from 'vitest';
import { type OwedQueue, TxManagerError, TxManagerErrorCode } from '../../txmanager/index.js';

export interface OwedQueueHarness {
  open(maxEntries: number): Promise<OwedQueue>;
  reopen?(queue: OwedQueue, maxEntries: number): Promise<OwedQueue>;
}

export function runOwedQueueSuite(name: string, harness: OwedQueueHarness): void {
  describe(`OwedQueue compliance: ${name}`, () => {
    it('keeps entries per node, oldest first; add is idempotent; remove forgets', async () => {
      const q = await harness.open(100);
      await q.add('n1', 'h3');
      await q.add('n2', 'h1');
      await q.add('n1', 'h1');
      await q.add('n1', 'h3');
      expect(q.peek('n1', 10)).toEqual(['h3', 'h1']);
      expect(q.peek('n1', 1)).toEqual(['h3']);
      expect(q.size()).toBe(3);
      expect(q.sizeFor('n1')).toBe(2);
      expect(q.nodes().sort()).toEqual(['n1', 'n2']);
      await q.remove('n1', 'h3');
      await q.remove('n1', 'h3');
      expect(q.peek('n1', 10)).toEqual(['h1']);
      await q.remove('n2', 'h1');
      expect(q.nodes()).toEqual(['n1']);
      expect(q.size()).toBe(1);
      await q.close();
    });

    it('is bounded: beyond maxEntries add fails with QueueFull, and room frees up on remove', async () => {
      const q = await harness.open(3);
      await q.add('n', 'a');
      await q.add('n', 'b');
      await q.add('m', 'c');
      const error = await q.add('n', 'd').then(
        () => null,
        (e: unknown) => e,
      );
      expect(error).toBeInstanceOf(TxManagerError);
      expect((error as TxManagerError).code).toBe(TxManagerErrorCode.QueueFull);
      await q.add('n', 'a'); // already owed: not a new entry
      await q.remove('n', 'a');
      await q.add('n', 'd');
      expect(q.peek('n', 10)).toEqual(['b', 'd']);
      await q.close();
    });

    if (harness.reopen !== undefined) {
      const reopen = harness.reopen;
      it('survives close and reopen, in the same order, and keeps adding after it', async () => {
        const q = await harness.open(100);
        for (const h of ['x', 'y', 'z']) await q.add('node-2', h);
        await q.add('node-3', 'y');
        await q.remove('node-2', 'y');
        const again = await reopen(q, 100);
        expect(again.peek('node-2', 10)).toEqual(['x', 'z']);
        expect(again.peek('node-3', 10)).toEqual(['y']);
        await again.add('node-2', 'w');
        expect(again.peek('node-2', 10)).toEqual(['x', 'z', 'w']);
        const third = await reopen(again, 100);
        expect(third.peek('node-2', 10)).toEqual(['x', 'z', 'w']);
        expect(third.size()).toBe(4);
        await third.close();
      });
    }
  });
}
