// The guest's test files as plain JavaScript: under TCG, loading TypeScript
// through tsx costs tens of seconds per module, a bundle a second or two.
// Each test file becomes one ESM bundle in dist/kernel/ (inside the package,
// so the external piscina resolves from node_modules).
//
// Modules find files relative to import.meta.url, which in a bundle is the
// bundle's own URL. So every module gets the URL it would have unbundled:
// a runtime module (src/) the one of its sibling in dist/cli/ — as in the
// daemon's bundles, so the mount pool finds dist/cli/mount.worker.js and no
// worker needs tsx — and a test module its source path, so fixtures stay
// where test/fixtures/ keeps them.
import { readFile } from 'node:fs/promises';
import { basename, join } from 'node:path';
import { pathToFileURL } from 'node:url';

import { build, type Plugin } from 'esbuild';

import { packageRoot } from '../../src/native.js';

export const bundleDir = join(packageRoot, 'dist', 'kernel');

const sourceUrls: Plugin = {
  name: 'source-urls',
  setup(b) {
    b.onLoad({ filter: /\.(ts|js|mjs)$/ }, async ({ path }) => {
      if (path.includes('/node_modules/')) return undefined;
      const text = await readFile(path, 'utf8');
      if (!text.includes('import.meta.url')) return undefined;
      const src = join(packageRoot, 'src') + '/';
      const as = path.startsWith(src) ? join(packageRoot, 'dist', 'cli', basename(path).replace(/\.ts$/, '.js')) : path;
      return { contents: text.replaceAll('import.meta.url', JSON.stringify(pathToFileURL(as).href)), loader: path.endsWith('.ts') ? 'ts' : 'js' };
    });
  },
};

/** Bundles `files` (test files) into dist/kernel/<name>.mjs; returns the bundles' paths. */
export async function bundleTests(files: string[]): Promise<string[]> {
  const names = files.map((f) => basename(f).replace(/\.ts$/, ''));
  await build({
    entryPoints: files.map((f, i) => ({ in: f, out: names[i]! })),
    outdir: bundleDir,
    outExtension: { '.js': '.mjs' },
    bundle: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    banner: { js: "import { createRequire as __nstarRequire } from 'node:module'; const require = __nstarRequire(import.meta.url); const __filename = new URL(import.meta.url).pathname; const __dirname = __filename.slice(0, __filename.lastIndexOf('/'));" },
    external: ['msgpackr-extract', 'piscina', 'esbuild', 'tsx'],
    plugins: [sourceUrls],
    logLevel: 'warning',
  });
  return names.map((n) => join(bundleDir, `${n}.mjs`));
}
