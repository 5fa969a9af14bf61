// Private transactions for a node: the transaction manager (txmanager/) and the enclave
// (enclave/) wired to the node's p2p transport and replicated membership, behind the
// PrivacyProvider that QuorateNode calls.
//
//   QuorateNode ──send/receive──► NodePrivacy ──► TransactionManager ──► NaclEnclave (keys stay inside)
//                                      │                   │
//                                      │                   └─ PeerPartyTransport ── "tm/push", "tm/resend"
//                                      │                        over the node's PeerTransport (libp2p)
//                                      └─ membership listener: KeyDirectory (name → enclave keys)
//                                                             and party map (name ↔ peer id)
//
// Identities: a transaction manager knows its counterparts by node id = the member's `name`
// (what the KeyDirectory and the owed-delivery queue record, stable across restarts and
// address changes). On the wire, the authenticated identity is the libp2p peer id (Noise proves
// it); the replicated membership maps one to the other. A request from a peer that is not a
// member is refused, whatever the transport's allowlist says.
//
// "Not a party" and "could not tell" stay apart all the way up (GoQuorum's private-state
// divergence): `receive` returns null only when this node holds no copy AND nothing says it
// should (the transaction's privateFor does not name one of our keys, and the start-up resync
// from the other members finished); every other doubt is thrown, and the node retries with an
// alarm instead of applying.

import { SystemClock, type Clock } from './clock.js';
import { join } from 'node:path';
import {
  type Enclave,
  FileKeyStore,
  type KeyFileRef,
  keyToBase64,
  NaclEnclave,
  PAYLOAD_HASH_BYTES,
} from '../enclave/index.js';
import type { PeerTransport } from '../p2p/transport.js';
import { P2pError, P2pErrorCode } from '../p2p/errors.js';
import {
  type BreakerSnapshot,
  BreakerState,
  type DeliveryMode,
  type DurableTransactionManager,
  KeyDirectory,
  MAX_PUSH_BYTES,
  MAX_RESEND_PAGE_PAYLOADS,
  openDurableTransactionManager,
  type PartyTransport,
  PartyTransportError,
  PartyTransportErrorCode,
  type PartyTransportHandlers,
  type ResendPage,
  type ResendRequest,
  resendPageWithinLimits,
  type TransactionManager,
  type TransactionManagerOptions,
  TxManagerError,
  TxManagerErrorCode,
  TxManagerServer,
  validateResendRequest,
} from '../txmanager/index.js';
import { NodeError, NodeErrorCode, nodeAssert } from './errors.js';
import type { Logger } from './log.js';
import type { MembershipState } from './membership.js';
import { CircuitStateValue, type NodeMetrics } from './metrics.js';
import type { PrivacyProvider } from './node.js';

/** The p2p channels of the transaction managers (request/reply over the node's long-lived streams). */
export const CHANNEL_TM_PUSH = 'tm/push';
export const CHANNEL_TM_RESEND = 'tm/resend';

/**
 * Upper bound on a request's own timeout, on top of the caller's signal: the TM's push timeout
 * (5 s) and resend page timeout (30 s) normally fire first; this only bounds a caller without one.
 */
export const PARTY_REQUEST_TIMEOUT_MS = 60_000;
/**
 * How long after start-up a node keeps asking unreachable members for the payloads they hold
 * for it. Until then (or until every member answered) a missing payload is "could not tell":
 * the node holds off applying instead of recording "not a party" for a payload it was owed
 * while it was down.
 */
export const RESYNC_DEADLINE_MS = 15_000;
/** Pause between rounds of the start-up resync over the members that did not answer. */
export const RESYNC_RETRY_MS = 500;
/** A resend request is a small JSON object; anything larger is refused unread. */
export const MAX_RESEND_REQUEST_BYTES = 1024;
/** A refusal's message carried back to the requester is cut to this length. */
export const MAX_REFUSAL_MESSAGE_CHARS = 512;
/**
 * Largest resend page on the wire: MAX_RESEND_PAGE_BYTES of payloads (or one payload of up to
 * MAX_PUSH_BYTES), 4 bytes of length per payload, and the header with the cursor. A node's p2p
 * maxMessageBytes must be at least this (process.ts uses 64 MiB).
 */
export const MAX_RESEND_PAGE_WIRE_BYTES =
  Math.max(8 * 1024 * 1024, MAX_PUSH_BYTES) + MAX_RESEND_PAGE_PAYLOADS * 4 + 1024;

/** Status byte that starts every reply on the tm/* channels. */
enum ReplyStatus {
  Ok = 0,
  /** The handler refused: JSON { message, code? } follows. Becomes Rejected at the caller. */
  Refused = 1,
  /** This node's transaction manager is not serving (stopped, starting): Unreachable at the caller. */
  NotServing = 2,
}

/** The remote code of a refusal because the requesting peer is not a member. */
export const NOT_A_MEMBER_CODE = 'PARTY_NOT_A_MEMBER';

export interface PartyPeer {
  /** The member's name (the TM's node id). */
  readonly nodeId: string;
  /** Its libp2p peer id (the authenticated identity). */
  readonly peerId: string;
}

/**
 * PartyTransport over the node's PeerTransport (Libp2pTransport in a node, MemoryTransport in
 * tests). Registers its two request handlers on the PeerTransport once, at construction (a
 * PeerTransport takes one handler per channel, for its lifetime); handle/unhandle swap what they
 * call. Passes test/txmanager/transport.suite.ts over both PeerTransports.
 */
export class PeerPartyTransport implements PartyTransport {
  private handlers: PartyTransportHandlers | null = null;
  // Invariant: peerOfNode and nodeOfPeer describe the same one-to-one relation.
  private peerOfNode = new Map<string, string>();
  private nodeOfPeer = new Map<string, string>();

  constructor(
    private readonly peers: PeerTransport,
    readonly localNodeId: string,
  ) {
    peers.onRequest(CHANNEL_TM_PUSH, (from, data, signal) => this.onPushRequest(from, data, signal));
    peers.onRequest(CHANNEL_TM_RESEND, (from, data, signal) => this.onResendRequest(from, data, signal));
  }

  /** The members (this node may be among them; it is ignored). Replaces the previous list. */
  setParties(parties: readonly PartyPeer[]): void {
    const peerOfNode = new Map<string, string>();
    const nodeOfPeer = new Map<string, string>();
    for (const p of parties) {
      if (p.peerId === this.peers.localPeerId) continue;
      // Two members claiming one name or one peer id: keep the first, never guess between them.
      if (peerOfNode.has(p.nodeId) || nodeOfPeer.has(p.peerId)) continue;
      peerOfNode.set(p.nodeId, p.peerId);
      nodeOfPeer.set(p.peerId, p.nodeId);
    }
    this.peerOfNode = peerOfNode;
    this.nodeOfPeer = nodeOfPeer;
  }

  async push(nodeId: string, encodedPayload: Uint8Array, signal: AbortSignal): Promise<void> {
    if (encodedPayload.length > MAX_PUSH_BYTES) {
      throw new PartyTransportError(
        PartyTransportErrorCode.TooLarge,
        nodeId,
        `push of ${encodedPayload.length} bytes exceeds MAX_PUSH_BYTES=${MAX_PUSH_BYTES}`,
      );
    }
    const reply = await this.request(nodeId, CHANNEL_TM_PUSH, encodedPayload, signal);
    if (reply.length !== 0)
      throw new PartyTransportError(
        PartyTransportErrorCode.Protocol,
        nodeId,
        `node ${nodeId} answered a push with ${reply.length} unexpected bytes`,
      );
  }

  async resendRequest(nodeId: string, request: ResendRequest, signal: AbortSignal): Promise<ResendPage> {
    validateResendRequest(request);
    const body = new TextEncoder().encode(
      JSON.stringify({ afterHash: request.afterHash, maxPayloads: request.maxPayloads }),
    );
    const reply = await this.request(nodeId, CHANNEL_TM_RESEND, body, signal);
    let page: ResendPage;
    try {
      page = decodePage(reply);
    } catch (error) {
      throw new PartyTransportError(
        PartyTransportErrorCode.Protocol,
        nodeId,
        `node ${nodeId} sent a malformed resend page: ${(error as Error).message}`,
        { cause: error },
      );
    }
    if (!resendPageWithinLimits(page) || page.payloads.length > request.maxPayloads) {
      throw new PartyTransportError(
        PartyTransportErrorCode.Protocol,
        nodeId,
        `node ${nodeId} sent a resend page over the limits (${page.payloads.length} payloads)`,
      );
    }
    return page;
  }

  handle(handlers: PartyTransportHandlers): void {
    this.handlers = handlers;
  }

  unhandle(): void {
    this.handlers = null;
  }

  /** Sends one request and returns the OK body; every other outcome is a PartyTransportError. */
  private async request(nodeId: string, channel: string, body: Uint8Array, signal: AbortSignal): Promise<Uint8Array> {
    if (signal.aborted) throw aborted(nodeId, signal);
    const peerId = this.peerOfNode.get(nodeId);
    if (peerId === undefined)
      throw new PartyTransportError(
        PartyTransportErrorCode.Unreachable,
        nodeId,
        `node ${nodeId} is not a member this node knows`,
      );
    let reply: Uint8Array;
    try {
      reply = await this.peers.request(peerId, channel, body, { signal, timeoutMs: PARTY_REQUEST_TIMEOUT_MS });
    } catch (error) {
      throw fromP2pError(nodeId, error, signal);
    }
    if (reply.length === 0)
      throw new PartyTransportError(
        PartyTransportErrorCode.Protocol,
        nodeId,
        `node ${nodeId} sent an empty reply on ${channel}`,
      );
    const rest = reply.subarray(1);
    switch (reply[0]) {
      case ReplyStatus.Ok:
        return rest;
      case ReplyStatus.NotServing:
        throw new PartyTransportError(
          PartyTransportErrorCode.Unreachable,
          nodeId,
          `node ${nodeId}'s transaction manager is not serving: ${refusalOf(rest).message}`,
        );
      case ReplyStatus.Refused: {
        const refusal = refusalOf(rest);
        throw new PartyTransportError(
          PartyTransportErrorCode.Rejected,
          nodeId,
          `node ${nodeId} refused: ${refusal.message}`,
          { remoteCode: refusal.code },
        );
      }
      default:
        throw new PartyTransportError(
          PartyTransportErrorCode.Protocol,
          nodeId,
          `node ${nodeId} sent reply status ${reply[0]} on ${channel}`,
        );
    }
  }

  private async onPushRequest(fromPeer: string, data: Uint8Array, signal: AbortSignal): Promise<Uint8Array> {
    return this.serve(fromPeer, async (handlers, fromNode) => {
      if (data.length > MAX_PUSH_BYTES)
        throw new TxManagerError(
          TxManagerErrorCode.PayloadTooLarge,
          `push of ${data.length} bytes exceeds MAX_PUSH_BYTES=${MAX_PUSH_BYTES}`,
        );
      // The PeerTransport hands over a copy (p2p copies payloads given to handlers).
      await handlers.onPush(fromNode, data, signal);
      return new Uint8Array(0);
    });
  }

  private async onResendRequest(fromPeer: string, data: Uint8Array, signal: AbortSignal): Promise<Uint8Array> {
    return this.serve(fromPeer, async (handlers, fromNode) => {
      const request = parseResendRequest(data);
      const page = await handlers.onResendRequest(fromNode, request, signal);
      return encodePage(page);
    });
  }

  /** Maps the peer to a member, runs the handler, and encodes its outcome as a reply (never throws). */
  private async serve(
    fromPeer: string,
    run: (handlers: PartyTransportHandlers, fromNode: string) => Promise<Uint8Array>,
  ): Promise<Uint8Array> {
    const handlers = this.handlers;
    if (handlers === null) return refusalReply(ReplyStatus.NotServing, 'transaction manager not running');
    const fromNode = this.nodeOfPeer.get(fromPeer);
    if (fromNode === undefined)
      return refusalReply(ReplyStatus.Refused, `peer ${fromPeer} is not a member of this cluster`, NOT_A_MEMBER_CODE);
    try {
      const body = await run(handlers, fromNode);
      const out = new Uint8Array(1 + body.length);
      out[0] = ReplyStatus.Ok;
      out.set(body, 1);
      return out;
    } catch (error) {
      const code =
        typeof (error as { code?: unknown })?.code === 'string' ? (error as { code: string }).code : undefined;
      return refusalReply(ReplyStatus.Refused, (error as Error)?.message ?? String(error), code);
    }
  }
}

function refusalReply(status: ReplyStatus, message: string, code?: string): Uint8Array {
  const body = new TextEncoder().encode(
    JSON.stringify({ message: message.slice(0, MAX_REFUSAL_MESSAGE_CHARS), ...(code !== undefined ? { code } : {}) }),
  );
  const out = new Uint8Array(1 + body.length);
  out[0] = status;
  out.set(body, 1);
  return out;
}

function refusalOf(bytes: Uint8Array): { message: string; code: string | undefined } {
  try {
    const o = JSON.parse(new TextDecoder().decode(bytes)) as { message?: unknown; code?: unknown };
    return {
      message: typeof o.message === 'string' ? o.message : 'no reason given',
      code: typeof o.code === 'string' ? o.code : undefined,
    };
  } catch {
    return { message: 'unreadable reason', code: undefined };
  }
}

function aborted(nodeId: string, signal: AbortSignal): PartyTransportError {
  return new PartyTransportError(
    PartyTransportErrorCode.Aborted,
    nodeId,
    `request to ${nodeId} aborted: ${String((signal.reason as Error)?.message ?? signal.reason)}`,
    { cause: signal.reason },
  );
}

function fromP2pError(nodeId: string, error: unknown, signal: AbortSignal): PartyTransportError {
  if (signal.aborted) return aborted(nodeId, signal);
  if (!(error instanceof P2pError)) {
    return new PartyTransportError(
      PartyTransportErrorCode.Unreachable,
      nodeId,
      `request to ${nodeId} failed: ${(error as Error)?.message ?? String(error)}`,
      { cause: error },
    );
  }
  switch (error.code) {
    case P2pErrorCode.Aborted:
      return new PartyTransportError(PartyTransportErrorCode.Aborted, nodeId, `request to ${nodeId} aborted`, {
        cause: error,
      });
    case P2pErrorCode.MessageTooLarge:
      return new PartyTransportError(PartyTransportErrorCode.TooLarge, nodeId, error.message, { cause: error });
    // Down, not connected, not in the allowlist, timed out, busy, or its node has no TM handler
    // (RemoteError: our handlers never throw, so a remote error means the remote could not run one).
    default:
      return new PartyTransportError(
        PartyTransportErrorCode.Unreachable,
        nodeId,
        `node ${nodeId} unreachable: ${error.message}`,
        { cause: error },
      );
  }
}

function parseResendRequest(data: Uint8Array): ResendRequest {
  const invalid = (why: string) =>
    new TxManagerError(TxManagerErrorCode.InvalidRequest, `malformed resend request: ${why}`);
  if (data.length > MAX_RESEND_REQUEST_BYTES)
    throw invalid(`${data.length} bytes, limit MAX_RESEND_REQUEST_BYTES=${MAX_RESEND_REQUEST_BYTES}`);
  let o: { afterHash?: unknown; maxPayloads?: unknown };
  try {
    o = JSON.parse(new TextDecoder().decode(data)) as typeof o;
  } catch {
    throw invalid('not JSON');
  }
  if (typeof o !== 'object' || o === null) throw invalid('not an object');
  if (o.afterHash !== null && typeof o.afterHash !== 'string') throw invalid('afterHash must be a string or null');
  const max = o.maxPayloads;
  if (typeof max !== 'number' || !Number.isInteger(max) || max < 1 || max > MAX_RESEND_PAGE_PAYLOADS)
    throw invalid(`maxPayloads must be 1..${MAX_RESEND_PAGE_PAYLOADS}`);
  return { afterHash: o.afterHash as string | null, maxPayloads: max };
}

// Page encoding: u16 cursor length (0xffff: null) ‖ cursor utf-8 ‖ u32 count ‖ count × (u32 length ‖ bytes).
const NULL_CURSOR = 0xffff;

function encodePage(page: ResendPage): Uint8Array {
  nodeAssert(resendPageWithinLimits(page), () => `resend page over the limits: ${page.payloads.length} payloads`);
  const cursor = page.nextAfterHash === null ? null : new TextEncoder().encode(page.nextAfterHash);
  nodeAssert(cursor === null || cursor.length < NULL_CURSOR, 'resend cursor too long');
  const total = 2 + (cursor?.length ?? 0) + 4 + page.payloads.reduce((n, p) => n + 4 + p.length, 0);
  const out = new Uint8Array(total);
  const view = new DataView(out.buffer);
  let at = 0;
  view.setUint16(at, cursor === null ? NULL_CURSOR : cursor.length);
  at += 2;
  if (cursor !== null) {
    out.set(cursor, at);
    at += cursor.length;
  }
  view.setUint32(at, page.payloads.length);
  at += 4;
  for (const p of page.payloads) {
    view.setUint32(at, p.length);
    at += 4;
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function decodePage(bytes: Uint8Array): ResendPage {
  if (bytes.length > MAX_RESEND_PAGE_WIRE_BYTES)
    throw new Error(`${bytes.length} bytes, limit ${MAX_RESEND_PAGE_WIRE_BYTES}`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let at = 0;
  const need = (n: number) => {
    if (at + n > bytes.length) throw new Error('truncated');
  };
  need(2);
  const cursorLength = view.getUint16(at);
  at += 2;
  let nextAfterHash: string | null = null;
  if (cursorLength !== NULL_CURSOR) {
    need(cursorLength);
    nextAfterHash = new TextDecoder().decode(bytes.subarray(at, at + cursorLength));
    at += cursorLength;
  }
  need(4);
  const count = view.getUint32(at);
  at += 4;
  if (count > MAX_RESEND_PAGE_PAYLOADS) throw new Error(`${count} payloads, limit ${MAX_RESEND_PAGE_PAYLOADS}`);
  const payloads: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    need(4);
    const length = view.getUint32(at);
    at += 4;
    need(length);
    payloads.push(Uint8Array.from(bytes.subarray(at, at + length)));
    at += length;
  }
  if (at !== bytes.length) throw new Error(`${bytes.length - at} trailing bytes`);
  return { payloads, nextAfterHash };
}

// ---------------------------------------------------------------------------------------------
// NodePrivacy: the node's transaction manager and its PrivacyProvider
// ---------------------------------------------------------------------------------------------

export interface NodePrivacyConfig {
  /** This node's member name: its node id among the transaction managers. */
  readonly nodeId: string;
  /** The TM's stores live under `<dataDir>/tm`. */
  readonly dataDir: string;
  readonly deliveryMode: DeliveryMode;
  /** Where the enclave's key pairs come from, unless `enclave` is given in the dependencies. */
  readonly keyFiles?: readonly KeyFileRef[];
  /** Timeouts and breaker settings of the TransactionManager (defaults otherwise). */
  readonly tm?: Omit<TransactionManagerOptions, 'deliveryMode'>;
  /** Skip the start-up resync (tests of a node that must find its payloads some other way). */
  readonly resyncOnOpen?: boolean;
}

export interface NodePrivacyDeps {
  /** The node's PeerTransport; the TMs talk over its "tm/push" and "tm/resend" channels. */
  readonly peers: PeerTransport;
  readonly logger: Logger;
  /** An already-built enclave (tests, embedders); otherwise NaclEnclave over FileKeyStore(keyFiles). */
  readonly enclave?: Enclave;
  /** The node's clock (its TM's timers and backoff); default the real one. */
  readonly clock?: Clock;
}

/** The membership as the privacy layer needs it (QuorateNode.onMembership). */
export interface MembershipSource {
  onMembership(listener: (m: MembershipState) => void): () => void;
}

export class NodePrivacy implements PrivacyProvider {
  readonly nodeId: string;
  private readonly durable: DurableTransactionManager;
  private readonly transport: PeerPartyTransport;
  private readonly directory: KeyDirectory;
  private readonly log: Logger;
  private readonly ownKeys: ReadonlySet<string>;
  private server: TxManagerServer | null = null;
  private unsubscribe: (() => void) | null = null;
  private closed = false;
  // Start-up resync: until it has finished, a missing payload is "could not tell", not "not a party".
  private resync: Promise<void> | null = null;
  private resyncDone = false;
  private lastMembersWithKeys = 0;
  private readonly gaugePeers = new Set<string>();

  private constructor(
    nodeId: string,
    durable: DurableTransactionManager,
    transport: PeerPartyTransport,
    directory: KeyDirectory,
    log: Logger,
  ) {
    this.nodeId = nodeId;
    this.durable = durable;
    this.transport = transport;
    this.directory = directory;
    this.log = log;
    this.ownKeys = new Set(durable.tm.publicKeys());
  }

  /**
   * Unlocks the enclave, opens the TM's stores under `<dataDir>/tm` and starts it (it answers
   * pushes from members from now on). Call `followMembership(node)` next, so the key directory
   * and the party map follow the replicated membership.
   */
  static async open(config: NodePrivacyConfig, deps: NodePrivacyDeps): Promise<NodePrivacy> {
    const log = deps.logger.child({ component: 'tm' });
    let enclave = deps.enclave;
    if (enclave === undefined) {
      nodeAssert(
        config.keyFiles !== undefined && config.keyFiles.length > 0,
        'NodePrivacy.open needs keyFiles or an enclave',
      );
      enclave = await NaclEnclave.create(new FileKeyStore(config.keyFiles));
    }
    const transport = new PeerPartyTransport(deps.peers, config.nodeId);
    const directory = new KeyDirectory();
    const durable = await openDurableTransactionManager({
      ...config.tm,
      clock: deps.clock ?? new SystemClock(),
      deliveryMode: config.deliveryMode,
      dataDir: join(config.dataDir, 'tm'),
      nodeId: config.nodeId,
      enclave,
      transport,
      directory,
    });
    const privacy = new NodePrivacy(config.nodeId, durable, transport, directory, log);
    if (config.resyncOnOpen === false) privacy.resyncDone = true;
    return privacy;
  }

  /** The transaction manager (REST server, tests, metrics). */
  get tm(): TransactionManager {
    return this.durable.tm;
  }

  /** The TM's payload store (tests look inside it). */
  get payloadStore(): DurableTransactionManager['store'] {
    return this.durable.store;
  }

  /** This node's enclave public keys (base64): what the node announces in the membership. */
  publicKeys(): string[] {
    return this.durable.tm.publicKeys();
  }

  /**
   * Keeps the key directory and the party map in step with the replicated membership, and, on
   * the first membership that names other members' keys, fetches from each of them the payloads
   * this node is a party to (a node that was down while payloads were sent catches up so).
   */
  followMembership(source: MembershipSource): void {
    nodeAssert(this.unsubscribe === null, 'followMembership called twice');
    this.unsubscribe = source.onMembership((m) => this.applyMembership(m));
  }

  /** Applies one membership (every member's name, peer id and enclave keys). Never throws: it runs inside the node's apply. */
  applyMembership(m: MembershipState): void {
    if (this.closed) return;
    this.transport.setParties(m.members.map((x) => ({ nodeId: x.name, peerId: x.peerId })));
    const names = new Set(m.members.map((x) => x.name));
    for (const node of this.directory.nodes()) if (!names.has(node)) this.directory.removeNode(node);
    let withKeys = 0;
    for (const member of m.members) {
      try {
        this.directory.setKeys(member.name, member.enclaveKeys);
        if (member.name !== this.nodeId && member.enclaveKeys.length > 0) withKeys++;
      } catch (error) {
        this.log.error(
          { err: error, member: member.name, raftId: member.raftId },
          'member enclave keys not usable: private transactions for them will be refused',
        );
      }
    }
    if (this.resync === null && !this.resyncDone && withKeys > 0) this.startResync();
    this.lastMembersWithKeys = withKeys;
  }

  private startResync(): void {
    this.resync = (async () => {
      const deadlineMs = Date.now() + RESYNC_DEADLINE_MS;
      const pending = new Set(this.directory.nodes().filter((n) => n !== this.nodeId));
      let stored = 0;
      while (pending.size > 0 && !this.closed) {
        for (const nodeId of [...pending]) {
          if (this.closed) break;
          try {
            stored += await this.durable.tm.resend(nodeId);
            pending.delete(nodeId);
          } catch (error) {
            // Not connected yet (the node is starting) or down: ask again until the deadline.
            const retry =
              error instanceof PartyTransportError &&
              (error.code === PartyTransportErrorCode.Unreachable || error.code === PartyTransportErrorCode.Aborted);
            if (!retry) {
              this.log.warn(
                { err: error, node: nodeId },
                'start-up resync: this member refused or failed; not asking it again',
              );
              pending.delete(nodeId);
            }
          }
        }
        if (pending.size === 0 || Date.now() >= deadlineMs) break;
        await new Promise((resolve) => setTimeout(resolve, RESYNC_RETRY_MS));
      }
      if (pending.size > 0)
        this.log.warn(
          { unreachable: [...pending] },
          'start-up resync: members unreachable; payloads they owe this node arrive when they push them (queue mode)',
        );
      this.log.info({ stored }, 'start-up resync finished');
      this.resyncDone = true;
    })();
  }

  /** Resolves once the start-up resync finished (tests; a node never waits for it). */
  async resynced(): Promise<void> {
    await this.resync;
  }

  // ---------------------------------------------------------------- PrivacyProvider

  async send(payload: Uint8Array, privateFor: readonly string[], signal?: AbortSignal): Promise<Uint8Array> {
    if (signal?.aborted) throw new NodeError(NodeErrorCode.Timeout, 'private transaction cancelled before it was sent');
    let hash: string;
    try {
      hash = await raceSignal(this.durable.tm.send(payload, undefined, privateFor), signal);
    } catch (error) {
      throw privacyError(error);
    }
    const bytes = Buffer.from(hash, 'base64');
    nodeAssert(bytes.length === PAYLOAD_HASH_BYTES, () => `transaction manager returned a ${bytes.length}-byte hash`);
    return Uint8Array.from(bytes);
  }

  /**
   * The payload, or null when this node is not a party. `privateFor` (the transaction's
   * recipients, when the caller passes them) makes a missing copy for one of our keys an error
   * (the payload is owed to us and has not arrived), never "not a party". Throws NodeError
   * PrivacyUnavailable when it cannot tell.
   */
  async receive(hash: Uint8Array, privateFor?: readonly Uint8Array[]): Promise<Uint8Array | null> {
    if (hash.length !== PAYLOAD_HASH_BYTES)
      throw new NodeError(
        NodeErrorCode.PrivacyUnavailable,
        `a payload hash is ${PAYLOAD_HASH_BYTES} bytes, got ${hash.length}`,
      );
    if (this.closed) throw new NodeError(NodeErrorCode.PrivacyUnavailable, 'the transaction manager is closed');
    const hashBase64 = Buffer.from(hash).toString('base64');
    let result;
    try {
      result = await this.durable.tm.receive(hashBase64);
    } catch (error) {
      throw new NodeError(
        NodeErrorCode.PrivacyUnavailable,
        `transaction manager could not read payload ${hashBase64.slice(0, 16)}…: ${(error as Error)?.message ?? String(error)}`,
        {},
        { cause: error },
      );
    }
    if (result.kind === 'party') return result.payload;
    const ours = (privateFor ?? []).map(keyToBase64).filter((k) => this.ownKeys.has(k));
    if (ours.length > 0) {
      throw new NodeError(
        NodeErrorCode.PrivacyUnavailable,
        `payload ${hashBase64.slice(0, 16)}… is addressed to this node (${ours[0]}) but has not arrived yet`,
        { keys: ours },
      );
    }
    if (!this.resyncDone) {
      throw new NodeError(
        NodeErrorCode.PrivacyUnavailable,
        'the transaction manager is still fetching the payloads owed to this node from the other members',
      );
    }
    return null;
  }

  // ---------------------------------------------------------------- REST, metrics, lifecycle

  /** Starts the Tessera-shaped REST API (INTERFACE.md) on host:port. */
  async startServer(options: { host: string; port: number }): Promise<{ url: string }> {
    nodeAssert(this.server === null, 'TM server already started');
    const server = new TxManagerServer(this.durable.tm, { host: options.host, port: options.port });
    const address = await server.start();
    this.server = server;
    this.log.info({ url: address.url }, 'transaction manager listening');
    return { url: address.url };
  }

  /** Copies each remote party's circuit breaker state into the node's gauge. */
  exportMetrics(metrics: NodeMetrics): void {
    const snapshots: Record<string, BreakerSnapshot> = this.durable.tm.breakerSnapshots();
    for (const peer of this.gaugePeers) if (!(peer in snapshots)) metrics.circuitBreakerState.remove({ peer });
    this.gaugePeers.clear();
    for (const [peer, s] of Object.entries(snapshots)) {
      metrics.circuitBreakerState.set({ peer }, breakerValue(s.state));
      this.gaugePeers.add(peer);
    }
  }

  /** Stops the REST server, then the TM (inbound pushes are refused from then on), then closes its stores. */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.unsubscribe?.();
    this.unsubscribe = null;
    const server = this.server;
    this.server = null;
    await server?.stop();
    await this.resync?.catch(() => undefined);
    await this.durable.close();
  }

  /** Members other than this node that published enclave keys, at the last membership seen. */
  get knownParties(): number {
    return this.lastMembersWithKeys;
  }
}

function breakerValue(state: BreakerState): CircuitStateValue {
  switch (state) {
    case BreakerState.Closed:
      return CircuitStateValue.Closed;
    case BreakerState.HalfOpen:
      return CircuitStateValue.HalfOpen;
    case BreakerState.Open:
      return CircuitStateValue.Open;
  }
}

function raceSignal<T>(promise: Promise<T>, signal: AbortSignal | undefined): Promise<T> {
  if (signal === undefined) return promise;
  return new Promise<T>((resolve, reject) => {
    const onAbort = () =>
      reject(
        new NodeError(
          NodeErrorCode.Timeout,
          'private transaction timed out while its payload was being delivered: the payload may have reached some parties, but no transaction was submitted',
        ),
      );
    signal.addEventListener('abort', onAbort, { once: true });
    promise.then(
      (v) => {
        signal.removeEventListener('abort', onAbort);
        resolve(v);
      },
      (e: unknown) => {
        signal.removeEventListener('abort', onAbort);
        reject(e);
      },
    );
  });
}

/** The TM's refusals in the node's vocabulary (one table; anything unexpected stays as it is). */
export function privacyError(error: unknown): unknown {
  if (error instanceof NodeError) return error;
  if (!(error instanceof TxManagerError)) return error;
  const meta = { tmCode: error.code, ...error.meta };
  switch (error.code) {
    case TxManagerErrorCode.RecipientUnavailable:
    case TxManagerErrorCode.RecipientRejected: {
      const nodeIds = Array.isArray(error.meta.nodeIds) ? (error.meta.nodeIds as string[]) : [];
      return new NodeError(
        NodeErrorCode.PrivacyRecipientUnavailable,
        `private transaction not sent: recipient node(s) ${nodeIds.join(', ') || '?'} ${error.code === TxManagerErrorCode.RecipientRejected ? 'refused the payload' : 'unavailable'} (${error.message}); retry when they are back, or use deliveryMode "queue"`,
        meta,
        { cause: error },
      );
    }
    case TxManagerErrorCode.UnknownRecipientKey:
      return new NodeError(
        NodeErrorCode.TxUnknownRecipient,
        `${error.message}; the keys of every member are listed at the transaction manager's GET /partyinfo/keys`,
        meta,
        { cause: error },
      );
    case TxManagerErrorCode.PayloadTooLarge:
      return new NodeError(NodeErrorCode.TxTooLarge, error.message, meta, { cause: error });
    case TxManagerErrorCode.InvalidRequest:
      return new NodeError(NodeErrorCode.TxMalformed, error.message, meta, { cause: error });
    default:
      return new NodeError(NodeErrorCode.PrivacyUnavailable, `transaction manager: ${error.message}`, meta, {
        cause: error,
      });
  }
}
