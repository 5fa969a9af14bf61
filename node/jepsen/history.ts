// Histories in Jepsen's form. Every client operation is recorded twice: an `invoke` when the client
// is about to send it, then exactly one completion from the same process — `ok` (it happened),
// `fail` (it certainly did not happen) or `info` (the outcome is unknown: a timeout, a dropped
// connection). The order of lines *is* the real-time order: the recorder is called on one JS thread,
// so `index` order is exact, and checkers use it rather than the timestamps (which only feed plots).
//
// A process that got an `info` may never invoke again under the same id: its operation may still be
// in flight, and a process has at most one operation outstanding (Jepsen's rule). Clients take a
// fresh process id after an `info`.
//
// Nemesis events (faults starting and stopping) are recorded as single `info` lines whose process
// is the string "nemesis"; they are not paired.

import { open, readFile, stat, type FileHandle } from 'node:fs/promises';
import type { Clock } from '../clock.js';
import { harnessClock } from './clock.js';
import { JepsenError, JepsenErrorCode, invariant } from './errors.js';

export type OpType = 'invoke' | 'ok' | 'fail' | 'info';
export type CompletionType = 'ok' | 'fail' | 'info';
export type ProcessId = number | 'nemesis';
export const NEMESIS_PROCESS = 'nemesis' as const;

/** One line of a history. `value` is any JSON value; its shape depends on `f` and the workload. */
export interface HistoryOp {
  /** 0-based position in the history; lines are consecutive. */
  readonly index: number;
  readonly type: OpType;
  readonly process: ProcessId;
  /** The operation's function: "put", "get", "cas", "transfer", "read", "append", "start-partition"... */
  readonly f: string;
  readonly value: unknown;
  /** Nanoseconds since the recorder started, from a monotonic clock (never goes back). */
  readonly timeNs: number;
  /** For fail and info: why, in words (a typed error's code where there is one). */
  readonly error?: string;
  /** The node the client talked to, when known (report and debugging only). */
  readonly node?: string;
}

// ---------------------------------------------------------------------------------------------
// Clock: the node layer's one Clock (node/clock.ts), its monotonic time only. Wall time (which may
// jump under NTP) never stamps a line: a history's times must not go back.
// ---------------------------------------------------------------------------------------------

/** What the recorder reads of a Clock: monotonic milliseconds (fractional: sub-millisecond resolution). */
export type HistoryClock = Pick<Clock, 'monotonicMs'>;

/** Nanoseconds per millisecond: a line's `timeNs` is the clock's monotonicMs, scaled and rounded. */
const NS_PER_MS = 1_000_000;

// ---------------------------------------------------------------------------------------------
// Sinks: where JSON lines go. A real file and an in-memory twin, both passing one test suite.
// ---------------------------------------------------------------------------------------------

export interface HistorySink {
  /** Appends text (whole lines). Resolves when the text is handed to the OS (or stored). */
  write(text: string): Promise<void>;
  close(): Promise<void>;
}

export class FileHistorySink implements HistorySink {
  private constructor(private readonly handle: FileHandle) {}
  /** Creates (truncates) `path`. */
  static async create(path: string): Promise<FileHistorySink> {
    return new FileHistorySink(await open(path, 'w'));
  }
  async write(text: string): Promise<void> {
    await this.handle.appendFile(text, 'utf8');
  }
  async close(): Promise<void> {
    // The history is the evidence of the run: make it durable before we say it is closed.
    await this.handle.sync();
    await this.handle.close();
  }
}

export class MemoryHistorySink implements HistorySink {
  private readonly chunks: string[] = [];
  closed = false;
  async write(text: string): Promise<void> {
    invariant(!this.closed, 'write to a closed MemoryHistorySink');
    this.chunks.push(text);
  }
  async close(): Promise<void> {
    this.closed = true;
  }
  text(): string {
    return this.chunks.join('');
  }
}

// ---------------------------------------------------------------------------------------------
// Recorder
// ---------------------------------------------------------------------------------------------

/**
 * Lines held in memory before the recorder refuses more. Clients `await recorder.ready()` before
 * each invoke, which waits while the buffer is above half this limit, so the limit is only reached
 * when the sink is stuck. 10,000 lines of ~200 bytes is ~2 MB.
 */
export const DEFAULT_MAX_BUFFERED_OPS = 10_000;
/** A flush starts once this many lines wait; fewer lines are flushed by `flush()` or `close()`. */
export const DEFAULT_FLUSH_THRESHOLD_OPS = 256;

export interface HistoryRecorderOptions {
  readonly sink: HistorySink;
  /** Default: the harness's real clock (jepsen/clock.ts); tests pass a ManualClock. */
  readonly clock?: HistoryClock;
  readonly maxBufferedOps?: number;
  readonly flushThresholdOps?: number;
}

/** What `invoke` returns; pass it back to complete the operation. */
export interface Invocation {
  readonly process: number;
  readonly f: string;
  readonly index: number;
  readonly timeNs: number;
}

export class HistoryRecorder {
  private readonly sink: HistorySink;
  private readonly clock: HistoryClock;
  private readonly maxBufferedOps: number;
  private readonly flushThresholdOps: number;
  private readonly startMs: number;
  private buffer: string[] = [];
  private nextIndex = 0;
  private lastTimeNs = 0;
  /** Invariant: at most one outstanding invocation per process (Jepsen's process model). */
  private readonly outstanding = new Map<number, Invocation>();
  /** Processes that ended with `info`: they may never invoke again. */
  private readonly crashed = new Set<number>();
  private flushing: Promise<void> = Promise.resolve();
  private flushInFlight = false;
  private failure: unknown = undefined;
  private closed = false;
  private waiters: Array<() => void> = [];

  constructor(options: HistoryRecorderOptions) {
    this.sink = options.sink;
    this.clock = options.clock ?? harnessClock;
    this.maxBufferedOps = options.maxBufferedOps ?? DEFAULT_MAX_BUFFERED_OPS;
    this.flushThresholdOps = options.flushThresholdOps ?? DEFAULT_FLUSH_THRESHOLD_OPS;
    invariant(this.maxBufferedOps >= 2 && this.flushThresholdOps >= 1, 'recorder limits must be positive');
    this.startMs = this.clock.monotonicMs();
  }

  /** Lines recorded so far. */
  get length(): number {
    return this.nextIndex;
  }

  /** Nanoseconds since the recorder started (what `timeNs` of the next line would be). */
  elapsedNs(): number {
    return Math.round((this.clock.monotonicMs() - this.startMs) * NS_PER_MS);
  }

  /** Outstanding invocations (for a final sweep that marks them `info` at shutdown). */
  pending(): Invocation[] {
    return [...this.outstanding.values()];
  }

  /** Resolves once the buffer has room (below half its limit). Await it before each `invoke`. */
  async ready(): Promise<void> {
    while (this.buffer.length >= this.maxBufferedOps / 2) {
      this.throwIfUnusable();
      this.startFlush();
      await new Promise<void>((resolve) => this.waiters.push(resolve));
    }
    this.throwIfUnusable();
  }

  invoke(process: number, f: string, value: unknown, node?: string): Invocation {
    invariant(
      Number.isSafeInteger(process) && process >= 0,
      `process id must be a non-negative integer, got ${process}`,
    );
    invariant(
      !this.outstanding.has(process),
      () => `process ${process} invoked ${f} while ${this.outstanding.get(process)?.f} is outstanding`,
    );
    invariant(
      !this.crashed.has(process),
      `process ${process} ended with info and may not invoke again; use a fresh process id`,
    );
    const op = this.append({ type: 'invoke', process, f, value, node });
    const inv: Invocation = { process, f, index: op.index, timeNs: op.timeNs };
    this.outstanding.set(process, inv);
    return inv;
  }

  ok(inv: Invocation, value: unknown, node?: string): HistoryOp {
    return this.complete(inv, 'ok', value, undefined, node);
  }

  fail(inv: Invocation, value: unknown, error: string, node?: string): HistoryOp {
    return this.complete(inv, 'fail', value, error, node);
  }

  info(inv: Invocation, value: unknown, error: string, node?: string): HistoryOp {
    return this.complete(inv, 'info', value, error, node);
  }

  complete(inv: Invocation, type: CompletionType, value: unknown, error?: string, node?: string): HistoryOp {
    const current = this.outstanding.get(inv.process);
    invariant(
      current !== undefined && current.index === inv.index,
      () => `completion for process ${inv.process} op ${inv.index} that is not outstanding`,
    );
    this.outstanding.delete(inv.process);
    if (type === 'info') this.crashed.add(inv.process);
    return this.append({ type, process: inv.process, f: inv.f, value, error, node });
  }

  /** A nemesis event: one `info` line from process "nemesis" (e.g. f "start-partition", value the cuts). */
  nemesis(f: string, value: unknown): HistoryOp {
    return this.append({ type: 'info', process: NEMESIS_PROCESS, f, value });
  }

  /** Writes every buffered line to the sink. */
  async flush(): Promise<void> {
    this.startFlush();
    while (this.flushInFlight || this.buffer.length > 0) {
      await this.flushing;
      this.throwIfFailed();
      if (this.buffer.length > 0) this.startFlush();
    }
    this.throwIfFailed();
  }

  /** Flushes and closes the sink. Outstanding invocations stay open: the reader treats them as `info`. */
  async close(): Promise<void> {
    if (this.closed) return;
    await this.flush();
    this.closed = true;
    await this.sink.close();
    this.wakeWaiters();
  }

  private append(fields: Omit<HistoryOp, 'index' | 'timeNs'>): HistoryOp {
    this.throwIfUnusable();
    if (this.buffer.length >= this.maxBufferedOps) {
      this.startFlush();
      throw new JepsenError(
        JepsenErrorCode.HistoryBufferFull,
        `history buffer holds ${this.buffer.length} lines (limit ${this.maxBufferedOps}); await recorder.ready() before invoking`,
        {
          maxBufferedOps: this.maxBufferedOps,
        },
      );
    }
    // Monotonic time does not go back, but a clamp keeps the file's promise even for an injected clock.
    const timeNs = Math.max(this.lastTimeNs, this.elapsedNs());
    this.lastTimeNs = timeNs;
    const op: HistoryOp = {
      index: this.nextIndex++,
      type: fields.type,
      process: fields.process,
      f: fields.f,
      value: fields.value ?? null,
      timeNs,
    };
    const line: Record<string, unknown> = { ...op };
    if (fields.error !== undefined) line.error = fields.error;
    if (fields.node !== undefined) line.node = fields.node;
    this.buffer.push(JSON.stringify(line));
    if (this.buffer.length >= this.flushThresholdOps) this.startFlush();
    return {
      ...op,
      ...(fields.error !== undefined ? { error: fields.error } : {}),
      ...(fields.node !== undefined ? { node: fields.node } : {}),
    };
  }

  private startFlush(): void {
    if (this.flushInFlight || this.buffer.length === 0 || this.failure !== undefined) return;
    const lines = this.buffer;
    this.buffer = [];
    this.flushInFlight = true;
    this.flushing = this.sink
      .write(lines.join('\n') + '\n')
      .catch((err: unknown) => {
        this.failure = err;
      })
      .finally(() => {
        this.flushInFlight = false;
        this.wakeWaiters();
        if (this.buffer.length >= this.flushThresholdOps) this.startFlush();
      });
  }

  private wakeWaiters(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const resolve of w) resolve();
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) {
      throw new JepsenError(
        JepsenErrorCode.HistoryClosed,
        'the history sink failed; the run cannot be checked',
        {},
        { cause: this.failure },
      );
    }
  }

  private throwIfUnusable(): void {
    this.throwIfFailed();
    if (this.closed) throw new JepsenError(JepsenErrorCode.HistoryClosed, 'the history recorder is closed');
  }
}

// ---------------------------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------------------------

/** A line longer than this is refused: no operation of ours comes near it (a list read of 10k elements is ~200 kB). */
export const MAX_HISTORY_LINE_BYTES = 4 * 1024 * 1024;
/** A history file larger than this is refused rather than read into memory. */
export const MAX_HISTORY_FILE_BYTES = 1024 * 1024 * 1024;

const OP_TYPES: ReadonlySet<string> = new Set(['invoke', 'ok', 'fail', 'info']);

function malformed(lineNo: number, why: string, line?: string): JepsenError {
  return new JepsenError(JepsenErrorCode.HistoryMalformed, `history line ${lineNo}: ${why}`, {
    lineNo,
    line: line?.slice(0, 200),
  });
}

/**
 * Parses JSON lines and validates the history as a whole: consecutive indexes, non-decreasing times,
 * every completion matching its process's outstanding invocation (same `f`), no invocation while one is
 * outstanding, none after an `info`. Blank lines are skipped.
 */
export function parseHistory(text: string): HistoryOp[] {
  const ops: HistoryOp[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === '') continue;
    const lineNo = i + 1;
    if (Buffer.byteLength(line, 'utf8') > MAX_HISTORY_LINE_BYTES) {
      throw new JepsenError(
        JepsenErrorCode.HistoryLineTooLong,
        `history line ${lineNo} is over ${MAX_HISTORY_LINE_BYTES} bytes`,
        { lineNo },
      );
    }
    let raw: unknown;
    try {
      raw = JSON.parse(line);
    } catch (err) {
      throw malformed(lineNo, `not JSON (${(err as Error).message})`, line);
    }
    ops.push(toOp(raw, lineNo, line));
  }
  validateHistory(ops);
  return ops;
}

function toOp(raw: unknown, lineNo: number, line: string): HistoryOp {
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw malformed(lineNo, 'not an object', line);
  const r = raw as Record<string, unknown>;
  if (!Number.isSafeInteger(r.index) || (r.index as number) < 0)
    throw malformed(lineNo, 'index must be a non-negative integer', line);
  if (typeof r.type !== 'string' || !OP_TYPES.has(r.type))
    throw malformed(lineNo, `type must be invoke, ok, fail or info`, line);
  const processOk = r.process === NEMESIS_PROCESS || (Number.isSafeInteger(r.process) && (r.process as number) >= 0);
  if (!processOk) throw malformed(lineNo, 'process must be a non-negative integer or "nemesis"', line);
  if (typeof r.f !== 'string' || r.f === '') throw malformed(lineNo, 'f must be a non-empty string', line);
  if (!('value' in r)) throw malformed(lineNo, 'value is missing (use null)', line);
  if (typeof r.timeNs !== 'number' || !Number.isFinite(r.timeNs) || r.timeNs < 0)
    throw malformed(lineNo, 'timeNs must be a non-negative number', line);
  if (r.error !== undefined && typeof r.error !== 'string') throw malformed(lineNo, 'error must be a string', line);
  if (r.node !== undefined && typeof r.node !== 'string') throw malformed(lineNo, 'node must be a string', line);
  const op: HistoryOp = {
    index: r.index as number,
    type: r.type as OpType,
    process: r.process as ProcessId,
    f: r.f,
    value: r.value,
    timeNs: r.timeNs,
    ...(r.error !== undefined ? { error: r.error as string } : {}),
    ...(r.node !== undefined ? { node: r.node as string } : {}),
  };
  return op;
}

/** Throws JepsenError(HistoryMalformed) on the first rule an in-memory history breaks. */
export function validateHistory(ops: readonly HistoryOp[]): void {
  const outstanding = new Map<number, HistoryOp>();
  const crashed = new Set<number>();
  let lastTimeNs = 0;
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i];
    const where = i + 1;
    if (op.index !== i) throw malformed(where, `index ${op.index} where ${i} was expected`);
    if (op.timeNs < lastTimeNs) throw malformed(where, `time went back from ${lastTimeNs} to ${op.timeNs}`);
    lastTimeNs = op.timeNs;
    if (op.process === NEMESIS_PROCESS) {
      if (op.type !== 'info') throw malformed(where, 'nemesis lines must have type info');
      continue;
    }
    const p = op.process;
    if (op.type === 'invoke') {
      if (outstanding.has(p))
        throw malformed(where, `process ${p} invoked while op ${outstanding.get(p)!.index} is outstanding`);
      if (crashed.has(p))
        throw malformed(where, `process ${p} invoked after an info (its last op may still be in flight)`);
      outstanding.set(p, op);
    } else {
      const inv = outstanding.get(p);
      if (inv === undefined) throw malformed(where, `${op.type} from process ${p} with no outstanding invoke`);
      if (inv.f !== op.f) throw malformed(where, `${op.type} f=${op.f} completes an invoke of f=${inv.f}`);
      outstanding.delete(p);
      if (op.type === 'info') crashed.add(p);
    }
  }
}

/** Reads and validates a history file written by `HistoryRecorder` + `FileHistorySink`. */
export async function readHistoryFile(path: string): Promise<HistoryOp[]> {
  const { size } = await stat(path);
  if (size > MAX_HISTORY_FILE_BYTES) {
    throw new JepsenError(
      JepsenErrorCode.HistoryMalformed,
      `history file ${path} is ${size} bytes (limit ${MAX_HISTORY_FILE_BYTES})`,
      { path, size },
    );
  }
  return parseHistory(await readFile(path, 'utf8'));
}

// ---------------------------------------------------------------------------------------------
// Pairing: from lines to operations with a real-time window.
// ---------------------------------------------------------------------------------------------

/** One client operation: its invocation and its completion, if any. */
export interface Operation {
  /** Position among the history's operations (0-based, in invocation order). */
  readonly id: number;
  readonly process: number;
  readonly f: string;
  /** ok, fail, or info (an invocation with no completion by the end of the history is info too). */
  readonly type: CompletionType;
  readonly invoke: HistoryOp;
  readonly completion: HistoryOp | undefined;
  /** The completion's value for ok ops (it carries read results) unless null, else the invocation's value. */
  readonly value: unknown;
  /** Index of the invoke line. */
  readonly invokeIndex: number;
  /** Index of the completion line; +Infinity for info (it may take effect at any later time). */
  readonly completeIndex: number;
  readonly invokeTimeNs: number;
  /** Completion time; undefined when there was none. */
  readonly completeTimeNs: number | undefined;
}

/** Pairs invocations with completions. Nemesis lines are left out; use `nemesisEvents` for them. */
export function pairHistory(ops: readonly HistoryOp[]): Operation[] {
  const result: Operation[] = [];
  const open = new Map<number, { invoke: HistoryOp; slot: number }>();
  const slots: Array<Operation | { invoke: HistoryOp }> = [];
  for (const op of ops) {
    if (op.process === NEMESIS_PROCESS) continue;
    if (op.type === 'invoke') {
      open.set(op.process, { invoke: op, slot: slots.length });
      slots.push({ invoke: op });
    } else {
      const o = open.get(op.process);
      invariant(o !== undefined, `completion at ${op.index} without invoke (validate the history first)`);
      open.delete(op.process);
      slots[o.slot] = makeOperation(o.slot, o.invoke, op);
    }
  }
  for (let i = 0; i < slots.length; i++) {
    const s = slots[i];
    result.push('id' in s ? s : makeOperation(i, s.invoke, undefined));
  }
  return result;
}

function makeOperation(id: number, invoke: HistoryOp, completion: HistoryOp | undefined): Operation {
  const type: CompletionType = completion === undefined ? 'info' : (completion.type as CompletionType);
  return {
    id,
    process: invoke.process as number,
    f: invoke.f,
    type,
    invoke,
    completion,
    // An ok with a null value (a put's acknowledgement) says nothing new: show what was invoked.
    value: type === 'ok' && completion!.value !== null ? completion!.value : invoke.value,
    invokeIndex: invoke.index,
    completeIndex: type === 'info' ? Number.POSITIVE_INFINITY : completion!.index,
    invokeTimeNs: invoke.timeNs,
    completeTimeNs: completion?.timeNs,
  };
}

/** A nemesis interval: from a "start-X" line to the matching "stop-X" line (or the end of the history). */
export interface NemesisInterval {
  readonly fault: string;
  readonly startNs: number;
  readonly stopNs: number | undefined;
  readonly value: unknown;
}

/** Pairs nemesis "start-<fault>" and "stop-<fault>" lines into intervals, in start order. */
export function nemesisIntervals(ops: readonly HistoryOp[]): NemesisInterval[] {
  const open = new Map<string, Array<{ startNs: number; value: unknown; slot: number }>>();
  const out: Array<{ fault: string; startNs: number; stopNs: number | undefined; value: unknown }> = [];
  for (const op of ops) {
    if (op.process !== NEMESIS_PROCESS) continue;
    const m = /^(start|stop)-(.+)$/.exec(op.f);
    if (m === null) continue;
    const fault = m[2];
    if (m[1] === 'start') {
      const list = open.get(fault) ?? [];
      list.push({ startNs: op.timeNs, value: op.value, slot: out.length });
      open.set(fault, list);
      out.push({ fault, startNs: op.timeNs, stopNs: undefined, value: op.value });
    } else {
      const list = open.get(fault);
      const first = list?.shift();
      if (first !== undefined) out[first.slot].stopNs = op.timeNs;
    }
  }
  return out;
}
