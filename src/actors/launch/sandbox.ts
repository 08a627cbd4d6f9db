// The sandbox plan: what nstar-init does for a manifest (spec/launch.md §5.2,
// §5.3), computed as data. `planSandbox` is pure apart from the host probe it
// is given (paths that exist, the tty group) and the group file, so unit tests
// check the mount list without root. Paths in the plan are resolved by init:
// targets inside the container's root, resource sources inside their image.
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync } from 'node:fs';
import { join, relative, sep } from 'node:path';

import { Logger } from '../../log.js';
import { errors } from '../../model/errors.js';
import { CAPABILITIES } from '../../model/manifest-schema.js';
import type { Manifest, MountOption, RlimitResource, SchedPolicy } from '../../model/manifest.js';
import type { LaunchSpec } from '../../machines/contracts.js';
import { persistPath } from '../../machines/plan.js';
import { TEST, type InitSpec, type MountOp, type SandboxOp } from './launch-protocol.js';

const log = new Logger('sandbox');

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

export function capabilityMask(names: string[]): bigint {
  let mask = 0n;
  for (const n of names) {
    const i = (CAPABILITIES as readonly string[]).indexOf(n);
    if (i < 0) throw errors.invalidArguments(`unknown capability ${n}`);
    mask |= 1n << BigInt(i);
  }
  return mask;
}

export function schedOf(policy: SchedPolicy | undefined): InitSpec['sched'] {
  if (policy === undefined) return undefined;
  if (policy === 'idle' || policy === 'deadline') return { policy: SCHED[policy], priority: 0 };
  if ('other' in policy) return { policy: SCHED.other, priority: 0, nice: policy.other.nice };
  if ('batch' in policy) return { policy: SCHED.batch, priority: 0, nice: policy.batch.nice };
  if ('fifo' in policy) return { policy: SCHED.fifo, priority: policy.fifo.priority };
  return { policy: SCHED.round_robin, priority: policy.round_robin.priority };
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
function devMounts(target: string, m: Manifest, probe: HostProbe, ttyGid: number | undefined): SandboxOp[] {
  const base = target.replace(/\/+$/, '');
  const ops: SandboxOp[] = [
    { flags: MS_NOSUID | MS_NOEXEC | MS_NODEV, source: 'tmpfs', target, fstype: 'tmpfs', data: 'mode=755,size=65536' },
  ];
  for (const name of DEV_NODES) {
    const host = `/dev/${name}`;
    if (probe.exists(host)) ops.push({ flags: MS_BIND, source: host, target: `${base}/${name}`, fstype: '', data: '' });
  }
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

export interface HostProbe {
  exists(path: string): boolean;
  /** The host's `tty` group (devpts gid), if any. */
  ttyGid?(): number | undefined;
}

function hostTtyGid(groupFile = '/etc/group'): number | undefined {
  try {
    const line = readFileSync(groupFile, 'utf8').split('\n').find((l) => l.startsWith('tty:'));
    const gid = line === undefined ? NaN : Number(line.split(':')[2]);
    return Number.isInteger(gid) ? gid : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The mount list of spec/launch.md §5.3, parents before children. Targets
 * (and resource sources) are resolved by init inside the root.
 */
export function planMounts(spec: LaunchSpec, probe: HostProbe = { exists: existsSync, ttyGid: hostTtyGid }): SandboxOp[] {
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
        if (!probe.exists(mount.host)) {
          log.debug(`${spec.container}: skipping bind mount of missing ${mount.host}`);
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
        if (source === undefined || !probe.exists(source)) {
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
        ops.push(...devMounts(target, m, probe, probe.ttyGid?.()));
        break;
    }
  }
  return ops;
}

/** data_dir/<name>; never data_dir itself or its parent, whatever the name (safe-path.ts). */
export function persistDir(spec: LaunchSpec): string {
  return persistPath(spec.dataDir, spec.manifest.name);
}

/** mkdir -p, chmod 0700 and chown uid:gid of the persist dir, on every start. */
export function preparePersist(spec: LaunchSpec): void {
  const m = spec.manifest;
  if (!Object.values(m.mounts).some((x) => x.type === 'persist')) return;
  const dir = persistDir(spec);
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o700);
  chownSync(dir, m.uid, m.gid);
}

/** Supplementary group names resolved with the host's /etc/group; unknown names are skipped with a warning. */
export function resolveGroups(container: string, names: string[], groupFile = '/etc/group'): number[] {
  if (names.length === 0) return [];
  let text = '';
  try {
    text = readFileSync(groupFile, 'utf8');
  } catch {
    // no group database: every name is unknown
  }
  const byName = new Map<string, number>();
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name && gid !== undefined && !byName.has(name)) byName.set(name, Number(gid));
  }
  const gids: number[] = [];
  for (const n of names) {
    const g = byName.get(n);
    if (g === undefined) log.warn(`${container}: skipping unknown supplementary group ${n}`);
    else gids.push(g);
  }
  return gids;
}

function networkOf(m: Manifest): InitSpec['net'] {
  if (m.network === 'host') return { mode: 'host' };
  if (m.network && typeof m.network === 'object') return { mode: 'join', name: m.network.namespace };
  return { mode: 'new' };
}

/** The host has SELinux when /sys/fs/selinux/enforce exists. */
function hostSelinux(): boolean {
  return existsSync('/sys/fs/selinux/enforce');
}

/** The complete init spec for a launch (without the fd-dependent env entries). */
export function planSandbox(spec: LaunchSpec, env: Record<string, string>, nfds: number, probe?: HostProbe): InitSpec {
  const m = spec.manifest;
  return {
    name: spec.container,
    root: spec.root,
    net: networkOf(m),
    mounts: planMounts(spec, probe),
    uid: m.uid,
    gid: m.gid,
    groups: resolveGroups(spec.container, m.suppl_groups),
    rlimits: Object.entries(m.rlimits).map(([res, l]) => ({ resource: RLIMITS[res as RlimitResource], soft: l?.soft, hard: l?.hard })),
    sched: schedOf(m.sched?.policy),
    caps: capabilityMask(m.capabilities),
    seccomp: spec.seccomp,
    selinuxExec: m.selinux?.exec !== undefined && hostSelinux() ? m.selinux.exec : undefined,
    init: spec.init,
    args: spec.args,
    env: Object.entries(env).map(([k, v]) => `${k}=${v}`),
    nfds,
    ...testHooks(),
  };
}

/** NSTAR_INIT_TEST=no-openat2,no-mount-setattr (with NSTAR_TEST=1): init takes older kernels' paths. */
function testHooks(): { test?: number } {
  if (process.env.NSTAR_TEST !== '1' || !process.env.NSTAR_INIT_TEST) return {};
  const words = process.env.NSTAR_INIT_TEST.split(',');
  const test = (words.includes('no-openat2') ? TEST.noOpenat2 : 0) | (words.includes('no-mount-setattr') ? TEST.noMountSetattr : 0);
  return test ? { test } : {};
}
