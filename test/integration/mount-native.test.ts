// The addon's loop module against the real kernel: attach, limits, fallback,
// device creation, EBUSY, errors as data, and no leaked devices or fds.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { native } from '../../src/native.js';
import { MS } from '../../src/native-api/loop.js';
import type { LoopAttached } from '../../src/native-api/loop.js';
import { loopsBackedBy, openFdCount, squashfs, wrap } from './mount-images.js';
import type { Image } from './mount-images.js';
import { privileged } from './privileged.js';

describe('loop devices and mounts through the addon', privileged({ loop: true, mksquashfs: true }), () => {
  let dir: string;
  let img: Image;

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'nstar-loop-'));
    const other = squashfs(dir, 'other', { 'other.txt': 'the zip around fs.img\n' });
    const mine = squashfs(dir, 'mine', { hello: 'hello from the image\n' });
    img = wrap(join(dir, 'npk'), mine, { prefix: other });
  });

  after(() => {
    for (const m of [join(dir, 'mnt')]) native().umount(m, { detach: true });
    for (const d of loopsBackedBy(dir)) native().loopDetach(d);
    rmSync(dir, { recursive: true, force: true });
    assert.deepEqual(loopsBackedBy(dir), []);
  });

  function attach(extra: object = {}): LoopAttached {
    const r = native().loopAttach({ path: img.path, offset: img.offset, sizeLimit: img.size, timeoutMs: 2000, ...extra });
    assert.ok(r.ok, r.ok ? '' : r.error.message);
    return r.value;
  }

  test('LOOP_CONFIGURE attaches read-only and autoclear with the offset and size limit of fs.img', () => {
    const a = attach();
    try {
      assert.equal(a.method, 'configure');
      assert.match(a.device, /^\/dev\/loop\d+$/);
      const info = native().loopInfo(a.device);
      assert.ok(info.ok);
      assert.equal(info.value.offset, img.offset);
      assert.equal(info.value.sizeLimit, img.size);
      assert.equal(info.value.readOnly, true);
      assert.equal(info.value.autoclear, true);
      const sectors = Number(readFileSync(`/sys/block/loop${a.number}/size`, 'utf8'));
      assert.equal(sectors * 512, img.size);
      assert.equal(readFileSync(`/sys/block/loop${a.number}/loop/backing_file`, 'utf8').trim(), img.path);
    } finally {
      assert.ok(native().loopRelease(a.fd, { detach: true }).ok);
    }
    assert.equal(native().loopInfo(a.device).ok, false);
  });

  test('the mounted device shows the image at the offset, not the file around it, and autoclear detaches on umount', () => {
    const mnt = join(dir, 'mnt');
    mkdirSync(mnt, { recursive: true });
    const a = attach();
    const m = native().mount(a.device, mnt, 'squashfs', MS.RDONLY | MS.NOSUID, null);
    assert.ok(native().loopRelease(a.fd).ok);
    assert.ok(m.ok, m.ok ? '' : m.error.message);
    assert.equal(readFileSync(join(mnt, 'hello'), 'utf8'), 'hello from the image\n');
    assert.equal(existsSync(join(mnt, 'other.txt')), false);
    assert.ok(native().umount(mnt).ok);
    const info = native().loopInfo(a.device);
    assert.equal(info.ok, false);
    assert.equal(info.ok ? '' : info.error.code, 'ENXIO');
  });

  test('the classic LOOP_SET_FD + LOOP_SET_STATUS64 path attaches with the same settings', () => {
    const a = attach({ method: 'classic' });
    try {
      assert.equal(a.method, 'classic');
      const info = native().loopInfo(a.device);
      assert.ok(info.ok);
      assert.deepEqual([info.value.offset, info.value.sizeLimit, info.value.readOnly, info.value.autoclear], [img.offset, img.size, true, true]);
    } finally {
      native().loopRelease(a.fd, { detach: true });
    }
  });

  test('with no free device taken from GET_FREE, LOOP_CTL_ADD creates one', () => {
    const before = new Set(native().loopOpenFds());
    const a = attach({ allocate: 'add' });
    try {
      assert.equal(a.added, 1);
      assert.ok(existsSync(`/sys/block/loop${a.number}`));
    } finally {
      native().loopRelease(a.fd, { detach: true });
    }
    assert.deepEqual(new Set(native().loopOpenFds()), before);
  });

  test('a device held by someone else is retried on EBUSY until the timeout, then fails naming it', () => {
    const a = attach();
    try {
      const t = native().loopAttach({ path: img.path, offset: img.offset, sizeLimit: img.size, timeoutMs: 50, device: a.number });
      assert.equal(t.ok, false);
      assert.ok(!t.ok);
      assert.equal(t.error.code, 'EBUSY');
      assert.equal(t.error.syscall, 'ioctl(LOOP_CONFIGURE)');
      assert.equal(t.error.path, a.device);
      assert.match(t.error.message, /Device or resource busy/);
    } finally {
      native().loopRelease(a.fd, { detach: true });
    }
  });

  test('a missing backing file is an open error naming the path, and nothing is attached', () => {
    const r = native().loopAttach({ path: join(dir, 'missing.npk'), offset: 0, sizeLimit: 0, timeoutMs: 100 });
    assert.ok(!r.ok);
    assert.deepEqual([r.error.code, r.error.syscall, r.error.path], ['ENOENT', 'open', join(dir, 'missing.npk')]);
    assert.equal(r.error.message, `open \`${join(dir, 'missing.npk')}\`: No such file or directory`);
  });

  test('mount and umount errors are data with code, syscall and path', () => {
    const r = native().mount(join(dir, 'missing'), join(dir, 'nowhere'), 'squashfs', MS.RDONLY, null);
    assert.ok(!r.ok);
    assert.deepEqual([r.error.code, r.error.syscall, r.error.path], ['ENOENT', 'mount', join(dir, 'nowhere')]);
    const u = native().umount(dir);
    assert.ok(!u.ok);
    assert.equal(u.error.code, 'EINVAL');
    const d = native().loopRelease(12345);
    assert.ok(!d.ok);
    assert.equal(d.error.code, 'EBADF');
  });

  test('many attaches and releases leave no fd and no device behind', () => {
    const fds = openFdCount();
    for (let i = 0; i < 20; i++) native().loopRelease(attach().fd, { detach: i % 2 === 0 });
    assert.equal(openFdCount(), fds);
    assert.deepEqual(native().loopOpenFds(), []);
    assert.deepEqual(loopsBackedBy(dir), []);
  });
});
