// The replicated membership: who the members are, where they are, and their keys.
//
// GoQuorum tied Raft ids to the order of a static file and kept a separate permissions file on
// every node; users got duplicate ids and "recipient not found for key". Here membership lives in
// the Raft log itself: every configuration change carries, in its context, the member's identity
// (libp2p peer id and addresses, RPC and transaction-manager URLs, block-signing key and enclave
// keys). Every node applies the same changes in the same order, so every node knows every member
// and every party key, and ids are assigned by the cluster from a persisted counter: never reused.

import { ConfChangeType, type ConfChange, type ConfState, type RaftId } from '../consensus/index.js';
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
const MAX_ADDRS_PER_MEMBER = 16;
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

/** Decodes a committed change's context. An empty context is a leave-joint change (the core's own). */
export function decodeConfContext(bytes: Uint8Array): ConfChangeContext | undefined {
  if (bytes.length === 0) return undefined;
  if (bytes.length > MAX_CONF_CONTEXT_BYTES) throw new NodeInvariantError('membership context too large');
  let v: unknown;
  try {
    v = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    throw new NodeInvariantError('membership context is not JSON');
  }
  const o = v as Partial<ConfChangeContext>;
  if (
    typeof o !== 'object' ||
    o === null ||
    typeof o.op !== 'string' ||
    typeof o.requestId !== 'string' ||
    !Number.isSafeInteger(o.raftId)
  ) {
    throw new NodeInvariantError('membership context is malformed');
  }
  if (o.member !== undefined) validateMember(o.member);
  return o as ConfChangeContext;
}

export function validateMember(m: unknown): asserts m is MemberInfo {
  const o = m as Record<string, unknown>;
  const str = (k: string) => {
    if (typeof o[k] !== 'string' || (o[k] as string).length > MAX_STRING_CHARS) {
      throw new NodeError(
        NodeErrorCode.MembershipChangeInvalid,
        `member.${k} must be a string of at most ${MAX_STRING_CHARS} chars`,
      );
    }
  };
  const strs = (k: string, max: number) => {
    const a = o[k];
    if (!Array.isArray(a) || a.length > max || a.some((x) => typeof x !== 'string' || x.length > MAX_STRING_CHARS)) {
      throw new NodeError(
        NodeErrorCode.MembershipChangeInvalid,
        `member.${k} must be a list of at most ${max} strings`,
      );
    }
  };
  if (typeof o !== 'object' || o === null)
    throw new NodeError(NodeErrorCode.MembershipChangeInvalid, 'member must be an object');
  if (!Number.isSafeInteger(o.raftId) || (o.raftId as number) < 1)
    throw new NodeError(NodeErrorCode.MembershipChangeInvalid, 'member.raftId must be a positive integer');
  for (const k of ['name', 'peerId', 'rpcUrl', 'tmUrl', 'signingKey']) str(k);
  strs('p2pAddrs', MAX_ADDRS_PER_MEMBER);
  strs('enclaveKeys', MAX_KEYS_PER_MEMBER);
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
