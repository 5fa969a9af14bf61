// The embedding entry: `startNode(options)` runs one quorate node inside the embedder's own
// process and hands back an `EmbeddedNode` that reads like a library's handle — AbortSignal for
// shutdown, typed errors (NodeError and its codes), `onBlock` and `for await` over committed
// blocks, submit, reads at a tag (including linearizable ones), status and stop.
//
// A thin layer on purpose: the node is built by startNodeProcess (node/process.ts) with real IO,
// exactly as `quorate start` builds it; this file only adapts its surface. The one thing it adds
// is the block iterator, whose memory is bounded (see `blocks`).

import { fromHex, type Application, type Block, type Receipt, type Transaction } from './chain/index.js';
import type { Address, Op } from './chain/index.js';
import { loadConfig, type NodeConfig } from './config.js';
import { toNodeError } from './error-map.js';
import { NodeError, NodeErrorCode } from './errors.js';
import type { Logger } from './log.js';
import { SystemClock, type Clock } from './clock.js';
import { NodeState, type CommittedBlockEvent, type NodeStatus, type QuorateNode } from './node.js';
import { startNodeProcess, type RunningNode } from './process.js';

/** How many committed blocks one `blocks()` iterator keeps in memory for a slow consumer by default. */
export const DEFAULT_BLOCK_BUFFER_BLOCKS = 256;
/** How long `waitForReceipt` waits by default before a Timeout (the outcome is then unknown, not failed). */
export const DEFAULT_RECEIPT_WAIT_MS = 30_000;

export interface StartNodeOptions {
  /** The node's config: the object, or the path of a config.json as `quorate init` writes it. */
  readonly config: NodeConfig | string;
  /**
   * The deterministic state machine (node/chain/app.ts `Application`). Default: the built-in
   * LedgerApp. Every member of a cluster must run the same application, or their state roots diverge.
   */
  readonly app?: Application;
  /** Aborting stops the node cleanly; `stopped` then resolves. Aborted before the start: startNode rejects. */
  readonly signal?: AbortSignal;
  /** The node's logger (pino-compatible; `silentLogger()` for none). Default: JSON lines on stdout at the config's level. */
  readonly logger?: Logger;
  /** Join an existing cluster as a new member (`quorate start --join`) rather than start as a genesis member. */
  readonly join?: boolean;
}

/** Where a read is answered: the latest local state, the state as of a block number, or linearizable. */
export type ReadTag = 'latest' | 'linearizable' | number;

export interface BlockIteratorOptions {
  /** Ends the iteration (the loop exits normally) when aborted. */
  readonly signal?: AbortSignal;
  /** The first block number to yield. Default: the block after the head when `blocks()` is called. */
  readonly from?: number;
  /** At most this many blocks are held for a slow consumer; default DEFAULT_BLOCK_BUFFER_BLOCKS. */
  readonly bufferBlocks?: number;
}

/** A node running in this process. Every failure it reports is a NodeError with a `code`. */
export interface EmbeddedNode {
  /** The node itself, for what this handle does not wrap (membership changes, the chain store). */
  readonly node: QuorateNode;
  /** Where its JSON-RPC server listens. */
  readonly rpcUrl: string;
  /** The accounts whose keys this node holds (they can `send`). */
  readonly accounts: readonly Address[];
  readonly chainId: number;
  /** Resolves once the node has stopped (by stop(), the signal, or a fatal error) with its exit code (0 clean). */
  readonly stopped: Promise<number>;

  status(): NodeStatus;
  /** Called synchronously for each block this node commits, in order. Returns the unsubscribe function. */
  onBlock(listener: (e: CommittedBlockEvent) => void): () => void;
  /**
   * The committed blocks, in order, with no gap, as an async iterator. Memory is bounded: when the
   * consumer falls more than `bufferBlocks` behind, the buffer is dropped and the missed blocks are
   * read back from the chain store as the consumer asks for them, so a slow consumer never loses a
   * block and never slows the node. A block no longer stored (this node was rebuilt from a snapshot)
   * ends the iteration with NodeError NOT_FOUND. Ends normally on the signal or when the node stops.
   */
  blocks(options?: BlockIteratorOptions): AsyncIterableIterator<Block>;

  /** Submits a transaction signed by the client (the object or its canonical bytes). Resolves with its hash once in the leader's pool. */
  submit(tx: Transaction | Uint8Array, signal?: AbortSignal): Promise<string>;
  /** Signs ops with a key this node holds (`accounts`) and submits them. Resolves with the hash. */
  send(
    request: { from: Address; ops: readonly Op[]; privateFor?: readonly string[] },
    signal?: AbortSignal,
  ): Promise<string>;
  /** The receipt of a committed transaction, or undefined if this node has not committed it. */
  receipt(txHash: string): Promise<Receipt | undefined>;
  /** Waits until this node has committed the transaction; NodeError TIMEOUT past `timeoutMs` (the outcome is then unknown). */
  waitForReceipt(txHash: string, options?: { signal?: AbortSignal; timeoutMs?: number }): Promise<Receipt>;

  /** A value written by the application under `key` (LedgerApp: `put`). */
  getValue(key: string, tag?: ReadTag, signal?: AbortSignal): Promise<string | null>;
  getList(key: string, tag?: ReadTag, signal?: AbortSignal): Promise<string[]>;
  getBalance(address: Address, tag?: ReadTag, signal?: AbortSignal): Promise<bigint>;
  getNonce(address: Address, tag?: ReadTag, signal?: AbortSignal): Promise<number>;
  /** A block by number, or the head ('latest'; 'linearizable' = the head after a read barrier). */
  getBlock(tag?: ReadTag, signal?: AbortSignal): Promise<Block | undefined>;
  /** The ReadIndex barrier: after it resolves, local reads reflect every write committed before the call. */
  readBarrier(signal?: AbortSignal): Promise<void>;

  /** Stops the node cleanly (idempotent); resolves when it has stopped. Ends every block iterator. */
  stop(): Promise<void>;
}

/** Starts a node with real IO (LevelDB, libp2p, JSON-RPC, transaction manager) in this process. */
export async function startNode(options: StartNodeOptions): Promise<EmbeddedNode> {
  options.signal?.throwIfAborted();
  const config = typeof options.config === 'string' ? await loadConfig(options.config) : options.config;
  // The node's one clock, shared with this handle's own timers (waitForReceipt).
  const clock = new SystemClock();
  const running = await startNodeProcess(config, {
    join: options.join ?? false,
    clock,
    ...(options.logger ? { logger: options.logger } : {}),
    ...(options.app ? { app: options.app } : {}),
  });
  const embedded = new Embedded(running, clock);
  const signal = options.signal;
  if (signal) {
    if (signal.aborted) {
      // Aborted while starting: stop what was started, and say so.
      await embedded.stop();
      signal.throwIfAborted();
    }
    const onAbort = (): void => void embedded.stop();
    signal.addEventListener('abort', onAbort, { once: true });
    void running.done.then(() => signal.removeEventListener('abort', onAbort));
  }
  return embedded;
}

class Embedded implements EmbeddedNode {
  readonly node: QuorateNode;
  readonly rpcUrl: string;
  readonly stopped: Promise<number>;
  /** Wakes every iterator when the node stops. */
  private readonly stopListeners = new Set<() => void>();
  private hasStopped = false;

  constructor(
    private readonly running: RunningNode,
    private readonly clock: Clock,
  ) {
    this.node = running.node;
    this.rpcUrl = running.rpcUrl;
    this.stopped = running.done.then((code) => {
      this.hasStopped = true;
      for (const l of this.stopListeners) l();
      return code;
    });
  }

  get accounts(): readonly Address[] {
    return this.node.accounts;
  }
  get chainId(): number {
    return this.node.chainId;
  }

  status(): NodeStatus {
    return this.node.status();
  }

  onBlock(listener: (e: CommittedBlockEvent) => void): () => void {
    return this.node.onBlock(listener);
  }

  blocks(options: BlockIteratorOptions = {}): AsyncIterableIterator<Block> {
    return new BlockIterator(this, options);
  }

  /** @internal For the block iterator: called when the node stops; returns the unsubscribe. */
  onStopped(listener: () => void): () => void {
    this.stopListeners.add(listener);
    return () => this.stopListeners.delete(listener);
  }
  /** @internal */
  get isStopped(): boolean {
    return this.hasStopped;
  }

  submit(tx: Transaction | Uint8Array, signal?: AbortSignal): Promise<string> {
    return tx instanceof Uint8Array ? this.node.submitRaw(tx, signal) : this.node.submit(tx, signal);
  }

  send(
    request: { from: Address; ops: readonly Op[]; privateFor?: readonly string[] },
    signal?: AbortSignal,
  ): Promise<string> {
    return this.node.sendTransaction(request, signal);
  }

  receipt(txHash: string): Promise<Receipt | undefined> {
    if (!this.isRunning()) return Promise.reject(this.notRunning());
    const hash = fromHex(txHash, 32);
    if (!hash) return Promise.reject(new NodeError(NodeErrorCode.NotFound, `not a transaction hash: ${txHash}`));
    return read(() => this.node.store.getReceipt(hash));
  }

  async waitForReceipt(txHash: string, options: { signal?: AbortSignal; timeoutMs?: number } = {}): Promise<Receipt> {
    options.signal?.throwIfAborted();
    const timeoutMs = options.timeoutMs ?? DEFAULT_RECEIPT_WAIT_MS;
    const found = await this.receipt(txHash);
    if (found) return found;
    return new Promise<Receipt>((resolve, reject) => {
      let settled = false;
      let checking = false;
      /** A block committed while a look was in flight: look again after it. */
      let again = false;
      const finish = (err: unknown, r?: Receipt): void => {
        if (settled) return;
        settled = true;
        offBlock();
        offStop();
        timer.cancel();
        options.signal?.removeEventListener('abort', onAbort);
        if (r) resolve(r);
        else reject(err);
      };
      const check = (): void => {
        if (settled) return;
        if (checking) {
          again = true;
          return;
        }
        checking = true;
        again = false;
        this.receipt(txHash).then(
          (r) => {
            checking = false;
            if (r) finish(undefined, r);
            else if (again) check();
          },
          (err: unknown) => finish(err),
        );
      };
      // Looked up after every block this node commits (one store read per block while waiting),
      // and once now: it may have committed between the first look and the subscription.
      const offBlock = this.node.onBlock(check);
      const offStop = this.onStopped(() => finish(this.notRunning()));
      const onAbort = (): void => finish(options.signal!.reason);
      options.signal?.addEventListener('abort', onAbort, { once: true });
      const timer = this.clock.setTimeout(
        () =>
          finish(
            new NodeError(NodeErrorCode.Timeout, `transaction ${txHash} not committed within ${timeoutMs} ms`, {
              timeoutMs,
            }),
          ),
        timeoutMs,
      );
      check();
    });
  }

  async getValue(key: string, tag: ReadTag = 'latest', signal?: AbortSignal): Promise<string | null> {
    const at = await this.readAt(tag, signal);
    return read(() => this.node.store.getValue(key, at));
  }
  async getList(key: string, tag: ReadTag = 'latest', signal?: AbortSignal): Promise<string[]> {
    const at = await this.readAt(tag, signal);
    return read(() => this.node.store.getList(key, 0, undefined, at));
  }
  async getBalance(address: Address, tag: ReadTag = 'latest', signal?: AbortSignal): Promise<bigint> {
    const at = await this.readAt(tag, signal);
    return read(() => this.node.store.getBalance(address.toLowerCase(), at));
  }
  async getNonce(address: Address, tag: ReadTag = 'latest', signal?: AbortSignal): Promise<number> {
    const at = await this.readAt(tag, signal);
    return read(() => this.node.store.getNonce(address.toLowerCase(), at));
  }
  async getBlock(tag: ReadTag = 'latest', signal?: AbortSignal): Promise<Block | undefined> {
    const at = await this.readAt(tag, signal);
    return read(() => this.node.store.getBlockByNumber(at ?? this.node.status().head));
  }

  readBarrier(signal?: AbortSignal): Promise<void> {
    return this.node.readBarrier(signal);
  }

  async stop(): Promise<void> {
    await this.running.stop();
    await this.stopped;
  }

  private isRunning(): boolean {
    // A removed member still reads its own (frozen) chain; a stopped or failed one has closed its stores.
    const state = this.node.lifecycle;
    return !this.hasStopped && state !== NodeState.Stopped && state !== NodeState.Failed;
  }

  private notRunning(): NodeError {
    return new NodeError(NodeErrorCode.Unavailable, `node is ${this.node.lifecycle}: no reads`, {
      state: this.node.lifecycle,
    });
  }

  /** 'linearizable' waits for the ReadIndex barrier, then reads the latest state; a number reads as of that block. */
  private async readAt(tag: ReadTag, signal?: AbortSignal): Promise<number | undefined> {
    // The stores close as the node stops: a read then is refused, not a LevelDB error.
    if (!this.isRunning()) throw this.notRunning();
    if (tag === 'linearizable') {
      await this.node.readBarrier(signal);
      return undefined;
    }
    if (tag === 'latest') return undefined;
    if (!Number.isSafeInteger(tag) || tag < 0)
      throw new NodeError(NodeErrorCode.NotFound, `not a block number: ${String(tag)}`);
    return tag;
  }
}

/** Lower layers' expected errors (a block not committed yet, history not kept) as NodeError. */
async function read<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    throw toNodeError(err);
  }
}

/**
 * The committed blocks in order. Blocks arrive through onBlock into a buffer of at most
 * `bufferBlocks`; past that the buffer is dropped ("behind") and the consumer is served from the
 * chain store until it reaches the head, then from the buffer again. Listener and catch-up share
 * one thread, so nothing is delivered twice or skipped: `next` only grows by one per yield.
 */
class BlockIterator implements AsyncIterableIterator<Block> {
  private next_: number;
  private buffer: Block[] = [];
  private behind = false;
  private done = false;
  private wake: (() => void) | undefined;
  private readonly limit: number;
  private readonly unsubscribe: Array<() => void> = [];

  constructor(
    private readonly owner: Embedded,
    private readonly options: BlockIteratorOptions,
  ) {
    this.limit = options.bufferBlocks ?? DEFAULT_BLOCK_BUFFER_BLOCKS;
    if (!Number.isSafeInteger(this.limit) || this.limit < 1)
      throw new RangeError(`bufferBlocks must be a positive integer, got ${this.limit}`);
    const head = owner.isStopped ? 0 : owner.status().head;
    this.next_ = options.from ?? head + 1;
    // Blocks from before the subscription come from the store.
    this.behind = this.next_ <= head;
    this.unsubscribe.push(
      owner.onBlock(({ block }) => {
        if (!this.behind) {
          if (this.buffer.length >= this.limit) {
            this.behind = true;
            this.buffer = [];
          } else this.buffer.push(block);
        }
        this.poke();
      }),
      owner.onStopped(() => this.finish()),
    );
    const signal = options.signal;
    if (signal) {
      const onAbort = (): void => this.finish();
      signal.addEventListener('abort', onAbort, { once: true });
      this.unsubscribe.push(() => signal.removeEventListener('abort', onAbort));
    }
    if (owner.isStopped || signal?.aborted) this.finish();
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<Block> {
    return this;
  }

  async next(): Promise<IteratorResult<Block>> {
    for (;;) {
      if (this.done) return { done: true, value: undefined };
      // From the buffer: drop what is older than `next` (a `from` in the future), stop at a gap.
      while (this.buffer.length > 0 && this.buffer[0].header.number < this.next_) this.buffer.shift();
      if (this.buffer.length > 0 && this.buffer[0].header.number === this.next_) {
        this.next_++;
        return { done: false, value: this.buffer.shift()! };
      }
      const head = this.owner.status().head;
      if (this.next_ <= head) {
        // Behind (or a gap): the store has every block up to the head.
        const number = this.next_;
        let block: Block | undefined;
        try {
          block = await read(() => this.owner.node.store.getBlockByNumber(number));
        } catch (err) {
          if (this.done) return { done: true, value: undefined };
          this.finish();
          throw err;
        }
        if (this.done) return { done: true, value: undefined };
        if (!block) {
          this.finish();
          throw new NodeError(
            NodeErrorCode.NotFound,
            `block ${number} is not stored on this node (rebuilt from a snapshot)`,
            {
              block: number,
            },
          );
        }
        if (this.next_ === number) this.next_++;
        return { done: false, value: block };
      }
      // Caught up: new blocks go to the buffer again.
      this.behind = false;
      await new Promise<void>((resolve) => (this.wake = resolve));
    }
  }

  async return(): Promise<IteratorResult<Block>> {
    this.finish();
    return { done: true, value: undefined };
  }

  private poke(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  private finish(): void {
    if (this.done) return;
    this.done = true;
    this.buffer = [];
    for (const off of this.unsubscribe) off();
    this.unsubscribe.length = 0;
    this.poke();
  }
}
