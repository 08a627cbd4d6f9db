// The cgroup2 `favordynmods` option (config cgroup_favordynmods): set for the
// tree's lifetime, the mount's other options kept, and cleared again at
// destroy when it was not set before — on a host with a cgroup2 mount
// (remount) and on one without (a throwaway cgroup2 mount, simulated by
// unmounting the cgroup2 mount in a child's private mount namespace). The
// option lives on the cgroup2 root, so the host's own mount (pid 1's
// mountinfo) shows it. What it buys (no RCU wait per migration) is a timing:
// bench/start measures it.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { cgroup2Mount } from '../../src/actors/cgroups/cgroup-dynmods.js';
import { CgroupTree } from '../../src/actors/cgroups/cgroups.js';
import { requirePrivileged } from './privileged.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '../..');

/** The cgroup2 root's options as the host's first cgroup2 mount shows them (undefined: the host has none). */
function hostOptions(): string[] | undefined {
  return cgroup2Mount(readFileSync('/proc/1/mountinfo', 'utf8'))?.superOptions;
}

test('a tree with favorDynmods sets the option on the cgroup2 root and puts the old options back at destroy', async (t) => {
  if (!requirePrivileged(t, { loop: false, mksquashfs: false, cgroups: true })) return;
  const before = hostOptions();
  if (!before) return t.skip('the host has no cgroup2 mount to look at');
  const tree = await CgroupTree.create(`nstar-test-dyn-${process.pid}`, { favorDynmods: true });
  try {
    assert.ok(hostOptions()?.includes('favordynmods'), `favordynmods in the host's cgroup2 options: ${hostOptions()}`);
    for (const o of before) assert.ok(hostOptions()?.includes(o), `option ${o} kept: ${hostOptions()}`);
  } finally {
    await tree.destroy();
  }
  assert.deepEqual(hostOptions(), before, 'the cgroup2 options are what they were');
  await tree.destroy();
  assert.deepEqual(hostOptions(), before, 'a second destroy changes nothing');
});

test('without a cgroup2 mount (pure v1 view) the option goes through a throwaway cgroup2 mount, and back', (t) => {
  if (!requirePrivileged(t, { loop: false, mksquashfs: false, cgroups: true })) return;
  const before = hostOptions();
  if (!before) return t.skip('the host has no cgroup2 mount whose options would show the flag');
  if (before.includes('favordynmods')) return t.skip('favordynmods is already set on this host');
  // A child in its own mount namespace without the cgroup2 mount: the runtime sees a pure v1 host.
  const script = `
    import { spawnSync } from 'node:child_process';
    import { readFileSync } from 'node:fs';
    import { cgroup2Mount, favorDynmods } from './src/actors/cgroups/cgroup-dynmods.ts';
    const v2 = cgroup2Mount(readFileSync('/proc/self/mountinfo', 'utf8'));
    if (v2) { const u = spawnSync('umount', [v2.mount]); if (u.status !== 0) throw new Error('umount ' + v2.mount + ': ' + u.stderr); }
    const own = cgroup2Mount(readFileSync('/proc/self/mountinfo', 'utf8'));
    const host = () => cgroup2Mount(readFileSync('/proc/1/mountinfo', 'utf8'))?.superOptions;
    const d = favorDynmods();
    const during = host();
    d.restore();
    console.log(JSON.stringify({ own: own ?? null, active: d.active, during, after: host() }));
  `;
  const r = spawnSync('unshare', ['--mount', '--propagation', 'private', process.execPath, '--import', 'tsx', '--input-type=module', '-e', script], {
    cwd: root, encoding: 'utf8', timeout: 60_000,
  });
  assert.equal(r.status, 0, `child failed: ${r.stderr}`);
  const out = JSON.parse(r.stdout.trim().split('\n').pop()!) as { own: unknown; active: boolean; during: string[]; after: string[] };
  assert.equal(out.own, null, 'the child saw no cgroup2 mount');
  assert.equal(out.active, true);
  assert.ok(out.during.includes('favordynmods'), `set through the throwaway mount: ${out.during}`);
  assert.deepEqual(out.after, before, 'cleared again');
  assert.deepEqual(hostOptions(), before);
});

test('only the tree that set the option clears it; one taking over from a crashed instance owns it', async (t) => {
  if (!requirePrivileged(t, { loop: false, mksquashfs: false, cgroups: true })) return;
  const before = hostOptions();
  if (!before) return t.skip('the host has no cgroup2 mount to look at');
  if (before.includes('favordynmods')) return t.skip('favordynmods is already set on this host');
  const top = `nstar-test-dyn-${process.pid}`;
  const a = await CgroupTree.create(`${top}-a`, { favorDynmods: true });
  const trees = [a];
  try {
    assert.equal(a.ownsDynmods, true);
    // A second runtime finding it set leaves it alone at its end.
    const b = await CgroupTree.create(`${top}-b`, { favorDynmods: true });
    trees.push(b);
    assert.equal(b.ownsDynmods, false);
    await b.destroy();
    assert.ok(hostOptions()?.includes('favordynmods'), 'still set after the non-owner ended');
    // `a` "crashed": a restart on its journal inherits the option and clears it at its end.
    const c = await CgroupTree.create(`${top}-c`, { favorDynmods: true, inheritedDynmods: true });
    trees.push(c);
    assert.equal(c.ownsDynmods, true);
    await c.destroy();
    assert.deepEqual(hostOptions(), before, 'cleared by the inheritor');
    // Inherited but not wanted (cgroup_favordynmods = false after the restart): cleared at once.
    await a.destroy();
    const d = await CgroupTree.create(`${top}-d`, { favorDynmods: false, inheritedDynmods: true });
    trees.push(d);
    assert.deepEqual(hostOptions(), before);
  } finally {
    for (const x of trees) await x.destroy();
  }
  assert.deepEqual(hostOptions(), before);
});

