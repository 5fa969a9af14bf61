// An in-process network of RaftNodes for the scenario tests (in the manner of etcd-io/raft's test
// network): every node has its own MemoryStorage and a tiny application (the list of applied
// entries); each Ready is persisted to the node's storage BEFORE its messages are released, as the
// Ready contract requires. Faults: cut(a,b), isolate(a), drop(rate), duplicate(rate), reorder,
// a message filter, crash/restart. All randomness comes from one SeededRng.

import { MemoryStorage } from '../../consensus/memory-storage.js';
import { processReadySync } from '../../node/raft/ready.js';
import {
  bootstrapSnapshot,
  EntryType,
  MessageType,
  RaftNode,
  Role,
  SeededRng,
  type ConfState,
  type Entry,
  type LogIndex,
  type Message,
  type Raft,
  type RaftConfig,
  type RaftConfigInput,
  type RaftId,
  type ReadState,
  type Term,
} from '../../consensus/index.js';

export const id = (n: number): RaftId => n as RaftId;
export const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
export const text = (b: Uint8Array): string => new TextDecoder().decode(b);

/** What the toy application applied: normal entries with data, in order. */
export interface AppliedEntry {
  readonly index: LogIndex;
  readonly term: Term;
  readonly data: string;
}

export interface AppState {
  applied: AppliedEntry[];
  /** Index of the last entry (or snapshot) applied. */
  appliedIndex: LogIndex;
  confState: ConfState;
}

export type RaftOverrides = Partial<Omit<RaftConfig, 'id' | 'storage' | 'rng'>>;

export interface NetworkOptions {
  readonly voters: number[];
  readonly learners?: number[];
  readonly seed?: number;
  readonly config?: RaftOverrides;
  /** Per-node overrides (e.g. a broken Raft variant). */
  readonly createRaft?: (config: RaftConfig) => Raft;
  /** Nodes that start with an empty configuration (they join later). */
  readonly joiners?: number[];
  /** A node's initial storage (default: the bootstrap snapshot at index 1). */
  readonly storage?: (nodeId: number) => MemoryStorage | undefined;
}

export class Network {
  readonly rng: SeededRng;
  readonly nodes = new Map<RaftId, RaftNode>();
  readonly storages = new Map<RaftId, MemoryStorage>();
  readonly apps = new Map<RaftId, AppState>();
  readonly readStates = new Map<RaftId, ReadState[]>();
  /** Every message handed out by a Ready, in order (for assertions about what was sent). */
  readonly sent: Message[] = [];
  /** Messages in flight. */
  queue: Message[] = [];
  private readonly cuts = new Set<string>();
  private dropRate = 0;
  private dupRate = 0;
  reorder = false;
  /** stabilize() fails after delivering this many messages (a livelock, in a correct core). */
  quiesceLimit = 100_000;
  /** On send: false drops the message, true keeps it, a Message replaces it (rewriting in flight). */
  filter: ((m: Message) => boolean | Message) | undefined;
  private readonly config: RaftOverrides;
  private readonly createRaft?: (config: RaftConfig) => Raft;
  private restarts = 0;
  /** Called for each message delivered to a live node while logDeliveries is set (transcripts). */
  onDeliver: ((m: Message) => void) | undefined;
  logDeliveries = false;
  /** Called after each Ready was persisted (before its messages are sent). */
  onPersist: ((nodeId: RaftId) => void) | undefined;
  /** Probability that a node crashes right after persisting a Ready, before sending or applying it. */
  crashAfterPersistRate = 0;

  constructor(options: NetworkOptions) {
    this.rng = new SeededRng(options.seed ?? 1);
    this.config = options.config ?? {};
    this.createRaft = options.createRaft;
    const snapshot = bootstrapSnapshot(options.voters.map(id), (options.learners ?? []).map(id));
    const all = [...options.voters, ...(options.learners ?? [])];
    for (const n of all) {
      const storage = options.storage?.(n) ?? new MemoryStorage({ snapshot });
      this.addNode(id(n), storage, storage.initialState().confState, (storage.firstIndex() - 1) as LogIndex);
    }
    for (const n of options.joiners ?? []) {
      const empty: ConfState = { voters: [], votersOutgoing: [], learners: [], learnersNext: [], autoLeave: false };
      this.addNode(id(n), new MemoryStorage(), empty);
    }
  }

  /** Adds a node with the given storage (a fresh one, a copy, or a wiped one). */
  addNode(
    nodeId: RaftId,
    storage: MemoryStorage,
    confState: ConfState,
    appliedIndex = 0 as LogIndex,
    extra: RaftOverrides = {},
  ): RaftNode {
    this.storages.set(nodeId, storage);
    if (!this.apps.has(nodeId)) this.apps.set(nodeId, { applied: [], appliedIndex, confState });
    if (!this.readStates.has(nodeId)) this.readStates.set(nodeId, []);
    const cfg: RaftConfigInput = {
      id: nodeId,
      storage,
      rng: new SeededRng(this.rng.nextU32() ^ (nodeId * 7919) ^ this.restarts),
      electionTicks: 10,
      heartbeatTicks: 1,
      ...this.config,
      ...extra,
      appliedIndex,
    };
    const node = new RaftNode(cfg, { createRaft: this.createRaft });
    this.nodes.set(nodeId, node);
    return node;
  }

  node(n: number): RaftNode {
    const node = this.nodes.get(id(n));
    if (!node) throw new Error(`node ${n} is down or unknown`);
    return node;
  }

  ids(): RaftId[] {
    return [...this.nodes.keys()].sort((a, b) => a - b);
  }

  // ---------------------------------------------------------------- faults

  private key(a: RaftId, b: RaftId): string {
    return a < b ? `${a}-${b}` : `${b}-${a}`;
  }

  cut(a: number, b: number): void {
    this.cuts.add(this.key(id(a), id(b)));
  }

  isolate(a: number): void {
    for (const b of this.allIds()) if (b !== a) this.cut(a, b);
  }

  drop(rate: number): void {
    this.dropRate = rate;
  }

  duplicate(rate: number): void {
    this.dupRate = rate;
  }

  /** Heals every cut and stops dropping/duplicating. */
  recover(): void {
    this.cuts.clear();
    this.dropRate = 0;
    this.dupRate = 0;
    this.filter = undefined;
  }

  private allIds(): RaftId[] {
    return [...this.storages.keys()];
  }

  crash(n: number): void {
    this.nodes.delete(id(n));
    this.queue = this.queue.filter((m) => m.to !== n);
  }

  /** Restarts a crashed node from what its storage holds (and its durable application state). */
  restart(n: number, extra: RaftOverrides = {}): RaftNode {
    this.restarts++;
    const nodeId = id(n);
    const storage = this.storages.get(nodeId)!;
    const app = this.apps.get(nodeId)!;
    return this.addNode(nodeId, storage, app.confState, app.appliedIndex, extra);
  }

  // ---------------------------------------------------------------- the loop

  send(original: Message): void {
    this.sent.push(original);
    let m = original;
    if (this.cuts.has(this.key(m.from, m.to))) return;
    if (this.filter) {
      const verdict = this.filter(m);
      if (verdict === false) return;
      if (verdict !== true) m = verdict;
    }
    if (this.dropRate > 0 && this.rng.nextFloat() < this.dropRate) return;
    this.queue.push(m);
    if (this.dupRate > 0 && this.rng.nextFloat() < this.dupRate) this.queue.push(m);
  }

  /** Handles every Ready of node n: persist, then send, then apply, then advance. */
  process(n: number | RaftId): void {
    const nodeId = id(n);
    const node = this.nodes.get(nodeId);
    if (!node) return;
    const storage = this.storages.get(nodeId)!;
    const app = this.apps.get(nodeId)!;
    while (node.hasReady()) {
      // The production loop body (node/raft/ready.ts): persist, send, apply, advance.
      const advanced = processReadySync(node, node.ready(), {
        storage,
        afterPersist: () => {
          this.onPersist?.(nodeId);
          if (this.crashAfterPersistRate > 0 && this.rng.nextFloat() < this.crashAfterPersistRate) {
            this.crash(nodeId);
            return false;
          }
          return true;
        },
        send: (m) => this.send(m),
        restore: (snapshot) => {
          app.applied = decodeAppSnapshot(snapshot.data);
          app.appliedIndex = snapshot.metadata.index;
        },
        apply: (entries) => {
          for (const e of entries) {
            if (e.index <= app.appliedIndex) continue;
            if (e.type === EntryType.Normal && e.data.length > 0)
              app.applied.push({ index: e.index, term: e.term, data: text(e.data) });
            app.appliedIndex = e.index;
          }
        },
        readStates: (readStates) => this.readStates.get(nodeId)!.push(...readStates),
        afterAdvance: () => {
          app.confState = node.confState();
        },
      });
      if (!advanced) return;
    }
  }

  processAll(): void {
    for (const n of this.ids()) this.process(n);
  }

  /** Delivers one message in flight (the oldest, or a random one when reordering). */
  deliverOne(): boolean {
    if (this.queue.length === 0) return false;
    const at = this.reorder ? this.rng.nextInt(this.queue.length) : 0;
    const [m] = this.queue.splice(at, 1);
    const node = this.nodes.get(m.to);
    if (!node) return true;
    if (this.logDeliveries) this.onDeliver?.(m);
    node.step(m);
    this.process(m.to);
    return true;
  }

  /** Processes and delivers until nothing is left (bounded, to catch livelocks). */
  stabilize(maxMessages = this.quiesceLimit): void {
    this.processAll();
    let delivered = 0;
    while (this.deliverOne()) {
      if (++delivered > maxMessages) throw new Error(`network did not quiesce after ${maxMessages} messages`);
    }
    this.processAll();
  }

  /** One tick on every live node, then deliver until quiet. */
  tickAll(ticks = 1): void {
    for (let t = 0; t < ticks; t++) {
      for (const n of this.ids()) this.nodes.get(n)!.tick();
      this.stabilize();
    }
  }

  /** Ticks node n alone (e.g. to make it time out), processing its output. */
  tick(n: number, ticks = 1): void {
    for (let t = 0; t < ticks; t++) {
      this.node(n).tick();
      this.process(n);
    }
  }

  campaign(n: number): void {
    this.node(n).campaign();
    this.stabilize();
  }

  propose(n: number, data: string): void {
    this.node(n).propose(bytes(data));
    this.stabilize();
  }

  // ---------------------------------------------------------------- views

  leaders(): RaftId[] {
    return this.ids().filter((n) => this.nodes.get(n)!.status().softState.role === Role.Leader);
  }

  /** The single leader of the highest term among live nodes (throws when there is none). */
  leader(): RaftId {
    let best: RaftId | undefined;
    let bestTerm = -1;
    for (const n of this.leaders()) {
      const t = this.nodes.get(n)!.status().hardState.term;
      if (t > bestTerm) {
        best = n;
        bestTerm = t;
      }
    }
    if (best === undefined) throw new Error('no leader');
    return best;
  }

  role(n: number): Role {
    return this.node(n).status().softState.role;
  }

  term(n: number): number {
    return this.node(n).status().hardState.term;
  }

  commit(n: number): number {
    return this.node(n).status().hardState.commit;
  }

  /** The applied application data of node n. */
  appliedData(n: number): string[] {
    return this.apps.get(id(n))!.applied.map((e) => e.data);
  }

  /** Node n's whole log as held in its storage (from the first index). */
  log(n: number): Entry[] {
    const s = this.storages.get(id(n))!;
    return s.entries(s.firstIndex(), (s.lastIndex() + 1) as LogIndex, Number.MAX_SAFE_INTEGER);
  }

  /** Compacts node n's storage at its applied index, with its application state as the snapshot. */
  snapshotAndCompact(n: number, retainEntries = 0): void {
    const s = this.storages.get(id(n))!;
    const app = this.apps.get(id(n))!;
    s.createSnapshot(app.appliedIndex, app.confState, encodeAppSnapshot(app.applied));
    const snapIndex = s.snapshot().metadata.index;
    const compactTo = snapIndex - retainEntries;
    if (compactTo > s.firstIndex() - 1) s.compact(compactTo as LogIndex);
  }

  /** Messages of a type sent so far. */
  sentOf(type: MessageType): Message[] {
    return this.sent.filter((m) => m.type === type);
  }
}

export function encodeAppSnapshot(applied: readonly AppliedEntry[]): Uint8Array {
  return bytes(JSON.stringify(applied));
}

export function decodeAppSnapshot(b: Uint8Array): AppliedEntry[] {
  if (b.length === 0) return [];
  return JSON.parse(text(b)) as AppliedEntry[];
}

/**
 * Log Matching and State Machine Safety across live nodes: the applied sequences are prefixes of
 * one another (same data at the same index).
 */
export function assertAppliedPrefixes(net: Network): void {
  const seqs = net.ids().map((n) => net.apps.get(n)!.applied);
  for (const a of seqs) {
    for (const b of seqs) {
      const len = Math.min(a.length, b.length);
      for (let i = 0; i < len; i++) {
        if (a[i].index !== b[i].index || a[i].data !== b[i].data || a[i].term !== b[i].term) {
          throw new Error(
            `applied sequences diverge at position ${i}: ${JSON.stringify(a[i])} vs ${JSON.stringify(b[i])}`,
          );
        }
      }
    }
  }
}
