// World state: a flat map from string keys to byte values, with an LtHash (lthash.ts) over every
// (key, value) so the state root covers the whole state and is maintained in O(changes) per block.
//
// Layers:
//   CommittedState — the state at the head (public, or this node's private state). The node runs
//                   on StoredState (state-store.ts): the state lives in the chain store on disk
//                   behind a bounded cache. MemoryState holds everything in memory: genesis,
//                   tests, benches and embedders that want no disk.
//   StateOverlay  — copy-on-write changes over a parent view: a block being applied or built, a
//                   transaction inside it (discarded when an op fails, which makes ops atomic), or
//                   a minter's speculative chain of not-yet-applied blocks (overlay on overlay).
//
// Key namespaces (the first segment; documented because they are part of the state root):
//   n/<address>            account nonce, u64 — maintained by the executor, not the application
//   b/<address>            balance, minimal big-endian unsigned (absent = 0)
//   v/<key>                value of put/cas (UTF-8)
//   l/<key>                length of the list built by append, u64
//   i/<key>/<index>        list item <index> (decimal); injective since <index> has no '/'
//   g/member/<raftId>      a genesis member's minter public key (32 bytes)
//   g/chainId              the chain id, u64 (so the genesis hash differs between chains)
//   g/txSignatureCheck     "minter-only" when genesis chose it (block.ts TxSignatureCheck)
// Values (v/) and lists (l/, i/) of the same user key are separate: `put k` never touches list k.

import { assert } from './errors.js';
import { bytesEqual, bigintToBytes, bytesToBigint, utf8 } from './codec.js';
import type { Hash } from './hash.js';
import { LtHash, expandStateElement } from './lthash.js';
import type { Address } from './keys.js';

export type StateKey = string;
/** A set of changes: value = the new bytes, null = deleted. */
export type StateChanges = ReadonlyMap<StateKey, Uint8Array | null>;

export interface StateView {
  get(key: StateKey): Uint8Array | undefined;
  /** The multiset hash of the whole state. Callers must not mutate it. */
  ltHash(): LtHash;
  root(): Hash;
}

/**
 * The committed state a ChainState runs on. `get` is synchronous (block application is: see
 * executor.ts); an implementation backed by disk serves misses with a synchronous read.
 */
export interface CommittedState extends StateView {
  /**
   * Folds an overlay made directly on this state into it (after the store committed the block),
   * reusing the overlay's hash delta. Must not be called for an overlay made on another state.
   */
  commit(overlay: StateOverlay): void;
}

const textDecoder = new TextDecoder();

export class MemoryState implements CommittedState {
  private readonly map = new Map<StateKey, Uint8Array>();
  private readonly hash = new LtHash();
  private cachedRoot: Hash | undefined;
  private approxBytes = 0;

  get(key: StateKey): Uint8Array | undefined {
    return this.map.get(key);
  }

  ltHash(): LtHash {
    return this.hash;
  }

  root(): Hash {
    this.cachedRoot ??= this.hash.root();
    return this.cachedRoot;
  }

  get size(): number {
    return this.map.size;
  }

  /** Approximate bytes held (keys as UTF-16 + values). For limits and metrics, not for roots. */
  get bytes(): number {
    return this.approxBytes;
  }

  entries(): IterableIterator<[StateKey, Uint8Array]> {
    return this.map.entries();
  }

  private setRaw(key: StateKey, value: Uint8Array | null): void {
    const old = this.map.get(key);
    if (old !== undefined) this.approxBytes -= key.length * 2 + old.length;
    if (value === null) this.map.delete(key);
    else {
      this.map.set(key, value);
      this.approxBytes += key.length * 2 + value.length;
    }
  }

  /** Applies changes and updates the hash (two expansions per changed key). */
  applyChanges(changes: StateChanges): void {
    for (const [key, value] of changes) {
      const old = this.map.get(key);
      if (old !== undefined && value !== null && bytesEqual(old, value)) continue;
      const k = utf8(key);
      if (old !== undefined) this.hash.remove(k, old);
      if (value !== null) this.hash.add(k, value);
      this.setRaw(key, value);
    }
    this.cachedRoot = undefined;
  }

  /**
   * Folds an overlay made directly on this state into it, reusing the overlay's already computed
   * hash delta (no second expansion). This state must not have changed since the overlay was
   * made (or rebased onto it).
   */
  commit(overlay: StateOverlay): void {
    assert(overlay.parent === this, 'MemoryState.commit: the overlay was not made on this state');
    const delta = overlay.delta();
    for (const [key, value] of overlay.changes) this.setRaw(key, value);
    this.hash.addVector(delta.lanes);
    this.cachedRoot = undefined;
  }

  static fromEntries(entries: Iterable<readonly [StateKey, Uint8Array]>): MemoryState {
    const s = new MemoryState();
    const changes = new Map<StateKey, Uint8Array>();
    for (const [k, v] of entries) changes.set(k, v);
    s.applyChanges(changes);
    return s;
  }
}

/** Which overlay a changes map belongs to (StateOverlay.ofChanges). */
const overlayOfChanges = new WeakMap<StateChanges, StateOverlay>();

export class StateOverlay implements StateView {
  /** Changed keys; null = deleted. Only this layer's changes, not the parent's. */
  readonly changes = new Map<StateKey, Uint8Array | null>();

  /**
   * The overlay whose `changes` map this is, when it is one. The store uses it to take the hash
   * of the state after a block (overlay.ltHash()) instead of hashing the changes a second time.
   */
  static ofChanges(changes: StateChanges): StateOverlay | undefined {
    return overlayOfChanges.get(changes);
  }
  private cachedDelta: LtHash | undefined;
  private cachedHash: LtHash | undefined;

  private parentView: StateView;

  constructor(parent: StateView) {
    this.parentView = parent;
    overlayOfChanges.set(this.changes, this);
  }

  get parent(): StateView {
    return this.parentView;
  }

  /**
   * Re-parents a sealed overlay onto `newParent`, which must hold exactly what the old parent
   * held (checked through the roots). Used when the minter's speculative parent block has been
   * committed into the MemoryState: the overlay's delta stays valid because the base is equal.
   */
  rebase(newParent: StateView): void {
    if (newParent === this.parentView) return;
    assert(
      bytesEqual(newParent.root(), this.parentView.root()),
      'StateOverlay.rebase: the new parent holds a different state',
    );
    this.delta();
    this.parentView = newParent;
  }

  get(key: StateKey): Uint8Array | undefined {
    const c = this.changes.get(key);
    if (c !== undefined) return c === null ? undefined : c;
    return this.parent.get(key);
  }

  set(key: StateKey, value: Uint8Array): void {
    assert(this.cachedDelta === undefined, 'StateOverlay is sealed: its root was taken');
    this.changes.set(key, value);
  }

  delete(key: StateKey): void {
    assert(this.cachedDelta === undefined, 'StateOverlay is sealed: its root was taken');
    this.changes.set(key, null);
  }

  child(): StateOverlay {
    return new StateOverlay(this);
  }

  /** Moves this layer's changes into its parent overlay (a transaction that succeeded). */
  mergeIntoParent(): void {
    assert(this.parent instanceof StateOverlay, 'mergeIntoParent needs an overlay parent');
    for (const [k, v] of this.changes) {
      if (v === null) this.parent.delete(k);
      else this.parent.set(k, v);
    }
  }

  /** True once delta() was taken: the changes can no longer change. */
  isSealed(): boolean {
    return this.cachedDelta !== undefined;
  }

  /** Σ expand(k, new) − Σ expand(k, old) over this layer's changes. Seals the overlay. */
  delta(): LtHash {
    if (this.cachedDelta) return this.cachedDelta;
    const d = new LtHash();
    for (const [key, value] of this.changes) {
      const old = this.parent.get(key);
      if (old !== undefined && value !== null && bytesEqual(old, value)) continue;
      if (old === undefined && value === null) continue;
      const k = utf8(key);
      if (old !== undefined) d.subVector(expandStateElement(key, k, old));
      if (value !== null) d.addVector(expandStateElement(key, k, value));
    }
    this.cachedDelta = d;
    return d;
  }

  ltHash(): LtHash {
    if (!this.cachedHash) {
      const h = this.parent.ltHash().clone();
      h.addVector(this.delta().lanes);
      this.cachedHash = h;
    }
    return this.cachedHash;
  }

  root(): Hash {
    return this.ltHash().root();
  }
}

// --- typed keys and accessors ------------------------------------------------------------------

export const stateKeys = {
  nonce: (a: Address): StateKey => `n/${a}`,
  balance: (a: Address): StateKey => `b/${a}`,
  value: (key: string): StateKey => `v/${key}`,
  listLength: (key: string): StateKey => `l/${key}`,
  listItem: (key: string, index: number): StateKey => `i/${key}/${index}`,
  member: (raftId: number): StateKey => `g/member/${raftId}`,
  chainId: (): StateKey => 'g/chainId',
  txSignatureCheck: (): StateKey => 'g/txSignatureCheck',
};

export function encodeU64(n: number): Uint8Array {
  assert(Number.isSafeInteger(n) && n >= 0, `u64 out of range: ${n}`);
  const b = new Uint8Array(8);
  const v = new DataView(b.buffer);
  v.setUint32(0, Math.floor(n / 0x1_0000_0000));
  v.setUint32(4, n >>> 0);
  return b;
}

export function decodeU64(b: Uint8Array): number {
  assert(b.length === 8, `u64 state value must be 8 bytes, got ${b.length}`);
  const v = new DataView(b.buffer, b.byteOffset, 8);
  return v.getUint32(0) * 0x1_0000_0000 + v.getUint32(4);
}

/** The next nonce this account must use (0 for an account never seen). */
export function getNonce(view: StateView, address: Address): number {
  const b = view.get(stateKeys.nonce(address));
  return b === undefined ? 0 : decodeU64(b);
}

export function setNonce(state: StateOverlay, address: Address, nonce: number): void {
  state.set(stateKeys.nonce(address), encodeU64(nonce));
}

export function getBalance(view: StateView, address: Address): bigint {
  const b = view.get(stateKeys.balance(address));
  return b === undefined ? 0n : bytesToBigint(b);
}

/** Zero balances are deleted, so "never funded" and "emptied" are the same state (one root). */
export function setBalance(state: StateOverlay, address: Address, balance: bigint): void {
  assert(balance >= 0n, 'negative balance');
  if (balance === 0n) state.delete(stateKeys.balance(address));
  else state.set(stateKeys.balance(address), bigintToBytes(balance));
}

export function getValue(view: StateView, key: string): string | null {
  const b = view.get(stateKeys.value(key));
  return b === undefined ? null : textDecoder.decode(b);
}

export function getListLength(view: StateView, key: string): number {
  const b = view.get(stateKeys.listLength(key));
  return b === undefined ? 0 : decodeU64(b);
}

/** Most items one getList read returns (RPC pages with `offset`). */
export const MAX_LIST_READ_ITEMS = 10_000;

export function getList(view: StateView, key: string, offset = 0, maxItems = MAX_LIST_READ_ITEMS): string[] {
  const n = getListLength(view, key);
  const out: string[] = [];
  const end = Math.min(n, offset + Math.min(maxItems, MAX_LIST_READ_ITEMS));
  for (let i = offset; i < end; i++) {
    const b = view.get(stateKeys.listItem(key, i));
    assert(b !== undefined, `list ${key} has length ${n} but no item ${i}`);
    out.push(textDecoder.decode(b));
  }
  return out;
}

export function getMemberKey(view: StateView, raftId: number): Uint8Array | undefined {
  return view.get(stateKeys.member(raftId));
}
