// Test helpers: build histories line by line (through the real recorder and parser), and generate
// large register histories that are linearizable by construction.

import { SeededRng } from '../../consensus/rng.js';
import {
  HistoryRecorder,
  MemoryHistorySink,
  parseHistory,
  type HistoryOp,
  type Invocation,
} from '../../node/jepsen/history.js';
import { ManualClock } from '../../node/clock.js';

/** Builds a history with the real recorder; `lines()` parses it back, so every test also validates it. */
export class HistoryBuilder {
  /** Each line one millisecond after the last. */
  readonly clock = new ManualClock(0);
  readonly sink = new MemoryHistorySink();
  readonly recorder = new HistoryRecorder({ sink: this.sink, clock: this.clock, maxBufferedOps: 1_000_000 });
  private readonly open = new Map<number, Invocation>();

  invoke(process: number, f: string, value: unknown): this {
    this.clock.advance(1);
    this.open.set(process, this.recorder.invoke(process, f, value));
    return this;
  }
  ok(process: number, value?: unknown): this {
    return this.done(process, 'ok', value);
  }
  fail(process: number, value?: unknown): this {
    return this.done(process, 'fail', value, 'refused');
  }
  info(process: number, value?: unknown): this {
    return this.done(process, 'info', value, 'timeout');
  }
  nemesis(f: string, value: unknown): this {
    this.clock.advance(1);
    this.recorder.nemesis(f, value);
    return this;
  }
  private done(process: number, type: 'ok' | 'fail' | 'info', value: unknown, error?: string): this {
    this.clock.advance(1);
    const inv = this.open.get(process);
    if (inv === undefined) throw new Error(`test bug: process ${process} has nothing outstanding`);
    this.open.delete(process);
    this.recorder.complete(inv, type, value === undefined ? null : value, error);
    return this;
  }
  async lines(): Promise<HistoryOp[]> {
    await this.recorder.flush();
    return parseHistory(this.sink.text());
  }
}

export interface GeneratedRegisterHistory {
  readonly ops: HistoryOp[];
  readonly infoCount: number;
}

/**
 * A register history that is linearizable by construction: each op gets a real-time window
 * [invoke, complete] on a shared timeline and a linearization point inside it; the sequential model is
 * run at the linearization points (in time order) to produce the results. Some ops end `info` (half of
 * them took effect, half did not) and some `fail` (no effect). Values written are unique.
 */
export function generateRegisterHistory(opts: {
  seed: number;
  operations: number;
  processes: number;
  keys: number;
  infoPercent: number;
  failPercent: number;
}): GeneratedRegisterHistory {
  const rng = new SeededRng(opts.seed);
  type Ev = { t: number; order: number; kind: 'invoke' | 'lin' | 'complete'; op: number };
  interface GenOp {
    process: number;
    f: 'put' | 'get' | 'cas';
    key: string;
    value: string;
    expect: string | null;
    outcome: 'ok' | 'fail' | 'info';
    takesEffect: boolean;
    result: unknown;
  }
  const ops: GenOp[] = [];
  const events: Ev[] = [];
  const state = new Map<string, string | null>();
  const recent = new Map<string, string[]>();
  const freeAt = Array.from({ length: opts.processes }, () => 0);
  const processId = Array.from({ length: opts.processes }, (_, i) => i);
  let nextProcess = opts.processes;
  let order = 0;
  for (let i = 0; i < opts.operations; i++) {
    const slot = rng.nextInt(opts.processes);
    const invokeT = freeAt[slot] + 1 + rng.nextInt(20);
    const linT = invokeT + 1 + rng.nextInt(40);
    const completeT = linT + 1 + rng.nextInt(40);
    freeAt[slot] = completeT;
    const key = `k${rng.nextInt(opts.keys)}`;
    const r = rng.nextInt(100);
    const f = r < 35 ? 'get' : r < 70 ? 'put' : 'cas';
    const roll = rng.nextInt(100);
    const outcome = roll < opts.infoPercent ? 'info' : roll < opts.infoPercent + opts.failPercent ? 'fail' : 'ok';
    const takesEffect = outcome === 'ok' || (outcome === 'info' && rng.nextInt(2) === 0);
    ops.push({
      process: processId[slot],
      f,
      key,
      value: `v${i}`,
      expect: null,
      outcome,
      takesEffect,
      result: undefined,
    });
    if (outcome === 'info') processId[slot] = nextProcess++;
    events.push(
      { t: invokeT, order: order++, kind: 'invoke', op: i },
      { t: linT, order: order++, kind: 'lin', op: i },
      { t: completeT, order: order++, kind: 'complete', op: i },
    );
  }
  // Lin points before completes at the same instant (results must exist before they are reported).
  const rank = { lin: 0, invoke: 1, complete: 2 } as const;
  events.sort((a, b) => a.t - b.t || rank[a.kind] - rank[b.kind] || a.order - b.order);
  // Sweep 1: run the model at linearization points; cas expects a value the key held recently.
  for (const ev of events) {
    if (ev.kind !== 'lin') continue;
    const o = ops[ev.op];
    const cur = state.get(o.key) ?? null;
    if (o.f === 'cas') {
      const seen = recent.get(o.key) ?? [];
      o.expect = seen.length > 0 && rng.nextInt(4) !== 0 ? seen[rng.nextInt(seen.length)] : cur;
    }
    if (!o.takesEffect) continue;
    if (o.f === 'get') o.result = { key: o.key, value: cur };
    else if (o.f === 'put') {
      state.set(o.key, o.value);
      o.result = { key: o.key, value: o.value };
    } else {
      const swapped = cur === o.expect;
      if (swapped) state.set(o.key, o.value);
      o.result = { key: o.key, expect: o.expect, value: o.value, swapped };
    }
    const list = recent.get(o.key) ?? [];
    const now = state.get(o.key) ?? null;
    if (now !== null && !list.includes(now)) list.push(now);
    if (list.length > 3) list.shift();
    recent.set(o.key, list);
  }
  // Sweep 2: write the history.
  const b = new HistoryBuilderSync();
  for (const ev of events) {
    const o = ops[ev.op];
    if (ev.kind === 'invoke') {
      const v =
        o.f === 'get'
          ? { key: o.key }
          : o.f === 'put'
            ? { key: o.key, value: o.value }
            : { key: o.key, expect: o.expect, value: o.value };
      b.line(ev.t, 'invoke', o.process, o.f, v);
    } else if (ev.kind === 'complete') {
      if (o.outcome === 'ok') b.line(ev.t, 'ok', o.process, o.f, o.result);
      else if (o.outcome === 'fail') b.line(ev.t, 'fail', o.process, o.f, null, 'refused');
      else b.line(ev.t, 'info', o.process, o.f, null, 'timeout');
    }
  }
  return { ops: b.ops, infoCount: ops.filter((o) => o.outcome === 'info').length };
}

class HistoryBuilderSync {
  readonly ops: HistoryOp[] = [];
  line(t: number, type: HistoryOp['type'], process: number, f: string, value: unknown, error?: string): void {
    this.ops.push({
      index: this.ops.length,
      type,
      process,
      f,
      value,
      timeNs: t * 1_000_000,
      ...(error !== undefined ? { error } : {}),
    });
  }
}
