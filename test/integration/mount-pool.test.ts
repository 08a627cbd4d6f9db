// The mount pool against the real kernel: parallel mounts through Piscina
// workers, verity policy, failures unwound, and faults (abort, a terminated
// worker) that leave no loop device, mount or directory behind.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { copyFileSync, existsSync, mkdtempSync, openSync, readFileSync, rmSync, writeSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { MountPool } from '../../src/actors/mount/mount-pool.js';
import { TEST_CHANNEL } from '../../src/actors/mount/mount.worker.js';
import type { MountInput, VerityMode } from '../../src/machines/contracts.js';
import { RuntimeError } from '../../src/model/errors.js';
import { native } from '../../src/native.js';
import { addVerity, loopsBackedBy, mountsUnder, openFdCount, squashfs, wrap } from './mount-images.js';
import type { Image } from './mount-images.js';
import { missing, privileged } from './privileged.js';

describe('the mount pool', privileged({ loop: true, mksquashfs: true, tools: ['veritysetup'] }), () => {
  let dir: string;
  let run: string;
  let plain: Image;
  let signed: Image;
  let pool: MountPool;

  before(() => {
    if (missing({ loop: true, mksquashfs: true, tools: ['veritysetup'] })) return;
    dir = mkdtempSync(join(tmpdir(), 'nstar-pool-'));
    run = join(dir, 'run');
    plain = wrap(join(dir, 'plain.npk'), squashfs(dir, 'plain', { hello: 'hello from plain\n' }), { prefixBytes: 8192 });
    // Incompressible content: several data blocks, so the tree has a level.
    const s = squashfs(dir, 'signed', { hello: 'hello from signed\n', 'random.bin': randomBytes(300_000).toString('base64') });
    const verity = addVerity(s);
    signed = wrap(join(dir, 'signed.npk'), s, { prefixBytes: 4096, verity });
    pool = new MountPool({ threads: 4, minThreads: 0, idleTimeoutMs: 1000 });
  });

  after(async () => {
    if (!dir) return;
    await pool.close();
    for (const m of mountsUnder(run).reverse()) native().umount(m, { detach: true });
    for (const d of loopsBackedBy(dir)) native().loopDetach(d);
    rmSync(dir, { recursive: true, force: true });
  });

  function input(img: Image, name: string, extra: Partial<MountInput> = {}): MountInput {
    return {
      container: `${name}:0.0.1`,
      npkPath: img.path,
      fsImgOffset: img.offset,
      fsImgSize: img.size,
      target: join(run, `${name}:0.0.1`),
      verityMode: 'auto' as VerityMode,
      loopDeviceTimeoutMs: 5000,
      ...(img.verity ? { verity: img.verity } : {}),
      ...extra,
    };
  }

  function assertClean(): void {
    assert.deepEqual(mountsUnder(run), []);
    assert.deepEqual(loopsBackedBy(dir), []);
  }

  test('one image mounts, a file reads through the mount, and umount removes device and mount point', async () => {
    const i = input(plain, 'one');
    const out = await pool.mount(i);
    assert.match(out.device, /^\/dev\/loop\d+$/);
    assert.equal(out.target, i.target);
    assert.deepEqual(Object.keys(out.phases).sort(), ['attach', 'mount', 'open']);
    assert.equal(readFileSync(join(i.target, 'hello'), 'utf8'), 'hello from plain\n');
    assert.deepEqual(mountsUnder(run), [i.target]);
    await pool.umount({ container: i.container, target: i.target });
    assert.equal(existsSync(i.target), false);
    assertClean();
  });

  test('64 concurrent mounts all succeed on distinct devices, beyond the 8 pre-created ones, and leave nothing behind', async () => {
    const inputs = Array.from({ length: 64 }, (_, n) => input(plain, `many${n}`));
    const results = await pool.mountAll(inputs);
    const failed = results.filter((r) => !r.ok);
    assert.deepEqual(failed, []);
    const devices = results.map((r) => (r.ok ? r.value.device : ''));
    assert.equal(new Set(devices).size, 64);
    assert.equal(results.every((r, n) => r.ok && r.value.target === inputs[n]!.target), true, 'results in request order');
    for (const i of inputs) assert.equal(readFileSync(join(i.target, 'hello'), 'utf8'), 'hello from plain\n');
    await Promise.all(inputs.map((i) => pool.umount(i)));
    assertClean();
  });

  test('mounting onto a target that is already mounted answers mount_busy and leaves the first mount alone', async () => {
    const i = input(plain, 'twice');
    await pool.mount(i);
    await assert.rejects(pool.mount(i), (e: RuntimeError) => e instanceof RuntimeError && e.code === 'mount_busy');
    assert.deepEqual(mountsUnder(run), [i.target]);
    assert.equal(readFileSync(join(i.target, 'hello'), 'utf8'), 'hello from plain\n');
    await pool.umount(i);
    assertClean();
  });

  test('a bad image fails in the mount phase with a clear error, and nothing is left', async () => {
    const i = input({ ...plain, offset: 0, size: plain.size }, 'bad');
    await assert.rejects(pool.mount(i), (e: RuntimeError) => {
      assert.ok(e instanceof RuntimeError);
      assert.equal(e.code, 'unexpected');
      assert.match(e.message, /^mount bad:0\.0\.1: mount: mount `.*bad:0\.0\.1`: Invalid argument \(squashfs of .*plain\.npk at offset 0/);
      assert.equal((e.cause as NodeJS.ErrnoException).code, 'EINVAL');
      return true;
    });
    assert.equal(existsSync(i.target), false);
    assertClean();
  });

  test('a missing NPK fails in the open phase naming the file', async () => {
    const i = input({ ...plain, path: join(dir, 'gone.npk') }, 'gone');
    await assert.rejects(pool.mount(i), /^RuntimeError: mount gone:0\.0\.1: open: open `.*gone\.npk`: No such file or directory$/);
    assert.equal(existsSync(i.target), false);
  });

  test('verity = "dm" without device-mapper is refused with a clear error, nothing mounted', async () => {
    const i = input(signed, 'dm', { verityMode: 'dm' });
    await assert.rejects(pool.mount(i), /verity = "dm" needs device-mapper, but \/dev\/mapper\/control does not exist/);
    assertClean();
  });

  test('a keyed image is verified in userspace before it mounts', async () => {
    const i = input(signed, 'signed');
    const out = await pool.mount(i);
    assert.ok(out.phases.verity! >= 0);
    assert.equal(readFileSync(join(i.target, 'hello'), 'utf8'), 'hello from signed\n');
    await pool.umount(i);
    assertClean();
  });

  test('a keyed image with one flipped byte is refused, and nothing is left', async () => {
    const tampered = join(dir, 'tampered.npk');
    copyFileSync(signed.path, tampered);
    // A byte in the middle of the squashfs data (not in the unhashed superblock).
    const at = signed.offset + Math.floor(signed.verity!.verityOffset / 2);
    const fd = openSync(tampered, 'r+');
    writeSync(fd, Buffer.from([readFileSync(tampered)[at]! ^ 0xff]), 0, 1, at);
    closeSync(fd);
    const i = input({ ...signed, path: tampered }, 'tampered', { verityMode: 'userspace' });
    await assert.rejects(pool.mount(i), (e: Error) => {
      assert.match(e.message, /^mount tampered:0\.0\.1: verity: userspace verity: .*fs\.img data block \d+/);
      return true;
    });
    assertClean();
  });

  test('an aborted task paused after the attach unwinds its device and mount point', async () => {
    const i = input(plain, 'aborted');
    const ctl = new AbortController();
    const ch = new BroadcastChannel(TEST_CHANNEL);
    ch.onmessage = (m: MessageEvent) => {
      if ((m.data as { container: string }).container === i.container) ctl.abort();
    };
    try {
      await assert.rejects(pool.mount(i, { signal: ctl.signal, hooks: { pauseAfterAttach: true } }), /aborted/);
    } finally {
      ch.close();
    }
    assert.equal(existsSync(i.target), false);
    assertClean();
  });

  test('a worker terminated while it holds an attached device leaves no device and no mount point', async () => {
    const i = input(plain, 'terminated');
    const ch = new BroadcastChannel(TEST_CHANNEL);
    const attached = new Promise<string>((resolve) => {
      ch.onmessage = (m: MessageEvent) => {
        const d = m.data as { container: string; device: string };
        if (d.container === i.container) resolve(d.device);
      };
    });
    const mounting = pool.mount(i, { hooks: { pauseAfterAttach: true } });
    try {
      const device = await attached;
      assert.ok(native().loopInfo(device).ok, 'attached while paused');
      const rejected = assert.rejects(mounting, /worker exited/);
      // The paused task is the only one running: its worker is the busy one.
      await Promise.all(pool.threads.map((w) => w.terminate()));
      await rejected;
    } finally {
      ch.close();
    }
    assert.equal(existsSync(i.target), false);
    assertClean();
  });

  test('a mountAll aborted midway reports each image, and the aborted ones leave nothing', async () => {
    const inputs = Array.from({ length: 24 }, (_, n) => input(plain, `abortall${n}`));
    const ctl = new AbortController();
    const results = await pool.mountAll(inputs, { signal: ctl.signal, onResult: () => ctl.abort() });
    assert.equal(results.length, 24);
    const aborted = results.filter((r) => !r.ok);
    assert.ok(aborted.length > 0, 'some were aborted');
    for (const r of aborted) assert.match(r.ok ? '' : r.error.message, /aborted/);
    results.forEach((r, n) => assert.equal(existsSync(inputs[n]!.target), r.ok));
    await Promise.all(inputs.filter((_, n) => results[n]!.ok).map((i) => pool.umount(i)));
    assertClean();
  });

  test('mounting through the pool leaks no fds once the pool is closed', async () => {
    const fds = openFdCount();
    const p = new MountPool({ threads: 2, minThreads: 1, idleTimeoutMs: 100 });
    const inputs = Array.from({ length: 8 }, (_, n) => input(plain, `fd${n}`));
    for (const r of await p.mountAll(inputs)) assert.ok(r.ok);
    await Promise.all(inputs.map((i) => p.umount(i)));
    await p.mountAll([input(plain, 'fdbad', { fsImgOffset: 0 })]);
    await p.close();
    assert.equal(openFdCount(), fds);
    assertClean();
  });
});
