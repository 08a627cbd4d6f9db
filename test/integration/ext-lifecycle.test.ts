// The runtime's extensions against the real runtime (issue 9): stop with a
// grace period, exec into a running container, pause/resume through the
// cgroup freezer, statistics by category and the startup phases in inspect,
// and the debug commands of the config.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';

import type { Notification } from '../../src/client/index.js';
import { stringifyJson } from '../../src/console/codec.js';
import { fixtureNpk } from '../fixtures/npk.js';
import { privileged } from './privileged.js';
import { captureLog, until } from './runtime-checks.js';
import { startRuntime, type HarnessOptions } from './runtime-harness.js';



const started = (c: string) => (n: Notification) => typeof n === 'object' && 'started' in n && n.started === c;
const exitOf = (c: string) => (n: Notification) => typeof n === 'object' && 'exit' in n && n.exit[0] === c;

/** One probe container `name:0.0.1` with `args`, started; returns the harness and its pid. */
async function runProbe(t: TestContext, name: string, args: string[], o: HarnessOptions = {}, manifest: Record<string, unknown> = {}) {
  const npk = await fixtureNpk({ name, manifest: { args, io: { stdout: 'pipe', stderr: 'pipe' }, ...manifest }, key: true });
  const h = await startRuntime(t, { ...o, repositories: { default: { npks: [npk], key: true } } });
  const id = `${name}:0.0.1`;
  await h.client.start(id);
  await h.waitFor(started(id));
  const data = await h.client.inspect(id);
  assert.ok(data.process, `${id} has a process`);
  return { h, id, pid: data.process.pid };
}

/** The v1 freezer state of a process (or v2 `cgroup.freeze` as FROZEN/THAWED). */
function freezerState(pid: number): string {
  const lines = readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n');
  const v1 = lines.map((l) => l.split(':')).find(([, ctrl]) => ctrl!.split(',').includes('freezer'));
  if (v1) return readFileSync(join('/sys/fs/cgroup/freezer', v1[2]!, 'freezer.state'), 'utf8').trim();
  const v2 = lines.map((l) => l.split(':')).find(([h]) => h === '0')!;
  const base = statSync('/sys/fs/cgroup/unified', { throwIfNoEntry: false }) ? '/sys/fs/cgroup/unified' : '/sys/fs/cgroup';
  return readFileSync(join(base, v2[2]!, 'cgroup.freeze'), 'utf8').trim() === '1' ? 'FROZEN' : 'THAWED';
}

/** utime+stime of a process in clock ticks. */
function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return Number(f[11]) + Number(f[12]);
}

/** The container's process below init: the child of `pid` (init). */
function childOf(pid: number): number {
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
  assert.equal(children.length, 1, `init ${pid} has one child: ${children.join(' ')}`);
  return Number(children[0]);
}

function alive(pid: number): boolean {
  try {
    return !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z');
  } catch {
    return false;
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe('runtime extensions', privileged({ cgroups: true }), () => {
  test('stop ends a probe that ignores SIGTERM with SIGKILL once the grace is over', { timeout: 30_000 }, async (t) => {
    const logs = captureLog(t);
    const { h, id, pid } = await runProbe(t, 'stubborn', ['ignore']);
    // The probe says it ignores the signal before we stop it, so the SIGTERM lands on SIG_IGN.
    await until(() => logs.some((r) => r.target === id && r.message.includes('Ignoring signals')), 'probe output');
    const proc = childOf(pid);
    // A second stop (another client) while the first waits: both are answered once it is gone.
    const other = await h.connect();
    const stops = Promise.all([h.client.stop(id, 2_000), other.stop(id, 60_000)]);
    // Within the grace the container is `stopping` and its process, deaf to SIGTERM, lives on.
    // (A client answers one request at a time: inspect on a third connection.)
    const observer = await h.connect();
    while (!/stopping/.test((await observer.inspect(id)).state ?? '')) await sleep(20);
    assert.ok(alive(proc), 'the SIGTERM-ignoring process survives until the grace ends');
    assert.deepEqual(await stops, [id, id]);
    const exit = await h.waitFor(exitOf(id));
    assert.deepEqual(exit, { exit: [id, { signalled: { signal: 9 } }] });
    assert.ok(!alive(proc));
    assert.equal((await h.client.inspect(id)).process, null);
  });

  test('stop of a probe that exits on SIGTERM replies at once, long before the grace', { timeout: 20_000 }, async (t) => {
    const { h, id } = await runProbe(t, 'obedient', ['sleep']);
    // A grace of 60 s against a test timeout of 20 s: the reply must not wait for it.
    await h.client.stop(id, 60_000);
    const exit = await h.waitFor(exitOf(id), 5_000);
    assert.deepEqual(exit, { exit: [id, { signalled: { signal: 15 } }] });
    assert.equal((await h.client.inspect(id)).process, null);
  });

  test('a stop sent while the start is under way ends the container once it runs', { timeout: 30_000 }, async (t) => {
    const npk = await fixtureNpk({ name: 'racer', manifest: { args: ['sleep'] }, key: true });
    const h = await startRuntime(t, { repositories: { default: { npks: [npk], key: true } } });
    const id = 'racer:0.0.1';
    const other = await h.connect();
    const start = h.client.start(id).then(
      (v) => ({ ok: v }),
      (e: Error) => ({ error: e.message }),
    );
    await sleep(20);
    const stop = await other.stop(id, 5_000).then(
      (v) => ({ ok: v }),
      (e: Error) => ({ error: e.message }),
    );
    const started = await start;
    // Either the stop came before the container existed (not started) or it ended the fresh process.
    if ('ok' in stop) {
      assert.deepEqual(started, { ok: id });
      await h.waitFor(exitOf(id), 10_000);
      assert.equal((await h.client.inspect(id)).process, null, 'stopped');
    } else {
      assert.match(stop.error, /is not running: nothing to stop/);
      assert.deepEqual(started, { ok: id }, 'the start is not disturbed by the refused stop');
    }
  });

  test('exec runs a process in the container namespaces and root and returns its pid and exit status', { timeout: 30_000 }, async (t) => {
    const { h, id, pid } = await runProbe(t, 'execd', ['sleep']);
    const logs = captureLog(t);
    const target = childOf(pid);

    const status = await h.client.exec(id, '/probe', { args: ['exit', '3'], wait: true });
    assert.ok(status.pid > 0 && status.pid !== pid, `exec pid ${status.pid} is its own (init ${pid})`);
    assert.deepEqual(status.status, { exit: { code: 3 } });

    // /probe exists only in the container's root.
    assert.deepEqual((await h.client.exec(id, '/probe', { args: ['exists', '/probe'], wait: true })).status, { exit: { code: 0 } });

    // A long-running exec: same namespaces and root as the container's process.
    const bg = await h.client.exec(id, '/probe', { args: ['sleep', '3000'] });
    assert.equal(bg.status, null);
    for (const ns of ['pid', 'mnt', 'ipc', 'uts', 'net']) {
      assert.equal(readlinkSync(`/proc/${bg.pid}/ns/${ns}`), readlinkSync(`/proc/${target}/ns/${ns}`), `${ns} namespace`);
    }
    assert.equal(readFileSync(`/proc/${bg.pid}/cgroup`, 'utf8'), readFileSync(`/proc/${target}/cgroup`, 'utf8'), 'same cgroups');
    const root = statSync(`/proc/${bg.pid}/root/`);
    const croot = statSync(`/proc/${target}/root/`);
    assert.deepEqual([root.dev, root.ino], [croot.dev, croot.ino], 'same root');
    assert.notEqual(statSync('/').ino === root.ino && statSync('/').dev === root.dev, true, 'not the host root');

    // Its output is logged with the container as target; getpid is its pid-namespace pid.
    const ids = await h.client.exec(id, '/probe', { args: ['ids'], wait: true });
    assert.deepEqual(ids.status, { exit: { code: 0 } });
    await until(() => logs.some((r) => r.target === id && /^getpid: \d+$/.test(r.message)), 'exec output in the log');
    const nsPid = Number(logs.find((r) => r.target === id && r.message.startsWith('getpid:'))!.message.split(' ')[1]);
    // (A process gone before its host pid could be looked up is reported by its namespace pid.)
    assert.ok(nsPid > 1 && nsPid <= ids.pid, `pid-namespace pid ${nsPid} (host ${ids.pid})`);

    // Its environment is exactly the one given (nothing inherited from the runtime).
    const env = await h.client.exec(id, '/probe', { args: ['env'], env: { FOO: 'bar' }, wait: true });
    assert.deepEqual(env.status, { exit: { code: 0 } });
    await until(() => logs.some((r) => r.target === id && r.message === 'env: FOO=bar'), 'the exec environment');
    assert.ok(!logs.some((r) => r.target === id && r.message.startsWith('env: NSTAR_TEST=')), 'the runtime environment leaked into exec');

    // The container itself keeps running.
    assert.equal((await h.client.inspect(id)).process?.pid, pid);
    await assert.rejects(h.client.exec(id, '/no/such/file', { wait: true }));
  });

  test('exec into a container that is not running is refused', { timeout: 20_000 }, async (t) => {
    const npk = await fixtureNpk({ name: 'idle', key: true });
    const h = await startRuntime(t, { repositories: { default: { npks: [npk], key: true } } });
    await assert.rejects(h.client.exec('idle:0.0.1', '/probe', { wait: true }), (e: { wire?: object }) => {
      assert.deepEqual(e.wire, { stop_container_not_started: { container: 'idle:0.0.1' } });
      return true;
    });
  });

  test('pause freezes a counting probe and resume lets it count on', { timeout: 30_000 }, async (t) => {
    const logs = captureLog(t);
    const { h, id, pid } = await runProbe(t, 'counter', ['count', '20']);
    const counts = () => logs.filter((r) => r.target === id && r.message.startsWith('count:')).length;
    await until(() => counts() >= 3, 'the probe counting');
    const proc = childOf(pid);

    await h.client.pause(id);
    assert.equal(freezerState(proc), 'FROZEN');
    assert.match((await h.client.inspect(id)).state ?? '', /paused$/);
    const frozenAt = counts();
    const ticks = cpuTicks(proc);
    await sleep(500);
    assert.equal(counts(), frozenAt, 'no output while paused');
    assert.equal(cpuTicks(proc), ticks, 'no cpu time while paused');

    await h.client.resume(id);
    assert.equal(freezerState(proc), 'THAWED');
    await until(() => counts() >= frozenAt + 3, 'counting after resume');
    assert.doesNotMatch((await h.client.inspect(id)).state ?? '', /paused/);
  });

  test('a paused cpu-burning probe gets no cpu time until it is resumed', { timeout: 30_000 }, async (t) => {
    const { h, id, pid } = await runProbe(t, 'burner', ['burn']);
    const proc = childOf(pid);
    const before = cpuTicks(proc);
    await until(() => cpuTicks(proc) > before + 5, 'the probe burning cpu');
    await h.client.pause(id);
    const frozen = cpuTicks(proc);
    await sleep(300);
    assert.equal(cpuTicks(proc), frozen, 'no cpu time while paused');
    await h.client.resume(id);
    await until(() => cpuTicks(proc) > frozen + 5, 'cpu time after resume');
  });

  test('a paused container can be killed: it is thawed and the signal ends it', { timeout: 30_000 }, async (t) => {
    const { h, id, pid } = await runProbe(t, 'pausekill', ['sleep']);
    const proc = childOf(pid);
    await h.client.pause(id);
    assert.equal(freezerState(proc), 'FROZEN');
    await assert.rejects(h.client.exec(id, '/probe', { args: ['exit', '0'], wait: true }), 'no exec into a paused container');
    await h.client.kill(id, 15);
    const exit = await h.waitFor(exitOf(id), 10_000);
    assert.deepEqual(exit, { exit: [id, { signalled: { signal: 15 } }] });
    assert.equal((await h.client.inspect(id)).process, null);
  });

  test('a paused container can be stopped without waiting for the grace', { timeout: 20_000 }, async (t) => {
    const { h, id } = await runProbe(t, 'pausestop', ['sleep']);
    await h.client.pause(id);
    await h.client.stop(id, 60_000);
    const exit = await h.waitFor(exitOf(id), 10_000);
    assert.deepEqual(exit, { exit: [id, { signalled: { signal: 15 } }] });
  });

  test('shutdown with a paused container thaws and ends it and removes its cgroups', { timeout: 30_000 }, async (t) => {
    const { h, id, pid } = await runProbe(t, 'pausedown', ['ignore']);
    const proc = childOf(pid);
    const cg = readFileSync(`/proc/${proc}/cgroup`, 'utf8').split('\n').find((l) => l.includes(':freezer:'));
    await h.client.pause(id);
    await h.stop();
    assert.ok(!existsSync(`/proc/${proc}`) || readFileSync(`/proc/${proc}/stat`, 'utf8').includes(') Z'), 'the container process is gone');
    if (cg) assert.ok(!existsSync(join('/sys/fs/cgroup/freezer', cg.split(':')[2]!)), 'its freezer cgroup is removed');
    assert.ok(h.notifications.some((n) => n === 'shutdown' || (typeof n === 'object' && 'exit' in n)), JSON.stringify(h.notifications));
  });

  test('inspect reports statistics by category and the startup phases of the last start', { timeout: 30_000 }, async (t) => {
    const { h, id } = await runProbe(t, 'stats', ['eat', '64', '50'], {}, { cgroups: { memory: { memory_hard_limit: 64 * 1024 * 1024 } } });
    await sleep(100);
    const all = await h.client.inspect(id, ['cpu', 'memory', 'memory_events', 'io', 'pids']);
    const stats = all.process!.statistics as Record<string, unknown>;
    assert.ok(stats && typeof stats === 'object', `statistics: ${stringifyJson(stats)}`);
    assert.deepEqual(Object.keys(stats).sort(), ['cpu', 'io', 'memory', 'memory_events', 'pids']);
    const mem = await h.client.inspect(id, ['memory']);
    const memStats = mem.process!.statistics as Record<string, unknown>;
    assert.deepEqual(Object.keys(memStats), ['memory'], 'only the asked category');
    assert.ok(stringifyJson(memStats.memory).match(/\d{4,}/), `memory usage numbers: ${stringifyJson(memStats.memory)}`);

    const startup = all.startup as Record<string, number>;
    assert.ok(startup && Object.keys(startup).length >= 2, `startup phases: ${JSON.stringify(startup)}`);
    for (const [phase, ms] of Object.entries(startup)) assert.ok(typeof ms === 'number' && ms >= 0, `${phase}: ${ms}`);
    // The phases of spec/README.md "startup timing".
    for (const phase of ['resolve', 'mount', 'spawn', 'setup', 'cgroups', 'exec', 'total']) assert.ok(phase in startup, `phase ${phase} in ${JSON.stringify(startup)}`);
    assert.ok(startup.total! >= startup.mount! + startup.spawn!, `total ${startup.total} covers mount and spawn`);
  });

  test('debug commands run with <PID> and <CONTAINER> substituted and their output is logged', { timeout: 30_000 }, async (t) => {
    const logs = captureLog(t);
    const { id, pid } = await runProbe(t, 'debugged', ['sleep'], {
      extraToml: '[debug]\ncommands = ["/bin/echo debug <PID> <CONTAINER>"]',
    });
    await until(() => logs.some((r) => r.target === id && r.message.startsWith('debug ')), 'the debug command output');
    const line = logs.find((r) => r.target === id && r.message.startsWith('debug '))!;
    assert.equal(line.message, `debug ${pid} ${id}`);
    assert.equal(line.level, 'info');
  });
});
