// `npm start`: the quick start's first command, after `npm ci` built the
// native parts. Installs squashfs-tools when missing (the packer needs
// mksquashfs), packs the example containers into the embedded default
// config's repository (or those of `npm start -- -c <file>`), and runs the
// daemon on that config in the foreground. SIGINT, SIGTERM and SIGHUP sent
// to npm or to this script reach the daemon, which shuts down in order.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { constants } from 'node:os';
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

// `npm start -- -c <file>`: the daemon's own option, read here for the repositories.
const args = process.argv.slice(2);
const ci = args.findIndex((a) => a === '-c' || a === '--config');
const configPath = ci >= 0 ? args[ci + 1] : undefined;
if (ci >= 0 && configPath === undefined) {
  console.error('start: -c needs a config file');
  process.exit(2);
}
// The daemon refuses a repository (or an NPK in it) that others may write to:
// pack with a umask that grants nobody else write, whatever the shell's is.
process.umask(0o022);
const config = parseConfig(configPath ? readFileSync(configPath, 'utf8') : EMBEDDED_DEFAULT_CONFIG);
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
// The daemon runs in its own process group, so a signal reaches it once:
// forwarded from here, whether it came from the terminal (Ctrl-C signals the
// whole foreground group: npm, this script) or from `kill` of npm or of this
// script alone (npm forwards SIGINT and SIGTERM to its script). Without the
// forwarding, a service manager stopping `npm start` would leave the daemon
// running with its containers.
const daemon = spawn(join(root, 'bin', 'northstar'), args, { stdio: ['ignore', 'inherit', 'inherit'], detached: true });
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
  process.on(sig, () => {
    if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill(sig);
  });
}
daemon.on('error', (e) => {
  console.error(`start: cannot run the daemon: ${e.message}`);
  process.exit(1);
});
daemon.on('exit', (code, signal) => process.exit(code ?? 128 + (signal ? constants.signals[signal] : 0)));
