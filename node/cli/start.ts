// `quorate start`: runs one node in the foreground. This file parses and validates the command
// line and the config file (so a wrong field is reported before anything starts), then hands
// over to runNode() from node/process.ts, which owns the node's lifecycle and signals.

import { resolve } from 'node:path';
import { loadConfig, type NodeConfig } from '../config.js';
import { ExitCode, exitCodeOf, parseFlags, requiredString, type CliIo } from './args.js';
import { runNode } from '../process.js';

export const START_HELP = `Usage: quorate start --config DIR/node-i/config.json [--join]

Runs one node (Raft peer, chain, p2p, JSON-RPC, transaction manager, enclave) in the
foreground, logging one JSON object per line. SIGINT/SIGTERM stop it cleanly.

  --config FILE   the node's config.json (written by quorate init)
  --join          the node is not in the genesis membership: start it and wait to be
                  added with raft_addPeer / raft_addLearner on a member
`;

export interface StartOptions {
  /** Absolute path of the config file. */
  readonly configPath: string;
  readonly config: NodeConfig;
  readonly join: boolean;
}

/** Provided by node/process.ts. Resolves once the node has stopped, with the exit code (a number) or nothing for 0. */
export type RunNode = (options: StartOptions) => Promise<unknown>;

export async function parseStartArgs(argv: readonly string[]): Promise<StartOptions | 'help'> {
  const { help, values } = parseFlags('start', argv, { config: { type: 'string' }, join: { type: 'boolean' } });
  if (help) return 'help';
  const configPath = resolve(requiredString('start', values, 'config'));
  return { configPath, config: await loadConfig(configPath), join: values.join === true };
}

export async function startCommand(argv: readonly string[], io: CliIo): Promise<ExitCode> {
  const options = await parseStartArgs(argv);
  if (options === 'help') {
    io.out(START_HELP);
    return ExitCode.Ok;
  }
  return exitCodeOf(await runNode(options));
}
