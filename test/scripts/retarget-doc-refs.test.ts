// scripts/retarget-doc-refs.mjs on a scratch git repository: every form of reference to the old
// out-of-repository design documents is retargeted to docs/, Markdown gets working relative links,
// nothing else is touched, a second run changes nothing, and --check reports what is left.
// retarget-doc-refs: leave this file (its fixtures keep the old names on purpose).

import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';

const SCRIPT = fileURLToPath(new URL('../../scripts/retarget-doc-refs.mjs', import.meta.url));
const repo = mkdtempSync(join(tmpdir(), 'qrt-retarget-'));
afterAll(() => rmSync(repo, { recursive: true, force: true }));

const files: Record<string, string> = {
  'node/a.ts': [
    '// Errors, kept apart (STYLE.md §6); chained batches (STACK.md gotcha 8, `STACK.md`).',
    '// INTERFACE.md\'s table; CORRECTNESS.md scenario 18; CORRECTNESS.md, "Crash, then stuck on restart".',
    '// ../shared/ROADMAP.md and /work/shared/STYLE.md rule 5.',
    '// MY_STYLE.md and docs/STYLE.md are other files.',
    '',
  ].join('\n'),
  'README.md': [
    'The methods are those of `../shared/INTERFACE.md`:',
    'as in INTERFACE.md; see [the contract](../shared/INTERFACE.md#json-rpc) and [STACK.md](STACK.md).',
    'Run `grep STYLE.md src` to look.',
    '```',
    'cat ../shared/CORRECTNESS.md',
    '```',
    'The design docs are in /work/shared for now.',
    '',
  ].join('\n'),
  'node/jepsen/README.md': 'STACK.md gotcha 1, and `STYLE.md`.\n',
  'tool.py': '# STYLE.md stays: not a .ts/.js/.md file\n',
  'fixture.md': `STYLE.md is a fixture here (retarget-doc-refs: ${'leave'} this file).\n`,
};

function run(...args: string[]): { status: number | null; stdout: string } {
  const r = spawnSync(process.execPath, [SCRIPT, ...args], { cwd: repo, encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout + r.stderr };
}
const read = (f: string): string => readFileSync(join(repo, f), 'utf8');

describe('scripts/retarget-doc-refs.mjs', () => {
  execFileSync('git', ['init', '-q'], { cwd: repo });
  for (const [f, text] of Object.entries(files)) {
    mkdirSync(dirname(join(repo, f)), { recursive: true });
    writeFileSync(join(repo, f), text);
  }
  execFileSync('git', ['add', '.'], { cwd: repo });
  writeFileSync(join(repo, 'untracked.ts'), '// STYLE.md\n');

  it('--dry-run and --check write nothing; --check fails while old references remain', () => {
    expect(run('--dry-run').stdout).toContain('would rewrite 17 references in 3 files');
    expect(run('--check').status).toBe(1);
    expect(read('node/a.ts')).toBe(files['node/a.ts']);
  });

  it('rewrites code comments to repository paths, keeping section, gotcha and scenario numbers', () => {
    const r = run();
    expect(r.status).toBe(0);
    expect(r.stdout).toContain('rewrote 17 references in 3 files');
    expect(read('node/a.ts')).toBe(
      [
        '// Errors, kept apart (docs/design.md §6); chained batches (docs/stack.md gotcha 8, `docs/stack.md`).',
        '// docs/interface.md\'s table; docs/correctness.md scenario 18; docs/correctness.md, "Crash, then stuck on restart".',
        '// docs/roadmap.md and docs/design.md rule 5.',
        '// MY_STYLE.md and docs/STYLE.md are other files.',
        '',
      ].join('\n'),
    );
  });

  it('makes Markdown links relative to each file, and leaves fenced code and longer code spans as plain paths', () => {
    expect(read('README.md')).toBe(
      [
        'The methods are those of [docs/interface.md](docs/interface.md):',
        'as in [docs/interface.md](docs/interface.md); see [the contract](docs/interface.md#json-rpc) and [docs/stack.md](docs/stack.md).',
        'Run `grep docs/design.md src` to look.',
        '```',
        'cat docs/correctness.md',
        '```',
        'The design docs are in /work/shared for now.',
        '',
      ].join('\n'),
    );
    expect(read('node/jepsen/README.md')).toBe(
      '[docs/stack.md](../../docs/stack.md) gotcha 1, and [docs/design.md](../../docs/design.md).\n',
    );
    expect(read('tool.py')).toBe(files['tool.py']);
    expect(read('fixture.md')).toBe(files['fixture.md']);
    expect(read('untracked.ts')).toBe('// STYLE.md\n');
  });

  it('lists a shared/ folder named without a document for a person, and a second run changes nothing', () => {
    const again = run();
    expect(again.stdout).toContain('rewrote 0 references in 0 files');
    expect(again.stdout).toContain('README.md:7: The design docs are in /work/shared for now.');
    writeFileSync(join(repo, 'README.md'), read('README.md').replace(' in /work/shared for now', ' under docs/'));
    expect(run('--check').status).toBe(0);
  });
});
