// The method table: strict parameter validation (-32602 with a message that names the problem),
// dispatch to the backend, result formatting, and the NodeError → JSON-RPC code table.
// Runs in-process through RpcServer.handle (the same path HTTP takes after parsing the body).

import { beforeEach, describe, expect, it } from 'vitest';
import { NodeError, NodeErrorCode } from '../../node/errors.js';
import { silentLogger } from '../../node/log.js';
import { createNodeMetrics } from '../../node/metrics.js';
import { InProcessRpcClient, RpcCallError } from '../../node/rpc/client.js';
import { NODE_ERROR_TO_RPC, RpcErrorCode, toRpcError } from '../../node/rpc/errors.js';
import { RPC_METHODS } from '../../node/rpc/methods.js';
import { RpcServer } from '../../node/rpc/server.js';
import { FAKE_PAYLOAD_HASH, FakeLedgerBackend } from './fake-ledger-backend.js';
import { ALICE, BOB } from './harness.js';

let backend: FakeLedgerBackend;
let client: InProcessRpcClient;

beforeEach(() => {
  backend = new FakeLedgerBackend({ accounts: [ALICE], initialBalance: 1000n });
  const server = new RpcServer({ port: 0 }, { backend, logger: silentLogger(), metrics: createNodeMetrics() });
  client = new InProcessRpcClient(server);
});

/** Calls and expects -32602 whose message matches `pattern`. */
async function rejects(method: string, params: unknown[], pattern: RegExp): Promise<void> {
  const err = await client.call(method, params).then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, `${method}(${JSON.stringify(params).slice(0, 80)}) should fail`).toBeInstanceOf(RpcCallError);
  expect((err as RpcCallError).code).toBe(RpcErrorCode.InvalidParams);
  expect((err as RpcCallError).message).toMatch(pattern);
}

const HASH = `0x${'cd'.repeat(32)}`;
const PEER = '12D3KooWGRUVh5BKY9Xw5qxKiAAGKwLvgbpr6cJvD3fHLvhhRNRT';

describe('parameter validation', () => {
  it('checks the number of parameters', async () => {
    await rejects('eth_blockNumber', [1], /expected 0 parameter/);
    await rejects('eth_getTransactionByHash', [], /expected 1 parameter.*eth_getTransactionByHash\(txHash\)/);
    await rejects('eth_getBalance', [ALICE, 'latest', 'extra'], /expected 1 to 2/);
  });

  it('checks 0x-hex quantities: prefix, digits, no leading zeros, at most 2^53-1', async () => {
    await rejects(
      'eth_getBlockByNumber',
      ['12', false],
      /block tag must be "latest", "earliest" or a 0x-hex block number/,
    );
    await rejects('eth_getBlockByNumber', ['0x', false], /0x-hex quantity/);
    await rejects('eth_getBlockByNumber', ['0x01', false], /without leading zeros/);
    await rejects('eth_getBlockByNumber', ['0xzz', false], /0x-hex quantity/);
    await rejects('eth_getBlockByNumber', ['0x20000000000000', false], /too large/);
    await rejects('eth_getBlockByNumber', [5, false], /got number 5/);
  });

  it('checks block tags: linearizable only where allowed', async () => {
    await rejects('eth_getBalance', [ALICE, 'linearizable'], /"latest", "earliest" or a 0x-hex/);
    await rejects('quorate_getPrivateValue', ['k', 'linearizable'], /"latest", "earliest" or a 0x-hex/);
    await rejects('quorate_getValue', ['k', 'newest'], /"linearizable"/);
    expect(await client.call('quorate_getValue', ['k', 'linearizable'])).toBeNull();
    // Raft blocks are final: Ethereum's pending/safe/finalized mean the head.
    expect(await client.call('eth_getBalance', [ALICE, 'finalized'])).toBe('0x3e8');
  });

  it('checks 20-byte addresses and 32/64-byte hashes', async () => {
    await rejects('eth_getBalance', ['0x' + 'a'.repeat(39)], /address must be a 20-byte address/);
    await rejects('eth_getBalance', ['a1'.repeat(20)], /address must be a 20-byte address/);
    await rejects('eth_getTransactionReceipt', ['0x' + 'a'.repeat(63)], /txHash must be a 32-byte hash/);
    await rejects('eth_getBlockByHash', [HASH + 'aa', false], /blockHash must be a 32-byte hash/);
    await rejects('eth_getQuorumPayload', [HASH], /payloadHash must be a 64-byte payload hash/);
    await rejects('eth_getBlockByNumber', ['latest', 'yes'], /fullTransactions must be true or false/);
  });

  it('checks transaction objects and every op kind, naming the field', async () => {
    const send = (tx: unknown): Promise<void> => rejects('quorate_sendTransaction', [tx], /./);
    await send('not an object');
    await rejects('quorate_sendTransaction', [{ from: ALICE }], /transaction\.ops must be an array/);
    await rejects('quorate_sendTransaction', [{ from: ALICE, ops: [] }], /at least one op/);
    await rejects(
      'quorate_sendTransaction',
      [{ from: ALICE, ops: [{ type: 'put', key: 'k', value: 'v' }], gas: 1 }],
      /unknown field "gas"/,
    );
    await rejects(
      'quorate_sendTransaction',
      [{ from: 'me', ops: [{ type: 'put', key: 'k', value: 'v' }] }],
      /transaction\.from must be a 20-byte address/,
    );
    await rejects(
      'quorate_sendTransaction',
      [{ from: ALICE, ops: [{ type: 'mint' }] }],
      /ops\[0\]\.type must be one of transfer, put, delete, cas, append/,
    );
    await rejects(
      'quorate_sendTransaction',
      [{ from: ALICE, ops: [{ type: 'transfer', to: BOB, amount: 5 }] }],
      /ops\[0\]\.amount must be a decimal string/,
    );
    await rejects(
      'quorate_sendTransaction',
      [{ from: ALICE, ops: [{ type: 'transfer', to: BOB, amount: '007' }] }],
      /without leading zeros/,
    );
    await rejects(
      'quorate_sendTransaction',
      [{ from: ALICE, ops: [{ type: 'transfer', to: BOB, amount: '-1' }] }],
      /decimal string/,
    );
    await rejects(
      'quorate_sendTransaction',
      [{ from: ALICE, ops: [{ type: 'transfer', to: BOB, amount: '9'.repeat(79) }] }],
      /79 digits/,
    );
    await rejects(
      'quorate_sendTransaction',
      [{ from: ALICE, ops: [{ type: 'put', key: '', value: 'v' }] }],
      /ops\[0\]\.key must not be empty/,
    );
    await rejects(
      'quorate_sendTransaction',
      [{ from: ALICE, ops: [{ type: 'put', key: 'k', value: 1 }] }],
      /ops\[0\]\.value must be a string/,
    );
    await rejects(
      'quorate_sendTransaction',
      [{ from: ALICE, ops: [{ type: 'delete', key: 'k', value: 'v' }] }],
      /unknown field "value"/,
    );
    await rejects(
      'quorate_sendTransaction',
      [{ from: ALICE, ops: [{ type: 'cas', key: 'k', value: 'v' }] }],
      /ops\[0\]\.expect is required/,
    );
    await rejects(
      'quorate_sendTransaction',
      [
        {
          from: ALICE,
          ops: [
            { type: 'put', key: 'k', value: 'v' },
            { type: 'append', key: 'k' },
          ],
        },
      ],
      /ops\[1\]\.value must be a string/,
    );
    await rejects(
      'quorate_sendTransaction',
      [{ from: ALICE, ops: [{ type: 'put', key: 'k'.repeat(1025), value: 'v' }] }],
      /1025 bytes, over the limit of 1024/,
    );
    await rejects(
      'quorate_sendTransaction',
      [{ from: ALICE, ops: [{ type: 'put', key: 'k', value: 'v' }], privateFor: [] }],
      /at least one party/,
    );
    await rejects(
      'quorate_sendTransaction',
      [{ from: ALICE, ops: [{ type: 'put', key: 'k', value: 'v' }], privateFor: ['abc'] }],
      /privateFor\[0\] must be a 32-byte enclave public key/,
    );
  });

  it('checks raft_* parameters: multiaddr with /p2p/, member info, raftIds', async () => {
    await rejects('raft_addPeer', ['enode://abc@1.2.3.4:30303'], /not a valid multiaddr/);
    await rejects('raft_addPeer', ['/ip4/127.0.0.1/tcp/4001'], /must end in \/p2p\/<peerId>/);
    await rejects(
      'raft_addPeer',
      [`/ip4/127.0.0.1/tcp/4001/p2p/${PEER}`, { rpcUrl: 'ftp://x' }],
      /rpcUrl must be an http\(s\) URL/,
    );
    await rejects(
      'raft_addLearner',
      [`/ip4/127.0.0.1/tcp/4001/p2p/${PEER}`, { colour: 'red' }],
      /unknown field "colour"/,
    );
    await rejects('raft_removePeer', [0], /raftId must be a positive integer/);
    await rejects('raft_removePeer', [1.5], /raftId must be a positive integer/);
    await rejects('raft_promoteToPeer', ['two'], /0x-hex quantity/);
    await rejects('quorate_sendRawTransaction', ['0x123'], /even number of hex digits/);
    await rejects('quorate_sendRawTransaction', ['0x'], /signedTxHex is empty/);
  });
});

describe('dispatch and formatting', () => {
  it('formats chain results as Ethereum does', async () => {
    expect(await client.call('eth_chainId')).toBe('0x539');
    expect(await client.call('net_version')).toBe('1337');
    expect(await client.call('net_peerCount')).toBe('0x2');
    expect(await client.call('quorate_accounts')).toEqual([ALICE]);
    // Addresses are matched case-insensitively and answered lowercase.
    expect(await client.call('eth_getBalance', [ALICE.toUpperCase().replace('0X', '0x'), 'latest'])).toBe('0x3e8');
    expect(await client.call('eth_getQuorumPayload', [FAKE_PAYLOAD_HASH])).toBe('0x010203');
    expect(await client.call('eth_getQuorumPayload', [`0x${'00'.repeat(64)}`])).toBe('0x');
  });

  it('submits a transaction and serves its block, transaction and receipt', async () => {
    const hash = await client.call<string>('quorate_sendTransaction', [
      {
        from: ALICE,
        ops: [
          { type: 'transfer', to: BOB, amount: '250' },
          { type: 'append', key: 'l', value: 'x' },
        ],
      },
    ]);
    expect(hash).toMatch(/^0x[0-9a-f]{64}$/);
    expect(await client.call('eth_blockNumber')).toBe('0x1');
    expect(await client.call('eth_getBalance', [BOB, 'latest'])).toBe('0xfa');
    expect(await client.call('eth_getBalance', [BOB, '0x0'])).toBe('0x0');
    expect(await client.call('eth_getTransactionCount', [ALICE])).toBe('0x1');
    expect(await client.call('quorate_getList', ['l'])).toEqual(['x']);
    const receipt = await client.call<Record<string, unknown>>('eth_getTransactionReceipt', [hash]);
    expect(receipt).toMatchObject({
      transactionHash: hash,
      status: '0x1',
      blockNumber: '0x1',
      transactionIndex: '0x0',
      from: ALICE,
      isPrivate: false,
    });
    expect(receipt).not.toHaveProperty('reason');
    const tx = await client.call<Record<string, unknown>>('eth_getTransactionByHash', [hash]);
    expect(tx).toMatchObject({
      hash,
      from: ALICE,
      nonce: '0x0',
      blockNumber: '0x1',
      isPrivate: false,
      ops: [
        { type: 'transfer', to: BOB, amount: '250' },
        { type: 'append', key: 'l', value: 'x' },
      ],
    });
    const block = await client.call<Record<string, unknown>>('eth_getBlockByNumber', ['latest', false]);
    expect(block).toMatchObject({ number: '0x1', transactions: [hash], raftTerm: '0x1', proposer: '0x1' });
    expect(Number.parseInt(block.timestampMs as string, 16)).toBe(1_700_000_000_050);
    expect(block.timestamp).toBe(`0x${Math.floor(1_700_000_000_050 / 1000).toString(16)}`);
    const full = await client.call<Record<string, unknown>>('eth_getBlockByHash', [block.hash, true]);
    expect((full.transactions as Record<string, unknown>[])[0]).toMatchObject({ hash, blockHash: block.hash });
  });

  it('answers a failed transaction with status 0x0 and its reason', async () => {
    const hash = await client.call<string>('quorate_sendTransaction', [
      { from: ALICE, ops: [{ type: 'cas', key: 'k', expect: 'old', value: 'new' }] },
    ]);
    expect(await client.call('eth_getTransactionReceipt', [hash])).toMatchObject({
      status: '0x0',
      reason: 'cas failed on k',
    });
  });

  it('answers null for what does not exist', async () => {
    expect(await client.call('eth_getBlockByNumber', ['0x63', false])).toBeNull();
    expect(await client.call('eth_getBlockByHash', [HASH, false])).toBeNull();
    expect(await client.call('eth_getTransactionByHash', [HASH])).toBeNull();
    expect(await client.call('eth_getTransactionReceipt', [HASH])).toBeNull();
  });

  it('answers raft_* calls, true for changes that committed', async () => {
    expect(await client.call('raft_leader')).toBe('node-1');
    expect(await client.call('raft_role')).toBe('leader');
    const id = await client.call<number>('raft_addLearner', [
      `/ip4/127.0.0.1/tcp/4001/p2p/${PEER}`,
      { rpcUrl: 'http://127.0.0.1:8600/' },
    ]);
    expect(id).toBe(4);
    expect(await client.call('raft_status')).toMatchObject({ voters: [1, 2, 3], learners: [4], joint: false });
    expect(await client.call('raft_promoteToPeer', [id])).toBe(true);
    expect(await client.call('raft_transferLeadership', ['0x2'])).toBe(true);
    expect(await client.call('raft_cluster')).toContainEqual(
      expect.objectContaining({ raftId: 2, isLeader: true, role: 'verifier' }),
    );
    expect(await client.call('raft_removePeer', [4])).toBe(true);
  });
});

describe('errors from the backend', () => {
  it('maps typed NodeErrors to their JSON-RPC codes with the reason and details in data', async () => {
    const err = (await client
      .call('quorate_sendTransaction', [{ from: BOB, ops: [{ type: 'put', key: 'k', value: 'v' }] }])
      .catch((e: unknown) => e)) as RpcCallError;
    expect(err.code).toBe(RpcErrorCode.TxRejected);
    expect(err.data).toEqual({ reason: 'TX_UNKNOWN_ACCOUNT', from: BOB });
    const notMember = (await client.call('raft_removePeer', [42]).catch((e: unknown) => e)) as RpcCallError;
    expect(notMember.code).toBe(RpcErrorCode.MembershipChangeInvalid);
    backend.quorum = false;
    expect(((await client.call('raft_leader').catch((e: unknown) => e)) as RpcCallError).code).toBe(
      RpcErrorCode.NoLeader,
    );
    expect(((await client.call('eth_getBalance', [ALICE, '0x5']).catch((e: unknown) => e)) as RpcCallError).code).toBe(
      RpcErrorCode.NotFound,
    );
  });

  it('has one JSON-RPC code per node error code, transaction refusals sharing -32003, refusals of load -32010', () => {
    for (const code of Object.values(NodeErrorCode)) {
      const { error, internal } = toRpcError(new NodeError(code, 'x', { leader: 2 }));
      expect(internal).toBe(false);
      expect(error.code).toBe(NODE_ERROR_TO_RPC[code]);
      expect(error.data).toEqual({ reason: code, leader: 2 });
      expect(error.code >= -32099 && error.code <= -32000).toBe(true);
      if (code === NodeErrorCode.TxPoolFull) expect(error.code).toBe(RpcErrorCode.Unavailable);
      else expect(code.startsWith('TX_') === (error.code === RpcErrorCode.TxRejected)).toBe(true);
    }
    // Refusals of load share -32010 (send again after data.retryAfterMs); data.reason tells them apart.
    expect(NODE_ERROR_TO_RPC[NodeErrorCode.NodeOverloaded]).toBe(RpcErrorCode.Unavailable);
    const nonTx = Object.values(NodeErrorCode)
      .filter((c) => !c.startsWith('TX_') && c !== NodeErrorCode.NodeOverloaded)
      .map((c) => NODE_ERROR_TO_RPC[c]);
    expect(new Set(nonTx).size).toBe(nonTx.length);
  });

  it('lists every method of docs/interface.md', () => {
    const expected = [
      'raft_leader',
      'raft_role',
      'raft_cluster',
      'raft_status',
      'raft_addPeer',
      'raft_addLearner',
      'raft_promoteToPeer',
      'raft_removePeer',
      'raft_transferLeadership',
      'eth_chainId',
      'net_version',
      'eth_blockNumber',
      'eth_getBlockByNumber',
      'eth_getBlockByHash',
      'eth_getTransactionByHash',
      'eth_getTransactionReceipt',
      'eth_getBalance',
      'eth_getTransactionCount',
      'net_peerCount',
      'eth_getQuorumPayload',
      'quorate_sendTransaction',
      'quorate_sendRawTransaction',
      'quorate_getValue',
      'quorate_getList',
      'quorate_getPrivateValue',
      'quorate_accounts',
    ];
    expect([...RPC_METHODS.keys()].sort()).toEqual(expected.sort());
  });
});
