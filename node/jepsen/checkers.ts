// The checkers other than linearizability. Each takes plain data (a history, final states read after
// healing) and returns `{ valid, counterexample?, stats }`:
//   valid: true (no anomaly), false (counterexample names the first, smallest one), or 'unknown'
//          (the input cannot decide, e.g. a node's state was never read).
// Counterexamples are small by design: the one read or the one height that proves the anomaly, plus
// counts of every anomaly found in `stats`, and at most `MAX_ANOMALIES_LISTED` examples of each kind.

import type { HistoryOp, Operation } from './history.js';
import { pairHistory } from './history.js';

/** Examples of each anomaly kind kept in a result (the counts in `stats` are always complete). */
export const MAX_ANOMALIES_LISTED = 20;

export interface CheckResult<C = unknown> {
  readonly valid: boolean | 'unknown';
  readonly counterexample?: C;
  readonly stats: Record<string, number | string>;
}

function asOperations(history: readonly HistoryOp[] | readonly Operation[]): readonly Operation[] {
  if (history.length === 0) return [];
  return 'invokeIndex' in (history[0] as object)
    ? (history as readonly Operation[])
    : pairHistory(history as readonly HistoryOp[]);
}

function field(v: unknown, name: string): unknown {
  return typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[name] : undefined;
}

/** A short, JSON-friendly view of an operation for counterexamples. */
export interface OpRef {
  readonly process: number;
  readonly f: string;
  readonly type: string;
  readonly value: unknown;
  readonly invokeIndex: number;
  readonly completeIndex: number | null;
}

function ref(op: Operation): OpRef {
  return {
    process: op.process,
    f: op.f,
    type: op.type,
    value: op.value,
    invokeIndex: op.invokeIndex,
    completeIndex: Number.isFinite(op.completeIndex) ? op.completeIndex : null,
  };
}

// ---------------------------------------------------------------------------------------------
// Bank: transfers between a fixed set of accounts; every read sees all balances.
//   transfer invoke {from, to, amount}      read invoke null, ok {balances: {account: amount}}
// Amounts are decimal strings or 0x-hex quantities (eth_getBalance) or safe integers.
// ---------------------------------------------------------------------------------------------

export interface BankCheckInput {
  readonly history: readonly HistoryOp[] | readonly Operation[];
  readonly accounts: readonly string[];
  readonly totalBalance: bigint | number | string;
}

export type BankAnomalyKind = 'wrong-total' | 'negative-balance' | 'wrong-accounts' | 'unparsable-balance';

export interface BankCounterexample {
  readonly kind: BankAnomalyKind;
  readonly read: OpRef;
  readonly expectedTotal: string;
  readonly observedTotal?: string;
  readonly negativeAccounts?: readonly string[];
  readonly missingAccounts?: readonly string[];
  readonly unexpectedAccounts?: readonly string[];
}

function toAmount(v: unknown): bigint | undefined {
  try {
    if (typeof v === 'number' && Number.isSafeInteger(v)) return BigInt(v);
    if (typeof v === 'string' && /^-?(\d+|0x[0-9a-fA-F]+)$/.test(v)) {
      return v.startsWith('-') ? -BigInt(v.slice(1)) : BigInt(v);
    }
  } catch {
    return undefined;
  }
  return undefined;
}

/** The total never changes and no balance goes negative, on every successful read. */
export function checkBank(
  input: BankCheckInput,
): CheckResult<BankCounterexample> & { anomalies: BankCounterexample[] } {
  const ops = asOperations(input.history);
  const expectedTotal = BigInt(input.totalBalance);
  const accountSet = new Set(input.accounts);
  const anomalies: BankCounterexample[] = [];
  const counts: Record<BankAnomalyKind, number> = {
    'wrong-total': 0,
    'negative-balance': 0,
    'wrong-accounts': 0,
    'unparsable-balance': 0,
  };
  let reads = 0;
  let transfersOk = 0;
  let transfersInfo = 0;
  let transfersFail = 0;
  const note = (a: BankCounterexample): void => {
    counts[a.kind]++;
    if (anomalies.length < MAX_ANOMALIES_LISTED) anomalies.push(a);
  };
  for (const op of ops) {
    if (op.f === 'transfer') {
      if (op.type === 'ok') transfersOk++;
      else if (op.type === 'info') transfersInfo++;
      else transfersFail++;
      continue;
    }
    if (op.f !== 'read' || op.type !== 'ok') continue;
    reads++;
    const balances = field(op.value, 'balances');
    const base = { read: ref(op), expectedTotal: expectedTotal.toString() };
    if (typeof balances !== 'object' || balances === null) {
      note({ kind: 'unparsable-balance', ...base });
      continue;
    }
    const entries = Object.entries(balances as Record<string, unknown>);
    const missing = input.accounts.filter((a) => !(a in (balances as object)));
    const unexpected = entries.map(([a]) => a).filter((a) => !accountSet.has(a));
    if (missing.length > 0 || unexpected.length > 0) {
      note({ kind: 'wrong-accounts', ...base, missingAccounts: missing, unexpectedAccounts: unexpected });
      continue;
    }
    let sum = 0n;
    const negative: string[] = [];
    let parsable = true;
    for (const [account, raw] of entries) {
      const amount = toAmount(raw);
      if (amount === undefined) {
        parsable = false;
        break;
      }
      if (amount < 0n) negative.push(account);
      sum += amount;
    }
    if (!parsable) {
      note({ kind: 'unparsable-balance', ...base });
      continue;
    }
    if (negative.length > 0)
      note({ kind: 'negative-balance', ...base, observedTotal: sum.toString(), negativeAccounts: negative });
    if (sum !== expectedTotal) note({ kind: 'wrong-total', ...base, observedTotal: sum.toString() });
  }
  const bad = Object.values(counts).reduce((a, b) => a + b, 0);
  return {
    valid: bad === 0,
    ...(anomalies.length > 0 ? { counterexample: anomalies[0] } : {}),
    anomalies,
    stats: { reads, badReads: bad, transfersOk, transfersInfo, transfersFail, ...counts },
  };
}

// ---------------------------------------------------------------------------------------------
// List-append: append {key, value: element} ; read {key} ok {key, value: element[]}.
// After healing, `finalLists` holds each key's list as read from the (agreed) chain.
// ---------------------------------------------------------------------------------------------

export interface AppendCheckInput {
  readonly history: readonly HistoryOp[] | readonly Operation[];
  readonly finalLists: Readonly<Record<string, readonly string[]>>;
}

export type AppendAnomaly =
  | {
      readonly kind: 'not-prefix';
      readonly key: string;
      readonly read: OpRef;
      readonly position: number;
      readonly readElement: string | null;
      readonly finalElement: string | null;
    }
  | { readonly kind: 'lost'; readonly key: string; readonly element: string; readonly append: OpRef }
  | {
      readonly kind: 'duplicated';
      readonly key: string;
      readonly element: string;
      readonly positions: readonly number[];
    }
  | { readonly kind: 'failed-append-present'; readonly key: string; readonly element: string; readonly append: OpRef }
  | { readonly kind: 'never-appended'; readonly key: string; readonly element: string; readonly position: number };

/**
 * Every successful read is a prefix of the final list; no acknowledged element is lost; no element
 * appears twice; nothing appears that was never appended, or whose append certainly failed.
 */
export function checkAppend(input: AppendCheckInput): CheckResult<AppendAnomaly> & { anomalies: AppendAnomaly[] } {
  const ops = asOperations(input.history);
  const anomalies: AppendAnomaly[] = [];
  const counts: Record<AppendAnomaly['kind'], number> = {
    'not-prefix': 0,
    lost: 0,
    duplicated: 0,
    'failed-append-present': 0,
    'never-appended': 0,
  };
  const note = (a: AppendAnomaly): void => {
    counts[a.kind]++;
    if (anomalies.length < MAX_ANOMALIES_LISTED * 5) anomalies.push(a);
  };
  const finalOf = (key: string): readonly string[] => input.finalLists[key] ?? [];
  // key -> element -> the append operations that tried to add it
  const appends = new Map<string, Map<string, Operation[]>>();
  let reads = 0;
  let appendsOk = 0;
  for (const op of ops) {
    const key = field(op.invoke.value, 'key');
    if (typeof key !== 'string') continue;
    if (op.f === 'append') {
      const element = field(op.invoke.value, 'value');
      if (typeof element !== 'string') continue;
      if (op.type === 'ok') appendsOk++;
      let m = appends.get(key);
      if (m === undefined) appends.set(key, (m = new Map()));
      const list = m.get(element) ?? [];
      list.push(op);
      m.set(element, list);
    } else if (op.f === 'read' && op.type === 'ok') {
      reads++;
      const list = field(op.value, 'value');
      const final = finalOf(key);
      const read = Array.isArray(list) ? (list as unknown[]) : [];
      let bad = -1;
      if (read.length > final.length) bad = final.length;
      for (let i = 0; i < Math.min(read.length, final.length) && bad < 0; i++) if (read[i] !== final[i]) bad = i;
      if (!Array.isArray(list)) bad = 0;
      if (bad >= 0) {
        note({
          kind: 'not-prefix',
          key,
          read: ref(op),
          position: bad,
          readElement: (read[bad] as string | undefined) ?? null,
          finalElement: final[bad] ?? null,
        });
      }
    }
  }
  for (const [key, final] of Object.entries(input.finalLists)) {
    const positions = new Map<string, number[]>();
    final.forEach((e, i) => positions.set(e, [...(positions.get(e) ?? []), i]));
    for (const [element, at] of positions) {
      if (at.length > 1) note({ kind: 'duplicated', key, element, positions: at });
      const tried = appends.get(key)?.get(element);
      if (tried === undefined) note({ kind: 'never-appended', key, element, position: at[0] });
      else if (tried.every((o) => o.type === 'fail'))
        note({ kind: 'failed-append-present', key, element, append: ref(tried[0]) });
    }
  }
  for (const [key, m] of appends) {
    const present = new Set(finalOf(key));
    for (const [element, tried] of m) {
      const acked = tried.find((o) => o.type === 'ok');
      if (acked !== undefined && !present.has(element)) note({ kind: 'lost', key, element, append: ref(acked) });
    }
  }
  // The smallest counterexample first: a lost or duplicated element is one fact; a bad read needs the final list.
  const order: AppendAnomaly['kind'][] = [
    'lost',
    'duplicated',
    'failed-append-present',
    'never-appended',
    'not-prefix',
  ];
  anomalies.sort((a, b) => order.indexOf(a.kind) - order.indexOf(b.kind));
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  return {
    valid: total === 0,
    ...(anomalies.length > 0 ? { counterexample: anomalies[0] } : {}),
    anomalies,
    stats: { reads, appendsOk, keys: Object.keys(input.finalLists).length, ...counts },
  };
}

// ---------------------------------------------------------------------------------------------
// Chain: after healing, every node has the same block hash at every height, and every acknowledged
// transaction is in the chain exactly once.
// ---------------------------------------------------------------------------------------------

export interface ChainCheckInput {
  /** Each node's block hashes by height (index 0 = genesis). */
  readonly blockHashesByNode: Readonly<Record<string, readonly string[]>>;
  /** The transaction hashes of the agreed chain, in chain order. */
  readonly chainTxHashes: readonly string[];
  /** Transactions a client saw committed (receipt received). */
  readonly acknowledgedTxHashes: readonly string[];
}

export type ChainAnomaly =
  | { readonly kind: 'divergence'; readonly height: number; readonly hashes: Readonly<Record<string, string>> }
  | { readonly kind: 'height-mismatch'; readonly heights: Readonly<Record<string, number>> }
  | { readonly kind: 'lost-tx'; readonly txHash: string }
  | { readonly kind: 'duplicate-tx'; readonly txHash: string; readonly positions: readonly number[] };

export function checkChain(input: ChainCheckInput): CheckResult<ChainAnomaly> & { anomalies: ChainAnomaly[] } {
  const nodes = Object.keys(input.blockHashesByNode).sort();
  const anomalies: ChainAnomaly[] = [];
  const counts: Record<ChainAnomaly['kind'], number> = {
    divergence: 0,
    'height-mismatch': 0,
    'lost-tx': 0,
    'duplicate-tx': 0,
  };
  const note = (a: ChainAnomaly): void => {
    counts[a.kind]++;
    if (anomalies.length < MAX_ANOMALIES_LISTED * 4) anomalies.push(a);
  };
  if (nodes.length === 0) return { valid: 'unknown', anomalies, stats: { nodes: 0, reason: 'no node chains given' } };
  const heights = Object.fromEntries(nodes.map((n) => [n, input.blockHashesByNode[n].length]));
  const minHeight = Math.min(...Object.values(heights));
  const maxHeight = Math.max(...Object.values(heights));
  if (minHeight !== maxHeight) note({ kind: 'height-mismatch', heights });
  // Only the first divergent height is reported: every later height differs as a consequence.
  for (let h = 0; h < minHeight; h++) {
    const first = input.blockHashesByNode[nodes[0]][h];
    if (nodes.some((n) => input.blockHashesByNode[n][h] !== first)) {
      note({
        kind: 'divergence',
        height: h,
        hashes: Object.fromEntries(nodes.map((n) => [n, input.blockHashesByNode[n][h]])),
      });
      break;
    }
  }
  const positions = new Map<string, number[]>();
  input.chainTxHashes.forEach((tx, i) => positions.set(tx, [...(positions.get(tx) ?? []), i]));
  for (const [txHash, at] of positions) if (at.length > 1) note({ kind: 'duplicate-tx', txHash, positions: at });
  for (const txHash of new Set(input.acknowledgedTxHashes))
    if (!positions.has(txHash)) note({ kind: 'lost-tx', txHash });
  const order: ChainAnomaly['kind'][] = ['divergence', 'lost-tx', 'duplicate-tx', 'height-mismatch'];
  anomalies.sort((a, b) => order.indexOf(a.kind) - order.indexOf(b.kind));
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  return {
    valid: total === 0,
    ...(anomalies.length > 0 ? { counterexample: anomalies[0] } : {}),
    anomalies,
    stats: {
      nodes: nodes.length,
      minHeight,
      maxHeight,
      chainTxs: input.chainTxHashes.length,
      acknowledgedTxs: input.acknowledgedTxHashes.length,
      ...counts,
    },
  };
}

// ---------------------------------------------------------------------------------------------
// Privacy: the workload writes each private key only in transactions private to one fixed party set,
// so after healing the parties' private states agree on it and no other node holds it.
// ---------------------------------------------------------------------------------------------

export interface PrivacyCheckInput {
  /** Each node's private state (key -> value) as read after healing. */
  readonly privateStatesByNode: Readonly<Record<string, Readonly<Record<string, string>>>>;
  /** For each private key, the nodes that are parties to the transactions that write it. */
  readonly partiesByKey: Readonly<Record<string, readonly string[]>>;
}

export type PrivacyAnomaly =
  | { readonly kind: 'leak'; readonly key: string; readonly node: string; readonly value: string }
  | {
      readonly kind: 'parties-disagree';
      readonly key: string;
      readonly values: Readonly<Record<string, string | null>>;
    }
  | { readonly kind: 'unknown-key'; readonly key: string; readonly node: string };

export function checkPrivacy(input: PrivacyCheckInput): CheckResult<PrivacyAnomaly> & { anomalies: PrivacyAnomaly[] } {
  const anomalies: PrivacyAnomaly[] = [];
  const counts: Record<PrivacyAnomaly['kind'], number> = { leak: 0, 'parties-disagree': 0, 'unknown-key': 0 };
  const note = (a: PrivacyAnomaly): void => {
    counts[a.kind]++;
    if (anomalies.length < MAX_ANOMALIES_LISTED * 3) anomalies.push(a);
  };
  const nodes = Object.keys(input.privateStatesByNode).sort();
  const missingParties = new Set<string>();
  for (const [key, parties] of Object.entries(input.partiesByKey)) {
    const partySet = new Set(parties);
    for (const p of parties) if (!(p in input.privateStatesByNode)) missingParties.add(p);
    const values: Record<string, string | null> = {};
    for (const p of parties.filter((x) => x in input.privateStatesByNode))
      values[p] = input.privateStatesByNode[p][key] ?? null;
    if (new Set(Object.values(values)).size > 1) note({ kind: 'parties-disagree', key, values });
    for (const n of nodes) {
      if (partySet.has(n)) continue;
      const v = input.privateStatesByNode[n][key];
      if (v !== undefined) note({ kind: 'leak', key, node: n, value: v });
    }
  }
  for (const n of nodes) {
    for (const key of Object.keys(input.privateStatesByNode[n]))
      if (!(key in input.partiesByKey)) note({ kind: 'unknown-key', key, node: n });
  }
  const order: PrivacyAnomaly['kind'][] = ['leak', 'unknown-key', 'parties-disagree'];
  anomalies.sort((a, b) => order.indexOf(a.kind) - order.indexOf(b.kind));
  const total = Object.values(counts).reduce((a, b) => a + b, 0);
  const stats = {
    nodes: nodes.length,
    keys: Object.keys(input.partiesByKey).length,
    missingParties: missingParties.size,
    ...counts,
  };
  if (total > 0) return { valid: false, counterexample: anomalies[0], anomalies, stats };
  // A party whose state was never read could hide a disagreement: the input cannot decide.
  return { valid: missingParties.size > 0 ? 'unknown' : true, anomalies, stats };
}
