// Benchmark: Raft replication over the durable log. 3 and 5 RaftNodes in one process, each on its
// own LevelRaftStorage (in a temp dir), 100-byte entries, proposals batched at the leader. Each
// Ready goes through production's loop body (node/raft/ready.ts via node/raft/bench.ts): fsynced
// only when rd.mustSync, persisted before its messages leave; the nodes' writes of one round run
// concurrently, as separate machines' disks would.
//
// Prints, per cluster size:  raft-level voters=3 entries=N seconds=S entries_per_s=R synced_batches=B
// Run: npm run bench:raft-level [-- --entries N --voters 3,5 --batch B --entry-bytes 100]
// Numbers from a shared 2-core machine are orders of magnitude, not promises (docs/stack.md).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { RaftId, Snapshot, WritableStorage } from '../../consensus/index.js';
import { runRaftBench } from '../raft/bench.js';
import { LevelRaftStorage } from './level-storage.js';

export interface BenchLevelRaftOptions {
  /** Cluster sizes to run, one line each. */
  readonly voters?: readonly number[];
  /** Entries to commit per cluster size. */
  readonly entries?: number;
  /** Data bytes per entry. */
  readonly entryBytes?: number;
  /** Proposals the leader takes per round (one round = one persisted Ready per node). */
  readonly batchEntries?: number;
  readonly seed?: number;
  /** Where the temp directories go (default: the OS temp dir). */
  readonly tmpRoot?: string;
  readonly print?: (line: string) => void;
}

export interface BenchLevelRaftResult {
  readonly voters: number;
  readonly entries: number;
  readonly seconds: number;
  readonly entriesPerSecond: number;
  /** Synced LevelDB batches written, summed over nodes. */
  readonly syncedBatches: number;
}

export const BENCH_DEFAULTS = { voters: [3, 5], entries: 20_000, entryBytes: 100, batchEntries: 256, seed: 1 } as const;

export async function benchLevelRaft(options: BenchLevelRaftOptions = {}): Promise<BenchLevelRaftResult[]> {
  const print = options.print ?? ((line: string) => console.log(line));
  const results: BenchLevelRaftResult[] = [];
  for (const voters of options.voters ?? BENCH_DEFAULTS.voters) {
    const result = await runCluster({
      voters,
      entries: options.entries ?? BENCH_DEFAULTS.entries,
      entryBytes: options.entryBytes ?? BENCH_DEFAULTS.entryBytes,
      batchEntries: options.batchEntries ?? BENCH_DEFAULTS.batchEntries,
      seed: options.seed ?? BENCH_DEFAULTS.seed,
      tmpRoot: options.tmpRoot ?? tmpdir(),
    });
    print(
      `raft-level voters=${result.voters} entries=${result.entries} seconds=${result.seconds.toFixed(2)} ` +
        `entries_per_s=${Math.round(result.entriesPerSecond)} synced_batches=${result.syncedBatches}`,
    );
    results.push(result);
  }
  return results;
}

async function runCluster(o: {
  voters: number;
  entries: number;
  entryBytes: number;
  batchEntries: number;
  seed: number;
  tmpRoot: string;
}): Promise<BenchLevelRaftResult> {
  const root = mkdtempSync(join(o.tmpRoot, 'quorate-bench-raftlog-'));
  const opened: LevelRaftStorage[] = [];
  try {
    // Bootstrapped as the node layer does it: the first snapshot carries the membership.
    const createStorage = async (id: RaftId, boot: Snapshot): Promise<WritableStorage> => {
      const storage = await LevelRaftStorage.init(join(root, `node-${id}`), { raftId: id, clusterId: 'bench' });
      opened.push(storage);
      await storage.applySnapshot(boot);
      return storage;
    };
    const r = await runRaftBench({
      label: 'raft-level',
      voters: o.voters,
      entries: o.entries,
      batchEntries: o.batchEntries,
      entryBytes: o.entryBytes,
      seed: o.seed,
      createStorage,
      syncedBatches: (s) => (s as LevelRaftStorage).stats().syncedBatches,
    });
    return {
      voters: r.voters,
      entries: r.entries,
      seconds: r.seconds,
      entriesPerSecond: r.entriesPerSecond,
      syncedBatches: r.syncedBatches,
    };
  } finally {
    for (const s of opened) await s.close();
    rmSync(root, { recursive: true, force: true });
  }
}

function parseArgs(argv: readonly string[]): BenchLevelRaftOptions {
  const value = (name: string): string | undefined => {
    const i = argv.indexOf(`--${name}`);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  const num = (name: string): number | undefined => {
    const v = value(name);
    if (v === undefined) return undefined;
    const n = Number(v);
    if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`--${name} ${v}: expected a positive integer`);
    return n;
  };
  const voters = value('voters')?.split(',').map(Number);
  return {
    voters,
    entries: num('entries'),
    entryBytes: num('entry-bytes'),
    batchEntries: num('batch'),
    seed: num('seed'),
  };
}

if (process.argv[1] && pathToFileURL(resolve(process.argv[1])).href === import.meta.url) {
  await benchLevelRaft(parseArgs(process.argv.slice(2)));
}
