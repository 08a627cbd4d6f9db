// Userspace verity for kernels without device-mapper (spec/README.md
// deviation 11): the whole image's hash tree and root hash are checked in the
// mount worker, through the attached loop device, before it is mounted.
// The verifier itself is the NPK module's.
import type { Result, VerityInfo } from '../../machines/contracts.js';
import { err, ok } from '../../model/errors.js';
import { verifyImage } from '../../npk/verity.js';

/** Verifies `size` bytes of fs.img readable at offset 0 of `fd`; never resolves ok on a mismatch. */
export async function verifyImageFd(fd: number, size: number, verity: VerityInfo): Promise<Result<void>> {
  try {
    await verifyImage({ fd, offset: 0, size, verity });
    return ok(undefined);
  } catch (e) {
    const x = e as { code?: unknown; message?: unknown };
    const code = typeof x.code === 'string' ? x.code : 'verity_mismatch';
    return err({ code, message: `userspace verity: ${String(x.message ?? e)}` });
  }
}
