// Benchmark: the Raft core over the durable log. 3 and 5 RaftNodes in one process, each on its
// own LevelRaftStorage (sync on, in a temp dir), 100-byte entries, proposals batched at the leader.
// Every Ready is persisted before its messages are delivered (the order documented on Ready), and
// the nodes' writes of one round run concurrently, as separate machines' disks would.
//
// Prints, per cluster size:  raft-level voters=3 entries=N seconds=S entries_per_s=R
// Run: npm run bench:raft-level [-- --entries N --voters 3,5 --batch B --entry-bytes 100]
// Numbers from a shared 2-core machine are orders of magnitude, not promises (STACK.md).

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { bootstrapSnapshot } from '../../consensus/confchange.js';
import {
  RaftNode,
  Role,
  SeededRng,
  type LogIndex,
  type Message,
  type RaftId,
  type Ready,
} from '../../consensus/index.js';
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

interface Member {
  readonly id: RaftId;
  readonly node: RaftNode;
  readonly storage: LevelRaftStorage;
  applied: number;
  snapshotAt: number;
}

/** Each node snapshots (and so compacts its log) after this many applied entries, as a node would. */
const SNAPSHOT_EVERY_ENTRIES = 50_000;
/** A logical tick every this many rounds keeps heartbeats and CheckQuorum in the picture. */
const ROUNDS_PER_TICK = 8;

async function runCluster(o: {
  voters: number;
  entries: number;
  entryBytes: number;
  batchEntries: number;
  seed: number;
  tmpRoot: string;
}): Promise<BenchLevelRaftResult> {
  const root = mkdtempSync(join(o.tmpRoot, 'quorate-bench-raftlog-'));
  const ids = Array.from({ length: o.voters }, (_, i) => (i + 1) as RaftId);
  const members = new Map<RaftId, Member>();
  try {
    for (const id of ids) {
      // Bootstrapped as the node layer does it (node/node.ts): the first snapshot carries the membership.
      const storage = await LevelRaftStorage.init(join(root, `node-${id}`), { raftId: id, clusterId: 'bench' });
      await storage.applySnapshot(bootstrapSnapshot(ids));
      const node = new RaftNode({ id, storage, rng: new SeededRng(o.seed * 100 + id), appliedIndex: 1 as LogIndex });
      members.set(id, { id, storage, node, applied: 1, snapshotAt: 1 });
    }
    const syncedBefore = [...members.values()].reduce((sum, m) => sum + m.storage.stats().syncedBatches, 0);
    const leader = members.get(ids[0])!;
    let inbox: Message[] = [];
    let committed = 0;

    /** One round: every node persists its Ready (concurrently), then messages are delivered. */
    const round = async (): Promise<boolean> => {
      const readies: Array<[Member, Ready]> = [];
      for (const m of members.values()) if (m.node.hasReady()) readies.push([m, m.node.ready()]);
      if (readies.length === 0 && inbox.length === 0) return false;
      await Promise.all(
        readies.map(async ([m, rd]) => {
          if (rd.snapshot) await m.storage.applySnapshot(rd.snapshot);
          // A commit-only Ready (mustSync false) needs no fsync, as in etcd.
          if (rd.hardState || rd.entries.length > 0)
            await m.storage.save(rd.hardState, rd.entries, { sync: rd.mustSync });
        }),
      );
      for (const [m, rd] of readies) {
        inbox.push(...rd.messages);
        if (m === leader) for (const e of rd.committedEntries) if (e.data.length > 0) committed++;
        if (rd.committedEntries.length > 0) m.applied = rd.committedEntries[rd.committedEntries.length - 1].index;
        m.node.advance(rd);
      }
      await Promise.all(
        [...members.values()]
          .filter((m) => m.applied - m.snapshotAt >= SNAPSHOT_EVERY_ENTRIES)
          .map(async (m) => {
            await m.storage.createSnapshot(m.applied as LogIndex, m.node.confState(), new Uint8Array(0));
            m.snapshotAt = m.applied;
          }),
      );
      const deliver = inbox;
      inbox = [];
      for (const msg of deliver) members.get(msg.to)?.node.step(msg);
      return true;
    };

    leader.node.campaign();
    while (leader.node.status().softState.role !== Role.Leader) {
      if (!(await round())) throw new Error('bench: election made no progress');
    }
    while (await round()); // the leader's no-op commits

    const payload = new Uint8Array(o.entryBytes).fill(0x61);
    let proposed = 0;
    let rounds = 0;
    const started = process.hrtime.bigint();
    while (committed < o.entries) {
      const room = Math.min(o.batchEntries, o.entries - proposed);
      for (let i = 0; i < room; i++) leader.node.propose(payload);
      proposed += room;
      if (++rounds % ROUNDS_PER_TICK === 0) for (const m of members.values()) m.node.tick();
      if (!(await round()) && room === 0) throw new Error(`bench: stalled at ${committed} of ${o.entries} committed`);
    }
    const seconds = Number(process.hrtime.bigint() - started) / 1e9;
    // Not timed: let followers catch up, then check every durable log ended the same, so a
    // broken driver cannot print a fast number.
    while (await round());
    const lastIndexes = [...members.values()].map((m) => m.storage.lastIndex());
    if (new Set(lastIndexes).size !== 1 || lastIndexes[0] < o.entries) {
      throw new Error(`bench: logs disagree after the run (lastIndex per node: ${lastIndexes.join(', ')})`);
    }
    const syncedAfter = [...members.values()].reduce((sum, m) => sum + m.storage.stats().syncedBatches, 0);
    return {
      voters: o.voters,
      entries: committed,
      seconds,
      entriesPerSecond: committed / seconds,
      syncedBatches: syncedAfter - syncedBefore,
    };
  } finally {
    for (const m of members.values()) await m.storage.close();
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
