// The manifest's types, its fixed vocabularies (spec/manifest.md) and its error
// type. Kept apart from manifest.ts so the decoder, validator and serializer can
// share them without an import cycle; manifest.ts re-exports everything here.

export const PERMISSIONS = [
  'ident', 'inspect', 'install', 'kill', 'list', 'notifications', 'mount', 'repositories',
  'shutdown', 'start', 'start_command', 'token_create', 'token_verification', 'umount', 'uninstall',
] as const;

export const RLIMIT_RESOURCES = [
  'as', 'core', 'cpu', 'data', 'fsize', 'locks', 'memlock', 'msgqueue', 'nice', 'nofile',
  'nproc', 'rss', 'rtprio', 'rttime', 'sigpending', 'stack',
] as const;

/** Serialization order of mount options ("rw,noexec,nosuid,nodev,rec"). */
export const MOUNT_OPTIONS = ['rw', 'noexec', 'nosuid', 'nodev', 'rec'] as const;

/** Northstar's 41 capability names. Note CAP_MKNOD (not CAP_SYS_MKNOD). */
export const CAPABILITIES = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL',
  'CAP_SETGID', 'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST', 'CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER',
  'CAP_SYS_MODULE', 'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE', 'CAP_SYS_PACCT',
  'CAP_SYS_ADMIN', 'CAP_SYS_BOOT', 'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME',
  'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE', 'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL',
  'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG', 'CAP_WAKE_ALARM',
  'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
] as const;

/** Set by the runtime; a manifest must not define them. */
export const RESERVED_ENV = ['NORTHSTAR_NAME', 'NORTHSTAR_VERSION', 'NORTHSTAR_CONTAINER', 'NORTHSTAR_CONSOLE'] as const;

/** Limits of Northstar's validation.rs. Lengths of env keys/values and groups are in bytes (Rust `len()`). */
export const LIMITS = {
  initLength: 4096,
  envEntries: 64,
  envKeyLength: 64,
  envValueLength: 1024,
  supplGroups: 64,
  supplGroupLength: 64,
  netnsLength: 256,
  seccompArgIndex: 5,
  seccompArgValues: 50,
  /** XATTR_SIZE_MAX: a context must be shorter than this. */
  selinuxContextLength: 65536,
} as const;

/** A manifest that failed to parse or validate; the message names the field and the rule. */
export class ManifestError extends Error {
  override name = 'ManifestError';

  /** Dotted path of the offending field ("mounts./data.options"); '' for the whole document. */
  readonly field: string;
  /** The rule that was broken. */
  readonly rule: string;

  /** `new ManifestError(field, rule)`; `new ManifestError(message)` keeps plain Error usage working. */
  constructor(field: string, rule?: string) {
    super(rule === undefined ? field : field === '' ? rule : `${field}: ${rule}`);
    this.field = rule === undefined ? '' : field;
    this.rule = rule ?? field;
  }
}

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

export type RestartPolicyName = 'no' | 'on-failure' | 'always';

/** All durations in milliseconds. */
export interface RestartPolicy {
  policy: RestartPolicyName;
  /** Restarts allowed within `within` ms; one more failure and the container stays down. */
  max_restarts: number;
  within: number;
  backoff: { initial: number; max: number; factor: number };
  /** SIGTERM → SIGKILL grace when an unhealthy container is stopped for a restart. */
  stop_grace: number;
}

export interface HealthCheck {
  /** The check's argv inside the container: an absolute path, then its arguments. */
  exec: string[];
  interval: number;
  timeout: number;
  /** Failures in a row that make the container unhealthy. */
  retries: number;
  /** No check runs during this time after the start. */
  start_period: number;
}
