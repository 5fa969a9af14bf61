// `npm run bench:state` end to end at --mib 4: a real 3-node cluster, the fill, the snapshot (when
// this build accepts raft.snapshotEveryEntries), a 4th node joining, and the report. Slow (about a
// minute on a loaded 2-core machine), so it runs only with QUORATE_BENCH_STATE_E2E=1.

import { existsSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MIB, formatStateReport, parseStateBenchArgs, type StateBenchOptions } from '../../bench/state-parts.js';
import { runStateBench } from '../../bench/state.js';

const enabled = process.env.QUORATE_BENCH_STATE_E2E === '1';
if (!enabled)
  process.stdout.write(
    'test/bench/state-e2e.test.ts skipped: it starts 4 node processes for about a minute; set QUORATE_BENCH_STATE_E2E=1 to run it\n',
  );

describe.skipIf(!enabled)('npm run bench:state -- --mib 4 (real processes)', () => {
  it('fills 4 MiB, adds a 4th node that reaches the head, reports every node, and removes the cluster folder', async () => {
    const parent = await mkdtemp(join(tmpdir(), 'quorate-state-e2e-'));
    try {
      const dir = join(parent, 'cluster');
      const o = parseStateBenchArgs(['--mib', '4', '--concurrency', '8', '--dir', dir]) as StateBenchOptions;
      const lines: string[] = [];
      const r = await runStateBench(o, (l) => lines.push(l));
      const report = formatStateReport(r).join('\n');
      process.stdout.write(`${lines.join('\n')}\n${report}\n`);

      expect(r.fill.valueBytes).toBeGreaterThanOrEqual(4 * MIB);
      expect(r.fill.seconds).toBeGreaterThan(0);
      expect(r.targetIndex).toBeGreaterThan(0);
      expect(r.joinToHeadSeconds).toBeGreaterThan(0);
      expect(r.nodes.map((n) => n.name)).toEqual(['node-1', 'node-2', 'node-3', 'node-4']);
      for (const n of r.nodes) {
        // Every node holds the state at least once on disk (LevelDB compresses nothing of it).
        expect(n.dataDirBytes).toBeGreaterThan(4 * MIB);
        if (process.platform === 'linux') expect(n.peakRssBytes).toBeGreaterThan(10 * MIB);
      }
      if (r.snapshotSetting.applied) expect(r.snapshotInstalled).toBeDefined();
      expect(report).toContain('MiB/s');
      // Without --keep the cluster folder is gone, so are its processes (they held it open).
      expect(existsSync(dir)).toBe(false);
    } finally {
      await rm(parent, { recursive: true, force: true });
    }
  }, 400_000);
});
