// The runtime's cgroups (spec/launch.md §5.7, issue "cgroups"): the top-level
// cgroup in every hierarchy, and per container a cgroup with the manifest's
// limits, the init pid placed last, an optional OOM monitor, freeze/thaw,
// statistics, and removal. Works on v1, v2 and hybrid hosts: each controller
// is used where the host has it (cgroup-layout.ts). Main thread.
//
// Ordering: limits are written before the pid joins, and the pid joins every
// hierarchy before the start gate opens (the caller opens it once container()
// resolves), so the container process never runs outside its limits.
import { existsSync, mkdirSync, readdirSync, rmdirSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';

import { Logger } from '../log.js';
import type { MemoryEvent } from '../machines/contracts.js';
import type { CGroups, SchedPolicy } from '../model/manifest.js';
import { CONTROLLERS, type CgroupLayout, type Controller, type Home, homeOf, layoutKind, readLayout, v2SubtreeControllers } from './cgroup-layout.js';
import { fileError, parsePids, readCgroupFile, readOptional, writeCgroupFile } from './cgroup-files.js';
import { type OomMonitor, watchOomV1, watchOomV2 } from './cgroup-oom.js';
import { type LimitPlan, type PlannedWrite, planLimits, type RealtimeBudget } from './cgroup-plan.js';
import { type CgroupStats, readStats, STAT_CATEGORIES, type StatCategory } from './cgroup-stats.js';
import { waitUntil } from './cgroup-wait.js';
import type { ContainerCgroupsHandle } from './machine-actors.js';

export type { CgroupLayout } from './cgroup-layout.js';
export type { CgroupStats, StatCategory } from './cgroup-stats.js';
export { DEFAULT_RT_RUNTIME_US } from './cgroup-plan.js';

const log = new Logger('cgroups');

/** Bounds of the waits: freezing, thawing, and emptying a cgroup after SIGKILL. */
export const FREEZE_TIMEOUT_MS = 10_000;
export const EMPTY_TIMEOUT_MS = 10_000;

/** One hierarchy the runtime uses, with the controllers it serves. */
export interface Hierarchy {
  version: 1 | 2;
  mount: string;
  controllers: Controller[];
}

export interface TreeOptions {
  /** Defaults to the host's (readLayout()); tests pass a modified one to force v2 paths. */
  layout?: CgroupLayout;
}

export interface ContainerOptions {
  /** The manifest asks for fifo/round_robin: the cpu cgroup gets an RT budget (v1). */
  realtime?: boolean;
}

/** Whether a sched policy is real-time (needs an RT budget under CONFIG_RT_GROUP_SCHED). */
export function isRealtime(policy: SchedPolicy | undefined): boolean {
  return typeof policy === 'object' && ('fifo' in policy || 'round_robin' in policy);
}

/** A relative cgroup path: no empty, `.` or `..` components. */
function checkRelative(what: string, p: string): string {
  const parts = p.split('/').filter((x) => x !== '');
  if (parts.length === 0 || parts.some((x) => x === '.' || x === '..')) {
    throw Object.assign(new Error(`${what} \`${p}\` is not a cgroup path`), { code: 'EINVAL' });
  }
  return parts.join('/');
}

function mkdirCgroup(path: string): boolean {
  try {
    mkdirSync(path);
    return true;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EEXIST') return false;
    throw fileError(e, 'mkdir', path);
  }
}

function rmdirCgroup(path: string): void {
  try {
    rmdirSync(path);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw fileError(e, 'rmdir', path);
  }
}

/** A new v1 cpuset cgroup has empty cpus/mems, and no task may join it: copy the parent's. */
function initCpusetV1(dir: string): void {
  for (const f of ['cpuset.cpus', 'cpuset.mems']) {
    const cur = readCgroupFile(join(dir, f)).trim();
    const inherited = cur === '' ? readCgroupFile(join(dirname(dir), f)).trim() : '';
    if (inherited !== '') writeCgroupFile(join(dir, f), inherited);
  }
}

function procsOf(dir: string): number[] {
  const t = readOptional(join(dir, 'cgroup.procs'));
  return t === undefined ? [] : parsePids(t);
}

export class CgroupTree {
  /** Directories below a hierarchy mount created by this tree (parents of containers), with users. */
  private readonly parentRefs = new Map<string, number>();
  private readonly live = new Map<string, ContainerCgroups>();
  private destroyed?: Promise<void>;

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
      for (const h of hierarchies) {
        tree.ensurePath(h, rel, (d) => created.push(d));
        // The top is ours by name (config.cgroup) even when a dead instance
        // left it: it goes at shutdown. Pre-existing parents of a nested top stay.
        const leaf = join(h.mount, rel);
        if (!created.includes(leaf)) created.push(leaf);
      }
    } catch (e) {
      tree.removeCreated(created);
      throw e;
    }
    log.debug(`cgroups (${layoutKind(layout)}) at ${tree.topPaths().join(', ')}`);
    return tree;
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
    const plan = planLimits(cgroups, (c) => homeOf(this.layout, c), { realtime: opts.realtime === true });
    for (const w of plan.warnings) log.warn(`${container}: ${w}`);
    const parent = cgroups?.parent !== undefined ? checkRelative('manifest cgroups.parent', cgroups.parent) : this.top;
    const name = this.dirName(container, parent);
    const handle = new ContainerCgroups(this, container, plan, parent, name, this.hierarchies, cgroups?.memory?.oom_monitor === true);
    try {
      handle.create();
      handle.start(pid);
    } catch (e) {
      await handle.destroy().catch((cleanup: unknown) => Object.assign(e as object, { cleanup }));
      throw e;
    }
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

/** Every hierarchy with a controller we use, plus the v2 one (cgroup.kill, cgroup.events) on hybrid hosts. */
function usedHierarchies(layout: CgroupLayout): Hierarchy[] {
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

/** The per-container cgroups: ContainerCgroupsHandle plus stats() and pids(). */
export class ContainerCgroups implements ContainerCgroupsHandle {
  /** The container's directory in each hierarchy, in the order the pid joins them. */
  readonly paths: string[] = [];
  private readonly dirs = new Map<Hierarchy, string>();
  private readonly created = new Set<string>();
  private readonly parentsHeld = new Set<Hierarchy>();
  private rtHeld: { ancestors: string[]; adds: number[] } | undefined;
  private oom?: OomMonitor;
  private oomCount = 0;
  private readonly oomListeners: ((m: MemoryEvent) => void)[] = [];
  private readonly oomBacklog: MemoryEvent[] = [];
  private destroying?: Promise<void>;

  constructor(
    private readonly tree: CgroupTree,
    readonly container: string,
    private readonly plan: LimitPlan,
    private readonly parent: string,
    readonly name: string,
    private readonly hierarchies: Hierarchy[],
    private readonly oomMonitor: boolean,
  ) {
    for (const h of hierarchies) {
      const dir = join(h.mount, parent, name);
      this.dirs.set(h, dir);
      this.paths.push(dir);
    }
  }

  /** The directory serving a controller, with its home. */
  dirOf(c: Controller): { dir: string; home: Home } | undefined {
    for (const [h, dir] of this.dirs) if (h.controllers.includes(c)) return { dir, home: { version: h.version, mount: h.mount } as Home };
    return undefined;
  }

  private get v2Dir(): string | undefined {
    for (const [h, dir] of this.dirs) if (h.version === 2) return dir;
    return undefined;
  }

  /** mkdir in every hierarchy, then the limits. Synchronous: a few hundred µs of kernfs writes. */
  create(): void {
    for (const h of this.hierarchies) {
      this.tree.acquireParents(h, this.parent);
      this.parentsHeld.add(h);
      const dir = this.dirs.get(h)!;
      if (!mkdirCgroup(dir)) {
        // Left by an earlier instance that recovery did not see: reuse it only when empty.
        const procs = procsOf(dir);
        if (procs.length) throw fileError(Object.assign(new Error(), { code: 'EEXIST', errno: 17 }), 'mkdir', dir);
        log.debug(`${this.container}: reusing empty ${dir}`);
      }
      this.created.add(dir);
      if (h.version === 1 && h.controllers.includes('cpuset')) initCpusetV1(dir);
    }
    if (this.plan.realtime) this.grantRealtime(this.plan.realtime);
    applyWrites(this.plan.writes, (c) => this.dirOf(c)?.dir, (m) => log.warn(`${this.container}: ${m}`));
  }

  /** OOM monitor, then the pid into every hierarchy: last, after all limits. */
  start(pid: number): void {
    if (this.oomMonitor) {
      const m = this.dirOf('memory');
      if (!m) throw Object.assign(new Error('manifest cgroups.memory.oom_monitor: this host has no memory controller'), { code: 'ENOTSUP' });
      const emit = (e: MemoryEvent) => this.emitOom(e);
      this.oom = m.home.version === 1 ? watchOomV1(m.dir, emit, log) : watchOomV2(m.dir, emit, log);
    }
    for (const dir of this.paths) writeCgroupFile(join(dir, 'cgroup.procs'), String(pid));
  }

  /**
   * cpu.rt_runtime_us of a v1 cgroup is bounded by its parent's, and a new
   * cgroup gets 0: every ancestor below the root gets the container's budget
   * added (top-down, as the kernel checks children against parents), then the
   * container's own. Given back in destroy().
   */
  private grantRealtime(rt: RealtimeBudget): void {
    const cpu = [...this.dirs].find(([h]) => h.version === 1 && h.controllers.includes('cpu'));
    if (!cpu) return;
    const [h, dir] = cpu;
    const childPeriod = rt.periodUs ?? 1_000_000;
    const ancestors = this.tree.ancestors(h, this.parent);
    this.rtHeld = { ancestors: [], adds: [] };
    for (const a of ancestors) {
      const period = Number(readCgroupFile(join(a, 'cpu.rt_period_us')));
      const add = Math.ceil((rt.runtimeUs * period) / childPeriod);
      const cur = Number(readCgroupFile(join(a, 'cpu.rt_runtime_us')));
      writeCgroupFile(join(a, 'cpu.rt_runtime_us'), String(cur + add));
      this.rtHeld.ancestors.push(a);
      this.rtHeld.adds.push(add);
    }
    if (rt.periodUs !== undefined) writeCgroupFile(join(dir, 'cpu.rt_period_us'), String(rt.periodUs));
    writeCgroupFile(join(dir, 'cpu.rt_runtime_us'), String(rt.runtimeUs));
  }

  /**
   * Before rmdir: a removed task group lingers until an RCU grace period ends,
   * and the kernel would still count its budget against a shrinking parent
   * (EINVAL). So the container's own budget goes to 0 first, then the parents'.
   */
  private releaseRealtime(): void {
    const held = this.rtHeld;
    if (!held) return;
    this.rtHeld = undefined;
    const cpu = [...this.dirs].find(([h]) => h.version === 1 && h.controllers.includes('cpu'));
    if (cpu && this.created.has(cpu[1])) writeCgroupFile(join(cpu[1], 'cpu.rt_runtime_us'), '0');
    for (let i = held.ancestors.length - 1; i >= 0; i--) {
      const f = join(held.ancestors[i]!, 'cpu.rt_runtime_us');
      const cur = Number(readCgroupFile(f));
      writeCgroupFile(f, String(Math.max(0, cur - held.adds[i]!)));
    }
  }

  private emitOom(e: MemoryEvent): void {
    if (e.oom !== null && this.dirOf('memory')?.home.version === 1) this.oomCount += e.oom;
    if (this.oomListeners.length === 0) this.oomBacklog.push(e);
    for (const cb of this.oomListeners) cb(e);
  }

  onOom(cb: (m: MemoryEvent) => void): void {
    this.oomListeners.push(cb);
    for (const e of this.oomBacklog.splice(0)) cb(e);
  }

  /** Member pids (cgroup.procs of the first hierarchy). */
  pids(): number[] {
    return procsOf(this.paths[0]!);
  }

  stats(categories: readonly StatCategory[] = STAT_CATEGORIES): CgroupStats {
    return readStats((c) => this.dirOf(c), categories, this.oom && this.dirOf('memory')?.home.version === 1 ? this.oomCount : undefined);
  }

  /** Stops every process (v1 freezer.state FROZEN, or v2 cgroup.freeze) and waits until the kernel says frozen. */
  async freeze(): Promise<void> {
    await this.setFrozen(true);
  }

  async thaw(): Promise<void> {
    await this.setFrozen(false);
  }

  private async setFrozen(frozen: boolean): Promise<void> {
    const f = this.dirOf('freezer');
    if (!f) throw Object.assign(new Error('cgroups: this host has no freezer'), { code: 'ENOTSUP' });
    if (f.home.version === 1) {
      const file = join(f.dir, 'freezer.state');
      const want = frozen ? 'FROZEN' : 'THAWED';
      writeCgroupFile(file, want);
      let state = '';
      await waitUntil(
        () => {
          state = readCgroupFile(file).trim();
          return state === want;
        },
        { timeoutMs: FREEZE_TIMEOUT_MS, what: `${frozen ? 'freeze' : 'thaw'} \`${file}\``, detail: () => `state ${state}` },
      ).catch((e: unknown) => {
        if (frozen) writeCgroupFile(file, 'THAWED');
        throw e;
      });
      return;
    }
    const file = join(f.dir, 'cgroup.freeze');
    const events = join(f.dir, 'cgroup.events');
    writeCgroupFile(file, frozen ? '1' : '0');
    const want = `frozen ${frozen ? 1 : 0}`;
    await waitUntil(() => readCgroupFile(events).split('\n').includes(want), {
      watchPath: events,
      timeoutMs: FREEZE_TIMEOUT_MS,
      what: `${frozen ? 'freeze' : 'thaw'} \`${file}\``,
    }).catch((e: unknown) => {
      if (frozen) writeCgroupFile(file, '0');
      throw e;
    });
  }

  /** Stops the OOM monitor, kills what is left, waits until every cgroup is empty, removes them. Idempotent. */
  destroy(): Promise<void> {
    this.destroying ??= this.teardown();
    return this.destroying;
  }

  private async teardown(): Promise<void> {
    // Before rmdir: removing a v1 memory cgroup signals its eventfds once more.
    this.oom?.stop();
    this.oom = undefined;
    const dirs = this.paths.filter((d) => this.created.has(d));
    if (dirs.length) {
      this.kill(dirs);
      let left: number[] = [];
      const v2 = this.v2Dir;
      await waitUntil(
        () => {
          left = [...new Set(dirs.flatMap(procsOf))];
          if (left.length) this.kill(dirs, left);
          return left.length === 0;
        },
        {
          watchPath: v2 && this.created.has(v2) ? join(v2, 'cgroup.events') : undefined,
          timeoutMs: EMPTY_TIMEOUT_MS,
          what: `empty \`${dirs[0]}\``,
          detail: () => `pids ${left.join(' ')} still inside`,
        },
      );
    }
    const errors: unknown[] = [];
    const attempt = (fn: () => void) => {
      try {
        fn();
      } catch (e) {
        errors.push(e);
      }
    };
    attempt(() => this.releaseRealtime());
    for (const d of dirs) attempt(() => rmdirCgroup(d));
    for (const h of this.parentsHeld) attempt(() => this.tree.releaseParents(h, this.parent));
    this.parentsHeld.clear();
    this.tree.forget(join(this.parent, this.name), this);
    if (errors.length) throw errors[0];
  }

  /**
   * SIGKILL to everything inside: v2 cgroup.kill (kernel >= 5.14) where a v2
   * directory exists, else each pid of cgroup.procs. Frozen tasks die only
   * once thawed, so the freezer is thawed afterwards.
   */
  private kill(dirs: string[], pids?: number[]): void {
    const v2 = this.v2Dir;
    if (v2 && dirs.includes(v2) && existsSync(join(v2, 'cgroup.kill'))) writeCgroupFile(join(v2, 'cgroup.kill'), '1');
    for (const pid of pids ?? [...new Set(dirs.flatMap(procsOf))]) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'ESRCH') throw e;
      }
    }
    const f = this.dirOf('freezer');
    if (f && dirs.includes(f.dir)) writeCgroupFile(join(f.dir, f.home.version === 1 ? 'freezer.state' : 'cgroup.freeze'), f.home.version === 1 ? 'THAWED' : '0');
  }
}

/** Paths relative to a hierarchy mount, for logs and the journal. */
export function relativeToMount(h: Hierarchy, dir: string): string {
  return relative(h.mount, dir).split(sep).join('/');
}

/** The directories below `dir` (a leftover check for tests and recovery). */
export function listCgroupDirs(dir: string): string[] {
  if (!existsSync(dir)) return [];
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (!e.isDirectory()) continue;
    const d = join(dir, e.name);
    out.push(d, ...listCgroupDirs(d));
  }
  return out;
}
