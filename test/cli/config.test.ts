// node/config.ts: the config and genesis schemas. Valid files load with defaults filled in and
// paths resolved against the file's folder; each kind of mistake is a ConfigError naming the field.

import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  ConfigError,
  ConfigErrorCode,
  DEFAULT_LIMITS,
  DEFAULT_RAFT_TUNING,
  ENCLAVE_PASSWORD_ENV,
  loadConfig,
  loadGenesis,
  parseConfig,
  parseGenesis,
  resolveEnclavePassword,
} from '../../node/config.js';
import { RPC_SERVER_DEFAULTS, rpcServerOptionsFromConfig } from '../../node/rpc/server.js';

const PEER_A = '12D3KooWGRUVh5BKY9Xw5qxKiAAGKwLvgbpr6cJvD3fHLvhhRNRT';
const PEER_B = '12D3KooWAQyZoXhrW64AXk9M5dAYPiorjoJziR91epTxm3hqmeTH';
const KEY_A = 'qJUJcn4fVGnIL1/i1NWDJjwgmy2LqNVc0fDdwLMiXUE=';
const KEY_B = 'FUUS5/HXR+lXu32rtb66qKquy4cFld4kdBt54oX8ZWg=';

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), 'quorate-config-'));
});
afterAll(() => rm(dir, { recursive: true, force: true }));

function validConfig(): Record<string, unknown> {
  return {
    nodeId: 'node-1',
    raftId: 1,
    dataDir: 'data',
    rpc: { host: '127.0.0.1', port: 8545 },
    p2p: { port: 30303 },
    tm: { host: '127.0.0.1', port: 9001 },
    keys: {
      networkIdentity: 'network.key',
      nodeSigning: 'minter.key',
      accounts: ['account.key'],
      enclave: { keyFile: 'enclave.key', passwordFile: 'enclave.password' },
    },
    genesis: '../genesis.json',
    peers: [
      {
        raftId: 1,
        nodeId: 'node-1',
        peerId: PEER_A,
        p2pAddress: `/ip4/127.0.0.1/tcp/30303/p2p/${PEER_A}`,
        rpcUrl: 'http://127.0.0.1:8545/',
        tmUrl: 'http://127.0.0.1:9001/',
        enclavePublicKeys: [KEY_A],
      },
      {
        raftId: 2,
        nodeId: 'node-2',
        peerId: PEER_B,
        p2pAddress: `/dns/node2.example/tcp/30303/p2p/${PEER_B}`,
        rpcUrl: 'https://node2.example:8545/',
        tmUrl: 'http://node2.example:9001/',
        enclavePublicKeys: [KEY_B],
      },
    ],
  };
}

function validGenesis(): Record<string, unknown> {
  const member = (raftId: number, peerId: string, key: string): unknown => ({
    raftId,
    name: `node-${raftId}`,
    peerId,
    p2pAddrs: [`/ip4/127.0.0.1/tcp/${30302 + raftId}`],
    rpcUrl: `http://127.0.0.1:${8544 + raftId}/`,
    tmUrl: `http://127.0.0.1:${9000 + raftId}/`,
    signingKey: key,
    enclaveKeys: [key === KEY_A ? KEY_B : KEY_A],
  });
  return {
    chainId: 1337,
    timestampMs: 1_700_000_000_000,
    alloc: { [`0x${'a1'.repeat(20)}`]: { balance: '1000' } },
    members: [member(1, PEER_A, KEY_A), member(2, PEER_B, KEY_B)],
  };
}

/** Expects parseConfig(mutated) to fail on `field` with a message matching `pattern`. */
function configFails(mutate: (c: Record<string, unknown>) => void, field: string, pattern: RegExp): void {
  const c = validConfig();
  mutate(c);
  let err: unknown;
  try {
    parseConfig(c, '/etc/quorate/node-1/config.json');
  } catch (e) {
    err = e;
  }
  expect(err, `expected a failure on ${field}`).toBeInstanceOf(ConfigError);
  expect((err as ConfigError).code).toBe(ConfigErrorCode.InvalidField);
  expect((err as ConfigError).field).toBe(field);
  expect((err as ConfigError).message).toMatch(pattern);
  expect((err as ConfigError).message).toContain('/etc/quorate/node-1/config.json');
}

function genesisFails(mutate: (g: Record<string, unknown>) => void, field: string, pattern: RegExp): void {
  const g = validGenesis();
  mutate(g);
  let err: unknown;
  try {
    parseGenesis(g, '/x/genesis.json');
  } catch (e) {
    err = e;
  }
  expect(err, `expected a failure on ${field}`).toBeInstanceOf(ConfigError);
  expect((err as ConfigError).field).toBe(field);
  expect((err as ConfigError).message).toMatch(pattern);
}

describe('node config', () => {
  it('loads a valid file, fills defaults and resolves relative paths against its folder', async () => {
    const nodeDir = join(dir, 'node-1');
    await rm(nodeDir, { recursive: true, force: true });
    await import('node:fs/promises').then((fs) => fs.mkdir(nodeDir));
    const path = join(nodeDir, 'config.json');
    await writeFile(
      path,
      JSON.stringify({ ...validConfig(), keys: { ...(validConfig().keys as object), nodeSigning: '/abs/minter.key' } }),
    );
    const c = await loadConfig(path);
    expect(c.configPath).toBe(path);
    expect(c.dataDir).toBe(join(nodeDir, 'data'));
    expect(c.genesis).toBe(join(dir, 'genesis.json'));
    expect(c.keys.accounts).toEqual([join(nodeDir, 'account.key')]);
    expect(c.keys.nodeSigning).toBe('/abs/minter.key');
    expect(c.keys.enclave).toEqual({
      keyFile: join(nodeDir, 'enclave.key'),
      passwordFile: join(nodeDir, 'enclave.password'),
    });
    expect(c.p2p).toEqual({ host: '127.0.0.1', port: 30303 });
    expect(c.raft).toEqual(DEFAULT_RAFT_TUNING);
    expect(c.blockTimeMs).toBe(50);
    expect(c.limits).toEqual(DEFAULT_LIMITS);
    expect(c.deliveryMode).toBe('fail-fast');
    expect(c.logLevel).toBe('info');
    expect(c.peers[1].p2pAddress).toBe(`/dns/node2.example/tcp/30303/p2p/${PEER_B}`);
  });

  it('takes overrides of raft tuning, limits, delivery mode and log level', () => {
    const c = parseConfig(
      {
        ...validConfig(),
        raft: { tickMs: 20, electionTicks: 20 },
        limits: { rpcMaxBodyBytes: 1024, txPoolMaxPerSender: 16, txPoolQueuedLifetimeMs: 60_000 },
        deliveryMode: 'queue',
        logLevel: 'debug',
        blockTimeMs: 10,
      },
      '/x/config.json',
    );
    expect(c.raft).toEqual({ ...DEFAULT_RAFT_TUNING, tickMs: 20, electionTicks: 20, heartbeatTicks: 1 });
    expect(c.limits.rpcMaxBodyBytes).toBe(1024);
    expect(c.limits.rpcMaxBatchLength).toBe(DEFAULT_LIMITS.rpcMaxBatchLength);
    expect(c.limits.txPoolMaxPerSender).toBe(16);
    expect(c.limits.txPoolQueuedLifetimeMs).toBe(60_000);
    expect(c.deliveryMode).toBe('queue');
    expect(c.logLevel).toBe('debug');
    expect(c.blockTimeMs).toBe(10);
  });

  it('gives the RPC server the same limits by default as the server has on its own', () => {
    const c = parseConfig(validConfig(), '/x/config.json');
    expect(rpcServerOptionsFromConfig(c)).toEqual({
      host: '127.0.0.1',
      port: 8545,
      maxBodyBytes: RPC_SERVER_DEFAULTS.maxBodyBytes,
      maxBatchLength: RPC_SERVER_DEFAULTS.maxBatchLength,
      requestTimeoutMs: RPC_SERVER_DEFAULTS.requestTimeoutMs,
      maxInFlightCalls: RPC_SERVER_DEFAULTS.maxInFlightCalls,
      maxEventLoopDelayMs: RPC_SERVER_DEFAULTS.maxEventLoopDelayMs,
      maxConnections: RPC_SERVER_DEFAULTS.maxConnections,
    });
    // And a configured one reaches it.
    const tuned = parseConfig({ ...validConfig(), limits: { rpcMaxEventLoopDelayMs: 40 } }, '/x/config.json');
    expect(rpcServerOptionsFromConfig(tuned).maxEventLoopDelayMs).toBe(40);
    expect(() => parseConfig({ ...validConfig(), limits: { rpcMaxEventLoopDelayMs: 0 } }, '/x/config.json')).toThrow(
      /limits\.rpcMaxEventLoopDelayMs/,
    );
  });

  it('names the field of every kind of mistake', () => {
    configFails((c) => delete c.nodeId, 'nodeId', /non-empty string, got nothing/);
    configFails((c) => (c.nodeId = 'node 1'), 'nodeId', /letters, digits/);
    // The enclave seals at most MAX_PLAINTEXT_BYTES (4 MiB): a larger payload limit is a mistake, not a wish.
    configFails(
      (c) => (c.limits = { privatePayloadMaxBytes: 4 * 1024 * 1024 + 1 }),
      'limits.privatePayloadMaxBytes',
      /4194304/,
    );
    configFails((c) => (c.raftId = -1), 'raftId', /between [01] and/);
    configFails((c) => (c.raftId = '1'), 'raftId', /must be an integer/);
    configFails((c) => (c.rpc = { port: 70000 }), 'rpc.port', /between 0 and 65535/);
    configFails((c) => (c.rpc = { host: 'a b', port: 1 }), 'rpc.host', /host name/);
    configFails((c) => (c.tm = { host: '127.0.0.1', port: 8545 }), 'rpc.port', /used by another listener/);
    configFails((c) => (c.blockTimeMS = 10), 'blockTimeMS', /unknown field/);
    configFails((c) => ((c.keys as Record<string, unknown>).enclave = {}), 'keys.enclave.keyFile', /non-empty string/);
    configFails(
      (c) => ((c.keys as Record<string, unknown>).accounts = 'account.key'),
      'keys.accounts',
      /must be an array/,
    );
    configFails(
      (c) => ((c.peers as Record<string, unknown>[])[1].rpcUrl = 'localhost:8545'),
      'peers[1].rpcUrl',
      /http\(s\) URL/,
    );
    configFails(
      (c) => ((c.peers as Record<string, unknown>[])[1].p2pAddress = `/ip4/1.2.3.4/tcp/1/p2p/${PEER_A}`),
      'peers[1].p2pAddress',
      /must end in \/p2p\//,
    );
    configFails(
      (c) => ((c.peers as Record<string, unknown>[])[1].p2pAddress = 'not-a-multiaddr'),
      'peers[1].p2pAddress',
      /not a valid multiaddr/,
    );
    configFails(
      (c) => ((c.peers as Record<string, unknown>[])[1].peerId = 'QmShort'),
      'peers[1].peerId',
      /base58 libp2p peer id/,
    );
    configFails((c) => ((c.peers as Record<string, unknown>[])[1].raftId = 1), 'peers[1].raftId', /appears twice/);
    configFails(
      (c) => ((c.peers as Record<string, unknown>[])[0].enclavePublicKeys = ['short']),
      'peers[0].enclavePublicKeys[0]',
      /32-byte key in base64/,
    );
    configFails(
      (c) => (c.raft = { electionTicks: 3, heartbeatTicks: 3 }),
      'raft.heartbeatTicks',
      /less than raft.electionTicks/,
    );
    configFails((c) => (c.raft = { snapshotChunkBytes: 1024 }), 'raft.snapshotChunkBytes', /between/);
    configFails(
      (c) => (c.raft = { snapshotMaxConcurrentTransfers: 0 }),
      'raft.snapshotMaxConcurrentTransfers',
      /between/,
    );
    configFails((c) => (c.raft = { snapshotWindowChunks: 0 }), 'raft.snapshotWindowChunks', /between/);
    configFails((c) => (c.raft = { snapshotWindowChunks: 65 }), 'raft.snapshotWindowChunks', /between/);
    configFails((c) => (c.limits = { rpcMaxBodyBytes: 0 }), 'limits.rpcMaxBodyBytes', /between 1 and/);
    configFails((c) => (c.limits = { maxEverything: 1 }), 'limits.maxEverything', /unknown field/);
    configFails((c) => (c.deliveryMode = 'retry'), 'deliveryMode', /"fail-fast" or "queue"/);
    configFails((c) => (c.logLevel = 'verbose'), 'logLevel', /fatal, error, warn, info, debug, trace, silent/);
  });

  it('reports unreadable and non-JSON files as such', async () => {
    await expect(loadConfig(join(dir, 'missing.json'))).rejects.toMatchObject({
      code: ConfigErrorCode.Unreadable,
      message: expect.stringContaining('ENOENT'),
    });
    const bad = join(dir, 'bad.json');
    await writeFile(bad, '{ "nodeId": ');
    await expect(loadConfig(bad)).rejects.toMatchObject({ code: ConfigErrorCode.NotJson });
    await writeFile(bad, '[]');
    await expect(loadConfig(bad)).rejects.toMatchObject({ code: ConfigErrorCode.InvalidField, field: '' });
  });
});

describe('enclave password', () => {
  it('reads the password file (dropping one trailing newline), else the environment variable', async () => {
    const pwFile = join(dir, 'pw');
    await writeFile(pwFile, 'secret-1\n');
    const withFile = parseConfig(
      {
        ...validConfig(),
        keys: { networkIdentity: 'n', nodeSigning: 'm', enclave: { keyFile: 'e', passwordFile: pwFile } },
      },
      '/x/config.json',
    );
    expect(await resolveEnclavePassword(withFile, {})).toBe('secret-1');
    const withoutFile = parseConfig(
      { ...validConfig(), keys: { networkIdentity: 'n', nodeSigning: 'm', enclave: { keyFile: 'e' } } },
      '/x/config.json',
    );
    expect(await resolveEnclavePassword(withoutFile, { [ENCLAVE_PASSWORD_ENV]: 'from-env' })).toBe('from-env');
    await expect(resolveEnclavePassword(withoutFile, {})).rejects.toMatchObject({
      code: ConfigErrorCode.PasswordMissing,
      message: expect.stringContaining(ENCLAVE_PASSWORD_ENV),
    });
    await writeFile(pwFile, '\n');
    await expect(resolveEnclavePassword(withFile, {})).rejects.toMatchObject({ code: ConfigErrorCode.PasswordMissing });
  });
});

describe('genesis', () => {
  it('loads a valid genesis', async () => {
    const path = join(dir, 'genesis.json');
    await writeFile(path, JSON.stringify(validGenesis()));
    const g = await loadGenesis(path);
    expect(g.chainId).toBe(1337);
    expect(g.members.map((m) => m.raftId)).toEqual([1, 2]);
    expect(g.alloc[`0x${'a1'.repeat(20)}`]).toEqual({ balance: '1000' });
  });

  it('names the field of every kind of mistake', () => {
    genesisFails((g) => (g.chainId = 0), 'chainId', /between 1 and/);
    genesisFails((g) => (g.members = []), 'members', /at least one member/);
    genesisFails(
      (g) => ((g.members as Record<string, unknown>[])[1].raftId = 3),
      'members[1].raftId',
      /raftIds 1..2 in order/,
    );
    genesisFails(
      (g) => ((g.members as Record<string, unknown>[])[1].peerId = PEER_A),
      'members[1].peerId',
      /appears twice/,
    );
    genesisFails(
      (g) => ((g.members as Record<string, unknown>[])[0].p2pAddrs = [`/ip4/1.2.3.4/tcp/1/p2p/${PEER_A}`]),
      'members[0].p2pAddrs[0]',
      /must not carry/,
    );
    genesisFails(
      (g) => ((g.members as Record<string, unknown>[])[0].signingKey = 'abc'),
      'members[0].signingKey',
      /32-byte key/,
    );
    genesisFails((g) => (g.alloc = { '0xABC': { balance: '1' } }), 'alloc.0xABC', /20-byte address/);
    genesisFails(
      (g) => (g.alloc = { [`0x${'a1'.repeat(20)}`]: { balance: '1.5' } }),
      `alloc.0x${'a1'.repeat(20)}.balance`,
      /decimal string/,
    );
    genesisFails((g) => (g.alloc = 'none'), 'alloc', /must be an object/);
    genesisFails((g) => (g.extraData = '0x'), 'extraData', /unknown field/);
  });
});
