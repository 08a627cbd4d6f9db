// Pseudo definitions for mksquashfs (spec/npk.md §1.5): mount points, /dev
// nodes and links, and the 4.6 path with xattr lines.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import type { Manifest } from '../../src/model/manifest.js';
import { pseudoEntries, pseudoLines } from '../../src/packer/squashfs.js';

function manifest(mounts: Record<string, unknown>): Manifest {
  return {
    name: 'p', version: '0.0.1', init: '/x', uid: 1000, gid: 1001, args: [], env: {}, capabilities: [],
    suppl_groups: [], rlimits: {}, sockets: {}, mounts: mounts as Manifest['mounts'],
  };
}

test('mount targets are sorted and every path level gets one directory line with its type\'s mode', () => {
  const m = manifest({
    '/z/bind-rw': { type: 'bind', host: '/x', options: ['rw'] },
    '/a/b/ro': { type: 'bind', host: '/x', options: [] },
    '/a/b/res': { type: 'resource', name: 'r', version: '*', dir: '/', options: [] },
    '/sys': { type: 'sysfs' },
    '/tmp': { type: 'tmpfs', size: 1 },
    '/data': { type: 'persist' },
    '/sock': { type: 'sockets' },
  });
  assert.equal(
    pseudoLines(pseudoEntries(m), 1000, 1001, true),
    [
      '/a d 555 1000 1001',
      '/a/b d 555 1000 1001',
      '/a/b/res d 555 1000 1001',
      '/a/b/ro d 555 1000 1001',
      '/data d 755 1000 1001',
      '/sock d 755 1000 1001',
      '/sys d 444 1000 1001',
      '/tmp d 755 1000 1001',
      '/z d 755 1000 1001',
      '/z/bind-rw d 755 1000 1001',
      '',
    ].join('\n'),
  );
});

test('a dev mount makes the six devices with their own labels, and fd links when /proc is a proc mount', () => {
  const lines = pseudoLines(pseudoEntries(manifest({ '/dev': { type: 'dev' }, '/proc': { type: 'proc' } })), 1000, 1001, true);
  for (const l of [
    '/dev d 755 1000 1001',
    '/proc d 444 1000 1001',
    '/dev/null c 666 1000 1001 1 3',
    '/dev/null x security.selinux=u:object_r:null_device:s0',
    '/dev/full c 666 1000 1001 1 7',
    '/dev/full x security.selinux=u:object_r:full_device:s0',
    '/dev/random c 666 1000 1001 1 8',
    '/dev/random x security.selinux=u:object_r:random_device:s0',
    '/dev/urandom c 666 1000 1001 1 9',
    '/dev/urandom x security.selinux=u:object_r:random_device:s0',
    '/dev/zero c 666 1000 1001 1 5',
    '/dev/tty c 666 1000 1001 5 0',
    '/dev/tty x security.selinux=u:object_r:owntty_device:s0',
    '/proc/self/fd d 777 1000 1001',
    '/dev/fd s 777 1000 1001 /proc/self/fd',
    '/dev/stdin s 777 1000 1001 /proc/self/fd/0',
    '/dev/stdout s 777 1000 1001 /proc/self/fd/1',
    '/dev/stderr s 777 1000 1001 /proc/self/fd/2',
    '/dev/stderr x security.selinux=u:r:su:s0',
  ]) {
    assert.ok(lines.split('\n').includes(l), `missing: ${l}`);
  }
});

test('without /proc no fd links; without xattr support no x lines', () => {
  const lines = pseudoLines(pseudoEntries(manifest({ '/dev': { type: 'dev' } })), 1, 1, false);
  assert.doesNotMatch(lines, /\/dev\/fd|\/proc| x /);
  assert.match(lines, /^\/dev\/null c 666 1 1 1 3$/m);
});
