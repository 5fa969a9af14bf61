// Catching up after a snapshot skipped blocks: the run that fetches the missing blocks from
// members, from the top down (wire code: node/catch-up.ts), and then replays their private
// transactions, from the oldest, into the private state with this node's own payloads, up to the
// head. Owns the run (start, stop, retry with backoff, resume after a restart from the store's
// CatchUpRecord) and the choice of whom to ask. It may not write the chain store itself: every
// write goes through the ChainApplier under its private lock (node/apply.ts); it only reads
// blocks. A store failure is fatal; a peer's failure is retried with the next member.

import type { PeerTransport } from '../p2p/transport.js';
import { P2pError } from '../p2p/errors.js';
import { sleep } from './abort.js';
import type { ChainApplier } from './apply.js';
import {
  BACKFILL_RETRY_BASE_MS,
  BACKFILL_RETRY_MAX_MS,
  BLOCK_RANGE_MAX_BLOCKS,
  BlockRangeError,
  parentOf,
  requestBlockRange,
  verifyBlockRange,
} from './catch-up.js';
import {
  ChainError,
  ChainErrorCode,
  bytesEqual,
  privatePayloadKeys,
  type Block,
  type CatchUpRecord,
  type ChainStore,
} from './chain/index.js';
import type { Clock } from './clock.js';
import { nodeAssert } from './errors.js';
import type { Logger } from './log.js';
import { findMember } from './membership.js';
import type { PayloadFetcher } from './private-payloads.js';

/**
 * Blocks without private transactions replayed as one step after a snapshot (one synced write
 * moves the private state past all of them); bounds the blocks read per step.
 */
export const REPLAY_SCAN_MAX_BLOCKS = 256;

export interface PrivateCatchUpDeps {
  readonly applier: ChainApplier;
  /** Block reads only (what is stored, and blocks by number). */
  readonly blocks: Pick<ChainStore, 'blockStored' | 'getBlockByNumber'>;
  readonly payloads: PayloadFetcher;
  readonly transport: PeerTransport;
  readonly clock: Clock;
  readonly logger: Logger;
  /** The leader this node knows (0: none): asked first, it holds every block. */
  readonly leader: () => number;
  /** False once the node stops, is removed or failed: the run ends. */
  readonly active: () => boolean;
  /** A store failure or a broken invariant: the node must stop. */
  readonly onFatal: (err: unknown) => void;
}

export class PrivateCatchUp {
  private run: Promise<void> | undefined;
  private abort: AbortController | undefined;
  private readonly log: Logger;

  constructor(private readonly deps: PrivateCatchUpDeps) {
    this.log = deps.logger;
  }

  /** Starts a run when the applier holds a catch-up record and none runs yet. */
  start(): void {
    if (this.run !== undefined || !this.deps.active() || !this.deps.applier.catchUpRecord()) return;
    const abort = new AbortController();
    this.abort = abort;
    this.run = this.loop(abort.signal)
      .catch((err: unknown) => {
        if (this.deps.active()) this.deps.onFatal(err);
      })
      .finally(() => {
        this.run = undefined;
        this.abort = undefined;
        // A snapshot installed just as the previous run ended: its record still needs a run.
        this.start();
      });
  }

  /** Aborts the run and waits for it to end (the node is stopping). */
  async stop(): Promise<void> {
    this.abort?.abort();
    await this.run;
  }

  private async loop(signal: AbortSignal): Promise<void> {
    const applier = this.deps.applier;
    let delayMs = BACKFILL_RETRY_BASE_MS;
    this.log.info(
      { catchUp: applier.catchUpRecord() },
      'catching up after a snapshot: fetching the skipped blocks, then replaying their private transactions',
    );
    for (;;) {
      const record = applier.catchUpRecord();
      if (!this.deps.active() || signal.aborted || !record) return;
      if (record.backfillNext > record.privateThrough) {
        if (await this.backfillStep(record, signal)) {
          delayMs = BACKFILL_RETRY_BASE_MS;
        } else {
          await sleep(this.deps.clock, delayMs, signal);
          delayMs = Math.min(delayMs * 2, BACKFILL_RETRY_MAX_MS);
        }
      } else {
        await this.replayStep(signal);
      }
    }
  }

  /** Members to ask for blocks: the leader first (it has every block), then the others. */
  private backfillPeers(): string[] {
    const self = this.deps.transport.localPeerId;
    const membership = this.deps.applier.membership;
    const leader = findMember(membership, this.deps.leader());
    const out = leader && leader.peerId !== self ? [leader.peerId] : [];
    for (const m of membership.members) if (m.peerId !== self && !out.includes(m.peerId)) out.push(m.peerId);
    return out;
  }

  /** Fetches, verifies and stores one range of missing blocks. False when no member could serve it. */
  private async backfillStep(record: CatchUpRecord, signal: AbortSignal): Promise<boolean> {
    const { blocks: store, applier } = this.deps;
    // Skip what is stored already (a second snapshot's range runs down into the first one's).
    let hi = record.backfillNext;
    while (hi > record.privateThrough && (await store.blockStored(hi)) === 'complete') hi--;
    if (hi <= record.privateThrough) {
      await applier.storeBackfilled(record, [], hi);
      return true;
    }
    // The top of the range is authenticated by what this node holds: the block itself when it is
    // here without its receipts (a snapshot's head), else its successor's parentHash.
    const held = await store.getBlockByNumber(hi);
    const successor = held ? undefined : await store.getBlockByNumber(hi + 1);
    nodeAssert(held || successor, () => `catch-up: neither block ${hi} nor its successor is stored`);
    const top = held ? { number: hi, hash: held.hash } : parentOf(successor!);
    let lo = hi;
    while (
      lo - 1 > record.privateThrough &&
      hi - lo + 1 < BLOCK_RANGE_MAX_BLOCKS &&
      (await store.blockStored(lo - 1)) !== 'complete'
    )
      lo--;
    let lastError: unknown;
    for (const peerId of this.backfillPeers()) {
      if (signal.aborted) return false;
      let blocks;
      try {
        blocks = await requestBlockRange(this.deps.transport, peerId, { from: lo, to: hi }, signal);
        verifyBlockRange(blocks, top, record.privateThrough);
      } catch (err) {
        // Whatever a peer or the network did (unreachable, timed out, does not hold them, sent
        // something else: BlockRangeError / P2pError) is the peer's failure, not this node's:
        // ask the next member. Nothing here has written anything yet.
        lastError = err;
        if (!(err instanceof BlockRangeError) && !(err instanceof P2pError))
          this.log.warn({ err, peer: peerId }, 'catch-up: unexpected error asking a peer for blocks');
        continue;
      }
      const lowest = blocks[0].block.header.number;
      if (lowest === record.privateThrough + 1) {
        // The fetched chain is verified from the top (the cluster's); it must also extend the
        // block this node applied last. If not, this node's own history is not the cluster's:
        // replaying on top of it would build private state on a chain nobody else has.
        const own = await store.getBlockByNumber(record.privateThrough);
        nodeAssert(
          own,
          () => `catch-up: block ${record.privateThrough}, where the private state stands, is not stored`,
        );
        if (!bytesEqual(own.hash, blocks[0].block.header.parentHash)) {
          throw new ChainError(
            ChainErrorCode.StoreCorrupt,
            `catch-up: this node's block ${own.header.number} (${own.hashHex}) is not the parent of the cluster's block ${lowest}: this node's chain diverged`,
            { block: own.header.number },
          );
        }
      }
      // False: a snapshot install changed the plan meanwhile; the loop fetches again.
      await applier.storeBackfilled(record, blocks, lowest - 1);
      this.log.debug({ from: lowest, to: hi, peer: peerId }, 'catch-up: stored blocks fetched from a peer');
      return true;
    }
    this.log.warn({ err: lastError, from: lo, to: hi }, 'catch-up: no member could serve the missing blocks; retrying');
    return false;
  }

  /**
   * Replays the private part of the next block(s) after privateThrough: a run of blocks without
   * private transactions and the first block with some, as one synced write. Payloads come from
   * this node's own transaction manager, retried until each answer is known.
   */
  private async replayStep(signal: AbortSignal): Promise<void> {
    const applier = this.deps.applier;
    const start = await applier.replayWindow();
    if (!start) return;
    nodeAssert(
      start.from <= start.head,
      () => `catch-up: private state at ${start.from - 1} is not behind the head ${start.head}`,
    );
    let target: Block | undefined;
    for (let n = start.from; n <= start.head && n < start.from + REPLAY_SCAN_MAX_BLOCKS; n++) {
      const block = await this.deps.blocks.getBlockByNumber(n);
      if (!block) break; // skipped by a snapshot installed since: the next backfill fetches it
      target = block;
      if (privatePayloadKeys(block).length > 0) break;
    }
    if (!target) {
      const record = applier.catchUpRecord();
      nodeAssert(
        record === undefined || record.backfillNext > record.privateThrough,
        () => `catch-up: block ${start.from} is missing with no backfill pending`,
      );
      return;
    }
    const block = target;
    // A snapshot installed while this waits for the transaction manager moves the plan (new blocks
    // to fetch first): give up this block and start over from the new record.
    const planned = applier.catchUpRecord();
    const abandoned = () => signal.aborted || applier.catchUpRecord() !== planned;
    const payloads = await this.deps.payloads.fetch(block, abandoned);
    if (!this.deps.active() || abandoned()) return;
    await applier.replayPrivate(block, payloads, start.from);
  }
}
