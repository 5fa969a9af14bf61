// The hostile-client matrix against REAL listeners (node:http / node:https on 127.0.0.1, port 0)
// over the fake ledger backend: every way a caller that should not get in is refused with the
// documented HTTP status and JSON-RPC code (node/rpc/security.ts, node/rpc/errors.ts), and the
// caller with the right token and certificate gets its answer.
//
// Requests go through node:http/https directly (not fetch): the matrix sets Host and Origin
// headers that fetch would not let a test choose, and it needs the raw TLS outcome.

import http from 'node:http';
import https from 'node:https';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createCa, type Ca } from '../../node/cli/init-credentials.js';
import { generateToken, tokensFileJson, TokenStore } from '../../node/rpc/auth.js';
import { HttpRpcClient, RpcCallError, RpcTransportError } from '../../node/rpc/client.js';
import { RpcErrorCode } from '../../node/rpc/errors.js';
import { defaultVhosts } from '../../node/rpc/security-config.js';
import type { RpcServerSecurity } from '../../node/rpc/security.js';
import { startHarness, type Harness } from '../rpc/harness.js';
import { guardFile } from './faults.js';

// The process guards count unhandled rejections and uncaught exceptions over this file: 0 at its end.
guardFile();

interface Answer {
  readonly status: number;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: { id?: unknown; result?: unknown; error?: { code: number; message: string; data?: unknown } } & {
    [k: string]: unknown;
  };
}

interface RawRequest {
  readonly url: string;
  readonly method?: string;
  readonly headers?: Record<string, string>;
  readonly body?: string;
  readonly tls?: https.RequestOptions;
}

/** One HTTP(S) request with exactly these headers; rejects when the connection fails. */
function raw(r: RawRequest): Promise<Answer> {
  const u = new URL(r.url);
  const lib = u.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = lib.request(
      {
        host: u.hostname,
        port: u.port,
        path: u.pathname,
        method: r.method ?? 'POST',
        headers: r.headers ?? {},
        agent: false,
        timeout: 5_000,
        ...r.tls,
      },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let body: Answer['body'];
          try {
            body = text.length > 0 ? (JSON.parse(text) as Answer['body']) : {};
          } catch {
            body = { text };
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(r.body);
  });
}

const CALL = (method: string, params: unknown[] = [], id: unknown = 7): string =>
  JSON.stringify({ jsonrpc: '2.0', id, method, params });
const JSON_TYPE = { 'content-type': 'application/json' };

let ca: Ca;
let otherCa: Ca;
let serverCert: { certPem: string; keyPem: string };
let clientCert: { certPem: string; keyPem: string };
let foreignClientCert: { certPem: string; keyPem: string };
const operator = generateToken();
const reader = generateToken();
const tokens = TokenStore.parse(
  tokensFileJson([
    { name: 'operator', sha256Hex: operator.sha256Hex, scopes: ['eth', 'net', 'quorate', 'raft', 'admin'] },
    { name: 'reader', sha256Hex: reader.sha256Hex, scopes: ['eth', 'net', 'quorate', 'raft'] },
  ]),
  'test tokens',
);
const APP = 'https://app.example';

function security(extra: Partial<RpcServerSecurity> = {}): RpcServerSecurity {
  return {
    vhosts: defaultVhosts('127.0.0.1'),
    corsOrigins: [APP],
    authRequired: true,
    tokens,
    metrics: 'auth',
    ...extra,
  };
}

let plain: Harness;
let mtls: Harness;
let tlsOnly: Harness;

beforeAll(async () => {
  [ca, otherCa] = await Promise.all([createCa('test cluster CA'), createCa('another CA')]);
  serverCert = await ca.issue({ commonName: 'node-1', hosts: ['127.0.0.1', 'localhost'], usage: 'server' });
  clientCert = await ca.issue({ commonName: 'operator', usage: 'client' });
  foreignClientCert = await otherCa.issue({ commonName: 'intruder', usage: 'client' });
  const tls = { cert: Buffer.from(serverCert.certPem), key: Buffer.from(serverCert.keyPem) };
  plain = await startHarness({ host: '127.0.0.1', security: security() });
  mtls = await startHarness({
    host: '127.0.0.1',
    security: security({ tls: { ...tls, clientCa: Buffer.from(ca.certPem) } }),
  });
  tlsOnly = await startHarness({ host: '127.0.0.1', security: security({ tls }) });
}, 60_000);

afterAll(async () => {
  await Promise.all([plain?.stop(), mtls?.stop(), tlsOnly?.stop()]);
});

/** JSON-RPC calls that reached the method table (every label but the gate's "(refused)"). */
async function methodCalls(h: Harness): Promise<number> {
  const m = await h.metrics.rpcRequests.get();
  return m.values.filter((v) => v.labels.method !== '(refused)').reduce((n, v) => n + v.value, 0);
}

const bearer = (t: string): Record<string, string> => ({ authorization: `Bearer ${t}` });

describe('JSON-RPC over plain HTTP with tokens required: the hostile-client matrix', () => {
  const cases: Array<{
    name: string;
    req: () => RawRequest;
    status: number;
    code: RpcErrorCode;
  }> = [
    {
      name: 'a text/plain POST (a browser "simple" request)',
      req: () => ({
        url: plain.url,
        headers: { 'content-type': 'text/plain', ...bearer(operator.token) },
        body: CALL('eth_blockNumber'),
      }),
      status: 415,
      code: RpcErrorCode.UnsupportedContentType,
    },
    {
      name: 'a form post',
      req: () => ({
        url: plain.url,
        headers: { 'content-type': 'application/x-www-form-urlencoded', ...bearer(operator.token) },
        body: 'a=1',
      }),
      status: 415,
      code: RpcErrorCode.UnsupportedContentType,
    },
    {
      name: 'a POST with no Content-Type',
      req: () => ({ url: plain.url, headers: bearer(operator.token), body: CALL('eth_blockNumber') }),
      status: 415,
      code: RpcErrorCode.UnsupportedContentType,
    },
    {
      name: 'a Host that is not a vhost (DNS rebinding)',
      req: () => ({
        url: plain.url,
        headers: { ...JSON_TYPE, ...bearer(operator.token), host: `evil.example:${plain.port}` },
        body: CALL('eth_blockNumber'),
      }),
      status: 403,
      code: RpcErrorCode.HostNotAllowed,
    },
    {
      name: 'a foreign Origin',
      req: () => ({
        url: plain.url,
        headers: { ...JSON_TYPE, ...bearer(operator.token), origin: 'https://evil.example' },
        body: CALL('eth_blockNumber'),
      }),
      status: 403,
      code: RpcErrorCode.OriginNotAllowed,
    },
    {
      name: 'a CORS preflight from a foreign Origin',
      req: () => ({
        url: plain.url,
        method: 'OPTIONS',
        headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' },
      }),
      status: 403,
      code: RpcErrorCode.OriginNotAllowed,
    },
    {
      name: 'no token',
      req: () => ({ url: plain.url, headers: JSON_TYPE, body: CALL('eth_blockNumber') }),
      status: 401,
      code: RpcErrorCode.Unauthenticated,
    },
    {
      name: 'a wrong token',
      req: () => ({
        url: plain.url,
        headers: { ...JSON_TYPE, ...bearer(generateToken().token) },
        body: CALL('eth_blockNumber'),
      }),
      status: 401,
      code: RpcErrorCode.Unauthenticated,
    },
    {
      name: 'a token in another scheme (Basic)',
      req: () => ({
        url: plain.url,
        headers: { ...JSON_TYPE, authorization: `Basic ${Buffer.from(`x:${operator.token}`).toString('base64')}` },
        body: CALL('eth_blockNumber'),
      }),
      status: 401,
      code: RpcErrorCode.Unauthenticated,
    },
    {
      name: 'a read-only token calling raft_addPeer',
      req: () => ({
        url: plain.url,
        headers: { ...JSON_TYPE, ...bearer(reader.token) },
        body: CALL('raft_addPeer', ['/ip4/127.0.0.1/tcp/1']),
      }),
      status: 403,
      code: RpcErrorCode.ScopeMissing,
    },
    {
      name: 'a read-only token calling quorate_sendTransaction (node-signed)',
      req: () => ({
        url: plain.url,
        headers: { ...JSON_TYPE, ...bearer(reader.token) },
        body: CALL('quorate_sendTransaction', [{}]),
      }),
      status: 403,
      code: RpcErrorCode.ScopeMissing,
    },
    {
      name: 'a read-only token reading private plaintext',
      req: () => ({
        url: plain.url,
        headers: { ...JSON_TYPE, ...bearer(reader.token) },
        body: CALL('quorate_getPrivateValue', ['k']),
      }),
      status: 403,
      code: RpcErrorCode.ScopeMissing,
    },
    {
      name: 'a read-only token hiding an admin call inside a batch of reads',
      req: () => ({
        url: plain.url,
        headers: { ...JSON_TYPE, ...bearer(reader.token) },
        body: `[${CALL('eth_blockNumber', [], 1)},${CALL('raft_removePeer', [2], 2)}]`,
      }),
      status: 403,
      code: RpcErrorCode.ScopeMissing,
    },
    {
      name: 'GET /metrics without a token',
      req: () => ({ url: `${plain.url}metrics`, method: 'GET' }),
      status: 401,
      code: RpcErrorCode.Unauthenticated,
    },
  ];

  for (const c of cases) {
    it(`refuses ${c.name}: HTTP ${c.status}, code ${c.code}`, async () => {
      const before = await methodCalls(plain);
      const a = await raw(c.req());
      expect(a.status).toBe(c.status);
      expect(a.body.error?.code).toBe(c.code);
      expect(typeof a.body.error?.message).toBe('string');
      if (c.status === 401) expect(a.headers['www-authenticate']).toMatch(/^Bearer realm="quorate"/);
      // The connection closes after a refusal, so an unread body is not read on.
      expect(a.headers.connection).toBe('close');
      // No method ran.
      expect(await methodCalls(plain)).toBe(before);
    });
  }

  it('names the missing scope and the method in a scope refusal, with the request id', async () => {
    const a = await raw({
      url: plain.url,
      headers: { ...JSON_TYPE, ...bearer(reader.token) },
      body: CALL('raft_transferLeadership', [2], 'req-9'),
    });
    expect(a.status).toBe(403);
    expect(a.body.id).toBe('req-9');
    expect(a.body.error?.data).toEqual({ missing: ['admin'], methods: ['raft_transferLeadership'] });
  });

  it('answers the right token: reads with the reader token, everything with the operator token', async () => {
    const read = await raw({
      url: plain.url,
      headers: { ...JSON_TYPE, ...bearer(reader.token) },
      body: CALL('eth_blockNumber'),
    });
    expect(read.status).toBe(200);
    expect(read.body.result).toMatch(/^0x[0-9a-f]+$/);
    const batch = await raw({
      url: plain.url,
      headers: { ...JSON_TYPE, ...bearer(operator.token) },
      body: `[${CALL('eth_blockNumber', [], 1)},${CALL('quorate_accounts', [], 2)}]`,
    });
    expect(batch.status).toBe(200);
    expect((batch.body as unknown as unknown[]).length).toBe(2);
    // Content-Type with parameters and Host with the port and a listed vhost are fine.
    const named = await raw({
      url: plain.url,
      headers: {
        'content-type': 'Application/JSON; charset=utf-8',
        host: `localhost:${plain.port}`,
        ...bearer(operator.token),
      },
      body: CALL('net_version'),
    });
    expect(named.status).toBe(200);
  });

  it('answers a preflight from a listed origin with the CORS headers, then its POST with allow-origin', async () => {
    const pre = await raw({
      url: plain.url,
      method: 'OPTIONS',
      headers: {
        origin: APP,
        'access-control-request-method': 'POST',
        'access-control-request-headers': 'content-type, authorization',
      },
    });
    expect(pre.status).toBe(204);
    expect(pre.headers['access-control-allow-origin']).toBe(APP);
    expect(pre.headers['access-control-allow-headers']).toContain('authorization');
    expect(pre.headers['access-control-allow-methods']).toContain('POST');
    const post = await raw({
      url: plain.url,
      headers: { ...JSON_TYPE, origin: APP, ...bearer(reader.token) },
      body: CALL('eth_chainId'),
    });
    expect(post.status).toBe(200);
    expect(post.headers['access-control-allow-origin']).toBe(APP);
  });

  it('keeps GET /health open, and serves /metrics to a token', async () => {
    const health = await raw({ url: `${plain.url}health`, method: 'GET', headers: { host: 'lb.internal' } });
    expect(health.status).toBe(200);
    const metrics = await raw({ url: `${plain.url}metrics`, method: 'GET', headers: bearer(reader.token) });
    expect(metrics.status).toBe(200);
    expect(metrics.headers['content-type']).toContain('text/plain');
  });

  it('counts refusals in the metrics by code, and logs them at debug only', async () => {
    const text = await plain.metrics.registry.metrics();
    expect(text).toMatch(new RegExp(`method="\\(refused\\)",code="${RpcErrorCode.Unauthenticated}"`));
    const refusedLines = plain.logs.filter((l) => l.msg === 'rpc request refused');
    expect(refusedLines.length).toBeGreaterThan(0);
    expect(refusedLines.every((l) => l.level === 'debug')).toBe(true);
  });

  it('does not serve /metrics at all when rpc.metrics is "off"', async () => {
    const off = await startHarness({ host: '127.0.0.1', security: security({ metrics: 'off' }) });
    try {
      const a = await raw({ url: `${off.url}metrics`, method: 'GET', headers: bearer(operator.token) });
      expect(a.status).toBe(404);
    } finally {
      await off.stop();
    }
  });
});

describe('JSON-RPC over TLS with client certificates required', () => {
  const good = (): https.RequestOptions => ({ ca: ca.certPem, cert: clientCert.certPem, key: clientCert.keyPem });

  it('serves the right token and certificate', async () => {
    expect(mtls.url.startsWith('https://127.0.0.1:')).toBe(true);
    const a = await raw({
      url: mtls.url,
      headers: { ...JSON_TYPE, ...bearer(operator.token) },
      body: CALL('eth_blockNumber'),
      tls: good(),
    });
    expect(a.status).toBe(200);
    expect(a.body.result).toMatch(/^0x/);
  });

  it('still wants the token over a good certificate: 401 without it', async () => {
    const a = await raw({ url: mtls.url, headers: JSON_TYPE, body: CALL('eth_blockNumber'), tls: good() });
    expect(a.status).toBe(401);
    expect(a.body.error?.code).toBe(RpcErrorCode.Unauthenticated);
  });

  it('refuses plain HTTP to the TLS listener: the connection closes without an HTTP answer', async () => {
    const url = mtls.url.replace('https:', 'http:');
    await expect(
      raw({ url, headers: { ...JSON_TYPE, ...bearer(operator.token) }, body: CALL('eth_blockNumber') }),
    ).rejects.toThrow();
  });

  it('refuses a client certificate from another CA in the handshake', async () => {
    await expect(
      raw({
        url: mtls.url,
        headers: { ...JSON_TYPE, ...bearer(operator.token) },
        body: CALL('eth_blockNumber'),
        tls: { ca: ca.certPem, cert: foreignClientCert.certPem, key: foreignClientCert.keyPem },
      }),
    ).rejects.toThrow();
  });

  it('refuses a client with no certificate in the handshake', async () => {
    await expect(
      raw({
        url: mtls.url,
        headers: { ...JSON_TYPE, ...bearer(operator.token) },
        body: CALL('eth_blockNumber'),
        tls: { ca: ca.certPem },
      }),
    ).rejects.toThrow();
  });

  it('HttpRpcClient with the CA, certificate and token calls through; without the CA it cannot', async () => {
    const client = new HttpRpcClient(mtls.url, {
      timeoutMs: 5_000,
      credentials: { token: operator.token, caPem: ca.certPem, certPem: clientCert.certPem, keyPem: clientCert.keyPem },
    });
    try {
      expect(await client.call('eth_blockNumber')).toMatch(/^0x/);
    } finally {
      await client.close();
    }
    const noCa = new HttpRpcClient(tlsOnly.url, { timeoutMs: 5_000, credentials: { token: operator.token } });
    await expect(noCa.call('eth_blockNumber')).rejects.toBeInstanceOf(RpcTransportError);
  });

  it('HttpRpcClient surfaces 401 and 403 as RpcCallError with the documented codes', async () => {
    const creds = { caPem: ca.certPem };
    const none = new HttpRpcClient(tlsOnly.url, { timeoutMs: 5_000, credentials: creds });
    const read = new HttpRpcClient(tlsOnly.url, { timeoutMs: 5_000, credentials: { ...creds, token: reader.token } });
    try {
      const e1 = await none.call('eth_blockNumber').catch((e: unknown) => e);
      expect(e1).toBeInstanceOf(RpcCallError);
      expect((e1 as RpcCallError).code).toBe(RpcErrorCode.Unauthenticated);
      const e2 = await read.call('raft_removePeer', [3]).catch((e: unknown) => e);
      expect((e2 as RpcCallError).code).toBe(RpcErrorCode.ScopeMissing);
      expect(await read.call('eth_chainId')).toMatch(/^0x/);
    } finally {
      await Promise.all([none.close(), read.close()]);
    }
  });
});
