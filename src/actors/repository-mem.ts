// The `mem` repository (spec/repositories.md §6): every NPK in its own sealed
// memfd, which later backs the loop device. Starts empty. Main thread.
import { randomBytes } from 'node:crypto';
import { closeSync, writeSync } from 'node:fs';

import { errors } from '../model/errors.js';
import { native } from '../native.js';
import { closeNpk, openNpk, type Npk } from '../npk/npk.js';
import { checkCapacity, npkId, refuseDuplicate, Serial, usedSize, type Repository, type RepositoryOptions, type StoredNpk } from './repository.js';

// memfd flags and seals (linux/memfd.h, linux/fcntl.h).
const MFD_CLOEXEC = 0x1;
const MFD_ALLOW_SEALING = 0x2;
const F_SEAL_SEAL = 0x1;
const F_SEAL_SHRINK = 0x2;
const F_SEAL_GROW = 0x4;
const F_SEAL_WRITE = 0x8;

export class MemRepository implements Repository {
  readonly containers = new Map<string, StoredNpk & { memfd: number }>();
  readonly id: string;
  readonly key?: Buffer;

  constructor(private readonly opts: RepositoryOptions) {
    this.id = opts.id;
    this.key = opts.key;
  }

  private readonly serial = new Serial();

  insert(data: AsyncIterable<Buffer | Uint8Array>): Promise<Npk> {
    return this.serial.run(() => this.insertNow(data));
  }

  private async insertNow(data: AsyncIterable<Buffer | Uint8Array>): Promise<Npk> {
    checkCapacity(this, this.opts);
    const fd = native().memfdCreate(`npk-${randomBytes(6).toString('hex')}`, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    let npk: Npk | undefined;
    try {
      const size = await this.fill(fd, data);
      native().addSeals(fd, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_WRITE | F_SEAL_SEAL);
      npk = await openNpk({ fd, path: `/proc/${process.pid}/fd/${fd}` }, { key: this.key });
      refuseDuplicate(this, npk);
      this.containers.set(npkId(npk), { npk, size, memfd: fd });
      return npk;
    } catch (e) {
      if (npk) closeNpk(npk);
      else closeSync(fd);
      throw e;
    }
  }

  /** Copies the stream into the memfd, refusing to pass capacity_size. */
  private async fill(fd: number, data: AsyncIterable<Buffer | Uint8Array>): Promise<number> {
    const limit = this.opts.capacitySize;
    const used = usedSize(this);
    let written = 0;
    for await (const chunk of data) {
      written += chunk.length;
      if (limit !== undefined && used + written >= limit) {
        throw errors.unexpected(`repository ${this.id}: capacity limit (${limit} bytes) reached`);
      }
      for (let off = 0; off < chunk.length; ) off += writeSync(fd, chunk, off, chunk.length - off);
    }
    return written;
  }

  async remove(container: string): Promise<void> {
    const s = this.containers.get(container);
    if (!s) throw errors.invalidContainer(container);
    this.containers.delete(container);
    closeNpk(s.npk);
  }

  async close(): Promise<void> {
    for (const s of this.containers.values()) closeNpk(s.npk);
    this.containers.clear();
  }
}
