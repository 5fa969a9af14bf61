// A linearizability checker for a key-value register (put / get / cas / delete), after
//   Wing & Gong, "Testing and verifying concurrent objects" (1993), with Lowe's memoization,
//   "Testing for linearizability" (2017): the search never revisits a (set of linearized operations,
//   model state) pair it has already explored — the idea behind Knossos' and Porcupine's checkers —
// and P-compositionality (Horn & Kroening, 2015): a history is linearizable iff the sub-history of every
// key is, so each key is searched on its own (a register per key is independent of the others).
//
// Operation shapes (the `value` of the history lines; keys and values are strings):
//   put    invoke {key, value}                     ok: same
//   delete invoke {key}                            ok: same
//   get    invoke {key}                            ok {key, value: string | null}   (null: absent)
//   cas    invoke {key, expect: string|null, value} ok {key, expect, value, swapped?: boolean}
//          `swapped` defaults to true. A cas that committed but whose compare failed is `ok` with
//          `swapped: false`: it happened, and tells us the value differed from `expect`.
// `fail` operations certainly did not happen and are dropped. `info` operations may or may not have
// happened, at any time after their invocation: their completion is at +infinity. An `info` get tells
// nothing and is dropped.
//
// When a key's history is not linearizable, the checker shrinks it to a small window that is itself
// proved non-linearizable (see `shrink`), so the report can show a handful of operations, not thousands.

import { JepsenError, JepsenErrorCode, invariant } from './errors.js';
import type { HistoryOp, Operation } from './history.js';
import { pairHistory } from './history.js';
import { harnessClock as clock } from './clock.js';

/** Search steps (entries visited) allowed per key before the checker answers `unknown` for that key. */
export const DEFAULT_MAX_SEARCH_STEPS_PER_KEY = 5_000_000;
/**
 * Memory allowed for the memo cache of one key's search. Each entry holds a bitset of the key's
 * operations (n/8 bytes) plus ~80 bytes of overhead; when full, the search answers `unknown`.
 */
export const DEFAULT_MAX_CACHE_BYTES = 128 * 1024 * 1024;
/**
 * Search steps allowed for shrinking a failing key, across all its searches (about 2·log2(n) of them).
 * A search of a prefix that is still linearizable can cost as much as the full one, so without a total
 * the shrink alone could take 20 × the per-key budget; when it runs out, the smallest failing window
 * found so far is reported (the verdict does not change).
 */
export const DEFAULT_MAX_SHRINK_STEPS = 2_000_000;
/** Operations of the longest partial linearization kept in a counterexample (its tail). */
export const COUNTEREXAMPLE_LINEARIZATION_TAIL = 20;

export interface LinearizabilityOptions {
  readonly maxSearchStepsPerKey?: number;
  readonly maxCacheBytes?: number;
  /** Total search steps for shrinking a failing key (DEFAULT_MAX_SHRINK_STEPS). */
  readonly maxShrinkSteps?: number;
  /** Shrink a failing key to a minimal window (a few more searches). Default true. */
  readonly shrink?: boolean;
}

/** An operation as shown in a counterexample: enough to read it without the history. */
export interface CounterexampleOp {
  readonly process: number;
  readonly f: string;
  readonly type: 'ok' | 'info';
  readonly value: unknown;
  readonly invokeIndex: number;
  /**
   * null for info: it never completed. An info write whose value a completed op read has the line of
   * its earliest such reader instead: it must have taken effect by then (see boundObservedInfo).
   */
  readonly completeIndex: number | null;
}

export interface LinearizabilityCounterexample {
  readonly key: string;
  /** The history line range of the window (invocation index of its first op .. completion of its last). */
  readonly fromIndex: number;
  readonly toIndex: number;
  /** The register's value when the window starts: null (absent, the start of the run) or "any" after a cut. */
  readonly initialState: string | null | 'any';
  /** Every operation of the key in the window, in invocation order. This window alone is not linearizable. */
  readonly ops: readonly CounterexampleOp[];
  /** The operation the search could never place, at the point it got furthest. */
  readonly stuckOp: CounterexampleOp;
  /** The tail of the longest partial linearization found, and the register's value after it. */
  readonly longestLinearization: readonly CounterexampleOp[];
  readonly stateAfterLongest: string | null | 'any';
}

export interface LinearizabilityStats {
  readonly keys: number;
  readonly operations: number;
  /** Operations that took part in the search (fail and info gets are left out). */
  readonly searchedOperations: number;
  readonly infoOperations: number;
  /** Info writes left out because nothing could ever observe them (see `pruneUnobservableInfo`). */
  readonly prunedInfoOperations: number;
  /** Info writes bounded by their earliest observer (see boundObservedInfo). */
  readonly boundedInfoOperations: number;
  readonly searchSteps: number;
  readonly cacheEntries: number;
  /** Keys whose search hit a budget: their verdict is unknown. */
  readonly unknownKeys: readonly string[];
  readonly elapsedMs: number;
}

export interface LinearizabilityResult {
  readonly valid: boolean | 'unknown';
  readonly counterexample?: LinearizabilityCounterexample;
  readonly stats: LinearizabilityStats;
}

// ---------------------------------------------------------------------------------------------
// The register model, compiled: values are interned to small integers so a state is a number.
// ---------------------------------------------------------------------------------------------

const STATE_ABSENT = 0;
/** "Any value": the state at a cut point in a shrunk window, when the prefix is not replayed. */
const STATE_ANY = 1;
const ILLEGAL = -1;

const enum Kind {
  Put,
  Delete,
  Get,
  CasSwapped,
  CasNotSwapped,
}

interface CompiledOp {
  readonly op: Operation;
  readonly kind: Kind;
  /** put/cas: the value written; get: the value read. */
  readonly valueId: number;
  /** cas: the expected value. */
  readonly expectId: number;
  readonly info: boolean;
  readonly invokeIndex: number;
  /** +Infinity for info. */
  readonly completeIndex: number;
}

/** An op with no known completion: it may take effect anywhere after its invocation, or never. */
function isOpen(c: CompiledOp): boolean {
  return c.completeIndex === Number.POSITIVE_INFINITY;
}

function step(state: number, c: CompiledOp): number {
  switch (c.kind) {
    case Kind.Put:
      return c.valueId;
    case Kind.Delete:
      return STATE_ABSENT;
    case Kind.Get:
      if (state === STATE_ANY) return c.valueId;
      return state === c.valueId ? state : ILLEGAL;
    case Kind.CasSwapped:
      return state === STATE_ANY || state === c.expectId ? c.valueId : ILLEGAL;
    case Kind.CasNotSwapped:
      // With "any", the compare failing is possible and we learn only "not expect": stay "any" (sound).
      if (state === STATE_ANY) return STATE_ANY;
      return state !== c.expectId ? state : ILLEGAL;
  }
}

class Interner {
  private readonly ids = new Map<string, number>();
  private readonly values: string[] = [];
  id(value: string | null): number {
    if (value === null) return STATE_ABSENT;
    let id = this.ids.get(value);
    if (id === undefined) {
      id = this.values.length + 2;
      this.ids.set(value, id);
      this.values.push(value);
    }
    return id;
  }
  value(id: number): string | null | 'any' {
    if (id === STATE_ABSENT) return null;
    if (id === STATE_ANY) return 'any';
    return this.values[id - 2];
  }
}

function bad(op: Operation, why: string): JepsenError {
  return new JepsenError(JepsenErrorCode.HistoryMalformed, `register op at line ${op.invokeIndex} (${op.f}): ${why}`, {
    invokeIndex: op.invokeIndex,
    value: op.invoke.value,
  });
}

function fieldOf(v: unknown, name: string): unknown {
  return typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[name] : undefined;
}

function stringOrNull(op: Operation, v: unknown, name: string): string | null {
  const x = fieldOf(v, name);
  if (x === null || typeof x === 'string') return x;
  throw bad(op, `${name} must be a string or null`);
}

/** The key an operation touches. */
export function registerKey(op: Operation): string {
  const key = fieldOf(op.invoke.value, 'key');
  if (typeof key !== 'string') throw bad(op, 'value.key must be a string');
  return key;
}

/** Compiles one op; returns undefined for ops that cannot affect linearizability (fail, info get). */
function compile(op: Operation, interner: Interner): CompiledOp | undefined {
  if (op.type === 'fail') return undefined;
  const info = op.type === 'info';
  const inv = op.invoke.value;
  const base = { op, info, invokeIndex: op.invokeIndex, completeIndex: op.completeIndex };
  switch (op.f) {
    case 'put': {
      const v = fieldOf(inv, 'value');
      if (typeof v !== 'string') throw bad(op, 'put value must be a string');
      return { ...base, kind: Kind.Put, valueId: interner.id(v), expectId: 0 };
    }
    case 'delete':
      return { ...base, kind: Kind.Delete, valueId: 0, expectId: 0 };
    case 'get': {
      if (info) return undefined;
      return { ...base, kind: Kind.Get, valueId: interner.id(stringOrNull(op, op.value, 'value')), expectId: 0 };
    }
    case 'cas': {
      const v = fieldOf(inv, 'value');
      if (typeof v !== 'string') throw bad(op, 'cas value must be a string');
      const expectId = interner.id(stringOrNull(op, inv, 'expect'));
      // An info cas, if it happened with a failed compare, changed nothing: same as not happening.
      const swapped = info ? true : fieldOf(op.value, 'swapped') !== false;
      if (!swapped) {
        // A committed cas whose compare failed is a read of "not expect"; it has no effect to drop.
        return { ...base, kind: Kind.CasNotSwapped, valueId: 0, expectId };
      }
      return { ...base, kind: Kind.CasSwapped, valueId: interner.id(v), expectId };
    }
    default:
      throw bad(op, `the register model knows put, get, cas and delete, not "${op.f}"`);
  }
}

// ---------------------------------------------------------------------------------------------
// Wing–Gong–Lowe search over one key
// ---------------------------------------------------------------------------------------------

type SearchOutcome =
  | { kind: 'ok'; steps: number; cacheEntries: number }
  | { kind: 'unknown'; steps: number; cacheEntries: number; reason: string }
  | { kind: 'fail'; steps: number; cacheEntries: number; stuck: number; longest: number[]; stateAfterLongest: number };

interface SearchLimits {
  readonly maxSteps: number;
  readonly maxCacheBytes: number;
}

/**
 * Searches for a linearization of `ops` (one key) starting from `initialState`.
 * Entries: a call and a return per op, ordered by history index; info returns go last, so reaching
 * one means every completed op has been linearized (the remaining info ops simply did not happen).
 */
function search(ops: readonly CompiledOp[], initialState: number, limits: SearchLimits): SearchOutcome {
  const n = ops.length;
  if (n === 0) return { kind: 'ok', steps: 0, cacheEntries: 0 };
  // Entry e in [1, 2n]: entry 0 is the head sentinel. opOf[e] = op, isCall[e], match[call] = its return.
  type Ev = { pos: number; infoTie: number; call: boolean; op: number };
  const evs: Ev[] = [];
  for (let i = 0; i < n; i++) {
    const c = ops[i];
    evs.push({ pos: c.invokeIndex, infoTie: 0, call: true, op: i });
    evs.push({ pos: c.completeIndex, infoTie: isOpen(c) ? c.invokeIndex : 0, call: false, op: i });
  }
  evs.sort((a, b) => a.pos - b.pos || a.infoTie - b.infoTie);
  const size = 2 * n + 1;
  const next = new Int32Array(size);
  const prev = new Int32Array(size);
  const opOf = new Int32Array(size);
  const isCall = new Uint8Array(size);
  const match = new Int32Array(size);
  const callEntryOf = new Int32Array(n);
  const returnEntryOf = new Int32Array(n);
  for (let k = 0; k < evs.length; k++) {
    const e = k + 1;
    opOf[e] = evs[k].op;
    isCall[e] = evs[k].call ? 1 : 0;
    if (evs[k].call) callEntryOf[evs[k].op] = e;
    else returnEntryOf[evs[k].op] = e;
  }
  for (let i = 0; i < n; i++) match[callEntryOf[i]] = returnEntryOf[i];
  for (let e = 0; e < size; e++) {
    next[e] = e + 1 < size ? e + 1 : -1;
    prev[e] = e - 1;
  }

  // Zobrist hashing of the linearized set: toggling op i XORs zob[i], so the hash is O(1) to update.
  const zob = new Uint32Array(n);
  let seed = 0x9e3779b9;
  for (let i = 0; i < n; i++) {
    seed = (Math.imul(seed ^ (seed >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0;
    zob[i] = seed ^ Math.imul(i + 1, 0x85ebca6b);
  }
  const words = (n + 31) >>> 5;
  const bits = new Uint32Array(words);
  let hash = 0;
  const cache = new Map<number, Array<{ bits: Uint32Array; state: number }>>();
  let cacheEntries = 0;
  const entryBytes = words * 4 + 80;
  const maxEntries = Math.max(1, Math.floor(limits.maxCacheBytes / entryBytes));

  const lift = (e: number): void => {
    next[prev[e]] = next[e];
    if (next[e] !== -1) prev[next[e]] = prev[e];
    const m = match[e];
    next[prev[m]] = next[m];
    if (next[m] !== -1) prev[next[m]] = prev[m];
  };
  const unlift = (e: number): void => {
    const m = match[e];
    next[prev[m]] = m;
    if (next[m] !== -1) prev[next[m]] = m;
    next[prev[e]] = e;
    if (next[e] !== -1) prev[next[e]] = e;
  };
  /** Adds (bits with op set, state) to the cache; false when it was already there. */
  const cacheAdd = (opIdx: number, state: number): boolean => {
    const w = opIdx >>> 5;
    const mask = 1 << (opIdx & 31);
    const h = (hash ^ zob[opIdx] ^ Math.imul(state + 1, 0x27d4eb2f)) >>> 0;
    let bucket = cache.get(h);
    if (bucket !== undefined) {
      outer: for (const c of bucket) {
        if (c.state !== state) continue;
        for (let k = 0; k < words; k++) {
          const mine = k === w ? bits[k] | mask : bits[k];
          if (c.bits[k] !== mine) continue outer;
        }
        return false;
      }
    } else {
      bucket = [];
      cache.set(h, bucket);
    }
    const copy = bits.slice();
    copy[w] |= mask;
    bucket.push({ bits: copy, state });
    cacheEntries++;
    return true;
  };

  const callsEntry: number[] = [];
  const callsState: number[] = [];
  let state = initialState;
  let steps = 0;
  let bestDepth = -1;
  let bestStuck = -1;
  let bestLongest: number[] = [];
  let bestState = initialState;

  let entry = next[0];
  while (next[0] !== -1) {
    if (++steps > limits.maxSteps)
      return { kind: 'unknown', steps, cacheEntries, reason: `search budget of ${limits.maxSteps} steps exhausted` };
    invariant(entry !== -1, 'WGL search ran off the end of the entry list');
    const opIdx = opOf[entry];
    if (isCall[entry] === 1) {
      const newState = step(state, ops[opIdx]);
      if (newState !== ILLEGAL && cacheAdd(opIdx, newState)) {
        if (cacheEntries > maxEntries)
          return { kind: 'unknown', steps, cacheEntries, reason: `memo cache over ${limits.maxCacheBytes} bytes` };
        callsEntry.push(entry);
        callsState.push(state);
        state = newState;
        bits[opIdx >>> 5] |= 1 << (opIdx & 31);
        hash = (hash ^ zob[opIdx]) >>> 0;
        lift(entry);
        entry = next[0];
      } else {
        entry = next[entry];
      }
    } else {
      // A return: its op must be linearized before anything after it. Info returns sit at the end.
      if (isOpen(ops[opIdx])) return { kind: 'ok', steps, cacheEntries };
      if (callsEntry.length > bestDepth) {
        bestDepth = callsEntry.length;
        bestStuck = opIdx;
        bestLongest = callsEntry.slice(-COUNTEREXAMPLE_LINEARIZATION_TAIL).map((e) => opOf[e]);
        bestState = state;
      }
      if (callsEntry.length === 0) {
        return {
          kind: 'fail',
          steps,
          cacheEntries,
          stuck: bestStuck,
          longest: bestLongest,
          stateAfterLongest: bestState,
        };
      }
      const top = callsEntry.pop()!;
      state = callsState.pop()!;
      const topOp = opOf[top];
      bits[topOp >>> 5] &= ~(1 << (topOp & 31));
      hash = (hash ^ zob[topOp]) >>> 0;
      unlift(top);
      entry = next[top];
    }
  }
  return { kind: 'ok', steps, cacheEntries };
}

// ---------------------------------------------------------------------------------------------
// Shrinking a failing key to a small window that is itself not linearizable.
// ---------------------------------------------------------------------------------------------

/**
 * The history truncated after line `end`: ops invoked later are gone; ops still running at `end`
 * become info (they may or may not have happened). Linearizability is prefix-closed, so a failing
 * prefix proves the violation.
 */
function truncate(ops: readonly CompiledOp[], end: number): CompiledOp[] {
  const out: CompiledOp[] = [];
  for (const c of ops) {
    if (c.invokeIndex > end) continue;
    if (c.completeIndex <= end) {
      out.push(c);
      continue;
    }
    // Running at the cut: unknown outcome. A get or a failed compare changes nothing: drop it.
    if (c.kind === Kind.Get || c.kind === Kind.CasNotSwapped) continue;
    out.push({ ...c, info: true, completeIndex: Number.POSITIVE_INFINITY });
  }
  return out;
}

/**
 * The ops after a quiescent line `cut` (no completed op invoked at or before it completes after it),
 * starting from "any" state. Every op before the cut precedes every op after it in any linearization,
 * so the state at the cut is some value: if no value works, the full history fails too. Info ops
 * invoked before the cut stay in (they may take effect after it).
 */
function windowAfter(ops: readonly CompiledOp[], cut: number): CompiledOp[] {
  return ops.filter((c) => c.invokeIndex > cut || c.completeIndex > cut);
}

function quiescentCuts(ops: readonly CompiledOp[], end: number): number[] {
  // Line indexes where no completed (non-info) op is running; candidates are its own completion lines.
  const completed = ops.filter((c) => !isOpen(c)).sort((a, b) => a.invokeIndex - b.invokeIndex);
  const cuts: number[] = [];
  let maxComplete = -1;
  for (let i = 0; i < completed.length; i++) {
    maxComplete = Math.max(maxComplete, completed[i].completeIndex);
    const nextInvoke = i + 1 < completed.length ? completed[i + 1].invokeIndex : Number.POSITIVE_INFINITY;
    if (maxComplete < nextInvoke && maxComplete < end) cuts.push(maxComplete);
  }
  return cuts;
}

/** The smallest index in sorted `candidates` for which `fails` holds, assuming monotonicity. */
function firstFailing(candidates: readonly number[], fails: (c: number) => boolean): number {
  let lo = 0;
  let hi = candidates.length - 1;
  let found = -1;
  while (lo <= hi) {
    const mid = (lo + hi) >>> 1;
    if (fails(candidates[mid])) {
      found = mid;
      hi = mid - 1;
    } else {
      lo = mid + 1;
    }
  }
  return found;
}

function toCxOp(c: CompiledOp): CounterexampleOp {
  return {
    process: c.op.process,
    f: c.op.f,
    type: c.info ? 'info' : 'ok',
    value: c.info ? c.op.invoke.value : c.op.value,
    invokeIndex: c.invokeIndex,
    completeIndex: isOpen(c) ? null : c.completeIndex,
  };
}

function shrink(
  key: string,
  ops: readonly CompiledOp[],
  full: Extract<SearchOutcome, { kind: 'fail' }>,
  limits: SearchLimits,
  interner: Interner,
  maxShrinkSteps: number,
): LinearizabilityCounterexample {
  let bestOps: readonly CompiledOp[] = ops;
  let bestOutcome = full;
  let initial: number = STATE_ABSENT;
  let stepsLeft = maxShrinkSteps;
  // Out of budget counts as "does not fail": the binary searches then keep the larger window they hold.
  const fails = (candidate: CompiledOp[], init: number): Extract<SearchOutcome, { kind: 'fail' }> | undefined => {
    if (stepsLeft <= 0) return undefined;
    const r = search(candidate, init, { ...limits, maxSteps: Math.min(limits.maxSteps, stepsLeft) });
    stepsLeft -= r.steps;
    return r.kind === 'fail' ? r : undefined;
  };
  // 1. The shortest failing prefix, ending at some op's completion line. Outcomes are remembered, so
  //    the chosen candidate is not searched twice.
  const ends = [...new Set(ops.filter((c) => !isOpen(c)).map((c) => c.completeIndex))].sort((a, b) => a - b);
  const prefixOutcomes = new Map<number, Extract<SearchOutcome, { kind: 'fail' }>>();
  const endAt = firstFailing(ends, (end) => {
    const r = fails(truncate(ops, end), STATE_ABSENT);
    if (r !== undefined) prefixOutcomes.set(end, r);
    return r !== undefined;
  });
  if (endAt >= 0) {
    const prefix = truncate(ops, ends[endAt]);
    bestOps = prefix;
    bestOutcome = prefixOutcomes.get(ends[endAt])!;
    // 2. The latest quiescent cut after which the prefix still fails from "any" state.
    const cuts = quiescentCuts(prefix, ends[endAt]);
    const reversed = [...cuts].reverse(); // latest cut first: failing is monotone towards earlier cuts
    const windowOutcomes = new Map<number, Extract<SearchOutcome, { kind: 'fail' }>>();
    const at = firstFailing(reversed, (cut) => {
      const r = fails(windowAfter(prefix, cut), STATE_ANY);
      if (r !== undefined) windowOutcomes.set(cut, r);
      return r !== undefined;
    });
    if (at >= 0) {
      bestOps = windowAfter(prefix, reversed[at]);
      bestOutcome = windowOutcomes.get(reversed[at])!;
      initial = STATE_ANY;
    }
  }
  const sorted = [...bestOps].sort((a, b) => a.invokeIndex - b.invokeIndex);
  const finite = sorted.filter((c) => !isOpen(c)).map((c) => c.completeIndex);
  const nonInfo = sorted.filter((c) => !isOpen(c));
  return {
    key,
    fromIndex: nonInfo.length > 0 ? nonInfo[0].invokeIndex : sorted[0].invokeIndex,
    toIndex: finite.length > 0 ? Math.max(...finite) : sorted[sorted.length - 1].invokeIndex,
    initialState: interner.value(initial),
    ops: sorted.map(toCxOp),
    stuckOp: toCxOp(bestOps[bestOutcome.stuck]),
    longestLinearization: bestOutcome.longest.map((i) => toCxOp(bestOps[i])),
    stateAfterLongest: interner.value(bestOutcome.stateAfterLongest),
  };
}

/**
 * Info ops are what makes the search expensive: each may be linearized anywhere after its invocation.
 * An info write whose value no get ever returned and no cas ever expected can be left out, provided the
 * key has no `swapped: false` cas: in any linearization that includes it, the ops between it and the
 * next overwrite would have to read its value — there are none that do — so removing it leaves a valid
 * linearization (the next overwrite sets the same state either way). Without it, a history of 10,000
 * ops on one key with 10% info ops exhausts any budget; with it, the search stays near-linear.
 */
function pruneUnobservableInfo(ops: CompiledOp[]): CompiledOp[] {
  if (ops.some((c) => c.kind === Kind.CasNotSwapped)) return ops;
  const observed = new Set<number>();
  for (const c of ops) {
    if (c.kind === Kind.Get) observed.add(c.valueId);
    if (c.kind === Kind.CasSwapped) observed.add(c.expectId);
  }
  return ops.filter(
    (c) => !(c.info && (c.kind === Kind.Put || c.kind === Kind.CasSwapped) && !observed.has(c.valueId)),
  );
}

/**
 * An info write whose value some completed op observed (a get returned it, or a swapped cas expected
 * it) did happen, and before that observer took effect: if no other op wrote the same value, the
 * observer's state can only have come from this write. So the write is bounded: it completes, at the
 * latest, when its earliest observer completes. Every linearization of the history satisfies this,
 * so it changes no verdict — but an op that may otherwise land anywhere until the end of the history
 * multiplies the search by two for every op after it, which is how a few dozen timed-out writes blew
 * a partitioned run's search up to the step budget.
 */
function boundObservedInfo(ops: CompiledOp[]): CompiledOp[] {
  const writers = new Map<number, number>();
  for (const c of ops)
    if (c.kind === Kind.Put || c.kind === Kind.CasSwapped) writers.set(c.valueId, (writers.get(c.valueId) ?? 0) + 1);
  const earliestObserver = new Map<number, number>();
  const observe = (valueId: number, at: number): void => {
    const seen = earliestObserver.get(valueId);
    if (seen === undefined || at < seen) earliestObserver.set(valueId, at);
  };
  for (const c of ops) {
    if (isOpen(c)) continue;
    if (c.kind === Kind.Get) observe(c.valueId, c.completeIndex);
    if (c.kind === Kind.CasSwapped) observe(c.expectId, c.completeIndex);
  }
  return ops.map((c) => {
    if (!isOpen(c) || (c.kind !== Kind.Put && c.kind !== Kind.CasSwapped) || writers.get(c.valueId) !== 1) return c;
    const bound = earliestObserver.get(c.valueId);
    // An observer that completed before the write was even invoked cannot be explained: leave the op
    // open and let the search report that read.
    return bound === undefined || bound < c.invokeIndex ? c : { ...c, completeIndex: bound };
  });
}

// ---------------------------------------------------------------------------------------------
// Entry point
// ---------------------------------------------------------------------------------------------

/**
 * Checks a register history (lines as recorded, or already paired operations). Ops of other
 * workloads must be filtered out by the caller: an unknown `f` is a malformed history.
 */
export function checkLinearizable(
  history: readonly HistoryOp[] | readonly Operation[],
  options: LinearizabilityOptions = {},
): LinearizabilityResult {
  const started = clock.monotonicMs();
  const limits: SearchLimits = {
    maxSteps: options.maxSearchStepsPerKey ?? DEFAULT_MAX_SEARCH_STEPS_PER_KEY,
    maxCacheBytes: options.maxCacheBytes ?? DEFAULT_MAX_CACHE_BYTES,
  };
  const operations = isPaired(history)
    ? (history as readonly Operation[])
    : pairHistory(history as readonly HistoryOp[]);
  const byKey = new Map<string, { interner: Interner; ops: CompiledOp[] }>();
  let searched = 0;
  let infos = 0;
  for (const op of operations) {
    const key = registerKey(op);
    let group = byKey.get(key);
    if (group === undefined) {
      group = { interner: new Interner(), ops: [] };
      byKey.set(key, group);
    }
    const c = compile(op, group.interner);
    if (c === undefined) continue;
    group.ops.push(c);
    searched++;
    if (c.info) infos++;
  }
  let pruned = 0;
  let bounded = 0;
  for (const group of byKey.values()) {
    const before = group.ops.length;
    const kept = pruneUnobservableInfo(group.ops);
    pruned += before - kept.length;
    group.ops = boundObservedInfo(kept);
    bounded += group.ops.filter((c, i) => c !== kept[i]).length;
  }
  let steps = 0;
  let cacheEntries = 0;
  const unknownKeys: string[] = [];
  let counterexample: LinearizabilityCounterexample | undefined;
  // Keys in a stable order, so the reported counterexample does not depend on Map insertion quirks.
  for (const key of [...byKey.keys()].sort()) {
    const { ops, interner } = byKey.get(key)!;
    const r = search(ops, STATE_ABSENT, limits);
    steps += r.steps;
    cacheEntries += r.cacheEntries;
    if (r.kind === 'unknown') unknownKeys.push(key);
    if (r.kind === 'fail') {
      counterexample =
        options.shrink === false
          ? {
              key,
              fromIndex: ops[0].invokeIndex,
              toIndex: Math.max(...ops.filter((c) => !isOpen(c)).map((c) => c.completeIndex)),
              initialState: null,
              ops: ops.map(toCxOp),
              stuckOp: toCxOp(ops[r.stuck]),
              longestLinearization: r.longest.map((i) => toCxOp(ops[i])),
              stateAfterLongest: interner.value(r.stateAfterLongest),
            }
          : shrink(key, ops, r, limits, interner, options.maxShrinkSteps ?? DEFAULT_MAX_SHRINK_STEPS);
      break;
    }
  }
  const stats: LinearizabilityStats = {
    keys: byKey.size,
    operations: operations.length,
    searchedOperations: searched - pruned,
    infoOperations: infos,
    prunedInfoOperations: pruned,
    boundedInfoOperations: bounded,
    searchSteps: steps,
    cacheEntries,
    unknownKeys,
    elapsedMs: clock.monotonicMs() - started,
  };
  if (counterexample !== undefined) return { valid: false, counterexample, stats };
  return { valid: unknownKeys.length > 0 ? 'unknown' : true, stats };
}

function isPaired(h: readonly HistoryOp[] | readonly Operation[]): boolean {
  return h.length > 0 && 'invokeIndex' in (h[0] as object);
}
