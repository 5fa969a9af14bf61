// Loads a module the lead wires in later (node/process.ts and friends) without making the CLI
// depend on it at build time: until it lands, the command says "not available in this build"
// instead of crashing on a missing import.

import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { CommandError } from './args.js';

/**
 * Resolves `relative` (e.g. '../process.js') against this folder and returns its export `name`,
 * or throws CommandError "not available in this build" when the module or the export is absent.
 * A module that exists but fails to load is a real error and is rethrown as is.
 */
export async function loadEntryPoint<F>(relative: string, name: string, command: string): Promise<F> {
  const url = new URL(relative, import.meta.url);
  const jsPath = fileURLToPath(url);
  const tsPath = jsPath.replace(/\.js$/, '.ts');
  const notAvailable = (): CommandError =>
    new CommandError(
      `quorate ${command} is not available in this build (${name} in ${relative.replace(/^\.\.\//, 'node/')} is missing)`,
    );
  if (!existsSync(jsPath) && !existsSync(tsPath)) throw notAvailable();
  // A string variable, not a literal: the type checker must not require the module to exist.
  const specifier: string = url.href;
  const mod = (await import(specifier)) as Record<string, unknown>;
  const fn = mod[name];
  if (typeof fn !== 'function') throw notAvailable();
  return fn as F;
}
