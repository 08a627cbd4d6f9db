// The fixed vocabularies of the manifest (spec/manifest.md) and its error type.
// Kept apart from manifest.ts so the decoder, validator and serializer can share
// them without an import cycle; manifest.ts re-exports everything here.

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
