import assert from 'node:assert/strict';
import { test } from 'node:test';

import { homeOf, layoutKind, parseMountinfo, v2SubtreeControllers, withoutV1 } from '../../src/actors/cgroups/cgroup-layout.js';

// Shapes of /proc/self/mountinfo seen on real hosts.
const HYBRID = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / /sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / /sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / /sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / /sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / /sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`;

const COMOUNTED_V1 = `25 18 0:22 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
30 25 0:27 / /sys/fs/cgroup/cpu,cpuacct rw,nosuid,nodev,noexec,relatime shared:12 - cgroup cgroup rw,cpu,cpuacct
31 25 0:28 / /sys/fs/cgroup/memory rw,nosuid,nodev,noexec,relatime shared:13 - cgroup cgroup rw,memory
99 25 0:28 / /mnt/memory-again rw,relatime - cgroup cgroup rw,memory
`;

const PURE_V2 = `26 21 0:23 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
`;

test('a hybrid host has every v1 controller hierarchy and the cgroup2 mount', () => {
  const { v1, v2Mount } = parseMountinfo(HYBRID);
  assert.deepEqual(
    v1.map((h) => [h.mount, h.controllers]),
    [
      ['/sys/fs/cgroup/cpu', ['cpu']],
      ['/sys/fs/cgroup/cpuacct', ['cpuacct']],
      ['/sys/fs/cgroup/cpuset', ['cpuset']],
      ['/sys/fs/cgroup/memory', ['memory']],
      ['/sys/fs/cgroup/freezer', ['freezer']],
      ['/sys/fs/cgroup/blkio', ['blkio']],
      ['/sys/fs/cgroup/pids', ['pids']],
    ],
  );
  assert.equal(v2Mount, '/sys/fs/cgroup/unified');
  const layout = { v1, v2: { mount: v2Mount!, controllers: [] } };
  assert.equal(layoutKind(layout), 'hybrid');
  assert.deepEqual(homeOf(layout, 'memory'), { version: 1, mount: '/sys/fs/cgroup/memory' });
  assert.deepEqual(homeOf(layout, 'freezer'), { version: 1, mount: '/sys/fs/cgroup/freezer' });
  assert.deepEqual(v2SubtreeControllers(layout), []);
});

test('co-mounted v1 controllers share one hierarchy and a second mount of it is ignored', () => {
  const { v1, v2Mount } = parseMountinfo(COMOUNTED_V1);
  assert.deepEqual(v1, [
    { mount: '/sys/fs/cgroup/cpu,cpuacct', controllers: ['cpu', 'cpuacct'] },
    { mount: '/sys/fs/cgroup/memory', controllers: ['memory'] },
  ]);
  assert.equal(v2Mount, undefined);
  const layout = { v1 };
  assert.equal(layoutKind(layout), 'v1');
  assert.equal(homeOf(layout, 'freezer'), undefined);
  assert.deepEqual(homeOf(layout, 'cpuacct'), { version: 1, mount: '/sys/fs/cgroup/cpu,cpuacct' });
});

test('on a pure v2 host every controller the root offers lives in the one hierarchy', () => {
  const { v1, v2Mount } = parseMountinfo(PURE_V2);
  assert.deepEqual(v1, []);
  const layout = { v1, v2: { mount: v2Mount!, controllers: ['cpuset', 'cpu', 'io', 'memory', 'pids'] } };
  assert.equal(layoutKind(layout), 'v2');
  for (const c of ['memory', 'cpu', 'cpuacct', 'blkio', 'pids', 'freezer', 'cpuset'] as const) {
    assert.deepEqual(homeOf(layout, c), { version: 2, mount: '/sys/fs/cgroup' }, c);
  }
  assert.deepEqual(v2SubtreeControllers(layout).sort(), ['cpu', 'cpuset', 'io', 'memory', 'pids']);
});

test('a v2 controller the root does not offer has no home', () => {
  const layout = { v1: [], v2: { mount: '/sys/fs/cgroup', controllers: ['memory'] } };
  assert.equal(homeOf(layout, 'blkio'), undefined);
  assert.equal(homeOf(layout, 'cpu'), undefined);
  assert.deepEqual(homeOf(layout, 'freezer'), { version: 2, mount: '/sys/fs/cgroup' });
});

test('dropping the v1 freezer moves freezing to cgroup v2', () => {
  const { v1, v2Mount } = parseMountinfo(HYBRID);
  const layout = withoutV1({ v1, v2: { mount: v2Mount!, controllers: [] } }, 'freezer');
  assert.deepEqual(homeOf(layout, 'freezer'), { version: 2, mount: '/sys/fs/cgroup/unified' });
  assert.ok(!layout.v1.some((h) => h.mount.endsWith('freezer')), 'no v1 freezer left');
});

test('mount paths with escaped spaces are unescaped', () => {
  const { v1 } = parseMountinfo('40 31 0:99 / /mnt/my\\040cgroups rw - cgroup cgroup rw,pids\n');
  assert.equal(v1[0]!.mount, '/mnt/my cgroups');
});
