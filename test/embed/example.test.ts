// The auction example (examples/auction) end to end, as a user runs it: its one command in a
// child process (`node --import tsx examples/auction/run.ts <dir> <port>`), a 3-node cluster of
// embedded nodes with the example's own Application; the outcome it prints must be the same on
// every node and follow the auction's rules.

import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, expect, it } from 'vitest';
import { freePortBlock } from '../../bench/etcd-vs.js';
import type { AuctionResult } from '../../examples/auction/run.js';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
/** The example takes ~12 s alone; a loaded 2-core machine gets more. */
const EXAMPLE_TIMEOUT_MS = 40_000;

let dir: string | undefined;
afterAll(async () => {
  if (dir) await rm(dir, { recursive: true, force: true });
});

it(
  'runs the auction example: every node sees the same auction, won by the highest valid bid',
  async () => {
    dir = await mkdtemp(join(tmpdir(), 'quorate-auction-test-'));
    const base = await freePortBlock(9);
    const stdout = await new Promise<string>((resolveRun, reject) =>
      execFile(
        process.execPath,
        ['--import', 'tsx', 'examples/auction/run.ts', join(dir!, 'cluster'), String(base)],
        { cwd: REPO, timeout: EXAMPLE_TIMEOUT_MS, env: { ...process.env, NODE_OPTIONS: '' } },
        (err, out, errOut) => (err ? reject(new Error(`${err.message}\n${out}\n${errOut}`)) : resolveRun(out)),
      ),
    );
    const line = stdout.split('\n').find((l) => l.startsWith('auction-result '));
    expect(line, stdout).toBeDefined();
    const r = JSON.parse(line!.slice('auction-result '.length)) as AuctionResult;

    expect(r.receipts.map((x) => [x.what, x.status])).toEqual([
      ['seller opens "lamp"', 1],
      ['alice bids 150', 1],
      ['bob bids 120', 0],
      ['bob bids 200', 1],
      ['seller bids 500', 0],
      ['seller closes', 1],
      ['alice bids 300', 0],
    ]);
    expect(r.receipts[2].reason).toMatch(/does not beat the highest bid 150/);
    expect(r.receipts[6].reason).toMatch(/closed/);
    expect(r.refusal).toBe('TX_MALFORMED');

    expect(r.views.map((v) => v.node)).toEqual(['node-1', 'node-2', 'node-3']);
    for (const v of r.views) {
      // The same on every node; escrow moved exactly the winning bid from bob to the seller.
      expect(v).toEqual({ ...r.views[0], node: v.node });
      expect(v.auction).toMatchObject({ id: 'lamp', highBid: '200', closed: true });
      expect(v.highBidAfterFirstBid).toBe('150');
      expect(BigInt(v.balances.seller) - BigInt(v.balances.bob)).toBe(400n);
      expect(BigInt(v.balances.alice)).toBe(BigInt(v.balances.seller) - 200n);
    }
    // Node 3 followed the chain without a gap, one block per transaction that reached the chain.
    expect(r.blocksSeen).toEqual(Array.from({ length: r.blocksSeen.length }, (_, i) => i + 1));
    expect(r.blocksSeen.length).toBeGreaterThanOrEqual(r.receipts.length);
  },
  EXAMPLE_TIMEOUT_MS + 5_000,
);
