// The dm-verity setup sequence, with a recording fake in place of the ioctl
// (this kernel has no device-mapper; the buffers themselves are pinned by
// dm-ioctl.test.ts).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { DM, DM_FLAGS } from '../../src/actors/mount/dm-ioctl.js';
import { createVerityDevice, removeVerityDevice } from '../../src/actors/mount/dm-verity.js';
import type { DmIoctl } from '../../src/actors/mount/dm-verity.js';
import type { VerityInfo } from '../../src/machines/contracts.js';

const VERITY: VerityInfo = { rootHash: 'ab'.repeat(32), salt: 'cd'.repeat(32), dataBlocks: 5, verityOffset: 5 * 4096 };
const NAMES: Record<number, string> = {
  [DM.DEV_CREATE]: 'create',
  [DM.TABLE_LOAD]: 'load',
  [DM.DEV_SUSPEND]: 'resume',
  [DM.DEV_REMOVE]: 'remove',
};

function recorder(failAt?: string): { calls: Array<{ op: string; buf: Buffer }>; ioctl: DmIoctl } {
  const calls: Array<{ op: string; buf: Buffer }> = [];
  const ioctl: DmIoctl = (request, buf) => {
    const op = NAMES[request] ?? `0x${request.toString(16)}`;
    calls.push({ op, buf });
    if (op === failAt) return { ok: false, error: { code: 'EINVAL', errno: 22, syscall: 'ioctl(dm)', message: 'ioctl(dm) `/dev/mapper/control`: Invalid argument' } };
    const reply = Buffer.from(buf);
    // The kernel answers with the device number: major 253, minor 7.
    reply.writeBigUInt64LE(BigInt(7 | (253 << 8)), 40);
    return { ok: true, value: reply };
  };
  return { calls, ioctl };
}

const nameOf = (b: Buffer) => b.subarray(48, 48 + 128).toString('utf8').replace(/\0.*$/s, '');

test('a verity device is created, loaded with the table over the loop device, and resumed', () => {
  const r = recorder();
  const d = createVerityDevice('/dev/loop3', VERITY, 'northstar-x', r.ioctl);
  assert.ok(d.ok);
  assert.deepEqual(d.value, { name: 'northstar-x', device: '/dev/dm-7' });
  assert.deepEqual(r.calls.map((c) => c.op), ['create', 'load', 'resume']);
  assert.deepEqual(r.calls.map((c) => nameOf(c.buf)), ['northstar-x', 'northstar-x', 'northstar-x']);
  assert.match(r.calls[1]!.buf.subarray(352).toString('utf8'), /^1 \/dev\/loop3 \/dev\/loop3 4096 4096 5 6 sha256 (ab){32} (cd){32}\0/);
  assert.equal(r.calls[2]!.buf.readUInt32LE(28) & DM_FLAGS.SUSPEND, 0);
});

test('a failed table load removes the half-made device at once and names the step', () => {
  const r = recorder('load');
  const d = createVerityDevice('/dev/loop3', VERITY, 'northstar-y', r.ioctl);
  assert.ok(!d.ok);
  assert.match(d.error.message, /^dm table load northstar-y: ioctl\(dm\)/);
  assert.deepEqual(r.calls.map((c) => c.op), ['create', 'load', 'remove']);
  assert.equal(r.calls[2]!.buf.readUInt32LE(28), 0, 'not deferred');
});

test('when the cleanup removal fails too, both errors are reported', () => {
  let n = 0;
  const ioctl: DmIoctl = (req, buf) => (++n === 1 ? { ok: true, value: buf } : { ok: false, error: { code: 'EBUSY', message: `failed ${NAMES[req]}` } });
  const d = createVerityDevice('/dev/loop3', VERITY, 'northstar-z', ioctl);
  assert.ok(!d.ok);
  assert.match(d.error.message, /failed load.*cleanup failed: dm remove northstar-z: failed remove/);
});

test('after the mount the device is removed deferred, so it goes away with the umount', () => {
  const r = recorder();
  assert.ok(removeVerityDevice('northstar-x', true, r.ioctl).ok);
  assert.equal(r.calls[0]!.op, 'remove');
  assert.equal(r.calls[0]!.buf.readUInt32LE(28), DM_FLAGS.DEFERRED_REMOVE);
});

test('bad verity facts fail before any ioctl', () => {
  const r = recorder();
  const d = createVerityDevice('/dev/loop3', { ...VERITY, rootHash: 'xyz' }, 'northstar-x', r.ioctl);
  assert.ok(!d.ok);
  assert.match(d.error.message, /root hash/);
  assert.deepEqual(r.calls, []);
});
