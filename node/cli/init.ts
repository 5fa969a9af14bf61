// `quorate init`: writes a cluster folder — DIR/genesis.json and DIR/node-1..N/ with each node's
// config.json and keys (network identity, block-signing key, account key, enclave key pair).
//
// The folder is built under a temporary sibling name and renamed into place at the end, so a
// failure half-way (disk full, Ctrl-C) never leaves a DIR that looks complete but is not.
// Every key file is created exclusively (never overwritten) by the module that owns its format.
//
// Every private key file is sealed under one password per node (node/keys.ts), the folder is
// 0700 and every file in it 0600. Two kinds of cluster:
//  - the local dev cluster (no --hosts; also `quorate up`): light KDF (scrypt N=2^14) and a
//    random password per node in node-i/node.password, so `quorate start` needs no step;
//  - --hosts (a deployment across hosts): geth's standard KDF (scrypt N=2^18) under the
//    password the operator gives init (QUORATE_KEY_PASSWORD or --password-file); no password is
//    written anywhere; each node gets it from its own environment or a password file at start.
// The transaction manager's client API binds 127.0.0.1 in every config init writes: it serves
// local clients only (docs/interface.md, Security); TM-to-TM traffic runs over p2p.

import { readFileSync } from 'node:fs';
import { mkdir, readdir, rename, rm, stat } from 'node:fs/promises';
import { isIP } from 'node:net';
import { basename, dirname, join, resolve } from 'node:path';
import {
  KEY_PASSWORD_ENV,
  KEY_PASSWORD_ENV_ALIAS,
  createSealedNodeKeys,
  generateDevPassword,
  mkdirPrivate,
  writePrivateFile,
  type CreatedNodeKeys,
  type KeyProtection,
} from '../keys.js';
import { MAX_MEMBERS, parseConfig, parseGenesis, type Genesis, type GenesisMember } from '../config.js';
import {
  CommandError,
  ExitCode,
  UsageError,
  intFlag,
  parseFlags,
  requiredString,
  stringFlag,
  type CliIo,
} from './args.js';
import { formatTable } from './table.js';
import { credentialsNote, rpcCredentialsNeeded, writeRpcCredentials } from './init-credentials.js';
import { SystemClock } from '../clock.js';

/** The real clock (node/clock.ts): this module has no injected one. */
const clock = new SystemClock();

export const INIT_HELP = `Usage: quorate init --nodes N --dir DIR [--host H | --hosts H1,..,HN [--password-file F]]
                    [--rpc-port P] [--p2p-port P] [--tm-port P] [--kdf dev|production] [--force]

Writes DIR/genesis.json and DIR/node-1 .. node-N/ (config.json and the sealed key files
network.key, minter.key, account.key, enclave.key; node.password for the dev cluster), then
prints the nodes and their URLs. Folders are 0700, files 0600.

  --nodes N        number of initial members (1..${MAX_MEMBERS})
  --dir DIR        the cluster folder to create
  --host H         one host for every node (default 127.0.0.1); node i uses port P+i-1
  --hosts H1,..    one host per node (exactly N); every node uses the same ports and
                   binds all of its listeners to its own host
  --rpc-port P     JSON-RPC port (default 8545)
  --p2p-port P     libp2p port (default 30303)
  --tm-port P      transaction manager client API port, always on 127.0.0.1 (default 9001)
  --password-file F  with --hosts: the password to seal every node's keys under (else
                   $${KEY_PASSWORD_ENV}); it is not copied into the cluster folder
  --kdf K          scrypt cost of the sealed keys: "production" (N=2^18, the default with
                   --hosts) or "dev" (N=2^14, the default without; for tests only)
  --force          replace an existing cluster folder DIR

Without --hosts (a local dev cluster) every node gets a random password in node-i/node.password
(0600), so it starts without a step. With --hosts no password is written: start each node with
${KEY_PASSWORD_ENV} set (from a secret store), or keys.passwordFile in its config.json.

When a host is not a loopback address, JSON-RPC gets TLS and bearer tokens: DIR/credentials/
(cluster CA, tokens; keep it off the nodes) and node-i/tls/, node-i/rpc-tokens.json (hashes).
`;

export const INIT_DEFAULTS = { host: '127.0.0.1', rpcPort: 8545, p2pPort: 30303, tmPort: 9001, chainId: 1337 } as const;

/** Balance of each node's account in the genesis alloc (10^24 units). */
export const GENESIS_ACCOUNT_BALANCE = '1000000000000000000000000';

export interface InitOptions {
  readonly nodes: number;
  readonly dir: string;
  /** One host per node (length N). With a single --host every entry is the same. */
  readonly hosts: readonly string[];
  readonly rpcPort: number;
  readonly p2pPort: number;
  readonly tmPort: number;
  readonly force: boolean;
  readonly chainId: number;
  /**
   * KDF cost of the sealed keys. Absent: "production" when `password` is given, else "dev" —
   * programmatic callers without a password are test harnesses that start the nodes themselves.
   * The CLI always sets it (production with --hosts).
   */
  readonly keyProtection?: KeyProtection;
  /**
   * The password every node's keys are sealed under. Absent: a random password per node,
   * written to node-i/node.password (the dev cluster). Given: nothing is written.
   */
  readonly password?: string;
  /**
   * With credentials (a host that is not loopback): serve JSON-RPC over TLS. Default true. The
   * Jepsen harness turns it off: its nodes live in private network namespaces reached through a
   * byte relay that must read a refused dial as plain HTTP; tokens are still required.
   */
  readonly rpcTls?: boolean;
}

export interface InitNode {
  readonly nodeId: string;
  readonly raftId: number;
  readonly configPath: string;
  readonly peerId: string;
  readonly rpcUrl: string;
  readonly p2pAddress: string;
  readonly tmUrl: string;
  readonly account: string;
}

export interface InitResult {
  readonly dir: string;
  readonly genesisPath: string;
  readonly nodes: readonly InitNode[];
}

export function parseInitArgs(argv: readonly string[]): InitOptions | 'help' {
  const { help, values } = parseFlags('init', argv, {
    nodes: { type: 'string' },
    dir: { type: 'string' },
    host: { type: 'string' },
    hosts: { type: 'string' },
    'rpc-port': { type: 'string' },
    'p2p-port': { type: 'string' },
    'tm-port': { type: 'string' },
    'password-file': { type: 'string' },
    kdf: { type: 'string' },
    force: { type: 'boolean' },
  });
  if (help) return 'help';
  if (values.nodes === undefined) throw new UsageError('--nodes is required', 'init');
  const nodes = intFlag('init', values, 'nodes', 0, 1, MAX_MEMBERS);
  const dir = requiredString('init', values, 'dir');
  const host = stringFlag(values, 'host');
  const hostsList = stringFlag(values, 'hosts');
  if (host !== undefined && hostsList !== undefined)
    throw new UsageError('give either --host or --hosts, not both', 'init');
  let hosts: string[];
  if (hostsList !== undefined) {
    hosts = hostsList.split(',').map((h) => h.trim());
    if (hosts.length !== nodes)
      throw new UsageError(`--hosts names ${hosts.length} host(s) but --nodes is ${nodes}`, 'init');
    if (new Set(hosts).size !== hosts.length)
      throw new UsageError('--hosts names a host twice; for nodes sharing one host use --host', 'init');
  } else {
    hosts = Array.from({ length: nodes }, () => host ?? INIT_DEFAULTS.host);
  }
  for (const h of hosts) checkHost(h);
  const kdf = stringFlag(values, 'kdf');
  if (kdf !== undefined && kdf !== 'dev' && kdf !== 'production')
    throw new UsageError(`--kdf must be "dev" or "production", got "${kdf}"`, 'init');
  const keyProtection: KeyProtection = kdf ?? (hostsList !== undefined ? 'production' : 'dev');
  const passwordFile = stringFlag(values, 'password-file');
  if (passwordFile !== undefined && hostsList === undefined)
    throw new UsageError('--password-file goes with --hosts (the dev cluster gets a password file per node)', 'init');
  const password = hostsList === undefined ? undefined : deploymentPassword(passwordFile);
  const options: InitOptions = {
    nodes,
    dir,
    hosts,
    rpcPort: intFlag('init', values, 'rpc-port', INIT_DEFAULTS.rpcPort, 1, 65535),
    p2pPort: intFlag('init', values, 'p2p-port', INIT_DEFAULTS.p2pPort, 1, 65535),
    tmPort: intFlag('init', values, 'tm-port', INIT_DEFAULTS.tmPort, 1, 65535),
    force: values.force === true,
    chainId: INIT_DEFAULTS.chainId,
    keyProtection,
    ...(password === undefined ? {} : { password }),
  };
  checkPorts(options);
  return options;
}

/** The password for --hosts: --password-file, else $QUORATE_KEY_PASSWORD (removed from the environment once read). */
export function deploymentPassword(passwordFile: string | undefined, command = 'init'): string {
  const fromEnv = process.env[KEY_PASSWORD_ENV] ?? process.env[KEY_PASSWORD_ENV_ALIAS];
  delete process.env[KEY_PASSWORD_ENV];
  delete process.env[KEY_PASSWORD_ENV_ALIAS];
  let password: string | undefined = fromEnv;
  if (passwordFile !== undefined) {
    try {
      password = readFileSync(passwordFile, 'utf8').replace(/\r?\n$/, '');
    } catch (err) {
      throw new CommandError(
        `--password-file ${passwordFile} cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
      );
    }
  }
  if (password === undefined || password.length === 0)
    throw new UsageError(
      `a deployment's keys are sealed under a password that is written nowhere: set ${KEY_PASSWORD_ENV} or pass --password-file FILE`,
      command,
    );
  return password;
}

function checkHost(h: string): void {
  if (h.length === 0 || h.length > 253 || /[\s/,[\]]/.test(h))
    throw new UsageError(`"${h}" is not a host name or IP address`, 'init');
  // Configs carry the address other nodes dial; a wildcard cannot be dialled.
  if (h === '0.0.0.0' || h === '::')
    throw new UsageError(`host ${h} is a wildcard; give the address other nodes reach this node on`, 'init');
}

/** Every listener of every node on one host needs its own port. */
function checkPorts(o: InitOptions): void {
  const sharedHost = o.hosts.every((h) => h === o.hosts[0]);
  const span = sharedHost ? o.nodes : 1;
  const kinds = [
    ['--rpc-port', o.rpcPort],
    ['--p2p-port', o.p2pPort],
    ['--tm-port', o.tmPort],
  ] as const;
  for (const [flag, p] of kinds) {
    if (p + span - 1 > 65535) throw new UsageError(`${flag} ${p} + ${span - 1} is past port 65535`, 'init');
  }
  for (let i = 0; i < kinds.length; i++) {
    for (let j = i + 1; j < kinds.length; j++) {
      const [fa, a] = kinds[i];
      const [fb, b] = kinds[j];
      if (a < b + span && b < a + span) {
        throw new UsageError(
          `${fa} ${a}..${a + span - 1} overlaps ${fb} ${b}..${b + span - 1}; choose ranges ${span} apart`,
          'init',
        );
      }
    }
  }
}

function urlHost(host: string): string {
  return isIP(host) === 6 ? `[${host}]` : host;
}

function multiaddrOf(host: string, port: number): string {
  const kind = isIP(host) === 4 ? 'ip4' : isIP(host) === 6 ? 'ip6' : 'dns';
  return `/${kind}/${host}/tcp/${port}`;
}

/** True when `dir` is absent; throws when it exists and may not be replaced. */
async function checkTarget(dir: string, force: boolean): Promise<boolean> {
  let entries: string[];
  try {
    const s = await stat(dir);
    if (!s.isDirectory()) throw new CommandError(`${dir} exists and is not a directory`);
    entries = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return true;
    throw err;
  }
  if (entries.length === 0) return false;
  if (!force)
    throw new CommandError(
      `${dir} already exists; refusing to overwrite it (pass --force to replace the cluster folder)`,
    );
  // --force replaces a cluster folder, nothing else: a typo in --dir must not delete a home directory.
  if (!entries.includes('genesis.json'))
    throw new CommandError(
      `${dir} exists and is not a quorate cluster folder (no genesis.json); refusing to delete it even with --force`,
    );
  return false;
}

/** Writes the cluster folder. The CLI command and `quorate up` both call this. */
export async function initCluster(options: InitOptions): Promise<InitResult> {
  const dir = resolve(options.dir);
  const absent = await checkTarget(dir, options.force);
  await mkdir(dirname(dir), { recursive: true });
  const tmp = join(dirname(dir), `.${basename(dir)}.init-${process.pid}-${clock.wallMs()}`);
  await mkdir(tmp, { recursive: false, mode: 0o700 });
  await mkdirPrivate(tmp);
  try {
    const built = await buildCluster(tmp, options);
    if (!absent) {
      const old = join(dirname(dir), `.${basename(dir)}.old-${process.pid}-${clock.wallMs()}`);
      await rename(dir, old);
      await rename(tmp, dir);
      await rm(old, { recursive: true, force: true });
    } else {
      await rename(tmp, dir);
    }
    return {
      dir,
      genesisPath: join(dir, 'genesis.json'),
      nodes: built.map((n) => ({ ...n, configPath: join(dir, `${n.nodeId}`, 'config.json') })),
    };
  } catch (err) {
    await rm(tmp, { recursive: true, force: true });
    throw err;
  }
}

/** The password file of a dev-cluster node, in its folder. */
export const DEV_PASSWORD_FILE = 'node.password';

/** The key files of one node, in its folder, and the paths its config names them by (a dev-cluster node: with its password file). */
export const NODE_KEY_FILES = {
  networkIdentity: 'network.key',
  nodeSigning: 'minter.key',
  accounts: ['account.key'],
  enclave: { keyFile: 'enclave.key' },
  passwordFile: DEV_PASSWORD_FILE,
};

/** `keys` of a config.json: with the password file for the dev cluster, without it for a deployment. */
export function nodeKeysConfig(devPasswordFile: boolean): Omit<typeof NODE_KEY_FILES, 'passwordFile'> & {
  passwordFile?: string;
} {
  const { passwordFile, ...rest } = NODE_KEY_FILES;
  return devPasswordFile ? { ...rest, passwordFile } : rest;
}

/**
 * Creates a node's sealed keys in `nodeDir` (made 0700; each file 0600, exclusively, never
 * overwriting). Without `password` (the dev cluster) a random one is written to node.password.
 */
export async function createNodeKeys(
  nodeDir: string,
  options: { protection?: KeyProtection; password?: string } = {},
): Promise<CreatedNodeKeys> {
  await mkdirPrivate(nodeDir);
  let password = options.password;
  if (password === undefined) {
    // 32 random bytes: a password nobody types, for a dev cluster whose files sit side by side.
    password = generateDevPassword();
    await writePrivateFile(join(nodeDir, DEV_PASSWORD_FILE), `${password}\n`);
  }
  return createSealedNodeKeys(
    nodeDir,
    {
      networkIdentity: NODE_KEY_FILES.networkIdentity,
      nodeSigning: NODE_KEY_FILES.nodeSigning,
      account: NODE_KEY_FILES.accounts[0],
      enclave: NODE_KEY_FILES.enclave.keyFile,
    },
    password,
    options.protection ?? (options.password === undefined ? 'dev' : 'production'),
  );
}

async function buildCluster(root: string, o: InitOptions): Promise<InitNode[]> {
  const sharedHost = o.hosts.every((h) => h === o.hosts[0]);
  const members: GenesisMember[] = [];
  const nodes: (InitNode & {
    readonly host: string;
    readonly ports: { rpc: number; p2p: number; tm: number };
    readonly enclaveKey: string;
  })[] = [];
  const alloc: Record<string, { balance: string }> = {};

  for (let i = 1; i <= o.nodes; i++) {
    const nodeId = `node-${i}`;
    const nodeDir = join(root, nodeId);
    await mkdirPrivate(nodeDir);
    const host = o.hosts[i - 1];
    const offset = sharedHost ? i - 1 : 0;
    const ports = { rpc: o.rpcPort + offset, p2p: o.p2pPort + offset, tm: o.tmPort + offset };

    const { peerId, minter, account, enclaveKey } = await createNodeKeys(nodeDir, {
      protection: o.keyProtection ?? (o.password === undefined ? 'dev' : 'production'),
      ...(o.password === undefined ? {} : { password: o.password }),
    });

    const p2pAddr = multiaddrOf(host, ports.p2p);
    // Non-loopback hosts: TLS and tokens on JSON-RPC (node/cli/init-credentials.ts).
    const rpcUrl = `${rpcCredentialsNeeded(o.hosts) && o.rpcTls !== false ? 'https' : 'http'}://${urlHost(host)}:${ports.rpc}/`;
    // The TM client API is on the node's own loopback (local clients only); see the file comment.
    const tmUrl = `http://127.0.0.1:${ports.tm}/`;
    alloc[account.address] = { balance: GENESIS_ACCOUNT_BALANCE };
    members.push({
      raftId: i,
      name: nodeId,
      peerId,
      p2pAddrs: [p2pAddr],
      rpcUrl,
      tmUrl,
      signingKey: Buffer.from(minter.publicKeyRaw).toString('base64'),
      enclaveKeys: [enclaveKey],
    });
    nodes.push({
      nodeId,
      raftId: i,
      configPath: '',
      peerId,
      rpcUrl,
      p2pAddress: `${p2pAddr}/p2p/${peerId}`,
      tmUrl,
      account: account.address,
      host,
      ports,
      enclaveKey,
    });
  }

  // Fixed once, here: every node must compute the same genesis block.
  const genesis: Genesis = {
    chainId: o.chainId,
    timestampMs: clock.wallMs(),
    alloc,
    members,
    // The dev cluster (one host, one operator) skips the per-node signature check for speed; a
    // deployment across hosts (--hosts: one organisation per node) checks every transaction on
    // every node, so no single member's word decides what a signature proves.
    txSignatureCheck: sharedHost ? 'minter-only' : 'every-node',
  };
  const genesisPath = join(root, 'genesis.json');
  parseGenesis(genesis, genesisPath); // self-check: init never writes a file the node would refuse
  await writePrivateFile(genesisPath, JSON.stringify(genesis, null, 2) + '\n');

  const peers = nodes.map((n) => ({
    raftId: n.raftId,
    nodeId: n.nodeId,
    peerId: n.peerId,
    p2pAddress: n.p2pAddress,
    rpcUrl: n.rpcUrl,
    tmUrl: n.tmUrl,
    enclavePublicKeys: [n.enclaveKey],
  }));
  const rpcCredentials = rpcCredentialsNeeded(o.hosts)
    ? await writeRpcCredentials(root, nodes, { tls: o.rpcTls !== false })
    : undefined;
  for (const n of nodes) {
    const config = {
      nodeId: n.nodeId,
      raftId: n.raftId,
      dataDir: 'data',
      rpc: { host: n.host, port: n.ports.rpc, ...rpcCredentials?.rpcConfigFor(n.nodeId) },
      p2p: { host: n.host, port: n.ports.p2p },
      tm: { host: '127.0.0.1', port: n.ports.tm },
      keys: nodeKeysConfig(o.password === undefined),
      genesis: '../genesis.json',
      peers,
      raft: { tickMs: 100, electionTicks: 10, heartbeatTicks: 1 },
      blockTimeMs: 50,
      limits: {},
      deliveryMode: 'fail-fast',
      logLevel: 'info',
    };
    const configPath = join(root, n.nodeId, 'config.json');
    parseConfig(config, configPath); // self-check, as for genesis
    await writePrivateFile(configPath, JSON.stringify(config, null, 2) + '\n');
  }
  return nodes.map(({ nodeId, raftId, configPath, peerId, rpcUrl, p2pAddress, tmUrl, account }) => ({
    nodeId,
    raftId,
    configPath,
    peerId,
    rpcUrl,
    p2pAddress,
    tmUrl,
    account,
  }));
}

export function formatInitResult(r: InitResult, options: Pick<InitOptions, 'password' | 'keyProtection'> = {}): string {
  const table = formatTable(
    ['node', 'raftId', 'rpc', 'p2p', 'tx manager', 'account'],
    r.nodes.map((n) => [n.nodeId, String(n.raftId), n.rpcUrl, n.p2pAddress, n.tmUrl, n.account]),
  );
  return (
    `Wrote ${r.genesisPath} and ${r.nodes.length} node folder(s) under ${r.dir}\n\n` +
    table +
    `\nStart a node:  quorate start --config ${join(r.dir, 'node-1', 'config.json')}\n` +
    keysNote(options) +
    (r.nodes[0]?.rpcUrl.startsWith('https:') ? credentialsNote(r.dir, r.nodes[0].rpcUrl) : '')
  );
}

export function keysNote(o: Pick<InitOptions, 'password' | 'keyProtection'>): string {
  const kdf =
    (o.keyProtection ?? (o.password === undefined ? 'dev' : 'production')) === 'dev'
      ? 'the light dev KDF (scrypt N=2^14; for a local cluster and tests only)'
      : "geth's standard KDF (scrypt N=2^18)";
  if (o.password === undefined)
    return (
      `Keys are sealed with ${kdf}. This is a local dev cluster, so each node's random password was written to ` +
      `node-i/${DEV_PASSWORD_FILE} (0600) and named by keys.passwordFile in its config.json: the nodes start without a step. ` +
      `Never deploy these folders; use init --hosts for that.\n`
    );
  return (
    `Keys are sealed with ${kdf} under the password you gave; no password was written to the cluster folder.\n` +
    `Start each node with ${KEY_PASSWORD_ENV} set in its environment (from a secret store; the node removes it once read), ` +
    `or add "passwordFile": "<a 0600 file outside the node folder>" to keys in its config.json.\n`
  );
}

export async function initCommand(argv: readonly string[], io: CliIo): Promise<ExitCode> {
  const options = parseInitArgs(argv);
  if (options === 'help') {
    io.out(INIT_HELP);
    return ExitCode.Ok;
  }
  const result = await initCluster(options);
  io.out(formatInitResult(result, options));
  return ExitCode.Ok;
}
