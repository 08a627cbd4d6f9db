// The manifest's `cgroups` section as a list of file writes, for cgroup v1 or
// v2 naming depending on where each controller lives. Pure: the writes are
// data, so both namings are unit-tested without a kernel; cgroups.ts performs
// them. Value checks are the kernel's: a bad value fails its write, and the
// error names the file.
import type { BlkioCgroup, CGroups, CpuCgroup, MemoryCgroup } from '../../model/manifest.js';
import type { Controller, Home } from './cgroup-layout.js';

export interface PlannedWrite {
  controller: Controller;
  /** File (name inside the controller's directory) and value; the first file that exists is written. */
  choices: { file: string; value: string }[];
  /** When none of `files` exists: skip with this warning instead of failing. */
  optional?: string;
}

export interface RealtimeBudget {
  runtimeUs: number;
  periodUs?: number;
}

export interface LimitPlan {
  writes: PlannedWrite[];
  warnings: string[];
  /** v1 cpu.rt_runtime_us / cpu.rt_period_us: applied with the ancestors' budget (cgroups.ts). */
  realtime?: RealtimeBudget;
}

/**
 * RT budget of a container whose manifest asks for fifo/round_robin without
 * `realtime_runtime`: 50 ms per 1 s period. A new v1 cpu cgroup starts with
 * cpu.rt_runtime_us = 0 under CONFIG_RT_GROUP_SCHED, where sched_setscheduler
 * of an RT policy fails with EPERM.
 */
export const DEFAULT_RT_RUNTIME_US = 50_000;

export type HomeOf = (c: Controller) => Home | undefined;

export class CgroupPlanError extends Error {
  readonly code = 'ENOTSUP';
}

export function planLimits(cgroups: CGroups | undefined, homeOf: HomeOf, opts: { realtime?: boolean } = {}): LimitPlan {
  const plan: LimitPlan = { writes: [], warnings: [] };
  if (cgroups?.memory) planMemory(cgroups.memory, need(homeOf, 'memory', hasMemoryLimits(cgroups.memory)), plan);
  if (cgroups?.cpu) planCpu(cgroups.cpu, homeOf, plan);
  if (cgroups?.blkio) planBlkio(cgroups.blkio, need(homeOf, 'blkio', hasBlkioSettings(cgroups.blkio)), plan);
  planRealtime(cgroups?.cpu, homeOf, opts.realtime === true, plan);
  return plan;
}

/** The home of a controller the manifest sets something for; missing is an error. */
function need(homeOf: HomeOf, c: Controller, used: boolean): Home | undefined {
  const home = homeOf(c);
  if (!home && used) throw new CgroupPlanError(`manifest cgroups.${c === 'blkio' ? 'blkio' : c}: this host has no ${c} controller`);
  return home;
}

function hasMemoryLimits(m: MemoryCgroup): boolean {
  return (
    m.oom_monitor ||
    [m.memory_hard_limit, m.memory_soft_limit, m.memory_swap_limit, m.swappiness, m.kernel_memory_limit, m.kernel_tcp_memory_limit].some(
      (v) => v !== undefined,
    ) ||
    Object.keys(m.attrs ?? {}).length > 0
  );
}

function hasBlkioSettings(b: BlkioCgroup): boolean {
  return (
    b.weight !== undefined ||
    b.leaf_weight !== undefined ||
    [b.weight_device, b.throttle_read_bps_device, b.throttle_read_iops_device, b.throttle_write_bps_device, b.throttle_write_iops_device].some(
      (l) => (l ?? []).length > 0,
    ) ||
    Object.keys(b.attrs ?? {}).length > 0
  );
}

const str = (n: number) => String(n);
/** v2 spells "no limit" as `max`; v1 takes -1. */
const v2Limit = (n: number) => (n < 0 ? 'max' : String(n));

function write(plan: LimitPlan, controller: Controller, file: string, value: string, optional?: string): void {
  plan.writes.push({ controller, choices: [{ file, value }], ...(optional ? { optional } : {}) });
}

/** The first of several files the kernel may offer for one setting. */
function writeFirst(plan: LimitPlan, controller: Controller, choices: { file: string; value: string }[]): void {
  plan.writes.push({ controller, choices });
}

function attrs(plan: LimitPlan, controller: Controller, a: Record<string, string> | undefined): void {
  for (const [file, value] of Object.entries(a ?? {})) {
    // An attribute is a file name inside the cgroup, never a path out of it.
    if (file.includes('/') || file === '.' || file === '..' || file === '') {
      throw new CgroupPlanError(`manifest cgroups attrs: \`${file}\` is not a cgroup file name`);
    }
    write(plan, controller, file, String(value));
  }
}

function planMemory(m: MemoryCgroup, home: Home | undefined, plan: LimitPlan): void {
  if (!home) return;
  if (home.version === 1) {
    if (m.memory_hard_limit !== undefined) write(plan, 'memory', 'memory.limit_in_bytes', str(m.memory_hard_limit));
    if (m.memory_soft_limit !== undefined) write(plan, 'memory', 'memory.soft_limit_in_bytes', str(m.memory_soft_limit));
    // memsw is memory+swap and must not be below limit_in_bytes: written after it.
    if (m.memory_swap_limit !== undefined) write(plan, 'memory', 'memory.memsw.limit_in_bytes', str(m.memory_swap_limit));
    if (m.swappiness !== undefined) write(plan, 'memory', 'memory.swappiness', str(m.swappiness));
    // Kernel memory limits are gone from newer kernels (kmem.limit_in_bytes
    // is a no-op since 5.16 and removed in 6.x builds without it).
    const kmemGone = (f: string) => `${f} is not offered by this kernel: kernel memory limit ignored`;
    if (m.kernel_memory_limit !== undefined)
      write(plan, 'memory', 'memory.kmem.limit_in_bytes', str(m.kernel_memory_limit), kmemGone('memory.kmem.limit_in_bytes'));
    if (m.kernel_tcp_memory_limit !== undefined)
      write(plan, 'memory', 'memory.kmem.tcp.limit_in_bytes', str(m.kernel_tcp_memory_limit), kmemGone('memory.kmem.tcp.limit_in_bytes'));
  } else {
    if (m.memory_hard_limit !== undefined) write(plan, 'memory', 'memory.max', v2Limit(m.memory_hard_limit));
    // cgroups-rs maps the soft limit to memory.low on v2 (best-effort protection).
    if (m.memory_soft_limit !== undefined) write(plan, 'memory', 'memory.low', v2Limit(m.memory_soft_limit));
    // v2 limits swap alone (memory.swap.max), not memory+swap.
    if (m.memory_swap_limit !== undefined) write(plan, 'memory', 'memory.swap.max', v2Limit(m.memory_swap_limit));
    if (m.swappiness !== undefined) plan.warnings.push('cgroup v2 has no per-cgroup swappiness: cgroups.memory.swappiness ignored');
    if (m.kernel_memory_limit !== undefined || m.kernel_tcp_memory_limit !== undefined)
      plan.warnings.push('cgroup v2 accounts kernel memory in memory.max: kernel memory limits ignored');
  }
  attrs(plan, 'memory', m.attrs);
}

/** runc's mapping of v1 cpu.shares [2, 262144] onto v2 cpu.weight [1, 10000]. */
export function sharesToWeight(shares: number): number {
  if (shares === 0) return 0;
  return 1 + Math.floor(((shares - 2) * 9999) / 262142);
}

function planCpu(c: CpuCgroup, homeOf: HomeOf, plan: LimitPlan): void {
  const cpuUsed = c.shares !== undefined || c.quota !== undefined || c.period !== undefined || Object.keys(c.attrs ?? {}).length > 0;
  const cpu = need(homeOf, 'cpu', cpuUsed);
  const cpuset = need(homeOf, 'cpuset', c.cpus !== undefined || c.mems !== undefined);
  if (cpuset) {
    if (c.cpus !== undefined) write(plan, 'cpuset', 'cpuset.cpus', c.cpus);
    if (c.mems !== undefined) write(plan, 'cpuset', 'cpuset.mems', c.mems);
  }
  if (!cpu) return;
  if (cpu.version === 1) {
    if (c.shares !== undefined) write(plan, 'cpu', 'cpu.shares', str(c.shares));
    // The period first: a quota is checked against the current period.
    if (c.period !== undefined) write(plan, 'cpu', 'cpu.cfs_period_us', str(c.period));
    if (c.quota !== undefined) write(plan, 'cpu', 'cpu.cfs_quota_us', str(c.quota));
  } else {
    if (c.shares !== undefined) write(plan, 'cpu', 'cpu.weight', str(sharesToWeight(c.shares)));
    if (c.quota !== undefined || c.period !== undefined) {
      const quota = c.quota === undefined || c.quota < 0 ? 'max' : str(c.quota);
      write(plan, 'cpu', 'cpu.max', c.period === undefined ? quota : `${quota} ${c.period}`);
    }
  }
  attrs(plan, 'cpu', c.attrs);
}

function planRealtime(c: CpuCgroup | undefined, homeOf: HomeOf, realtime: boolean, plan: LimitPlan): void {
  const asked = c?.realtime_runtime !== undefined || c?.realtime_period !== undefined;
  if (!asked && !realtime) return;
  const home = homeOf('cpu');
  if (home?.version !== 1) {
    if (asked) plan.warnings.push('cgroup v2 has no real-time group budget: cgroups.cpu.realtime_* ignored');
    return;
  }
  const runtimeUs = c?.realtime_runtime ?? DEFAULT_RT_RUNTIME_US;
  plan.realtime = { runtimeUs, ...(c?.realtime_period !== undefined ? { periodUs: c.realtime_period } : {}) };
}

/** runc's mapping of v1 blkio weight [10, 1000] onto v2 io.weight [1, 10000]. */
export function blkioToIoWeight(w: number): number {
  if (w === 0) return 0;
  return 1 + Math.floor(((w - 10) * 9999) / 990);
}

/** v1 BFQ kernels (no CFQ since 5.0) offer blkio.bfq.weight instead of blkio.weight. */
function planBlkio(b: BlkioCgroup, home: Home | undefined, plan: LimitPlan): void {
  if (!home) return;
  const dev = (d: { major: number; minor: number }) => `${d.major}:${d.minor}`;
  if (home.version === 1) {
    if (b.weight !== undefined)
      writeFirst(plan, 'blkio', [
        { file: 'blkio.weight', value: str(b.weight) },
        { file: 'blkio.bfq.weight', value: str(b.weight) },
      ]);
    if (b.leaf_weight !== undefined) write(plan, 'blkio', 'blkio.leaf_weight', str(b.leaf_weight));
    for (const d of b.weight_device ?? []) {
      if (d.weight !== undefined)
        writeFirst(plan, 'blkio', [
          { file: 'blkio.weight_device', value: `${dev(d)} ${d.weight}` },
          { file: 'blkio.bfq.weight_device', value: `${dev(d)} ${d.weight}` },
        ]);
      if (d.leaf_weight !== undefined) write(plan, 'blkio', 'blkio.leaf_weight_device', `${dev(d)} ${d.leaf_weight}`);
    }
    const throttles = [
      ['blkio.throttle.read_bps_device', b.throttle_read_bps_device],
      ['blkio.throttle.read_iops_device', b.throttle_read_iops_device],
      ['blkio.throttle.write_bps_device', b.throttle_write_bps_device],
      ['blkio.throttle.write_iops_device', b.throttle_write_iops_device],
    ] as const;
    for (const [file, list] of throttles) for (const t of list ?? []) write(plan, 'blkio', file, `${dev(t)} ${t.rate}`);
  } else {
    // io.bfq.weight keeps v1's scale; io.weight has its own.
    const weight = (prefix: string, w: number) => [
      { file: 'io.bfq.weight', value: `${prefix} ${w}` },
      { file: 'io.weight', value: `${prefix} ${blkioToIoWeight(w)}` },
    ];
    if (b.weight !== undefined) writeFirst(plan, 'blkio', weight('default', b.weight));
    if (b.leaf_weight !== undefined) plan.warnings.push('cgroup v2 has no leaf weights: cgroups.blkio.leaf_weight ignored');
    for (const d of b.weight_device ?? []) {
      if (d.weight !== undefined) writeFirst(plan, 'blkio', weight(dev(d), d.weight));
    }
    const throttles = [
      ['rbps', b.throttle_read_bps_device],
      ['riops', b.throttle_read_iops_device],
      ['wbps', b.throttle_write_bps_device],
      ['wiops', b.throttle_write_iops_device],
    ] as const;
    for (const [key, list] of throttles) for (const t of list ?? []) write(plan, 'blkio', 'io.max', `${dev(t)} ${key}=${t.rate}`);
  }
  attrs(plan, 'blkio', b.attrs);
}
