// What `quorate init` writes for JSON-RPC security: nothing for an all-loopback cluster (the
// local `npm start` one), and for `--hosts` on routable addresses a CA, each node's certificate
// for its own host, and tokens whose hashes (only) the nodes hold, wired into every config.

import { X509Certificate } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CREDENTIAL_FILES, rpcCredentialsNeeded } from '../../node/cli/init-credentials.js';
import { formatInitResult, initCluster, type InitResult } from '../../node/cli/init.js';
import { loadConfig, loadGenesis } from '../../node/config.js';
import { TokenStore } from '../../node/rpc/auth.js';

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'quorate-initsec-'));
});
afterAll(() => rm(work, { recursive: true, force: true }));

const init = (dir: string, hosts: string[]): Promise<InitResult> =>
  initCluster({
    nodes: hosts.length,
    dir,
    hosts,
    rpcPort: 8545,
    p2pPort: 30303,
    tmPort: 9001,
    force: false,
    chainId: 1337,
  });

describe('init and RPC credentials', () => {
  it('decides by the hosts: any non-loopback host needs credentials', () => {
    expect(rpcCredentialsNeeded(['127.0.0.1', '127.0.0.1'])).toBe(false);
    expect(rpcCredentialsNeeded(['127.0.0.2', 'localhost'])).toBe(false);
    expect(rpcCredentialsNeeded(['127.0.0.1', '10.0.0.2'])).toBe(true);
    expect(rpcCredentialsNeeded(['node-a.example'])).toBe(true);
  });

  it('writes nothing for a loopback cluster: plain http, no tokens, nothing to configure', async () => {
    const r = await init(join(work, 'local'), ['127.0.0.1']);
    expect(r.nodes[0].rpcUrl).toMatch(/^http:\/\//);
    expect(existsSync(join(r.dir, CREDENTIAL_FILES.dir))).toBe(false);
    const c = await loadConfig(r.nodes[0].configPath);
    expect(c.rpcSecurity.auth.required).toBe(false);
    expect(c.rpcSecurity.tls).toBeUndefined();
    expect(formatInitResult(r)).not.toContain('Bearer');
  });

  it('writes a CA, per-node certificates for their hosts and hashed tokens for --hosts on routable addresses', async () => {
    const r = await init(join(work, 'hosts'), ['10.0.0.1', 'node-b.example']);
    const genesis = await loadGenesis(r.genesisPath);
    expect(genesis.members.map((m) => m.rpcUrl)).toEqual(['https://10.0.0.1:8545/', 'https://node-b.example:8545/']);

    const ca = new X509Certificate(await readFile(join(r.dir, CREDENTIAL_FILES.caCert)));
    expect(ca.ca).toBe(true);
    const tokenLines = (await readFile(join(r.dir, CREDENTIAL_FILES.tokens), 'utf8'))
      .split('\n')
      .filter((l) => l.length > 0 && !l.startsWith('#'))
      .map((l) => l.split(' '));
    expect(tokenLines.map((l) => [l[0], l[1]])).toEqual([
      ['operator', 'eth,net,quorate,raft,admin'],
      ['reader', 'eth,net,quorate,raft'],
    ]);
    for (const f of [CREDENTIAL_FILES.tokens, CREDENTIAL_FILES.caKey, CREDENTIAL_FILES.clientKey])
      expect((await stat(join(r.dir, f))).mode & 0o777, f).toBe(0o600);

    for (const [i, n] of r.nodes.entries()) {
      const c = await loadConfig(n.configPath);
      const nodeDir = join(r.dir, n.nodeId);
      expect(c.rpcSecurity.auth).toEqual({ required: true, tokensFile: join(nodeDir, CREDENTIAL_FILES.nodeTokens) });
      expect(c.rpcSecurity.tls).toEqual({
        certFile: join(nodeDir, CREDENTIAL_FILES.nodeCert),
        keyFile: join(nodeDir, CREDENTIAL_FILES.nodeKey),
      });
      expect(c.rpcSecurity.metrics).toBe('auth');
      const cert = new X509Certificate(await readFile(c.rpcSecurity.tls!.certFile));
      expect(cert.verify(ca.publicKey)).toBe(true);
      if (i === 0) expect(cert.checkIP('10.0.0.1')).toBe('10.0.0.1');
      else expect(cert.checkHost('node-b.example')).toBe('node-b.example');
      expect((await stat(c.rpcSecurity.tls!.keyFile)).mode & 0o777).toBe(0o600);
      // The node holds the hashes, and they are the tokens' hashes; never the tokens themselves.
      const store = await TokenStore.load(c.rpcSecurity.auth.tokensFile!);
      const onNode = await readFile(c.rpcSecurity.auth.tokensFile!, 'utf8');
      for (const [name, , token] of tokenLines) {
        expect(store.verify(token)?.name).toBe(name);
        expect(onNode).not.toContain(token);
      }
    }
    const note = formatInitResult(r);
    expect(note).toContain(`--cacert ${join(r.dir, CREDENTIAL_FILES.caCert)}`);
    expect(note).toContain('Authorization: Bearer $TOKEN');
    expect(note).not.toContain(tokenLines[0][2]);
  }, 60_000);
});
