// The application: the deterministic state machine that gives transactions their meaning.
// quorate ships LedgerApp (docs/interface.md's built-in ledger); an embedder can pass another
// implementation of `Application` (ROADMAP: an EVM later).
//
// Contract for every Application (the executor relies on it; nodes diverge otherwise):
//  - Deterministic and synchronous: the result depends only on (state, tx, ops, ctx). No clock,
//    no randomness, no IO, no iteration over unordered sources.
//  - Atomic by construction: the executor hands applyTx a fresh child overlay and keeps its
//    changes only when the outcome's status is 1. An op failing returns status 0 with a reason.
//  - Nonces are not the application's business: the executor checks and bumps them (n/ keys)
//    before calling applyTx, whatever the outcome ("nonce still used").
//  - It must not write the executor's namespaces (n/, g/).

import { ChainError, ChainErrorCode } from './errors.js';
import type { Hash } from './hash.js';
import type { Op, Transaction } from './tx.js';
import { checkOps } from './tx.js';
import {
  type StateKey,
  type StateOverlay,
  type StateView,
  getBalance,
  getListLength,
  encodeU64,
  setBalance,
  stateKeys,
  getValue,
} from './state.js';
import { utf8 } from './codec.js';

export interface ApplyContext {
  readonly blockNumber: number;
  readonly timestampMs: number;
  readonly txIndex: number;
  /** True when `state` is this node's private state and `ops` come from the private payload. */
  readonly isPrivate: boolean;
  /** The ops to run: the transaction's own, or for a private transaction its decrypted payload. */
  readonly ops: readonly Op[];
}

export interface TxOutcome {
  readonly status: 0 | 1;
  /** Why it failed; '' on success. */
  readonly reason: string;
}

export interface Application {
  readonly name: string;
  /**
   * Stateless checks beyond the encoding's (which tx.ts already enforced). Throws ChainError
   * (code TxMalformed) to refuse a transaction at the pool. Also run on private payload ops.
   */
  validateTx(tx: Transaction, ops: readonly Op[]): void;
  /** Runs the ops on `state` (a scratch child overlay). Must not throw for a failing op: return status 0. */
  applyTx(state: StateOverlay, tx: Transaction, ctx: ApplyContext): TxOutcome;
  /** The state root for the header. */
  stateRoot(state: StateView): Hash;
  /**
   * Optional prefetch hint: the state keys running `ops` of `tx` may read or write (besides the
   * nonce, which the executor adds). Used before applying a block to load them from disk with
   * asynchronous reads (executor.ts prefetchBlockState); a key left out only costs one
   * synchronous read while applying, never a different result.
   */
  stateKeysOf?(tx: Transaction, ops: readonly Op[]): StateKey[];
}

/** Longest list `append` builds; beyond it the op fails (bounds one key's share of the state). */
export const MAX_LIST_ITEMS = 10_000_000;

const OK: TxOutcome = { status: 1, reason: '' };
const fail = (reason: string): TxOutcome => ({ status: 0, reason });

export class LedgerApp implements Application {
  readonly name = 'quorate-ledger-v1';

  validateTx(_tx: Transaction, ops: readonly Op[]): void {
    checkOps(ops);
  }

  applyTx(state: StateOverlay, tx: Transaction, ctx: ApplyContext): TxOutcome {
    for (let i = 0; i < ctx.ops.length; i++) {
      const op = ctx.ops[i];
      switch (op.type) {
        case 'transfer': {
          if (ctx.isPrivate)
            return fail(`op ${i}: transfer is not allowed in a private transaction (balances are public)`);
          const have = getBalance(state, tx.from);
          if (have < op.amount)
            return fail(`op ${i}: insufficient balance: ${tx.from} has ${have}, transfer needs ${op.amount}`);
          setBalance(state, tx.from, have - op.amount);
          // Read the recipient after the debit so a transfer to oneself nets to zero.
          setBalance(state, op.to, getBalance(state, op.to) + op.amount);
          break;
        }
        case 'put':
          state.set(stateKeys.value(op.key), utf8(op.value));
          break;
        case 'delete':
          state.delete(stateKeys.value(op.key));
          break;
        case 'cas': {
          const current = getValue(state, op.key);
          if (current !== op.expect) {
            return fail(
              `op ${i}: cas failed: key ${JSON.stringify(op.key)} holds ${current === null ? 'nothing' : JSON.stringify(current)}, expected ${op.expect === null ? 'nothing' : JSON.stringify(op.expect)}`,
            );
          }
          state.set(stateKeys.value(op.key), utf8(op.value));
          break;
        }
        case 'append': {
          const n = getListLength(state, op.key);
          if (n >= MAX_LIST_ITEMS)
            return fail(`op ${i}: list ${JSON.stringify(op.key)} is full (MAX_LIST_ITEMS=${MAX_LIST_ITEMS})`);
          state.set(stateKeys.listItem(op.key, n), utf8(op.value));
          state.set(stateKeys.listLength(op.key), encodeU64(n + 1));
          break;
        }
        default:
          // Decoding refuses unknown ops, so this is a programmer error.
          throw new ChainError(ChainErrorCode.TxMalformed, `unknown op ${(op as { type: string }).type}`);
      }
    }
    return OK;
  }

  stateRoot(state: StateView): Hash {
    return state.root();
  }

  stateKeysOf(tx: Transaction, ops: readonly Op[]): StateKey[] {
    const keys: StateKey[] = [];
    for (const op of ops) {
      if (op.type === 'transfer') keys.push(stateKeys.balance(tx.from), stateKeys.balance(op.to));
      else if (op.type === 'append') keys.push(stateKeys.listLength(op.key));
      else keys.push(stateKeys.value(op.key));
    }
    return keys;
  }
}
