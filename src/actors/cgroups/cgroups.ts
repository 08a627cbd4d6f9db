// The runtime's cgroups (spec/launch.md §5.7, issue "cgroups"): the top-level
// cgroup in every hierarchy, and per container a cgroup with the manifest's
// limits, the init pid placed last, an optional OOM monitor, freeze/thaw,
// statistics, and removal. Works on v1, v2 and hybrid hosts: each controller
// is used where the host has it (cgroup-layout.ts). Main thread.
//
// Ordering: limits are written before the pid joins, and the pid joins every
// hierarchy before the start gate opens (the caller opens it once container()
// resolves), so the container process never runs outside its limits.
import { join } from 'node:path';

import { Logger } from '../../log.js';
import type { CGroups } from '../../model/manifest.js';
import { ContainerCgroups, type ParentDirs } from './cgroup-container.js';
import { type CgroupLayout, type Controller, type Hierarchy, homeOf, layoutKind, readLayout, usedHierarchies, v2SubtreeControllers } from './cgroup-layout.js';
import { initCpusetV1, mkdirCgroup, readCgroupFile, rmdirCgroup, writeCgroupFile } from './cgroup-files.js';
import { type LimitPlan, planLimits } from './cgroup-plan.js';
import { clearDynmods, type Dynmods, favorDynmods } from './cgroup-dynmods.js';

export type { CgroupLayout, Hierarchy } from './cgroup-layout.js';
export type { CgroupStats, StatCategory } from './cgroup-stats.js';
export { DEFAULT_RT_RUNTIME_US } from './cgroup-plan.js';
export { ContainerCgroups, EMPTY_TIMEOUT_MS, FREEZE_TIMEOUT_MS } from './cgroup-container.js';
export { applyWrites } from './cgroup-files.js';

const log = new Logger('cgroups');

export interface TreeOptions {
  /** Defaults to the host's (readLayout()); tests pass a modified one to force v2 paths. */
  layout?: CgroupLayout;
  /** Set the cgroup2 `favordynmods` option while the tree lives (config cgroup_favordynmods; cgroup-dynmods.ts). */
  favorDynmods?: boolean;
  /** A previous instance set favordynmods and died without restoring it: this tree takes it over. */
  inheritedDynmods?: boolean;
}

export interface ContainerOptions {
  /** The manifest asks for fifo/round_robin: the cpu cgroup gets an RT budget (v1). */
  realtime?: boolean;
}

/** A relative cgroup path: no empty, `.` or `..` components. */
function checkRelative(what: string, p: string): string {
  const parts = p.split('/').filter((x) => x !== '');
  if (parts.length === 0 || parts.some((x) => x === '.' || x === '..')) {
    throw Object.assign(new Error(`${what} \`${p}\` is not a cgroup path`), { code: 'EINVAL' });
  }
  return parts.join('/');
}

export class CgroupTree implements ParentDirs {
  /** Directories below a hierarchy mount created by this tree (parents of containers), with users. */
  private readonly parentRefs = new Map<string, number>();
  private readonly live = new Map<string, ContainerCgroups>();
  /** Cgroups made ahead of their pid (prepare()), by container id. */
  private readonly prepared = new Map<string, { handle: ContainerCgroups; created: Promise<void> }>();
  private destroyed?: Promise<void>;
  private dynmods?: Dynmods;

  private constructor(
    readonly top: string,
    readonly layout: CgroupLayout,
    readonly hierarchies: Hierarchy[],
    /** The top-level directories this tree created, deepest last. */
    private readonly created: string[],
  ) {}

  /** Creates the runtime's top cgroup `top` (config.cgroup) in every hierarchy used. */
  static async create(top: string, opts: TreeOptions = {}): Promise<CgroupTree> {
    const rel = checkRelative('config cgroup', top);
    const layout = opts.layout ?? readLayout();
    if (layoutKind(layout) === 'none') {
      throw Object.assign(new Error('cgroups: no cgroup hierarchy is mounted (read /proc/self/mountinfo)'), { code: 'ENOENT' });
    }
    const hierarchies = usedHierarchies(layout);
    const created: string[] = [];
    const tree = new CgroupTree(rel, layout, hierarchies, created);
    try {
      for (const h of [...hierarchies]) {
        try {
          tree.ensurePath(h, rel, (d) => created.push(d));
        } catch (e) {
          // A hierarchy serving no controller (the controller-less cgroup2
          // mount of a hybrid host) only adds cgroup.kill and cgroup.events:
          // without it (e.g. mounted read-only) the runtime still works.
          if (h.controllers.length > 0) throw e;
          log.warn(`cgroups: not using ${h.mount}: ${(e as Error).message}`);
          hierarchies.splice(hierarchies.indexOf(h), 1);
          continue;
        }
        // The top is ours by name (config.cgroup) even when a dead instance
        // left it: it goes at shutdown. Pre-existing parents of a nested top stay.
        const leaf = join(h.mount, rel);
        if (!created.includes(leaf)) created.push(leaf);
      }
    } catch (e) {
      tree.removeCreated(created);
      throw e;
    }
    if (opts.favorDynmods) tree.dynmods = favorDynmods(undefined, { inherited: opts.inheritedDynmods });
    else if (opts.inheritedDynmods) clearDynmods();
    log.debug(`cgroups (${layoutKind(layout)}) at ${tree.topPaths().join(', ')}`);
    return tree;
  }

  /** Whether this tree set favordynmods and clears it at destroy() (the journal records it for a crash). */
  get ownsDynmods(): boolean {
    return this.dynmods?.owned === true;
  }

  /** `<mount>/<top>` in every hierarchy. */
  topPaths(): string[] {
    return this.hierarchies.map((h) => join(h.mount, this.top));
  }

  /**
   * Creates the cgroup of `container` ("name:version") under the top (or the
   * manifest's `parent`), applies the limits, starts the OOM monitor when asked,
   * and places `pid` in every hierarchy — last. A failure removes what was
   * created (killing `pid` if it had already joined) and names the file.
   */
  async container(container: string, cgroups: CGroups | undefined, pid: number, opts: ContainerOptions = {}): Promise<ContainerCgroups> {
    if (this.destroyed) throw new Error('cgroups: the tree is destroyed');
    const prepared = this.prepared.get(container);
    this.prepared.delete(container);
    const handle = prepared?.handle ?? this.handle(container, cgroups, opts);
    try {
      if (prepared) await prepared.created;
      else handle.create();
      handle.start(pid);
    } catch (e) {
      await handle.destroy().catch((cleanup: unknown) => Object.assign(e as object, { cleanup }));
      throw e;
    }
    return handle;
  }

  /**
   * Starts creating `container`'s cgroups (directories in the threadpool,
   * then the limits) before its pid exists, so the work overlaps the clone
   * of its init; the next container() call for it takes them over. The
   * returned function gives them up (removes them) when no container() call
   * came — a launch that failed. Errors surface in container().
   */
  prepare(container: string, cgroups: CGroups | undefined, opts: ContainerOptions = {}): () => void {
    if (this.destroyed) return () => undefined;
    this.release(container);
    let handle: ContainerCgroups;
    try {
      handle = this.handle(container, cgroups, opts);
    } catch {
      return () => undefined; // the same error comes again from container()
    }
    const created = handle.createAsync();
    created.catch(() => undefined);
    const entry = { handle, created };
    this.prepared.set(container, entry);
    return () => {
      if (this.prepared.get(container) === entry) this.release(container);
    };
  }

  /** A prepared set nobody took: removed. */
  private release(container: string): void {
    const p = this.prepared.get(container);
    if (!p) return;
    this.prepared.delete(container);
    p.handle.destroy().catch((e: unknown) => log.warn(`${container}: removing unused cgroups: ${(e as Error).message}`));
  }

  /** A new handle, registered as live (its name is taken from now on). */
  private handle(container: string, cgroups: CGroups | undefined, opts: ContainerOptions): ContainerCgroups {
    const plan = planLimits(cgroups, (c) => homeOf(this.layout, c), { realtime: opts.realtime === true });
    for (const w of plan.warnings) log.warn(`${container}: ${w}`);
    const parent = cgroups?.parent !== undefined ? checkRelative('manifest cgroups.parent', cgroups.parent) : this.top;
    const name = this.dirName(container, parent);
    const handle = new ContainerCgroups(this, container, plan, parent, name, containerHierarchies(this.hierarchies, plan), cgroups?.memory?.oom_monitor === true);
    this.live.set(join(parent, name), handle);
    return handle;
  }

  /** Destroys every container's cgroups still alive, then removes the top cgroups. */
  destroy(): Promise<void> {
    this.destroyed ??= (async () => {
      const results = await Promise.allSettled([...this.live.values()].map((h) => h.destroy()));
      const errors = results.flatMap((r) => (r.status === 'rejected' ? [r.reason as unknown] : []));
      try {
        this.removeCreated(this.created);
      } catch (e) {
        errors.push(e);
      }
      this.dynmods?.restore();
      if (errors.length === 1) throw errors[0];
      if (errors.length > 1) throw new AggregateError(errors, `cgroups: removing ${this.top} failed`);
    })();
    return this.destroyed;
  }

  /** The directory name: the container's name (spec: `<top>/<name>`), or the full id while another version holds the name. */
  private dirName(container: string, parent: string): string {
    const name = container.split(':')[0] ?? container;
    const base = checkRelative('container name', name);
    if (base.includes('/')) throw Object.assign(new Error(`container name \`${name}\` is not a cgroup name`), { code: 'EINVAL' });
    return this.live.has(join(parent, base)) ? checkRelative('container', container) : base;
  }

  /** mkdir -p of `rel` below a hierarchy mount, enabling v2 controllers on the way down. */
  ensurePath(h: Hierarchy, rel: string, onCreated: (dir: string) => void): void {
    const subtree = h.version === 2 ? v2SubtreeControllers(this.layout) : [];
    let dir = h.mount;
    if (subtree.length) enableSubtree(dir, subtree);
    for (const part of rel.split('/')) {
      dir = join(dir, part);
      if (mkdirCgroup(dir)) {
        onCreated(dir);
        if (h.version === 1 && h.controllers.includes('cpuset')) initCpusetV1(dir);
      }
      if (subtree.length) enableSubtree(dir, subtree);
    }
  }

  /** Parent directories shared by containers (`cgroups.parent`): created once, removed with their last user. */
  acquireParents(h: Hierarchy, parent: string): void {
    if (parent === this.top) return;
    const mine: string[] = [];
    try {
      this.ensurePath(h, parent, (d) => mine.push(d));
    } catch (e) {
      for (const d of mine.reverse()) rmdirCgroup(d);
      throw e;
    }
    for (const d of mine) this.parentRefs.set(d, 0);
    for (const d of this.ancestors(h, parent)) if (this.parentRefs.has(d)) this.parentRefs.set(d, this.parentRefs.get(d)! + 1);
  }

  releaseParents(h: Hierarchy, parent: string): void {
    if (parent === this.top) return;
    for (const d of this.ancestors(h, parent).reverse()) {
      const n = this.parentRefs.get(d);
      if (n === undefined) continue;
      if (n > 1) {
        this.parentRefs.set(d, n - 1);
        continue;
      }
      this.parentRefs.delete(d);
      rmdirCgroup(d);
    }
  }

  /** `<mount>/a`, `<mount>/a/b` for rel `a/b`. */
  ancestors(h: Hierarchy, rel: string): string[] {
    const out: string[] = [];
    let dir = h.mount;
    for (const part of rel.split('/')) out.push((dir = join(dir, part)));
    return out;
  }

  forget(key: string, handle: ContainerCgroups): void {
    if (this.live.get(key) === handle) this.live.delete(key);
  }

  private removeCreated(created: string[]): void {
    const errors: unknown[] = [];
    for (const d of [...created].reverse()) {
      try {
        rmdirCgroup(d);
      } catch (e) {
        errors.push(e);
      }
    }
    if (errors.length) throw errors[0];
  }
}

/**
 * Controllers every container gets: Northstar's memory, cpu, cpuacct and
 * blkio (spec/launch.md §5.7), whose statistics inspect reports, and the
 * freezer for pause/resume.
 */
const ALWAYS: ReadonlySet<Controller> = new Set(['memory', 'cpu', 'cpuacct', 'blkio', 'freezer']);

/**
 * The hierarchies a container's cgroup goes into: those serving a controller
 * it always gets or one its limits write to. Every hierarchy is a mkdir, a
 * pid write and an rmdir on each start, so a v1 hierarchy of cpuset or pids
 * alone is left out unless the manifest sets cpus/mems (process counts then
 * come from cgroup.procs), and so is a controller-less v2 hierarchy on a
 * hybrid host whose freezer is on v1 (the kill then goes pid by pid, the
 * wait for an empty cgroup polls).
 */
export function containerHierarchies(all: Hierarchy[], plan: LimitPlan): Hierarchy[] {
  const written = new Set<Controller>(plan.writes.map((w) => w.controller));
  if (plan.realtime) written.add('cpu');
  const v1Freezer = all.some((h) => h.version === 1 && h.controllers.includes('freezer'));
  return all.filter((h) =>
    h.version === 2 && h.controllers.length === 0 ? !v1Freezer : h.controllers.some((c) => ALWAYS.has(c) || written.has(c)),
  );
}

/**
 * Enables v2 controllers for the children of `dir`, one at a time: the kernel
 * may refuse one (e.g. cpu while real-time tasks sit outside the root) and the
 * others are still worth having. A refused controller is a warning here; a
 * manifest that needs it then fails naming the missing file (memory.max, ...).
 */
function enableSubtree(dir: string, controllers: string[]): void {
  const file = join(dir, 'cgroup.subtree_control');
  const enabled = readCgroupFile(file).split(/\s+/);
  for (const c of controllers.filter((x) => !enabled.includes(x))) {
    try {
      writeCgroupFile(file, `+${c}`);
    } catch (e) {
      log.warn(`cgroup v2 controller ${c} unavailable below ${dir}: ${(e as Error).message}`);
    }
  }
}
