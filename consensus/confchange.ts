// Membership changes (Raft thesis §4.3, joint consensus) in the manner of etcd-io/raft's
// confchange package: a Changer takes the current configuration and a list of single changes and
// returns the next configuration, refusing anything that would break the invariants. Also the
// byte encoding of a ConfChange carried in an EntryType.ConfChange entry.

import { assert, RaftError, RaftErrorCode } from './errors.js';
import { checkTrackerConfig, cloneTrackerConfig, isJoint, Progress, type TrackerConfig } from './progress.js';
import {
  ConfChangeTransition,
  ConfChangeType,
  type ConfChange,
  type ConfChangeSingle,
  type ConfState,
  type LogIndex,
  type RaftId,
  type Snapshot,
  type Term,
} from './types.js';

// ---------------------------------------------------------------------------------------------
// Encoding. Layout (big-endian): version u8 (=1), transition u8, change count u32,
// per change: type u8, nodeId as u32 high + u32 low; then context length u32 and context bytes.
// ---------------------------------------------------------------------------------------------

const ENCODING_VERSION = 1;
/** Upper bound on the single changes in one ConfChange: far above any real membership change. */
export const MAX_CONF_CHANGES = 1024;
/** Upper bound on a ConfChange's opaque context (the node carries addresses and keys in it). */
export const MAX_CONF_CHANGE_CONTEXT_BYTES = 64 * 1024;

export function encodeConfChange(cc: ConfChange): Uint8Array {
  assert(
    cc.changes.length <= MAX_CONF_CHANGES,
    () => `encodeConfChange: ${cc.changes.length} changes > MAX_CONF_CHANGES`,
  );
  assert(
    cc.context.length <= MAX_CONF_CHANGE_CONTEXT_BYTES,
    () => `encodeConfChange: context of ${cc.context.length} bytes > MAX_CONF_CHANGE_CONTEXT_BYTES`,
  );
  const size = 1 + 1 + 4 + cc.changes.length * 9 + 4 + cc.context.length;
  const out = new Uint8Array(size);
  const view = new DataView(out.buffer);
  let p = 0;
  view.setUint8(p, ENCODING_VERSION);
  p += 1;
  view.setUint8(p, cc.transition);
  p += 1;
  view.setUint32(p, cc.changes.length);
  p += 4;
  for (const ch of cc.changes) {
    assert(Number.isSafeInteger(ch.nodeId) && ch.nodeId >= 0, () => `encodeConfChange: bad node id ${ch.nodeId}`);
    view.setUint8(p, ch.type);
    p += 1;
    view.setUint32(p, Math.floor(ch.nodeId / 0x1_0000_0000));
    view.setUint32(p + 4, ch.nodeId >>> 0);
    p += 8;
  }
  view.setUint32(p, cc.context.length);
  p += 4;
  out.set(cc.context, p);
  return out;
}

function invalid(message: string): RaftError {
  return new RaftError(RaftErrorCode.InvalidConfChange, `decodeConfChange: ${message}`);
}

/** Decodes a ConfChange; throws RaftError InvalidConfChange on anything malformed. */
export function decodeConfChange(b: Uint8Array): ConfChange {
  const view = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.length < 10) throw invalid(`${b.length} bytes is too short`);
  let p = 0;
  const version = view.getUint8(p++);
  if (version !== ENCODING_VERSION) throw invalid(`unknown version ${version}`);
  const transition = view.getUint8(p++);
  if (!(transition in ConfChangeTransition) || typeof ConfChangeTransition[transition] !== 'string')
    throw invalid(`unknown transition ${transition}`);
  const count = view.getUint32(p);
  p += 4;
  if (count > MAX_CONF_CHANGES) throw invalid(`${count} changes > ${MAX_CONF_CHANGES}`);
  if (b.length < p + count * 9 + 4) throw invalid('truncated change list');
  const changes: ConfChangeSingle[] = [];
  for (let i = 0; i < count; i++) {
    const type = view.getUint8(p);
    p += 1;
    if (type !== ConfChangeType.AddVoter && type !== ConfChangeType.AddLearner && type !== ConfChangeType.RemoveNode) {
      throw invalid(`unknown change type ${type}`);
    }
    const hi = view.getUint32(p);
    const lo = view.getUint32(p + 4);
    p += 8;
    const id = hi * 0x1_0000_0000 + lo;
    if (!Number.isSafeInteger(id)) throw invalid(`node id beyond 2^53`);
    changes.push({ type, nodeId: id as RaftId });
  }
  const ctxLen = view.getUint32(p);
  p += 4;
  if (ctxLen > MAX_CONF_CHANGE_CONTEXT_BYTES)
    throw invalid(`context of ${ctxLen} bytes > ${MAX_CONF_CHANGE_CONTEXT_BYTES}`);
  if (b.length !== p + ctxLen) throw invalid(`length ${b.length} does not match the encoded context length ${ctxLen}`);
  return { transition: transition as ConfChangeTransition, changes, context: b.slice(p, p + ctxLen) };
}

/** The configuration of a brand-new cluster. */
export function bootstrapConfState(voters: RaftId[], learners: RaftId[] = []): ConfState {
  const v = [...new Set(voters)].sort((a, b) => a - b);
  const l = [...new Set(learners)].sort((a, b) => a - b);
  assert(v.length > 0, 'bootstrapConfState: at least one voter');
  for (const id of [...v, ...l]) assert(Number.isSafeInteger(id) && id >= 1, () => `bootstrapConfState: bad id ${id}`);
  for (const id of l) assert(!v.includes(id), () => `bootstrapConfState: ${id} is both voter and learner`);
  return { voters: v, votersOutgoing: [], learners: l, learnersNext: [], autoLeave: false };
}

/**
 * The first snapshot of a brand-new cluster: index 1, term 1, carrying the initial membership.
 * Bootstrap every initial member's storage with it (rather than with a bare ConfState at index 0)
 * so that the log of a running cluster never starts at index 1: a node that joins later is then
 * always caught up by a snapshot that carries the membership, instead of replaying configuration
 * changes on top of an empty configuration.
 */
export function bootstrapSnapshot(voters: RaftId[], learners: RaftId[] = []): Snapshot {
  return {
    metadata: { index: 1 as LogIndex, term: 1 as Term, confState: bootstrapConfState(voters, learners) },
    data: new Uint8Array(0),
  };
}

/** True when `cc` is the "leave the joint state" change. */
export function isLeaveJoint(cc: ConfChange): boolean {
  return cc.changes.length === 0 && cc.transition === ConfChangeTransition.Auto;
}

/**
 * Whether `cc` enters a joint state, and if so whether it is left automatically (etcd
 * ConfChangeV2.EnterJoint): Auto uses joint consensus only when more than one change is made.
 */
export function entersJoint(cc: ConfChange): { joint: boolean; autoLeave: boolean } {
  if (cc.transition !== ConfChangeTransition.Auto || cc.changes.length > 1) {
    return { joint: true, autoLeave: cc.transition !== ConfChangeTransition.JointExplicit };
  }
  return { joint: false, autoLeave: false };
}

export interface ChangeResult {
  readonly config: TrackerConfig;
  readonly progress: Map<RaftId, Progress>;
}

/**
 * Computes configurations. Operating errors (a change the current configuration does not allow)
 * throw RaftError InvalidConfChange; the leader validates with the same code before proposing,
 * so a committed change that fails here means a corrupted log.
 */
export class Changer {
  constructor(
    private readonly config: TrackerConfig,
    private readonly progress: ReadonlyMap<RaftId, Progress>,
    /** Next index for new peers' Progress: the leader probes them from its last index. */
    private readonly lastIndex: LogIndex,
    private readonly newProgress: (next: LogIndex, match: LogIndex, isLearner: boolean) => Progress,
  ) {}

  /** Applies `cc` (leave joint, enter joint, or a simple change). */
  apply(cc: ConfChange): ChangeResult {
    if (cc.changes.length === 0) {
      if (cc.transition !== ConfChangeTransition.Auto)
        throw refuse('an empty change must use the Auto transition (leave joint)');
      return this.leaveJoint();
    }
    const { joint, autoLeave } = entersJoint(cc);
    return joint ? this.enterJoint(autoLeave, cc.changes) : this.simple(cc.changes);
  }

  /** Thesis §4.3: C(old) -> C(old,new). Outgoing := incoming, then the changes go to incoming. */
  enterJoint(autoLeave: boolean, changes: readonly ConfChangeSingle[]): ChangeResult {
    const { config, progress } = this.copy();
    if (isJoint(config)) throw refuse('config is already joint');
    if (config.incoming.size === 0) throw refuse("can't make a zero-voter config joint");
    config.outgoing = new Set(config.incoming);
    this.applyChanges(config, progress, changes);
    config.autoLeave = autoLeave;
    return this.checked(config, progress);
  }

  /** C(old,new) -> C(new): outgoing is dropped, learnersNext become learners, leftovers go. */
  leaveJoint(): ChangeResult {
    const { config, progress } = this.copy();
    if (!isJoint(config)) throw refuse("can't leave a non-joint config");
    for (const id of config.learnersNext) {
      config.learners.add(id);
      this.cloneOnWrite(progress, id).isLearner = true;
    }
    config.learnersNext = new Set();
    for (const id of config.outgoing) {
      if (!config.incoming.has(id) && !config.learners.has(id)) progress.delete(id);
    }
    config.outgoing = new Set();
    config.autoLeave = false;
    return this.checked(config, progress);
  }

  /** At most one voter added or removed: safe without a joint state (thesis §4.1). */
  simple(changes: readonly ConfChangeSingle[]): ChangeResult {
    const { config, progress } = this.copy();
    if (isJoint(config)) throw refuse("can't apply a simple config change in a joint config");
    const before = new Set(config.incoming);
    this.applyChanges(config, progress, changes);
    let diff = 0;
    for (const id of before) if (!config.incoming.has(id)) diff++;
    for (const id of config.incoming) if (!before.has(id)) diff++;
    if (diff > 1) throw refuse('more than one voter changed without entering joint config');
    return this.checked(config, progress);
  }

  private copy(): { config: TrackerConfig; progress: Map<RaftId, Progress> } {
    // Progress objects are shared, except where a change mutates one (cloned on write below).
    return { config: cloneTrackerConfig(this.config), progress: new Map(this.progress) };
  }

  private checked(config: TrackerConfig, progress: Map<RaftId, Progress>): ChangeResult {
    checkTrackerConfig(config, progress);
    return { config, progress };
  }

  private applyChanges(
    config: TrackerConfig,
    progress: Map<RaftId, Progress>,
    changes: readonly ConfChangeSingle[],
  ): void {
    for (const ch of changes) {
      if (!(Number.isSafeInteger(ch.nodeId) && ch.nodeId >= 1))
        throw refuse(`node id ${ch.nodeId} is not a positive integer`);
      switch (ch.type) {
        case ConfChangeType.AddVoter:
          this.makeVoter(config, progress, ch.nodeId);
          break;
        case ConfChangeType.AddLearner:
          this.makeLearner(config, progress, ch.nodeId);
          break;
        case ConfChangeType.RemoveNode:
          this.remove(config, progress, ch.nodeId);
          break;
        default:
          throw refuse(`unknown change type ${String(ch.type)}`);
      }
    }
    if (config.incoming.size === 0) throw refuse('removed all voters');
  }

  private initProgress(config: TrackerConfig, progress: Map<RaftId, Progress>, id: RaftId, isLearner: boolean): void {
    if (isLearner) config.learners.add(id);
    else config.incoming.add(id);
    // Probe from the last index: a fresh peer rejects and the leader backs off from there.
    // recentActive = true so CheckQuorum does not count a just-added peer as dead at once.
    const pr = this.newProgress(Math.max(this.lastIndex, 1) as LogIndex, 0 as LogIndex, isLearner);
    pr.recentActive = true;
    progress.set(id, pr);
  }

  private cloneOnWrite(progress: Map<RaftId, Progress>, id: RaftId): Progress {
    const pr = progress.get(id)!.clone();
    progress.set(id, pr);
    return pr;
  }

  private makeVoter(config: TrackerConfig, progress: Map<RaftId, Progress>, id: RaftId): void {
    if (!progress.has(id)) {
      this.initProgress(config, progress, id, false);
      return;
    }
    const pr = this.cloneOnWrite(progress, id);
    pr.isLearner = false;
    config.learners.delete(id);
    config.learnersNext.delete(id);
    config.incoming.add(id);
  }

  private makeLearner(config: TrackerConfig, progress: Map<RaftId, Progress>, id: RaftId): void {
    if (!progress.has(id)) {
      this.initProgress(config, progress, id, true);
      return;
    }
    if (progress.get(id)!.isLearner) return;
    // Demote: drop from the incoming voters first, keep the progress.
    const pr = this.cloneOnWrite(progress, id);
    config.incoming.delete(id);
    config.learners.delete(id);
    config.learnersNext.delete(id);
    // A voter of C_old cannot become a learner until C_old is left: it still votes there.
    if (config.outgoing.has(id)) {
      config.learnersNext.add(id);
    } else {
      pr.isLearner = true;
      config.learners.add(id);
    }
  }

  private remove(config: TrackerConfig, progress: Map<RaftId, Progress>, id: RaftId): void {
    if (!progress.has(id)) return;
    config.incoming.delete(id);
    config.learners.delete(id);
    config.learnersNext.delete(id);
    // Still a voter of C_old: keep its progress until the joint state is left.
    if (!config.outgoing.has(id)) progress.delete(id);
  }
}

function refuse(message: string): RaftError {
  return new RaftError(RaftErrorCode.InvalidConfChange, message);
}
