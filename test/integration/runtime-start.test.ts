// The real runtime, "Basic start/stop and errors" of spec/behaviours.md and
// the start/kill semantics of spec/console.md §4.7: probe NPKs packed by our
// packer in an fs repository, driven through the console. After each test the
// runtime is shut down and nothing may be left (mounts, loop devices, cgroups).
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { after, describe, test } from 'node:test';

import { privileged } from './privileged.js';
import {
  assertNoTestCgroups,
  captureOutput,
  exitsOf,
  isCgroup,
  isExit,
  isStarted,
  leakCheck,
  loopsBackedBy,
  nthExit,
  probe,
  testContainer,
  testResource,
  wireError,
} from './runtime-checks.js';
import { startRuntime } from './runtime-harness.js';

const TC = 'test-container:0.0.1';
const TR = 'test-resource:0.0.1';

async function withContainerAndResource(t: Parameters<typeof startRuntime>[0], extra: string[] = []) {
  const npks = [await testContainer(), await testResource(), ...extra];
  return startRuntime(t, { repositories: { default: { npks, key: true } } });
}

describe('runtime: start, stop and errors', privileged({ cgroups: true }), () => {
  after(() => assertNoTestCgroups());

  test('a container starts and stops ten times, each run reported by started and exit notifications', async (t) => {
    const h = await withContainerAndResource(t);
    const leaks = leakCheck(h);
    const out = captureOutput(t);
    for (let i = 1; i <= 10; i++) {
      await h.client.start(TC);
      await h.waitFor((n) => isStarted(TC)(n) && h.notifications.filter(isStarted(TC)).length >= i);
      // Like Northstar's start_stop: the probe itself says it sleeps (its output, not the runtime's log).
      await out.waitFor(TC, /^Sleeping\.\.\.$/, 20_000, i);
      assert.equal((await h.client.inspect(TC)).process !== null, true, `run ${i}: inspect shows a process`);
      await h.client.kill(TC, 15);
      assert.deepEqual(await nthExit(h, TC, i), { signalled: { signal: 15 } }, `run ${i}`);
    }
    assert.equal((await h.client.inspect(TC)).process, null);
    await leaks.assertClean();
  });

  test('crash and signal exits come back with the exact status', async (t) => {
    const h = await withContainerAndResource(t);
    const leaks = leakCheck(h);
    for (let i = 1; i <= 10; i++) {
      await h.client.start(TC, { args: ['crash'] });
      assert.deepEqual(await nthExit(h, TC, i), { exit: { code: 101 } });
    }
    let n = 10;
    for (const code of [0, 1, 127, 255]) {
      await h.client.start(TC, { args: ['exit', String(code)] });
      assert.deepEqual(await nthExit(h, TC, ++n), { exit: { code } });
    }
    await h.client.start(TC, { args: ['abort'] });
    assert.deepEqual(await nthExit(h, TC, ++n), { signalled: { signal: 6 } });
    await h.client.start(TC, { args: ['segfault'] });
    assert.deepEqual(await nthExit(h, TC, ++n), { signalled: { signal: 11 } });
    await h.client.start(TC);
    await h.waitFor(isStarted(TC));
    await h.client.kill(TC, 9);
    assert.deepEqual(await nthExit(h, TC, ++n), { signalled: { signal: 9 } });
    // Every run: started, then exit — even for a process that exits at once.
    const seq = h.notifications.filter((x) => isStarted(TC)(x) || isExit(TC)(x)).map((x) => (isStarted(TC)(x) ? 's' : 'e'));
    assert.equal(seq.join(''), 'se'.repeat(n));
    await leaks.assertClean();
  });

  test('start of a resource answers start_container_resource; a missing resource start_container_missing_resource', async (t) => {
    const h = await startRuntime(t, { repositories: { default: { npks: [await testContainer(), await testResource()], key: true }, mem: { type: 'mem', key: true } } });
    const leaks = leakCheck(h);
    assert.deepEqual(await wireError(h.client.start(TR)), { start_container_resource: { container: TR } });
    // `<INIT>` stands for the manifest init, which a resource has not.
    assert.deepEqual(await wireError(h.client.start(TR, { init: '<INIT>' })), { start_container_resource: { container: TR } });
    // Only the container, no resource: uninstall the resource first.
    await h.client.uninstall(TR);
    assert.deepEqual(await wireError(h.client.start(TC)), {
      start_container_missing_resource: { container: TC, resource: 'test-resource', version: '>=0.0.1' },
    });
    await h.client.uninstall(TC);
    assert.deepEqual(exitsOf(h, TC), []);
    await leaks.assertClean();
  });

  test('a resource resolves to the highest installed version that satisfies the requirement', async (t) => {
    const h = await withContainerAndResource(t, [await testResource('0.0.2')]);
    const leaks = leakCheck(h);
    const out = captureOutput(t);
    // /v2 exists only in test-resource 0.0.2 (deviation 1: Northstar would take 0.0.1).
    await h.client.start(TC, { args: ['exists', '/resource/v2'] });
    assert.deepEqual(await nthExit(h, TC, 1), { exit: { code: 0 } });
    await h.client.start(TC, { args: ['cat', '/resource/hello'], env: { PROBE_PARK: '0' } });
    assert.deepEqual(await nthExit(h, TC, 2), { exit: { code: 0 } });
    assert.ok(out.of(TC).includes('hello from test resource 0.0.2'), JSON.stringify(out.of(TC)));
    // Only the used version got mounted for the start.
    assert.equal((await h.client.inspect('test-resource:0.0.2')).mounted, true);
    assert.equal((await h.client.inspect(TR)).mounted, false);
    await leaks.assertClean();
  });

  test('a resource in use cannot be unmounted or uninstalled; after the stop it can, and a start mounts it again', async (t) => {
    const h = await withContainerAndResource(t);
    const leaks = leakCheck(h);
    const out = captureOutput(t);
    await h.client.start(TC, { args: ['cat', '/resource/hello'] });
    await out.waitFor(TC, /^hello from test resource 0\.0\.1$/);
    assert.deepEqual(await h.client.umount([TR]), [{ error: { container: TR, error: { umount_busy: { container: TC } } } }]);
    assert.deepEqual(await h.client.umount([TC]), [{ error: { container: TC, error: { umount_busy: { container: TC } } } }]);
    assert.deepEqual(await wireError(h.client.uninstall(TR)), { umount_busy: { container: TC } });
    assert.deepEqual(await wireError(h.client.uninstall(TC)), { umount_busy: { container: TC } });
    await h.client.kill(TC, 15);
    await nthExit(h, TC, 1);
    assert.deepEqual(await h.client.umount([TR]), [{ ok: { container: TR } }]);
    assert.equal((await h.client.inspect(TR)).mounted, false);
    // start_mounted_container_with_not_mounted_resource
    assert.equal((await h.client.inspect(TC)).mounted, true);
    await h.client.start(TC, { args: ['exists', '/resource/hello'] });
    assert.deepEqual(await nthExit(h, TC, 2), { exit: { code: 0 } });
    assert.equal((await h.client.inspect(TR)).mounted, true);
    await h.client.uninstall(TC);
    await h.client.uninstall(TR);
    assert.deepEqual(await h.client.list(), []);
    assert.deepEqual(readdirSync(h.repoDir('default')), [], 'uninstall removes the NPK files');
    await leaks.assertClean();
  });

  test('a started container and another version of its name answer start_container_started', async (t) => {
    const h = await withContainerAndResource(t, [await testContainer({ version: '0.0.2' })]);
    const leaks = leakCheck(h);
    await h.client.start(TC);
    await h.waitFor(isStarted(TC));
    assert.deepEqual(await wireError(h.client.start(TC)), { start_container_started: { container: TC } });
    assert.deepEqual(await wireError(h.client.start('test-container:0.0.2')), { start_container_started: { container: TC } });
    await h.client.kill(TC, 15);
    await nthExit(h, TC, 1);
    await h.client.start('test-container:0.0.2', { args: ['exit', '3'] });
    assert.deepEqual(await nthExit(h, 'test-container:0.0.2', 1), { exit: { code: 3 } });
    await leaks.assertClean();
  });

  test('kill checks the signal and the state; unknown containers answer invalid_container for every request', async (t) => {
    const h = await withContainerAndResource(t);
    const leaks = leakCheck(h);
    assert.deepEqual(await wireError(h.client.kill(TC, 15)), { stop_container_not_started: { container: TC } });
    await h.client.start(TC);
    await h.waitFor(isStarted(TC));
    for (const bad of [0, 32, 65, -1]) {
      const e = await wireError(h.client.kill(TC, bad));
      assert.ok('unexpected' in e, `signal ${bad}: ${JSON.stringify(e)}`);
    }
    assert.notEqual((await h.client.inspect(TC)).process, null, 'a refused kill leaves the container running');
    await h.client.kill(TC, 15);
    await nthExit(h, TC, 1);

    for (const id of ['foo:0.0.1', 'unknown_application:0.0.12']) {
      const invalid = { invalid_container: { container: id } };
      assert.deepEqual(await wireError(h.client.start(id)), invalid);
      assert.deepEqual(await wireError(h.client.kill(id, 15)), invalid);
      assert.deepEqual(await wireError(h.client.uninstall(id)), invalid);
      assert.deepEqual(await wireError(h.client.inspect(id)), invalid);
      assert.deepEqual(await h.client.mount([id]), [{ error: { container: id, error: invalid } }]);
      assert.deepEqual(await h.client.umount([id]), [{ error: { container: id, error: invalid } }]);
    }
    // A name that is no container id at all is refused by the console, not by the runtime.
    await assert.rejects(h.client.kill('foo:0.0.1:default', 15));
    await assert.rejects(h.client.start('unknown_application:0.0.12:asdf'));
    await leaks.assertClean();
  });

  test('start arguments and environment replace the manifest ones; NORTHSTAR_ keys are reserved; <INIT> is the manifest init', async (t) => {
    const npk = await probe('envy', { manifest: { args: ['exit', '42'], env: { FROM_MANIFEST: 'yes' } } });
    const h = await startRuntime(t, { repositories: { default: { npks: [npk], key: true } } });
    const leaks = leakCheck(h);
    const out = captureOutput(t);
    const C = 'envy:0.0.1';
    await h.client.start(C);
    assert.deepEqual(await nthExit(h, C, 1), { exit: { code: 42 } });

    await h.client.start(C, { args: ['env'] });
    assert.deepEqual(await nthExit(h, C, 2), { exit: { code: 0 } });
    const env1 = out.of(C).filter((l) => l.startsWith('env: '));
    assert.ok(env1.includes('env: FROM_MANIFEST=yes'), JSON.stringify(env1));
    for (const e of ['NORTHSTAR_NAME=envy', 'NORTHSTAR_VERSION=0.0.1', 'NORTHSTAR_CONTAINER=envy:0.0.1']) assert.ok(env1.includes(`env: ${e}`), e);

    const before = out.of(C).length;
    await h.client.start(C, { args: ['env'], env: { OVERRIDE: '1' } });
    assert.deepEqual(await nthExit(h, C, 3), { exit: { code: 0 } });
    const env2 = out.of(C).slice(before).filter((l) => l.startsWith('env: '));
    assert.ok(env2.includes('env: OVERRIDE=1'), JSON.stringify(env2));
    assert.ok(!env2.includes('env: FROM_MANIFEST=yes'), 'the request environment replaces the manifest one');
    assert.ok(env2.includes('env: NORTHSTAR_CONTAINER=envy:0.0.1'));

    const e = await wireError(h.client.start(C, { env: { NORTHSTAR_NAME: 'evil' } }));
    assert.ok('invalid_arguments' in e, JSON.stringify(e));
    assert.equal(exitsOf(h, C).length, 3, 'a refused start runs nothing');

    await h.client.start(C, { init: '<INIT>', args: ['exit', '5'] });
    assert.deepEqual(await nthExit(h, C, 4), { exit: { code: 5 } });
    const e2 = await wireError(h.client.start(C, { init: '/nonexistent' }));
    assert.equal((e2 as { start_container_failed?: { container: string } }).start_container_failed?.container, C, JSON.stringify(e2));
    assert.equal(exitsOf(h, C).length, 4, 'an init that cannot run is a failed start, not an exit');
    await leaks.assertClean();
  });

  test('a probe over its memory_hard_limit is OOM-killed and produces a c_group notification', async (t) => {
    const npk = await probe('memeater', { manifest: { args: ['eat', '1024', '5'], cgroups: { memory: { oom_monitor: true, memory_hard_limit: 20 * 1024 * 1024, swappiness: 0 } } } });
    const h = await startRuntime(t, { repositories: { default: { npks: [npk], key: true } } });
    const leaks = leakCheck(h);
    const C = 'memeater:0.0.1';
    await h.client.start(C);
    // On cgroup v2 every change of memory.events is a notification: reclaim at the limit (max) may come before the OOM.
    const memory = (x: unknown) => (x as { c_group: [string, { memory: Record<string, unknown> }] }).c_group[1].memory;
    const n = await h.waitFor((x) => isCgroup(C)(x) && (Number(memory(x).oom) >= 1 || Number(memory(x).oom_kill) >= 1), 20_000);
    assert.ok(memory(n), JSON.stringify(n));
    assert.deepEqual(await nthExit(h, C, 1), { signalled: { signal: 9 } });
    await leaks.assertClean();
  });

  test('inspect of a running container shows its pid, a growing uptime and the statistics asked for', async (t) => {
    const h = await withContainerAndResource(t);
    const leaks = leakCheck(h);
    await h.client.start(TC);
    await h.waitFor(isStarted(TC));
    const a = await h.client.inspect(TC, ['memory', 'pids']);
    assert.equal(a.mounted, true);
    assert.equal(a.repository, 'default');
    assert.equal((a.manifest as { name: string }).name, 'test-container');
    assert.ok(a.process && a.process.pid > 1, `pid ${a.process?.pid}`);
    assert.ok(readFileSync(`/proc/${a.process.pid}/cmdline`, 'utf8').length > 0, 'the pid is a live process of this host');
    await new Promise((r) => setTimeout(r, 20));
    const b = await h.client.inspect(TC);
    assert.ok(Number(b.process!.uptime) > Number(a.process.uptime), `${String(b.process!.uptime)} > ${String(a.process.uptime)}`);
    const stats = a.process.statistics as Record<string, unknown>;
    assert.ok(stats && 'memory' in stats && 'pids' in stats, `statistics: ${Object.keys(stats ?? {}).join(', ')}`);
    await h.client.kill(TC, 15);
    await nthExit(h, TC, 1);
    await leaks.assertClean();
  });

  test('autostart starts relaxed and critical containers at startup; a failing critical container shuts the runtime down', async (t) => {
    const relaxed = await probe('relaxed', { manifest: { autostart: 'relaxed' } });
    const critical = await probe('critical', { manifest: { autostart: 'critical', args: ['sleep'] } });
    const h = await startRuntime(t, { repositories: { default: { npks: [relaxed, critical], key: true } } });
    const leaks = leakCheck(h);
    for (const c of ['relaxed:0.0.1', 'critical:0.0.1']) assert.notEqual((await h.client.inspect(c)).process, null, `${c} runs`);
    // A signal is no success: the critical container's exit ends the runtime with critical_container.
    await h.client.kill('critical:0.0.1', 9);
    const stopped = await h.runtime.stopped;
    assert.equal(stopped.ok, false);
    assert.match(stopped.reason ?? '', /critical/);
    assert.ok(h.notifications.some(isExit('relaxed:0.0.1')), 'the other containers were stopped');
    await leaks.assertClean();
  });

  test('a critical autostart container that cannot start aborts the startup and leaves nothing', async (t) => {
    const bad = await probe('doomed', { manifest: { autostart: 'critical', init: '/nonexistent' } });
    await assert.rejects(startRuntime(t, { repositories: { default: { npks: [bad], key: true } } }), /doomed/);
    assertNoTestCgroups();
    assert.ok(!readFileSync('/proc/self/mountinfo', 'utf8').includes('doomed:0.0.1'), 'the failed container is unmounted');
    assert.deepEqual(loopsBackedBy('doomed-0.0.1'), [], 'its loop device is detached');
  });

  test('a resource without the requested directory answers start_container_missing_resource', async (t) => {
    const tc = await testContainer({
      name: 'wants-dir',
      manifest: { mounts: { '/resource': { type: 'resource', name: 'test-resource', version: '0.0.1', dir: '/nope' } } },
    });
    const h = await startRuntime(t, { repositories: { default: { npks: [tc, await testResource()], key: true } } });
    const leaks = leakCheck(h);
    const e = await wireError(h.client.start('wants-dir:0.0.1'));
    // The requirement as the manifest model displays it (Rust's VersionReq shows "0.0.1" as "^0.0.1").
    assert.deepEqual(e, { start_container_missing_resource: { container: 'wants-dir:0.0.1', resource: 'test-resource', version: '^0.0.1' } });
    assert.equal((await h.client.inspect('wants-dir:0.0.1')).process, null);
    await leaks.assertClean();
  });

  test('a kill racing a start is refused as not started, or is delivered and the run it meets ends', async (t) => {
    const h = await withContainerAndResource(t);
    const leaks = leakCheck(h);
    const [a, b] = [await h.connect(), await h.connect()];
    let exits = 0;
    for (let i = 0; i < 5; i++) {
      const [s, k] = await Promise.all([wireError(a.start(TC)).catch(() => 'started'), wireError(b.kill(TC, 9)).catch(() => 'killed')]);
      if (k !== 'killed') {
        // Before the start: refused, and the start went on; the next kill ends it.
        assert.deepEqual(k, { stop_container_not_started: { container: TC } });
        assert.equal(s, 'started');
        await h.client.kill(TC, 9);
        assert.deepEqual(await nthExit(h, TC, ++exits), { signalled: { signal: 9 } });
      } else if (s === 'started') {
        // After the start: an ordinary kill.
        assert.deepEqual(await nthExit(h, TC, ++exits), { signalled: { signal: 9 } });
      } else {
        // During the start (the init is behind its start gate): the start fails, and a run that never started has no exit.
        assert.equal((s as { start_container_failed?: { container: string } }).start_container_failed?.container, TC, JSON.stringify(s));
        assert.equal(exitsOf(h, TC).length, exits);
      }
      assert.equal((await h.client.inspect(TC)).process, null);
    }
    await leaks.assertClean();
  });

  test('stop sends SIGTERM and answers once the container is gone; stop of a stopped container is refused', async (t) => {
    const h = await withContainerAndResource(t);
    const leaks = leakCheck(h);
    assert.deepEqual(await wireError(h.client.stop(TC, 1000)), { stop_container_not_started: { container: TC } });
    await h.client.start(TC);
    await h.waitFor(isStarted(TC));
    assert.equal(await h.client.stop(TC, 5000), TC);
    assert.deepEqual(exitsOf(h, TC).length <= 1, true);
    assert.deepEqual(await nthExit(h, TC, 1), { signalled: { signal: 15 } });
    assert.equal((await h.client.inspect(TC)).process, null, 'the stop answered after the exit');
    await leaks.assertClean();
  });

  test('a critical autostart container that exits with success does not stop the runtime', async (t) => {
    const ok0 = await probe('fine', { manifest: { autostart: 'critical', args: ['exit', '0'] } });
    const h = await startRuntime(t, { repositories: { default: { npks: [ok0], key: true } } });
    const leaks = leakCheck(h);
    // It may exit before the test's client subscribes: wait for it through inspect.
    for (let i = 0; (await h.client.inspect('fine:0.0.1')).process !== null; i++) {
      assert.ok(i < 500, 'the autostarted container exits');
      await new Promise((r) => setTimeout(r, 20));
    }
    let stoppedEarly = false;
    void h.runtime.stopped.then(() => (stoppedEarly = true));
    await new Promise((r) => setTimeout(r, 50));
    assert.equal(stoppedEarly, false, 'the runtime is still up');
    assert.deepEqual(await h.client.list(), ['fine:0.0.1'], 'the runtime still answers');
    await leaks.assertClean();
    assert.deepEqual(await h.runtime.stopped, { ok: true });
  });

  test('pause freezes and resume thaws a running container; a kill of a paused one ends it; exec runs beside it', async (t) => {
    const h = await withContainerAndResource(t);
    const leaks = leakCheck(h);
    await h.client.start(TC);
    await h.waitFor(isStarted(TC));
    const x = await h.client.exec(TC, '/probe', { args: ['exit', '4'], wait: true });
    assert.deepEqual(x.status, { exit: { code: 4 } });
    await h.client.pause(TC);
    assert.match((await h.client.inspect(TC)).state ?? '', /paused$/);
    const freezer = `/sys/fs/cgroup/freezer/${h.config.cgroup}`;
    const states = () =>
      readdirSync(freezer, { recursive: true, encoding: 'utf8' })
        .filter((f) => f.endsWith('freezer.state') && f.includes('/'))
        .map((f) => readFileSync(`${freezer}/${f}`, 'utf8').trim());
    if (existsSync(freezer)) assert.deepEqual(states(), ['FROZEN'], 'the container cgroup is frozen');
    await h.client.resume(TC);
    assert.match((await h.client.inspect(TC)).state ?? '', /running$/);
    if (existsSync(freezer)) assert.deepEqual(states(), ['THAWED']);
    await h.client.pause(TC);
    await h.client.kill(TC, 15);
    assert.deepEqual(await nthExit(h, TC, 1), { signalled: { signal: 15 } });
    assert.deepEqual(await wireError(h.client.pause(TC)), { stop_container_not_started: { container: TC } });
    await leaks.assertClean();
  });
});
