// Runs the state storage compliance suite on both KvBackends: the in-memory twin and LevelDB.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { LevelKv, MemoryKv, chainStoreOptionsFromConfig } from '../../node/chain/index.js';
import { stateStoreSuite } from './state-store.suite.js';

const tmpRoot = fs.mkdtempSync(path.join(os.tmpdir(), 'quorate-statestore-'));
afterAll(() => fs.rmSync(tmpRoot, { recursive: true, force: true }));
let dirCounter = 0;

stateStoreSuite('memory', () => {
  const kv = new MemoryKv();
  return { open: async () => kv };
});

stateStoreSuite('level', () => {
  const dir = path.join(tmpRoot, `db-${dirCounter++}`);
  return { open: () => LevelKv.open(dir) };
});

describe('config.json `state` hook', () => {
  it('gives the store options, and refuses a cache under the minimum by name', () => {
    expect(chainStoreOptionsFromConfig()).toEqual({});
    expect(chainStoreOptionsFromConfig({ cacheMaxBytes: 8 * 1024 * 1024 })).toEqual({ stateCacheMaxBytes: 8388608 });
    expect(() => chainStoreOptionsFromConfig({ cacheMaxBytes: 1000 })).toThrow(/state.cacheMaxBytes must be/);
    expect(() => chainStoreOptionsFromConfig({ cacheMaxBytes: '64MiB' })).toThrow(/state.cacheMaxBytes must be/);
    expect(chainStoreOptionsFromConfig({ blockCacheMaxBytes: 0 })).toEqual({ blockCacheMaxBytes: 0 });
    expect(chainStoreOptionsFromConfig({ cacheMaxBytes: 2 * 1024 * 1024, blockCacheMaxBytes: 1024 })).toEqual({
      stateCacheMaxBytes: 2097152,
      blockCacheMaxBytes: 1024,
    });
    expect(() => chainStoreOptionsFromConfig({ blockCacheMaxBytes: -1 })).toThrow(/state.blockCacheMaxBytes must be/);
  });

  it('passes state.maxOpenFiles within LevelDB range, and refuses one LevelDB would clamp', async () => {
    expect(chainStoreOptionsFromConfig({ maxOpenFiles: 500 })).toEqual({ maxOpenFiles: 500 });
    expect(() => chainStoreOptionsFromConfig({ maxOpenFiles: 10 })).toThrow(/state.maxOpenFiles must be .*74..50000/);
    expect(() => chainStoreOptionsFromConfig({ maxOpenFiles: 50_001 })).toThrow(/state.maxOpenFiles/);
    expect(() => chainStoreOptionsFromConfig({ maxOpenFiles: 1.5 })).toThrow(/state.maxOpenFiles/);
    // The chain store opens with it (and with the default): both read and write.
    for (const maxOpenFiles of [undefined, 200]) {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'quorate-maxopen-'));
      try {
        const kv = await LevelKv.open(dir, maxOpenFiles);
        const b = kv.batch();
        b.put(new Uint8Array([1]), new Uint8Array([2]));
        await b.write(true);
        expect(await kv.get(new Uint8Array([1]))).toEqual(new Uint8Array([2]));
        await kv.close();
      } finally {
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
  });
});
