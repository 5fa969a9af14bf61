// One real `quorate start` process with the JSON-RPC credentials `quorate init --hosts` writes
// (cluster CA, the node's TLS certificate, token hashes), on a loopback listener configured to
// require them: the right token over TLS is served, the wrong callers are refused, `quorate
// status` works with --token/--ca-file and fails without; and a node configured to bind a
// non-loopback address without tokens refuses to start, naming the field, before binding anything.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { openSync, closeSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import https from 'node:https';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { initCluster } from '../../node/cli/init.js';
import { CREDENTIAL_FILES, writeRpcCredentials } from '../../node/cli/init-credentials.js';
import { X509Certificate } from 'node:crypto';
import { loadConfig } from '../../node/config.js';
import { addNode } from '../../node/join.js';
import { HttpRpcClient, RpcCallError } from '../../node/rpc/client.js';
import { RpcErrorCode } from '../../node/rpc/errors.js';
import { stopChild } from '../../node/up.js';

const BIN = resolve(fileURLToPath(new URL('../../bin/quorate.js', import.meta.url)));

function cli(args: readonly string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { ...process.env, NODE_OPTIONS: '', QUORATE_RPC_TOKEN: '', QUORATE_RPC_CA_FILE: '' }, timeout: 60_000 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        done({ code, stdout, stderr });
      },
    );
  });
}

function healthOk(url: string, ca: string): Promise<boolean> {
  return new Promise((done) => {
    const req = https.get(`${url}health`, { ca, timeout: 1_000, agent: false }, (res) => {
      res.resume();
      done(res.statusCode === 200);
    });
    req.on('timeout', () => req.destroy());
    req.on('error', () => done(false));
  });
}

let work: string;
let cluster: string;
let rpcUrl: string;
let caPem: string;
let operatorToken: string;
let readerToken: string;
let child: ChildProcess | undefined;
let logPath: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'quorate-sec-'));
  cluster = join(work, 'c');
  const base = 21_000 + Math.floor(Math.random() * 1_500) * 10;
  await initCluster({
    nodes: 1,
    dir: cluster,
    hosts: ['127.0.0.1'],
    rpcPort: base,
    p2pPort: base + 3_000,
    tmPort: base + 6_000,
    force: false,
    chainId: 1337,
  });
  // What init --hosts writes for a non-loopback cluster, here for a loopback node, which then
  // requires tokens because a tokens file is configured.
  const creds = await writeRpcCredentials(cluster, [{ nodeId: 'node-1', host: '127.0.0.1' }]);
  rpcUrl = `https://127.0.0.1:${base}/`;
  const configPath = join(cluster, 'node-1', 'config.json');
  const config = JSON.parse(await readFile(configPath, 'utf8')) as Record<string, Record<string, unknown>> & {
    peers: Array<Record<string, unknown>>;
  };
  config.rpc = { ...config.rpc, ...creds.rpcConfigFor('node-1') };
  config.peers[0].rpcUrl = rpcUrl;
  await writeFile(configPath, JSON.stringify(config, null, 2));
  const genesisPath = join(cluster, 'genesis.json');
  const genesis = JSON.parse(await readFile(genesisPath, 'utf8')) as { members: Array<Record<string, unknown>> };
  genesis.members[0].rpcUrl = rpcUrl;
  await writeFile(genesisPath, JSON.stringify(genesis, null, 2));

  caPem = await readFile(join(cluster, CREDENTIAL_FILES.caCert), 'utf8');
  const tokenLines = (await readFile(join(cluster, CREDENTIAL_FILES.tokens), 'utf8'))
    .split('\n')
    .filter((l) => l.length > 0 && !l.startsWith('#'))
    .map((l) => l.split(' '));
  operatorToken = tokenLines.find((l) => l[0] === 'operator')?.[2] ?? '';
  readerToken = tokenLines.find((l) => l[0] === 'reader')?.[2] ?? '';

  logPath = join(cluster, 'node-1', 'node.log');
  const fd = openSync(logPath, 'a');
  child = spawn(process.execPath, [BIN, 'start', '--config', configPath], {
    stdio: ['ignore', fd, fd],
    env: { ...process.env, NODE_OPTIONS: '' },
  });
  closeSync(fd);
  const deadline = Date.now() + 60_000;
  while (!(await healthOk(rpcUrl, caPem))) {
    if (Date.now() > deadline || child.exitCode !== null)
      throw new Error(`node did not become healthy: ${await readFile(logPath, 'utf8').catch(() => '')}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}, 90_000);

afterAll(async () => {
  if (child) await stopChild(child);
  await rm(work, { recursive: true, force: true });
});

describe('a real node with TLS and tokens', () => {
  it('keeps the credentials where they belong: tokens only hashed on the node, secrets 0600', async () => {
    expect(operatorToken).toMatch(/^qrt_/);
    expect(readerToken).toMatch(/^qrt_/);
    const nodeFiles = [
      await readFile(join(cluster, 'node-1', CREDENTIAL_FILES.nodeTokens), 'utf8'),
      await readFile(join(cluster, 'node-1', 'config.json'), 'utf8'),
    ].join('\n');
    expect(nodeFiles).not.toContain(operatorToken);
    expect(nodeFiles).not.toContain(readerToken);
    for (const f of [CREDENTIAL_FILES.tokens, CREDENTIAL_FILES.caKey, CREDENTIAL_FILES.clientKey])
      expect((await stat(join(cluster, f))).mode & 0o777, f).toBe(0o600);
    expect((await stat(join(cluster, 'node-1', CREDENTIAL_FILES.nodeKey))).mode & 0o777).toBe(0o600);
    expect((await stat(join(cluster, CREDENTIAL_FILES.dir))).mode & 0o777).toBe(0o700);
  });

  it('serves the operator token over TLS and refuses callers without the token or the scope', async () => {
    const op = new HttpRpcClient(rpcUrl, { timeoutMs: 10_000, credentials: { token: operatorToken, caPem } });
    const anon = new HttpRpcClient(rpcUrl, { timeoutMs: 10_000, credentials: { caPem } });
    const read = new HttpRpcClient(rpcUrl, { timeoutMs: 10_000, credentials: { token: readerToken, caPem } });
    try {
      const status = await op.call<{ role: string }>('raft_status');
      expect(typeof status.role).toBe('string');
      const e1 = await anon.call('eth_blockNumber').catch((e: unknown) => e);
      expect((e1 as RpcCallError).code).toBe(RpcErrorCode.Unauthenticated);
      const e2 = await read.call('raft_transferLeadership', [1]).catch((e: unknown) => e);
      expect((e2 as RpcCallError).code).toBe(RpcErrorCode.ScopeMissing);
      expect(await read.call('eth_blockNumber')).toMatch(/^0x/);
    } finally {
      await Promise.all([op.close(), anon.close(), read.close()]);
    }
  });

  it('quorate status works with --token and --ca-file, and fails without the token', async () => {
    const caFile = join(cluster, CREDENTIAL_FILES.caCert);
    const ok = await cli(['status', '--rpc', rpcUrl, '--token', readerToken, '--ca-file', caFile, '--json']);
    expect(ok.code, ok.stderr).toBe(0);
    const rows = JSON.parse(ok.stdout) as Array<{ nodeId: string; status?: unknown }>;
    expect(rows.map((r) => r.nodeId)).toEqual(['node-1']);
    expect(rows[0].status).toBeDefined();
    const denied = await cli(['status', '--rpc', rpcUrl, '--ca-file', caFile]);
    expect(denied.code).toBe(1);
    expect(denied.stderr).toContain(String(RpcErrorCode.Unauthenticated));
  });

  it('quorate bench submits over TLS with --token and --ca-file', async () => {
    const caFile = join(cluster, CREDENTIAL_FILES.caCert);
    const args = ['bench', '--rpc', rpcUrl, '--txs', '40', '--warmup', '0', '--concurrency', '4'];
    const ok = await cli([...args, '--token', readerToken, '--ca-file', caFile]);
    expect(ok.code, ok.stdout + ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/committed/i);
    // Success is the proof: this node answers nothing without a token, on either of bench's client paths.
  }, 60_000);

  it('never writes a token to the node log', async () => {
    const log = await readFile(logPath, 'utf8');
    expect(log).not.toContain(operatorToken);
    expect(log).not.toContain(readerToken);
  });

  it('add-node gives a new node a certificate from the cluster CA and the same token hashes', async () => {
    const r = await addNode({ dir: cluster, rpcUrl: 'http://127.0.0.1:1/' });
    expect(r.rpcUrl.startsWith('https://')).toBe(true);
    const config = await loadConfig(r.configPath);
    expect(config.rpcSecurity.auth.required).toBe(true);
    const nodeDir = join(cluster, r.name);
    expect(await readFile(join(nodeDir, CREDENTIAL_FILES.nodeTokens), 'utf8')).toBe(
      await readFile(join(cluster, 'node-1', CREDENTIAL_FILES.nodeTokens), 'utf8'),
    );
    const cert = new X509Certificate(await readFile(join(nodeDir, CREDENTIAL_FILES.nodeCert)));
    expect(cert.verify(new X509Certificate(caPem).publicKey)).toBe(true);
    expect(cert.checkIP('127.0.0.1')).toBe('127.0.0.1');
  });

  it('refuses to start a node bound to a non-loopback address without tokens, naming the field', async () => {
    const configPath = join(cluster, 'node-1', 'config.json');
    const config = JSON.parse(await readFile(configPath, 'utf8')) as { rpc: Record<string, unknown> };
    const open = join(cluster, 'node-1', 'config-open.json');
    await writeFile(open, JSON.stringify({ ...config, rpc: { host: '0.0.0.0', port: config.rpc.port } }));
    const r = await cli(['start', '--config', open]);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/rpc\.auth\.tokensFile.*not a loopback address/);
  });
});
