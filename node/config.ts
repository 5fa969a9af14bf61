// The node's configuration file (config.json) and the cluster's genesis file (genesis.json):
// their schemas, defaults, and validation with typed errors that name the offending field.
//
// Relative paths in a config file are resolved against the folder holding that file, so a
// cluster folder written by `quorate init` can be moved or mounted elsewhere (ROADMAP: nothing
// may assume a shared file system or a working directory).
//
// Example (what `quorate init` writes, abridged):
//   {
//     "nodeId": "node-1", "raftId": 1, "dataDir": "data",
//     "rpc": { "host": "127.0.0.1", "port": 8545 },
//     "p2p": { "host": "127.0.0.1", "port": 30303 },
//     "tm":  { "host": "127.0.0.1", "port": 9101 },
//     "keys": { "networkIdentity": "network.key", "nodeSigning": "minter.key",
//               "accounts": ["account.key"],
//               "enclave": { "keyFile": "enclave.key" }, "passwordFile": "node.password" },
//     "genesis": "../genesis.json",
//     "peers": [{ "raftId": 1, "nodeId": "node-1", "peerId": "12D3KooW...",
//                 "p2pAddress": "/ip4/127.0.0.1/tcp/30303/p2p/12D3KooW...",
//                 "rpcUrl": "http://127.0.0.1:8545/", "tmUrl": "http://127.0.0.1:9101/",
//                 "enclavePublicKeys": ["base64..."] }, ...],
//     "raft": { "tickMs": 100, "electionTicks": 10, "heartbeatTicks": 1, "snapshotEveryEntries": 10000,
//               "logMaxBytes": 268435456, "snapshotChunkBytes": 1048576, "snapshotMaxConcurrentTransfers": 2,
//               "snapshotWindowChunks": 8, "compactionRetainEntries": 1000, "logCacheBytes": 16777216 },
//     "blockTimeMs": 50, "limits": {}, "deliveryMode": "fail-fast", "logLevel": "info"
//   }
//
// Every key file is sealed under one password per node; node/keys.ts reads it (keys.passwordFile,
// else QUORATE_KEY_PASSWORD) and opens the keys. resolveEnclavePassword below is the older,
// enclave-only reader, kept for its callers.

import { readFile } from 'node:fs/promises';
import { dirname, isAbsolute, resolve } from 'node:path';
import { multiaddr } from '@multiformats/multiaddr';
import { MAX_PLAINTEXT_BYTES } from '../enclave/index.js';
import { parseTmRemoteClients, type TmRemoteClientsConfig } from '../txmanager/client-access.js';
import { chainStoreOptionsFromConfig, type ChainStoreOptions } from './chain/store.js';
import { MIN_SNAPSHOT_CHUNK_BYTES, SNAPSHOT_CHUNK_BYTES } from './chain/snapshot.js';
import { MAX_SNAPSHOT_WINDOW_CHUNKS } from './snapshot-transfer.js';
import { DEFAULT_DRIVER_OPTIONS } from './raft/driver.js';
import { DEFAULT_LOG_CACHE_BYTES } from './raftlog/level-storage.js';
import { LOG_LEVELS, isLogLevel, type LogLevel } from './log.js';
import {
  DEFAULT_BLOCK_OPTIONS,
  DEFAULT_POOL_OPTIONS,
  DEFAULT_PRIVACY_OPTIONS,
  DEFAULT_RAFT_OPTIONS,
  DEFAULT_RPC_OPTIONS,
} from './options.js';
import type { MemberInfo } from './membership.js';
import * as rpcSec from './rpc/security-config.js';

export const ENCLAVE_PASSWORD_ENV = 'QUORATE_ENCLAVE_PASSWORD';

/** A config or genesis file larger than this is not one (a 100-member genesis is ~60 KiB). */
export const MAX_CONFIG_FILE_BYTES = 4 * 1024 * 1024;
/** Members in the genesis / peers list. */
export const MAX_MEMBERS = 256;
/** Accounts one node may hold keys for. */
export const MAX_ACCOUNT_KEYS = 1024;
/** Enclave keys per member. */
export const MAX_ENCLAVE_KEYS_PER_MEMBER = 16;
/** Balances in genesis alloc. */
export const MAX_ALLOC_ENTRIES = 100_000;

export enum ConfigErrorCode {
  /** The file cannot be read (missing, permissions, too large). */
  Unreadable = 'CONFIG_UNREADABLE',
  /** The file is not JSON. */
  NotJson = 'CONFIG_NOT_JSON',
  /** A field is missing, has the wrong type, or an invalid value. `field` names it. */
  InvalidField = 'CONFIG_INVALID_FIELD',
  /** No enclave password: neither passwordFile nor QUORATE_ENCLAVE_PASSWORD. */
  PasswordMissing = 'CONFIG_PASSWORD_MISSING',
}

export class ConfigError extends Error {
  readonly code: ConfigErrorCode;
  /** The file the error is about. */
  readonly file: string;
  /** The dotted path of the offending field (`peers[2].rpcUrl`), or '' for the whole file. */
  readonly field: string;
  constructor(code: ConfigErrorCode, file: string, field: string, message: string, options?: { cause?: unknown }) {
    super(field ? `${file}: ${field}: ${message}` : `${file}: ${message}`, options);
    this.name = 'ConfigError';
    this.code = code;
    this.file = file;
    this.field = field;
  }
}

export type DeliveryMode = 'fail-fast' | 'queue';

export interface Endpoint {
  /** Address to bind (and, for a single-host cluster, to advertise). */
  readonly host: string;
  readonly port: number;
}

export interface PeerConfig {
  readonly raftId: number;
  readonly nodeId: string;
  /** libp2p peer id (base58). */
  readonly peerId: string;
  /** Full multiaddr, ending in /p2p/<peerId>. */
  readonly p2pAddress: string;
  readonly rpcUrl: string;
  readonly tmUrl: string;
  /** Enclave box public keys (base64) living on that member. */
  readonly enclavePublicKeys: readonly string[];
}

export interface RaftTuning {
  /** Length of one logical tick. */
  readonly tickMs: number;
  /** Election timeout in ticks (randomised in [electionTicks, 2*electionTicks)). */
  readonly electionTicks: number;
  /** Heartbeat interval in ticks; must be < electionTicks. */
  readonly heartbeatTicks: number;
  /** Applied entries between two Raft snapshots (log compaction). */
  readonly snapshotEveryEntries: number;
  /** Bytes of entry data since the last snapshot that also trigger one; 0 = off. */
  readonly logMaxBytes: number;
  /** Largest chunk of a streamed snapshot (MIN_SNAPSHOT_CHUNK_BYTES..SNAPSHOT_CHUNK_BYTES). */
  readonly snapshotChunkBytes: number;
  /** Snapshot transfers one member serves at once. */
  readonly snapshotMaxConcurrentTransfers: number;
  /** Chunks of one snapshot transfer in flight (1..MAX_SNAPSHOT_WINDOW_CHUNKS; the sender grants at most its own). */
  readonly snapshotWindowChunks: number;
  /** Entries kept behind a snapshot when the log is compacted (followers lagging less need no snapshot). */
  readonly compactionRetainEntries: number;
  /** Bytes of the newest Raft log entries kept in memory; older ones are read from disk (raftlog DEFAULT_LOG_CACHE_BYTES). */
  readonly logCacheBytes: number;
}

/** Limits the operator may tune. Each component documents how it enforces its own. */
export interface NodeLimits {
  readonly rpcMaxBodyBytes: number;
  readonly rpcMaxBatchLength: number;
  readonly rpcRequestTimeoutMs: number;
  readonly rpcMaxInFlightCalls: number;
  /** Event-loop delay (ms) past which transaction submissions are shed at the door (node/rpc/load-shed.ts). */
  readonly rpcMaxEventLoopDelayMs: number;
  readonly rpcMaxConnections: number;
  /** Transactions waiting in the pool. */
  readonly txPoolMaxTransactions: number;
  /** How far a sender's nonce may run ahead of its committed one: bounds its pending transactions. */
  readonly txPoolMaxPerSender: number;
  /** A pooled transaction behind a nonce gap is dropped after this long. */
  readonly txPoolQueuedLifetimeMs: number;
  /** The pool holds at most what the measured commit rate drains in this long; more is refused (-32010, data.retryAfterMs). */
  readonly txPoolMaxDrainMs: number;
  readonly blockMaxTransactions: number;
  readonly blockMaxBytes: number;
  /** Bytes of one private payload (ops of a private transaction). */
  readonly privatePayloadMaxBytes: number;
  /** A call to a remote transaction manager gives up after this. */
  readonly tmRequestTimeoutMs: number;
  /** Quota of the transaction manager's payload store; a send past it is refused (TXM_STORE_FULL, HTTP 507). */
  readonly tmStoreMaxBytes: number;
  readonly raftMaxMessageBytes: number;
  readonly raftMaxInflightMessages: number;
  readonly raftMaxUncommittedBytes: number;
}

// The defaults are the modules' own (node/options.ts); config.json only groups them differently.
export const DEFAULT_LIMITS: NodeLimits = {
  ...DEFAULT_RPC_OPTIONS,
  ...DEFAULT_POOL_OPTIONS,
  blockMaxTransactions: DEFAULT_BLOCK_OPTIONS.blockMaxTransactions,
  blockMaxBytes: DEFAULT_BLOCK_OPTIONS.blockMaxBytes,
  privatePayloadMaxBytes: DEFAULT_PRIVACY_OPTIONS.privatePayloadMaxBytes,
  tmRequestTimeoutMs: DEFAULT_PRIVACY_OPTIONS.tmRequestTimeoutMs,
  tmStoreMaxBytes: DEFAULT_PRIVACY_OPTIONS.tmStoreMaxBytes,
  raftMaxMessageBytes: DEFAULT_RAFT_OPTIONS.raftMaxMessageBytes,
  raftMaxInflightMessages: DEFAULT_RAFT_OPTIONS.raftMaxInflightMessages,
  raftMaxUncommittedBytes: DEFAULT_RAFT_OPTIONS.raftMaxUncommittedBytes,
};

export const DEFAULT_RAFT_TUNING: RaftTuning = {
  tickMs: DEFAULT_RAFT_OPTIONS.tickMs,
  electionTicks: DEFAULT_RAFT_OPTIONS.electionTicks,
  heartbeatTicks: DEFAULT_RAFT_OPTIONS.heartbeatTicks,
  snapshotEveryEntries: DEFAULT_RAFT_OPTIONS.snapshotEveryEntries,
  logMaxBytes: DEFAULT_RAFT_OPTIONS.logMaxBytes,
  snapshotChunkBytes: DEFAULT_RAFT_OPTIONS.snapshotChunkBytes,
  snapshotMaxConcurrentTransfers: DEFAULT_RAFT_OPTIONS.snapshotMaxConcurrentTransfers,
  snapshotWindowChunks: DEFAULT_RAFT_OPTIONS.snapshotWindowChunks,
  compactionRetainEntries: DEFAULT_DRIVER_OPTIONS.compactionRetainEntries,
  logCacheBytes: DEFAULT_LOG_CACHE_BYTES,
};

/** A validated config: defaults filled in, every path absolute. */
export interface NodeConfig {
  /** Absolute path of the file this was loaded from. */
  readonly configPath: string;
  readonly nodeId: string;
  readonly raftId: number;
  readonly dataDir: string;
  readonly rpc: Endpoint;
  readonly p2p: Endpoint;
  /** The TM client API: loopback only; `remoteClients` (TLS + bearer token) for clients on other hosts (txmanager/client-access.ts). */
  readonly tm: Endpoint & { readonly remoteClients?: TmRemoteClientsConfig; readonly socketPath?: string };
  readonly keys: {
    readonly networkIdentity: string;
    /** The minter's block-signing key (node/chain/keys.ts, purpose "minter"). */
    readonly nodeSigning: string;
    readonly accounts: readonly string[];
    readonly enclave: { readonly keyFile: string; readonly passwordFile?: string };
    /** The node's one password for all its sealed key files (node/keys.ts); else $QUORATE_KEY_PASSWORD. */
    readonly passwordFile?: string;
  };
  readonly genesis: string;
  /**
   * The members this node knows at start — `quorate init` lists every initial member, this node
   * included, so all nodes carry the same list. A --join node lists the members it may dial.
   * raftIds and peerIds are unique within the list.
   */
  readonly peers: readonly PeerConfig[];
  readonly raft: RaftTuning;
  readonly blockTimeMs: number;
  readonly limits: NodeLimits;
  readonly deliveryMode: DeliveryMode;
  readonly logLevel: LogLevel;
  /**
   * Per peer id, the multiaddr THIS node dials instead of the one in the replicated membership
   * (a NAT, a port-forward, or the Jepsen harness's fault-injecting proxy). Optional.
   */
  readonly p2pAddressOverrides: Readonly<Record<string, string>>;
  /** rpc.vhosts, rpc.corsOrigins, rpc.tls, rpc.auth, rpc.metrics (node/rpc/security-config.ts owns them). */
  readonly rpcSecurity: rpcSec.RpcSecurityConfig;
  /** p2p.allowedCidrs: inbound p2p connections from other addresses are refused before Noise. */
  readonly p2pAllowedCidrs?: readonly string[];
  /** `state`: the chain store's in-memory caches (node/chain/store.ts owns the defaults and bounds). */
  readonly state: ChainStoreOptions;
}

/** A genesis member: exactly a member of the replicated membership (node/membership.ts). */
export type GenesisMember = MemberInfo;

export interface Genesis {
  readonly chainId: number;
  /** The genesis block's timestamp (ms since the epoch): fixed, so every node computes the same genesis hash. */
  readonly timestampMs: number;
  /** Initial balances: address (0x, 40 lowercase hex) → decimal string. */
  readonly alloc: Readonly<Record<string, { readonly balance: string }>>;
  /** The initial voters, raftIds exactly 1..N. */
  readonly members: readonly GenesisMember[];
  /**
   * Who checks transaction signatures when a block is applied (node/chain/block.ts): every node
   * ('every-node'), or only the minter, which verified each one where it entered, with followers
   * trusting its block signature ('minter-only': one Ed25519 check per transaction per cluster,
   * about three times the throughput on a 3-node cluster). Part of the genesis hash, so every node
   * decides alike. `quorate init` writes 'minter-only'.
   */
  readonly txSignatureCheck: 'every-node' | 'minter-only';
}

// --------------------------------------------------------------------------------------------
// Reading
// --------------------------------------------------------------------------------------------

async function readJsonFile(path: string): Promise<unknown> {
  let text: string;
  try {
    const buf = await readFile(path);
    if (buf.length > MAX_CONFIG_FILE_BYTES) {
      throw new ConfigError(
        ConfigErrorCode.Unreadable,
        path,
        '',
        `file is ${buf.length} bytes, over the limit of ${MAX_CONFIG_FILE_BYTES}`,
      );
    }
    text = buf.toString('utf8');
  } catch (err) {
    if (err instanceof ConfigError) throw err;
    const code = (err as NodeJS.ErrnoException).code ?? String(err);
    throw new ConfigError(ConfigErrorCode.Unreadable, path, '', `cannot read the file (${code})`, { cause: err });
  }
  try {
    return JSON.parse(text);
  } catch (err) {
    throw new ConfigError(ConfigErrorCode.NotJson, path, '', `not valid JSON: ${(err as Error).message}`, {
      cause: err,
    });
  }
}

/** Reads and validates a node config file; relative paths resolve against the file's folder. */
export async function loadConfig(path: string): Promise<NodeConfig> {
  const abs = resolve(path);
  return parseConfig(await readJsonFile(abs), abs);
}

export async function loadGenesis(path: string): Promise<Genesis> {
  const abs = resolve(path);
  return parseGenesis(await readJsonFile(abs), abs);
}

/**
 * The enclave password for this node: the password file when the config names one, otherwise
 * $QUORATE_ENCLAVE_PASSWORD. A trailing newline in the file is ignored (editors add one).
 */
export async function resolveEnclavePassword(
  config: NodeConfig,
  env: NodeJS.ProcessEnv = process.env,
): Promise<string> {
  const file = config.keys.enclave.passwordFile;
  if (file !== undefined) {
    let text: string;
    try {
      text = await readFile(file, 'utf8');
    } catch (err) {
      throw new ConfigError(
        ConfigErrorCode.Unreadable,
        config.configPath,
        'keys.enclave.passwordFile',
        `cannot read ${file} (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
        { cause: err },
      );
    }
    const password = text.replace(/\r?\n$/, '');
    if (password.length === 0)
      throw new ConfigError(
        ConfigErrorCode.PasswordMissing,
        config.configPath,
        'keys.enclave.passwordFile',
        `${file} is empty`,
      );
    return password;
  }
  const fromEnv = env[ENCLAVE_PASSWORD_ENV];
  if (fromEnv === undefined || fromEnv.length === 0) {
    throw new ConfigError(
      ConfigErrorCode.PasswordMissing,
      config.configPath,
      'keys.enclave',
      `no enclave password: set ${ENCLAVE_PASSWORD_ENV} or keys.enclave.passwordFile`,
    );
  }
  return fromEnv;
}

// --------------------------------------------------------------------------------------------
// Validation
// --------------------------------------------------------------------------------------------

/** Walks an untrusted JSON value, failing with the dotted path of the first bad field. */
class Fields {
  constructor(
    private readonly file: string,
    private readonly baseDir: string,
  ) {}

  fail(field: string, message: string): never {
    throw new ConfigError(ConfigErrorCode.InvalidField, this.file, field, message);
  }

  object(v: unknown, field: string, allowed: readonly string[]): Record<string, unknown> {
    if (typeof v !== 'object' || v === null || Array.isArray(v)) this.fail(field, `must be an object, got ${kind(v)}`);
    const o = v as Record<string, unknown>;
    for (const k of Object.keys(o)) {
      // Unknown fields are refused: a typo ("blockTimeMS") must not silently fall back to a default.
      if (!allowed.includes(k)) this.fail(join(field, k), `unknown field (allowed here: ${allowed.join(', ')})`);
    }
    return o;
  }

  string(v: unknown, field: string, maxChars = 1024): string {
    if (typeof v !== 'string' || v.length === 0) this.fail(field, `must be a non-empty string, got ${kind(v)}`);
    if (v.length > maxChars) this.fail(field, `is ${v.length} characters, over the limit of ${maxChars}`);
    return v;
  }

  int(v: unknown, field: string, min: number, max: number): number {
    if (typeof v !== 'number' || !Number.isSafeInteger(v)) this.fail(field, `must be an integer, got ${kind(v)}`);
    if (v < min || v > max) this.fail(field, `must be between ${min} and ${max}, got ${v}`);
    return v;
  }

  port(v: unknown, field: string): number {
    return this.int(v, field, 0, 65535);
  }

  host(v: unknown, field: string): string {
    const h = this.string(v, field, 253);
    if (/[\s/]/.test(h)) this.fail(field, `must be a host name or IP address, got "${h}"`);
    return h;
  }

  path(v: unknown, field: string): string {
    const p = this.string(v, field, 4096);
    return isAbsolute(p) ? p : resolve(this.baseDir, p);
  }

  url(v: unknown, field: string): string {
    const s = this.string(v, field);
    let u: URL;
    try {
      u = new URL(s);
    } catch {
      this.fail(field, `must be an http(s) URL, got "${s}"`);
    }
    if (u.protocol !== 'http:' && u.protocol !== 'https:') this.fail(field, `must be an http(s) URL, got "${s}"`);
    return s;
  }

  array(v: unknown, field: string, max: number): unknown[] {
    if (!Array.isArray(v)) this.fail(field, `must be an array, got ${kind(v)}`);
    if (v.length > max) this.fail(field, `has ${v.length} entries, over the limit of ${max}`);
    return v;
  }

  base64Key(v: unknown, field: string): string {
    const s = this.string(v, field, 64);
    if (!/^[A-Za-z0-9+/]{43}=$/.test(s) || Buffer.from(s, 'base64').length !== 32)
      this.fail(field, `must be a 32-byte key in base64 (44 characters), got "${s}"`);
    return s;
  }

  peerId(v: unknown, field: string): string {
    const s = this.string(v, field, 128);
    if (!/^[1-9A-HJ-NP-Za-km-z]{40,60}$/.test(s))
      this.fail(field, `must be a base58 libp2p peer id (12D3KooW...), got "${s}"`);
    return s;
  }

  multiaddr(v: unknown, field: string): { text: string; peerId: string | undefined } {
    const s = this.string(v, field);
    try {
      const ma = multiaddr(s);
      return { text: s, peerId: ma.getComponents().findLast((c) => c.name === 'p2p')?.value };
    } catch (err) {
      this.fail(field, `is not a valid multiaddr: ${(err as Error).message}`);
    }
  }
}

function kind(v: unknown): string {
  if (v === undefined) return 'nothing';
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'string') return `"${v.length > 60 ? `${v.slice(0, 57)}...` : v}"`;
  return `${typeof v} ${typeof v === 'object' ? '' : String(v)}`.trim();
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function join(parent: string, key: string): string {
  return parent ? `${parent}.${key}` : key;
}

const CONFIG_FIELDS = [
  'nodeId',
  'raftId',
  'dataDir',
  'rpc',
  'p2p',
  'tm',
  'keys',
  'genesis',
  'peers',
  'raft',
  'blockTimeMs',
  'limits',
  'deliveryMode',
  'logLevel',
  'p2pAddressOverrides',
  'state',
] as const;

/** Validates a parsed config object. `configPath` is the file's absolute path (for messages and relative paths). */
export function parseConfig(json: unknown, configPath: string): NodeConfig {
  const f: Fields = new Fields(configPath, dirname(configPath));
  const o = f.object(json, '', CONFIG_FIELDS);
  const nodeId = f.string(o.nodeId, 'nodeId', 64);
  if (!/^[A-Za-z0-9._-]+$/.test(nodeId))
    f.fail('nodeId', `may hold letters, digits, ".", "_" and "-" only, got "${nodeId}"`);
  // 0: a node prepared with `quorate add-node` that is not a member yet; the cluster assigns its
  // id when raft_addPeer/raft_addLearner commits, and the node keeps it in its Raft log.
  const raftId = f.int(o.raftId, 'raftId', 0, Number.MAX_SAFE_INTEGER);
  const endpoint = (v: unknown, name: string, more: readonly string[] = []): Endpoint => {
    const e = f.object(v, name, ['host', 'port', ...more]);
    return {
      host: e.host === undefined ? '127.0.0.1' : f.host(e.host, `${name}.host`),
      port: f.port(e.port, `${name}.port`),
    };
  };
  const keysObj = f.object(o.keys, 'keys', ['networkIdentity', 'nodeSigning', 'accounts', 'enclave', 'passwordFile']);
  const enclaveObj = f.object(keysObj.enclave, 'keys.enclave', ['keyFile', 'passwordFile']);
  const accounts =
    keysObj.accounts === undefined
      ? []
      : f.array(keysObj.accounts, 'keys.accounts', MAX_ACCOUNT_KEYS).map((p, i) => f.path(p, `keys.accounts[${i}]`));
  const enclave: { keyFile: string; passwordFile?: string } = {
    keyFile: f.path(enclaveObj.keyFile, 'keys.enclave.keyFile'),
  };
  if (enclaveObj.passwordFile !== undefined)
    enclave.passwordFile = f.path(enclaveObj.passwordFile, 'keys.enclave.passwordFile');

  const peers =
    o.peers === undefined ? [] : f.array(o.peers, 'peers', MAX_MEMBERS).map((p, i) => parsePeer(f, p, `peers[${i}]`));
  const seenIds = new Set<number>();
  const seenPeerIds = new Set<string>();
  peers.forEach((p, i) => {
    if (seenIds.has(p.raftId)) f.fail(`peers[${i}].raftId`, `raftId ${p.raftId} appears twice`);
    if (seenPeerIds.has(p.peerId)) f.fail(`peers[${i}].peerId`, `peer id ${p.peerId} appears twice`);
    seenIds.add(p.raftId);
    seenPeerIds.add(p.peerId);
  });

  const raft = parseRaftTuning(f, o.raft);
  const limits = parseLimits(f, o.limits);
  const deliveryModeRaw = o.deliveryMode === undefined ? DEFAULT_PRIVACY_OPTIONS.deliveryMode : o.deliveryMode;
  if (deliveryModeRaw !== 'fail-fast' && deliveryModeRaw !== 'queue')
    f.fail('deliveryMode', `must be "fail-fast" or "queue", got ${kind(deliveryModeRaw)}`);
  const deliveryMode: DeliveryMode = deliveryModeRaw;
  const logLevelRaw = o.logLevel === undefined ? 'info' : o.logLevel;
  if (!isLogLevel(logLevelRaw)) f.fail('logLevel', `must be one of ${LOG_LEVELS.join(', ')}, got ${kind(logLevelRaw)}`);
  const logLevel: LogLevel = logLevelRaw;

  const rpc = endpoint(o.rpc, 'rpc', rpcSec.RPC_SECURITY_FIELDS);
  const p2p = endpoint(o.p2p, 'p2p', ['allowedCidrs']);
  const fail = (field: string, message: string): never => f.fail(field, message);
  const rpcSecurity = rpcSec.parseRpcSecurityConfig(o.rpc as Record<string, unknown>, {
    host: rpc.host,
    fail,
    path: (v, field) => f.path(v, field),
  });
  const p2pAllowedCidrs = rpcSec.parseAllowedCidrs((o.p2p as Record<string, unknown>).allowedCidrs, fail);
  const tm: Endpoint & { remoteClients?: TmRemoteClientsConfig; socketPath?: string } = endpoint(o.tm, 'tm', [
    'remoteClients',
    'socketPath',
  ]);
  const tmRemote = (o.tm as Record<string, unknown> | undefined)?.remoteClients;
  if (tmRemote !== undefined) tm.remoteClients = parseTmRemoteClients(tmRemote, dirname(configPath));
  // The local client API on a Unix socket (mode 0600) instead of host:port (txmanager/rest.ts).
  const tmSocket = (o.tm as Record<string, unknown> | undefined)?.socketPath;
  if (tmSocket !== undefined) tm.socketPath = f.path(tmSocket, 'tm.socketPath');
  const sameHost = (a: Endpoint, b: Endpoint): boolean => a.host === b.host && a.port === b.port && a.port !== 0;
  if (sameHost(rpc, p2p) || sameHost(rpc, tm))
    f.fail('rpc.port', `port ${rpc.port} on ${rpc.host} is used by another listener of this node`);
  if (sameHost(p2p, tm)) f.fail('p2p.port', `port ${p2p.port} on ${p2p.host} is used by another listener of this node`);

  return {
    configPath,
    nodeId,
    raftId,
    dataDir: f.path(o.dataDir, 'dataDir'),
    rpc,
    p2p,
    tm,
    keys: {
      networkIdentity: f.path(keysObj.networkIdentity, 'keys.networkIdentity'),
      nodeSigning: f.path(keysObj.nodeSigning, 'keys.nodeSigning'),
      accounts,
      enclave,
      ...(keysObj.passwordFile === undefined
        ? {}
        : { passwordFile: f.path(keysObj.passwordFile, 'keys.passwordFile') }),
    },
    genesis: f.path(o.genesis, 'genesis'),
    peers,
    raft,
    blockTimeMs:
      o.blockTimeMs === undefined ? DEFAULT_BLOCK_OPTIONS.blockTimeMs : f.int(o.blockTimeMs, 'blockTimeMs', 1, 60_000),
    limits,
    deliveryMode,
    logLevel,
    p2pAddressOverrides: parseOverrides(f, o.p2pAddressOverrides),
    rpcSecurity,
    ...(p2pAllowedCidrs ? { p2pAllowedCidrs } : {}),
    state: parseStateOptions(f, o.state),
  };
}

function parseStateOptions(f: Fields, v: unknown): ChainStoreOptions {
  if (v === undefined) return {};
  const o = f.object(v, 'state', ['cacheMaxBytes', 'blockCacheMaxBytes', 'maxOpenFiles']);
  try {
    return chainStoreOptionsFromConfig(o);
  } catch (err) {
    const field = (err as { meta?: { field?: unknown } }).meta?.field;
    return f.fail(
      typeof field === 'string' ? field : 'state.cacheMaxBytes',
      err instanceof Error ? err.message : String(err),
    );
  }
}

/** Bound on p2pAddressOverrides entries (one per peer at most). */
const MAX_ADDRESS_OVERRIDES = MAX_MEMBERS * 4;

function parseOverrides(f: Fields, v: unknown): Record<string, string> {
  if (v === undefined) return {};
  if (typeof v !== 'object' || v === null || Array.isArray(v))
    f.fail('p2pAddressOverrides', 'must be an object of peer id → multiaddr');
  const out: Record<string, string> = {};
  const entries = Object.entries(v as Record<string, unknown>);
  if (entries.length > MAX_ADDRESS_OVERRIDES) f.fail('p2pAddressOverrides', `at most ${MAX_ADDRESS_OVERRIDES} entries`);
  for (const [peer, addr] of entries) {
    const peerId = f.peerId(peer, `p2pAddressOverrides.${peer}`);
    out[peerId] = f.multiaddr(addr, `p2pAddressOverrides.${peer}`).text;
  }
  return out;
}

function parsePeer(f: Fields, v: unknown, field: string): PeerConfig {
  const p = f.object(v, field, ['raftId', 'nodeId', 'peerId', 'p2pAddress', 'rpcUrl', 'tmUrl', 'enclavePublicKeys']);
  const peerId = f.peerId(p.peerId, `${field}.peerId`);
  const addr = f.multiaddr(p.p2pAddress, `${field}.p2pAddress`);
  if (addr.peerId !== peerId)
    f.fail(`${field}.p2pAddress`, `must end in /p2p/${peerId} (the peer's peerId), got "${addr.text}"`);
  return {
    raftId: f.int(p.raftId, `${field}.raftId`, 1, Number.MAX_SAFE_INTEGER),
    nodeId: f.string(p.nodeId, `${field}.nodeId`, 64),
    peerId,
    p2pAddress: addr.text,
    rpcUrl: f.url(p.rpcUrl, `${field}.rpcUrl`),
    tmUrl: f.url(p.tmUrl, `${field}.tmUrl`),
    enclavePublicKeys: (p.enclavePublicKeys === undefined
      ? []
      : f.array(p.enclavePublicKeys, `${field}.enclavePublicKeys`, MAX_ENCLAVE_KEYS_PER_MEMBER)
    ).map((k, i) => f.base64Key(k, `${field}.enclavePublicKeys[${i}]`)),
  };
}

function parseRaftTuning(f: Fields, v: unknown): RaftTuning {
  if (v === undefined) return DEFAULT_RAFT_TUNING;
  const r = f.object(v, 'raft', [
    'tickMs',
    'electionTicks',
    'heartbeatTicks',
    'snapshotEveryEntries',
    'logMaxBytes',
    'snapshotChunkBytes',
    'snapshotMaxConcurrentTransfers',
    'snapshotWindowChunks',
    'compactionRetainEntries',
    'logCacheBytes',
  ]);
  const d = DEFAULT_RAFT_TUNING;
  const tuning: RaftTuning = {
    tickMs: r.tickMs === undefined ? DEFAULT_RAFT_TUNING.tickMs : f.int(r.tickMs, 'raft.tickMs', 1, 10_000),
    electionTicks:
      r.electionTicks === undefined
        ? DEFAULT_RAFT_TUNING.electionTicks
        : f.int(r.electionTicks, 'raft.electionTicks', 2, 1_000),
    heartbeatTicks:
      r.heartbeatTicks === undefined
        ? DEFAULT_RAFT_TUNING.heartbeatTicks
        : f.int(r.heartbeatTicks, 'raft.heartbeatTicks', 1, 1_000),
    snapshotEveryEntries:
      r.snapshotEveryEntries === undefined
        ? d.snapshotEveryEntries
        : f.int(r.snapshotEveryEntries, 'raft.snapshotEveryEntries', 1, 100_000_000),
    logMaxBytes:
      r.logMaxBytes === undefined
        ? d.logMaxBytes
        : f.int(r.logMaxBytes, 'raft.logMaxBytes', 0, Number.MAX_SAFE_INTEGER),
    snapshotChunkBytes:
      r.snapshotChunkBytes === undefined
        ? d.snapshotChunkBytes
        : f.int(r.snapshotChunkBytes, 'raft.snapshotChunkBytes', MIN_SNAPSHOT_CHUNK_BYTES, SNAPSHOT_CHUNK_BYTES),
    snapshotMaxConcurrentTransfers:
      r.snapshotMaxConcurrentTransfers === undefined
        ? d.snapshotMaxConcurrentTransfers
        : f.int(r.snapshotMaxConcurrentTransfers, 'raft.snapshotMaxConcurrentTransfers', 1, 64),
    snapshotWindowChunks:
      r.snapshotWindowChunks === undefined
        ? d.snapshotWindowChunks
        : f.int(r.snapshotWindowChunks, 'raft.snapshotWindowChunks', 1, MAX_SNAPSHOT_WINDOW_CHUNKS),
    compactionRetainEntries:
      r.compactionRetainEntries === undefined
        ? d.compactionRetainEntries
        : f.int(r.compactionRetainEntries, 'raft.compactionRetainEntries', 0, 100_000_000),
    logCacheBytes:
      r.logCacheBytes === undefined
        ? d.logCacheBytes
        : f.int(r.logCacheBytes, 'raft.logCacheBytes', 0, Number.MAX_SAFE_INTEGER),
  };
  // Raft §5.6: heartbeats must come well within the election timeout, or followers keep electing.
  if (tuning.heartbeatTicks >= tuning.electionTicks) {
    f.fail(
      'raft.heartbeatTicks',
      `must be less than raft.electionTicks (${tuning.electionTicks}), got ${tuning.heartbeatTicks}`,
    );
  }
  return tuning;
}

function parseLimits(f: Fields, v: unknown): NodeLimits {
  if (v === undefined) return DEFAULT_LIMITS;
  const keys = Object.keys(DEFAULT_LIMITS) as (keyof NodeLimits)[];
  const o = f.object(v, 'limits', keys);
  const out: Record<string, number> = { ...DEFAULT_LIMITS };
  for (const k of keys) {
    if (o[k] !== undefined)
      out[k] = f.int(
        o[k],
        `limits.${k}`,
        1,
        k === 'privatePayloadMaxBytes' ? MAX_PLAINTEXT_BYTES : Number.MAX_SAFE_INTEGER,
      );
  }
  return out as unknown as NodeLimits;
}

/** Validates a parsed genesis object. */
export function parseGenesis(json: unknown, genesisPath: string): Genesis {
  const f: Fields = new Fields(genesisPath, dirname(genesisPath));
  const o = f.object(json, '', ['chainId', 'timestampMs', 'alloc', 'members', 'txSignatureCheck']);
  const chainId = f.int(o.chainId, 'chainId', 1, Number.MAX_SAFE_INTEGER);
  const timestampMs = o.timestampMs === undefined ? 0 : f.int(o.timestampMs, 'timestampMs', 0, Number.MAX_SAFE_INTEGER);
  // Any address may appear in alloc: validate the object first, then each key.
  const allocObj =
    o.alloc === undefined ? {} : f.object(o.alloc, 'alloc', isPlainObject(o.alloc) ? Object.keys(o.alloc) : []);
  const allocKeys = Object.keys(allocObj);
  if (allocKeys.length > MAX_ALLOC_ENTRIES)
    f.fail('alloc', `has ${allocKeys.length} entries, over the limit of ${MAX_ALLOC_ENTRIES}`);
  const alloc: Record<string, { balance: string }> = {};
  for (const address of allocKeys) {
    const field = `alloc.${address}`;
    if (!/^0x[0-9a-f]{40}$/.test(address)) f.fail(field, 'must be a 20-byte address in lowercase 0x-hex');
    const entry = f.object(allocObj[address], field, ['balance']);
    const balance = f.string(entry.balance, `${field}.balance`, 78);
    if (!/^(0|[1-9][0-9]*)$/.test(balance))
      f.fail(`${field}.balance`, `must be a decimal string of an unsigned integer, got "${balance}"`);
    alloc[address] = { balance };
  }
  const membersRaw = f.array(o.members, 'members', MAX_MEMBERS);
  if (membersRaw.length === 0) f.fail('members', 'must name at least one member');
  const members = membersRaw.map((m, i) => parseGenesisMember(f, m, `members[${i}]`));
  members.forEach((m, i) => {
    // Initial ids are exactly 1..N in order; later ids come from the cluster's counter and are never reused.
    if (m.raftId !== i + 1)
      f.fail(
        `members[${i}].raftId`,
        `initial members must have raftIds 1..${members.length} in order, got ${m.raftId} at position ${i + 1}`,
      );
  });
  for (const key of ['peerId', 'name', 'signingKey'] as const) {
    const seen = new Set<string>();
    members.forEach((m, i) => {
      if (seen.has(m[key])) f.fail(`members[${i}].${key}`, `"${m[key]}" appears twice`);
      seen.add(m[key]);
    });
  }
  const txSignatureCheck = o.txSignatureCheck === undefined ? 'every-node' : o.txSignatureCheck;
  if (txSignatureCheck !== 'every-node' && txSignatureCheck !== 'minter-only')
    f.fail('txSignatureCheck', 'must be "every-node" or "minter-only"');
  return { chainId, timestampMs, alloc, members, txSignatureCheck };
}

function parseGenesisMember(f: Fields, v: unknown, field: string): GenesisMember {
  const m = f.object(v, field, [
    'raftId',
    'name',
    'peerId',
    'p2pAddrs',
    'rpcUrl',
    'tmUrl',
    'signingKey',
    'enclaveKeys',
  ]);
  const addrs = f.array(m.p2pAddrs, `${field}.p2pAddrs`, 16).map((a, i) => {
    const ma = f.multiaddr(a, `${field}.p2pAddrs[${i}]`);
    if (ma.peerId !== undefined)
      f.fail(`${field}.p2pAddrs[${i}]`, 'must not carry the /p2p/<peerId> suffix (the peerId field says it)');
    return ma.text;
  });
  return {
    raftId: f.int(m.raftId, `${field}.raftId`, 1, MAX_MEMBERS),
    name: f.string(m.name, `${field}.name`, 64),
    peerId: f.peerId(m.peerId, `${field}.peerId`),
    p2pAddrs: addrs,
    rpcUrl: f.url(m.rpcUrl, `${field}.rpcUrl`),
    tmUrl: f.url(m.tmUrl, `${field}.tmUrl`),
    signingKey: f.base64Key(m.signingKey, `${field}.signingKey`),
    enclaveKeys: f
      .array(m.enclaveKeys, `${field}.enclaveKeys`, MAX_ENCLAVE_KEYS_PER_MEMBER)
      .map((k, i) => f.base64Key(k, `${field}.enclaveKeys[${i}]`)),
  };
}
