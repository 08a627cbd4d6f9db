// Crash safety (issue 9, spec/README.md deviation 17): the `northstar` daemon
// is killed with SIGKILL while a container runs (and while a mount is in
// flight); its container inits die with it (PDEATHSIG), and a daemon
// restarted on the same dirs cleans the leftover mounts, loop devices,
// cgroups and sockets before it works normally — with and without its own
// mount namespace.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { PassThrough } from 'node:stream';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';

import { cgroup2Mount } from '../../src/actors/cgroups/cgroup-dynmods.js';
import { readMounts } from '../../src/actors/mount/mountinfo.js';
import type { Notification } from '../../src/client/index.js';
import { packageRoot } from '../../src/native.js';
import { fixtureNpk } from '../fixtures/npk.js';
import { privileged } from './privileged.js';
import { until } from './runtime-checks.js';
import { startDaemon, type DaemonHarness } from './runtime-harness.js';

const ID = 'crashy:0.0.1';
const started = (n: Notification) => typeof n === 'object' && 'started' in n && n.started === ID;

/** Loop devices whose backing file lies under `dir`. */
function loopsUnder(dir: string): string[] {
  return readdirSync('/sys/block')
    .filter((d) => d.startsWith('loop'))
    .filter((d) => {
      try {
        return readFileSync(`/sys/block/${d}/loop/backing_file`, 'utf8').trim().startsWith(dir);
      } catch {
        return false;
      }
    });
}

/** Mount points under `dir` as seen by process `pid` (self: the test's namespace). */
function mountsUnder(dir: string, pid: number | 'self' = 'self'): string[] {
  try {
    return readMounts(`/proc/${pid}/mountinfo`).map((m) => m.target).filter((m) => m.startsWith(dir));
  } catch {
    return [];
  }
}

/** Existing cgroup dirs named `name` (any hierarchy, or a pure cgroup2 mount), or `name/sub`. */
function cgroupDirs(name: string, sub = ''): string[] {
  const out: string[] = [];
  for (const h of readdirSync('/sys/fs/cgroup')) {
    const d = join('/sys/fs/cgroup', h, name, sub);
    if (existsSync(d)) out.push(d);
  }
  if (existsSync(join('/sys/fs/cgroup', name, sub))) out.push(join('/sys/fs/cgroup', name, sub));
  return out;
}

/** Every descendant of `pid` (all threads' children, recursively). */
function descendants(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[] = [];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const task of tasks) {
    let kids: number[] = [];
    try {
      kids = readFileSync(`/proc/${pid}/task/${task}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      continue;
    }
    for (const k of kids) out.push(k, ...descendants(k));
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2)[0] !== 'Z';
  } catch {
    return false;
  }
}


async function kill9(h: DaemonHarness): Promise<void> {
  h.proc.kill('SIGKILL');
  const e = await h.exited;
  assert.equal(e.signal, 'SIGKILL');
}

async function scenario(t: TestContext, args: string[], inFlight: boolean): Promise<void> {
  const npk = await fixtureNpk({
    name: 'crashy',
    key: true,
    manifest: {
      args: ['sleep'],
      mounts: { '/unix-sockets': { type: 'sockets' } },
      sockets: { hello: { type: 'datagram', mode: 0o777, uid: 1000, gid: 1000 } },
    },
  });
  const cgroup = `nstar-test-recovery-${process.pid}-${args.length}-${inFlight ? 1 : 0}`;
  const repositories = { default: { npks: [npk], key: true } };
  const dynmodsBefore = dynmodsSet();
  const first = await startDaemon(t, { repositories, cgroup, args });
  if (dynmodsBefore === false) assert.equal(dynmodsSet(), true, 'the daemon set cgroup2 favordynmods');
  const { runDir, socketDir } = first.config;
  const repoDir = first.repoDir('default');

  let inits: number[] = [];
  if (inFlight) {
    // Kill while the start (mount, spawn) is under way: no await on the reply.
    void first.client.start(ID).catch(() => undefined);
    await until(() => loopsUnder(repoDir).length > 0 || mountsUnder(runDir, first.proc.pid!).length > 0, 'the mount to begin', 10_000);
  } else {
    await first.client.start(ID);
    await first.waitFor(started);
    const data = await first.client.inspect(ID);
    inits = [data.process!.pid];
    const children = readFileSync(`/proc/${inits[0]}/task/${inits[0]}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    inits.push(...children.map(Number));
    assert.ok(loopsUnder(repoDir).length > 0, 'a loop device is attached');
    assert.ok(cgroupDirs(cgroup, 'crashy').length > 0, 'the container has cgroups');
    assert.ok(existsSync(join(socketDir, `${ID}:hello`)), `the manifest socket in ${socketDir}: ${readdirSync(socketDir)}`);
  }
  // Everything the daemon started (inits, containers, pool helpers) must die with it.
  const family = [...new Set([...descendants(first.proc.pid!), ...inits])];
  if (!inFlight) assert.ok(inits.every((p) => family.includes(p)), 'the inits are the daemon\'s descendants');
  await kill9(first);
  if (!inFlight) {
    assert.ok(existsSync(join(socketDir, `${ID}:hello`)), 'the dead daemon left its socket');
    assert.ok(cgroupDirs(cgroup, 'crashy').length > 0, 'the dead daemon left its cgroups');
  }

  // PDEATHSIG: the init and the container process die with the runtime.
  for (const pid of family) await until(() => !alive(pid), `pid ${pid} (${inits.includes(pid) ? 'container' : 'daemon child'}) to die with the runtime`, 5_000);
  if (!inFlight && args.includes('--disable-mount-namespace')) {
    assert.ok(mountsUnder(runDir).length > 0, 'without its own namespace the dead daemon left its mounts here');
  }

  // A new daemon on the same dirs and cgroup cleans up before it serves.
  const second = await startDaemon(t, { repositories, cgroup, args, reuse: { dir: first.dir } });
  t.after(async () => {
    if (second.proc.exitCode === null) {
      await second.client.shutdown();
      await second.exited;
    }
  });
  if (!inFlight) assert.match(second.output(), /Cleaned .*previous instance/, 'the restart reports what it cleaned');
  assert.deepEqual(loopsUnder(repoDir), [], 'no loop device backed by our NPKs is left');
  assert.deepEqual(mountsUnder(runDir), [], 'nothing of ours mounted in the test namespace');
  assert.deepEqual(mountsUnder(runDir, second.proc.pid!), [], 'nothing mounted in the new daemon');
  assert.deepEqual(cgroupDirs(cgroup, 'crashy'), [], 'no stale container cgroup');
  assert.ok(!existsSync(join(socketDir, `${ID}:hello`)), 'the stale manifest socket is gone');
  assert.deepEqual((await second.client.inspect(ID)).process, null);

  // And it works: the container starts again.
  await second.client.start(ID);
  await second.waitFor(started);
  const pid = (await second.client.inspect(ID)).process!.pid;
  assert.ok(alive(pid));
  await second.client.shutdown();
  const e = await second.exited;
  assert.equal(e.code, 0, second.output());
  assert.ok(!alive(pid), 'the container ended with the orderly shutdown');
  assert.deepEqual(loopsUnder(repoDir), []);
  assert.deepEqual(cgroupDirs(cgroup), [], 'the top cgroup is removed at shutdown');
  // The dead daemon could not restore the host's cgroup2 options; its journal told the restart to.
  assert.equal(dynmodsSet(), dynmodsBefore, 'cgroup2 favordynmods is as it was before the first daemon');
}

/** Whether the host's cgroup2 root has favordynmods (undefined: no cgroup2 mount to show it). */
function dynmodsSet(): boolean | undefined {
  return cgroup2Mount(readFileSync('/proc/1/mountinfo', 'utf8'))?.superOptions.includes('favordynmods');
}

describe('crash recovery', privileged({ cgroups: true }), () => {
  test('a second daemon on the dirs of a live one refuses to start and leaves the first working', { timeout: 60_000 }, async (t) => {
    const npk = await fixtureNpk({ name: 'crashy', key: true, manifest: { args: ['sleep'] } });
    const cgroup = `nstar-test-recovery-${process.pid}-live`;
    const repositories = { default: { npks: [npk], key: true } };
    const first = await startDaemon(t, { repositories, cgroup });
    await first.client.start(ID);
    await first.waitFor(started);
    // Spawned directly: the harness would find the first daemon's console socket.
    const second = spawn(join(packageRoot, 'bin', 'northstar'), ['-c', first.configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    second.stdout.on('data', (d) => (out += d));
    second.stderr.on('data', (d) => (out += d));
    const [code] = (await once(second, 'exit')) as [number | null];
    assert.notEqual(code, 0, out);
    assert.match(out, new RegExp(`another runtime \\(pid ${first.proc.pid}\\) owns`));
    // The first one was not disturbed: its container still runs.
    assert.ok((await first.client.inspect(ID)).process);
  });

  test('kill -9 with a container from a mem repository running: its memfd-backed loop device does not outlive the restart', { timeout: 60_000 }, async (t) => {
    const npk = await fixtureNpk({ name: 'crashy', key: true, manifest: { args: ['sleep'] } });
    const cgroup = `nstar-test-recovery-${process.pid}-mem`;
    const repositories = { mem: { type: 'mem' as const, key: true } };
    const args = ['--disable-mount-namespace'];
    const first = await startDaemon(t, { repositories, cgroup, args });
    await first.client.installFile(npk, 'mem');
    await first.client.start(ID);
    await first.waitFor(started);
    const target = join(first.config.runDir, ID);
    const line = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === target);
    assert.ok(line, 'the container is mounted in the test namespace');
    const source = line.split(' - ')[1]!.split(' ')[1]!;
    // With device-mapper (dm-verity for a keyed repository) the loop device sits below a dm device.
    const device = source.startsWith('/dev/dm-') ? `/dev/${readdirSync(`/sys/block/${basename(source)}/slaves`)[0]}` : source;
    assert.match(device, /^\/dev\/loop\d+$/);
    const backing = () => {
      try {
        return readFileSync(`/sys/block/${basename(device)}/loop/backing_file`, 'utf8').trim();
      } catch {
        return '';
      }
    };
    assert.match(backing(), /^\/memfd:npk-/);
    await kill9(first);
    assert.match(backing(), /^\/memfd:npk-/, 'still attached after the crash');

    const second = await startDaemon(t, { repositories, cgroup, args, reuse: { dir: first.dir } });
    assert.doesNotMatch(backing(), /^\/memfd:npk-/, `${device} detached by the restart`);
    assert.deepEqual(mountsUnder(first.config.runDir), []);
    assert.deepEqual(await second.client.list(), [], 'a mem repository starts empty');
    await second.client.shutdown();
    assert.equal((await second.exited).code, 0);
  });

  test('kill -9 during an install: the restart removes the half-written file', { timeout: 60_000 }, async (t) => {
    const npk = await fixtureNpk({ name: 'crashy', key: true, manifest: { args: ['sleep'] } });
    const cgroup = `nstar-test-recovery-${process.pid}-install`;
    const repositories = { default: { key: true } };
    const first = await startDaemon(t, { repositories, cgroup });
    const repoDir = first.repoDir('default');
    const bytes = readFileSync(npk);
    const stream = new PassThrough();
    void first.client.install(stream, bytes.length, 'default').catch(() => undefined);
    stream.write(bytes.subarray(0, bytes.length >> 1));
    const partial = () => readdirSync(repoDir).filter((f) => f.startsWith('.partial-'));
    await until(() => partial().length > 0, 'the partial install file');
    await kill9(first);
    stream.destroy();
    assert.equal(partial().length, 1, 'the dead daemon left its partial file');

    const second = await startDaemon(t, { repositories, cgroup, reuse: { dir: first.dir } });
    assert.deepEqual(readdirSync(repoDir), [], 'nothing half-written is left');
    assert.deepEqual(await second.client.list(), []);
    // And an install works.
    assert.equal(await second.client.installFile(npk, 'default'), ID);
    await second.client.shutdown();
    assert.equal((await second.exited).code, 0);
  });

  test('kill -9 of the daemon while a container runs, then a restart that cleans up and starts it again', { timeout: 60_000 }, async (t) => {
    await scenario(t, [], false);
  });

  test('the same with --disable-mount-namespace (mounts left in the host namespace are cleaned)', { timeout: 60_000 }, async (t) => {
    await scenario(t, ['--disable-mount-namespace'], false);
  });

  test('kill -9 while a mount is in flight, then a restart that cleans up and starts it again', { timeout: 60_000 }, async (t) => {
    await scenario(t, [], true);
  });

  test('kill -9 while a mount is in flight with --disable-mount-namespace', { timeout: 60_000 }, async (t) => {
    await scenario(t, ['--disable-mount-namespace'], true);
  });
});
