import assert from 'node:assert/strict';
import { test } from 'node:test';

import { homeOf, type CgroupLayout } from '../../src/actors/cgroups/cgroup-layout.js';
import { blkioToIoWeight, DEFAULT_RT_RUNTIME_US, planLimits, sharesToWeight, type LimitPlan } from '../../src/actors/cgroups/cgroup-plan.js';
import type { CGroups } from '../../src/model/manifest.js';

const V1: CgroupLayout = {
  v1: ['memory', 'cpu', 'cpuacct', 'cpuset', 'blkio', 'freezer', 'pids'].map((c) => ({ mount: `/sys/fs/cgroup/${c}`, controllers: [c] })),
  v2: { mount: '/sys/fs/cgroup/unified', controllers: [] },
};
const V2: CgroupLayout = { v1: [], v2: { mount: '/sys/fs/cgroup', controllers: ['cpuset', 'cpu', 'io', 'memory', 'pids'] } };
const home = (l: CgroupLayout) => (c: Parameters<typeof homeOf>[1]) => homeOf(l, c);

/** The plan as `controller/file=value` lines (first choice only, alternatives after a `|`). */
function lines(p: LimitPlan): string[] {
  return p.writes.map((w) => `${w.controller}/` + w.choices.map((c) => `${c.file}=${c.value}`).join(' | '));
}

const FULL: CGroups = {
  memory: {
    oom_monitor: true, memory_hard_limit: 10_000_000, memory_soft_limit: 5_000_000, memory_swap_limit: 20_000_000,
    swappiness: 0, kernel_memory_limit: 1_000_000, kernel_tcp_memory_limit: 100_000, attrs: { 'memory.move_charge_at_immigrate': '1' },
  },
  cpu: { cpus: '0', mems: '0', shares: 100, quota: 50_000, period: 100_000, attrs: {} },
  blkio: {
    weight: 500, weight_device: [{ major: 8, minor: 0, weight: 300 }],
    throttle_read_bps_device: [{ major: 8, minor: 0, rate: 1_000_000 }], throttle_read_iops_device: [],
    throttle_write_bps_device: [], throttle_write_iops_device: [{ major: 8, minor: 0, rate: 100 }], attrs: {},
  },
};

test('v1 naming: memory, cpu, cpuset and blkio files in the order the kernel needs', () => {
  const p = planLimits(FULL, home(V1));
  assert.deepEqual(lines(p), [
    'memory/memory.limit_in_bytes=10000000',
    'memory/memory.soft_limit_in_bytes=5000000',
    'memory/memory.memsw.limit_in_bytes=20000000',
    'memory/memory.swappiness=0',
    'memory/memory.kmem.limit_in_bytes=1000000',
    'memory/memory.kmem.tcp.limit_in_bytes=100000',
    'memory/memory.move_charge_at_immigrate=1',
    'cpuset/cpuset.cpus=0',
    'cpuset/cpuset.mems=0',
    'cpu/cpu.shares=100',
    'cpu/cpu.cfs_period_us=100000',
    'cpu/cpu.cfs_quota_us=50000',
    'blkio/blkio.weight=500 | blkio.bfq.weight=500',
    'blkio/blkio.weight_device=8:0 300 | blkio.bfq.weight_device=8:0 300',
    'blkio/blkio.throttle.read_bps_device=8:0 1000000',
    'blkio/blkio.throttle.write_iops_device=8:0 100',
  ]);
  assert.deepEqual(p.warnings, []);
  // Kernel memory limits are skipped (with a warning) where the kernel dropped them; nothing else is.
  assert.deepEqual(p.writes.filter((w) => w.optional).map((w) => w.choices[0]!.file), ['memory.kmem.limit_in_bytes', 'memory.kmem.tcp.limit_in_bytes']);
  assert.equal(p.realtime, undefined);
});

test('v2 naming: memory.max/low/swap.max, cpu.weight and cpu.max, io.weight and io.max', () => {
  const p = planLimits(FULL, home(V2));
  assert.deepEqual(lines(p), [
    'memory/memory.max=10000000',
    'memory/memory.low=5000000',
    'memory/memory.swap.max=20000000',
    'memory/memory.move_charge_at_immigrate=1',
    'cpuset/cpuset.cpus=0',
    'cpuset/cpuset.mems=0',
    `cpu/cpu.weight=${sharesToWeight(100)}`,
    'cpu/cpu.max=50000 100000',
    `blkio/io.bfq.weight=default 500 | io.weight=default ${blkioToIoWeight(500)}`,
    `blkio/io.bfq.weight=8:0 300 | io.weight=8:0 ${blkioToIoWeight(300)}`,
    'blkio/io.max=8:0 rbps=1000000',
    'blkio/io.max=8:0 wiops=100',
  ]);
  assert.equal(p.warnings.length, 2, p.warnings.join('\n'));
  assert.match(p.warnings[0]!, /swappiness/);
  assert.match(p.warnings[1]!, /kernel memory/);
});

test('no limit is -1 on v1 and max on v2', () => {
  const c: CGroups = { memory: { oom_monitor: false, memory_hard_limit: -1, attrs: {} }, cpu: { quota: -1, attrs: {} } };
  assert.deepEqual(lines(planLimits(c, home(V1))), ['memory/memory.limit_in_bytes=-1', 'cpu/cpu.cfs_quota_us=-1']);
  assert.deepEqual(lines(planLimits(c, home(V2))), ['memory/memory.max=max', 'cpu/cpu.max=max']);
});

test('cpu.shares map onto cpu.weight like runc does', () => {
  assert.equal(sharesToWeight(2), 1);
  assert.equal(sharesToWeight(1024), 39);
  assert.equal(sharesToWeight(262144), 10000);
  assert.equal(blkioToIoWeight(10), 1);
  assert.equal(blkioToIoWeight(1000), 10000);
});

test('attrs are written as given, but never outside the cgroup', () => {
  const ok: CGroups = { cpu: { attrs: { 'cpu.cfs_burst_us': '1000' } } };
  assert.deepEqual(lines(planLimits(ok, home(V1))), ['cpu/cpu.cfs_burst_us=1000']);
  for (const bad of ['../escape', 'a/b', '..', '']) {
    assert.throws(() => planLimits({ memory: { oom_monitor: false, attrs: { [bad]: '1' } } }, home(V1)), /is not a cgroup file name/);
  }
});

test('a setting for a controller the host lacks is an error that names it', () => {
  const noMemory: CgroupLayout = { v1: [{ mount: '/sys/fs/cgroup/cpu', controllers: ['cpu'] }] };
  assert.throws(
    () => planLimits({ memory: { oom_monitor: false, memory_hard_limit: 1, attrs: {} } }, home(noMemory)),
    /cgroups.memory: this host has no memory controller/,
  );
  // An empty section asks for nothing, so it is fine.
  assert.deepEqual(planLimits({ memory: { oom_monitor: false, attrs: {} } }, home(noMemory)).writes, []);
});

test('a real-time policy gets the default RT budget on v1, the manifest one when given', () => {
  assert.deepEqual(planLimits(undefined, home(V1), { realtime: true }).realtime, { runtimeUs: DEFAULT_RT_RUNTIME_US });
  assert.deepEqual(
    planLimits({ cpu: { realtime_runtime: 20_000, realtime_period: 500_000, attrs: {} } }, home(V1)).realtime,
    { runtimeUs: 20_000, periodUs: 500_000 },
  );
  assert.equal(planLimits(undefined, home(V1)).realtime, undefined);
  const v2 = planLimits({ cpu: { realtime_runtime: 20_000, attrs: {} } }, home(V2), { realtime: true });
  assert.equal(v2.realtime, undefined);
  assert.match(v2.warnings[0]!, /real-time/);
});

test('no cgroups section plans no writes', () => {
  assert.deepEqual(planLimits(undefined, home(V1)), { writes: [], warnings: [] });
});
