#!/usr/bin/env node
// The `quorate` executable. Plain JavaScript, because Node cannot import TypeScript by itself:
// it registers tsx's ESM loader, then imports the CLI written in TypeScript.
import { register } from 'tsx/esm/api';

register();
const { runCli } = await import('../node/cli/main.ts');
await runCli();
