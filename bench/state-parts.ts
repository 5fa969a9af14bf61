// The parts of `npm run bench:state` (bench/state.ts) that need no cluster: its flags, the
// generator of incompressible values, the peak-RSS sampler (/proc/<pid>/status), the reading of
// the nodes' snapshot log lines, the data-dir sizes, and the report. Kept apart so that each is
// unit-tested fast (test/bench/state.test.ts) while the cluster run stays behind an env var.

import { randomFillSync } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readdir, readFile, lstat } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { intArg as sharedIntArg } from './lifecycle.js';
import { MAX_VALUE_BYTES } from '../node/chain/tx.js';
import { SystemClock, type TimerHandle } from '../node/clock.js';
import { formatTable } from '../node/cli/table.js';
import { NODE_MALLOC_ENV } from '../node/up.js';

const clock = new SystemClock();

export const MIB = 1024 * 1024;
export const KIB = 1024;

/** Upper bounds of the flags: a run is bounded in size and so in time. */
export const MAX_MIB = 16 * 1024;
export const MAX_CONCURRENCY = 256;
/** A value is at most the chain's MAX_VALUE_BYTES (16 KiB of UTF-8). */
export const MAX_VALUE_KIB = MAX_VALUE_BYTES / KIB;
/** Smallest snapshot interval accepted by --snapshot-every (one entry per block or membership change). */
export const MIN_SNAPSHOT_EVERY_ENTRIES = 2;
export const MAX_SNAPSHOT_EVERY_ENTRIES = 1_000_000;

export const STATE_BENCH_DEFAULTS = {
  mib: 64,
  /** The issue's reproduction: two 14 KiB puts per transaction. */
  valueKib: 14,
  concurrency: 16,
  /**
   * raft.snapshotEveryEntries written into every node's config.json: low, so that the leader's
   * latest snapshot holds (nearly) all the filled state when the 4th node joins.
   */
  snapshotEveryEntries: 32,
} as const;

/** The allocator setting local nodes run with (node/up.ts); bench:state drops it for --malloc-default. */
export { NODE_MALLOC_ENV };

export const STATE_BENCH_HELP = `Usage: npm run bench:state -- [--mib N] [--value-kib K] [--concurrency C]
                              [--snapshot-every E] [--dir DIR] [--keep] [--malloc-default]

Starts a fresh 3-node cluster on loopback (real processes, LevelDB, sync on), fills N MiB of
incompressible public state (two K KiB puts per transaction, node-signed, C in flight), forces
a snapshot (raft.snapshotEveryEntries = E in each config.json, when this build accepts the
field), adds a 4th node (add-node, start --join, raft_addLearner on the leader), and prints the
fill rate, the snapshot's send/install rates, the joiner's time to reach the leader's head, each
node's peak RSS and its data-dir size.

  --mib N             MiB of state (value bytes) to write (default ${STATE_BENCH_DEFAULTS.mib}, at most ${MAX_MIB})
  --value-kib K       KiB per value (default ${STATE_BENCH_DEFAULTS.valueKib}, at most ${MAX_VALUE_KIB})
  --concurrency C     transactions in flight (default ${STATE_BENCH_DEFAULTS.concurrency}, at most ${MAX_CONCURRENCY})
  --snapshot-every E  raft.snapshotEveryEntries for the nodes (default ${STATE_BENCH_DEFAULTS.snapshotEveryEntries})
  --dir DIR           write the cluster folder here (must not exist; default: a temp folder)
  --keep              keep the cluster folder afterwards (default: removed)
  --malloc-default    run the nodes with glibc's default malloc settings (default: with
                      ${Object.entries(NODE_MALLOC_ENV)
                        .map(([k, v]) => `${k}=${v}`)
                        .join(' ')}, as README "State and memory" recommends)
`;

export interface StateBenchOptions {
  readonly mib: number;
  readonly valueKib: number;
  readonly concurrency: number;
  readonly snapshotEveryEntries: number;
  readonly dir: string | undefined;
  readonly keep: boolean;
  /** Run the nodes without NODE_MALLOC_ENV. */
  readonly mallocDefault?: boolean;
}

export type StateBenchErrorCode = 'USAGE' | 'CLUSTER_START' | 'FILL_FAILED' | 'JOIN_FAILED' | 'TIMEOUT' | 'NODE_EXITED';

export class StateBenchError extends Error {
  constructor(
    readonly code: StateBenchErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'StateBenchError';
  }
}

function intArg(values: Record<string, unknown>, name: string, fallback: number, min: number, max: number): number {
  return sharedIntArg(values, name, fallback, min, max, (m) => new StateBenchError('USAGE', m));
}

export function parseStateBenchArgs(argv: readonly string[]): StateBenchOptions | 'help' {
  let values: Record<string, string | boolean | undefined>;
  try {
    values = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        mib: { type: 'string' },
        'value-kib': { type: 'string' },
        concurrency: { type: 'string' },
        'snapshot-every': { type: 'string' },
        dir: { type: 'string' },
        keep: { type: 'boolean' },
        'malloc-default': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    }).values;
  } catch (err) {
    throw new StateBenchError('USAGE', (err as Error).message.split('. ')[0]);
  }
  if (values.help) return 'help';
  const dir = values.dir;
  if (dir !== undefined && (typeof dir !== 'string' || dir.length === 0))
    throw new StateBenchError('USAGE', '--dir needs a folder');
  return {
    mib: intArg(values, 'mib', STATE_BENCH_DEFAULTS.mib, 1, MAX_MIB),
    valueKib: intArg(values, 'value-kib', STATE_BENCH_DEFAULTS.valueKib, 1, MAX_VALUE_KIB),
    concurrency: intArg(values, 'concurrency', STATE_BENCH_DEFAULTS.concurrency, 1, MAX_CONCURRENCY),
    snapshotEveryEntries: intArg(
      values,
      'snapshot-every',
      STATE_BENCH_DEFAULTS.snapshotEveryEntries,
      MIN_SNAPSHOT_EVERY_ENTRIES,
      MAX_SNAPSHOT_EVERY_ENTRIES,
    ),
    dir: typeof dir === 'string' ? dir : undefined,
    keep: values.keep === true,
    mallocDefault: values['malloc-default'] === true,
  };
}

// --- incompressible values ------------------------------------------------------------------
// A put's value is a string stored as UTF-8, so "random bytes" must be valid UTF-8. The densest
// choice draws each character of a k-byte UTF-8 class with probability λ^-k (the max-entropy
// distribution of a prefix code), λ solving Σ_k n_k λ^-k = 1 over the classes below: ~6.9 bits
// of entropy per byte, the most any UTF-8 text without control characters can carry (plain
// printable ASCII carries 6.6). LevelDB's Snappy (LZ matching only) finds nothing to shrink;
// gzip, which also entropy-codes bytes, gets at most to ~0.86 of the size.

/** The UTF-8 classes used: [first code point, count, bytes]. Controls (C0, DEL) and surrogates left out. */
const VALUE_CLASSES: ReadonlyArray<readonly [number, number, number]> = [
  [0x20, 0x7f - 0x20, 1], // printable ASCII
  [0x80, 0x800 - 0x80, 2],
  [0x800, 0xd800 - 0x800, 3], // below the surrogates
  [0xe000, 0x10000 - 0xe000, 3], // above them
  [0x10000, 0x110000 - 0x10000, 4],
];

/** λ of the max-entropy distribution, by bisection (the sum falls as λ grows). */
function maxEntropyBase(): number {
  let lo = 1;
  let hi = 1024;
  for (let i = 0; i < 100; i++) {
    const mid = (lo + hi) / 2;
    const sum = VALUE_CLASSES.reduce((s, [, n, k]) => s + n / mid ** k, 0);
    if (sum > 1) lo = mid;
    else hi = mid;
  }
  return lo;
}

/** Bits of entropy per UTF-8 byte of a generated value: log2(λ). */
export const VALUE_ENTROPY_BITS_PER_BYTE = Math.log2(maxEntropyBase());

/** Cumulative class probabilities scaled to 2^32, for one u32 draw per character. */
const CLASS_THRESHOLDS: readonly number[] = (() => {
  const base = maxEntropyBase();
  let acc = 0;
  return VALUE_CLASSES.map(([, n, k]) => {
    acc += n / base ** k;
    return Math.min(2 ** 32, Math.round(acc * 2 ** 32));
  });
})();

function encodeUtf8(out: Uint8Array, at: number, cp: number): number {
  if (cp < 0x80) {
    out[at] = cp;
    return 1;
  }
  if (cp < 0x800) {
    out[at] = 0xc0 | (cp >> 6);
    out[at + 1] = 0x80 | (cp & 0x3f);
    return 2;
  }
  if (cp < 0x10000) {
    out[at] = 0xe0 | (cp >> 12);
    out[at + 1] = 0x80 | ((cp >> 6) & 0x3f);
    out[at + 2] = 0x80 | (cp & 0x3f);
    return 3;
  }
  out[at] = 0xf0 | (cp >> 18);
  out[at + 1] = 0x80 | ((cp >> 12) & 0x3f);
  out[at + 2] = 0x80 | ((cp >> 6) & 0x3f);
  out[at + 3] = 0x80 | (cp & 0x3f);
  return 4;
}

/**
 * A string of exactly `bytes` UTF-8 bytes drawn from node:crypto's generator. The last 1–3 bytes
 * are printable ASCII so the length comes out exact.
 */
export function incompressibleValue(bytes: number): string {
  if (!Number.isSafeInteger(bytes) || bytes < 0 || bytes > MAX_VALUE_BYTES)
    throw new RangeError(`value of ${bytes} bytes: must be 0..${MAX_VALUE_BYTES}`);
  const out = new Uint8Array(bytes);
  // Two u32 per character (class, code point); characters are ≥ 1 byte, so `bytes` pairs suffice.
  const random = new Uint32Array(2 * bytes + 2);
  randomFillSync(random);
  let at = 0;
  let r = 0;
  while (at < bytes) {
    const pick = random[r++];
    const code = random[r++];
    let cls = VALUE_CLASSES[0];
    if (bytes - at >= 4) {
      for (let c = 0; c < VALUE_CLASSES.length; c++) {
        if (pick < CLASS_THRESHOLDS[c] || c === VALUE_CLASSES.length - 1) {
          cls = VALUE_CLASSES[c];
          break;
        }
      }
    }
    // code % count: the bias is at most count / 2^32 ≤ 2^-12, far below what any compressor sees.
    at += encodeUtf8(out, at, cls[0] + (code % cls[1]));
  }
  return Buffer.from(out.buffer, 0, bytes).toString('utf8');
}

// --- peak RSS ------------------------------------------------------------------------------

/** One process's memory as /proc/<pid>/status reports it. */
export interface ProcMemory {
  /** Resident set now (VmRSS). */
  readonly rssBytes: number;
  /** Peak resident set since the process started (VmHWM, the kernel's own high-water mark). */
  readonly hwmBytes: number;
  /**
   * The anonymous part of VmRSS now (RssAnon: heap, buffers, malloc); the rest is mostly file pages
   * mapped in (the node binary, LevelDB's open tables). Undefined on kernels without the field.
   */
  readonly anonBytes?: number;
}

/** Reads VmRSS and VmHWM of `pid`; undefined when the process is gone or /proc is not Linux's. */
export function readProcMemory(pid: number): ProcMemory | undefined {
  let text: string;
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8');
  } catch {
    return undefined;
  }
  const kib = (field: string): number | undefined => {
    const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB$`, 'm').exec(text);
    return m ? Number(m[1]) * KIB : undefined;
  };
  const rss = kib('VmRSS');
  const hwm = kib('VmHWM');
  if (rss === undefined || hwm === undefined) return undefined;
  const anon = kib('RssAnon');
  return { rssBytes: rss, hwmBytes: hwm, ...(anon !== undefined ? { anonBytes: anon } : {}) };
}

/** How often the sampler reads each process. */
export const RSS_SAMPLE_INTERVAL_MS = 500;

/**
 * Samples each watched process every RSS_SAMPLE_INTERVAL_MS and keeps the peak: the larger of
 * the sampled VmRSS maxima and the last VmHWM read (the kernel's peak also covers spikes between
 * two samples). Processes are few (one per node): a fixed, small set.
 */
export class RssSampler {
  private readonly peaks = new Map<
    string,
    {
      pid: number;
      peakBytes: number;
      peakAnonBytes: number | undefined;
      samples: number;
      lastRssBytes: number;
      phasePeaks: Map<string, number>;
    }
  >();
  private timer: TimerHandle | undefined;
  /** The phase samples are counted in (phase()); each process's sampled VmRSS maximum is kept per phase. */
  private currentPhase = '';

  /**
   * Starts a phase (e.g. 'fill', 'join'): from now on each sample also raises that phase's peak. A
   * phase peak is the largest sampled VmRSS (VmHWM cannot be reset), so a spike shorter than the
   * sampling interval may be missed there; the overall peak (peak()) includes VmHWM and misses nothing.
   */
  phase(label: string): void {
    this.sample(); // the end of the previous phase
    this.currentPhase = label;
    this.sample();
  }

  watch(name: string, pid: number): void {
    this.peaks.set(name, {
      pid,
      peakBytes: 0,
      peakAnonBytes: undefined,
      samples: 0,
      lastRssBytes: 0,
      phasePeaks: new Map(),
    });
    this.sampleOne(name);
  }

  start(intervalMs = RSS_SAMPLE_INTERVAL_MS): void {
    this.timer ??= clock.setInterval(() => this.sample(), intervalMs);
    this.timer.unref?.();
  }

  stop(): void {
    this.sample();
    this.timer?.cancel();
    this.timer = undefined;
  }

  sample(): void {
    for (const name of this.peaks.keys()) this.sampleOne(name);
  }

  private sampleOne(name: string): void {
    const p = this.peaks.get(name);
    if (!p) return;
    const m = readProcMemory(p.pid);
    if (!m) return;
    p.samples++;
    p.lastRssBytes = m.rssBytes;
    p.peakBytes = Math.max(p.peakBytes, m.rssBytes, m.hwmBytes);
    if (m.anonBytes !== undefined) p.peakAnonBytes = Math.max(p.peakAnonBytes ?? 0, m.anonBytes);
    if (this.currentPhase !== '')
      p.phasePeaks.set(this.currentPhase, Math.max(p.phasePeaks.get(this.currentPhase) ?? 0, m.rssBytes));
  }

  /** Largest sampled VmRSS of `name` during `phase` (undefined: not sampled in it). */
  phasePeak(name: string, phase: string): number | undefined {
    return this.peaks.get(name)?.phasePeaks.get(phase);
  }

  /** Largest sampled RssAnon of `name` over the run (undefined: never read, or no such field). */
  peakAnon(name: string): number | undefined {
    return this.peaks.get(name)?.peakAnonBytes;
  }

  /** Peak bytes per watched name (undefined: never read, e.g. no /proc). */
  peak(name: string): number | undefined {
    const p = this.peaks.get(name);
    return p && p.samples > 0 ? p.peakBytes : undefined;
  }

  samples(name: string): number {
    return this.peaks.get(name)?.samples ?? 0;
  }
}

// --- the nodes' log lines ------------------------------------------------------------------

/** One pino line of a node's log: its wall time (ms), message, and the other fields. */
export interface LogLine {
  readonly timeMs: number;
  readonly msg: string;
  readonly fields: Readonly<Record<string, unknown>>;
}

/** Lines of a node log read at most: a join's log is small; a longer one is read from its start only. */
export const MAX_LOG_LINES_READ = 200_000;

/** The JSON lines of a node's log; other lines (a crash trace) are skipped. */
export function parseLogLines(text: string): LogLine[] {
  const out: LogLine[] = [];
  for (const line of text.split('\n').slice(0, MAX_LOG_LINES_READ)) {
    if (!line.startsWith('{')) continue;
    try {
      const o = JSON.parse(line) as Record<string, unknown>;
      // pino writes epoch milliseconds by default; the node's logger writes ISO time strings.
      const timeMs = typeof o.time === 'number' ? o.time : typeof o.time === 'string' ? Date.parse(o.time) : NaN;
      if (Number.isFinite(timeMs) && typeof o.msg === 'string') out.push({ timeMs, msg: o.msg, fields: o });
    } catch {
      // not a log line
    }
  }
  return out;
}

export async function readLogLines(path: string): Promise<LogLine[]> {
  return parseLogLines(await readFile(path, 'utf8').catch(() => ''));
}

/** What the joiner logs once a snapshot is installed (node/apply.ts). */
export const SNAPSHOT_INSTALLED_MSG = /^snapshot installed/i;
/** What a leader logs once a snapshot is sent, if its build logs it (the streamed snapshots may). */
export const SNAPSHOT_SENT_MSG = /snapshot\b.*\b(sent|send (done|complete|finished))/i;
/** The joiner's streamed-snapshot transfer (node/apply.ts): its start, and its end with bytesReceived. */
export const SNAPSHOT_FETCH_START_MSG = /^fetching a streamed snapshot/i;
export const SNAPSHOT_FETCHED_MSG = /^snapshot fetched and verified/i;
/** Field names a snapshot line may carry its size in; else the run's state bytes are used. */
const SNAPSHOT_BYTES_FIELDS = ['bytes', 'sizeBytes', 'totalBytes', 'snapshotBytes', 'bytesReceived'];

/** The first line at or after `sinceMs` whose message matches. */
export function findLine(lines: readonly LogLine[], msg: RegExp, sinceMs: number): LogLine | undefined {
  return lines.find((l) => l.timeMs >= sinceMs && msg.test(l.msg));
}

/** A snapshot's size in bytes when its log line says it. */
export function snapshotBytesOf(line: LogLine): number | undefined {
  for (const f of SNAPSHOT_BYTES_FIELDS) {
    const v = line.fields[f];
    if (typeof v === 'number' && Number.isFinite(v) && v > 0) return v;
  }
  return undefined;
}

/**
 * The snapshot figures of a join. Installed: the joiner's "snapshot installed" line after the add
 * (none: it installed no state snapshot — the genesis one carries none — and caught up from the
 * log, so neither figure exists). Sent: the leader's send line when its build logs one, else the
 * joiner's side (state bytes / time from the add until its applied index reached the leader's).
 * Sizes come from the line when it carries one, else the run's state bytes.
 */
export function snapshotFigures(
  leaderLines: readonly LogLine[],
  joinerLines: readonly LogLine[],
  addedAtWallMs: number,
  joinToHeadSeconds: number,
  stateBytes: number,
): { sent: RateFigure | undefined; installed: RateFigure | undefined } {
  const fromLine = (line: LogLine | undefined): RateFigure | undefined =>
    line && {
      bytes: snapshotBytesOf(line) ?? stateBytes,
      seconds: Math.max(0.001, (line.timeMs - addedAtWallMs) / 1000),
      source: 'log',
    };
  const installedLine = findLine(joinerLines, SNAPSHOT_INSTALLED_MSG, addedAtWallMs);
  if (!installedLine) return { sent: undefined, installed: undefined };
  // A streamed transfer: bytes and duration from the joiner's own fetch lines.
  const fetchStart = findLine(joinerLines, SNAPSHOT_FETCH_START_MSG, addedAtWallMs);
  const fetched = findLine(joinerLines, SNAPSHOT_FETCHED_MSG, addedAtWallMs);
  const fetchedBytes = fetched && snapshotBytesOf(fetched);
  const installed: RateFigure = {
    bytes: fetchedBytes ?? snapshotBytesOf(installedLine) ?? stateBytes,
    seconds: Math.max(0.001, (installedLine.timeMs - addedAtWallMs) / 1000),
    source: 'log',
  };
  const streamed: RateFigure | undefined =
    fetchStart && fetched && fetchedBytes !== undefined
      ? {
          bytes: fetchedBytes,
          seconds: Math.max(0.001, (fetched.timeMs - fetchStart.timeMs) / 1000),
          source: 'log',
        }
      : undefined;
  const sent = fromLine(findLine(leaderLines, SNAPSHOT_SENT_MSG, addedAtWallMs)) ??
    streamed ?? {
      bytes: stateBytes,
      seconds: joinToHeadSeconds,
      source: 'joiner',
    };
  return { sent, installed };
}

// --- data dirs -----------------------------------------------------------------------------

/** Files visited at most while sizing one folder (a LevelDB folder holds hundreds). */
export const MAX_FILES_SIZED = 100_000;

/** Bytes of the regular files under `dir` (symlinks not followed); 0 when it does not exist. */
export async function folderBytes(dir: string): Promise<number> {
  let total = 0;
  let visited = 0;
  const stack = [dir];
  while (stack.length > 0 && visited < MAX_FILES_SIZED) {
    const d = stack.pop()!;
    const entries = await readdir(d, { withFileTypes: true }).catch(() => []);
    for (const e of entries) {
      if (++visited > MAX_FILES_SIZED) break;
      const p = join(d, e.name);
      if (e.isDirectory()) stack.push(p);
      else if (e.isFile()) total += (await lstat(p).catch(() => undefined))?.size ?? 0;
    }
  }
  return total;
}

// --- the report ----------------------------------------------------------------------------

/** How a snapshot figure was measured. */
export type SnapshotSource = 'log' | 'joiner';

export interface RateFigure {
  readonly bytes: number;
  readonly seconds: number;
  readonly source: SnapshotSource;
}

export interface NodeFigures {
  readonly name: string;
  readonly role: string;
  /** Peak RSS (bytes) over the whole run, VmHWM included; undefined when it could not be read. */
  readonly peakRssBytes: number | undefined;
  /** Largest sampled RssAnon over the run (bytes): RSS less mapped files (the binary, LevelDB's open tables). */
  readonly peakAnonBytes?: number | undefined;
  /** Largest sampled RSS while the state was written (bytes; undefined: not running then). */
  readonly fillRssBytes?: number | undefined;
  /** Largest sampled RSS from the forced snapshot to the end of the join (snapshot sent and received). */
  readonly joinRssBytes?: number | undefined;
  readonly dataDirBytes: number;
}

export interface StateBenchResult {
  readonly options: StateBenchOptions;
  /** raft.snapshotEveryEntries written into the configs, or why not. */
  readonly snapshotSetting:
    { readonly applied: true; readonly entries: number } | { readonly applied: false; readonly why: string };
  readonly fill: {
    readonly valueBytes: number;
    readonly transactions: number;
    readonly seconds: number;
    readonly errors: ReadonlyMap<string, number>;
  };
  /** The leader's applied index the joiner had to reach (the snapshot is at or below it). */
  readonly targetIndex: number;
  readonly snapshotSent: RateFigure | undefined;
  readonly snapshotInstalled: RateFigure | undefined;
  /** Seconds from the learner's addition until its applied index reached the leader's. */
  readonly joinToHeadSeconds: number;
  /** Seconds until it also held every block (its private catch-up after a snapshot done); undefined: not seen. */
  readonly joinCaughtUpSeconds: number | undefined;
  readonly nodes: readonly NodeFigures[];
  readonly clusterDir: string;
  readonly kept: boolean;
}

const mib = (bytes: number): string => (bytes / MIB).toFixed(1);
const mb = (bytes: number | undefined): string => (bytes === undefined ? 'n/a' : (bytes / 1e6).toFixed(0));
const rate = (bytes: number, seconds: number): string => (seconds > 0 ? (bytes / MIB / seconds).toFixed(1) : 'n/a');

function rateLine(label: string, f: RateFigure | undefined, missing: string): string {
  if (!f) return `${label}: n/a (${missing})`;
  const how =
    f.source === 'log'
      ? 'from the node log'
      : "from the joiner's side: state bytes / time from add to its applied index at the leader's";
  return `${label}: ${rate(f.bytes, f.seconds)} MiB/s (${mib(f.bytes)} MiB in ${f.seconds.toFixed(2)} s, ${how})`;
}

/** The lines the run ends with. */
export function formatStateReport(r: StateBenchResult): string[] {
  const o = r.options;
  const lines: string[] = [];
  lines.push(
    `fill: ${mib(r.fill.valueBytes)} MiB of values in ${r.fill.transactions} transactions (2 x ${o.valueKib} KiB, ${o.concurrency} in flight) ` +
      `in ${r.fill.seconds.toFixed(1)} s = ${rate(r.fill.valueBytes, r.fill.seconds)} MiB/s`,
  );
  for (const [msg, n] of r.fill.errors) lines.push(`fill error count=${n} message=${JSON.stringify(msg)}`);
  lines.push(
    r.snapshotSetting.applied
      ? `snapshot: forced with raft.snapshotEveryEntries=${r.snapshotSetting.entries}; joiner's target index ${r.targetIndex}`
      : `snapshot: NOT forced: ${r.snapshotSetting.why}; joiner's target index ${r.targetIndex}`,
  );
  const noSnapshot = 'the joiner installed no state snapshot: it caught up from the log';
  lines.push(rateLine('snapshot sent', r.snapshotSent, noSnapshot));
  lines.push(rateLine('snapshot installed', r.snapshotInstalled, noSnapshot));
  lines.push(
    `join: applied index at the leader's head ${r.joinToHeadSeconds.toFixed(2)} s after raft_addLearner` +
      (r.joinCaughtUpSeconds === undefined
        ? '; every block fetched: not seen before the run ended'
        : `; every block held (catch-up done) after ${r.joinCaughtUpSeconds.toFixed(2)} s`) +
      `; catch-up ${rate(r.fill.valueBytes, r.joinToHeadSeconds)} MiB/s of state`,
  );
  lines.push('');
  lines.push(
    formatTable(
      ['node', 'role', 'peak RSS MB', 'anon MB', 'fill MB', 'snapshot+join MB', 'data dir MiB'],
      r.nodes.map((n) => [
        n.name,
        n.role,
        mb(n.peakRssBytes),
        mb(n.peakAnonBytes),
        mb(n.fillRssBytes),
        mb(n.joinRssBytes),
        mib(n.dataDirBytes),
      ]),
    ),
  );
  lines.push('');
  lines.push(
    `peak RSS: the kernel's high-water mark (VmHWM) of each node process over the run; anon: the largest RssAnon sampled (RSS less mapped files: the binary, LevelDB's open tables, bounded by state.maxOpenFiles); fill / snapshot+join: the largest RSS sampled every ${RSS_SAMPLE_INTERVAL_MS} ms in that phase` +
      `\ngoals (README, not asserted): catch-up >= 50 MiB/s, a 1 GiB join <= 60 s, RSS < 400 MB per node` +
      `; cluster folder ${r.kept ? `kept at ${r.clusterDir}` : 'removed'}`,
  );
  return lines;
}
