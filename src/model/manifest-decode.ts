// Turns a document tree (manifest-document.ts) into the normalized Manifest:
// serde's type checks (required fields, deny_unknown_fields, integer ranges,
// enum variants, duplicate set entries) with errors that name the field path.
// The semantic rules of validation.rs live in manifest-validate.ts.
import { IdError, parseVersion } from './container-id.js';
import { Lit, put, Tagged } from './manifest-document.js';
import {
  CAPABILITIES, ManifestError, MOUNT_OPTIONS, PERMISSIONS, RLIMIT_RESOURCES,
} from './manifest-schema.js';
import type {
  BlkioCgroup, BlkioThrottleDevice, BlkioWeightDevice, CGroups, CpuCgroup, Manifest, MemoryCgroup,
  Mount, MountOption, Output, Permission, Rlimit, RlimitResource, SchedPolicy, Seccomp, SeccompArgs,
  SeccompRule, Socket, SocketType,
} from './manifest-schema.js';
import { decodeHealth, decodeRestart } from './manifest-supervision.js';
import { parseByteSize, UnitError } from './units.js';
import { canonicalVersionReq } from './version-req.js';

import { denyUnknown, describe, fail, int, join, map, str, type Obj } from './manifest-fields.js';

const U16 = [0n, 65535n] as const;
const U32 = [0n, 4294967295n] as const;
const U64 = [0n, 18446744073709551615n] as const;
const I64 = [-9223372036854775808n, 9223372036854775807n] as const;
const I8 = [-128n, 127n] as const;

function present(v: unknown): boolean {
  return v !== undefined && v !== null;
}

/** An integer that must also be exact as a JS number (|n| <= 2^53-1). */
function num(v: unknown, path: string, range: readonly [bigint, bigint]): number {
  const n = int(v, path, range);
  if (n > BigInt(Number.MAX_SAFE_INTEGER) || n < BigInt(Number.MIN_SAFE_INTEGER)) {
    fail(path, `integer ${n} is larger than this runtime can represent exactly (2^53-1)`);
  }
  return Number(n);
}

function bool(v: unknown, path: string): boolean {
  const x = v instanceof Lit ? v.value : v;
  if (typeof x !== 'boolean') fail(path, `expected true or false, got ${describe(v)}`);
  return x;
}

function seq(v: unknown, path: string): unknown[] {
  if (!Array.isArray(v)) fail(path, `expected a sequence, got ${describe(v)}`);
  return v;
}

function required(obj: Obj, key: string, path: string): unknown {
  const v = obj[key];
  if (!Object.hasOwn(obj, key) || !present(v)) fail(join(path, key), 'missing required field');
  return v;
}

function oneOf<T extends string>(v: unknown, path: string, values: readonly T[]): T {
  const s = str(v, path);
  if (!(values as readonly string[]).includes(s)) fail(path, `unknown variant "${s}", expected one of: ${values.join(', ')}`);
  return s as T;
}

/**
 * An externally tagged enum: a unit variant as a plain string, a data variant as
 * a YAML tag (`!fifo {priority: 1}`) or a single-key map (`{fifo: {priority: 1}}`, JSON/TOML).
 */
function variant(v: unknown, path: string, units: readonly string[], data: readonly string[]): { name: string; value: unknown } {
  const all = [...units, ...data];
  let name: string;
  let value: unknown;
  if (v instanceof Tagged) {
    name = v.tag;
    value = v.value;
  } else if (typeof v === 'string' || v instanceof Lit) {
    name = str(v, path);
    value = null;
  } else if (typeof v === 'object' && v !== null && !Array.isArray(v)) {
    const keys = Object.keys(v);
    if (keys.length !== 1) fail(path, `expected one of ${all.join(', ')} (one key), got a map with ${keys.length} keys`);
    name = keys[0]!;
    value = (v as Obj)[name];
  } else fail(path, `expected one of ${all.join(', ')}, got ${describe(v)}`);
  if (units.includes(name)) {
    if (present(value)) fail(path, `variant ${name} takes no value`);
  } else if (!data.includes(name)) fail(path, `unknown variant "${name}", expected one of: ${all.join(', ')}`);
  else if (!present(value)) fail(path, `variant ${name} needs a value`);
  return { name, value };
}

function stringMap(v: unknown, path: string): Record<string, string> {
  const out: Record<string, string> = {};
  const m = map(v, path);
  for (const k of Object.keys(m)) put(out, str(k, join(path, k)), str(m[k], join(path, k)));
  return out;
}

/** A set: a sequence whose duplicates are an error (serde_with sets_duplicate_value_is_error). */
function stringSet(v: unknown, path: string): string[] {
  const out: string[] = [];
  seq(v, path).forEach((item, i) => {
    const s = str(item, `${path}[${i}]`);
    if (out.includes(s)) fail(path, `duplicate entry "${s}"`);
    out.push(s);
  });
  return out;
}

function optional<T>(obj: Obj, key: string, path: string, fn: (v: unknown, path: string) => T): T | undefined {
  const v = obj[key];
  return Object.hasOwn(obj, key) && present(v) ? fn(v, join(path, key)) : undefined;
}

/** Assigns only defined values, keeping serde's "None is not serialized" shape. */
function assign<T extends object>(target: T, values: Partial<T>): T {
  for (const [k, v] of Object.entries(values)) if (v !== undefined) (target as Obj)[k] = v;
  return target;
}

// ---------------------------------------------------------------- fields

const TOP = [
  'name', 'version', 'console', 'init', 'args', 'env', 'uid', 'gid', 'sched', 'mounts', 'autostart',
  'cgroups', 'network', 'seccomp', 'selinux', 'capabilities', 'suppl_groups', 'rlimits', 'sockets', 'io', 'custom',
  // Ours (manifest-supervision.ts): not Northstar's.
  'restart', 'health',
] as const;

export function decodeManifest(raw: Obj): Manifest {
  denyUnknown(raw, '', TOP);
  const m: Manifest = {
    name: str(required(raw, 'name', ''), 'name'),
    version: decodeVersion(required(raw, 'version', '')),
    args: [],
    env: {},
    uid: num(required(raw, 'uid', ''), 'uid', U16),
    gid: num(required(raw, 'gid', ''), 'gid', U16),
    mounts: {},
    capabilities: [],
    suppl_groups: [],
    rlimits: {},
    sockets: {},
  };
  assign(m, {
    console: optional(raw, 'console', '', decodeConsole),
    init: optional(raw, 'init', '', str),
    args: optional(raw, 'args', '', (v, p) => seq(v, p).map((a, i) => str(a, `${p}[${i}]`))),
    env: optional(raw, 'env', '', stringMap),
    sched: optional(raw, 'sched', '', decodeSched),
    mounts: optional(raw, 'mounts', '', decodeMounts),
    autostart: optional(raw, 'autostart', '', (v, p) => oneOf(v, p, ['relaxed', 'critical'] as const)),
    cgroups: optional(raw, 'cgroups', '', decodeCgroups),
    network: optional(raw, 'network', '', decodeNetwork),
    seccomp: optional(raw, 'seccomp', '', decodeSeccomp),
    selinux: optional(raw, 'selinux', '', decodeSelinux),
    capabilities: optional(raw, 'capabilities', '', decodeCapabilities),
    suppl_groups: optional(raw, 'suppl_groups', '', stringSet),
    rlimits: optional(raw, 'rlimits', '', decodeRlimits),
    sockets: optional(raw, 'sockets', '', decodeSockets),
    io: optional(raw, 'io', '', decodeIo),
    custom: optional(raw, 'custom', '', toJsonValue),
    restart: optional(raw, 'restart', '', decodeRestart),
    health: optional(raw, 'health', '', decodeHealth),
  });
  return reorder(m);
}

/** Keys in the struct's order, so equal manifests print equally. */
function reorder(m: Manifest): Manifest {
  const out: Obj = {};
  const src = m as unknown as Obj;
  for (const k of TOP) if (src[k] !== undefined) out[k] = src[k];
  return out as unknown as Manifest;
}

function decodeVersion(v: unknown): string {
  const s = str(v, 'version');
  try {
    return parseVersion(s);
  } catch (e) {
    return fail('version', e instanceof IdError ? e.message : String(e));
  }
}

function decodeConsole(v: unknown, path: string): { permissions: Permission[] } {
  const c = map(v, path);
  denyUnknown(c, path, ['permissions']);
  const p = join(path, 'permissions');
  const raw = required(c, 'permissions', path);
  if (typeof raw === 'string' || raw instanceof Lit) {
    if (str(raw, p).trim() !== 'full') fail(p, `invalid console permission: ${str(raw, p)} (expected "full" or a list)`);
    return { permissions: [...PERMISSIONS] };
  }
  const set = new Set(seq(raw, p).map((x, i) => oneOf(x, `${p}[${i}]`, PERMISSIONS)));
  return { permissions: PERMISSIONS.filter((x) => set.has(x)) };
}

function decodeSched(v: unknown, path: string): { policy: SchedPolicy } {
  const s = map(v, path);
  // Sched has no deny_unknown_fields in Northstar: other keys are ignored.
  const p = join(path, 'policy');
  const { name, value } = variant(required(s, 'policy', path), p, ['idle', 'deadline'], ['other', 'fifo', 'round_robin', 'batch']);
  const vp = join(p, name);
  switch (name) {
    case 'other':
    case 'batch': {
      const f = map(value, vp);
      const nice = num(required(f, 'nice', vp), join(vp, 'nice'), I8);
      return { policy: name === 'other' ? { other: { nice } } : { batch: { nice } } };
    }
    case 'fifo':
    case 'round_robin': {
      const f = map(value, vp);
      const priority = num(required(f, 'priority', vp), join(vp, 'priority'), U32);
      return { policy: name === 'fifo' ? { fifo: { priority } } : { round_robin: { priority } } };
    }
    default:
      return { policy: name as 'idle' | 'deadline' };
  }
}

function mountOptions(v: unknown, path: string): MountOption[] {
  const s = str(v, path).trim();
  if (s === '') return [];
  const set = new Set<string>();
  for (const part of s.split(',')) {
    const o = part.trim();
    if (!(MOUNT_OPTIONS as readonly string[]).includes(o)) fail(path, `invalid mount option "${o}", expected a comma-separated list of: ${MOUNT_OPTIONS.join(', ')}`);
    set.add(o);
  }
  return MOUNT_OPTIONS.filter((o) => set.has(o));
}

function decodeMounts(v: unknown, path: string): Record<string, Mount> {
  const m = map(v, path);
  const out: Record<string, Mount> = {};
  for (const target of Object.keys(m)) put(out, str(target, path), decodeMount(m[target], join(path, target)));
  return out;
}

const MOUNT_TYPES = ['bind', 'dev', 'persist', 'proc', 'sysfs', 'sockets', 'resource', 'tmpfs'] as const;

function decodeMount(v: unknown, path: string): Mount {
  const m = map(v, path);
  const type = oneOf(required(m, 'type', path), join(path, 'type'), MOUNT_TYPES);
  const opts = (): MountOption[] => optional(m, 'options', path, mountOptions) ?? [];
  switch (type) {
    case 'bind':
      denyUnknown(m, path, ['type', 'host', 'options']);
      return { type, host: str(required(m, 'host', path), join(path, 'host')), options: opts() };
    case 'resource': {
      denyUnknown(m, path, ['type', 'name', 'version', 'dir', 'options']);
      const name = str(required(m, 'name', path), join(path, 'name'));
      let version = str(required(m, 'version', path), join(path, 'version'));
      try {
        // Stored as Rust's VersionReq displays it, so "1.2.3" reads back as "^1.2.3".
        version = canonicalVersionReq(version);
      } catch (e) {
        fail(join(path, 'version'), e instanceof Error ? e.message : String(e));
      }
      return { type, name, version, dir: str(required(m, 'dir', path), join(path, 'dir')), options: opts() };
    }
    case 'tmpfs': {
      denyUnknown(m, path, ['type', 'size']);
      return { type, size: tmpfsSize(required(m, 'size', path), join(path, 'size')) };
    }
    default:
      denyUnknown(m, path, ['type']);
      return { type };
  }
}

function tmpfsSize(v: unknown, path: string): number {
  const x = v instanceof Lit ? v.value : v;
  if (typeof x === 'bigint' || typeof x === 'number') return num(v, path, U64);
  try {
    return parseByteSize(str(v, path));
  } catch (e) {
    return fail(path, e instanceof UnitError ? e.message : String(e));
  }
}

function decodeCgroups(v: unknown, path: string): CGroups {
  // No deny_unknown_fields here (the obsolete `limit_in_bytes` is ignored, as in Northstar).
  const c = map(v, path);
  return assign({} as CGroups, {
    parent: optional(c, 'parent', path, str),
    memory: optional(c, 'memory', path, decodeMemory),
    cpu: optional(c, 'cpu', path, decodeCpu),
    blkio: optional(c, 'blkio', path, decodeBlkio),
  });
}

function intField(range: readonly [bigint, bigint]) {
  return (v: unknown, p: string) => num(v, p, range);
}

function decodeMemory(v: unknown, path: string): MemoryCgroup {
  const m = map(v, path);
  const i64 = intField(I64);
  return assign(
    { oom_monitor: optional(m, 'oom_monitor', path, bool) ?? false } as MemoryCgroup,
    {
      kernel_memory_limit: optional(m, 'kernel_memory_limit', path, i64),
      memory_hard_limit: optional(m, 'memory_hard_limit', path, i64),
      memory_soft_limit: optional(m, 'memory_soft_limit', path, i64),
      kernel_tcp_memory_limit: optional(m, 'kernel_tcp_memory_limit', path, i64),
      memory_swap_limit: optional(m, 'memory_swap_limit', path, i64),
      swappiness: optional(m, 'swappiness', path, intField(U64)),
      attrs: optional(m, 'attrs', path, stringMap) ?? {},
    },
  );
}

function decodeCpu(v: unknown, path: string): CpuCgroup {
  const c = map(v, path);
  return assign({} as CpuCgroup, {
    cpus: optional(c, 'cpus', path, str),
    mems: optional(c, 'mems', path, str),
    shares: optional(c, 'shares', path, intField(U64)),
    quota: optional(c, 'quota', path, intField(I64)),
    period: optional(c, 'period', path, intField(U64)),
    realtime_runtime: optional(c, 'realtime_runtime', path, intField(I64)),
    realtime_period: optional(c, 'realtime_period', path, intField(U64)),
    attrs: optional(c, 'attrs', path, stringMap) ?? {},
  });
}

function weightDevice(v: unknown, path: string): BlkioWeightDevice {
  const d = map(v, path);
  return assign(
    { major: num(required(d, 'major', path), join(path, 'major'), U64), minor: num(required(d, 'minor', path), join(path, 'minor'), U64) } as BlkioWeightDevice,
    { weight: optional(d, 'weight', path, intField(U16)), leaf_weight: optional(d, 'leaf_weight', path, intField(U16)) },
  );
}

function throttleDevice(v: unknown, path: string): BlkioThrottleDevice {
  const d = map(v, path);
  return {
    major: num(required(d, 'major', path), join(path, 'major'), U64),
    minor: num(required(d, 'minor', path), join(path, 'minor'), U64),
    rate: num(required(d, 'rate', path), join(path, 'rate'), U64),
  };
}

function devices<T>(b: Obj, key: string, path: string, fn: (v: unknown, p: string) => T): T[] {
  // The Vec fields have no serde default: they are required when blkio is given.
  const p = join(path, key);
  if (!Object.hasOwn(b, key)) fail(p, 'missing required field (Northstar has no default for it; write [] for none)');
  return seq(b[key], p).map((d, i) => fn(d, `${p}[${i}]`));
}

function decodeBlkio(v: unknown, path: string): BlkioCgroup {
  const b = map(v, path);
  const out = assign({} as BlkioCgroup, {
    weight: optional(b, 'weight', path, intField(U16)),
    leaf_weight: optional(b, 'leaf_weight', path, intField(U16)),
  });
  out.weight_device = devices(b, 'weight_device', path, weightDevice);
  out.throttle_read_bps_device = devices(b, 'throttle_read_bps_device', path, throttleDevice);
  out.throttle_read_iops_device = devices(b, 'throttle_read_iops_device', path, throttleDevice);
  out.throttle_write_bps_device = devices(b, 'throttle_write_bps_device', path, throttleDevice);
  out.throttle_write_iops_device = devices(b, 'throttle_write_iops_device', path, throttleDevice);
  out.attrs = optional(b, 'attrs', path, stringMap) ?? {};
  return out;
}

function decodeNetwork(v: unknown, path: string): Manifest['network'] {
  const { name, value } = variant(v, path, ['host'], ['namespace']);
  return name === 'host' ? 'host' : { namespace: str(value, join(path, 'namespace')) };
}

/** u64 seccomp values: integers, or decimal strings (the JSON-safe form manifestToJson writes above 2^53). */
function u64(v: unknown, path: string): bigint {
  if (typeof v === 'string' && /^\d+$/.test(v)) return int(BigInt(v), path, U64);
  return int(v, path, U64);
}

function decodeSeccomp(v: unknown, path: string): Seccomp {
  const s = map(v, path);
  denyUnknown(s, path, ['profile', 'allow']);
  const out: Seccomp = {};
  const profile = optional(s, 'profile', path, (x, p) => oneOf(x, p, ['default'] as const));
  if (profile !== undefined) out.profile = profile;
  const allow = optional(s, 'allow', path, map);
  if (allow !== undefined) {
    const rules: Record<string, SeccompRule> = {};
    const ap = join(path, 'allow');
    for (const sys of Object.keys(allow)) put(rules, str(sys, ap), decodeRule(allow[sys], join(ap, sys)));
    out.allow = rules;
  }
  return out;
}

function decodeRule(v: unknown, path: string): SeccompRule {
  const { name, value } = variant(v, path, ['any'], ['args']);
  if (name === 'any') return 'any';
  const p = join(path, 'args');
  const a = map(value, p);
  denyUnknown(a, p, ['index', 'values', 'mask']);
  const args: SeccompArgs = { index: num(required(a, 'index', p), join(p, 'index'), U64) };
  const values = optional(a, 'values', p, (x, vp) => seq(x, vp).map((y, i) => u64(y, `${vp}[${i}]`)));
  if (values !== undefined) args.values = values;
  const mask = optional(a, 'mask', p, u64);
  if (mask !== undefined) args.mask = mask;
  return { args };
}

function decodeSelinux(v: unknown, path: string): { mount_context?: string; exec?: string } {
  const s = map(v, path);
  denyUnknown(s, path, ['mount_context', 'exec']);
  return assign({}, { mount_context: optional(s, 'mount_context', path, str), exec: optional(s, 'exec', path, str) });
}

function decodeCapabilities(v: unknown, path: string): string[] {
  const caps = stringSet(v, path);
  caps.forEach((c, i) => oneOf(c, `${path}[${i}]`, CAPABILITIES));
  return caps;
}

function decodeRlimits(v: unknown, path: string): Partial<Record<RlimitResource, Rlimit>> {
  const m = map(v, path);
  const out: Partial<Record<RlimitResource, Rlimit>> = {};
  for (const k of Object.keys(m)) {
    const p = join(path, k);
    const res = oneOf(k, p, RLIMIT_RESOURCES);
    const r = map(m[k], p);
    denyUnknown(r, p, ['soft', 'hard']);
    out[res] = assign({} as Rlimit, { soft: optional(r, 'soft', p, intField(U64)), hard: optional(r, 'hard', p, intField(U64)) });
  }
  return out;
}

function decodeSockets(v: unknown, path: string): Record<string, Socket> {
  const m = map(v, path);
  const out: Record<string, Socket> = {};
  for (const name of Object.keys(m)) {
    const p = join(path, name);
    const s = map(m[name], p);
    denyUnknown(s, p, ['type', 'mode', 'uid', 'gid', 'passcred']);
    const socket: Socket = {
      type: oneOf(required(s, 'type', p), join(p, 'type'), ['stream', 'datagram', 'seq_packet'] as SocketType[]),
      mode: num(required(s, 'mode', p), join(p, 'mode'), U32),
    };
    assign(socket, {
      uid: optional(s, 'uid', p, intField(U32)),
      gid: optional(s, 'gid', p, intField(U32)),
      passcred: optional(s, 'passcred', p, bool),
    });
    put(out, str(name, path), socket);
  }
  return out;
}

function decodeIo(v: unknown, path: string): { stdout: Output; stderr: Output } {
  const io = map(v, path);
  denyUnknown(io, path, ['stdout', 'stderr']);
  const outputs = ['discard', 'pipe', 'inherit'] as const;
  return {
    stdout: oneOf(required(io, 'stdout', path), join(path, 'stdout'), outputs),
    stderr: oneOf(required(io, 'stderr', path), join(path, 'stderr'), outputs),
  };
}

/** `custom` is any JSON value: tags become single-key maps, integers numbers (bigint only beyond 2^53). */
export function toJsonValue(v: unknown, path = 'custom'): unknown {
  if (v instanceof Tagged) return { [v.tag]: toJsonValue(v.value, path) };
  if (v instanceof Lit) return toJsonValue(v.value, path);
  if (typeof v === 'bigint') return v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER) ? Number(v) : v;
  if (typeof v === 'number' && !Number.isFinite(v)) fail(path, `${v} is not a JSON number`);
  if (Array.isArray(v)) return v.map((x, i) => toJsonValue(x, `${path}[${i}]`));
  if (typeof v === 'object' && v !== null) {
    if (!(Object.getPrototypeOf(v) === Object.prototype || Object.getPrototypeOf(v) === null)) {
      fail(path, `unsupported value ${String(v)} (dates and other types are not JSON)`);
    }
    const out: Obj = {};
    for (const k of Object.keys(v)) put(out, k, toJsonValue((v as Obj)[k], join(path, k)));
    return out;
  }
  return v;
}
