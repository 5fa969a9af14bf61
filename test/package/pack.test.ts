// The package as a user gets it: `npm pack` (which builds dist/ through the "prepare" script),
// `npm install <tarball>` into a fresh temporary project, a type check of an embedder against the
// published .d.ts with this repository's TypeScript, a run of the compiled embedder (a 3-node
// cluster through the public API), and `npx quorate` from there. It proves what a clone's tests
// cannot: that the tarball holds everything the exports map, the types and the bin point at,
// and that the bin runs with no TypeScript loader installed.
//
// Slow-ish (a build and an npm install, from npm's cache when it is warm): well under 2 minutes.

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { copyFile, mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePortBlock } from '../../bench/etcd-vs.js';

const REPO = resolve(fileURLToPath(new URL('../..', import.meta.url)));
const FIXTURE = join(REPO, 'test', 'package', 'fixture');
const TSC = join(REPO, 'node_modules', 'typescript', 'bin', 'tsc');

/** Limits of each step (a loaded 2-core machine; npm install is the slowest). */
const PACK_TIMEOUT_MS = 120_000;
const INSTALL_TIMEOUT_MS = 120_000;
const TSC_TIMEOUT_MS = 90_000;
const EMBEDDER_TIMEOUT_MS = 60_000;
const CLI_TIMEOUT_MS = 30_000;

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

/**
 * The environment of the user's commands. Under `npm test` this process inherits npm's own
 * variables, and one of them, npm_config_local_prefix, would make `npm install` in the temporary
 * project install into THIS repository. Only the settings that describe the machine (cache,
 * config files, registry, CA) are kept. NODE_OPTIONS is cleared so vitest's hooks do not leak.
 */
const KEPT_NPM_SETTINGS = new Set([
  'npm_config_cache',
  'npm_config_userconfig',
  'npm_config_globalconfig',
  'npm_config_registry',
  'npm_config_cafile',
]);
const USER_ENV: NodeJS.ProcessEnv = {
  ...Object.fromEntries(
    Object.entries(process.env).filter(([k]) => !/^npm_/i.test(k) || KEPT_NPM_SETTINGS.has(k.toLowerCase())),
  ),
  NODE_OPTIONS: '',
};

/** Runs a command to its end; a non-zero exit is returned, not thrown, so tests can assert on it. */
function run(command: string, args: readonly string[], cwd: string, timeoutMs: number): Promise<Run> {
  return new Promise((resolveRun) => {
    execFile(
      command,
      args,
      { cwd, env: USER_ENV, timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 },
      (err, stdout, stderr) => {
        const code = err ? (typeof err.code === 'number' ? err.code : -1) : 0;
        resolveRun({ code, stdout, stderr });
      },
    );
  });
}

function ok(r: Run, what: string): Run {
  if (r.code !== 0) throw new Error(`${what} exited ${r.code}\n${r.stdout}\n${r.stderr}`);
  return r;
}

let work: string;
let project: string;
let tarball: string;

beforeAll(async () => {
  work = await mkdtemp(join(tmpdir(), 'quorate-pack-'));
  project = join(work, 'embedder-project');
  await mkdir(project);

  // `npm pack` runs "prepare", i.e. the (incremental) build: the tarball holds today's sources.
  const packed = ok(
    await run('npm', ['pack', '--json', '--pack-destination', work], REPO, PACK_TIMEOUT_MS),
    'npm pack',
  );
  const [info] = JSON.parse(packed.stdout.slice(packed.stdout.indexOf('['))) as Array<{ filename: string }>;
  tarball = join(work, info.filename);

  // The project a user starts from: ESM, its own tsconfig (what `tsc --init` plus nodenext gives).
  await writeFile(
    join(project, 'package.json'),
    JSON.stringify({ name: 'embedder-project', private: true, type: 'module' }, null, 2),
  );
  await writeFile(
    join(project, 'tsconfig.json'),
    JSON.stringify(
      {
        compilerOptions: {
          target: 'es2023',
          module: 'nodenext',
          moduleResolution: 'nodenext',
          strict: true,
          // libp2p's own typings need it (yamux mixes two uint8arraylist versions); quorate's do not.
          skipLibCheck: true,
          types: ['node'],
          outDir: 'build',
        },
        include: ['src'],
      },
      null,
      2,
    ),
  );
  await mkdir(join(project, 'src'));
  for (const file of ['embedder.ts', 'wrong-types.ts']) await copyFile(join(FIXTURE, file), join(project, 'src', file));

  // The same @types/node as this repository's, so npm finds it in its cache.
  const typesNode = JSON.parse(
    await readFile(join(REPO, 'node_modules', '@types', 'node', 'package.json'), 'utf8'),
  ) as {
    version: string;
  };
  ok(
    await run(
      'npm',
      ['install', tarball, `@types/node@${typesNode.version}`, '--prefer-offline', '--no-audit', '--no-fund'],
      project,
      INSTALL_TIMEOUT_MS,
    ),
    'npm install <tarball>',
  );
}, PACK_TIMEOUT_MS + INSTALL_TIMEOUT_MS);

afterAll(async () => {
  if (work) await rm(work, { recursive: true, force: true });
});

describe('the packed tarball installed into a fresh project', () => {
  it('holds the compiled build, its types and the bin, and none of the TypeScript sources', async () => {
    const installed = join(project, 'node_modules', 'quorate');
    const manifest = JSON.parse(await readFile(join(installed, 'package.json'), 'utf8')) as {
      exports: Record<string, string | { types: string; default: string }>;
      bin: Record<string, string>;
    };
    for (const [subpath, target] of Object.entries(manifest.exports)) {
      if (typeof target === 'string') expect(existsSync(join(installed, target)), subpath).toBe(true);
      else {
        expect(existsSync(join(installed, target.types)), `${subpath} types`).toBe(true);
        expect(existsSync(join(installed, target.default)), `${subpath} code`).toBe(true);
      }
    }
    expect(existsSync(join(installed, manifest.bin.quorate))).toBe(true);
    expect(existsSync(join(installed, 'node', 'node.ts'))).toBe(false);
    expect(existsSync(join(installed, 'dist', '.tsbuildinfo'))).toBe(false);
    // tsx is a development dependency only: a user's install has no TypeScript loader to lean on.
    expect(existsSync(join(project, 'node_modules', 'tsx'))).toBe(false);
  });

  it(
    'type-checks an embedder against the published types, and refuses code those types forbid',
    async () => {
      const r = await run(process.execPath, [TSC, '-p', 'tsconfig.json'], project, TSC_TIMEOUT_MS);
      const errors = r.stdout.split('\n').filter((line) => /error TS\d+/.test(line));
      // Every error is in the negative file, one per wrong line; the embedder has none.
      expect(
        errors.filter((line) => !line.startsWith('src/wrong-types.ts')),
        r.stdout,
      ).toEqual([]);
      expect(errors.map((line) => /error (TS\d+)/.exec(line)![1]).sort()).toEqual(['TS2322', 'TS2345', 'TS2345']);
      expect(r.code).not.toBe(0);
      // tsc still emitted JavaScript (noEmitOnError is off): the next test runs the embedder's.
      expect(existsSync(join(project, 'build', 'embedder.js'))).toBe(true);
    },
    TSC_TIMEOUT_MS,
  );

  it(
    'runs the compiled embedder: startNode x3, a transaction committed on every node, iterated, read back, aborted',
    async () => {
      // A free block of 9 ports (3 nodes x rpc, p2p, tm), below the ephemeral range (bench/lifecycle.ts).
      const basePort = await freePortBlock(9);
      const r = ok(
        await run(
          process.execPath,
          ['build/embedder.js', join(work, 'cluster'), String(basePort)],
          project,
          EMBEDDER_TIMEOUT_MS,
        ),
        'the embedder',
      );
      const line = r.stdout.split('\n').find((l) => l.startsWith('embedder-result '));
      expect(line, r.stdout).toBeDefined();
      const seen = JSON.parse(line!.slice('embedder-result '.length)) as {
        txHash: string;
        status: number;
        committedOn: string[];
        blockOfTx: number | null;
        read: string | null;
        value: string | null;
        refusal: string;
        head: number;
      };
      expect(seen.txHash).toMatch(/^0x[0-9a-f]{64}$/);
      expect(seen.status).toBe(1);
      expect(seen.committedOn).toEqual(['1', '2', '3']);
      expect(seen.blockOfTx).toBeGreaterThanOrEqual(1);
      expect(seen.read).toBe('hello from an embedder');
      expect(seen.value).toBe('hello from an embedder');
      expect(seen.refusal).toBe('TX_UNKNOWN_ACCOUNT');
      expect(seen.head).toBeGreaterThanOrEqual(1);
    },
    EMBEDDER_TIMEOUT_MS,
  );

  it(
    'runs `npx quorate` from the project: help and version through the compiled bin',
    async () => {
      const [help, version] = await Promise.all([
        run('npx', ['--no-install', 'quorate', '--help'], project, CLI_TIMEOUT_MS),
        run('npx', ['--no-install', 'quorate', '--version'], project, CLI_TIMEOUT_MS),
      ]);
      ok(help, 'npx quorate --help');
      for (const c of ['init', 'start', 'up', 'status', 'bench', 'jepsen'])
        expect(help.stdout).toMatch(new RegExp(`^  ${c} `, 'm'));
      const ours = JSON.parse(await readFile(join(REPO, 'package.json'), 'utf8')) as { version: string };
      expect(ok(version, 'npx quorate --version').stdout.trim()).toBe(ours.version);
    },
    CLI_TIMEOUT_MS,
  );
});
