// Child process for the crash-recovery test: opens (or creates) a LevelRaftStorage in DIR, then
// applies the deterministic history of crash-ops.ts from operation START on, keeping up to INFLIGHT
// writes outstanding (INFLIGHT > 1 exercises group commit: several writes share one batch), and
// prints `ACK n` on stdout once write n is durable. The test SIGKILLs it at a random moment.
// Operation n is computed from the log as it stands after n-1 was issued: LevelRaftStorage applies
// a write to its in-memory view at once, and to the disk in call order.
//
// Usage: node --import tsx test/raftlog/crash-writer.ts DIR SEED START INFLIGHT
import { openOrInit } from '../../node/raftlog/level-storage.js';
import type { RaftId } from '../../consensus/types.js';
import { applyOp, CRASH_CONF, CRASH_RETAIN_ENTRIES, nextOp } from './crash-ops.js';

/** Stops by itself after this many writes if nobody kills it, so a broken test cannot leave it running. */
const MAX_WRITES_PER_RUN = 200_000;
/** ...and after this long, whatever happens. */
const MAX_RUN_MS = 60_000;
setTimeout(() => process.exit(3), MAX_RUN_MS).unref();
// The test talks to us over IPC: when it goes away, so do we.
process.on('disconnect', () => process.exit(4));

const [dir, seedArg, startArg, inflightArg] = process.argv.slice(2);
const seed = Number(seedArg);
const start = Number(startArg);
const inflight = Number(inflightArg ?? 1);
const { storage } = await openOrInit(
  dir,
  { raftId: 1 as RaftId, clusterId: 'crash-test', confState: CRASH_CONF },
  { snapshotRetainEntries: CRASH_RETAIN_ENTRIES },
);
process.stdout.write('READY\n');
const outstanding: Array<Promise<void>> = [];
for (let n = start; n < start + MAX_WRITES_PER_RUN; n++) {
  // Writes become durable in call order; the ACK lines may come out slightly reordered (the
  // promise chains of different operations differ in length), which the test allows for.
  outstanding.push(applyOp(storage, nextOp(seed, n, storage)).then(() => void process.stdout.write(`ACK ${n}\n`)));
  if (outstanding.length >= inflight) await outstanding.shift();
}
await Promise.all(outstanding);
await storage.close();
