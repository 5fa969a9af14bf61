// The JSON-RPC backend of a real node: answers each RPC from a QuorateNode. The RPC layer
// (node/rpc/) has already validated parameters; this file turns domain objects into the views
// the RPC layer formats.

import {
  toHex,
  type Block,
  type Op as ChainOp,
  type Receipt,
  type Transaction,
  type TxLocation,
} from './chain/index.js';
import type { ExpectedIdentity } from './control.js';
import { NodeError, NodeErrorCode } from './errors.js';
import { toNodeError } from './error-map.js';
import { findMember } from './membership.js';
import type { QuorateNode } from './node.js';
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
  PrivateCatchUpView,
  ReadTag,
  ReceiptView,
  SendTransactionRequest,
  TransactionView,
} from './rpc/backend.js';

export class NodeBackend implements NodeRpcBackend {
  constructor(private readonly node: QuorateNode) {}

  // --- Raft
  async raftLeader(): Promise<string> {
    const s = this.node.status();
    const leader = s.leader === null ? undefined : findMember(this.node.membership, s.leader);
    if (!leader)
      throw new NodeError(
        NodeErrorCode.NoLeader,
        'no leader is known: an election is in progress or there is no quorum',
      );
    return leader.name;
  }

  async raftRole(): Promise<RaftRoleName> {
    return this.node.status().role;
  }

  async raftCluster(): Promise<readonly ClusterMember[]> {
    const s = this.node.status();
    return this.node.membership.members
      .map((m) => ({
        raftId: m.raftId,
        nodeId: m.name,
        p2pAddress: `${m.p2pAddrs[0] ?? ''}/p2p/${m.peerId}`,
        rpcUrl: m.rpcUrl,
        tmUrl: m.tmUrl,
        enclaveKeys: [...m.enclaveKeys],
        role: this.node.roleOfMember(m.raftId) ?? (s.learners.includes(m.raftId) ? 'learner' : 'verifier'),
        isLeader: s.leader === m.raftId,
      }))
      .sort((a, b) => a.raftId - b.raftId);
  }

  async raftStatus(): Promise<RaftStatusView> {
    const s = this.node.status();
    return {
      raftId: s.raftId,
      term: s.term,
      role: s.role,
      leader: s.leader,
      commitIndex: s.commitIndex,
      appliedIndex: s.appliedIndex,
      voters: s.voters,
      learners: s.learners,
      joint: s.joint,
      ...this.catchUpField(),
    };
  }

  private catchUpField(): { privateCatchUp?: PrivateCatchUpView } {
    const c = this.node.privateCatchUp();
    return c
      ? {
          privateCatchUp: {
            privateThrough: c.privateThrough,
            blocksLeft: c.blocksLeft,
            blocksToFetch: c.blocksToFetch,
          },
        }
      : {};
  }

  // The optional { rpcUrl, tmUrl, enclavePublicKeys } pin the joiner's expected identity: a node
  // at that address announcing anything else is refused before the change is proposed (admin.ts).
  raftAddPeer(member: NewMemberInfo, ctx: CallContext): Promise<number> {
    return this.node.addPeer(member.p2pAddress, ctx.signal, expectedIdentity(member));
  }
  raftAddLearner(member: NewMemberInfo, ctx: CallContext): Promise<number> {
    return this.node.addLearner(member.p2pAddress, ctx.signal, expectedIdentity(member));
  }
  raftPromoteToPeer(raftId: number, ctx: CallContext): Promise<void> {
    return this.node.promoteToPeer(raftId, ctx.signal);
  }
  raftRemovePeer(raftId: number, ctx: CallContext): Promise<void> {
    return this.node.removePeer(raftId, ctx.signal);
  }
  raftTransferLeadership(raftId: number, ctx: CallContext): Promise<void> {
    return this.node.transferLeadership(raftId, ctx.signal);
  }

  // --- Chain
  async chainId(): Promise<number> {
    return this.node.chainId;
  }
  async networkId(): Promise<number> {
    return this.node.chainId;
  }
  async blockNumber(): Promise<number> {
    return this.node.chainState.head.header.number;
  }

  async getBlockByNumber(tag: BlockTag): Promise<BlockView | null> {
    const head = this.node.chainState.head.header.number;
    const n = tag === 'latest' ? head : tag === 'earliest' ? 0 : tag;
    // Above the head there is nothing to read: answer without a store lookup (clients that poll
    // for the next blocks ask for heights not reached yet many times a second).
    if (n > head) return null;
    const block = await this.node.store.getBlockByNumber(n);
    return block ? this.blockView(block) : null;
  }

  async getBlockByHash(hash: Hex): Promise<BlockView | null> {
    const block = await this.node.store.getBlockByHash(hexToBytes(hash));
    return block ? this.blockView(block) : null;
  }

  async getTransactionByHash(hash: Hex): Promise<TransactionView | null> {
    const found = await this.node.store.getTransaction(hexToBytes(hash));
    return found ? txView(found.tx, found.location) : null;
  }

  async getTransactionReceipt(hash: Hex): Promise<ReceiptView | null> {
    const h = hexToBytes(hash);
    const found = await this.node.store.getTransaction(h);
    if (!found) return null;
    // A party answers with its private receipt (the outcome of the private ops); others with the
    // public one, which only records that the transaction was included.
    // A private transaction this node has not replayed yet (catching up after a snapshot): its
    // private receipt, if it is a party, is not written yet; answering the public one would
    // show "included" where the party's outcome may be a failure.
    if (found.tx.privatePayloadHash) this.refuseWhileCatchingUp(found.location.blockNumber);
    const receipt: Receipt | undefined = found.tx.privatePayloadHash
      ? ((await this.node.store.getPrivateReceipt(h)) ?? (await this.node.store.getReceipt(h)))
      : await this.node.store.getReceipt(h);
    if (!receipt) return null;
    return {
      transactionHash: found.tx.hashHex,
      transactionIndex: found.location.index,
      blockHash: toHex(found.location.blockHash),
      blockNumber: found.location.blockNumber,
      from: found.tx.from,
      status: receipt.status === 1,
      ...(receipt.status === 1 ? {} : { reason: receipt.reason }),
      isPrivate: receipt.isPrivate,
    };
  }

  async getBalance(address: Hex, tag: BlockTag): Promise<bigint> {
    return this.read(() => this.node.store.getBalance(address.toLowerCase(), this.atBlock(tag)));
  }

  async getTransactionCount(address: Hex, tag: BlockTag): Promise<number> {
    return this.read(() => this.node.store.getNonce(address.toLowerCase(), this.atBlock(tag)));
  }

  async peerCount(): Promise<number> {
    return this.node.transport.connectedPeers().length;
  }

  async getQuorumPayload(payloadHash: Hex): Promise<Uint8Array> {
    const privacy = this.node.privacy;
    if (!privacy) throw new NodeError(NodeErrorCode.PrivacyUnavailable, 'this node has no transaction manager');
    const payload = await privacy.receive(hexToBytes(payloadHash));
    return payload ?? new Uint8Array(0);
  }

  // --- quorate_
  sendTransaction(request: SendTransactionRequest, ctx: CallContext): Promise<Hex> {
    return this.node.sendTransaction(
      {
        from: request.from,
        ops: request.ops.map(toChainOp),
        ...(request.privateFor ? { privateFor: request.privateFor } : {}),
      },
      ctx.signal,
    );
  }

  sendRawTransaction(encoded: Uint8Array, ctx: CallContext): Promise<Hex> {
    return this.node.submitRaw(encoded, ctx.signal);
  }

  async getValue(key: string, tag: ReadTag, ctx: CallContext): Promise<string | null> {
    const at = await this.readAt(tag, ctx);
    return this.read(() => this.node.store.getValue(key, at));
  }

  async getList(key: string, tag: ReadTag, ctx: CallContext): Promise<readonly string[]> {
    const at = await this.readAt(tag, ctx);
    return this.read(() => this.node.store.getList(key, undefined, undefined, at));
  }

  async getPrivateValue(key: string, tag: BlockTag): Promise<string | null> {
    this.refuseWhileCatchingUp();
    return this.read(() => this.node.store.getPrivateValue(key, this.atBlock(tag)));
  }

  async accounts(): Promise<readonly Hex[]> {
    return this.node.accounts;
  }

  async health(): Promise<HealthView> {
    const s = this.node.status();
    const reason = s.alarm ?? (s.leader === null ? 'no leader is known' : undefined);
    return {
      ok: reason === undefined,
      role: s.role,
      term: s.term,
      head: s.head,
      peers: s.peers,
      ...(reason ? { reason } : {}),
      ...this.catchUpField(),
    };
  }

  // --- helpers
  /**
   * After installing a snapshot this node's private state lags its head until the skipped
   * blocks' private transactions are replayed (QuorateNode.runCatchUp): a private read is refused
   * meanwhile, never answered from incomplete state. `blockNumber`: refuse only when that block
   * is not replayed yet.
   */
  private refuseWhileCatchingUp(blockNumber?: number): void {
    const c = this.node.privateCatchUp();
    if (!c || (blockNumber !== undefined && blockNumber <= c.privateThrough)) return;
    throw new NodeError(
      NodeErrorCode.Unavailable,
      `private state is catching up after a snapshot, ${c.blocksLeft} blocks left (${c.blocksToFetch} still to fetch from peers); retry later`,
      { privateThrough: c.privateThrough, blocksLeft: c.blocksLeft },
    );
  }

  /** 'linearizable' waits for the ReadIndex barrier and reads the latest state; other tags as atBlock. */
  private async readAt(tag: ReadTag, ctx: CallContext): Promise<number | undefined> {
    if (tag !== 'linearizable') return this.atBlock(tag);
    await this.node.readBarrier(ctx.signal);
    return undefined;
  }

  /** 'latest' → the latest state; a number (or 'earliest' = 0) → the state as of that block. */
  private atBlock(tag: BlockTag): number | undefined {
    return tag === 'latest' ? undefined : tag === 'earliest' ? 0 : tag;
  }

  /** Store errors a caller can act on (no such block yet, history not kept here) become NodeErrors. */
  private async read<T>(fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      throw toNodeError(err);
    }
  }

  private blockView(block: Block): BlockView {
    const h = block.header;
    return {
      number: h.number,
      hash: block.hashHex,
      parentHash: toHex(h.parentHash),
      timestampMs: h.timestampMs,
      proposer: h.minterId,
      raftTerm: h.raftTerm,
      stateRoot: toHex(h.stateRoot),
      transactionsRoot: toHex(h.txRoot),
      sizeBytes: block.transactions.reduce((n, t) => n + t.encoded.length, 0),
      transactions: block.transactions.map((tx, index) =>
        txView(tx, { blockHash: block.hash, blockNumber: h.number, index }),
      ),
    };
  }
}

function txView(tx: Transaction, location: TxLocation | undefined): TransactionView {
  return {
    hash: tx.hashHex,
    from: tx.from,
    nonce: tx.nonce,
    blockHash: location ? toHex(location.blockHash) : null,
    blockNumber: location ? location.blockNumber : null,
    transactionIndex: location ? location.index : null,
    isPrivate: tx.privatePayloadHash !== undefined,
    ...(tx.privatePayloadHash ? { input: toHex(tx.privatePayloadHash) } : { ops: tx.ops.map(fromChainOp) }),
  };
}

function toChainOp(op: Op): ChainOp {
  return op.type === 'transfer' ? { type: 'transfer', to: op.to.toLowerCase(), amount: BigInt(op.amount) } : op;
}

function fromChainOp(op: ChainOp): Op {
  return op.type === 'transfer' ? { type: 'transfer', to: op.to, amount: op.amount.toString() } : op;
}

function hexToBytes(hex: Hex): Uint8Array {
  return Uint8Array.from(Buffer.from(hex.replace(/^0x/, ''), 'hex'));
}

function expectedIdentity(member: NewMemberInfo): ExpectedIdentity | undefined {
  const { rpcUrl, tmUrl, enclavePublicKeys } = member;
  if (rpcUrl === undefined && tmUrl === undefined && enclavePublicKeys === undefined) return undefined;
  return {
    ...(rpcUrl !== undefined ? { rpcUrl } : {}),
    ...(tmUrl !== undefined ? { tmUrl } : {}),
    ...(enclavePublicKeys !== undefined ? { enclavePublicKeys } : {}),
  };
}
