// /proc/self/mountinfo (proc(5)), read in one place: recovery, the mount pool,
// its workers and the cgroup layout all ask it, with one unescaping rule.
//
//   36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
//   (1)(2) (3)   (4)   (5)      (6)      (7)   (8) (9)   (10)         (11)
//
// The kernel escapes space, tab, newline and backslash in paths as a backslash
// and three octal digits (\040, \011, \012, \134). Main thread and workers.
import { readFileSync, statSync } from 'node:fs';
import { dirname } from 'node:path';

export interface MountEntry {
  /** major:minor of the mounted file system. */
  device: string;
  /** The mount point, unescaped. */
  target: string;
  fstype: string;
  /** The mount source ("/dev/loop3", "cgroup", "none"), unescaped. */
  source: string;
  /** Per-superblock options ("rw,nsdelegate"). */
  superOptions: string;
}

/** Undoes mountinfo's octal escapes ("\040" is a space). */
export function unescapeMountPath(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

/** Parses mountinfo text; lines without the ` - ` separator are skipped. */
export function mountEntries(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ');
    if (sep < 0) continue;
    const left = line.slice(0, sep).split(' ');
    const [fstype = '', source = '', superOptions = ''] = line.slice(sep + 3).split(' ');
    out.push({
      device: left[2] ?? '',
      target: unescapeMountPath(left[4] ?? ''),
      fstype,
      source: unescapeMountPath(source),
      superOptions,
    });
  }
  return out;
}

/** The mounts of this process's mount namespace. */
export function readMounts(path = '/proc/self/mountinfo'): MountEntry[] {
  return mountEntries(readFileSync(path, 'utf8'));
}

/**
 * Whether something is mounted at `path` (absolute, normalized). A directory on
 * another device than its parent is one without a mountinfo scan (the common
 * case: an image on a loop device); a bind mount of the same file system is
 * found in mountinfo. A path that does not exist is no mount point.
 */
export function isMountPoint(path: string): boolean {
  try {
    if (statSync(path).dev !== statSync(dirname(path)).dev) return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
  }
  return readMounts().some((m) => m.target === path);
}
