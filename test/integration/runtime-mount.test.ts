// The real runtime, "mod mount" of spec/behaviours.md with fixture clones
// (probe NPKs that differ only in their names) instead of the examples:
// mount and umount lists (run in parallel by the mount pool), unknown
// containers, mount of a mounted container (deviation 8: mount_busy), umount
// of an unmounted one, and mount_on_start. Checked against /proc/self/mountinfo.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { privileged } from './privileged.js';
import { assertNoTestCgroups, cliClones, clones, leakCheck, testResource } from './runtime-checks.js';
import { startRuntime, type InProcessHarness } from './runtime-harness.js';

const CLONES = 12;
const ids = (prefix: string, n: number) => Array.from({ length: n }, (_, i) => `${prefix}-${i}:0.0.1`);

/** Mount points under the runtime's run dir, by container id. */
function mounted(h: InProcessHarness): string[] {
  return readFileSync('/proc/self/mountinfo', 'utf8')
    .split('\n')
    .map((l) => l.split(' ')[4])
    .filter((p): p is string => p !== undefined && p.startsWith(h.config.runDir + '/'))
    .map((p) => p.slice(h.config.runDir.length + 1))
    .sort();
}

const okAll = (cs: string[]) => cs.map((container) => ({ ok: { container } }));

describe('runtime: mount and umount', privileged({ cgroups: true }), () => {
  after(() => assertNoTestCgroups());

  test('a list of clones (npk pack --clones) and a resource mounts and unmounts in one request each', async (t) => {
    const npks = [...(await cliClones(t, 'clone', CLONES)), await testResource()];
    const h = await startRuntime(t, { repositories: { default: { npks, key: true } } });
    const leaks = leakCheck(h);
    const all = (await h.client.list()).sort();
    assert.equal(all.length, CLONES + 1);
    assert.deepEqual(mounted(h), []);
    assert.deepEqual(await h.client.mount(all), okAll(all));
    assert.deepEqual(mounted(h), all);
    for (const c of all) assert.equal((await h.client.inspect(c)).mounted, true, c);
    // Each mount is a squashfs of its own: the probe of a clone is readable through the mount.
    for (const c of all.filter((c) => c.startsWith('clone-'))) assert.ok(readFileSync(join(h.config.runDir, c, 'probe')).length > 0);
    assert.deepEqual(await h.client.umount(all), okAll(all));
    assert.deepEqual(mounted(h), []);
    for (const c of all) assert.equal((await h.client.inspect(c)).mounted, false, c);
    // And once more, to see the unmount really released everything.
    assert.deepEqual(await h.client.mount(all), okAll(all));
    assert.deepEqual(await h.client.umount(all), okAll(all));
    await leaks.assertClean();
  });

  test('concurrent mount requests of overlapping lists mount each container once', async (t) => {
    const npks = await clones('par', CLONES);
    const h = await startRuntime(t, { repositories: { default: { npks, key: true } } });
    const leaks = leakCheck(h);
    const all = ids('par', CLONES);
    const [a, b] = [await h.connect(), await h.connect()];
    const first = all.slice(0, 8);
    const second = all.slice(4);
    const [ra, rb] = await Promise.all([a.mount(first), b.mount(second)]);
    // The overlap (par-4..par-7) is mounted by exactly one of the two requests; the other answers mount_busy.
    const overlap = all.slice(4, 8);
    for (const c of overlap) {
      const results = [...ra, ...rb].filter((r) => ('ok' in r ? r.ok.container : r.error.container) === c);
      assert.equal(results.length, 2, c);
      const oks = results.filter((r) => 'ok' in r);
      assert.equal(oks.length, 1, `${c}: ${JSON.stringify(results)}`);
      assert.deepEqual(results.find((r) => 'error' in r), { error: { container: c, error: { mount_busy: { container: c } } } });
    }
    for (const c of [...all.slice(0, 4), ...all.slice(8)]) assert.ok([...ra, ...rb].some((r) => 'ok' in r && r.ok.container === c), c);
    assert.deepEqual(mounted(h), [...all].sort());
    const [ua, ub] = await Promise.all([a.umount(all.slice(0, 6)), b.umount(all.slice(6))]);
    assert.deepEqual([...ua, ...ub], okAll(all));
    assert.deepEqual(mounted(h), []);
    await leaks.assertClean();
  });

  test('unknown, mounted and unmounted containers get their errors, per container', async (t) => {
    const npks = [await testResource(), ...(await clones('one', 1))];
    const h = await startRuntime(t, { repositories: { default: { npks, key: true } } });
    const leaks = leakCheck(h);
    const TR = 'test-resource:0.0.1';
    const foo = { error: { container: 'foo:0.0.1', error: { invalid_container: { container: 'foo:0.0.1' } } } };
    assert.deepEqual(await h.client.mount(['foo:0.0.1']), [foo]);
    assert.deepEqual(await h.client.mount([TR, 'foo:0.0.1']), [{ ok: { container: TR } }, foo]);
    // Deviation 8: an already mounted container answers mount_busy (Northstar: invalid_container).
    assert.deepEqual(await h.client.mount([TR]), [{ error: { container: TR, error: { mount_busy: { container: TR } } } }]);
    // Umount of a container that is not mounted: umount_busy naming itself (spec/console.md §4.7).
    assert.deepEqual(await h.client.umount(['one-0:0.0.1']), [
      { error: { container: 'one-0:0.0.1', error: { umount_busy: { container: 'one-0:0.0.1' } } } },
    ]);
    assert.deepEqual(await h.client.umount([TR, 'foo:0.0.1']), [{ ok: { container: TR } }, foo]);
    assert.deepEqual(await h.client.mount([]), []);
    assert.deepEqual(await h.client.umount([]), []);
    assert.deepEqual(mounted(h), []);
    await leaks.assertClean();
  });

  test('mount_on_start mounts every container of the repository at startup; shutdown unmounts them', async (t) => {
    const npks = await clones('mos', 6);
    const h = await startRuntime(t, {
      repositories: { eager: { npks, key: true, mountOnStart: true }, lazy: { npks: [await testResource()], key: true } },
    });
    const leaks = leakCheck(h);
    assert.deepEqual(mounted(h), ids('mos', 6).sort());
    assert.equal((await h.client.inspect('test-resource:0.0.1')).mounted, false);
    await leaks.assertClean();
  });
});
