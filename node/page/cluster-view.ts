// The cluster page's data: what one node knows about the whole cluster, rebuilt at most once per
// sampleIntervalMs and handed to every watcher (the page's SSE clients) from that one build — the
// browsers never ask the nodes anything themselves, so N open pages cost the cluster what one does.
//
// Each tick this node samples its own status (a NodeSample: role, term, indexes, head, whom it is
// connected to, private catch-up, circuit breakers), counts the blocks and transactions it applied
// since the last tick (the rate and latency charts), and — only while someone watches — asks every
// other member for its sample over the member's RPC port (GET /page/node.json, served by
// node/rpc/page.ts). A member whose sample has not arrived for more than downAfterMs is shown down.
// Leader and membership changes, members going down and coming back, private catch-up and breaker
// changes go to a bounded timeline.
//
// What comes from a peer is input from another process: it is validated (parseNodeSample) and
// size-bounded before use, and the page renders it as text, never as markup.

import type { Logger } from 'pino';
import type { Clock, TimerHandle } from '../clock.js';

export const CLUSTER_VIEW_DEFAULTS = {
  /** How often this node samples itself and (while watched) its peers, and pushes one view. */
  sampleIntervalMs: 1_000,
  /** A member whose sample is older than this is shown DOWN. */
  downAfterMs: 2_000,
  /** Per peer request; below the interval so one tick's requests are done before the next. */
  peerTimeoutMs: 900,
  /** A peer's answer larger than this is refused (a sample is well under 4 KiB). */
  peerMaxResponseBytes: 64 * 1024,
  /** Seconds of rate and latency history kept (and drawn). */
  historySeconds: 300,
  /** Timeline entries kept; older ones are dropped. */
  maxTimelineEvents: 100,
  /** Members asked per tick at most (a larger membership shows the rest without samples). */
  maxMembers: 64,
} as const;

export type ClusterViewOptions = { -readonly [K in keyof typeof CLUSTER_VIEW_DEFAULTS]?: number };

export type BreakerStateName = 'closed' | 'half-open' | 'open';
export type SampleRole = 'leader' | 'follower' | 'candidate' | 'learner';

/** One node's own status at one moment, as it reports it. */
export interface NodeSample {
  readonly raftId: number;
  readonly name: string;
  readonly role: SampleRole;
  readonly term: number;
  /** The leader's raftId as this node knows it, or null. */
  readonly leader: number | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly head: number;
  readonly voters: readonly number[];
  readonly learners: readonly number[];
  readonly joint: boolean;
  /** Raft ids of the members this node has a live p2p connection to (a partition shows here). */
  readonly connectedTo: readonly number[];
  /** Set while the node replays private transactions after installing a snapshot. */
  readonly privateCatchUp: {
    readonly privateThrough: number;
    readonly blocksLeft: number;
    readonly blocksToFetch: number;
  } | null;
  /** The transaction manager's circuit breaker towards each remote party. */
  readonly breakers: readonly { readonly peer: string; readonly state: BreakerStateName }[];
  /** Why the node cannot make progress on its own, when it cannot. */
  readonly alarm: string | null;
  /** Wall-clock ms when the sample was taken. */
  readonly sampledAtMs: number;
}

/** A member as the replicated membership lists it. */
export interface ViewMemberInfo {
  readonly raftId: number;
  readonly name: string;
  readonly rpcUrl: string;
  readonly membership: 'verifier' | 'learner';
}

/** What the view needs from the node it runs in (node/page/node-source.ts builds it from a QuorateNode). */
export interface PageSource {
  sample(): Promise<NodeSample>;
  members(): readonly ViewMemberInfo[];
  /** Called for every block this node applies; returns the unsubscribe function. */
  onBlock(listener: (block: { readonly txCount: number; readonly timestampMs: number }) => void): () => void;
}

/** Asks the member at rpcUrl for its sample. Throws on any failure. */
export type PeerSampleFetcher = (rpcUrl: string, signal: AbortSignal) => Promise<NodeSample>;

export interface ClusterViewDeps {
  readonly source: PageSource;
  readonly clock: Clock;
  readonly logger: Logger;
  /** Defaults to HTTP GET <rpcUrl>/page/node.json (fetchPeerSample) with peerHeaders. */
  readonly fetchPeer?: PeerSampleFetcher;
  /** Sent with every request to a peer, e.g. `authorization` where the members' RPC needs a token. */
  readonly peerHeaders?: Readonly<Record<string, string>>;
}

/** One point of the charts: what this node applied during one sample interval. */
export interface RatePoint {
  /** End of the interval, wall-clock ms. */
  readonly atMs: number;
  readonly blocksPerSecond: number;
  readonly txPerSecond: number;
  /** Mean of (applied here − minter's stamp) over the interval's blocks; null without blocks. */
  readonly commitLatencyMs: number | null;
}

export type TimelineKind = 'leader' | 'membership' | 'down' | 'up' | 'catch-up' | 'breaker';

export interface TimelineEvent {
  readonly atMs: number;
  readonly kind: TimelineKind;
  readonly text: string;
}

export interface MemberView extends ViewMemberInfo {
  /** Wall-clock ms (this node's clock) when this member's sample last arrived; null: never. */
  readonly lastSeenMs: number | null;
  readonly up: boolean;
  /** The last sample received (kept while down, so the page can show the last known state). */
  readonly sample: NodeSample | null;
  /** Why the last request failed. */
  readonly error: string | null;
}

/** The payload of one `view` event. */
export interface ClusterViewMessage {
  /** This node's raftId and name: the page is "seen from" here. */
  readonly self: { readonly raftId: number; readonly name: string };
  readonly nowMs: number;
  readonly downAfterMs: number;
  readonly sampleIntervalMs: number;
  readonly members: readonly MemberView[];
  /** The newest chart point (the full series comes once, as the `history` event). */
  readonly rate: RatePoint | null;
  readonly timeline: readonly TimelineEvent[];
}

/** The payload of the `history` event sent when a watcher connects. */
export interface ClusterHistoryMessage {
  readonly historySeconds: number;
  readonly points: readonly RatePoint[];
}

export type ViewListener = (view: ClusterViewMessage) => void;

interface PeerState {
  lastSeenMs: number | null;
  sample: NodeSample | null;
  error: string | null;
  inFlight: boolean;
  /** Whether it was up at the last tick (for down/up timeline entries). */
  wasUp: boolean | null;
}

type Resolved = { [K in keyof typeof CLUSTER_VIEW_DEFAULTS]: number };

export class ClusterView {
  private readonly options: Resolved;
  private readonly source: PageSource;
  private readonly clock: Clock;
  private readonly log: Logger;
  private readonly fetchPeer: PeerSampleFetcher;
  private readonly watchers = new Set<ViewListener>();
  private readonly peers = new Map<number, PeerState>();
  /** Ring of chart points, oldest first; at most historySeconds / interval. */
  private readonly points: RatePoint[] = [];
  private readonly timeline: TimelineEvent[] = [];
  private timer: TimerHandle | null = null;
  private unsubscribeBlocks: (() => void) | null = null;
  private ticking = false;
  private lastView: ClusterViewMessage | null = null;
  private lastTickAtMs: number;
  // Blocks applied since the last tick.
  private blocks = 0;
  private txs = 0;
  private latencySumMs = 0;
  // What the last tick saw, to notice changes for the timeline.
  private lastLeader: number | null | undefined = undefined;
  private lastMembers: Map<number, string> | null = null;
  private lastCatchUp = false;
  private lastBreakers = new Map<string, BreakerStateName>();

  constructor(options: ClusterViewOptions, deps: ClusterViewDeps) {
    const merged = { ...CLUSTER_VIEW_DEFAULTS, ...stripUndefined(options) } as Resolved;
    for (const [k, v] of Object.entries(merged)) {
      if (!(Number.isInteger(v) && v > 0)) throw new RangeError(`ClusterView option ${k} must be a positive integer`);
    }
    this.options = merged;
    this.source = deps.source;
    this.clock = deps.clock;
    this.log = deps.logger;
    this.fetchPeer =
      deps.fetchPeer ??
      ((url, signal) =>
        fetchPeerSample(url, signal, { maxResponseBytes: this.options.peerMaxResponseBytes }, deps.peerHeaders));
    this.lastTickAtMs = this.clock.monotonicMs();
  }

  get downAfterMs(): number {
    return this.options.downAfterMs;
  }

  /** Starts counting blocks and sampling once per interval. */
  start(): void {
    if (this.timer) return;
    this.unsubscribeBlocks = this.source.onBlock((b) => {
      this.blocks += 1;
      this.txs += b.txCount;
      this.latencySumMs += Math.max(0, this.clock.wallMs() - b.timestampMs);
    });
    this.lastTickAtMs = this.clock.monotonicMs();
    this.timer = this.clock.setInterval(() => void this.tick(), this.options.sampleIntervalMs);
  }

  stop(): void {
    this.timer?.cancel();
    this.timer = null;
    this.unsubscribeBlocks?.();
    this.unsubscribeBlocks = null;
    this.watchers.clear();
  }

  /** This node's own sample, now (what peers fetch). */
  localSample(): Promise<NodeSample> {
    return this.source.sample();
  }

  /** Registers a watcher; it gets every view from the next tick on. Peers are asked only while someone watches. */
  watch(listener: ViewListener): () => void {
    this.watchers.add(listener);
    return () => this.watchers.delete(listener);
  }

  get watcherCount(): number {
    return this.watchers.size;
  }

  /** The last view built, if any (sent at once to a watcher that connects). */
  latest(): ClusterViewMessage | null {
    return this.lastView;
  }

  history(): ClusterHistoryMessage {
    return { historySeconds: this.options.historySeconds, points: [...this.points] };
  }

  /**
   * One sampling round: local sample, chart point, peers (while watched), timeline, then one view
   * to every watcher. A round still running when the timer fires again is not overlapped: that
   * tick is skipped (the view is late, never doubled).
   */
  async tick(): Promise<void> {
    if (this.ticking) return;
    this.ticking = true;
    try {
      const local = await this.source.sample();
      this.pushPoint(this.clock.wallMs());
      const members = this.source.members().slice(0, this.options.maxMembers);
      this.forgetRemoved(members);
      if (this.watchers.size > 0) await this.askPeers(members, local.raftId);
      // After the peers answered: every lastSeenMs of this view is at or before nowMs.
      const nowMs = this.clock.wallMs();
      this.noteLocalChanges(local, members, nowMs);
      const memberViews = this.memberViews(local, members, nowMs);
      this.noteUpDown(memberViews, local.raftId, nowMs);
      const view: ClusterViewMessage = {
        self: { raftId: local.raftId, name: local.name },
        nowMs,
        downAfterMs: this.options.downAfterMs,
        sampleIntervalMs: this.options.sampleIntervalMs,
        members: memberViews,
        rate: this.points.at(-1) ?? null,
        timeline: [...this.timeline],
      };
      this.lastView = view;
      for (const w of [...this.watchers]) {
        try {
          w(view);
        } catch (err) {
          this.log.error({ err }, 'cluster page watcher failed');
        }
      }
    } catch (err) {
      this.log.warn({ err }, 'cluster page sample failed');
    } finally {
      this.ticking = false;
    }
  }

  private pushPoint(nowMs: number): void {
    const mono = this.clock.monotonicMs();
    const seconds = Math.max(0.001, (mono - this.lastTickAtMs) / 1000);
    this.lastTickAtMs = mono;
    this.points.push({
      atMs: nowMs,
      blocksPerSecond: round2(this.blocks / seconds),
      txPerSecond: round2(this.txs / seconds),
      commitLatencyMs: this.blocks > 0 ? Math.round(this.latencySumMs / this.blocks) : null,
    });
    this.blocks = 0;
    this.txs = 0;
    this.latencySumMs = 0;
    const maxPoints = Math.ceil((this.options.historySeconds * 1000) / this.options.sampleIntervalMs);
    if (this.points.length > maxPoints) this.points.splice(0, this.points.length - maxPoints);
  }

  private forgetRemoved(members: readonly ViewMemberInfo[]): void {
    const ids = new Set(members.map((m) => m.raftId));
    for (const id of this.peers.keys()) if (!ids.has(id)) this.peers.delete(id);
  }

  /** Asks every other member at once; each request is bounded by peerTimeoutMs, one in flight per member. */
  private async askPeers(members: readonly ViewMemberInfo[], selfId: number): Promise<void> {
    await Promise.all(
      members
        .filter((m) => m.raftId !== selfId)
        .map(async (m) => {
          const state = this.peerState(m.raftId);
          if (state.inFlight || m.rpcUrl === '') return;
          state.inFlight = true;
          const controller = new AbortController();
          const timer = this.clock.setTimeout(
            () => controller.abort(new Error(`no answer within ${this.options.peerTimeoutMs} ms`)),
            this.options.peerTimeoutMs,
          );
          try {
            const sample = await this.fetchPeer(m.rpcUrl, controller.signal);
            if (sample.raftId !== m.raftId) throw new Error(`answered as raftId ${sample.raftId}`);
            state.sample = sample;
            state.lastSeenMs = this.clock.wallMs();
            state.error = null;
          } catch (err) {
            state.error = describeError(controller.signal.aborted ? controller.signal.reason : err);
          } finally {
            timer.cancel();
            state.inFlight = false;
          }
        }),
    );
  }

  private peerState(raftId: number): PeerState {
    let s = this.peers.get(raftId);
    if (!s) {
      s = { lastSeenMs: null, sample: null, error: null, inFlight: false, wasUp: null };
      this.peers.set(raftId, s);
    }
    return s;
  }

  /** The members as the page shows them: up while their sample is at most downAfterMs old. */
  private memberViews(local: NodeSample, members: readonly ViewMemberInfo[], nowMs: number): MemberView[] {
    return members.map((m) => {
      if (m.raftId === local.raftId) return { ...m, lastSeenMs: nowMs, up: true, sample: local, error: null };
      const s = this.peerState(m.raftId);
      const up = s.lastSeenMs !== null && nowMs - s.lastSeenMs <= this.options.downAfterMs;
      return { ...m, lastSeenMs: s.lastSeenMs, up, sample: s.sample, error: s.error };
    });
  }

  /** Members going down or coming back, as timeline entries. Only while watched: unwatched, peers are not asked. */
  private noteUpDown(views: readonly MemberView[], selfId: number, nowMs: number): void {
    const watched = this.watchers.size > 0;
    for (const m of views) {
      if (m.raftId === selfId) continue;
      const s = this.peerState(m.raftId);
      if (watched && s.wasUp !== null && s.wasUp !== m.up) {
        this.addEvent(
          nowMs,
          m.up ? 'up' : 'down',
          m.up ? `${m.name} is back` : `${m.name} is down (${m.error ?? 'no answer'})`,
        );
      }
      s.wasUp = watched ? m.up : null;
    }
  }

  /** Timeline entries from this node's own view: leader, membership, private catch-up, breakers. */
  private noteLocalChanges(local: NodeSample, members: readonly ViewMemberInfo[], nowMs: number): void {
    const nameOf = (id: number): string => members.find((m) => m.raftId === id)?.name ?? `raft id ${id}`;
    if (this.lastLeader === undefined || local.leader !== this.lastLeader) {
      this.addEvent(
        nowMs,
        'leader',
        local.leader === null ? `no leader (term ${local.term})` : `${nameOf(local.leader)} leads (term ${local.term})`,
      );
      this.lastLeader = local.leader;
    }
    const now = new Map(members.map((m) => [m.raftId, m.membership]));
    if (this.lastMembers) {
      for (const [id, role] of now) {
        const before = this.lastMembers.get(id);
        if (before === undefined) this.addEvent(nowMs, 'membership', `${nameOf(id)} joined as ${role}`);
        else if (before !== role) this.addEvent(nowMs, 'membership', `${nameOf(id)} is now a ${role}`);
      }
      for (const id of this.lastMembers.keys()) {
        if (!now.has(id)) this.addEvent(nowMs, 'membership', `raft id ${id} left the cluster`);
      }
    } else {
      this.addEvent(nowMs, 'membership', `${members.length} members: ${members.map((m) => m.name).join(', ')}`);
    }
    this.lastMembers = now;
    const catchingUp = local.privateCatchUp !== null;
    if (catchingUp !== this.lastCatchUp) {
      this.addEvent(
        nowMs,
        'catch-up',
        catchingUp
          ? `private catch-up started: ${local.privateCatchUp?.blocksLeft ?? 0} blocks to replay`
          : 'private catch-up done',
      );
      this.lastCatchUp = catchingUp;
    }
    const breakers = new Map(local.breakers.map((b) => [b.peer, b.state]));
    for (const [peer, state] of breakers) {
      if ((this.lastBreakers.get(peer) ?? 'closed') !== state) {
        this.addEvent(nowMs, 'breaker', `circuit breaker to ${peer}: ${state}`);
      }
    }
    this.lastBreakers = breakers;
  }

  private addEvent(atMs: number, kind: TimelineKind, text: string): void {
    this.timeline.push({ atMs, kind, text });
    if (this.timeline.length > this.options.maxTimelineEvents) {
      this.timeline.splice(0, this.timeline.length - this.options.maxTimelineEvents);
    }
  }
}

/** GET <rpcUrl>/page/node.json, with a bounded body, validated. */
export async function fetchPeerSample(
  rpcUrl: string,
  signal: AbortSignal,
  limits: { maxResponseBytes: number },
  headers: Readonly<Record<string, string>> = {},
): Promise<NodeSample> {
  const res = await fetch(new URL('/page/node.json', rpcUrl), { signal, headers: { ...headers } });
  if (!res.ok) {
    await res.body?.cancel();
    throw new Error(`HTTP ${res.status}`);
  }
  const text = await readBounded(res, limits.maxResponseBytes);
  return parseNodeSample(JSON.parse(text) as unknown);
}

async function readBounded(res: Response, maxBytes: number): Promise<string> {
  if (!res.body) return '';
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let bytes = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    bytes += value.byteLength;
    if (bytes > maxBytes) {
      await reader.cancel();
      throw new Error(`answer over ${maxBytes} bytes`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

const ROLES: ReadonlySet<string> = new Set(['leader', 'follower', 'candidate', 'learner']);
const BREAKER_STATES: ReadonlySet<string> = new Set(['closed', 'half-open', 'open']);
/** Bounds on what a peer's sample may hold (a member list of a cluster, a breaker per party). */
const MAX_SAMPLE_LIST = 256;
const MAX_SAMPLE_TEXT = 256;

/** A peer's sample, checked field by field; throws on anything else. */
export function parseNodeSample(v: unknown): NodeSample {
  const o = obj(v, 'sample');
  const catchUp = o.privateCatchUp === null ? null : obj(o.privateCatchUp, 'privateCatchUp');
  const breakers = list(o.breakers, 'breakers').map((b) => {
    const x = obj(b, 'breaker');
    const state = text(x.state, 'breaker.state');
    if (!BREAKER_STATES.has(state)) throw new Error(`bad breaker state ${JSON.stringify(state)}`);
    return { peer: text(x.peer, 'breaker.peer'), state: state as BreakerStateName };
  });
  const role = text(o.role, 'role');
  if (!ROLES.has(role)) throw new Error(`bad role ${JSON.stringify(role)}`);
  return {
    raftId: int(o.raftId, 'raftId'),
    name: text(o.name, 'name'),
    role: role as SampleRole,
    term: int(o.term, 'term'),
    leader: o.leader === null ? null : int(o.leader, 'leader'),
    commitIndex: int(o.commitIndex, 'commitIndex'),
    appliedIndex: int(o.appliedIndex, 'appliedIndex'),
    head: int(o.head, 'head'),
    voters: list(o.voters, 'voters').map((x) => int(x, 'voters[]')),
    learners: list(o.learners, 'learners').map((x) => int(x, 'learners[]')),
    joint: bool(o.joint, 'joint'),
    connectedTo: list(o.connectedTo, 'connectedTo').map((x) => int(x, 'connectedTo[]')),
    privateCatchUp: catchUp && {
      privateThrough: int(catchUp.privateThrough, 'privateThrough'),
      blocksLeft: int(catchUp.blocksLeft, 'blocksLeft'),
      blocksToFetch: int(catchUp.blocksToFetch, 'blocksToFetch'),
    },
    breakers,
    alarm: o.alarm === null ? null : text(o.alarm, 'alarm'),
    sampledAtMs: int(o.sampledAtMs, 'sampledAtMs'),
  };
}

function obj(v: unknown, what: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error(`${what} must be an object`);
  return v as Record<string, unknown>;
}
function list(v: unknown, what: string): unknown[] {
  if (!Array.isArray(v) || v.length > MAX_SAMPLE_LIST)
    throw new Error(`${what} must be a list of <= ${MAX_SAMPLE_LIST}`);
  return v;
}
function int(v: unknown, what: string): number {
  if (!Number.isSafeInteger(v) || (v as number) < 0) throw new Error(`${what} must be a non-negative integer`);
  return v as number;
}
function text(v: unknown, what: string): string {
  if (typeof v !== 'string' || v.length > MAX_SAMPLE_TEXT)
    throw new Error(`${what} must be a string of <= ${MAX_SAMPLE_TEXT}`);
  return v;
}
function bool(v: unknown, what: string): boolean {
  if (typeof v !== 'boolean') throw new Error(`${what} must be a boolean`);
  return v;
}

function describeError(err: unknown): string {
  if (err instanceof Error) {
    const code = (err.cause as { code?: unknown } | undefined)?.code;
    return typeof code === 'string' ? `unreachable (${code})` : err.message;
  }
  return String(err);
}

function round2(x: number): number {
  return Math.round(x * 100) / 100;
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as Partial<T>;
}
