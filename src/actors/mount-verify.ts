// Userspace verity for kernels without device-mapper (spec/README.md
// deviation 11): the whole image's hash tree and root hash are checked in the
// mount worker, through the attached loop device, before it is mounted.
// The verifier itself is the NPK module's (src/npk/verity.ts).
import type { Result, VerityInfo } from '../machines/contracts.js';

interface Verifier {
  verifyImage(o: { fd: number; offset: number; size: number; verity: VerityInfo }): Promise<void>;
}

async function verifier(): Promise<Verifier | undefined> {
  // Resolved at run time until src/npk/verity.ts lands on this branch.
  const spec = '../npk/verity.js';
  try {
    return (await import(spec)) as Verifier;
  } catch {
    return undefined;
  }
}

/** Verifies `size` bytes of fs.img readable at offset 0 of `fd`; never resolves ok on a mismatch. */
export async function verifyImageFd(fd: number, size: number, verity: VerityInfo): Promise<Result<void>> {
  const v = await verifier();
  if (!v) return { ok: false, error: { code: 'ENOSYS', message: 'userspace verity: the verifier (src/npk/verity.ts) is not available; refusing to mount unverified' } };
  try {
    await v.verifyImage({ fd, offset: 0, size, verity });
    return { ok: true, value: undefined };
  } catch (e) {
    const x = e as { code?: unknown; message?: unknown };
    const code = typeof x.code === 'string' ? x.code : 'verity_mismatch';
    return { ok: false, error: { code, message: `userspace verity: ${String(x.message ?? e)}` } };
  }
}
