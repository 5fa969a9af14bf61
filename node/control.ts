// The control protocol between members: one JSON request, one JSON reply, over the p2p channel
// "ctl". Owns the framing (size bound, JSON, { ok } / { error } replies carrying NodeErrors as
// WireError), the request types, and the dispatch to one handler per type. It may not decide
// anything itself: who may ask what (identity, membership, leadership) is the handlers' business.

import type { PeerTransport } from '../p2p/transport.js';
import { errorFromWire, errorToWire, type WireError } from './error-map.js';
import { NodeError, NodeErrorCode } from './errors.js';
import { KEY_PROOF_CHALLENGE_BYTES } from '../enclave/index.js';
import { MAX_RAFT_ID, MEMBER_KEY_BYTES, canonicalBase64, type ConfChangeOp, type MemberInfo } from './membership.js';

export const CHANNEL_CTL = 'ctl';
/** Bound on a control request's encoding (a member description or an admin call). */
export const MAX_CTL_BYTES = 64 * 1024;
/** Bound on the message of an error a peer answers (longer ones are cut, not refused). */
export const MAX_CTL_ERROR_MESSAGE_CHARS = 2_048;
/** Bound on a p2p address in an admin request (a multiaddr with its /p2p/ id is ~100 chars). */
export const MAX_CTL_ADDRESS_CHARS = 1_024;
/** Bound on the enclave keys an operator may pin in an expected identity (the member limit). */
export const MAX_EXPECTED_ENCLAVE_KEYS = 64;
/** Bound on a URL an operator may pin in an expected identity. */
export const MAX_EXPECTED_URL_CHARS = 512;

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
  | ProveRequest
  | AdminRequest;

/**
 * A member asks a node it is about to add to prove that it holds the enclave keys it announced
 * (enclave/key-proof.ts): a fresh 32-byte challenge and the member's ephemeral X25519 public key,
 * both canonical base64.
 */
export interface ProveRequest {
  readonly type: 'prove';
  readonly challenge: string;
  readonly verifierKey: string;
}
/** One proof per announced enclave key, in the order of the `hello`'s enclaveKeys (base64 fields). */
export interface ProveReply {
  readonly proofs: ReadonlyArray<{ readonly key: string; readonly nonce: string; readonly box: string }>;
}

/** A member as `hello` describes itself (its raft id is the cluster's to give). */
export type SelfDescription = Omit<MemberInfo, 'raftId'>;
export interface IdentReply {
  readonly raftId: number;
  readonly incarnation: string;
  readonly refused?: string;
}
/** The raft id the asking peer holds in the answering member's applied membership (null: none). */
export interface WhoamiReply {
  readonly raftId: number | null;
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
  whoami(from: string): WhoamiReply;
  /**
   * Proves this node's enclave keys for a member's challenge (the bytes already checked for
   * length). Absent: the node answers that it cannot prove (Unavailable).
   */
  prove?(from: string, challenge: Uint8Array, verifierKey: Uint8Array): Promise<ProveReply>;
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
    const reply = parseReplyEnvelope(bytes);
    if ('error' in reply) throw errorFromWire(reply.error);
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
    case 'prove': {
      const challenge = canonicalBase64(req.challenge, KEY_PROOF_CHALLENGE_BYTES);
      const verifierKey = canonicalBase64(req.verifierKey, MEMBER_KEY_BYTES);
      if (!challenge || !verifierKey)
        throw new NodeError(
          NodeErrorCode.MembershipChangeInvalid,
          `prove wants a challenge and a verifier key of ${KEY_PROOF_CHALLENGE_BYTES} and ${MEMBER_KEY_BYTES} bytes, canonical base64`,
        );
      if (!handlers.prove) throw new NodeError(NodeErrorCode.Unavailable, 'this node cannot prove enclave keys');
      return handlers.prove(from, challenge, verifierKey);
    }
    case 'admin':
      return handlers.admin(from, parseAdminRequest(req), signal);
    default:
      throw new NodeError(NodeErrorCode.MembershipChangeInvalid, `unknown control request ${String(req?.type)}`);
  }
}

function malformedReply(why: string): NodeError {
  return new NodeError(NodeErrorCode.Unavailable, `a peer answered a malformed control reply: ${why}`);
}

/**
 * The reply envelope, checked before anything in it is used: UTF-8 JSON, an object with exactly
 * one of `ok` (anything: each caller checks its own payload) or `error` (a WireError: string code,
 * string message, object meta). Throws NodeError Unavailable otherwise, never a TypeError.
 */
export function parseReplyEnvelope(bytes: Uint8Array): { ok: unknown } | { error: WireError } {
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    throw malformedReply('not UTF-8 JSON');
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw malformedReply('not an object');
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length !== 1 || (keys[0] !== 'ok' && keys[0] !== 'error'))
    throw malformedReply('wants exactly one of "ok" and "error"');
  if (keys[0] === 'ok') return { ok: o.ok };
  const e = o.error;
  if (typeof e !== 'object' || e === null || Array.isArray(e)) throw malformedReply('error is not an object');
  const w = e as Record<string, unknown>;
  if (typeof w.code !== 'string' || w.code.length > 64 || typeof w.message !== 'string')
    throw malformedReply('error wants a string code and message');
  if (w.meta !== undefined && (typeof w.meta !== 'object' || w.meta === null || Array.isArray(w.meta)))
    throw malformedReply('error meta is not an object');
  return {
    error: {
      code: w.code,
      message: w.message.slice(0, MAX_CTL_ERROR_MESSAGE_CHARS),
      ...(w.meta !== undefined ? { meta: w.meta as Record<string, unknown> } : {}),
    } as WireError,
  };
}

/**
 * A `whoami` reply: exactly `{ raftId }`, an id in 1..MAX_RAFT_ID or null. Returns the reason
 * when it is anything else (the caller logs it and asks another member).
 */
export function parseWhoamiReply(v: unknown): { ok: true; raftId: number | null } | { ok: false; reason: string } {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { ok: false, reason: 'not an object' };
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length !== 1 || keys[0] !== 'raftId') return { ok: false, reason: 'wants exactly the field raftId' };
  if (o.raftId === null) return { ok: true, raftId: null };
  if (!Number.isSafeInteger(o.raftId) || (o.raftId as number) < 1 || (o.raftId as number) > MAX_RAFT_ID)
    return { ok: false, reason: `raftId must be null or an integer in 1..${MAX_RAFT_ID}` };
  return { ok: true, raftId: o.raftId as number };
}

/** The ops a member may forward (leave-joint is the Raft core's own, never asked for). */
const ADMIN_OPS: readonly AdminOp[] = ['add-peer', 'add-learner', 'promote', 'remove', 'transfer'];

function badAdmin(why: string): never {
  throw new NodeError(NodeErrorCode.MembershipChangeInvalid, `malformed admin request: ${why}`);
}

function expectedUrl(v: unknown, field: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_EXPECTED_URL_CHARS)
    badAdmin(`expect.${field} must be a string of 1..${MAX_EXPECTED_URL_CHARS} chars`);
  return v;
}

/**
 * An `admin` request as a member forwards it to the leader, checked before use: a known op, an
 * integer raft id where the op needs one, a bounded address string for an add, and an expected
 * identity of the documented shape (optional URLs, a bounded list of key strings). The add's
 * address and keys are checked in full by the admin code itself (splitPeerAddress, validateMember).
 */
export function parseAdminRequest(req: Partial<Record<string, unknown>>): AdminRequest {
  const op = req.op;
  if (typeof op !== 'string' || !ADMIN_OPS.includes(op as AdminOp)) badAdmin('unknown op');
  for (const k of Object.keys(req))
    if (!['type', 'op', 'raftId', 'p2pAddress', 'expect'].includes(k))
      badAdmin(`unknown field ${JSON.stringify(k.slice(0, 40))}`);
  if (op === 'add-peer' || op === 'add-learner') {
    if (typeof req.p2pAddress !== 'string' || req.p2pAddress.length > MAX_CTL_ADDRESS_CHARS)
      badAdmin(`p2pAddress must be a string of at most ${MAX_CTL_ADDRESS_CHARS} chars`);
    let expect: ExpectedIdentity | undefined;
    if (req.expect !== undefined) {
      const e = req.expect;
      if (typeof e !== 'object' || e === null || Array.isArray(e)) badAdmin('expect must be an object');
      const o = e as Record<string, unknown>;
      for (const k of Object.keys(o))
        if (!['rpcUrl', 'tmUrl', 'enclavePublicKeys'].includes(k))
          badAdmin(`unknown field expect.${JSON.stringify(k.slice(0, 40))}`);
      const keys = o.enclavePublicKeys;
      if (
        keys !== undefined &&
        (!Array.isArray(keys) ||
          keys.length > MAX_EXPECTED_ENCLAVE_KEYS ||
          keys.some((k) => typeof k !== 'string' || k.length > 64))
      )
        badAdmin(`expect.enclavePublicKeys must be a list of at most ${MAX_EXPECTED_ENCLAVE_KEYS} key strings`);
      const rpcUrl = expectedUrl(o.rpcUrl, 'rpcUrl');
      const tmUrl = expectedUrl(o.tmUrl, 'tmUrl');
      expect = {
        ...(rpcUrl !== undefined ? { rpcUrl } : {}),
        ...(tmUrl !== undefined ? { tmUrl } : {}),
        ...(keys !== undefined ? { enclavePublicKeys: [...(keys as string[])] } : {}),
      };
    }
    return { type: 'admin', op, p2pAddress: req.p2pAddress, ...(expect ? { expect } : {}) };
  }
  if (!Number.isSafeInteger(req.raftId) || (req.raftId as number) < 1 || (req.raftId as number) > MAX_RAFT_ID)
    badAdmin(`raftId must be an integer in 1..${MAX_RAFT_ID}`);
  return { type: 'admin', op: op as AdminOp, raftId: req.raftId as number };
}
