// The only door to the nstar addon and the nstar-init helper binary.
// Loadable on the main thread and in worker threads (the addon is context-aware).
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import type { CgroupNative } from './native-api/cgroup.js';
import type { CopyNative, PtyNative } from './native-api/copy.js';
import type { NetifNative } from './native-api/netif.js';
import type { DmNative } from './native-api/dm.js';
import type { FdNative } from './native-api/fd.js';
import type { LoopNative } from './native-api/loop.js';
import type { ProcessNative } from './native-api/process.js';

export interface BaseNative {
  abiVersion(): number;
}

/** The typed contract of build/Release/nstar.node. */
export type Native = BaseNative & LoopNative & DmNative & ProcessNative & FdNative & CgroupNative & CopyNative & NetifNative & PtyNative;

/** The package root: the nearest directory above this module with our package.json (sources in src/, or a bundle in dist/cli/). */
function findRoot(from: string): string {
  for (let dir = from; ; dir = dirname(dir)) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && /"name":\s*"northstar-ts"/.test(readFileSync(pkg, 'utf8'))) return dir;
    if (dirname(dir) === dir) return resolve(from, '..');
  }
}

const root = findRoot(dirname(fileURLToPath(import.meta.url)));
const buildDirs = ['build/Release', 'build/Debug'].map((d) => join(root, d));

let cached: Native | undefined;

export class NativeMissingError extends Error {
  readonly code = 'ENATIVE';
  constructor(what: string, looked: string[]) {
    super(
      `${what} not found (looked in ${looked.join(', ')}); build it with \`npm run build:native\` ` +
        '(needs a C/C++ toolchain: apt-get install build-essential)',
    );
  }
}

/** Loads the addon once per thread. Throws NativeMissingError naming where it looked. */
export function native(): Native {
  if (cached) return cached;
  const candidates = buildDirs.map((d) => join(d, 'nstar.node'));
  const found = candidates.find((c) => existsSync(c));
  if (!found) throw new NativeMissingError('the nstar addon (nstar.node)', candidates);
  const require = createRequire(import.meta.url);
  const addon = require(found) as Native;
  // A stale build (sources changed, addon not rebuilt) would answer calls it
  // no longer has with TypeErrors deep in the runtime: refuse it here instead.
  if (addon.abiVersion() !== ADDON_ABI) {
    throw new Error(`${found} is ABI ${addon.abiVersion()}, this runtime needs ${ADDON_ABI}: rebuild it with \`npm run build:native\``);
  }
  cached = addon;
  return cached;
}

/** The addon's interface version (native/addon.cc AbiVersion): bump both together. */
export const ADDON_ABI = 1;

/** Absolute path of the static nstar-init helper. */
export function initBinaryPath(): string {
  const candidates = buildDirs.map((d) => join(d, 'nstar-init'));
  const found = candidates.find((c) => existsSync(c));
  if (!found) throw new NativeMissingError('the nstar-init helper', candidates);
  return found;
}

/** The package root (for locating shipped assets). */
export const packageRoot = root;
