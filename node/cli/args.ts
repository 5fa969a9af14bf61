// Argument parsing for the CLI on node:util's parseArgs (built in, strict), with typed usage
// errors (exit code 2) that name the flag and what it expects.

import { parseArgs, type ParseArgsConfig } from 'node:util';

/** Process exit codes of the CLI. */
export enum ExitCode {
  Ok = 0,
  /** The command ran and failed (unreachable node, refused overwrite, bad config file...). */
  Failure = 1,
  /** The command line itself is wrong: unknown command or flag, bad value. */
  Usage = 2,
}

/** The exit code a lead-provided entry point resolved with (a number), or 0 when it resolved with nothing else. */
export function exitCodeOf(result: unknown): ExitCode {
  return typeof result === 'number' && Number.isInteger(result) && result >= 0 && result <= 255
    ? (result as ExitCode)
    : ExitCode.Ok;
}

/** A wrong command line. Printed with a hint to --help; exit code 2. */
export class UsageError extends Error {
  constructor(
    message: string,
    /** The command whose --help to point at ('' for the top level). */
    readonly command: string,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

/** A command that ran and failed; exit code 1. The message is for the operator. */
export class CommandError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'CommandError';
  }
}

/** Output sinks, so commands can be run in-process and their output checked. */
export interface CliIo {
  readonly out: (text: string) => void;
  readonly err: (text: string) => void;
}

export const PROCESS_IO: CliIo = {
  out: (text) => process.stdout.write(text.endsWith('\n') ? text : `${text}\n`),
  err: (text) => process.stderr.write(text.endsWith('\n') ? text : `${text}\n`),
};

export type Options = NonNullable<ParseArgsConfig['options']>;

/**
 * Parses `argv` (the arguments after the command name) strictly: unknown flags, missing values
 * and stray positionals are UsageErrors. `--help`/`-h` is added to every command.
 */
export function parseFlags<O extends Options>(
  command: string,
  argv: readonly string[],
  options: O,
): { help: boolean; values: Record<string, string | boolean | undefined> } {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      options: { ...options, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    });
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    // node:util's messages are good ("Unknown option '--foo'") but long; keep their first sentence.
    const message = e.message.split('. ')[0].replace(/\.$/, '');
    throw new UsageError(message, command);
  }
  const values = parsed.values as Record<string, string | boolean | undefined>;
  return { help: values.help === true, values };
}

export function intFlag(
  command: string,
  values: Record<string, unknown>,
  name: string,
  fallback: number,
  min: number,
  max: number,
): number {
  const raw = values[name];
  if (raw === undefined) return fallback;
  const text = String(raw);
  if (!/^-?[0-9]+$/.test(text)) throw new UsageError(`--${name} must be an integer, got "${text}"`, command);
  const n = Number(text);
  if (!Number.isSafeInteger(n) || n < min || n > max)
    throw new UsageError(`--${name} must be between ${min} and ${max}, got ${text}`, command);
  return n;
}

export function stringFlag(values: Record<string, unknown>, name: string): string | undefined {
  const v = values[name];
  return typeof v === 'string' ? v : undefined;
}

export function requiredString(command: string, values: Record<string, unknown>, name: string): string {
  const v = stringFlag(values, name);
  if (v === undefined || v.length === 0) throw new UsageError(`--${name} is required`, command);
  return v;
}

export function urlFlag(command: string, value: string, name: string): string {
  let u: URL;
  try {
    u = new URL(value);
  } catch {
    throw new UsageError(`--${name} must be an http(s) URL, got "${value}"`, command);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:')
    throw new UsageError(`--${name} must be an http(s) URL, got "${value}"`, command);
  return u.toString();
}
