// One container's whole life as an explicit state machine. Decisions only:
// every I/O step is an invoked actor (`mount`, `umount`, `process`,
// `cgroups`) supplied with `.provide()` — src/actors/machine-actors.ts in the
// runtime, fakes in tests. Requests carry a one-shot reply (reply.ts), settled
// exactly once on every path.
//
//   unmounted ──mount/start──▶ mounting ──done──▶ mounted ──umount──▶ unmounting ──▶ unmounted
//                                  └─error─▶ unmounted          │ start (not a resource)
//                                                             ▼
//   started: spawning ─spawned─▶ confining ─cgroups.ready─▶ gating ─process.started─▶ running
//            running ⇄ pausing/paused/resuming;  paused ─kill/stop─▶ thawing ─▶ …
//            stop ─▶ stopping (SIGTERM) ─grace─▶ killing (SIGKILL);  halt ─▶ killing
//            cgroups.failed while confining ─▶ aborting (SIGKILL)
//            process.exit / process.failed ─▶ exiting (cgroups destroyed) ─▶ mounted
//
// Requests by state (every one answered exactly once):
//   request   unmounted        mounting            mounted       unmounting        started
//   mount     → mounting       mount_busy¹         mount_busy¹   after the umount  mount_busy¹
//   umount    umount_busy      umount_busy         → unmounting  umount_busy       umount_busy
//   start     → mounting, held held (2nd: started) → started     held, then mount  start_container_started
//   kill/stop/pause/resume/exec: stop_container_not_started unless started
//   halt      ok               after the mount     ok            ok                SIGKILL, answered at the exit
//   ¹ an `ensure` mount (a start's resource) is fine there, or waits for the mount in flight.
//   A resource (no init, no override) answers start_container_resource; after `close`, starts
//   answer start_container_failed.
//
// Ordering: the start gate opens only after cgroups.ready — the container
// process never runs outside its cgroups. The exit is reported only after the
// cgroups are gone (spec/console.md §4.3). A stop never waits the full grace
// when the process is already gone: the exit event ends `stopping` and cancels
// the timer.
import { assign, enqueueActions, fromCallback, fromPromise, sendParent, sendTo, setup, type StateValue } from 'xstate';

import { Logger } from '../log.js';
import { errors, exitSuccess, type ExitStatus, type RuntimeError } from '../model/errors.js';
import type { Manifest } from '../model/manifest.js';
import { formatDuration } from '../model/units.js';
import type { LaunchSpec, MountInput, MountOutput, Phases, UmountInput } from './contracts.js';
import type {
  CgroupsCommand,
  ContainerEvent,
  ContainerReport,
  ContainerStatus,
  ProcessCommand,
  StartOrder,
  Statistics,
} from './container-events.js';
import { healthMachine, type HealthContext, type HealthReport, type HealthStatus } from './container-health.js';
import {
  decide,
  endsRun,
  NO_RESTARTS,
  reasonOf,
  recordRestart,
  type Decision,
  type EndCause,
  type RestartHistory,
} from './container-restart.js';
import { fail, ok, runtimeErrorOf, statusText, toRuntimeError, type FailureData, type Reply } from './reply.js';

export const SIGKILL = 9;
export const SIGTERM = 15;

export interface ContainerInput {
  /** "name:version". */
  id: string;
  manifest: Manifest;
  /** Everything the mount task needs (the supervisor builds it from the NPK and config). */
  mount: MountInput;
  /** Monotonic ms; defaults to performance.now(). */
  now?: () => number;
}

type AfterThaw = { kind: 'kill'; signal: number; reply: Reply } | { kind: 'stop'; graceMs: number } | { kind: 'halt' };

export interface ContainerContext {
  id: string;
  manifest: Manifest;
  mountInput: MountInput;
  now: () => number;
  device?: string;
  /** ms of the last mount, and when the current one began. */
  mountMs: number;
  mountBegan: number;
  mountReplies: Reply[];
  umountReply?: Reply;
  /** A start that waits for the container to be mounted. */
  heldStart?: StartOrder;
  /** The start in progress, answered once the process runs (or fails). */
  start?: StartOrder;
  pid?: number;
  spawnedAt?: number;
  cgroupsMs?: number;
  /** now() when the container process started (base of `uptime`). */
  runningSince?: number;
  /** Phases of the last start. */
  phases?: Phases;
  stopReplies: Reply<ExitStatus>[];
  graceMs: number;
  freezeReplies: Reply[];
  afterThaw?: AfterThaw;
  exit?: ExitStatus;
  /** Why the run failed (launch or cgroups), as data; RuntimeError fields kept. */
  failure?: FailureData;
  closed: boolean;
  // ------------------------------------------------ supervision (manifest `restart`, `health`)
  /** The launch of the last start request: a restart runs it again. */
  lastSpec?: LaunchSpec;
  /** Restarts since the last start request (reset by it, and by a daemon restart). */
  restarts: RestartHistory;
  /** The restart the `restarting` state waits for. */
  nextRestart?: { at: number; delayMs: number; attempt: number; reason: string };
  /** The policy gave up: the container stays down until a start request. */
  gaveUp: boolean;
  /** This run was started by the policy, not by a request. */
  restartRun: boolean;
  /** What ended (or is ending) this run, as far as the policy cares. */
  endCause: EndCause;
  /** Signals kill requests sent during this run. */
  sentSignals: number[];
  /** The health check in flight: its process, killed when it runs out of time. */
  healthPid?: { seq: number; pid: number };
}

const log = new Logger('container');

/** Northstar reports a broken process channel as Exit(-2); we do the same for a lost process. */
const LOST: ExitStatus = { exit: { code: -2 } };

function notProvided(name: string): never {
  throw errors.unexpected(`the ${name} actor was not provided`);
}

/**
 * The answer to a start that did not reach `running`: a launch's own start
 * error (e.g. start_container_missing_resource for a missing resource
 * directory) as it is, anything else as start_container_failed.
 */
function startError(c: ContainerContext, status: ExitStatus): RuntimeError {
  const f = c.failure;
  if (!f) return errors.startFailed(c.id, `the process ended with ${statusText(status)} before it started`);
  const own = runtimeErrorOf(f);
  if (own && own.code !== 'unexpected') return own;
  return errors.startFailed(c.id, f.message, f);
}

/** setTimeout fires at once for delays past 2^31-1 ms (~24.8 days): clamp, and read junk as 0. */
const MAX_DELAY_MS = 2 ** 31 - 1;
function graceOf(ms: number): number {
  return Number.isFinite(ms) ? Math.min(Math.max(0, ms), MAX_DELAY_MS) : ms > 0 ? MAX_DELAY_MS : 0;
}

export function stateName(value: StateValue): string {
  if (typeof value === 'string') return value;
  return Object.entries(value)
    .map(([k, v]) => (v === undefined ? k : `${k}.${stateName(v as StateValue)}`))
    .join(',');
}

/** The policy's verdict on the run that just ended (only for runs that ran, or were restarts). */
function verdict(c: ContainerContext): Decision {
  if (c.closed || (c.runningSince === undefined && !c.restartRun)) return { kind: 'none' };
  const status = c.runningSince === undefined ? undefined : c.exit;
  return decide(c.manifest.restart, c.restarts, c.now(), status, c.endCause, c.sentSignals);
}

const busy = (c: ContainerContext) => errors.umountBusy(c.id);
const notStarted = (c: ContainerContext) => errors.notStarted(c.id);

/**
 * The end of a run (cgroups gone): restart after a backoff, give up, or stay
 * mounted. The exit is reported only for a run whose process started.
 */
const RUN_ENDED = [
  {
    guard: 'restartDue',
    target: '#container.restarting',
    actions: ['planRestart', 'reportExitIfRan', 'reportRestarting', 'finishRun'],
  },
  { guard: 'givingUp', target: '#container.mounted', actions: ['planGiveUp', 'reportExitIfRan', 'reportGaveUp', 'finishRun'] },
  { guard: 'ran', target: '#container.mounted', actions: ['reportExit', 'finishRun'] },
  // A restart that never got its process running: the supervisor lets its resources go.
  { guard: 'restartRun', target: '#container.mounted', actions: ['reportIdle', 'finishRun'] },
  { target: '#container.mounted', actions: 'finishRun' },
] as const;

export const containerMachine = setup({
  types: {} as {
    context: ContainerContext;
    events: ContainerEvent;
    input: ContainerInput;
  },
  actors: {
    mount: fromPromise<MountOutput, MountInput>(async () => notProvided('mount')),
    umount: fromPromise<void, UmountInput>(async () => notProvided('umount')),
    process: fromCallback<ProcessCommand, LaunchSpec>(({ sendBack }) => {
      sendBack({ type: 'process.failed', error: { code: 'unexpected', message: 'the process actor was not provided' } });
    }),
    cgroups: fromCallback<CgroupsCommand, { container: string; manifest: Manifest }>(({ receive, sendBack }) => {
      receive((e) => {
        if (e.type === 'destroy') sendBack({ type: 'cgroups.destroyed' });
        if (e.type === 'stats') e.reply(fail(errors.unexpected('the cgroups actor was not provided')));
      });
      sendBack({ type: 'cgroups.failed', error: { code: 'unexpected', message: 'the cgroups actor was not provided' } });
    }),
    health: healthMachine,
  },
  delays: {
    grace: ({ context }) => context.graceMs,
    backoff: ({ context }) => context.nextRestart?.delayMs ?? 0,
  },
  guards: {
    ensure: ({ event }) => event.type === 'mount' && event.ensure === true,
    // A resource has no init; a start request may still name one (`init` override).
    isResource: ({ event }) => event.type === 'start' && !event.spec.init,
    closed: ({ context }) => context.closed,
    holdsStart: ({ context }) => context.heldStart !== undefined,
    // Eventless transitions must stop being enabled once taken (no target here).
    closedWithHeldStart: ({ context }) => context.closed && context.heldStart !== undefined,
    mountWanted: ({ context }) => context.heldStart !== undefined || context.mountReplies.length > 0,
    thawThenKill: ({ context }) => context.afterThaw?.kind === 'kill',
    thawThenStop: ({ context }) => context.afterThaw?.kind === 'stop',
    ran: ({ context }) => context.runningSince !== undefined,
    restartDue: ({ context }) => verdict(context).kind === 'restart',
    givingUp: ({ context }) => verdict(context).kind === 'give_up',
    restartRun: ({ context }) => context.restartRun,
    noBackoff: ({ context }) => context.nextRestart?.delayMs === 0,
    // Unhealthy is a failure only to a policy that restarts: stop, then start again.
    restartUnhealthy: ({ context, event }) =>
      (event as HealthReport & { type: 'health.changed' }).status === 'unhealthy' &&
      context.manifest.restart !== undefined &&
      context.manifest.restart.policy !== 'no' &&
      !context.closed,
  },
  actions: {
    // ------------------------------------------------------------ generic answers
    answerOk: ({ event }) => (event as { reply: Reply }).reply(ok(undefined)),
    answerMountBusy: ({ context, event }) => (event as { reply: Reply }).reply(fail(errors.mountBusy(context.id))),
    answerUmountBusy: ({ context, event }) => (event as { reply: Reply }).reply(fail(busy(context))),
    answerNotStarted: ({ context, event }) => (event as { reply: Reply<never> }).reply(fail(notStarted(context))),
    answerStarted: ({ context, event }) => (event as { reply: Reply }).reply(fail(errors.started(context.id))),
    answerIsResource: ({ context, event }) => (event as { reply: Reply }).reply(fail(errors.isResource(context.id))),
    answerClosed: ({ context, event }) =>
      (event as { reply: Reply }).reply(fail(errors.startFailed(context.id, 'the runtime is shutting down'))),
    answerBusy: ({ context, event }) =>
      (event as { reply: Reply<never> }).reply(fail(errors.unexpected(`container ${context.id} is busy (pausing or resuming)`))),
    answerPaused: ({ context, event }) =>
      (event as { reply: Reply<never> }).reply(fail(errors.unexpected(`container ${context.id} is paused`))),
    close: assign({ closed: true }),

    // ------------------------------------------------------------ mount / umount
    queueMountReply: assign({
      mountReplies: ({ context, event }) => [...context.mountReplies, (event as { reply: Reply }).reply],
    }),
    beginMount: assign({ mountBegan: ({ context }) => context.now() }),
    recordMount: assign(({ context, event }) => {
      log.info(`Mounted ${context.id}`);
      return {
        device: (event as unknown as { output: MountOutput }).output.device,
        mountMs: context.now() - context.mountBegan,
      };
    }),
    answerMountReplies: assign({
      mountReplies: ({ context }) => {
        for (const r of context.mountReplies) r(ok(undefined));
        return [];
      },
    }),
    failMount: assign(({ context, event }) => {
      const error = toRuntimeError((event as unknown as { error: unknown }).error);
      for (const r of context.mountReplies) r(fail(error));
      context.heldStart?.reply(fail(errors.startFailed(context.id, error.message, error)));
      return { mountReplies: [], heldStart: undefined };
    }),
    holdStart: assign({ heldStart: ({ event }) => event as StartOrder }),
    refuseHeldStart: assign(({ context }) => {
      context.heldStart?.reply(fail(errors.startFailed(context.id, 'the runtime is shutting down')));
      return { heldStart: undefined };
    }),
    takeHeldStart: assign(({ context }) => ({ start: context.heldStart, heldStart: undefined, ...fresh(context.heldStart!) })),
    keepUmountReply: assign({ umountReply: ({ event }: { event: ContainerEvent }) => (event as { reply: Reply }).reply }),
    recordUmount: assign(({ context }) => {
      log.info(`Umounted ${context.id}`);
      context.umountReply?.(ok(undefined));
      return { umountReply: undefined, device: undefined };
    }),
    failUmount: assign(({ context, event }) => {
      context.umountReply?.(fail((event as unknown as { error: unknown }).error));
      return { umountReply: undefined };
    }),

    // ------------------------------------------------------------ start
    takeStart: assign(({ event }) => ({ start: event as StartOrder, ...fresh(event as StartOrder) })),
    resetRun: assign({
      pid: undefined,
      spawnedAt: undefined,
      cgroupsMs: undefined,
      runningSince: undefined,
      exit: undefined,
      failure: undefined,
      stopReplies: [],
      freezeReplies: [],
      afterThaw: undefined,
      endCause: 'own' as EndCause,
      sentSignals: [],
      healthPid: undefined,
    }),
    recordSpawn: assign(({ context, event }) => ({
      pid: (event as { pid: number }).pid,
      spawnedAt: context.now(),
    })),
    attachCgroups: sendTo('cgroups', ({ context }): CgroupsCommand => ({ type: 'attach', pid: context.pid! })),
    recordCgroups: assign({ cgroupsMs: ({ context }) => context.now() - (context.spawnedAt ?? context.now()) }),
    openGate: sendTo('process', { type: 'gate.open' } satisfies ProcessCommand),
    recordRunning: assign(({ context, event }) => {
      const now = context.now();
      return { runningSince: now, phases: startupPhases(context, (event as { phases: Phases }).phases, now) };
    }),
    answerStart: assign(({ context }) => {
      context.start?.reply(ok(undefined));
      return { start: undefined };
    }),
    reportStarted: sendParent(({ context }): ContainerReport => ({ type: 'container.started', id: context.id, pid: context.pid! })),
    recordFailure: assign({
      failure: ({ event }) => (event as { error: FailureData }).error,
    }),
    recordExit: assign({ exit: ({ event }) => (event as { status: ExitStatus }).status }),

    // ------------------------------------------------------------ signals, stop
    signal: sendTo('process', ({ event }): ProcessCommand => ({ type: 'signal', signal: (event as { signal: number }).signal })),
    sigterm: sendTo('process', { type: 'signal', signal: SIGTERM } satisfies ProcessCommand),
    sigkill: sendTo('process', { type: 'signal', signal: SIGKILL } satisfies ProcessCommand),
    // A stop or halt (shutdown, uninstall) ends the run by request: never restarted.
    queueStopReply: assign({
      stopReplies: ({ context, event }) => [...context.stopReplies, (event as { reply: Reply<ExitStatus> }).reply],
      endCause: 'requested' as EndCause,
    }),
    queueHaltReply: assign({
      stopReplies: ({ context, event }) => {
        const reply = (event as { reply: Reply }).reply;
        return [...context.stopReplies, (o) => reply(o.ok ? ok(undefined) : o)];
      },
      endCause: 'requested' as EndCause,
    }),
    recordKill: assign(({ context, event }) => {
      const signal = (event as { signal: number }).signal;
      return { sentSignals: [...context.sentSignals, signal], endCause: endsRun(signal) ? ('requested' as EndCause) : context.endCause };
    }),
    setGrace: assign({ graceMs: ({ event }) => graceOf((event as { graceMs: number }).graceMs) }),

    // ------------------------------------------------------------ pause / resume
    freeze: sendTo('cgroups', { type: 'freeze' } satisfies CgroupsCommand),
    thaw: sendTo('cgroups', { type: 'thaw' } satisfies CgroupsCommand),
    queueFreezeReply: assign({
      freezeReplies: ({ context, event }) => [...context.freezeReplies, (event as { reply: Reply }).reply],
    }),
    answerFreezeReplies: assign(({ context }) => {
      for (const r of context.freezeReplies) r(ok(undefined));
      return { freezeReplies: [] };
    }),
    failFreezeReplies: assign(({ context, event }) => {
      const error = toRuntimeError((event as { error: unknown }).error);
      for (const r of context.freezeReplies) r(fail(error));
      return { freezeReplies: [] };
    }),
    thawThenKill: assign({
      afterThaw: ({ event }) => {
        const e = event as { signal: number; reply: Reply };
        return { kind: 'kill', signal: e.signal, reply: e.reply } as AfterThaw;
      },
    }),
    thawThenStop: assign({ afterThaw: ({ event }) => ({ kind: 'stop', graceMs: (event as { graceMs: number }).graceMs }) as AfterThaw }),
    thawThenHalt: assign({ afterThaw: { kind: 'halt' } as AfterThaw }),
    killAfterThaw: sendTo('process', ({ context }): ProcessCommand => {
      const a = context.afterThaw as Extract<AfterThaw, { kind: 'kill' }>;
      a.reply(ok(undefined));
      return { type: 'signal', signal: a.signal };
    }),
    graceAfterThaw: assign(({ context }) => ({
      graceMs: context.afterThaw?.kind === 'stop' ? graceOf(context.afterThaw.graceMs) : 0,
      afterThaw: undefined,
    })),

    // ------------------------------------------------------------ exec, inspect
    exec: sendTo('process', ({ event }): ProcessCommand => {
      const e = event as Extract<ContainerEvent, { type: 'exec' }>;
      return { type: 'exec', exec: e.exec, reply: e.reply };
    }),
    inspectIdle: ({ context, event, self }) => {
      const e = event as Extract<ContainerEvent, { type: 'inspect' }>;
      e.reply(ok(status(context, stateName(self.getSnapshot().value), null, null)));
    },
    inspectStarted: sendTo('cgroups', ({ context, event, self }): CgroupsCommand => {
      const e = event as Extract<ContainerEvent, { type: 'inspect' }>;
      const snapshot = self.getSnapshot();
      const state = stateName(snapshot.value);
      const health = (snapshot.children.health?.getSnapshot() as { context: HealthContext } | undefined)?.context ?? null;
      return {
        type: 'stats',
        categories: e.categories,
        reply: (o) => e.reply(ok(status(context, state, o.ok ? o.value : null, health))),
      };
    }),

    // ------------------------------------------------------------ exit
    destroyCgroups: sendTo('cgroups', { type: 'destroy' } satisfies CgroupsCommand),
    finishRun: assign(({ context }) => {
      const status = context.exit ?? LOST;
      if (context.start) {
        context.start.reply(fail(startError(context, status)));
      }
      for (const r of context.stopReplies) r(ok(status));
      for (const r of context.freezeReplies) r(fail(notStarted(context)));
      if (context.afterThaw?.kind === 'kill') context.afterThaw.reply(ok(undefined));
      return {
        healthPid: undefined,
        start: undefined,
        stopReplies: [],
        freezeReplies: [],
        afterThaw: undefined,
        pid: undefined,
        runningSince: undefined,
      };
    }),
    reportExit: sendParent(({ context }): ContainerReport => ({
      type: 'container.exit',
      id: context.id,
      status: context.exit ?? LOST,
      ...(context.nextRestart !== undefined ? { restarting: true } : {}),
    })),

    // ------------------------------------------------------------ restart policy
    planRestart: assign(({ context }) => {
      const d = verdict(context) as Extract<Decision, { kind: 'restart' }>;
      const now = context.now();
      log.warn(`Restarting ${context.id} in ${d.delayMs} ms (restart ${d.attempt}, ${d.reason})`);
      return {
        restarts: recordRestart(context.restarts, now, context.manifest.restart!, d.reason),
        nextRestart: { at: now + d.delayMs, delayMs: d.delayMs, attempt: d.attempt, reason: d.reason },
      };
    }),
    planGiveUp: assign(({ context }) => {
      const reason = reasonOf(context.runningSince === undefined ? undefined : context.exit, context.endCause);
      const { max_restarts, within } = context.manifest.restart!;
      log.error(`Giving up on ${context.id}: ${reason} after ${max_restarts} restarts within ${formatDuration(within)} (${context.restarts.count} since its start)`);
      return { gaveUp: true, nextRestart: undefined, restarts: { ...context.restarts, lastReason: reason } };
    }),
    reportExitIfRan: enqueueActions(({ context, enqueue }) => {
      if (context.runningSince === undefined) return;
      enqueue.sendParent({
        type: 'container.exit',
        id: context.id,
        status: context.exit ?? LOST,
        ...(context.nextRestart !== undefined ? { restarting: true } : {}),
      } satisfies ContainerReport);
    }),
    reportRestarting: sendParent(({ context }): ContainerReport => {
      const n = context.nextRestart!;
      return { type: 'container.restarting', id: context.id, attempt: n.attempt, delayMs: n.delayMs, reason: n.reason };
    }),
    reportGaveUp: sendParent(({ context }): ContainerReport => ({
      type: 'container.gave_up',
      id: context.id,
      restarts: context.restarts.count,
      reason: context.restarts.lastReason ?? '',
      ran: context.runningSince !== undefined,
    })),
    reportIdle: sendParent(({ context }): ContainerReport => ({ type: 'container.idle', id: context.id })),
    cancelRestart: assign(({ context }) => {
      log.info(`Restart of ${context.id} cancelled`);
      return { nextRestart: undefined };
    }),
    answerLastExit: ({ context, event }) => (event as { reply: Reply<ExitStatus> }).reply(ok(context.exit ?? LOST)),
    takeRestart: assign(({ context }) => {
      const id = context.id;
      const order: StartOrder = {
        spec: context.lastSpec!,
        requestedAt: context.now(),
        reply: (o) => {
          if (!o.ok) log.warn(`Restart of ${id} failed: ${o.error.message}`);
        },
      };
      return { start: order, restartRun: true, nextRestart: undefined };
    }),

    // ------------------------------------------------------------ health check
    startHealth: enqueueActions(({ context, enqueue }) => {
      if (context.manifest.health) enqueue.spawnChild('health', { id: 'health', input: { check: context.manifest.health } });
    }),
    stopHealth: enqueueActions(({ self, enqueue }) => {
      if (self.getSnapshot().children.health) enqueue.stopChild('health');
    }),
    runHealthCheck: sendTo('process', ({ context, event, self }): ProcessCommand => {
      const { seq } = event as Extract<HealthReport, { type: 'health.exec' }>;
      const [path, ...args] = context.manifest.health!.exec;
      const tell = (e: ContainerEvent) => {
        if (self.getSnapshot().status === 'active') self.send(e);
      };
      return {
        type: 'exec',
        exec: { path: path!, args, env: context.lastSpec?.env ?? {} },
        reply: (o) => {
          if (!o.ok) return tell({ type: 'health.result', seq, ok: false });
          tell({ type: 'health.forked', seq, pid: o.value.pid });
          o.value.exited.then(
            (status) => tell({ type: 'health.result', seq, ok: exitSuccess(status) }),
            () => tell({ type: 'health.result', seq, ok: false }),
          );
        },
      };
    }),
    recordHealthPid: assign({ healthPid: ({ event }) => event as { seq: number; pid: number } }),
    forwardHealthResult: enqueueActions(({ event, self, enqueue }) => {
      if (self.getSnapshot().children.health) enqueue.sendTo('health', event as never);
    }),
    killHealthCheck: enqueueActions(({ context, event, enqueue }) => {
      const { seq } = event as { seq: number };
      if (context.healthPid?.seq !== seq) return;
      log.warn(`Health check of ${context.id} timed out: killing it`);
      enqueue.sendTo('process', { type: 'signal', signal: SIGKILL, pid: context.healthPid.pid } satisfies ProcessCommand);
    }),
    reportHealth: sendParent(({ context, event }): ContainerReport => {
      const e = event as Extract<HealthReport, { type: 'health.changed' }>;
      (e.status === 'unhealthy' ? log.warn : log.info).call(log, `Container ${context.id} is ${e.status}`);
      return { type: 'container.health', id: context.id, status: e.status };
    }),
    stopUnhealthy: assign(({ context }) => ({
      graceMs: graceOf(context.manifest.restart!.stop_grace),
      endCause: 'unhealthy' as EndCause,
    })),
    reportOom: sendParent(({ context, event }): ContainerReport => ({
      type: 'container.oom',
      id: context.id,
      memory: (event as Extract<ContainerEvent, { type: 'cgroups.oom' }>).memory,
    })),
  },
}).createMachine({
  id: 'container',
  context: ({ input }) => ({
    id: input.id,
    manifest: input.manifest,
    mountInput: input.mount,
    now: input.now ?? (() => performance.now()),
    mountMs: 0,
    mountBegan: 0,
    mountReplies: [],
    stopReplies: [],
    graceMs: 0,
    freezeReplies: [],
    closed: false,
    restarts: NO_RESTARTS,
    gaveUp: false,
    restartRun: false,
    endCause: 'own',
    sentSignals: [],
  }),
  initial: 'unmounted',
  on: {
    close: { actions: 'close' },
  },
  states: {
    unmounted: {
      always: [
        { guard: 'closedWithHeldStart', actions: 'refuseHeldStart' },
        { guard: 'mountWanted', target: 'mounting' },
      ],
      on: {
        mount: { target: 'mounting', actions: 'queueMountReply' },
        start: [
          { guard: 'isResource', actions: 'answerIsResource' },
          { guard: 'closed', actions: 'answerClosed' },
          { target: 'mounting', actions: 'holdStart' },
        ],
        umount: { actions: 'answerUmountBusy' },
        kill: { actions: 'answerNotStarted' },
        stop: { actions: 'answerNotStarted' },
        pause: { actions: 'answerNotStarted' },
        resume: { actions: 'answerNotStarted' },
        exec: { actions: 'answerNotStarted' },
        halt: { actions: 'answerOk' },
        inspect: { actions: 'inspectIdle' },
      },
    },
    mounting: {
      entry: 'beginMount',
      invoke: {
        src: 'mount',
        input: ({ context }) => context.mountInput,
        onDone: { target: 'mounted', actions: ['recordMount', 'answerMountReplies'] },
        onError: { target: 'unmounted', actions: 'failMount' },
      },
      on: {
        mount: [{ guard: 'ensure', actions: 'queueMountReply' }, { actions: 'answerMountBusy' }],
        start: [
          { guard: 'isResource', actions: 'answerIsResource' },
          { guard: 'closed', actions: 'answerClosed' },
          { guard: 'holdsStart', actions: 'answerStarted' },
          { actions: 'holdStart' },
        ],
        umount: { actions: 'answerUmountBusy' },
        kill: { actions: 'answerNotStarted' },
        stop: { actions: 'answerNotStarted' },
        pause: { actions: 'answerNotStarted' },
        resume: { actions: 'answerNotStarted' },
        exec: { actions: 'answerNotStarted' },
        // Shutdown waits for an in-flight mount, so that its umount pass sees it.
        halt: { actions: 'queueMountReply' },
        inspect: { actions: 'inspectIdle' },
      },
    },
    mounted: {
      tags: ['mounted'],
      always: [
        { guard: 'closedWithHeldStart', actions: 'refuseHeldStart' },
        { guard: 'holdsStart', target: 'started', actions: 'takeHeldStart' },
      ],
      on: {
        mount: [{ guard: 'ensure', actions: 'answerOk' }, { actions: 'answerMountBusy' }],
        start: [
          { guard: 'isResource', actions: 'answerIsResource' },
          { guard: 'closed', actions: 'answerClosed' },
          { target: 'started', actions: 'takeStart' },
        ],
        umount: { target: 'unmounting', actions: 'keepUmountReply' },
        kill: { actions: 'answerNotStarted' },
        stop: { actions: 'answerNotStarted' },
        pause: { actions: 'answerNotStarted' },
        resume: { actions: 'answerNotStarted' },
        exec: { actions: 'answerNotStarted' },
        halt: { actions: 'answerOk' },
        inspect: { actions: 'inspectIdle' },
      },
    },
    unmounting: {
      tags: ['mounted'],
      invoke: {
        src: 'umount',
        input: ({ context }) => ({ container: context.id, target: context.mountInput.target }),
        onDone: { target: 'unmounted', actions: 'recordUmount' },
        onError: { target: 'mounted', actions: 'failUmount' },
      },
      on: {
        // Wanted again while it goes away: mount once the umount is done.
        mount: { actions: 'queueMountReply' },
        start: [
          { guard: 'isResource', actions: 'answerIsResource' },
          { guard: 'closed', actions: 'answerClosed' },
          { guard: 'holdsStart', actions: 'answerStarted' },
          { actions: 'holdStart' },
        ],
        umount: { actions: 'answerUmountBusy' },
        kill: { actions: 'answerNotStarted' },
        stop: { actions: 'answerNotStarted' },
        pause: { actions: 'answerNotStarted' },
        resume: { actions: 'answerNotStarted' },
        exec: { actions: 'answerNotStarted' },
        halt: { actions: 'answerOk' },
        inspect: { actions: 'inspectIdle' },
      },
    },
    started: {
      tags: ['mounted', 'started'],
      entry: 'resetRun',
      invoke: [
        // cgroups first: it may start making directories (threadpool) before the process actor's clone blocks the thread.
        { id: 'cgroups', src: 'cgroups', input: ({ context }) => ({ container: context.id, manifest: context.manifest }) },
        { id: 'process', src: 'process', input: ({ context }) => context.start!.spec },
      ],
      on: {
        'process.exit': { target: '.exiting', actions: 'recordExit' },
        'process.failed': { target: '.exiting', actions: 'recordFailure' },
        'cgroups.oom': { actions: 'reportOom' },
        // Started while a stop was already under way: the start still succeeded.
        'process.started': { actions: ['recordRunning', 'answerStart', 'reportStarted'] },
        mount: [{ guard: 'ensure', actions: 'answerOk' }, { actions: 'answerMountBusy' }],
        start: { actions: 'answerStarted' },
        umount: { actions: 'answerUmountBusy' },
        kill: { actions: ['recordKill', 'signal', 'answerOk'] },
        stop: { target: '.stopping', actions: ['setGrace', 'queueStopReply'] },
        halt: { target: '.killing', actions: 'queueHaltReply' },
        pause: { actions: 'answerNotStarted' },
        resume: { actions: 'answerNotStarted' },
        exec: { actions: 'answerNotStarted' },
        inspect: { actions: 'inspectStarted' },
      },
      initial: 'spawning',
      states: {
        // Before the gate opens only nstar-init exists, and as the init of a
        // pid namespace it ignores SIGTERM: a stop kills at once.
        spawning: {
          on: {
            'process.spawned': { target: 'confining', actions: ['recordSpawn', 'attachCgroups'] },
            stop: { target: 'killing', actions: 'queueStopReply' },
          },
        },
        confining: {
          on: {
            stop: { target: 'killing', actions: 'queueStopReply' },
            'cgroups.ready': { target: 'gating', actions: ['recordCgroups', 'openGate'] },
            'cgroups.failed': { target: 'aborting', actions: 'recordFailure' },
          },
        },
        gating: {
          on: {
            'process.started': { target: 'running', actions: ['recordRunning', 'answerStart', 'reportStarted'] },
          },
        },
        running: {
          // The health check runs only here: not while paused, stopping or exiting.
          entry: 'startHealth',
          exit: 'stopHealth',
          on: {
            pause: { target: 'pausing', actions: ['queueFreezeReply', 'freeze'] },
            resume: { actions: 'answerOk' },
            exec: { actions: 'exec' },
            'health.exec': { actions: 'runHealthCheck' },
            'health.forked': { actions: 'recordHealthPid' },
            'health.result': { actions: 'forwardHealthResult' },
            'health.timeout': { actions: 'killHealthCheck' },
            'health.changed': [
              { guard: 'restartUnhealthy', target: 'stopping', actions: ['reportHealth', 'stopUnhealthy'] },
              { actions: 'reportHealth' },
            ],
          },
        },
        pausing: {
          on: {
            'cgroups.frozen': { target: 'paused', actions: 'answerFreezeReplies' },
            'cgroups.failed': { target: 'running', actions: 'failFreezeReplies' },
            pause: { actions: 'queueFreezeReply' },
            resume: { actions: 'answerBusy' },
            exec: { actions: 'answerBusy' },
            kill: { target: 'thawing', actions: ['recordKill', 'thawThenKill'] },
            stop: { target: 'thawing', actions: ['thawThenStop', 'queueStopReply'] },
            halt: { target: 'thawing', actions: ['thawThenHalt', 'queueHaltReply'] },
          },
        },
        paused: {
          on: {
            pause: { actions: 'answerOk' },
            resume: { target: 'resuming', actions: ['queueFreezeReply', 'thaw'] },
            exec: { actions: 'answerPaused' },
            kill: { target: 'thawing', actions: ['recordKill', 'thawThenKill'] },
            stop: { target: 'thawing', actions: ['thawThenStop', 'queueStopReply'] },
            halt: { target: 'thawing', actions: ['thawThenHalt', 'queueHaltReply'] },
          },
        },
        resuming: {
          on: {
            'cgroups.thawed': { target: 'running', actions: 'answerFreezeReplies' },
            'cgroups.failed': { target: 'paused', actions: 'failFreezeReplies' },
            resume: { actions: 'queueFreezeReply' },
            pause: { actions: 'answerBusy' },
            exec: { actions: 'answerBusy' },
          },
        },
        thawing: {
          // Kill and stop of a paused container thaw it first: a frozen task
          // (cgroup v1 freezer) does not act on a signal until it is thawed.
          entry: 'thaw',
          on: {
            // A freeze still in flight when the kill came: answer the pause.
            'cgroups.frozen': { actions: 'answerFreezeReplies' },
            'cgroups.thawed': [
              { guard: 'thawThenKill', target: 'running', actions: ['killAfterThaw', 'graceAfterThaw'] },
              { guard: 'thawThenStop', target: 'stopping', actions: 'graceAfterThaw' },
              { target: 'killing', actions: 'graceAfterThaw' },
            ],
            'cgroups.failed': [
              { guard: 'thawThenKill', target: 'running', actions: ['killAfterThaw', 'graceAfterThaw'] },
              { guard: 'thawThenStop', target: 'stopping', actions: 'graceAfterThaw' },
              { target: 'killing', actions: 'graceAfterThaw' },
            ],
            pause: { actions: 'answerBusy' },
            resume: { actions: 'answerBusy' },
            exec: { actions: 'answerBusy' },
            stop: { actions: 'queueStopReply' },
            halt: { actions: 'queueHaltReply' },
          },
        },
        stopping: {
          entry: 'sigterm',
          after: { grace: 'killing' },
          on: {
            stop: { actions: 'queueStopReply' },
          },
        },
        killing: {
          entry: 'sigkill',
          on: {
            stop: { actions: 'queueStopReply' },
            halt: { actions: 'queueHaltReply' },
          },
        },
        aborting: {
          // cgroups could not be set up: the process never passes the gate.
          entry: 'sigkill',
          on: {
            stop: { actions: 'queueStopReply' },
            halt: { actions: 'queueHaltReply' },
          },
        },
        exiting: {
          entry: 'destroyCgroups',
          on: {
            'process.exit': {},
            'process.failed': {},
            'cgroups.destroyed': RUN_ENDED,
            'cgroups.failed': RUN_ENDED,
            kill: { actions: ['recordKill', 'answerOk'] },
            stop: { actions: 'queueStopReply' },
            halt: { actions: 'queueHaltReply' },
            pause: { actions: 'answerNotStarted' },
            exec: { actions: 'answerNotStarted' },
          },
        },
      },
    },
    // The restart policy's backoff: mounted, no process, a restart due after
    // the delay. Any stop, kill, halt or shutdown cancels it.
    restarting: {
      tags: ['mounted'],
      always: [
        { guard: 'closed', target: 'mounted', actions: ['cancelRestart', 'reportIdle'] },
        // No timer for a zero backoff: setTimeout(0) alone costs a millisecond or more.
        { guard: 'noBackoff', target: 'started', actions: 'takeRestart' },
      ],
      after: { backoff: { target: 'started', actions: 'takeRestart' } },
      on: {
        stop: { target: 'mounted', actions: ['cancelRestart', 'answerLastExit', 'reportIdle'] },
        kill: { target: 'mounted', actions: ['cancelRestart', 'answerOk', 'reportIdle'] },
        halt: { target: 'mounted', actions: ['cancelRestart', 'answerOk', 'reportIdle'] },
        mount: [{ guard: 'ensure', actions: 'answerOk' }, { actions: 'answerMountBusy' }],
        start: { actions: 'answerStarted' },
        umount: { actions: 'answerUmountBusy' },
        pause: { actions: 'answerNotStarted' },
        resume: { actions: 'answerNotStarted' },
        exec: { actions: 'answerNotStarted' },
        inspect: { actions: 'inspectIdle' },
      },
    },
  },
});

/**
 * The phases of a start, the one place they are put together: the
 * supervisor's resolve, the mount, the launch's own measures (spawn, setup,
 * gate_wait, exec), and what only the machine sees: cgroups (spawned to
 * cgroups.ready) and total (from the request). In the order they happen,
 * which is the order the CLI prints them.
 */
function startupPhases(c: ContainerContext, launched: Phases, now: number): Phases {
  const s = c.start!;
  const { spawn, ...rest } = launched;
  return {
    resolve: s.resolveMs ?? 0,
    mount: c.mountMs,
    ...(spawn !== undefined ? { spawn } : {}),
    ...(c.cgroupsMs !== undefined ? { cgroups: c.cgroupsMs } : {}),
    ...rest,
    total: now - (s.requestedAt ?? c.mountBegan),
  };
}

/** What a start request resets: its spec is the one restarts run, and the restart history begins anew. */
function fresh(order: StartOrder): Partial<ContainerContext> {
  return { lastSpec: order.spec, restarts: NO_RESTARTS, gaveUp: false, restartRun: false, nextRestart: undefined };
}

function status(c: ContainerContext, state: string, statistics: Statistics | null, health: HealthContext | null): ContainerStatus {
  const s: ContainerStatus = { state, mounted: c.device !== undefined, process: null };
  if (c.manifest.restart) {
    s.restarts = {
      count: c.restarts.count,
      lastReason: c.restarts.lastReason ?? null,
      nextAttemptMs: c.nextRestart ? Math.max(0, Math.round(c.nextRestart.at - c.now())) : null,
      gaveUp: c.gaveUp,
    };
  }
  if (c.manifest.health) {
    s.health = health && state === 'started.running' ? { status: health.status, failures: health.failures } : null;
  }
  if (c.device !== undefined) s.device = c.device;
  if (c.pid !== undefined && c.runningSince !== undefined) {
    s.process = { pid: c.pid, uptime: Math.round((c.now() - c.runningSince) * 1e6), statistics };
  } else if (c.pid !== undefined) {
    s.process = { pid: c.pid, uptime: 0, statistics };
  }
  if (c.phases) s.startup = c.phases;
  return s;
}
