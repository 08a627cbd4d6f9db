// Typed contract of the addon's loop module (native/loop.cc): loop devices and
// mount/umount2. Blocking calls: run them in a mount worker.
import type { Result } from '../model/errors.js';

export interface LoopAttachOptions {
  /** The backing file (an NPK, or /proc/<pid>/fd/<n> of a memfd). */
  path: string;
  /** Byte offset and size of the image inside the file (fs.img of the NPK). 0 = to the end. */
  offset: number;
  sizeLimit: number;
  /** Retry window for EBUSY races on free devices (config loop_device_timeout). */
  timeoutMs: number;
  /** 'classic' forces LOOP_SET_FD + LOOP_SET_STATUS64 (the kernel < 5.8 path; benchmarks). */
  method?: 'configure' | 'classic';
  /** 'add' skips LOOP_CTL_GET_FREE and creates a device with LOOP_CTL_ADD (tests). */
  allocate?: 'get_free' | 'add';
  /** Attach exactly /dev/loop<device> (losetup style); EBUSY is retried until the timeout. */
  device?: number;
  /** Open the backing file O_NOFOLLOW (a repository file: a symlink put in its place is refused with ELOOP). */
  noFollow?: boolean;
}

export interface LoopAttached {
  /** /dev/loopN */
  device: string;
  number: number;
  /**
   * An open fd of the device, owned by the calling thread's addon instance.
   * Keep it open until the device is mounted, then `loopRelease(fd)`: with
   * AUTOCLEAR the last close of an unmounted device detaches it.
   */
  fd: number;
  /** Which ioctl attached the device. */
  method: 'configure' | 'classic';
  /** Attempts lost to racing attachers (EBUSY) before this one won. */
  busyRetries: number;
  /** Devices created with LOOP_CTL_ADD by this call. */
  added: number;
  /** Milliseconds: opening the backing file, attaching the device. */
  phases: { open: number; attach: number };
}

export interface LoopStatus {
  device: string;
  number: number;
  offset: number;
  sizeLimit: number;
  flags: number;
  readOnly: boolean;
  autoclear: boolean;
  /** lo_file_name: the first 63 bytes of the path given at attach time. */
  fileName: string;
}

export interface LoopNative {
  /** READ_ONLY|AUTOCLEAR attach of `path` at offset/sizeLimit to a free loop device. */
  loopAttach(opts: LoopAttachOptions): Result<LoopAttached>;
  /**
   * Closes a device fd from loopAttach (EBADF when this thread does not hold
   * it). `detach` first clears the device (LOOP_CLR_FD): synchronous when this
   * fd is its only opener, otherwise the kernel detaches on the last close.
   */
  loopRelease(fd: number, opts?: { detach?: boolean }): Result<void>;
  /** The loop-device fds this thread still holds (leak checks). */
  loopOpenFds(): number[];
  /** LOOP_CLR_FD on `device` (/dev/loopN). */
  loopDetach(device: string): Result<void>;
  /** LOOP_GET_STATUS64 of `device`; ENXIO when it is not attached. */
  loopInfo(device: string): Result<LoopStatus>;
  /** mount(2). `data` null for none. */
  mount(source: string | null, target: string, fstype: string | null, flags: number, data?: string | null): Result<void>;
  /** umount2(2) with UMOUNT_NOFOLLOW, plus MNT_DETACH when `detach`. */
  umount(target: string, opts?: { detach?: boolean }): Result<void>;
}

/** mount(2) flags used by the runtime. */
export const MS = {
  RDONLY: 0x1,
  NOSUID: 0x2,
  NODEV: 0x4,
  NOEXEC: 0x8,
  REMOUNT: 0x20,
  BIND: 0x1000,
  REC: 0x4000,
} as const;
