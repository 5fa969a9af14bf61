// `quorate jepsen`: a Jepsen-style test of a local cluster under faults. The options belong to
// the Jepsen toolkit (node/jepsen/options.ts parses and validates them, so the command line and
// embedders agree on names and limits); this file adds --help, turns the toolkit's usage errors
// into exit code 2 (including a --time too short for the requested nemeses), and hands over to
// runJepsen() (node/jepsen/run.ts), whose exit code follows the run's verdict (PASS 0, FAIL 1,
// INCONCLUSIVE 3).

import {
  ALL_FAULTS,
  ALL_WORKLOADS,
  JepsenUsageError,
  MAX_RATE_HZ,
  VERDICT_EXIT_CODES,
  minimumRunTimeS,
  parseJepsenArgs,
  runJepsen,
  type JepsenOptions,
} from '../jepsen/index.js';
import { ExitCode, UsageError, exitCodeOf, type CliIo } from './args.js';

export type { JepsenOptions } from '../jepsen/index.js';

export const JEPSEN_HELP = `Usage: quorate jepsen [--nodes 3|5] [--time SECONDS] [--workload W,..] [--nemesis N,..]
                      [--rate R] [--seed S] [--out DIR] [--network auto|netns|proxy]

Starts a local cluster, runs client workloads against it while injecting faults, heals the
network, then checks the recorded history and writes a report.

  --nodes 3|5       cluster size (default 3)
  --time SECONDS    length of the run (default 60)
  --workload W,..   ${ALL_WORKLOADS.join(', ')}, or all (default all); also privacy (private puts, privacy checker)
  --nemesis N,..    ${ALL_FAULTS.join(', ')}, or all (default all)
  --rate R          client operations per second, all clients together (default 50, max ${MAX_RATE_HZ})
  --seed S          seed of every random choice; printed, so a run can be repeated
                    (default: random)
  --out DIR         where to write the history and the report (default jepsen-out/<time>)
  --network KIND    how partitions are made: network namespaces, a TCP proxy, or auto

Fault and quiet lengths shrink to fit --time, so every --nemesis kind is injected at least once;
a --time too short for that is refused (exit 2, the message says the minimum: ${minimumRunTimeS(ALL_FAULTS)} s for all).
Exit status: ${VERDICT_EXIT_CODES.PASS} PASS (every checker passed and every requested fault kind was injected),
${VERDICT_EXIT_CODES.FAIL} FAIL (a checker found a violation), 2 usage error, ${VERDICT_EXIT_CODES.INCONCLUSIVE} INCONCLUSIVE (nothing failed, but a checker
could not decide or a requested fault kind never took effect).
`;

export function parseJepsenCommand(argv: readonly string[], now: Date = new Date()): JepsenOptions | 'help' {
  if (argv.includes('--help') || argv.includes('-h')) return 'help';
  try {
    return parseJepsenArgs(argv, now);
  } catch (err) {
    if (err instanceof JepsenUsageError) throw new UsageError(err.message, 'jepsen');
    throw err;
  }
}

export async function jepsenCommand(argv: readonly string[], io: CliIo): Promise<ExitCode> {
  const options = parseJepsenCommand(argv);
  if (options === 'help') {
    io.out(JEPSEN_HELP);
    return ExitCode.Ok;
  }
  return exitCodeOf(await runJepsen(options, { out: (line) => io.out(`${line}\n`) }));
}
