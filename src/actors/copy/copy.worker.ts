// copy_in / copy_out off the main thread (spec/streams.md "Copy in / out").
// One worker per copy, started by src/actors/copy/copy.ts with the fd of the
// container's root (/proc/<init>/root, opened and checked by the caller).
// Every path is resolved by the kernel inside that root (openat2 with
// RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS), every write goes through the
// resulting fds: a symlink the container planted cannot lead out of it.
// Tar is parsed and written by tar-stream. Bytes move in both directions
// with a credit of COPY_WINDOW messages: memory stays bounded.
import { closeSync, constants as C, fstatSync, fchmodSync, fchownSync, readSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { parentPort, workerData } from 'node:worker_threads';

import * as tar from 'tar-stream';

import { native } from '../../native.js';
import {
  AT_EMPTY_PATH,
  AT_REMOVEDIR,
  AT_SYMLINK_NOFOLLOW,
  O_PATH,
  RESOLVE_BENEATH,
  RESOLVE_IN_ROOT,
  RESOLVE_NO_MAGICLINKS,
  RESOLVE_NO_SYMLINKS,
} from '../../native-api/copy.js';
import type { CopyJob, FromCopy, ToCopy } from './copy.js';

const COPY_WINDOW = 4;
const READ_CHUNK = 256 * 1024;
const IN_ROOT = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS;
/** One component below a directory fd, no symlink followed. */
const BENEATH = RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS;

class CopyError extends Error {}

const n = native();
const port = parentPort!;
const job = workerData as CopyJob;

function post(m: FromCopy, transfer?: ArrayBuffer[]): void {
  port.postMessage(m, transfer ?? []);
}

/** The components of an absolute container path; `..` is refused, `.` and empty ones dropped. */
function containerPath(p: string): string[] {
  if (!p.startsWith('/')) throw new CopyError(`path "${p}" is not absolute`);
  const parts = p.split('/').filter((x) => x !== '' && x !== '.');
  if (parts.includes('..')) throw new CopyError(`path "${p}" contains ".."`);
  return parts;
}

/** The components of a tar entry name: absolute names and `..` are refused. */
function entryPath(name: string): string[] {
  if (name.startsWith('/')) throw new CopyError(`tar entry "${name}" has an absolute name`);
  const parts = name.split('/').filter((x) => x !== '' && x !== '.');
  if (parts.includes('..')) throw new CopyError(`tar entry "${name}" contains ".."`);
  return parts;
}

function errnoOf(e: unknown): string | undefined {
  return (e as { code?: string }).code;
}

const isDir = (mode: number) => (mode & C.S_IFMT) === C.S_IFDIR;
const isReg = (mode: number) => (mode & C.S_IFMT) === C.S_IFREG;
const isLnk = (mode: number) => (mode & C.S_IFMT) === C.S_IFLNK;

// ---- copy_in ------------------------------------------------------------------

/** Incoming tar bytes; each chunk taken returns one credit to the sender. */
async function* incoming(): AsyncGenerator<Buffer> {
  const queue: (Buffer | null)[] = [];
  let wake: (() => void) | undefined;
  let aborted = false;
  port.on('message', (m: ToCopy) => {
    if (m.type === 'data') queue.push(Buffer.from(m.chunk.buffer, m.chunk.byteOffset, m.chunk.byteLength));
    else if (m.type === 'end') queue.push(null);
    else if (m.type === 'abort') aborted = true;
    wake?.();
  });
  for (;;) {
    if (aborted) throw new CopyError('the client went away');
    const c = queue.shift();
    if (c === null) return;
    if (c !== undefined) {
      post({ type: 'ack' });
      yield c;
      continue;
    }
    await new Promise<void>((r) => (wake = r));
    wake = undefined;
  }
}

class Extraction {
  /** Directory fds by their path below the target ('' is the target). */
  private readonly dirs = new Map<string, number>();
  /** Written under temporary names, renamed into place only when the whole tar is in. */
  private readonly staged: { dir: number; tmp: string; name: string; key: string }[] = [];
  private readonly created: { dir: number; name: string }[] = [];

  constructor(
    private readonly root: number,
    private readonly uid: number,
    private readonly gid: number,
  ) {}

  /**
   * Opens the target `path` inside the root, creating what is missing (owned
   * by the container). Every prefix is resolved from the root fd, so a
   * symlink on the way means what it means inside the container.
   */
  openTarget(path: string): void {
    const parts = containerPath(path);
    let fd = n.openat2(this.root, '/', C.O_RDONLY | C.O_DIRECTORY, 0, IN_ROOT);
    try {
      for (let i = 1; i <= parts.length; i++) {
        const prefix = parts.slice(0, i).join('/');
        let next: number;
        try {
          next = n.openat2(this.root, prefix, C.O_RDONLY | C.O_DIRECTORY, 0, IN_ROOT);
        } catch (e) {
          if (errnoOf(e) !== 'ENOENT') throw this.explain(e, `/${prefix}`);
          if (n.mountReadOnly(fd)) throw new CopyError(`/${prefix} cannot be created: /${parts.slice(0, i - 1).join('/')} is on a read-only mount`);
          try {
            n.mkdirat(fd, parts[i - 1]!, 0o700);
          } catch (m) {
            // ENOENT through an existing name: a symlink whose target is missing inside the container.
            if (errnoOf(m) === 'EEXIST') throw new CopyError(`/${prefix} is a symlink to nothing inside the container`);
            throw this.explain(m, `/${prefix}`);
          }
          n.unlinkat(fd, parts[i - 1]!, AT_REMOVEDIR);
          this.mkdir(fd, parts[i - 1]!, 0o755);
          next = n.openat2(fd, parts[i - 1]!, C.O_RDONLY | C.O_DIRECTORY, 0, BENEATH);
        }
        closeSync(fd);
        fd = next;
      }
    } catch (e) {
      closeSync(fd);
      throw e;
    }
    if (n.mountReadOnly(fd)) {
      closeSync(fd);
      throw new CopyError(`${path} is on a read-only mount: only persist, tmpfs and rw bind mounts are targets`);
    }
    this.dirs.set('', fd);
  }

  /** The directory `name` below `dir`, resolved inside the root; created when missing. */
  private child(dir: number, name: string): number {
    try {
      return n.openat2(dir, name, C.O_RDONLY | C.O_DIRECTORY, 0, BENEATH);
    } catch (e) {
      if (errnoOf(e) !== 'ENOENT') throw this.explain(e, name);
    }
    this.mkdir(dir, name, 0o755);
    return n.openat2(dir, name, C.O_RDONLY | C.O_DIRECTORY, 0, BENEATH);
  }

  private mkdir(dir: number, name: string, mode: number): void {
    try {
      n.mkdirat(dir, name, 0o700);
    } catch (e) {
      throw this.explain(e, name);
    }
    this.created.push({ dir, name });
    const fd = n.openat2(dir, name, C.O_RDONLY | C.O_DIRECTORY, 0, BENEATH);
    try {
      fchownSync(fd, this.uid, this.gid);
      // The daemon's umask is 077: the mode is set explicitly.
      fchmodSync(fd, mode & 0o1777);
    } finally {
      closeSync(fd);
    }
  }

  private explain(e: unknown, name: string): Error {
    const code = errnoOf(e);
    if (code === 'EROFS') return new CopyError(`"${name}" is on a read-only mount`);
    if (code === 'ENOTDIR') return new CopyError(`"${name}" is not a directory`);
    if (code === 'EXDEV') return new CopyError(`"${name}" leads out of the target`);
    return e as Error;
  }

  /** The directory fd of `parts` below the target, creating missing ones; a symlink on the way is refused (ELOOP). */
  private dirOf(parts: string[]): number {
    const key = parts.join('/');
    const have = this.dirs.get(key);
    if (have !== undefined) return have;
    const parent = this.dirOf(parts.slice(0, -1));
    const fd = this.child(parent, parts[parts.length - 1]!);
    this.dirs.set(key, fd);
    return fd;
  }

  private tmpName(): string {
    return `.nstar-copy-${randomBytes(8).toString('hex')}`;
  }

  async entry(h: tar.Header, body: AsyncIterable<Buffer>): Promise<void> {
    const parts = entryPath(h.name);
    const key = parts.join('/');
    if (parts.length === 0) return; // "./": the target itself
    const dir = this.dirOf(parts.slice(0, -1));
    const name = parts[parts.length - 1]!;
    switch (h.type) {
      case 'directory': {
        let exists = false;
        try {
          exists = isDir(n.fstatat(dir, name, AT_SYMLINK_NOFOLLOW).mode);
        } catch (e) {
          if (errnoOf(e) !== 'ENOENT') throw e;
        }
        if (!exists) this.mkdir(dir, name, h.mode ?? 0o755);
        return;
      }
      case 'file':
      case 'contiguous-file': {
        const tmp = this.tmpName();
        const fd = n.openat2(dir, tmp, C.O_WRONLY | C.O_CREAT | C.O_EXCL, 0o600, BENEATH);
        this.staged.push({ dir, tmp, name, key });
        try {
          for await (const chunk of body) {
            for (let o = 0; o < chunk.length; ) o += writeSync(fd, chunk, o, chunk.length - o);
          }
          fchownSync(fd, this.uid, this.gid);
          // Modes stay, minus setuid/setgid; the umask (077) does not apply.
          fchmodSync(fd, (h.mode ?? 0o644) & 0o1777);
        } finally {
          closeSync(fd);
        }
        return;
      }
      case 'symlink': {
        // The target string is kept as is: it is only ever followed inside the container's root.
        const tmp = this.tmpName();
        n.symlinkat(h.linkname ?? '', dir, tmp);
        this.staged.push({ dir, tmp, name, key });
        n.fchownat(dir, tmp, this.uid, this.gid, AT_SYMLINK_NOFOLLOW);
        return;
      }
      case 'link': {
        const tmp = this.tmpName();
        const src = entryPath(h.linkname ?? '');
        const srcKey = src.join('/');
        const earlier = [...this.staged].reverse().find((s) => s.key === srcKey);
        if (earlier) n.linkat(earlier.dir, earlier.tmp, dir, tmp, 0);
        else {
          // Resolved with the target as root: a hard link never reaches a file outside it.
          const target = this.dirs.get('')!;
          const fd = n.openat2(target, srcKey, O_PATH | C.O_NOFOLLOW, 0, IN_ROOT);
          try {
            if (!isReg(fstatSync(fd).mode)) throw new CopyError(`hard link "${h.name}" does not name a regular file`);
            n.linkat(fd, '', dir, tmp, AT_EMPTY_PATH);
          } finally {
            closeSync(fd);
          }
        }
        this.staged.push({ dir, tmp, name, key });
        return;
      }
      default:
        // Device nodes and fifos are not created.
        return;
    }
  }

  commit(): void {
    for (const s of this.staged) n.renameat(s.dir, s.tmp, s.dir, s.name);
    this.staged.length = 0;
    this.created.length = 0;
  }

  /** Removes every temporary file and every directory this copy created (those still empty). */
  rollback(): void {
    for (const s of this.staged.splice(0)) {
      try {
        n.unlinkat(s.dir, s.tmp, 0);
      } catch {
        // already gone
      }
    }
    for (const d of this.created.splice(0).reverse()) {
      try {
        n.unlinkat(d.dir, d.name, AT_REMOVEDIR);
      } catch {
        // not empty: it held something before or from elsewhere
      }
    }
  }

  close(): void {
    for (const fd of this.dirs.values()) closeSync(fd);
    this.dirs.clear();
  }
}

async function copyIn(): Promise<void> {
  const x = new Extraction(job.rootFd, job.uid, job.gid);
  try {
    x.openTarget(job.path);
    const extract = tar.extract();
    const feed = (async () => {
      try {
        for await (const c of incoming()) {
          if (!extract.write(c)) await new Promise<void>((r) => extract.once('drain', () => r()));
        }
        extract.end(undefined);
      } catch (e) {
        extract.destroy(e as Error);
      }
    })();
    for await (const entry of extract) {
      await x.entry(entry.header, entry as AsyncIterable<Buffer>);
      entry.resume();
    }
    await feed;
    x.commit();
  } catch (e) {
    x.rollback();
    throw e;
  } finally {
    x.close();
  }
}

// ---- copy_out -----------------------------------------------------------------

async function copyOut(): Promise<void> {
  const parts = containerPath(job.path);
  const start = n.openat2(job.rootFd, job.path, C.O_RDONLY | C.O_NONBLOCK, 0, IN_ROOT);
  const pack = tar.pack();
  let credit = COPY_WINDOW;
  let wake: (() => void) | undefined;
  port.on('message', (m: ToCopy) => {
    if (m.type === 'ack') credit++;
    wake?.();
  });
  const send = (async () => {
    for await (const chunk of pack as AsyncIterable<Buffer>) {
      while (credit <= 0) await new Promise<void>((r) => (wake = r));
      credit--;
      const copy = new Uint8Array(chunk);
      post({ type: 'data', chunk: copy }, [copy.buffer]);
    }
  })();
  const put = (header: Parameters<tar.Pack["entry"]>[0], content?: Buffer) =>
    new Promise<void>((resolve, reject) => pack.entry(header, content ?? Buffer.alloc(0), (e) => (e ? reject(e) : resolve())));

  const file = async (fd: number, name: string, st: { mode: number; uid: number; gid: number; size: number; mtimeMs: number }) => {
    let done: () => void;
    let failed: (e: Error) => void;
    const finished = new Promise<void>((res, rej) => ((done = res), (failed = rej)));
    const sink = pack.entry(
      { name, type: 'file', mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, size: st.size, mtime: new Date(st.mtimeMs) },
      (e) => (e ? failed(e) : done()),
    );
    let left = st.size;
    while (left > 0) {
      const b = Buffer.allocUnsafe(Math.min(READ_CHUNK, left));
      let got = readSync(fd, b, 0, b.length, null);
      // A file that shrank while we read it is padded: the header promised `size` bytes.
      if (got === 0) {
        b.fill(0);
        got = b.length;
      }
      left -= got;
      if (!sink.write(b.subarray(0, got))) await new Promise<void>((r) => sink.once('drain', () => r()));
    }
    sink.end(undefined);
    await finished;
  };

  const walk = async (dir: number, prefix: string): Promise<void> => {
    for (const name of n.readdirFd(dir).sort()) {
      const st = n.fstatat(dir, name, AT_SYMLINK_NOFOLLOW);
      const rel = `${prefix}/${name}`;
      const meta = { mode: st.mode & 0o7777, uid: st.uid, gid: st.gid, mtime: new Date(st.mtimeMs) };
      if (isDir(st.mode)) {
        const fd = n.openat2(dir, name, C.O_RDONLY | C.O_DIRECTORY, 0, BENEATH);
        try {
          await put({ name: `${rel}/`, type: 'directory', ...meta });
          await walk(fd, rel);
        } finally {
          closeSync(fd);
        }
      } else if (isReg(st.mode)) {
        const fd = n.openat2(dir, name, C.O_RDONLY | C.O_NONBLOCK, 0, BENEATH);
        try {
          const s = fstatSync(fd);
          if (!isReg(s.mode) || s.ino !== st.ino) continue; // replaced between stat and open
          await file(fd, rel, { mode: s.mode, uid: s.uid, gid: s.gid, size: s.size, mtimeMs: s.mtimeMs });
        } finally {
          closeSync(fd);
        }
      } else if (isLnk(st.mode)) {
        await put({ name: rel, type: 'symlink', linkname: n.readlinkat(dir, name), ...meta });
      }
      // Device nodes, fifos and sockets are not copied.
    }
  };

  try {
    const s = fstatSync(start);
    const base = parts.length > 0 ? parts[parts.length - 1]! : '.';
    if (isDir(s.mode)) {
      await put({ name: `${base}/`, type: 'directory', mode: s.mode & 0o7777, uid: s.uid, gid: s.gid, mtime: s.mtime });
      await walk(start, base);
    } else if (isReg(s.mode)) {
      await file(start, base, { mode: s.mode, uid: s.uid, gid: s.gid, size: s.size, mtimeMs: s.mtimeMs });
    } else throw new CopyError(`${job.path} is neither a file nor a directory`);
    pack.finalize();
  } catch (e) {
    pack.destroy(e as Error);
    await send.catch(() => undefined);
    throw e;
  } finally {
    closeSync(start);
  }
  await send;
}

async function main(): Promise<void> {
  try {
    if (job.op === 'in') await copyIn();
    else await copyOut();
    post({ type: 'done' });
  } catch (e) {
    const err = e as Error & { code?: string };
    const message = err instanceof CopyError ? err.message : err.code === 'ENOENT' ? `${job.path}: no such file or directory inside the container` : err.message;
    post({ type: 'error', message });
  }
}

void main();
