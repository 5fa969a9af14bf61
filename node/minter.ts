// The leader's minter and the pool's steward. Owns the blocks this node proposed and has not
// applied yet (speculative minting: each builds on the previous one's state), building a block
// from the pool every blockTimeMs while leading, giving transactions back when a proposal fails
// or the speculation breaks, handing a deposed leader's pool to the new leader, and expiring
// transactions stuck behind a nonce gap. It may not apply blocks, write any store, or decide
// leadership: it is told (isLeader, the committed chain, what was applied).

import {
  baseOf,
  buildBlock,
  encodeBlock,
  type AccountKey,
  type Application,
  type Block,
  type BuildBase,
  type BuiltBlock,
  type ChainState,
  type TxPool,
  type VerifiedTxCache,
} from './chain/index.js';
import type { Clock } from './clock.js';
import type { TxForwarder } from './forward.js';
import type { Logger } from './log.js';
import { BLOCK_ENVELOPE_BYTES, type BlockOptions } from './options.js';

export interface BlockMinterDeps {
  readonly app: Application;
  readonly chainId: number;
  readonly minterKey: AccountKey;
  readonly verifiedTxs: VerifiedTxCache;
  readonly clock: Clock;
  readonly logger: Logger;
  readonly pool: () => TxPool;
  readonly chain: () => ChainState;
  readonly forwarder: TxForwarder;
  /** This node's raft id and the term it leads in. */
  readonly self: () => number;
  readonly term: () => number;
  /** Whether this node leads and may propose (as of the last Ready, and the node is running). */
  readonly mayPropose: () => boolean;
  /** Proposes one encoded block as a Raft entry; rejects when it is not accepted. */
  readonly propose: (data: Uint8Array) => Promise<void>;
}

export class BlockMinter {
  private readonly pending = new Map<string, BuiltBlock>();
  private speculativeBase: BuildBase | undefined;
  private handingOver = false;

  constructor(
    private readonly options: BlockOptions,
    private readonly deps: BlockMinterDeps,
  ) {}

  /** This node's own pending block (the executor reuses what building it computed). */
  ownBlock(hashHex: string): BuiltBlock | undefined {
    return this.pending.get(hashHex);
  }

  /** Builds and proposes one block from the pool, when leading and below maxPendingBlocks. */
  mint(): void {
    if (!this.deps.mayPropose()) return;
    const o = this.options;
    const pool = this.deps.pool();
    const maxTxBytes = o.blockMaxBytes - BLOCK_ENVELOPE_BYTES;
    if (this.pending.size >= o.maxPendingBlocks || pool.size === 0) return;
    const txs = pool.take(o.blockMaxTransactions, maxTxBytes);
    if (txs.length === 0) return;
    const built = buildBlock(
      this.deps.app,
      this.deps.chainId,
      this.speculativeBase ?? baseOf(this.deps.chain()),
      txs,
      { raftId: this.deps.self(), key: this.deps.minterKey },
      this.deps.clock.wallMs(),
      this.deps.term(),
      { maxTxs: o.blockMaxTransactions, maxTxBytes },
      this.deps.verifiedTxs,
    );
    if (built.deferred.length > 0) pool.returnTxs(built.deferred);
    if (built.rejected.length > 0) {
      pool.removeCommitted(built.rejected.map((r) => r.tx));
      this.deps.logger.debug({ rejected: built.rejected.length }, 'transactions dropped from the pool at minting');
    }
    if (built.block.transactions.length === 0) return; // never an empty block
    const hashHex = built.block.hashHex;
    this.pending.set(hashHex, built);
    this.speculativeBase = built.next;
    this.deps.propose(encodeBlock(built.block)).catch((err: unknown) => {
      // Not proposed (lost leadership, transfer in progress, quota): give the transactions back.
      if (this.pending.delete(hashHex)) {
        this.speculativeBase = undefined;
        pool.resetInFlight();
      }
      this.deps.logger.debug({ err }, 'block proposal refused');
    });
  }

  /** A block was applied: its transactions leave the pool; ours leaves the pending set. */
  applied(block: Block, mine: boolean): void {
    this.deps.pool().committed(block.transactions);
    if (!mine) return;
    this.pending.delete(block.hashHex);
    if (this.pending.size === 0) this.speculativeBase = undefined;
  }

  /**
   * Blocks proposed but not applied may still commit under the next leader (they are then applied
   * normally) or never; their transactions stay in the pool and nonces decide. Also when our
   * speculative chain broke (a no-op block of ours): every later pending block is a no-op too.
   */
  reset(): void {
    this.pending.clear();
    this.speculativeBase = undefined;
    this.deps.pool().resetInFlight();
  }

  /** A deposed leader hands the transactions it accepted to the new leader (once at a time). */
  async handOverPool(maxTxs: number): Promise<void> {
    if (this.handingOver) return;
    this.handingOver = true;
    try {
      const pool = this.deps.pool();
      pool.resetInFlight();
      const txs = pool.take(maxTxs, Number.MAX_SAFE_INTEGER);
      pool.removeCommitted(txs);
      const { forwarded, refused } = await this.deps.forwarder.forwardAll(txs);
      if (refused.size > 0)
        // Accepted here, never committed, and not taken by the new leader (its pool full, a nonce it
        // already has, no connection): their senders see no receipt and must send again.
        this.deps.logger.warn(
          { pending: txs.length, forwarded, refused: Object.fromEntries(refused) },
          'the new leader did not take every transaction of a lost leadership: the refused ones are dropped',
        );
      else if (txs.length > 0)
        this.deps.logger.info(
          { pending: txs.length, forwarded },
          'handed the pool of a lost leadership to the new leader',
        );
    } finally {
      this.handingOver = false;
    }
  }

  /** Drops transactions that waited behind a nonce gap past their lifetime. */
  expirePool(): void {
    const pool = this.deps.pool();
    const dropped = pool.expireQueued();
    if (dropped.length > 0)
      this.deps.logger.info(
        { dropped: dropped.length, lifetimeMs: pool.queuedLifetimeMs },
        'dropped pooled transactions that waited behind a nonce gap past their lifetime',
      );
  }
}
