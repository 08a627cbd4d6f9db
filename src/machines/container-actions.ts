// The container machine's actors (defaults that say they were not provided),
// guards, delays and actions; the states that use them are in container.ts.
// Assigners only compute context: replies, logs and messages are separate
// actions (or enqueued), because XState runs assigners while it computes the
// next snapshot, also in a pure `transition()`.
import { assertEvent, enqueueActions, type ActionFunction, fromCallback, fromPromise, sendParent, setup } from 'xstate';

import { Logger } from '../log.js';
import { errors, exitSuccess, type ExitStatus, type RuntimeError } from '../model/errors.js';
import type { Manifest } from '../model/manifest.js';
import { formatDuration } from '../model/units.js';
import type { LaunchSpec, MountInput, MountOutput, Phases, UmountInput } from './contracts.js';
import type { CgroupsCommand, ContainerEvent, ContainerReport, ProcessCommand, StartOrder } from './container-events.js';
import { healthMachine, type HealthContext } from './container-health.js';
import { decide, endsRun, NO_RESTARTS, reasonOf, recordRestart, type Decision, type EndCause } from './container-restart.js';
import { stateName, status, type ContainerContext, type ContainerInput } from './container-state.js';
import { fail, ok, runtimeErrorOf, statusText, toRuntimeError, type FailureData, type Reply } from './reply.js';

export const SIGKILL = 9;
export const SIGTERM = 15;

const log = new Logger('container');

/** Northstar reports a broken process channel as Exit(-2); we do the same for a lost process. */
const LOST: ExitStatus = { exit: { code: -2 } };

function notProvided(name: string): never {
  throw errors.unexpected(`the ${name} actor was not provided`);
}

/** The I/O steps, supplied with `.provide()`: src/actors/machine-actors.ts in the runtime, fakes in tests. */
export const actors = {
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
};

export type ContainerTypes = { context: ContainerContext; events: ContainerEvent; input: ContainerInput };

/** Typed action builders for this machine's context and events. */
const m = setup({ types: {} as ContainerTypes, actors });

/** The child actors' type, as the typed builders above see it. */
type Provided = Parameters<typeof m.createAction>[0] extends ActionFunction<never, never, never, never, infer A, never, never, never, never> ? A : never;

/**
 * An action with parameters: for the events XState makes (an invoke's done
 * and error), whose fields the state config hands over typed.
 */
function withParams<P>(collect: Parameters<typeof enqueueActions<ContainerContext, ContainerEvent, P, ContainerEvent, Provided, never, never, never>>[0]) {
  return enqueueActions<ContainerContext, ContainerEvent, P, ContainerEvent, Provided, never, never, never>(collect);
}

/** Tells the parent (the supervisor). */
function report(make: (c: ContainerContext, e: ContainerEvent) => ContainerReport) {
  return sendParent<ContainerContext, ContainerEvent, undefined, ContainerReport, ContainerEvent>(({ context, event }) => make(context, event));
}

// ------------------------------------------------------------------ helpers

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

/** The policy's verdict on the run that just ended (only for runs that ran, or were restarts). */
function verdict(c: ContainerContext): Decision {
  if (c.closed || (c.runningSince === undefined && !c.restartRun)) return { kind: 'none' };
  const status = c.runningSince === undefined ? undefined : c.exit;
  return decide(c.manifest.restart, c.restarts, c.now(), status, c.endCause, c.sentSignals);
}

/** What a start request resets: its spec is the one restarts run, and the restart history begins anew. */
function fresh(order: StartOrder): Partial<ContainerContext> {
  return { lastSpec: order.spec, restarts: NO_RESTARTS, gaveUp: false, restartRun: false, nextRestart: undefined };
}

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

/** The exit a run ended with, and what the parent is told of it. */
function exitReport(c: ContainerContext): ContainerReport {
  return { type: 'container.exit', id: c.id, status: c.exit ?? LOST, ...(c.nextRestart !== undefined ? { restarting: true } : {}) };
}

const notStarted = (c: ContainerContext) => errors.notStarted(c.id);

// ------------------------------------------------------------------ guards

export const guards = {
  ensure: ({ event }: { event: ContainerEvent }) => event.type === 'mount' && event.ensure === true,
  // A resource has no init; a start request may still name one (`init` override).
  isResource: ({ event }: { event: ContainerEvent }) => event.type === 'start' && !event.spec.init,
  closed: ({ context }: { context: ContainerContext }) => context.closed,
  holdsStart: ({ context }: { context: ContainerContext }) => context.heldStart !== undefined,
  // Eventless transitions must stop being enabled once taken (no target here).
  closedWithHeldStart: ({ context }: { context: ContainerContext }) => context.closed && context.heldStart !== undefined,
  mountWanted: ({ context }: { context: ContainerContext }) => context.heldStart !== undefined || context.mountReplies.length > 0,
  thawThenKill: ({ context }: { context: ContainerContext }) => context.afterThaw?.kind === 'kill',
  thawThenStop: ({ context }: { context: ContainerContext }) => context.afterThaw?.kind === 'stop',
  ran: ({ context }: { context: ContainerContext }) => context.runningSince !== undefined,
  restartDue: ({ context }: { context: ContainerContext }) => verdict(context).kind === 'restart',
  givingUp: ({ context }: { context: ContainerContext }) => verdict(context).kind === 'give_up',
  restartRun: ({ context }: { context: ContainerContext }) => context.restartRun,
  noBackoff: ({ context }: { context: ContainerContext }) => context.nextRestart?.delayMs === 0,
  // Unhealthy is a failure only to a policy that restarts: stop, then start again.
  restartUnhealthy: ({ context, event }: { context: ContainerContext; event: ContainerEvent }) =>
    event.type === 'health.changed' &&
    event.status === 'unhealthy' &&
    context.manifest.restart !== undefined &&
    context.manifest.restart.policy !== 'no' &&
    !context.closed,
};

export const delays = {
  grace: ({ context }: { context: ContainerContext }) => context.graceMs,
  backoff: ({ context }: { context: ContainerContext }) => context.nextRestart?.delayMs ?? 0,
};

// ------------------------------------------------------------------ actions

/** Requests that are answered "done" (no value) in some state. */
const PLAIN = ['mount', 'halt', 'pause', 'resume', 'kill'] as const;
/** Every request with a reply. */
const ASKED = ['mount', 'umount', 'start', 'kill', 'stop', 'halt', 'pause', 'resume', 'exec', 'inspect'] as const;

/** Refuses the request in `event` with the error `error` makes of the context. */
function refuse(error: (c: ContainerContext) => RuntimeError) {
  return m.createAction(({ context, event }) => {
    assertEvent(event, ASKED);
    event.reply(fail(error(context)));
  });
}

const requestActions = {
  // ------------------------------------------------------------ generic answers
  answerOk: m.createAction(({ event }) => {
    assertEvent(event, PLAIN);
    event.reply(ok(undefined));
  }),
  answerMountBusy: refuse((c) => errors.mountBusy(c.id)),
  answerUmountBusy: refuse((c) => errors.umountBusy(c.id)),
  answerNotStarted: refuse(notStarted),
  answerStarted: refuse((c) => errors.started(c.id)),
  answerIsResource: refuse((c) => errors.isResource(c.id)),
  answerClosed: refuse((c) => errors.startFailed(c.id, 'the runtime is shutting down')),
  answerBusy: refuse((c) => errors.unexpected(`container ${c.id} is busy (pausing or resuming)`)),
  answerPaused: refuse((c) => errors.unexpected(`container ${c.id} is paused`)),
  close: m.assign({ closed: true }),
};

const mountActions = {
  // Also a halt while mounting: shutdown waits for the mount in flight.
  queueMountReply: m.assign({
    mountReplies: ({ context, event }) => {
      assertEvent(event, ['mount', 'halt']);
      return [...context.mountReplies, event.reply];
    },
  }),
  beginMount: m.assign({ mountBegan: ({ context }) => context.now() }),
  recordMount: withParams<{ device: string }>(({ context, enqueue }, params) => {
    enqueue.assign({ device: params.device, mountMs: context.now() - context.mountBegan });
    enqueue(() => log.info(`Mounted ${context.id}`));
  }),
  answerMountReplies: m.enqueueActions(({ context, enqueue }) => {
    const replies = context.mountReplies;
    enqueue(() => replies.forEach((r) => r(ok(undefined))));
    enqueue.assign({ mountReplies: [] });
  }),
  failMount: withParams<{ error: unknown }>(({ context, enqueue }, params) => {
    const error = toRuntimeError(params.error);
    const { mountReplies, heldStart } = context;
    enqueue(() => {
      for (const r of mountReplies) r(fail(error));
      heldStart?.reply(fail(errors.startFailed(context.id, error.message, error)));
    });
    enqueue.assign({ mountReplies: [], heldStart: undefined });
  }),
  holdStart: m.assign({
    heldStart: ({ event }) => {
      assertEvent(event, 'start');
      return event;
    },
  }),
  refuseHeldStart: m.enqueueActions(({ context, enqueue }) => {
    const held = context.heldStart;
    enqueue(() => held?.reply(fail(errors.startFailed(context.id, 'the runtime is shutting down'))));
    enqueue.assign({ heldStart: undefined });
  }),
  takeHeldStart: m.assign(({ context }) => ({ start: context.heldStart, heldStart: undefined, ...fresh(context.heldStart!) })),
  keepUmountReply: m.assign({
    umountReply: ({ event }: { event: ContainerEvent }) => {
      assertEvent(event, 'umount');
      return event.reply;
    },
  }),
  recordUmount: m.enqueueActions(({ context, enqueue }) => {
    const reply = context.umountReply;
    enqueue(() => {
      log.info(`Umounted ${context.id}`);
      reply?.(ok(undefined));
    });
    enqueue.assign({ umountReply: undefined, device: undefined });
  }),
  failUmount: withParams<{ error: unknown }>(({ context, enqueue }, params) => {
    const reply = context.umountReply;
    enqueue(() => reply?.(fail(params.error)));
    enqueue.assign({ umountReply: undefined });
  }),
};

const startActions = {
  takeStart: m.assign(({ event }) => {
    assertEvent(event, 'start');
    return { start: event, ...fresh(event) };
  }),
  resetRun: m.assign({
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
  recordSpawn: m.assign(({ context, event }) => {
    assertEvent(event, 'process.spawned');
    return { pid: event.pid, spawnedAt: context.now() };
  }),
  attachCgroups: m.sendTo('cgroups', ({ context }): CgroupsCommand => ({ type: 'attach', pid: context.pid! })),
  recordCgroups: m.assign({ cgroupsMs: ({ context }) => context.now() - (context.spawnedAt ?? context.now()) }),
  openGate: m.sendTo('process', { type: 'gate.open' } satisfies ProcessCommand),
  recordRunning: m.assign(({ context, event }) => {
    assertEvent(event, 'process.started');
    const now = context.now();
    return { runningSince: now, phases: startupPhases(context, event.phases, now) };
  }),
  answerStart: m.enqueueActions(({ context, enqueue }) => {
    const start = context.start;
    enqueue(() => start?.reply(ok(undefined)));
    enqueue.assign({ start: undefined });
  }),
  reportStarted: report((c) => ({ type: 'container.started', id: c.id, pid: c.pid! })),
  recordFailure: m.assign({
    failure: ({ event }): FailureData => {
      assertEvent(event, ['process.failed', 'cgroups.failed']);
      return event.error;
    },
  }),
  recordExit: m.assign({
    exit: ({ event }) => {
      assertEvent(event, 'process.exit');
      return event.status;
    },
  }),
};

const stopActions = {
  signal: m.sendTo('process', ({ event }): ProcessCommand => {
    assertEvent(event, 'kill');
    return { type: 'signal', signal: event.signal };
  }),
  sigterm: m.sendTo('process', { type: 'signal', signal: SIGTERM } satisfies ProcessCommand),
  sigkill: m.sendTo('process', { type: 'signal', signal: SIGKILL } satisfies ProcessCommand),
  // A stop or halt (shutdown, uninstall) ends the run by request: never restarted.
  queueStopReply: m.assign({
    stopReplies: ({ context, event }) => {
      assertEvent(event, 'stop');
      return [...context.stopReplies, event.reply];
    },
    endCause: 'requested' as EndCause,
  }),
  queueHaltReply: m.assign({
    stopReplies: ({ context, event }) => {
      assertEvent(event, 'halt');
      const reply = event.reply;
      return [...context.stopReplies, (o: Parameters<Reply<ExitStatus>>[0]) => reply(o.ok ? ok(undefined) : o)];
    },
    endCause: 'requested' as EndCause,
  }),
  recordKill: m.assign(({ context, event }) => {
    assertEvent(event, 'kill');
    return { sentSignals: [...context.sentSignals, event.signal], endCause: endsRun(event.signal) ? ('requested' as EndCause) : context.endCause };
  }),
  setGrace: m.assign({
    graceMs: ({ event }) => {
      assertEvent(event, 'stop');
      return graceOf(event.graceMs);
    },
  }),
};

const pauseActions = {
  freeze: m.sendTo('cgroups', { type: 'freeze' } satisfies CgroupsCommand),
  thaw: m.sendTo('cgroups', { type: 'thaw' } satisfies CgroupsCommand),
  queueFreezeReply: m.assign({
    freezeReplies: ({ context, event }) => {
      assertEvent(event, ['pause', 'resume']);
      return [...context.freezeReplies, event.reply];
    },
  }),
  answerFreezeReplies: m.enqueueActions(({ context, enqueue }) => {
    const replies = context.freezeReplies;
    enqueue(() => replies.forEach((r) => r(ok(undefined))));
    enqueue.assign({ freezeReplies: [] });
  }),
  failFreezeReplies: m.enqueueActions(({ context, event, enqueue }) => {
    assertEvent(event, 'cgroups.failed');
    const error = toRuntimeError(event.error);
    const replies = context.freezeReplies;
    enqueue(() => replies.forEach((r) => r(fail(error))));
    enqueue.assign({ freezeReplies: [] });
  }),
  thawThenKill: m.assign({
    afterThaw: ({ event }) => {
      assertEvent(event, 'kill');
      return { kind: 'kill' as const, signal: event.signal, reply: event.reply };
    },
  }),
  thawThenStop: m.assign({
    afterThaw: ({ event }) => {
      assertEvent(event, 'stop');
      return { kind: 'stop' as const, graceMs: event.graceMs };
    },
  }),
  thawThenHalt: m.assign({ afterThaw: { kind: 'halt' as const } }),
  killAfterThaw: m.enqueueActions(({ context, enqueue }) => {
    if (context.afterThaw?.kind !== 'kill') return;
    const { signal, reply } = context.afterThaw;
    enqueue(() => reply(ok(undefined)));
    enqueue.sendTo('process', { type: 'signal', signal } satisfies ProcessCommand);
  }),
  graceAfterThaw: m.assign(({ context }) => ({
    graceMs: context.afterThaw?.kind === 'stop' ? graceOf(context.afterThaw.graceMs) : 0,
    afterThaw: undefined,
  })),
};

const inspectActions = {
  exec: m.sendTo('process', ({ event }): ProcessCommand => {
    assertEvent(event, 'exec');
    return { type: 'exec', exec: event.exec, reply: event.reply };
  }),
  inspectIdle: m.createAction(({ context, event, self }) => {
    assertEvent(event, 'inspect');
    event.reply(ok(status(context, stateName(self.getSnapshot().value), null, null)));
  }),
  inspectStarted: m.sendTo('cgroups', ({ context, event, self }): CgroupsCommand => {
    assertEvent(event, 'inspect');
    const snapshot = self.getSnapshot();
    const state = stateName(snapshot.value);
    const health = (snapshot.children.health?.getSnapshot() as { context: HealthContext } | undefined)?.context ?? null;
    return {
      type: 'stats',
      categories: event.categories,
      reply: (o) => event.reply(ok(status(context, state, o.ok ? o.value : null, health))),
    };
  }),
};

const exitActions = {
  destroyCgroups: m.sendTo('cgroups', { type: 'destroy' } satisfies CgroupsCommand),
  finishRun: m.enqueueActions(({ context, enqueue }) => {
    const status = context.exit ?? LOST;
    const { start, stopReplies, freezeReplies, afterThaw } = context;
    enqueue(() => {
      start?.reply(fail(startError(context, status)));
      for (const r of stopReplies) r(ok(status));
      for (const r of freezeReplies) r(fail(notStarted(context)));
      if (afterThaw?.kind === 'kill') afterThaw.reply(ok(undefined));
    });
    enqueue.assign({
      healthPid: undefined,
      start: undefined,
      stopReplies: [],
      freezeReplies: [],
      afterThaw: undefined,
      pid: undefined,
      runningSince: undefined,
    });
  }),
  reportExit: report(exitReport),
};

const restartActions = {
  planRestart: m.enqueueActions(({ context, enqueue }) => {
    const d = verdict(context) as Extract<Decision, { kind: 'restart' }>;
    const now = context.now();
    enqueue(() => log.warn(`Restarting ${context.id} in ${d.delayMs} ms (restart ${d.attempt}, ${d.reason})`));
    enqueue.assign({
      restarts: recordRestart(context.restarts, now, context.manifest.restart!, d.reason),
      nextRestart: { at: now + d.delayMs, delayMs: d.delayMs, attempt: d.attempt, reason: d.reason },
    });
  }),
  planGiveUp: m.enqueueActions(({ context, enqueue }) => {
    const reason = reasonOf(context.runningSince === undefined ? undefined : context.exit, context.endCause);
    const { max_restarts, within } = context.manifest.restart!;
    const count = context.restarts.count;
    enqueue(() =>
      log.error(`Giving up on ${context.id}: ${reason} after ${max_restarts} restarts within ${formatDuration(within)} (${count} since its start)`),
    );
    enqueue.assign({ gaveUp: true, nextRestart: undefined, restarts: { ...context.restarts, lastReason: reason } });
  }),
  reportExitIfRan: m.enqueueActions(({ context, enqueue }) => {
    if (context.runningSince !== undefined) enqueue.sendParent(exitReport(context));
  }),
  reportRestarting: report((c) => {
    const n = c.nextRestart!;
    return { type: 'container.restarting', id: c.id, attempt: n.attempt, delayMs: n.delayMs, reason: n.reason };
  }),
  reportGaveUp: report((c) => ({
    type: 'container.gave_up',
    id: c.id,
    restarts: c.restarts.count,
    reason: c.restarts.lastReason ?? '',
    ran: c.runningSince !== undefined,
  })),
  reportIdle: report((c) => ({ type: 'container.idle', id: c.id })),
  cancelRestart: m.enqueueActions(({ context, enqueue }) => {
    enqueue(() => log.info(`Restart of ${context.id} cancelled`));
    enqueue.assign({ nextRestart: undefined });
  }),
  answerLastExit: m.createAction(({ context, event }) => {
    assertEvent(event, 'stop');
    event.reply(ok(context.exit ?? LOST));
  }),
  takeRestart: m.assign(({ context }) => {
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
};

const healthActions = {
  startHealth: m.enqueueActions(({ context, enqueue }) => {
    if (context.manifest.health) enqueue.spawnChild('health', { id: 'health', input: { check: context.manifest.health } });
  }),
  stopHealth: m.enqueueActions(({ self, enqueue }) => {
    if (self.getSnapshot().children.health) enqueue.stopChild('health');
  }),
  runHealthCheck: m.sendTo('process', ({ context, event, self }): ProcessCommand => {
    assertEvent(event, 'health.exec');
    const { seq } = event;
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
  recordHealthPid: m.assign({
    healthPid: ({ event }) => {
      assertEvent(event, 'health.forked');
      return { seq: event.seq, pid: event.pid };
    },
  }),
  forwardHealthResult: m.enqueueActions(({ event, self, enqueue }) => {
    assertEvent(event, 'health.result');
    if (self.getSnapshot().children.health) enqueue.sendTo('health', event);
  }),
  killHealthCheck: m.enqueueActions(({ context, event, enqueue }) => {
    assertEvent(event, 'health.timeout');
    if (context.healthPid?.seq !== event.seq) return;
    const pid = context.healthPid.pid;
    enqueue(() => log.warn(`Health check of ${context.id} timed out: killing it`));
    enqueue.sendTo('process', { type: 'signal', signal: SIGKILL, pid } satisfies ProcessCommand);
  }),
  reportHealth: m.enqueueActions(({ context, event, enqueue }) => {
    assertEvent(event, 'health.changed');
    const { status } = event;
    enqueue(() => (status === 'unhealthy' ? log.warn : log.info).call(log, `Container ${context.id} is ${status}`));
    enqueue.sendParent({ type: 'container.health', id: context.id, status } satisfies ContainerReport);
  }),
  stopUnhealthy: m.assign(({ context }) => ({
    graceMs: graceOf(context.manifest.restart!.stop_grace),
    endCause: 'unhealthy' as EndCause,
  })),
  reportOom: report((c, event) => {
    assertEvent(event, 'cgroups.oom');
    return { type: 'container.oom', id: c.id, memory: event.memory };
  }),
};

export const actions = {
  ...requestActions,
  ...mountActions,
  ...startActions,
  ...stopActions,
  ...pauseActions,
  ...inspectActions,
  ...exitActions,
  ...restartActions,
  ...healthActions,
};
