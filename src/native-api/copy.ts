// Typed contract of the addon's copy module (native/copy.cc): *at calls for
// copy_in/copy_out, all relative to directory fds. Any thread. Every fd
// returned is O_CLOEXEC and owned by the caller (fs.closeSync).

/** openat2 resolve flags (linux/openat2.h). */
export const RESOLVE_NO_XDEV = 0x01;
export const RESOLVE_NO_MAGICLINKS = 0x02;
export const RESOLVE_NO_SYMLINKS = 0x04;
export const RESOLVE_BENEATH = 0x08;
export const RESOLVE_IN_ROOT = 0x10;

export const O_PATH = 0o10000000;
export const AT_SYMLINK_NOFOLLOW = 0x100;
export const AT_REMOVEDIR = 0x200;
export const AT_EMPTY_PATH = 0x1000;

export interface AtStat {
  mode: number;
  uid: number;
  gid: number;
  size: number;
  mtimeMs: number;
  ino: number;
  dev: number;
  nlink: number;
}

export interface CopyNative {
  /** openat2(dirfd, path, flags | O_CLOEXEC, mode, resolve) → fd. Throws a system error. */
  openat2(dirfd: number, path: string, flags: number, mode: number, resolve: number): number;
  mkdirat(dirfd: number, name: string, mode: number): void;
  renameat(olddirfd: number, from: string, newdirfd: number, to: string): void;
  unlinkat(dirfd: number, name: string, flags: number): void;
  symlinkat(target: string, dirfd: number, name: string): void;
  linkat(olddirfd: number, from: string, newdirfd: number, to: string, flags: number): void;
  fchownat(dirfd: number, name: string, uid: number, gid: number, flags: number): void;
  readlinkat(dirfd: number, name: string): string;
  fstatat(dirfd: number, name: string, flags: number): AtStat;
  /** The names in the directory of `fd` (without . and ..); `fd` itself is not consumed. */
  readdirFd(fd: number): string[];
  /** Whether the mount holding `fd` is read-only. */
  mountReadOnly(fd: number): boolean;
}

/** native/pty.cc: terminals from a container's devpts instance. */
export interface PtyNative {
  /** Opens dev/pts/ptmx below the root fd (RESOLVE_IN_ROOT, no symlinks); the slave comes by TIOCGPTPEER. */
  ptyOpen(rootFd: number): { master: number; slave: number; index: number };
  ptyResize(fd: number, cols: number, rows: number): void;
  dupFd(fd: number): number;
}
