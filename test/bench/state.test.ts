// `npm run bench:state` without a cluster: its flags, the incompressible values, the RSS sampler
// on this very process, the reading of snapshot log lines, folder sizes, the report, and the
// raft.snapshotEveryEntries probe against a real `quorate init` folder. The cluster run itself is
// test/bench/state-e2e.test.ts (behind QUORATE_BENCH_STATE_E2E=1).

import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { constants, deflateSync, gzipSync } from 'node:zlib';
import { afterEach, describe, expect, it } from 'vitest';
import {
  MAX_CONCURRENCY,
  MAX_MIB,
  MAX_VALUE_KIB,
  MIB,
  RssSampler,
  STATE_BENCH_DEFAULTS,
  StateBenchError,
  VALUE_ENTROPY_BITS_PER_BYTE,
  folderBytes,
  formatStateReport,
  incompressibleValue,
  parseLogLines,
  parseStateBenchArgs,
  readProcMemory,
  snapshotFigures,
  type StateBenchResult,
} from '../../bench/state-parts.js';
import { setSnapshotEvery } from '../../bench/state.js';
import { initCluster } from '../../node/cli/init.js';
import { parseConfig } from '../../node/config.js';

const dirs: string[] = [];
afterEach(async () => {
  for (const d of dirs.splice(0)) await rm(d, { recursive: true, force: true });
});
async function tempDir(): Promise<string> {
  const d = await mkdtemp(join(tmpdir(), 'quorate-state-test-'));
  dirs.push(d);
  return d;
}

function usage(argv: string[]): string {
  try {
    parseStateBenchArgs(argv);
  } catch (err) {
    expect(err).toBeInstanceOf(StateBenchError);
    expect((err as StateBenchError).code).toBe('USAGE');
    return (err as Error).message;
  }
  throw new Error(`accepted ${argv.join(' ')}`);
}

describe('npm run bench:state flags', () => {
  it('defaults: 64 MiB, 14 KiB values (the issue reproduction), 16 in flight, a temp folder removed afterwards', () => {
    expect(parseStateBenchArgs([])).toEqual({
      mib: 64,
      valueKib: 14,
      concurrency: 16,
      snapshotEveryEntries: STATE_BENCH_DEFAULTS.snapshotEveryEntries,
      dir: undefined,
      keep: false,
      mallocDefault: false,
    });
  });

  it('reads every flag', () => {
    expect(
      parseStateBenchArgs([
        '--mib',
        '16',
        '--value-kib',
        '8',
        '--concurrency',
        '4',
        '--snapshot-every',
        '10',
        '--dir',
        '/tmp/x',
        '--keep',
        '--malloc-default',
      ]),
    ).toEqual({
      mib: 16,
      valueKib: 8,
      concurrency: 4,
      snapshotEveryEntries: 10,
      dir: '/tmp/x',
      keep: true,
      mallocDefault: true,
    });
    expect(parseStateBenchArgs(['--help'])).toBe('help');
  });

  it('refuses values out of bounds, non-integers and unknown flags, naming the flag', () => {
    expect(usage(['--mib', '0'])).toContain('--mib');
    expect(usage(['--mib', String(MAX_MIB + 1)])).toContain(`${MAX_MIB}`);
    expect(usage(['--value-kib', String(MAX_VALUE_KIB + 1)])).toContain('--value-kib');
    expect(usage(['--concurrency', String(MAX_CONCURRENCY + 1)])).toContain('--concurrency');
    expect(usage(['--mib', '1.5'])).toContain('--mib');
    expect(usage(['--snapshot-every', '1'])).toContain('--snapshot-every');
    expect(usage(['--nodes', '5'])).toMatch(/nodes/);
  });
});

describe('incompressible values', () => {
  it('are exactly the asked number of UTF-8 bytes, well-formed, and never alike', () => {
    for (const bytes of [0, 1, 2, 3, 4, 5, 7, 1000, 14 * 1024, 16 * 1024]) {
      const v = incompressibleValue(bytes);
      expect(Buffer.byteLength(v, 'utf8')).toBe(bytes);
      expect(v.isWellFormed()).toBe(true);
    }
    expect(incompressibleValue(64)).not.toBe(incompressibleValue(64));
    expect(() => incompressibleValue(16 * 1024 + 1)).toThrow(RangeError);
  });

  it('gzip cannot shrink them below ~0.9, and LZ matching finds nothing beyond byte statistics', () => {
    const values = Array.from({ length: 32 }, () => incompressibleValue(14 * 1024));
    const bytes = Buffer.from(values.join(''), 'utf8');
    const gzipRatio = gzipSync(bytes, { level: 9 }).length / bytes.length;
    // Measured ~0.95: gzip's byte-wise Huffman cannot model the multi-byte characters.
    expect(gzipRatio).toBeGreaterThan(0.9);
    // With LZ77 matching (the only thing LevelDB's Snappy does) no smaller than Huffman alone.
    const huffmanOnly = deflateSync(bytes, { strategy: constants.Z_HUFFMAN_ONLY }).length;
    expect(deflateSync(bytes, { level: 9 }).length).toBeGreaterThanOrEqual(huffmanOnly * 0.999);
    // The entropy the generator draws is close to the most UTF-8 text without controls carries.
    expect(VALUE_ENTROPY_BITS_PER_BYTE).toBeGreaterThan(6.8);
    expect(VALUE_ENTROPY_BITS_PER_BYTE).toBeLessThan(7.2);
  });
});

describe.skipIf(process.platform !== 'linux')('the RSS sampler (/proc/<pid>/status)', () => {
  it("reads this process's VmRSS and VmHWM, agreeing with process.memoryUsage()", () => {
    const m = readProcMemory(process.pid)!;
    const rss = process.memoryUsage().rss;
    expect(m.rssBytes).toBeGreaterThan(rss * 0.8);
    expect(m.rssBytes).toBeLessThan(rss * 1.2);
    expect(m.hwmBytes).toBeGreaterThanOrEqual(m.rssBytes);
    // RssAnon (Linux 4.5+): part of VmRSS, the rest being mapped files.
    expect(m.anonBytes).toBeGreaterThan(0);
    expect(m.anonBytes).toBeLessThanOrEqual(m.rssBytes);
  });

  it('keeps the peak: 96 MiB touched and released still counts', () => {
    const sampler = new RssSampler();
    sampler.watch('self', process.pid);
    const before = sampler.peak('self')!;
    let big: Buffer | undefined = Buffer.alloc(96 * MIB, 1); // filled, so every page is resident
    sampler.sample();
    expect(big.length).toBe(96 * MIB);
    big = undefined; // let it go before the last sample
    void big;
    sampler.stop();
    expect(sampler.peak('self')!).toBeGreaterThanOrEqual(Math.max(before, 90 * MIB));
    expect(sampler.samples('self')).toBeGreaterThanOrEqual(3);
  });

  it('keeps a peak per phase besides the overall one', () => {
    const sampler = new RssSampler();
    sampler.watch('self', process.pid);
    sampler.phase('quiet');
    let big: Buffer | undefined = Buffer.alloc(64 * MIB, 1);
    sampler.phase('busy');
    expect(big.length).toBe(64 * MIB);
    big = undefined;
    void big;
    sampler.stop();
    expect(sampler.phasePeak('self', 'busy')!).toBeGreaterThanOrEqual(60 * MIB);
    expect(sampler.phasePeak('self', 'absent')).toBeUndefined();
    expect(sampler.peak('self')!).toBeGreaterThanOrEqual(sampler.phasePeak('self', 'busy')!);
  });

  it('a process that does not exist has no figure', () => {
    const sampler = new RssSampler();
    sampler.watch('gone', 2 ** 22 + 12345);
    sampler.stop();
    expect(sampler.peak('gone')).toBeUndefined();
    expect(readProcMemory(2 ** 22 + 12345)).toBeUndefined();
  });
});

describe('snapshot figures from the node logs', () => {
  const at = 1_700_000_000_000;
  const line = (timeMs: number, msg: string, extra: Record<string, unknown> = {}) =>
    JSON.stringify({ level: 30, time: timeMs, nodeId: 'n', msg, ...extra });

  it('reads pino lines and skips anything else', () => {
    const lines = parseLogLines(['not json', line(at, 'a'), '{"broken', line(at + 1, 'b', { x: 1 }), ''].join('\n'));
    expect(lines.map((l) => l.msg)).toEqual(['a', 'b']);
    expect(lines[1].fields.x).toBe(1);
  });

  it("installed from the joiner's line; sent from the leader's line with its size when it logs one", () => {
    const joiner = parseLogLines(
      [line(at - 5_000, 'snapshot installed'), line(at + 4_000, 'snapshot installed', { index: 40 })].join('\n'),
    );
    const leader = parseLogLines(line(at + 2_000, 'snapshot sent', { to: 4, bytes: 8 * MIB }));
    const f = snapshotFigures(leader, joiner, at, 6, 16 * MIB);
    expect(f.installed).toEqual({ bytes: 16 * MIB, seconds: 4, source: 'log' });
    expect(f.sent).toEqual({ bytes: 8 * MIB, seconds: 2, source: 'log' });
  });

  it("sent from the joiner's side when the leader logs no send", () => {
    const joiner = parseLogLines(line(at + 3_000, 'snapshot installed'));
    const f = snapshotFigures([], joiner, at, 5, 16 * MIB);
    expect(f.sent).toEqual({ bytes: 16 * MIB, seconds: 5, source: 'joiner' });
  });

  it('no figures when the joiner installed no snapshot (it caught up from the log)', () => {
    expect(snapshotFigures([], parseLogLines(line(at + 1, 'raft role changed')), at, 5, MIB)).toEqual({
      sent: undefined,
      installed: undefined,
    });
  });
});

describe('data-dir sizes', () => {
  it('adds the sizes of every file below the folder; a missing folder is 0', async () => {
    const d = await tempDir();
    await mkdir(join(d, 'a', 'b'), { recursive: true });
    await writeFile(join(d, 'one'), Buffer.alloc(1000));
    await writeFile(join(d, 'a', 'two'), Buffer.alloc(2000));
    await writeFile(join(d, 'a', 'b', 'three'), Buffer.alloc(3000));
    expect(await folderBytes(d)).toBe(6000);
    expect(await folderBytes(join(d, 'absent'))).toBe(0);
  });
});

describe('the report', () => {
  const base: StateBenchResult = {
    options: { mib: 64, valueKib: 14, concurrency: 16, snapshotEveryEntries: 32, dir: undefined, keep: false },
    snapshotSetting: { applied: true, entries: 32 },
    fill: { valueBytes: 64 * MIB, transactions: 2341, seconds: 8, errors: new Map([['-32010 busy', 3]]) },
    targetIndex: 120,
    snapshotSent: { bytes: 64 * MIB, seconds: 2, source: 'joiner' },
    snapshotInstalled: { bytes: 64 * MIB, seconds: 1.6, source: 'log' },
    joinToHeadSeconds: 2,
    joinCaughtUpSeconds: 2.5,
    nodes: [
      {
        name: 'node-1',
        role: 'leader',
        peakRssBytes: 312_000_000,
        peakAnonBytes: 201_000_000,
        fillRssBytes: 290_000_000,
        joinRssBytes: 305_000_000,
        dataDirBytes: 100 * MIB,
      },
      { name: 'node-4', role: 'joiner (learner)', peakRssBytes: undefined, dataDirBytes: 70 * MIB },
    ],
    clusterDir: '/tmp/c',
    kept: false,
  };

  it('prints the rates computed from bytes and seconds, the errors, and a row per node', () => {
    const text = formatStateReport(base).join('\n');
    expect(text).toContain('64.0 MiB of values in 2341 transactions (2 x 14 KiB, 16 in flight) in 8.0 s = 8.0 MiB/s');
    expect(text).toContain('fill error count=3 message="-32010 busy"');
    expect(text).toContain('forced with raft.snapshotEveryEntries=32');
    expect(text).toMatch(/snapshot sent: 32\.0 MiB\/s .*joiner's side/);
    expect(text).toMatch(/snapshot installed: 40\.0 MiB\/s .*from the node log/);
    expect(text).toContain('catch-up done) after 2.50 s; catch-up 32.0 MiB/s of state');
    expect(text).toMatch(/node-1\s+leader\s+312\s+201\s+290\s+305\s+100\.0/);
    expect(text).toMatch(/node-4\s+joiner \(learner\)\s+n\/a\s+n\/a\s+n\/a\s+n\/a\s+70\.0/);
    expect(text).toContain('cluster folder removed');
  });

  it('says when no snapshot was forced or installed', () => {
    const text = formatStateReport({
      ...base,
      snapshotSetting: { applied: false, why: 'no such field' },
      snapshotSent: undefined,
      snapshotInstalled: undefined,
      joinCaughtUpSeconds: undefined,
      kept: true,
    }).join('\n');
    expect(text).toContain('snapshot: NOT forced: no such field');
    expect(text).toContain('snapshot sent: n/a (the joiner installed no state snapshot');
    expect(text).toContain('every block fetched: not seen');
    expect(text).toContain('kept at /tmp/c');
  });
});

describe('raft.snapshotEveryEntries in a real cluster folder', () => {
  it("is written when this build's parser accepts it; otherwise the configs are untouched and the reason names the field", async () => {
    const dir = join(await tempDir(), 'cluster');
    await initCluster({
      nodes: 2,
      dir,
      hosts: ['127.0.0.1', '127.0.0.1'],
      rpcPort: 41_000,
      p2pPort: 41_100,
      tmPort: 41_200,
      force: false,
      chainId: 1337,
      keyProtection: 'dev',
    });
    const paths = ['node-1', 'node-2'].map((n) => join(dir, n, 'config.json'));
    const before = await Promise.all(paths.map((p) => readFile(p, 'utf8')));
    const r = await setSnapshotEvery(paths, 7);
    const after = await Promise.all(paths.map((p) => readFile(p, 'utf8')));
    if (r.applied) {
      for (const [i, text] of after.entries()) {
        const json = JSON.parse(text) as { raft: { snapshotEveryEntries: number } };
        expect(json.raft.snapshotEveryEntries).toBe(7);
        expect(() => parseConfig(json, paths[i])).not.toThrow();
      }
    } else {
      expect(r.why).toContain('raft.snapshotEveryEntries');
      expect(after).toEqual(before);
    }
    expect(existsSync(paths[0])).toBe(true);
  });
});
