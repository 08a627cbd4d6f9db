// The layers of src/ and the direction of their imports, checked so the
// architecture stays what the folders say. Every arrow points down:
//
//   7  cli, index.ts        front ends and the package entry (import anything below)
//   6  client               the console client library
//   5  runtime              runtime.ts, runtime-backend.ts, runtime-streams.ts, runtime-logs.ts: compose everything below;
//                           config-file.ts: reads the configuration file for the model's parser
//   4  actors, inspector    effects (loop devices, mounts, cgroups, processes); the
//                           inspector reads machine definitions and is hosted by the runtime
//   3  machines, packer     XState definitions: decisions, no I/O of their own; the NPK
//                           packer's tooling (mksquashfs, unsquashfs), used by the CLI and tests
//   2  npk, native, console the package format; the addon (native.ts + native-api/, which
//                           declares the addon's API); the wire protocol and server, which
//                           the runtime hosts and reaches only through its Backend interface
//                           (runtime.ts and runtime-backend.ts import console/, console/
//                           imports nothing above base: so it sits low, not on top)
//   1  base                 log.ts, threads.ts: process-wide services (importing the model at most)
//   0  model                pure data and predicates
//
// An import goes from a file to one of its own layer or of a lower rank; peers of
// the same rank do not import each other. Type-only imports count too (a type cycle
// is still a cycle for the reader), and so do `export … from` and dynamic
// `import('…')` with a literal path. Separately, no file-level import cycle at all.
// The scanner is a few regular expressions over the sources, not the compiler: it
// is enough for the project's own import style (relative paths ending in .js).
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, posix, relative, resolve } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const src = join(root, 'src');

const ranks: Record<string, number> = {
  model: 0,
  base: 1,
  npk: 2, native: 2, console: 2,
  machines: 3, packer: 3,
  actors: 4, inspector: 4,
  runtime: 5,
  client: 6,
  cli: 7, index: 7,
};

/** The layer of a path relative to src/ (posix separators). */
function layerOf(file: string): string {
  const top = file.split('/')[0];
  switch (top) {
    case 'log.ts': case 'threads.ts': return 'base';
    case 'native.ts': case 'native-api': return 'native';
    case 'runtime.ts': case 'runtime-backend.ts': case 'runtime-streams.ts': case 'runtime-logs.ts': case 'config-file.ts': return 'runtime';
    case 'index.ts': return 'index';
    default:
      if (top in ranks) return top;
      throw new Error(`layers.test: no layer for src/${file}: add it to the table`);
  }
}

/**
 * Imports that break the rule today, each with why it is there. The check
 * fails on any import not listed, and on a listed one that has gone (so the
 * list shrinks with the code). Keys are `from -> to`, paths relative to src/.
 */
const allowed: Record<string, string> = {
};

/** Known file-level cycles, each as its sorted member list joined by ' '. */
const allowedCycles: Record<string, string> = {
};

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return /\.(ts|mts)$/.test(e.name) && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

const importPatterns = [
  // import x from '…', import type { X } from '…', export { x } from '…', export * from '…'
  /(?:^|[\n;])\s*(?:import|export)\s+(?:type\s+)?[^'";]*?\sfrom\s*['"]([^'"]+)['"]/g,
  // import '…' (side effects only)
  /(?:^|[\n;])\s*import\s*['"]([^'"]+)['"]/g,
  // import('…'), also in type positions
  /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g,
];

/** Strips comments so an import in a comment does not count. Strings stay as they are. */
function stripComments(text: string): string {
  return text.replace(/\/\*[\s\S]*?\*\//g, '').replace(/(^|[^:'"`\\])\/\/.*$/gm, '$1');
}

/** The project files a source imports, as paths relative to src/. */
export function importsOf(file: string, text: string): string[] {
  const out = new Set<string>();
  const code = stripComments(text);
  for (const re of importPatterns) {
    for (const m of code.matchAll(re)) {
      const spec = m[1];
      if (!spec.startsWith('.')) continue;
      const target = posix.normalize(posix.join(posix.dirname(file), spec)).replace(/\.(m?)js$/, '.$1ts');
      out.add(target);
    }
  }
  return [...out];
}

function graph(): Map<string, string[]> {
  const g = new Map<string, string[]>();
  for (const abs of sources(src)) {
    const file = relative(src, abs).split('\\').join('/');
    g.set(file, importsOf(file, readFileSync(abs, 'utf8')));
  }
  return g;
}

/** Strongly connected components with more than one member (or a self-import): Tarjan. */
function cycles(g: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const on = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    idx.set(v, index); low.set(v, index); index++;
    stack.push(v); on.add(v);
    for (const w of g.get(v) ?? []) {
      if (!g.has(w)) continue;
      if (!idx.has(w)) { visit(w); low.set(v, Math.min(low.get(v)!, low.get(w)!)); }
      else if (on.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do { w = stack.pop()!; on.delete(w); scc.push(w); } while (w !== v);
      if (scc.length > 1 || (g.get(v) ?? []).includes(v)) out.push(scc.sort());
    }
  };
  for (const v of g.keys()) if (!idx.has(v)) visit(v);
  return out;
}

describe('layers of src/', () => {
  const g = graph();

  it('the scanner sees every kind of import the sources use', () => {
    const text = [
      "import a from './a.js';",
      "import type { B } from '../b/b.js';",
      'import {\n  c,\n  type D,\n} from "./c.js";',
      "export * from './e.js';",
      "export type { F } from './f.js';",
      "import './g.js';",
      "type H = typeof import('./h.js');",
      "// import x from './comment.js';",
      "import { readFileSync } from 'node:fs';",
    ].join('\n');
    assert.deepEqual(importsOf('x/y.ts', text).sort(),
      ['b/b.ts', 'x/a.ts', 'x/c.ts', 'x/e.ts', 'x/f.ts', 'x/g.ts', 'x/h.ts']);
  });

  it('every import resolves to a source file', () => {
    // A plain .js module (the inspector's page scripts, shared with the browser) counts as a leaf.
    const exists = (t: string): boolean => g.has(t) || existsSync(join(src, t.replace(/\.ts$/, '.js')));
    const missing = [...g].flatMap(([f, ts]) => ts.filter((t) => !exists(t)).map((t) => `${f} -> ${t}`));
    assert.deepEqual(missing, []);
  });

  it('every import points to the same layer or one below (but for the listed ones)', () => {
    const found: string[] = [];
    for (const [from, targets] of g) {
      const a = layerOf(from);
      for (const to of targets) {
        const b = layerOf(to);
        if (a === b || ranks[b] < ranks[a]) continue;
        found.push(`${from} -> ${to}`);
      }
    }
    const fresh = found.filter((e) => !(e in allowed)).map((e) => `${e}  (${layerOf(e.split(' -> ')[0])} may not import ${layerOf(e.split(' -> ')[1])})`);
    assert.deepEqual(fresh, [], 'new upward or sideways imports between layers');
    const gone = Object.keys(allowed).filter((e) => !found.includes(e));
    assert.deepEqual(gone, [], 'allowed imports that are gone: remove them from the list');
  });

  it('a folder under actors/ is entered through its index.ts only', () => {
    // actors/<concern>/ (cgroups, mount, launch, repository, output, copy)
    // keeps its files to itself: the rest of src/ imports its door.
    const folderOf = (f: string) => /^actors\/([^/]+)\//.exec(f)?.[1];
    const through = [...g].flatMap(([from, targets]) =>
      targets.filter((to) => {
        const folder = folderOf(to);
        return folder !== undefined && folderOf(from) !== folder && to !== `actors/${folder}/index.ts`;
      }).map((to) => `${from} -> ${to}`));
    assert.deepEqual(through, [], 'imports past a folder\'s index.ts');
    const folders = readdirSync(join(src, 'actors'), { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
    assert.ok(folders.length >= 6, `actors/ is grouped in folders (found ${folders.join(', ')})`);
    assert.deepEqual(folders.filter((d) => !existsSync(join(src, 'actors', d, 'index.ts'))), [], 'folders without an index.ts');
  });

  it('no import cycle (but for the listed ones)', () => {
    const found = cycles(g).map((c) => c.join(' '));
    assert.deepEqual(found.filter((c) => !(c in allowedCycles)), [], 'new import cycles');
    assert.deepEqual(Object.keys(allowedCycles).filter((c) => !found.includes(c)), [], 'allowed cycles that are gone: remove them from the list');
  });
});
