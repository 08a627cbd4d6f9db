import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { isMountPoint, mountEntries, readMounts, unescapeMountPath } from '../../src/actors/mount/mountinfo.js';

describe('mountinfo', () => {
  it('undoes every octal escape the kernel writes (space, tab, newline, backslash)', () => {
    assert.equal(unescapeMountPath('/run/a\\040b\\011c\\012d\\134e'), '/run/a b\tc\nd\\e');
    assert.equal(unescapeMountPath('/plain'), '/plain');
  });

  it('reads target, device, type, source and super options; skips lines without the separator', () => {
    const text = [
      '36 35 98:0 /mnt1 /mnt\\0402 rw,noatime master:1 - ext3 /dev/lo\\040op rw,errors=continue',
      '40 31 0:35 / /sys/fs/cgroup/unified rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate',
      'garbage',
      '',
    ].join('\n');
    assert.deepEqual(mountEntries(text), [
      { device: '98:0', target: '/mnt 2', fstype: 'ext3', source: '/dev/lo op', superOptions: 'rw,errors=continue' },
      { device: '0:35', target: '/sys/fs/cgroup/unified', fstype: 'cgroup2', source: 'cgroup2', superOptions: 'rw,nsdelegate' },
    ]);
  });

  it('finds this process\'s mounts', () => {
    assert.ok(readMounts().some((m) => m.target === '/proc' && m.fstype === 'proc'));
  });

  it('tells a mount point from a plain directory and a missing path', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mountinfo-'));
    try {
      assert.equal(isMountPoint('/proc'), true);
      assert.equal(isMountPoint(dir), false);
      assert.equal(isMountPoint(join(dir, 'missing')), false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
