// Fetching a block's private payloads from this node's transaction manager before the block is
// applied (applying stays synchronous and does no IO: docs/design.md §5). Owns the retry policy: every
// answer must be known — "could not ask" is never taken for "not a party" (GoQuorum's
// private-state divergence) — so a failure is retried with backoff while an alarm is raised. It
// may not apply anything or touch the chain store.

import {
  ChainError,
  decodePrivatePayload,
  payloadHashKey,
  privatePayloadKeys,
  type Block,
  type PrivatePayload,
  type Transaction,
} from './chain/index.js';
import type { Clock } from './clock.js';
import { sleep } from './abort.js';
import { NodeError, NodeErrorCode } from './errors.js';
import type { Logger } from './log.js';
import type { PrivacyProvider } from './privacy-provider.js';

/** Retry delay while a block's private payloads cannot be fetched (doubles up to the max). */
export const PRIVACY_RETRY_BASE_MS = 100;
export const PRIVACY_RETRY_MAX_MS = 5_000;
/** A block's private payloads fetched from the transaction manager at once. */
export const PRIVACY_FETCH_CONCURRENCY = 64;
/** Prefix of the alarm raised while payloads are unknown (status().alarm). */
const ALARM_PREFIX = 'cannot fetch private payload';

export interface PayloadFetcherDeps {
  readonly privacy?: PrivacyProvider;
  readonly clock: Clock;
  readonly logger: Logger;
  /** True once the node stops: the fetch gives up and its caller applies nothing. */
  readonly stopped: () => boolean;
}

export class PayloadFetcher {
  /** Set while a block waits for payloads the transaction manager cannot give yet. */
  alarm: string | undefined;

  constructor(private readonly deps: PayloadFetcherDeps) {}

  /**
   * Asks the transaction manager about every private transaction of the block, retrying until
   * each answer is known. Returns early (incomplete) when the node stops or `abandon()` says the
   * caller's plan changed: the caller checks and does not apply.
   */
  async fetch(block: Block, abandon?: () => boolean): Promise<Map<string, PrivatePayload>> {
    const out = new Map<string, PrivatePayload>();
    if (privatePayloadKeys(block).length === 0) return out;
    const wanted = new Map<string, Transaction>();
    for (const tx of block.transactions)
      if (tx.privatePayloadHash) wanted.set(payloadHashKey(tx.privatePayloadHash), tx);
    let delayMs = PRIVACY_RETRY_BASE_MS;
    for (;;) {
      if (this.deps.stopped() || abandon?.()) return out;
      const missing = [...wanted].filter(([key]) => !out.has(key));
      if (missing.length === 0) break;
      // Concurrently, a bounded number at a time: the driver waits for the whole block.
      const failures: unknown[] = [];
      for (let i = 0; i < missing.length; i += PRIVACY_FETCH_CONCURRENCY) {
        const results = await Promise.allSettled(
          missing.slice(i, i + PRIVACY_FETCH_CONCURRENCY).map(([key, tx]) => this.fetchOne(out, key, tx)),
        );
        for (const r of results) if (r.status === 'rejected') failures.push(r.reason);
      }
      if (failures.length === 0) break;
      const err = failures[0];
      this.alarm = `${ALARM_PREFIX} for block ${block.header.number}: ${err instanceof Error ? err.message : String(err)}`;
      this.deps.logger.error(
        { err, block: block.header.number, missing: failures.length },
        'private payload unknown: not applying the block until the transaction manager answers',
      );
      await sleep(this.deps.clock, delayMs);
      delayMs = Math.min(delayMs * 2, PRIVACY_RETRY_MAX_MS);
    }
    if (this.alarm !== undefined) {
      this.alarm = undefined;
      this.deps.logger.info({ block: block.header.number }, 'private payloads known again: applying');
    }
    return out;
  }

  private async fetchOne(out: Map<string, PrivatePayload>, key: string, tx: Transaction): Promise<void> {
    const privacy = this.deps.privacy;
    if (!privacy) throw new NodeError(NodeErrorCode.PrivacyUnavailable, 'this node has no transaction manager');
    try {
      const payload = await privacy.receive(tx.privatePayloadHash!, tx.privateFor ?? []);
      out.set(key, payload === null ? { kind: 'not-party' } : { kind: 'party', ops: decodePrivatePayload(payload) });
    } catch (err) {
      // The payload is there but is not a valid op list: a party applies nothing (status 0).
      if (err instanceof ChainError) out.set(key, { kind: 'party', ops: [] });
      else throw err;
    }
  }
}
