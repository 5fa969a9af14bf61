// The decisions behind the RPC and p2p gates, tested directly: which addresses count as loopback,
// when authentication is required and what config a non-loopback listener refuses, the tokens
// file and token checks, the scope of every method, the rate-limited refusal log and the CIDR
// gate. (The listeners themselves are tested in hostile-client.test.ts and node-process.test.ts.)

import { multiaddr } from '@multiformats/multiaddr';
import { describe, expect, it } from 'vitest';
import { ConfigError, parseConfig } from '../../node/config.js';
import { createNodeMetrics } from '../../node/metrics.js';
import { silentLogger } from '../../node/log.js';
import {
  ADMIN_METHODS,
  RpcAuthError,
  TokenStore,
  bearerToken,
  generateToken,
  hashToken,
  scopeOf,
  tokensFileJson,
} from '../../node/rpc/auth.js';
import { RPC_METHODS } from '../../node/rpc/methods.js';
import { authRequired, isLoopbackHost, parseCidr } from '../../node/rpc/security-config.js';
import { RpcSecurityError, hostName } from '../../node/rpc/security.js';
import { RpcServer } from '../../node/rpc/server.js';
import { CidrGate, REFUSAL_LOG_INTERVAL_MS, REFUSAL_LOG_MAX_LINES_PER_INTERVAL, RefusalLog } from '../../p2p/access.js';
import type { P2pLogger } from '../../p2p/logger.js';
import { FakeLedgerBackend } from '../rpc/fake-ledger-backend.js';

describe('loopback and the authentication decision', () => {
  it('counts only 127.0.0.0/8, ::1 and localhost as loopback', () => {
    for (const h of [
      '127.0.0.1',
      '127.0.0.2',
      '127.255.255.254',
      '::1',
      '[::1]',
      'localhost',
      'LOCALHOST',
      '::ffff:127.0.0.1',
    ])
      expect(isLoopbackHost(h), h).toBe(true);
    for (const h of [
      '0.0.0.0',
      '::',
      '10.0.0.1',
      '192.168.1.2',
      'node-1.example',
      '128.0.0.1',
      'fe80::1',
      '::ffff:10.0.0.1',
    ])
      expect(isLoopbackHost(h), h).toBe(false);
  });

  it('requires tokens on every non-loopback listener, and on loopback when tokens are configured or asked for', () => {
    expect(authRequired('127.0.0.1')).toBe(false);
    expect(authRequired('0.0.0.0')).toBe(true);
    expect(authRequired('10.0.0.1')).toBe(true);
    expect(authRequired('node-1.example')).toBe(true);
    expect(authRequired('127.0.0.1', { tokensFile: '/t.json' })).toBe(true);
    expect(authRequired('127.0.0.1', { required: true })).toBe(true);
    // required: false cannot open a non-loopback listener.
    expect(authRequired('10.0.0.1', { required: false })).toBe(true);
  });

  it('an RpcServer on a non-loopback address without tokens refuses to be built (before it binds anything)', () => {
    const deps = {
      backend: new FakeLedgerBackend({ accounts: [], initialBalance: 0n }),
      logger: silentLogger(),
      metrics: createNodeMetrics(),
    };
    expect(() => new RpcServer({ host: '0.0.0.0', port: 0 }, deps)).toThrow(RpcSecurityError);
    expect(() => new RpcServer({ host: '10.1.2.3', port: 0 }, deps)).toThrow(
      /10.1.2.3, which is not a loopback address.*rpc.auth.tokensFile/,
    );
    expect(
      () =>
        new RpcServer(
          {
            host: '127.0.0.1',
            port: 0,
            security: { vhosts: ['localhost'], corsOrigins: [], authRequired: true, metrics: 'auth' },
          },
          deps,
        ),
    ).toThrow(/requires bearer tokens but none are configured/);
    // Loopback without anything: the local dev cluster, no credentials needed.
    expect(() => new RpcServer({ host: '127.0.0.1', port: 0 }, deps)).not.toThrow();
  });
});

describe('config: rpc.vhosts, rpc.corsOrigins, rpc.tls, rpc.auth, rpc.metrics, p2p.allowedCidrs', () => {
  const base = (rpc: Record<string, unknown>, p2p: Record<string, unknown> = {}): Record<string, unknown> => ({
    nodeId: 'node-1',
    raftId: 1,
    dataDir: 'data',
    rpc: { port: 8545, ...rpc },
    p2p: { port: 30303, ...p2p },
    tm: { port: 9001 },
    keys: { networkIdentity: 'n', nodeSigning: 'm', enclave: { keyFile: 'e' } },
    genesis: '../genesis.json',
  });
  const fails = (rpc: Record<string, unknown>, field: string, pattern: RegExp, p2p?: Record<string, unknown>): void => {
    let err: unknown;
    try {
      parseConfig(base(rpc, p2p), '/c/node-1/config.json');
    } catch (e) {
      err = e;
    }
    expect(err, field).toBeInstanceOf(ConfigError);
    expect((err as ConfigError).field).toBe(field);
    expect((err as ConfigError).message).toMatch(pattern);
  };

  it('defaults a loopback listener to open, no origins, metrics open, and the default vhosts', () => {
    const c = parseConfig(base({ host: '127.0.0.1' }), '/c/node-1/config.json');
    expect(c.rpc).toEqual({ host: '127.0.0.1', port: 8545 });
    expect(c.rpcSecurity).toEqual({
      vhosts: ['localhost', '127.0.0.1', '[::1]'],
      corsOrigins: [],
      auth: { required: false },
      metrics: 'open',
    });
    expect(c.p2pAllowedCidrs).toBeUndefined();
  });

  it('reads tm.socketPath resolved against the config folder, and refuses a non-string', () => {
    const c = parseConfig({ ...base({}), tm: { port: 9001, socketPath: 'tm.sock' } }, '/c/node-1/config.json');
    expect(c.tm.socketPath).toBe('/c/node-1/tm.sock');
    expect(parseConfig(base({}), '/c/node-1/config.json').tm.socketPath).toBeUndefined();
    expect(() => parseConfig({ ...base({}), tm: { port: 9001, socketPath: 5 } }, '/c/node-1/config.json')).toThrow(
      ConfigError,
    );
  });

  it('refuses a non-loopback listener without a tokens file, naming the field and the fix', () => {
    fails({ host: '10.0.0.1' }, 'rpc.auth.tokensFile', /not a loopback address.*quorate init --hosts/);
    fails({ host: '0.0.0.0' }, 'rpc.auth.tokensFile', /bearer token/);
    fails({ host: '10.0.0.1', auth: { required: false, tokensFile: 't' } }, 'rpc.auth.required', /cannot be false/);
  });

  it('parses a full secure listener, resolving paths against the config folder', () => {
    const c = parseConfig(
      base(
        {
          host: '10.0.0.1',
          vhosts: ['Node-1.Example'],
          corsOrigins: ['https://app.example'],
          tls: { certFile: 'tls/rpc.crt', keyFile: '/abs/rpc.key', clientCaFile: 'tls/ca.crt' },
          auth: { tokensFile: 'rpc-tokens.json' },
        },
        { allowedCidrs: ['10.0.0.0/8', 'fd00::/8'] },
      ),
      '/c/node-1/config.json',
    );
    expect(c.rpcSecurity).toEqual({
      vhosts: ['localhost', '127.0.0.1', '[::1]', '10.0.0.1', 'node-1.example'],
      corsOrigins: ['https://app.example'],
      tls: { certFile: '/c/node-1/tls/rpc.crt', keyFile: '/abs/rpc.key', clientCaFile: '/c/node-1/tls/ca.crt' },
      auth: { required: true, tokensFile: '/c/node-1/rpc-tokens.json' },
      metrics: 'auth',
    });
    expect(c.p2pAllowedCidrs).toEqual(['10.0.0.0/8', 'fd00::/8']);
  });

  it('names the field of every kind of mistake', () => {
    fails({ vhosts: 'localhost' }, 'rpc.vhosts', /array of strings/);
    fails({ vhosts: ['http://x.example'] }, 'rpc.vhosts[0]', /without port or scheme/);
    fails({ corsOrigins: ['https://app.example/path'] }, 'rpc.corsOrigins[0]', /no path/);
    fails({ corsOrigins: ['not a url'] }, 'rpc.corsOrigins[0]', /origin/);
    fails({ tls: { certFile: 'a' } }, 'rpc.tls.keyFile', /non-empty string/);
    fails({ tls: { certFile: 'a', keyFile: 'b', ca: 'c' } }, 'rpc.tls.ca', /unknown field/);
    fails({ auth: { token: 'x' } }, 'rpc.auth.token', /unknown field/);
    fails({ metrics: 'public' }, 'rpc.metrics', /"open", "auth" or "off"/);
    fails({ metrics: 'auth' }, 'rpc.metrics', /needs tokens/);
    fails({}, 'p2p.allowedCidrs[0]', /CIDR/, { allowedCidrs: ['10.0.0.0/33'] });
    fails({}, 'p2p.allowedCidrs', /array/, { allowedCidrs: '10.0.0.0/8' });
  });
});

describe('tokens and scopes', () => {
  it('generates high-entropy tokens and keeps only their SHA-256', () => {
    const a = generateToken();
    const b = generateToken();
    expect(a.token).toMatch(/^qrt_[A-Za-z0-9_-]{43}$/);
    expect(a.token).not.toBe(b.token);
    expect(a.sha256Hex).toBe(hashToken(a.token).toString('hex'));
    const file = JSON.stringify(tokensFileJson([{ name: 'op', sha256Hex: a.sha256Hex, scopes: ['eth'] }]));
    expect(file).not.toContain(a.token);
  });

  it('verifies a token against its hash and nothing else', () => {
    const a = generateToken();
    const b = generateToken();
    const store = TokenStore.parse(
      tokensFileJson([
        { name: 'a', sha256Hex: a.sha256Hex, scopes: ['eth', 'admin'] },
        { name: 'b', sha256Hex: b.sha256Hex, scopes: ['net'] },
      ]),
      't',
    );
    expect(store.verify(a.token)?.name).toBe('a');
    expect(store.verify(b.token)?.name).toBe('b');
    expect(store.verify(a.sha256Hex)).toBeUndefined(); // the hash is not the token
    expect(store.verify(`${a.token}x`)).toBeUndefined();
    expect(store.verify('')).toBeUndefined();
  });

  it('refuses malformed tokens files with a typed error', () => {
    const bad = (json: unknown, pattern: RegExp): void => {
      expect(() => TokenStore.parse(json, 'f')).toThrow(RpcAuthError);
      expect(() => TokenStore.parse(json, 'f')).toThrow(pattern);
    };
    const sha = generateToken().sha256Hex;
    bad({}, /"tokens"/);
    bad({ tokens: [] }, /no tokens/);
    bad({ tokens: [{ name: 'a', sha256: 'abc', scopes: ['eth'] }] }, /64 lowercase hex/);
    bad({ tokens: [{ name: 'a', sha256: sha, scopes: ['root'] }] }, /unknown scope "root"/);
    bad({ tokens: [{ name: 'a', sha256: sha, scopes: [] }] }, /non-empty/);
    bad(
      {
        tokens: [
          { name: 'a', sha256: sha, scopes: ['eth'] },
          { name: 'b', sha256: sha, scopes: ['eth'] },
        ],
      },
      /twice/,
    );
  });

  it('reads only well-formed Bearer headers', () => {
    expect(bearerToken('Bearer qrt_abc')).toBe('qrt_abc');
    expect(bearerToken('bearer  qrt_abc ')).toBe('qrt_abc');
    expect(bearerToken('Basic qrt_abc')).toBeUndefined();
    expect(bearerToken('Bearer')).toBeUndefined();
    expect(bearerToken(`Bearer ${'a'.repeat(600)}`)).toBeUndefined();
    expect(bearerToken(undefined)).toBeUndefined();
  });

  it('gives every method in the table a scope: admin for membership, node-signed sends and private plaintext', () => {
    for (const m of ADMIN_METHODS) expect(RPC_METHODS.has(m), `${m} is a real method`).toBe(true);
    for (const m of RPC_METHODS.keys()) {
      const expected = ADMIN_METHODS.has(m) ? 'admin' : m.split('_')[0];
      expect(scopeOf(m), m).toBe(expected);
    }
    expect(scopeOf('quorate_sendRawTransaction')).toBe('quorate');
    expect(scopeOf('debug_dumpEverything')).toBe('admin');
    expect(scopeOf('nonsense')).toBe('admin');
  });

  it('reads the Host header the way vhosts are written', () => {
    expect(hostName('LocalHost:8545')).toBe('localhost');
    expect(hostName('[::1]:8545')).toBe('[::1]');
    expect(hostName('10.0.0.1')).toBe('10.0.0.1');
    expect(hostName(undefined)).toBeUndefined();
  });
});

describe('p2p: rate-limited refusal log and allowedCidrs', () => {
  function capture(): { logger: P2pLogger; lines: Array<{ fields: Record<string, unknown>; msg: string }> } {
    const lines: Array<{ fields: Record<string, unknown>; msg: string }> = [];
    const logger = {
      warn: (fields: Record<string, unknown>, msg: string) => lines.push({ fields, msg }),
      info: () => undefined,
      debug: () => undefined,
      error: () => undefined,
    } as unknown as P2pLogger;
    return { logger, lines };
  }

  it('logs a stranger that retries every second once per minute, with the count it did not log', () => {
    let now = 0;
    const { logger, lines } = capture();
    const log = new RefusalLog(logger, () => now);
    for (let s = 0; s < 125; s++) {
      log.refused('peerA', { peerId: 'peerA' }, 'refused a peer that is not in the membership');
      now += 1_000;
    }
    // t = 0, 60 s and 120 s.
    expect(lines.length).toBe(3);
    expect(log.refusedCount).toBe(125);
    expect(lines[0].fields.suppressedSinceLastLine).toBe(0);
    expect(lines[1].fields.suppressedSinceLastLine).toBe(59);
    expect(lines[2].fields.suppressedSinceLastLine).toBe(59);
    expect(lines[0].msg).toMatch(/^refused a peer/);
  });

  it('caps the lines of a flood of fresh keys per interval, and reports what it dropped', () => {
    let now = 0;
    const { logger, lines } = capture();
    const log = new RefusalLog(logger, () => now);
    for (let i = 0; i < 500; i++) log.refused(`peer${i}`, { peerId: `peer${i}` }, 'refused');
    expect(lines.length).toBe(REFUSAL_LOG_MAX_LINES_PER_INTERVAL);
    now += REFUSAL_LOG_INTERVAL_MS;
    log.refused('late', { peerId: 'late' }, 'refused');
    expect(lines.at(-1)?.fields.otherRefusalsNotLogged).toBe(500 - REFUSAL_LOG_MAX_LINES_PER_INTERVAL);
  });

  it('admits addresses inside allowedCidrs only (IPv4, IPv6, IPv4-mapped)', () => {
    const gate = new CidrGate(['10.0.0.0/8', '127.0.0.1/32', 'fd00::/8']);
    expect(gate.allows('10.200.1.1')).toBe(true);
    expect(gate.allows('127.0.0.1')).toBe(true);
    expect(gate.allows('::ffff:10.0.0.5')).toBe(true);
    expect(gate.allows('fd12::1')).toBe(true);
    expect(gate.allows('127.0.0.2')).toBe(false);
    expect(gate.allows('192.168.0.1')).toBe(false);
    expect(gate.allows('fe80::1')).toBe(false);
    expect(gate.allows('not-an-ip')).toBe(false);
    expect(CidrGate.ipOf(multiaddr('/ip4/10.1.2.3/tcp/4001'))).toBe('10.1.2.3');
    expect(CidrGate.ipOf(multiaddr('/ip6/::1/tcp/4001'))).toBe('::1');
    expect(() => new CidrGate(['10.0.0.0'])).toThrow(RangeError);
    expect(parseCidr('10.0.0.0/8')).toEqual({ address: '10.0.0.0', prefix: 8, family: 'ipv4' });
    expect(parseCidr('::/129')).toBeUndefined();
  });
});
