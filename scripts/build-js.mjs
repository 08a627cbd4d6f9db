// Bundles the executables (src/cli/*.ts), the mount pool's and the output worker into
// plain, minified ESM JavaScript in dist/cli/, with the inspector's page
// beside them. The daemon and the CLIs run from dist/ when it is up to date
// (bin/launch.mjs): Node then loads no TypeScript loader and one file instead
// of ~100 modules, which takes the idle daemon from ~94 MB to ~50 MB of RSS
// (bench/memory). Tests and development run the sources through tsx.
// Run at install time (package.json "install").
import { cpSync, existsSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { build } from 'esbuild';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const src = join(root, 'src');
const out = join(root, 'dist', 'cli');

const entries = [
  ...readdirSync(join(src, 'cli')).filter((f) => f.endsWith('.ts')).map((f) => join(src, 'cli', f)),
  // Found next to the bundle by workerEntry() (src/threads.ts).
  join(src, 'actors', 'mount', 'mount.worker.ts'),
  join(src, 'actors', 'copy', 'copy.worker.ts'),
  join(src, 'actors', 'output', 'output.worker.ts'),
];

// Only the bundles: dist/lib (the library, npm run build:lib) stays.
rmSync(out, { recursive: true, force: true });
await build({
  // Flat: every bundle side by side in dist/cli/.
  entryPoints: entries.map((f) => ({ in: f, out: f.split('/').pop().replace(/\.ts$/, '') })),
  outdir: out,
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  minify: true,
  // CommonJS dependencies call require(); an ESM bundle has none of its own.
  banner: { js: "import { createRequire as __nstarRequire } from 'node:module'; const require = __nstarRequire(import.meta.url); const __filename = new URL(import.meta.url).pathname; const __dirname = __filename.slice(0, __filename.lastIndexOf('/'));" },
  // Dependencies that locate files from their own __dirname (a native addon,
  // Piscina's worker.js) load from node_modules, not from inside the bundle.
  external: ['msgpackr-extract', 'piscina'],
  logLevel: 'warning',
});
// The inspector serves its page from next to its module: here, the bundle.
if (existsSync(join(src, 'inspector', 'page'))) cpSync(join(src, 'inspector', 'page'), join(out, 'page'), { recursive: true });
// bin/launch.mjs compares this stamp with the sources' mtimes.
writeFileSync(join(root, 'dist', '.stamp'), String(Date.now()));
console.log(`build-js: ${entries.length} bundles in dist/cli/`);
