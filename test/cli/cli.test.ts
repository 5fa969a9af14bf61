// The `quorate` command line: run as a child process through bin/quorate.js (tsx) where the
// process boundary matters (exit codes, the files init writes, status over real HTTP), and
// in-process through main() for help texts and flag validation.

import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig, loadGenesis } from '../../node/config.js';
import { loadKeyFile } from '../../enclave/keyfile.js';
import { loadNodeKeys, resolveKeyPassword } from '../../node/keys.js';
import { CommandError, ExitCode, UsageError, type CliIo } from '../../node/cli/args.js';
import { main } from '../../node/cli/main.js';
import { initCluster, parseInitArgs, type InitOptions } from '../../node/cli/init.js';
import { parseBenchArgs } from '../../node/cli/bench.js';
import { parseJepsenCommand } from '../../node/cli/jepsen.js';
import { parseUpArgs } from '../../node/cli/up.js';
import { loadEntryPoint } from '../../node/cli/optional.js';
import { silentLogger } from '../../node/log.js';
import { createNodeMetrics } from '../../node/metrics.js';
import { RpcServer } from '../../node/rpc/server.js';
import { FakeLedgerBackend } from '../rpc/fake-ledger-backend.js';

const BIN = resolve(fileURLToPath(new URL('../../bin/quorate.js', import.meta.url)));

function cli(args: readonly string[], cwd: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolvePromise) => {
    execFile(
      process.execPath,
      [BIN, ...args],
      { cwd, env: { ...process.env, NODE_OPTIONS: '' }, timeout: 120_000 },
      (err, stdout, stderr) => {
        const code = err
          ? typeof (err as { code?: unknown }).code === 'number'
            ? (err as { code: number }).code
            : -1
          : 0;
        resolvePromise({ code, stdout, stderr });
      },
    );
  });
}

async function inProcess(args: readonly string[]): Promise<{ code: ExitCode; out: string; err: string }> {
  let out = '';
  let err = '';
  const io: CliIo = { out: (t) => (out += t), err: (t) => (err += t) };
  const code = await main(args, io);
  return { code, out, err };
}

let work: string;
beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'quorate-cli-'));
});
afterAll(() => rm(work, { recursive: true, force: true }));

describe('bin/quorate.js as a child process', () => {
  it('prints the command list for --help (exit 0) and rejects unknown commands and flags (exit 2)', async () => {
    const [help, unknownCommand, unknownFlag] = await Promise.all([
      cli(['--help'], work),
      cli(['frobnicate'], work),
      cli(['init', '--nodes', '3', '--dir', 'x', '--bogus'], work),
    ]);
    expect(help.code).toBe(0);
    for (const c of ['init', 'start', 'up', 'status', 'bench', 'jepsen'])
      expect(help.stdout).toMatch(new RegExp(`^  ${c} `, 'm'));
    expect(unknownCommand.code).toBe(2);
    expect(unknownCommand.stderr).toContain('unknown command "frobnicate"');
    expect(unknownFlag.code).toBe(2);
    expect(unknownFlag.stderr).toContain("Unknown option '--bogus'");
    expect(unknownFlag.stderr).toContain('quorate init --help');
  });

  it('init writes genesis.json and node-1..N with configs and keys that load, then refuses to overwrite', async () => {
    const dir = join(work, 'cluster');
    const r = await cli(
      ['init', '--nodes', '3', '--dir', dir, '--rpc-port', '18545', '--p2p-port', '18600', '--tm-port', '18700'],
      work,
    );
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect((await readdir(dir)).sort()).toEqual(['genesis.json', 'node-1', 'node-2', 'node-3']);

    const genesis = await loadGenesis(join(dir, 'genesis.json'));
    expect(genesis.members.map((m) => m.raftId)).toEqual([1, 2, 3]);
    for (let i = 1; i <= 3; i++) {
      const nodeDir = join(dir, `node-${i}`);
      expect((await readdir(nodeDir)).sort()).toEqual([
        'account.key',
        'config.json',
        'enclave.key',
        'minter.key',
        'network.key',
        'node.password',
      ]);
      for (const secret of ['account.key', 'enclave.key', 'node.password', 'minter.key', 'network.key']) {
        expect((await stat(join(nodeDir, secret))).mode & 0o777, `${secret} mode`).toBe(0o600);
      }
      const config = await loadConfig(join(nodeDir, 'config.json'));
      expect(config.nodeId).toBe(`node-${i}`);
      expect(config.raftId).toBe(i);
      expect(config.rpc).toEqual({ host: '127.0.0.1', port: 18545 + i - 1 });
      expect(config.p2p).toEqual({ host: '127.0.0.1', port: 18600 + i - 1 });
      expect(config.tm).toEqual({ host: '127.0.0.1', port: 18700 + i - 1 });
      expect(config.keys.passwordFile).toBe(join(nodeDir, 'node.password'));
      expect(config.genesis).toBe(join(dir, 'genesis.json'));
      expect(config.dataDir).toBe(join(nodeDir, 'data'));
      expect(config.peers.map((p) => p.raftId)).toEqual([1, 2, 3]);

      // Every key file opens (sealed, node/keys.ts) and matches what genesis and peers say.
      const member = genesis.members[i - 1];
      const { identity, minterKey: minter, accountKeys } = await loadNodeKeys(config, {});
      expect(identity.peerId).toBe(member.peerId);
      expect(config.peers[i - 1].p2pAddress).toBe(`/ip4/127.0.0.1/tcp/${18600 + i - 1}/p2p/${member.peerId}`);
      expect(member.p2pAddrs).toEqual([`/ip4/127.0.0.1/tcp/${18600 + i - 1}`]);
      expect(member.rpcUrl).toBe(`http://127.0.0.1:${18545 + i - 1}/`);
      expect(Buffer.from(minter.publicKeyRaw).toString('base64')).toBe(member.signingKey);
      expect(genesis.alloc[accountKeys[0].address]).toBeDefined();
      const password = await resolveKeyPassword(config, {});
      const box = await loadKeyFile(config.keys.enclave.keyFile, password);
      expect(Buffer.from(box.publicKey).toString('base64')).toBe(member.enclaveKeys[0]);
      expect(config.peers[i - 1].enclavePublicKeys).toEqual(member.enclaveKeys);

      expect(r.stdout).toContain(`node-${i}`);
      expect(r.stdout).toContain(`http://127.0.0.1:${18545 + i - 1}/`);
    }
    expect(r.stdout).toContain('node.password');

    const before = await readFile(join(dir, 'genesis.json'), 'utf8');
    const again = await cli(['init', '--nodes', '3', '--dir', dir], work);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('refusing to overwrite');
    expect(await readFile(join(dir, 'genesis.json'), 'utf8')).toBe(before);
  });
});

function initOptions(args: string[]): InitOptions {
  const o = parseInitArgs(args);
  if (o === 'help') throw new Error('unexpected help');
  return o;
}

describe('init in-process', () => {
  it('--force replaces a cluster folder, and never a folder that is not one', async () => {
    const dir = join(work, 'forced');
    await initCluster(initOptions(['--nodes', '1', '--dir', dir]));
    const first = await readFile(join(dir, 'genesis.json'), 'utf8');
    await initCluster(initOptions(['--nodes', '1', '--dir', dir, '--force']));
    expect(await readFile(join(dir, 'genesis.json'), 'utf8')).not.toBe(first);
    expect((await readdir(work)).filter((n) => n.startsWith('.forced'))).toEqual([]); // no temporary folders left

    const precious = join(work, 'precious');
    await mkdir(precious);
    await writeFile(join(precious, 'thesis.tex'), 'years of work');
    await expect(initCluster(initOptions(['--nodes', '1', '--dir', precious, '--force']))).rejects.toThrow(
      /not a quorate cluster folder/,
    );
    expect(await readFile(join(precious, 'thesis.tex'), 'utf8')).toBe('years of work');
  });

  it('--hosts gives every node the same ports on its own host, and binds its listeners there', async () => {
    const dir = join(work, 'hosts');
    process.env.QUORATE_KEY_PASSWORD = 'a deployment password';
    const result = await initCluster(
      initOptions(['--nodes', '2', '--dir', dir, '--hosts', '10.0.0.1,node-b.example', '--kdf', 'dev']),
    );
    expect(process.env.QUORATE_KEY_PASSWORD).toBeUndefined();
    const [a, b] = await Promise.all(result.nodes.map((n) => loadConfig(n.configPath)));
    expect(a.rpc).toEqual({ host: '10.0.0.1', port: 8545 });
    expect(b.rpc).toEqual({ host: 'node-b.example', port: 8545 });
    expect(b.p2p).toEqual({ host: 'node-b.example', port: 30303 });
    expect(b.tm).toEqual({ host: '127.0.0.1', port: 9001 }); // the TM client API serves local clients only
    expect(a.peers[1].p2pAddress).toMatch(/^\/dns\/node-b\.example\/tcp\/30303\/p2p\//);
    expect(a.peers[0].p2pAddress).toMatch(/^\/ip4\/10\.0\.0\.1\/tcp\/30303\/p2p\//);
    expect(a.peers[1].tmUrl).toBe('http://127.0.0.1:9001/');
    expect(a.keys.passwordFile).toBeUndefined();
  });

  it('refuses bad flag combinations with a usage error', () => {
    const usage = (args: string[], pattern: RegExp): void => {
      expect(() => parseInitArgs(args)).toThrow(UsageError);
      expect(() => parseInitArgs(args)).toThrow(pattern);
    };
    usage(['--dir', 'x'], /--nodes is required/);
    usage(['--nodes', '3'], /--dir is required/);
    usage(['--nodes', '0', '--dir', 'x'], /between 1 and/);
    usage(['--nodes', 'three', '--dir', 'x'], /must be an integer/);
    usage(['--nodes', '3', '--dir', 'x', '--hosts', 'a,b'], /names 2 host\(s\) but --nodes is 3/);
    usage(['--nodes', '2', '--dir', 'x', '--hosts', 'a,a'], /twice/);
    usage(['--nodes', '2', '--dir', 'x', '--host', 'a', '--hosts', 'a,b'], /either --host or --hosts/);
    usage(['--nodes', '3', '--dir', 'x', '--rpc-port', '9000', '--tm-port', '9002'], /overlaps/);
    usage(['--nodes', '3', '--dir', 'x', '--rpc-port', '65534'], /past port 65535/);
    usage(['--nodes', '1', '--dir', 'x', '--host', '0.0.0.0'], /wildcard/);
    usage(['--nodes', '1', '--dir', 'x', 'extra'], /Unexpected argument 'extra'/);
  });
});

describe('help and flags of every command (in-process)', () => {
  it('prints usage for --help of each command and exits 0', async () => {
    for (const command of ['init', 'start', 'up', 'status', 'bench', 'jepsen']) {
      const r = await inProcess([command, '--help']);
      expect(r.code, command).toBe(ExitCode.Ok);
      expect(r.out).toMatch(new RegExp(`^Usage: quorate ${command}`));
      expect(r.err).toBe('');
    }
    expect((await inProcess([])).code).toBe(ExitCode.Usage);
  });

  it('exits 2 with the flag named for unknown flags and bad values', async () => {
    for (const [args, pattern] of [
      [['start', '--conf', 'x'], /Unknown option '--conf'/],
      [['start'], /--config is required/],
      [['status', '--rpc', 'not a url'], /--rpc must be an http\(s\) URL/],
      [['bench', '--txs', '0'], /--txs must be between 1/],
      [['jepsen', '--nodes', '4'], /--nodes must be 3 or 5/],
      [['jepsen', '--workload', 'bank,cats'], /unknown "cats"/],
      [['jepsen', '--colour', 'red'], /unknown argument "--colour"/],
      [['up', '--nodes'], /argument missing/],
    ] as const) {
      const r = await inProcess(args);
      expect(r.code, args.join(' ')).toBe(ExitCode.Usage);
      expect(r.err).toMatch(pattern);
    }
  });

  it('start reports a config error naming the field (exit 1)', async () => {
    const path = join(work, 'bad-config.json');
    await writeFile(path, JSON.stringify({ nodeId: 'n', raftId: -1 }));
    const r = await inProcess(['start', '--config', path]);
    expect(r.code).toBe(ExitCode.Failure);
    expect(r.err).toContain('raftId');
  });

  it('parses bench, up and jepsen options with their defaults', () => {
    expect(parseBenchArgs(['--rpc', 'http://127.0.0.1:1/,http://127.0.0.1:2', '--txs', '100', '--private'])).toEqual({
      rpcUrls: ['http://127.0.0.1:1/', 'http://127.0.0.1:2/'],
      txs: 100,
      concurrency: 64,
      rate: 0,
      private: true,
      batch: 1,
      timeline: false,
      warmup: 5_000,
    });
    expect(parseUpArgs([])).toEqual({ nodes: 3, dir: resolve('.quorate'), fresh: false });
    // The Jepsen toolkit owns these options; the CLI only adds --help and exit code 2.
    expect(
      parseJepsenCommand(['--nodes', '5', '--nemesis', 'kill', '--seed', '42', '--out', 'o'], new Date(0)),
    ).toMatchObject({
      nodes: 5,
      faults: ['kill'],
      seed: 42,
      seedWasRandom: false,
      outDir: 'o',
    });
    expect(parseJepsenCommand(['--seed', '1', '--help'])).toBe('help');
  });

  it('says "not available in this build" when an entry point is missing', async () => {
    await expect(loadEntryPoint('../no-such-module.js', 'runThing', 'thing')).rejects.toThrow(CommandError);
    await expect(loadEntryPoint('../no-such-module.js', 'runThing', 'thing')).rejects.toThrow(
      /not available in this build/,
    );
    // Present module, missing export: the same answer.
    await expect(loadEntryPoint('../config.js', 'runThing', 'thing')).rejects.toThrow(/not available in this build/);
    expect(typeof (await loadEntryPoint('../config.js', 'loadConfig', 'thing'))).toBe('function');
  });
});

describe('status against a live JSON-RPC server', () => {
  it('prints one row per member, marks an unreachable member, and exits 1 while one is down', async () => {
    const logger = silentLogger();
    // Members 1 and 2 answer on this server; member 3's URL has nobody listening.
    const backend = new FakeLedgerBackend({
      accounts: [],
      initialBalance: 0n,
      rpcUrls: ['', '', 'http://127.0.0.1:9/'],
    });
    const server = new RpcServer({ port: 0 }, { backend, logger, metrics: createNodeMetrics() });
    const { url } = await server.start();
    backend.setMemberRpcUrl(1, url);
    backend.setMemberRpcUrl(2, url);
    try {
      const r = await cli(['status', '--rpc', url, '--timeout-ms', '2000'], work);
      expect(r.code).toBe(1);
      const lines = r.stdout.trim().split('\n');
      expect(lines[0]).toMatch(/^raftId\s+node\s+role\s+term\s+commit\s+applied\s+head\s+peers\s+rpc$/);
      expect(lines[2]).toMatch(/^1\s+node-1\s+leader\s+1\s+3\s+3\s+0\s+2\s+http/);
      expect(lines[4]).toMatch(/^3\s+node-3\s+unreachable/);
      const json = await inProcess(['status', '--rpc', url, '--json', '--timeout-ms', '2000']);
      expect(json.code).toBe(ExitCode.Failure);
      expect(JSON.parse(json.out)).toMatchObject([
        { raftId: 1, status: { role: 'leader' }, head: 0, peers: 2 },
        { raftId: 2, isLeader: false },
        { raftId: 3, error: expect.stringContaining('unreachable') },
      ]);
    } finally {
      await server.stop();
    }
  });
});
