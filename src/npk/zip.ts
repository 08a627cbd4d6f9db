// The little of ZIP (PKWARE APPNOTE 6.3) an NPK needs: reading the central
// directory of a file we only hold an fd of, and writing Stored entries with
// one entry's data aligned to 4096 bytes (the zip crate's with_alignment:
// zero padding in the local header's extra field, APPNOTE 4.3.6).
//
// Reading never allocates by a declared size: everything read is bounded by
// the file size and by small fixed limits, so a hostile header cannot make us
// allocate gigabytes or hang.
import { read } from 'node:fs';
import { promisify } from 'node:util';
import { crc32 } from 'node:zlib';

import { NpkError } from './error.js';

const readAsync = promisify(read);

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_EOCD = 0x06054b50;
const SIG_EOCD64 = 0x06064b50;
const SIG_EOCD64_LOCATOR = 0x07064b50;
const EOCD_SIZE = 22;
const LOCAL_SIZE = 30;
const CENTRAL_SIZE = 46;
const MAX_COMMENT = 0xffff;
/** An NPK has three entries; a central directory beyond this is not an NPK. */
const MAX_CENTRAL_DIRECTORY = 1 << 20;

export interface ZipEntry {
  name: string;
  /** 0 = Stored, 8 = Deflated, ... */
  method: number;
  flags: number;
  crc32: number;
  compressedSize: number;
  size: number;
  localHeaderOffset: number;
  /** Absolute offset of the entry's data (after the local header, name and local extra field). */
  dataStart: number;
}

export interface ZipDirectory {
  entries: ZipEntry[];
  comment: Buffer;
  centralDirectoryOffset: number;
}

function zipError(message: string): NpkError {
  return new NpkError('npk_zip', message);
}

/** Reads exactly `length` bytes at `position`, or fails naming what was cut short. */
export async function readAt(fd: number, position: number, length: number, what: string): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await readAsync(fd, buf, done, length - done, position + done);
    if (bytesRead === 0) throw zipError(`${what}: truncated file (wanted ${length} bytes at offset ${position})`);
    done += bytesRead;
  }
  return buf;
}

/** Finds the end-of-central-directory record: the last one whose comment ends exactly at the end of the file. */
async function findEocd(fd: number, fileSize: number): Promise<{ offset: number; record: Buffer; comment: Buffer }> {
  if (fileSize < EOCD_SIZE) throw zipError(`not a zip archive: ${fileSize} bytes is too small (truncated?)`);
  const tailLen = Math.min(fileSize, EOCD_SIZE + MAX_COMMENT);
  const tailStart = fileSize - tailLen;
  const tail = await readAt(fd, tailStart, tailLen, 'zip end record');
  for (let i = tailLen - EOCD_SIZE; i >= 0; i--) {
    if (tail.readUInt32LE(i) !== SIG_EOCD) continue;
    const commentLen = tail.readUInt16LE(i + 20);
    if (i + EOCD_SIZE + commentLen !== tailLen) continue;
    return {
      offset: tailStart + i,
      record: tail.subarray(i, i + EOCD_SIZE),
      comment: Buffer.from(tail.subarray(i + EOCD_SIZE)),
    };
  }
  throw zipError('not a zip archive (or truncated): no end of central directory record');
}

interface CentralLocation {
  count: number;
  size: number;
  offset: number;
  /** Where the records that follow the central directory start (EOCD or zip64 EOCD). */
  end: number;
}

async function locateCentralDirectory(fd: number, eocdOffset: number, eocd: Buffer): Promise<CentralLocation> {
  const disk = eocd.readUInt16LE(4);
  const cdDisk = eocd.readUInt16LE(6);
  if (disk !== 0 || cdDisk !== 0) throw zipError('multi-disk zip archives are not supported');
  let count = eocd.readUInt16LE(10);
  let size = eocd.readUInt32LE(12);
  let offset = eocd.readUInt32LE(16);
  let end = eocdOffset;
  if (count === 0xffff || size === 0xffffffff || offset === 0xffffffff) {
    // Zip64: the locator sits right before the EOCD record.
    if (eocdOffset < 20) throw zipError('zip64 end of central directory locator missing');
    const loc = await readAt(fd, eocdOffset - 20, 20, 'zip64 locator');
    if (loc.readUInt32LE(0) !== SIG_EOCD64_LOCATOR) throw zipError('zip64 end of central directory locator missing');
    const recOffset = Number(loc.readBigUInt64LE(8));
    if (recOffset + 56 > eocdOffset - 20) throw zipError('zip64 end of central directory record out of range');
    const rec = await readAt(fd, recOffset, 56, 'zip64 end record');
    if (rec.readUInt32LE(0) !== SIG_EOCD64) throw zipError('zip64 end of central directory record has a bad signature');
    count = Number(rec.readBigUInt64LE(32));
    size = Number(rec.readBigUInt64LE(40));
    offset = Number(rec.readBigUInt64LE(48));
    end = recOffset;
  }
  if (size > MAX_CENTRAL_DIRECTORY) throw zipError(`central directory of ${size} bytes is too large for an NPK`);
  if (offset + size > end) {
    throw zipError(`truncated or corrupt zip: central directory (offset ${offset}, ${size} bytes) runs past its end record`);
  }
  if (count * CENTRAL_SIZE > size) throw zipError(`central directory claims ${count} entries in ${size} bytes`);
  return { count, size, offset, end };
}

/** Applies a zip64 extended-information extra field (id 0x0001) to the fields that are saturated. */
function applyZip64(extra: Buffer, e: { size: number; compressedSize: number; localHeaderOffset: number }): void {
  for (let p = 0; p + 4 <= extra.length; ) {
    const id = extra.readUInt16LE(p);
    const len = extra.readUInt16LE(p + 2);
    if (id === 0x0001) {
      let q = p + 4;
      const next = (): number => {
        if (q + 8 > p + 4 + len || q + 8 > extra.length) throw zipError('zip64 extra field too short');
        const v = Number(extra.readBigUInt64LE(q));
        q += 8;
        return v;
      };
      if (e.size === 0xffffffff) e.size = next();
      if (e.compressedSize === 0xffffffff) e.compressedSize = next();
      if (e.localHeaderOffset === 0xffffffff) e.localHeaderOffset = next();
      return;
    }
    p += 4 + len;
  }
}

function parseCentral(cd: Buffer, count: number): Omit<ZipEntry, 'dataStart'>[] {
  const out: Omit<ZipEntry, 'dataStart'>[] = [];
  let p = 0;
  for (let i = 0; i < count; i++) {
    if (p + CENTRAL_SIZE > cd.length || cd.readUInt32LE(p) !== SIG_CENTRAL) {
      throw zipError(`central directory entry ${i} is corrupt`);
    }
    const nameLen = cd.readUInt16LE(p + 28);
    const extraLen = cd.readUInt16LE(p + 30);
    const commentLen = cd.readUInt16LE(p + 32);
    const varEnd = p + CENTRAL_SIZE + nameLen + extraLen + commentLen;
    if (varEnd > cd.length) throw zipError(`central directory entry ${i} runs past the directory`);
    const e = {
      name: cd.toString('utf8', p + CENTRAL_SIZE, p + CENTRAL_SIZE + nameLen),
      flags: cd.readUInt16LE(p + 8),
      method: cd.readUInt16LE(p + 10),
      crc32: cd.readUInt32LE(p + 16),
      compressedSize: cd.readUInt32LE(p + 20),
      size: cd.readUInt32LE(p + 24),
      localHeaderOffset: cd.readUInt32LE(p + 42),
    };
    applyZip64(cd.subarray(p + CENTRAL_SIZE + nameLen, p + CENTRAL_SIZE + nameLen + extraLen), e);
    out.push(e);
    p = varEnd;
  }
  return out;
}

/** Reads the local header of `e` and computes its absolute data start; checks it agrees with the central directory. */
async function locateData(fd: number, e: Omit<ZipEntry, 'dataStart'>, limit: number): Promise<ZipEntry> {
  if (e.localHeaderOffset + LOCAL_SIZE > limit) {
    throw zipError(`${e.name}: local header at offset ${e.localHeaderOffset} lies outside the archive data`);
  }
  const h = await readAt(fd, e.localHeaderOffset, LOCAL_SIZE, `${e.name}: local header`);
  if (h.readUInt32LE(0) !== SIG_LOCAL) throw zipError(`${e.name}: bad local header signature at offset ${e.localHeaderOffset}`);
  const nameLen = h.readUInt16LE(26);
  const extraLen = h.readUInt16LE(28);
  const name = await readAt(fd, e.localHeaderOffset + LOCAL_SIZE, nameLen, `${e.name}: local header name`);
  if (name.toString('utf8') !== e.name) {
    throw zipError(`${e.name}: local header names "${name.toString('utf8')}", the central directory "${e.name}"`);
  }
  if (h.readUInt16LE(8) !== e.method) throw zipError(`${e.name}: local header and central directory disagree on the method`);
  const dataStart = e.localHeaderOffset + LOCAL_SIZE + nameLen + extraLen;
  if (dataStart + e.compressedSize > limit) {
    throw zipError(`${e.name}: declared size ${e.compressedSize} at offset ${dataStart} runs past the archive data (${limit} bytes)`);
  }
  return { ...e, dataStart };
}

/** Rejects entries whose byte ranges (header to end of data) overlap. */
function checkOverlaps(entries: ZipEntry[]): void {
  const sorted = [...entries].sort((a, b) => a.localHeaderOffset - b.localHeaderOffset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    const cur = sorted[i]!;
    if (prev.dataStart + prev.compressedSize > cur.localHeaderOffset) {
      throw zipError(`entries ${prev.name} and ${cur.name} overlap`);
    }
  }
}

/** Reads and checks the central directory of the zip archive behind `fd`. */
export async function readZipDirectory(fd: number, fileSize: number): Promise<ZipDirectory> {
  const eocd = await findEocd(fd, fileSize);
  const loc = await locateCentralDirectory(fd, eocd.offset, eocd.record);
  const cd = await readAt(fd, loc.offset, loc.size, 'central directory');
  const raw = parseCentral(cd, loc.count);
  const seen = new Set<string>();
  for (const e of raw) {
    if (seen.has(e.name)) throw zipError(`duplicate entry ${e.name}`);
    seen.add(e.name);
  }
  const entries: ZipEntry[] = [];
  for (const e of raw) entries.push(await locateData(fd, e, loc.offset));
  checkOverlaps(entries);
  return { entries, comment: eocd.comment, centralDirectoryOffset: loc.offset };
}

// ------------------------------------------------------------------ writing

/** DOS date 1980-01-01 00:00, as the zip crate writes without its `time` feature: packs are reproducible. */
const DOS_TIME = 0;
const DOS_DATE = (0 << 9) | (1 << 5) | 1;
const MADE_BY_UNIX = (3 << 8) | 20;

export interface WrittenEntry {
  name: string;
  crc32: number;
  size: number;
  localHeaderOffset: number;
  dataStart: number;
}

/** Sequential writer of a Stored-only zip archive. `write` appends bytes at the current position. */
export class StoredZipWriter {
  private position = 0;
  private readonly written: WrittenEntry[] = [];

  constructor(private readonly write: (data: Buffer) => Promise<void>) {}

  private async append(data: Buffer): Promise<void> {
    await this.write(data);
    this.position += data.length;
  }

  /**
   * Writes a local header for a Stored entry of `size` bytes with checksum `crc`, its
   * data start padded to `align` with zeros in the local extra field.
   */
  private async header(name: string, size: number, crc: number, align: number): Promise<number> {
    if (size >= 0xffffffff || this.position >= 0xffffffff) throw new NpkError('npk_pack', `${name}: zip64 entries (>= 4 GiB) are not supported`);
    const nameBuf = Buffer.from(name, 'utf8');
    const unpadded = this.position + LOCAL_SIZE + nameBuf.length;
    let pad = align > 1 ? (align - (unpadded % align)) % align : 0;
    // An extra field shorter than 4 bytes cannot hold a header; go to the next boundary then.
    if (pad > 0 && pad < 4) pad += align;
    const h = Buffer.alloc(LOCAL_SIZE);
    h.writeUInt32LE(SIG_LOCAL, 0);
    h.writeUInt16LE(10, 4);
    h.writeUInt16LE(0x0800, 6); // UTF-8 names
    h.writeUInt16LE(0, 8);
    h.writeUInt16LE(DOS_TIME, 10);
    h.writeUInt16LE(DOS_DATE, 12);
    h.writeUInt32LE(crc, 14);
    h.writeUInt32LE(size, 18);
    h.writeUInt32LE(size, 22);
    h.writeUInt16LE(nameBuf.length, 26);
    h.writeUInt16LE(pad, 28);
    const localHeaderOffset = this.position;
    await this.append(Buffer.concat([h, nameBuf, Buffer.alloc(pad)]));
    this.written.push({ name, crc32: crc, size, localHeaderOffset, dataStart: this.position });
    return this.position;
  }

  /** Adds a Stored entry from memory. */
  async addBuffer(name: string, data: Buffer, align = 1): Promise<WrittenEntry> {
    await this.header(name, data.length, crc32(data), align);
    await this.append(data);
    return this.written[this.written.length - 1]!;
  }

  /**
   * Adds a Stored entry whose data `copy` writes (through the same `write`), after the
   * caller computed its size and crc. Returns the entry with its data start.
   */
  async addStream(name: string, size: number, crc: number, align: number, copy: () => Promise<void>): Promise<WrittenEntry> {
    await this.header(name, size, crc, align);
    const before = this.position;
    await copy();
    this.position = before + size;
    return this.written[this.written.length - 1]!;
  }

  /** Writes the central directory and the end record with `comment`. */
  async finish(comment: Buffer): Promise<void> {
    if (comment.length > MAX_COMMENT) throw new NpkError('npk_pack', 'zip comment too long');
    const cdOffset = this.position;
    const parts: Buffer[] = [];
    for (const e of this.written) {
      const nameBuf = Buffer.from(e.name, 'utf8');
      const c = Buffer.alloc(CENTRAL_SIZE);
      c.writeUInt32LE(SIG_CENTRAL, 0);
      c.writeUInt16LE(MADE_BY_UNIX, 4);
      c.writeUInt16LE(10, 6);
      c.writeUInt16LE(0x0800, 8);
      c.writeUInt16LE(0, 10);
      c.writeUInt16LE(DOS_TIME, 12);
      c.writeUInt16LE(DOS_DATE, 14);
      c.writeUInt32LE(e.crc32, 16);
      c.writeUInt32LE(e.size, 20);
      c.writeUInt32LE(e.size, 24);
      c.writeUInt16LE(nameBuf.length, 28);
      c.writeUInt32LE(((0o100644 << 16) >>> 0), 38);
      c.writeUInt32LE(e.localHeaderOffset, 42);
      parts.push(c, nameBuf);
    }
    const cd = Buffer.concat(parts);
    const end = Buffer.alloc(EOCD_SIZE);
    end.writeUInt32LE(SIG_EOCD, 0);
    end.writeUInt16LE(this.written.length, 8);
    end.writeUInt16LE(this.written.length, 10);
    end.writeUInt32LE(cd.length, 12);
    end.writeUInt32LE(cdOffset, 16);
    end.writeUInt16LE(comment.length, 20);
    await this.append(Buffer.concat([cd, end, comment]));
  }
}
