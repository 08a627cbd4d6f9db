// The supervisor: knows the repositories by id and owns one container machine
// per installed container, and gives every console request Northstar's
// semantics (spec/console.md §4.7, spec/launch.md §5.8, deviations 1 and 8).
//
// ## API (what the runtime drives)
//
//   const sup = createSupervisor({
//     repositories,          // RepositoryContents[]: ids, keyed, the NPKs each holds; order = precedence
//     config,                // SupervisorConfig: runDir, dataDir, socketDir, verity,
//                            //   loopDeviceTimeoutMs, mountOnStart (repository ids)
//     actors: makeActors(io),// src/actors/machine-actors.ts: mount, umount, process, cgroups, install, uninstall
//     inspect?,              // XState inspection observer (the state-chart inspector)
//     clock?,                // SimulatedClock in tests
//   });
//   onNotification(sup, (n) => …)                    // the one subscription point
//   sup.start();                                       // boots: mount_on_start, then autostart
//   await whenReady(sup);                              // "Runtime up and running" (rejects if boot failed)
//   const list = await request(sup, { type: 'list' }); // any Request of requests.ts; rejects with RuntimeError
//   sup.send({ type: 'request', request, reply })      // the same, with a one-shot reply callback
//   const { error } = await whenDone(sup);             // after shutdown (request, critical exit, failed boot)
//
// The runtime asks for shutdown with `request(sup, {type:'shutdown'})` (also on
// SIGTERM). Shutdown: refuse new requests and starts, SIGKILL every started
// container (with `shutdown_grace`: SIGTERM, SIGKILL after the grace, all in
// parallel) and wait for the exits, umount users before resources, emit the
// `shutdown` notification (deviation 6), then the actor is done; its output
// carries the error that caused it (critical_container, or a failed critical
// autostart), if any.
//
// Decisions are synchronous (supervisor-requests.ts, plan.ts); waiting is done
// by small flow actors that only message container machines
// (supervisor-flows.ts); I/O is in the container machines' actors and in
// `install` / `uninstall` (which reach a repository by its id), all provided.
// The context is supervisor-state.ts.
import {
  assertEvent,
  createActor,
  emit,
  enqueueActions,
  fromPromise,
  setup,
  toPromise,
  waitFor,
  type ActorOptions,
  type AnyActorLogic,
  type AnyActorRef,
  type InspectionEvent,
  type Observer,
  type Subscription,
} from 'xstate';

import { Logger } from '../log.js';
import { errors, exitSuccess } from '../model/errors.js';
import { containerMachine } from './container.js';
import type { ContainerReport } from './container-events.js';
import { idOf, mountInput, type NpkInfo } from './plan.js';
import { deferred, fail, ok, once, statusText, toRuntimeError, type Reply } from './reply.js';
import type { Notification, NotificationEvent, Request, RequestEvent, ResponseOf } from './requests.js';
import { flows } from './supervisor-flows.js';
import { done, handle, type Effects, type Queue, type Spawn } from './supervisor-requests.js';
import {
  flowId,
  isFlowId,
  patch,
  without,
  type Entry,
  type InstallInput,
  type Pending,
  type RepositoryInfo,
  type SupervisorContext,
  type SupervisorEvent,
  type SupervisorInput,
  type SupervisorOutput,
  type UninstallInput,
} from './supervisor-state.js';

const log = new Logger('supervisor');

/** What spawnFlow needs of enqueueActions' `enqueue`. */
interface FlowEnqueue {
  assign(f: (args: { context: SupervisorContext }) => Partial<SupervisorContext>): void;
  spawnChild(src: 'mountFlow', opts: { id: string; input: never }): void;
}

/** Spawns a flow under a free id (flowId); one with `pending` gets its entry under that id. */
function spawnFlow(enqueue: FlowEnqueue, self: AnyActorRef, src: string, input: unknown, pending?: Pending): void {
  const id = flowId(self.getSnapshot().children as Record<string, unknown>, src);
  if (pending) enqueue.assign(({ context: c }) => ({ pending: { ...c.pending, [id]: pending } }));
  enqueue.spawnChild(src as 'mountFlow', { id, input: input as never });
}

function notProvided(name: string): never {
  throw errors.unexpected(`the ${name} actor was not provided`);
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
    ...flows,
  },
  guards: {
    isShutdownRequest: ({ event }) => event.type === 'request' && event.request.type === 'shutdown',
    criticalFailure: ({ context, event }) => {
      if (event.type !== 'container.exit') return false;
      const entry = context.containers[event.id];
      // An exit the restart policy answers with a restart is not the end of it.
      return entry?.manifest.autostart === 'critical' && !exitSuccess(event.status) && event.restarting !== true;
    },
    /** Given up after a restart that never got running: a failure with no exit of its own. */
    criticalGaveUp: ({ context, event }) =>
      event.type === 'container.gave_up' && !event.ran && context.containers[event.id]?.manifest.autostart === 'critical',
  },
  actions: {
    answerOk: ({ event }) => once((event as RequestEvent).reply, 'shutdown')(ok(undefined as never)),
    answerShuttingDown: ({ event }) => {
      const e = event as RequestEvent;
      once(e.reply, e.request.type)(fail(errors.unexpected('the runtime is shutting down')));
    },
    handleRequest: enqueueActions(({ context, event, enqueue, self }) => {
      const { request, reply } = event as RequestEvent;
      const fx: Effects = {
        flow: (src, input, pending) => spawnFlow(enqueue, self, src, input, pending),
        assign(f) {
          enqueue.assign(({ context: c }) => f(c));
        },
        send(ref, e) {
          enqueue.sendTo(ref, e);
        },
        self,
      };
      handle(context, request, once(reply as Reply<unknown>, request.type), fx);
    }),
    flowDone: enqueueActions(({ context, event, enqueue, self }) => {
      const id = event.type.slice('xstate.done.actor.'.length);
      if (!isFlowId(id)) return;
      // A done flow stays among the children until stopped.
      enqueue.stopChild(id);
      const p = context.pending[id];
      // A flow that answered its request itself.
      if (!p) return;
      enqueue.assign(({ context: c }) => ({ pending: without(c.pending, id) }));
      const q: Queue = {
        assign: (f) => enqueue.assign(({ context: c, spawn }) => f(c, spawn as Spawn)),
        spawn: (src, input, pending) => spawnFlow(enqueue, self, src, input, pending),
        stop: (ref) => enqueue.stopChild(ref),
        notify: (notification) => enqueue.emit({ type: 'notification', notification }),
        run: (f) => enqueue(f),
      };
      done(context, p, (event as unknown as { output: unknown }).output, q);
    }),
    flowFailed: enqueueActions(({ context, event, enqueue }) => {
      const id = event.type.slice('xstate.error.actor.'.length);
      // A container machine that crashed stays: the shutdown reports it.
      if (!isFlowId(id)) return;
      enqueue.stopChild(id);
      const p = context.pending[id];
      if (!p) return;
      enqueue.assign(({ context: c }) => ({ pending: without(c.pending, id) }));
      const error = toRuntimeError((event as unknown as { error: unknown }).error);
      if (p.kind === 'uninstall.umount' || p.kind === 'uninstall.remove') {
        enqueue.assign(({ context: c }) => ({ containers: patch(c.containers, p.id, { removing: false }) }));
      }
      if (p.kind === 'duplicate') {
        log.warn(`Removing the duplicate ${p.id} failed: ${error.message}`);
        return p.reply(fail(errors.installDuplicate(p.id)));
      }
      p.reply(fail(error));
    }),
    startFailed: enqueueActions(({ event, enqueue }) => {
      assertEvent(event, 'start.failed');
      // The client gets the error; the operator reads it in the log.
      log.warn(`Failed to start ${event.id}: ${event.error.message}`);
      enqueue.assign(({ context: c }) => ({ users: without(c.users, event.id) }));
    }),
    containerStarted: emit(({ event }) => ({
      type: 'notification' as const,
      notification: { type: 'started', container: (event as Extract<ContainerReport, { type: 'container.started' }>).id },
    })),
    containerExited: enqueueActions(({ event, enqueue }) => {
      const e = event as Extract<ContainerReport, { type: 'container.exit' }>;
      log.info(`Container ${e.id} exited with status ${statusText(e.status)}`);
      // A container about to be restarted keeps its resources.
      if (!e.restarting) enqueue.assign(({ context: c }) => ({ users: without(c.users, e.id) }));
      enqueue.emit({ type: 'notification', notification: { type: 'exit', container: e.id, status: e.status } });
    }),
    containerRestarting: emit(({ event }) => {
      const e = event as Extract<ContainerReport, { type: 'container.restarting' }>;
      return {
        type: 'notification' as const,
        notification: { type: 'restarting', container: e.id, attempt: e.attempt, delayMs: e.delayMs, reason: e.reason },
      };
    }),
    containerGaveUp: enqueueActions(({ event, enqueue }) => {
      const e = event as Extract<ContainerReport, { type: 'container.gave_up' }>;
      enqueue.assign(({ context: c }) => ({ users: without(c.users, e.id) }));
      enqueue.emit({ type: 'notification', notification: { type: 'gave_up', container: e.id, restarts: e.restarts, reason: e.reason } });
    }),
    containerIdle: enqueueActions(({ event, enqueue }) => {
      const e = event as Extract<ContainerReport, { type: 'container.idle' }>;
      enqueue.assign(({ context: c }) => ({ users: without(c.users, e.id) }));
    }),
    containerHealth: emit(({ event }) => {
      const e = event as Extract<ContainerReport, { type: 'container.health' }>;
      const notification: Notification = { type: 'health', container: e.id, status: e.status === 'unhealthy' ? 'unhealthy' : 'healthy' };
      return { type: 'notification' as const, notification };
    }),
    recordCriticalGaveUp: enqueueActions(({ event, enqueue }) => {
      const e = event as Extract<ContainerReport, { type: 'container.gave_up' }>;
      log.error(`Critical container ${e.id} failed to restart (${e.reason}): shutting down`);
      enqueue.assign({ error: errors.critical(e.id, { exit: { code: -2 } }) });
    }),
    containerOom: enqueueActions(({ event, enqueue }) => {
      const e = event as Extract<ContainerReport, { type: 'container.oom' }>;
      log.warn(`Process ${e.id} is out of memory`);
      enqueue.emit({ type: 'notification', notification: { type: 'memory', container: e.id, memory: e.memory } });
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
    notifyShutdown: emit({ type: 'notification', notification: { type: 'shutdown' } } satisfies NotificationEvent),
    failPending: ({ context }) => {
      for (const p of Object.values(context.pending)) p.reply(fail(errors.unexpected('the runtime shut down')) as never);
    },
  },
}).createMachine({
  id: 'supervisor',
  context: ({ input, spawn }) => {
    const now = input.now ?? (() => performance.now());
    const repositories = new Map<string, RepositoryInfo>();
    const containers: Record<string, Entry> = {};
    for (const repo of input.repositories) {
      repositories.set(repo.id, { id: repo.id, keyed: repo.keyed });
      for (const npk of repo.npks) {
        const id = idOf(npk.manifest);
        const prev = containers[id];
        if (prev) {
          log.warn(`Container ${id} is in repositories ${prev.repository} and ${repo.id}: using ${prev.repository}`);
          continue;
        }
        const ref = spawn('container', {
          id,
          input: { id, manifest: npk.manifest, mount: mountInput(npk, repo.keyed, input.config), now },
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
    };
  },
  initial: 'up',
  on: {
    'container.started': { actions: 'containerStarted' },
    'container.exit': { actions: 'containerExited' },
    'container.oom': { actions: 'containerOom' },
    'container.restarting': { actions: 'containerRestarting' },
    'container.gave_up': { actions: 'containerGaveUp' },
    'container.idle': { actions: 'containerIdle' },
    'container.health': { actions: 'containerHealth' },
    'start.failed': { actions: 'startFailed' },
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
        'container.gave_up': [
          { guard: 'criticalGaveUp', target: 'shuttingDown', actions: ['containerGaveUp', 'recordCriticalGaveUp'] },
          { actions: 'containerGaveUp' },
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
          graceMs: context.config.shutdownGraceMs ?? 0,
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
  // An explicit `clock: undefined` would replace XState's default clock.
  return createActor(supervisorLogic(actors), { input, ...(inspect ? { inspect } : {}), ...(clock ? { clock } : {}) });
}

export type Supervisor = ReturnType<typeof createSupervisor>;

/** Sends a request and waits for its answer; rejects with a RuntimeError. */
export function request<R extends Request>(sup: AnyActorRef, r: R): Promise<ResponseOf<R>> {
  const { reply, promise } = deferred<ResponseOf<R>>();
  sup.send({ type: 'request', request: r, reply } satisfies RequestEvent<R>);
  return promise;
}

/**
 * The one subscription point for notifications. A listener that
 * throws is logged, never let through: XState would rethrow it from the
 * supervisor's event loop and take the daemon down.
 */
export function onNotification(sup: Supervisor, listener: (n: Notification) => void): Subscription {
  return sup.on('notification', (e) => {
    try {
      listener(e.notification);
    } catch (err) {
      log.error(`A notification listener failed: ${err instanceof Error ? err.message : String(err)}`);
    }
  });
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

export { supervisorConfig } from './supervisor-state.js';
export type { InstallInput, RepositoryContents, RepositoryInfo, SupervisorConfig, SupervisorContext, SupervisorInput, SupervisorOutput, UninstallInput } from './supervisor-state.js';
