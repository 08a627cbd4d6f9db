// Repositories (spec/repositories.md §6): where NPKs live. `fs` keeps one file
// per container in a directory; `mem` keeps sealed memfds. Main thread; the
// only I/O is file writes, fsync and rename. Decisions about duplicates across
// repositories belong to the supervisor.
import { randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { mkdir, open, readdir, rename, rm, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { getSystemErrorMap } from 'node:util';

import { containerId } from '../../model/container-id.js';
import { errors, RuntimeError } from '../../model/errors.js';
import { child } from '../../model/safe-path.js';
import { Logger } from '../../log.js';
import type { RepositoryContents } from '../../machines/supervisor.js';
import type { NpkInfo } from '../../machines/plan.js';
import { closeNpk, openNpk, type Npk } from '../../npk/npk.js';

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

/** What the supervisor is told of a loaded repository: plain data (it refers to repositories by id). */
export function contentsOf(repo: Repository): RepositoryContents {
  return { id: repo.id, keyed: repo.key !== undefined, npks: [...repo.containers.values()].map((s) => npkInfo(s.npk)) };
}

/**
 * What the machines keep of an NPK: no fd, no signature, and no manifest text
 * (its env values are secrets; the machines' contexts are recorded by the
 * inspector).
 */
export function npkInfo(npk: Npk): NpkInfo {
  const { path, manifest, fsImgOffset, fsImgSize, verity } = npk;
  return { path, manifest, fsImgOffset, fsImgSize, ...(verity ? { verity } : {}) };
}

const npkLog = new Logger('npk');

/** Logs what openNpk found questionable but accepted (the reader itself does not log). */
export function logWarnings(npk: Npk): void {
  for (const w of npk.warnings) npkLog.warn(`${npk.path}: ${w}`);
}

export function npkId(npk: Npk): string {
  return containerId(npk.manifest.name, npk.manifest.version);
}

/** Prefix of in-flight install files: never loaded, removed at start (crash leftovers). */
export const PARTIAL_PREFIX = '.partial-';

/**
 * Refuses an install when the repository is full. `streaming` are the bytes
 * of installs still on their way (they count against capacity_size: two
 * installs streaming at once must not both fit into the last free space).
 */
export function checkCapacity(repo: Repository, opts: RepositoryOptions, streaming = 0): void {
  if (opts.capacityNum !== undefined && repo.containers.size >= opts.capacityNum) {
    throw errors.unexpected(`repository ${repo.id}: max number of containers (${opts.capacityNum}) reached`);
  }
  if (opts.capacitySize !== undefined && usedSize(repo) + streaming >= opts.capacitySize) {
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
 * capacity and duplicate checks of two overlapping installs both pass. Only
 * the short commit of an install runs here, never its stream: a slow client
 * must not hold the repository (its other installs and uninstalls).
 */
export class Serial {
  private tail: Promise<unknown> = Promise.resolve();
  run<T>(f: () => Promise<T>): Promise<T> {
    const p = this.tail.then(f, f);
    this.tail = p.catch(() => undefined);
    return p;
  }
}

/**
 * The bytes of the installs streaming into one repository right now. Each
 * install adds what it received; the sum counts against capacity_size.
 */
export class Streaming {
  private total = 0;

  get bytes(): number {
    return this.total;
  }

  /** One install's counter: `add` as bytes arrive, `done` once it committed or failed. */
  begin(): { add(n: number): void; done(): void } {
    let mine = 0;
    let open = true;
    return {
      add: (n) => {
        mine += n;
        this.total += n;
      },
      done: () => {
        if (!open) return;
        open = false;
        this.total -= mine;
      },
    };
  }
}

/** Capacity while streaming: what is stored, what all streams received so far. */
export function checkStreamingSize(repo: Repository, opts: RepositoryOptions, streaming: Streaming): void {
  const limit = opts.capacitySize;
  if (limit !== undefined && usedSize(repo) + streaming.bytes > limit) {
    throw errors.unexpected(`repository ${repo.id}: size limit (${limit} bytes) reached`);
  }
}

/** At commit: the stored NPKs plus this one (`size` bytes) must fit. */
export function checkCommit(repo: Repository, opts: RepositoryOptions, npk: Npk, size: number): void {
  if (opts.capacityNum !== undefined && repo.containers.size >= opts.capacityNum) {
    throw errors.unexpected(`repository ${repo.id}: max number of containers (${opts.capacityNum}) reached`);
  }
  if (opts.capacitySize !== undefined && usedSize(repo) + size > opts.capacitySize) {
    throw errors.unexpected(`repository ${repo.id}: size limit (${opts.capacitySize} bytes) reached`);
  }
  refuseDuplicate(repo, npk);
}

export function refuseDuplicate(repo: Repository, npk: Npk): void {
  const id = npkId(npk);
  if (repo.containers.has(id)) throw errors.unexpected(`container ${id} is already in repository ${repo.id}`);
}

/**
 * A file system failure of a repository as the error its client gets: a
 * directory that is gone names the configuration to fix; anything else reads
 * like crun's errors ("repository fs: write `/x/.partial-1.npk`: No space left on device").
 */
export function repositoryIoError(repo: string, dir: string | undefined, e: unknown, syscall: string, path: string): RuntimeError {
  if (e instanceof RuntimeError) return e;
  const err = e as NodeJS.ErrnoException;
  if (dir !== undefined && (err?.code === 'ENOENT' || err?.code === 'ENOTDIR') && !isDir(dir)) {
    return new RuntimeError('configuration', { context: `repository ${repo}: directory ${dir} is missing` }, { cause: e });
  }
  return errors.unexpected(`repository ${repo}: ${syscall} \`${path}\`: ${strerror(err)}`, e);
}

function isDir(path: string): boolean {
  try {
    return statSync(path).isDirectory();
  } catch {
    return false;
  }
}

/** strerror's text for a Node system error (libuv's table, capitalised as glibc's). */
function strerror(e: NodeJS.ErrnoException | undefined): string {
  const entry = typeof e?.errno === 'number' ? getSystemErrorMap().get(-Math.abs(e.errno)) : undefined;
  if (!entry) return e?.message ?? String(e);
  return entry[1].charAt(0).toUpperCase() + entry[1].slice(1);
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
        // Gone since readdir (an uninstall racing the load) or not a file: nothing to load.
        if (!(await stat(path).catch(() => undefined))?.isFile()) return;
        try {
          const npk = await openNpk(path, { key: this.key });
          logWarnings(npk);
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
  private readonly streaming = new Streaming();

  /**
   * Streams into a temp file without holding the repository; only the commit
   * (capacity and duplicate checks again, rename, insert) is serialised.
   */
  async insert(data: AsyncIterable<Buffer | Uint8Array>): Promise<Npk> {
    checkCapacity(this, this.opts, this.streaming.bytes);
    const tmp = join(this.dir, `${PARTIAL_PREFIX}${randomBytes(8).toString('hex')}.npk`);
    const counter = this.streaming.begin();
    let npk: Npk | undefined;
    try {
      const written = await this.writeFile(tmp, data, counter.add);
      npk = await openNpk(tmp, { key: this.key });
      logWarnings(npk);
      const opened = npk;
      return await this.serial.run(() => this.commit(tmp, opened, written));
    } catch (e) {
      if (npk) closeNpk(npk);
      await rm(tmp, { force: true }).catch((r: unknown) => this.log.warn(`Removing ${tmp}: ${(r as Error).message}`));
      throw e;
    } finally {
      counter.done();
    }
  }

  private async commit(tmp: string, npk: Npk, written: number): Promise<Npk> {
    checkCommit(this, this.opts, npk, written);
    const id = npkId(npk);
    const path = child(this.dir, `${id}.npk`, 'NPK file name');
    try {
      await rename(tmp, path);
    } catch (e) {
      throw repositoryIoError(this.id, this.dir, e, 'rename', path);
    }
    this.containers.set(id, { npk, size: written, path });
    npk.path = path;
    try {
      await syncDir(this.dir);
    } catch (e) {
      // The file is in place under its name; a failed directory fsync only
      // weakens its durability across a power loss.
      this.log.warn(`fsync ${this.dir}: ${(e as Error).message}`);
    }
    return npk;
  }

  /**
   * Writes the stream into `path` (created exclusively) and fsyncs it; stops
   * at capacity_size counting every install still streaming. A file handle,
   * not a WriteStream: every failure is a rejection of this call, never an
   * 'error' event nobody listens to.
   */
  private async writeFile(path: string, data: AsyncIterable<Buffer | Uint8Array>, received: (n: number) => void): Promise<number> {
    let fh;
    try {
      fh = await open(path, 'wx', 0o644);
    } catch (e) {
      throw repositoryIoError(this.id, this.dir, e, 'open', path);
    }
    let written = 0;
    try {
      for await (const chunk of data) {
        received(chunk.length);
        written += chunk.length;
        checkStreamingSize(this, this.opts, this.streaming);
        await writeAll(fh, chunk).catch((e: unknown) => {
          throw repositoryIoError(this.id, this.dir, e, 'write', path);
        });
      }
      await fh.sync().catch((e: unknown) => {
        throw repositoryIoError(this.id, this.dir, e, 'fsync', path);
      });
    } finally {
      await fh.close().catch(() => undefined);
    }
    return written;
  }

  /**
   * The file first, then the entry: a failed unlink leaves the container
   * installed, never listed without a file. A file that is already gone
   * counts as uninstalled.
   */
  remove(container: string): Promise<void> {
    return this.serial.run(async () => {
      const s = this.containers.get(container);
      if (!s) throw errors.invalidContainer(container);
      try {
        await unlink(s.path);
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw repositoryIoError(this.id, this.dir, e, 'unlink', s.path);
        this.log.warn(`${s.path} of ${container} vanished: treating ${container} as uninstalled`);
      }
      this.containers.delete(container);
      closeNpk(s.npk);
    });
  }

  async close(): Promise<void> {
    for (const s of this.containers.values()) closeNpk(s.npk);
    this.containers.clear();
  }
}

async function writeAll(fh: FileHandle, chunk: Uint8Array): Promise<void> {
  for (let off = 0; off < chunk.length; ) off += (await fh.write(chunk, off, chunk.length - off)).bytesWritten;
}

async function syncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}
