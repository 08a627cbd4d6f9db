// dm-verity for real (kernel lane): the northstar daemon with `verity = "dm"`
// mounts containers of a keyed repository on a `verity` device-mapper target
// built from the signed root hash, and a byte flipped in the image — in the
// data or in the hash tree — is never read: the kernel answers EIO, the
// start fails, nothing is left behind. `dmsetup`, an independent reader of
// the kernel's tables, checks what our DM ioctls set up.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, readFileSync, readSync, writeSync } from 'node:fs';
import { basename, join } from 'node:path';
import { describe, test } from 'node:test';

import { closeNpk, openNpk } from '../../../src/npk/npk.js';
import type { VerityInfo } from '../../../src/machines/contracts.js';
import { fixtureKeys } from '../../fixtures/npk.js';
import { exitsOf, isStarted, nthExit } from '../../integration/runtime-checks.js';
import { startDaemon, type DaemonHarness } from '../../integration/runtime-harness.js';
import { verity as verityNpk, VERITY_DATA, VERITY_LINE } from './fixtures.js';
import { containerMount, dmDevice, dmDevicesGone, dmsetup, dropCaches, guestOnly, northstarDmDevices, read, shutdownClean } from './guest.js';

/** fs.img's offset in the NPK and its verity parameters, as signed. */
async function layout(npk: string): Promise<{ fsImgOffset: number; verity: VerityInfo }> {
  const n = await openNpk(npk, { key: (await fixtureKeys()).publicKey });
  closeNpk(n);
  assert.ok(n.verity, 'a signed NPK has verity parameters');
  return { fsImgOffset: n.fsImgOffset, verity: n.verity };
}

/** Flips one bit of the byte at `pos` in `file`, on disk. */
function flip(file: string, pos: number): void {
  const fd = openSync(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    readSync(fd, b, 0, 1, pos);
    b[0]! ^= 0x20;
    writeSync(fd, b, 0, 1, pos);
  } finally {
    closeSync(fd);
  }
}

/** Reading `path` fails with EIO. */
function assertEio(path: string): void {
  assert.throws(() => readFileSync(path), { code: 'EIO' }, `${path} reads as EIO`);
}

const kernelLog = () => execFileSync('dmesg', { encoding: 'utf8' });

describe('dm-verity', guestOnly(), () => {
  test('keyed containers under dm-verity: verified, tamper-proof, and cleaned up', { timeout: 240_000 }, async (t) => {
    const [good, tree] = await Promise.all([verityNpk('verity'), verityNpk('tree')]);
    // dm devices another test file may have left: not ours to judge here.
    const before = northstarDmDevices();
    const h: DaemonHarness = await startDaemon(t, { repositories: { default: { npks: [good, tree], key: true } }, topToml: 'verity = "dm"' });
    const copy = (npk: string) => join(h.repoDir('default'), basename(npk));
    const inDaemon = (id: string, file: string) => `/proc/${h.proc.pid}/root${join(h.config.runDir, id, file)}`;

    await t.test('the root is a squashfs on a verity target made of the NPK\'s root hash, salt and block sizes', async () => {
      const id = 'verity:0.0.1';
      await h.client.start(id);
      await h.waitFor(isStarted(id));
      const m = containerMount(h, id);
      assert.equal(m?.fstype, 'squashfs', `${id} is a squashfs mount`);
      assert.match(m.source, /^\/dev\/dm-\d+$/, 'mounted from a device-mapper device');
      const dm = dmDevice(m.source);
      assert.match(dm.below, /^loop\d+$/, 'the dm device sits on a loop device');
      assert.equal(read(`/sys/block/${dm.below}/loop/backing_file`), copy(good), 'the loop device reads the installed NPK');
      const loop = read(`/sys/block/${dm.below}/dev`);
      const { verity } = await layout(copy(good));
      const { dataBlocks: n, rootHash, salt } = verity;
      // dm-verity's table: version 1, data and hash device, 4096-byte blocks, data blocks, hash start block, algorithm, root hash, salt.
      assert.equal(dmsetup('table', dm.name), `0 ${n * 8} verity 1 ${loop} ${loop} 4096 4096 ${n} ${n + 1} sha256 ${rootHash} ${salt}`);
      assert.equal(dmsetup('status', dm.name).split(' ').at(-1), 'V', 'the kernel has found no corruption');
      assert.equal(readFileSync(inDaemon(id, 'data.txt'), 'utf8'), VERITY_DATA, 'the content reads back through the verity target');

      await h.client.kill(id, 9);
      await nthExit(h, id, 1);
      assert.deepEqual(await h.client.umount([id]), [{ ok: { container: id } }]);
      await dmDevicesGone(before, 'umount removes the dm device');
      assert.throws(() => read(`/sys/block/${dm.below}/loop/backing_file`), 'umount detaches the loop device');
    });

    await t.test('a byte flipped in the hash tree: the start fails with nothing read and nothing left', async () => {
      const id = 'tree:0.0.1';
      const { fsImgOffset, verity } = await layout(copy(tree));
      // The first hash block after the verity superblock: the top of the tree, which the root hash covers.
      flip(copy(tree), fsImgOffset + verity.verityOffset + 4096);
      dropCaches();
      await assert.rejects(h.client.start(id), 'the start of a container with a tampered hash tree fails');
      assert.match(kernelLog(), /verity: \S+: metadata block \d+ is corrupted/, 'the kernel reports the hash tree');
      assert.deepEqual(northstarDmDevices().filter((d) => !before.includes(d)), [], 'the failed mount leaves no dm device');
      assert.equal(containerMount(h, id), undefined, 'nor a mount');
    });

    await t.test('a byte flipped in the image data after a verified read: EIO once the caches are dropped, never the tampered byte', async () => {
      const id = 'verity:0.0.1';
      await h.client.start(id);
      await h.waitFor(isStarted(id));
      assert.equal(readFileSync(inDaemon(id, 'data.txt'), 'utf8'), VERITY_DATA, 'verified content before the tamper');
      const { fsImgOffset, verity } = await layout(copy(good));
      const bytes = readFileSync(copy(good));
      const at = bytes.indexOf(VERITY_LINE, fsImgOffset);
      assert.ok(at > fsImgOffset && at < fsImgOffset + verity.verityOffset, 'the marker lies in the squashfs data of fs.img');
      flip(copy(good), at);
      const tampered = readFileSync(copy(good)).subarray(at, at + VERITY_LINE.length - 1).toString();
      assert.notEqual(tampered, VERITY_LINE.slice(0, -1), 'the byte on disk is changed');
      dropCaches();
      assertEio(inDaemon(id, 'data.txt'));
      assert.match(kernelLog(), /verity: \S+: data block \d+ is corrupted/, 'the kernel reports the data block');
      // The container itself cannot read it either.
      await h.client.kill(id, 9);
      const exits = exitsOf(h, id).length + 1;
      await nthExit(h, id, exits);
      await h.client.start(id, { args: ['read', '/data.txt'] });
      await nthExit(h, id, exits + 1);
      assert.ok(!h.output().includes(tampered), 'the tampered line never reaches the container');
      const dm = dmDevice(containerMount(h, id)!.source);
      assert.notEqual(dmsetup('status', dm.name).split(' ').at(-1), 'V', 'dm-verity has marked the device corrupted');
    });

    await t.test('shutdown leaves no dm device, loop device, mount or cgroup', async () => {
      await shutdownClean(h, before);
    });
  });
});
