// Serializes a Manifest the way Northstar's serde does: struct field order, None
// omitted, empty args/env/mounts/sets/maps skipped, mount options as
// "rw,nosuid", console permissions "full" when all 15 are set. Enum variants
// with data are YAML local tags in YAML (`!fifo`, `!namespace`, `!args`) and
// single-key maps in JSON.
//
// u64 values above 2^53 (seccomp values/mask may be up to 2^64-1):
//   - manifestToYaml and manifestToJsonText write them as exact integer literals;
//   - manifestToJson (a value for JSON.stringify) writes them as decimal STRINGS,
//     since a JS number cannot hold them and JSON.stringify refuses bigint.
//     parseManifest accepts such decimal strings for seccomp values and mask, so
//     the JSON form round-trips. Values up to 2^53-1 are plain numbers.
import { Document, isMap, isScalar, isSeq, Scalar, YAMLMap, type Node } from 'yaml';
import { Tagged } from './manifest-document.js';
import { PERMISSIONS } from './manifest-schema.js';
import type { CGroups, Manifest, Mount, SchedPolicy, Seccomp } from './manifest-schema.js';
import { healthTree, restartTree } from './manifest-supervision.js';

type Obj = Record<string, unknown>;

function defined(o: Obj): Obj {
  const out: Obj = {};
  for (const [k, v] of Object.entries(o)) if (v !== undefined) Object.defineProperty(out, k, { value: v, enumerable: true, writable: true, configurable: true });
  return out;
}

const nonEmpty = <T>(a: T[]): T[] | undefined => (a.length > 0 ? a : undefined);
const nonEmptyMap = (o: Obj | undefined): Obj | undefined => (o !== undefined && Object.keys(o).length > 0 ? o : undefined);

function mapValues(o: Obj, fn: (v: never) => unknown): Obj {
  const out: Obj = {};
  for (const k of Object.keys(o)) Object.defineProperty(out, k, { value: fn(o[k] as never), enumerable: true, writable: true, configurable: true });
  return out;
}

function options(o: string[]): string | undefined {
  return o.length > 0 ? o.join(',') : undefined;
}

function mount(m: Mount): Obj {
  switch (m.type) {
    case 'bind':
      return defined({ type: m.type, host: m.host, options: options(m.options) });
    case 'resource':
      return defined({ type: m.type, name: m.name, version: m.version, dir: m.dir, options: options(m.options) });
    case 'tmpfs':
      return { type: m.type, size: m.size };
    default:
      return { type: m.type };
  }
}

function policy(p: SchedPolicy): unknown {
  if (typeof p === 'string') return p;
  const [name, value] = Object.entries(p)[0]!;
  return new Tagged(name, { ...value });
}

function cgroups(c: CGroups): Obj {
  const attrs = (a: Record<string, string>) => nonEmptyMap(a);
  return defined({
    parent: c.parent,
    blkio: c.blkio && defined({
      weight: c.blkio.weight,
      leaf_weight: c.blkio.leaf_weight,
      weight_device: c.blkio.weight_device.map((d) => defined({ ...d })),
      throttle_read_bps_device: c.blkio.throttle_read_bps_device.map((d) => ({ ...d })),
      throttle_read_iops_device: c.blkio.throttle_read_iops_device.map((d) => ({ ...d })),
      throttle_write_bps_device: c.blkio.throttle_write_bps_device.map((d) => ({ ...d })),
      throttle_write_iops_device: c.blkio.throttle_write_iops_device.map((d) => ({ ...d })),
      attrs: attrs(c.blkio.attrs),
    }),
    cpu: c.cpu && defined({ ...c.cpu, attrs: attrs(c.cpu.attrs) }),
    memory: c.memory && defined({
      oom_monitor: c.memory.oom_monitor,
      kernel_memory_limit: c.memory.kernel_memory_limit,
      memory_hard_limit: c.memory.memory_hard_limit,
      memory_soft_limit: c.memory.memory_soft_limit,
      kernel_tcp_memory_limit: c.memory.kernel_tcp_memory_limit,
      memory_swap_limit: c.memory.memory_swap_limit,
      swappiness: c.memory.swappiness,
      attrs: attrs(c.memory.attrs),
    }),
  });
}

function seccomp(s: Seccomp): Obj {
  return defined({
    profile: s.profile,
    allow: s.allow && mapValues(s.allow, (r: Seccomp['allow'] extends Record<string, infer R> | undefined ? R : never) =>
      r === 'any' ? 'any' : new Tagged('args', defined({ index: r.args.index, values: r.args.values && [...r.args.values], mask: r.args.mask }))),
  });
}

/** The serde tree: plain data with Tagged markers for enum variants and bigint for u64 seccomp values. */
export function serdeTree(m: Manifest): Obj {
  const all = m.console !== undefined && PERMISSIONS.every((p) => m.console!.permissions.includes(p));
  return defined({
    name: m.name,
    version: m.version,
    console: m.console && { permissions: all ? 'full' : [...m.console.permissions] },
    init: m.init,
    args: nonEmpty([...m.args]),
    env: nonEmptyMap({ ...m.env }),
    uid: m.uid,
    gid: m.gid,
    sched: m.sched && { policy: policy(m.sched.policy) },
    mounts: nonEmptyMap(mapValues(m.mounts, mount)),
    autostart: m.autostart,
    cgroups: m.cgroups && cgroups(m.cgroups),
    network: m.network === undefined || m.network === 'host' ? m.network : new Tagged('namespace', m.network.namespace),
    seccomp: m.seccomp && seccomp(m.seccomp),
    selinux: m.selinux && defined({ mount_context: m.selinux.mount_context, exec: m.selinux.exec }),
    capabilities: nonEmpty([...m.capabilities]),
    suppl_groups: nonEmpty([...m.suppl_groups]),
    rlimits: nonEmptyMap(mapValues(m.rlimits as Obj, (r: { soft?: number; hard?: number }) => defined({ soft: r.soft, hard: r.hard }))),
    sockets: nonEmptyMap(mapValues(m.sockets, (s: Obj) => defined({ type: s.type, mode: s.mode, uid: s.uid, gid: s.gid, passcred: s.passcred }))),
    io: m.io && { stdout: m.io.stdout, stderr: m.io.stderr },
    custom: m.custom,
    restart: m.restart && restartTree(m.restart),
    health: m.health && healthTree(m.health),
  });
}

/**
 * Strings a YAML 1.1 reader or serde_yaml's scalar resolution could take for a
 * number or bool (0b101, 0x_1f, yes, off, ...) that yaml's 1.2 core schema would
 * write plain: quoted, so every reader sees a string.
 */
const AMBIGUOUS = /^(?:[-+]?(?:0b[01_]+|0o[0-7_]+|0x[0-9a-fA-F_]+|[0-9][0-9_]*(?:\.[0-9_]*)?(?:[eE][-+]?[0-9]+)?|\.(?:inf|Inf|INF))|\.(?:nan|NaN|NAN)|y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF|=|<<)$/;

function yamlNode(doc: Document, v: unknown): unknown {
  if (typeof v === 'string' && AMBIGUOUS.test(v)) {
    const s = new Scalar(v);
    s.type = 'QUOTE_SINGLE';
    return s;
  }
  if (v instanceof Tagged) {
    const inner = yamlNode(doc, v.value);
    const node = (isMap(inner) || isSeq(inner) || isScalar(inner) ? inner : doc.createNode(inner)) as Node;
    node.tag = `!${v.tag}`;
    return node;
  }
  if (Array.isArray(v)) return doc.createNode(v.map((x) => yamlNode(doc, x)));
  if (typeof v === 'object' && v !== null && !isMap(v) && !isSeq(v) && !isScalar(v)) {
    const node = new YAMLMap(doc.schema);
    for (const k of Object.keys(v)) node.set(doc.createNode(k), yamlNode(doc, (v as Obj)[k]));
    return node;
  }
  return doc.createNode(v);
}

/** serde_yaml-style text: block style, sequences not indented under their key, single quotes. */
export function toYaml(m: Manifest): string {
  const doc = new Document(null);
  doc.contents = yamlNode(doc, serdeTree(m)) as Node;
  return doc.toString({ indentSeq: false, singleQuote: true, lineWidth: 0 });
}

function jsonValue(v: unknown, bigintAs: 'string' | 'bigint'): unknown {
  if (v instanceof Tagged) return { [v.tag]: jsonValue(v.value, bigintAs) };
  if (typeof v === 'bigint') {
    const safe = v <= BigInt(Number.MAX_SAFE_INTEGER) && v >= BigInt(Number.MIN_SAFE_INTEGER);
    return safe ? Number(v) : bigintAs === 'string' ? v.toString() : v;
  }
  if (Array.isArray(v)) return v.map((x) => jsonValue(x, bigintAs));
  if (typeof v === 'object' && v !== null) return mapValues(v as Obj, (x: unknown) => jsonValue(x, bigintAs));
  return v;
}

/** The serde JSON shape as a JSON.stringify-able value (u64 above 2^53 as decimal strings). */
export function toJson(m: Manifest): unknown {
  return jsonValue(serdeTree(m), 'string');
}

/** Exact serde_json text: u64 above 2^53 are written as integer literals. */
export function toJsonText(m: Manifest): string {
  const marks = new Map<string, string>();
  const value = jsonValue(serdeTree(m), 'bigint');
  const text = JSON.stringify(value, (_k, x: unknown) => {
    if (typeof x !== 'bigint') return x;
    const mark = `\u0000bigint${marks.size}\u0000`;
    marks.set(mark, x.toString());
    return mark;
  });
  return text.replace(/"\\u0000bigint\d+\\u0000"/g, (s) => marks.get(JSON.parse(s) as string)!);
}
