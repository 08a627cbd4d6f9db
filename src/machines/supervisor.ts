// The supervisor: owns the repositories and one container machine per
// installed container, and gives every console request Northstar's semantics
// (spec/console.md §4.7, spec/launch.md §5.8, deviations 1 and 8).
//
// ## API (what the runtime drives)
//
//   const sup = createSupervisor({
//     repositories,          // Repository[] (src/actors/repository*.ts), loaded; order = precedence
//     config,                // SupervisorConfig: runDir, dataDir, socketDir, verity,
//                            //   loopDeviceTimeoutMs, mountOnStart (repository ids)
//     actors: makeActors(io),// src/actors/machine-actors.ts: mount, umount, process, cgroups, install, uninstall
//     inspect?,              // XState inspection observer (the state-chart inspector)
//     clock?,                // SimulatedClock in tests
//   });
//   sup.on('notification', ({ notification }) => …)   // the one subscription point (wire shapes)
//   sup.start();                                       // boots: mount_on_start, then autostart
//   await whenReady(sup);                              // "Runtime up and running" (rejects if boot failed)
//   const list = await request(sup, { type: 'list' }); // any Request of requests.ts; rejects with RuntimeError
//   sup.send({ type: 'request', request, reply })      // the same, with a one-shot reply callback
//   const { error } = await whenDone(sup);             // after shutdown (request, critical exit, failed boot)
//
// The runtime asks for shutdown with `request(sup, {type:'shutdown'})` (also on
// SIGTERM). Shutdown: refuse new requests and starts, SIGKILL every started
// container and wait for the exits, umount users before resources, emit the
// `shutdown` notification (deviation 6), then the actor is done; its output
// carries the error that caused it (critical_container, or a failed critical
// autostart), if any.
//
// Decisions are synchronous (request handlers below, plan.ts); waiting is done
// by small flow actors that only message container machines; I/O is in the
// container machines' actors and in `install` / `uninstall`, all provided.
import {
  createActor,
  emit,
  enqueueActions,
  fromPromise,
  setup,
  toPromise,
  waitFor,
  type ActorRefFrom,
  type AnyActorLogic,
  type AnyActorRef,
  type ActorOptions,
  type InspectionEvent,
  type Observer,
} from 'xstate';

import { join } from 'node:path';

import { Logger } from '../log.js';
import { errors, exitSuccess, type ExitStatus, type RuntimeError } from '../model/errors.js';
import type { Manifest } from '../model/manifest.js';
import type { Repository } from '../actors/repository.js';
import { containerMachine, type ContainerInput } from './container.js';
import type { ContainerReport, ContainerRequest, ContainerStatus } from './container-events.js';
import {
  checkEnvironment,
  checkSignal,
  idOf,
  launchSpec,
  mountInput,
  resolveInit,
  resolveResources,
  type Dirs,
  type MountConfig,
  type NpkInfo,
} from './plan.js';
import { ask, deferred, fail, ok, once, toRuntimeError, type Reply } from './reply.js';
import type { ContainerData, ContainerResult, Notification, NotificationEvent, Request, RequestEvent, ResponseOf } from './requests.js';

const log = new Logger('supervisor');

export interface SupervisorConfig extends Dirs, MountConfig {
  /** Repositories whose containers are mounted at start (`mount_on_start`). */
  mountOnStart: string[];
}

export interface SupervisorInput {
  repositories: Repository[];
  config: SupervisorConfig;
  /** Monotonic ms (startup phases, uptime); defaults to performance.now(). */
  now?: () => number;
}

type ContainerRef = ActorRefFrom<typeof containerMachine>;

interface Entry {
  id: string;
  manifest: Manifest;
  repository: string;
  ref: ContainerRef;
  /** An uninstall is under way: the container is gone for every request. */
  removing: boolean;
}

/** A request waiting for a flow or I/O actor (by the actor's id). */
type Pending =
  | { kind: 'results'; reply: Reply<ContainerResult[]> }
  | { kind: 'start'; id: string; reply: Reply }
  | { kind: 'install'; repository: string; reply: Reply<string> }
  | { kind: 'duplicate'; id: string; reply: Reply<string> }
  | { kind: 'uninstall.umount'; id: string; wipe: boolean; reply: Reply }
  | { kind: 'uninstall.remove'; id: string; reply: Reply };

export interface SupervisorContext {
  config: SupervisorConfig;
  now: () => number;
  repositories: Record<string, Repository>;
  repositoryOrder: string[];
  containers: Record<string, Entry>;
  /** Started and starting containers → the resources they use. */
  users: Record<string, string[]>;
  pending: Record<string, Pending>;
  seq: number;
  /** Why the runtime shuts down, when it is an error. */
  error?: RuntimeError;
}

type SupervisorEvent = RequestEvent | ContainerReport;

export interface SupervisorOutput {
  error?: RuntimeError;
}

/** Inputs of the flow actors. */
interface Target {
  container: string;
  ref?: AnyActorRef;
  error?: RuntimeError;
}
interface StartFlowInput {
  id: string;
  ref: AnyActorRef;
  resources: { id: string; ref: AnyActorRef }[];
  order: Omit<Extract<ContainerRequest, { type: 'start' }>, 'reply' | 'type'>;
  now: () => number;
}
export interface InstallInput {
  repository: Repository;
  data: AsyncIterable<Buffer | Uint8Array>;
  size?: number;
}
export interface UninstallInput {
  repository: Repository;
  container: string;
  /** Remove this persistent data directory too (a failure only logs). */
  wipe?: string;
}

function notProvided(name: string): never {
  throw errors.unexpected(`the ${name} actor was not provided`);
}

async function results(targets: Target[], make: (reply: Reply) => ContainerRequest): Promise<ContainerResult[]> {
  return Promise.all(
    targets.map(async ({ container, ref, error }): Promise<ContainerResult> => {
      if (error || !ref) return { container, ok: false, error: error ?? errors.invalidContainer(container) };
      try {
        await ask(ref, make);
        return { container, ok: true };
      } catch (e) {
        return { container, ok: false, error: toRuntimeError(e) };
      }
    }),
  );
}

export const supervisorMachine = setup({
  types: {} as {
    context: SupervisorContext;
    events: SupervisorEvent;
    input: SupervisorInput;
    output: SupervisorOutput;
    emitted: NotificationEvent;
  },
  actors: {
    container: containerMachine,
    /** Streams an NPK into a repository (I/O). */
    install: fromPromise<NpkInfo, InstallInput>(async () => notProvided('install')),
    /** Removes a container from its repository, and wipes its data when asked (I/O). */
    uninstall: fromPromise<void, UninstallInput>(async () => notProvided('uninstall')),
    mountFlow: fromPromise<ContainerResult[], Target[]>(({ input }) =>
      results(input, (reply) => ({ type: 'mount', reply })),
    ),
    umountFlow: fromPromise<ContainerResult[], Target[]>(({ input }) =>
      results(input, (reply) => ({ type: 'umount', reply })),
    ),
    startFlow: fromPromise<void, StartFlowInput>(async ({ input }) => {
      await Promise.all(
        input.resources.map(({ id, ref }) =>
          ask(ref, (reply) => ({ type: 'mount', ensure: true, reply })).catch((e: unknown) => {
            throw errors.startFailed(input.id, `resource ${id} failed to mount: ${toRuntimeError(e).message}`, e);
          }),
        ),
      );
      const resolveMs = input.now() - (input.order.requestedAt ?? input.now());
      await ask(input.ref, (reply) => ({ type: 'start', ...input.order, resolveMs, reply }));
    }),
    uninstallFlow: fromPromise<void, { ref: AnyActorRef }>(async ({ input }) => {
      const s = input.ref.getSnapshot() as { hasTag(t: string): boolean };
      if (s.hasTag('mounted')) await ask(input.ref, (reply) => ({ type: 'umount', reply }));
    }),
    boot: fromPromise<void, { self: AnyActorRef; mountOnStart: { id: string; ref: AnyActorRef }[]; autostart: Entry[] }>(
      async ({ input }) => {
        await Promise.all(
          input.mountOnStart.map(({ id, ref }) =>
            ask(ref, (reply) => ({ type: 'mount', ensure: true, reply })).catch((e: unknown) =>
              log.warn(`Failed to mount ${id}: ${toRuntimeError(e).message}`),
            ),
          ),
        );
        for (const e of input.autostart) {
          const request: Request = { type: 'start', container: e.id, arguments: [], environment: {} };
          try {
            await ask(input.self, (reply) => ({ type: 'request', request, reply }));
          } catch (err) {
            if (e.manifest.autostart === 'critical') throw err;
            log.warn(`Failed to autostart relaxed container ${e.id}: ${toRuntimeError(err).message}`);
          }
        }
      },
    ),
    shutdown: fromPromise<void, { entries: { id: string; ref: AnyActorRef; resource: boolean }[] }>(async ({ input }) => {
      const settle = (what: string, id: string) => (e: unknown) => log.warn(`${what} ${id}: ${toRuntimeError(e).message}`);
      await Promise.all(input.entries.map(({ id, ref }) => ask(ref, (reply) => ({ type: 'halt', reply })).catch(settle('Stopping', id))));
      // Users before the resources they bind.
      for (const resources of [false, true]) {
        const group = input.entries.filter((e) => e.resource === resources && (e.ref.getSnapshot() as { matches(s: string): boolean }).matches('mounted'));
        await Promise.all(group.map(({ id, ref }) => ask(ref, (reply) => ({ type: 'umount', reply })).catch(settle('Unmounting', id))));
      }
    }),
  },
  guards: {
    isShutdownRequest: ({ event }) => event.type === 'request' && event.request.type === 'shutdown',
    criticalFailure: ({ context, event }) => {
      if (event.type !== 'container.exit') return false;
      const entry = context.containers[event.id];
      return entry?.manifest.autostart === 'critical' && !exitSuccess(event.status);
    },
  },
  actions: {
    answerOk: ({ event }) => (event as RequestEvent).reply(ok(undefined as never)),
    answerShuttingDown: ({ event }) =>
      (event as RequestEvent).reply(fail(errors.unexpected('the runtime is shutting down'))),
    handleRequest: enqueueActions(({ context, event, enqueue, self }) => {
      const { request, reply } = event as RequestEvent;
      const fx: Effects = {
        flow(src, input, pending) {
          const id = `${src}#${context.seq}`;
          enqueue.assign(({ context: c }) => ({ seq: c.seq + 1, pending: { ...c.pending, [id]: pending } }));
          enqueue.spawnChild(src as 'mountFlow', { id, input: input as never });
        },
        assign(f) {
          enqueue.assign(({ context: c }) => f(c));
        },
        send(ref, e) {
          enqueue.sendTo(ref, e);
        },
      };
      handle(context, request, once(reply as Reply<unknown>, request.type), fx, self);
    }),
    flowDone: enqueueActions(({ context, event, enqueue }) => {
      const id = event.type.slice('xstate.done.actor.'.length);
      const p = context.pending[id];
      if (!p) return;
      enqueue.assign(({ context: c }) => ({ pending: without(c.pending, id) }));
      enqueue.stopChild(id);
      const q: Queue = {
        assign: (f) => enqueue.assign(({ context: c, spawn }) => f(c, spawn as Spawn)),
        spawn: (src, input, pending) => {
          const rid = `${src}#${context.seq}`;
          enqueue.assign(({ context: c }) => ({ seq: c.seq + 1, pending: { ...c.pending, [rid]: pending } }));
          enqueue.spawnChild(src, { id: rid, input });
        },
        stop: (ref) => enqueue.stopChild(ref),
        notify: (notification) => enqueue.emit({ type: 'notification', notification }),
        run: (f) => enqueue(f),
      };
      done(context, p, (event as unknown as { output: unknown }).output, q);
    }),
    flowFailed: enqueueActions(({ context, event, enqueue }) => {
      const id = event.type.slice('xstate.error.actor.'.length);
      const p = context.pending[id];
      if (!p) return;
      enqueue.assign(({ context: c }) => ({ pending: without(c.pending, id) }));
      enqueue.stopChild(id);
      const error = toRuntimeError((event as unknown as { error: unknown }).error);
      if (p.kind === 'start') enqueue.assign(({ context: c }) => ({ users: without(c.users, p.id) }));
      if (p.kind === 'uninstall.umount' || p.kind === 'uninstall.remove') {
        enqueue.assign(({ context: c }) => ({ containers: patch(c.containers, p.id, { removing: false }) }));
      }
      if (p.kind === 'duplicate') {
        log.warn(`Removing the duplicate ${p.id} failed: ${error.message}`);
        return p.reply(fail(errors.installDuplicate(p.id)));
      }
      p.reply(fail(error));
    }),
    containerStarted: emit(({ event }) => ({
      type: 'notification' as const,
      notification: { started: (event as Extract<ContainerReport, { type: 'container.started' }>).id },
    })),
    containerExited: enqueueActions(({ event, enqueue }) => {
      const e = event as Extract<ContainerReport, { type: 'container.exit' }>;
      log.info(`Process ${e.id} exited with status ${statusText(e.status)}`);
      enqueue.assign(({ context: c }) => ({ users: without(c.users, e.id) }));
      enqueue.emit({ type: 'notification', notification: { exit: [e.id, e.status] } });
    }),
    containerOom: enqueueActions(({ event, enqueue }) => {
      const e = event as Extract<ContainerReport, { type: 'container.oom' }>;
      log.warn(`Process ${e.id} is out of memory`);
      enqueue.emit({ type: 'notification', notification: { c_group: [e.id, { memory: e.memory }] } });
    }),
    recordCritical: enqueueActions(({ event, enqueue }) => {
      const e = event as Extract<ContainerReport, { type: 'container.exit' }>;
      log.error(`Critical container ${e.id} exited with ${statusText(e.status)}: shutting down`);
      enqueue.assign({ error: errors.critical(e.id, e.status) });
    }),
    recordBootError: enqueueActions(({ event, enqueue }) => {
      const error = toRuntimeError((event as unknown as { error: unknown }).error);
      log.error(`Startup failed: ${error.message}`);
      enqueue.assign({ error });
    }),
    closeAll: ({ context }) => {
      for (const e of Object.values(context.containers)) e.ref.send({ type: 'close' });
    },
    notifyShutdown: emit({ type: 'notification', notification: 'shutdown' } as NotificationEvent),
    failPending: ({ context }) => {
      for (const p of Object.values(context.pending)) p.reply(fail(errors.unexpected('the runtime shut down')) as never);
    },
  },
}).createMachine({
  id: 'supervisor',
  context: ({ input, spawn }) => {
    const now = input.now ?? (() => performance.now());
    const repositories: Record<string, Repository> = {};
    const containers: Record<string, Entry> = {};
    for (const repo of input.repositories) {
      repositories[repo.id] = repo;
      for (const [id, stored] of repo.containers) {
        const prev = containers[id];
        if (prev) {
          log.warn(`Container ${id} is in repositories ${prev.repository} and ${repo.id}: using ${prev.repository}`);
          continue;
        }
        const npk = stored.npk as unknown as NpkInfo;
        const ref = spawn('container', {
          id,
          input: { id, manifest: npk.manifest, mount: mountInput(npk, repo.key !== undefined, input.config), now },
        });
        containers[id] = { id, manifest: npk.manifest, repository: repo.id, ref, removing: false };
      }
    }
    return {
      config: input.config,
      now,
      repositories,
      repositoryOrder: input.repositories.map((r) => r.id),
      containers,
      users: {},
      pending: {},
      seq: 0,
    };
  },
  initial: 'up',
  on: {
    'container.started': { actions: 'containerStarted' },
    'container.exit': { actions: 'containerExited' },
    'container.oom': { actions: 'containerOom' },
    'xstate.done.actor.*': { actions: 'flowDone' },
    'xstate.error.actor.*': { actions: 'flowFailed' },
  },
  states: {
    up: {
      on: {
        request: [{ guard: 'isShutdownRequest', target: 'shuttingDown', actions: 'answerOk' }, { actions: 'handleRequest' }],
        'container.exit': [
          { guard: 'criticalFailure', target: 'shuttingDown', actions: ['containerExited', 'recordCritical'] },
          { actions: 'containerExited' },
        ],
      },
      initial: 'booting',
      states: {
        booting: {
          invoke: {
            src: 'boot',
            input: ({ context, self }) => {
              const entries = Object.values(context.containers);
              const mountOnStart = entries.filter((e) => context.config.mountOnStart.includes(e.repository));
              const autostart = entries
                .filter((e) => e.manifest.autostart !== undefined && e.manifest.init !== undefined)
                .sort((a, b) => a.id.localeCompare(b.id));
              return { self, mountOnStart, autostart };
            },
            onDone: { target: 'ready' },
            onError: { target: '#supervisor.shuttingDown', actions: 'recordBootError' },
          },
        },
        ready: {},
      },
    },
    shuttingDown: {
      entry: 'closeAll',
      on: {
        request: [{ guard: 'isShutdownRequest', actions: 'answerOk' }, { actions: 'answerShuttingDown' }],
      },
      invoke: {
        src: 'shutdown',
        input: ({ context }) => ({
          entries: Object.values(context.containers).map((e) => ({ id: e.id, ref: e.ref, resource: e.manifest.init === undefined })),
        }),
        onDone: { target: 'down', actions: 'notifyShutdown' },
        onError: { target: 'down', actions: 'notifyShutdown' },
      },
    },
    down: {
      type: 'final',
      entry: 'failPending',
    },
  },
  output: ({ context }) => (context.error ? { error: context.error } : {}),
});

// ---------------------------------------------------------------- request handlers

type FlowName = 'mountFlow' | 'umountFlow' | 'startFlow' | 'install' | 'uninstallFlow';

/** What a handler may do besides replying: all of it is queued on the supervisor. */
interface Effects {
  flow(src: FlowName, input: unknown, pending: Pending): void;
  assign(f: (c: SupervisorContext) => Partial<SupervisorContext>): void;
  send(ref: AnyActorRef, e: ContainerRequest): void;
}

function handle(c: SupervisorContext, r: Request, reply: Reply<unknown>, fx: Effects, self: AnyActorRef): void {
  void self;
  switch (r.type) {
    case 'list':
      return reply(ok(Object.values(c.containers).filter((e) => !e.removing).map((e) => e.id)));
    case 'repositories':
      return reply(ok([...c.repositoryOrder]));
    case 'mount':
      return fx.flow('mountFlow', r.containers.map((id) => target(c, id)), { kind: 'results', reply });
    case 'umount':
      return fx.flow('umountFlow', r.containers.map((id) => umountTarget(c, id)), { kind: 'results', reply });
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
      return fx.send(entry.ref, { type: 'kill', signal: r.signal, reply });
    }
    case 'stop':
      return fx.send(entry.ref, { type: 'stop', graceMs: r.graceMs, reply: reply as Reply<ExitStatus> });
    case 'pause':
    case 'resume':
      return fx.send(entry.ref, { type: r.type, reply });
    case 'exec':
      return fx.send(entry.ref, { type: 'exec', exec: { path: r.path, args: r.args, env: r.env }, reply: reply as never });
    case 'inspect':
      return fx.send(entry.ref, {
        type: 'inspect',
        categories: r.categories,
        reply: (o) => reply(o.ok ? ok(inspectData(c, entry, o.value)) : o),
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

function live(c: SupervisorContext, id: string): Entry | undefined {
  const e = c.containers[id];
  return e && !e.removing ? e : undefined;
}

function target(c: SupervisorContext, id: string): Target {
  const e = live(c, id);
  return e ? { container: id, ref: e.ref } : { container: id, error: errors.invalidContainer(id) };
}

/** Who keeps `id` from being unmounted: itself when started, else a started user of it. */
function blocker(c: SupervisorContext, id: string): string | undefined {
  if (c.users[id]) return id;
  return Object.entries(c.users).find(([, resources]) => resources.includes(id))?.[0];
}

function umountTarget(c: SupervisorContext, id: string): Target {
  const t = target(c, id);
  const by = t.ref ? blocker(c, id) : undefined;
  return by ? { container: id, error: errors.umountBusy(by) } : t;
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
  const installed = Object.values(c.containers).filter((e) => !e.removing).map((e) => e.id);
  const resolved = resolveResources(entry.id, entry.manifest, installed);
  if (!resolved.ok) return reply(fail(resolved.error));

  const resources = [...new Set(resolved.resources.map((x) => x.container))];
  fx.assign((cc) => ({ users: { ...cc.users, [entry.id]: resources } }));
  const input: StartFlowInput = {
    id: entry.id,
    ref: entry.ref,
    resources: resources.map((id) => ({ id, ref: c.containers[id]!.ref })),
    order: { spec: launchSpec(entry.manifest, init, r.arguments, r.environment, resolved.resources, c.config), requestedAt },
    now: c.now,
  };
  fx.flow('startFlow', input, { kind: 'start', id: entry.id, reply: reply as Reply });
}

function install(c: SupervisorContext, r: Extract<Request, { type: 'install' }>, reply: Reply<unknown>, fx: Effects): void {
  const repository = c.repositories[r.repository];
  if (!repository) return reply(fail(errors.invalidRepository(r.repository)));
  const input: InstallInput = { repository, data: r.data };
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

type Spawn = (src: 'container', opts: { id: string; input: ContainerInput }) => ContainerRef;

/** What a flow's completion may do: queued on the supervisor. */
interface Queue {
  assign(f: (c: SupervisorContext, spawn: Spawn) => Partial<SupervisorContext>): void;
  spawn(src: 'uninstall', input: UninstallInput, pending: Pending): void;
  stop(ref: AnyActorRef): void;
  notify(n: Notification): void;
  run(f: () => void): void;
}

/** A flow or I/O actor finished: the next step of its request. */
function done(c: SupervisorContext, p: Pending, output: unknown, q: Queue): void {
  switch (p.kind) {
    case 'results':
      return q.run(() => p.reply(ok(output as ContainerResult[])));
    case 'start':
      return q.run(() => p.reply(ok(undefined)));
    case 'install':
      return installed(c, p, output as NpkInfo, q);
    case 'duplicate':
      return q.run(() => p.reply(fail(errors.installDuplicate(p.id))));
    case 'uninstall.umount': {
      const entry = c.containers[p.id]!;
      const input: UninstallInput = { repository: c.repositories[entry.repository]!, container: p.id };
      if (p.wipe) input.wipe = join(c.config.dataDir, entry.manifest.name);
      return q.spawn('uninstall', input, { kind: 'uninstall.remove', id: p.id, reply: p.reply });
    }
    case 'uninstall.remove': {
      const entry = c.containers[p.id];
      if (entry) q.stop(entry.ref);
      q.assign((cc) => ({ containers: without(cc.containers, p.id) }));
      q.notify({ uninstall: p.id });
      return q.run(() => p.reply(ok(undefined)));
    }
  }
}

/** An NPK landed in a repository: keep it, unless another repository already has it. */
function installed(c: SupervisorContext, p: Extract<Pending, { kind: 'install' }>, npk: NpkInfo, q: Queue): void {
  const id = idOf(npk.manifest);
  const repo = c.repositories[p.repository]!;
  const prev = c.containers[id];
  if (prev) {
    log.warn(`Container ${id} is already installed in ${prev.repository}: removing the copy in ${p.repository}`);
    return q.spawn('uninstall', { repository: repo, container: id }, { kind: 'duplicate', id, reply: p.reply });
  }
  q.assign((cc, spawn) => {
    const input: ContainerInput = { id, manifest: npk.manifest, mount: mountInput(npk, repo.key !== undefined, cc.config), now: cc.now };
    const ref = spawn('container', { id, input });
    return { containers: { ...cc.containers, [id]: { id, manifest: npk.manifest, repository: p.repository, ref, removing: false } } };
  });
  q.notify({ install: id });
  q.run(() => p.reply(ok(id)));
}

function inspectData(c: SupervisorContext, e: Entry, s: ContainerStatus): ContainerData {
  void c;
  const data: ContainerData = {
    container: e.id,
    manifest: e.manifest,
    repository: e.repository,
    mounted: s.mounted,
    process: s.process,
    state: s.state,
  };
  if (s.startup) data.startup = s.startup;
  return data;
}

function without<T>(map: Record<string, T>, key: string): Record<string, T> {
  const { [key]: _, ...rest } = map;
  return rest;
}

function patch(map: Record<string, Entry>, key: string, fields: Partial<Entry>): Record<string, Entry> {
  const e = map[key];
  return e ? { ...map, [key]: { ...e, ...fields } } : map;
}

function statusText(s: ExitStatus): string {
  return 'exit' in s ? `Exit(${s.exit.code})` : `Signalled(${s.signalled.signal})`;
}

// ---------------------------------------------------------------- the runtime's entry points

/** The I/O actors: those of the container machines and those of the repositories. */
export interface SupervisorActors {
  mount?: AnyActorLogic;
  umount?: AnyActorLogic;
  process?: AnyActorLogic;
  cgroups?: AnyActorLogic;
  install?: AnyActorLogic;
  uninstall?: AnyActorLogic;
}

export interface CreateSupervisorOptions extends SupervisorInput {
  /** The I/O actors (src/actors/machine-actors.ts `makeActors(io)`), or fakes. */
  actors: SupervisorActors;
  inspect?: Observer<InspectionEvent> | ((e: InspectionEvent) => void);
  clock?: ActorOptions<AnyActorLogic>['clock'];
}

/** The supervisor machine with its I/O actors in place. */
export function supervisorLogic(actors: SupervisorActors) {
  const { install, uninstall, ...containerActors } = actors;
  const provided: Record<string, unknown> = { container: containerMachine.provide({ actors: containerActors as never }) };
  if (install) provided.install = install;
  if (uninstall) provided.uninstall = uninstall;
  return supervisorMachine.provide({ actors: provided as never });
}

/** Creates (does not start) the supervisor actor. */
export function createSupervisor(opts: CreateSupervisorOptions) {
  const { actors, inspect, clock, ...input } = opts;
  // An explicit `clock: undefined` would replace xstate's default clock and
  // break every delayed transition (a stop's grace) of the real runtime.
  return createActor(supervisorLogic(actors), { input, inspect, ...(clock ? { clock } : {}) });
}

export type Supervisor = ReturnType<typeof createSupervisor>;

/** Sends a request and waits for its answer; rejects with a RuntimeError. */
export function request<R extends Request>(sup: AnyActorRef, r: R): Promise<ResponseOf<R>> {
  const { reply, promise } = deferred<ResponseOf<R>>();
  sup.send({ type: 'request', request: r, reply } satisfies RequestEvent<R>);
  return promise;
}

/** Resolves once booted ("Runtime up and running"); rejects when the boot ended in a shutdown. */
export async function whenReady(sup: Supervisor): Promise<void> {
  const s = await waitFor(sup, (s) => s.matches({ up: 'ready' }) || s.status === 'done' || s.matches('shuttingDown'), {
    timeout: Infinity,
  });
  if (!s.matches({ up: 'ready' })) throw s.context.error ?? errors.unexpected('the runtime shut down during startup');
}

/** Resolves with the output once the supervisor has shut down. */
export function whenDone(sup: Supervisor): Promise<SupervisorOutput> {
  return toPromise(sup);
}

export type { Notification, NotificationEvent, Request, RequestEvent } from './requests.js';
