// Packing an NPK like Northstar's NpkBuilder (spec/npk.md §1.5): squashfs
// image of the root, with a key the verity superblock and hash tree appended
// to it and signature.yaml built, then a zip of Stored entries with fs.img's
// data 4096-aligned and the comment `version: 0.9.3`.
//
// The NPK is written to a temporary file beside the target and renamed into
// place, so an interrupted pack leaves no half-written NPK behind.
import { randomBytes } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { mkdir, mkdtemp, open, readFile, rename, rm, stat, type FileHandle } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { crc32 } from 'node:zlib';

import type { Manifest } from '../model/manifest.js';
import { VERSION } from '../model/version.js';
import { NpkError } from '../npk/error.js';
import { readKeyFile } from '../npk/keys.js';
import { manifestYaml, parseManifestText } from '../npk/manifest-io.js';
import { buildSignature, sha256Hex } from '../npk/signature.js';
import { VERITY_BLOCK, buildVerity } from '../npk/verity.js';
import { StoredZipWriter } from '../npk/zip.js';
import { buildSquashfs, type Compression } from './squashfs.js';

export interface PackOptions {
  /** The manifest, as an object or as text (YAML, JSON or TOML). */
  manifest?: Manifest | string;
  /** A manifest file (YAML, JSON or TOML); exclusive with `manifest`. */
  manifestPath?: string;
  /** The container root; absent means an empty root. */
  root?: string;
  /** A directory (the NPK is named `<name>-<version>.npk`) or a file path. */
  out: string;
  /** The signing key: a `.key` file path or the raw 32-byte seed. */
  key?: string | Buffer;
  compression?: Compression;
  blockSize?: number;
  mksquashfs?: string;
  /** Show mksquashfs's progress bar (only sensible on a TTY). */
  progress?: boolean;
  /** Progress of the phases after mksquashfs: hashing the image, writing the zip. */
  onProgress?: (p: PackProgress) => void;
}

export interface PackProgress {
  phase: 'verity' | 'zip';
  done: number;
  total: number;
}

export interface PackResult {
  path: string;
  manifest: Manifest;
  fsImgSize: number;
  /** Root hash hex, when signed. */
  rootHash?: string;
}

/** The zip comment: serde_yaml of Meta { version }. */
export const META_COMMENT = `version: ${VERSION}\n`;

async function loadManifest(opts: PackOptions): Promise<Manifest> {
  if (opts.manifest !== undefined && opts.manifestPath !== undefined) {
    throw new NpkError('npk_pack', 'give either a manifest or a manifest path, not both');
  }
  if (opts.manifestPath !== undefined) {
    let text: string;
    try {
      text = await readFile(opts.manifestPath, 'utf8');
    } catch (e) {
      throw new NpkError('npk_pack', `manifest ${opts.manifestPath}: ${(e as Error).message}`, { cause: e });
    }
    return parseManifestText(text, opts.manifestPath);
  }
  if (opts.manifest === undefined) throw new NpkError('npk_pack', 'no manifest given');
  if (typeof opts.manifest === 'string') return parseManifestText(opts.manifest, 'manifest');
  // Round-trip through the serialized form: what the NPK holds must parse and validate.
  return parseManifestText(manifestYaml(opts.manifest), 'manifest');
}

async function outputPath(out: string, m: Manifest): Promise<string> {
  const st = await stat(out).catch(() => undefined);
  if (st?.isDirectory()) return join(out, `${m.name}-${m.version}.npk`);
  const parent = await stat(dirname(out)).catch(() => undefined);
  if (!parent?.isDirectory()) throw new NpkError('npk_pack', `out ${out}: directory ${dirname(out)} does not exist`);
  return out;
}

async function crcOfFile(path: string): Promise<number> {
  let crc = 0;
  for await (const chunk of createReadStream(path, { highWaterMark: 1 << 20 })) crc = crc32(chunk as Buffer, crc);
  return crc;
}

async function writeAll(fh: FileHandle, data: Buffer): Promise<void> {
  for (let off = 0; off < data.length; ) off += (await fh.write(data, off, data.length - off)).bytesWritten;
}

async function checkRoot(root: string): Promise<void> {
  const st = await stat(root).catch((e: Error) => {
    throw new NpkError('npk_pack', `root ${root}: ${e.message}`);
  });
  if (!st.isDirectory()) throw new NpkError('npk_pack', `root ${root}: not a directory`);
}

/** Appends superblock + hash tree to the image; returns the signature.yaml text. */
async function sealImage(
  image: string,
  seed: Buffer,
  comment: Buffer,
  manifestText: string,
  onProgress?: (p: PackProgress) => void,
): Promise<{ signature: string; rootHash: string }> {
  const fh = await open(image, 'r+');
  try {
    const { size } = await fh.stat();
    if (size % VERITY_BLOCK !== 0) throw new NpkError('npk_pack', `fs.img: squashfs size ${size} is not a multiple of 4096`);
    const v = await buildVerity({ fd: fh.fd, offset: 0, size }, { onProgress: (done, total) => onProgress?.({ phase: 'verity', done, total }) });
    await fh.write(Buffer.concat([v.superblock, v.tree]), 0, v.superblock.length + v.tree.length, size);
    const rootHash = v.rootHash.toString('hex');
    const signature = buildSignature(
      { metaHash: sha256Hex(comment), manifestHash: sha256Hex(manifestText), verityHash: rootHash, verityOffset: size },
      seed,
    );
    return { signature, rootHash };
  } finally {
    await fh.close();
  }
}

/** Writes the zip to `tmp`: manifest.yaml, signature.yaml (when signed), fs.img aligned to 4096. */
async function writeZip(
  tmp: string,
  parts: { manifestText: string; signature?: string; image: string; comment: Buffer },
  onProgress?: (p: PackProgress) => void,
): Promise<void> {
  const { manifestText, signature, image, comment } = parts;
  const fh = await open(tmp, 'wx', 0o644);
  try {
    const zip = new StoredZipWriter((d) => writeAll(fh, d));
    await zip.addBuffer('manifest.yaml', Buffer.from(manifestText, 'utf8'));
    if (signature !== undefined) await zip.addBuffer('signature.yaml', Buffer.from(signature, 'utf8'));
    const { size } = await stat(image);
    const crc = await crcOfFile(image);
    await zip.addStream('fs.img', size, crc, VERITY_BLOCK, async () => {
      let done = 0;
      for await (const chunk of createReadStream(image, { highWaterMark: 1 << 20 })) {
        await writeAll(fh, chunk as Buffer);
        done += (chunk as Buffer).length;
        onProgress?.({ phase: 'zip', done, total: size });
      }
    });
    await zip.finish(comment);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Packs an NPK. Returns where it was written. */
export async function packNpk(opts: PackOptions): Promise<PackResult> {
  const manifest = await loadManifest(opts);
  const manifestText = manifestYaml(manifest);
  const seed = opts.key === undefined ? undefined : Buffer.isBuffer(opts.key) ? opts.key : await readKeyFile(opts.key);
  if (seed && seed.length !== 32) throw new NpkError('npk_key', `key: ${seed.length} bytes, expected a raw 32-byte ed25519 seed`);
  const out = await outputPath(opts.out, manifest);
  const scratch = await mkdtemp(join(tmpdir(), 'npk-'));
  const tmp = join(dirname(out), `.${basename(out)}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    const root = opts.root ?? join(scratch, 'root');
    if (opts.root === undefined) await mkdir(root);
    else await checkRoot(root);
    const image = join(scratch, 'fs.img');
    await buildSquashfs({
      root, image, manifest,
      compression: opts.compression, blockSize: opts.blockSize, mksquashfs: opts.mksquashfs, progress: opts.progress,
    });
    const comment = Buffer.from(META_COMMENT, 'utf8');
    const sealed = seed ? await sealImage(image, seed, comment, manifestText, opts.onProgress) : undefined;
    await writeZip(tmp, { manifestText, signature: sealed?.signature, image, comment }, opts.onProgress);
    await rename(tmp, out);
    return { path: out, manifest, fsImgSize: (await stat(image)).size, ...(sealed ? { rootHash: sealed.rootHash } : {}) };
  } finally {
    await rm(tmp, { force: true });
    await rm(scratch, { recursive: true, force: true });
  }
}
