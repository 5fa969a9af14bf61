// Membership administration: raft_addPeer / raft_addLearner / raft_promoteToPeer /
// raft_removePeer / raft_transferLeadership. Owns running a change on the leader (here, or
// forwarded to the leader over the control channel), the `hello` exchange with a node being added
// and the check of its expected identity, proposing the change, and answering the caller only
// once the change is applied here (after the Ready's advance, when raft_status shows it). It may
// not apply anything or change the allowlist beyond letting the joiner in for the change.

import { randomBytes } from 'node:crypto';
import type { ConfChange, ConfState, RaftId } from '../consensus/index.js';
import {
  createKeyProofChallenge,
  KEY_PROOF_BOX_BYTES,
  KEY_PROOF_NONCE_BYTES,
  keyToBase64,
  verifyKeyProof,
} from '../enclave/index.js';
import type { PeerAddress } from '../p2p/transport.js';
import { raceDeadline, sleep } from './abort.js';
import type { Clock } from './clock.js';
import {
  type AdminRequest,
  type ControlChannel,
  type ExpectedIdentity,
  type ProveReply,
  type SelfDescription,
} from './control.js';
import { toNodeError } from './error-map.js';
import { NodeError, NodeErrorCode } from './errors.js';
import {
  canonicalBase64,
  confChangeFor,
  encodeConfContext,
  findMember,
  findMemberByPeerId,
  isMemberKey,
  type ConfChangeContext,
  type ConfChangeOp,
  type MemberInfo,
  type MembershipState,
  validateMemberIn,
} from './membership.js';
import { splitPeerAddress } from './peers.js';
import type { PrivacyProvider } from './privacy-provider.js';

export interface AdminOptions {
  /** How long a membership change or leadership transfer may take before its outcome is reported unknown. */
  readonly changeTimeoutMs: number;
}
export const DEFAULT_ADMIN_OPTIONS: AdminOptions = { changeTimeoutMs: 15_000 };

/** How long raft_addPeer/raft_addLearner try to reach the new node before giving up. */
export const JOIN_HELLO_TIMEOUT_MS = 10_000;
/** How long one `hello` to the new node may take. */
const HELLO_REQUEST_TIMEOUT_MS = 2_000;
/** Pause between `hello` attempts while the transport dials the new node. */
const HELLO_RETRY_MS = 200;
/** Extra time a forwarded change gets on top of the leader's own deadline (the round trip). */
const FORWARDED_CHANGE_MARGIN_MS = 2_000;
/** How long the new node gets to answer the enclave-key proof (one NaCl box per key it announced). */
export const KEY_PROOF_TIMEOUT_MS = 5_000;
/**
 * Key proofs a node answers per KEY_PROOF_WINDOW_MS at most (each costs one X25519 per enclave
 * key, ~1 ms each in tweetnacl); past it a `prove` is answered Unavailable and the member retries
 * with its next raft_addPeer.
 */
export const MAX_KEY_PROOFS_PER_WINDOW = 8;
export const KEY_PROOF_WINDOW_MS = 1_000;

/** What administration needs of the Raft driver (a narrow view of RaftDriver). */
export interface AdminRaft {
  proposeConfChange(cc: ConfChange): Promise<void>;
  transferLeadership(to: RaftId): Promise<void>;
  confState(): ConfState;
}

export interface MembershipAdminDeps {
  readonly control: ControlChannel;
  readonly clock: Clock;
  readonly self: () => number;
  readonly membership: () => MembershipState;
  /** The core's view right now (not the last Ready's). */
  readonly isLeader: () => boolean;
  readonly leader: () => number;
  /** Undefined until this node runs Raft. */
  readonly raft: () => AdminRaft | undefined;
  /** Lets `extra` in besides the members (none: back to the members only). */
  readonly admitAlso: (extra: PeerAddress[]) => void;
  /** Throws Unavailable unless the node runs (not stopped, removed, failed, or still joining). */
  readonly assertRunning: () => void;
  /** This node as a key holder: its peer id, the enclave keys it announces, and what proves them. */
  readonly keys: {
    readonly localPeerId: string;
    readonly enclaveKeys: readonly string[];
    readonly privacy: PrivacyProvider | undefined;
  };
}

interface Waiter {
  readonly check: () => boolean;
  readonly resolve: () => void;
}

export class MembershipAdmin {
  private readonly confWaiters = new Map<string, () => void>();
  /** Waiters of changes applied in the current Ready, released by afterReady (after advance). */
  private dueAfterAdvance: Array<() => void> = [];
  private readonly waiters = new Set<Waiter>();
  private proofWindowStartMs = 0;
  private proofsInWindow = 0;

  constructor(
    private readonly options: AdminOptions,
    private readonly deps: MembershipAdminDeps,
  ) {}

  addPeer(p2pAddress: string, expect?: ExpectedIdentity, signal?: AbortSignal): Promise<number> {
    return this.run(
      { type: 'admin', op: 'add-peer', p2pAddress, ...(expect ? { expect } : {}) },
      signal,
    ) as Promise<number>;
  }
  addLearner(p2pAddress: string, expect?: ExpectedIdentity, signal?: AbortSignal): Promise<number> {
    return this.run(
      { type: 'admin', op: 'add-learner', p2pAddress, ...(expect ? { expect } : {}) },
      signal,
    ) as Promise<number>;
  }
  async promote(raftId: number, signal?: AbortSignal): Promise<void> {
    await this.run({ type: 'admin', op: 'promote', raftId }, signal);
  }
  async remove(raftId: number, signal?: AbortSignal): Promise<void> {
    await this.run({ type: 'admin', op: 'remove', raftId }, signal);
  }
  async transfer(raftId: number, signal?: AbortSignal): Promise<void> {
    await this.run({ type: 'admin', op: 'transfer', raftId }, signal);
  }

  /** The control channel's `admin`: only members may drive changes through another member. */
  answer(from: string, req: AdminRequest, signal: AbortSignal): Promise<unknown> {
    if (!findMemberByPeerId(this.deps.membership(), from))
      throw new NodeError(NodeErrorCode.MembershipChangeInvalid, 'not a member');
    return this.runLocally(req, signal);
  }

  /**
   * The control channel's `prove`: a member about to add this node asks it to prove that it holds
   * the enclave keys its `hello` announced. One proof per announced key, in that order, bound to
   * this node's and the asking peer's ids (keyProofBinding). Rate-limited (MAX_KEY_PROOFS_PER_WINDOW).
   */
  async prove(from: string, challenge: Uint8Array, verifierKey: Uint8Array): Promise<ProveReply> {
    const now = this.deps.clock.monotonicMs();
    if (now - this.proofWindowStartMs >= KEY_PROOF_WINDOW_MS) {
      this.proofWindowStartMs = now;
      this.proofsInWindow = 0;
    }
    if (this.proofsInWindow >= MAX_KEY_PROOFS_PER_WINDOW)
      throw new NodeError(
        NodeErrorCode.Unavailable,
        `more than ${MAX_KEY_PROOFS_PER_WINDOW} key proofs asked within ${KEY_PROOF_WINDOW_MS} ms: retry`,
      );
    this.proofsInWindow++;
    const { enclaveKeys, privacy, localPeerId } = this.deps.keys;
    if (enclaveKeys.length === 0) return { proofs: [] };
    if (!privacy?.proveKeys)
      throw new NodeError(NodeErrorCode.PrivacyUnavailable, 'this node has no enclave to prove its keys with');
    const proofs = await privacy.proveKeys({ challenge, verifierKey }, keyProofBinding(localPeerId, from));
    const byKey = new Map(proofs.map((p) => [keyToBase64(p.key), p]));
    return {
      proofs: enclaveKeys.map((key) => {
        const p = byKey.get(key);
        if (!p)
          throw new NodeError(NodeErrorCode.PrivacyUnavailable, `the enclave holds no private key for ${key}`, { key });
        return { key, nonce: Buffer.from(p.nonce).toString('base64'), box: Buffer.from(p.box).toString('base64') };
      }),
    };
  }

  /** A change applied (ApplyHooks.membershipChanged): its caller is answered after this Ready's advance. */
  onApplied(ctx: ConfChangeContext): void {
    // Answered after advance(), which is when the core applies the change to its configuration:
    // an RPC that returned before would let raft_status still show the old members.
    const waiter = this.confWaiters.get(ctx.requestId);
    if (waiter) {
      this.confWaiters.delete(ctx.requestId);
      this.dueAfterAdvance.push(waiter);
    }
  }

  /** Called after every Ready cycle: releases answered changes and satisfied waits. */
  afterReady(): void {
    if (this.dueAfterAdvance.length > 0) {
      const due = this.dueAfterAdvance;
      this.dueAfterAdvance = [];
      for (const w of due) w();
    }
    for (const w of [...this.waiters]) {
      if (w.check()) {
        this.waiters.delete(w);
        w.resolve();
      }
    }
  }

  /** The node stops: every wait ends (its caller sees the node stopped). */
  stop(): void {
    for (const w of this.waiters) w.resolve();
    this.waiters.clear();
  }

  /** Runs a change on the leader: here, or forwarded to it over the control channel. */
  private async run(req: AdminRequest, signal?: AbortSignal): Promise<unknown> {
    this.deps.assertRunning();
    if (this.deps.isLeader()) return this.runLocally(req, signal);
    const leader = findMember(this.deps.membership(), this.deps.leader());
    if (!leader) throw new NodeError(NodeErrorCode.NoLeader, 'no leader is known: retry after an election timeout');
    return this.deps.control.request(
      leader.peerId,
      req,
      this.options.changeTimeoutMs + FORWARDED_CHANGE_MARGIN_MS,
      signal,
    );
  }

  private async runLocally(req: AdminRequest, signal?: AbortSignal): Promise<unknown> {
    this.deps.assertRunning();
    const raft = this.deps.raft();
    if (!this.deps.isLeader() || !raft) {
      const leader = this.deps.leader();
      throw new NodeError(NodeErrorCode.NotLeader, `this node is not the leader (leader: ${leader || 'unknown'})`, {
        leader: leader || null,
      });
    }
    switch (req.op) {
      case 'add-peer':
      case 'add-learner':
        return this.addMember(raft, req.op, String(req.p2pAddress ?? ''), req.expect, signal);
      case 'promote': {
        const id = this.requireMember(req.raftId);
        if (!raft.confState().learners.includes(id as RaftId))
          throw new NodeError(NodeErrorCode.MembershipChangeInvalid, `raft id ${id} is not a learner`);
        await this.proposeChange(raft, 'promote', id, undefined, signal);
        return true;
      }
      case 'remove': {
        await this.proposeChange(raft, 'remove', this.requireMember(req.raftId), undefined, signal);
        return true;
      }
      case 'transfer': {
        const id = this.requireMember(req.raftId);
        if (id === this.deps.self()) return true;
        await raft.transferLeadership(id as RaftId).catch((err: unknown) => {
          throw toNodeError(err);
        });
        await this.waitUntil(() => this.deps.leader() === id, signal, `leadership did not move to ${id}`);
        return true;
      }
      default:
        throw new NodeError(NodeErrorCode.MembershipChangeInvalid, `unknown membership operation ${String(req.op)}`);
    }
  }

  private requireMember(raftId: unknown): number {
    if (typeof raftId !== 'number' || !findMember(this.deps.membership(), raftId))
      throw new NodeError(NodeErrorCode.MembershipChangeInvalid, `raft id ${String(raftId)} is not a member`);
    return raftId;
  }

  private async addMember(
    raft: AdminRaft,
    op: 'add-peer' | 'add-learner',
    p2pAddress: string,
    expect: ExpectedIdentity | undefined,
    signal?: AbortSignal,
  ): Promise<number> {
    const { peerId, addr } = splitPeerAddress(p2pAddress);
    if (findMemberByPeerId(this.deps.membership(), peerId))
      throw new NodeError(NodeErrorCode.MembershipChangeInvalid, `peer ${peerId} is already a member`);
    // Let the new node in (only it, and only for this change), then ask who it is.
    this.deps.admitAlso([{ peerId, addrs: [addr] }]);
    try {
      const info = await this.hello(peerId, p2pAddress, signal);
      const raftId = this.deps.membership().nextRaftId;
      // The peer id and address are the operator's (the hello travelled over a Noise session
      // authenticated as that peer id), never the joiner's say; the rest is the joiner's, taken
      // field by field and checked completely (formats, and that nothing is another member's)
      // before anything is proposed. apply.ts checks the same again when the change commits.
      const member = {
        raftId,
        name: info.name,
        peerId,
        p2pAddrs: [addr],
        rpcUrl: info.rpcUrl,
        tmUrl: info.tmUrl,
        signingKey: info.signingKey,
        enclaveKeys: info.enclaveKeys,
      };
      validateMemberIn(this.deps.membership(), member);
      checkExpectedIdentity(member, expect);
      // Announced keys become this party's keys in every member's key directory: the joiner must
      // hold them, not merely know them (they are public).
      if (member.enclaveKeys.length > 0) await this.checkKeyProof(peerId, member.enclaveKeys, signal);
      await this.proposeChange(raft, op, raftId, member, signal);
      return raftId;
    } finally {
      this.deps.admitAlso([]);
    }
  }

  /** The transport dials the new node now; until the connection is up a request fails at once, so ask again until the deadline. */
  private async hello(peerId: string, p2pAddress: string, signal?: AbortSignal): Promise<SelfDescription> {
    const clock = this.deps.clock;
    const deadline = clock.monotonicMs() + JOIN_HELLO_TIMEOUT_MS;
    let lastError: unknown;
    while (clock.monotonicMs() < deadline && !signal?.aborted) {
      try {
        const reply = (await this.deps.control.request(
          peerId,
          { type: 'hello' },
          HELLO_REQUEST_TIMEOUT_MS,
          signal,
        )) as unknown;
        // A reply that is not an object is the joiner's fault, not a dialling problem: refuse now.
        if (typeof reply !== 'object' || reply === null || Array.isArray(reply))
          throw new NodeError(NodeErrorCode.MembershipChangeInvalid, 'the new node answered hello with a non-object');
        return reply as SelfDescription;
      } catch (err) {
        if (err instanceof NodeError && err.code === NodeErrorCode.MembershipChangeInvalid) throw err;
        lastError = err;
        await sleep(clock, HELLO_RETRY_MS);
      }
    }
    const why = lastError instanceof Error ? lastError.message : String(lastError);
    throw new NodeError(
      NodeErrorCode.Unavailable,
      `could not reach the new node at ${p2pAddress} within ${JOIN_HELLO_TIMEOUT_MS} ms (is it running with --join?): ${why}`,
    );
  }

  /**
   * Asks the new node to prove that it holds the private half of every enclave key it announced
   * (enclave/key-proof.ts): a fresh challenge and ephemeral key per call, so no recorded answer
   * opens again; bound to the joiner's and this node's peer ids, so relaying the challenge to the
   * real key holder fails. Throws MembershipChangeInvalid naming the first key not proven.
   */
  private async checkKeyProof(peerId: string, keys: readonly string[], signal?: AbortSignal): Promise<void> {
    const challenge = createKeyProofChallenge();
    const refuse = (why: string): never => {
      throw new NodeError(
        NodeErrorCode.MembershipChangeInvalid,
        `the new node did not prove it holds its enclave keys: ${why}`,
        { peerId },
      );
    };
    let reply: unknown;
    try {
      reply = await this.deps.control.request(
        peerId,
        {
          type: 'prove',
          challenge: Buffer.from(challenge.request.challenge).toString('base64'),
          verifierKey: Buffer.from(challenge.request.verifierKey).toString('base64'),
        },
        KEY_PROOF_TIMEOUT_MS,
        signal,
      );
    } catch (err) {
      if (err instanceof NodeError && err.code !== NodeErrorCode.Timeout && err.code !== NodeErrorCode.Unavailable)
        refuse(err.message);
      throw err;
    }
    const proofs = parseProveReply(reply);
    if (typeof proofs === 'string') return refuse(proofs);
    if (proofs.length !== keys.length) refuse(`${proofs.length} proofs for ${keys.length} keys`);
    const binding = keyProofBinding(peerId, this.deps.keys.localPeerId);
    try {
      keys.forEach((key, i) => {
        const p = proofs[i];
        if (p.key !== key) refuse(`proof ${i} is for ${p.key}, not ${key}`);
        if (!verifyKeyProof(challenge, Buffer.from(key, 'base64'), p, binding)) refuse(`key ${key} not proven`);
      });
    } finally {
      challenge.verifierSecret.fill(0); // one check only: no later answer opens under it
    }
  }

  /** Proposes a change and resolves once it is applied here (so: committed). */
  private async proposeChange(
    raft: AdminRaft,
    op: ConfChangeOp,
    raftId: number,
    member: MemberInfo | undefined,
    signal?: AbortSignal,
  ): Promise<void> {
    const requestId = randomBytes(12).toString('hex');
    const context = encodeConfContext({ op, requestId, raftId, ...(member ? { member } : {}) });
    let resolveApplied!: () => void;
    const applied = new Promise<void>((resolve) => (resolveApplied = resolve));
    this.confWaiters.set(requestId, resolveApplied);
    try {
      await raft.proposeConfChange(confChangeFor(op, raftId, context)).catch((err: unknown) => {
        throw toNodeError(err);
      });
      await this.deadline(applied, signal, `membership change (${op} ${raftId}) did not commit`);
    } finally {
      this.confWaiters.delete(requestId);
    }
  }

  private waitUntil(check: () => boolean, signal: AbortSignal | undefined, what: string): Promise<void> {
    if (check()) return Promise.resolve();
    let waiter!: Waiter;
    const p = new Promise<void>((resolve) => {
      waiter = { check, resolve };
      this.waiters.add(waiter);
    });
    return this.deadline(p, signal, what).finally(() => this.waiters.delete(waiter));
  }

  private deadline(p: Promise<void>, signal: AbortSignal | undefined, what: string): Promise<void> {
    const timeoutMs = this.options.changeTimeoutMs;
    return raceDeadline(
      p,
      { clock: this.deps.clock, timeoutMs, signal },
      () => new NodeError(NodeErrorCode.Timeout, `${what} within ${timeoutMs} ms: its outcome is unknown`),
    );
  }
}

/**
 * raft_addPeer's optional `{ rpcUrl, tmUrl, enclavePublicKeys }`: what the operator expects the
 * joiner to be. A joiner announcing anything else (another node at that address, or a node
 * configured differently) is refused before the change is proposed.
 */
export function checkExpectedIdentity(info: SelfDescription, expect: ExpectedIdentity | undefined): void {
  if (!expect) return;
  const mismatch = (field: string, want: unknown, got: unknown): never => {
    throw new NodeError(
      NodeErrorCode.MembershipChangeInvalid,
      `the node at that address announces ${field} ${JSON.stringify(got)}, not the expected ${JSON.stringify(want)}`,
      { field },
    );
  };
  if (expect.rpcUrl !== undefined && !sameUrl(expect.rpcUrl, info.rpcUrl))
    mismatch('rpcUrl', expect.rpcUrl, info.rpcUrl);
  if (expect.tmUrl !== undefined && !sameUrl(expect.tmUrl, info.tmUrl)) mismatch('tmUrl', expect.tmUrl, info.tmUrl);
  if (expect.enclavePublicKeys !== undefined) {
    const announced = new Set(info.enclaveKeys);
    const missing = expect.enclavePublicKeys.filter((k) => !announced.has(k));
    if (missing.length > 0 || expect.enclavePublicKeys.length !== announced.size)
      mismatch('enclavePublicKeys', expect.enclavePublicKeys, info.enclaveKeys);
  }
}

/** URLs compare after normalisation ("http://h:1" and "http://h:1/" are one URL). */
function sameUrl(a: string, b: string): boolean {
  try {
    return new URL(a).href === new URL(b).href;
  } catch {
    return a === b;
  }
}

/** What a key proof is bound to: the prover's and the verifier's Noise-authenticated peer ids. */
export function keyProofBinding(proverPeerId: string, verifierPeerId: string): Uint8Array {
  return new TextEncoder().encode(`${proverPeerId}\n${verifierPeerId}`);
}

/** A `prove` reply, strictly: `{ proofs: [{ key, nonce, box }] }` with exact lengths; else the reason. */
export function parseProveReply(v: unknown): Array<{ key: string; nonce: Uint8Array; box: Uint8Array }> | string {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return 'the reply is not an object';
  const o = v as Record<string, unknown>;
  if (Object.keys(o).length !== 1 || !Array.isArray(o.proofs)) return 'the reply wants exactly a list "proofs"';
  const out: Array<{ key: string; nonce: Uint8Array; box: Uint8Array }> = [];
  for (const p of o.proofs.slice(0, MAX_PROOFS_READ) as unknown[]) {
    if (typeof p !== 'object' || p === null || Array.isArray(p)) return 'a proof is not an object';
    const q = p as Record<string, unknown>;
    if (Object.keys(q).length !== 3) return 'a proof wants exactly key, nonce and box';
    const nonce = canonicalBase64(q.nonce, KEY_PROOF_NONCE_BYTES);
    const box = canonicalBase64(q.box, KEY_PROOF_BOX_BYTES);
    if (!isMemberKey(q.key) || !nonce || !box) return 'a proof has a field of the wrong type or length';
    out.push({ key: q.key, nonce, box });
  }
  if (o.proofs.length > MAX_PROOFS_READ) return `more than ${MAX_PROOFS_READ} proofs`;
  return out;
}

/** Proofs read from one reply at most (a member announces at most 64 enclave keys). */
const MAX_PROOFS_READ = 64;
