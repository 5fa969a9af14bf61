// The run's report: DIR/report.html (one self-contained page: inline SVG and CSS, no script, no
// external asset, so it opens from a CI artefact or an e-mail) and DIR/results.json (the verdicts).
//
// Plots, all on one time axis (seconds since the run started), with nemesis intervals shaded:
//  - latency over time, one plot per operation kind (f), log scale, a dot per operation coloured by
//    outcome: ok green, fail red, info orange (info dots sit at their give-up time);
//  - throughput over time: completions per second per outcome.
// Then each checker's verdict with its statistics and, when it failed, its counterexample.
//
// The run's verdict (runVerdict) is shown at the top and written to results.json: PASS only when every
// checker passed AND every requested fault kind was injected at least once; a run that checked a
// fault-free cluster proves nothing about faults, so it is INCONCLUSIVE, not PASS.

import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { nemesisIntervals, pairHistory, type HistoryOp, type NemesisInterval, type Operation } from './history.js';

/** Dots drawn per latency plot; beyond it, every k-th operation is drawn (the count is printed). */
export const MAX_POINTS_PER_PLOT = 20_000;
/** Characters of one counterexample shown in the page (results.json keeps it whole). */
export const MAX_COUNTEREXAMPLE_CHARS = 20_000;
/** Buckets across the run in the throughput plot. */
export const THROUGHPUT_BUCKETS = 120;

export const OUTCOME_COLOURS = { ok: '#1a9641', fail: '#d7191c', info: '#fd8d3c' } as const;
const FAULT_COLOURS: Record<string, string> = {
  partition: '#9ecae1',
  kill: '#fcbba1',
  pause: '#dadaeb',
  membership: '#c7e9c0',
};
const FALLBACK_FAULT_COLOUR = '#e0e0e0';

export interface CheckerVerdict {
  readonly name: string;
  readonly valid: boolean | 'unknown';
  readonly counterexample?: unknown;
  readonly stats?: Readonly<Record<string, unknown>>;
}

/** The fault kinds a run asked for and how many of each took effect (NemesisRunner.injected()). */
export interface FaultTally {
  readonly requested: readonly string[];
  readonly injected: Readonly<Record<string, number>>;
}

/**
 * PASS: every checker passed and every requested fault kind was injected. FAIL: a checker found a
 * violation (whatever else happened). INCONCLUSIVE: nothing failed, but something is unproven — a
 * checker could not decide, or a requested kind of fault never took effect.
 */
export type RunVerdict = 'PASS' | 'FAIL' | 'INCONCLUSIVE';

/** The exit status of `quorate jepsen` for each verdict (2 is taken by usage errors). */
export const VERDICT_EXIT_CODES: Readonly<Record<RunVerdict, number>> = { PASS: 0, FAIL: 1, INCONCLUSIVE: 3 };

export interface VerdictResult {
  readonly verdict: RunVerdict;
  /** Why the verdict is not PASS, one sentence each (empty for PASS). */
  readonly reasons: readonly string[];
}

/** The run's verdict from its checkers and, when given, its fault tally. Pure. */
export function runVerdict(checkers: readonly CheckerVerdict[], faults?: FaultTally): VerdictResult {
  if (checkers.length === 0) return { verdict: 'FAIL', reasons: ['no checker ran: nothing was shown to be valid'] };
  const failed = checkers.filter((c) => c.valid === false);
  if (failed.length > 0) return { verdict: 'FAIL', reasons: failed.map((c) => `checker ${c.name} failed`) };
  const reasons = checkers.filter((c) => c.valid !== true).map((c) => `checker ${c.name} could not decide`);
  for (const kind of faults?.requested ?? [])
    if ((faults?.injected[kind] ?? 0) === 0) reasons.push(`no ${kind} fault was injected`);
  return reasons.length > 0 ? { verdict: 'INCONCLUSIVE', reasons } : { verdict: 'PASS', reasons: [] };
}

/** "partition 2, kill 0": the tally in the order the kinds were requested. */
export function faultTallyText(faults: FaultTally): string {
  return faults.requested.map((k) => `${k} ${faults.injected[k] ?? 0}`).join(', ');
}

export interface ReportInput {
  readonly title?: string;
  readonly history: readonly HistoryOp[];
  readonly checkers: readonly CheckerVerdict[];
  /** The requested fault kinds and how many took effect; without it the verdict rests on the checkers alone. */
  readonly faults?: FaultTally;
  /** Run parameters shown at the top (seed, nodes, workload, nemesis, network kind...). */
  readonly meta?: Readonly<Record<string, string | number | boolean>>;
}

/** True only when every checker passed (necessary for a PASS; runVerdict also asks for the faults). */
export function allValid(checkers: readonly CheckerVerdict[]): boolean {
  return checkers.length > 0 && checkers.every((c) => c.valid === true);
}

export function escapeHtml(s: string): string {
  return s
    .replace(/&/g, '&amp;')
    .replace(/</g, '&lt;')
    .replace(/>/g, '&gt;')
    .replace(/"/g, '&quot;')
    .replace(/'/g, '&#39;');
}

const W = 960;
const H = 220;
const M = { left: 64, right: 16, top: 12, bottom: 34 };
const PW = W - M.left - M.right;
const PH = H - M.top - M.bottom;

function niceStep(range: number, target: number): number {
  const raw = range / Math.max(1, target);
  const mag = 10 ** Math.floor(Math.log10(raw));
  for (const k of [1, 2, 5, 10]) if (raw <= k * mag) return k * mag;
  return 10 * mag;
}

function fmt(n: number): string {
  return Number.isInteger(n) ? String(n) : n.toFixed(Math.abs(n) < 1 ? 2 : 1);
}

interface TimeAxis {
  readonly endS: number;
  x(s: number): number;
}

function shading(intervals: readonly NemesisInterval[], axis: TimeAxis): string {
  return intervals
    .map((iv) => {
      const x0 = axis.x(iv.startNs / 1e9);
      const x1 = axis.x((iv.stopNs ?? axis.endS * 1e9) / 1e9);
      const colour = FAULT_COLOURS[iv.fault] ?? FALLBACK_FAULT_COLOUR;
      return `<rect class="nemesis" data-fault="${escapeHtml(iv.fault)}" x="${x0.toFixed(1)}" y="${M.top}" width="${Math.max(1, x1 - x0).toFixed(1)}" height="${PH}" fill="${colour}" fill-opacity="0.6"><title>${escapeHtml(iv.fault)} ${fmt(iv.startNs / 1e9)}–${iv.stopNs === undefined ? 'end' : fmt(iv.stopNs / 1e9)} s</title></rect>`;
    })
    .join('');
}

function timeTicks(axis: TimeAxis): string {
  const step = niceStep(axis.endS, 10);
  let out = '';
  for (let t = 0; t <= axis.endS + 1e-9; t += step) {
    const x = axis.x(t);
    out += `<line x1="${x.toFixed(1)}" y1="${M.top + PH}" x2="${x.toFixed(1)}" y2="${M.top + PH + 4}" stroke="#333"/><text x="${x.toFixed(1)}" y="${M.top + PH + 16}" text-anchor="middle">${fmt(t)}</text>`;
  }
  out += `<text x="${M.left + PW / 2}" y="${H - 4}" text-anchor="middle">time (s)</text>`;
  return out;
}

function frame(title: string, body: string, yLabel: string): string {
  return `<svg xmlns="http://www.w3.org/2000/svg" class="plot" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${escapeHtml(title)}">
<rect x="${M.left}" y="${M.top}" width="${PW}" height="${PH}" fill="#fff" stroke="#999"/>
${body}
<text x="14" y="${M.top + PH / 2}" transform="rotate(-90 14 ${M.top + PH / 2})" text-anchor="middle">${escapeHtml(yLabel)}</text>
</svg>`;
}

function latencyPlot(
  f: string,
  ops: readonly Operation[],
  intervals: readonly NemesisInterval[],
  axis: TimeAxis,
): string {
  // Info ops without a completion line have no latency: they are drawn at the end of the run.
  const lat = (o: Operation): number => Math.max(0.001, ((o.completeTimeNs ?? axis.endS * 1e9) - o.invokeTimeNs) / 1e6);
  const maxMs = Math.max(1, ...ops.map(lat));
  const lo = -3; // 1 µs floor, in log10 ms
  const hi = Math.ceil(Math.log10(maxMs) + 0.01);
  const minShown = Math.max(lo, Math.floor(Math.log10(Math.min(...ops.map(lat)))));
  const y = (ms: number): number => M.top + PH - ((Math.log10(ms) - minShown) / Math.max(1, hi - minShown)) * PH;
  let ticks = '';
  for (let e = minShown; e <= hi; e++) {
    const yy = y(10 ** e);
    ticks += `<line x1="${M.left - 4}" y1="${yy.toFixed(1)}" x2="${M.left + PW}" y2="${yy.toFixed(1)}" stroke="#eee"/><text x="${M.left - 6}" y="${(yy + 4).toFixed(1)}" text-anchor="end">${fmt(10 ** e)}</text>`;
  }
  const stride = Math.max(1, Math.ceil(ops.length / MAX_POINTS_PER_PLOT));
  const byOutcome: Record<'ok' | 'fail' | 'info', string[]> = { ok: [], fail: [], info: [] };
  for (let i = 0; i < ops.length; i += stride) {
    const o = ops[i];
    const cx = axis.x(o.invokeTimeNs / 1e9).toFixed(1);
    const cy = y(lat(o)).toFixed(1);
    // One path per colour (a tiny square per op) keeps the page small: 10k ops is ~150 kB, not 1 MB.
    byOutcome[o.type].push(`M${cx} ${cy}h2.6v2.6h-2.6z`);
  }
  const dots = (['ok', 'info', 'fail'] as const)
    .map((t) =>
      byOutcome[t].length > 0
        ? `<path class="dots dots-${t}" fill="${OUTCOME_COLOURS[t]}" d="${byOutcome[t].join('')}"/>`
        : '',
    )
    .join('');
  const counts = { ok: 0, fail: 0, info: 0 };
  for (const o of ops) counts[o.type]++;
  const caption = `${escapeHtml(f)}: ${ops.length} ops (ok ${counts.ok}, fail ${counts.fail}, info ${counts.info})${stride > 1 ? `, every ${stride}th drawn` : ''}`;
  return (
    `<h3>Latency — ${caption}</h3>` +
    frame(`latency of ${f}`, shading(intervals, axis) + ticks + timeTicks(axis) + dots, 'latency (ms, log)')
  );
}

function throughputPlot(ops: readonly Operation[], intervals: readonly NemesisInterval[], axis: TimeAxis): string {
  const bucketS = Math.max(axis.endS / THROUGHPUT_BUCKETS, 0.001);
  const n = Math.max(1, Math.ceil(axis.endS / bucketS));
  const series: Record<'ok' | 'fail' | 'info', number[]> = {
    ok: new Array(n).fill(0),
    fail: new Array(n).fill(0),
    info: new Array(n).fill(0),
  };
  for (const o of ops) {
    const t = (o.completeTimeNs ?? o.invokeTimeNs) / 1e9;
    series[o.type][Math.min(n - 1, Math.floor(t / bucketS))] += 1 / bucketS;
  }
  const maxRate = Math.max(1, ...series.ok, ...series.fail, ...series.info);
  const step = niceStep(maxRate, 5);
  const top = Math.ceil(maxRate / step) * step;
  const y = (r: number): number => M.top + PH - (r / top) * PH;
  let ticks = '';
  for (let r = 0; r <= top + 1e-9; r += step) {
    ticks += `<line x1="${M.left - 4}" y1="${y(r).toFixed(1)}" x2="${M.left + PW}" y2="${y(r).toFixed(1)}" stroke="#eee"/><text x="${M.left - 6}" y="${(y(r) + 4).toFixed(1)}" text-anchor="end">${fmt(r)}</text>`;
  }
  const lines = (['ok', 'info', 'fail'] as const)
    .map((t) => {
      const pts = series[t].map((r, i) => `${axis.x((i + 0.5) * bucketS).toFixed(1)},${y(r).toFixed(1)}`).join(' ');
      return `<polyline class="rate rate-${t}" fill="none" stroke="${OUTCOME_COLOURS[t]}" stroke-width="2" points="${pts}"/>`;
    })
    .join('');
  return (
    `<h3>Throughput — completions per second (bucket ${fmt(bucketS)} s)</h3>` +
    frame('throughput', shading(intervals, axis) + ticks + timeTicks(axis) + lines, 'ops/s')
  );
}

function legend(intervals: readonly NemesisInterval[]): string {
  const faults = [...new Set(intervals.map((i) => i.fault))];
  const swatch = (colour: string, label: string): string =>
    `<span class="swatch"><i style="background:${colour}"></i>${escapeHtml(label)}</span>`;
  return `<p class="legend">${swatch(OUTCOME_COLOURS.ok, 'ok')}${swatch(OUTCOME_COLOURS.fail, 'fail')}${swatch(OUTCOME_COLOURS.info, 'info (outcome unknown)')}${faults
    .map((f) => swatch(FAULT_COLOURS[f] ?? FALLBACK_FAULT_COLOUR, `nemesis: ${f}`))
    .join('')}</p>`;
}

/** Line width under which a JSON value stays on one line: one operation per line reads like a history. */
const COMPACT_JSON_WIDTH = 140;

/** JSON, indented only where a value does not fit on one line. */
export function compactJson(value: unknown, indent = ''): string {
  const flat = JSON.stringify(value);
  if (flat === undefined) return 'null';
  if (flat.length + indent.length <= COMPACT_JSON_WIDTH || value === null || typeof value !== 'object') return flat;
  const inner = indent + '  ';
  if (Array.isArray(value)) return `[\n${value.map((v) => inner + compactJson(v, inner)).join(',\n')}\n${indent}]`;
  const entries = Object.entries(value as Record<string, unknown>).filter(([, v]) => v !== undefined);
  return `{\n${entries.map(([k, v]) => `${inner}${JSON.stringify(k)}: ${compactJson(v, inner)}`).join(',\n')}\n${indent}}`;
}

function statText(val: unknown): string {
  if (typeof val === 'number' && !Number.isInteger(val)) return val.toFixed(1);
  return typeof val === 'object' ? JSON.stringify(val) : String(val);
}

function verdictLabel(v: boolean | 'unknown'): { text: string; cls: string } {
  if (v === true) return { text: 'PASS', cls: 'pass' };
  if (v === false) return { text: 'FAIL', cls: 'fail' };
  return { text: 'UNKNOWN', cls: 'unknown' };
}

function verdicts(checkers: readonly CheckerVerdict[]): string {
  const rows = checkers
    .map((c) => {
      const v = verdictLabel(c.valid);
      const stats =
        c.stats === undefined
          ? ''
          : Object.entries(c.stats)
              .map(([k, val]) => `${escapeHtml(k)}=${escapeHtml(statText(val))}`)
              .join(', ');
      let cx = '';
      if (c.counterexample !== undefined) {
        let text = compactJson(c.counterexample);
        if (text.length > MAX_COUNTEREXAMPLE_CHARS)
          text = `${text.slice(0, MAX_COUNTEREXAMPLE_CHARS)}\n… (${text.length - MAX_COUNTEREXAMPLE_CHARS} more characters in results.json)`;
        cx = `<details class="counterexample" open><summary>Counterexample</summary><pre>${escapeHtml(text)}</pre></details>`;
      }
      return `<tr class="checker" data-checker="${escapeHtml(c.name)}" data-valid="${String(c.valid)}"><td>${escapeHtml(c.name)}</td><td class="verdict ${v.cls}">${v.text}</td><td class="stats">${stats}${cx}</td></tr>`;
    })
    .join('\n');
  return `<table class="verdicts"><thead><tr><th>checker</th><th>verdict</th><th>details</th></tr></thead><tbody>\n${rows}\n</tbody></table>`;
}

const CSS = `
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#222;background:#fafafa}
h1{font-size:22px;margin:0 0 4px} h2{font-size:18px;margin:24px 0 8px} h3{font-size:14px;margin:16px 0 4px;font-weight:600}
.overall{display:inline-block;padding:4px 12px;border-radius:4px;color:#fff;font-weight:700}
.overall.pass{background:${OUTCOME_COLOURS.ok}} .overall.fail{background:${OUTCOME_COLOURS.fail}} .overall.inconclusive{background:#b8860b}
.reasons{margin:4px 0 8px}
table{border-collapse:collapse;background:#fff} td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
.verdict{font-weight:700} .verdict.pass{color:${OUTCOME_COLOURS.ok}} .verdict.fail{color:${OUTCOME_COLOURS.fail}} .verdict.unknown{color:#b8860b}
pre{max-height:480px;overflow:auto;background:#f4f4f4;padding:8px;font-size:12px;white-space:pre-wrap;overflow-wrap:anywhere}
table.verdicts{width:100%;table-layout:fixed} .verdicts th:nth-child(1){width:180px} .verdicts th:nth-child(2){width:90px}
svg.plot{display:block;background:#fff;font-size:11px} .legend .swatch{margin-right:14px}
.legend i{display:inline-block;width:12px;height:12px;margin-right:4px;vertical-align:-1px;border:1px solid #999}
.meta td:first-child{color:#666}
`;

/** Renders the report page. Pure: same input, same HTML. */
export function renderReport(input: ReportInput): string {
  const ops = pairHistory(input.history);
  const intervals = nemesisIntervals(input.history);
  const lastNs = input.history.length > 0 ? input.history[input.history.length - 1].timeNs : 0;
  const endS = Math.max(lastNs / 1e9, 0.001);
  const axis: TimeAxis = { endS, x: (s) => M.left + (Math.min(s, endS) / endS) * PW };
  const byF = new Map<string, Operation[]>();
  for (const o of ops) {
    const list = byF.get(o.f);
    if (list === undefined) byF.set(o.f, [o]);
    else list.push(o);
  }
  const { verdict, reasons } = runVerdict(input.checkers, input.faults);
  const banner = { PASS: 'ALL CHECKERS PASSED', FAIL: 'NOT VALID', INCONCLUSIVE: 'INCONCLUSIVE' }[verdict];
  const faultLine =
    input.faults === undefined
      ? ''
      : `<p class="faults" id="faults">Faults injected, by requested kind: ${escapeHtml(faultTallyText(input.faults))}</p>`;
  const reasonList =
    reasons.length === 0
      ? ''
      : `<ul class="reasons" id="reasons">${reasons.map((r) => `<li>${escapeHtml(r)}</li>`).join('')}</ul>`;
  const title = input.title ?? 'quorate jepsen report';
  const meta = Object.entries(input.meta ?? {})
    .map(([k, v]) => `<tr><td>${escapeHtml(k)}</td><td>${escapeHtml(String(v))}</td></tr>`)
    .join('');
  const plots = [...byF.keys()].sort().map((f) => latencyPlot(f, byF.get(f)!, intervals, axis));
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>${CSS}</style></head>
<body>
<h1>${escapeHtml(title)}</h1>
<p><span class="overall ${verdict.toLowerCase()}" data-verdict="${verdict}" id="overall">${banner}</span>
 ${ops.length} operations over ${fmt(endS)} s, ${intervals.length} nemesis intervals</p>
${reasonList}${faultLine}
${meta === '' ? '' : `<table class="meta">${meta}</table>`}
<h2>Checkers</h2>
${verdicts(input.checkers)}
<h2>Operations</h2>
${legend(intervals)}
${plots.join('\n')}
${throughputPlot(ops, intervals, axis)}
</body></html>
`;
}

export interface RunResults {
  /** The run's verdict (runVerdict); the exit status follows it (VERDICT_EXIT_CODES). */
  readonly verdict: RunVerdict;
  readonly verdictReasons: readonly string[];
  /** Every checker passed (a PASS also needs every requested fault kind injected). */
  readonly valid: boolean;
  readonly faults?: FaultTally;
  readonly checkers: readonly CheckerVerdict[];
  readonly meta: Readonly<Record<string, string | number | boolean>>;
  readonly operations: number;
}

/** Writes DIR/report.html and DIR/results.json; returns their paths, whether every checker passed, and the verdict. */
export async function writeReport(
  dir: string,
  input: ReportInput,
): Promise<{ reportPath: string; resultsPath: string; valid: boolean } & VerdictResult> {
  await mkdir(dir, { recursive: true });
  const reportPath = join(dir, 'report.html');
  const resultsPath = join(dir, 'results.json');
  const valid = allValid(input.checkers);
  const { verdict, reasons } = runVerdict(input.checkers, input.faults);
  const results: RunResults = {
    verdict,
    verdictReasons: reasons,
    valid,
    ...(input.faults ? { faults: input.faults } : {}),
    checkers: input.checkers,
    meta: input.meta ?? {},
    operations: pairHistory(input.history).length,
  };
  await writeFile(reportPath, renderReport(input), 'utf8');
  await writeFile(resultsPath, JSON.stringify(results, null, 2) + '\n', 'utf8');
  return { reportPath, resultsPath, valid, verdict, reasons };
}
