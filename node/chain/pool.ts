// The transaction pool: transactions accepted by this node and not yet committed.
//
// - Ordered by nonce per account; the minter takes, per account, the run of consecutive nonces
//   starting at the account's next nonce, accounts in round-robin order (an account served in
//   one take goes to the back), so one busy account cannot starve the others.
// - Each transaction's signature is verified ONCE, here, and remembered in the VerifiedTxCache
//   shared with the executor, so applying the block does not verify it again.
// - Bounded by count (maxTxs) and bytes (maxBytes), and by how long it would take to drain: a
//   DrainMeter measures the committed transactions per second (an EWMA, on the node's clock), and
//   at most that rate × maxDrainMs transactions may wait to be minted (never fewer than
//   MIN_ADMISSIBLE_POOL_TXS; those already in proposed blocks are not waiting). A full pool refuses new transactions at once with PoolFull and an
//   estimate of when there will be room (`retryAfterMs`), rather than evicting (no fee market here
//   to decide who goes) or queueing them for seconds: an accepted transaction commits within about
//   maxDrainMs, what cannot is refused.
// - A transaction behind a nonce gap cannot run until the missing nonces arrive; if they never
//   do, it would hold its place for good, and enough of them would keep the pool full. So such
//   "queued" transactions expire after queuedLifetimeMs (geth's txpool.lifetime, shorter here):
//   expireQueued(), called by the node on a timer, drops them. A transaction that can run next
//   never expires: the leader mints it within a block time.
// - Transactions handed to the minter stay in the pool (they count against the limits) until
//   removeCommitted drops them; a per-account cursor marks how far the minter has taken, so the
//   next take continues after them (speculative minting). returnTxs moves the cursor back when a
//   block turns out to be a no-op; resetInFlight forgets all cursors (leadership lost or gained).

import { ChainError, ChainErrorCode, assert } from './errors.js';
import type { Address } from './keys.js';
import type { Application } from './app.js';
import {
  MAX_TX_BYTES,
  type Transaction,
  VerifiedTxCache,
  decodeRawTransaction,
  decodeTransaction,
  isPrivate,
  verifyTransaction,
} from './tx.js';
import { SystemClock } from '../clock.js';

/** The real clock (node/clock.ts): this module has no injected one. */
const clock = new SystemClock();

/** Most transactions held (pending + taken by the minter but not committed). */
export const MAX_POOL_TXS = 50_000;
/** Most encoded bytes held. At MAX_TX_BYTES per tx this is 1,024 of the largest transactions. */
export const MAX_POOL_BYTES = 64 * 1024 * 1024;
/** A transaction's nonce may be at most this far above its account's committed nonce. */
export const MAX_NONCE_GAP = 1_024;
/** How long a transaction behind a nonce gap may wait for the missing nonces before it is dropped. */
export const QUEUED_TX_LIFETIME_MS = 10 * 60_000;
/**
 * The pool holds at most what the measured commit rate drains in this long (config
 * limits.txPoolMaxDrainMs). By Little's law a pool kept at the bound makes the MEAN wait about
 * this long, so half a second keeps the p99 of submit-to-commit under a second at overload.
 */
export const MAX_POOL_DRAIN_MS = 500;
/**
 * The drain bound never admits fewer than this many transactions: a node that has not measured a
 * rate yet (just started, or idle, so its rate says little about what it can do) takes a burst.
 */
export const MIN_ADMISSIBLE_POOL_TXS = 128;
/**
 * Accounts whose refused nonce the pool remembers (so it refuses their later nonces, see
 * TxPool.precheck); past it the oldest is forgotten. Entries also expire after queuedLifetimeMs.
 */
export const MAX_REFUSED_NONCES = 10_000;
/** Time constant of the commit-rate EWMA: a sample's weight is 1 - exp(-its duration / this). */
export const DRAIN_RATE_TAU_MS = 1_000;
/** Commits are folded into the rate once they span at least this long (blocks commit in bursts). */
export const DRAIN_SAMPLE_MS = 100;
/**
 * A gap between two commits longer than this is idleness, not slowness: it is left out of the
 * rate (the commit after it starts a new sample), so a quiet node keeps its last measured rate.
 */
export const DRAIN_IDLE_GAP_MS = 1_000;

/**
 * Committed transactions per second, measured on the node's clock (monotonic ms): an EWMA over
 * samples of at least DRAIN_SAMPLE_MS, idle gaps excluded. Also the EWMA of the interval between
 * commits, which bounds how soon room can appear (it appears a block at a time).
 */
export class DrainMeter {
  private ratePerSec = 0;
  private measured = false;
  private lastCommitMs: number | undefined;
  private sampleStartMs = 0;
  private sampleTxs = 0;
  private intervalMs = 0;

  constructor(
    private readonly tauMs = DRAIN_RATE_TAU_MS,
    private readonly sampleMs = DRAIN_SAMPLE_MS,
    private readonly idleGapMs = DRAIN_IDLE_GAP_MS,
  ) {
    assert(tauMs > 0 && sampleMs > 0 && idleGapMs >= sampleMs, 'drain meter periods must be positive');
  }

  /** `txs` transactions committed at `nowMs`. */
  committed(txs: number, nowMs: number): void {
    const last = this.lastCommitMs;
    this.lastCommitMs = nowMs;
    if (last === undefined || nowMs - last > this.idleGapMs) {
      // First commit, or the first after an idle gap: it opens a sample, its txs waited through the gap.
      this.sampleStartMs = nowMs;
      this.sampleTxs = 0;
      return;
    }
    const gap = nowMs - last;
    this.intervalMs = this.intervalMs === 0 ? gap : this.intervalMs + 0.2 * (gap - this.intervalMs);
    this.sampleTxs += txs;
    const span = nowMs - this.sampleStartMs;
    if (span < this.sampleMs) return;
    const sample = (this.sampleTxs * 1000) / span;
    if (!this.measured) this.ratePerSec = sample;
    else this.ratePerSec += (1 - Math.exp(-span / this.tauMs)) * (sample - this.ratePerSec);
    this.measured = true;
    this.sampleStartMs = nowMs;
    this.sampleTxs = 0;
  }

  /** Measured committed tx/s; 0 until a first sample. */
  get rate(): number {
    return this.ratePerSec;
  }

  /** EWMA of the time between two commits (ms); 0 until two commits. */
  get commitIntervalMs(): number {
    return this.intervalMs;
  }
}

export interface PoolOptions {
  readonly chainId: number;
  readonly app: Application;
  /** The account's next nonce in the COMMITTED state (ChainState.state). */
  readonly nonceOf: (address: Address) => number;
  readonly verifiedTxs?: VerifiedTxCache;
  readonly maxTxs?: number;
  readonly maxBytes?: number;
  readonly maxNonceGap?: number;
  /** See QUEUED_TX_LIFETIME_MS. */
  readonly queuedLifetimeMs?: number;
  /** See MAX_POOL_DRAIN_MS. */
  readonly maxDrainMs?: number;
  /**
   * Milliseconds clock for arrival times and the drain meter (injected: the node passes its
   * Clock's monotonicMs; tests and the simulator run their own).
   */
  readonly nowMs?: () => number;
}

interface AccountQueue {
  readonly txs: Map<number, Transaction>;
  /** Nonces below this were handed to the minter (or are committed). */
  cursor: number;
  /** Nothing below this nonce is pooled (the committed nonce at the last prune). */
  floor: number;
}

export class TxPool {
  readonly chainId: number;
  readonly maxTxs: number;
  readonly maxBytes: number;
  readonly maxNonceGap: number;
  readonly queuedLifetimeMs: number;
  readonly maxDrainMs: number;
  readonly verifiedTxs: VerifiedTxCache;
  /** Committed tx/s (see DrainMeter); fed by committed(). */
  readonly drain = new DrainMeter();
  private readonly nowMs: () => number;
  /** When each pooled transaction arrived (by hash), for expireQueued. */
  private readonly arrivedAtMs = new Map<string, number>();
  private readonly app: Application;
  private readonly nonceOf: (address: Address) => number;
  private readonly byHash = new Map<string, Transaction>();
  /** Insertion order = round-robin order. */
  private readonly accounts = new Map<Address, AccountQueue>();
  private totalBytes = 0;
  /** Pooled transactions handed to the minter (below their account's cursor): in blocks on their way. */
  private takenCount = 0;
  /** Per account, the lowest nonce refused for want of room, and when (see precheck); oldest first. */
  private readonly refusedNonces = new Map<Address, { nonce: number; atMs: number }>();

  constructor(o: PoolOptions) {
    this.chainId = o.chainId;
    this.app = o.app;
    this.nonceOf = o.nonceOf;
    this.verifiedTxs = o.verifiedTxs ?? new VerifiedTxCache();
    this.maxTxs = o.maxTxs ?? MAX_POOL_TXS;
    this.maxBytes = o.maxBytes ?? MAX_POOL_BYTES;
    this.maxNonceGap = o.maxNonceGap ?? MAX_NONCE_GAP;
    this.queuedLifetimeMs = o.queuedLifetimeMs ?? QUEUED_TX_LIFETIME_MS;
    this.maxDrainMs = o.maxDrainMs ?? MAX_POOL_DRAIN_MS;
    this.nowMs = o.nowMs ?? (() => clock.monotonicMs());
    assert(
      this.maxTxs > 0 && this.maxBytes > 0 && this.maxNonceGap >= 0 && this.queuedLifetimeMs > 0 && this.maxDrainMs > 0,
      'pool limits must be positive',
    );
  }

  get size(): number {
    return this.byHash.size;
  }

  get bytes(): number {
    return this.totalBytes;
  }

  has(hashHex: string): boolean {
    return this.byHash.has(hashHex);
  }

  get(hashHex: string): Transaction | undefined {
    return this.byHash.get(hashHex);
  }

  /** The nonce a new transaction from `address` should use: after the committed and pooled ones. */
  pendingNonce(address: Address): number {
    let n = this.nonceOf(address);
    const q = this.accounts.get(address);
    if (q) while (q.txs.has(n)) n++;
    return n;
  }

  /**
   * Transactions the pool lets WAIT (not yet handed to the minter): what the measured commit rate
   * drains in maxDrainMs, at least MIN_ADMISSIBLE_POOL_TXS. Those already in proposed blocks are
   * not counted: they are bounded by the minter's pending blocks, and their commit takes the
   * pipeline's time whatever the pool does (counting them would starve a pipeline slower than
   * maxDrainMs down to the floor).
   */
  get admissible(): number {
    return Math.max(MIN_ADMISSIBLE_POOL_TXS, Math.floor((this.drainRate * this.maxDrainMs) / 1000));
  }

  /** The commit rate the drain bound uses: the measured one, or the floor's when lower (unmeasured). */
  private get drainRate(): number {
    return Math.max(this.drain.rate, (MIN_ADMISSIBLE_POOL_TXS * 1000) / this.maxDrainMs);
  }

  private hasRoom(bytes: number): boolean {
    return this.waiting < this.admissible && this.byHash.size < this.maxTxs && this.totalBytes + bytes <= this.maxBytes;
  }

  /**
   * Throws PoolFull (with `retryAfterMs`) when a transaction of `bytes` would not be admitted now:
   * over the drain bound, the count or the byte limit. The cheapest check of all: callers run it
   * before verifying a signature they would then throw away.
   */
  checkRoom(bytes = 0): void {
    if (!this.hasRoom(bytes)) throw this.fullError();
  }

  /** PoolFull with retryAfterMs: when, at the measured rate, there should be room for one more. */
  private fullError(why?: string, refusedNonce?: number): ChainError {
    const size = this.byHash.size;
    const waiting = this.waiting;
    const admissible = this.admissible;
    const rate = this.drainRate;
    const drainBound = waiting >= admissible;
    // Room appears as blocks commit: for `excess` more transactions at the measured rate, and not
    // before the next commit (about one commit interval away).
    const excess = Math.max(1, drainBound ? waiting - admissible + 1 : size - this.maxTxs + 1);
    const retryAfterMs = Math.ceil(Math.max((excess * 1000) / rate, this.drain.commitIntervalMs, 1));
    return new ChainError(
      ChainErrorCode.PoolFull,
      why !== undefined
        ? `${why}; retry in ${retryAfterMs} ms`
        : drainBound
          ? `the transaction pool is full: ${waiting} waiting transactions would take over ${this.maxDrainMs} ms to commit at the measured ${Math.round(rate)} tx/s; retry in ${retryAfterMs} ms`
          : `the transaction pool is full (${size} txs, ${this.totalBytes} bytes; limits ${this.maxTxs}, ${this.maxBytes}); retry in ${retryAfterMs} ms`,
      {
        retryAfterMs,
        size,
        waiting,
        bytes: this.totalBytes,
        admissible,
        committedPerSecond: Math.round(this.drain.rate),
        ...(refusedNonce === undefined ? {} : { refusedNonce }),
      },
    );
  }

  /**
   * Admits a transaction, or throws ChainError with one of: TxTooLarge, TxWrongChainId, TxDuplicate,
   * NonceTooLow, NonceGapTooLarge, NonceAlreadyPending, PoolFull, TxAddressMismatch, TxBadSignature,
   * TxMalformed (application refused). The cheap checks run first; the signature last.
   */
  add(tx: Transaction): void {
    this.addChecked(tx, true);
  }

  /**
   * add()'s cheap checks without the signature, nothing admitted: the door (node/transactions.ts)
   * runs it before paying for a signature check on a transaction the pool would refuse anyway.
   */
  checkAdmission(tx: Transaction): void {
    this.precheck(tx, true);
  }

  /** `bounded` false: the drain bound does not apply (a transaction the pool held before, given back). */
  private addChecked(tx: Transaction, bounded: boolean): void {
    this.precheck(tx, bounded);
    verifyTransaction(tx, this.chainId, this.verifiedTxs);
    if (!isPrivate(tx)) this.app.validateTx(tx, tx.ops);
    this.insert(tx);
  }

  private precheck(tx: Transaction, bounded: boolean): void {
    if (tx.encoded.length > MAX_TX_BYTES)
      throw new ChainError(
        ChainErrorCode.TxTooLarge,
        `transaction of ${tx.encoded.length} bytes is over MAX_TX_BYTES=${MAX_TX_BYTES}`,
      );
    if (tx.chainId !== this.chainId) {
      throw new ChainError(
        ChainErrorCode.TxWrongChainId,
        `transaction is for chain ${tx.chainId}, this chain is ${this.chainId}`,
        { hash: tx.hashHex },
      );
    }
    if (this.byHash.has(tx.hashHex))
      throw new ChainError(ChainErrorCode.TxDuplicate, `transaction ${tx.hashHex} is already pending`, {
        hash: tx.hashHex,
      });
    const committed = this.nonceOf(tx.from);
    if (tx.nonce < committed) {
      throw new ChainError(
        ChainErrorCode.NonceTooLow,
        `nonce ${tx.nonce} of ${tx.from} is already used; the next nonce is ${committed}`,
        { hash: tx.hashHex, nonce: tx.nonce, next: committed },
      );
    }
    if (tx.nonce > committed + this.maxNonceGap) {
      throw new ChainError(
        ChainErrorCode.NonceGapTooLarge,
        `nonce ${tx.nonce} of ${tx.from} is more than ${this.maxNonceGap} ahead of the next nonce ${committed}; send the missing nonces first`,
        { hash: tx.hashHex, nonce: tx.nonce, next: committed },
      );
    }
    const q = this.accounts.get(tx.from);
    if (q?.txs.has(tx.nonce)) {
      // `next`: the first nonce after this account's pending run, so a sender that lost track can jump there.
      throw new ChainError(
        ChainErrorCode.NonceAlreadyPending,
        `another transaction of ${tx.from} with nonce ${tx.nonce} is already pending`,
        { hash: tx.hashHex, nonce: tx.nonce, next: this.pendingNonce(tx.from) },
      );
    }
    if (bounded) {
      // A nonce this pool refused for want of room leaves a gap: the account's later nonces would
      // wait behind it, accepted but never committing if it is not sent again. They are refused too.
      const hole = this.refusedNonces.get(tx.from);
      if (hole !== undefined && hole.nonce < committed) this.refusedNonces.delete(tx.from);
      else if (hole !== undefined && tx.nonce > hole.nonce)
        throw this.fullError(
          `nonce ${hole.nonce} of ${tx.from} was refused (the pool was full): its later nonces are refused until it is sent again`,
          hole.nonce,
        );
      if (!this.hasRoom(tx.encoded.length)) {
        if (hole === undefined || tx.nonce < hole.nonce) {
          this.refusedNonces.delete(tx.from);
          this.refusedNonces.set(tx.from, { nonce: tx.nonce, atMs: this.nowMs() });
          if (this.refusedNonces.size > MAX_REFUSED_NONCES)
            this.refusedNonces.delete(this.refusedNonces.keys().next().value!);
        }
        throw this.fullError();
      }
    } else if (this.byHash.size >= this.maxTxs || this.totalBytes + tx.encoded.length > this.maxBytes)
      throw new ChainError(ChainErrorCode.PoolFull, 'the transaction pool is at its count or byte limit', {
        size: this.byHash.size,
        bytes: this.totalBytes,
      });
  }

  /** Decodes (strictly) and adds raw bytes; returns the transaction. */
  addRaw(bytes: Uint8Array): Transaction {
    const tx = decodeTransaction(bytes);
    this.add(tx);
    return tx;
  }

  /** quorate_sendRawTransaction: 0x-hex in, transaction out (its hashHex is the RPC result). */
  addRawHex(hex: string): Transaction {
    const tx = decodeRawTransaction(hex);
    this.add(tx);
    return tx;
  }

  private insert(tx: Transaction): void {
    let q = this.accounts.get(tx.from);
    if (!q) {
      const committed = this.nonceOf(tx.from);
      q = { txs: new Map(), cursor: committed, floor: committed };
      this.accounts.set(tx.from, q);
    }
    q.txs.set(tx.nonce, tx);
    if (tx.nonce < q.cursor) this.takenCount++;
    if (this.refusedNonces.get(tx.from)?.nonce === tx.nonce) this.refusedNonces.delete(tx.from);
    this.byHash.set(tx.hashHex, tx);
    this.arrivedAtMs.set(tx.hashHex, this.nowMs());
    this.totalBytes += tx.encoded.length;
  }

  private removeEntry(q: AccountQueue, address: Address, nonce: number): void {
    const tx = q.txs.get(nonce);
    if (!tx) return;
    q.txs.delete(nonce);
    if (nonce < q.cursor) this.takenCount--;
    this.byHash.delete(tx.hashHex);
    this.arrivedAtMs.delete(tx.hashHex);
    this.totalBytes -= tx.encoded.length;
    if (q.txs.size === 0) this.accounts.delete(address);
  }

  /** Moves an account's cursor back to `to`: its pooled transactions from there on are takeable again. */
  private moveCursorBack(q: AccountQueue, to: number): void {
    if (to >= q.cursor) return;
    if (q.cursor - to <= q.txs.size) {
      for (let n = to; n < q.cursor; n++) if (q.txs.has(n)) this.takenCount--;
    } else {
      for (const n of q.txs.keys()) if (n >= to && n < q.cursor) this.takenCount--;
    }
    q.cursor = to;
  }

  /** Pooled transactions not yet handed to the minter: the queue the drain bound limits. */
  get waiting(): number {
    return this.byHash.size - this.takenCount;
  }

  /**
   * Drops this account's transactions below its committed nonce. `floor` remembers the committed
   * nonce of the last prune (nothing below it is pooled: add refuses stale nonces), so the work
   * is the number of newly committed nonces, or the account's pool size if that is smaller.
   */
  private prune(address: Address, q: AccountQueue): void {
    const committed = this.nonceOf(address);
    if (committed > q.floor) {
      if (committed - q.floor <= q.txs.size) {
        for (let n = q.floor; n < committed; n++) this.removeEntry(q, address, n);
      } else {
        for (const n of [...q.txs.keys()]) if (n < committed) this.removeEntry(q, address, n);
      }
      q.floor = committed;
    }
    if (q.cursor < committed) q.cursor = committed;
  }

  /**
   * For the minter: up to maxTxs transactions and maxBytes encoded bytes that can run next, in
   * nonce order per account, after what earlier takes handed out. They stay in the pool (see top).
   */
  take(maxTxs: number, maxBytes: number): Transaction[] {
    const out: Transaction[] = [];
    let bytes = 0;
    const served: Address[] = [];
    for (const [address, q] of [...this.accounts]) {
      if (out.length >= maxTxs) break;
      this.prune(address, q);
      if (!this.accounts.has(address)) continue;
      let took = false;
      while (out.length < maxTxs) {
        const tx = q.txs.get(q.cursor);
        if (!tx || bytes + tx.encoded.length > maxBytes) break;
        out.push(tx);
        bytes += tx.encoded.length;
        q.cursor++;
        this.takenCount++;
        took = true;
      }
      if (took) served.push(address);
    }
    // Round-robin: accounts served now go to the back of the order.
    for (const a of served) {
      const q = this.accounts.get(a);
      if (q) {
        this.accounts.delete(a);
        this.accounts.set(a, q);
      }
    }
    return out;
  }

  /**
   * Transactions of a block that did not get applied (a no-op block, a dropped proposal). Those
   * still in the pool become takeable again; others (another minter's block) are re-admitted if
   * they pass every check. Returns how many are takeable again.
   */
  returnTxs(txs: readonly Transaction[]): number {
    let n = 0;
    for (const tx of txs) {
      const q = this.accounts.get(tx.from);
      if (this.byHash.has(tx.hashHex) && q) {
        if (tx.nonce < q.cursor) this.moveCursorBack(q, tx.nonce);
        n++;
        continue;
      }
      try {
        // Accepted once already (by this pool or another leader's): not refused for the drain bound.
        this.addChecked(tx, false);
        n++;
      } catch (e) {
        if (!(e instanceof ChainError)) throw e;
        // Stale, duplicate-by-nonce, bad: nothing to return.
      }
    }
    return n;
  }

  /** A block of `txs` was committed (nonceOf reflects it): the drain meter counts them, removeCommitted drops them. */
  committed(txs: readonly Transaction[]): void {
    this.drain.committed(txs.length, this.nowMs());
    this.removeCommitted(txs);
  }

  /**
   * Drops the transactions in `txs` and every pooled one whose nonce is now used, for each sender
   * in `txs` (after a commit, or transactions the minter found invalid). nonceOf must already
   * reflect the block.
   */
  removeCommitted(txs: readonly Transaction[]): void {
    const senders = new Set<Address>();
    for (const tx of txs) senders.add(tx.from);
    for (const a of senders) {
      const q = this.accounts.get(a);
      if (q) this.prune(a, q);
    }
  }

  /** Forgets what was handed to the minter: every pending transaction is takeable again. */
  resetInFlight(): void {
    for (const [a, q] of [...this.accounts]) {
      this.moveCursorBack(q, q.floor);
      this.prune(a, q);
    }
  }

  /**
   * Drops queued transactions (behind a nonce gap: the nonces between the account's committed one
   * and theirs are not all pooled) that arrived more than queuedLifetimeMs ago. Returns the
   * dropped ones. Transactions that can run next, and those handed to the minter, stay.
   */
  expireQueued(): Transaction[] {
    const cutoff = this.nowMs() - this.queuedLifetimeMs;
    const dropped: Transaction[] = [];
    for (const [address, hole] of [...this.refusedNonces]) if (hole.atMs <= cutoff) this.refusedNonces.delete(address);
    for (const [address, q] of [...this.accounts]) {
      this.prune(address, q);
      if (!this.accounts.has(address)) continue;
      let runEnd = this.nonceOf(address);
      while (q.txs.has(runEnd)) runEnd++;
      for (const [nonce, tx] of [...q.txs]) {
        if (nonce <= runEnd || (this.arrivedAtMs.get(tx.hashHex) ?? 0) > cutoff) continue;
        dropped.push(tx);
        this.removeEntry(q, address, nonce);
      }
    }
    return dropped;
  }

  /** Pending transactions of one account in nonce order (RPC, tests). */
  pendingOf(address: Address): Transaction[] {
    const q = this.accounts.get(address);
    if (!q) return [];
    return [...q.txs.values()].sort((a, b) => a.nonce - b.nonce);
  }
}
