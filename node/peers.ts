// Peer admission and identity: which peers this node lets in (the p2p allowlist), and who a
// connected peer is. Owns the allowlist (members, else bootstrap peers for a joiner, plus members
// vouched for by a member while this node lags a membership change), the (raft id, incarnation)
// exchange with every peer, the incarnations remembered per raft id (refusing a member whose data
// directory was replaced: CORRECTNESS scenario 18), and the check that a Raft message comes from
// the peer that holds its `from` id. It may not change the membership, the Raft core or the chain:
// it reads the applied membership and the leader through the callbacks it is given. It also
// runs a --join node's wait for its raft id (waitForRaftId).

import { peerIdFromString } from '@libp2p/peer-id';
import type { Message } from '../consensus/index.js';
import { parsePeerAddress } from '../p2p/address.js';
import type { PeerAddress, PeerTransport } from '../p2p/transport.js';
import { MAX_INCARNATION_CHARS } from './chain/index.js';
import type { Clock, TimerHandle } from './clock.js';
import { parseWhoamiReply, type ControlChannel, type IdentReply, type MemberAddress } from './control.js';
import { NodeError, NodeErrorCode } from './errors.js';
import type { Logger } from './log.js';
import {
  MAX_ADDRS_PER_MEMBER,
  MAX_RAFT_ID,
  findMember,
  findMemberByPeerId,
  type MembershipState,
} from './membership.js';

/** How long a peer gets to answer the (raft id, incarnation) exchange; a later connect asks again. */
export const IDENT_TIMEOUT_MS = 5_000;
/** How long a peer gets to answer a control query ("members", "whoami"); the caller retries on its timer. */
export const CTL_QUERY_TIMEOUT_MS = 2_000;
/** Without a leader this long, a node asks a member for the current membership. */
export const VOUCH_AFTER_NO_LEADER_MS = 3_000;
/** Members admitted on another member's word at most. */
export const MAX_VOUCHED_PEERS = 256;
/** Addresses kept per vouched member. */
const MAX_VOUCHED_ADDRS = 8;
/** Raft ids whose incarnation a node remembers (one per member, ever). */
export const MAX_KNOWN_INCARNATIONS = 4_096;
/** How often a node started with --join asks the members for its id. */
export const JOIN_POLL_MS = 500;
/** Peers warned about once each at most (a bound on the set that remembers them). */
const MAX_WARNED_PEERS = 1_024;
/**
 * After a member says this node is refused, the other members are asked again (to confirm or
 * not) at most this often: a lying member answering every ident with `refused` cannot make this
 * node flood the others.
 */
export const REFUSAL_CONFIRM_INTERVAL_MS = 2_000;

/**
 * A member just removed stays admitted (dialled, its connection kept) this long: the messages
 * that carry the commit of its own removal still reach it, so it applies the removal and stops
 * itself (its own log is what it obeys) instead of campaigning, cut off, forever.
 */
export const REMOVED_MEMBER_GRACE_MS = 5_000;

/**
 * How many members must say this node is refused before it stops: a majority of the members,
 * where this node cannot refuse itself, so at most every other member. 2 or 3 members: every
 * other one; 4: three; 5: three; 7: four. One lying member can never stop a node of a cluster
 * of three or more.
 */
export function refusalQuorum(members: number, others: number): number {
  return Math.max(1, Math.min(Math.floor(members / 2) + 1, others));
}

export interface BootstrapPeer {
  readonly raftId: number;
  readonly peerId: string;
  readonly addrs: readonly string[];
}

/** Where the incarnations are kept (the chain store, synced). */
export interface IncarnationStore {
  knownIncarnations(): Promise<Map<number, string>>;
  rememberIncarnation(raftId: number, incarnation: string | undefined): Promise<void>;
}

export interface PeerAdmissionDeps {
  readonly transport: PeerTransport;
  readonly control: ControlChannel;
  readonly store: IncarnationStore;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Made when this node's Raft log directory was created; announced to every peer. */
  readonly incarnation: string;
  readonly bootstrapPeers?: readonly BootstrapPeer[];
  /** Per peer id, addresses dialled instead of the membership's (NAT, proxies, fault injection). */
  readonly addressOverrides?: ReadonlyMap<string, readonly string[]>;
  /** This node's raft id (0 until a joiner is given one). */
  readonly self: () => number;
  readonly membership: () => MembershipState;
  /** The leader this node knows (0: none). */
  readonly leader: () => number;
  /**
   * The node must stop: a majority of the members said this node's identity is refused (its data
   * directory was replaced), or joining failed past recovery.
   */
  readonly onRefused: (err: NodeError) => void;
}

/**
 * Splits `/…/p2p/<peerId>` (validated by p2p/address.ts) into the peer id and the dialable part.
 * Throws NodeError MembershipChangeInvalid on anything else: the address comes from a caller.
 */
export function splitPeerAddress(address: string): { peerId: string; addr: string } {
  let parsed: PeerAddress;
  try {
    parsed = parsePeerAddress(address);
  } catch (err) {
    throw new NodeError(NodeErrorCode.MembershipChangeInvalid, (err as Error).message, {}, { cause: err });
  }
  return { peerId: parsed.peerId, addr: address.slice(0, address.length - `/p2p/${parsed.peerId}`.length) };
}

/** An address without its trailing /p2p/<id>, when it has one (listen addresses, config peers). */
export function dialablePart(address: string): string {
  return address.replace(/\/p2p\/[^/]+$/, '');
}

export class PeerAdmission {
  /** Peer id → the raft id it proved; Raft traffic is accepted only from these. */
  private readonly verified = new Map<string, number>();
  /** Raft id → incarnation first seen (a later, different one is refused). Insertion order = age. */
  private readonly knownIncarnations = new Map<number, string>();
  private readonly identInFlight = new Set<string>();
  /**
   * Members this node has not applied yet, vouched for by a member it knows (see refreshVouched):
   * a node that lags behind a membership change must still admit the leader added by it.
   */
  private vouched = new Map<string, { raftId: number; addrs: readonly string[] }>();
  private noLeaderSinceMs: number | undefined;
  /** Members as of the last updatePeers (peer id → addresses), to notice one that left. */
  private lastMembers = new Map<string, readonly string[]>();
  /** Members just removed, still admitted until `untilMs` (REMOVED_MEMBER_GRACE_MS). */
  private readonly leaving = new Map<string, { addrs: readonly string[]; untilMs: number }>();
  private leavingTimer: TimerHandle | undefined;
  private joinTimer: TimerHandle | undefined;
  private readonly warned = new Set<string>();
  /** Members (peer id → their reason) whose latest `ident` answer said this node is refused. */
  private readonly refusedBy = new Map<string, string>();
  private lastConfirmAskMs: number | undefined;
  private readonly log: Logger;

  constructor(private readonly deps: PeerAdmissionDeps) {
    this.log = deps.logger;
  }

  /** Loads the remembered incarnations and follows the transport's connections. */
  async start(): Promise<void> {
    for (const [raftId, incarnation] of await this.deps.store.knownIncarnations())
      this.knownIncarnations.set(raftId, incarnation);
    this.deps.transport.on('peer:connect', (peer) => void this.identify(peer));
    this.deps.transport.on('peer:disconnect', (peer) => this.verified.delete(peer));
  }

  /** Raft id → peer id: the replicated membership, else vouched members, else the bootstrap peers. */
  peerOf(raftId: number): { raftId: number; peerId: string } | undefined {
    const member = findMember(this.deps.membership(), raftId);
    if (member) return member;
    for (const [peerId, v] of this.vouched) if (v.raftId === raftId) return { raftId, peerId };
    return this.deps.bootstrapPeers?.find((p) => p.raftId === raftId);
  }

  raftIdOfPeer(peerId: string): number | undefined {
    const membership = this.deps.membership();
    const m = findMemberByPeerId(membership, peerId);
    if (m) return m.raftId;
    const vouched = this.vouched.get(peerId);
    if (vouched && !findMember(membership, vouched.raftId)) return vouched.raftId;
    // Only while this node is not yet in the membership it applied: then the bootstrap list speaks.
    if (findMember(membership, this.deps.self())) return undefined;
    return this.deps.bootstrapPeers?.find((p) => p.peerId === peerId)?.raftId;
  }

  /** Identified peers (the ones whose Raft traffic is accepted). */
  verifiedPeers(): string[] {
    return [...this.verified.keys()];
  }

  isVerified(peerId: string): boolean {
    return this.verified.has(peerId);
  }

  /**
   * Whether a Raft message from `from` may be stepped: the sender proved its raft id, the
   * membership gives that id to its (Noise-authenticated) peer id, and it is addressed to us.
   */
  admitsRaftMessage(from: string, m: Message): boolean {
    if (this.verified.get(from) !== m.from) {
      // Not identified yet (or refused): no Raft traffic until it proved who it is.
      void this.identify(from);
      return false;
    }
    if (this.raftIdOfPeer(from) !== m.from || m.to !== this.deps.self()) {
      this.warnOnce(
        from,
        { claimedFrom: m.from, to: m.to },
        'raft message from a peer that does not hold that raft id: dropped',
      );
      return false;
    }
    return true;
  }

  /** Hands the transport the peers to dial and admit; `extra` lets one more in for a pending change. */
  updatePeers(extra: readonly PeerAddress[] = []): void {
    const { transport, bootstrapPeers, addressOverrides } = this.deps;
    const membership = this.deps.membership();
    const self = transport.localPeerId;
    const peers = new Map<string, PeerAddress>();
    if (!findMember(membership, this.deps.self())) {
      for (const p of bootstrapPeers ?? [])
        if (p.peerId !== self) peers.set(p.peerId, { peerId: p.peerId, addrs: p.addrs });
    }
    for (const [peerId, v] of this.vouched) if (peerId !== self) peers.set(peerId, { peerId, addrs: v.addrs });
    for (const m of membership.members)
      if (m.peerId !== self) peers.set(m.peerId, { peerId: m.peerId, addrs: m.p2pAddrs });
    for (const [peerId, l] of this.leavingPeers(membership))
      if (peerId !== self && !peers.has(peerId)) peers.set(peerId, { peerId, addrs: l.addrs });
    for (const p of extra) peers.set(p.peerId, p);
    transport.setPeers(
      [...peers.values()].map((p) =>
        addressOverrides?.has(p.peerId) ? { peerId: p.peerId, addrs: addressOverrides.get(p.peerId)! } : p,
      ),
    );
  }

  /**
   * Members that left since the last call are remembered for REMOVED_MEMBER_GRACE_MS (then a
   * timer calls updatePeers again, which drops them); returns the ones still within it.
   */
  private leavingPeers(membership: MembershipState): Map<string, { addrs: readonly string[]; untilMs: number }> {
    const now = this.deps.clock.monotonicMs();
    const current = new Map(membership.members.map((m) => [m.peerId, m.p2pAddrs]));
    for (const [peerId, addrs] of this.lastMembers)
      if (!current.has(peerId)) this.leaving.set(peerId, { addrs, untilMs: now + REMOVED_MEMBER_GRACE_MS });
    this.lastMembers = current;
    for (const [peerId, l] of this.leaving) if (l.untilMs <= now || current.has(peerId)) this.leaving.delete(peerId);
    if (this.leaving.size > 0 && this.leavingTimer === undefined)
      this.leavingTimer = this.deps.clock.setTimeout(() => {
        this.leavingTimer = undefined;
        this.updatePeers();
      }, REMOVED_MEMBER_GRACE_MS);
    return this.leaving;
  }

  /** Identifies every peer connected now (once this node has a raft id). */
  identifyConnected(): void {
    for (const peer of this.deps.transport.connectedPeers()) void this.identify(peer);
  }

  /**
   * Exchanges (raft id, incarnation) with a peer. A member that lost its data directory comes back
   * with a new incarnation and an empty log: letting it vote could elect two leaders in one term
   * (it forgot its vote). Peers refuse it, and it stops itself once a peer says so.
   */
  async identify(peerId: string): Promise<void> {
    const self = this.deps.self();
    if (self === 0 || this.identInFlight.has(peerId)) return;
    this.identInFlight.add(peerId);
    try {
      const reply = (await this.deps.control.request(
        peerId,
        { type: 'ident', raftId: self, incarnation: this.deps.incarnation },
        IDENT_TIMEOUT_MS,
      )) as unknown;
      if (!isIdentReply(reply)) {
        this.log.warn({ peer: peerId }, 'a peer answered ident with a malformed reply; ignored');
        return;
      }
      // Stopping is obeyed only from a member this node has applied: a peer merely admitted (a
      // joiner being added, a vouched peer, a bootstrap address) cannot make a member stop.
      if (reply.refused !== undefined && findMemberByPeerId(this.deps.membership(), peerId) === undefined) {
        this.log.warn({ peer: peerId }, 'a peer that is not a member says this node is refused; ignored');
        return;
      }
      if (reply.refused !== undefined) {
        this.refusedBy.set(peerId, reply.refused);
        this.checkRefusals(peerId);
        return;
      }
      this.refusedBy.delete(peerId);
      // A node not yet given an id (started with --join) is not a member: nothing to remember.
      if (reply.raftId === 0) return;
      if ((await this.checkIncarnation(peerId, reply.raftId, reply.incarnation)) === undefined)
        this.verified.set(peerId, reply.raftId);
    } catch {
      // Not reachable now; the next connect or Raft message tries again.
    } finally {
      this.identInFlight.delete(peerId);
    }
  }

  /**
   * A member said this node is refused. Obeyed (onRefused) only when this node's own applied log
   * removed it, or a majority of the members say so (refusalQuorum); otherwise logged, and the
   * other members are asked again (at most every REFUSAL_CONFIRM_INTERVAL_MS) to confirm or not.
   */
  private checkRefusals(peerId: string): void {
    const self = this.deps.self();
    const membership = this.deps.membership();
    const localPeerId = this.deps.transport.localPeerId;
    const others = membership.members.filter((m) => m.raftId !== self && m.peerId !== localPeerId);
    for (const p of [...this.refusedBy.keys()]) if (!others.some((m) => m.peerId === p)) this.refusedBy.delete(p); // no longer a member
    const needed = refusalQuorum(membership.members.length, others.length);
    const removedHere = membership.removed.includes(self);
    if (removedHere || this.refusedBy.size >= needed) {
      const reasons = [...this.refusedBy.values()];
      this.deps.onRefused(
        new NodeError(
          NodeErrorCode.Unavailable,
          `refusing to run: ${removedHere ? `this node's log removed raft id ${self}` : reasons[0]} (${this.refusedBy.size} of ${membership.members.length} members refuse it). This node's data directory was lost or replaced while it was a member. Remove it (raft_removePeer ${self}) and add it again under a new id (quorate add-node).`,
          { refusedBy: this.refusedBy.size, members: membership.members.length },
        ),
      );
      return;
    }
    this.warnOnce(
      `refused:${peerId}`,
      { refusedBy: this.refusedBy.size, needed, reason: this.refusedBy.get(peerId) },
      'a member says this node is refused; obeyed only once a majority of the members confirm',
    );
    const now = this.deps.clock.monotonicMs();
    if (this.lastConfirmAskMs !== undefined && now - this.lastConfirmAskMs < REFUSAL_CONFIRM_INTERVAL_MS) return;
    this.lastConfirmAskMs = now;
    const connected = new Set(this.deps.transport.connectedPeers());
    for (const m of others) if (!this.refusedBy.has(m.peerId) && connected.has(m.peerId)) void this.identify(m.peerId);
  }

  /** Members whose latest `ident` answer refused this node (tests, status). */
  refusals(): number {
    return this.refusedBy.size;
  }

  /** The server side of `ident`: checks the peer's claim and identifies it when consistent. */
  async answerIdent(from: string, raftId: number, incarnation: string): Promise<IdentReply> {
    const mine = { raftId: this.deps.self(), incarnation: this.deps.incarnation };
    if (raftId === 0) return mine;
    const refused = await this.checkIncarnation(from, raftId, incarnation);
    if (refused) return { ...mine, refused };
    this.verified.set(from, raftId);
    return mine;
  }

  /** The server side of `members`: only to a member we identified (it admits what we list). */
  answerMembers(from: string): MemberAddress[] {
    if (!this.verified.has(from)) throw new NodeError(NodeErrorCode.Unavailable, 'identify first');
    return this.deps.membership().members.map((m) => ({ raftId: m.raftId, peerId: m.peerId, p2pAddrs: m.p2pAddrs }));
  }

  /**
   * Returns why the claim is refused, or undefined when it is consistent with what we know. An
   * incarnation seen for the first time is stored (synced) before the peer is trusted, so a restart
   * of this node does not forget it.
   */
  private async checkIncarnation(peerId: string, raftId: number, incarnation: string): Promise<string | undefined> {
    if (
      !Number.isSafeInteger(raftId) ||
      raftId <= 0 ||
      typeof incarnation !== 'string' ||
      incarnation.length === 0 ||
      incarnation.length > MAX_INCARNATION_CHARS
    )
      return 'malformed identity';
    const expected = this.raftIdOfPeer(peerId);
    if (expected !== undefined && expected !== raftId) return `peer ${peerId} holds raft id ${expected}, not ${raftId}`;
    const known = this.knownIncarnations.get(raftId);
    if (known !== undefined && known !== incarnation) {
      this.warnOnce(
        `incarnation:${peerId}`,
        { raftId, known, now: incarnation },
        'refused a member whose data directory changed',
      );
      return `member ${this.deps.self()} knew raft id ${raftId} with incarnation ${known}, and now sees ${incarnation}`;
    }
    if (known === undefined) {
      if (this.knownIncarnations.size >= MAX_KNOWN_INCARNATIONS) {
        const oldest = this.knownIncarnations.keys().next().value as number;
        this.knownIncarnations.delete(oldest);
        await this.deps.store.rememberIncarnation(oldest, undefined);
      }
      this.knownIncarnations.set(raftId, incarnation);
      await this.deps.store.rememberIncarnation(raftId, incarnation);
    }
    return undefined;
  }

  /**
   * A node that has had no leader for a while may lag behind a membership change that added the
   * current leader: its allowlist (its applied membership) then refuses the very peer that would
   * catch it up. It asks a member it identified for that member's membership, and admits the
   * members listed there until its own applied membership catches up (members are trusted:
   * Raft here is crash-fault tolerant, and the vouching member was authenticated by Noise).
   */
  async refreshVouched(): Promise<void> {
    const membership = this.deps.membership();
    const leader = this.deps.leader();
    const now = this.deps.clock.monotonicMs();
    if (leader !== 0 && findMember(membership, leader) !== undefined) {
      this.noLeaderSinceMs = undefined;
      if (this.vouched.size > 0) {
        this.vouched = new Map();
        this.updatePeers();
      }
      return;
    }
    this.noLeaderSinceMs ??= now;
    if (now - this.noLeaderSinceMs < VOUCH_AFTER_NO_LEADER_MS) return;
    for (const peerId of this.verified.keys()) {
      let members: MemberAddress[];
      try {
        members = (await this.deps.control.request(
          peerId,
          { type: 'members' },
          CTL_QUERY_TIMEOUT_MS,
        )) as MemberAddress[];
      } catch {
        continue; // ask the next one
      }
      if (!Array.isArray(members)) continue;
      const next = new Map<string, { raftId: number; addrs: readonly string[] }>();
      for (const m of members.slice(0, MAX_VOUCHED_PEERS) as unknown[]) {
        // Every entry is checked as a membership apply would check it: what is vouched for here
        // becomes the transport's peer list, and a bad entry must not reach it.
        if (!isMemberAddress(m)) continue;
        if (m.peerId === this.deps.transport.localPeerId || findMemberByPeerId(this.deps.membership(), m.peerId))
          continue;
        next.set(m.peerId, { raftId: m.raftId, addrs: m.p2pAddrs.slice(0, MAX_VOUCHED_ADDRS) });
      }
      if (next.size > 0)
        this.log.info(
          { via: peerId, vouched: [...next.values()].map((v) => v.raftId) },
          'admitting members not applied here yet, vouched for by a member',
        );
      this.vouched = next;
      this.updatePeers();
      return;
    }
  }

  /**
   * A node started with --join has no raft id until a member adds it: it asks the members it
   * knows (applied membership, then the bootstrap peers) "whoami" every JOIN_POLL_MS, and hands
   * the first id it is given to `joined`, while `waiting()` holds.
   */
  waitForRaftId(waiting: () => boolean, joined: (raftId: number) => Promise<void>): void {
    const ask = async (): Promise<void> => {
      if (!waiting()) return;
      const asked = new Map<string, number>();
      for (const m of this.deps.membership().members) asked.set(m.peerId, m.raftId);
      for (const p of this.deps.bootstrapPeers ?? []) asked.set(p.peerId, p.raftId);
      for (const [peerId, via] of asked) {
        if (peerId === this.deps.transport.localPeerId) continue;
        let reply: unknown;
        try {
          reply = await this.deps.control.request(peerId, { type: 'whoami' }, CTL_QUERY_TIMEOUT_MS);
        } catch {
          continue; // that member is not reachable or does not know us yet: ask the next one
        }
        let whoami = parseWhoamiReply(reply);
        const holder =
          whoami.ok && whoami.raftId !== null ? findMember(this.deps.membership(), whoami.raftId) : undefined;
        if (holder && holder.peerId !== this.deps.transport.localPeerId)
          whoami = { ok: false, reason: `raft id ${holder.raftId} is member ${holder.name}'s here` };
        if (!whoami.ok) {
          this.warnOnce(
            `whoami:${peerId}:${whoami.reason}`,
            { via, reason: whoami.reason },
            'a peer answered whoami malformed; ignored',
          );
          continue;
        }
        if (whoami.raftId !== null && waiting()) {
          this.log.info({ raftId: whoami.raftId, via }, 'joined the cluster');
          try {
            await joined(whoami.raftId);
          } catch (err) {
            // Persisting the id or starting Raft failed: the node cannot run (never an escaped rejection).
            this.deps.onRefused(
              new NodeError(
                NodeErrorCode.Unavailable,
                `joining as raft id ${whoami.raftId} failed: ${err instanceof Error ? err.message : String(err)}`,
                {},
                { cause: err },
              ),
            );
          }
          return;
        }
      }
      this.joinTimer = this.deps.clock.setTimeout(() => void ask(), JOIN_POLL_MS);
    };
    this.log.info(
      { peerId: this.deps.transport.localPeerId },
      'waiting to be added to the cluster (raft_addPeer / raft_addLearner on a member)',
    );
    void ask();
  }

  stopWaiting(): void {
    this.joinTimer?.cancel();
    this.leavingTimer?.cancel();
    this.leavingTimer = undefined;
  }

  warnOnce(peer: string, obj: Record<string, unknown>, msg: string): void {
    if (this.warned.has(peer) || this.warned.size > MAX_WARNED_PEERS) return;
    this.warned.add(peer);
    this.log.warn({ peer, ...obj }, msg);
  }
}

/** An `ident` reply as the protocol defines it (control.ts), with bounded strings. */
export function isIdentReply(v: unknown): v is IdentReply {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const o = v as Record<string, unknown>;
  return (
    Number.isSafeInteger(o.raftId) &&
    (o.raftId as number) >= 0 &&
    (o.raftId as number) <= MAX_RAFT_ID &&
    typeof o.incarnation === 'string' &&
    o.incarnation.length <= MAX_INCARNATION_CHARS &&
    (o.refused === undefined || (typeof o.refused === 'string' && o.refused.length <= MAX_REPLY_STRING_CHARS))
  );
}

/** One entry of a `members` reply: a raft id, a canonical peer id and valid dialable multiaddrs. */
export function isMemberAddress(v: unknown): v is MemberAddress {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return false;
  const o = v as Record<string, unknown>;
  if (!Number.isSafeInteger(o.raftId) || (o.raftId as number) < 1 || (o.raftId as number) > MAX_RAFT_ID) return false;
  if (typeof o.peerId !== 'string' || !Array.isArray(o.p2pAddrs) || o.p2pAddrs.length > MAX_ADDRS_PER_MEMBER)
    return false;
  const peerId = o.peerId;
  try {
    if (peerIdFromString(peerId).toString() !== peerId) return false;
    for (const a of o.p2pAddrs as unknown[])
      if (typeof a !== 'string' || parsePeerAddress(`${a}/p2p/${peerId}`).peerId !== peerId) return false;
  } catch {
    return false;
  }
  return true;
}

/** Bound on the strings of an `ident` reply (an incarnation is a few dozen chars). */
export const MAX_REPLY_STRING_CHARS = 1024;
