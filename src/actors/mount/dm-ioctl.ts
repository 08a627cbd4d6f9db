// struct dm_ioctl buffers for /dev/mapper/control (linux/dm-ioctl.h, little
// endian), and the dm-verity table of spec/launch.md §5.3. Pure functions:
// golden byte tests pin every buffer; native/dm.cc only carries them to the
// kernel.

/** sizeof(struct dm_ioctl). */
export const DM_IOCTL_SIZE = 312;
/** sizeof(struct dm_target_spec). */
export const DM_TARGET_SPEC_SIZE = 40;
export const DM_NAME_LEN = 128;
export const DM_UUID_LEN = 129;

/** _IOWR(0xfd, nr, struct dm_ioctl). */
const iowr = (nr: number): number => (0xc0000000 | (DM_IOCTL_SIZE << 16) | (0xfd << 8) | nr) >>> 0;

export const DM = {
  VERSION: iowr(0),
  DEV_CREATE: iowr(3),
  DEV_REMOVE: iowr(4),
  DEV_SUSPEND: iowr(6),
  DEV_STATUS: iowr(7),
  TABLE_LOAD: iowr(9),
} as const;

export const DM_FLAGS = {
  READONLY: 1 << 0,
  SUSPEND: 1 << 1,
  EXISTS: 1 << 2,
  /** Remove the device once its last opener (our mount) goes away (kernel ≥ 3.13, dm 4.27). */
  DEFERRED_REMOVE: 1 << 17,
} as const;

/**
 * The interface version we ask for. The kernel accepts any request whose
 * major matches and whose minor is not above its own, and answers with its
 * version.
 */
export const DM_VERSION: readonly [number, number, number] = [4, 0, 0];

export interface DmHeader {
  name: string;
  uuid?: string;
  flags?: number;
  targetCount?: number;
  /** Bytes following the header (target specs and their parameters). */
  payload?: Buffer;
}

function putCString(buf: Buffer, at: number, max: number, s: string, what: string): void {
  const bytes = Buffer.from(s, 'utf8');
  if (bytes.length >= max) throw new RangeError(`dm ${what} "${s}" is longer than ${max - 1} bytes`);
  if (bytes.includes(0)) throw new RangeError(`dm ${what} contains a NUL byte`);
  bytes.copy(buf, at);
}

/** A struct dm_ioctl header followed by `payload`; data_size covers both. */
export function dmIoctlBuffer(h: DmHeader): Buffer {
  const payload = h.payload ?? Buffer.alloc(0);
  const buf = Buffer.alloc(DM_IOCTL_SIZE + payload.length);
  buf.writeUInt32LE(DM_VERSION[0], 0);
  buf.writeUInt32LE(DM_VERSION[1], 4);
  buf.writeUInt32LE(DM_VERSION[2], 8);
  buf.writeUInt32LE(buf.length, 12); // data_size
  buf.writeUInt32LE(DM_IOCTL_SIZE, 16); // data_start
  buf.writeUInt32LE(h.targetCount ?? 0, 20);
  buf.writeUInt32LE((h.flags ?? 0) >>> 0, 28);
  putCString(buf, 48, DM_NAME_LEN, h.name, 'name');
  if (h.uuid !== undefined) putCString(buf, 176, DM_UUID_LEN, h.uuid, 'uuid');
  payload.copy(buf, DM_IOCTL_SIZE);
  return buf;
}

export interface DmTarget {
  sectorStart: number;
  /** Length in 512-byte sectors. */
  length: number;
  type: string;
  params: string;
}

/** struct dm_target_spec + NUL-terminated params, padded to 8 bytes; `next` = its size. */
export function dmTargetSpec(t: DmTarget): Buffer {
  const params = Buffer.from(`${t.params}\0`, 'utf8');
  const size = DM_TARGET_SPEC_SIZE + Math.ceil(params.length / 8) * 8;
  const buf = Buffer.alloc(size);
  buf.writeBigUInt64LE(BigInt(t.sectorStart), 0);
  buf.writeBigUInt64LE(BigInt(t.length), 8);
  buf.writeInt32LE(0, 16); // status
  buf.writeUInt32LE(size, 20); // next
  putCString(buf, 24, 16, t.type, 'target type');
  params.copy(buf, DM_TARGET_SPEC_SIZE);
  return buf;
}

/** DM_DEV_CREATE: a new, empty mapped device. */
export function devCreate(name: string, uuid: string): Buffer {
  return dmIoctlBuffer({ name, uuid });
}

/** DM_TABLE_LOAD of one read-only target into the inactive table of `name`. */
export function tableLoad(name: string, target: DmTarget): Buffer {
  return dmIoctlBuffer({ name, flags: DM_FLAGS.READONLY, targetCount: 1, payload: dmTargetSpec(target) });
}

/** DM_DEV_SUSPEND without DM_SUSPEND_FLAG: resume, making the loaded table live. */
export function devResume(name: string): Buffer {
  return dmIoctlBuffer({ name });
}

/** DM_DEV_REMOVE; `deferred` removes it when its last opener (the mount) closes. */
export function devRemove(name: string, deferred: boolean): Buffer {
  return dmIoctlBuffer({ name, flags: deferred ? DM_FLAGS.DEFERRED_REMOVE : 0 });
}

/** The reply's dev field (kernel huge_encode_dev) as major/minor. */
export function replyDevice(reply: Buffer): { major: number; minor: number } {
  const dev = reply.readBigUInt64LE(40);
  const minor = Number((dev & 0xffn) | ((dev >> 12n) & ~0xffn & 0xfffffn));
  const major = Number((dev >> 8n) & 0xfffn);
  return { major, minor };
}

export interface VerityTableInput {
  /** The data and hash device (both the loop device), e.g. /dev/loop3. */
  device: string;
  /** Number of 4096-byte data blocks (verity offset / 4096). */
  dataBlocks: number;
  rootHash: string;
  salt: string;
}

/**
 * The dm-verity target of spec/launch.md §5.3: data and hash on the same
 * device; the hash tree starts one block after the data (the superblock
 * between them is skipped).
 */
export function verityTarget(v: VerityTableInput): DmTarget {
  const hex = /^[0-9a-f]+$/;
  if (!hex.test(v.rootHash) || v.rootHash.length !== 64) throw new RangeError('verity root hash must be 64 lowercase hex digits');
  if (!hex.test(v.salt)) throw new RangeError('verity salt must be lowercase hex');
  if (!Number.isSafeInteger(v.dataBlocks) || v.dataBlocks <= 0) throw new RangeError('verity data blocks must be a positive integer');
  return {
    sectorStart: 0,
    length: v.dataBlocks * 8,
    type: 'verity',
    params: `1 ${v.device} ${v.device} 4096 4096 ${v.dataBlocks} ${v.dataBlocks + 1} sha256 ${v.rootHash} ${v.salt}`,
  };
}
