// The supervisor's data: its configuration, what it knows of each installed
// container, and the requests waiting for a flow. Types and pure helpers only.
import type { ActorRefFrom, AnyActorRef } from 'xstate';

import type { Config } from '../model/config.js';
import { errors, type RuntimeError } from '../model/errors.js';
import type { Manifest } from '../model/manifest.js';
import type { containerMachine } from './container.js';
import type { ContainerReport, ContainerRequest } from './container-events.js';
import type { Dirs, MountConfig, NpkInfo } from './plan.js';
import type { Reply } from './reply.js';
import type { ContainerResult, RequestEvent } from './requests.js';

export interface SupervisorConfig extends Dirs, MountConfig {
  /** Repositories whose containers are mounted at start (`mount_on_start`). */
  mountOnStart: string[];
  /** At shutdown, SIGTERM and this grace before SIGKILL (absent or 0: SIGKILL at once). */
  shutdownGraceMs?: number;
}

/** The supervisor's part of the runtime configuration. */
export function supervisorConfig(config: Config): SupervisorConfig {
  return {
    runDir: config.runDir,
    dataDir: config.dataDir,
    socketDir: config.socketDir,
    verity: config.verity,
    loopDeviceTimeoutMs: config.loopDeviceTimeoutMs,
    shutdownGraceMs: config.shutdownGraceMs,
    mountOnStart: Object.entries(config.repositories)
      .filter(([, r]) => r.mountOnStart)
      .map(([id]) => id),
  };
}

/**
 * A repository as the supervisor knows it: plain data, named by id. Reading
 * and changing it is I/O, the runtime's: the install and uninstall actors.
 */
export interface RepositoryInfo {
  id: string;
  /** It has a key: its NPKs were signature-checked, and their verity data is used at mount. */
  keyed: boolean;
}

/** A repository as the runtime loaded it: what it holds, in its order. */
export interface RepositoryContents extends RepositoryInfo {
  npks: NpkInfo[];
}

export interface SupervisorInput {
  /** Loaded; the order is their precedence. */
  repositories: RepositoryContents[];
  config: SupervisorConfig;
  /** Monotonic ms (startup phases, uptime); defaults to performance.now(). */
  now?: () => number;
}

export type ContainerRef = ActorRefFrom<typeof containerMachine>;

export interface Entry {
  id: string;
  manifest: Manifest;
  repository: string;
  ref: ContainerRef;
  /** An uninstall is under way: the container is gone for every request. */
  removing: boolean;
}

/**
 * A request whose next step comes when its I/O actor or flow is done (by the
 * actor's id): install and uninstall. The other flows answer themselves.
 */
export type Pending =
  | { kind: 'install'; repository: string; reply: Reply<string> }
  | { kind: 'duplicate'; id: string; reply: Reply<string> }
  | { kind: 'uninstall.umount'; id: string; wipe: boolean; reply: Reply }
  | { kind: 'uninstall.remove'; id: string; reply: Reply };

export interface SupervisorContext {
  config: SupervisorConfig;
  now: () => number;
  /** By id; a Map, because ids come from clients (`__proto__` is an id like any other). */
  repositories: ReadonlyMap<string, RepositoryInfo>;
  repositoryOrder: string[];
  containers: Record<string, Entry>;
  /** Started and starting containers → the resources they use. */
  users: Record<string, string[]>;
  /** By the id of the flow or I/O actor serving the request (see flowId). */
  pending: Record<string, Pending>;
  /** Why the runtime shuts down, when it is an error. */
  error?: RuntimeError;
}

/** A start flow failed: its container no longer uses its resources (sent before the flow answers). */
export interface StartFailed {
  type: 'start.failed';
  id: string;
  error: RuntimeError;
}

export type SupervisorEvent = RequestEvent | ContainerReport | StartFailed;

export interface SupervisorOutput {
  error?: RuntimeError;
}

/** Inputs of the flow actors. */
export interface Target {
  container: string;
  ref?: AnyActorRef;
  error?: RuntimeError;
}
export interface ResultsFlowInput {
  targets: Target[];
  reply: Reply<ContainerResult[]>;
}
export interface StartFlowInput {
  id: string;
  /** Told of a failure before the reply is. */
  supervisor: AnyActorRef;
  reply: Reply;
  ref: AnyActorRef;
  resources: { id: string; ref: AnyActorRef }[];
  order: Omit<Extract<ContainerRequest, { type: 'start' }>, 'reply' | 'type'>;
  now: () => number;
}
export interface InstallInput {
  /** The repository's id. */
  repository: string;
  data: AsyncIterable<Buffer | Uint8Array>;
  size?: number;
}
export interface UninstallInput {
  /** The repository's id. */
  repository: string;
  container: string;
  /** Remove this persistent data directory too (a failure only logs). */
  wipe?: string;
}

/**
 * The id of a new flow: the lowest `<src>#<n>` not among the supervisor's
 * children. XState memoizes a state node's transitions per event type, and a
 * flow's done event carries its id (`xstate.done.actor.<id>`): ids from an
 * ever-growing counter grew that cache by a few entries with every request,
 * for the life of the daemon. Reused ids keep it as small as the most flows
 * ever running at once. `children` are those of the snapshot before the step:
 * a step that stops a flow still sees it, so it never reuses an id it stops;
 * a step spawns at most one flow.
 */
export function flowId(children: Record<string, unknown>, src: string): string {
  for (let n = 0; ; n++) {
    const id = `${src}#${n}`;
    if (!Object.hasOwn(children, id)) return id;
  }
}

/** A flow's id (flowId's `<src>#<n>`), not a container machine's (`<name>:<version>`). */
export function isFlowId(id: string): boolean {
  return /^[A-Za-z]+#\d+$/.test(id);
}

/** The container, unless it is being uninstalled. */
export function live(c: SupervisorContext, id: string): Entry | undefined {
  const e = Object.hasOwn(c.containers, id) ? c.containers[id] : undefined;
  return e && !e.removing ? e : undefined;
}

/** A request's view of a container: its machine, or invalid_container. */
export function target(c: SupervisorContext, id: string): Target {
  const e = live(c, id);
  return e ? { container: id, ref: e.ref } : { container: id, error: errors.invalidContainer(id) };
}

/** Who keeps `id` from being unmounted: itself when started, else a started user of it. */
export function blocker(c: SupervisorContext, id: string): string | undefined {
  if (c.users[id]) return id;
  return Object.entries(c.users).find(([, resources]) => resources.includes(id))?.[0];
}

export function umountTarget(c: SupervisorContext, id: string): Target {
  const t = target(c, id);
  const by = t.ref ? blocker(c, id) : undefined;
  return by ? { container: id, error: errors.umountBusy(by) } : t;
}

export function without<T>(map: Record<string, T>, key: string): Record<string, T> {
  const { [key]: _, ...rest } = map;
  return rest;
}

export function patch(map: Record<string, Entry>, key: string, fields: Partial<Entry>): Record<string, Entry> {
  const e = map[key];
  return e ? { ...map, [key]: { ...e, ...fields } } : map;
}
