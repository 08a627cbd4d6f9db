// bin/nstar and the stress tool against the real runtime: the table of
// `list`, start/kill through the machines, installs of an NPK vector, inspect
// with the extension data, error exit codes, and a short stress run.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { dirname, join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { main as stress } from '../../src/cli/stress.js';
import { fixtureNpk } from '../fixtures/npk.js';
import { privileged } from './privileged.js';
import { startRuntime } from './runtime-harness.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');

/** Runs bin/nstar as a child (asynchronously: the runtime answers from this process). */
function nstar(args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(join(root, 'bin', 'nstar'), args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    p.stdout.on('data', (d) => (out += d));
    p.stderr.on('data', (d) => (err += d));
    p.on('close', (code) => resolve({ code, out, err }));
  });
}

describe('nstar against the runtime', privileged({ cgroups: true }), () => {
  test('list, start, inspect, kill, install and uninstall through bin/nstar', async (t) => {
    const sleeper = await fixtureNpk({ name: 'sleeper', manifest: { args: ['sleep'] } });
    const h = await startRuntime(t, { repositories: { default: { npks: [sleeper] }, mem: { type: 'mem' } } });
    const u = ['-u', h.url];

    let r = await nstar([...u, 'list']);
    assert.equal(r.code, 0, r.err);
    assert.match(r.out, /^Name +Version +Repository +Type +Mounted +PID +Uptime\nsleeper +0\.0\.1 +default +app +no\n$/);

    r = await nstar([...u, 'start', 'sleeper']);
    assert.equal(r.out, 'started sleeper:0.0.1\n', r.err);
    await h.waitFor((n) => typeof n === 'object' && 'started' in n);
    r = await nstar([...u, 'list']);
    assert.match(r.out, /\nsleeper +0\.0\.1 +default +app +yes +\d+ +[\d.]+s\n$/, r.out);

    r = await nstar([...u, 'inspect', 'sleeper']);
    const data = JSON.parse(r.out);
    assert.equal(data.manifest.name, 'sleeper');
    assert.equal(typeof data.process.pid, 'number');
    assert.equal(typeof data.startup.total, 'number', 'the extension data: startup phases');

    r = await nstar([...u, 'start', 'sleeper']);
    assert.equal(r.code, 1);
    assert.equal(r.err, 'nstar: container sleeper:0.0.1 failed to start: already started\n');

    r = await nstar([...u, 'kill', 'sleeper', '9']);
    assert.equal(r.out, 'signalled sleeper:0.0.1 with 9\n', r.err);
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
