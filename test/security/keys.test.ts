// Keys at rest (issue 10, docs/interface.md "Security"): after `quorate init` — the dev cluster and
// --hosts — every private key file is sealed (no key bytes in it), files are 0600 and folders
// 0700; a wrong or missing password is refused cleanly by the loader and by `quorate start`; the
// password leaves the environment once read. Dev KDF parameters throughout, so the file is fast.

import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadSealedFile } from '../../enclave/index.js';
import { initCluster } from '../../node/cli/init.js';
import { loadConfig } from '../../node/config.js';
import {
  KEY_PASSWORD_ENV,
  KEY_PASSWORD_ENV_ALIAS,
  KeyError,
  KeyErrorCode,
  loadNodeKeys,
  resolveKeyPassword,
} from '../../node/keys.js';

const BIN = resolve(fileURLToPath(new URL('../../bin/quorate.js', import.meta.url)));
const KEY_FILES = ['network.key', 'minter.key', 'account.key', 'enclave.key'];

function cli(
  args: readonly string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const base: NodeJS.ProcessEnv = { ...process.env, NODE_OPTIONS: '' };
  delete base[KEY_PASSWORD_ENV];
  delete base[KEY_PASSWORD_ENV_ALIAS];
  return new Promise((done) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { env: { ...base, ...env }, timeout: 120_000 },
      (err, stdout, stderr) => {
        const code = err
          ? typeof (err as { code?: unknown }).code === 'number'
            ? (err as { code: number }).code
            : -1
          : 0;
        done({ code, stdout, stderr });
      },
    );
  });
}

/** Every way the secret could appear in a text file. */
function encodingsOf(secret: Uint8Array): string[] {
  const b = Buffer.from(secret);
  return [b.toString('hex'), b.toString('base64'), b.toString('base64url')];
}

/** Checks a node folder: key files sealed with no key bytes inside, 0600 files, 0700 folder. */
async function expectSealedNodeFolder(nodeDir: string, password: string): Promise<void> {
  expect((await stat(nodeDir)).mode & 0o777, `${nodeDir} mode`).toBe(0o700);
  for (const name of await readdir(nodeDir)) {
    const s = await stat(join(nodeDir, name));
    if (s.isFile()) expect(s.mode & 0o777, `${name} mode`).toBe(0o600);
  }
  for (const name of KEY_FILES) {
    const path = join(nodeDir, name);
    const text = await readFile(path, 'utf8');
    const header = JSON.parse(text) as { version: number; type: string; kdf: { name: string } };
    expect(header).toMatchObject({ version: 2, type: 'quorate-sealed-key', kdf: { name: 'scrypt' } });
    const opened = await loadSealedFile(path, password);
    // The seed (account, minter), the protobuf key (network) and the box key (enclave) appear in no encoding.
    for (const encoded of encodingsOf(opened.secret)) expect(text, name).not.toContain(encoded);
  }
}

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'quorate-keys-'));
});
afterAll(() => rm(work, { recursive: true, force: true }));

describe('quorate init seals every key', () => {
  it('dev cluster: sealed keys with the dev KDF, one password file per node, 0600 files and 0700 folders', async () => {
    const dir = join(work, 'dev');
    await initCluster({
      nodes: 2,
      dir,
      hosts: ['127.0.0.1', '127.0.0.1'],
      rpcPort: 41000,
      p2pPort: 41100,
      tmPort: 41200,
      force: false,
      chainId: 1337,
    });
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    for (const f of ['genesis.json']) expect((await stat(join(dir, f))).mode & 0o777).toBe(0o600);
    for (const node of ['node-1', 'node-2']) {
      const nodeDir = join(dir, node);
      expect((await readdir(nodeDir)).sort()).toEqual([...KEY_FILES, 'config.json', 'node.password'].sort());
      const password = (await readFile(join(nodeDir, 'node.password'), 'utf8')).trim();
      await expectSealedNodeFolder(nodeDir, password);
      const header = JSON.parse(await readFile(join(nodeDir, 'account.key'), 'utf8'));
      expect(header.kdf).toMatchObject({ logN: 14, r: 8, p: 1 });
    }
  });

  it('--hosts: seals under the operator password, writes no password file and says where to set it', async () => {
    const dir = join(work, 'hosts');
    const password = 'operator password for the deployment';
    const r = await cli(['init', '--nodes', '2', '--dir', dir, '--hosts', '127.0.0.2,127.0.0.3', '--kdf', 'dev'], {
      [KEY_PASSWORD_ENV]: password,
    });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(KEY_PASSWORD_ENV);
    expect(r.stdout).not.toContain(password);
    for (const node of ['node-1', 'node-2']) {
      const nodeDir = join(dir, node);
      expect((await readdir(nodeDir)).sort()).toEqual([...KEY_FILES, 'config.json'].sort());
      await expectSealedNodeFolder(nodeDir, password);
      const config = await loadConfig(join(nodeDir, 'config.json'));
      expect(config.keys.passwordFile).toBeUndefined();
      expect(config.tm.host).toBe('127.0.0.1');
    }
    const text = await readFile(join(dir, 'node-1', 'config.json'), 'utf8');
    expect(text).not.toContain(password);

    const without = await cli(['init', '--nodes', '1', '--dir', join(work, 'nopw'), '--hosts', '127.0.0.2']);
    expect(without.code).toBe(2);
    expect(without.stderr).toContain(KEY_PASSWORD_ENV);
  });

  it('--hosts defaults to the production KDF (N = 2^18)', async () => {
    const dir = join(work, 'prod');
    process.env[KEY_PASSWORD_ENV] = 'pw';
    const { parseInitArgs } = await import('../../node/cli/init.js');
    const options = parseInitArgs(['--nodes', '1', '--dir', dir, '--hosts', '127.0.0.2']);
    expect(options).not.toBe('help');
    if (options === 'help') return;
    expect(options.keyProtection).toBe('production');
    expect(process.env[KEY_PASSWORD_ENV]).toBeUndefined();
    expect(parseInitArgs(['--nodes', '1', '--dir', dir])).toMatchObject({ keyProtection: 'dev' });
  });
});

describe('opening the keys', () => {
  let configPath: string;
  beforeAll(async () => {
    process.env[KEY_PASSWORD_ENV] = 'right password';
    const { parseInitArgs } = await import('../../node/cli/init.js');
    const options = parseInitArgs([
      '--nodes',
      '1',
      '--dir',
      join(work, 'open'),
      '--hosts',
      '127.0.0.1',
      '--kdf',
      'dev',
    ]);
    if (options === 'help') throw new Error('unexpected help');
    const r = await initCluster(options);
    configPath = r.nodes[0].configPath;
  });

  it('the right password opens every key and leaves the environment; both variable names are read', async () => {
    const config = await loadConfig(configPath);
    process.env[KEY_PASSWORD_ENV] = 'right password';
    process.env[KEY_PASSWORD_ENV_ALIAS] = 'right password';
    const keys = await loadNodeKeys(config);
    expect(process.env[KEY_PASSWORD_ENV]).toBeUndefined();
    expect(process.env[KEY_PASSWORD_ENV_ALIAS]).toBeUndefined();
    expect(keys.identity.peerId).toMatch(/^12D3KooW/);
    expect(keys.accountKeys).toHaveLength(1);
    const env: NodeJS.ProcessEnv = { [KEY_PASSWORD_ENV_ALIAS]: 'right password' };
    expect((await loadNodeKeys(config, env)).minterKey.address).toBe(keys.minterKey.address);
    expect(env).toEqual({});
  });

  it('a wrong or missing password is a typed KeyError naming what to do, not a crash', async () => {
    const config = await loadConfig(configPath);
    const wrong = await loadNodeKeys(config, { [KEY_PASSWORD_ENV]: 'wrong' }).catch((e: unknown) => e);
    expect(wrong).toBeInstanceOf(KeyError);
    expect(wrong).toMatchObject({ code: KeyErrorCode.WrongPassword });
    expect((wrong as Error).message).toContain(KEY_PASSWORD_ENV);
    const missing = await resolveKeyPassword(config, {}).catch((e: unknown) => e);
    expect(missing).toMatchObject({ code: KeyErrorCode.PasswordMissing });
    expect((missing as Error).message).toContain(KEY_PASSWORD_ENV);
  });

  it('add-node follows the cluster: a deployment needs the password and gets no password file; a dev cluster gets one', async () => {
    const { addNodeCommand } = await import('../../node/cli/add-node.js');
    const io = { out: () => undefined, err: () => undefined };
    const dir = dirname(dirname(configPath));
    await expect(addNodeCommand(['--dir', dir, '--kdf', 'dev'], io)).rejects.toThrow(KEY_PASSWORD_ENV);
    process.env[KEY_PASSWORD_ENV] = 'right password';
    await addNodeCommand(['--dir', dir, '--kdf', 'dev', '--rpc', 'http://127.0.0.1:1/'], io);
    expect(process.env[KEY_PASSWORD_ENV]).toBeUndefined();
    const added = join(dir, 'node-2');
    expect((await readdir(added)).sort()).toEqual([...KEY_FILES, 'config.json'].sort());
    await expectSealedNodeFolder(added, 'right password');
    const config = await loadConfig(join(added, 'config.json'));
    expect(config.tm.host).toBe('127.0.0.1');
    expect((await loadNodeKeys(config, { [KEY_PASSWORD_ENV]: 'right password' })).accountKeys).toHaveLength(1);

    const devDir = join(work, 'dev');
    await addNodeCommand(['--dir', devDir, '--rpc', 'http://127.0.0.1:1/'], io);
    const devAdded = join(devDir, 'node-3');
    const devPassword = (await readFile(join(devAdded, 'node.password'), 'utf8')).trim();
    await expectSealedNodeFolder(devAdded, devPassword);
  }, 60_000);

  it('`quorate start` refuses to start without its password, or with a wrong one, with a clear message', async () => {
    const [none, wrong] = await Promise.all([
      cli(['start', '--config', configPath]),
      cli(['start', '--config', configPath], { [KEY_PASSWORD_ENV]: 'not it' }),
    ]);
    expect(none.code).not.toBe(0);
    expect(none.stderr).toContain(KEY_PASSWORD_ENV);
    expect(none.stderr).not.toMatch(/\n\s+at /); // a message, not a stack trace
    expect(wrong.code).not.toBe(0);
    expect(wrong.stderr).toMatch(/wrong password/);
    expect(wrong.stderr).not.toMatch(/\n\s+at /);
  }, 120_000);
});
