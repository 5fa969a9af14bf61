// node/process-guards.ts in a real child process: an unhandled rejection or an uncaught exception
// is logged at error with its stack and counted, the node's stop runs once, and the process exits
// with status 1 — also when the stop hangs (the deadline ends it).

import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const CHILD = fileURLToPath(new URL('./process-guards-child.ts', import.meta.url));

function run(mode: string): { status: number | null; lines: Array<Record<string, unknown>>; ms: number } {
  const started = performance.now();
  const r = spawnSync(process.execPath, ['--import', 'tsx', CHILD, mode], { encoding: 'utf8', timeout: 30_000 });
  const lines = r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, unknown>);
  return { status: r.status, lines, ms: performance.now() - started };
}

describe('installProcessGuards', () => {
  it('an unhandled rejection: logged at error with its stack, counted, clean stop, exit 1', () => {
    const { status, lines } = run('rejection');
    expect(status).toBe(1);
    const logged = lines.find((l) => l.level === 'error' && l.kind === 'unhandledRejection');
    expect(logged).toBeDefined();
    expect(String((logged!.err as { stack: string }).stack)).toContain('boom: nobody listens');
    expect(lines.find((l) => l.stopped)?.faults).toEqual({ unhandledRejections: 1, uncaughtExceptions: 0 });
    expect(lines.some((l) => l.stillAlive)).toBe(false);
  });

  it('an uncaught exception: logged, counted, clean stop, exit 1', () => {
    const { status, lines } = run('exception');
    expect(status).toBe(1);
    const logged = lines.find((l) => l.level === 'error' && l.kind === 'uncaughtException');
    expect(String((logged!.err as { stack: string }).stack)).toContain('boom: escaped a timer');
    expect(lines.find((l) => l.stopped)?.faults).toEqual({ unhandledRejections: 0, uncaughtExceptions: 1 });
  });

  it('a stop that hangs is abandoned at its deadline: exit 1 anyway', () => {
    const { status, lines } = run('hanging-stop');
    expect(status).toBe(1);
    expect(lines.some((l) => l.stopping)).toBe(true);
    expect(lines.some((l) => l.stillAlive)).toBe(false);
  });

  it('no fault: nothing counted, and the process ends normally', () => {
    const { status, lines } = run('clean');
    expect(status).toBe(0);
    expect(lines.find((l) => l.clean)?.faults).toEqual({ unhandledRejections: 0, uncaughtExceptions: 0 });
    expect(lines.some((l) => l.level === 'error')).toBe(false);
  });
});
