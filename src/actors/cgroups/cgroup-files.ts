// Reading and writing cgroup files and directories, with errors that name the file:
//   write `/sys/fs/cgroup/memory/northstar/hello/memory.limit_in_bytes`: Invalid argument
// Synchronous on purpose: kernfs reads and writes do no disk I/O and take
// microseconds, and a container's whole cgroup setup is a few hundred of them
// (the start path's `cgroups` phase); a threadpool round trip per file would
// cost more than the work. Also: parsers of the kernel's file formats, and
// applyWrites(), which performs a limit plan (cgroup-plan.ts). Main thread.
import { closeSync, constants, existsSync, mkdirSync, openSync, readFileSync, rmdirSync, writeSync } from 'node:fs';
import { constants as os } from 'node:os';
import { getSystemErrorName } from 'node:util';
import { dirname, join } from 'node:path';

import { native } from '../../native.js';
import type { Controller } from './cgroup-layout.js';
import type { PlannedWrite } from './cgroup-plan.js';

const { EEXIST, ENOENT } = os.errno;

// glibc's strerror() texts for what cgroup files answer (libuv's differ, e.g.
// EBUSY "resource busy or locked"), so messages match the native addon's.
const STRERROR: Record<string, string> = {
  EINVAL: 'Invalid argument',
  ENOENT: 'No such file or directory',
  EBUSY: 'Device or resource busy',
  EPERM: 'Operation not permitted',
  EACCES: 'Permission denied',
  ESRCH: 'No such process',
  ENOSPC: 'No space left on device',
  EEXIST: 'File exists',
  ENOTEMPTY: 'Directory not empty',
  EOPNOTSUPP: 'Operation not supported',
  ENOTSUP: 'Operation not supported',
  ENODEV: 'No such device',
  EIO: 'Input/output error',
  ERANGE: 'Numerical result out of range',
  ENOMEM: 'Cannot allocate memory',
  EAGAIN: 'Resource temporarily unavailable',
  EROFS: 'Read-only file system',
  EBADF: 'Bad file descriptor',
  ENOTDIR: 'Not a directory',
};

function strerror(code: string, fallback: string | undefined): string {
  return STRERROR[code] ?? fallback?.replace(/^[A-Z0-9]+: /, '').replace(/, \w+.*$/, '') ?? code;
}

export interface CgroupFileError extends Error {
  code: string;
  errno?: number;
  syscall: string;
  path: string;
}

/** A Node-style system error whose message reads "<syscall> `<path>`: <strerror>". */
export function fileError(e: unknown, syscall: string, path: string): CgroupFileError {
  const src = e as NodeJS.ErrnoException;
  const code = src?.code ?? 'EIO';
  const err = new Error(`${syscall} \`${path}\`: ${strerror(code, src?.message)}`, { cause: e }) as CgroupFileError;
  err.code = code;
  if (typeof src?.errno === 'number') err.errno = Math.abs(src.errno);
  err.syscall = syscall;
  err.path = path;
  return err;
}

/**
 * Writes `value` in one write(2), as the kernel expects (each write is one
 * command). O_WRONLY without O_CREAT/O_TRUNC: cgroup files cannot be created,
 * and some (cgroup.event_control) are write-only.
 */
export function writeCgroupFile(path: string, value: string): void {
  let fd: number;
  try {
    fd = openSync(path, constants.O_WRONLY) // libuv adds O_CLOEXEC;
  } catch (e) {
    // A missing file is an attribute this kernel lacks; say which.
    throw fileError(e, (e as NodeJS.ErrnoException).code === 'ENOENT' ? 'open' : 'write', path);
  }
  try {
    writeSync(fd, value);
  } catch (e) {
    throw fileError(e, 'write', path);
  } finally {
    closeSync(fd);
  }
}

export function readCgroupFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw fileError(e, 'read', path);
  }
}

/** undefined when the file does not exist (an optional statistic). */
export function readOptional(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw fileError(e, 'read', path);
  }
}

/** A single number; `max` (v2's "no limit") is null. */
export function parseSingle(text: string): number | null {
  const t = text.trim();
  if (t === 'max' || t === '') return null;
  const n = Number(t);
  return Number.isFinite(n) ? n : null;
}

/** "key value" lines (memory.stat, cpu.stat, memory.events, memory.oom_control, pids.events). */
export function parseFlatKeyed(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const line of text.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (!k || v === undefined) continue;
    const n = Number(v);
    if (Number.isFinite(n)) out[k] = n;
  }
  return out;
}

/**
 * parseFlatKeyed keeping counters past 2^53 exact as bigint (v1 memory.stat's
 * hierarchical_memory_limit is 9223372036854771712 when unlimited): they go
 * out on the console as the exact integers Northstar's serde writes.
 */
export function parseFlatKeyedExact(text: string): Record<string, number | bigint> {
  const out: Record<string, number | bigint> = {};
  for (const line of text.split('\n')) {
    const [k, v] = line.trim().split(/\s+/);
    if (!k || v === undefined) continue;
    const n = Number(v);
    if (Number.isSafeInteger(n) || !/^\d+$/.test(v)) {
      if (Number.isFinite(n)) out[k] = n;
    } else out[k] = BigInt(v);
  }
  return out;
}

/** "8:0 rbytes=1 wbytes=2" lines (v2 io.stat): per device, per key. */
export function parseNestedKeyed(text: string): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const line of text.split('\n')) {
    const [dev, ...pairs] = line.trim().split(/\s+/);
    if (!dev) continue;
    const entry: Record<string, number> = {};
    for (const p of pairs) {
      const [k, v] = p.split('=');
      if (k && v !== undefined && Number.isFinite(Number(v))) entry[k] = Number(v);
    }
    out[dev] = entry;
  }
  return out;
}

/** v1 blkio "8:0 Read 4096" lines (ending in "Total n"): per device, per operation. */
export function parseBlkioV1(text: string): Record<string, Record<string, number>> {
  const out: Record<string, Record<string, number>> = {};
  for (const line of text.split('\n')) {
    const [dev, op, v] = line.trim().split(/\s+/);
    if (!dev || !op || v === undefined || dev === 'Total') continue;
    (out[dev] ??= {})[op.toLowerCase()] = Number(v);
  }
  return out;
}

/** cgroup.procs: one pid a line. */
export function parsePids(text: string): number[] {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map(Number);
}

/** mkdir of a cgroup; false when it exists already. */
export function mkdirCgroup(path: string): boolean {
  try {
    mkdirSync(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw fileError(e, 'mkdir', path);
  }
}

/** A system error for errno `n` (positive), as fileError() expects it. */
function errnoError(n: number): NodeJS.ErrnoException {
  return Object.assign(new Error(), { code: getSystemErrorName(-n), errno: n });
}

/**
 * mkdirCgroup of every path in one libuv threadpool job: the main thread
 * stays free (a start's clone runs meanwhile). Per path: true made, false it
 * existed, or the error naming it.
 */
export function mkdirCgroups(paths: string[]): Promise<(boolean | CgroupFileError)[]> {
  return new Promise((resolve) =>
    native().cgroupMkdirs(paths, (errnos) =>
      resolve(errnos.map((e, i) => (e === 0 ? true : e === EEXIST ? false : fileError(errnoError(e), 'mkdir', paths[i]!)))),
    ),
  );
}

/** writeCgroupFile of `value` to every path in one native call, in order; throws for the first that fails. */
export function writeCgroupFiles(paths: string[], value: string): void {
  const errnos = native().cgroupWriteAll(paths, value);
  const i = errnos.findIndex((e) => e !== 0);
  if (i < 0) return;
  const e = errnos[i]!;
  throw fileError(errnoError(Math.abs(e)), e < 0 && Math.abs(e) === ENOENT ? 'open' : 'write', paths[i]!);
}

/** rmdirCgroup of every path in one native call: per path undefined (gone) or the error naming it. */
export function rmdirCgroups(paths: string[]): (CgroupFileError | undefined)[] {
  return native().cgroupRmdirs(paths).map((e, i) => (e === 0 || e === ENOENT ? undefined : fileError(errnoError(e), 'rmdir', paths[i]!)));
}

/** rmdir of a cgroup; one that is gone already is fine. */
export function rmdirCgroup(path: string): void {
  try {
    rmdirSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw fileError(e, 'rmdir', path);
  }
}

/** A new v1 cpuset cgroup has empty cpus/mems, and no task may join it: copy the parent's. */
export function initCpusetV1(dir: string): void {
  for (const f of ['cpuset.cpus', 'cpuset.mems']) {
    const cur = readCgroupFile(join(dir, f)).trim();
    const inherited = cur === '' ? readCgroupFile(join(dirname(dir), f)).trim() : '';
    if (inherited !== '') writeCgroupFile(join(dir, f), inherited);
  }
}

/** The members of a cgroup (none when it is gone). */
export function procsOf(dir: string): number[] {
  const t = readOptional(join(dir, 'cgroup.procs'));
  return t === undefined ? [] : parsePids(t);
}

/**
 * Performs planned writes in order. For each, the first of its files that
 * exists is written; when none exists the write fails naming the first file
 * (an attribute the kernel lacks), unless it is optional (warned and skipped).
 */
export function applyWrites(writes: PlannedWrite[], dirOf: (c: Controller) => string | undefined, warn: (m: string) => void): void {
  for (const w of writes) {
    const dir = dirOf(w.controller);
    if (dir === undefined) continue; // planLimits already refused what the host lacks
    const choice = w.choices.find((c) => existsSync(join(dir, c.file)));
    if (!choice && w.optional) {
      warn(w.optional);
      continue;
    }
    const { file, value } = choice ?? w.choices[0]!;
    writeCgroupFile(join(dir, file), value);
  }
}
