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
// CONTRACT (shared by every module): the types (in manifest-schema.ts, re-exported
// here) and the exported function signatures below.

export { CAPABILITIES, LIMITS, ManifestError, MOUNT_OPTIONS, PERMISSIONS, RESERVED_ENV, RLIMIT_RESOURCES } from './manifest-schema.js';
export type {
  Permission, MountOption, Mount, SchedPolicy, Output, SeccompArgs, SeccompRule, Seccomp, MemoryCgroup, CpuCgroup, BlkioWeightDevice, BlkioThrottleDevice, BlkioCgroup, CGroups, RlimitResource, Rlimit, SocketType, Socket, Manifest,
  HealthCheck, RestartPolicy, RestartPolicyName,
} from './manifest-schema.js';
import { ManifestError, type Manifest, type SchedPolicy } from './manifest-schema.js';
import { readDocument } from './manifest-document.js';
import { decodeManifest } from './manifest-decode.js';
import { validate } from './manifest-validate.js';
import { toJson, toJsonText, toYaml } from './manifest-serialize.js';

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

/** Whether a sched policy is real-time (needs an RT budget under CONFIG_RT_GROUP_SCHED). */
export function isRealtime(policy: SchedPolicy | undefined): boolean {
  return typeof policy === 'object' && ('fifo' in policy || 'round_robin' in policy);
}
