// The Raft driver: the node's event loop around the pure consensus core.
//
// Each Ready goes through processReady (node/raft/ready.ts), the one loop body the simulator and
// the benches run too, in the order the core's Ready documents (etcd-io/raft's contract, and the
// order GoQuorum's raft/ driver kept): persist the hard state and entries — fsynced when
// rd.mustSync, i.e. whenever term, vote or the log changed, as etcd's WAL does —, then send the
// messages, then apply the committed entries, then advance. Nothing is acknowledged to a peer
// (a vote, an AppResp) before the state it promises is on disk.
//
// Concurrency model: one loop, one input queue. Ticks, peer messages, proposals and reads are
// queued and fed to the core only between Ready cycles, never while a Ready is being persisted
// or applied. This keeps the core's contract trivially true (no step between ready() and
// advance()), and gives group commit for free: everything that arrived during one fsync is
// stepped at once and persisted by the next one.

import { randomBytes } from 'node:crypto';
import {
  RaftError,
  MessageType,
  assert,
  type ConfChange,
  type Entry,
  type LogIndex,
  type Message,
  type RaftId,
  type RaftNode,
  type Ready,
  type Snapshot,
  type WritableStorage,
} from '../../consensus/index.js';
import type { Clock, TimerHandle } from '../clock.js';
import { NodeError, NodeErrorCode } from '../errors.js';
import { processReady, type ReadyIo } from './ready.js';

/** What the driver applies committed entries to: the chain, for quorate. */
export interface ReplicatedStateMachine {
  /**
   * Applies committed entries in order and resolves once their effects (and the applied index)
   * are durable. Throwing stops the node: an entry that cannot be applied is not skipped.
   */
  apply(entries: readonly Entry[]): Promise<void>;
  /** Installs a snapshot received from the leader (its log record is already persisted). */
  restore(snapshot: Snapshot): Promise<void>;
  /** The state to put in a snapshot at the state machine's current applied index. */
  snapshotData(): Promise<Uint8Array>;
  appliedIndex(): LogIndex;
  /**
   * A MsgSnap arrived (before it is stepped). False: hold it back — the state machine fetches the
   * snapshot's state out of band first (node/snapshot-transfer.ts) and calls onReady() once it is
   * staged, and the message is stepped then. Absent or true: step it at once.
   */
  prepareSnapshot?(snapshot: Snapshot, fromRaftId: number, onReady: () => void): boolean;
}

export interface RaftSender {
  /** Queues a message for a peer. Loss is tolerated by Raft; ordering per peer is preferred. */
  send(message: Message): void;
}

export interface RaftDriverOptions {
  readonly tickMs: number;
  /** Take a snapshot and compact the log after this many applied entries. */
  readonly snapshotEveryEntries: number;
  /** Also take one once the entries applied since the last snapshot hold this many bytes of data (0: no byte bound). */
  readonly logMaxBytes: number;
  /** Entries kept behind a snapshot so slightly-lagging followers catch up without one. */
  readonly compactionRetainEntries: number;
  /** Inputs (ticks, messages, proposals) queued while a Ready is processed; beyond it peer messages are dropped. */
  readonly maxQueuedInputs: number;
  /** How long a linearizable read may wait for its ReadIndex and apply. */
  readonly readTimeoutMs: number;
}

export const DEFAULT_DRIVER_OPTIONS: RaftDriverOptions = {
  tickMs: 100,
  snapshotEveryEntries: 10_000,
  logMaxBytes: 0,
  compactionRetainEntries: 1_000,
  maxQueuedInputs: 50_000,
  readTimeoutMs: 5_000,
};

export interface RaftDriverDeps {
  readonly raft: RaftNode;
  readonly storage: WritableStorage;
  readonly sender: RaftSender;
  readonly stateMachine: ReplicatedStateMachine;
  readonly clock: Clock;
  /** Called after each Ready cycle; the node uses it to refresh role, metrics and waiters. */
  readonly onCycle?: (ready: Ready) => void;
  /** Called once if the loop dies; the process must stop (state on disk is still consistent). */
  readonly onFatal: (err: unknown) => void;
}

type Input =
  | { kind: 'tick' }
  | { kind: 'message'; message: Message }
  | { kind: 'call'; fn: () => void; reject: (err: unknown) => void; resolve: () => void };

interface PendingRead {
  readonly resolve: (index: LogIndex) => void;
  readonly reject: (err: unknown) => void;
  readonly timer: TimerHandle;
  /** Set once the ReadIndex answer arrived; the read is served once applied >= index. */
  index?: LogIndex;
}

export class RaftDriver {
  private readonly options: RaftDriverOptions;
  private readonly deps: RaftDriverDeps;
  private readonly queue: Input[] = [];
  private running = false;
  private stopped = false;
  private fatal: unknown = undefined;
  private ticker: TimerHandle | undefined;
  private idle: Promise<void> = Promise.resolve();
  private readonly reads = new Map<string, PendingRead>();
  private readonly readSalt = randomBytes(8);
  private readCounter = 0;
  private lastSnapshotIndex: LogIndex;
  /** Bytes of entry data applied since the last snapshot (the logMaxBytes trigger). */
  private bytesSinceSnapshot = 0;
  private readonly io: ReadyIo;
  private readonly appliedWaiters: Array<{ index: LogIndex; resolve: () => void }> = [];
  droppedInputs = 0;

  constructor(options: Partial<RaftDriverOptions>, deps: RaftDriverDeps) {
    this.options = { ...DEFAULT_DRIVER_OPTIONS, ...options };
    this.deps = deps;
    this.lastSnapshotIndex = deps.storage.snapshot().metadata.index;
    this.io = this.readyIo(deps);
  }

  start(): void {
    assert(!this.ticker, 'RaftDriver.start called twice');
    this.ticker = this.deps.clock.setInterval(() => this.enqueue({ kind: 'tick' }), this.options.tickMs);
    this.schedule();
  }

  /** Stops ticking and waits for the Ready cycle in progress to finish (so nothing is half-written). */
  async stop(): Promise<void> {
    this.stopped = true;
    this.ticker?.cancel();
    this.ticker = undefined;
    await this.idle;
    const err = new NodeError(NodeErrorCode.Unavailable, 'node is shutting down');
    for (const read of this.reads.values()) {
      read.timer.cancel();
      read.reject(err);
    }
    this.reads.clear();
    for (const input of this.queue.splice(0)) if (input.kind === 'call') input.reject(err);
  }

  /** A message from a peer. Dropped (and counted) when the queue is full: Raft retransmits. */
  step(message: Message): void {
    if (this.stopped) return;
    const sm = this.deps.stateMachine;
    if (message.type === MessageType.Snap && message.snapshot !== undefined && sm.prepareSnapshot !== undefined) {
      // The snapshot's state is fetched before Raft sees the message (etcd: the receiver saves the
      // streamed snapshot, then steps MsgSnap); dropped meanwhile, the leader sends it again.
      if (!sm.prepareSnapshot(message.snapshot, message.from, () => this.step(message))) return;
    }
    if (this.queue.length >= this.options.maxQueuedInputs) {
      this.droppedInputs++;
      return;
    }
    this.enqueue({ kind: 'message', message });
  }

  /**
   * Runs `fn` against the core between Ready cycles, e.g. `raft => raft.propose(data)`. Resolves
   * when fn returned; rejects with what it threw (RaftError for a refused proposal).
   */
  call(fn: (raft: RaftNode) => void): Promise<void> {
    if (this.stopped) return Promise.reject(new NodeError(NodeErrorCode.Unavailable, 'node is shutting down'));
    if (this.fatal !== undefined) return Promise.reject(this.fatal);
    if (this.queue.length >= this.options.maxQueuedInputs) {
      return Promise.reject(
        new NodeError(NodeErrorCode.Unavailable, `raft input queue is full (${this.options.maxQueuedInputs})`),
      );
    }
    return new Promise<void>((resolve, reject) => {
      this.enqueue({ kind: 'call', fn: () => fn(this.deps.raft), resolve, reject });
    });
  }

  propose(data: Uint8Array): Promise<void> {
    return this.call((raft) => raft.propose(data));
  }

  proposeConfChange(cc: ConfChange): Promise<void> {
    return this.call((raft) => raft.proposeConfChange(cc));
  }

  /**
   * A linearizable read barrier (Raft thesis §6.4, ReadIndex): resolves with an index once this
   * node has applied at least the leader's commit index as of the moment the read arrived, with
   * leadership confirmed by a quorum. Serving the read from state after this is linearizable.
   */
  readBarrier(): Promise<LogIndex> {
    const ctx = new Uint8Array(16);
    ctx.set(this.readSalt, 0);
    new DataView(ctx.buffer).setFloat64(8, ++this.readCounter);
    const key = Buffer.from(ctx).toString('hex');
    // ONE promise, handed to the caller at once: the timeout rejects the promise the caller
    // already awaits. (It used to reject a second promise that got its handler only after the
    // ReadIndex input was queued and stepped, so a Ready cycle slower than the timeout made the
    // rejection unhandled and the process died; issue 10 part 6.)
    return new Promise<LogIndex>((resolve, reject) => {
      const timer = this.deps.clock.setTimeout(() => {
        this.reads.delete(key);
        reject(
          new NodeError(
            NodeErrorCode.Timeout,
            `linearizable read timed out after ${this.options.readTimeoutMs} ms (no leader, or no quorum)`,
          ),
        );
      }, this.options.readTimeoutMs);
      this.reads.set(key, { resolve, reject, timer });
      this.call((raft) => raft.readIndex(ctx)).catch((err: unknown) => {
        timer.cancel();
        this.reads.delete(key);
        reject(err);
      });
    });
  }

  /** Resolves once the state machine applied `index` (or the node stops). */
  waitApplied(index: LogIndex): Promise<void> {
    if (this.deps.stateMachine.appliedIndex() >= index) return Promise.resolve();
    return new Promise((resolve) => this.appliedWaiters.push({ index, resolve }));
  }

  private enqueue(input: Input): void {
    this.queue.push(input);
    this.schedule();
  }

  private schedule(): void {
    if (this.running || this.stopped || this.fatal !== undefined) return;
    this.running = true;
    this.idle = this.loop().finally(() => {
      this.running = false;
    });
  }

  private async loop(): Promise<void> {
    try {
      // Yield once so that inputs arriving in the same macrotask are batched into one cycle.
      await new Promise<void>((resolve) => this.deps.clock.setImmediate(resolve));
      for (;;) {
        this.drainInputs();
        if (!this.deps.raft.hasReady()) break;
        await this.cycle(this.deps.raft.ready());
        if (this.stopped) break;
      }
    } catch (err) {
      this.fatal = err;
      this.ticker?.cancel();
      for (const input of this.queue.splice(0)) if (input.kind === 'call') input.reject(err);
      this.deps.onFatal(err);
      return;
    }
    // Inputs that arrived during the last await are picked up by a fresh loop.
    if (this.queue.length > 0 && !this.stopped) {
      this.running = false;
      this.schedule();
    }
  }

  private drainInputs(): void {
    const raft = this.deps.raft;
    const inputs = this.queue.splice(0);
    for (const input of inputs) {
      switch (input.kind) {
        case 'tick':
          raft.tick();
          break;
        case 'message':
          raft.step(input.message);
          break;
        case 'call':
          try {
            input.fn();
            input.resolve();
          } catch (err) {
            if (err instanceof RaftError) input.reject(err);
            else throw err; // a programmer error in the core: crash the loop
          }
          break;
      }
    }
  }

  /** One Ready through the shared loop body (node/raft/ready.ts): persist, send, apply, advance. */
  private async cycle(rd: Ready): Promise<void> {
    await processReady(this.deps.raft, rd, this.io);
  }

  /** The driver's hooks into processReady (built once, in the constructor). */
  private readyIo(deps: RaftDriverDeps): ReadyIo {
    return {
      storage: deps.storage,
      send: (m) => deps.sender.send(m),
      restore: async (snapshot) => {
        await deps.stateMachine.restore(snapshot);
        this.lastSnapshotIndex = snapshot.metadata.index;
        this.bytesSinceSnapshot = 0;
      },
      apply: (entries) => {
        for (const e of entries) this.bytesSinceSnapshot += e.data.length;
        return deps.stateMachine.apply(entries);
      },
      readStates: (readStates) => {
        for (const rs of readStates) {
          const read = this.reads.get(Buffer.from(rs.context).toString('hex'));
          if (read) read.index = rs.index;
        }
      },
      afterAdvance: async (rd) => {
        this.serveWaiters();
        deps.onCycle?.(rd);
        await this.maybeSnapshot();
      },
    };
  }

  private serveWaiters(): void {
    const applied = this.deps.stateMachine.appliedIndex();
    for (const [key, read] of this.reads) {
      if (read.index !== undefined && read.index <= applied) {
        read.timer.cancel();
        this.reads.delete(key);
        read.resolve(read.index);
      }
    }
    for (let i = this.appliedWaiters.length - 1; i >= 0; i--) {
      const w = this.appliedWaiters[i];
      if (w.index <= applied) {
        this.appliedWaiters.splice(i, 1);
        w.resolve();
      }
    }
  }

  private async maybeSnapshot(): Promise<void> {
    const applied = this.deps.stateMachine.appliedIndex();
    const byEntries = applied - this.lastSnapshotIndex >= this.options.snapshotEveryEntries;
    const byBytes = this.options.logMaxBytes > 0 && this.bytesSinceSnapshot >= this.options.logMaxBytes;
    if (applied <= this.lastSnapshotIndex || (!byEntries && !byBytes)) return;
    const data = await this.deps.stateMachine.snapshotData();
    await this.deps.storage.createSnapshot(applied, this.deps.raft.confState(), data);
    const compactTo = applied - this.options.compactionRetainEntries;
    if (compactTo > this.deps.storage.firstIndex()) await this.deps.storage.compact(compactTo as LogIndex);
    this.lastSnapshotIndex = applied;
    this.bytesSinceSnapshot = 0;
  }

  /** Ids of peers as the core currently sees them (voters and learners, both configurations). */
  peers(): RaftId[] {
    const cs = this.deps.raft.confState();
    const self = this.deps.raft.status().id;
    return [...new Set([...cs.voters, ...cs.votersOutgoing, ...cs.learners])].filter((id) => id !== self);
  }
}
