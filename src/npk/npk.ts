// Opening an NPK (spec/npk.md §1.1-1.4): the zip directory, the format
// version in the comment, manifest.yaml, signature.yaml and where fs.img's
// data sits in the file. With a repository key the signature, the hashes and
// the verity superblock are checked too; the image itself is verified later,
// by verifyImage in a pool worker, or by dm-verity.
//
// The fd stays open: it backs the loop device. closeNpk closes it, also when
// the caller handed us the fd (a mem repository's memfd).
import { closeSync, constants, fstat, open } from 'node:fs';
import { promisify } from 'node:util';
import { crc32 } from 'node:zlib';

import semver from 'semver';
import { parse } from 'yaml';

import type { VerityInfo } from '../model/verity-info.js';
import type { Manifest } from '../model/manifest.js';
import { manifestWarnings } from '../model/manifest-warnings.js';
import { COMPATIBLE } from '../model/version.js';
import { NpkError } from './error.js';
import { parseManifestText } from './manifest-io.js';
import { parseSignature, verifySignature, type Signature } from './signature.js';
import { SUPERBLOCK_SIZE, VERITY_BLOCK, checkSuperblock, treeSize } from './verity.js';
import { readAt, readZipDirectory, type ZipDirectory, type ZipEntry } from './zip.js';

export { NpkError } from './error.js';
export type { Signature } from './signature.js';

const openAsync = promisify(open);
const fstatAsync = promisify(fstat);

/** Small entries are read whole; more than this is not a manifest or a signature. */
const MAX_MANIFEST = 1 << 20;
const MAX_SIGNATURE = 64 << 10;

export interface Npk {
  /** The file (or /proc/<pid>/fd/<n> of a memfd); repositories update it after a rename. */
  path: string;
  /** Open, read-only; closed by closeNpk. */
  fd: number;
  size: number;
  manifest: Manifest;
  manifestText: string;
  /** Absolute offset of fs.img's data in the file. */
  fsImgOffset: number;
  fsImgSize: number;
  /** Parsed signature.yaml when present (checked only when opened with a key). */
  signature?: Signature;
  /** Present when opened with a key: what verifyImage or dm-verity checks the image against. */
  verity?: VerityInfo;
  /** NPK format version from the zip comment, e.g. "0.9.3". */
  version: string;
  /** Things accepted but worth telling (e.g. an fs.img not 4096-aligned). */
  warnings: string[];
}

export interface OpenOptions {
  /** Raw 32-byte ed25519 public key of the repository: the NPK must be signed by it. */
  key?: Buffer;
}

function entryError(message: string): NpkError {
  return new NpkError('npk_entry', message);
}

/** The format version from the zip comment (`version: 0.9.3`), checked against `>=0.9`. */
function formatVersion(comment: Buffer): string {
  let meta: unknown;
  try {
    meta = parse(comment.toString('utf8'));
  } catch (e) {
    throw new NpkError('npk_version', `zip comment: not YAML (${(e as Error).message})`);
  }
  const v = meta && typeof meta === 'object' ? (meta as Record<string, unknown>).version : undefined;
  if (typeof v !== 'string' && typeof v !== 'number') {
    throw new NpkError('npk_version', 'zip comment: missing NPK format version (expected "version: 0.9.3")');
  }
  const version = String(v);
  const parsed = semver.coerce(version);
  if (!parsed || !semver.satisfies(parsed, COMPATIBLE)) {
    throw new NpkError('npk_version', `NPK version format ${version} doesn't match required version ${COMPATIBLE}`);
  }
  return version;
}

function findEntry(dir: ZipDirectory, name: string): ZipEntry {
  const e = dir.entries.find((x) => x.name === name);
  if (!e) throw entryError(`${name}: missing from the archive`);
  return e;
}

/** Deviation 13: a compressed entry cannot be read in place (nor loop-mounted). */
function requireStored(dir: ZipDirectory): void {
  for (const e of dir.entries) {
    if (e.method !== 0) throw entryError(`${e.name}: entry is compressed (method ${e.method}); NPK entries must be Stored`);
    if (e.flags & 1) throw entryError(`${e.name}: entry is encrypted`);
    if (e.compressedSize !== e.size) throw entryError(`${e.name}: Stored entry with compressed size ${e.compressedSize} != size ${e.size}`);
  }
}

async function readSmallEntry(fd: number, e: ZipEntry, limit: number): Promise<Buffer> {
  if (e.size > limit) throw entryError(`${e.name}: ${e.size} bytes exceeds the limit of ${limit}`);
  const data = await readAt(fd, e.dataStart, e.size, e.name);
  if (crc32(data) !== e.crc32) throw entryError(`${e.name}: CRC-32 mismatch`);
  return data;
}

/** Reads and checks the verity superblock that the signature points at. */
async function readVerity(fd: number, fsImg: ZipEntry, sig: Signature): Promise<VerityInfo> {
  const off = sig.verityOffset;
  if (off + SUPERBLOCK_SIZE > fsImg.size) {
    throw new NpkError('npk_verity', `signature.yaml: verity offset ${off} lies beyond fs.img (${fsImg.size} bytes)`);
  }
  if (off === 0 || off % VERITY_BLOCK !== 0) {
    throw new NpkError('npk_verity', `signature.yaml: verity offset ${off} is not a positive multiple of 4096`);
  }
  const raw = await readAt(fd, fsImg.dataStart + off, SUPERBLOCK_SIZE, 'verity superblock');
  const sb = checkSuperblock(raw, off);
  const needed = off + SUPERBLOCK_SIZE + treeSize(sb.dataBlocks);
  if (needed > fsImg.size) {
    throw new NpkError('npk_verity', `fs.img: ${fsImg.size} bytes cannot hold the data, superblock and hash tree (${needed} bytes)`);
  }
  return { rootHash: sig.verityHash, salt: sb.salt.toString('hex'), dataBlocks: sb.dataBlocks, verityOffset: off };
}

async function readNpk(fd: number, path: string, opts: OpenOptions): Promise<Npk> {
  const st = await fstatAsync(fd);
  if (!st.isFile()) throw new NpkError('npk_io', `${path}: not a regular file`);
  const dir = await readZipDirectory(fd, st.size);
  const version = formatVersion(dir.comment);
  requireStored(dir);
  const manifestEntry = findEntry(dir, 'manifest.yaml');
  const fsImg = findEntry(dir, 'fs.img');
  const manifestBuf = await readSmallEntry(fd, manifestEntry, MAX_MANIFEST);
  const sigEntry = dir.entries.find((e) => e.name === 'signature.yaml');
  const sigText = sigEntry ? (await readSmallEntry(fd, sigEntry, MAX_SIGNATURE)).toString('utf8') : undefined;
  const warnings: string[] = [];
  if (fsImg.dataStart % VERITY_BLOCK !== 0) {
    warnings.push(`fs.img data at offset ${fsImg.dataStart} is not 4096-aligned (loop devices read it slower)`);
  }
  let signature: Signature | undefined;
  let verity: VerityInfo | undefined;
  if (opts.key) {
    if (sigText === undefined) throw new NpkError('npk_signature', 'signature.yaml: missing, but the repository has a key');
    signature = parseSignature(sigText);
    verifySignature(signature, opts.key, dir.comment, manifestBuf);
  } else if (sigText !== undefined) {
    // Without a key Northstar ignores the signature; keep what parses, for inspect.
    try {
      signature = parseSignature(sigText);
    } catch (e) {
      warnings.push(`signature.yaml ignored (no key): ${(e as Error).message}`);
    }
  }
  const manifestText = manifestBuf.toString('utf8');
  const manifest = parseManifestText(manifestText);
  warnings.push(...manifestWarnings(manifest));
  if (opts.key && signature) verity = await readVerity(fd, fsImg, signature);
  return {
    path,
    fd,
    size: st.size,
    manifest,
    manifestText,
    fsImgOffset: fsImg.dataStart,
    fsImgSize: fsImg.size,
    ...(signature ? { signature } : {}),
    ...(verity ? { verity } : {}),
    version,
    warnings,
  };
}

/**
 * Opens an NPK by path, or on an fd the caller opened (a memfd). With `key` the NPK
 * must be signed by it. Throws NpkError naming the problem; on failure an fd we
 * opened is closed, a caller's fd is left to the caller.
 */
export async function openNpk(src: string | { fd: number; path: string }, opts: OpenOptions = {}): Promise<Npk> {
  if (typeof src !== 'string') return readNpk(src.fd, src.path, opts);
  let fd: number;
  try {
    // O_NONBLOCK: a FIFO given as an NPK must fail, not block the open forever.
    fd = await openAsync(src, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw new NpkError('npk_io', `${src}: ${(e as Error).message}`, { cause: e });
  }
  try {
    return await readNpk(fd, src, opts);
  } catch (e) {
    closeSync(fd);
    throw e;
  }
}

/** Closes the NPK's fd (idempotent). */
export function closeNpk(npk: Npk): void {
  if (npk.fd < 0) return;
  const fd = npk.fd;
  npk.fd = -1;
  closeSync(fd);
}
