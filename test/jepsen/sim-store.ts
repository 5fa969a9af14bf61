// In-memory stores behind the JepsenClient interface, for testing the runner and the checkers end to
// end with real concurrency (timers interleave the clients). Each has a correct mode and a broken mode
// with a known anomaly, so a test can show the checker passes the first and catches the second.

import { SeededRng } from '../../consensus/rng.js';
import type { ClientOutcome, JepsenClient, OpRequest } from '../../node/jepsen/workload.js';

const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Faults {
  /** Percent of ops whose answer is lost after they took effect (client sees a hang → info). */
  readonly lostAnswerPercent?: number;
  /** Percent of ops refused before taking effect (fail). */
  readonly refusePercent?: number;
}

abstract class SimStore {
  protected readonly rng: SeededRng;
  constructor(
    seed: number,
    protected readonly faults: Faults = {},
  ) {
    this.rng = new SeededRng(seed);
  }
  protected abstract apply(op: OpRequest): Promise<ClientOutcome>;
  client(): JepsenClient {
    return {
      invoke: async (op, signal) => {
        await pause(this.rng.nextInt(3));
        if (this.rng.nextInt(100) < (this.faults.refusePercent ?? 0)) return { type: 'fail', error: 'refused' };
        const out = await this.apply(op);
        if (this.rng.nextInt(100) < (this.faults.lostAnswerPercent ?? 0)) {
          await new Promise((r) => signal.addEventListener('abort', r, { once: true }));
          return { type: 'info', error: 'aborted' };
        }
        await pause(this.rng.nextInt(3));
        return out;
      },
    };
  }
}

/** A register per key. `staleReads`: gets read a replica that copies the primary only every 20 ms. */
export class SimRegister extends SimStore {
  private readonly primary = new Map<string, string>();
  private replica = new Map<string, string>();
  private timer: NodeJS.Timeout | undefined;
  constructor(
    seed: number,
    private readonly mode: 'correct' | 'staleReads',
    faults: Faults = {},
  ) {
    super(seed, faults);
    if (mode === 'staleReads') this.timer = setInterval(() => (this.replica = new Map(this.primary)), 20);
  }
  stop(): void {
    clearInterval(this.timer);
  }
  protected async apply(op: OpRequest): Promise<ClientOutcome> {
    const v = op.value as { key: string; value?: string; expect?: string | null };
    if (op.f === 'get') {
      const src = this.mode === 'staleReads' ? this.replica : this.primary;
      return { type: 'ok', value: { key: v.key, value: src.get(v.key) ?? null } };
    }
    if (op.f === 'put') {
      this.primary.set(v.key, v.value!);
      return { type: 'ok', value: v };
    }
    const swapped = (this.primary.get(v.key) ?? null) === v.expect;
    if (swapped) this.primary.set(v.key, v.value!);
    return { type: 'ok', value: { ...v, swapped } };
  }
}

/** Accounts. `nonAtomic`: a transfer debits, yields, then credits — reads in between see money missing. */
export class SimBank extends SimStore {
  readonly balances = new Map<string, bigint>();
  constructor(
    seed: number,
    accounts: readonly string[],
    initial: bigint,
    private readonly mode: 'correct' | 'nonAtomic',
    faults: Faults = {},
  ) {
    super(seed, faults);
    for (const a of accounts) this.balances.set(a, initial);
  }
  protected async apply(op: OpRequest): Promise<ClientOutcome> {
    if (op.f === 'read')
      return {
        type: 'ok',
        value: { balances: Object.fromEntries([...this.balances].map(([k, v]) => [k, v.toString()])) },
      };
    const t = op.value as { from: string; to: string; amount: string };
    const amount = BigInt(t.amount);
    if (this.balances.get(t.from)! < amount) return { type: 'fail', error: 'insufficient balance' };
    this.balances.set(t.from, this.balances.get(t.from)! - amount);
    if (this.mode === 'nonAtomic') await pause(1);
    this.balances.set(t.to, this.balances.get(t.to)! + amount);
    return { type: 'ok', value: t };
  }
}

/** Lists. `loseAcked`: every 10th append is acknowledged but never stored. */
export class SimAppend extends SimStore {
  readonly lists = new Map<string, string[]>();
  private appends = 0;
  constructor(
    seed: number,
    private readonly mode: 'correct' | 'loseAcked',
    faults: Faults = {},
  ) {
    super(seed, faults);
  }
  protected async apply(op: OpRequest): Promise<ClientOutcome> {
    const v = op.value as { key: string; value?: string };
    const list = this.lists.get(v.key) ?? [];
    this.lists.set(v.key, list);
    if (op.f === 'read') return { type: 'ok', value: { key: v.key, value: [...list] } };
    this.appends++;
    if (!(this.mode === 'loseAcked' && this.appends % 10 === 0)) list.push(v.value!);
    return { type: 'ok', value: v };
  }
}
