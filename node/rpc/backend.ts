// What the JSON-RPC layer needs from the node: one method per RPC, typed, async.
//
// The RPC layer validates parameters and formats results (0x-hex quantities); the backend
// receives parsed values and returns domain values (numbers, bigints, hex strings for hashes
// and addresses). Operating errors are thrown as NodeError (node/errors.ts) and mapped to
// JSON-RPC codes in node/rpc/errors.ts; anything else thrown is treated as a bug (-32603).
//
// Every call receives a CallContext whose `signal` aborts when the per-request timeout fires
// or the server stops: a backend that waits (for a commit, a ReadIndex, a remote party)
// must stop waiting then. Aborting a wait does not undo a submission: the client is told the
// outcome is unknown (-32002).

/** 0x-prefixed lowercase hex. */
export type Hex = string;

export interface CallContext {
  readonly signal: AbortSignal;
}

/** A block selector. Numbers are block numbers (< 2^53). */
export type BlockTag = 'latest' | 'earliest' | number;
/** A state read selector: a block, or a linearizable read through the leader (ReadIndex). */
export type ReadTag = BlockTag | 'linearizable';

export type RaftRoleName = 'leader' | 'follower' | 'candidate' | 'learner';

export interface ClusterMember {
  readonly raftId: number;
  readonly nodeId: string;
  readonly p2pAddress: string;
  readonly rpcUrl: string;
  /** The member's transaction manager (Tessera-shaped REST). */
  readonly tmUrl: string;
  /** Its enclave public keys (base64), as published in the replicated membership. */
  readonly enclaveKeys: readonly string[];
  readonly role: 'verifier' | 'learner';
  readonly isLeader: boolean;
}

export interface RaftStatusView {
  readonly raftId: number;
  readonly term: number;
  readonly role: RaftRoleName;
  /** The leader's raftId, or null when none is known. */
  readonly leader: number | null;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly voters: readonly number[];
  readonly learners: readonly number[];
  readonly joint: boolean;
  /** Present while the node catches up after a snapshot (private reads are refused meanwhile). */
  readonly privateCatchUp?: PrivateCatchUpView;
}

/** How far a node's private state lags its head after installing a peer's snapshot. */
export interface PrivateCatchUpView {
  /** The private state reflects blocks up to this height. */
  readonly privateThrough: number;
  /** Blocks whose private transactions are still to replay. */
  readonly blocksLeft: number;
  /** Of those, blocks still to fetch from peers. */
  readonly blocksToFetch: number;
}

/** What raft_addPeer / raft_addLearner take besides the p2p address (all optional). */
export interface NewMemberInfo {
  readonly p2pAddress: string;
  readonly rpcUrl?: string;
  readonly tmUrl?: string;
  /** The member's enclave public keys (base64), published through the replicated membership. */
  readonly enclavePublicKeys?: readonly string[];
}

// --- the ledger application's ops (docs/interface.md) ----------------------------------------
export type Op =
  | { readonly type: 'transfer'; readonly to: Hex; readonly amount: string }
  | { readonly type: 'put'; readonly key: string; readonly value: string }
  | { readonly type: 'delete'; readonly key: string }
  | { readonly type: 'cas'; readonly key: string; readonly expect: string | null; readonly value: string }
  | { readonly type: 'append'; readonly key: string; readonly value: string };

export interface SendTransactionRequest {
  readonly from: Hex;
  readonly ops: readonly Op[];
  /** Enclave public keys (base64) of the parties; absent for a public transaction. */
  readonly privateFor?: readonly string[];
}

export interface TransactionView {
  readonly hash: Hex;
  readonly from: Hex;
  readonly nonce: number;
  /** Null while pending (not yet in a block). */
  readonly blockHash: Hex | null;
  readonly blockNumber: number | null;
  readonly transactionIndex: number | null;
  readonly isPrivate: boolean;
  /** Public transaction: its ops. */
  readonly ops?: readonly Op[];
  /** Private transaction: the 64-byte payload hash, 0x-hex, in place of ops. */
  readonly input?: Hex;
}

export interface ReceiptView {
  readonly transactionHash: Hex;
  readonly transactionIndex: number;
  readonly blockHash: Hex;
  readonly blockNumber: number;
  readonly from: Hex;
  readonly status: boolean;
  /** Why the transaction failed (status false). */
  readonly reason?: string;
  readonly isPrivate: boolean;
}

export interface BlockView {
  readonly number: number;
  readonly hash: Hex;
  readonly parentHash: Hex;
  /** Stamped by the minter (ms since the Unix epoch). */
  readonly timestampMs: number;
  /** raftId of the minter. */
  readonly proposer: number;
  /** The Raft term the block was minted in. */
  readonly raftTerm: number;
  readonly stateRoot: Hex;
  readonly transactionsRoot: Hex;
  readonly sizeBytes: number;
  readonly transactions: readonly TransactionView[];
}

/** GET /health. `ok` false answers 503 (stopping, no quorum known, storage failed...). */
export interface HealthView {
  readonly ok: boolean;
  readonly role: RaftRoleName;
  readonly term: number;
  /** Head block number. */
  readonly head: number;
  /** Connected cluster peers. */
  readonly peers: number;
  /** Why `ok` is false, for the operator. */
  readonly reason?: string;
  /** Present while the node catches up after a snapshot: public service is up, private reads wait. */
  readonly privateCatchUp?: PrivateCatchUpView;
}

export interface NodeRpcBackend {
  // --- Raft ---------------------------------------------------------------------------
  /** The leader's nodeId. Throws NodeError NoLeader when none is known. */
  raftLeader(ctx: CallContext): Promise<string>;
  raftRole(ctx: CallContext): Promise<RaftRoleName>;
  raftCluster(ctx: CallContext): Promise<readonly ClusterMember[]>;
  raftStatus(ctx: CallContext): Promise<RaftStatusView>;
  /** Resolves with the new raftId once the change has COMMITTED. */
  raftAddPeer(member: NewMemberInfo, ctx: CallContext): Promise<number>;
  raftAddLearner(member: NewMemberInfo, ctx: CallContext): Promise<number>;
  /** Each resolves once the change has committed (transfer: once the target leads). */
  raftPromoteToPeer(raftId: number, ctx: CallContext): Promise<void>;
  raftRemovePeer(raftId: number, ctx: CallContext): Promise<void>;
  raftTransferLeadership(raftId: number, ctx: CallContext): Promise<void>;

  // --- Chain --------------------------------------------------------------------------
  chainId(ctx: CallContext): Promise<number>;
  /** net_version: the network id (quorate uses the chain id). */
  networkId(ctx: CallContext): Promise<number>;
  blockNumber(ctx: CallContext): Promise<number>;
  /** Null when there is no such block. */
  getBlockByNumber(tag: BlockTag, ctx: CallContext): Promise<BlockView | null>;
  getBlockByHash(hash: Hex, ctx: CallContext): Promise<BlockView | null>;
  getTransactionByHash(hash: Hex, ctx: CallContext): Promise<TransactionView | null>;
  /** Null until the transaction has committed. */
  getTransactionReceipt(hash: Hex, ctx: CallContext): Promise<ReceiptView | null>;
  /** State reads at a numeric tag beyond the head throw NodeError NotFound (blocks answer null instead). */
  getBalance(address: Hex, tag: BlockTag, ctx: CallContext): Promise<bigint>;
  /** The next nonce of `address` at `tag`. */
  getTransactionCount(address: Hex, tag: BlockTag, ctx: CallContext): Promise<number>;
  peerCount(ctx: CallContext): Promise<number>;
  /** The private payload (bytes), or an empty array where this node is not a party. */
  getQuorumPayload(payloadHash: Hex, ctx: CallContext): Promise<Uint8Array>;

  // --- quorate_ -----------------------------------------------------------------------
  /** Signs with a key this node holds; resolves with the hash once ACCEPTED (not committed). */
  sendTransaction(request: SendTransactionRequest, ctx: CallContext): Promise<Hex>;
  sendRawTransaction(encoded: Uint8Array, ctx: CallContext): Promise<Hex>;
  getValue(key: string, tag: ReadTag, ctx: CallContext): Promise<string | null>;
  getList(key: string, tag: ReadTag, ctx: CallContext): Promise<readonly string[]>;
  getPrivateValue(key: string, tag: BlockTag, ctx: CallContext): Promise<string | null>;
  accounts(ctx: CallContext): Promise<readonly Hex[]>;

  // --- process ------------------------------------------------------------------------
  health(ctx: CallContext): Promise<HealthView>;
}
