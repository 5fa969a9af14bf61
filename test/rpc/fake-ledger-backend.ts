// FakeLedgerBackend: the TEST DOUBLE of NodeRpcBackend, for testing the RPC layer itself
// (parsing, dispatch, error mapping, formatting, limits). It is a tiny deterministic ledger held
// in memory — one block per accepted transaction, a fixed membership, no Raft, no signatures —
// and it is not, and must never be used as, the product's backend (node/ wires the real one).
//
// It behaves honestly where the RPC layer's behaviour depends on it: it throws the same typed
// NodeErrors the node throws (nonce, unknown account, not found, membership), and with
// `quorum = false` a linearizable read waits (like a ReadIndex that cannot complete) until the
// call's AbortSignal fires.

import { createHash } from 'node:crypto';
import { NodeError, NodeErrorCode } from '../../node/errors.js';
import type {
  BlockTag,
  BlockView,
  CallContext,
  ClusterMember,
  HealthView,
  Hex,
  NewMemberInfo,
  NodeRpcBackend,
  Op,
  RaftRoleName,
  RaftStatusView,
  ReadTag,
  ReceiptView,
  SendTransactionRequest,
  TransactionView,
} from '../../node/rpc/backend.js';

function sha256Hex(text: string): Hex {
  return `0x${createHash('sha256').update(text).digest('hex')}`;
}

interface FakeBlock {
  readonly view: BlockView;
  readonly state: ReadonlyMap<string, string>;
  readonly lists: ReadonlyMap<string, readonly string[]>;
  readonly balances: ReadonlyMap<Hex, bigint>;
  readonly nonces: ReadonlyMap<Hex, number>;
}

export const FAKE_CHAIN_ID = 1337;
export const FAKE_PAYLOAD_HASH = `0x${'ab'.repeat(64)}`;

export class FakeLedgerBackend implements NodeRpcBackend {
  /** When false: no leader, linearizable reads wait until aborted, health is 503. */
  quorum = true;
  /** Addresses this "node" holds keys for. */
  readonly accountList: Hex[];
  private readonly blocks: FakeBlock[] = [];
  private readonly txs = new Map<Hex, { view: TransactionView; receipt: ReceiptView }>();
  private readonly members: { raftId: number; nodeId: string; p2pAddress: string; rpcUrl: string; learner: boolean }[] =
    [];
  private nextRaftId: number;
  private leaderId = 1;
  private term = 1;

  constructor(options: {
    accounts: readonly Hex[];
    initialBalance: bigint;
    members?: number;
    rpcUrls?: readonly string[];
  }) {
    this.accountList = [...options.accounts];
    const n = options.members ?? 3;
    for (let i = 1; i <= n; i++) {
      this.members.push({
        raftId: i,
        nodeId: `node-${i}`,
        p2pAddress: `/ip4/127.0.0.1/tcp/${30302 + i}`,
        rpcUrl: options.rpcUrls?.[i - 1] ?? `http://127.0.0.1:${8544 + i}/`,
        learner: false,
      });
    }
    this.nextRaftId = n + 1;
    const balances = new Map(this.accountList.map((a) => [a, options.initialBalance] as const));
    this.pushBlock([], new Map(), new Map(), balances, new Map());
  }

  private pushBlock(
    txs: TransactionView[],
    state: Map<string, string>,
    lists: Map<string, readonly string[]>,
    balances: Map<Hex, bigint>,
    nonces: Map<Hex, number>,
  ): BlockView {
    const number = this.blocks.length;
    const parentHash = number === 0 ? `0x${'00'.repeat(32)}` : this.blocks[number - 1].view.hash;
    const hash = sha256Hex(`block:${number}:${parentHash}:${txs.map((t) => t.hash).join(',')}`);
    const view: BlockView = {
      number,
      hash,
      parentHash,
      timestampMs: 1_700_000_000_000 + number * 50,
      proposer: this.leaderId,
      raftTerm: this.term,
      stateRoot: sha256Hex(`state:${number}`),
      transactionsRoot: sha256Hex(`txs:${number}`),
      sizeBytes: 100 + txs.length * 100,
      transactions: txs.map((t) => ({ ...t, blockHash: hash, blockNumber: number, transactionIndex: 0 })),
    };
    this.blocks.push({ view, state, lists, balances, nonces });
    return view;
  }

  /** Points a member at an RPC URL known only once a server is listening. */
  setMemberRpcUrl(raftId: number, rpcUrl: string): void {
    const m = this.members.find((x) => x.raftId === raftId);
    if (!m) throw new Error(`no member ${raftId}`);
    m.rpcUrl = rpcUrl;
  }

  private head(): FakeBlock {
    return this.blocks[this.blocks.length - 1];
  }

  private at(tag: BlockTag): FakeBlock {
    if (tag === 'latest') return this.head();
    if (tag === 'earliest') return this.blocks[0];
    const b = this.blocks[tag];
    if (!b)
      throw new NodeError(NodeErrorCode.NotFound, `block ${tag} does not exist (head is ${this.blocks.length - 1})`, {
        head: this.blocks.length - 1,
      });
    return b;
  }

  private async readAt(tag: ReadTag, ctx: CallContext): Promise<FakeBlock> {
    if (tag !== 'linearizable') return this.at(tag);
    if (!this.quorum) {
      // Like a ReadIndex that cannot gather a quorum: wait until the caller gives up.
      await new Promise<never>((_, reject) => {
        ctx.signal.addEventListener('abort', () => reject(ctx.signal.reason), { once: true });
      });
    }
    return this.head();
  }

  // --- Raft -------------------------------------------------------------------------------
  async raftLeader(): Promise<string> {
    if (!this.quorum) throw new NodeError(NodeErrorCode.NoLeader, 'no leader is known; an election is in progress');
    return this.members.find((m) => m.raftId === this.leaderId)!.nodeId;
  }
  async raftRole(): Promise<RaftRoleName> {
    return this.leaderId === 1 ? 'leader' : 'follower';
  }
  async raftCluster(): Promise<readonly ClusterMember[]> {
    return this.members.map((m) => ({
      raftId: m.raftId,
      nodeId: m.nodeId,
      p2pAddress: m.p2pAddress,
      rpcUrl: m.rpcUrl,
      tmUrl: m.rpcUrl.replace(/:\d+\/?$/, ':9001/'),
      enclaveKeys: [],
      role: m.learner ? 'learner' : 'verifier',
      isLeader: m.raftId === this.leaderId,
    }));
  }
  async raftStatus(): Promise<RaftStatusView> {
    return {
      raftId: 1,
      term: this.term,
      role: await this.raftRole(),
      leader: this.quorum ? this.leaderId : null,
      commitIndex: this.blocks.length + 2,
      appliedIndex: this.blocks.length + 2,
      voters: this.members.filter((m) => !m.learner).map((m) => m.raftId),
      learners: this.members.filter((m) => m.learner).map((m) => m.raftId),
      joint: false,
    };
  }
  private addMember(info: NewMemberInfo, learner: boolean): number {
    if (this.members.some((m) => m.p2pAddress === info.p2pAddress)) {
      throw new NodeError(NodeErrorCode.MembershipChangeInvalid, `${info.p2pAddress} is already a member`);
    }
    const raftId = this.nextRaftId++;
    this.members.push({
      raftId,
      nodeId: `node-${raftId}`,
      p2pAddress: info.p2pAddress,
      rpcUrl: info.rpcUrl ?? '',
      learner,
    });
    return raftId;
  }
  async raftAddPeer(info: NewMemberInfo): Promise<number> {
    return this.addMember(info, false);
  }
  async raftAddLearner(info: NewMemberInfo): Promise<number> {
    return this.addMember(info, true);
  }
  private member(raftId: number): { learner: boolean; raftId: number } {
    const m = this.members.find((x) => x.raftId === raftId);
    if (!m) throw new NodeError(NodeErrorCode.MembershipChangeInvalid, `raftId ${raftId} is not a member`, { raftId });
    return m;
  }
  async raftPromoteToPeer(raftId: number): Promise<void> {
    const m = this.member(raftId);
    if (!m.learner)
      throw new NodeError(NodeErrorCode.MembershipChangeInvalid, `raftId ${raftId} is not a learner`, { raftId });
    m.learner = false;
  }
  async raftRemovePeer(raftId: number): Promise<void> {
    this.member(raftId);
    this.members.splice(
      this.members.findIndex((x) => x.raftId === raftId),
      1,
    );
  }
  async raftTransferLeadership(raftId: number): Promise<void> {
    const m = this.member(raftId);
    if (m.learner)
      throw new NodeError(NodeErrorCode.MembershipChangeInvalid, `raftId ${raftId} is a learner and cannot lead`, {
        raftId,
      });
    this.leaderId = raftId;
    this.term += 1;
  }

  // --- Chain ------------------------------------------------------------------------------
  async chainId(): Promise<number> {
    return FAKE_CHAIN_ID;
  }
  async networkId(): Promise<number> {
    return FAKE_CHAIN_ID;
  }
  async blockNumber(): Promise<number> {
    return this.blocks.length - 1;
  }
  async getBlockByNumber(tag: BlockTag): Promise<BlockView | null> {
    if (typeof tag === 'number' && tag >= this.blocks.length) return null;
    return this.at(tag).view;
  }
  async getBlockByHash(hash: Hex): Promise<BlockView | null> {
    return this.blocks.find((b) => b.view.hash === hash)?.view ?? null;
  }
  async getTransactionByHash(hash: Hex): Promise<TransactionView | null> {
    return this.txs.get(hash)?.view ?? null;
  }
  async getTransactionReceipt(hash: Hex): Promise<ReceiptView | null> {
    return this.txs.get(hash)?.receipt ?? null;
  }
  async getBalance(address: Hex, tag: BlockTag): Promise<bigint> {
    return this.at(tag).balances.get(address) ?? 0n;
  }
  async getTransactionCount(address: Hex, tag: BlockTag): Promise<number> {
    return this.at(tag).nonces.get(address) ?? 0;
  }
  async peerCount(): Promise<number> {
    return this.members.length - 1;
  }
  async getQuorumPayload(payloadHash: Hex): Promise<Uint8Array> {
    // This fake is a party to exactly one payload.
    return payloadHash === FAKE_PAYLOAD_HASH ? new Uint8Array([1, 2, 3]) : new Uint8Array(0);
  }

  // --- quorate_ ---------------------------------------------------------------------------
  async sendTransaction(request: SendTransactionRequest): Promise<Hex> {
    if (!this.accountList.includes(request.from)) {
      throw new NodeError(NodeErrorCode.TxUnknownAccount, `this node holds no key for ${request.from}`, {
        from: request.from,
      });
    }
    if (request.privateFor)
      throw new NodeError(NodeErrorCode.PrivacyUnavailable, 'this test double has no transaction manager');
    const prev = this.head();
    const nonce = prev.nonces.get(request.from) ?? 0;
    const state = new Map(prev.state);
    const lists = new Map<string, string[]>([...prev.lists].map(([k, v]) => [k, [...v]]));
    const balances = new Map(prev.balances);
    const nonces = new Map(prev.nonces).set(request.from, nonce + 1);
    const reason = applyOps(request.from, request.ops, state, lists, balances);
    const hash = sha256Hex(`tx:${request.from}:${nonce}:${JSON.stringify(request.ops)}`);
    const pending: TransactionView = {
      hash,
      from: request.from,
      nonce,
      blockHash: null,
      blockNumber: null,
      transactionIndex: null,
      isPrivate: false,
      ops: request.ops,
    };
    // All or nothing: a failed transaction still uses its nonce but changes no state.
    const block =
      reason === null
        ? this.pushBlock([pending], state, lists, balances, nonces)
        : this.pushBlock(
            [pending],
            new Map(prev.state),
            new Map<string, string[]>([...prev.lists].map(([k, v]) => [k, [...v]])),
            new Map(prev.balances),
            nonces,
          );
    const view = block.transactions[0];
    const receipt: ReceiptView = {
      transactionHash: hash,
      transactionIndex: 0,
      blockHash: block.hash,
      blockNumber: block.number,
      from: request.from,
      status: reason === null,
      ...(reason === null ? {} : { reason }),
      isPrivate: false,
    };
    this.txs.set(hash, { view, receipt });
    return hash;
  }
  async sendRawTransaction(encoded: Uint8Array): Promise<Hex> {
    throw new NodeError(
      NodeErrorCode.TxMalformed,
      `cannot decode a ${encoded.length}-byte transaction (the test double has no codec)`,
    );
  }
  async getValue(key: string, tag: ReadTag, ctx: CallContext): Promise<string | null> {
    return (await this.readAt(tag, ctx)).state.get(key) ?? null;
  }
  async getList(key: string, tag: ReadTag, ctx: CallContext): Promise<readonly string[]> {
    return (await this.readAt(tag, ctx)).lists.get(key) ?? [];
  }
  async getPrivateValue(): Promise<string | null> {
    return null;
  }
  async accounts(): Promise<readonly Hex[]> {
    return this.accountList;
  }
  async health(): Promise<HealthView> {
    return {
      ok: this.quorum,
      role: await this.raftRole(),
      term: this.term,
      head: this.blocks.length - 1,
      peers: this.members.length - 1,
      ...(this.quorum ? {} : { reason: 'no leader' }),
    };
  }
}

/** Returns null on success, or why the transaction failed. Mutates the maps given. */
function applyOps(
  from: Hex,
  ops: readonly Op[],
  state: Map<string, string>,
  lists: Map<string, string[]>,
  balances: Map<Hex, bigint>,
): string | null {
  for (const op of ops) {
    switch (op.type) {
      case 'transfer': {
        const amount = BigInt(op.amount);
        const have = balances.get(from) ?? 0n;
        if (have < amount) return `insufficient balance: ${have} < ${amount}`;
        balances.set(from, have - amount);
        balances.set(op.to, (balances.get(op.to) ?? 0n) + amount);
        break;
      }
      case 'put':
        state.set(op.key, op.value);
        break;
      case 'delete':
        state.delete(op.key);
        break;
      case 'cas':
        if ((state.get(op.key) ?? null) !== op.expect) return `cas failed on ${op.key}`;
        state.set(op.key, op.value);
        break;
      case 'append':
        lists.set(op.key, [...(lists.get(op.key) ?? []), op.value]);
        break;
    }
  }
  return null;
}
