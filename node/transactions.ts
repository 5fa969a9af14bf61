// Transactions entering the node: a client-signed one (submit / submitRaw) and one this node signs
// for an account it holds (quorate_sendTransaction, with nonce retry). Owns signature checks at
// the door, the choice between this node's pool (leader) and forwarding (follower), and the next
// nonce this node guessed per account. It may not touch the chain or Raft: the committed nonce,
// the pool and leadership come through its dependencies.

import {
  ChainErrorCode,
  decodeTransaction,
  encodePrivatePayload,
  signTransaction,
  verifyTransaction,
  type AccountKey,
  type Address,
  type Op,
  type Transaction,
  type TxPool,
  type VerifiedTxCache,
} from './chain/index.js';
import { toNodeError } from './error-map.js';
import { NodeError, NodeErrorCode } from './errors.js';
import type { RefusalLog } from '../p2p/access.js';
import type { TxForwarder } from './forward.js';
import type { PrivacyProvider } from './privacy-provider.js';

/** quorate_sendTransaction: nonces tried when the guessed one turns out to be taken. */
export const MAX_NONCE_ATTEMPTS = 8;

export interface TxIntakeDeps {
  readonly chainId: number;
  readonly verifiedTxs: VerifiedTxCache;
  /** The pool (only a leader adds to it here). */
  readonly pool: () => TxPool;
  readonly forwarder: TxForwarder;
  readonly isLeader: () => boolean;
  /** The sender's next nonce in the committed state. */
  readonly committedNonce: (address: Address) => number;
  /** Accounts this node signs for. */
  readonly accountKeys: readonly AccountKey[];
  readonly privacy?: PrivacyProvider;
  /** Where refused forwarded transactions are logged, at most one line per member per interval. */
  readonly refusals?: RefusalLog;
}

export class TxIntake {
  /** Next nonce this node assigned per account it signs for (followers: not yet visible in state). */
  private readonly localNonces = new Map<Address, number>();
  private readonly accountsByAddress = new Map<Address, AccountKey>();
  /** Forwarded transactions refused because they do not verify (a member sent a forgery, or a bug). */
  forgedForwards = 0;

  constructor(private readonly deps: TxIntakeDeps) {
    for (const k of deps.accountKeys) this.accountsByAddress.set(k.address, k);
  }

  get accounts(): readonly Address[] {
    return [...this.accountsByAddress.keys()];
  }

  /** Submits a client-signed transaction (raw bytes). Resolves with its hash once accepted by the leader's pool. */
  async submitRaw(bytes: Uint8Array, signal?: AbortSignal): Promise<string> {
    let tx: Transaction;
    try {
      tx = decodeTransaction(bytes);
    } catch (err) {
      throw toNodeError(err);
    }
    return this.submit(tx, signal);
  }

  async submit(tx: Transaction, signal?: AbortSignal): Promise<string> {
    try {
      // A leader whose pool is full refuses before paying for the signature check.
      if (this.deps.isLeader()) this.deps.pool().checkAdmission(tx);
      verifyTransaction(tx, this.deps.chainId, this.deps.verifiedTxs);
    } catch (err) {
      throw toNodeError(err);
    }
    if (this.deps.isLeader()) {
      try {
        this.deps.pool().add(tx);
      } catch (err) {
        throw toNodeError(err);
      }
      return tx.hashHex;
    }
    return this.deps.forwarder.forward(tx, signal);
  }

  /**
   * The leader's side of a forwarded transaction. The leader verifies it (chain id, key, signature)
   * as if a client had sent it: Raft tolerates crashed members, not lying ones, and a member that
   * could hand the leader an unchecked transaction could forge one from any account — and under
   * txSignatureCheck "every-node" the leader would mint a block every other node refuses. A
   * transaction refused here never reaches the pool; `from` is counted and logged (rate-limited).
   */
  acceptForwarded(tx: Transaction, fromPeer: string): void {
    // A full pool refuses at once (PoolFull, with retryAfterMs), before the signature check.
    this.deps.pool().checkAdmission(tx);
    try {
      verifyTransaction(tx, this.deps.chainId, this.deps.verifiedTxs);
    } catch (err) {
      this.forgedForwards++;
      this.deps.refusals?.refused(
        fromPeer,
        { peer: fromPeer, hash: tx.hashHex, from: tx.from, forgedForwardsTotal: this.forgedForwards },
        `refused a forwarded transaction that does not verify: ${err instanceof Error ? err.message : String(err)}`,
      );
      throw err;
    }
    this.deps.pool().add(tx);
  }

  /** A committed block used these nonces: guesses at or below them are no longer needed. */
  onCommitted(txs: readonly Transaction[]): void {
    for (const tx of txs) {
      const next = this.localNonces.get(tx.from);
      if (next !== undefined && next <= tx.nonce + 1) this.localNonces.delete(tx.from);
    }
  }

  /** quorate_sendTransaction: signs with a key this node holds. */
  async sendTransaction(
    request: { from: Address; ops: readonly Op[]; privateFor?: readonly string[] },
    signal?: AbortSignal,
  ): Promise<string> {
    const key = this.accountsByAddress.get(request.from.toLowerCase());
    if (!key)
      throw new NodeError(
        NodeErrorCode.TxUnknownAccount,
        `this node holds no key for ${request.from}; use quorate_accounts, or sign it yourself and use quorate_sendRawTransaction`,
      );
    // A full pool refuses before signing (and before storing a private payload): the leader's own,
    // or on a follower the leader's last pool-full answer while its retryAfterMs runs.
    try {
      if (this.deps.isLeader()) this.deps.pool().checkRoom();
      else this.deps.forwarder.checkLeaderRoom();
    } catch (err) {
      throw toNodeError(err);
    }
    let privatePayloadHash: Uint8Array | undefined;
    let privateFor: Uint8Array[] | undefined;
    if (request.privateFor !== undefined) {
      const privacy = this.deps.privacy;
      if (!privacy) throw new NodeError(NodeErrorCode.PrivacyUnavailable, 'this node has no transaction manager');
      privateFor = request.privateFor.map((k) => Buffer.from(k, 'base64'));
      privatePayloadHash = await privacy.send(encodePrivatePayload(request.ops), request.privateFor, signal);
    }
    // The nonce is this node's best guess (a follower does not see the leader's pool): another of
    // this account's transactions may hold it already, e.g. one whose answer was lost in an
    // election. A refusal that says so ("nonce pending" or "too low") moves on to the next nonce,
    // a bounded number of times; the same transaction already pending is this call's success.
    for (let attempt = 1; ; attempt++) {
      const nonce = this.nextNonce(key.address);
      let tx: Transaction;
      try {
        tx = signTransaction(
          {
            chainId: this.deps.chainId,
            nonce,
            ops: privatePayloadHash ? [] : request.ops,
            privatePayloadHash,
            privateFor,
          },
          key,
        );
      } catch (err) {
        throw toNodeError(err);
      }
      this.localNonces.set(key.address, nonce + 1);
      // Signed just now with a key this node holds: valid by construction, so the door's check
      // (submit) need not verify it again (it was 1/4 of the RPC path's CPU in the profile). The
      // leader still verifies what a follower forwards; every-node checks at apply are unchanged.
      this.deps.verifiedTxs.add(tx.hashHex);
      try {
        return await this.submit(tx, signal);
      } catch (err) {
        const chainCode = err instanceof NodeError ? err.meta.chainCode : undefined;
        if (chainCode === ChainErrorCode.TxDuplicate) return tx.hashHex;
        if (
          (chainCode === ChainErrorCode.NonceAlreadyPending || chainCode === ChainErrorCode.NonceTooLow) &&
          attempt < MAX_NONCE_ATTEMPTS &&
          !signal?.aborted
        ) {
          const next = Number((err as NodeError).meta.next);
          this.localNonces.set(key.address, Math.max(nonce + 1, Number.isSafeInteger(next) ? next : 0));
          continue;
        }
        if (chainCode === ChainErrorCode.PoolFull) {
          // Refused for want of room: the nonce is unused (and the pool refuses later ones until it
          // comes), so the next call takes it again rather than every caller restarting from the chain.
          const refused = Number((err as NodeError).meta.refusedNonce ?? nonce);
          const free = Number.isSafeInteger(refused) ? Math.min(nonce, refused) : nonce;
          const local = this.localNonces.get(key.address);
          if (local === undefined || free < local) this.localNonces.set(key.address, free);
          throw err;
        }
        // The nonce may or may not be used now (a forward that timed out): start again from the chain.
        this.localNonces.delete(key.address);
        throw err;
      }
    }
  }

  private nextNonce(address: Address): number {
    const committed = this.deps.committedNonce(address);
    const local = this.localNonces.get(address) ?? 0;
    const pooled = this.deps.isLeader() ? this.deps.pool().pendingNonce(address) : 0;
    return Math.max(committed, local, pooled);
  }
}
