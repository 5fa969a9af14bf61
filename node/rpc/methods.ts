// The JSON-RPC method table of docs/interface.md. Each entry parses its positional parameters
// strictly (node/rpc/params.ts), calls one NodeRpcBackend method, and formats the result the
// way Ethereum clients expect (0x-hex quantities, null for "not found").

import type { BlockView, CallContext, NodeRpcBackend, ReceiptView, TransactionView } from './backend.js';
import {
  PARAM_LIMITS,
  bytesToHex,
  parseAddress,
  parseBlockTag,
  parseBoolean,
  parseHash32,
  parseHash64,
  parseHexData,
  parseNewMember,
  parseRaftId,
  parseReadTag,
  parseSendTransaction,
  parseString,
  positional,
  quantity,
} from './params.js';

export type RpcMethod = (backend: NodeRpcBackend, params: unknown, ctx: CallContext) => Promise<unknown>;

/** No parameters allowed. */
function none(name: string, call: (b: NodeRpcBackend, ctx: CallContext) => Promise<unknown>): RpcMethod {
  return async (b, params, ctx) => {
    positional(params, 0, 0, `${name}()`);
    return call(b, ctx);
  };
}

export function formatTransaction(tx: TransactionView): Record<string, unknown> {
  const out: Record<string, unknown> = {
    hash: tx.hash,
    from: tx.from,
    nonce: quantity(tx.nonce),
    blockHash: tx.blockHash,
    blockNumber: tx.blockNumber === null ? null : quantity(tx.blockNumber),
    transactionIndex: tx.transactionIndex === null ? null : quantity(tx.transactionIndex),
    isPrivate: tx.isPrivate,
  };
  if (tx.isPrivate) out.input = tx.input ?? null;
  else out.ops = tx.ops ?? [];
  return out;
}

export function formatBlock(block: BlockView, fullTransactions: boolean): Record<string, unknown> {
  return {
    number: quantity(block.number),
    hash: block.hash,
    parentHash: block.parentHash,
    // Ethereum's `timestamp` is in seconds; the minter stamps milliseconds, kept in timestampMs.
    timestamp: quantity(Math.floor(block.timestampMs / 1000)),
    timestampMs: quantity(block.timestampMs),
    proposer: quantity(block.proposer),
    raftTerm: quantity(block.raftTerm),
    stateRoot: block.stateRoot,
    transactionsRoot: block.transactionsRoot,
    size: quantity(block.sizeBytes),
    transactions: fullTransactions ? block.transactions.map(formatTransaction) : block.transactions.map((t) => t.hash),
  };
}

export function formatReceipt(r: ReceiptView): Record<string, unknown> {
  const out: Record<string, unknown> = {
    transactionHash: r.transactionHash,
    transactionIndex: quantity(r.transactionIndex),
    blockHash: r.blockHash,
    blockNumber: quantity(r.blockNumber),
    from: r.from,
    status: r.status ? '0x1' : '0x0',
    isPrivate: r.isPrivate,
  };
  if (!r.status) out.reason = r.reason ?? 'unknown';
  return out;
}

const KEY = PARAM_LIMITS.maxKeyBytes;

/** The table. Names are exactly docs/interface.md's. */
export const RPC_METHODS: ReadonlyMap<string, RpcMethod> = new Map<string, RpcMethod>([
  // --- raft_ ---------------------------------------------------------------------------
  ['raft_leader', none('raft_leader', (b, ctx) => b.raftLeader(ctx))],
  ['raft_role', none('raft_role', (b, ctx) => b.raftRole(ctx))],
  ['raft_cluster', none('raft_cluster', (b, ctx) => b.raftCluster(ctx))],
  ['raft_status', none('raft_status', (b, ctx) => b.raftStatus(ctx))],
  [
    'raft_addPeer',
    async (b, params, ctx) => {
      const p = positional(params, 1, 2, 'raft_addPeer(p2pAddress, { rpcUrl?, tmUrl?, enclavePublicKeys? }?)');
      return b.raftAddPeer(parseNewMember(p[0], p[1]), ctx);
    },
  ],
  [
    'raft_addLearner',
    async (b, params, ctx) => {
      const p = positional(params, 1, 2, 'raft_addLearner(p2pAddress, { rpcUrl?, tmUrl?, enclavePublicKeys? }?)');
      return b.raftAddLearner(parseNewMember(p[0], p[1]), ctx);
    },
  ],
  [
    'raft_promoteToPeer',
    async (b, params, ctx) => {
      const p = positional(params, 1, 1, 'raft_promoteToPeer(raftId)');
      await b.raftPromoteToPeer(parseRaftId(p[0]), ctx);
      return true;
    },
  ],
  [
    'raft_removePeer',
    async (b, params, ctx) => {
      const p = positional(params, 1, 1, 'raft_removePeer(raftId)');
      await b.raftRemovePeer(parseRaftId(p[0]), ctx);
      return true;
    },
  ],
  [
    'raft_transferLeadership',
    async (b, params, ctx) => {
      const p = positional(params, 1, 1, 'raft_transferLeadership(raftId)');
      await b.raftTransferLeadership(parseRaftId(p[0]), ctx);
      return true;
    },
  ],

  // --- eth_ / net_ ---------------------------------------------------------------------
  ['eth_chainId', none('eth_chainId', async (b, ctx) => quantity(await b.chainId(ctx)))],
  // net_version is a decimal string in Ethereum.
  ['net_version', none('net_version', async (b, ctx) => String(await b.networkId(ctx)))],
  ['eth_blockNumber', none('eth_blockNumber', async (b, ctx) => quantity(await b.blockNumber(ctx)))],
  ['net_peerCount', none('net_peerCount', async (b, ctx) => quantity(await b.peerCount(ctx)))],
  [
    'eth_getBlockByNumber',
    async (b, params, ctx) => {
      const p = positional(params, 1, 2, 'eth_getBlockByNumber(blockTag, fullTransactions?)');
      const tag = parseBlockTag(p[0]);
      const full = p[1] === undefined ? false : parseBoolean(p[1], 'fullTransactions');
      const block = await b.getBlockByNumber(tag, ctx);
      return block === null ? null : formatBlock(block, full);
    },
  ],
  [
    'eth_getBlockByHash',
    async (b, params, ctx) => {
      const p = positional(params, 1, 2, 'eth_getBlockByHash(blockHash, fullTransactions?)');
      const hash = parseHash32(p[0], 'blockHash');
      const full = p[1] === undefined ? false : parseBoolean(p[1], 'fullTransactions');
      const block = await b.getBlockByHash(hash, ctx);
      return block === null ? null : formatBlock(block, full);
    },
  ],
  [
    'eth_getTransactionByHash',
    async (b, params, ctx) => {
      const p = positional(params, 1, 1, 'eth_getTransactionByHash(txHash)');
      const tx = await b.getTransactionByHash(parseHash32(p[0], 'txHash'), ctx);
      return tx === null ? null : formatTransaction(tx);
    },
  ],
  [
    'eth_getTransactionReceipt',
    async (b, params, ctx) => {
      const p = positional(params, 1, 1, 'eth_getTransactionReceipt(txHash)');
      const r = await b.getTransactionReceipt(parseHash32(p[0], 'txHash'), ctx);
      return r === null ? null : formatReceipt(r);
    },
  ],
  [
    'eth_getBalance',
    async (b, params, ctx) => {
      const p = positional(params, 1, 2, 'eth_getBalance(address, blockTag?)');
      const address = parseAddress(p[0], 'address');
      const tag = p[1] === undefined ? 'latest' : parseBlockTag(p[1]);
      return quantity(await b.getBalance(address, tag, ctx));
    },
  ],
  [
    'eth_getTransactionCount',
    async (b, params, ctx) => {
      const p = positional(params, 1, 2, 'eth_getTransactionCount(address, blockTag?)');
      const address = parseAddress(p[0], 'address');
      const tag = p[1] === undefined ? 'latest' : parseBlockTag(p[1]);
      return quantity(await b.getTransactionCount(address, tag, ctx));
    },
  ],
  [
    'eth_getQuorumPayload',
    async (b, params, ctx) => {
      const p = positional(params, 1, 1, 'eth_getQuorumPayload(payloadHash)');
      // GoQuorum's shape: the payload as 0x-hex, "0x" where this node is not a party.
      return bytesToHex(await b.getQuorumPayload(parseHash64(p[0], 'payloadHash'), ctx));
    },
  ],

  // --- quorate_ ------------------------------------------------------------------------
  [
    'quorate_sendTransaction',
    async (b, params, ctx) => {
      const p = positional(params, 1, 1, 'quorate_sendTransaction({ from, ops, privateFor? })');
      return b.sendTransaction(parseSendTransaction(p[0], 'transaction'), ctx);
    },
  ],
  [
    'quorate_sendRawTransaction',
    async (b, params, ctx) => {
      const p = positional(params, 1, 1, 'quorate_sendRawTransaction(signedTxHex)');
      return b.sendRawTransaction(parseHexData(p[0], 'signedTxHex', PARAM_LIMITS.maxRawTransactionBytes), ctx);
    },
  ],
  [
    'quorate_getValue',
    async (b, params, ctx) => {
      const p = positional(params, 1, 2, 'quorate_getValue(key, blockTag | "linearizable"?)');
      const key = parseString(p[0], 'key', KEY, false);
      const tag = p[1] === undefined ? 'latest' : parseReadTag(p[1]);
      return b.getValue(key, tag, ctx);
    },
  ],
  [
    'quorate_getList',
    async (b, params, ctx) => {
      const p = positional(params, 1, 2, 'quorate_getList(key, blockTag | "linearizable"?)');
      const key = parseString(p[0], 'key', KEY, false);
      const tag = p[1] === undefined ? 'latest' : parseReadTag(p[1]);
      return b.getList(key, tag, ctx);
    },
  ],
  [
    'quorate_getPrivateValue',
    async (b, params, ctx) => {
      const p = positional(params, 1, 2, 'quorate_getPrivateValue(key, blockTag?)');
      const key = parseString(p[0], 'key', KEY, false);
      const tag = p[1] === undefined ? 'latest' : parseBlockTag(p[1]);
      return b.getPrivateValue(key, tag, ctx);
    },
  ],
  ['quorate_accounts', none('quorate_accounts', (b, ctx) => b.accounts(ctx))],
]);
