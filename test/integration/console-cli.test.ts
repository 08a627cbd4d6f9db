// bin/nstar and the stress tool against the real runtime: the table of
// `list`, start/kill through the machines, installs of an NPK vector, inspect
// with the extension data, error exit codes, and a short stress run.
import assert from 'node:assert/strict';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { main as stress } from '../../src/cli/stress.js';
import { fixtureNpk } from '../fixtures/npk.js';
import { privileged } from './privileged.js';
import { nstar } from './runtime-checks.js';
import { startDaemon, startRuntime } from './runtime-harness.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');

describe('nstar against the runtime', privileged({ cgroups: true }), () => {
  test('list, start, inspect, kill, install and uninstall through bin/nstar', async (t) => {
    const sleeper = await fixtureNpk({ name: 'sleeper', manifest: { args: ['sleep'] } });
    const h = await startRuntime(t, { repositories: { default: { npks: [sleeper] }, mem: { type: 'mem' } } });
    const u = ['-u', h.url];

    let r = await nstar([...u, 'list']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^NAME +VERSION +TYPE +STATE +PID +UPTIME +REPOSITORY\nsleeper +0\.0\.1 +app +unmounted +default\n$/);

    r = await nstar([...u, 'kill', 'sleeper', 'USR1']);
    assert.equal(r.err, 'nstar: cannot signal sleeper:0.0.1: it is not running (start it with `nstar start sleeper:0.0.1`)\n');
    r = await nstar([...u, 'start', 'nosuch:0.0.1']);
    assert.equal(r.err, 'nstar: no container nosuch:0.0.1 is installed (`nstar list` shows the installed containers)\n');

    r = await nstar([...u, 'start', 'sleeper']);
    assert.equal(r.out, 'started sleeper:0.0.1\n', r.err);
    await h.waitFor((n) => typeof n === 'object' && 'started' in n);
    r = await nstar([...u, 'list']);
    assert.match(r.out, /\nsleeper +0\.0\.1 +app +running +\d+ +[\d.]+s +default\n$/, r.out);

    r = await nstar([...u, 'inspect', 'sleeper']);
    assert.match(r.out, /^container: +sleeper:0\.0\.1\n[^]*\nstate: +running\n[^]*\npid: +\d+\nuptime: +[\d.]+s\nlast start: +[\d.]+ ms \(/, r.out);
    r = await nstar([...u, 'inspect', '--json', '-s', 'memory', 'sleeper']);
    const data = JSON.parse(r.out);
    assert.equal(data.manifest.name, 'sleeper');
    assert.equal(typeof data.process.pid, 'number');
    assert.equal(typeof data.startup.total, 'number', 'the extension data: startup phases');
    // cgroup v1 reports "no limit" as a page-rounded LLONG_MAX: exact, not 9223372036854772000.
    if (data.process.statistics.memory?.stat?.hierarchical_memory_limit !== undefined) {
      assert.match(r.out, /"hierarchical_memory_limit": 9223372036854771712,/);
    }

    r = await nstar([...u, 'start', 'sleeper']);
    assert.equal(r.code, 1);
    assert.equal(r.err, 'nstar: sleeper:0.0.1 is already running (`nstar stop sleeper:0.0.1` stops it)\n');
    r = await nstar([...u, 'resume', 'sleeper']);
    assert.equal(r.err, 'nstar: sleeper:0.0.1 is not paused (it is running): nothing to resume\n');
    r = await nstar([...u, 'uninstall', 'sleeper']);
    assert.equal(r.err, 'nstar: cannot uninstall sleeper:0.0.1: it is running (stop it first: `nstar stop sleeper:0.0.1`)\n');

    r = await nstar([...u, 'kill', '-s', 'SIGUSR1', 'sleeper']);
    assert.equal(r.out, 'signalled sleeper:0.0.1 with SIGUSR1 (10)\n', r.err);
    assert.deepEqual(
      await h.waitFor((n) => typeof n === 'object' && 'exit' in n),
      { exit: ['sleeper:0.0.1', { signalled: { signal: 10 } }] },
    );
    r = await nstar([...u, 'start', 'sleeper']);
    assert.equal(r.out, 'started sleeper:0.0.1\n', r.err);
    h.notifications.length = 0;
    r = await nstar([...u, 'kill', 'sleeper', '9']);
    assert.equal(r.out, 'signalled sleeper:0.0.1 with SIGKILL (9)\n', r.err);
    assert.deepEqual(
      await h.waitFor((n) => typeof n === 'object' && 'exit' in n),
      { exit: ['sleeper:0.0.1', { signalled: { signal: 9 } }] },
    );

    r = await nstar([...u, 'install', join(root, 'test/fixtures/vectors/vector-unsigned.npk'), 'mem']);
    assert.equal(r.out, 'installed vector:0.0.1\n', r.err);
    r = await nstar([...u, 'repos']);
    assert.equal(r.out, 'default\nmem\n');
    r = await nstar([...u, 'uninstall', 'vector']);
    assert.equal(r.out, 'uninstalled vector:0.0.1\n', r.err);
    r = await nstar([...u, 'umount', 'sleeper']);
    assert.equal(r.out, 'umounted sleeper:0.0.1\n', r.err);
  });

  test('shutdown stops the running containers and says so; the daemon exits', async (t) => {
    const sleeper = await fixtureNpk({ name: 'sleeper', manifest: { args: ['sleep'] } });
    const h = await startDaemon(t, { repositories: { default: { npks: [sleeper] } } });
    const u = ['-u', h.url];
    let r = await nstar([...u, 'start', 'sleeper']);
    assert.equal(r.out, 'started sleeper:0.0.1\n', r.err);
    const pid = (await h.client.inspect('sleeper:0.0.1', [])).process!.pid;
    r = await nstar([...u, 'shutdown']);
    assert.equal(r.code, 0, r.err);
    assert.equal(r.out, `the runtime shut down\nstopped 1 container: sleeper:0.0.1 (pid ${pid})\nunmounted 1 container\n`);
    assert.deepEqual(await h.exited, { code: 0, signal: null });
  });

  test('stress start-stop cycles the startable containers and reports iterations', async (t) => {
    const a = await fixtureNpk({ name: 'stress-a', manifest: { args: ['sleep'] } });
    const b = await fixtureNpk({ name: 'stress-b', manifest: { args: ['sleep'] } });
    const h = await startRuntime(t, { repositories: { default: { npks: [a, b] } } });
    let out = '';
    let err = '';
    const code = await stress(['-u', h.url, '-m', 'mount-start-stop-umount', '-d', '1s', '-i', '0s'], {
      out: (s) => void (out += s),
      err: (s) => void (err += s),
      isTTY: false,
    });
    assert.equal(code, 0, err);
    const m = /^iterations: (\d+)\n$/.exec(out);
    assert.ok(m && Number(m[1]) >= 2, out);
    for (const c of ['stress-a:0.0.1', 'stress-b:0.0.1']) {
      const d = await h.client.inspect(c, []);
      assert.equal(d.process, null, `${c} stopped`);
      assert.equal(d.mounted, false, `${c} unmounted`);
    }
  });
});
