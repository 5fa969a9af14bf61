// Child process for the crash-recovery test: opens (or creates) a LevelRaftStorage in DIR, then
// applies the deterministic history of crash-ops.ts from operation START on, one write at a time,
// printing `ACK n` on stdout once write n is durable. The test SIGKILLs it at a random moment.
//
// Usage: node --import tsx test/raftlog/crash-writer.ts DIR SEED START
import { openOrInit } from '../../node/raftlog/level-storage.js';
import type { RaftId } from '../../consensus/types.js';
import { applyOp, CRASH_CONF, CRASH_RETAIN_ENTRIES, nextOp } from './crash-ops.js';

/** Stops by itself after this many writes if nobody kills it, so a broken test cannot leave it running. */
const MAX_WRITES_PER_RUN = 200_000;

const [dir, seedArg, startArg] = process.argv.slice(2);
const seed = Number(seedArg);
const start = Number(startArg);
const { storage } = await openOrInit(dir, { raftId: 1 as RaftId, clusterId: 'crash-test', confState: CRASH_CONF }, { snapshotRetainEntries: CRASH_RETAIN_ENTRIES });
process.stdout.write('READY\n');
for (let n = start; n < start + MAX_WRITES_PER_RUN; n++) {
  await applyOp(storage, nextOp(seed, n, storage));
  process.stdout.write(`ACK ${n}\n`);
}
await storage.close();
