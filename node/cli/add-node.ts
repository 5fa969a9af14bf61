// `quorate add-node`: prepares a folder for a node that will join a running cluster.

import { resolve } from 'node:path';
import { addNode } from '../join.js';
import { ExitCode, intFlag, parseFlags, stringFlag, type CliIo } from './args.js';

export const ADD_NODE_HELP = `Usage: quorate add-node --dir DIR [--rpc URL] [--host H] [--rpc-port P] [--p2p-port P] [--tm-port P]

Creates DIR/node-K (the next free K) with fresh keys and a config whose peers are the
cluster's current members (asked at --rpc, default node-1's RPC URL). Then:

  quorate start --config DIR/node-K/config.json --join      (waits to be added)
  raft_addPeer("<its p2p address>")  or  raft_addLearner(...) on any member

The cluster assigns the new raft id when the change commits; ids are never reused.

  --dir DIR        the cluster folder written by quorate init
  --rpc URL        a member's JSON-RPC URL
  --host H         the host the new node binds (default: the host of node-1)
  --rpc-port P, --p2p-port P, --tm-port P
                   its ports (default: node-1's ports + K - 1)
`;

export async function addNodeCommand(argv: readonly string[], io: CliIo): Promise<ExitCode> {
  const { help, values } = parseFlags('add-node', argv, {
    dir: { type: 'string' },
    rpc: { type: 'string' },
    host: { type: 'string' },
    'rpc-port': { type: 'string' },
    'p2p-port': { type: 'string' },
    'tm-port': { type: 'string' },
  });
  if (help) {
    io.out(ADD_NODE_HELP);
    return ExitCode.Ok;
  }
  const dir = resolve(stringFlag(values, 'dir') ?? '.quorate');
  const port = (name: string): number | undefined =>
    values[name] === undefined ? undefined : intFlag('add-node', values, name, 0, 1, 65_535);
  const r = await addNode({
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

Start it:    quorate start --config ${r.configPath} --join
Then add it: curl -s -X POST -H 'content-type: application/json' \\
  -d '{"jsonrpc":"2.0","id":1,"method":"raft_addPeer","params":["${r.p2pAddress}"]}' <a member's RPC URL>`);
  return ExitCode.Ok;
}
