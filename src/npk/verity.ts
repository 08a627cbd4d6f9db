// dm-verity as Northstar and veritysetup lay it out (spec/npk.md §1.4):
// format v1 superblock, SHA-256 with the salt prepended, 4096-byte blocks,
// hash levels stored top level first right after the superblock.
//
// verifyImage runs inside a pool worker on an fd: it streams through the
// image and the tree with one reused buffer, so memory stays bounded whatever
// the image size.
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { read } from 'node:fs';
import { promisify } from 'node:util';

import type { VerityInfo } from '../model/verity-info.js';
import { NpkError } from './error.js';

const readAsync = promisify(read);

export const VERITY_BLOCK = 4096;
export const SUPERBLOCK_SIZE = 4096;
const DIGEST = 32;
const HASHES_PER_BLOCK = VERITY_BLOCK / DIGEST;
const MAGIC = Buffer.from('verity\0\0', 'latin1');
/** Data blocks read per fs.read while hashing. */
const CHUNK_BLOCKS = 64;

export interface VeritySuperblock {
  version: number;
  hashType: number;
  uuid: Buffer;
  algorithm: string;
  dataBlockSize: number;
  hashBlockSize: number;
  dataBlocks: number;
  salt: Buffer;
}

function verityError(message: string): NpkError {
  return new NpkError('npk_verity', message);
}

/** Number of hash blocks per level, level 0 (hashes of data blocks) first. Empty for a single data block. */
export function levelSizes(dataBlocks: number): number[] {
  const levels: number[] = [];
  let n = dataBlocks;
  while (n > 1) {
    n = Math.ceil(n / HASHES_PER_BLOCK);
    levels.push(n);
  }
  return levels;
}

/** Byte size of the hash tree (without superblock) for `dataBlocks` data blocks. */
export function treeSize(dataBlocks: number): number {
  return levelSizes(dataBlocks).reduce((a, b) => a + b, 0) * VERITY_BLOCK;
}

/** Offset of each level inside the tree (top level at 0), indexed like levelSizes. */
function levelOffsets(sizes: number[]): number[] {
  const offsets = new Array<number>(sizes.length);
  let off = 0;
  for (let i = sizes.length - 1; i >= 0; i--) {
    offsets[i] = off;
    off += sizes[i]! * VERITY_BLOCK;
  }
  return offsets;
}

function saltedHash(salt: Buffer, block: Buffer): Buffer {
  return createHash('sha256').update(salt).update(block).digest();
}

export function buildSuperblock(sb: { dataBlocks: number; salt: Buffer; uuid?: Buffer }): Buffer {
  const b = Buffer.alloc(SUPERBLOCK_SIZE);
  MAGIC.copy(b, 0);
  b.writeUInt32LE(1, 8);
  b.writeUInt32LE(1, 12);
  (sb.uuid ?? Buffer.from(randomUUID().replace(/-/g, ''), 'hex')).copy(b, 16);
  b.write('sha256', 32, 'latin1');
  b.writeUInt32LE(VERITY_BLOCK, 64);
  b.writeUInt32LE(VERITY_BLOCK, 68);
  b.writeBigUInt64LE(BigInt(sb.dataBlocks), 72);
  b.writeUInt16LE(sb.salt.length, 80);
  sb.salt.copy(b, 88);
  return b;
}

/** Parses a superblock. Fields are returned as found; checkSuperblock applies the rules. */
export function parseSuperblock(b: Buffer): VeritySuperblock {
  if (b.length < 88 + 256) throw verityError('verity superblock truncated');
  const saltSize = b.readUInt16LE(80);
  const nul = b.indexOf(0, 32);
  return {
    version: b.readUInt32LE(8),
    hashType: b.readUInt32LE(12),
    uuid: Buffer.from(b.subarray(16, 32)),
    algorithm: b.toString('latin1', 32, nul >= 32 && nul < 64 ? nul : 64),
    dataBlockSize: b.readUInt32LE(64),
    hashBlockSize: b.readUInt32LE(68),
    dataBlocks: Number(b.readBigUInt64LE(72)),
    salt: Buffer.from(b.subarray(88, 88 + Math.min(saltSize, 256))),
  };
}

/** Deviation 7: the superblock is checked before use (Northstar never calls VerityHeader::check). */
export function checkSuperblock(raw: Buffer, verityOffset: number): VeritySuperblock {
  if (!raw.subarray(0, 8).equals(MAGIC)) throw verityError(`verity superblock: bad magic ${JSON.stringify(raw.toString('latin1', 0, 8))}`);
  const sb = parseSuperblock(raw);
  if (sb.version !== 1) throw verityError(`verity superblock: version ${sb.version}, expected 1`);
  if (sb.hashType !== 1) throw verityError(`verity superblock: hash type ${sb.hashType}, expected 1`);
  if (sb.algorithm !== 'sha256') throw verityError(`verity superblock: algorithm "${sb.algorithm}", expected sha256`);
  if (sb.dataBlockSize !== VERITY_BLOCK) throw verityError(`verity superblock: data block size ${sb.dataBlockSize}, expected 4096`);
  if (sb.hashBlockSize !== VERITY_BLOCK) throw verityError(`verity superblock: hash block size ${sb.hashBlockSize}, expected 4096`);
  const saltSize = raw.readUInt16LE(80);
  if (saltSize !== 32) throw verityError(`verity superblock: salt size ${saltSize}, expected 32`);
  if (sb.dataBlocks * VERITY_BLOCK !== verityOffset) {
    throw verityError(`verity superblock: ${sb.dataBlocks} data blocks × 4096 != verity offset ${verityOffset}`);
  }
  return sb;
}

export interface ImageSource {
  fd: number;
  /** Absolute offset of the data (fs.img) in the file. */
  offset: number;
  /** Bytes of data to hash: a multiple of 4096. */
  size: number;
}

/** Reads exactly `len` bytes into buf[0..len) at `position`; a short file is an error naming `what`. */
async function fill(fd: number, buf: Buffer, len: number, position: number, what: string): Promise<void> {
  let done = 0;
  while (done < len) {
    const { bytesRead } = await readAsync(fd, buf, done, len - done, position + done);
    if (bytesRead === 0) throw new NpkError('npk_verity', `${what}: unexpected end of file at offset ${position + done}`);
    done += bytesRead;
  }
}

/**
 * Builds the hash tree for the data in `src` (or a Buffer). Data is streamed in
 * chunks; only the tree itself (≈1/128 of the data) is held in memory.
 */
export async function buildHashTree(
  src: ImageSource | Buffer,
  salt: Buffer,
  onProgress?: (doneBytes: number, totalBytes: number) => void,
): Promise<{ rootHash: Buffer; tree: Buffer; dataBlocks: number }> {
  const size = Buffer.isBuffer(src) ? src.length : src.size;
  if (size === 0 || size % VERITY_BLOCK !== 0) {
    throw verityError(`verity: data size ${size} is not a positive multiple of 4096`);
  }
  const dataBlocks = size / VERITY_BLOCK;
  const sizes = levelSizes(dataBlocks);
  if (sizes.length === 0) {
    const block = Buffer.isBuffer(src) ? src : Buffer.alloc(VERITY_BLOCK);
    if (!Buffer.isBuffer(src)) await fill(src.fd, block, VERITY_BLOCK, src.offset, 'fs.img');
    onProgress?.(size, size);
    return { rootHash: saltedHash(salt, block), tree: Buffer.alloc(0), dataBlocks };
  }
  const levels = sizes.map((n) => Buffer.alloc(n * VERITY_BLOCK));
  // Level 0: hash every data block.
  const chunk = Buffer.isBuffer(src) ? src : Buffer.alloc(CHUNK_BLOCKS * VERITY_BLOCK);
  for (let b = 0; b < dataBlocks; ) {
    const n = Math.min(CHUNK_BLOCKS, dataBlocks - b);
    let view: Buffer;
    if (Buffer.isBuffer(src)) view = src.subarray(b * VERITY_BLOCK, (b + n) * VERITY_BLOCK);
    else {
      await fill(src.fd, chunk, n * VERITY_BLOCK, src.offset + b * VERITY_BLOCK, 'fs.img');
      view = chunk;
    }
    for (let i = 0; i < n; i++) {
      saltedHash(salt, view.subarray(i * VERITY_BLOCK, (i + 1) * VERITY_BLOCK)).copy(levels[0]!, (b + i) * DIGEST);
    }
    b += n;
    onProgress?.(b * VERITY_BLOCK, size);
  }
  // Upper levels: hash the blocks of the level below.
  for (let l = 1; l < levels.length; l++) {
    const below = levels[l - 1]!;
    for (let i = 0; i < sizes[l - 1]!; i++) {
      saltedHash(salt, below.subarray(i * VERITY_BLOCK, (i + 1) * VERITY_BLOCK)).copy(levels[l]!, i * DIGEST);
    }
  }
  const top = levels[levels.length - 1]!;
  return { rootHash: saltedHash(salt, top), tree: Buffer.concat([...levels].reverse()), dataBlocks };
}

/** Superblock + tree for `src`, ready to append after the data. Salt and uuid are random unless given. */
export async function buildVerity(
  src: ImageSource | Buffer,
  opts: { salt?: Buffer; uuid?: Buffer; onProgress?: (doneBytes: number, totalBytes: number) => void } = {},
): Promise<{ rootHash: Buffer; salt: Buffer; superblock: Buffer; tree: Buffer; dataBlocks: number }> {
  const salt = opts.salt ?? randomBytes(32);
  const { rootHash, tree, dataBlocks } = await buildHashTree(src, salt, opts.onProgress);
  return { rootHash, salt, superblock: buildSuperblock({ dataBlocks, salt, uuid: opts.uuid }), tree, dataBlocks };
}

function mismatch(what: string): NpkError {
  return new NpkError('verity_mismatch', `verity: ${what} does not match its hash`);
}

/**
 * Checks `count` consecutive blocks at `start` against the hashes stored from
 * `parentStart` on (or, for the top level, against `root`). One buffer, reused.
 */
async function verifyBlocks(
  fd: number,
  salt: Buffer,
  buf: Buffer,
  parent: Buffer,
  blocks: { start: number; count: number; parentStart: number | Buffer; name: (i: number) => string },
): Promise<void> {
  let parentLoaded = -1;
  for (let b = 0; b < blocks.count; ) {
    const n = Math.min(CHUNK_BLOCKS, blocks.count - b);
    await fill(fd, buf, n * VERITY_BLOCK, blocks.start + b * VERITY_BLOCK, blocks.name(b));
    for (let i = 0; i < n; i++) {
      const idx = b + i;
      const digest = saltedHash(salt, buf.subarray(i * VERITY_BLOCK, (i + 1) * VERITY_BLOCK));
      let expected: Buffer;
      if (Buffer.isBuffer(blocks.parentStart)) expected = blocks.parentStart;
      else {
        const pb = Math.floor(idx / HASHES_PER_BLOCK);
        if (pb !== parentLoaded) {
          await fill(fd, parent, VERITY_BLOCK, blocks.parentStart + pb * VERITY_BLOCK, 'verity hash tree');
          parentLoaded = pb;
        }
        const at = (idx % HASHES_PER_BLOCK) * DIGEST;
        expected = parent.subarray(at, at + DIGEST);
      }
      if (!digest.equals(expected)) throw mismatch(blocks.name(idx));
    }
    b += n;
  }
}

/**
 * Verifies the data of fs.img and its hash tree against the signed root hash.
 * `offset` is the absolute offset of fs.img in the file; the superblock sits at
 * offset + verity.verityOffset and the tree right after it. Rejects with
 * code `verity_mismatch` naming the first bad block.
 */
export async function verifyImage(input: { fd: number; offset: number; size: number; verity: VerityInfo }): Promise<void> {
  const { fd, offset, size, verity } = input;
  const dataBlocks = verity.dataBlocks;
  if (dataBlocks * VERITY_BLOCK !== verity.verityOffset) {
    throw verityError(`verity: ${dataBlocks} data blocks × 4096 != verity offset ${verity.verityOffset}`);
  }
  const sizes = levelSizes(dataBlocks);
  const offsets = levelOffsets(sizes);
  const treeStart = offset + verity.verityOffset + SUPERBLOCK_SIZE;
  const needed = verity.verityOffset + SUPERBLOCK_SIZE + treeSize(dataBlocks);
  if (needed > size) throw verityError(`verity: fs.img is ${size} bytes, its data, superblock and hash tree need ${needed}`);
  const salt = Buffer.from(verity.salt, 'hex');
  const root = Buffer.from(verity.rootHash, 'hex');
  if (root.length !== DIGEST) throw verityError(`verity: root hash "${verity.rootHash}" is not a sha256 digest`);
  const buf = Buffer.alloc(CHUNK_BLOCKS * VERITY_BLOCK);
  const parent = Buffer.alloc(VERITY_BLOCK);
  // Top level down: each level is checked against the one above it, the data last.
  for (let l = sizes.length - 1; l >= 0; l--) {
    const start = treeStart + offsets[l]!;
    await verifyBlocks(fd, salt, buf, parent, {
      start,
      count: sizes[l]!,
      parentStart: l === sizes.length - 1 ? root : treeStart + offsets[l + 1]!,
      name: (i) => `hash tree level ${l} block ${i}`,
    });
  }
  await verifyBlocks(fd, salt, buf, parent, {
    start: offset,
    count: dataBlocks,
    parentStart: sizes.length === 0 ? root : treeStart + offsets[0]!,
    name: (i) => `fs.img data block ${i}`,
  });
}
