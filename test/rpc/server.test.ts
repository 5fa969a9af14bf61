// The JSON-RPC server over real HTTP on 127.0.0.1: every kind of malformed input, batches,
// notifications, limits, timeouts, health, metrics, and the load balancer's bare TCP probe.

import http from 'node:http';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { RPC_METHODS, type RpcMethod } from '../../node/rpc/methods.js';
import { RpcErrorCode } from '../../node/rpc/errors.js';
import { SubmissionShedder } from '../../node/rpc/load-shed.js';
import { ALICE, post, rpc, startHarness, type Harness } from './harness.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.stop();
  h = undefined;
});

const LEVELS_ABOVE_DEBUG = new Set(['info', 'warn', 'error', 'fatal']);

async function until(check: () => boolean, what: string, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Sends raw bytes over TCP and returns everything the server wrote before closing. */
function rawExchange(port: number, payload: string | Buffer): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    socket.on('data', (c) => chunks.push(c));
    socket.on('error', reject);
    socket.on('close', () => resolve(Buffer.concat(chunks).toString('utf8')));
    socket.on('connect', () => socket.write(payload));
  });
}

describe('single requests', () => {
  it('answers a valid call with its result and echoes the id', async () => {
    h = await startHarness();
    const r = await post(h.url, JSON.stringify({ jsonrpc: '2.0', id: 'abc', method: 'eth_blockNumber' }));
    expect(r.status).toBe(200);
    expect(r.body).toEqual({ jsonrpc: '2.0', id: 'abc', result: '0x0' });
  });

  it('answers -32700 with id null when the body is not JSON', async () => {
    h = await startHarness();
    for (const body of ['{', 'not json', '{"jsonrpc":"2.0",', '']) {
      const r = await post(h.url, body);
      expect(r.status).toBe(200);
      expect(r.body).toMatchObject({ jsonrpc: '2.0', id: null, error: { code: RpcErrorCode.ParseError } });
    }
  });

  it('answers -32600 for a wrong or missing jsonrpc version, keeping the id', async () => {
    h = await startHarness();
    const wrong = await post(h.url, JSON.stringify({ jsonrpc: '1.0', id: 7, method: 'eth_blockNumber' }));
    expect(wrong.body).toMatchObject({
      id: 7,
      error: { code: RpcErrorCode.InvalidRequest, message: expect.stringContaining('"2.0"') },
    });
    const missing = await post(h.url, JSON.stringify({ id: 8, method: 'eth_blockNumber' }));
    expect(missing.body).toMatchObject({ id: 8, error: { code: RpcErrorCode.InvalidRequest } });
  });

  it('answers -32600 for requests that are not objects, lack a method, or carry a bad id or params', async () => {
    h = await startHarness();
    for (const body of ['42', '"eth_blockNumber"', 'null', 'true']) {
      expect((await post(h.url, body)).body).toMatchObject({ id: null, error: { code: RpcErrorCode.InvalidRequest } });
    }
    expect((await post(h.url, JSON.stringify({ jsonrpc: '2.0', id: 1 }))).body).toMatchObject({
      id: 1,
      error: { code: RpcErrorCode.InvalidRequest, message: expect.stringContaining('method') },
    });
    expect((await post(h.url, JSON.stringify({ jsonrpc: '2.0', id: 1, method: 5 }))).body).toMatchObject({
      error: { code: RpcErrorCode.InvalidRequest },
    });
    expect(
      (await post(h.url, JSON.stringify({ jsonrpc: '2.0', id: { a: 1 }, method: 'eth_blockNumber' }))).body,
    ).toMatchObject({ id: null, error: { code: RpcErrorCode.InvalidRequest, message: expect.stringContaining('id') } });
    expect(
      (await post(h.url, JSON.stringify({ jsonrpc: '2.0', id: 2, method: 'eth_blockNumber', params: 'x' }))).body,
    ).toMatchObject({
      id: 2,
      error: { code: RpcErrorCode.InvalidRequest, message: expect.stringContaining('params') },
    });
  });

  it('answers -32601 for an unknown method and does not use its name as a metric label', async () => {
    h = await startHarness();
    const r = await rpc(h.url, 'eth_doesNotExist_12345');
    expect(r.error).toMatchObject({
      code: RpcErrorCode.MethodNotFound,
      message: expect.stringContaining('eth_doesNotExist_12345'),
    });
    const text = await (await fetch(`${h.url}metrics`)).text();
    expect(text).toContain('quorate_rpc_requests_total{method="unknown",code="-32601"} 1');
    expect(text).not.toContain('eth_doesNotExist_12345');
  });

  it('answers -32602 naming the parameter for bad params, and by-name params are refused', async () => {
    h = await startHarness();
    const r = await rpc(h.url, 'eth_getBalance', ['0x1234', 'latest']);
    expect(r.error).toMatchObject({
      code: RpcErrorCode.InvalidParams,
      message: expect.stringMatching(/address.*20-byte/),
    });
    const byName = await rpc(h.url, 'eth_getBalance', { address: ALICE });
    expect(byName.error).toMatchObject({ code: RpcErrorCode.InvalidParams, message: expect.stringContaining('array') });
  });

  it('runs a notification (no id) and answers 204 with no body', async () => {
    h = await startHarness();
    const r = await post(
      h.url,
      JSON.stringify({
        jsonrpc: '2.0',
        method: 'quorate_sendTransaction',
        params: [{ from: ALICE, ops: [{ type: 'put', key: 'k', value: 'v' }] }],
      }),
    );
    expect(r.status).toBe(204);
    expect(r.text).toBe('');
    expect((await rpc(h.url, 'quorate_getValue', ['k', 'latest'])).result).toBe('v');
    // A failing notification is not answered either.
    expect((await post(h.url, JSON.stringify({ jsonrpc: '2.0', method: 'nope' }))).status).toBe(204);
  });

  it('answers 404 for other paths and 405 for other HTTP methods on /', async () => {
    h = await startHarness();
    expect((await fetch(`${h.url}foo`, { method: 'POST', body: '{}' })).status).toBe(404);
    const get = await fetch(h.url);
    expect(get.status).toBe(405);
    expect(((await get.json()) as { error: { code: number } }).error.code).toBe(RpcErrorCode.InvalidRequest);
  });
});

describe('batches', () => {
  it('answers each request of a mixed batch, skips notifications, keeps the order', async () => {
    h = await startHarness();
    const batch = [
      { jsonrpc: '2.0', id: 1, method: 'eth_chainId' },
      { jsonrpc: '2.0', method: 'eth_blockNumber' },
      { jsonrpc: '2.0', id: 2, method: 'nope' },
      17,
      { jsonrpc: '2.0', id: 3, method: 'eth_getBalance', params: [ALICE] },
    ];
    const r = await post(h.url, JSON.stringify(batch));
    expect(r.status).toBe(200);
    expect(r.body).toEqual([
      { jsonrpc: '2.0', id: 1, result: '0x539' },
      { jsonrpc: '2.0', id: 2, error: expect.objectContaining({ code: RpcErrorCode.MethodNotFound }) },
      { jsonrpc: '2.0', id: null, error: expect.objectContaining({ code: RpcErrorCode.InvalidRequest }) },
      { jsonrpc: '2.0', id: 3, result: '0x3e8' },
    ]);
  });

  it('answers an empty batch with one -32600 error', async () => {
    h = await startHarness();
    const r = await post(h.url, '[]');
    expect(r.body).toMatchObject({
      id: null,
      error: { code: RpcErrorCode.InvalidRequest, message: expect.stringContaining('empty batch') },
    });
  });

  it('answers 204 to a batch of notifications only', async () => {
    h = await startHarness();
    const r = await post(
      h.url,
      JSON.stringify([
        { jsonrpc: '2.0', method: 'eth_blockNumber' },
        { jsonrpc: '2.0', method: 'net_version' },
      ]),
    );
    expect(r.status).toBe(204);
  });

  it('refuses a batch over maxBatchLength as a whole, and accepts one at the limit', async () => {
    h = await startHarness({ maxBatchLength: 4 });
    const call = (id: number): unknown => ({ jsonrpc: '2.0', id, method: 'eth_blockNumber' });
    const over = await post(h.url, JSON.stringify([1, 2, 3, 4, 5].map(call)));
    expect(over.body).toMatchObject({
      id: null,
      error: { code: RpcErrorCode.LimitExceeded, data: { limit: 'maxBatchLength', max: 4 } },
    });
    const at = await post(h.url, JSON.stringify([1, 2, 3, 4].map(call)));
    expect(at.body).toHaveLength(4);
  });
});

describe('limits and timeouts', () => {
  it('refuses a body over maxBodyBytes with 413 (declared length) and still serves afterwards', async () => {
    h = await startHarness({ maxBodyBytes: 1024 });
    const big = JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'quorate_getValue', params: ['x'.repeat(2000)] });
    const r = await post(h.url, big);
    expect(r.status).toBe(413);
    expect(r.body).toMatchObject({
      error: { code: RpcErrorCode.LimitExceeded, data: { limit: 'maxBodyBytes', max: 1024 } },
    });
    const small = await rpc(h.url, 'eth_blockNumber');
    expect(small.result).toBe('0x0');
  });

  it('refuses a chunked body (no Content-Length) once it passes maxBodyBytes', async () => {
    h = await startHarness({ maxBodyBytes: 1024 });
    const port = h.port;
    const result = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const req = http.request(
        {
          host: '127.0.0.1',
          port,
          method: 'POST',
          path: '/',
          headers: { 'content-type': 'application/json', 'transfer-encoding': 'chunked' },
        },
        (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        },
      );
      req.on('error', reject);
      req.write('['.padEnd(800, ' '));
      req.write(' '.repeat(800));
      // Never finished: the server must answer without waiting for the end.
    });
    expect(result.status).toBe(413);
    expect(JSON.parse(result.body)).toMatchObject({ error: { code: RpcErrorCode.LimitExceeded } });
  });

  it('answers -32002 "outcome unknown" when a call outlives requestTimeoutMs, and keeps serving', async () => {
    h = await startHarness({ requestTimeoutMs: 150 });
    h.backend.quorum = false; // linearizable reads now wait for a quorum that never comes
    const r = await rpc(h.url, 'quorate_getValue', ['k', 'linearizable']);
    expect(r.error).toMatchObject({
      code: RpcErrorCode.Timeout,
      message: expect.stringContaining('unknown'),
      data: { reason: 'TIMEOUT', timeoutMs: 150 },
    });
    expect((await rpc(h.url, 'quorate_getValue', ['k', 'latest'])).result).toBeNull();
  });

  it('sheds load past maxInFlightCalls with -32010 instead of queueing', async () => {
    h = await startHarness({ maxInFlightCalls: 1, requestTimeoutMs: 500 });
    h.backend.quorum = false;
    const hanging = rpc(h.url, 'quorate_getValue', ['k', 'linearizable']);
    await until(() => h!.server.inFlightCalls() === 1, 'the first call to be in flight');
    const shed = await rpc(h.url, 'eth_blockNumber');
    expect(shed.error).toMatchObject({
      code: RpcErrorCode.Unavailable,
      message: expect.stringContaining('overloaded'),
    });
    expect((await hanging).error).toMatchObject({ code: RpcErrorCode.Timeout });
    expect((await rpc(h.url, 'eth_blockNumber')).result).toBe('0x0');
  });

  it('sheds submissions with -32010 NODE_OVERLOADED while the event loop runs late, never reads', async () => {
    h = await startHarness({ maxEventLoopDelayMs: 20 });
    const send = (key: string) =>
      rpc(h!.url, 'quorate_sendTransaction', [{ from: ALICE, ops: [{ type: 'put', key, value: 'v' }] }]);
    expect((await send('before')).result).toMatch(/^0x/);
    // Keep the loop busy: 60 ms of work every 5 ms, so every probe tick is ~60 ms late (> 2x 20).
    const busy = setInterval(() => {
      const until = performance.now() + 60;
      while (performance.now() < until);
    }, 5);
    try {
      await new Promise((r) => setTimeout(r, 200));
      const shed = await send('during');
      expect(shed.error).toMatchObject({
        code: RpcErrorCode.Unavailable,
        data: { reason: 'NODE_OVERLOADED', limit: 'rpcMaxEventLoopDelayMs', retryAfterMs: expect.any(Number) },
      });
      expect((await rpc(h.url, 'quorate_getValue', ['before', 'latest'])).result).toBe('v');
    } finally {
      clearInterval(busy);
    }
    // On time again: the delay decays and submissions are taken.
    let accepted: unknown;
    for (let i = 0; i < 50 && accepted === undefined; i++) {
      await new Promise((r) => setTimeout(r, 50));
      accepted = (await send('after')).result;
    }
    expect(accepted).toMatch(/^0x/);
    expect((await rpc(h.url, 'quorate_getValue', ['during', 'latest'])).result).toBeNull();
  });

  it('in a batch, once a submission is shed every later one is too (no nonce gap), reads still answered', async () => {
    const shedder = new SubmissionShedder(100);
    h = await startHarness({}, undefined, shedder);
    shedder.observe(150); // half of the submissions: admit, refuse, admit, refuse... without the batch rule
    const send = (id: number) => ({
      jsonrpc: '2.0',
      id,
      method: 'quorate_sendTransaction',
      params: [{ from: ALICE, ops: [{ type: 'put', key: `k${id}`, value: 'v' }] }],
    });
    const r = await post(
      h.url,
      JSON.stringify([send(1), send(2), { jsonrpc: '2.0', id: 3, method: 'eth_blockNumber' }, send(4), send(5)]),
    );
    const replies = r.body as Array<{ id: number; result?: unknown; error?: { code: number; data?: unknown } }>;
    const byId = new Map(replies.map((x) => [x.id, x]));
    expect(byId.get(1)?.result).toMatch(/^0x/);
    for (const id of [2, 4, 5])
      expect(byId.get(id)?.error).toMatchObject({
        code: RpcErrorCode.Unavailable,
        data: { reason: 'NODE_OVERLOADED' },
      });
    expect(byId.get(3)?.result).toMatch(/^0x/);
    expect(shedder.shed()).toBe(3);
    // A single request after the batch is decided on its own again: the running share (credit 0.5) admits it.
    const next = await rpc(h.url, 'quorate_sendTransaction', [
      { from: ALICE, ops: [{ type: 'put', key: 'k6', value: 'v' }] },
    ]);
    expect(next.result).toMatch(/^0x/);
  });

  it('stop() answers calls in flight with -32010 instead of leaving them hanging', async () => {
    h = await startHarness({ requestTimeoutMs: 30_000 });
    h.backend.quorum = false;
    const hanging = rpc(h.url, 'quorate_getValue', ['k', 'linearizable']);
    await until(() => h!.server.inFlightCalls() === 1, 'the call to be in flight');
    await h.stop();
    h = undefined;
    expect((await hanging).error).toMatchObject({
      code: RpcErrorCode.Unavailable,
      message: expect.stringContaining('stopping'),
    });
  });
});

describe('bugs and hostile clients', () => {
  it('answers -32603 without internals for a method that throws an untyped error, and logs it at error', async () => {
    const broken: RpcMethod = async () => {
      throw new TypeError('secret internal detail');
    };
    const unserialisable: RpcMethod = async () => 10n;
    h = await startHarness({}, new Map([...RPC_METHODS, ['test_broken', broken], ['test_bigint', unserialisable]]));
    const r = await rpc(h.url, 'test_broken');
    expect(r.error?.code).toBe(RpcErrorCode.InternalError);
    expect(JSON.stringify(r)).not.toContain('secret');
    expect(h.logs.some((l) => l.level === 'error' && l.method === 'test_broken')).toBe(true);
    expect((await rpc(h.url, 'test_bigint')).error?.code).toBe(RpcErrorCode.InternalError);
    // In a batch, only the unserialisable result becomes -32603; the other answers stand.
    const res = await fetch(h.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify([
        { jsonrpc: '2.0', id: 1, method: 'test_bigint' },
        { jsonrpc: '2.0', id: 2, method: 'eth_chainId', params: [] },
      ]),
    });
    const batch = (await res.json()) as Array<{ id: number; result?: unknown; error?: { code: number } }>;
    expect(batch.find((r) => r.id === 1)?.error?.code).toBe(RpcErrorCode.InternalError);
    expect(typeof batch.find((r) => r.id === 2)?.result).toBe('string');
  });

  it('logs a bare TCP connect-and-close (load balancer probe) at debug only', async () => {
    h = await startHarness();
    const before = h.logs.length;
    await new Promise<void>((resolve, reject) => {
      const s = net.connect(h!.port, '127.0.0.1', () => s.end());
      s.on('close', () => resolve());
      s.on('error', reject);
    });
    await until(() => h!.logs.slice(before).some((l) => l.msg === 'rpc connection'), 'the probe to be logged');
    await new Promise((r) => setTimeout(r, 100));
    const after = h.logs.slice(before);
    expect(after.filter((l) => LEVELS_ABOVE_DEBUG.has(l.level))).toEqual([]);
    expect(after.find((l) => l.msg === 'rpc connection')?.level).toBe('debug');
  });

  it('answers garbage bytes with 400, logs at debug only, and keeps serving', async () => {
    h = await startHarness();
    const before = h.logs.length;
    const reply = await rawExchange(h.port, Buffer.from([0x16, 0x03, 0x01, 0x00, 0xff, 0x0d, 0x0a, 0x0d, 0x0a]));
    expect(reply).toMatch(/^HTTP\/1.1 400/);
    expect(h.logs.slice(before).filter((l) => LEVELS_ABOVE_DEBUG.has(l.level))).toEqual([]);
    expect((await rpc(h.url, 'eth_blockNumber')).result).toBe('0x0');
  });

  it('closes a connection whose headers never finish (slow loris) within headersTimeoutMs', async () => {
    h = await startHarness({ headersTimeoutMs: 300, requestBodyTimeoutMs: 300, connectionsCheckIntervalMs: 100 });
    const started = Date.now();
    const reply = await rawExchange(h.port, 'POST / HTTP/1.1\r\nHost: x\r\n');
    expect(reply === '' || /^HTTP\/1.1 408/.test(reply)).toBe(true);
    // Node checks header timeouts on a coarse timer; the bound here is generous on purpose.
    expect(Date.now() - started).toBeLessThan(10_000);
  });
});

describe('health and metrics', () => {
  it('GET /health answers 200 with role, term, head and peers while the node works, 503 otherwise', async () => {
    h = await startHarness();
    const ok = await fetch(`${h.url}health`);
    expect(ok.status).toBe(200);
    expect(await ok.json()).toEqual({ role: 'leader', term: 1, head: 0, peers: 2 });
    const head = await fetch(`${h.url}health`, { method: 'HEAD' });
    expect(head.status).toBe(200);
    h.backend.quorum = false;
    const bad = await fetch(`${h.url}health`);
    expect(bad.status).toBe(503);
    expect(await bad.json()).toMatchObject({ reason: 'no leader' });
  });

  it('GET /metrics serves Prometheus text with the node metrics and counts calls by method and code', async () => {
    h = await startHarness();
    await rpc(h.url, 'eth_blockNumber');
    await rpc(h.url, 'eth_getBalance', ['bad']);
    h.metrics.raftTerm.set(7);
    const res = await fetch(`${h.url}metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toContain('text/plain');
    const text = await res.text();
    expect(text).toContain('quorate_rpc_requests_total{method="eth_blockNumber",code="0"} 1');
    expect(text).toContain('quorate_rpc_requests_total{method="eth_getBalance",code="-32602"} 1');
    expect(text).toContain('quorate_raft_term 7');
    for (const name of [
      'quorate_raft_commit_index',
      'quorate_raft_applied_index',
      'quorate_raft_role_info{role="follower"} 1',
      'quorate_blocks_committed_total',
      'quorate_txs_committed_total',
      'quorate_txpool_size',
      'quorate_circuit_breaker_state',
      'quorate_rpc_duration_seconds_bucket',
    ]) {
      expect(text).toContain(name);
    }
  });
});
