import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { LevelOwedQueue, MemoryOwedQueue, type OwedQueue } from '../../txmanager/index.js';
import { runOwedQueueSuite } from './owed-queue.suite.js';

const dirs: string[] = [];
const paths = new WeakMap<OwedQueue, string>();
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

runOwedQueueSuite('in-memory', { open: async (max) => new MemoryOwedQueue(max) });

runOwedQueueSuite('LevelDB', {
  open: async (max) => {
    const dir = await mkdtemp(join(tmpdir(), 'quorate-owed-'));
    dirs.push(dir);
    const q = await LevelOwedQueue.open(dir, max);
    paths.set(q, dir);
    return q;
  },
  reopen: async (q, max) => {
    const dir = paths.get(q) as string;
    await q.close();
    const again = await LevelOwedQueue.open(dir, max);
    paths.set(again, dir);
    return again;
  },
});
