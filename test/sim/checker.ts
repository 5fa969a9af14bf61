// The safety checker of the simulator. It watches every node's durable writes, hard states, role
// changes, applied entries, outgoing messages and read answers, and throws a SimViolation the
// moment one of Raft's guarantees (paper Figure 3) breaks:
//
//   election safety      at most one leader per term, over the whole history (§5.2);
//   log matching         two logs holding an entry with the same index and term are identical up
//                        to it (§5.3) — checked on every persisted entry, through prefix digests;
//   leader completeness  a leader of term T holds every entry committed in a term < T (§5.4);
//   state-machine safety no two nodes apply different entries at one index (§5.4.3), and no two
//                        nodes consider different entries committed at one index;
//   commit monotonicity  a node's commit index never decreases while it runs;
//   durability           a node never sends a promise that its disk does not back: a vote, an
//                        append acknowledgement or a term must be synced before the message
//                        leaves (the crash that follows would otherwise break the promise);
//   linearizable reads   a ReadIndex answer reflects every write committed before the read was
//                        issued (thesis §6.4).
//
// The checks are event-driven: each runs when the state it guards changes, which is strictly
// finer than "after every step" and costs O(1) per event instead of a scan of every log.

import type { Entry, HardState, LogIndex, Message, RaftId, Term } from '../../consensus/types.js';
import { MessageType } from '../../consensus/types.js';
import type { MemoryStorage } from '../../consensus/memory-storage.js';
import { bytesDigest, combine } from './digest.js';

export enum ViolationKind {
  ElectionSafety = 'election-safety',
  LogMatching = 'log-matching',
  LeaderCompleteness = 'leader-completeness',
  StateMachineSafety = 'state-machine-safety',
  CommitRegressed = 'commit-regressed',
  Durability = 'durability',
  LinearizableRead = 'linearizable-read',
  Liveness = 'liveness',
  /** The core threw something other than a documented RaftError (an assertion, a TypeError...). */
  CoreCrash = 'core-crash',
}

/** A broken guarantee, with the values that show it. The simulator adds seed, command and events. */
export class SimViolation extends Error {
  constructor(
    readonly kind: ViolationKind,
    readonly detail: string,
  ) {
    super(`${kind}: ${detail}`);
    this.name = 'SimViolation';
  }
}

/** Digest of one entry's identity and content (term, type, data); the index is mixed in by chains. */
export function entryDigest(e: Entry): number {
  return combine(bytesDigest(e.data), e.term, e.type);
}

/** The next link of a hash chain over entries: chain(i) = H(chain(i-1), i, entryDigest(e_i)). */
export function chainNext(prev: number, e: Entry): number {
  return combine(prev, e.index, entryDigest(e));
}

/** The chain value of the empty prefix (index 0). */
export const CHAIN_ORIGIN = 0;

/** Terms stay far below this in a schedule; it makes (index, term) one number key. */
const TERM_KEY_LIMIT = 1 << 20;

function indexTermKey(index: number, term: number): number {
  return index * TERM_KEY_LIMIT + term;
}

/** What the checker knows of one node's persisted log and progress. */
interface NodeTrack {
  /** Index of digests[0]: the snapshot index the log starts from (digest known from the registry). */
  base: number;
  /** digests[i - base] = prefix digest of the node's log up to index i. */
  digests: number[];
  /** Commit index in this incarnation (resets on restart to the recovered commit). */
  commit: number;
  term: number;
  /** Term of the last entry of the persisted log (the snapshot's term when the log is empty). */
  lastTerm: number;
}

interface PendingRead {
  readonly node: RaftId;
  /** The highest index known committed anywhere when the read was issued. */
  readonly committedBefore: number;
  readonly issuedTick: number;
}

export interface CheckerStats {
  leadersElected: number;
  maxTerm: number;
  committedIndex: number;
  readsIssued: number;
  readsAnswered: number;
  entriesApplied: number;
}

export class SafetyChecker {
  private readonly tracks = new Map<RaftId, NodeTrack>();
  /** Election safety: the one leader of each term ever seen. */
  private readonly leaderOfTerm = new Map<number, RaftId>();
  /** Log matching: prefix digest of the log up to (index, term), as first persisted by anyone. */
  private readonly prefixAt = new Map<number, number>();
  /** committedPrefix[i] = prefix digest of the committed log up to i (NaN: never seen, below a snapshot). */
  private readonly committedPrefix: number[] = [CHAIN_ORIGIN];
  /** committedInTerm[i] = the lowest term of a node seen holding index i as committed. */
  private readonly committedInTerm: number[] = [0];
  /** State-machine safety: appliedChain[i] = application hash chain after applying index i. */
  private readonly appliedChain: number[] = [CHAIN_ORIGIN];
  private readonly reads = new Map<string, PendingRead>();
  readonly stats: CheckerStats = {
    leadersElected: 0,
    maxTerm: 0,
    committedIndex: 0,
    readsIssued: 0,
    readsAnswered: 0,
    entriesApplied: 0,
  };

  /** The highest index known committed anywhere. */
  committedIndex(): number {
    return this.committedPrefix.length - 1;
  }

  // ------------------------------------------------------------------ node lifecycle

  /** The cluster was founded from a bootstrap snapshot at (index, term): every log may start there. */
  onBootstrapSnapshot(index: LogIndex, term: Term): void {
    this.prefixAt.set(indexTermKey(index, term), combine(CHAIN_ORIGIN, index, term));
  }

  /** A node (re)started with this storage: rebuild what the checker knows of its log. */
  onStart(id: RaftId, storage: MemoryStorage): void {
    const snap = storage.snapshot().metadata;
    const base = snap.index;
    const baseDigest = base === 0 ? CHAIN_ORIGIN : this.prefixAt.get(indexTermKey(base, snap.term));
    if (baseDigest === undefined) {
      throw new SimViolation(
        ViolationKind.Durability,
        `node ${id} restarted from a snapshot at (${base}, term ${snap.term}) that no node ever held`,
      );
    }
    const track: NodeTrack = {
      base,
      digests: [baseDigest],
      commit: storage.hardState().commit,
      term: storage.hardState().term,
      lastTerm: snap.term,
    };
    this.tracks.set(id, track);
    const last = storage.lastIndex();
    if (last > base) {
      // Entries between the compaction point and the snapshot were retained; digest from the snapshot on.
      this.onEntriesPersisted(
        id,
        storage.entries((base + 1) as LogIndex, (last + 1) as LogIndex, Number.MAX_SAFE_INTEGER),
      );
    }
    this.checkCommitAgreement(id, track.commit, track.term);
  }

  private track(id: RaftId): NodeTrack {
    const t = this.tracks.get(id);
    if (t === undefined) throw new Error(`checker: node ${id} was never started`);
    return t;
  }

  private digestAt(t: NodeTrack, index: number): number | undefined {
    if (index < t.base || index >= t.base + t.digests.length) return undefined;
    return t.digests[index - t.base];
  }

  lastIndexOf(id: RaftId): number {
    const t = this.track(id);
    return t.base + t.digests.length - 1;
  }

  // ------------------------------------------------------------------ persistence

  /** The node persisted a snapshot received from the leader: its log now starts there. */
  onSnapshotPersisted(id: RaftId, index: LogIndex, term: Term): void {
    const t = this.track(id);
    const digest = this.prefixAt.get(indexTermKey(index, term));
    if (digest === undefined) {
      throw new SimViolation(
        ViolationKind.LogMatching,
        `node ${id} installed a snapshot at (${index}, term ${term}) that no node's log ever held`,
      );
    }
    t.base = index;
    t.digests = [digest];
    t.lastTerm = term;
  }

  /** The node persisted entries (overwriting a conflicting suffix, as storage.save does). */
  onEntriesPersisted(id: RaftId, entries: readonly Entry[]): void {
    if (entries.length === 0) return;
    const t = this.track(id);
    let start = 0;
    // Entries at or below the snapshot index are already covered by it (MemoryStorage skips them).
    while (start < entries.length && entries[start]!.index <= t.base) start++;
    if (start === entries.length) return;
    const first = entries[start]!.index;
    let prev = this.digestAt(t, first - 1);
    if (prev === undefined) {
      throw new SimViolation(
        ViolationKind.LogMatching,
        `node ${id} persisted entry ${first} after a gap (log ends at ${this.lastIndexOf(id)})`,
      );
    }
    t.digests.length = first - t.base;
    for (let k = start; k < entries.length; k++) {
      const e = entries[k]!;
      const d = combine(prev, e.index, entryDigest(e));
      const key = indexTermKey(e.index, e.term);
      const seen = this.prefixAt.get(key);
      if (seen === undefined) this.prefixAt.set(key, d);
      else if (seen !== d) {
        throw new SimViolation(
          ViolationKind.LogMatching,
          `node ${id} holds entry (${e.index}, term ${e.term}) with a log prefix that differs from another node's entry at the same index and term`,
        );
      }
      t.digests.push(d);
      prev = d;
    }
    t.lastTerm = entries[entries.length - 1]!.term;
  }

  /** The node's hard state after persisting a Ready. `nodeTerm` is its current term. */
  onHardState(id: RaftId, hs: HardState): void {
    const t = this.track(id);
    if (hs.commit < t.commit) {
      throw new SimViolation(
        ViolationKind.CommitRegressed,
        `node ${id} commit went from ${t.commit} back to ${hs.commit}`,
      );
    }
    if (hs.term < t.term) {
      throw new SimViolation(ViolationKind.Durability, `node ${id} term went from ${t.term} back to ${hs.term}`);
    }
    t.commit = hs.commit;
    t.term = hs.term;
    if (hs.term > this.stats.maxTerm) this.stats.maxTerm = hs.term;
    this.checkCommitAgreement(id, hs.commit, hs.term);
  }

  /**
   * A node holds its log up to `commit` as committed: it must agree with every other node's view
   * of the committed log, and the global committed log grows from it.
   */
  private checkCommitAgreement(id: RaftId, commit: number, nodeTerm: number): void {
    if (commit === 0) return;
    const t = this.track(id);
    const known = this.committedIndex();
    const mine = this.digestAt(t, commit);
    if (mine === undefined) {
      throw new SimViolation(
        ViolationKind.StateMachineSafety,
        `node ${id} has commit ${commit} outside its log [${t.base}, ${this.lastIndexOf(id)}]`,
      );
    }
    if (commit <= known) {
      const agreed = this.committedPrefix[commit]!;
      if (!Number.isNaN(agreed) && agreed !== mine) {
        throw new SimViolation(
          ViolationKind.StateMachineSafety,
          `node ${id} considers a different log committed up to ${commit} than another node did`,
        );
      }
      if (Number.isNaN(agreed)) this.committedPrefix[commit] = mine;
      if (nodeTerm < this.committedInTerm[commit]!) this.lowerCommitTerm(commit, nodeTerm);
      return;
    }
    // Commit moved beyond everything known: the new committed prefix must extend the old one.
    const atKnown = this.digestAt(t, known);
    if (
      atKnown !== undefined &&
      !Number.isNaN(this.committedPrefix[known]!) &&
      atKnown !== this.committedPrefix[known]
    ) {
      throw new SimViolation(
        ViolationKind.StateMachineSafety,
        `node ${id} committed up to ${commit} on a log that differs at ${known} from the log already committed there`,
      );
    }
    for (let i = known + 1; i <= commit; i++) {
      this.committedPrefix.push(this.digestAt(t, i) ?? Number.NaN);
      this.committedInTerm.push(nodeTerm);
    }
    this.stats.committedIndex = commit;
  }

  private lowerCommitTerm(upTo: number, term: number): void {
    // Whatever is committed up to `upTo` was committed no later than `term`.
    for (let i = upTo; i >= 1 && this.committedInTerm[i]! > term; i--) this.committedInTerm[i] = term;
  }

  // ------------------------------------------------------------------ elections

  /** The node became leader of `term` (checked after it persisted that Ready). */
  onLeader(id: RaftId, term: number): void {
    const other = this.leaderOfTerm.get(term);
    if (other !== undefined && other !== id) {
      throw new SimViolation(ViolationKind.ElectionSafety, `nodes ${other} and ${id} were both leader of term ${term}`);
    }
    if (other === undefined) this.stats.leadersElected++;
    this.leaderOfTerm.set(term, id);
    // Leader completeness: the highest index committed in a term before this one must be in its log.
    let c = this.committedIndex();
    while (c > 0 && this.committedInTerm[c]! >= term) c--;
    if (c === 0) return;
    const t = this.track(id);
    const last = this.lastIndexOf(id);
    if (last < c) {
      throw new SimViolation(
        ViolationKind.LeaderCompleteness,
        `node ${id} became leader of term ${term} with log ending at ${last}, missing entry ${c} committed in term ${this.committedInTerm[c]}`,
      );
    }
    const check = Math.max(c, t.base);
    const mine = this.digestAt(t, check);
    const agreed = this.committedPrefix[check];
    if (check <= this.committedIndex() && agreed !== undefined && !Number.isNaN(agreed) && mine !== agreed) {
      throw new SimViolation(
        ViolationKind.LeaderCompleteness,
        `node ${id} became leader of term ${term} with a log that differs from the committed log at ${check}`,
      );
    }
  }

  /**
   * Commit safety with a fixed set of voters (the schedule made no membership change): a node
   * that lacks a committed entry must not be electable, i.e. a majority of the voters must hold
   * logs strictly more up-to-date than its own (§5.4.1). In correct Raft this always holds: the
   * majority that stores an entry committed in the current term outranks any log without it. It
   * fails the moment an earlier term's entry is committed by counting replicas (Figure 8), before
   * any later leader has to actually overwrite it — the broken variant is caught at commit time.
   */
  checkCommitSafety(voters: readonly RaftId[]): void {
    const c = this.committedIndex();
    const agreed = this.committedPrefix[c];
    if (c === 0 || agreed === undefined || Number.isNaN(agreed)) return;
    const majority = Math.floor(voters.length / 2) + 1;
    for (const v of voters) {
      const tv = this.tracks.get(v);
      if (tv === undefined) continue;
      if (tv.base >= c || this.digestAt(tv, c) === agreed) continue; // holds it (or a snapshot past it)
      const vLast = this.lastIndexOf(v);
      let grants = 0;
      for (const u of voters) {
        const tu = this.tracks.get(u);
        if (tu === undefined) continue;
        const uLast = this.lastIndexOf(u);
        // u grants v its vote (as far as logs go) unless u's log is more up-to-date than v's.
        if (tv.lastTerm > tu.lastTerm || (tv.lastTerm === tu.lastTerm && vLast >= uLast)) grants++;
      }
      if (grants >= majority) {
        throw new SimViolation(
          ViolationKind.LeaderCompleteness,
          `node ${v} lacks committed entry ${c} (committed in term ${this.committedInTerm[c]}) yet ${grants} of ${voters.length} voters ` +
            `would elect it (its log ends at (${vLast}, term ${tv.lastTerm})): a later leader could overwrite a committed entry`,
        );
      }
    }
  }

  // ------------------------------------------------------------------ application

  /** The node applied `e`; `chain` is its application hash chain after it. */
  onApplied(id: RaftId, e: Entry, chain: number): void {
    this.stats.entriesApplied++;
    const i = e.index;
    const t = this.track(id);
    if (i > t.commit) {
      throw new SimViolation(
        ViolationKind.StateMachineSafety,
        `node ${id} applied entry ${i} beyond its commit ${t.commit}`,
      );
    }
    this.checkChain(id, i, chain);
  }

  /** The node's application restored a snapshot at `index` with hash chain `chain`. */
  onSnapshotRestored(id: RaftId, index: number, chain: number): void {
    this.checkChain(id, index, chain);
  }

  private checkChain(id: RaftId, index: number, chain: number): void {
    const known = this.appliedChain[index];
    if (known === undefined) {
      // Indices are applied in order everywhere; fill a gap left by a snapshot with NaN.
      while (this.appliedChain.length < index) this.appliedChain.push(Number.NaN);
      this.appliedChain[index] = chain;
      return;
    }
    if (Number.isNaN(known)) {
      this.appliedChain[index] = chain;
      return;
    }
    if (known !== chain) {
      throw new SimViolation(
        ViolationKind.StateMachineSafety,
        `node ${id} reached a different application state at index ${index} than another node (entries applied in a different order or content)`,
      );
    }
  }

  // ------------------------------------------------------------------ durability of promises

  /**
   * Called for every message a node sends, AFTER the driver persisted the Ready that produced it.
   * `synced` is what the node's disk holds even if it crashes right now.
   */
  onSend(m: Message, synced: MemoryStorage): void {
    switch (m.type) {
      case MessageType.PreVote:
      case MessageType.PreVoteResp:
      case MessageType.Prop:
      case MessageType.ReadIndex:
      case MessageType.TransferLeader:
        return; // Promise nothing durable (PreVote changes no term; the others are forwarded requests).
      default:
        break;
    }
    const hs = synced.hardState();
    if (m.term > hs.term) {
      throw new SimViolation(
        ViolationKind.Durability,
        `node ${m.from} sent ${m.type} at term ${m.term} while its disk holds term ${hs.term}: a crash now would forget the term`,
      );
    }
    if (m.type === MessageType.Vote && (hs.term !== m.term || hs.vote !== m.from)) {
      throw new SimViolation(
        ViolationKind.Durability,
        `node ${m.from} asked for votes in term ${m.term} before its own vote was on disk (disk: term ${hs.term}, vote ${hs.vote})`,
      );
    }
    if (m.type === MessageType.VoteResp && !m.reject && (hs.term !== m.term || hs.vote !== m.to)) {
      throw new SimViolation(
        ViolationKind.Durability,
        `node ${m.from} granted its vote to ${m.to} in term ${m.term} before the vote was on disk (disk: term ${hs.term}, vote ${hs.vote})`,
      );
    }
    if (m.type === MessageType.AppResp && !m.reject && m.index > synced.lastIndex()) {
      throw new SimViolation(
        ViolationKind.Durability,
        `node ${m.from} acknowledged entries up to ${m.index} while its disk holds only up to ${synced.lastIndex()}`,
      );
    }
  }

  // ------------------------------------------------------------------ linearizable reads

  onReadIssued(id: RaftId, context: string, nowTick: number): void {
    this.stats.readsIssued++;
    this.reads.set(context, { node: id, committedBefore: this.committedIndex(), issuedTick: nowTick });
  }

  /**
   * A ReadIndex answer was served at `appliedIndex` (>= readIndex, the driver waited for it).
   * Every write committed before the read was issued must be visible.
   */
  onReadServed(id: RaftId, context: string, readIndex: number, appliedIndex: number): void {
    const r = this.reads.get(context);
    if (r === undefined) return; // A duplicate answer to a read already served: nothing new to check.
    this.reads.delete(context);
    this.stats.readsAnswered++;
    if (readIndex < r.committedBefore || appliedIndex < r.committedBefore) {
      throw new SimViolation(
        ViolationKind.LinearizableRead,
        `read ${context} issued on node ${r.node} at tick ${r.issuedTick}, when index ${r.committedBefore} was committed, ` +
          `was answered on node ${id} with read index ${readIndex} at applied index ${appliedIndex}: a stale read`,
      );
    }
  }
}
