// Runs `quorate jepsen` against a test-only broken node variant from the command line, to look at a
// failing run by hand (the report, the history):
//   node --import tsx test/jepsen/broken-run.ts KIND [quorate jepsen arguments...]
// KIND is one of BROKEN_KINDS (broken-node.ts). Lives under test/: no normal run can reach it.

import { fileURLToPath } from 'node:url';
import { parseJepsenArgs } from '../../node/jepsen/options.js';
import { runJepsenDetailed } from '../../node/jepsen/run.js';
import { BROKEN_KINDS, type BrokenKind } from './broken-node.js';

const ENTRY = fileURLToPath(new URL('./broken-node.ts', import.meta.url));

async function main(): Promise<void> {
  const [kind, ...args] = process.argv.slice(2);
  if (!BROKEN_KINDS.includes(kind as BrokenKind)) {
    process.stderr.write(`usage: broken-run.ts ${BROKEN_KINDS.join('|')} [quorate jepsen arguments]\n`);
    process.exit(2);
  }
  const r = await runJepsenDetailed(parseJepsenArgs(args), {
    nodeCommand: (config, joining) => [
      process.execPath,
      '--import',
      'tsx',
      ENTRY,
      '--broken',
      kind,
      '--config',
      config,
      ...(joining ? ['--join'] : []),
    ],
    faultDurationMs: [4_000, 6_000],
    quietMs: [1_000, 2_000],
  });
  process.exit(r.exitCode);
}

void main();
