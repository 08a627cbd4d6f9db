// Typed contract of the addon's dm module (native/dm.cc). The buffers are
// built and parsed by src/actors/mount/dm-ioctl.ts.
import type { Result } from '../model/errors.js';

export interface DmNative {
  /**
   * One ioctl on /dev/mapper/control with a struct dm_ioctl buffer (its
   * data_size must equal the buffer length). Returns the kernel's reply.
   */
  dmIoctl(request: number, buffer: Buffer): Result<Buffer>;
}
