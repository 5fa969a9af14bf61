import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LevelRaftStorage } from '../../node/raftlog/level-storage.js';
import type { RaftId } from '../../consensus/types.js';
import { describeStorageCompliance } from './storage.suite.js';

describeStorageCompliance('LevelRaftStorage', async ({ confState, snapshotRetainEntries }) => {
  const dir = mkdtempSync(join(tmpdir(), 'quorate-raftlog-'));
  const storage = await LevelRaftStorage.init(join(dir, 'raft'), { raftId: 1 as RaftId, clusterId: 'test-cluster', confState }, { snapshotRetainEntries });
  return {
    storage,
    dispose: async () => {
      await storage.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
});
