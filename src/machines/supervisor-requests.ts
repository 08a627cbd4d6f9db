// The supervisor's request handlers (spec/console.md §4.7): synchronous
// decisions on the supervisor's context. A handler replies at once, forwards
// the request to a container machine, or queues a flow that answers it (mount,
// umount, start) or whose completion (`done`) takes the next step (install,
// uninstall). Nothing here waits or does I/O.
import type { AnyActorRef } from 'xstate';

import { Logger } from '../log.js';
import { errors, type ExitStatus } from '../model/errors.js';
import type { ContainerInput } from './container.js';
import type { ContainerRequest, ContainerStatus } from './container-events.js';
import { checkEnvironment, checkSignal, idOf, launchSpec, mountInput, persistPath, resolveInit, resolveResources, type NpkInfo } from './plan.js';
import { fail, ok, signalName, type Reply } from './reply.js';
import type { ContainerData, Notification, Request } from './requests.js';
import {
  blocker,
  live,
  patch,
  target,
  umountTarget,
  without,
  type ContainerRef,
  type Entry,
  type InstallInput,
  type Pending,
  type ResultsFlowInput,
  type StartFlowInput,
  type SupervisorContext,
  type UninstallInput,
} from './supervisor-state.js';

const log = new Logger('supervisor');

export type FlowName = 'mountFlow' | 'umountFlow' | 'startFlow' | 'install' | 'uninstallFlow';

/** What a handler may do besides replying: all of it is queued on the supervisor. */
export interface Effects {
  /** Starts a flow; with `pending`, its completion takes the next step (`done`), else it answers the request itself. */
  flow(src: FlowName, input: unknown, pending?: Pending): void;
  assign(f: (c: SupervisorContext) => Partial<SupervisorContext>): void;
  send(ref: AnyActorRef, e: ContainerRequest): void;
  /** The supervisor (flows report to it). */
  readonly self: AnyActorRef;
}

export function handle(c: SupervisorContext, r: Request, reply: Reply<unknown>, fx: Effects): void {
  switch (r.type) {
    case 'list':
      return reply(ok(Object.values(c.containers).filter((e) => !e.removing).map((e) => e.id)));
    case 'repositories':
      return reply(ok([...c.repositoryOrder]));
    case 'mount':
      return fx.flow('mountFlow', { targets: r.containers.map((id) => target(c, id)), reply } satisfies ResultsFlowInput);
    case 'umount':
      return fx.flow('umountFlow', { targets: r.containers.map((id) => umountTarget(c, id)), reply } satisfies ResultsFlowInput);
    case 'start':
      return start(c, r, reply, fx);
    case 'install':
      return install(c, r, reply, fx);
    case 'uninstall':
      return uninstall(c, r, reply, fx);
    case 'shutdown':
      return reply(ok(undefined));
    default:
      return forward(c, r, reply, fx);
  }
}

/** Requests a container machine answers itself. */
function forward(
  c: SupervisorContext,
  r: Extract<Request, { container: string }>,
  reply: Reply<unknown>,
  fx: Effects,
): void {
  const entry = live(c, r.container);
  if (!entry) return reply(fail(errors.invalidContainer(r.container)));
  switch (r.type) {
    case 'kill': {
      const bad = checkSignal(r.signal);
      if (bad) return reply(fail(bad));
      log.info(`Killing ${entry.id} with ${signalName(r.signal)}`);
      return fx.send(entry.ref, { type: 'kill', signal: r.signal, reply });
    }
    case 'stop':
      return fx.send(entry.ref, { type: 'stop', graceMs: r.graceMs, reply: reply as Reply<ExitStatus> });
    case 'pause':
    case 'resume':
      return fx.send(entry.ref, { type: r.type, reply });
    case 'exec':
      return fx.send(entry.ref, { type: 'exec', exec: { path: r.path, args: r.args, env: r.env, ...(r.stdio ? { stdio: r.stdio, tty: r.tty } : {}) }, reply: reply as never });
    case 'inspect':
      return fx.send(entry.ref, {
        type: 'inspect',
        categories: r.categories,
        reply: (o) => reply(o.ok ? ok(inspectData(entry, o.value)) : o),
      });
    case 'stats':
      return fx.send(entry.ref, {
        type: 'inspect',
        categories: r.categories,
        reply: (o) => {
          if (!o.ok) return reply(o);
          if (!o.value.process) return reply(fail(errors.notStarted(entry.id)));
          reply(ok(o.value.process.statistics ?? {}));
        },
      });
    default:
      return reply(fail(errors.invalidArguments(`unknown request ${(r as { type: string }).type}`)));
  }
}

/** spec/console.md §4.7 "Start", steps 1–7 (the rest happens in the container machine). */
function start(c: SupervisorContext, r: Extract<Request, { type: 'start' }>, reply: Reply<unknown>, fx: Effects): void {
  const requestedAt = c.now();
  const entry = live(c, r.container);
  if (!entry) return reply(fail(errors.invalidContainer(r.container)));
  if (c.users[entry.id]) return reply(fail(errors.started(entry.id)));
  const other = Object.keys(c.users).find((u) => u !== entry.id && c.containers[u]?.manifest.name === entry.manifest.name);
  if (other) return reply(fail(errors.started(other)));
  const badEnv = checkEnvironment(entry.id, r.environment);
  if (badEnv) return reply(fail(badEnv));
  const init = resolveInit(entry.manifest, r.init);
  if (!init) return reply(fail(errors.isResource(entry.id)));
  const keyed = (e: Entry) => c.repositories.get(e.repository)?.keyed === true;
  const installed = Object.values(c.containers).filter((e) => !e.removing).map((e) => ({ id: e.id, keyed: keyed(e) }));
  const resolved = resolveResources(entry.id, entry.manifest, installed, keyed(entry));
  if (!resolved.ok) {
    log.warn(`${entry.id}: ${resolved.error.message}`);
    return reply(fail(resolved.error));
  }
  let spec;
  try {
    spec = launchSpec(entry.manifest, init, r.arguments, r.environment, resolved.value, c.config);
  } catch (e) {
    // A path that would leave its base (safe-path.ts); validation at install should have refused it.
    return reply(fail(errors.startFailed(entry.id, e instanceof Error ? e.message : String(e), e)));
  }

  const resources = [...new Set(resolved.value.map((x) => x.container))];
  fx.assign((cc) => ({ users: { ...cc.users, [entry.id]: resources } }));
  const input: StartFlowInput = {
    id: entry.id,
    supervisor: fx.self,
    reply: reply as Reply,
    ref: entry.ref,
    resources: resources.map((id) => ({ id, ref: c.containers[id]!.ref })),
    order: { spec, requestedAt },
    now: c.now,
  };
  fx.flow('startFlow', input);
}

function install(c: SupervisorContext, r: Extract<Request, { type: 'install' }>, reply: Reply<unknown>, fx: Effects): void {
  if (!c.repositories.has(r.repository)) return reply(fail(errors.invalidRepository(r.repository)));
  const input: InstallInput = { repository: r.repository, data: r.data };
  if (r.size !== undefined) input.size = r.size;
  fx.flow('install', input, { kind: 'install', repository: r.repository, reply: reply as Reply<string> });
}

/** spec/console.md §4.7 "Uninstall". */
function uninstall(c: SupervisorContext, r: Extract<Request, { type: 'uninstall' }>, reply: Reply<unknown>, fx: Effects): void {
  const entry = live(c, r.container);
  if (!entry) return reply(fail(errors.invalidContainer(r.container)));
  const by = blocker(c, entry.id);
  if (by) return reply(fail(errors.umountBusy(by)));
  fx.assign((cc) => ({ containers: patch(cc.containers, entry.id, { removing: true }) }));
  fx.flow('uninstallFlow', { ref: entry.ref }, { kind: 'uninstall.umount', id: entry.id, wipe: r.wipe, reply: reply as Reply });
}

export type Spawn = (src: 'container', opts: { id: string; input: ContainerInput }) => ContainerRef;

/** What a flow's completion may do: queued on the supervisor. */
export interface Queue {
  assign(f: (c: SupervisorContext, spawn: Spawn) => Partial<SupervisorContext>): void;
  spawn(src: 'uninstall', input: UninstallInput, pending: Pending): void;
  stop(ref: AnyActorRef): void;
  notify(n: Notification): void;
  run(f: () => void): void;
}

/** A flow or I/O actor finished: the next step of its request. */
export function done(c: SupervisorContext, p: Pending, output: unknown, q: Queue): void {
  switch (p.kind) {
    case 'install':
      return installed(c, p, output as NpkInfo, q);
    case 'duplicate':
      return q.run(() => p.reply(fail(errors.installDuplicate(p.id))));
    case 'uninstall.umount': {
      const entry = c.containers[p.id]!;
      const input: UninstallInput = { repository: entry.repository, container: p.id };
      if (p.wipe) input.wipe = persistPath(c.config.dataDir, entry.manifest.name);
      return q.spawn('uninstall', input, { kind: 'uninstall.remove', id: p.id, reply: p.reply });
    }
    case 'uninstall.remove': {
      const entry = c.containers[p.id];
      if (entry) q.stop(entry.ref);
      q.assign((cc) => ({ containers: without(cc.containers, p.id) }));
      q.notify({ type: 'uninstall', container: p.id });
      return q.run(() => p.reply(ok(undefined)));
    }
  }
}

/** An NPK landed in a repository: keep it, unless another repository already has it. */
function installed(c: SupervisorContext, p: Extract<Pending, { kind: 'install' }>, npk: NpkInfo, q: Queue): void {
  const id = idOf(npk.manifest);
  const keyed = c.repositories.get(p.repository)!.keyed;
  const prev = c.containers[id];
  if (prev && prev.repository === p.repository) {
    // Two installs of one NPK into one repository raced past its own check.
    return q.run(() => p.reply(fail(errors.unexpected(`container ${id} is already in repository ${p.repository}`))));
  }
  if (prev) {
    log.warn(`Container ${id} is already installed in ${prev.repository}: removing the copy in ${p.repository}`);
    return q.spawn('uninstall', { repository: p.repository, container: id }, { kind: 'duplicate', id, reply: p.reply });
  }
  q.assign((cc, spawn) => {
    const input: ContainerInput = { id, manifest: npk.manifest, mount: mountInput(npk, keyed, cc.config), now: cc.now };
    const ref = spawn('container', { id, input });
    return { containers: { ...cc.containers, [id]: { id, manifest: npk.manifest, repository: p.repository, ref, removing: false } } };
  });
  q.notify({ type: 'install', container: id });
  q.run(() => p.reply(ok(id)));
}

function inspectData(e: Entry, s: ContainerStatus): ContainerData {
  const data: ContainerData = {
    container: e.id,
    manifest: e.manifest,
    repository: e.repository,
    mounted: s.mounted,
    process: s.process,
    state: s.state,
  };
  if (s.startup) data.startup = s.startup;
  if (s.restarts) data.restarts = s.restarts;
  if (s.health !== undefined) data.health = s.health;
  return data;
}

