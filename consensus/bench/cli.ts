// Benchmark of the Raft core alone: committed entries per second with every node in this process,
// messages delivered in memory, entries persisted to MemoryStorage (or to a storage given by
// `createStorage`, the hook for the durable LevelDB log). Prints one line per configuration:
//   raft-core voters=3 entries=200000 seconds=1.23 entries_per_s=162000
// Run: npm run bench:raft [-- --entries N --batch B --bytes S]
// Performance is never asserted by tests (STYLE.md): this prints numbers.

import { bootstrapSnapshot } from '../confchange.js';
import { MemoryStorage } from '../memory-storage.js';
import { RaftNode } from '../node.js';
import { SeededRng } from '../rng.js';
import type { WritableStorage } from '../storage.js';
import { Role, type LogIndex, type Message, type RaftId, type Snapshot } from '../types.js';

export interface BenchOptions {
  readonly voters: number;
  /** Entries to commit (beyond the leader's no-op). */
  readonly entries: number;
  /** Proposals per round (one round = propose a batch, then deliver until quiet). */
  readonly batch: number;
  readonly entryBytes: number;
  /** Label printed first (e.g. "raft-core", "raft-level"). */
  readonly label?: string;
  /** The storage of each node; default MemoryStorage. Async storages are awaited per Ready. */
  readonly createStorage?: (id: RaftId, bootstrap: Snapshot) => WritableStorage | Promise<WritableStorage>;
  /** Snapshot and compact every node's log after this many applied entries (bounds memory). */
  readonly compactEveryEntries?: number;
}

export interface BenchResult {
  readonly label: string;
  readonly voters: number;
  readonly entries: number;
  readonly seconds: number;
  readonly entriesPerSecond: number;
}

function isPromise(x: unknown): x is Promise<unknown> {
  return typeof x === 'object' && x !== null && typeof (x as { then?: unknown }).then === 'function';
}

export async function runBench(options: BenchOptions): Promise<BenchResult> {
  const label = options.label ?? 'raft-core';
  const ids = Array.from({ length: options.voters }, (_, i) => (i + 1) as RaftId);
  const boot = bootstrapSnapshot(ids);
  const storages = new Map<RaftId, WritableStorage>();
  const nodes = new Map<RaftId, RaftNode>();
  const applied = new Map<RaftId, number>();
  for (const id of ids) {
    const made = options.createStorage ? options.createStorage(id, boot) : new MemoryStorage({ snapshot: boot });
    const storage = isPromise(made) ? await made : made;
    storages.set(id, storage);
    nodes.set(id, new RaftNode({ id, storage, rng: new SeededRng(id), electionTicks: 10, heartbeatTicks: 1 }));
    applied.set(id, 1);
  }
  const compactEvery = options.compactEveryEntries ?? 50_000;
  const lastCompact = new Map<RaftId, number>(ids.map((id) => [id, 0]));
  let queue: Message[] = [];

  const processNode = async (id: RaftId): Promise<void> => {
    const node = nodes.get(id)!;
    const storage = storages.get(id)!;
    while (node.hasReady()) {
      const rd = node.ready();
      if (rd.snapshot) {
        const r = storage.applySnapshot(rd.snapshot);
        if (isPromise(r)) await r;
      }
      if (rd.hardState || rd.entries.length > 0) {
        const r = storage.save(rd.hardState, rd.entries);
        if (isPromise(r)) await r;
      }
      for (const m of rd.messages) queue.push(m);
      if (rd.committedEntries.length > 0) applied.set(id, rd.committedEntries[rd.committedEntries.length - 1].index);
      node.advance(rd);
      const a = applied.get(id)!;
      if (a - lastCompact.get(id)! >= compactEvery) {
        const r = storage.createSnapshot(a as LogIndex, node.confState(), new Uint8Array(0));
        if (isPromise(r)) await r;
        lastCompact.set(id, a);
      }
    }
  };
  const deliverAll = async (): Promise<void> => {
    for (const id of ids) await processNode(id);
    while (queue.length > 0) {
      const batch = queue;
      queue = [];
      for (const m of batch) {
        nodes.get(m.to)!.step(m);
      }
      // Process each recipient once per wave: its replies to the whole wave go in one Ready.
      for (const id of ids) await processNode(id);
    }
  };

  nodes.get(ids[0])!.campaign();
  await deliverAll();
  const leader = nodes.get(ids[0])!;
  if (leader.status().softState.role !== Role.Leader) throw new Error('bench: node 1 did not become leader');
  const payload = new Uint8Array(options.entryBytes);
  for (let i = 0; i < payload.length; i++) payload[i] = i & 0xff;

  const start = performance.now();
  const startIndex = leader.status().hardState.commit;
  const target = startIndex + options.entries;
  let proposed = 0;
  let rounds = 0;
  while (leader.status().hardState.commit < target || Math.min(...applied.values()) < target) {
    const n = Math.min(options.batch, options.entries - proposed);
    for (let i = 0; i < n; i++) leader.propose(payload);
    proposed += n;
    await deliverAll();
    // A logical tick every few rounds keeps heartbeats and CheckQuorum in the picture.
    if (++rounds % 8 === 0) {
      for (const node of nodes.values()) node.tick();
      await deliverAll();
    }
  }
  const seconds = (performance.now() - start) / 1000;
  const entries = leader.status().hardState.commit - startIndex;
  return { label, voters: options.voters, entries, seconds, entriesPerSecond: entries / seconds };
}

export function formatResult(r: BenchResult): string {
  return `${r.label} voters=${r.voters} entries=${r.entries} seconds=${r.seconds.toFixed(2)} entries_per_s=${Math.round(r.entriesPerSecond)}`;
}

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

async function main(): Promise<void> {
  const entries = arg('entries', 200_000);
  const batch = arg('batch', 64);
  const entryBytes = arg('bytes', 100);
  for (const voters of [3, 5]) {
    const r = await runBench({ voters, entries, batch, entryBytes });
    console.log(formatResult(r));
  }
}

// Run only when executed directly (the storage engineer imports runBench for the LevelDB line).
if (process.argv[1] && import.meta.url === new URL(`file://${process.argv[1]}`).href) {
  await main();
}
