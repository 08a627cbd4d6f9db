// Builds the addon and nstar-init with npm's bundled node-gyp (no global
// node-gyp needed; node-gyp 13 wants Node 22). Headers come from the local
// Node installation, never from the network.
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function findNodeGyp() {
  const candidates = [
    process.env.npm_config_node_gyp,
    join(dirname(process.execPath), '../lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js'),
    '/usr/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
    '/usr/local/lib/node_modules/npm/node_modules/node-gyp/bin/node-gyp.js',
  ];
  return candidates.find((c) => c && existsSync(c));
}

function findNodeDir() {
  // Headers live in <prefix>/include/node for distro and nodesource builds.
  const prefix = resolve(dirname(process.execPath), '..');
  if (existsSync(join(prefix, 'include/node/node_api.h'))) return prefix;
  return undefined;
}

const gyp = findNodeGyp();
if (!gyp) {
  console.error('build-native: npm\'s bundled node-gyp not found (looked next to npm and in npm_config_node_gyp)');
  process.exit(1);
}
// Incremental once configured; a full rebuild when binding.gyp changed.
const makefile = join(root, 'build/Makefile');
const configured = existsSync(makefile) && statSync(makefile).mtimeMs >= statSync(join(root, 'binding.gyp')).mtimeMs;
const args = [gyp, configured ? 'build' : 'rebuild', '-j', 'max'];
const nodedir = findNodeDir();
if (nodedir) args.push(`--nodedir=${nodedir}`);
// Serialize concurrent builds of the same tree (flock from util-linux).
const lock = join(root, 'build.lock');
const r = existsSync('/usr/bin/flock')
  ? spawnSync('/usr/bin/flock', [lock, process.execPath, ...args], { cwd: root, stdio: 'inherit' })
  : spawnSync(process.execPath, args, { cwd: root, stdio: 'inherit' });
process.exit(r.status ?? 1);
