// One compliance suite for the two RpcClient implementations (HTTP and in-process), then what
// only the HTTP client can meet: an unreachable node, a node that does not answer in time, a
// response over the size limit.

import http from 'node:http';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  HttpRpcClient,
  InProcessRpcClient,
  RpcCallError,
  RpcTransportError,
  RpcTransportErrorCode,
  type RpcClient,
} from '../../node/rpc/client.js';
import { RpcErrorCode } from '../../node/rpc/errors.js';
import { ALICE, BOB, startHarness, type Harness } from './harness.js';

const implementations: [string, (h: Harness) => RpcClient][] = [
  ['HttpRpcClient', (h) => new HttpRpcClient(h.url)],
  ['InProcessRpcClient', (h) => new InProcessRpcClient(h.server)],
];

describe.each(implementations)('%s (compliance)', (_name, make) => {
  let h: Harness;
  let client: RpcClient;
  beforeAll(async () => {
    h = await startHarness();
    client = make(h);
  });
  afterAll(() => h.stop());

  it('resolves with the result', async () => {
    expect(await client.call('eth_chainId')).toBe('0x539');
    expect(await client.call('eth_getBalance', [ALICE, 'latest'])).toBe('0x3e8');
  });

  it('resolves null results as null', async () => {
    expect(await client.call('eth_getTransactionReceipt', [`0x${'00'.repeat(32)}`])).toBeNull();
  });

  it('rejects with RpcCallError carrying the code and data of a JSON-RPC error', async () => {
    const err = await client
      .call('quorate_sendTransaction', [{ from: BOB, ops: [{ type: 'delete', key: 'k' }] }])
      .catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcCallError);
    expect((err as RpcCallError).code).toBe(RpcErrorCode.TxRejected);
    expect((err as RpcCallError).data).toMatchObject({ reason: 'TX_UNKNOWN_ACCOUNT' });
    const unknown = await client.call('no_such_method').catch((e: unknown) => e);
    expect((unknown as RpcCallError).code).toBe(RpcErrorCode.MethodNotFound);
  });

  it('keeps successive calls apart (ids)', async () => {
    const results = await Promise.all([
      client.call('eth_chainId'),
      client.call('net_version'),
      client.call('eth_blockNumber'),
    ]);
    expect(results).toEqual(['0x539', '1337', '0x0']);
  });

  it('refuses to start a call whose signal is already aborted', async () => {
    const err = await client.call('eth_chainId', [], { signal: AbortSignal.abort() }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Error);
    expect(err).not.toBeInstanceOf(RpcCallError);
  });
});

describe('HttpRpcClient transport failures', () => {
  it('reports an unreachable node as Unreachable', async () => {
    // Bind and release a port so that nothing listens on it.
    const server = http.createServer();
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    const port = (server.address() as { port: number }).port;
    await new Promise<void>((r) => server.close(() => r()));
    const err = await new HttpRpcClient(`http://127.0.0.1:${port}/`).call('eth_chainId').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(RpcTransportError);
    expect((err as RpcTransportError).code).toBe(RpcTransportErrorCode.Unreachable);
  });

  it('reports no answer in time as Timeout (outcome unknown)', async () => {
    const h = await startHarness({ requestTimeoutMs: 5_000 });
    try {
      h.backend.quorum = false;
      const err = await new HttpRpcClient(h.url, { timeoutMs: 150 })
        .call('quorate_getValue', ['k', 'linearizable'])
        .catch((e: unknown) => e);
      expect(err).toBeInstanceOf(RpcTransportError);
      expect((err as RpcTransportError).code).toBe(RpcTransportErrorCode.Timeout);
      expect((err as Error).message).toContain('unknown');
    } finally {
      await h.stop();
    }
  });

  it('refuses a response over maxResponseBytes', async () => {
    const h = await startHarness();
    try {
      const err = await new HttpRpcClient(h.url, { maxResponseBytes: 16 })
        .call('raft_cluster')
        .catch((e: unknown) => e);
      expect((err as RpcTransportError).code).toBe(RpcTransportErrorCode.BadResponse);
    } finally {
      await h.stop();
    }
  });

  it('surfaces the JSON-RPC error inside an HTTP 413', async () => {
    const h = await startHarness({ maxBodyBytes: 256 });
    try {
      const err = await new HttpRpcClient(h.url).call('quorate_getValue', ['k'.repeat(300)]).catch((e: unknown) => e);
      expect((err as RpcCallError).code).toBe(RpcErrorCode.LimitExceeded);
    } finally {
      await h.stop();
    }
  });
});
