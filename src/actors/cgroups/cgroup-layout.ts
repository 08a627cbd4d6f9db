// Which cgroup hierarchies this host has, read from /proc/self/mountinfo at
// runtime: pure v1 (a mount per controller or per co-mounted group), pure v2
// (one cgroup2 mount with its controllers), or hybrid (v1 controllers plus a
// cgroup2 mount, often without controllers, e.g. /sys/fs/cgroup/unified).
// Pure data and pure functions, except readLayout().
import { readFileSync } from 'node:fs';
import { join } from 'node:path';

import { mountEntries } from '../mount/index.js';

/** The controllers the runtime uses (v1 names; v2 calls blkio "io" and folds cpuacct into cpu). */
export const CONTROLLERS = ['memory', 'cpu', 'cpuacct', 'cpuset', 'blkio', 'freezer', 'pids'] as const;
export type Controller = (typeof CONTROLLERS)[number];

export interface V1Hierarchy {
  mount: string;
  controllers: string[];
}

export interface V2Hierarchy {
  mount: string;
  /** What the root's cgroup.controllers offers (controllers bound to v1 are missing here). */
  controllers: string[];
}

export interface CgroupLayout {
  v1: V1Hierarchy[];
  v2?: V2Hierarchy;
}

/** Where one controller lives: a v1 hierarchy, or the v2 one. */
export type Home = { version: 1; mount: string } | { version: 2; mount: string };

/** Parses mountinfo text: every `cgroup` mount with controllers, and the first `cgroup2` mount with its super options. */
export function parseMountinfo(text: string): { v1: V1Hierarchy[]; v2Mount?: string; v2Options?: string[] } {
  const v1: V1Hierarchy[] = [];
  const seen = new Set<string>();
  let v2Mount: string | undefined;
  let v2Options: string[] | undefined;
  for (const { device, target: mount, fstype, superOptions } of mountEntries(text)) {
    if (fstype === 'cgroup2') {
      if (v2Mount === undefined) {
        v2Mount = mount;
        v2Options = superOptions.split(',').filter(Boolean);
      }
      continue;
    }
    if (fstype !== 'cgroup') continue;
    const controllers = superOptions.split(',').filter((o) => (CONTROLLERS as readonly string[]).includes(o));
    // Named hierarchies (name=systemd) have no controller; a hierarchy mounted
    // twice (same device number) is used through its first mount.
    if (controllers.length === 0 || seen.has(device)) continue;
    seen.add(device);
    v1.push({ mount, controllers });
  }
  return v2Mount === undefined ? { v1 } : { v1, v2Mount, v2Options };
}

/** The host's layout, from /proc/self/mountinfo and the cgroup2 root's cgroup.controllers. */
export function readLayout(mountinfo = readFileSync('/proc/self/mountinfo', 'utf8')): CgroupLayout {
  const { v1, v2Mount } = parseMountinfo(mountinfo);
  if (v2Mount === undefined) return { v1 };
  let controllers: string[] = [];
  try {
    controllers = readFileSync(join(v2Mount, 'cgroup.controllers'), 'utf8').split(/\s+/).filter(Boolean);
  } catch {
    // A cgroup2 mount whose root we cannot read offers no controllers.
  }
  return { v1, v2: { mount: v2Mount, controllers } };
}

export function layoutKind(layout: CgroupLayout): 'v1' | 'v2' | 'hybrid' | 'none' {
  if (layout.v1.length === 0) return layout.v2 ? 'v2' : 'none';
  return layout.v2 ? 'hybrid' : 'v1';
}

const V2_NAME: Record<Controller, string> = {
  memory: 'memory', cpu: 'cpu', cpuacct: 'cpu', cpuset: 'cpuset', blkio: 'io', freezer: '', pids: 'pids',
};

/**
 * Where a controller lives. v1 wins when the controller is bound there (on a
 * hybrid host the kernel offers it to only one of them anyway). The v2
 * freezer is core (cgroup.freeze, kernel >= 5.2), so any cgroup2 mount has it.
 */
export function homeOf(layout: CgroupLayout, c: Controller): Home | undefined {
  const h = layout.v1.find((x) => x.controllers.includes(c));
  if (h) return { version: 1, mount: h.mount };
  if (!layout.v2) return undefined;
  if (c === 'freezer' || layout.v2.controllers.includes(V2_NAME[c])) return { version: 2, mount: layout.v2.mount };
  return undefined;
}

/** The v2 names of the controllers to enable in cgroup.subtree_control on the way down. */
export function v2SubtreeControllers(layout: CgroupLayout): string[] {
  if (!layout.v2) return [];
  const wanted = new Set<string>();
  for (const c of CONTROLLERS) {
    const home = homeOf(layout, c);
    if (home?.version === 2 && V2_NAME[c]) wanted.add(V2_NAME[c]);
  }
  return [...wanted].filter((n) => layout.v2!.controllers.includes(n));
}

/** A copy of the layout without the given v1 controllers (tests force the v2 paths this way). */
export function withoutV1(layout: CgroupLayout, ...drop: Controller[]): CgroupLayout {
  const v1 = layout.v1
    .map((h) => ({ mount: h.mount, controllers: h.controllers.filter((c) => !drop.includes(c as Controller)) }))
    .filter((h) => h.controllers.length > 0);
  return { v1, v2: layout.v2 };
}

/** One hierarchy the runtime uses, with the controllers it serves. */
export interface Hierarchy {
  version: 1 | 2;
  mount: string;
  controllers: Controller[];
}

/** Every hierarchy with a controller we use, plus the v2 one (cgroup.kill, cgroup.events) on hybrid hosts. */
export function usedHierarchies(layout: CgroupLayout): Hierarchy[] {
  const byMount = new Map<string, Hierarchy>();
  for (const c of CONTROLLERS) {
    const home = homeOf(layout, c);
    if (!home) continue;
    const h = byMount.get(home.mount) ?? { version: home.version, mount: home.mount, controllers: [] };
    h.controllers.push(c);
    byMount.set(home.mount, h);
  }
  if (layout.v2 && !byMount.has(layout.v2.mount)) byMount.set(layout.v2.mount, { version: 2, mount: layout.v2.mount, controllers: [] });
  // v1 first: on a hybrid host the v2 directory is the last to get the pid.
  return [...byMount.values()].sort((a, b) => a.version - b.version);
}
