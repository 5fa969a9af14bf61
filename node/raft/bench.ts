// Benchmark of Raft replication through production's loop body: N RaftNodes in one process, each
// Ready handled by processReady (node/raft/ready.ts, the loop RaftDriver runs: persist — fsynced
// only when rd.mustSync —, send, apply, advance), messages delivered in memory, 100-byte entries
// proposed in batches at the leader. The storage is a parameter: MemoryStorage here (the core's
// cost), LevelRaftStorage in node/raftlog/bench.ts (the durable log's cost).
//
// One round = every node with a Ready processes it, concurrently (as separate machines' disks
// would), then every message sent in the round is delivered. Prints one line per cluster size:
//   raft-core voters=3 entries=200000 seconds=1.23 entries_per_s=162000 synced_batches=0
// Run: npm run bench:raft [-- --entries N --batch B --bytes S]
// Performance is never asserted by tests (docs/design.md): this prints numbers. Numbers from a shared
// 2-core machine are orders of magnitude, not promises (docs/stack.md).

import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import {
  bootstrapSnapshot,
  RaftNode,
  Role,
  SeededRng,
  type LogIndex,
  type Message,
  type RaftId,
  type Snapshot,
  type WritableStorage,
} from '../../consensus/index.js';
import { MemoryStorage } from '../../consensus/memory-storage.js';
import { SystemClock } from '../clock.js';
import { processReady } from './ready.js';

export interface RaftBenchOptions {
  readonly voters: number;
  /** Entries to commit (beyond the leader's no-op). */
  readonly entries: number;
  /** Proposals the leader takes per round. */
  readonly batchEntries: number;
  readonly entryBytes: number;
  /** Printed first (e.g. "raft-core", "raft-level"). */
  readonly label: string;
  readonly seed?: number;
  /** Each node's log storage, holding the bootstrap snapshot; default MemoryStorage. */
  readonly createStorage?: (id: RaftId, bootstrap: Snapshot) => WritableStorage | Promise<WritableStorage>;
  /** Counts synced batches written so far by one storage (for the durable log); default none. */
  readonly syncedBatches?: (storage: WritableStorage) => number;
  /** Snapshot and compact each node's log after this many applied entries (bounds memory). */
  readonly snapshotEveryEntries?: number;
}

export interface RaftBenchResult {
  readonly label: string;
  readonly voters: number;
  readonly entries: number;
  readonly seconds: number;
  readonly entriesPerSecond: number;
  /** Synced storage batches during the timed part, summed over nodes (0 when not counted). */
  readonly syncedBatches: number;
}

export const RAFT_BENCH_DEFAULTS = { entries: 200_000, batchEntries: 64, entryBytes: 100, seed: 1 } as const;
/** Each node snapshots (and so compacts its log) after this many applied entries, as a node would. */
const DEFAULT_SNAPSHOT_EVERY_ENTRIES = 50_000;
/** A logical tick every this many rounds keeps heartbeats and CheckQuorum in the picture. */
const ROUNDS_PER_TICK = 8;

interface Member {
  readonly id: RaftId;
  readonly node: RaftNode;
  readonly storage: WritableStorage;
  applied: number;
  snapshotAt: number;
}

/** Runs one cluster; the caller closes the durable storages its createStorage opened. */
export async function runRaftBench(o: RaftBenchOptions): Promise<RaftBenchResult> {
  const clock = new SystemClock();
  const ids = Array.from({ length: o.voters }, (_, i) => (i + 1) as RaftId);
  const boot = bootstrapSnapshot(ids);
  const members = new Map<RaftId, Member>();
  const snapshotEvery = o.snapshotEveryEntries ?? DEFAULT_SNAPSHOT_EVERY_ENTRIES;
  for (const id of ids) {
    const storage = o.createStorage ? await o.createStorage(id, boot) : new MemoryStorage({ snapshot: boot });
    const rng = new SeededRng((o.seed ?? RAFT_BENCH_DEFAULTS.seed) * 100 + id);
    const node = new RaftNode({ id, storage, rng, electionTicks: 10, heartbeatTicks: 1, appliedIndex: 1 as LogIndex });
    members.set(id, { id, storage, node, applied: 1, snapshotAt: 1 });
  }
  const storages = [...members.values()].map((m) => m.storage);
  const synced = (): number => storages.reduce((sum, s) => sum + (o.syncedBatches?.(s) ?? 0), 0);
  const leader = members.get(ids[0])!;
  let inbox: Message[] = [];
  let committed = 0;

  const processMember = (m: Member): boolean | Promise<boolean> =>
    processReady(m.node, m.node.ready(), {
      storage: m.storage,
      send: (msg) => {
        inbox.push(msg);
      },
      restore: () => undefined, // the bench's state machine is the applied index alone
      apply: (entries) => {
        if (m === leader) for (const e of entries) if (e.data.length > 0) committed++;
        m.applied = entries[entries.length - 1].index;
      },
      afterAdvance: () => {
        if (m.applied - m.snapshotAt < snapshotEvery) return;
        m.snapshotAt = m.applied;
        const made = m.storage.createSnapshot(m.applied as LogIndex, m.node.confState(), new Uint8Array(0));
        return made instanceof Promise ? made.then(() => undefined) : undefined;
      },
    });

  /** One round: every node processes its Ready (concurrently), then messages are delivered. */
  const round = async (): Promise<boolean> => {
    const busy = [...members.values()].filter((m) => m.node.hasReady());
    if (busy.length === 0 && inbox.length === 0) return false;
    const pending = busy.map(processMember).filter((r) => typeof r !== 'boolean');
    if (pending.length > 0) await Promise.all(pending);
    const deliver = inbox;
    inbox = [];
    for (const msg of deliver) members.get(msg.to)?.node.step(msg);
    return true;
  };

  leader.node.campaign();
  while (leader.node.basicStatus().softState.role !== Role.Leader) {
    if (!(await round())) throw new Error('bench: election made no progress');
  }
  while (await round()); // the leader's no-op commits

  const payload = new Uint8Array(o.entryBytes).fill(0x61);
  const syncedBefore = synced();
  let proposed = 0;
  let rounds = 0;
  const startedMs = clock.monotonicMs();
  while (committed < o.entries) {
    const room = Math.min(o.batchEntries, o.entries - proposed);
    for (let i = 0; i < room; i++) leader.node.propose(payload);
    proposed += room;
    if (++rounds % ROUNDS_PER_TICK === 0) for (const m of members.values()) m.node.tick();
    if (!(await round()) && room === 0) throw new Error(`bench: stalled at ${committed} of ${o.entries} committed`);
  }
  const seconds = (clock.monotonicMs() - startedMs) / 1000;
  const syncedBatches = synced() - syncedBefore;
  // Not timed: let followers catch up, then check every log ended the same, so a broken loop
  // cannot print a fast number.
  while (await round());
  const lastIndexes = [...members.values()].map((m) => m.storage.lastIndex());
  if (new Set(lastIndexes).size !== 1 || lastIndexes[0] < o.entries) {
    throw new Error(`bench: logs disagree after the run (lastIndex per node: ${lastIndexes.join(', ')})`);
  }
  return {
    label: o.label,
    voters: o.voters,
    entries: committed,
    seconds,
    entriesPerSecond: committed / seconds,
    syncedBatches,
  };
}

export function formatRaftBench(r: RaftBenchResult): string {
  return (
    `${r.label} voters=${r.voters} entries=${r.entries} seconds=${r.seconds.toFixed(2)} ` +
    `entries_per_s=${Math.round(r.entriesPerSecond)} synced_batches=${r.syncedBatches}`
  );
}

function arg(argv: readonly string[], name: string, fallback: number): number {
  const i = argv.indexOf(`--${name}`);
  if (i < 0) return fallback;
  const n = Number(argv[i + 1]);
  if (!Number.isSafeInteger(n) || n <= 0) throw new Error(`--${name} ${argv[i + 1]}: expected a positive integer`);
  return n;
}

if (process.argv[1] && pathToFileURL(resolve(process.argv[1])).href === import.meta.url) {
  const argv = process.argv.slice(2);
  for (const voters of [3, 5]) {
    const r = await runRaftBench({
      label: 'raft-core',
      voters,
      entries: arg(argv, 'entries', RAFT_BENCH_DEFAULTS.entries),
      batchEntries: arg(argv, 'batch', RAFT_BENCH_DEFAULTS.batchEntries),
      entryBytes: arg(argv, 'bytes', RAFT_BENCH_DEFAULTS.entryBytes),
    });
    console.log(formatRaftBench(r));
  }
}
