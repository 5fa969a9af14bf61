import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll } from 'vitest';
import { LevelPayloadStore, MemoryPayloadStore, type PayloadStore } from '../../txmanager/index.js';
import { runPayloadStoreSuite } from './payload-store.suite.js';

const dirs: string[] = [];
const paths = new WeakMap<PayloadStore, string>();
afterAll(async () => {
  for (const dir of dirs) await rm(dir, { recursive: true, force: true });
});

runPayloadStoreSuite('in-memory', { open: async () => new MemoryPayloadStore() });

runPayloadStoreSuite('LevelDB', {
  open: async () => {
    const dir = await mkdtemp(join(tmpdir(), 'quorate-store-'));
    dirs.push(dir);
    const store = await LevelPayloadStore.open(dir);
    paths.set(store, dir);
    return store;
  },
  reopen: async (store) => {
    await store.close();
    const again = await LevelPayloadStore.open(paths.get(store) as string);
    return again;
  },
});
