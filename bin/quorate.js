#!/usr/bin/env node
// The DEVELOPMENT launcher of `quorate`: runs the TypeScript sources through tsx's loader, so a
// checkout needs no build step (`node bin/quorate.js ...`, `npm run jepsen`), and so the tests,
// which spawn this file, always run the sources they were given, never a stale build.
//
// Not published. The package's "bin" is dist/bin/quorate.js, compiled from bin/quorate.ts, which
// needs no loader. Code that spawns the CLI finds it by the relative path '../bin/quorate.js':
// from node/ (sources) that is this file, from dist/node/ (build) the compiled one.
import { register } from 'tsx/esm/api';

register();
const { runCli } = await import('../node/cli/main.ts');
await runCli();
