// The transaction managers' party transport over the node's p2p transport: the channels
// "tm/push" and "tm/resend", their reply framing (a status byte, then the body or a refusal), the
// resend page codec, and the mapping of p2p failures to PartyTransportError. Owns the party map
// (member name ↔ libp2p peer id) it is given; it may not read the membership itself, nor touch
// the transaction manager's stores (it calls the handlers the TM registers).
//
// Identities: a transaction manager knows its counterparts by node id = the member's `name`; on
// the wire, the authenticated identity is the libp2p peer id (Noise proves it). A request from a
// peer that is not a member is refused, whatever the transport's allowlist says.

import { P2pError, P2pErrorCode } from '../p2p/errors.js';
import type { PeerTransport } from '../p2p/transport.js';
import {
  MAX_PUSH_BYTES,
  MAX_RESEND_PAGE_PAYLOADS,
  type PartyTransport,
  PartyTransportError,
  PartyTransportErrorCode,
  type PartyTransportHandlers,
  type ResendPage,
  type ResendRequest,
  resendPageWithinLimits,
  TxManagerError,
  TxManagerErrorCode,
  validateResendRequest,
} from '../txmanager/index.js';
import { ChainErrorCode, Reader, Writer } from './chain/index.js';
import { nodeAssert } from './errors.js';

/** The p2p channels of the transaction managers (request/reply over the node's long-lived streams). */
export const CHANNEL_TM_PUSH = 'tm/push';
export const CHANNEL_TM_RESEND = 'tm/resend';

/**
 * Upper bound on a request's own timeout, on top of the caller's signal: the TM's push timeout
 * (5 s) and resend page timeout (30 s) normally fire first; this only bounds a caller without one.
 */
export const PARTY_REQUEST_TIMEOUT_MS = 60_000;
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

// Page encoding: u16 cursor length (0xffff: null) ‖ cursor utf-8 ‖ u32 count ‖ count × (u32 length ‖ bytes),
// big-endian, written and read with the chain codec (node/chain/codec.ts): bounds and the
// trailing-byte check come from its Reader.
const NULL_CURSOR = 0xffff;

export function encodePage(page: ResendPage): Uint8Array {
  nodeAssert(resendPageWithinLimits(page), () => `resend page over the limits: ${page.payloads.length} payloads`);
  const cursor = page.nextAfterHash === null ? null : new TextEncoder().encode(page.nextAfterHash);
  nodeAssert(cursor === null || cursor.length < NULL_CURSOR, 'resend cursor too long');
  const w = new Writer(2 + (cursor?.length ?? 0) + 4 + page.payloads.reduce((n, p) => n + 4 + p.length, 0));
  w.u16(cursor === null ? NULL_CURSOR : cursor.length);
  if (cursor !== null) w.raw(cursor);
  w.u32(page.payloads.length);
  for (const p of page.payloads) w.bytes32(p);
  return w.finish();
}

/** Throws (ChainError from the Reader, or Error) on anything but a well-formed page within the limits. */
export function decodePage(bytes: Uint8Array): ResendPage {
  if (bytes.length > MAX_RESEND_PAGE_WIRE_BYTES)
    throw new Error(`${bytes.length} bytes, limit ${MAX_RESEND_PAGE_WIRE_BYTES}`);
  // The Reader's error code is replaced by the caller's (PartyTransportError Protocol).
  const r = new Reader(bytes, ChainErrorCode.TxMalformed, 'resend page');
  const cursorLength = r.u16();
  const nextAfterHash = cursorLength === NULL_CURSOR ? null : new TextDecoder().decode(r.raw(cursorLength));
  const count = r.u32();
  if (count > MAX_RESEND_PAGE_PAYLOADS) r.fail(`${count} payloads, limit ${MAX_RESEND_PAGE_PAYLOADS}`);
  const payloads: Uint8Array[] = [];
  for (let i = 0; i < count; i++) payloads.push(r.bytes32(MAX_RESEND_PAGE_WIRE_BYTES).slice());
  r.end();
  return { payloads, nextAfterHash };
}
