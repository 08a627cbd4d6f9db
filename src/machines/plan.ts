// Pure decisions of a start (spec/console.md §4.7 "Start", steps 4–6 and
// 15–16): reserved environment keys, the init override, resource resolution
// and the launch spec. Plain data in, plain data (or a RuntimeError) out.
// launch-plan.ts turns a launch spec into the whole start at launch time,
// when the host's facts (mounted resources, fds in hand) are known.
import semver from 'semver';

import { containerId } from '../model/container-id.js';
import { err, errors, ok, type Result, type RuntimeError } from '../model/errors.js';
import type { Manifest } from '../model/manifest.js';
import { child, within } from '../model/safe-path.js';
import type { LaunchSpec, MountInput, VerityInfo, VerityMode } from './contracts.js';

/** What the supervisor knows of an installed container (from its NPK). */
export interface NpkInfo {
  /** A path a worker can open (the file, or /proc/<pid>/fd/<n> of a memfd). */
  path: string;
  manifest: Manifest;
  fsImgOffset: number;
  fsImgSize: number;
  verity?: VerityInfo;
}

export interface Dirs {
  runDir: string;
  dataDir: string;
  socketDir: string;
}

export interface MountConfig {
  runDir: string;
  verity: VerityMode;
  loopDeviceTimeoutMs: number;
}

export const INIT_PLACEHOLDER = '<INIT>';
/** Where named network namespaces live (iproute2's convention, as in Northstar). */
export const NETNS_DIR = '/run/netns';
const RESERVED_ENV = 'NORTHSTAR_';

/** The container id of a manifest ("name:version"), built by the model's containerId. */
export function idOf(m: Manifest): string {
  return containerId(m.name, m.version);
}

/** Where a container's image is mounted: run_dir/<name>:<version>. */
export function runRoot(runDir: string, id: string): string {
  return child(runDir, id, 'container id');
}

/** A container's persistent data (`persist` mounts, wiped by uninstall): data_dir/<name>. */
export function persistPath(dataDir: string, name: string): string {
  return child(dataDir, name, 'container name');
}

/** The mount task's input; `keyed` repositories never mount unverified. */
export function mountInput(npk: NpkInfo, keyed: boolean, cfg: MountConfig): MountInput {
  const id = idOf(npk.manifest);
  const input: MountInput = {
    container: id,
    npkPath: npk.path,
    fsImgOffset: npk.fsImgOffset,
    fsImgSize: npk.fsImgSize,
    target: runRoot(cfg.runDir, id),
    verityMode: cfg.verity,
    loopDeviceTimeoutMs: cfg.loopDeviceTimeoutMs,
  };
  if (keyed && npk.verity) input.verity = npk.verity;
  const ctx = npk.manifest.selinux?.mount_context;
  if (ctx !== undefined) input.selinuxContext = ctx;
  return input;
}

/** Step 4: the start environment may not set NORTHSTAR_* keys. */
export function checkEnvironment(id: string, env: Record<string, string>): RuntimeError | undefined {
  const k = Object.keys(env).find((key) => key.startsWith(RESERVED_ENV));
  if (k === undefined) return undefined;
  void id;
  return errors.invalidArguments(`environment variable ${k} is reserved`);
}

/** Step 5: the init to exec; undefined for a resource without an override. */
export function resolveInit(m: Manifest, override: string | null | undefined): string | undefined {
  if (override === undefined || override === null) return m.init;
  return override.split(INIT_PLACEHOLDER).join(m.init ?? '');
}

/** A resource mount resolved to an installed container. */
export interface ResolvedResource {
  target: string;
  container: string;
  dir: string;
}

/** An installed container as resource resolution sees it. */
export interface Candidate {
  id: string;
  /** From a keyed repository: its signature was checked. */
  keyed: boolean;
}

/**
 * Step 6: every resource mount to the HIGHEST installed version satisfying
 * its requirement (deviation 1: Northstar takes the lowest). A container from
 * a keyed repository takes resources from keyed repositories only (deviation
 * 20): an unsigned image never reaches a signed container's root.
 */
export function resolveResources(
  id: string,
  m: Manifest,
  installed: Iterable<Candidate>,
  keyed = false,
): Result<ResolvedResource[], RuntimeError> {
  const versions = new Map<string, Candidate[]>();
  for (const c of installed) {
    const name = c.id.slice(0, c.id.indexOf(':'));
    versions.set(name, [...(versions.get(name) ?? []), c]);
  }
  const resources: ResolvedResource[] = [];
  for (const [target, mount] of Object.entries(m.mounts).sort(([a], [b]) => a.localeCompare(b))) {
    if (mount.type !== 'resource') continue;
    const all = versions.get(mount.name) ?? [];
    const usable = keyed ? all.filter((c) => c.keyed) : all;
    const version = (c: Candidate) => c.id.slice(c.id.indexOf(':') + 1);
    const best = semver.maxSatisfying(usable.map(version), mount.version);
    if (best === null) {
      const unsigned = all.filter((c) => !c.keyed && semver.satisfies(version(c), mount.version));
      if (keyed && unsigned.length > 0) {
        // The wire error has no field for why; its version text says it, and stays a string as in Northstar.
        const why = `${mount.version} from a keyed repository (unsigned ${unsigned.map((c) => c.id).join(', ')} not used)`;
        return err(errors.missingResource(id, mount.name, why));
      }
      return err(errors.missingResource(id, mount.name, mount.version));
    }
    resources.push({ target, container: `${mount.name}:${best}`, dir: mount.dir });
  }
  return ok(resources);
}

/** Steps 15–16 and the rest of the launch spec. */
export function launchSpec(
  m: Manifest,
  init: string,
  args: string[],
  env: Record<string, string>,
  resources: ResolvedResource[],
  dirs: Dirs,
): LaunchSpec {
  const id = idOf(m);
  // nstar-init opens /run/netns/<name>: one component, as validation at install already made sure.
  if (m.network !== undefined && m.network !== 'host') child(NETNS_DIR, m.network.namespace, 'network namespace name');
  return {
    container: id,
    manifest: m,
    root: runRoot(dirs.runDir, id),
    init,
    args: args.length > 0 ? args : m.args,
    env: {
      ...(Object.keys(env).length > 0 ? env : m.env),
      NORTHSTAR_NAME: m.name,
      NORTHSTAR_VERSION: m.version,
      NORTHSTAR_CONTAINER: id,
    },
    runDir: dirs.runDir,
    dataDir: dirs.dataDir,
    socketDir: dirs.socketDir,
    // The resource's dir stays inside that resource's root (a dir of `/../x` would reach any host path).
    resources: Object.fromEntries(resources.map((r) => [r.target, within(runRoot(dirs.runDir, r.container), r.dir)])),
  };
}

/** Signals a kill request may carry: the standard ones, 1..=31 (Northstar's nix::Signal). */
export function checkSignal(signal: number): RuntimeError | undefined {
  if (Number.isInteger(signal) && signal >= 1 && signal <= 31) return undefined;
  return errors.unexpected(`invalid signal ${signal}`);
}
