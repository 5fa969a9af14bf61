#!/usr/bin/env node
// Rewrites references to the design documents that used to live outside the repository
// (STYLE.md, INTERFACE.md, CORRECTNESS.md, STACK.md, ROADMAP.md, in a sibling `shared/` folder) so
// they point at the repository's own documents under docs/, which a reader of a clone can open.
//
//   node scripts/retarget-doc-refs.mjs             rewrite every tracked .ts/.js/.mjs/.md file in place
//   node scripts/retarget-doc-refs.mjs --dry-run   print what would change, write nothing
//   node scripts/retarget-doc-refs.mjs --check     write nothing; exit 1 if any old reference is left
//
// Forms handled (each with or without a `../shared/`, `../../shared/`, `shared/` or `/work/shared/` prefix):
//   in code and comments:  "STYLE.md §6", "(STACK.md gotcha 3)", "INTERFACE.md's", "`STACK.md`"
//                          → the same text with docs/design.md etc. (sections and scenarios keep their
//                          numbers: the docs keep STYLE.md's rule numbers, STACK.md's gotcha numbers and
//                          CORRECTNESS.md's scenario numbers);
//   in Markdown:           a bare or backticked name becomes a link relative to the file
//                          ("[docs/interface.md](docs/interface.md)", or "../../docs/..." deeper down); a
//                          link target is retargeted; inside fenced code or a longer code span the plain
//                          path is written.
// A file that contains the marker "retarget-doc-refs: leave this file" (this script's own test, whose
// fixtures must keep the old names) is skipped.
// Idempotent: the rewritten text no longer contains the old names. Mentions of a `shared/` folder
// that name no document are not guessed at: they are listed at the end for a person to fix.

import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { posix, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** Old document name → the repository's own document (a path from the repository root). */
export const DOC_MAP = Object.freeze({
  'STYLE.md': 'docs/design.md',
  'INTERFACE.md': 'docs/interface.md',
  'CORRECTNESS.md': 'docs/correctness.md',
  'STACK.md': 'docs/stack.md',
  'ROADMAP.md': 'docs/roadmap.md',
});

/** A file containing this text is left alone (its old names are fixtures, not references). */
export const SKIP_MARKER = 'retarget-doc-refs: ' + 'leave this file';

/** File name endings the script rewrites (tracked files only). */
export const EXTENSIONS = Object.freeze(['.ts', '.mts', '.cts', '.js', '.mjs', '.cjs', '.md']);

const NAMES = Object.keys(DOC_MAP)
  .map((n) => n.replace('.md', ''))
  .join('|');
// An optional prefix naming the old folder, then the document's name. The look-behind keeps
// "MY_STYLE.md" or "docs/STYLE.md" from matching.
const PREFIX = String.raw`(?:\/work\/shared\/|(?:\.\.\/)+shared\/|\.\/shared\/|shared\/)?`;
const REF = String.raw`(?<![\w./-])${PREFIX}(?:${NAMES})\.md`;
const refRe = () => new RegExp(REF, 'g');
const backtickedRe = () => new RegExp('`(' + REF + ')`', 'g');
/** A `shared/` folder mentioned without a document: reported, not rewritten. */
const SHARED_FOLDER = String.raw`(?:\/work\/shared\b|(?:\.\.\/)+shared\/|(?<![\w-])shared\/(?=\s|$|[\`'")]))`;

function targetOf(ref) {
  const name = ref.slice(ref.lastIndexOf('/') + 1);
  const target = DOC_MAP[name];
  if (target === undefined) throw new Error(`no target for ${ref}`);
  return target;
}

/** The link from a Markdown file at `file` (repository-relative) to `target`. */
function linkPath(file, target) {
  const rel = posix.relative(posix.dirname(file), target);
  return rel === '' ? target : rel;
}

/** True when `offset` in `line` is inside an inline code span (an odd number of backticks before it). */
function inCodeSpan(line, offset) {
  let ticks = 0;
  for (let i = 0; i < offset; i++) if (line[i] === '`') ticks++;
  return ticks % 2 === 1;
}

function retargetMarkdownLine(line, file) {
  let count = 0;
  // 1. A code span that is exactly a reference becomes a link.
  let out = line.replace(backtickedRe(), (_m, ref) => {
    count++;
    const target = targetOf(ref);
    return `[${target}](${linkPath(file, target)})`;
  });
  // 2. Every other reference, by context.
  out = out.replace(refRe(), (ref, offset, whole) => {
    count++;
    const target = targetOf(ref);
    const before = whole.slice(0, offset);
    const after = whole.slice(offset + ref.length);
    if (before.endsWith('](')) return linkPath(file, target); // a link's target (an #anchor after it stays)
    if (inCodeSpan(whole, offset)) return target;
    if (before.endsWith('[') && after.startsWith(']')) return target; // a link's text
    return `[${target}](${linkPath(file, target)})`;
  });
  return { line: out, count };
}

/**
 * Rewrites the references in one file's text. `file` is the path from the repository root (it
 * decides Markdown or not, and the relative links). Returns the new text and how many were rewritten.
 */
export function retargetText(text, file) {
  if (!file.endsWith('.md')) {
    let count = 0;
    const out = text.replace(refRe(), (ref) => {
      count++;
      return targetOf(ref);
    });
    return { text: out, count };
  }
  let count = 0;
  let fenced = false;
  const lines = text.split('\n').map((line) => {
    if (/^\s*(```|~~~)/.test(line)) {
      fenced = !fenced;
      return line;
    }
    if (fenced) {
      return line.replace(refRe(), (ref) => {
        count++;
        return targetOf(ref);
      });
    }
    const r = retargetMarkdownLine(line, file);
    count += r.count;
    return r.line;
  });
  return { text: lines.join('\n'), count };
}

/** Lines that still mention a `shared/` folder or an old document name (after any rewrite). */
export function leftovers(text) {
  const old = new RegExp(`${REF}|${SHARED_FOLDER}`);
  const found = [];
  text.split('\n').forEach((line, i) => {
    if (old.test(line)) found.push({ lineNumber: i + 1, line: line.trim() });
  });
  return found;
}

function trackedFiles(root) {
  const self = relative(root, fileURLToPath(import.meta.url))
    .split('\\')
    .join('/');
  return execFileSync('git', ['ls-files', '-z'], { cwd: root, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 })
    .split('\0')
    .filter((f) => f !== '' && f !== self && EXTENSIONS.some((e) => f.endsWith(e)));
}

function main(argv) {
  const dryRun = argv.includes('--dry-run');
  const check = argv.includes('--check');
  const unknown = argv.filter((a) => a !== '--dry-run' && a !== '--check');
  if (unknown.length > 0) {
    process.stderr.write(
      `retarget-doc-refs: unknown argument ${unknown.join(' ')}\nusage: node scripts/retarget-doc-refs.mjs [--dry-run | --check]\n`,
    );
    return 2;
  }
  const root = execFileSync('git', ['rev-parse', '--show-toplevel'], { encoding: 'utf8' }).trim();
  let files = 0;
  let refs = 0;
  const left = [];
  for (const file of trackedFiles(root)) {
    const path = resolve(root, file);
    let text;
    try {
      text = readFileSync(path, 'utf8');
    } catch {
      continue; // deleted in the work tree but still in the index
    }
    if (text.includes(SKIP_MARKER)) continue;
    const r = check ? { text, count: 0 } : retargetText(text, file);
    if (r.count > 0) {
      files++;
      refs += r.count;
      process.stdout.write(`${dryRun ? 'would rewrite' : 'rewrote'} ${r.count} in ${file}\n`);
      if (dryRun) {
        const oldLines = text.split('\n');
        r.text.split('\n').forEach((l, i) => {
          if (l !== oldLines[i]) process.stdout.write(`  - ${oldLines[i].trim()}\n  + ${l.trim()}\n`);
        });
      } else {
        writeFileSync(path, r.text);
      }
    }
    // --check reports the tree as it is; otherwise, what is left after the (possible) rewrite.
    for (const l of leftovers(r.text)) left.push(`${file}:${l.lineNumber}: ${l.line}`);
  }
  if (!check) process.stdout.write(`${dryRun ? 'would rewrite' : 'rewrote'} ${refs} references in ${files} files\n`);
  if (left.length > 0) {
    process.stdout.write(
      `${check ? 'old references' : 'left for a person to fix (a shared/ folder named without a document)'}:\n${left.map((l) => `  ${l}`).join('\n')}\n`,
    );
  }
  return check && left.length > 0 ? 1 : 0;
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = main(process.argv.slice(2));
}
