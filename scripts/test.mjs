// The one test command: `npm test` runs unit and integration tests in one
// node --test run. As root, the whole run starts inside a private mount
// namespace entered BEFORE node starts (unshare from inside Node would move
// only one thread), so a crashed test leaves no mounts in the host.
//
//   node scripts/test.mjs               all tests
//   node scripts/test.mjs unit          test/unit only
//   node scripts/test.mjs integration   test/integration only
//   node scripts/test.mjs <file>...     the given files
//
// The whole run (no arguments) ends with the kernel lane (test/kernel/lane.ts,
// `npm run test:kernel`): the tests that need a kernel with device-mapper and
// a pure cgroup v2 hierarchy, in a QEMU guest.
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function find(dir) {
  if (!existsSync(dir)) return [];
  return readdirSync(dir).flatMap((e) => {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) return find(p);
    return p.endsWith('.test.ts') ? [p] : [];
  });
}

const args = process.argv.slice(2);
let files;
if (args.length === 0) files = [...find(join(root, 'test/unit')), ...find(join(root, 'test/integration'))];
else if (args[0] === 'unit' || args[0] === 'integration') files = find(join(root, 'test', args[0]));
else files = args.map((a) => resolve(a));
files = files.map((f) => relative(root, f)).sort();

// The native parts as the sources are now (incremental: make rebuilds only
// what changed), so a test never runs against a stale nstar-init or addon.
{
  const n = spawnSync(process.execPath, ['scripts/build-native.mjs'], { cwd: root, stdio: ['ignore', 'ignore', 'inherit'] });
  if (n.status !== 0) {
    console.error('test: building the native parts failed (npm run build:native)');
    process.exit(1);
  }
}

if (files.some((f) => f.startsWith('test/integration'))) {
  // Fixtures (the static probe, fixture NPKs) are built once here, not per test file.
  const b = spawnSync(process.execPath, ['--import', 'tsx', 'test/fixtures/build.ts'], { cwd: root, stdio: 'inherit' });
  if (b.status !== 0) {
    console.error('test: building fixtures failed');
    if (process.env.CI === 'true') process.exit(1);
  }
}

const isRoot = process.getuid?.() === 0;
const nodeArgs = [
  '--import', 'tsx',
  '--test',
  '--test-concurrency=1',
  '--test-timeout=600000',
  ...files,
];
const [cmd, cmdArgs] =
  isRoot && existsSync('/usr/bin/unshare')
    ? ['unshare', ['--mount', '--propagation', 'private', process.execPath, ...nodeArgs]]
    : [process.execPath, nodeArgs];
const r = spawnSync(cmd, cmdArgs, { cwd: root, stdio: 'inherit', env: { ...process.env, NSTAR_TEST: '1' } });
if (args.length > 0) process.exit(r.status ?? 1);

// Run even when the main suite failed: both results are worth having.
const lane = spawnSync(process.execPath, ['--import', 'tsx', 'test/kernel/lane.ts'], { cwd: root, stdio: 'inherit' });
if (r.status !== 0 || lane.status !== 0) {
  console.error(`test: main suite ${r.status === 0 ? 'passed' : 'FAILED'}, kernel lane ${lane.status === 0 ? 'passed' : 'FAILED'}`);
  process.exit(1);
}
