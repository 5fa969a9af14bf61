// The executor: applies blocks (every node) and builds them (the minter). Deterministic and
// synchronous; all IO (private payloads from the transaction manager, disk) happens before
// (prefetch) or after (store.commitBlock) — TigerBeetle's and docs/design.md's rule 5.
//
// applyBlock's decisions, in order (every node takes the same one, since each depends only on the
// block, the head and the replicated membership):
//   1. parent is not the head (or number is not head+1) → no-op "parent-not-head"; the block's
//      transactions go back to the pool. This makes a deposed leader's blocks harmless (GoQuorum).
//   2. invalid block (unknown minter, bad minter signature, txRoot mismatch, timestamp before the
//      parent's, a transaction with a bad signature (unless genesis chose txSignatureCheck
//      'minter-only') / wrong chain / wrong nonce / refused by the application's validateTx)
//      → no-op "invalid-block". Such a block is only made by a broken or
//      malicious minter; all nodes skip it alike and the chain goes on.
//   3. a private transaction whose payload is not in `privatePayloads` → THROWS PrivatePayloadMissing:
//      the node must fetch it and retry; it must never guess "not a party".
//   4. apply each transaction: bump the sender's nonce, run the application on a scratch child
//      overlay, keep the changes only on status 1.
//   5. receipts root and state root must equal the header's → otherwise a FATAL error
//      (ReceiptsRootMismatchError / StateRootMismatchError): this node diverged, it stops.

import { ChainError, ChainErrorCode, ReceiptsRootMismatchError, StateRootMismatchError, assert } from './errors.js';
import { bytesEqual, toHex } from './codec.js';
import type { Hash } from './hash.js';
import type { AccountKey } from './keys.js';
import type { Application, ApplyContext } from './app.js';
import {
  BLOCK_VERSION,
  MAX_BLOCK_BYTES,
  MAX_BLOCK_TXS,
  type Block,
  type BlockHeader,
  type TxSignatureCheck,
  signBlock,
  txRootOf,
  verifyBlock,
} from './block.js';
import { type Receipt, receiptsRoot } from './receipt.js';
import {
  type CommittedState,
  type StateKey,
  StateOverlay,
  stateKeys,
  type StateChanges,
  type StateView,
  getMemberKey,
  getNonce,
  setNonce,
} from './state.js';
import { StoredState } from './state-store.js';
import { type Op, type Transaction, VerifiedTxCache, isPrivate, payloadHashKey, verifyTransaction } from './tx.js';

/** What the node learned from the transaction manager for one private payload hash. */
export type PrivatePayload = { readonly kind: 'party'; readonly ops: readonly Op[] } | { readonly kind: 'not-party' };
/** Keyed by payloadHashKey(tx.privatePayloadHash) (hex without 0x). */
export type PrivatePayloads = ReadonlyMap<string, PrivatePayload>;

export interface ChainStateOptions<S extends CommittedState = CommittedState> {
  readonly chainId: number;
  readonly app: Application;
  readonly head: Block;
  /** The node passes the store's (store.loadState: on disk, cached); tests and benches a MemoryState. */
  readonly state: S;
  readonly privateState: S;
  /** Shared with the pool so transactions verified on entry are not verified again. */
  readonly verifiedTxs?: VerifiedTxCache;
  /** From genesis (GenesisConfig.txSignatureCheck); default 'every-node'. */
  readonly txSignatureCheck?: TxSignatureCheck;
}

/**
 * The committed chain as the executor sees it: head block, public state, this node's private
 * state, and the minter keys of members. Changed only by `advance` (after the store committed).
 */
export class ChainState<S extends CommittedState = CommittedState> {
  readonly chainId: number;
  readonly app: Application;
  readonly state: S;
  readonly privateState: S;
  readonly verifiedTxs: VerifiedTxCache;
  readonly txSignatureCheck: TxSignatureCheck;
  private headBlock: Block;
  /** Members added after genesis (Raft conf changes), registered by the node in log order. */
  private readonly addedMembers = new Map<number, Uint8Array>();

  constructor(o: ChainStateOptions<S>) {
    this.chainId = o.chainId;
    this.app = o.app;
    this.state = o.state;
    this.privateState = o.privateState;
    this.verifiedTxs = o.verifiedTxs ?? new VerifiedTxCache();
    this.txSignatureCheck = o.txSignatureCheck ?? 'every-node';
    this.headBlock = o.head;
  }

  get head(): Block {
    return this.headBlock;
  }

  /**
   * The minter key of a member: genesis members from the state (g/member/), later ones from
   * registerMember. The node must register a member when it applies the conf change that added
   * it, so every node knows the same keys at the same log position.
   */
  minterPublicKey(raftId: number): Uint8Array | undefined {
    return this.addedMembers.get(raftId) ?? getMemberKey(this.state, raftId);
  }

  registerMember(raftId: number, minterPublicKey: Uint8Array): void {
    assert(minterPublicKey.length === 32, 'minter public key must be 32 bytes');
    this.addedMembers.set(raftId, Uint8Array.from(minterPublicKey));
  }

  /** Folds an applied block into the in-memory state. Call after store.commitBlock succeeded. */
  advance(result: AppliedBlock): void {
    assert(
      bytesEqual(result.block.header.parentHash, this.headBlock.hash),
      () => `advance: block ${result.block.header.number} is not a child of the head ${this.headBlock.header.number}`,
    );
    this.state.commit(result.overlay);
    this.privateState.commit(result.privateOverlay);
    this.headBlock = result.block;
  }

  /**
   * Folds the private part of a block replayed after a snapshot install (applyPrivateBlock) into
   * the private state. Call after the store committed it. The head does not move: the block is
   * older than it (node/catch-up.ts).
   */
  advancePrivate(privateOverlay: StateOverlay): void {
    this.privateState.commit(privateOverlay);
  }

  /** Replaces everything (after installing a snapshot). */
  reset<T extends CommittedState>(head: Block, state: T, privateState: T): ChainState<T> {
    const next = new ChainState<T>({
      chainId: this.chainId,
      app: this.app,
      head,
      state,
      privateState,
      verifiedTxs: this.verifiedTxs,
      txSignatureCheck: this.txSignatureCheck,
    });
    for (const [id, k] of this.addedMembers) next.registerMember(id, k);
    return next;
  }
}

export enum NoopReason {
  ParentNotHead = 'parent-not-head',
  InvalidBlock = 'invalid-block',
}

export interface AppliedBlock {
  readonly kind: 'applied';
  readonly block: Block;
  /** Public receipts, one per transaction, in block order (their root is in the header). */
  readonly receipts: readonly Receipt[];
  /** This node's receipts of private transactions it is a party to (keyed by tx hash hex). */
  readonly privateReceipts: ReadonlyMap<string, Receipt>;
  /** What to write: public and private state changes (null = delete). */
  readonly stateChanges: StateChanges;
  readonly privateStateChanges: StateChanges;
  /** The overlays behind those changes, for ChainState.advance. */
  readonly overlay: StateOverlay;
  readonly privateOverlay: StateOverlay;
}

export interface NoopBlock {
  readonly kind: 'noop';
  readonly reason: NoopReason;
  readonly detail: string;
  /** The block's transactions, for pool.returnTxs (the pool re-checks them). */
  readonly returnedTxs: readonly Transaction[];
}

export type ApplyResult = AppliedBlock | NoopBlock;

/**
 * The prefetch step before applyBlock (TigerBeetle's rule: IO before, then a synchronous apply):
 * loads the state keys `block` will touch into the caches of a state kept on disk (StoredState),
 * with asynchronous reads. Optional for correctness — a key not prefetched is read synchronously
 * while applying, with the same result — but it keeps disk reads out of the apply.
 */
export async function prefetchBlockState(
  chain: ChainState,
  block: Block,
  privatePayloads: PrivatePayloads = new Map(),
): Promise<void> {
  const publicKeys: StateKey[] = [stateKeys.member(block.header.minterId)];
  const privateKeys: StateKey[] = [];
  for (const tx of block.transactions) {
    publicKeys.push(stateKeys.nonce(tx.from));
    if (chain.app.stateKeysOf === undefined) continue;
    if (tx.privatePayloadHash === undefined) publicKeys.push(...chain.app.stateKeysOf(tx, tx.ops));
    else {
      const p = privatePayloads.get(payloadHashKey(tx.privatePayloadHash));
      if (p?.kind === 'party') privateKeys.push(...chain.app.stateKeysOf(tx, p.ops));
    }
  }
  if (chain.state instanceof StoredState) await chain.state.prefetch(publicKeys);
  if (privateKeys.length > 0 && chain.privateState instanceof StoredState)
    await chain.privateState.prefetch(privateKeys);
}

/** The private payload hashes (keys of PrivatePayloads) a block needs: prefetch them before applyBlock. */
export function privatePayloadKeys(block: Block): string[] {
  const out: string[] = [];
  for (const tx of block.transactions)
    if (tx.privatePayloadHash !== undefined) out.push(payloadHashKey(tx.privatePayloadHash));
  return out;
}

/**
 * Applies `block` on `chain` (which it does not change: call chain.advance after the store commit).
 *
 * `built`: the minter should pass what buildBlock returned for its own block. When the block is
 * the one built (same hash, so same parent and same base state), its public receipts and state
 * overlay are reused instead of executing it a second time (only the private part runs). The
 * result is identical to a full apply: buildBlock ran the same code on the same state, and the
 * header commits to its roots. It also re-parents the overlay onto the committed state, so a
 * minter's chain of speculative overlays never grows longer than its pending blocks.
 */
export function applyBlock(
  chain: ChainState,
  block: Block,
  privatePayloads: PrivatePayloads,
  built?: BuiltBlock,
  options: ApplyOptions = {},
): ApplyResult {
  const head = chain.head;
  const h = block.header;
  const noop = (reason: NoopReason, detail: string): NoopBlock => ({
    kind: 'noop',
    reason,
    detail,
    returnedTxs: block.transactions,
  });

  // 1. Parent must be the head.
  if (!bytesEqual(h.parentHash, head.hash)) {
    return noop(
      NoopReason.ParentNotHead,
      `parent ${toHex(h.parentHash)} is not the head ${head.hashHex} (number ${head.header.number})`,
    );
  }

  // The minter's own block: reuse the build (see above). Its private part still runs here.
  if (
    built !== undefined &&
    bytesEqual(built.block.hash, block.hash) &&
    bytesEqual(built.state.parent.root(), chain.state.root())
  ) {
    if (!options.deferPrivate) requirePayloads(block, privatePayloads);
    built.state.rebase(chain.state);
    const { privateOverlay, privateReceipts } = options.deferPrivate
      ? noPrivate(chain)
      : applyPrivate(chain, block, privatePayloads);
    return {
      kind: 'applied',
      block,
      receipts: built.receipts,
      privateReceipts,
      stateChanges: built.state.changes,
      privateStateChanges: privateOverlay.changes,
      overlay: built.state,
      privateOverlay,
    };
  }

  // 2. Header and body checks that need no state.
  if (h.number !== head.header.number + 1)
    return noop(NoopReason.InvalidBlock, `number ${h.number} is not head+1 (${head.header.number + 1})`);
  if (h.timestampMs < head.header.timestampMs)
    return noop(
      NoopReason.InvalidBlock,
      `timestamp ${h.timestampMs} is before the parent's ${head.header.timestampMs}`,
    );
  const invalid = verifyBlock(block, chain.minterPublicKey(h.minterId));
  if (invalid !== undefined) return noop(NoopReason.InvalidBlock, invalid);

  // 3. Every private payload must be known before anything is applied.
  if (!options.deferPrivate) requirePayloads(block, privatePayloads);

  // 4. Apply the public part. A private transaction's public effect is its nonce and a fixed
  //    "included" receipt; its ops run in a second pass over the private state (step 6), which is
  //    equivalent to interleaving since the two states are disjoint.
  const overlay = new StateOverlay(chain.state);
  const receipts: Receipt[] = [];
  for (let i = 0; i < block.transactions.length; i++) {
    const tx = block.transactions[i];
    try {
      if (chain.txSignatureCheck === 'every-node') verifyTransaction(tx, chain.chainId, chain.verifiedTxs);
      else if (tx.chainId !== chain.chainId)
        throw new ChainError(
          ChainErrorCode.TxWrongChainId,
          `transaction is for chain ${tx.chainId}, this chain is ${chain.chainId}`,
        );
      if (!isPrivate(tx)) chain.app.validateTx(tx, tx.ops);
    } catch (e) {
      if (e instanceof ChainError)
        return noop(NoopReason.InvalidBlock, `transaction ${i} (${tx.hashHex}): ${e.message}`);
      throw e;
    }
    const expectedNonce = getNonce(overlay, tx.from);
    if (tx.nonce !== expectedNonce)
      return noop(
        NoopReason.InvalidBlock,
        `transaction ${i} (${tx.hashHex}): nonce ${tx.nonce}, account ${tx.from} expects ${expectedNonce}`,
      );
    setNonce(overlay, tx.from, tx.nonce + 1);
    if (tx.privatePayloadHash === undefined) {
      receipts.push(
        runTx(chain.app, overlay, tx, {
          blockNumber: h.number,
          timestampMs: h.timestampMs,
          txIndex: i,
          isPrivate: false,
          ops: tx.ops,
        }),
      );
    } else {
      // The public receipt of a private transaction is the same on every node: "included".
      receipts.push(includedPrivateReceipt(tx));
    }
  }

  // 5. Roots must match the minter's.
  const rRoot = receiptsRoot(receipts);
  if (!bytesEqual(rRoot, h.receiptsRoot))
    throw new ReceiptsRootMismatchError(h.number, toHex(h.receiptsRoot), toHex(rRoot));
  const sRoot = chain.app.stateRoot(overlay);
  if (!bytesEqual(sRoot, h.stateRoot)) throw new StateRootMismatchError(h.number, toHex(h.stateRoot), toHex(sRoot));

  // 6. The private part, on this node's private state (or later, in chain order: deferPrivate).
  const { privateOverlay, privateReceipts } = options.deferPrivate
    ? noPrivate(chain)
    : applyPrivate(chain, block, privatePayloads);
  return {
    kind: 'applied',
    block,
    receipts,
    privateReceipts,
    stateChanges: overlay.changes,
    privateStateChanges: privateOverlay.changes,
    overlay,
    privateOverlay,
  };
}

export interface ApplyOptions {
  /**
   * Apply the public part only; the private part is applied later, in chain order, with
   * applyPrivateBlock. A node whose private state lags its head (it installed a snapshot and
   * replays the skipped blocks' private transactions, node/catch-up.ts) defers the private part
   * of newer blocks so its private state is still the result of applying them in chain order.
   */
  readonly deferPrivate?: boolean;
}

/** The private part of an applied block, for a block whose public part was applied with deferPrivate. */
export interface AppliedPrivate {
  readonly privateReceipts: ReadonlyMap<string, Receipt>;
  readonly privateStateChanges: StateChanges;
  /** For ChainState.advancePrivate. */
  readonly privateOverlay: StateOverlay;
}

/**
 * Runs the private transactions of `block` (already applied publicly, at any height) on this
 * node's private state: the same code path as applyBlock's step 6. Every payload must be known.
 */
export function applyPrivateBlock(chain: ChainState, block: Block, privatePayloads: PrivatePayloads): AppliedPrivate {
  requirePayloads(block, privatePayloads);
  const { privateOverlay, privateReceipts } = applyPrivate(chain, block, privatePayloads);
  return { privateReceipts, privateStateChanges: privateOverlay.changes, privateOverlay };
}

function noPrivate(chain: ChainState): { privateOverlay: StateOverlay; privateReceipts: Map<string, Receipt> } {
  const privateOverlay = new StateOverlay(chain.privateState);
  privateOverlay.delta();
  return { privateOverlay, privateReceipts: new Map() };
}

function includedPrivateReceipt(tx: Transaction): Receipt {
  return { txHash: tx.hash, status: 1, reason: '', isPrivate: true };
}

function requirePayloads(block: Block, privatePayloads: PrivatePayloads): void {
  const missing = privatePayloadKeys(block).filter((k) => !privatePayloads.has(k));
  if (missing.length > 0) {
    throw new ChainError(
      ChainErrorCode.PrivatePayloadMissing,
      `block ${block.header.number} needs ${missing.length} private payload(s) not prefetched; fetch them (or learn "not a party") before applying`,
      { blockNumber: block.header.number, missing },
    );
  }
}

/** Runs the private transactions this node is a party to, in block order, on its private state. */
function applyPrivate(
  chain: ChainState,
  block: Block,
  privatePayloads: PrivatePayloads,
): { privateOverlay: StateOverlay; privateReceipts: Map<string, Receipt> } {
  const h = block.header;
  const privateOverlay = new StateOverlay(chain.privateState);
  const privateReceipts = new Map<string, Receipt>();
  for (let i = 0; i < block.transactions.length; i++) {
    const tx = block.transactions[i];
    if (tx.privatePayloadHash === undefined) continue;
    const payload = privatePayloads.get(payloadHashKey(tx.privatePayloadHash));
    assert(payload !== undefined, 'private payloads are checked before applying');
    if (payload.kind !== 'party') continue;
    let r: Receipt;
    try {
      chain.app.validateTx(tx, payload.ops);
      r = runTx(chain.app, privateOverlay, tx, {
        blockNumber: h.number,
        timestampMs: h.timestampMs,
        txIndex: i,
        isPrivate: true,
        ops: payload.ops,
      });
    } catch (e) {
      if (!(e instanceof ChainError)) throw e;
      r = { txHash: tx.hash, status: 0, reason: `private payload refused: ${e.message}`, isPrivate: true };
    }
    privateReceipts.set(tx.hashHex, r);
  }
  privateOverlay.delta(); // seal: computed now so advance() does no hashing work twice
  return { privateOverlay, privateReceipts };
}

function runTx(app: Application, parent: StateOverlay, tx: Transaction, ctx: ApplyContext): Receipt {
  const scratch = parent.child();
  const outcome = app.applyTx(scratch, tx, ctx);
  if (outcome.status === 1) scratch.mergeIntoParent();
  return {
    txHash: tx.hash,
    status: outcome.status,
    reason: outcome.status === 1 ? '' : outcome.reason,
    isPrivate: ctx.isPrivate,
  };
}

// --- building (the minter) ----------------------------------------------------------------------

/** What a block is built on: the head (or the minter's previous, not yet applied, block) and its state. */
export interface BuildBase {
  readonly header: BlockHeader;
  readonly hash: Hash;
  readonly state: StateView;
}

export function baseOf(chain: ChainState): BuildBase {
  return { header: chain.head.header, hash: chain.head.hash, state: chain.state };
}

export interface Minter {
  readonly raftId: number;
  readonly key: AccountKey;
}

export interface BuildLimits {
  /** Defaults to MAX_BLOCK_TXS. */
  readonly maxTxs?: number;
  /** Bytes of encoded transactions; defaults to MAX_BLOCK_BYTES minus header room. */
  readonly maxTxBytes?: number;
}

export interface BuiltBlock {
  readonly block: Block;
  readonly receipts: readonly Receipt[];
  /** State after the block, on top of `base.state`: the base of the next speculative block. */
  readonly state: StateOverlay;
  /** The next base, for building on this block before it is applied. */
  readonly next: BuildBase;
  /** Transactions that did not fit, or whose nonce is ahead (a gap): give them back to the pool. */
  readonly deferred: readonly Transaction[];
  /** Transactions that can never be included (stale nonce, bad signature, refused): drop them. */
  readonly rejected: readonly { readonly tx: Transaction; readonly error: ChainError }[];
}

/**
 * Builds and signs a block on `base` from `txs` (in the order given; the pool orders by nonce).
 * Works on a scratch overlay of `base.state`, which may itself be an overlay (speculative
 * minting on top of not-yet-applied blocks). `timestampMs` is the minter's clock, raised to the
 * parent's timestamp if the clock went back, so timestamps never decrease.
 */
export function buildBlock(
  app: Application,
  chainId: number,
  base: BuildBase,
  txs: readonly Transaction[],
  minter: Minter,
  timestampMs: number,
  raftTerm: number,
  limits: BuildLimits = {},
  verifiedTxs?: VerifiedTxCache,
): BuiltBlock {
  const maxTxs = Math.min(limits.maxTxs ?? MAX_BLOCK_TXS, MAX_BLOCK_TXS);
  const maxTxBytes = Math.min(limits.maxTxBytes ?? MAX_BLOCK_BYTES - 1024, MAX_BLOCK_BYTES - 1024);
  const number = base.header.number + 1;
  const ts = Math.max(timestampMs, base.header.timestampMs);
  const overlay = new StateOverlay(base.state);
  const included: Transaction[] = [];
  const receipts: Receipt[] = [];
  const deferred: Transaction[] = [];
  const rejected: { tx: Transaction; error: ChainError }[] = [];
  let bytes = 0;
  for (const tx of txs) {
    if (included.length >= maxTxs || bytes + tx.encoded.length + 4 > maxTxBytes) {
      deferred.push(tx);
      continue;
    }
    try {
      verifyTransaction(tx, chainId, verifiedTxs);
      if (!isPrivate(tx)) app.validateTx(tx, tx.ops);
    } catch (e) {
      if (e instanceof ChainError) {
        rejected.push({ tx, error: e });
        continue;
      }
      throw e;
    }
    const expected = getNonce(overlay, tx.from);
    if (tx.nonce < expected) {
      rejected.push({
        tx,
        error: new ChainError(
          ChainErrorCode.NonceTooLow,
          `nonce ${tx.nonce} already used by ${tx.from} (next is ${expected})`,
          { hash: tx.hashHex },
        ),
      });
      continue;
    }
    if (tx.nonce > expected) {
      deferred.push(tx);
      continue;
    }
    setNonce(overlay, tx.from, tx.nonce + 1);
    const ctx = { blockNumber: number, timestampMs: ts, txIndex: included.length };
    if (tx.privatePayloadHash === undefined)
      receipts.push(runTx(app, overlay, tx, { ...ctx, isPrivate: false, ops: tx.ops }));
    else receipts.push(includedPrivateReceipt(tx));
    included.push(tx);
    bytes += tx.encoded.length + 4;
  }
  const header: BlockHeader = {
    version: BLOCK_VERSION,
    number,
    parentHash: base.hash,
    timestampMs: ts,
    txRoot: txRootOf(included),
    stateRoot: app.stateRoot(overlay),
    receiptsRoot: receiptsRoot(receipts),
    minterId: minter.raftId,
    raftTerm,
  };
  const block = signBlock(header, included, minter.key);
  return { block, receipts, state: overlay, next: { header, hash: block.hash, state: overlay }, deferred, rejected };
}
