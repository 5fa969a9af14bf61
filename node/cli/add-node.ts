// `quorate add-node`: prepares a folder for a node that will join a running cluster.

import { readFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { addNode } from '../join.js';
import { KEY_PASSWORD_ENV, type KeyProtection } from '../keys.js';
import { ExitCode, UsageError, intFlag, parseFlags, stringFlag, type CliIo } from './args.js';
import { deploymentPassword, keysNote } from './init.js';

export const ADD_NODE_HELP = `Usage: quorate add-node --dir DIR [--rpc URL] [--host H] [--rpc-port P] [--p2p-port P] [--tm-port P]
                        [--password-file F] [--kdf dev|production]

Creates DIR/node-K (the next free K) with fresh keys and a config whose peers are the
cluster's current members (asked at --rpc, default node-1's RPC URL). Then:

  quorate start --config DIR/node-K/config.json --join      (waits to be added)
  raft_addPeer("<its p2p address>")  or  raft_addLearner(...) on any member

The cluster assigns the new raft id when the change commits; ids are never reused.

  --dir DIR        the cluster folder written by quorate init
  --rpc URL        a member's JSON-RPC URL
  --host H         the host the new node binds (default: the host of node-1)
  --rpc-port P, --p2p-port P, --tm-port P
                   its ports (default: node-1's ports + K - 1); the tx manager binds 127.0.0.1
  --password-file F  the new node's password (else $${KEY_PASSWORD_ENV}); needed when node-1
                   has no keys.passwordFile (a deployment made with init --hosts)
  --kdf K          scrypt cost of its sealed keys (default: "dev" for a dev cluster, else "production")

Like init, a dev cluster's new node gets a random password in node-K/node.password; a
deployment's new node gets its keys sealed under the password given, and none is written.
`;

export async function addNodeCommand(argv: readonly string[], io: CliIo): Promise<ExitCode> {
  const { help, values } = parseFlags('add-node', argv, {
    dir: { type: 'string' },
    rpc: { type: 'string' },
    host: { type: 'string' },
    'rpc-port': { type: 'string' },
    'p2p-port': { type: 'string' },
    'tm-port': { type: 'string' },
    'password-file': { type: 'string' },
    kdf: { type: 'string' },
  });
  if (help) {
    io.out(ADD_NODE_HELP);
    return ExitCode.Ok;
  }
  const dir = resolve(stringFlag(values, 'dir') ?? '.quorate');
  const port = (name: string): number | undefined =>
    values[name] === undefined ? undefined : intFlag('add-node', values, name, 0, 1, 65_535);
  // node-1's config says which kind of cluster this is: a dev cluster names its password file.
  let devCluster = false;
  try {
    const template = JSON.parse(readFileSync(join(dir, 'node-1', 'config.json'), 'utf8')) as {
      keys?: { passwordFile?: unknown; enclave?: { passwordFile?: unknown } };
    };
    devCluster = template.keys?.passwordFile !== undefined || template.keys?.enclave?.passwordFile !== undefined;
  } catch {
    // addNode reads the same file and reports it missing or malformed.
  }
  const kdf = stringFlag(values, 'kdf');
  if (kdf !== undefined && kdf !== 'dev' && kdf !== 'production')
    throw new UsageError(`--kdf must be "dev" or "production", got "${kdf}"`, 'add-node');
  const passwordFile = stringFlag(values, 'password-file');
  const password = devCluster && passwordFile === undefined ? undefined : deploymentPassword(passwordFile, 'add-node');
  const keyProtection: KeyProtection = kdf ?? (password === undefined ? 'dev' : 'production');
  const r = await addNode({
    password,
    keyProtection,
    dir,
    rpcUrl: stringFlag(values, 'rpc'),
    host: stringFlag(values, 'host'),
    rpcPort: port('rpc-port'),
    p2pPort: port('p2p-port'),
    tmPort: port('tm-port'),
  });
  io.out(`created ${r.name}
  config:      ${r.configPath}
  p2p address: ${r.p2pAddress}
  rpc:         ${r.rpcUrl}
  tx manager:  ${r.tmUrl}
${keysNote({ password, keyProtection })}
Start it:    quorate start --config ${r.configPath} --join
Then add it: curl -s -X POST -H 'content-type: application/json' \\
  -d '{"jsonrpc":"2.0","id":1,"method":"raft_addPeer","params":["${r.p2pAddress}"]}' <a member's RPC URL>`);
  return ExitCode.Ok;
}
