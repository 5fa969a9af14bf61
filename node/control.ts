// The control protocol between members: one JSON request, one JSON reply, over the p2p channel
// "ctl". Owns the framing (size bound, JSON, { ok } / { error } replies carrying NodeErrors as
// WireError), the request types, and the dispatch to one handler per type. It may not decide
// anything itself: who may ask what (identity, membership, leadership) is the handlers' business.

import type { PeerTransport } from '../p2p/transport.js';
import { errorFromWire, errorToWire, type WireError } from './error-map.js';
import { NodeError, NodeErrorCode } from './errors.js';
import type { ConfChangeOp, MemberInfo } from './membership.js';

export const CHANNEL_CTL = 'ctl';
/** Bound on a control request's encoding (a member description or an admin call). */
export const MAX_CTL_BYTES = 64 * 1024;

/**
 * What raft_addPeer's caller may say about the node it adds: the joiner must announce exactly
 * these (its `hello`), or the change is refused before anything is proposed.
 */
export interface ExpectedIdentity {
  readonly rpcUrl?: string;
  readonly tmUrl?: string;
  readonly enclavePublicKeys?: readonly string[];
}

export type AdminOp = ConfChangeOp | 'transfer';

export interface AdminRequest {
  readonly type: 'admin';
  readonly op: AdminOp;
  readonly raftId?: number;
  readonly p2pAddress?: string;
  readonly expect?: ExpectedIdentity;
}

export type CtlRequest =
  | { readonly type: 'hello' }
  | { readonly type: 'whoami' }
  | { readonly type: 'members' }
  | { readonly type: 'ident'; readonly raftId: number; readonly incarnation: string }
  | AdminRequest;

/** A member as `hello` describes itself (its raft id is the cluster's to give). */
export type SelfDescription = Omit<MemberInfo, 'raftId'>;
export interface IdentReply {
  readonly raftId: number;
  readonly incarnation: string;
  readonly refused?: string;
}
export interface MemberAddress {
  readonly raftId: number;
  readonly peerId: string;
  readonly p2pAddrs: readonly string[];
}

/** One handler per request type; each may throw a NodeError, which travels back to the caller. */
export interface ControlHandlers {
  hello(from: string): SelfDescription;
  ident(from: string, raftId: number, incarnation: string): Promise<IdentReply>;
  members(from: string): readonly MemberAddress[];
  whoami(from: string): { raftId: number | null };
  admin(from: string, req: AdminRequest, signal: AbortSignal): Promise<unknown>;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export class ControlChannel {
  constructor(private readonly transport: PeerTransport) {}

  /** Registers the server side (once per transport: a PeerTransport keeps one handler per channel). */
  serve(handlers: ControlHandlers): void {
    this.transport.onRequest(CHANNEL_CTL, (from, data, signal) => this.answer(handlers, from, data, signal));
  }

  /** Asks a peer; resolves with its `ok` value or throws the NodeError it answered. */
  async request(peerId: string, req: CtlRequest, timeoutMs: number, signal?: AbortSignal): Promise<unknown> {
    const bytes = await this.transport.request(peerId, CHANNEL_CTL, encoder.encode(JSON.stringify(req)), {
      timeoutMs,
      signal,
    });
    const reply = JSON.parse(decoder.decode(bytes)) as { ok?: unknown; error?: WireError };
    if (reply.error) throw errorFromWire(reply.error);
    return reply.ok;
  }

  private async answer(
    handlers: ControlHandlers,
    from: string,
    data: Uint8Array,
    signal: AbortSignal,
  ): Promise<Uint8Array> {
    let out: unknown;
    try {
      out = { ok: await dispatch(handlers, from, data, signal) };
    } catch (err) {
      out = { error: errorToWire(err) };
    }
    return encoder.encode(JSON.stringify(out));
  }
}

async function dispatch(handlers: ControlHandlers, from: string, data: Uint8Array, signal: AbortSignal) {
  if (data.length > MAX_CTL_BYTES)
    throw new NodeError(NodeErrorCode.MembershipChangeInvalid, 'control request too large');
  const req = JSON.parse(decoder.decode(data)) as Partial<Record<string, unknown>> | null;
  switch (req?.type) {
    case 'hello':
      return handlers.hello(from);
    case 'ident':
      return handlers.ident(from, Number(req.raftId), String(req.incarnation ?? ''));
    case 'members':
      return handlers.members(from);
    case 'whoami':
      return handlers.whoami(from);
    case 'admin':
      return handlers.admin(from, req as unknown as AdminRequest, signal);
    default:
      throw new NodeError(NodeErrorCode.MembershipChangeInvalid, `unknown control request ${String(req?.type)}`);
  }
}
