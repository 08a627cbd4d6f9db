// The Northstar 0.9 manifest (spec/manifest.md). The TypeScript shape below IS
// the serde JSON shape (what `inspect` returns on the wire), normalized:
// defaults filled in (args [], env {}, mounts {}, ...). YAML serialization
// (manifest.yaml inside NPKs) is produced from it by manifestToYaml.
//
// CONTRACT (shared by every module): the types and the exported function
// signatures below. Implementation: the model issue.

export const PERMISSIONS = [
  'ident', 'inspect', 'install', 'kill', 'list', 'notifications', 'mount', 'repositories',
  'shutdown', 'start', 'start_command', 'token_create', 'token_verification', 'umount', 'uninstall',
] as const;
export type Permission = (typeof PERMISSIONS)[number];

export type MountOption = 'rw' | 'noexec' | 'nosuid' | 'nodev' | 'rec';

export type Mount =
  | { type: 'bind'; host: string; options: MountOption[] }
  | { type: 'dev' }
  | { type: 'persist' }
  | { type: 'proc' }
  | { type: 'sysfs' }
  | { type: 'sockets' }
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

export const RLIMIT_RESOURCES = [
  'as', 'core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile',
  'nproc', 'rss', 'rtprio', 'rttime', 'sigpending', 'stack',
] as const;
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
}

/** A manifest that failed to parse or validate; the message names the field and the rule. */
export class ManifestError extends Error {
  override name = 'ManifestError';
}

/** Parses YAML, then JSON, then TOML (Northstar's order), then validates. Throws ManifestError. */
export declare function parseManifest(text: string): Manifest;
/** Validates a manifest object; throws ManifestError naming the first problem. */
export declare function validateManifest(m: Manifest): void;
/** Northstar's serde_yaml shape: None omitted, empty maps/sets skipped, options "rw,nosuid", YAML tags for sched/network/seccomp args. */
export declare function manifestToYaml(m: Manifest): string;
/** The serde JSON shape (as `inspect` returns it): None omitted, empty maps/sets skipped, permissions "full" when all 15. */
export declare function manifestToJson(m: Manifest): unknown;
/** True for a resource container (no init). */
export declare function isResource(m: Manifest): boolean;
