// `npm start`: the quick start's first command, after `npm ci` built the
// native parts. Installs squashfs-tools when missing (the packer needs
// mksquashfs), packs the example containers into the embedded default
// config's repository, and runs the daemon on that config in the foreground
// (Ctrl-C shuts it down).
import { execFileSync, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { EMBEDDED_DEFAULT_CONFIG, parseConfig } from '../src/model/config.js';
import { buildExamples, examplePublicKey } from './build-examples.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');

function have(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

function aptInstall(pkgs: string[]): void {
  console.log(`start: installing ${pkgs.join(' ')}`);
  execFileSync('apt-get', ['update'], { stdio: 'inherit' });
  execFileSync('apt-get', ['install', '-y', ...pkgs], {
    stdio: 'inherit',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
}

if (process.getuid?.() !== 0) {
  console.error('start: the runtime needs root (loop devices, mounts, namespaces, cgroups)');
  process.exit(1);
}
if (!have('mksquashfs')) aptInstall(['squashfs-tools']);
if (!have('cc')) aptInstall(['build-essential']);

const config = parseConfig(EMBEDDED_DEFAULT_CONFIG);
for (const [id, repo] of Object.entries(config.repositories)) {
  if (typeof repo.type !== 'object') continue;
  const dir = repo.type.fs.dir;
  console.log(`start: packing the example containers into repository ${id} (${dir})`);
  await buildExamples(dir);
  if (repo.key && !existsSync(repo.key)) {
    // The examples are signed with the example key, public on purpose: fine
    // for trying the runtime, never for a real device.
    mkdirSync(dirname(repo.key), { recursive: true });
    copyFileSync(examplePublicKey, repo.key);
    console.log(`start: installed the EXAMPLE public key as ${repo.key} (replace it on a real device)`);
  }
}

console.log('start: running the daemon (Ctrl-C to stop); try `npx nstar list` in another shell');
// Ctrl-C reaches the daemon too; this script waits for its orderly shutdown.
process.on('SIGINT', () => undefined);
process.on('SIGTERM', () => undefined);
const r = spawnSync(join(root, 'bin', 'northstar'), [], { stdio: 'inherit' });
process.exit(r.status ?? 1);
