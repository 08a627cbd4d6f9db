// cgroup v2 controllers for real (kernel lane): on a pure cgroup2 hierarchy
// (memory, cpu, io, pids live, no v1 anywhere) the northstar daemon writes
// the manifest's limits in v2 naming — with runc's conversions of shares and
// blkio weights — reports an OOM kill from memory.events as a c_group
// notification before the exit, reads inspect's statistics from the v2
// files, freezes through cgroup.freeze, and leaves no cgroup behind.
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import type { Notification } from '../../../src/client/index.js';
import { exitsOf, isCgroup, isExit, isStarted, nthExit } from '../../integration/runtime-checks.js';
import { startDaemon, type DaemonHarness } from '../../integration/runtime-harness.js';
import { counter, cpu, forks, io, memory } from './fixtures.js';
import { cgroupOf, eventually, guestOnly, northstarDmDevices, read, shutdownClean } from './guest.js';

/** The guest's virtio disk, "major:minor": a device for io.max. */
const disk = () => read('/sys/block/vda/dev');

const alive = (pid: number) => existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z');

async function run(h: DaemonHarness, id: string, args?: string[]): Promise<number> {
  const before = h.notifications.filter(isStarted(id)).length;
  await h.client.start(id, args ? { args } : {});
  let seen = 0;
  await h.waitFor((n) => isStarted(id)(n) && ++seen > before);
  return (await h.client.inspect(id)).process!.pid;
}

describe('cgroup v2', guestOnly(), () => {
  test('a pure cgroup2 host: limits, OOM, statistics, freeze and cleanup through the daemon', { timeout: 300_000 }, async (t) => {
    const npks = await Promise.all([memory(), cpu(), counter(), forks(), io(disk())]);
    const dmBefore = northstarDmDevices();
    const h = await startDaemon(t, { repositories: { default: { npks, key: true } } });
    assert.equal(read('/sys/fs/cgroup/cgroup.controllers').includes('memory'), true, 'the guest is a pure v2 host with controllers');

    await t.test('memory.max, memory.low and memory.swap.max come from the manifest', async () => {
      await run(h, 'memory:0.0.1');
      const dir = cgroupOf(h, 'memory');
      assert.equal(read(join(dir, 'memory.max')), String(32 * 1024 * 1024));
      assert.equal(read(join(dir, 'memory.low')), String(16 * 1024 * 1024));
      assert.equal(read(join(dir, 'memory.swap.max')), '0');
      await h.client.kill('memory:0.0.1', 9);
      await nthExit(h, 'memory:0.0.1', 1);
    });

    await t.test('an OOM kill arrives as a c_group notification from memory.events, then the exit', async () => {
      const id = 'memory:0.0.1';
      await run(h, id, ['eat', '1024', '5']);
      const exit = await nthExit(h, id, 2, 120_000);
      assert.deepEqual(exit, { signalled: { signal: 9 } }, 'the OOM killer ends it with SIGKILL');
      // memory.events changes at the OOM (oom 1) and again at the kill (oom_kill 1): one notification each.
      const memoryOf = (n: Notification) => (n as Extract<Notification, { c_group: unknown }>).c_group[1].memory;
      const killed = (n: Notification) => isCgroup(id)(n) && (memoryOf(n).oom_kill ?? 0) >= 1;
      const at = h.notifications.findIndex(killed);
      assert.ok(at >= 0, `a c_group notification counting the OOM kill: ${JSON.stringify(h.notifications.filter(isCgroup(id)))}`);
      assert.ok((memoryOf(h.notifications[at]!).oom ?? 0) >= 1, 'and the OOM');
      let exits = 0;
      assert.ok(at < h.notifications.findIndex((n) => isExit(id)(n) && ++exits === 2), 'the OOM notification comes before the exit');
    });

    await t.test('cpu.weight and cpu.max from shares and quota (runc\'s conversion); throttling shows in inspect', async () => {
      const id = 'cpu:0.0.1';
      await run(h, id);
      const dir = cgroupOf(h, 'cpu');
      // runc: weight = 1 + (shares - 2) * 9999 / 262142, so 1024 shares are weight 39.
      assert.equal(read(join(dir, 'cpu.weight')), '39');
      assert.equal(read(join(dir, 'cpu.max')), '20000 100000');
      // A process burning cpu under a 20 % quota gets throttled; inspect reads it from cpu.stat.
      let stats: Record<string, Record<string, number | null>> = {};
      await eventually(async () => {
        stats = (await h.client.inspect(id)).process!.statistics as typeof stats;
        return (stats.cpu?.nr_throttled ?? 0) > 0;
      }, 'throttled periods in inspect', 60_000);
      assert.ok(stats.cpu!.usage_usec! > 0 && stats.cpu!.nr_periods! > 0, JSON.stringify(stats.cpu));
      assert.equal(stats.memory!.limit_bytes, null, 'memory.max "max" is no limit');
      assert.ok(stats.pids!.current! >= 1, `pids.current counts the container: ${JSON.stringify(stats.pids)}`);
      await h.client.kill(id, 9);
    });

    await t.test('io.weight and io.max from the blkio settings; io statistics from io.stat', async () => {
      const id = 'io:0.0.1';
      await run(h, id);
      const dir = cgroupOf(h, 'io');
      // runc: io.weight = 1 + (weight - 10) * 9999 / 990, so blkio weight 500 is 4950.
      assert.equal(read(join(dir, 'io.weight')), 'default 4950');
      assert.equal(read(join(dir, 'io.max')), `${disk()} rbps=1048576 wbps=max riops=max wiops=100`);
      const io = (await h.client.inspect(id)).process!.statistics as { io?: Record<string, { rbytes: number }> };
      assert.ok(io.io && typeof io.io === 'object', 'inspect reports io');
      // The container's first exec read /probe from its image: charged to its cgroup.
      assert.ok(Object.values(io.io).some((d) => d.rbytes > 0), `reads counted by device: ${JSON.stringify(io.io)}`);
      await h.client.kill(id, 9);
    });

    await t.test('pause sets cgroup.freeze and waits for frozen 1; resume thaws; a paused container stops', async () => {
      const id = 'counter:0.0.1';
      await run(h, id);
      const dir = cgroupOf(h, 'counter');
      const events = () => read(join(dir, 'cgroup.events'));
      await h.client.pause(id);
      assert.equal(read(join(dir, 'cgroup.freeze')), '1');
      assert.match(events(), /^frozen 1$/m, 'the kernel reports the cgroup frozen once pause answers');
      assert.match((await h.client.inspect(id)).state ?? '', /paused/);
      await h.client.resume(id);
      assert.equal(read(join(dir, 'cgroup.freeze')), '0');
      assert.match(events(), /^frozen 0$/m);
      await h.client.pause(id);
      const exits = exitsOf(h, id).length;
      await h.client.stop(id, 10_000);
      await nthExit(h, id, exits + 1);
      assert.ok(!existsSync(dir), 'the stopped container\'s cgroup is removed');
    });

    await t.test('a stop ends every process in the cgroup (cgroup.kill) and removes it', async () => {
      const id = 'forks:0.0.1';
      await run(h, id);
      const dir = cgroupOf(h, 'forks');
      let pids: number[] = [];
      await eventually(() => {
        pids = read(join(dir, 'cgroup.procs')).split('\n').filter(Boolean).map(Number);
        return pids.length >= 5;
      }, 'init, the probe and its three children in cgroup.procs');
      await h.client.stop(id, 5_000);
      await nthExit(h, id, 1);
      await eventually(() => !existsSync(dir), 'the cgroup to go');
      assert.deepEqual(pids.filter(alive), [], 'no process of the container is left');
    });

    await t.test('shutdown leaves no cgroup, mount or loop device', async () => {
      await shutdownClean(h, dmBefore);
    });
  });
});
