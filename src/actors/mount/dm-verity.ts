// dm-verity over a loop device through /dev/mapper/control (spec/launch.md
// §5.3): DEV_CREATE, TABLE_LOAD, DEV_SUSPEND (resume); after the mount,
// DEV_REMOVE with DM_DEFERRED_REMOVE so the device goes away on umount.
// Mount worker only (blocking ioctls).
import { randomBytes, randomUUID } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';

import type { Result, VerityInfo } from '../../machines/contracts.js';
import { err, ok, type SystemErrorData } from '../../model/errors.js';
import { native } from '../../native.js';
import { DM, devCreate, devRemove, devResume, replyDevice, tableLoad, verityTarget } from './dm-ioctl.js';

export const DM_CONTROL = '/dev/mapper/control';

export function hasDeviceMapper(): boolean {
  return existsSync(DM_CONTROL);
}

export interface VerityDevice {
  name: string;
  /** /dev/dm-<minor> */
  device: string;
}

/** Name of a new verity device: northstar-<random> as Northstar names them. */
export function verityDeviceName(): string {
  return `northstar-${randomBytes(15).toString('base64url')}`;
}

/** The one syscall seam: tests record the ioctls instead of issuing them. */
export type DmIoctl = (request: number, buffer: Buffer) => Result<Buffer>;

const kernel: DmIoctl = (request, buffer) => native().dmIoctl(request, buffer);

function step(ioctl: DmIoctl, request: number, buf: Buffer, what: string): Result<Buffer> {
  const r = ioctl(request, buf);
  if (r.ok) return r;
  return err({ ...r.error, message: `${what}: ${r.error.message}` });
}

/** Maps `loopDevice` through dm-verity; on failure nothing stays behind (or the cleanup error is named). */
export function createVerityDevice(
  loopDevice: string,
  verity: VerityInfo,
  name = verityDeviceName(),
  ioctl: DmIoctl = kernel,
): Result<VerityDevice> {
  let target;
  try {
    target = verityTarget({ device: loopDevice, dataBlocks: verity.dataBlocks, rootHash: verity.rootHash, salt: verity.salt });
  } catch (e) {
    return err({ code: 'EINVAL', message: `dm-verity table: ${(e as Error).message}` });
  }
  const created = step(ioctl, DM.DEV_CREATE, devCreate(name, randomUUID()), `dm create ${name}`);
  if (!created.ok) return created;
  const loaded = step(ioctl, DM.TABLE_LOAD, tableLoad(name, target), `dm table load ${name}`);
  const resumed = loaded.ok ? step(ioctl, DM.DEV_SUSPEND, devResume(name), `dm resume ${name}`) : loaded;
  if (!resumed.ok) return err(withCleanup(resumed.error, removeVerityDevice(name, false, ioctl)));
  const { minor } = replyDevice(resumed.value);
  return ok({ name, device: `/dev/dm-${minor}` });
}

/** DM_DEV_REMOVE; `deferred` lets the mount keep the device until umount. */
export function removeVerityDevice(name: string, deferred: boolean, ioctl: DmIoctl = kernel): Result<void> {
  const r = step(ioctl, DM.DEV_REMOVE, devRemove(name, deferred), `dm remove ${name}`);
  return r.ok ? ok(undefined) : r;
}

function withCleanup(error: SystemErrorData, cleanup: Result<void>): SystemErrorData {
  if (cleanup.ok) return error;
  return { ...error, message: `${error.message} (cleanup failed: ${cleanup.error.message})` };
}

/** The device-mapper name of block device `dev` ("dm-3"), from sysfs; undefined when it is none (or gone). */
export function dmNameOf(dev: string): string | undefined {
  try {
    return readFileSync(`/sys/block/${dev}/dm/name`, 'utf8').trim();
  } catch {
    return undefined;
  }
}
