// The real Jepsen clients: each speaks JSON-RPC to one node (Jepsen binds a client process to a node)
// and turns answers into history outcomes by these rules (workload.ts):
//
//  write (put, cas, append, transfer) = quorate_sendTransaction, then eth_getTransactionReceipt on the
//  same node until it is there:
//    receipt status 1                  -> ok
//    receipt status 0, a cas           -> ok with swapped: false (it committed; the compare failed)
//    receipt status 0, anything else   -> fail (committed with no effect, e.g. a short balance)
//    refused before acceptance         -> fail (NotLeader, NoLeader, TxRejected, bad params, or the
//                                         connection was refused: nothing reached the node)
//    anything else (timeout, Unavailable, a dropped connection, no receipt in time) -> info
//  get  = quorate_getValue(key, 'linearizable')        (register)
//  read = quorate_getList(key, 'linearizable')         (append)
//  read = every balance at one block number in one batch (bank): eth_blockNumber N, then a batch of
//         eth_getBalance(account, N), then eth_blockNumber again. A node that keeps state at the head
//         only answers NotFound once the head moved past N, and may tear a read when a block applies
//         during the batch; the read is retried unless the head was N before and after, so every
//         successful read is the state after one block. CAVEAT: that is the best a head-only node
//         allows (a block applied and the head advanced between our last read and the second
//         eth_blockNumber is caught; a state write visible before its head update is not). With
//         historical state (eth_getBalance at any past block), the read at N is exact.
//
// Every transaction whose receipt a client saw is "acknowledged": the chain checker requires it in
// the final chain exactly once.

import { sleep } from './sleep.js';
import { RpcCallError } from '../rpc/client.js';
import { RpcErrorCode } from '../rpc/errors.js';
import type { NodeName } from './nemesis.js';
import { ConnectionRefusedError, JepsenRpc, type RpcTarget } from './rpc.js';
import type { ClientOutcome, JepsenClient, OpRequest } from './workload.js';

/** How often a client asks for a receipt it waits for. */
export const RECEIPT_POLL_MS = 25;
/** A bank read retries at a newer head this many times before it gives up (fail: nothing was read). */
export const BANK_READ_ATTEMPTS = 20;
/** Per JSON-RPC call; the operation as a whole is bounded by the runner's opTimeoutMs. */
export const CLIENT_CALL_TIMEOUT_MS = 10_000;

/** JSON-RPC errors that mean the node refused the request before accepting anything. */
const REFUSED_BEFORE_ACCEPTANCE = new Set<number>([
  RpcErrorCode.ParseError,
  RpcErrorCode.InvalidRequest,
  RpcErrorCode.MethodNotFound,
  RpcErrorCode.InvalidParams,
  RpcErrorCode.NotLeader,
  RpcErrorCode.NoLeader,
  RpcErrorCode.TxRejected,
  RpcErrorCode.PrivacyRecipientUnavailable,
  RpcErrorCode.PrivacyUnavailable,
  RpcErrorCode.LimitExceeded,
]);

/** What clients share: the route to each slot and the acknowledged transactions. */
export interface ClientContext {
  targetOf(slot: NodeName): RpcTarget;
  /** The slot whose node can sign for `account` (bank transfers). */
  slotOfAccount(account: string): NodeName | undefined;
  /** Called with every transaction hash whose receipt a client saw. */
  acknowledge(txHash: string): void;
  /** The accounts the bank workload moves money between (read all at once). */
  readonly bankAccounts: readonly string[];
}

interface Receipt {
  status: string;
  reason?: string;
  blockNumber: string;
}

function field(v: unknown, name: string): unknown {
  return typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[name] : undefined;
}

function describe(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** `fail` when the error proves nothing happened, else `info`. */
function outcomeOfError(err: unknown): ClientOutcome {
  if (err instanceof ConnectionRefusedError) return { type: 'fail', error: describe(err) };
  if (err instanceof RpcCallError && REFUSED_BEFORE_ACCEPTANCE.has(err.code))
    return { type: 'fail', error: describe(err) };
  return { type: 'info', error: describe(err) };
}

function isUnknownAccount(err: unknown): boolean {
  return (
    err instanceof RpcCallError &&
    err.code === RpcErrorCode.TxRejected &&
    field(err.data, 'reason') === 'TX_UNKNOWN_ACCOUNT'
  );
}

/**
 * One client process bound to one slot. The `from` account of register/append writes is the node's
 * own (asked once with quorate_accounts, and again when a fresh node took the slot).
 */
export class RpcJepsenClient implements JepsenClient {
  private readonly rpc: JepsenRpc;
  private account: string | undefined;
  private readonly others = new Map<NodeName, JepsenRpc>();

  constructor(
    readonly slot: NodeName,
    private readonly ctx: ClientContext,
  ) {
    this.rpc = new JepsenRpc(ctx.targetOf(slot), { timeoutMs: CLIENT_CALL_TIMEOUT_MS });
  }

  async invoke(op: OpRequest, signal: AbortSignal): Promise<ClientOutcome> {
    const v = op.value;
    const key = field(v, 'key') as string;
    switch (op.f) {
      case 'put':
        return this.write(this.rpc, undefined, [{ type: 'put', key, value: field(v, 'value') }], signal, () => ({
          key,
          value: field(v, 'value'),
        }));
      case 'cas':
        return this.write(
          this.rpc,
          undefined,
          [{ type: 'cas', key, expect: field(v, 'expect'), value: field(v, 'value') }],
          signal,
          (status) => ({ key, expect: field(v, 'expect'), value: field(v, 'value'), swapped: status }),
          true,
        );
      case 'append':
        return this.write(this.rpc, undefined, [{ type: 'append', key, value: field(v, 'value') }], signal, () => ({
          key,
          value: field(v, 'value'),
        }));
      case 'get':
        return this.read(signal, async () => ({
          key,
          value: await this.rpc.call<string | null>('quorate_getValue', [key, 'linearizable'], signal),
        }));
      case 'read':
        if (v === null) return this.bankRead(signal);
        return this.read(signal, async () => ({
          key,
          value: await this.rpc.call<string[]>('quorate_getList', [key, 'linearizable'], signal),
        }));
      case 'private-put':
        return this.privatePut(key, field(v, 'value') as string, signal);
      case 'transfer': {
        const from = field(v, 'from') as string;
        const slot = this.ctx.slotOfAccount(from);
        if (slot === undefined) return { type: 'fail', error: `no node holds a key for ${from}` };
        return this.write(
          this.rpcFor(slot),
          from,
          [{ type: 'transfer', to: field(v, 'to'), amount: field(v, 'amount') }],
          signal,
          () => v,
        );
      }
      default:
        return { type: 'fail', error: `unknown operation ${op.f}` };
    }
  }

  /**
   * A put private to this node and one other member (picked from the replicated membership by the
   * key, so the choice is spread). The ok value names both parties for the privacy checker.
   */
  private async privatePut(key: string, value: string, signal: AbortSignal): Promise<ClientOutcome> {
    let parties: { self: string; other: string; otherKey: string };
    try {
      const status = await this.rpc.call<{ raftId: number }>('raft_status', [], signal);
      const members = await this.rpc.call<Array<{ raftId: number; nodeId: string; enclaveKeys?: string[] }>>(
        'raft_cluster',
        [],
        signal,
      );
      const self = members.find((m) => m.raftId === status.raftId);
      const others = members.filter((m) => m.raftId !== status.raftId && (m.enclaveKeys?.length ?? 0) > 0);
      if (!self || others.length === 0) return { type: 'fail', error: 'no other member with an enclave key' };
      let h = 0;
      for (const c of key) h = (h * 31 + c.charCodeAt(0)) >>> 0;
      const other = others[h % others.length];
      parties = { self: self.nodeId, other: other.nodeId, otherKey: other.enclaveKeys![0] };
    } catch (err) {
      return outcomeOfError(err);
    }
    return this.write(
      this.rpc,
      undefined,
      [{ type: 'put', key, value }],
      signal,
      () => ({ key, value, parties: [parties.self, parties.other] }),
      false,
      [parties.otherKey],
    );
  }

  /** The bank's `from` decides the node; other ops use this client's own node. */
  private rpcFor(slot: NodeName): JepsenRpc {
    if (slot === this.slot) return this.rpc;
    let c = this.others.get(slot);
    if (c === undefined) {
      c = new JepsenRpc(this.ctx.targetOf(slot), { timeoutMs: CLIENT_CALL_TIMEOUT_MS });
      this.others.set(slot, c);
    }
    return c;
  }

  private async read(_signal: AbortSignal, f: () => Promise<unknown>): Promise<ClientOutcome> {
    try {
      return { type: 'ok', value: await f() };
    } catch (err) {
      // A read changes nothing: fail and info mean the same to the checkers; keep the distinction honest anyway.
      return outcomeOfError(err);
    }
  }

  private async bankRead(signal: AbortSignal): Promise<ClientOutcome> {
    const accounts = this.ctx.bankAccounts;
    try {
      for (let attempt = 0; attempt < BANK_READ_ATTEMPTS && !signal.aborted; attempt++) {
        const head = await this.rpc.call<string>('eth_blockNumber', [], signal);
        const answers = await this.rpc.batch(
          accounts.map((a) => ({ method: 'eth_getBalance', params: [a, head] })),
          signal,
        );
        // The node runs a batch's calls concurrently and, until it keeps historical state, reads the
        // head's state: a block applied during the batch could tear the read. The head asked again
        // afterwards must still be N, so no block was applied while the balances were read.
        const after = answers.every((a) => a.error === undefined)
          ? await this.rpc.call<string>('eth_blockNumber', [], signal)
          : undefined;
        if (after !== undefined && after !== head) continue;
        if (answers.every((a) => a.error === undefined)) {
          return {
            type: 'ok',
            value: {
              block: Number(BigInt(head)),
              balances: Object.fromEntries(accounts.map((a, i) => [a, BigInt(answers[i].result as string).toString()])),
            },
          };
        }
        const bad = answers.find((a) => a.error !== undefined)!.error!;
        if (bad.code !== RpcErrorCode.NotFound) return outcomeOfError(bad);
      }
      return { type: 'fail', error: `the head moved during each of ${BANK_READ_ATTEMPTS} reads` };
    } catch (err) {
      return outcomeOfError(err);
    }
  }

  private async write(
    rpc: JepsenRpc,
    from: string | undefined,
    ops: unknown[],
    signal: AbortSignal,
    okValue: (applied: boolean) => unknown,
    isCas = false,
    privateFor?: string[],
  ): Promise<ClientOutcome> {
    let hash: string;
    try {
      const sender = from ?? (await this.ownAccount(signal));
      hash = await rpc.call<string>(
        'quorate_sendTransaction',
        [{ from: sender, ops, ...(privateFor ? { privateFor } : {}) }],
        signal,
      );
    } catch (err) {
      if (isUnknownAccount(err) && from === undefined) this.account = undefined; // a fresh node took the slot
      return outcomeOfError(err);
    }
    // Accepted: from here on the outcome is unknown until a receipt is seen.
    for (;;) {
      if (signal.aborted) return { type: 'info', error: `no receipt for ${hash} in time` };
      let receipt: Receipt | null = null;
      try {
        receipt = await rpc.call<Receipt | null>('eth_getTransactionReceipt', [hash], signal);
      } catch {
        // The node may be down or partitioned; keep asking until the runner gives up (info).
      }
      if (receipt !== null) {
        this.ctx.acknowledge(hash);
        const applied = receipt.status === '0x1';
        if (applied) return { type: 'ok', value: withTx(okValue(true), hash) };
        if (isCas) return { type: 'ok', value: withTx(okValue(false), hash) };
        return { type: 'fail', error: `committed with status 0: ${receipt.reason ?? 'no reason given'} (tx ${hash})` };
      }
      await sleep(RECEIPT_POLL_MS, signal);
    }
  }

  private async ownAccount(signal: AbortSignal): Promise<string> {
    if (this.account === undefined) {
      const accounts = await this.rpc.call<string[]>('quorate_accounts', [], signal);
      // Not a refusal of the operation: recorded as info, like any other surprise.
      if (accounts.length === 0) throw new Error(`${this.rpc.label} holds no account`);
      this.account = accounts[0];
    }
    return this.account;
  }

  close(): void {
    this.rpc.close();
    for (const c of this.others.values()) c.close();
  }
}

function withTx(value: unknown, tx: string): unknown {
  return typeof value === 'object' && value !== null ? { ...(value as object), tx } : value;
}
