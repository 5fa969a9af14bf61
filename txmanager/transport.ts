// How transaction managers talk to each other: pushing a payload to a recipient's node, and
// asking a counterparty to resend what this node is a party to. An interface, so that the
// TransactionManager runs unchanged over the in-memory network here and over libp2p (p2p/,
// written against this interface). Every implementation passes
// test/txmanager/transport.suite.ts.
//
// Contract (the suite checks each point):
//  - push resolves only after the remote handler resolved, i.e. after the remote stored the
//    payload durably: the sender's acknowledgment to its client depends on it;
//  - the handler sees the authenticated node id of the caller (the transport vouches for it);
//  - a remote refusal is PartyTransportError Rejected carrying the remote message (and its
//    `code` when it had one); an unreachable node is Unreachable; a fired signal is Aborted;
//  - payloads larger than MAX_PUSH_BYTES are refused before sending (TooLarge), and a
//    transport refuses to deliver larger ones it receives;
//  - bytes are copied: neither side sees the other's later mutations.

import { MAX_ENCODED_PAYLOAD_BYTES } from '../enclave/index.js';
import { assert } from './errors.js';
import type { TmClock } from './clock.js';

/** Largest encoded payload one push carries: the largest valid EncodedPayload encoding. */
export const MAX_PUSH_BYTES = MAX_ENCODED_PAYLOAD_BYTES;
/** Most payloads in one resend page. */
export const MAX_RESEND_PAGE_PAYLOADS = 64;
/**
 * Most payload bytes in one resend page, except that a page always carries at least one
 * payload (which may alone be up to MAX_PUSH_BYTES). Keeps a page a bounded message.
 */
export const MAX_RESEND_PAGE_BYTES = 8 * 1024 * 1024;

export enum PartyTransportErrorCode {
  /** The node is unknown to the transport, down, or the connection failed. */
  Unreachable = 'TRANSPORT_UNREACHABLE',
  /** The caller's signal fired (timeout or cancellation) before the answer came. */
  Aborted = 'TRANSPORT_ABORTED',
  /** The remote handler refused the request; `remoteCode`/message say why. */
  Rejected = 'TRANSPORT_REJECTED',
  /** A message over its named limit. */
  TooLarge = 'TRANSPORT_TOO_LARGE',
  /** The remote answered something that does not follow the protocol. */
  Protocol = 'TRANSPORT_PROTOCOL',
}

export class PartyTransportError extends Error {
  readonly code: PartyTransportErrorCode;
  readonly nodeId: string;
  /** The `code` of the remote's error, when it was rejected with a typed error. */
  readonly remoteCode: string | undefined;
  constructor(
    code: PartyTransportErrorCode,
    nodeId: string,
    message: string,
    options: { cause?: unknown; remoteCode?: string } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = 'PartyTransportError';
    this.code = code;
    this.nodeId = nodeId;
    this.remoteCode = options.remoteCode;
  }
}

export interface ResendRequest {
  /** Resume after this payload hash (the previous page's nextAfterHash); null for the first page. */
  readonly afterHash: string | null;
  /** At most this many payloads (1..MAX_RESEND_PAGE_PAYLOADS). */
  readonly maxPayloads: number;
}

export interface ResendPage {
  /** Canonical encodings of the copies the requester is a party to. */
  readonly payloads: readonly Uint8Array[];
  /** Where to resume; null when the counterparty has nothing further. A page may be empty and still have a next page (scans are bounded). */
  readonly nextAfterHash: string | null;
}

export interface PartyTransportHandlers {
  /** Stores a pushed payload durably, then resolves (that is the acknowledgment). Throws to refuse. */
  onPush(fromNodeId: string, encodedPayload: Uint8Array, signal: AbortSignal): Promise<void>;
  /** Answers one resend page for `fromNodeId`. Throws to refuse. */
  onResendRequest(fromNodeId: string, request: ResendRequest, signal: AbortSignal): Promise<ResendPage>;
}

export interface PartyTransport {
  /** This node's id, as the other nodes and the KeyDirectory know it. */
  readonly localNodeId: string;
  /** Sends a recipient's copy; resolves after the remote acknowledged durable storage. */
  push(nodeId: string, encodedPayload: Uint8Array, signal: AbortSignal): Promise<void>;
  /** Asks `nodeId` for one page of the payloads this node is a party to. */
  resendRequest(nodeId: string, request: ResendRequest, signal: AbortSignal): Promise<ResendPage>;
  /** Installs the inbound handlers (one set; a second call replaces the first). */
  handle(handlers: PartyTransportHandlers): void;
  /** Removes the inbound handlers: inbound requests are then refused as Unreachable. */
  unhandle(): void;
}

export function validateResendRequest(request: ResendRequest): void {
  assert(
    Number.isInteger(request.maxPayloads) &&
      request.maxPayloads >= 1 &&
      request.maxPayloads <= MAX_RESEND_PAGE_PAYLOADS,
    () => `resend maxPayloads ${request.maxPayloads} outside 1..${MAX_RESEND_PAGE_PAYLOADS}`,
  );
}

/** Checks a page against the limits; shared by implementations on both sides of the wire. */
export function resendPageWithinLimits(page: ResendPage): boolean {
  if (page.payloads.length > MAX_RESEND_PAGE_PAYLOADS) return false;
  let bytes = 0;
  for (const p of page.payloads) {
    if (p.length > MAX_PUSH_BYTES) return false;
    bytes += p.length;
  }
  return page.payloads.length <= 1 || bytes <= MAX_RESEND_PAGE_BYTES;
}

// ---------------------------------------------------------------------------
// In-memory implementation: several transaction managers in one process.
// ---------------------------------------------------------------------------

interface NodeConditions {
  down: boolean;
  /** Delay before an inbound request reaches the handler (and before a reply leaves). */
  delayMs: number;
  /** When set, inbound requests are refused with this message (the node is up but failing). */
  failWith: string | null;
}

/**
 * A switchboard connecting MemoryPartyTransports. Faults are per node and apply to requests
 * addressed to it (and `down` also to requests it sends): `setDown` (unreachable), `setDelayMs`
 * (slow; the caller's signal still aborts), `setFailing` (reachable but refusing).
 */
export class MemoryPartyNetwork {
  /** The node's clock: simulated link delays. */
  constructor(readonly clock: Pick<TmClock, 'setTimeout'>) {}

  private readonly transports = new Map<string, MemoryPartyTransport>();
  private readonly conditions = new Map<string, NodeConditions>();

  /** The transport of `nodeId` (created on first use). */
  transport(nodeId: string): MemoryPartyTransport {
    let transport = this.transports.get(nodeId);
    if (transport === undefined) {
      transport = new MemoryPartyTransport(this, nodeId);
      this.transports.set(nodeId, transport);
    }
    return transport;
  }

  setDown(nodeId: string, down: boolean): void {
    this.conditionsOf(nodeId).down = down;
  }
  setDelayMs(nodeId: string, delayMs: number): void {
    assert(delayMs >= 0, `delayMs must be >= 0, got ${delayMs}`);
    this.conditionsOf(nodeId).delayMs = delayMs;
  }
  setFailing(nodeId: string, failWith: string | null): void {
    this.conditionsOf(nodeId).failWith = failWith;
  }

  private conditionsOf(nodeId: string): NodeConditions {
    let c = this.conditions.get(nodeId);
    if (c === undefined) {
      c = { down: false, delayMs: 0, failWith: null };
      this.conditions.set(nodeId, c);
    }
    return c;
  }

  /** Routes one request from `fromNodeId` to `toNodeId`'s handlers, applying the faults. */
  async deliver<T>(
    fromNodeId: string,
    toNodeId: string,
    signal: AbortSignal,
    call: (handlers: PartyTransportHandlers, signal: AbortSignal) => Promise<T>,
  ): Promise<T> {
    throwIfAborted(signal, toNodeId);
    const from = this.conditionsOf(fromNodeId);
    const to = this.conditionsOf(toNodeId);
    const target = this.transports.get(toNodeId);
    if (from.down)
      throw new PartyTransportError(
        PartyTransportErrorCode.Unreachable,
        toNodeId,
        `node ${fromNodeId} is down and cannot reach ${toNodeId}`,
      );
    if (to.down || target === undefined || target.handlers === null) {
      throw new PartyTransportError(PartyTransportErrorCode.Unreachable, toNodeId, `node ${toNodeId} is unreachable`);
    }
    if (to.delayMs > 0) await sleep(this.clock, to.delayMs, signal, toNodeId);
    if (to.down || target.handlers === null)
      throw new PartyTransportError(PartyTransportErrorCode.Unreachable, toNodeId, `node ${toNodeId} went down`);
    if (to.failWith !== null)
      throw new PartyTransportError(
        PartyTransportErrorCode.Rejected,
        toNodeId,
        `node ${toNodeId} failed: ${to.failWith}`,
      );
    // The remote's work is cancelled with the caller (as a closed stream would cancel it).
    const handlers = target.handlers;
    let result: T;
    try {
      result = await raceAbort(call(handlers, signal), signal, toNodeId);
    } catch (error) {
      if (error instanceof PartyTransportError) throw error;
      // Only what crosses a wire crosses here: the message and a string code.
      const remoteCode =
        typeof (error as { code?: unknown })?.code === 'string' ? (error as { code: string }).code : undefined;
      throw new PartyTransportError(
        PartyTransportErrorCode.Rejected,
        toNodeId,
        `node ${toNodeId} refused: ${(error as Error)?.message ?? String(error)}`,
        { remoteCode },
      );
    }
    if (to.down)
      throw new PartyTransportError(
        PartyTransportErrorCode.Unreachable,
        toNodeId,
        `node ${toNodeId} went down before replying`,
      );
    return result;
  }
}

export class MemoryPartyTransport implements PartyTransport {
  /** @internal read by MemoryPartyNetwork. */
  handlers: PartyTransportHandlers | null = null;

  constructor(
    private readonly network: MemoryPartyNetwork,
    readonly localNodeId: string,
  ) {}

  async push(nodeId: string, encodedPayload: Uint8Array, signal: AbortSignal): Promise<void> {
    if (encodedPayload.length > MAX_PUSH_BYTES) {
      throw new PartyTransportError(
        PartyTransportErrorCode.TooLarge,
        nodeId,
        `push of ${encodedPayload.length} bytes exceeds MAX_PUSH_BYTES=${MAX_PUSH_BYTES}`,
      );
    }
    const copy = Uint8Array.from(encodedPayload);
    await this.network.deliver(this.localNodeId, nodeId, signal, (h, s) => h.onPush(this.localNodeId, copy, s));
  }

  async resendRequest(nodeId: string, request: ResendRequest, signal: AbortSignal): Promise<ResendPage> {
    validateResendRequest(request);
    const page = await this.network.deliver(this.localNodeId, nodeId, signal, (h, s) =>
      h.onResendRequest(this.localNodeId, { ...request }, s),
    );
    if (!resendPageWithinLimits(page) || page.payloads.length > request.maxPayloads) {
      throw new PartyTransportError(
        PartyTransportErrorCode.Protocol,
        nodeId,
        `node ${nodeId} sent a resend page over the limits (${page.payloads.length} payloads)`,
      );
    }
    return { payloads: page.payloads.map((p) => Uint8Array.from(p)), nextAfterHash: page.nextAfterHash };
  }

  handle(handlers: PartyTransportHandlers): void {
    this.handlers = handlers;
  }

  unhandle(): void {
    this.handlers = null;
  }
}

function abortError(signal: AbortSignal, nodeId: string): PartyTransportError {
  return new PartyTransportError(
    PartyTransportErrorCode.Aborted,
    nodeId,
    `request to ${nodeId} aborted: ${String((signal.reason as Error)?.message ?? signal.reason)}`,
    { cause: signal.reason },
  );
}

function throwIfAborted(signal: AbortSignal, nodeId: string): void {
  if (signal.aborted) throw abortError(signal, nodeId);
}

function sleep(clock: Pick<TmClock, 'setTimeout'>, ms: number, signal: AbortSignal, nodeId: string): Promise<void> {
  return raceAbort(new Promise<void>((resolve) => clock.setTimeout(resolve, ms)), signal, nodeId);
}

function raceAbort<T>(promise: Promise<T>, signal: AbortSignal, nodeId: string): Promise<T> {
  if (signal.aborted) return Promise.reject(abortError(signal, nodeId));
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(abortError(signal, nodeId));
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (value) => {
        signal.removeEventListener('abort', onAbort);
        resolve(value);
      },
      (error: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(error);
      },
    );
  });
}
