// The `mem` repository (spec/repositories.md §6): every NPK in its own sealed
// memfd, which later backs the loop device. Starts empty. Main thread.
import { randomBytes } from 'node:crypto';
import { closeSync, writeSync } from 'node:fs';

import { errors } from '../../model/errors.js';
import { native } from '../../native.js';
import { closeNpk, openNpk, type Npk } from '../../npk/npk.js';
import {
  checkCapacity,
  checkCommit,
  checkStreamingSize,
  logWarnings,
  npkId,
  repositoryIoError,
  Serial,
  Streaming,
  type Repository,
  type RepositoryOptions,
  type StoredNpk,
} from './repository.js';

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
  private readonly streaming = new Streaming();

  /** Streams into its own memfd without holding the repository; the commit is serialised. */
  async insert(data: AsyncIterable<Buffer | Uint8Array>): Promise<Npk> {
    checkCapacity(this, this.opts, this.streaming.bytes);
    const name = `npk-${randomBytes(6).toString('hex')}`;
    let fd: number;
    try {
      fd = native().memfdCreate(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
    } catch (e) {
      throw repositoryIoError(this.id, undefined, e, 'memfd_create', name);
    }
    const counter = this.streaming.begin();
    let npk: Npk | undefined;
    try {
      const size = await this.fill(fd, name, data, counter.add);
      native().addSeals(fd, F_SEAL_GROW | F_SEAL_SHRINK | F_SEAL_WRITE | F_SEAL_SEAL);
      npk = await openNpk({ fd, path: `/proc/${process.pid}/fd/${fd}` }, { key: this.key });
      logWarnings(npk);
      const opened = npk;
      return await this.serial.run(async () => {
        checkCommit(this, this.opts, opened, size);
        this.containers.set(npkId(opened), { npk: opened, size, memfd: fd });
        return opened;
      });
    } catch (e) {
      if (npk) closeNpk(npk);
      else closeSync(fd);
      throw e;
    } finally {
      counter.done();
    }
  }

  /** Copies the stream into the memfd, refusing to pass capacity_size (counting every install streaming). */
  private async fill(fd: number, name: string, data: AsyncIterable<Buffer | Uint8Array>, received: (n: number) => void): Promise<number> {
    let written = 0;
    for await (const chunk of data) {
      received(chunk.length);
      written += chunk.length;
      checkStreamingSize(this, this.opts, this.streaming);
      try {
        for (let off = 0; off < chunk.length; ) off += writeSync(fd, chunk, off, chunk.length - off);
      } catch (e) {
        throw repositoryIoError(this.id, undefined, e, 'write', `memfd:${name}`);
      }
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
