// One container's cgroups (the ContainerCgroupsHandle of machines/contracts.ts,
// plus stats() and pids()): a directory in every hierarchy the tree uses,
// limits, the pid placed last, the OOM monitor, freeze/thaw, and teardown.
// Created by CgroupTree.container() (cgroups.ts). Main thread.
import { existsSync } from 'node:fs';
import { join } from 'node:path';

import { Logger } from '../../log.js';
import type { ContainerCgroupsHandle, MemoryEvent } from '../../machines/contracts.js';
import type { Controller, Hierarchy, Home } from './cgroup-layout.js';
import { applyWrites, fileError, initCpusetV1, mkdirCgroup, mkdirCgroups, procsOf, readCgroupFile, rmdirCgroup, rmdirCgroups, writeCgroupFile, writeCgroupFiles } from './cgroup-files.js';
import { type OomMonitor, watchOomV1, watchOomV2 } from './cgroup-oom.js';
import type { LimitPlan, RealtimeBudget } from './cgroup-plan.js';
import { type CgroupStats, readStats, STAT_CATEGORIES, type StatCategory } from './cgroup-stats.js';
import { waitUntil } from './cgroup-wait.js';

const log = new Logger('cgroups');

/** Bounds of the waits: freezing, thawing, and emptying a cgroup after SIGKILL. */
export const FREEZE_TIMEOUT_MS = 10_000;
export const EMPTY_TIMEOUT_MS = 10_000;

/** What a container's cgroups need from their tree: shared parent directories. */
export interface ParentDirs {
  acquireParents(h: Hierarchy, parent: string): void;
  releaseParents(h: Hierarchy, parent: string): void;
  /** `<mount>/a`, `<mount>/a/b` for rel `a/b`. */
  ancestors(h: Hierarchy, rel: string): string[];
  forget(key: string, handle: ContainerCgroups): void;
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
  private creating?: Promise<void>;

  constructor(
    private readonly tree: ParentDirs,
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
    this.holdParents();
    for (const h of this.hierarchies) this.made(h, mkdirCgroup(this.dirs.get(h)!));
    this.limits();
  }

  /**
   * create() with the mkdirs in the libuv threadpool, so they overlap what
   * the main thread does meanwhile (the clone of the container's init, which
   * blocks it for most of a millisecond). The limits follow on the main thread.
   */
  createAsync(): Promise<void> {
    this.creating ??= (async () => {
      this.holdParents();
      // Every mkdir is done before anything is judged: none may finish unrecorded after a failure.
      const results = await mkdirCgroups(this.hierarchies.map((h) => this.dirs.get(h)!));
      let first: unknown;
      this.hierarchies.forEach((h, i) => {
        const r = results[i]!;
        try {
          if (r instanceof Error) throw r;
          this.made(h, r);
        } catch (e) {
          first ??= e;
        }
      });
      if (first !== undefined) throw first;
      this.limits();
    })();
    return this.creating;
  }

  /** The parent directories (`cgroups.parent`) in every hierarchy, released at teardown. */
  private holdParents(): void {
    for (const h of this.hierarchies) {
      this.tree.acquireParents(h, this.parent);
      this.parentsHeld.add(h);
    }
  }

  /** Records a hierarchy's directory after its mkdir (`fresh` false: it existed). */
  private made(h: Hierarchy, fresh: boolean): void {
    const dir = this.dirs.get(h)!;
    if (!fresh) {
      // Left by an earlier instance that recovery did not see: reuse it only when empty.
      const procs = procsOf(dir);
      if (procs.length) throw fileError(Object.assign(new Error(), { code: 'EEXIST', errno: 17 }), 'mkdir', dir);
      log.debug(`${this.container}: reusing empty ${dir}`);
    }
    this.created.add(dir);
    if (h.version === 1 && h.controllers.includes('cpuset')) initCpusetV1(dir);
  }

  private limits(): void {
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
    writeCgroupFiles(this.paths.map((dir) => join(dir, 'cgroup.procs')), String(pid));
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
    // A createAsync() in flight first: each of its mkdirs must be recorded to be removed.
    await this.creating?.catch(() => undefined);
    // Before rmdir: removing a v1 memory cgroup signals its eventfds once more.
    this.oom?.stop();
    this.oom = undefined;
    let dirs = this.paths.filter((d) => this.created.has(d));
    // The common case: the init was reaped, its pid namespace died with it,
    // and every cgroup is empty — rmdir at once, no reads, no watch. What is
    // still populated answers EBUSY and goes the long way below. Not with an
    // RT budget held: that must go to 0 before any rmdir.
    if (!this.rtHeld) {
      const results = rmdirCgroups(dirs);
      dirs = dirs.filter((d, i) => {
        if (results[i] !== undefined) return true;
        this.created.delete(d);
        return false;
      });
    }
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
