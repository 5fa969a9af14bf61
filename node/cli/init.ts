// `quorate init`: writes a cluster folder — DIR/genesis.json and DIR/node-1..N/ with each node's
// config.json and keys (network identity, block-signing key, account key, enclave key pair).
//
// The folder is built under a temporary sibling name and renamed into place at the end, so a
// failure half-way (disk full, Ctrl-C) never leaves a DIR that looks complete but is not.
// Every key file is created exclusively (never overwritten) by the module that owns its format.
//
// The local dev cluster keeps each node's enclave password in node-i/enclave.password (0600)
// and points the config at it. In production, drop keys.enclave.passwordFile and pass the
// password in QUORATE_ENCLAVE_PASSWORD from a secret store.

import { randomBytes } from 'node:crypto';
import { mkdir, open, readdir, rename, rm, stat, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { basename, dirname, join, resolve } from 'node:path';
import { createNetworkIdentity } from '../../p2p/identity.js';
import {
  generateAccountKey,
  generateMinterKey,
  saveAccountKey,
  saveMinterKey,
  type AccountKey,
} from '../chain/keys.js';
import { createKeyFile } from '../../enclave/keyfile.js';
import {
  ENCLAVE_PASSWORD_ENV,
  MAX_MEMBERS,
  parseConfig,
  parseGenesis,
  type Genesis,
  type GenesisMember,
} from '../config.js';
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
import { SystemClock } from '../clock.js';

/** The real clock (node/clock.ts): this module has no injected one. */
const clock = new SystemClock();

export const INIT_HELP = `Usage: quorate init --nodes N --dir DIR [--host H | --hosts H1,..,HN]
                    [--rpc-port P] [--p2p-port P] [--tm-port P] [--force]

Writes DIR/genesis.json and DIR/node-1 .. node-N/ (config.json, network.key, minter.key,
account.key, enclave.key, enclave.password), then prints the nodes and their URLs.

  --nodes N        number of initial members (1..${MAX_MEMBERS})
  --dir DIR        the cluster folder to create
  --host H         one host for every node (default 127.0.0.1); node i uses port P+i-1
  --hosts H1,..    one host per node (exactly N); every node uses the same ports and
                   binds all of its listeners to its own host
  --rpc-port P     JSON-RPC port (default 8545)
  --p2p-port P     libp2p port (default 30303)
  --tm-port P      transaction manager port (default 9001)
  --force          replace an existing cluster folder DIR

The enclave passwords of this local cluster are kept in node-i/enclave.password (mode 0600).
In production remove keys.enclave.passwordFile from config.json and set ${ENCLAVE_PASSWORD_ENV}.
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
  const options: InitOptions = {
    nodes,
    dir,
    hosts,
    rpcPort: intFlag('init', values, 'rpc-port', INIT_DEFAULTS.rpcPort, 1, 65535),
    p2pPort: intFlag('init', values, 'p2p-port', INIT_DEFAULTS.p2pPort, 1, 65535),
    tmPort: intFlag('init', values, 'tm-port', INIT_DEFAULTS.tmPort, 1, 65535),
    force: values.force === true,
    chainId: INIT_DEFAULTS.chainId,
  };
  checkPorts(options);
  return options;
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

async function writeSecretFile(path: string, text: string): Promise<void> {
  const handle = await open(path, 'wx', 0o600);
  try {
    await handle.writeFile(text, 'utf8');
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Writes the cluster folder. The CLI command and `quorate up` both call this. */
export async function initCluster(options: InitOptions): Promise<InitResult> {
  const dir = resolve(options.dir);
  const absent = await checkTarget(dir, options.force);
  await mkdir(dirname(dir), { recursive: true });
  const tmp = join(dirname(dir), `.${basename(dir)}.init-${process.pid}-${clock.wallMs()}`);
  await mkdir(tmp, { recursive: false });
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

/** The key files of one node, in its folder, and the paths its config names them by. */
export const NODE_KEY_FILES = {
  networkIdentity: 'network.key',
  nodeSigning: 'minter.key',
  accounts: ['account.key'],
  enclave: { keyFile: 'enclave.key', passwordFile: 'enclave.password' },
};

/** Creates a node's keys in `nodeDir` (each file exclusively, never overwriting). */
export async function createNodeKeys(
  nodeDir: string,
): Promise<{ peerId: string; minter: AccountKey; account: AccountKey; enclaveKey: string }> {
  const { peerId } = await createNetworkIdentity(join(nodeDir, NODE_KEY_FILES.networkIdentity));
  const minter = generateMinterKey();
  saveMinterKey(join(nodeDir, NODE_KEY_FILES.nodeSigning), minter);
  const account = generateAccountKey();
  saveAccountKey(join(nodeDir, NODE_KEY_FILES.accounts[0]), account);
  // 32 random bytes: a password nobody types, for a dev cluster whose files sit side by side.
  const password = randomBytes(32).toString('base64url');
  await writeSecretFile(join(nodeDir, NODE_KEY_FILES.enclave.passwordFile), `${password}\n`);
  const enclaveKey = await createKeyFile(join(nodeDir, NODE_KEY_FILES.enclave.keyFile), password);
  return { peerId, minter, account, enclaveKey };
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
    await mkdir(nodeDir);
    const host = o.hosts[i - 1];
    const offset = sharedHost ? i - 1 : 0;
    const ports = { rpc: o.rpcPort + offset, p2p: o.p2pPort + offset, tm: o.tmPort + offset };

    const { peerId, minter, account, enclaveKey } = await createNodeKeys(nodeDir);

    const p2pAddr = multiaddrOf(host, ports.p2p);
    const rpcUrl = `http://${urlHost(host)}:${ports.rpc}/`;
    const tmUrl = `http://${urlHost(host)}:${ports.tm}/`;
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
    txSignatureCheck: 'minter-only',
  };
  const genesisPath = join(root, 'genesis.json');
  parseGenesis(genesis, genesisPath); // self-check: init never writes a file the node would refuse
  await writeFile(genesisPath, JSON.stringify(genesis, null, 2) + '\n');

  const peers = nodes.map((n) => ({
    raftId: n.raftId,
    nodeId: n.nodeId,
    peerId: n.peerId,
    p2pAddress: n.p2pAddress,
    rpcUrl: n.rpcUrl,
    tmUrl: n.tmUrl,
    enclavePublicKeys: [n.enclaveKey],
  }));
  for (const n of nodes) {
    const config = {
      nodeId: n.nodeId,
      raftId: n.raftId,
      dataDir: 'data',
      rpc: { host: n.host, port: n.ports.rpc },
      p2p: { host: n.host, port: n.ports.p2p },
      tm: { host: n.host, port: n.ports.tm },
      keys: NODE_KEY_FILES,
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
    await writeFile(configPath, JSON.stringify(config, null, 2) + '\n');
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

export function formatInitResult(r: InitResult): string {
  const table = formatTable(
    ['node', 'raftId', 'rpc', 'p2p', 'tx manager', 'account'],
    r.nodes.map((n) => [n.nodeId, String(n.raftId), n.rpcUrl, n.p2pAddress, n.tmUrl, n.account]),
  );
  return (
    `Wrote ${r.genesisPath} and ${r.nodes.length} node folder(s) under ${r.dir}\n\n` +
    table +
    `\nStart a node:  quorate start --config ${join(r.dir, 'node-1', 'config.json')}\n` +
    `Enclave passwords are in node-i/enclave.password (0600) for this local cluster; in production set ${ENCLAVE_PASSWORD_ENV} instead.\n`
  );
}

export async function initCommand(argv: readonly string[], io: CliIo): Promise<ExitCode> {
  const options = parseInitArgs(argv);
  if (options === 'help') {
    io.out(INIT_HELP);
    return ExitCode.Ok;
  }
  const result = await initCluster(options);
  io.out(formatInitResult(result));
  return ExitCode.Ok;
}
