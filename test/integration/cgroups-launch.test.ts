// Cgroups with real containers: the launch actor spawns nstar-init with the
// probe, the container's cgroups take its pid while it waits at the start
// gate, then the gate opens — the order the runtime uses. Every assert.ok has
// a message (see cgroups.test.ts).
import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';

import { homeOf, readLayout, withoutV1, type CgroupLayout } from '../../src/actors/cgroups/cgroup-layout.js';
import { waitUntil } from '../../src/actors/cgroups/cgroup-wait.js';
import { CgroupTree, type ContainerCgroups } from '../../src/actors/cgroups/cgroups.js';
import { isRealtime } from '../../src/model/manifest.js';
import type { MemoryEvent } from '../../src/machines/contracts.js';
import type { Manifest } from '../../src/model/manifest.js';
import { sandbox, start, testManifest, type Run } from './launch-fixture.js';
import { requirePrivileged } from './privileged.js';

const MiB = 1024 * 1024;
let serial = 0;

async function treeFor(t: TestContext, layout?: CgroupLayout): Promise<CgroupTree | undefined> {
  if (!requirePrivileged(t, { loop: false, mksquashfs: false, cgroups: true })) return undefined;
  const top = `nstar-test-cgl-${process.pid}-${++serial}`;
  const tree = await CgroupTree.create(top, layout ? { layout } : {});
  t.after(async () => {
    await tree.destroy();
    const mounts = [...readLayout().v1.map((h) => h.mount), ...(readLayout().v2 ? [readLayout().v2!.mount] : [])];
    assert.deepEqual(mounts.flatMap((m) => readdirSync(m).filter((e) => e === top)), [], 'no cgroup of ours remains');
  });
  return tree;
}

/** Launches the probe behind the gate, puts init into its cgroups, opens the gate. */
async function startIn(t: TestContext, tree: CgroupTree, args: string[], over: Partial<Manifest> = {}): Promise<{ run: Run; cg: ContainerCgroups }> {
  const run = await start(t, sandbox(t), { args, manifest: over, gate: false });
  const manifest = testManifest(over);
  const cg = await tree.container(`${manifest.name}:${manifest.version}`, manifest.cgroups, run.launched.pid, {
    realtime: isRealtime(manifest.sched?.policy),
  });
  run.launched.openGate();
  return { run, cg };
}

test('the probe sees itself in <top>/<name> of every hierarchy it uses from its first line', async (t) => {
  const tree = await treeFor(t);
  if (!tree) return;
  const { run } = await startIn(t, tree, ['cat', '/proc/self/cgroup']);
  assert.deepEqual(await run.launched.exited, { exit: { code: 0 } });
  const lines = run.stdout().filter((l) => /^\d+:[^:]*:\//.test(l));
  for (const c of ['memory', 'cpu', 'cpuacct', 'blkio', 'freezer']) {
    if (homeOf(tree.layout, c as 'memory')?.version !== 1) continue;
    const line = lines.find((l) => l.split(':')[1]!.split(',').includes(c));
    assert.equal(line?.split(':').slice(2).join(':'), `/${tree.top}/test-container`, `${c}: ${JSON.stringify(lines)}`);
  }
  // On a hybrid host with the freezer on v1, the controller-less v2 hierarchy is not used.
  const v2Used = tree.hierarchies.some((h) => h.version === 2 && h.controllers.length > 0);
  if (tree.layout.v2) assert.equal(lines.includes(`0::/${tree.top}/test-container`), v2Used, JSON.stringify(lines));
});

test('a probe eating memory beyond memory_hard_limit yields an OOM event and is killed', async (t) => {
  const tree = await treeFor(t);
  if (!tree) return;
  const cgroups = { memory: { oom_monitor: true, memory_hard_limit: 16 * MiB, memory_swap_limit: 16 * MiB, swappiness: 0, attrs: {} } };
  const { run, cg } = await startIn(t, tree, ['eat', '1024', '1'], { cgroups });
  // On cgroup v2 every change of memory.events is an event, and `max` (the limit
  // reached) may come before the OOM: wait for the one that counts the OOM.
  const event = await new Promise<MemoryEvent>((resolve) => cg.onOom((e) => { if (e.oom !== null && e.oom >= 1) resolve(e); }));
  assert.ok(event.oom !== null && event.oom >= 1, JSON.stringify(event));
  assert.deepEqual(await run.launched.exited, { signalled: { signal: 9 } });
  assert.ok(cg.stats(['memory_events']).memory_events!.oom_kill! >= 1, 'the kill is counted');
  await cg.destroy();
});

async function pauseStopsBurning(t: TestContext, layout?: CgroupLayout) {
  const tree = await treeFor(t, layout);
  if (!tree) return;
  const { run, cg } = await startIn(t, tree, ['burn', '0']);
  const usage = () => cg.stats(['cpu']).cpu!.usage_usec!;
  await waitUntil(() => usage() > 20_000, { timeoutMs: 10_000, what: 'the probe burns cpu' });
  await cg.freeze();
  const frozen = usage();
  // Only time shows that nothing runs: the probe would burn ~100 ms of cpu here.
  await new Promise((r) => setTimeout(r, 100));
  assert.equal(usage(), frozen, 'no cpu used while paused');
  await cg.thaw();
  await waitUntil(() => usage() > frozen + 20_000, { timeoutMs: 10_000, what: 'the probe burns again' });
  await cg.destroy();
  assert.deepEqual(await run.launched.exited, { signalled: { signal: 9 } });
}

test('a paused probe stops burning cpu and continues after resume (v1 freezer)', async (t) => {
  if (homeOf(readLayout(), 'freezer')?.version !== 1) return t.skip('no v1 freezer on this host');
  await pauseStopsBurning(t);
});

test('a paused probe stops burning cpu and continues after resume (v2 cgroup.freeze)', async (t) => {
  const host = readLayout();
  if (!host.v2) return t.skip('no cgroup2 mount on this host');
  await pauseStopsBurning(t, withoutV1(host, 'freezer'));
});

test('a fifo probe starts with cgroups active', async (t) => {
  const tree = await treeFor(t);
  if (!tree) return;
  const cpu = homeOf(tree.layout, 'cpu');
  const { run, cg } = await startIn(t, tree, ['sched'], { sched: { policy: { fifo: { priority: 10 } } } });
  assert.deepEqual(await run.launched.exited, { exit: { code: 0 } }, JSON.stringify(run.lines));
  assert.ok(run.stdout().includes('sched_getscheduler: 1'), `SCHED_FIFO: ${JSON.stringify(run.lines)}`);
  assert.ok(run.stdout().includes('sched_priority: 10'), JSON.stringify(run.lines));
  if (cpu?.version === 1) assert.ok(cg.paths.some((p) => p === join(cpu.mount, tree.top, 'test-container')), 'in the cpu cgroup');
  await cg.destroy();
});
