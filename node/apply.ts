// The replicated state machine: what a committed Raft entry does to this node's chain. Owns the
// in-memory chain (ChainState), the applied Raft index, the applied membership, the catch-up
// record's mirror, the lock that serialises every change of the private state, and every WRITE
// to the chain store (blocks, no-ops, membership, snapshots, backfilled blocks, private replays).
// It also owns what a Raft snapshot carries: streamed (node/snapshot-transfer.ts), small metadata
// (membership, head, state root, index) while the public state is fetched out of band and staged
// BEFORE Raft sees the MsgSnap (prepareSnapshot), then installed by restore(); or, without a
// transfer (the applier alone in tests), the older one-buffer framing: u32 little-endian
// membership length ‖ membership ‖ chain snapshot. Public state only: private state is a node's own.
//
// Applying is deterministic: every node applies the same entries alike (a block whose parent is
// not the head is a no-op everywhere). Private payloads are fetched before a block is applied
// (PayloadFetcher), never during it. It may not send anything, mint, or read the Raft core: what
// the rest of the node does about an applied entry is the ApplyHooks' business.

import { EntryType, decodeConfChange, type Entry, type LogIndex, type Snapshot } from '../consensus/index.js';
import {
  ChainState,
  applyBlock,
  applyPrivateBlock,
  decodeBlock,
  exportSnapshot,
  genesisBlock,
  importSnapshot,
  openSnapshotView,
  prefetchBlockState,
  snapshotChunksFromBytes,
  snapshotToBytes,
  type Application,
  type BackfilledBlock,
  type Block,
  type BuiltBlock,
  type CatchUpRecord,
  type ChainStore,
  type GenesisConfig,
  type PrivatePayload,
  type StoreSnapshot,
  type VerifiedTxCache,
} from './chain/index.js';
import { NodeError, NodeErrorCode, nodeAssert } from './errors.js';
import type { Logger } from './log.js';
import {
  applyConfContext,
  checkConfContext,
  decodeMembership,
  encodeMembership,
  type ConfChangeContext,
  type MembershipState,
} from './membership.js';
import type { PayloadFetcher } from './private-payloads.js';
import type { ReplicatedStateMachine } from './raft/driver.js';
import {
  SnapshotTransferError,
  SnapshotTransferErrorCode,
  decodeSnapshotMeta,
  encodeSnapshotMeta,
  isSnapshotMeta,
  type SnapshotFetcher,
  type SnapshotMeta,
  type SnapshotServer,
} from './snapshot-transfer.js';

/** The chain store's extension for the replicated membership, written atomically with the applied index. */
export interface MembershipStore {
  recordMembership(membership: Uint8Array, appliedRaftIndex: number): Promise<void>;
  membership(): Promise<Uint8Array | undefined>;
}

/** What the rest of the node does when an entry is applied (called in log order, never concurrently). */
export interface ApplyHooks {
  /** This node's own block still pending (the minter's): the executor reuses what building it computed. */
  ownBlock(hashHex: string): BuiltBlock | undefined;
  /** A block was committed to the store and folded into the chain. */
  blockApplied(block: Block, raftIndex: number, mine: boolean): void;
  /** A block entry turned out a no-op (its parent is not the head): the minter's speculation broke if mine. */
  blockNoop(mine: boolean): void;
  /** A membership change was applied (ctx is undefined for the core's own leave-joint). */
  membershipChanged(ctx: ConfChangeContext | undefined, raftIndex: number): void;
  /** A snapshot replaced the chain and the membership. */
  snapshotInstalled(): void;
}

export interface ChainApplierDeps {
  readonly store: ChainStore & MembershipStore;
  readonly genesis: GenesisConfig;
  /** The genesis membership (ids 1..N), used when the store has none yet. */
  readonly genesisMembership: MembershipState;
  readonly app: Application;
  readonly verifiedTxs: VerifiedTxCache;
  readonly payloads: PayloadFetcher;
  readonly logger: Logger;
  readonly stopped: () => boolean;
  readonly hooks: ApplyHooks;
  /**
   * Streamed snapshots (node/snapshot-transfer.ts): Snapshot.data is then small metadata and the
   * state travels on the "snapshot" channel. Without it, the older one-buffer form (tests of the
   * applier alone).
   */
  readonly snapshots?: { readonly server: SnapshotServer; readonly fetcher: SnapshotFetcher };
}

export interface PrivateCatchUpView {
  readonly privateThrough: number;
  readonly blocksLeft: number;
  readonly blocksToFetch: number;
}

export class ChainApplier implements ReplicatedStateMachine {
  private chainState!: ChainState;
  private membershipState!: MembershipState;
  // Invariant: applied <= the Raft commit index; the store's appliedIndex() says the same after each write.
  private applied = 0;
  /**
   * Set while this node catches up after installing a peer's snapshot (node/private-catch-up.ts):
   * the mirror of the store's CatchUpRecord. Changed only under the private lock.
   */
  private record: CatchUpRecord | undefined;
  /**
   * Serialises everything that reads or changes the private state or the catch-up record: block
   * application, the catch-up's replay and backfill writes, and snapshot installs.
   */
  private privateLockTail: Promise<unknown> = Promise.resolve();
  private readonly log: Logger;
  /** The streamed snapshot being fetched into the spare slot, before Raft is told about it. */
  private fetching: { key: string; abort: AbortController; done: Promise<void> } | undefined;
  /** A fetched, verified, not yet installed snapshot (installed when Raft hands it to restore()). */
  private staged: { key: string; index: number; imported: StoreSnapshot; handed: boolean } | undefined;
  /** Set while restore() installs: a newer fetch waits for it (both use the store's spare slot). */
  private installing: Promise<void> = Promise.resolve();
  private closed = false;

  constructor(private readonly deps: ChainApplierDeps) {
    this.log = deps.logger;
  }

  /** Initialises an empty store with genesis, then loads the committed chain, membership and catch-up record. */
  async load(): Promise<void> {
    const { store, genesis } = this.deps;
    const { block: genesisBlockValue, state: genesisStateValue } = genesisBlock(genesis);
    await store.init(genesis.chainId, genesisBlockValue, genesisStateValue);
    const stored = await store.membership();
    this.membershipState = stored ? decodeMembership(stored) : this.deps.genesisMembership;
    const head = await store.head();
    nodeAssert(head, 'chain store has no head after init');
    const headBlock = await store.getBlockByNumber(head.number);
    nodeAssert(headBlock, () => `chain store lost its head block ${head.number}`);
    const { state, privateState } = await store.loadState();
    this.chainState = new ChainState({
      chainId: genesis.chainId,
      app: this.deps.app,
      head: headBlock,
      state,
      privateState,
      verifiedTxs: this.deps.verifiedTxs,
      txSignatureCheck: genesis.txSignatureCheck,
    });
    this.registerMemberKeys();
    this.applied = await store.appliedIndex();
    this.record = await store.catchUp();
  }

  /** False until load() finished. */
  get loaded(): boolean {
    return this.chainState !== undefined;
  }
  get chain(): ChainState {
    return this.chainState;
  }
  get membership(): MembershipState {
    return this.membershipState;
  }
  appliedIndex(): LogIndex {
    return this.applied as LogIndex;
  }
  /** The catch-up record (undefined when the private state is at the head). */
  catchUpRecord(): CatchUpRecord | undefined {
    return this.record;
  }

  /** How far the private state lags while catching up after a snapshot (private reads wait meanwhile). */
  privateCatchUp(): PrivateCatchUpView | undefined {
    const r = this.record;
    if (!r) return undefined;
    return {
      privateThrough: r.privateThrough,
      blocksLeft: this.chainState.head.header.number - r.privateThrough,
      blocksToFetch: Math.max(0, r.backfillNext - r.privateThrough),
    };
  }

  private registerMemberKeys(): void {
    for (const m of this.membershipState.members)
      this.chainState.registerMember(m.raftId, Buffer.from(m.signingKey, 'base64'));
  }

  // ------------------------------------------------------------------ entries

  async apply(entries: readonly Entry[]): Promise<void> {
    let unrecordedIndex = 0;
    for (const e of entries) {
      if (e.index <= this.applied) continue; // replayed after a restart: already in the store
      if (e.type === EntryType.ConfChange) {
        await this.applyConfChange(e);
      } else if (e.data.length === 0) {
        unrecordedIndex = e.index; // the leader's no-op: nothing to do but remember the index
        this.applied = e.index;
      } else {
        await this.applyBlockEntry(e);
      }
      if (e.type !== EntryType.Normal || e.data.length > 0) unrecordedIndex = 0;
    }
    if (unrecordedIndex > 0) await this.deps.store.recordNoop(unrecordedIndex);
    // Raft moved past a staged snapshot through its log instead: it will never be installed.
    if (this.staged !== undefined && this.applied >= this.staged.index) this.staged = undefined;
  }

  private async applyBlockEntry(e: Entry): Promise<void> {
    let block: Block;
    try {
      block = decodeBlock(e.data);
    } catch (err) {
      // Every node decodes the same bytes the same way: all skip it alike.
      this.log.warn({ err, index: e.index }, 'undecodable block entry skipped');
      await this.deps.store.recordNoop(e.index);
      this.applied = e.index;
      return;
    }
    // While catching up after a snapshot the private state lags the head: the private part of
    // this block waits for the replay (deferPrivate), so no payload is needed now.
    const payloads = this.record === undefined ? await this.deps.payloads.fetch(block) : undefined;
    await this.withPrivateLock(() => this.applyFetchedBlock(e, block, payloads));
  }

  private async applyFetchedBlock(
    e: Entry,
    block: Block,
    prefetched: Map<string, PrivatePayload> | undefined,
  ): Promise<void> {
    // Private state = the private transactions applied in chain order. While the catch-up replays
    // older blocks into it, a newer block's private part must not go first (a cas or an append
    // depends on what came before; a per-key "newest wins" would be wrong for them): its public
    // part applies now, its private part when the replay reaches it.
    const deferPrivate = this.record !== undefined;
    let payloads = prefetched;
    // The replay finished while this block waited for the lock: its private part is due now.
    if (!deferPrivate && payloads === undefined) payloads = await this.deps.payloads.fetch(block);
    if (this.deps.stopped()) throw new NodeError(NodeErrorCode.Unavailable, 'stopped while fetching private payloads');
    const mine = this.deps.hooks.ownBlock(block.hashHex);
    // All IO before the apply: the keys the block touches are loaded into the state cache, so the
    // synchronous apply below reads memory (the result is the same either way).
    await prefetchBlockState(this.chainState, block, payloads ?? new Map());
    const result = applyBlock(this.chainState, block, payloads ?? new Map(), mine, { deferPrivate });
    if (result.kind === 'applied') {
      await this.deps.store.commitBlock(
        block,
        result.receipts,
        result.stateChanges,
        { entries: result.privateStateChanges, receipts: result.privateReceipts },
        e.index,
      );
      this.chainState.advance(result);
      this.applied = e.index;
      this.deps.hooks.blockApplied(block, e.index, mine !== undefined);
    } else {
      await this.deps.store.recordNoop(e.index);
      this.applied = e.index;
      this.log.info(
        { index: e.index, reason: result.reason, detail: result.detail, mine: mine !== undefined },
        'block entry is a no-op',
      );
      this.deps.hooks.blockNoop(mine !== undefined);
    }
  }

  private async applyConfChange(e: Entry): Promise<void> {
    const cc = decodeConfChange(e.data);
    const checked = checkConfContext(this.membershipState, cc.context);
    if (!checked.ok) {
      // Committed but invalid (a joiner that lied, or a bug): the same no-op on every node, on
      // every replay, never a throw — a throw here would stop every member at every restart. The
      // Raft core applied the change to its configuration anyway, so its id is spent: an operator
      // removes it with raft_removePeer.
      const s = this.membershipState;
      this.membershipState =
        checked.raftId !== undefined ? { ...s, nextRaftId: Math.max(s.nextRaftId, checked.raftId + 1) } : s;
      await this.deps.store.recordMembership(encodeMembership(this.membershipState), e.index);
      this.applied = e.index;
      this.log.error(
        { index: e.index, raftId: checked.raftId, reason: checked.reason },
        'ignored a committed membership change whose context is invalid (remove its raft id with raft_removePeer)',
      );
      this.deps.hooks.membershipChanged(undefined, e.index);
      return;
    }
    const ctx = checked.ctx;
    this.membershipState = applyConfContext(this.membershipState, ctx);
    if (ctx?.member) this.chainState.registerMember(ctx.member.raftId, Buffer.from(ctx.member.signingKey, 'base64'));
    await this.deps.store.recordMembership(encodeMembership(this.membershipState), e.index);
    this.applied = e.index;
    if (ctx) this.log.info({ op: ctx.op, raftId: ctx.raftId, index: e.index }, 'membership change applied');
    this.deps.hooks.membershipChanged(ctx, e.index);
  }

  // ------------------------------------------------------------------ snapshots

  /**
   * The Raft snapshot's data at the applied index. Streamed (deps.snapshots): small metadata —
   * membership, head, state root, index — while a read view of the public state at this point is
   * published for transfers. Else membership + the whole public state in one buffer. Never private state.
   */
  async snapshotData(): Promise<Uint8Array> {
    const t = this.deps.snapshots;
    if (!t)
      return encodeSnapshotData(
        encodeMembership(this.membershipState),
        await snapshotToBytes(exportSnapshot(this.chainState, this.applied)),
      );
    const head = this.chainState.head;
    t.server.publish(openSnapshotView(this.chainState, this.applied));
    return encodeSnapshotMeta({
      appliedRaftIndex: this.applied,
      headNumber: head.header.number,
      headHash: head.hash,
      stateRoot: head.header.stateRoot,
      membership: encodeMembership(this.membershipState),
    });
  }

  /**
   * Called by the driver when a MsgSnap arrives, before Raft sees it (etcd's order: the state is
   * received first, then the message is stepped). True: step it now (the state is staged, or none
   * is needed). False: drop it for now — the state is being fetched in the background; onReady()
   * re-steps it once staged. A newer snapshot supersedes the one being fetched.
   */
  prepareSnapshot(snapshot: Snapshot, fromRaftId: number, onReady: () => void): boolean {
    const t = this.deps.snapshots;
    if (!t || !isSnapshotMeta(snapshot.data) || snapshot.metadata.index <= this.applied) return true;
    let meta: SnapshotMeta;
    try {
      meta = decodeSnapshotMeta(snapshot.data);
    } catch (err) {
      this.log.warn({ err, from: fromRaftId }, 'undecodable snapshot metadata: message dropped');
      return false;
    }
    const key = snapshotKey(meta);
    if (this.staged?.key === key) {
      this.staged.handed = true;
      return true;
    }
    // Raft has been handed a staged snapshot that restore() has not installed yet: a newer one
    // must not clear the spare slot under it (restore would have to fetch the old one again).
    if (this.staged?.handed || this.fetching?.key === key || this.closed) return false;
    this.startFetch(meta, key, fromRaftId, onReady);
    return false;
  }

  private startFetch(meta: SnapshotMeta, key: string, fromRaftId: number | undefined, onReady: () => void): void {
    const t = this.deps.snapshots!;
    const previous = this.fetching;
    previous?.abort.abort();
    this.staged = undefined; // the new import clears the spare slot
    const abort = new AbortController();
    const installing = this.installing;
    const done = (async () => {
      await previous?.done;
      await installing;
      try {
        this.log.info(
          { index: meta.appliedRaftIndex, head: meta.headNumber, from: fromRaftId },
          'fetching a streamed snapshot',
        );
        const imported = await t.fetcher.fetch(meta, fromRaftId, abort.signal);
        if (abort.signal.aborted) return;
        this.staged = { key, index: meta.appliedRaftIndex, imported, handed: false };
        this.log.info(
          { index: meta.appliedRaftIndex, head: meta.headNumber, ...t.fetcher.stats },
          'snapshot fetched and verified; handing it to raft',
        );
        onReady();
      } catch (err) {
        if (!(err instanceof SnapshotTransferError && err.code === SnapshotTransferErrorCode.Aborted))
          this.log.warn({ err, index: meta.appliedRaftIndex }, 'snapshot fetch ended');
      } finally {
        if (this.fetching?.key === key) this.fetching = undefined;
      }
    })();
    this.fetching = { key, abort, done };
  }

  /** Stops a running snapshot fetch (node stop). */
  async closeSnapshots(): Promise<void> {
    this.closed = true;
    const f = this.fetching;
    f?.abort.abort();
    await f?.done;
    await this.deps.snapshots?.server.close();
  }

  /** After a crash between persisting a leader's snapshot and installing it: install it now. */
  async restoreIfBehind(snapshot: Snapshot): Promise<void> {
    if (this.applied < snapshot.metadata.index && snapshot.data.length > 0) await this.restore(snapshot);
  }

  async restore(snapshot: Snapshot): Promise<void> {
    if (snapshot.data.length === 0) return; // the bootstrap snapshot: genesis is already in the store
    if (isSnapshotMeta(snapshot.data)) return this.restoreStreamed(snapshot);
    const parts = decodeSnapshotData(snapshot.data);
    const imported = await importSnapshot(snapshotChunksFromBytes(parts.chain), this.deps.store);
    nodeAssert(
      imported.appliedRaftIndex === snapshot.metadata.index,
      () =>
        `snapshot at raft index ${snapshot.metadata.index} carries chain state of index ${imported.appliedRaftIndex}`,
    );
    await this.install(imported, decodeMembership(parts.membership));
  }

  private async restoreStreamed(snapshot: Snapshot): Promise<void> {
    const meta = decodeSnapshotMeta(snapshot.data);
    nodeAssert(
      meta.appliedRaftIndex === snapshot.metadata.index,
      () => `snapshot at raft index ${snapshot.metadata.index} names chain state of index ${meta.appliedRaftIndex}`,
    );
    const key = snapshotKey(meta);
    if (this.staged?.key !== key) {
      // Raft persisted this snapshot but its state is not staged here: a restart after a crash
      // between the two. Fetch it now (retried until it comes, or the node stops).
      nodeAssert(this.deps.snapshots, 'a streamed snapshot arrived but this node has no snapshot transfer');
      if (this.fetching?.key !== key) this.startFetch(meta, key, undefined, () => undefined);
      await this.fetching?.done;
      if (this.staged?.key !== key)
        throw new NodeError(NodeErrorCode.Unavailable, 'stopped before the snapshot could be fetched');
    }
    const imported = this.staged!.imported;
    this.staged = undefined;
    // A fetch of a newer snapshot started meanwhile waits for this (both use the spare slot).
    let finish!: () => void;
    this.installing = new Promise<void>((resolve) => (finish = resolve));
    try {
      await this.install(imported, decodeMembership(meta.membership));
    } finally {
      finish();
    }
  }

  private async install(imported: StoreSnapshot, membership: MembershipState): Promise<void> {
    const previousHead = this.chainState.head.header.number;
    await this.withPrivateLock(async () => {
      // One batch: the state and the membership of the same index (a crash between two writes
      // would pair the new state with the old membership), and the catch-up record when the
      // snapshot skipped blocks (a crash must not forget that the private state lags).
      await this.deps.store.installSnapshot({ ...imported, membership: encodeMembership(membership) });
      this.membershipState = membership;
      const { state, privateState } = await this.deps.store.loadState();
      this.chainState = this.chainState.reset(imported.head, state, privateState);
      this.record = await this.deps.store.catchUp();
    });
    this.registerMemberKeys();
    this.applied = imported.appliedRaftIndex;
    this.log.info(
      { index: this.applied, head: imported.head.header.number, previousHead, catchUp: this.record },
      'snapshot installed',
    );
    this.deps.hooks.snapshotInstalled();
  }

  // ------------------------------------------------------------------ the catch-up's writes

  /**
   * Stores blocks fetched by the catch-up (possibly none, when they were stored already) and moves
   * the record's backfillNext. False when a snapshot install changed the plan meanwhile (nothing written).
   */
  storeBackfilled(planned: CatchUpRecord, blocks: readonly BackfilledBlock[], backfillNext: number): Promise<boolean> {
    return this.withPrivateLock(async () => {
      if (this.record !== planned) return false;
      await this.deps.store.storeBackfilledBlocks(blocks, backfillNext);
      this.record = { ...planned, backfillNext };
      return true;
    });
  }

  /** The next block the private replay needs and the head, read under the lock; undefined when caught up. */
  replayWindow(): Promise<{ from: number; head: number } | undefined> {
    return this.withPrivateLock(async () =>
      this.record ? { from: this.record.privateThrough + 1, head: this.chainState.head.header.number } : undefined,
    );
  }

  /** Folds the private part of block `from` (fetched payloads) into the private state, in one synced write. */
  replayPrivate(block: Block, payloads: Map<string, PrivatePayload>, from: number): Promise<void> {
    return this.withPrivateLock(async () => {
      const record = this.record;
      // Only the replay moves privateThrough; a snapshot install keeps it.
      nodeAssert(
        record !== undefined && record.privateThrough + 1 === from,
        () =>
          `catch-up: privateThrough moved under the replay (${String(record?.privateThrough)}, expected ${from - 1})`,
      );
      await prefetchBlockState(this.chainState, block, payloads);
      const result = applyPrivateBlock(this.chainState, block, payloads);
      const n = block.header.number;
      const done = n === this.chainState.head.header.number && record.backfillNext <= record.privateThrough;
      await this.deps.store.commitPrivateReplay(
        n,
        { entries: result.privateStateChanges, receipts: result.privateReceipts },
        done,
      );
      this.chainState.advancePrivate(result.privateOverlay);
      this.record = done ? undefined : { ...record, privateThrough: n };
      if (done)
        this.log.info(
          { head: n },
          'caught up after a snapshot: every block is here and the private state is at the head',
        );
    });
  }

  private withPrivateLock<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.privateLockTail.then(fn);
    this.privateLockTail = run.catch(() => undefined);
    return run;
  }
}

function snapshotKey(meta: SnapshotMeta): string {
  return `${meta.appliedRaftIndex}:${Buffer.from(meta.headHash).toString('hex')}`;
}

// Snapshot data framing (the one-buffer form): u32 LITTLE-endian membership length (unlike the chain codec, which is
// big-endian: this framing predates it and is on disk and on the wire, so it stays).
const SNAPSHOT_LENGTH_BYTES = 4;

export function encodeSnapshotData(membership: Uint8Array, chain: Uint8Array): Uint8Array {
  const out = new Uint8Array(SNAPSHOT_LENGTH_BYTES + membership.length + chain.length);
  new DataView(out.buffer).setUint32(0, membership.length, true);
  out.set(membership, SNAPSHOT_LENGTH_BYTES);
  out.set(chain, SNAPSHOT_LENGTH_BYTES + membership.length);
  return out;
}

export function decodeSnapshotData(data: Uint8Array): { membership: Uint8Array; chain: Uint8Array } {
  nodeAssert(data.length >= SNAPSHOT_LENGTH_BYTES, 'snapshot data too short');
  const mlen = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(0, true);
  nodeAssert(SNAPSHOT_LENGTH_BYTES + mlen <= data.length, 'snapshot membership length out of range');
  return {
    membership: data.subarray(SNAPSHOT_LENGTH_BYTES, SNAPSHOT_LENGTH_BYTES + mlen),
    chain: data.subarray(SNAPSHOT_LENGTH_BYTES + mlen),
  };
}
