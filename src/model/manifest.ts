// The Northstar 0.9 manifest (spec/manifest.md). The TypeScript shape below is
// close to the serde JSON shape, normalized for code: defaults filled in (args [],
// env {}, mounts {}, ...), mount options and console permissions as arrays in a
// fixed order, u64 seccomp values as bigint, resource requirements in canonical
// Rust-semver form. manifestToJson gives the exact wire shape ("rw,nosuid",
// permissions "full"), manifestToYaml what manifest.yaml inside an NPK holds.
//
// Pipeline: manifest-document.ts (YAML, then JSON, then TOML into a value tree)
// → manifest-decode.ts (serde's type rules) → manifest-validate.ts (validation.rs)
// → manifest-serialize.ts (serde_yaml / serde_json shapes).
//
// CONTRACT (shared by every module): the types and the exported function
// signatures below.

export { CAPABILITIES, LIMITS, ManifestError, MOUNT_OPTIONS, PERMISSIONS, RESERVED_ENV, RLIMIT_RESOURCES } from './manifest-schema.js';
import { ManifestError, PERMISSIONS, RLIMIT_RESOURCES } from './manifest-schema.js';
import { readDocument } from './manifest-document.js';
import { decodeManifest } from './manifest-decode.js';
import { validate } from './manifest-validate.js';
import { toJson, toJsonText, toYaml } from './manifest-serialize.js';
import type { HealthCheck, RestartPolicy } from './manifest-supervision.js';

export type { HealthCheck, RestartPolicy, RestartPolicyName } from './manifest-supervision.js';

export type Permission = (typeof PERMISSIONS)[number];

export type MountOption = 'rw' | 'noexec' | 'nosuid' | 'nodev' | 'rec';

export type Mount =
  | { type: 'bind'; host: string; options: MountOption[] }
  | { type: 'dev' }
  | { type: 'persist' }
  | { type: 'proc' }
  | { type: 'sysfs' }
  | { type: 'sockets' }
  /** version: a Rust-semver requirement in canonical form ("^1.2.3", ">=0.0.1, <1.0.0"); match it with version-req.ts. */
  | { type: 'resource'; name: string; version: string; dir: string; options: MountOption[] }
  | { type: 'tmpfs'; size: number };

/** serde externally tagged: unit variants are strings. */
export type SchedPolicy =
  | { other: { nice: number } }
  | { fifo: { priority: number } }
  | { round_robin: { priority: number } }
  | { batch: { nice: number } }
  | 'idle'
  | 'deadline';

export type Output = 'discard' | 'pipe' | 'inherit';

/** seccomp arg rule; values and mask are u64 and may exceed 2^53, hence bigint. */
export interface SeccompArgs {
  index: number;
  values?: bigint[];
  mask?: bigint;
}
export type SeccompRule = 'any' | { args: SeccompArgs };

export interface Seccomp {
  profile?: 'default';
  allow?: Record<string, SeccompRule>;
}

export interface MemoryCgroup {
  oom_monitor: boolean;
  kernel_memory_limit?: number;
  memory_hard_limit?: number;
  memory_soft_limit?: number;
  kernel_tcp_memory_limit?: number;
  memory_swap_limit?: number;
  swappiness?: number;
  attrs: Record<string, string>;
}

export interface CpuCgroup {
  cpus?: string;
  mems?: string;
  shares?: number;
  quota?: number;
  period?: number;
  realtime_runtime?: number;
  realtime_period?: number;
  attrs: Record<string, string>;
}

export interface BlkioWeightDevice { major: number; minor: number; weight?: number; leaf_weight?: number }
export interface BlkioThrottleDevice { major: number; minor: number; rate: number }

export interface BlkioCgroup {
  weight?: number;
  leaf_weight?: number;
  weight_device: BlkioWeightDevice[];
  throttle_read_bps_device: BlkioThrottleDevice[];
  throttle_read_iops_device: BlkioThrottleDevice[];
  throttle_write_bps_device: BlkioThrottleDevice[];
  throttle_write_iops_device: BlkioThrottleDevice[];
  attrs: Record<string, string>;
}

export interface CGroups {
  parent?: string;
  memory?: MemoryCgroup;
  cpu?: CpuCgroup;
  blkio?: BlkioCgroup;
}

export type RlimitResource = (typeof RLIMIT_RESOURCES)[number];
/** A missing soft/hard means RLIM_INFINITY. */
export interface Rlimit { soft?: number; hard?: number }

export type SocketType = 'stream' | 'datagram' | 'seq_packet';
export interface Socket {
  type: SocketType;
  mode: number;
  uid?: number;
  gid?: number;
  passcred?: boolean;
}

export interface Manifest {
  name: string;
  /** Normalized "major.minor.patch". */
  version: string;
  console?: { permissions: Permission[] };
  /** Absent: a resource container. */
  init?: string;
  args: string[];
  env: Record<string, string>;
  uid: number;
  gid: number;
  sched?: { policy: SchedPolicy };
  /** Keyed by absolute target path. */
  mounts: Record<string, Mount>;
  autostart?: 'relaxed' | 'critical';
  cgroups?: CGroups;
  network?: 'host' | { namespace: string };
  seccomp?: Seccomp;
  selinux?: { mount_context?: string; exec?: string };
  capabilities: string[];
  suppl_groups: string[];
  rlimits: Partial<Record<RlimitResource, Rlimit>>;
  sockets: Record<string, Socket>;
  io?: { stdout: Output; stderr: Output };
  custom?: unknown;
  /** Ours, not Northstar's: restart policy (manifest-supervision.ts). */
  restart?: RestartPolicy;
  /** Ours, not Northstar's: health check run inside the container. */
  health?: HealthCheck;
}

/** Parses YAML, then JSON, then TOML (Northstar's order), then validates. Throws ManifestError. */
export function parseManifest(text: string): Manifest {
  const { value } = readDocument(text);
  const m = decodeManifest(value);
  validate(m);
  return m;
}

/** Validates a manifest object; throws ManifestError naming the first problem. */
export function validateManifest(m: Manifest): void {
  validate(m);
}

/**
 * Northstar's serde_yaml shape: None omitted, empty maps/sets skipped, options "rw,nosuid",
 * YAML tags for sched/network/seccomp args. parseManifest(manifestToYaml(m)) deep-equals m.
 */
export function manifestToYaml(m: Manifest): string {
  return toYaml(m);
}

/**
 * The serde JSON shape (as `inspect` returns it): None omitted, empty maps/sets skipped,
 * permissions "full" when all 15. A value for JSON.stringify: u64 seccomp values and masks
 * above 2^53-1 are decimal strings (parseManifest reads them back); use manifestToJsonText
 * for serde_json's exact text with integer literals.
 */
export function manifestToJson(m: Manifest): unknown {
  return toJson(m);
}

/** serde_json text of the manifest, exact for every u64. */
export function manifestToJsonText(m: Manifest): string {
  return toJsonText(m);
}

/** True for a resource container (no init). */
export function isResource(m: Manifest): boolean {
  return m.init === undefined;
}

/** Narrows an unknown error to a ManifestError. */
export function isManifestError(e: unknown): e is ManifestError {
  return e instanceof ManifestError;
}
