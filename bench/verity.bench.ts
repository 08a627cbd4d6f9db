// Userspace verity (deviation 11: keyed repositories without device-mapper
// verify the whole image in a pool worker before mounting).
//
//   node --import tsx bench/verity.bench.ts [--mb 16,64,256] [--reps 3]
//
// For each image size: building the hash tree (packing) and verifyImage
// (mounting), against references measured in the same run on the same file:
// `veritysetup verify` (cryptsetup's C implementation) and `sha256sum` (one
// pass of SHA-256 over the data, the floor). One JSON line per size; best of
// `reps` for each figure.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';

import { buildVerity, verifyImage } from '../src/npk/verity.js';

const { values } = parseArgs({ options: { mb: { type: 'string', default: '16,64,256' }, reps: { type: 'string', default: '3' } } });
const sizes = values.mb.split(',').map(Number);
const reps = Number(values.reps);

async function best(fn: () => Promise<unknown> | unknown): Promise<number> {
  let min = Infinity;
  for (let i = 0; i < reps; i++) {
    const t = process.hrtime.bigint();
    await fn();
    min = Math.min(min, Number(process.hrtime.bigint() - t) / 1e6);
  }
  return Math.round(min * 10) / 10;
}

const dir = mkdtempSync(join(tmpdir(), 'verity-bench-'));
try {
  for (const mb of sizes) {
    const path = join(dir, `img-${mb}`);
    const size = mb << 20;
    const fd = openSync(path, 'w+');
    try {
      const chunk = randomBytes(1 << 20);
      for (let i = 0; i < mb; i++) writeSync(fd, chunk, 0, chunk.length, i << 20);
      let v: Awaited<ReturnType<typeof buildVerity>> | undefined;
      const buildMs = await best(async () => {
        v = await buildVerity({ fd, offset: 0, size });
      });
      const sealed = Buffer.concat([v!.superblock, v!.tree]);
      writeSync(fd, sealed, 0, sealed.length, size);
      const verity = { rootHash: v!.rootHash.toString('hex'), salt: v!.salt.toString('hex'), dataBlocks: size / 4096, verityOffset: size };
      const verifyMs = await best(() => verifyImage({ fd, offset: 0, size: size + sealed.length, verity }));
      const veritysetupMs = await best(() =>
        execFileSync('veritysetup', ['verify', path, path, verity.rootHash, '--hash-offset', String(size)]),
      );
      const sha256sumMs = await best(() => execFileSync('sha256sum', [path]));
      console.log(
        JSON.stringify({
          bench: 'verity',
          mb,
          build_ms: buildMs,
          verify_ms: verifyMs,
          veritysetup_verify_ms: veritysetupMs,
          sha256sum_ms: sha256sumMs,
          verify_vs_veritysetup: Math.round((verifyMs / veritysetupMs) * 100) / 100,
          verify_vs_sha256sum: Math.round((verifyMs / sha256sumMs) * 100) / 100,
          verify_mb_per_s: Math.round(mb / (verifyMs / 1000)),
        }),
      );
    } finally {
      closeSync(fd);
      rmSync(path, { force: true });
    }
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
}
