// The real runtime under requests that overlap (from several clients at
// once): whatever order the supervisor sees them in, every request gets an
// answer of Northstar's vocabulary and nothing is left mounted, attached or
// running afterwards. Also: shutdown with running containers.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { after, describe, test } from 'node:test';

import { privileged } from './privileged.js';
import { assertNoTestCgroups, clones, isExit, isStarted, leakCheck, probe, testContainer, testResource } from './runtime-checks.js';
import { startRuntime } from './runtime-harness.js';

const TC = 'test-container:0.0.1';
const TR = 'test-resource:0.0.1';

const settle = <T>(p: Promise<T>) => p.then((v) => ({ ok: true as const, v }), (e: { wire?: unknown; message: string }) => ({ ok: false as const, e: e.wire ?? e.message }));

describe('runtime: overlapping requests', { ...privileged({ cgroups: true }), timeout: 120_000 }, () => {
  after(() => assertNoTestCgroups());

  test('uninstall racing a mount of the same container leaves nothing mounted', async (t) => {
    const npks = await clones('race', 4);
    for (const type of ['fs', 'mem'] as const) {
      const h = await startRuntime(t, { repositories: { r: type === 'fs' ? { npks, key: true } : { type: 'mem', key: true } } });
      const leaks = leakCheck(h);
      const [a, b] = [await h.connect(), await h.connect()];
      for (const npk of type === 'mem' ? npks : []) await h.client.installFile(npk, 'r');
      leaks.sample();
      const ids = (await h.client.list()).sort();
      const results = await Promise.all(ids.flatMap((c) => [settle(a.mount([c])), settle(b.uninstall(c))]));
      for (const r of results) assert.ok(r.ok || JSON.stringify(r.e).includes('container'), JSON.stringify(r));
      assert.deepEqual(await h.client.list(), [], `${type}: every uninstall went through`);
      await leaks.assertClean();
    }
  });

  test('a start racing an umount of its resource runs with the resource mounted', async (t) => {
    const h = await startRuntime(t, { repositories: { default: { npks: [await testContainer(), await testResource()], key: true } } });
    const leaks = leakCheck(h);
    const [a, b] = [await h.connect(), await h.connect()];
    for (let i = 1; i <= 5; i++) {
      assert.deepEqual(await h.client.mount([TR]), [{ ok: { container: TR } }]);
      const [u, s] = await Promise.all([b.umount([TR]), settle(a.start(TC, { args: ['exists', '/resource/hello'] }))]);
      assert.ok(s.ok, `run ${i}: ${JSON.stringify(s)}`);
      assert.ok(
        'ok' in u[0]! || JSON.stringify(u[0]) === JSON.stringify({ error: { container: TR, error: { umount_busy: { container: TC } } } }),
        JSON.stringify(u),
      );
      await h.waitFor((n) => isExit(TC)(n) && h.notifications.filter(isExit(TC)).length >= i);
      assert.deepEqual(h.notifications.filter(isExit(TC)).at(-1), { exit: [TC, { exit: { code: 0 } }] }, `run ${i}: /resource/hello was there`);
      await h.client.umount([TC]);
      const left = await h.client.umount([TR]);
      assert.ok('ok' in left[0]! || 'error' in left[0]!, JSON.stringify(left));
    }
    await leaks.assertClean();
  });

  test('shutdown with running containers kills them, reports their exits and leaves no process', async (t) => {
    const npks = [await testContainer(), await testResource(), ...(await clones('busy', 4))];
    const h = await startRuntime(t, { repositories: { default: { npks, key: true } } });
    const leaks = leakCheck(h);
    const running = [TC, 'busy-0:0.0.1', 'busy-1:0.0.1', 'busy-2:0.0.1', 'busy-3:0.0.1'];
    await Promise.all(running.map(async (c) => h.client.start(c)));
    await Promise.all(running.map((c) => h.waitFor(isStarted(c))));
    const pids = await Promise.all(running.map(async (c) => (await h.client.inspect(c)).process!.pid));
    for (const pid of pids) assert.ok(existsSync(`/proc/${pid}`));
    await h.client.shutdown();
    await h.waitFor((n) => n === 'shutdown');
    for (const c of running) assert.ok(h.notifications.some(isExit(c)), `exit of ${c} reported`);
    await leaks.assertClean();
    for (const pid of pids) assert.ok(!existsSync(`/proc/${pid}`), `process ${pid} is gone`);
  });
});

describe('runtime: concurrent installs', { ...privileged({ cgroups: true }), timeout: 120_000 }, () => {
  after(() => assertNoTestCgroups());

  test('concurrent installs of one container into one repository keep exactly one copy', async (t) => {
    const h = await startRuntime(t, {
      repositories: { fs: { key: true }, mem: { type: 'mem', key: true }, one: { key: true, capacityNum: 1 } },
    });
    const leaks = leakCheck(h);
    const clients = await Promise.all([1, 2, 3].map(() => h.connect()));
    const npk = await probe('twin');
    const C = 'twin:0.0.1';
    for (const repo of ['fs', 'mem']) {
      const rs = await Promise.all(clients.map((c) => settle(c.installFile(npk, repo))));
      leaks.sample();
      assert.equal(rs.filter((r) => r.ok).length, 1, `${repo}: ${JSON.stringify(rs)}`);
      assert.deepEqual(await h.client.list(), [C]);
      if (repo === 'fs') assert.deepEqual(readdirSync(h.repoDir('fs')), [`${C}.npk`]);
      await h.client.start(C, { args: ['exit', '0'] });
      await h.waitFor((n) => isExit(C)(n) && h.notifications.filter(isExit(C)).length >= (repo === 'fs' ? 1 : 2));
      await h.client.uninstall(C);
      assert.deepEqual(await h.client.list(), []);
      if (repo === 'fs') assert.deepEqual(readdirSync(h.repoDir('fs')), []);
    }
    // capacity_num = 1 holds for installs that arrive together.
    const many = await clones('cap', 3);
    const rs = await Promise.all(many.map((n, i) => settle(clients[i]!.installFile(n, 'one'))));
    assert.equal(rs.filter((r) => r.ok).length, 1, JSON.stringify(rs));
    assert.equal(readdirSync(h.repoDir('one')).length, 1);
    assert.equal((await h.client.list()).length, 1);
    await leaks.assertClean();
  });
});
