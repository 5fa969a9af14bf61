// The default simulator suite: 1,000 seeded schedules (even seeds 3 nodes, odd seeds 5), each a
// fault phase (loss, duplication, delay, partitions, crashes with unsynced-write loss, membership
// changes, transfers, reads, snapshots) then a liveness phase. Zero violations expected. A failure
// prints the seed, the command that reproduces it and the last events of the schedule.
// Longer runs: `npm run sim -- --seeds 100000 --workers 2`.

import { describe, expect, it } from 'vitest';
import { formatFailure, nodesForSeed, runSchedule, type SimResult } from './simulator.js';

const SEEDS = 1000;
const SEEDS_PER_TEST = 100;

describe('seeded Raft simulator: default schedules', () => {
  for (let first = 1; first <= SEEDS; first += SEEDS_PER_TEST) {
    const last = first + SEEDS_PER_TEST - 1;
    it(`seeds ${first}..${last} keep every safety property and recover after healing`, () => {
      const failures: string[] = [];
      let committed = 0;
      let leaders = 0;
      let crashes = 0;
      let partitions = 0;
      let reads = 0;
      let snapshots = 0;
      let confChanges = 0;
      for (let seed = first; seed <= last; seed++) {
        const r: SimResult = runSchedule({ seed, nodes: nodesForSeed(seed) });
        if (r.failure !== undefined) failures.push(formatFailure(r));
        committed += r.stats.committedIndex;
        leaders += r.stats.leadersElected;
        crashes += r.stats.crashes;
        partitions += r.stats.partitions;
        reads += r.stats.readsAnswered;
        snapshots += r.stats.snapshotsInstalled;
        confChanges += r.stats.confChangesApplied;
      }
      expect(failures, failures.join('\n\n')).toEqual([]);
      // The schedules must actually exercise what they claim to (a simulator that commits
      // nothing, or never crashes anything, would pass vacuously).
      expect(committed).toBeGreaterThan(SEEDS_PER_TEST * 20);
      expect(leaders).toBeGreaterThan(SEEDS_PER_TEST);
      expect(crashes).toBeGreaterThan(SEEDS_PER_TEST / 2);
      expect(partitions).toBeGreaterThan(SEEDS_PER_TEST / 2);
      expect(reads).toBeGreaterThan(SEEDS_PER_TEST);
      expect(snapshots).toBeGreaterThan(0);
      expect(confChanges).toBeGreaterThan(SEEDS_PER_TEST / 2);
    });
  }

  it('replays a schedule exactly from its seed', () => {
    const a = runSchedule({ seed: 4242, nodes: 5 });
    const b = runSchedule({ seed: 4242, nodes: 5 });
    expect(b.stats).toEqual(a.stats);
    expect(b.params).toEqual(a.params);
    expect(a.stats.delivered).toBeGreaterThan(1000);
  });
});
