// Crash recovery of the LevelDB Raft log: a child process writes a deterministic history
// (crash-ops.ts) and prints `ACK n` once write n is durable; the test SIGKILLs it at a seeded
// random moment, reopens the log and checks that it holds exactly the state after the last
// acknowledged write, or after some of the writes that were in flight (whole, in order) — never
// less, never a torn mix. Half the rounds keep 8 writes in flight so kills land in group commits.
// Several rounds run on the same directory, each continuing where the recovered log stands.

import { fork } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { MemoryStorage } from '../../consensus/memory-storage.js';
import { SeededRng } from '../../consensus/rng.js';
import { LevelRaftStorage } from '../../node/raftlog/level-storage.js';
import { applyOp, CRASH_CONF, CRASH_RETAIN_ENTRIES, logState, nextOp } from './crash-ops.js';

const SEED = Number(process.env.RAFTLOG_CRASH_SEED ?? 424242);
const ROUNDS = 6;
/** Kill this long after the writer is ready (ms): long enough for hundreds of writes, seeded. */
const KILL_AFTER_MS_MIN = 30;
const KILL_AFTER_MS_SPREAD = 400;
/** Writes kept outstanding in the group-commit rounds. */
const MAX_INFLIGHT = 8;
const WRITER = fileURLToPath(new URL('./crash-writer.ts', import.meta.url));

interface RunResult {
  readonly lastAcked: number;
  readonly acks: number;
}

/** Runs the writer from operation `start`, kills it `killAfterMs` after READY, returns the last ACK. */
function runAndKill(dir: string, start: number, inflight: number, killAfterMs: number): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = fork(WRITER, [dir, String(SEED), String(start), String(inflight)], {
      execArgv: ['--import', 'tsx'],
      stdio: ['ignore', 'pipe', 'pipe', 'ipc'],
    });
    let buffered = '';
    let lastAcked = start - 1;
    let acks = 0;
    let stderr = '';
    let timer: NodeJS.Timeout | undefined;
    child.stdout!.setEncoding('utf8');
    child.stdout!.on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\n')) >= 0) {
        const line = buffered.slice(0, nl);
        buffered = buffered.slice(nl + 1);
        if (line === 'READY') timer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
        else if (line.startsWith('ACK ')) {
          // Writes become durable in call order, so an ACK for n vouches for every write before
          // it; ACK lines themselves may come out slightly out of order (promise chains differ).
          const n = Number(line.slice(4));
          if (!Number.isSafeInteger(n) || n < start) reject(new Error(`writer printed a bad ACK line: ${line}`));
          lastAcked = Math.max(lastAcked, n);
          acks++;
        }
      }
    });
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      clearTimeout(timer);
      if (signal !== 'SIGKILL')
        reject(new Error(`writer exited by itself (code ${code}, signal ${signal}): ${stderr}`));
      else resolve({ lastAcked, acks });
    });
  });
}

describe('LevelRaftStorage crash recovery (SIGKILL at random points)', () => {
  const root = mkdtempSync(join(tmpdir(), 'quorate-raftlog-crash-'));
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it(`keeps every acknowledged write and never a torn one (seed=${SEED}, ${ROUNDS} rounds)`, async () => {
    const dir = join(root, 'raft');
    const rng = new SeededRng(SEED);
    // The reference: the same history on the in-memory log, advanced as the writer's progresses.
    const model = MemoryStorage.bootstrap(CRASH_CONF, { snapshotRetainEntries: CRASH_RETAIN_ENTRIES });
    let applied = 0; // writes applied to the model
    let recovered = 0; // writes the durable log holds
    let totalAcks = 0;
    for (let round = 0; round < ROUNDS; round++) {
      const killAfterMs = KILL_AFTER_MS_MIN + rng.nextInt(KILL_AFTER_MS_SPREAD);
      // Odd rounds keep several writes in flight, so the kill can land inside a group commit.
      const inflight = round % 2 === 0 ? 1 : MAX_INFLIGHT;
      const { lastAcked, acks } = await runAndKill(dir, recovered, inflight, killAfterMs);
      totalAcks += acks;
      const reopened = await LevelRaftStorage.open(dir, { snapshotRetainEntries: CRASH_RETAIN_ENTRIES });
      try {
        const got = logState(reopened);
        // Every acknowledged write must be there: bring the model to lastAcked + 1 writes...
        while (applied < lastAcked + 1) await applyOp(model, nextOp(SEED, applied++, model));
        let matches = JSON.stringify(got) === JSON.stringify(logState(model));
        // ...or a few more: writes in flight at the kill may have become durable unacknowledged,
        // but only whole and in order (a prefix of the history), never a torn batch.
        for (let extra = 1; !matches && extra <= inflight; extra++) {
          await applyOp(model, nextOp(SEED, applied++, model));
          matches = JSON.stringify(got) === JSON.stringify(logState(model));
        }
        expect(
          matches,
          `round ${round}: the log after the kill is not the history after any of writes ${lastAcked}..${lastAcked + inflight} (reproduce with RAFTLOG_CRASH_SEED=${SEED})`,
        ).toBe(true);
        recovered = applied;
      } finally {
        await reopened.close();
      }
    }
    // The kills landed in the middle of real work, not before it.
    expect(totalAcks).toBeGreaterThan(ROUNDS * 5);
    expect(recovered).toBeGreaterThan(ROUNDS * 5);
  });
});
