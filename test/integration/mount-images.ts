// Test images for the mount tests: squashfs images built with mksquashfs,
// optionally with a dm-verity superblock and tree appended (veritysetup, the
// NPK layout of spec/npk.md §1.2), wrapped at an offset inside a larger file
// the way fs.img sits inside an NPK. Also the leak probes the tests share.
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, statSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';

import { readMounts } from '../../src/actors/mount/mountinfo.js';
import type { VerityInfo } from '../../src/machines/contracts.js';

export interface Image {
  path: string;
  /** Offset and size of the squashfs (plus verity) inside `path`. */
  offset: number;
  size: number;
  verity?: VerityInfo;
}

/** A squashfs image of `files` (name → content) at `out`; returns its size (a multiple of 4096). */
export function squashfs(dir: string, name: string, files: Record<string, string>): string {
  const root = join(dir, `${name}.root`);
  mkdirSync(root, { recursive: true });
  for (const [f, content] of Object.entries(files)) writeFileSync(join(root, f), content);
  const out = join(dir, `${name}.sqfs`);
  execFileSync('mksquashfs', [root, out, '-noappend', '-no-progress', '-quiet', '-all-root'], { stdio: 'ignore' });
  return out;
}

/** Appends a verity superblock and hash tree to `img` (in place) and returns its verity facts. */
export function addVerity(img: string): VerityInfo {
  const size = statSync(img).size;
  const out = execFileSync('veritysetup', ['format', img, img, `--hash-offset=${size}`, `--data-blocks=${size / 4096}`], {
    encoding: 'utf8',
  });
  const field = (k: string) => new RegExp(`^${k}:\\s*(\\S+)`, 'm').exec(out)?.[1] ?? '';
  return { rootHash: field('Root hash'), salt: field('Salt'), dataBlocks: size / 4096, verityOffset: size };
}

/**
 * Writes `prefix` bytes (or a whole other image, padded to 4096), then the
 * image, then 4096 bytes of junk: fs.img inside an NPK.
 */
export function wrap(out: string, img: string, opts: { prefix?: string; prefixBytes?: number; verity?: VerityInfo } = {}): Image {
  const fd = openSync(out, 'w');
  try {
    let at = 0;
    if (opts.prefix) {
      const p = readFileSync(opts.prefix);
      writeSync(fd, p);
      at = Math.ceil(p.length / 4096) * 4096;
    }
    at += opts.prefixBytes ?? 0;
    if (at === 0) at = 4096;
    const body = readFileSync(img);
    writeSync(fd, body, 0, body.length, at);
    writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, at + body.length);
    return { path: out, offset: at, size: body.length, ...(opts.verity ? { verity: opts.verity } : {}) };
  } finally {
    closeSync(fd);
  }
}

/** Loop devices attached to files under `dir` (leak probe). */
export function loopsBackedBy(dir: string): string[] {
  const out: string[] = [];
  for (const d of readdirSync('/sys/block').filter((x) => x.startsWith('loop'))) {
    try {
      const backing = readFileSync(`/sys/block/${d}/loop/backing_file`, 'utf8').trim();
      if (backing.startsWith(dir)) out.push(`/dev/${d}`);
    } catch {
      // not attached
    }
  }
  return out;
}

/** Mount points at or below `dir` in this mount namespace (leak probe). */
export function mountsUnder(dir: string): string[] {
  return readMounts().map((m) => m.target).filter((t) => t === dir || t.startsWith(`${dir}/`));
}

export function openFdCount(): number {
  return readdirSync('/proc/self/fd').length;
}
