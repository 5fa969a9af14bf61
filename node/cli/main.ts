// The `quorate` command line. The published dist/bin/quorate.js (compiled) and the development
// launcher bin/quorate.js (through tsx) both import this file.
//
// Exit codes: 0 success, 1 the command failed (the message says why), 2 the command line is
// wrong (unknown command or flag, bad value). A bug (an exception that is not one of our typed
// errors) prints its stack and exits 1: programmer errors are never dressed up as usage errors.

import '../polyfills.js';
import { createRequire } from 'node:module';
import { ConfigError } from '../config.js';
import { NodeError } from '../errors.js';
import { CommandError, ExitCode, PROCESS_IO, UsageError, type CliIo } from './args.js';
import { addNodeCommand, ADD_NODE_HELP } from './add-node.js';
import { benchCommand, BENCH_HELP } from './bench.js';
import { initCommand, INIT_HELP } from './init.js';
import { jepsenCommand, JEPSEN_HELP } from './jepsen.js';
import { startCommand, START_HELP } from './start.js';
import { statusCommand, STATUS_HELP } from './status.js';
import { upCommand, UP_HELP } from './up.js';

type Command = (argv: readonly string[], io: CliIo) => Promise<ExitCode>;

const COMMANDS: ReadonlyMap<string, { run: Command; help: string; summary: string }> = new Map([
  [
    'init',
    { run: initCommand, help: INIT_HELP, summary: 'write a cluster folder: genesis, configs and keys of N nodes' },
  ],
  ['start', { run: startCommand, help: START_HELP, summary: 'run one node in the foreground' }],
  ['up', { run: upCommand, help: UP_HELP, summary: 'run a local cluster (init if needed, start all nodes)' }],
  [
    'add-node',
    {
      run: addNodeCommand,
      help: ADD_NODE_HELP,
      summary: 'prepare a new node to join a running cluster (start it with --join)',
    },
  ],
  [
    'status',
    { run: statusCommand, help: STATUS_HELP, summary: "print every member's role, term, commit index, head and peers" },
  ],
  [
    'bench',
    { run: benchCommand, help: BENCH_HELP, summary: 'load-test running nodes and print throughput and latency' },
  ],
  [
    'jepsen',
    { run: jepsenCommand, help: JEPSEN_HELP, summary: 'test a local cluster under faults and check the history' },
  ],
]);

export const MAIN_HELP = `Usage: quorate <command> [flags]

A Raft-based permissioned ledger node with private transactions.

Commands:
${[...COMMANDS].map(([name, c]) => `  ${name.padEnd(10)}${c.summary}`).join('\n')}

Run 'quorate <command> --help' for the flags of a command.
`;

function version(): string {
  // By the package's own name (its "exports" lists ./package.json), not a relative path: this file
  // runs from node/cli/ in the sources and from dist/node/cli/ in the build, at different depths.
  const pkg = createRequire(import.meta.url)('quorate/package.json') as { version?: string };
  return pkg.version ?? 'unknown';
}

/** Errors whose message is meant for the operator (exit 1, no stack trace). */
function isOperatingError(err: unknown): err is Error & { code?: unknown } {
  if (err instanceof CommandError || err instanceof ConfigError || err instanceof NodeError) return true;
  // Typed errors of the other folders (P2pError, ChainError, EnclaveError...) all carry a string
  // `code`; recognising them by shape keeps this file free of imports from every folder.
  return (
    err instanceof Error &&
    typeof (err as { code?: unknown }).code === 'string' &&
    /Error$/.test(err.name) &&
    err.name !== 'Error' &&
    err.name !== 'TypeError' &&
    err.name !== 'RangeError'
  );
}

export async function main(argv: readonly string[], io: CliIo = PROCESS_IO): Promise<ExitCode> {
  const [name, ...rest] = argv;
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    io.out(MAIN_HELP);
    return name === undefined ? ExitCode.Usage : ExitCode.Ok;
  }
  if (name === '--version' || name === '-v') {
    io.out(version());
    return ExitCode.Ok;
  }
  const command = COMMANDS.get(name);
  if (!command) {
    io.err(`quorate: unknown command "${name}"\n\n${MAIN_HELP}`);
    return ExitCode.Usage;
  }
  try {
    return await command.run(rest, io);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`quorate ${name}: ${err.message}\nRun 'quorate ${name} --help' for usage.`);
      return ExitCode.Usage;
    }
    if (isOperatingError(err)) {
      io.err(`quorate ${name}: ${err.message}`);
      return ExitCode.Failure;
    }
    io.err(
      `quorate ${name}: internal error (a bug; please report it with this trace):\n${err instanceof Error ? (err.stack ?? err.message) : String(err)}`,
    );
    return ExitCode.Failure;
  }
}

export async function runCli(): Promise<void> {
  process.exitCode = await main(process.argv.slice(2));
}
