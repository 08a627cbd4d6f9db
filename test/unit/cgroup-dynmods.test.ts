// The pure parts of cgroup-dynmods.ts: reading the cgroup2 mount from
// mountinfo and the remount data that keeps the root's other options.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { cgroup2Mount, remountData } from '../../src/actors/cgroups/cgroup-dynmods.js';

test('remount data keeps the root options and toggles favordynmods', () => {
  assert.equal(remountData(['rw', 'nsdelegate', 'memory_recursiveprot'], true), 'nsdelegate,memory_recursiveprot,favordynmods');
  assert.equal(remountData(['rw', 'nsdelegate', 'favordynmods'], false), 'nsdelegate');
  assert.equal(remountData(['rw'], false), '');
  const info = '41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw,nsdelegate\n';
  assert.deepEqual(cgroup2Mount(info), { mount: '/sys/fs/cgroup/unified', superOptions: ['rw', 'nsdelegate'] });
  assert.equal(cgroup2Mount('32 31 0:29 / /sys/fs/cgroup/cpu rw - cgroup cgroup rw,cpu\n'), undefined);
});

