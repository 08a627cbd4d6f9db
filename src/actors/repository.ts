// Repositories (spec/repositories.md §6): where NPKs live. `fs` keeps one file
// per container in a directory; `mem` keeps sealed memfds. Main thread; the
// only I/O is file writes, fsync and rename. Decisions about duplicates across
// repositories belong to the supervisor.
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, unlink } from 'node:fs/promises';
import { join } from 'node:path';

import { containerId } from '../model/container-id.js';
import { errors } from '../model/errors.js';
import { child } from '../model/safe-path.js';
import { Logger } from '../log.js';
import { closeNpk, openNpk, type Npk } from '../npk/npk.js';

export interface RepositoryOptions {
  id: string;
  /** Raw 32-byte ed25519 public key; a keyed repository verifies signatures and verity. */
  key?: Buffer;
  capacityNum?: number;
  capacitySize?: number;
}

export interface StoredNpk {
  npk: Npk;
  /** Bytes counted against capacity_size. */
  size: number;
}

/** What the runtime needs of any repository. */
export interface Repository {
  readonly id: string;
  readonly key?: Buffer;
  /** Containers currently held, by "name:version". */
  readonly containers: ReadonlyMap<string, StoredNpk>;
  /** Streams `size` bytes into the repository, verifies and keeps the NPK. Leaves nothing on failure. */
  insert(data: AsyncIterable<Buffer | Uint8Array>, size?: number): Promise<Npk>;
  remove(container: string): Promise<void>;
  close(): Promise<void>;
}

export function npkId(npk: Npk): string {
  return containerId(npk.manifest.name, npk.manifest.version);
}

/** Prefix of in-flight install files: never loaded, removed at start (crash leftovers). */
export const PARTIAL_PREFIX = '.partial-';

export function checkCapacity(repo: Repository, opts: RepositoryOptions): void {
  if (opts.capacityNum !== undefined && repo.containers.size >= opts.capacityNum) {
    throw errors.unexpected(`repository ${repo.id}: max number of containers (${opts.capacityNum}) reached`);
  }
  if (opts.capacitySize !== undefined && usedSize(repo) >= opts.capacitySize) {
    throw errors.unexpected(`repository ${repo.id}: size limit (${opts.capacitySize} bytes) reached`);
  }
}

export function usedSize(repo: Repository): number {
  let sum = 0;
  for (const s of repo.containers.values()) sum += s.size;
  return sum;
}

/**
 * Runs repository changes one after another. Installs arrive concurrently from
 * several connections (Northstar's main loop serializes them); without this the
 * capacity and duplicate checks of two overlapping installs both pass.
 */
export class Serial {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(f: () => Promise<T>): Promise<T> {
    const p = this.tail.then(f, f);
    this.tail = p.catch(() => undefined);
    return p;
  }
}

export function refuseDuplicate(repo: Repository, npk: Npk): void {
  const id = npkId(npk);
  if (repo.containers.has(id)) throw errors.unexpected(`container ${id} is already in repository ${repo.id}`);
}

/** A directory of NPK files named `<name>:<version>.npk`. */
export class FsRepository implements Repository {
  readonly containers = new Map<string, StoredNpk & { path: string }>();
  readonly id: string;
  readonly key?: Buffer;
  private readonly log: Logger;

  constructor(
    readonly dir: string,
    private readonly opts: RepositoryOptions,
  ) {
    this.id = opts.id;
    this.key = opts.key;
    this.log = new Logger(`repository:${opts.id}`);
  }

  /**
   * Loads every NPK of the directory. Invalid files are skipped and reported
   * (deviation 4); partial installs left by a crash are removed.
   */
  async load(): Promise<{ skipped: { path: string; error: string }[] }> {
    await mkdir(this.dir, { recursive: true });
    const skipped: { path: string; error: string }[] = [];
    const names = (await readdir(this.dir)).sort();
    await Promise.all(
      names.map(async (name) => {
        const path = join(this.dir, name);
        if (name.startsWith(PARTIAL_PREFIX)) {
          this.log.warn(`Removing partial install ${path}`);
          await rm(path, { force: true });
          return;
        }
        if (!(await stat(path)).isFile()) return;
        try {
          const npk = await openNpk(path, { key: this.key });
          const id = npkId(npk);
          const prev = this.containers.get(id);
          if (prev) {
            this.log.warn(`${path} holds ${id}, already loaded from ${prev.path}: skipped`);
            closeNpk(npk);
            skipped.push({ path, error: `duplicate container ${id}` });
            return;
          }
          this.containers.set(id, { npk, size: npk.size, path });
        } catch (e) {
          const error = e instanceof Error ? e.message : String(e);
          this.log.warn(`Skipping invalid NPK ${path}: ${error}`);
          skipped.push({ path, error });
        }
      }),
    );
    return { skipped };
  }

  private readonly serial = new Serial();

  insert(data: AsyncIterable<Buffer | Uint8Array>): Promise<Npk> {
    return this.serial.run(() => this.insertNow(data));
  }

  private async insertNow(data: AsyncIterable<Buffer | Uint8Array>): Promise<Npk> {
    checkCapacity(this, this.opts);
    const tmp = join(this.dir, `${PARTIAL_PREFIX}${randomBytes(8).toString('hex')}.npk`);
    let npk: Npk | undefined;
    try {
      const written = await this.writeFile(tmp, data);
      npk = await openNpk(tmp, { key: this.key });
      refuseDuplicate(this, npk);
      const id = npkId(npk);
      const path = child(this.dir, `${id}.npk`, 'NPK file name');
      await rename(tmp, path);
      await syncDir(this.dir);
      npk.path = path;
      this.containers.set(id, { npk, size: written, path });
      return npk;
    } catch (e) {
      if (npk) closeNpk(npk);
      await rm(tmp, { force: true });
      throw e;
    }
  }

  /** Streams into `path` (created exclusively), fsyncs; enforces capacity_size while writing. */
  private async writeFile(path: string, data: AsyncIterable<Buffer | Uint8Array>): Promise<number> {
    const limit = this.opts.capacitySize;
    const used = usedSize(this);
    const out = createWriteStream(path, { flags: 'wx', mode: 0o644 });
    let written = 0;
    try {
      for await (const chunk of data) {
        written += chunk.length;
        if (limit !== undefined && used + written > limit) {
          throw errors.unexpected(`repository ${this.id}: size limit (${limit} bytes) reached`);
        }
        if (!out.write(chunk)) await once(out, 'drain');
      }
      out.end();
      await once(out, 'finish');
    } finally {
      if (!out.closed) {
        out.destroy();
        await once(out, 'close').catch(() => undefined);
      }
    }
    const fh = await open(path, 'r+');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
    return written;
  }

  remove(container: string): Promise<void> {
    return this.serial.run(async () => {
      const s = this.containers.get(container);
      if (!s) throw errors.invalidContainer(container);
      this.containers.delete(container);
      closeNpk(s.npk);
      await unlink(s.path);
    });
  }

  async close(): Promise<void> {
    for (const s of this.containers.values()) closeNpk(s.npk);
    this.containers.clear();
  }
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
