// The replicated membership: who the members are, where they are, and their keys.
//
// GoQuorum tied Raft ids to the order of a static file and kept a separate permissions file on
// every node; users got duplicate ids and "recipient not found for key". Here membership lives in
// the Raft log itself: every configuration change carries, in its context, the member's identity
// (libp2p peer id and addresses, RPC and transaction-manager URLs, block-signing key and enclave
// keys). Every node applies the same changes in the same order, so every node knows every member
// and every party key, and ids are assigned by the cluster from a persisted counter: never reused.

import { ConfChangeType, type ConfChange, type ConfState, type RaftId } from '../consensus/index.js';
import { peerIdFromString } from '@libp2p/peer-id';
import { parsePeerAddress } from '../p2p/address.js';
import { NodeError, NodeErrorCode, NodeInvariantError } from './errors.js';

export interface MemberInfo {
  readonly raftId: number;
  /** Human name, e.g. "node-4". */
  readonly name: string;
  /** libp2p peer id (base58). */
  readonly peerId: string;
  /** libp2p multiaddrs without the /p2p suffix. */
  readonly p2pAddrs: readonly string[];
  readonly rpcUrl: string;
  readonly tmUrl: string;
  /** Ed25519 public key (base64) that signs this member's blocks. */
  readonly signingKey: string;
  /** Enclave box public keys (base64) that live on this member. */
  readonly enclaveKeys: readonly string[];
}

export interface MembershipState {
  readonly members: readonly MemberInfo[];
  /** The next id the cluster hands out; ids below it are used or retired for good. */
  readonly nextRaftId: number;
  /** Ids removed from the cluster; a node announcing one of them is refused. */
  readonly removed: readonly number[];
}

export type ConfChangeOp = 'add-peer' | 'add-learner' | 'promote' | 'remove' | 'leave-joint';

/** What a membership change carries in its Raft context. */
export interface ConfChangeContext {
  readonly op: ConfChangeOp;
  /** Unique per request, so the RPC that proposed it learns when it applied. */
  readonly requestId: string;
  readonly raftId: number;
  readonly member?: MemberInfo;
}

/** Bound on a change's context; a member description is a few hundred bytes. */
export const MAX_CONF_CONTEXT_BYTES = 16 * 1024;
const MAX_KEYS_PER_MEMBER = 64;
export const MAX_ADDRS_PER_MEMBER = 16;
const MAX_STRING_CHARS = 1024;

export function encodeConfContext(ctx: ConfChangeContext): Uint8Array {
  const bytes = new TextEncoder().encode(JSON.stringify(ctx));
  if (bytes.length > MAX_CONF_CONTEXT_BYTES) {
    throw new NodeError(
      NodeErrorCode.MembershipChangeInvalid,
      `membership change context of ${bytes.length} bytes exceeds ${MAX_CONF_CONTEXT_BYTES}`,
    );
  }
  return bytes;
}

/** Raft ids the membership hands out stay below this (u32-safe, and far more than any cluster uses). */
export const MAX_RAFT_ID = 2 ** 31 - 1;
/** A request id is 24 hex chars (admin.ts); anything longer is refused. */
const MAX_REQUEST_ID_CHARS = 64;
const CONF_OPS: readonly ConfChangeOp[] = ['add-peer', 'add-learner', 'promote', 'remove', 'leave-joint'];

/** A committed change's context as the applier reads it: valid, or why not. */
export type ConfContextCheck =
  | { readonly ok: true; readonly ctx: ConfChangeContext | undefined }
  | { readonly ok: false; readonly reason: string; readonly raftId?: number };

/**
 * Reads and checks a committed change's context against the membership it applies to. Never
 * throws: whatever was committed, every node reaches the same answer, and an invalid context is a
 * no-op (the applier logs the reason). An empty context is a leave-joint change (the core's own).
 * `raftId` is returned with a refusal when it is a usable id: the Raft core applied the change to
 * its configuration anyway, so that id is spent and must not be handed out again.
 */
export function checkConfContext(state: MembershipState, bytes: Uint8Array): ConfContextCheck {
  if (bytes.length === 0) return { ok: true, ctx: undefined };
  if (bytes.length > MAX_CONF_CONTEXT_BYTES)
    return { ok: false, reason: `context of ${bytes.length} bytes is over ${MAX_CONF_CONTEXT_BYTES}` };
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes));
  } catch {
    return { ok: false, reason: 'context is not UTF-8 JSON' };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { ok: false, reason: 'context is not an object' };
  const o = v as Record<string, unknown>;
  const raftId =
    Number.isSafeInteger(o.raftId) && (o.raftId as number) >= 1 && (o.raftId as number) <= MAX_RAFT_ID
      ? (o.raftId as number)
      : undefined;
  const refuse = (reason: string): ConfContextCheck => ({ ok: false, reason, ...(raftId ? { raftId } : {}) });
  for (const k of Object.keys(o))
    if (!['op', 'requestId', 'raftId', 'member'].includes(k))
      return refuse(`unknown field ${JSON.stringify(k.slice(0, 40))}`);
  if (typeof o.op !== 'string' || !CONF_OPS.includes(o.op as ConfChangeOp)) return refuse('unknown op');
  if (typeof o.requestId !== 'string' || o.requestId.length > MAX_REQUEST_ID_CHARS) return refuse('bad requestId');
  if (raftId === undefined) return refuse(`raftId must be an integer in 1..${MAX_RAFT_ID}`);
  const op = o.op as ConfChangeOp;
  if (o.member !== undefined) {
    if (op !== 'add-peer' && op !== 'add-learner') return refuse(`a ${op} change carries no member`);
    try {
      validateMemberIn(state, o.member);
    } catch (err) {
      return refuse(err instanceof Error ? err.message : String(err));
    }
    if (o.member.raftId !== raftId) return refuse(`member.raftId ${o.member.raftId} is not the change's ${raftId}`);
  }
  return { ok: true, ctx: o as unknown as ConfChangeContext };
}

/** A member's name: what operators type and logs show (the same rule as config nodeId). */
export const MEMBER_NAME_PATTERN = /^[A-Za-z0-9._-]{1,64}$/;
/** Ed25519 block-signing key and enclave box keys: 32 raw bytes, canonical base64 (44 chars). */
export const MEMBER_KEY_BYTES = 32;
/** An RPC or transaction-manager URL. */
export const MAX_MEMBER_URL_CHARS = 512;

function invalid(why: string, meta: Record<string, unknown> = {}): never {
  throw new NodeError(NodeErrorCode.MembershipChangeInvalid, why, meta);
}

/** `bytes` bytes in canonical base64 (re-encoding gives the same text), or undefined. */
export function canonicalBase64(v: unknown, bytes: number): Uint8Array | undefined {
  if (typeof v !== 'string' || v.length !== Math.ceil(bytes / 3) * 4) return undefined;
  const raw = Buffer.from(v, 'base64');
  if (raw.length !== bytes || raw.toString('base64') !== v) return undefined;
  return Uint8Array.from(raw);
}

/** Exactly MEMBER_KEY_BYTES bytes in canonical base64. */
export function isMemberKey(k: unknown): k is string {
  return canonicalBase64(k, MEMBER_KEY_BYTES) !== undefined;
}

function checkUrl(field: string, v: unknown): void {
  if (typeof v !== 'string' || v.length === 0 || v.length > MAX_MEMBER_URL_CHARS)
    invalid(`member.${field} must be a URL of 1..${MAX_MEMBER_URL_CHARS} chars`);
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    return invalid(`member.${field} is not a URL: ${JSON.stringify(v.slice(0, 80))}`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    invalid(`member.${field} must be an http(s) URL, got ${JSON.stringify(u.protocol)}`);
  if (u.username !== '' || u.password !== '') invalid(`member.${field} must not carry credentials`);
}

/**
 * Checks a member description completely, on its own: exact types, a name of MEMBER_NAME_PATTERN,
 * a canonical libp2p peer id, each address a multiaddr that is dialable with that peer id, http(s)
 * URLs, a 32-byte signing key and 32-byte enclave keys in canonical base64 with no duplicates, and
 * no field it does not know. Throws NodeError MembershipChangeInvalid with the reason.
 * The same check runs before a change is proposed and again when it is applied (validateMemberIn).
 */
export function validateMember(m: unknown): asserts m is MemberInfo {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) invalid('member must be an object');
  const o = m as Record<string, unknown>;
  const known = new Set(['raftId', 'name', 'peerId', 'p2pAddrs', 'rpcUrl', 'tmUrl', 'signingKey', 'enclaveKeys']);
  for (const k of Object.keys(o))
    if (!known.has(k)) invalid(`member has an unknown field ${JSON.stringify(k.slice(0, 40))}`);
  if (!Number.isSafeInteger(o.raftId) || (o.raftId as number) < 1) invalid('member.raftId must be a positive integer');
  if (typeof o.name !== 'string' || !MEMBER_NAME_PATTERN.test(o.name))
    invalid(`member.name must match ${MEMBER_NAME_PATTERN.source}`);
  if (typeof o.peerId !== 'string' || o.peerId.length > MAX_STRING_CHARS) invalid('member.peerId must be a string');
  const peerId = o.peerId as string;
  try {
    if (peerIdFromString(peerId).toString() !== peerId) throw new Error('not canonical');
  } catch {
    invalid(`member.peerId is not a libp2p peer id: ${JSON.stringify(peerId.slice(0, 80))}`);
  }
  const addrs = o.p2pAddrs;
  if (!Array.isArray(addrs) || addrs.length > MAX_ADDRS_PER_MEMBER)
    invalid(`member.p2pAddrs must be a list of at most ${MAX_ADDRS_PER_MEMBER} multiaddrs`);
  for (const a of addrs as unknown[]) {
    if (typeof a !== 'string' || a.length === 0) invalid('member.p2pAddrs holds a non-string or empty address');
    // Stored without the /p2p/<id> suffix: the member's peer id is added when dialling.
    if (a.includes('/p2p/'))
      invalid(`member.p2pAddrs holds an address with a peer id: ${JSON.stringify(a.slice(0, 80))}`);
    try {
      if (parsePeerAddress(`${a}/p2p/${peerId}`).peerId !== peerId) throw new Error('peer id');
    } catch {
      invalid(`member.p2pAddrs holds an invalid multiaddr ${JSON.stringify(a.slice(0, 80))}`);
    }
  }
  checkUrl('rpcUrl', o.rpcUrl);
  checkUrl('tmUrl', o.tmUrl);
  if (!isMemberKey(o.signingKey)) invalid(`member.signingKey must be ${MEMBER_KEY_BYTES} bytes in canonical base64`);
  const keys = o.enclaveKeys;
  if (!Array.isArray(keys) || keys.length > MAX_KEYS_PER_MEMBER)
    invalid(`member.enclaveKeys must be a list of at most ${MAX_KEYS_PER_MEMBER} keys`);
  for (const k of keys as unknown[])
    if (!isMemberKey(k)) invalid(`member.enclaveKeys must each be ${MEMBER_KEY_BYTES} bytes in canonical base64`);
  if (new Set(keys as string[]).size !== (keys as string[]).length) invalid('member.enclaveKeys repeats a key');
}

/**
 * validateMember, then against the current members: the name, peer id, signing key and every
 * enclave key must not belong to another member (a joiner may not take an existing member's name
 * or put its own keys in place of another's in the key directory). `m.raftId` itself may already
 * be a member only when the description is identical (a change re-applied).
 */
export function validateMemberIn(state: MembershipState, m: unknown): asserts m is MemberInfo {
  validateMember(m);
  for (const other of state.members) {
    if (other.raftId === m.raftId) {
      if (JSON.stringify(other) !== JSON.stringify(m)) invalid(`raft id ${m.raftId} is already a member`);
      continue;
    }
    if (other.name === m.name) invalid(`name ${JSON.stringify(m.name)} is taken by member ${other.raftId}`);
    if (other.peerId === m.peerId) invalid(`peer ${m.peerId} is already member ${other.raftId}`);
    if (other.signingKey === m.signingKey) invalid(`the signing key is member ${other.raftId}'s`);
    const theirs = new Set(other.enclaveKeys);
    const shared = m.enclaveKeys.find((k) => theirs.has(k));
    if (shared !== undefined) invalid(`enclave key ${shared} belongs to member ${other.raftId}`);
  }
  if (state.removed.includes(m.raftId)) invalid(`raft id ${m.raftId} was removed and is never reused`);
}

/** The Raft change each membership operation proposes. Joint consensus is used whenever it is needed. */
export function confChangeFor(op: ConfChangeOp, raftId: number, context: Uint8Array): ConfChange {
  const id = raftId as RaftId;
  switch (op) {
    case 'add-peer':
      return { transition: 0, changes: [{ type: ConfChangeType.AddVoter, nodeId: id }], context };
    case 'add-learner':
      return { transition: 0, changes: [{ type: ConfChangeType.AddLearner, nodeId: id }], context };
    case 'promote':
      return { transition: 0, changes: [{ type: ConfChangeType.AddVoter, nodeId: id }], context };
    case 'remove':
      return { transition: 0, changes: [{ type: ConfChangeType.RemoveNode, nodeId: id }], context };
    case 'leave-joint':
      return { transition: 0, changes: [], context };
  }
}

/** Applies a committed change's context to the membership. Deterministic: every node gets the same result. */
export function applyConfContext(state: MembershipState, ctx: ConfChangeContext | undefined): MembershipState {
  if (!ctx) return state;
  const nextRaftId = Math.max(state.nextRaftId, ctx.raftId + 1);
  switch (ctx.op) {
    case 'add-peer':
    case 'add-learner': {
      if (!ctx.member) return { ...state, nextRaftId };
      const members = state.members.filter((m) => m.raftId !== ctx.raftId).concat([ctx.member]);
      return { ...state, members, nextRaftId };
    }
    case 'remove':
      return {
        members: state.members.filter((m) => m.raftId !== ctx.raftId),
        nextRaftId,
        removed: state.removed.includes(ctx.raftId) ? state.removed : [...state.removed, ctx.raftId],
      };
    case 'promote':
    case 'leave-joint':
      return { ...state, nextRaftId };
  }
}

export type MemberRole = 'verifier' | 'learner';

/** A member's role as the applied configuration says (the core's ConfState is the truth). */
export function roleOf(conf: ConfState, raftId: number): MemberRole | undefined {
  const id = raftId as RaftId;
  if (conf.voters.includes(id) || conf.votersOutgoing.includes(id)) return 'verifier';
  if (conf.learners.includes(id) || conf.learnersNext.includes(id)) return 'learner';
  return undefined;
}

export function findMemberByPeerId(state: MembershipState, peerId: string): MemberInfo | undefined {
  return state.members.find((m) => m.peerId === peerId);
}

export function findMember(state: MembershipState, raftId: number): MemberInfo | undefined {
  return state.members.find((m) => m.raftId === raftId);
}

export function encodeMembership(state: MembershipState): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(state));
}

export function decodeMembership(bytes: Uint8Array): MembershipState {
  const o = JSON.parse(new TextDecoder().decode(bytes)) as MembershipState;
  if (!Array.isArray(o.members) || !Number.isSafeInteger(o.nextRaftId) || !Array.isArray(o.removed)) {
    throw new NodeInvariantError('membership record is malformed');
  }
  for (const m of o.members) validateMember(m);
  return o;
}
