// The transaction manager (Tessera's role): it seals a private payload for its parties, pushes
// each recipient its own copy, keeps what this node is a party to, and answers "here is the
// payload" or "this node is not a party" — two distinct answers, with every failure to answer
// thrown instead (GoQuorum nodes diverged when a Tessera error was read as "not a party").
//
// Delivery (docs/correctness.md, "a private transaction failed whenever one recipient was offline"):
//  - "fail-fast" (default): `send` resolves only after every recipient node acknowledged durable
//    storage; a recipient that is down fails `send` with RecipientUnavailable naming it, at once
//    when its circuit breaker is open, otherwise after pushTimeoutMs;
//  - "queue": what cannot be delivered now is recorded in a durable, bounded OwedQueue and pushed
//    when the party returns (retried every queueRetryIntervalMs, paced by the party's breaker).
//  - `resend(nodeId)`: a recovered or rebuilt node fetches every payload it is a party to.

import {
  decodePayload,
  type Enclave,
  EnclaveError,
  EnclaveErrorCode,
  type EncodedPayload,
  encodePayload,
  keyFromBase64,
  keyToBase64,
  type KeyProof,
  type KeyProofRequest,
  MAX_PLAINTEXT_BYTES,
  mergePayloads,
  PAYLOAD_HASH_BYTES,
  payloadHashBase64,
  selectRecipients,
} from '../enclave/index.js';
import { type BreakerSnapshot, CircuitBreaker, type CircuitBreakerOptions } from './circuit-breaker.js';
import type { TmClock, TmTimerHandle } from './clock.js';
import { assert, TxManagerError, TxManagerErrorCode } from './errors.js';
import type { KeyDirectory } from './key-directory.js';
import type { OwedQueue } from './owed-queue.js';
import { MAX_STORE_SCAN_ENTRIES, type PayloadStore } from './payload-store.js';
import {
  MAX_PUSH_BYTES,
  MAX_RESEND_PAGE_BYTES,
  MAX_RESEND_PAGE_PAYLOADS,
  type PartyTransport,
  PartyTransportError,
  PartyTransportErrorCode,
  type ResendPage,
  type ResendRequest,
  validateResendRequest,
} from './transport.js';

export type DeliveryMode = 'fail-fast' | 'queue';

/** How long one push may take before the recipient counts as unavailable. */
export const DEFAULT_PUSH_TIMEOUT_MS = 5_000;
/** How long one resend page may take. */
export const DEFAULT_RESEND_PAGE_TIMEOUT_MS = 30_000;
/** Pause between passes over the owed-delivery queue (queue mode). */
export const DEFAULT_QUEUE_RETRY_INTERVAL_MS = 1_000;
/** Most owed deliveries pushed to one node in one pass: a returning party is fed in bounded steps. */
export const MAX_OWED_DELIVERIES_PER_PASS = 32;
/**
 * Most stored payloads examined to answer one resend page. A page may come back short or
 * empty (with a cursor) instead of scanning a whole store while the requester waits.
 */
export const MAX_RESEND_SCAN_ENTRIES_PER_PAGE = 256;
/** Most pages one resend fetches from one counterparty: a guard against a cursor that never ends. */
export const MAX_RESEND_PAGES = 1_000_000;

export interface TransactionManagerOptions {
  readonly deliveryMode?: DeliveryMode;
  readonly pushTimeoutMs?: number;
  readonly resendPageTimeoutMs?: number;
  readonly queueRetryIntervalMs?: number;
  /** Largest payload accepted by send (at most, and by default, the enclave's MAX_PLAINTEXT_BYTES). */
  readonly maxPayloadBytes?: number;
  /** Per-party circuit breaker settings (DEFAULT_CIRCUIT_BREAKER_OPTIONS otherwise). */
  readonly breaker?: Partial<CircuitBreakerOptions>;
  /** Quota of the payload store in bytes (limits.tmStoreMaxBytes); applied where the store is opened (durable.ts). */
  readonly storeMaxBytes?: number;
}

export interface TransactionManagerDeps {
  readonly nodeId: string;
  readonly enclave: Enclave;
  readonly store: PayloadStore;
  readonly transport: PartyTransport;
  readonly directory: KeyDirectory;
  /** Required in queue mode. */
  readonly owedQueue?: OwedQueue;
  /** The node's clock: owed-delivery passes and circuit-breaker backoff (with its jitter). */
  readonly clock: TmClock;
}

/** The answer of `receive`: the plaintext, or the statement that this node is not a party. */
export type ReceiveResult =
  | { readonly kind: 'party'; readonly payload: Uint8Array; readonly senderKey: string }
  | { readonly kind: 'not-a-party' };

export interface OwedDeliveryPass {
  readonly delivered: number;
  readonly failed: number;
  /** Entries dropped because the payload or the party's keys are gone. */
  readonly dropped: number;
}

export interface ResendOutcome {
  readonly nodeId: string;
  readonly stored: number;
  readonly error?: Error;
}

export interface TransactionManagerStats {
  readonly sent: number;
  readonly pushesAccepted: number;
  readonly pushesRefused: number;
  readonly owedDelivered: number;
  readonly owedDeliveryFailures: number;
  readonly corruptPayloadsSkippedInResend: number;
  readonly lastOwedDeliveryError: string | null;
}

const HASH_BASE64_LENGTH = Math.ceil(PAYLOAD_HASH_BYTES / 3) * 4; // 88

export class TransactionManager {
  readonly nodeId: string;
  readonly deliveryMode: DeliveryMode;
  private readonly enclave: Enclave;
  private readonly store: PayloadStore;
  private readonly transport: PartyTransport;
  private readonly directory: KeyDirectory;
  private readonly owedQueue: OwedQueue | undefined;
  private readonly clock: TmClock;
  private readonly pushTimeoutMs: number;
  private readonly maxPayloadBytes: number;
  private readonly resendPageTimeoutMs: number;
  private readonly queueRetryIntervalMs: number;
  private readonly breakerOptions: Partial<CircuitBreakerOptions>;
  // Bounded by the directory's MAX_DIRECTORY_NODES: breakers exist only for nodes in it.
  private readonly breakers = new Map<string, CircuitBreaker>();
  // One chain per payload hash being written, so merging two copies never loses a box.
  private readonly hashLocks = new Map<string, Promise<void>>();
  private readonly ownKeys: readonly Uint8Array[];
  private readonly ownKeySet: ReadonlySet<string>;
  private started = false;
  private stopped = false;
  private timer: TmTimerHandle | null = null;
  private pass: Promise<unknown> | null = null;
  private counters = {
    sent: 0,
    pushesAccepted: 0,
    pushesRefused: 0,
    owedDelivered: 0,
    owedDeliveryFailures: 0,
    corruptPayloadsSkippedInResend: 0,
  };
  private lastOwedDeliveryError: string | null = null;

  constructor(options: TransactionManagerOptions, deps: TransactionManagerDeps) {
    this.nodeId = deps.nodeId;
    this.deliveryMode = options.deliveryMode ?? 'fail-fast';
    this.enclave = deps.enclave;
    this.store = deps.store;
    this.transport = deps.transport;
    this.directory = deps.directory;
    this.owedQueue = deps.owedQueue;
    this.clock = deps.clock;
    this.pushTimeoutMs = options.pushTimeoutMs ?? DEFAULT_PUSH_TIMEOUT_MS;
    this.maxPayloadBytes = Math.min(options.maxPayloadBytes ?? MAX_PLAINTEXT_BYTES, MAX_PLAINTEXT_BYTES);
    assert(this.maxPayloadBytes > 0, 'maxPayloadBytes must be positive');
    this.resendPageTimeoutMs = options.resendPageTimeoutMs ?? DEFAULT_RESEND_PAGE_TIMEOUT_MS;
    this.queueRetryIntervalMs = options.queueRetryIntervalMs ?? DEFAULT_QUEUE_RETRY_INTERVAL_MS;
    this.breakerOptions = options.breaker ?? {};
    if (this.deliveryMode !== 'fail-fast' && this.deliveryMode !== 'queue') {
      throw new TxManagerError(
        TxManagerErrorCode.InvalidConfig,
        `deliveryMode must be "fail-fast" or "queue", got ${JSON.stringify(this.deliveryMode)}`,
      );
    }
    if (this.deliveryMode === 'queue' && this.owedQueue === undefined) {
      throw new TxManagerError(
        TxManagerErrorCode.InvalidConfig,
        'deliveryMode "queue" needs an OwedQueue (deps.owedQueue)',
      );
    }
    if (deps.transport.localNodeId !== deps.nodeId) {
      throw new TxManagerError(
        TxManagerErrorCode.InvalidConfig,
        `transport is for node ${deps.transport.localNodeId}, transaction manager for ${deps.nodeId}`,
      );
    }
    assert(
      this.pushTimeoutMs > 0 && this.resendPageTimeoutMs > 0 && this.queueRetryIntervalMs > 0,
      'timeouts and intervals must be positive',
    );
    this.ownKeys = this.enclave.publicKeys();
    this.ownKeySet = new Set(this.ownKeys.map(keyToBase64));
    for (const key of this.ownKeySet) {
      const owner = this.directory.tryNodeFor(key);
      if (owner !== undefined && owner !== this.nodeId) {
        throw new TxManagerError(
          TxManagerErrorCode.KeyConflict,
          `this node's key ${key} is listed under node ${owner} in the key directory`,
          { key, owner },
        );
      }
    }
  }

  /** Installs the transport handlers and, in queue mode, starts delivering what is owed. */
  start(): void {
    assert(!this.started, 'TransactionManager.start() called twice');
    this.started = true;
    this.transport.handle({
      onPush: (from, bytes, signal) => this.acceptPush(from, bytes, signal),
      onResendRequest: (from, request, signal) => this.answerResend(from, request, signal),
    });
    if (this.deliveryMode === 'queue') this.scheduleOwedPass();
  }

  /** Stops serving and delivering; waits for a running delivery pass. Does not close the store. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== null) this.timer.cancel();
    this.timer = null;
    this.transport.unhandle();
    await this.pass;
  }

  /** This node's enclave public keys (base64). */
  publicKeys(): string[] {
    return this.ownKeys.map(keyToBase64);
  }

  /**
   * Proves that this node holds the private half of each of its keys, for a member's fresh
   * challenge (enclave/key-proof.ts): what a member asks before it adds this node to the cluster.
   */
  proveKeys(request: KeyProofRequest, binding: Uint8Array): Promise<KeyProof[]> {
    return this.enclave.proveKeys(request, binding);
  }

  /** Every key this node knows and the node it lives on (GET /partyinfo/keys). */
  partyKeys(): Array<{ key: string; node: string }> {
    const entries = this.directory.entries();
    const known = new Set(entries.map((e) => e.key));
    for (const key of this.ownKeySet) if (!known.has(key)) entries.push({ key, node: this.nodeId });
    return entries;
  }

  /**
   * Seals `payload` for `to` (base64 keys) and `from` (default: this node's first key), stores
   * the whole payload, pushes each recipient node its copy, and returns the base64 hash.
   * fail-fast: resolves only once every recipient node acknowledged. Throws
   * RecipientUnavailable / RecipientRejected (naming the parties), UnknownRecipientKey,
   * UnknownSenderKey, PayloadTooLarge, InvalidRequest, QueueFull, StorageFailure.
   */
  async send(payload: Uint8Array, from: string | undefined, to: readonly string[]): Promise<string> {
    this.checkRunning();
    const senderKey = this.checkSend(payload, from);
    return this.sealAndDistribute(to, (recipientKeys) =>
      this.enclave.encryptPayload(payload, keyFromBase64(senderKey), recipientKeys),
    );
  }

  /**
   * Tessera's /storeraw: seals `payload` for its sender only and stores it, returning the hash.
   * The client then signs a transaction carrying that hash and calls sendSignedTransaction with
   * the recipients; the hash does not change.
   */
  async storeRaw(payload: Uint8Array, from?: string): Promise<string> {
    this.checkRunning();
    const senderKey = this.checkSend(payload, from);
    const encoded = await this.enclave.encryptPayload(payload, keyFromBase64(senderKey), []);
    await this.storeCopy(encoded);
    return payloadHashBase64(encoded);
  }

  /**
   * Tessera's /sendsignedtx: adds boxes for `to` to a payload this node stored with storeRaw (or
   * sent before) and delivers it exactly as `send` does. Returns the same hash. Throws
   * UnknownPayload when nothing is stored under `hash`, UnknownSenderKey when this node is not
   * its sender, and whatever `send` throws.
   */
  async sendSignedTransaction(hash: string, to: readonly string[]): Promise<string> {
    this.checkRunning();
    validateHash(hash);
    const stored = await this.store.get(hash);
    if (stored === undefined)
      throw new TxManagerError(TxManagerErrorCode.UnknownPayload, `no payload is stored under ${hash}`, { hash });
    const raw = this.decodeStored(hash, stored);
    if (!this.ownKeySet.has(keyToBase64(raw.senderKey))) {
      throw new TxManagerError(
        TxManagerErrorCode.UnknownSenderKey,
        `payload ${hash} was sealed by ${keyToBase64(raw.senderKey)}, not by this node`,
        { hash },
      );
    }
    const sent = await this.sealAndDistribute(to, (recipientKeys) => this.enclave.addRecipients(raw, recipientKeys));
    assert(sent === hash, () => `adding recipients changed the payload hash ${hash} to ${sent}`);
    return sent;
  }

  private checkSend(payload: Uint8Array, from: string | undefined): string {
    if (payload.length > this.maxPayloadBytes) {
      throw new TxManagerError(
        TxManagerErrorCode.PayloadTooLarge,
        `payload is ${payload.length} bytes, over the limit of ${this.maxPayloadBytes} (limits.privatePayloadMaxBytes, at most MAX_PLAINTEXT_BYTES=${MAX_PLAINTEXT_BYTES})`,
        {
          bytes: payload.length,
          max: this.maxPayloadBytes,
        },
      );
    }
    const senderKey = from ?? keyToBase64(this.ownKeys[0]);
    if (!this.ownKeySet.has(senderKey)) {
      throw new TxManagerError(
        TxManagerErrorCode.UnknownSenderKey,
        `from ${senderKey} is not one of this node's keys`,
        { key: senderKey },
      );
    }
    return senderKey;
  }

  /** Resolves `to`, consults the breakers, seals, stores the whole payload, and delivers each node its copy. */
  private async sealAndDistribute(
    to: readonly string[],
    seal: (recipientKeys: Uint8Array[]) => Promise<EncodedPayload>,
  ): Promise<string> {
    // Resolve every recipient before any work: an unknown key is a client error, never guessed.
    const keysByNode = new Map<string, string[]>();
    const recipientKeys: Uint8Array[] = [];
    for (const key of to) {
      recipientKeys.push(parseKey(key, 'recipient'));
      if (this.ownKeySet.has(key)) continue; // held here: the sender's full copy serves it
      const nodeId = this.directory.nodeFor(key);
      if (nodeId === this.nodeId) continue;
      const list = keysByNode.get(nodeId) ?? [];
      if (!list.includes(key)) list.push(key);
      keysByNode.set(nodeId, list);
    }

    // Ask every party's breaker first, so a known-down party fails the send before any crypto.
    const admitted: string[] = [];
    const refused: string[] = [];
    for (const nodeId of keysByNode.keys()) (this.breaker(nodeId).tryAcquire() ? admitted : refused).push(nodeId);
    if (refused.length > 0 && this.deliveryMode === 'fail-fast') {
      for (const nodeId of admitted) this.breaker(nodeId).cancel();
      throw this.unavailable(refused, keysByNode, 'circuit breaker open: the party failed recently');
    }

    let hash: string;
    const results: Array<{ nodeId: string; error?: unknown }> = [];
    try {
      const encoded = await seal(recipientKeys);
      hash = payloadHashBase64(encoded);
      // Stored before any push: the sender never lacks what a recipient holds.
      await this.storeCopy(encoded, hash);
      await Promise.all(
        admitted.map(async (nodeId) => {
          const copy = selectRecipients(
            encoded,
            (keysByNode.get(nodeId) as string[]).map((k) => keyFromBase64(k)),
          );
          try {
            await this.pushTo(nodeId, encodePayload(copy));
            results.push({ nodeId });
          } catch (error) {
            results.push({ nodeId, error });
          }
        }),
      );
    } catch (error) {
      // Permits of pushes never attempted go back; attempted ones were settled in pushTo.
      for (const nodeId of admitted) if (!results.some((r) => r.nodeId === nodeId)) this.breaker(nodeId).cancel();
      throw error;
    }

    const rejected = results.filter(
      (r) => r.error instanceof PartyTransportError && r.error.code === PartyTransportErrorCode.Rejected,
    );
    const unavailable = [
      ...refused,
      ...results.filter((r) => r.error !== undefined && !rejected.includes(r)).map((r) => r.nodeId),
    ];
    if (this.deliveryMode === 'queue') {
      const queue = this.owedQueue as OwedQueue;
      for (const nodeId of unavailable) await queue.add(nodeId, hash);
    } else if (unavailable.length > 0) {
      const causes = results.filter((r) => unavailable.includes(r.nodeId)).map((r) => r.error);
      throw this.unavailable(
        unavailable,
        keysByNode,
        causes.map((e) => (e as Error)?.message ?? String(e)).join('; '),
        causes[0],
      );
    }
    if (rejected.length > 0) {
      const nodeIds = rejected.map((r) => r.nodeId);
      throw new TxManagerError(
        TxManagerErrorCode.RecipientRejected,
        `recipient node(s) ${nodeIds.join(', ')} refused the payload: ${rejected.map((r) => (r.error as Error).message).join('; ')}`,
        { nodeIds, keys: nodeIds.flatMap((n) => keysByNode.get(n) ?? []) },
        { cause: rejected[0].error },
      );
    }
    this.counters.sent++;
    return hash;
  }

  /**
   * The plaintext of payload `hash`, read with `asKey` (base64, one of this node's keys) or any
   * of this node's keys; `{ kind: 'not-a-party' }` when this node holds no copy (or none for
   * `asKey`). Everything else — storage failure, corrupt copy, tampered ciphertext — is thrown.
   */
  async receive(hash: string, asKey?: string): Promise<ReceiveResult> {
    validateHash(hash);
    let asKeyBytes: Uint8Array | undefined;
    if (asKey !== undefined) {
      asKeyBytes = parseKey(asKey, 'asKey');
      if (!this.ownKeySet.has(asKey))
        throw new TxManagerError(TxManagerErrorCode.UnknownLocalKey, `key ${asKey} is not one of this node's keys`, {
          key: asKey,
        });
    }
    const stored = await this.store.get(hash);
    if (stored === undefined) return { kind: 'not-a-party' };
    const payload = this.decodeStored(hash, stored);
    try {
      const plaintext = await this.enclave.decryptPayload(payload, asKeyBytes);
      return { kind: 'party', payload: plaintext, senderKey: keyToBase64(payload.senderKey) };
    } catch (error) {
      if (error instanceof EnclaveError && error.code === EnclaveErrorCode.NotARecipient && asKeyBytes !== undefined)
        return { kind: 'not-a-party' };
      throw error;
    }
  }

  /** Whether this node holds payload `hash`. Throws on storage failure; never answers "no" for "could not tell". */
  async isParty(hash: string): Promise<boolean> {
    validateHash(hash);
    return this.store.has(hash);
  }

  /** State of each remote party's circuit breaker, for metrics. */
  breakerSnapshots(): Record<string, BreakerSnapshot> {
    const out: Record<string, BreakerSnapshot> = {};
    for (const [nodeId, breaker] of this.breakers) out[nodeId] = breaker.snapshot();
    return out;
  }

  stats(): TransactionManagerStats {
    return { ...this.counters, lastOwedDeliveryError: this.lastOwedDeliveryError };
  }

  /** Deliveries still owed (queue mode), per node. */
  owed(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const nodeId of this.owedQueue?.nodes() ?? []) out[nodeId] = (this.owedQueue as OwedQueue).sizeFor(nodeId);
    return out;
  }

  /**
   * One pass over the owed-delivery queue: for each owed node whose breaker admits a request,
   * push up to MAX_OWED_DELIVERIES_PER_PASS payloads, stopping at that node's first failure.
   * Runs by itself every queueRetryIntervalMs in queue mode; callable directly.
   */
  async deliverOwed(): Promise<OwedDeliveryPass> {
    const queue = this.owedQueue;
    if (queue === undefined) return { delivered: 0, failed: 0, dropped: 0 };
    let delivered = 0;
    let failed = 0;
    let dropped = 0;
    for (const nodeId of queue.nodes()) {
      if (this.stopped) break;
      const nodeKeys = this.directory.hasNode(nodeId) ? this.directory.keysOf(nodeId).map((k) => keyFromBase64(k)) : [];
      for (const hash of queue.peek(nodeId, MAX_OWED_DELIVERIES_PER_PASS)) {
        const stored = await this.store.get(hash);
        const copy = stored === undefined ? undefined : selectRecipients(this.decodeStored(hash, stored), nodeKeys);
        if (copy === undefined || copy.recipientKeys.length === 0) {
          // The payload was deleted, or the node was removed / no longer holds the keys: nothing can be delivered.
          await queue.remove(nodeId, hash);
          dropped++;
          continue;
        }
        if (!this.breaker(nodeId).tryAcquire()) break;
        try {
          await this.pushTo(nodeId, encodePayload(copy));
        } catch (error) {
          failed++;
          this.counters.owedDeliveryFailures++;
          this.lastOwedDeliveryError = `${nodeId}: ${(error as Error)?.message ?? String(error)}`;
          break;
        }
        await queue.remove(nodeId, hash);
        delivered++;
        this.counters.owedDelivered++;
      }
    }
    return { delivered, failed, dropped };
  }

  /**
   * Fetches from `nodeId` every payload this node is a party to (a recovered or rebuilt node
   * calls this for each counterparty) and stores each copy. Returns how many copies it stored.
   */
  async resend(nodeId: string): Promise<number> {
    this.checkRunning();
    assert(nodeId !== this.nodeId, 'resend from this node itself');
    let afterHash: string | null = null;
    let stored = 0;
    for (let pageNo = 0; pageNo < MAX_RESEND_PAGES; pageNo++) {
      const page: ResendPage = await this.transport.resendRequest(
        nodeId,
        { afterHash, maxPayloads: MAX_RESEND_PAGE_PAYLOADS },
        AbortSignal.timeout(this.resendPageTimeoutMs),
      );
      for (const bytes of page.payloads) {
        await this.acceptCopy(bytes, true);
        stored++;
      }
      if (page.nextAfterHash === null) return stored;
      if (afterHash !== null && page.nextAfterHash <= afterHash) {
        throw new PartyTransportError(
          PartyTransportErrorCode.Protocol,
          nodeId,
          `node ${nodeId} returned a resend cursor that does not advance`,
        );
      }
      afterHash = page.nextAfterHash;
    }
    throw new PartyTransportError(
      PartyTransportErrorCode.Protocol,
      nodeId,
      `resend from ${nodeId} exceeded MAX_RESEND_PAGES=${MAX_RESEND_PAGES}`,
    );
  }

  /** resend from every other node in the directory; one outcome per node, failures included. */
  async resendAll(): Promise<ResendOutcome[]> {
    const outcomes: ResendOutcome[] = [];
    for (const nodeId of this.directory.nodes()) {
      if (nodeId === this.nodeId) continue;
      try {
        outcomes.push({ nodeId, stored: await this.resend(nodeId) });
      } catch (error) {
        outcomes.push({ nodeId, stored: 0, error: error as Error });
      }
    }
    return outcomes;
  }

  // -------------------------------------------------------------------------
  // Inbound
  // -------------------------------------------------------------------------

  // The pushing node's id is not checked against the sender key: the boxes already prove who
  // sealed the payload (only the sender's secret key and ours produce a box that opens), and a
  // membership change that has not reached this node yet must not make it refuse a payload.
  private async acceptPush(_fromNodeId: string, bytes: Uint8Array, _signal: AbortSignal): Promise<void> {
    try {
      this.checkRunning();
      await this.acceptCopy(bytes, false);
      this.counters.pushesAccepted++;
    } catch (error) {
      this.counters.pushesRefused++;
      throw error;
    }
  }

  /**
   * Stores the part of a received payload that is this node's: the boxes for its keys, or, when
   * this node is the sender (a resend to a rebuilt sender), the copy as received. A payload
   * with neither is refused: a node that is not a party stores nothing. The copy is opened
   * before it is stored, which proves the boxes were sealed by the sender key's owner and the
   * cipherText is intact: a tampered payload is refused, never acknowledged.
   */
  private async acceptCopy(bytes: Uint8Array, allowAsSender: boolean): Promise<void> {
    if (bytes.length > MAX_PUSH_BYTES) {
      throw new TxManagerError(
        TxManagerErrorCode.PayloadTooLarge,
        `payload of ${bytes.length} bytes exceeds MAX_PUSH_BYTES=${MAX_PUSH_BYTES}`,
      );
    }
    const payload = decodePayload(bytes);
    let copy = selectRecipients(payload, this.ownKeys);
    if (copy.recipientKeys.length === 0) {
      if (!(allowAsSender && this.ownKeySet.has(keyToBase64(payload.senderKey)) && payload.recipientKeys.length > 0)) {
        throw new TxManagerError(
          TxManagerErrorCode.NotAParty,
          "refusing a payload with no box for this node's keys: a node that is not a party stores nothing",
        );
      }
      copy = payload;
    }
    await this.enclave.decryptPayload(copy);
    await this.storeCopy(copy);
  }

  private async answerResend(fromNodeId: string, request: ResendRequest, _signal: AbortSignal): Promise<ResendPage> {
    this.checkRunning();
    validateResendRequest(request);
    const requesterKeys = this.directory.keysOf(fromNodeId);
    const requesterKeyBytes = requesterKeys.map((k) => keyFromBase64(k));
    const requesterKeySet = new Set(requesterKeys);
    const scanLimit = Math.min(MAX_RESEND_SCAN_ENTRIES_PER_PAGE, MAX_STORE_SCAN_ENTRIES);
    const scanned = await this.store.scan(request.afterHash, scanLimit);
    const payloads: Uint8Array[] = [];
    let bytes = 0;
    let lastIncludedOrSkipped: string | null = request.afterHash;
    for (const entry of scanned) {
      let payload: EncodedPayload;
      try {
        payload = decodePayload(entry.encoded);
      } catch {
        // A damaged entry must not block the requester's recovery of everything after it.
        this.counters.corruptPayloadsSkippedInResend++;
        lastIncludedOrSkipped = entry.hash;
        continue;
      }
      const copy = requesterKeySet.has(keyToBase64(payload.senderKey))
        ? payload
        : selectRecipients(payload, requesterKeyBytes);
      if (copy.recipientKeys.length > 0) {
        const encoded = copy === payload ? entry.encoded : encodePayload(copy);
        if (
          payloads.length >= request.maxPayloads ||
          (payloads.length > 0 && bytes + encoded.length > MAX_RESEND_PAGE_BYTES)
        ) {
          return { payloads, nextAfterHash: lastIncludedOrSkipped };
        }
        payloads.push(encoded);
        bytes += encoded.length;
      }
      lastIncludedOrSkipped = entry.hash;
    }
    return { payloads, nextAfterHash: scanned.length < scanLimit ? null : lastIncludedOrSkipped };
  }

  // -------------------------------------------------------------------------
  // Internals
  // -------------------------------------------------------------------------

  private async pushTo(nodeId: string, bytes: Uint8Array): Promise<void> {
    const breaker = this.breaker(nodeId);
    try {
      await this.transport.push(nodeId, bytes, AbortSignal.timeout(this.pushTimeoutMs));
    } catch (error) {
      // A refusal is an answer: the party is up. Only failures to reach it count against its
      // breaker, so an open breaker always means "unavailable" and the error says so truly.
      if (error instanceof PartyTransportError && error.code === PartyTransportErrorCode.Rejected) breaker.onSuccess();
      else breaker.onFailure();
      throw error;
    }
    breaker.onSuccess();
  }

  /** Stores a copy, merged with any copy already held (a second key's box, a resent copy). */
  private async storeCopy(copy: EncodedPayload, knownHash?: string): Promise<void> {
    const hash = knownHash ?? payloadHashBase64(copy);
    await this.withHashLock(hash, async () => {
      const existing = await this.store.get(hash);
      if (existing === undefined) {
        await this.store.put(hash, encodePayload(copy));
        return;
      }
      // No second hash: mergePayloads refuses a held copy whose cipherText differs from this one's.
      const held = this.decodeStored(hash, existing, false);
      let merged: EncodedPayload;
      try {
        merged = mergePayloads(held, copy);
      } catch (error) {
        throw new TxManagerError(
          TxManagerErrorCode.CorruptStoredPayload,
          `stored payload ${hash} is not a copy of the payload with that hash: the store is damaged`,
          { hash },
          { cause: error },
        );
      }
      if (merged.recipientKeys.length !== held.recipientKeys.length) await this.store.put(hash, encodePayload(merged));
    });
  }

  private async withHashLock<T>(hash: string, fn: () => Promise<T>): Promise<T> {
    const previous = this.hashLocks.get(hash) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((resolve) => {
      release = resolve;
    });
    const tail = previous.then(() => mine);
    this.hashLocks.set(hash, tail);
    await previous;
    try {
      return await fn();
    } finally {
      release();
      if (this.hashLocks.get(hash) === tail) this.hashLocks.delete(hash);
    }
  }

  private decodeStored(hash: string, bytes: Uint8Array, verifyHash = true): EncodedPayload {
    let payload: EncodedPayload;
    try {
      payload = decodePayload(bytes);
    } catch (error) {
      throw new TxManagerError(
        TxManagerErrorCode.CorruptStoredPayload,
        `stored payload ${hash} does not decode: ${(error as Error).message}`,
        { hash },
        { cause: error },
      );
    }
    if (verifyHash && payloadHashBase64(payload) !== hash) {
      throw new TxManagerError(
        TxManagerErrorCode.CorruptStoredPayload,
        `stored payload under ${hash} has a different hash: the store is damaged`,
        { hash },
      );
    }
    return payload;
  }

  private breaker(nodeId: string): CircuitBreaker {
    let breaker = this.breakers.get(nodeId);
    if (breaker === undefined) {
      breaker = new CircuitBreaker(this.breakerOptions, { clock: this.clock });
      this.breakers.set(nodeId, breaker);
    }
    // Forget breakers of nodes that left the directory, so the map stays bounded by it.
    if (this.breakers.size > this.directory.nodes().length + 1) {
      for (const id of this.breakers.keys()) if (id !== nodeId && !this.directory.hasNode(id)) this.breakers.delete(id);
    }
    return breaker;
  }

  private unavailable(
    nodeIds: string[],
    keysByNode: Map<string, string[]>,
    why: string,
    cause?: unknown,
  ): TxManagerError {
    const keys = nodeIds.flatMap((n) => keysByNode.get(n) ?? []);
    const states = nodeIds.map((n) => `${n} (breaker ${this.breaker(n).state()})`);
    return new TxManagerError(
      TxManagerErrorCode.RecipientUnavailable,
      `recipient node(s) ${states.join(', ')} unavailable for key(s) ${keys.join(', ')}: ${why}`,
      { nodeIds, keys },
      { cause },
    );
  }

  private scheduleOwedPass(): void {
    if (this.stopped) return;
    this.timer = this.clock.setTimeout(() => {
      this.timer = null;
      this.pass = this.deliverOwed()
        .catch((error: unknown) => {
          this.lastOwedDeliveryError = (error as Error)?.message ?? String(error);
        })
        .finally(() => {
          this.pass = null;
          this.scheduleOwedPass();
        });
    }, this.queueRetryIntervalMs);
    // The retry timer alone must not keep a process alive that is otherwise shutting down.
    this.timer.unref?.();
  }

  private checkRunning(): void {
    if (this.stopped)
      throw new TxManagerError(TxManagerErrorCode.Stopped, `transaction manager of ${this.nodeId} is stopped`);
  }
}

function parseKey(key: string, what: string): Uint8Array {
  try {
    return keyFromBase64(key);
  } catch (error) {
    throw new TxManagerError(
      TxManagerErrorCode.InvalidRequest,
      `${what}: ${(error as Error).message}`,
      {},
      { cause: error },
    );
  }
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/;

function validateHash(hash: string): void {
  if (
    typeof hash !== 'string' ||
    hash.length !== HASH_BASE64_LENGTH ||
    !BASE64.test(hash) ||
    Buffer.from(hash, 'base64').length !== PAYLOAD_HASH_BYTES
  ) {
    throw new TxManagerError(
      TxManagerErrorCode.InvalidRequest,
      `not a base64 ${PAYLOAD_HASH_BYTES}-byte payload hash: ${JSON.stringify(String(hash).slice(0, 100))}`,
    );
  }
}
