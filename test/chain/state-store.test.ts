// Runs the state storage compliance suite on both KvBackends: the in-memory twin and LevelDB.
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll } from 'vitest';
import { LevelKv, MemoryKv } from '../../node/chain/index.js';
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
