// Unpacking like sextant's unpack_with (spec/npk.md §1.5): every zip entry
// into `out`, then fs.img extracted by unsquashfs into `out/root` and removed.
import { execFile } from 'node:child_process';
import { closeSync, fstat as fstatCb, open as openCb } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import { join, normalize } from 'node:path';
import { promisify } from 'node:util';

import { NpkError } from '../npk/error.js';
import { readAt, readZipDirectory, type ZipEntry } from '../npk/zip.js';

const execFileAsync = promisify(execFile);
const openAsync = promisify(openCb);
const fstatAsync = promisify(fstatCb);
const CHUNK = 1 << 20;

/** Runs unsquashfs, turning a failure into an NpkError with its last output lines. */
export async function unsquashfs(args: string[], bin = 'unsquashfs'): Promise<string> {
  try {
    const { stdout } = await execFileAsync(bin, args, { maxBuffer: 64 << 20 });
    return stdout;
  } catch (e) {
    const err = e as Error & { stderr?: string; stdout?: string };
    const tail = `${err.stdout ?? ''}${err.stderr ?? ''}`.trim().split('\n').slice(-6).join('\n');
    throw new NpkError('npk_pack', `${bin} failed: ${tail || err.message}`, { cause: e });
  }
}

async function copyEntry(fd: number, e: ZipEntry, dest: string): Promise<void> {
  const out = await open(dest, 'wx', 0o644);
  try {
    for (let done = 0; done < e.size; ) {
      const n = Math.min(CHUNK, e.size - done);
      const buf = await readAt(fd, e.dataStart + done, n, e.name);
      await out.write(buf, 0, n);
      done += n;
    }
  } finally {
    await out.close();
  }
}

/** Entry names become files directly in `out`: no directories, no escaping it. */
function safeName(name: string): string {
  const n = normalize(name);
  if (n !== name || name.includes('/') || name === '..' || name === '.' || name === '') {
    throw new NpkError('npk_zip', `entry name ${JSON.stringify(name)} is not a plain file name`);
  }
  return name;
}

export async function unpackNpk(opts: { npk: string; out: string; unsquashfs?: string }): Promise<void> {
  let fd: number;
  try {
    fd = await openAsync(opts.npk, 'r');
  } catch (e) {
    throw new NpkError('npk_io', `${opts.npk}: ${(e as Error).message}`, { cause: e });
  }
  try {
    const { size } = await fstatAsync(fd);
    const dir = await readZipDirectory(fd, size);
    for (const e of dir.entries) {
      if (e.method !== 0) throw new NpkError('npk_entry', `${e.name}: entry is compressed (method ${e.method}); NPK entries must be Stored`);
    }
    if (!dir.entries.some((e) => e.name === 'fs.img')) throw new NpkError('npk_entry', 'fs.img: missing from the archive');
    await mkdir(opts.out, { recursive: true });
    for (const e of dir.entries) await copyEntry(fd, e, join(opts.out, safeName(e.name)));
  } finally {
    closeSync(fd);
  }
  const img = join(opts.out, 'fs.img');
  await unsquashfs(['-no-progress', '-quiet', '-dest', join(opts.out, 'root'), img], opts.unsquashfs);
  await rm(img);
}
