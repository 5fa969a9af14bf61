// The transaction manager's client API (issue 10, docs/interface.md "Security"): loopback only by
// default and whatever the host config says; a remote-client listener only with TLS and a bearer
// token (refused at start otherwise); the payload store's quota refuses a send past it with a
// typed error (HTTP 507) and the TM keeps working. All traffic stays on 127.0.0.1.

import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, statSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  LevelPayloadStore,
  MemoryPayloadStore,
  TxManagerError,
  TxManagerErrorCode,
  TxManagerServer,
  hashToken,
  isLoopbackHost,
} from '../../txmanager/index.js';
import { privacyError } from '../../node/privacy-errors.js';
import { NodeError, NodeErrorCode } from '../../node/errors.js';
import { type TmCluster, tmCluster, utf8 } from '../txmanager/fixtures.js';

let work: string;
let cluster: TmCluster;
/** Quota of node-a's store in the quota test: room for a couple of small payloads. */
const SMALL_QUOTA_BYTES = 4_096;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'quorate-tm-sec-'));
  cluster = await tmCluster({
    store: async (nodeId) => new MemoryPayloadStore(nodeId === 'node-a' ? { maxBytes: SMALL_QUOTA_BYTES } : {}),
  });
});
afterAll(async () => {
  await cluster.stop();
  await rm(work, { recursive: true, force: true });
});

async function codeOf(p: Promise<unknown>): Promise<string> {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  if (e instanceof TxManagerError) return e.code;
  throw new Error(`expected a TxManagerError, got ${String(e)}`);
}

describe('who may reach the TM client API', () => {
  it('binds 127.0.0.1 by default (server.address())', async () => {
    const server = new TxManagerServer(cluster.nodes['node-a'].tm);
    try {
      const address = await server.start();
      expect(address.host).toBe('127.0.0.1');
      expect(server.address().host).toBe('127.0.0.1');
      expect(server.remoteAddress()).toBeUndefined();
    } finally {
      await server.stop();
    }
  });

  it('serves on a Unix socket of mode 0600 instead of TCP; replaces a stale socket, refuses any other file', async () => {
    const socketPath = join(work, 'tm.sock');
    const get = (path: string) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const req = httpRequest({ socketPath, path, method: 'GET' }, (res) => {
          let body = '';
          res.on('data', (c: Buffer) => (body += c.toString()));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
        });
        req.on('error', reject);
        req.end();
      });
    for (let round = 0; round < 2; round++) {
      // Round 2 starts over a stale socket file, as a crashed process leaves one (it exits bound).
      if (round === 1) {
        execFileSync(process.execPath, [
          '-e',
          `require('net').createServer().listen(${JSON.stringify(socketPath)}, () => process.exit(0))`,
        ]);
        expect(statSync(socketPath).isSocket()).toBe(true);
      }
      const server = new TxManagerServer(cluster.nodes['node-a'].tm, { socketPath });
      try {
        expect((await server.start()).url).toBe(`unix:${socketPath}`);
        expect(statSync(socketPath).isSocket()).toBe(true);
        expect(statSync(socketPath).mode & 0o777).toBe(0o600);
        expect(await get('/upcheck')).toEqual({ status: 200, body: "I'm up!" });
        expect(JSON.parse((await get('/keys')).body).keys).toHaveLength(1);
      } finally {
        await server.stop();
      }
    }
    // A regular file at the path is never replaced; a relative or overlong path is refused.
    await writeFile(join(work, 'not-a-socket'), 'data');
    for (const bad of [join(work, 'not-a-socket'), 'tm.sock', `/${'x'.repeat(120)}`]) {
      const server = new TxManagerServer(cluster.nodes['node-a'].tm, { socketPath: bad });
      expect(await codeOf(server.start()), bad).toBe(TxManagerErrorCode.InvalidConfig);
    }
    expect(readFileSync(join(work, 'not-a-socket'), 'utf8')).toBe('data');
  });

  it('refuses to start on a routable or wildcard host, before binding anything', async () => {
    for (const host of ['0.0.0.0', '::', '10.200.0.1', 'node-b.example']) {
      const server = new TxManagerServer(cluster.nodes['node-a'].tm, { host, port: 0 });
      const error = await server.start().catch((e: unknown) => e);
      expect(error, host).toBeInstanceOf(TxManagerError);
      expect((error as TxManagerError).code).toBe(TxManagerErrorCode.InsecureListener);
      expect((error as Error).message).toMatch(/tm\.host to 127\.0\.0\.1/);
      expect(() => server.address()).toThrow(/not started/);
    }
    expect(['127.0.0.1', '127.1.2.3', '::1', '[::1]', 'localhost'].every(isLoopbackHost)).toBe(true);
  });

  it('refuses a remote-client listener without TLS, or without a token', async () => {
    const tm = cluster.nodes['node-a'].tm;
    const noTls = new TxManagerServer(tm, {
      remoteClients: { host: '127.0.0.1', port: 0, tokenHashes: [hashToken('t')] },
    });
    const error = await noTls.start().catch((e: unknown) => e);
    expect(error).toMatchObject({ code: TxManagerErrorCode.InsecureListener });
    expect((error as Error).message).toMatch(/without TLS/);
    const noToken = new TxManagerServer(tm, {
      remoteClients: { host: '127.0.0.1', port: 0, tls: { certFile: '/nonexistent', keyFile: '/nonexistent' } },
    });
    const error2 = await noToken.start().catch((e: unknown) => e);
    expect(error2).toMatchObject({ code: TxManagerErrorCode.InsecureListener });
    expect((error2 as Error).message).toMatch(/without a bearer token/);
  });

  const haveOpenssl = (() => {
    try {
      execFileSync('openssl', ['version'], { stdio: 'ignore' });
      return true;
    } catch {
      return false;
    }
  })();
  if (!haveOpenssl) console.log('skipping the TLS remote-client test: no openssl to make a test certificate');

  it.skipIf(!haveOpenssl)('a configured remote-client listener serves TLS and requires the bearer token', async () => {
    const certFile = join(work, 'tm.crt');
    const keyFile = join(work, 'tm.key');
    execFileSync(
      'openssl',
      [
        'req',
        '-x509',
        '-newkey',
        'ec',
        '-pkeyopt',
        'ec_paramgen_curve:prime256v1',
        '-nodes',
        '-keyout',
        keyFile,
        '-out',
        certFile,
        '-days',
        '1',
        '-subj',
        '/CN=localhost',
        '-addext',
        'subjectAltName=IP:127.0.0.1',
      ],
      { stdio: 'ignore' },
    );
    const tokensFile = join(work, 'tokens');
    await writeFile(tokensFile, `# the app server\n${hashToken('s3cret-token')}\n`, { mode: 0o600 });
    const server = new TxManagerServer(cluster.nodes['node-a'].tm, {
      remoteClients: { host: '127.0.0.1', port: 0, tls: { certFile, keyFile }, tokensFile },
    });
    await server.start();
    try {
      const remote = server.remoteAddress();
      expect(remote?.url).toMatch(/^https:/);
      const ca = readFileSync(certFile);
      const get = (path: string, token?: string): Promise<number> =>
        new Promise((resolve, reject) => {
          const req = httpsRequest(
            {
              host: '127.0.0.1',
              port: remote?.port,
              path,
              ca,
              headers: token === undefined ? {} : { authorization: `Bearer ${token}` },
            },
            (res) => {
              res.resume();
              resolve(res.statusCode ?? 0);
            },
          );
          req.on('error', reject);
          req.end();
        });
      expect(await get('/upcheck')).toBe(200);
      expect(await get('/keys')).toBe(401);
      expect(await get('/keys', 'wrong-token')).toBe(401);
      expect(await get('/partyinfo/keys', 'wrong-token')).toBe(401);
      expect(await get('/keys', 's3cret-token')).toBe(200);
      // Plain HTTP to the TLS listener gets no answer from the API.
      const plain = await new Promise<string>((resolve) => {
        const req = httpRequest({ host: '127.0.0.1', port: remote?.port, path: '/keys' }, (res) => {
          res.resume();
          resolve(`status ${res.statusCode}`);
        });
        req.on('error', (e) => resolve(`error ${(e as NodeJS.ErrnoException).code}`));
        req.end();
      });
      expect(plain).not.toBe('status 200');
      // The local listener stays on loopback, without a token.
      expect(server.address().host).toBe('127.0.0.1');
    } finally {
      await server.stop();
    }
  });
});

describe('payload store quota (limits.tmStoreMaxBytes)', () => {
  it('a send that would pass the quota is refused (StoreFull, HTTP 507) and the TM keeps working', async () => {
    const a = cluster.nodes['node-a'];
    const b = cluster.nodes['node-b'];
    expect(await a.tm.send(utf8('x'.repeat(500)), undefined, b.keys)).toBeTypeOf('string');
    const used = a.store.usedBytes();
    expect(used).toBeGreaterThan(500);
    expect(await codeOf(a.tm.send(utf8('y'.repeat(SMALL_QUOTA_BYTES)), undefined, b.keys))).toBe(
      TxManagerErrorCode.StoreFull,
    );
    expect(a.store.usedBytes()).toBe(used);

    const server = new TxManagerServer(a.tm);
    const { url } = await server.start();
    try {
      const res = await fetch(`${url}/send`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ payload: Buffer.from('z'.repeat(SMALL_QUOTA_BYTES)).toString('base64'), to: b.keys }),
      });
      expect(res.status).toBe(507);
      const body = (await res.json()) as { code: string; error: string };
      expect(body.code).toBe('TXM_STORE_FULL');
      expect(body.error).toMatch(/limits\.tmStoreMaxBytes/);
      // Still answering, and a payload that fits is still taken.
      expect((await fetch(`${url}/upcheck`)).status).toBe(200);
      const ok = await fetch(`${url}/send`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ payload: Buffer.from('small').toString('base64'), to: b.keys }),
      });
      expect(ok.status).toBe(201);
    } finally {
      await server.stop();
    }

    // The node's JSON-RPC sees it as a clear privacy error carrying the TM code.
    const mapped = privacyError(new TxManagerError(TxManagerErrorCode.StoreFull, 'the payload store is full'));
    expect(mapped).toBeInstanceOf(NodeError);
    expect(mapped).toMatchObject({ code: NodeErrorCode.PrivacyUnavailable, meta: { tmCode: 'TXM_STORE_FULL' } });
  });

  it('the LevelDB store keeps its byte count across reopen, counts replacements and deletes, and scans only payloads', async () => {
    const path = join(work, 'payloads');
    const store = await LevelPayloadStore.open(path, { maxBytes: 1_000 });
    await store.put('AAAA', new Uint8Array(300));
    await store.put('BBBB', new Uint8Array(300));
    await store.put('AAAA', new Uint8Array(100)); // replaces 300 bytes
    expect(store.usedBytes()).toBe(400);
    expect(await codeOf(store.put('CCCC', new Uint8Array(700)))).toBe(TxManagerErrorCode.StoreFull);
    await Promise.all([store.put('DDDD', new Uint8Array(250)), store.put('EEEE', new Uint8Array(250))]);
    expect(store.usedBytes()).toBe(900);
    await store.delete('BBBB');
    expect(store.usedBytes()).toBe(600);
    await store.close();

    const reopened = await LevelPayloadStore.open(path, { maxBytes: 1_000 });
    try {
      expect(reopened.usedBytes()).toBe(600);
      expect((await reopened.scan(null, 10)).map((e) => e.hash)).toEqual(['AAAA', 'DDDD', 'EEEE']);
      expect(await codeOf(reopened.put('FFFF', new Uint8Array(401)))).toBe(TxManagerErrorCode.StoreFull);
      await reopened.put('FFFF', new Uint8Array(400));
      expect(reopened.usedBytes()).toBe(1_000);
    } finally {
      await reopened.close();
    }
    expect(existsSync(path)).toBe(true);
  });
});
