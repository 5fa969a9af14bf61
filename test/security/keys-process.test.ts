// Real `quorate start` processes (issue 10): a node whose payload store is at its quota refuses
// a private send with a clear JSON-RPC error and keeps committing; everything the nodes wrote to
// their data folders is private (folders 0700, files 0600); and no log the run wrote holds any
// key material (seed, network key, box key, password) in hex or base64.

import { readFile, readdir, stat, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadSealedFile } from '../../enclave/index.js';
import { ProcessCluster, type ProcNode } from '../cluster/process-cluster.js';

const cluster = new ProcessCluster();

/** Every way a secret could appear in a text log. */
function encodingsOf(secret: Uint8Array): string[] {
  const b = Buffer.from(secret);
  return [b.toString('hex'), b.toString('base64'), b.toString('base64url')];
}
afterAll(() => cluster.cleanup());

/** node-1's payload store quota: a few small payloads fit, a 16 KiB one does not. */
const QUOTA_BYTES = 8_192;

async function waitReceipt(nodes: readonly ProcNode[], txHash: string, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const receipts = await Promise.all(
      nodes.map((n) => n.rpc.call<unknown>('eth_getTransactionReceipt', [txHash]).catch(() => null)),
    );
    if (receipts.every((r) => r !== null)) return;
    if (Date.now() > deadline)
      throw new Error(`tx ${txHash} not committed everywhere\n${await cluster.logTails(nodes)}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function send(n: ProcNode, request: unknown): Promise<string> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await n.rpc.call<string>('quorate_sendTransaction', [request]);
    } catch (error) {
      if (attempt >= 40 || !/leader/i.test((error as Error).message)) throw error;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

async function walk(dir: string, visit: (path: string, isDir: boolean, mode: number) => void): Promise<void> {
  for (const name of await readdir(dir)) {
    const path = join(dir, name);
    const s = await stat(path);
    visit(path, s.isDirectory(), s.mode & 0o777);
    if (s.isDirectory()) await walk(path, visit);
  }
}

describe('keys and the TM store in real node processes', () => {
  it('store quota refuses a send and the node keeps working; data is 0700/0600; logs hold no key material', async () => {
    await cluster.init(2);
    const [a, b] = cluster.nodes;
    const configPath = a.configPath;
    const config = JSON.parse(await readFile(configPath, 'utf8')) as { limits: Record<string, number> };
    config.limits.tmStoreMaxBytes = QUOTA_BYTES;
    await writeFile(configPath, JSON.stringify(config, null, 2));
    cluster.startAll();
    await cluster.waitForLeader(cluster.nodes, 60_000);

    const tmKeyOf = async (n: ProcNode): Promise<string> => {
      const res = await fetch(new URL('keys', n.tmUrl), { signal: AbortSignal.timeout(5_000) });
      return ((await res.json()) as { keys: Array<{ key: string }> }).keys[0].key;
    };
    const keyB = await tmKeyOf(b);
    const [fromA] = await a.rpc.call<string[]>('quorate_accounts');

    const first = await send(a, { from: fromA, ops: [{ type: 'put', key: 'p1', value: 'small' }], privateFor: [keyB] });
    await waitReceipt(cluster.nodes, first);

    const refused = await send(a, {
      from: fromA,
      ops: [{ type: 'put', key: 'p2', value: 'v'.repeat(16 * 1024) }],
      privateFor: [keyB],
    }).catch((e: unknown) => e as Error & { code?: number; data?: { tmCode?: string } });
    expect(refused).toBeInstanceOf(Error);
    expect((refused as Error).message).toMatch(/payload store is full/);
    expect((refused as { code?: number }).code).toBe(-32009);
    expect((refused as { data?: { tmCode?: string } }).data?.tmCode).toBe('TXM_STORE_FULL');

    // Still committing: a public transaction, then a private one that fits.
    const pub = await send(a, { from: fromA, ops: [{ type: 'put', key: 'pub', value: 'after-full' }] });
    await waitReceipt(cluster.nodes, pub);
    const again = await send(a, { from: fromA, ops: [{ type: 'put', key: 'p3', value: 'fits' }], privateFor: [keyB] });
    await waitReceipt(cluster.nodes, again);
    expect(await b.rpc.call('quorate_getPrivateValue', ['p3', 'latest'])).toBe('fits');
    await cluster.stop();

    const secrets: Array<[string, string]> = [];
    for (const n of cluster.nodes) {
      const nodeDir = dirname(n.configPath);
      const password = (await readFile(join(nodeDir, 'node.password'), 'utf8')).trim();
      secrets.push([`${n.name} password`, password]);
      for (const file of ['network.key', 'minter.key', 'account.key', 'enclave.key']) {
        const opened = await loadSealedFile(join(nodeDir, file), password);
        for (const encoded of encodingsOf(opened.secret)) secrets.push([`${n.name} ${file}`, encoded]);
      }

      // Everything under the node's data folder is private to its user.
      const loose: string[] = [];
      await walk(join(nodeDir, 'data'), (path, isDir, mode) => {
        if (mode !== (isDir ? 0o700 : 0o600)) loose.push(`${path} ${mode.toString(8)}`);
      });
      expect(loose, `${n.name} data`).toEqual([]);
      expect((await stat(n.logPath)).mode & 0o777).toBe(0o600);
    }
    for (const n of cluster.nodes) {
      const log = await readFile(n.logPath, 'utf8');
      expect(log.length).toBeGreaterThan(0);
      for (const [what, encoded] of secrets) expect(log.includes(encoded), `${what} in ${n.name}'s log`).toBe(false);
    }
  }, 180_000);
});
