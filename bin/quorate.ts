#!/usr/bin/env node
// The published `quorate` executable, compiled to dist/bin/quorate.js (package.json "bin"): plain
// compiled JavaScript, no TypeScript loader at run time. bin/quorate.js beside it is the
// development launcher that runs the TypeScript sources through tsx.
import { runCli } from '../node/cli/main.js';

await runCli();
