// Statistics of a container's cgroups by category (`inspect`, spec/README.md
// "Beyond Northstar"), one shape for v1 and v2: plain JSON numbers, null
// where the host has no such counter or the value means "no limit".
// Main thread (small synchronous kernfs reads).
import { join } from 'node:path';

import type { MemoryEvent } from '../../machines/contracts.js';
import type { Controller, Home } from './cgroup-layout.js';
import {
  parseBlkioV1,
  parseFlatKeyed,
  parseFlatKeyedExact,
  parseNestedKeyed,
  parsePids,
  parseSingle,
  readCgroupFile,
  readOptional,
} from './cgroup-files.js';
import { parseMemoryEvents, v1OomEvent } from './cgroup-oom.js';

export const STAT_CATEGORIES = ['cpu', 'memory', 'memory_events', 'io', 'pids'] as const;
export type StatCategory = (typeof STAT_CATEGORIES)[number];

export interface CpuStats {
  usage_usec: number | null;
  user_usec: number | null;
  system_usec: number | null;
  nr_periods: number | null;
  nr_throttled: number | null;
  throttled_usec: number | null;
}

export interface MemoryStats {
  usage_bytes: number | null;
  max_usage_bytes: number | null;
  limit_bytes: number | null;
  /** memory.stat as is (v1 and v2 key names differ); counters past 2^53 as exact bigints. */
  stat: Record<string, number | bigint>;
}

export interface IoDeviceStats {
  rbytes: number;
  wbytes: number;
  rios: number;
  wios: number;
}

export interface PidsStats {
  current: number;
  max: number | null;
}

export interface CgroupStats {
  cpu?: CpuStats;
  memory?: MemoryStats;
  memory_events?: MemoryEvent;
  /** Per device "major:minor". */
  io?: Record<string, IoDeviceStats>;
  pids?: PidsStats;
}

/** Where to read: a controller's directory and its hierarchy's version. */
export type DirOf = (c: Controller) => { dir: string; home: Home } | undefined;

/** v1 reports "no limit" as a page-rounded LLONG_MAX. */
const V1_UNLIMITED = 2 ** 62;
const limit = (n: number | null) => (n === null || n >= V1_UNLIMITED ? null : n);
const num = (v: number | undefined) => (v === undefined ? null : v);

/** One reader per category; undefined where the group has no such controller. */
const READERS: { [C in StatCategory]: (dirOf: DirOf, oomCount?: number) => CgroupStats[C] } = {
  cpu: cpuStats,
  memory: memoryStats,
  memory_events: memoryEvents,
  io: ioStats,
  pids: pidsStats,
};

export function readStats(dirOf: DirOf, categories: readonly StatCategory[], oomCount?: number): CgroupStats {
  const out: Record<string, unknown> = {};
  for (const c of new Set(categories)) {
    // Categories come from the wire: one this runtime does not know is skipped.
    const s = READERS[c]?.(dirOf, oomCount);
    if (s) out[c] = s;
  }
  return out as CgroupStats;
}

function cpuStats(dirOf: DirOf): CpuStats | undefined {
  const acct = dirOf('cpuacct');
  const cpu = dirOf('cpu');
  if (acct?.home.version === 2 || (!acct && cpu?.home.version === 2)) {
    const s = parseFlatKeyed(readCgroupFile(join((acct ?? cpu)!.dir, 'cpu.stat')));
    return {
      usage_usec: num(s.usage_usec), user_usec: num(s.user_usec), system_usec: num(s.system_usec),
      nr_periods: num(s.nr_periods), nr_throttled: num(s.nr_throttled), throttled_usec: num(s.throttled_usec),
    };
  }
  if (!acct && !cpu) return undefined;
  const usec = (file: string) => {
    const v = acct ? readOptional(join(acct.dir, file)) : undefined;
    const n = v === undefined ? null : parseSingle(v);
    return n === null ? null : Math.floor(n / 1000);
  };
  const s = cpu ? parseFlatKeyed(readOptional(join(cpu.dir, 'cpu.stat')) ?? '') : {};
  return {
    usage_usec: usec('cpuacct.usage'), user_usec: usec('cpuacct.usage_user'), system_usec: usec('cpuacct.usage_sys'),
    nr_periods: num(s.nr_periods), nr_throttled: num(s.nr_throttled),
    throttled_usec: s.throttled_time === undefined ? null : Math.floor(s.throttled_time / 1000),
  };
}

function memoryStats(dirOf: DirOf): MemoryStats | undefined {
  const m = dirOf('memory');
  if (!m) return undefined;
  const read = (f: string) => {
    const v = readOptional(join(m.dir, f));
    return v === undefined ? null : parseSingle(v);
  };
  const stat = parseFlatKeyedExact(readCgroupFile(join(m.dir, 'memory.stat')));
  if (m.home.version === 1) {
    return {
      usage_bytes: read('memory.usage_in_bytes'), max_usage_bytes: read('memory.max_usage_in_bytes'),
      limit_bytes: limit(read('memory.limit_in_bytes')), stat,
    };
  }
  return { usage_bytes: read('memory.current'), max_usage_bytes: read('memory.peak'), limit_bytes: read('memory.max'), stat };
}

function memoryEvents(dirOf: DirOf, oomCount: number | undefined): MemoryEvent | undefined {
  const m = dirOf('memory');
  if (!m) return undefined;
  if (m.home.version === 2) return parseMemoryEvents(readCgroupFile(join(m.dir, 'memory.events')));
  const e = v1OomEvent(oomCount ?? 0, readOptional(join(m.dir, 'memory.oom_control')));
  return { ...e, oom: oomCount ?? null };
}

function ioStats(dirOf: DirOf): Record<string, IoDeviceStats> | undefined {
  const b = dirOf('blkio');
  if (!b) return undefined;
  const out: Record<string, IoDeviceStats> = {};
  const entry = (dev: string) => (out[dev] ??= { rbytes: 0, wbytes: 0, rios: 0, wios: 0 });
  if (b.home.version === 2) {
    for (const [dev, s] of Object.entries(parseNestedKeyed(readOptional(join(b.dir, 'io.stat')) ?? ''))) {
      Object.assign(entry(dev), { rbytes: s.rbytes ?? 0, wbytes: s.wbytes ?? 0, rios: s.rios ?? 0, wios: s.wios ?? 0 });
    }
    return out;
  }
  const bytes = parseBlkioV1(readOptional(join(b.dir, 'blkio.throttle.io_service_bytes_recursive')) ?? '');
  const ios = parseBlkioV1(readOptional(join(b.dir, 'blkio.throttle.io_serviced_recursive')) ?? '');
  for (const [dev, s] of Object.entries(bytes)) Object.assign(entry(dev), { rbytes: s.read ?? 0, wbytes: s.write ?? 0 });
  for (const [dev, s] of Object.entries(ios)) Object.assign(entry(dev), { rios: s.read ?? 0, wios: s.write ?? 0 });
  return out;
}

function pidsStats(dirOf: DirOf): PidsStats | undefined {
  const p = dirOf('pids');
  if (p) {
    return {
      current: parseSingle(readCgroupFile(join(p.dir, 'pids.current'))) ?? 0,
      max: parseSingle(readOptional(join(p.dir, 'pids.max')) ?? 'max'),
    };
  }
  // Without a pids controller: count the members of any of our cgroups.
  const any = dirOf('memory') ?? dirOf('freezer') ?? dirOf('cpu');
  if (!any) return undefined;
  return { current: parsePids(readCgroupFile(join(any.dir, 'cgroup.procs'))).length, max: null };
}
