// The sandbox part of the launch plan (spec/launch.md §5.2, §5.3): the mount
// list, capabilities, rlimits, scheduling and supplementary groups of a
// manifest, as data. Pure: the host is seen only through the HostView it is
// given (launch-plan.ts). Paths in the plan are resolved by nstar-init:
// targets inside the container's root, resource sources inside their image.
import { join, relative, sep } from 'node:path';

import { errors } from '../model/errors.js';
import { CAPABILITIES } from '../model/manifest-schema.js';
import type { Manifest, MountOption, RlimitResource, SchedPolicy } from '../model/manifest.js';
import type { LaunchSpec } from './contracts.js';
import { persistPath } from './plan.js';

// sys/mount.h
export const MS_RDONLY = 0x1;
export const MS_NOSUID = 0x2;
export const MS_NODEV = 0x4;
export const MS_NOEXEC = 0x8;
export const MS_REMOUNT = 0x20;
export const MS_BIND = 0x1000;
export const MS_REC = 0x4000;

/** CAP_* names in capability-number order (linux/capability.h): the index is the number. */
export { CAPABILITIES };

/** RLIMIT_* numbers (asm-generic/resource.h; the same on x86_64 and aarch64). */
export const RLIMITS: Record<RlimitResource, number> = {
  cpu: 0, fsize: 1, data: 2, stack: 3, core: 4, rss: 5, nproc: 6, nofile: 7,
  memlock: 8, as: 9, locks: 10, sigpending: 11, msgqueue: 12, nice: 13, rtprio: 14, rttime: 15,
};

const SCHED = { other: 0, fifo: 1, round_robin: 2, batch: 3, idle: 5, deadline: 6 } as const;

/**
 * One step of the mount list. A target is resolved inside the container's
 * root (symlinks too), never outside it. MS_REMOUNT|MS_BIND adds the flags
 * to the mount at target (and every mount below it with MS_REC), never
 * clearing one.
 */
export interface MountOp {
  /** MS_* flags. */
  flags: number;
  /** Host path (bind) or a pseudo source ("proc", "tmpfs"); "" for none; with sourceRoot a path inside it. */
  source: string;
  /** Absolute path inside the container's root. */
  target: string;
  fstype: string;
  data: string;
  /** A bind source inside this host directory (a resource image), resolved like targets are. */
  sourceRoot?: string;
}

/** A symlink created at `target` (inside the root) with text `link`: a step of the mount list. */
export interface SymlinkOp {
  symlink: string;
  target: string;
}

export type SandboxOp = MountOp | SymlinkOp;

/** Linux SCHED_* policy; nice applies to other/batch. */
export interface Sched {
  policy: number;
  priority: number;
  nice?: number;
}

/** A line for the launcher's log: the plan itself does not log. */
export interface Note {
  logger: 'sandbox' | 'seccomp';
  level: 'debug' | 'warn';
  text: string;
}

/**
 * What a launch plan knows of the host: read-only facts, asked only when a
 * manifest needs them (a group file is read for a `dev` mount or
 * supplementary groups only). The launcher answers from the host, the unit
 * tests from a table.
 */
export interface HostView {
  /** Whether a host path exists (bind sources, /dev nodes, resource directories). */
  exists(path: string): boolean;
  /** The host's group database (/etc/group format); "" when there is none. */
  groupFile(): string;
  /** The host has SELinux (/sys/fs/selinux/enforce exists). */
  selinux(): boolean;
}

export function capabilityMask(names: string[]): bigint {
  let mask = 0n;
  for (const n of names) {
    const i = (CAPABILITIES as readonly string[]).indexOf(n);
    if (i < 0) throw errors.invalidArguments(`unknown capability ${n}`);
    mask |= 1n << BigInt(i);
  }
  return mask;
}

export function schedOf(policy: SchedPolicy | undefined): Sched | undefined {
  if (policy === undefined) return undefined;
  if (policy === 'idle' || policy === 'deadline') return { policy: SCHED[policy], priority: 0 };
  if ('other' in policy) return { policy: SCHED.other, priority: 0, nice: policy.other.nice };
  if ('batch' in policy) return { policy: SCHED.batch, priority: 0, nice: policy.batch.nice };
  if ('fifo' in policy) return { policy: SCHED.fifo, priority: policy.fifo.priority };
  return { policy: SCHED.round_robin, priority: policy.round_robin.priority };
}

export function rlimitsOf(m: Manifest): { resource: number; soft?: number; hard?: number }[] {
  return Object.entries(m.rlimits).map(([res, l]) => ({ resource: RLIMITS[res as RlimitResource], soft: l?.soft, hard: l?.hard }));
}

function optionFlags(options: MountOption[]): number {
  let f = 0;
  if (options.includes('nosuid')) f |= MS_NOSUID;
  if (options.includes('nodev')) f |= MS_NODEV;
  if (options.includes('noexec')) f |= MS_NOEXEC;
  return f;
}

/**
 * A bind mount, then (the kernel ignores other flags on MS_BIND) the step that
 * adds them, to every submount too for a recursive bind (deviation 25:
 * Northstar remounts only the top, leaving submounts of a read-only bind
 * writable).
 */
function bind(source: string, target: string, flags: number, rec: boolean, sourceRoot?: string): MountOp[] {
  const first: MountOp = { flags: MS_BIND | (rec ? MS_REC : 0), source, target, fstype: '', data: '' };
  if (sourceRoot !== undefined) first.sourceRoot = sourceRoot;
  const ops: MountOp[] = [first];
  if (flags !== 0) ops.push({ flags: MS_REMOUNT | MS_BIND | (rec ? MS_REC : 0) | flags, source: '', target, fstype: '', data: '' });
  return ops;
}

/** The packer's six nodes (spec/npk.md §1.5), bound from the host's /dev. */
export const DEV_NODES = ['full', 'null', 'random', 'tty', 'urandom', 'zero'] as const;

/**
 * A `dev` mount (deviation 22): a tmpfs instead of the image's own nodes
 * (which an unkeyed image mounts nodev), holding the host's six nodes bound
 * in, a private devpts instance and ptmx, plus the packer's fd links when
 * /proc is mounted. nodev on the tmpfs itself: a bound node keeps its own
 * mount's flags, and nothing made in the tmpfs is ever a device.
 */
function devMounts(target: string, m: Manifest, host: HostView): SandboxOp[] {
  const base = target.replace(/\/+$/, '');
  const ops: SandboxOp[] = [
    { flags: MS_NOSUID | MS_NOEXEC | MS_NODEV, source: 'tmpfs', target, fstype: 'tmpfs', data: 'mode=755,size=65536' },
  ];
  for (const name of DEV_NODES) {
    const path = `/dev/${name}`;
    if (host.exists(path)) ops.push({ flags: MS_BIND, source: path, target: `${base}/${name}`, fstype: '', data: '' });
  }
  const ttyGid = ttyGidOf(host.groupFile());
  const gid = ttyGid === undefined ? '' : `,gid=${ttyGid}`;
  ops.push({ flags: MS_NOSUID | MS_NOEXEC, source: 'devpts', target: `${base}/pts`, fstype: 'devpts', data: `newinstance,ptmxmode=0666,mode=0620${gid}` });
  ops.push({ symlink: 'pts/ptmx', target: `${base}/ptmx` });
  if (m.mounts['/proc']?.type === 'proc') {
    const links: [string, string][] = [['fd', '/proc/self/fd'], ['stdin', '/proc/self/fd/0'], ['stdout', '/proc/self/fd/1'], ['stderr', '/proc/self/fd/2']];
    for (const [name, link] of links) ops.push({ symlink: link, target: `${base}/${name}` });
  }
  return ops;
}

/**
 * A resource source run_dir/<name>:<version>/<dir> as (its image's root, dir
 * inside it): init resolves dir inside the image, so a symlink there cannot
 * bind a host path into the container.
 */
function resourceSource(spec: LaunchSpec, source: string): { root: string; inner: string } {
  const rel = relative(spec.runDir, source);
  const [top, ...rest] = rel.split(sep);
  if (!top || top === '..') {
    throw errors.startFailed(spec.container, `resource directory ${JSON.stringify(source)} is not inside the run directory`);
  }
  return { root: join(spec.runDir, top), inner: '/' + rest.join('/') };
}

/** data_dir/<name>; never data_dir itself or its parent, whatever the name (safe-path.ts). */
export function persistDir(spec: LaunchSpec): string {
  return persistPath(spec.dataDir, spec.manifest.name);
}

/**
 * The mount list of spec/launch.md §5.3, parents before children. Targets
 * (and resource sources) are resolved by init inside the root. Bind sources
 * the host lacks are skipped with a note in `notes`.
 */
export function planMounts(spec: LaunchSpec, host: HostView, notes: Note[] = []): SandboxOp[] {
  const m = spec.manifest;
  const ops: SandboxOp[] = [];
  for (const target of Object.keys(m.mounts).sort()) {
    const mount = m.mounts[target];
    // init resolves targets inside the root anyway; a relative or `..` target is a manifest error.
    if (!target.startsWith('/') || target.split('/').includes('..')) {
      throw errors.startFailed(spec.container, `invalid mount target ${JSON.stringify(target)}`);
    }
    switch (mount.type) {
      case 'bind':
        // Northstar skips bind sources the host does not have (examples bind /lib64).
        if (!host.exists(mount.host)) {
          notes.push({ logger: 'sandbox', level: 'debug', text: `${spec.container}: skipping bind mount of missing ${mount.host}` });
          break;
        }
        ops.push(...bind(mount.host, target, optionFlags(mount.options) | (mount.options.includes('rw') ? 0 : MS_RDONLY), mount.options.includes('rec')));
        break;
      case 'persist':
        ops.push(...bind(persistDir(spec), target, MS_NODEV | MS_NOSUID | MS_NOEXEC, false));
        break;
      case 'proc':
        ops.push({ flags: MS_RDONLY | MS_NOSUID | MS_NOEXEC | MS_NODEV, source: 'proc', target, fstype: 'proc', data: '' });
        break;
      case 'sysfs':
        ops.push({ flags: MS_RDONLY | MS_NOSUID | MS_NOEXEC | MS_NODEV, source: 'sysfs', target, fstype: 'sysfs', data: '' });
        break;
      case 'sockets':
        ops.push(...bind(spec.socketDir, target, 0, false));
        break;
      case 'resource': {
        const source = spec.resources[target];
        if (source === undefined || !host.exists(source)) {
          throw errors.missingResource(spec.container, mount.name, mount.version);
        }
        // `rw` is ignored for resources: always read-only.
        const { root, inner } = resourceSource(spec, source);
        ops.push(...bind(inner, target, MS_RDONLY | optionFlags(mount.options), false, root));
        break;
      }
      case 'tmpfs':
        ops.push({ flags: MS_NODEV | MS_NOSUID | MS_NOEXEC, source: 'tmpfs', target, fstype: 'tmpfs', data: `size=${mount.size},mode=1777` });
        break;
      case 'dev':
        ops.push(...devMounts(target, m, host));
        break;
    }
  }
  return ops;
}

/** The gid of each group name in a group file's text (/etc/group format); the first line of a name wins. */
export function groupIds(text: string): Map<string, number> {
  const byName = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name && gid !== undefined && !byName.has(name)) byName.set(name, Number(gid));
  }
  return byName;
}

/** The `tty` group's gid in a group file's text, if it has one. */
export function ttyGidOf(text: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith('tty:'));
  const gid = line === undefined ? NaN : Number(line.split(':')[2]);
  return Number.isInteger(gid) ? gid : undefined;
}

/** Supplementary group names resolved with a group file's text; unknown names are skipped with a note. */
export function resolveGroups(container: string, names: string[], groupFile: () => string, notes: Note[] = []): number[] {
  if (names.length === 0) return [];
  const byName = groupIds(groupFile());
  const gids: number[] = [];
  for (const n of names) {
    const g = byName.get(n);
    if (g === undefined) notes.push({ logger: 'sandbox', level: 'warn', text: `${container}: skipping unknown supplementary group ${n}` });
    else gids.push(g);
  }
  return gids;
}
