// Entry of the package's executables: runs `main(argv)` of src/cli/<name>.ts,
// whose promise resolves to the exit code. From dist/ (plain JavaScript built
// at install by scripts/build-js.mjs) when it is newer than every source —
// no TypeScript loader, ~35 MB less RSS — otherwise from the sources through
// tsx (development). NSTAR_TSX=1 forces the sources.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

function newestSource(dir) {
  let newest = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name);
    newest = Math.max(newest, e.isDirectory() ? newestSource(p) : statSync(p).mtimeMs);
  }
  return newest;
}

function distIsFresh() {
  const stamp = join(root, 'dist', '.stamp');
  if (process.env.NSTAR_TSX === '1' || !existsSync(stamp)) return false;
  return Number(readFileSync(stamp, 'utf8')) >= newestSource(join(root, 'src'));
}

const [name, ...argv] = process.argv.slice(2);
let entry;
if (distIsFresh()) {
  entry = new URL(`../dist/cli/${name}.js`, import.meta.url);
} else {
  const { register } = await import('tsx/esm/api');
  register();
  entry = new URL(`../src/cli/${name}.ts`, import.meta.url);
}
const cli = await import(entry.href);
process.exitCode = await cli.main(argv);
