import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { checkLinearizable } from '../../node/jepsen/linearizability.js';
import { OUTCOME_COLOURS, allValid, renderReport, writeReport, type CheckerVerdict } from '../../node/jepsen/report.js';
import { validateHistory, type HistoryOp } from '../../node/jepsen/history.js';
import { CHROMIUM_SKIP_REASON, chromiumAvailable, launchChromium } from '../browser/chromium.js';
import { generateRegisterHistory } from './helpers.js';
import { countColour, decodePng, distinctColours } from './png.js';

const dirs: string[] = [];
afterAll(async () => {
  if (process.env.QRT_KEEP_REPORT === undefined) for (const d of dirs) await rm(d, { recursive: true, force: true });
});

/** A generated register history with nemesis intervals merged in by time. */
function sampleHistory(): HistoryOp[] {
  const gen = generateRegisterHistory({
    seed: 5,
    operations: 3_000,
    processes: 5,
    keys: 4,
    infoPercent: 3,
    failPercent: 5,
  });
  const endNs = gen.ops[gen.ops.length - 1].timeNs;
  const nem = (at: number, f: string, value: unknown): HistoryOp => ({
    index: -1,
    type: 'info',
    process: 'nemesis',
    f,
    value,
    timeNs: Math.floor(endNs * at),
  });
  const extra = [
    nem(0.1, 'start-partition', { shape: 'halves', cuts: [{ from: 'n1', to: 'n2' }] }),
    nem(0.3, 'stop-partition', null),
    nem(0.45, 'start-kill', { nodes: ['n3'] }),
    nem(0.6, 'stop-kill', { nodes: ['n3'] }),
    nem(0.7, 'start-pause', { nodes: ['n2'] }),
    nem(0.8, 'stop-pause', { nodes: ['n2'] }),
  ];
  const merged = [...gen.ops, ...extra].sort((a, b) => a.timeNs - b.timeNs || (a.process === 'nemesis' ? -1 : 1));
  const ops = merged.map((o, i) => ({ ...o, index: i }));
  validateHistory(ops);
  return ops;
}

function verdictsFor(history: HistoryOp[]): CheckerVerdict[] {
  const lin = checkLinearizable(history.filter((o) => o.process !== 'nemesis').map((o, i) => ({ ...o, index: i })));
  return [
    { name: 'linearizable (register)', valid: lin.valid, stats: { ...lin.stats } },
    {
      name: 'bank',
      valid: false,
      counterexample: {
        kind: 'wrong-total',
        expectedTotal: '100',
        observedTotal: '90',
        note: '<script>alert(1)</script>',
      },
      stats: { reads: 12 },
    },
    { name: 'chain', valid: 'unknown', stats: { reason: 'no node chains given' } },
  ];
}

describe('report.html structure (always runs)', () => {
  const history = sampleHistory();
  const html = renderReport({
    history,
    checkers: verdictsFor(history),
    meta: { seed: 5, nodes: 3, workload: 'register' },
  });

  it('is one self-contained page: no script, no external asset, no link', () => {
    expect(html.startsWith('<!DOCTYPE html>')).toBe(true);
    expect(html).not.toMatch(/<script/i);
    expect(html).not.toMatch(/<link/i);
    expect(html).not.toMatch(/(src|href)\s*=/i);
    expect(html).not.toMatch(/url\(/i);
    expect(html).toContain('&lt;script&gt;alert(1)&lt;/script&gt;'); // counterexamples are escaped
  });

  it('has a latency plot per op kind with ok/fail/info dots, a throughput plot, and shaded nemesis intervals', () => {
    for (const f of ['get', 'put', 'cas']) expect(html).toContain(`<h3>Latency — ${f}:`);
    expect((html.match(/<svg /g) ?? []).length).toBe(4);
    for (const t of ['ok', 'fail', 'info']) {
      expect(html).toContain(`class="dots dots-${t}"`);
      expect(html).toContain(`class="rate rate-${t}"`);
    }
    // 3 intervals in each of 4 plots.
    expect((html.match(/class="nemesis"/g) ?? []).length).toBe(12);
    expect(html).toMatch(/data-fault="partition"/);
    expect(html).toMatch(/data-fault="kill"/);
  });

  it('shows every verdict and the counterexample of a failed checker; the overall verdict follows the checkers', () => {
    expect(html).toMatch(/data-checker="linearizable \(register\)" data-valid="true"/);
    expect(html).toMatch(/data-checker="bank" data-valid="false"/);
    expect(html).toMatch(/data-checker="chain" data-valid="unknown"/);
    expect(html).toContain('Counterexample');
    expect(html).toContain('id="overall">NOT VALID');
    expect(allValid([{ name: 'x', valid: true }])).toBe(true);
    expect(
      allValid([
        { name: 'x', valid: true },
        { name: 'y', valid: 'unknown' },
      ]),
    ).toBe(false);
    expect(allValid([])).toBe(false);
  });

  it('draws no NaN or Infinity, also for an empty history and for a run with only info ops', () => {
    expect(html).not.toMatch(/NaN|Infinity/);
    const empty = renderReport({ history: [], checkers: [] });
    expect(empty).not.toMatch(/NaN|Infinity/);
    expect(empty).toContain('NOT VALID'); // no checker ran: nothing was shown to be valid
    const onlyInfo: HistoryOp[] = [
      { index: 0, type: 'invoke', process: 0, f: 'put', value: { key: 'k', value: 'v' }, timeNs: 0 },
      { index: 1, type: 'info', process: 0, f: 'put', value: null, timeNs: 5_000_000, error: 'timeout' },
      { index: 2, type: 'invoke', process: 1, f: 'put', value: { key: 'k', value: 'w' }, timeNs: 6_000_000 },
    ];
    expect(renderReport({ history: onlyInfo, checkers: [{ name: 'x', valid: true }] })).not.toMatch(/NaN|Infinity/);
  });

  it('writes report.html and results.json', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'qrt-report-'));
    dirs.push(dir);
    const out = await writeReport(dir, { history, checkers: [{ name: 'a', valid: true }], meta: { seed: 5 } });
    expect(out.valid).toBe(true);
    const results = JSON.parse(await readFile(out.resultsPath, 'utf8'));
    expect(results).toMatchObject({ valid: true, meta: { seed: 5 } });
    expect(results.operations).toBeGreaterThan(2_900);
    expect(await readFile(out.reportPath, 'utf8')).toContain('ALL CHECKERS PASSED');
  });
});

describe.skipIf(!chromiumAvailable)(
  `report.html in headless Chromium${chromiumAvailable ? '' : ` (${CHROMIUM_SKIP_REASON})`}`,
  () => {
    it('renders to a non-blank screenshot showing ok, fail and info dots', async () => {
      const dir = await mkdtemp(join(tmpdir(), 'qrt-report-'));
      dirs.push(dir);
      const history = sampleHistory();
      const { reportPath } = await writeReport(dir, { history, checkers: verdictsFor(history), meta: { seed: 5 } });
      const shot = join(dir, 'report.png');
      const browser = await launchChromium({ width: 1100, height: 2400 });
      try {
        const page = await browser.context.newPage();
        // The report is one self-contained file: it must render from file:// with nothing fetched.
        const requests: string[] = [];
        page.on('request', (r) => requests.push(r.url()));
        await page.goto(pathToFileURL(reportPath).href, { waitUntil: 'load' });
        await page.screenshot({ path: shot });
        expect(requests.filter((u) => !u.startsWith('file:') && !u.startsWith('data:'))).toEqual([]);
      } finally {
        await browser.close();
      }
      expect(existsSync(shot)).toBe(true);
      const img = decodePng(await readFile(shot));
      expect(img.width).toBe(1100);
      console.log(`report screenshot: ${shot} ${img.width}x${img.height}, ${distinctColours(img)} colours`);
      expect(distinctColours(img)).toBeGreaterThan(50);
      // The dots: each outcome's colour is on screen (the test history has ok, fail and info ops).
      expect(countColour(img, OUTCOME_COLOURS.ok, 10)).toBeGreaterThan(200);
      expect(countColour(img, OUTCOME_COLOURS.fail, 10)).toBeGreaterThan(20);
      expect(countColour(img, OUTCOME_COLOURS.info, 10)).toBeGreaterThan(20);
    });
  },
);
