// `quorate up`: the one-command local cluster. This file parses the command line; runUp() from
// node/up.ts does the work (init when DIR is absent, start the nodes as child processes, wait
// for a leader, print the table, follow role changes, stop everything on Ctrl-C).

import { resolve } from 'node:path';
import { MAX_MEMBERS } from '../config.js';
import { ExitCode, exitCodeOf, intFlag, parseFlags, stringFlag, type CliIo } from './args.js';
import { runUp } from '../up.js';

export const UP_HELP = `Usage: quorate up [--nodes N] [--dir DIR] [--fresh]

Starts a local cluster: runs quorate init when DIR is absent, starts every node as a child
process, waits for a leader, prints a table (node, role, RPC URL, p2p address, tx manager
URL), then keeps running and prints role and membership changes. Ctrl-C stops all nodes.

  --nodes N   number of nodes (default 3)
  --dir DIR   the cluster folder (default .quorate)
  --fresh     delete DIR first and start from a new genesis
`;

export interface UpOptions {
  readonly nodes: number;
  /** Absolute path. */
  readonly dir: string;
  readonly fresh: boolean;
}

/** Provided by node/up.ts. Resolves once every node has stopped, with the exit code (a number) or nothing for 0. */
export type RunUp = (options: UpOptions) => Promise<unknown>;

export function parseUpArgs(argv: readonly string[]): UpOptions | 'help' {
  const { help, values } = parseFlags('up', argv, {
    nodes: { type: 'string' },
    dir: { type: 'string' },
    fresh: { type: 'boolean' },
  });
  if (help) return 'help';
  return {
    nodes: intFlag('up', values, 'nodes', 3, 1, MAX_MEMBERS),
    dir: resolve(stringFlag(values, 'dir') ?? '.quorate'),
    fresh: values.fresh === true,
  };
}

export async function upCommand(argv: readonly string[], io: CliIo): Promise<ExitCode> {
  const options = parseUpArgs(argv);
  if (options === 'help') {
    io.out(UP_HELP);
    return ExitCode.Ok;
  }
  return exitCodeOf(await runUp(options));
}
