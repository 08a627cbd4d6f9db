// Floods and faults against the real runtime (issue "bounded memory and a
// responsive console"): a client that never reads its replies, a slow install,
// a repository directory removed under the daemon, an NPK file that vanished,
// failures that must reach the log, mount points a crash left in run_dir, and
// a graceful shutdown that lets containers save their state.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import { join } from 'node:path';
import { after, describe, test, type TestContext } from 'node:test';

import { main as stress } from '../../src/cli/stress.js';
import { Runtime } from '../../src/runtime.js';
import { privileged } from './privileged.js';
import {
  assertNoTestCgroups,
  captureLog,
  captureOutput,
  isExit,
  isStarted,
  probe,
  until,
  wireError,
} from './runtime-checks.js';
import { prepare, startDaemon, startRuntime } from './runtime-harness.js';

const files = (dir: string) => readdirSync(dir).sort();

/** The daemon's resident set in bytes (/proc/<pid>/status VmRSS). */
function rss(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  assert.ok(m, `no VmRSS for ${pid}`);
  return Number(m[1]) * 1024;
}

/** A raw console connection past the handshake, for clients that misbehave. */
async function rawConnect(url: string): Promise<net.Socket> {
  const s = net.connect({ path: url.slice('unix://'.length) });
  s.on('error', () => undefined);
  await once(s, 'connect');
  s.write('{"connect":{"version":"0.9.3","subscribe_notifications":false}}\n');
  let got = '';
  while (!got.includes('\n')) got += String((await once(s, 'data'))[0]);
  assert.equal(got, '{"connect_ack":null}\n');
  return s;
}

/** Resolves true once the socket closed, false after `ms`. */
function closedWithin(s: net.Socket, ms: number): Promise<boolean> {
  if (s.destroyed) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    s.once('close', () => (clearTimeout(timer), resolve(true)));
  });
}

describe('runtime: floods and faults', privileged({ cgroups: true }), () => {
  after(() => assertNoTestCgroups());

  test('a client that floods requests and never reads the replies is disconnected with a log line, the daemon stays small', async (t) => {
    const h = await startDaemon(t, {
      repositories: { default: {} },
      extraToml: '[console.global.options]\nnpk_stream_timeout = "2s"',
    });
    const pid = h.proc.pid!;
    const before = rss(pid);
    let peak = before;
    const sampler = setInterval(() => (peak = Math.max(peak, rss(pid))), 100);
    t.after(() => clearInterval(sampler));

    // Each request names 400 unknown containers of 1,000-character names: a
    // 400 KB request, an 840 KB reply of invalid_container errors.
    const names = Array.from({ length: 400 }, (_, i) => `${String(i).padStart(4, '0')}${'x'.repeat(996)}:0.0.1`);
    const line = JSON.stringify({ request: { mount: { containers: names } } }) + '\n';
    const s = await rawConnect(h.url);
    s.pause(); // never reads again
    let sent = 0;
    let closed = false;
    s.once('close', () => (closed = true));
    while (!closed && sent < 300 * 1024 * 1024) {
      if (!s.write(line)) {
        // Blocked until the daemon reads again, or closed because it never will.
        await Promise.race([once(s, 'drain'), once(s, 'close')]).catch(() => undefined);
      }
      sent += line.length;
    }
    clearInterval(sampler);
    peak = Math.max(peak, rss(pid));
    assert.ok(
      peak - before < 64 * 1024 * 1024,
      `daemon RSS grew by ${((peak - before) / 2 ** 20).toFixed(1)} MB (from ${(before / 2 ** 20).toFixed(1)} MB) while ${(sent / 2 ** 20).toFixed(0)} MB of requests were offered`,
    );
    assert.ok(await closedWithin(s, 30_000), 'the daemon closes the connection of a client that never reads');
    await until(() => /lags behind \(\d+ bytes of replies unsent/.test(h.output()), 'the log line of the disconnect', 10_000);
    // Everyone else is still served.
    assert.deepEqual(await h.client.list(), []);
    const other = await h.connect();
    assert.deepEqual(await other.repositories(), ['default']);
  });

  /** A client installing `npk`: the request, 100 bytes, then a byte a second until `giveUpAfter` bytes. */
  async function slowInstall(t: TestContext, url: string, repository: string, npk: Buffer, giveUpAfter = Infinity) {
    const s = await rawConnect(url);
    s.write(JSON.stringify({ request: { install: { repository, size: npk.length } } }) + '\n');
    s.write(npk.subarray(0, 100));
    let off = 100;
    const trickle = setInterval(() => {
      if (off - 100 >= giveUpAfter) s.destroy();
      if (!s.destroyed && off < npk.length) s.write(npk.subarray(off, ++off));
    }, 1000);
    s.once('close', () => clearInterval(trickle));
    t.after(() => (clearInterval(trickle), s.destroy()));
    return s;
  }

  test('a slow install holds nothing: another install and uninstall on its repository go through while it streams', async (t) => {
    const h = await startRuntime(t, { repositories: { fs: { key: true } } });
    const dir = h.repoDir('fs');
    // It gives up after 20 bytes: an install that waits for it finishes only after that.
    const s = await slowInstall(t, h.url, 'fs', readFileSync(await probe('slow')), 20);
    await until(() => files(dir).some((f) => f.startsWith('.partial-')), 'the slow install streams into a partial file');
    const other = 'other:0.0.1';
    assert.equal(await h.client.installFile(await probe('other'), 'fs'), other);
    await h.client.uninstall(other);
    assert.ok(!s.destroyed, 'the other install and uninstall completed while the slow one was still streaming');
    s.destroy();
    await until(() => files(dir).length === 0, 'the temp file of the abandoned install is removed');
    assert.deepEqual(await h.client.list(), []);
  });

  test('the overall install deadline ends a trickling install and removes its temp file', async (t) => {
    const h = await startRuntime(t, { repositories: { fs: { key: true } }, topToml: 'install_timeout = "4s"' });
    const logs = captureLog(t);
    const dir = h.repoDir('fs');
    const s = await slowInstall(t, h.url, 'fs', readFileSync(await probe('slow')));
    await until(() => files(dir).some((f) => f.startsWith('.partial-')), 'the slow install streams into a partial file');
    // Each byte comes well within npk_stream_timeout (10 s); only the deadline ends it.
    assert.ok(await closedWithin(s, 30_000), 'the deadline closes the slow connection');
    await until(() => files(dir).length === 0, 'the temp file is removed');
    assert.ok(
      logs.some((r) => r.level === 'warn' && /install of \d+ bytes into fs aborted after \d+ bytes: not complete within 4000 ms/.test(r.message)),
      JSON.stringify(logs.map((r) => r.message)),
    );
    assert.deepEqual(await h.client.list(), []);
  });

  test('an install into a repository whose directory was removed is answered with an error; the daemon and its containers live on', async (t) => {
    const h = await startDaemon(t, { repositories: { mem: { type: 'mem', key: true }, fs: { key: true } } });
    const sleeper = 'sleeper:0.0.1';
    await h.client.installFile(await probe('sleeper'), 'mem');
    await h.client.start(sleeper);
    await h.waitFor(isStarted(sleeper));
    const dir = h.repoDir('fs');
    const npk = await probe('lost');
    for (let i = 0; i < 5; i++) {
      rmSync(dir, { recursive: true, force: true });
      const e = await wireError(h.client.installFile(npk, 'fs'));
      assert.deepEqual(e, { configuration: { context: `repository fs: directory ${dir} is missing` } });
    }
    assert.equal(h.proc.exitCode, null, `the daemon is alive:\n${h.output()}`);
    assert.notEqual((await h.client.inspect(sleeper)).process, null, 'the container still runs');
    assert.match(h.output(), /install into fs failed: invalid configuration: repository fs: directory .* is missing/);
    // Once the directory is back, installs work again.
    mkdirSync(dir);
    assert.equal(await h.client.installFile(npk, 'fs'), 'lost:0.0.1');
    assert.deepEqual(files(dir), ['lost:0.0.1.npk']);
    await h.client.kill(sleeper, 9);
    await h.waitFor(isExit(sleeper));
  });

  test('uninstall of a container whose NPK file vanished succeeds with a warning, and it can be installed again', async (t) => {
    const h = await startRuntime(t, { repositories: { fs: { key: true } } });
    const logs = captureLog(t);
    const C = 'vanishing:0.0.1';
    const npk = await probe('vanishing');
    await h.client.installFile(npk, 'fs');
    rmSync(join(h.repoDir('fs'), `${C}.npk`));
    await h.client.uninstall(C);
    assert.ok(logs.some((r) => r.level === 'warn' && r.message.includes(`of ${C} vanished: treating ${C} as uninstalled`)));
    assert.deepEqual(await h.client.list(), []);
    assert.deepEqual(await wireError(h.client.uninstall(C)), { invalid_container: { container: C } });
    assert.equal(await h.client.installFile(npk, 'fs'), C);
    assert.deepEqual(await h.client.list(), [C]);
    assert.deepEqual(files(h.repoDir('fs')), [`${C}.npk`]);
  });

  test('a failed start and a cut-off install leave a line in the log', async (t) => {
    const h = await startRuntime(t, { repositories: { mem: { type: 'mem', key: true } } });
    const logs = captureLog(t);
    const C = 'badinit:0.0.1';
    await h.client.installFile(await probe('badinit'), 'mem');
    const e = await wireError(h.client.start(C, { init: '/does/not/exist' }));
    assert.ok('start_container_failed' in e, JSON.stringify(e));
    await until(() => logs.some((r) => r.level === 'warn' && r.message.startsWith(`Failed to start ${C}: `)), 'the failed start in the log');

    const s = await rawConnect(h.url);
    s.write('{"request":{"install":{"repository":"mem","size":100000}}}\n');
    s.end(Buffer.alloc(1000));
    await closedWithin(s, 10_000);
    await until(
      () => logs.some((r) => r.level === 'warn' && /install of 100000 bytes into mem aborted after 1000 bytes: npk stream ended/.test(r.message)),
      'the aborted install in the log',
    );
  });

  test('a restart removes the empty mount-point directories a crash left in run_dir, and nothing else', async (t) => {
    const p = await prepare({ repositories: { default: {} } });
    t.after(() => rmSync(p.dir, { recursive: true, force: true }));
    const run = p.config.runDir;
    for (const d of ['hello:0.0.1', 'res:1.2.3', 'full:0.0.1', 'not-a-container']) mkdirSync(join(run, d));
    mkdirSync(join(run, 'full:0.0.1', 'inside'));
    const rt = await Runtime.start(p.config);
    await rt.shutdown();
    assert.ok(!existsSync(join(run, 'hello:0.0.1')));
    assert.ok(!existsSync(join(run, 'res:1.2.3')));
    assert.ok(existsSync(join(run, 'full:0.0.1', 'inside')), 'a directory with content stays');
    assert.ok(existsSync(join(run, 'not-a-container')), 'a directory not named like a container stays');
  });

  test('with shutdown_grace, a container gets SIGTERM at shutdown and saves its state before it is killed', async (t) => {
    const h = await startRuntime(t, { repositories: { mem: { type: 'mem', key: true } }, topToml: 'shutdown_grace = "10s"' });
    const out = captureOutput(t);
    const C = 'saver:0.0.1';
    const npk = await probe('saver', {
      manifest: { args: ['term-write', 'saved', '/data/state', '300'], mounts: { '/data': { type: 'persist' } } },
    });
    await h.client.installFile(npk, 'mem');
    await h.client.start(C);
    await out.waitFor(C, /^Waiting for SIGTERM$/);
    await h.stop();
    assert.equal(readFileSync(join(h.config.dataDir, 'saver', 'state'), 'utf8'), 'saved');
    assert.deepEqual(h.notifications.filter(isExit(C)).map((n) => (n as { exit: unknown[] }).exit[1]), [{ exit: { code: 0 } }]);
  });

  test('nstar-stress start-stop goes on when a container exits by itself, and prints its iterations', async (t) => {
    const h = await startRuntime(t, { repositories: { mem: { type: 'mem', key: true } } });
    await h.client.installFile(await probe('quick', { manifest: { args: ['exit', '0'] } }), 'mem');
    let out = '';
    let err = '';
    const code = await stress(['-u', h.url, '-m', 'start-stop', '-d', '2s', '-i', '0s'], {
      out: (s) => void (out += s),
      err: (s) => void (err += s),
      isTTY: false,
    });
    assert.equal(code, 0, err);
    const m = /^iterations: (\d+)$/m.exec(out);
    assert.ok(m && Number(m[1]) > 0, out);
  });
});
