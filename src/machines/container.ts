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
import { assign, fromCallback, fromPromise, sendParent, sendTo, setup, type StateValue } from 'xstate';

import { Logger } from '../log.js';
import { errors, type ExitStatus, type RuntimeError } from '../model/errors.js';
import type { Manifest } from '../model/manifest.js';
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

const busy = (c: ContainerContext) => errors.umountBusy(c.id);
const notStarted = (c: ContainerContext) => errors.notStarted(c.id);

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
  },
  delays: {
    grace: ({ context }) => context.graceMs,
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
    takeHeldStart: assign(({ context }) => ({ start: context.heldStart, heldStart: undefined })),
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
    takeStart: assign({ start: ({ event }) => event as StartOrder }),
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
      const s = context.start!;
      const phases: Phases = {
        resolve: s.resolveMs ?? 0,
        mount: context.mountMs,
        ...(event as { phases: Phases }).phases,
      };
      if (phases.cgroups === undefined && context.cgroupsMs !== undefined) phases.cgroups = context.cgroupsMs;
      phases.total = now - (s.requestedAt ?? context.mountBegan);
      return { runningSince: now, phases };
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
    queueStopReply: assign({
      stopReplies: ({ context, event }) => [...context.stopReplies, (event as { reply: Reply<ExitStatus> }).reply],
    }),
    queueHaltReply: assign({
      stopReplies: ({ context, event }) => {
        const reply = (event as { reply: Reply }).reply;
        return [...context.stopReplies, (o) => reply(o.ok ? ok(undefined) : o)];
      },
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
      e.reply(ok(status(context, stateName(self.getSnapshot().value), null)));
    },
    inspectStarted: sendTo('cgroups', ({ context, event, self }): CgroupsCommand => {
      const e = event as Extract<ContainerEvent, { type: 'inspect' }>;
      const state = stateName(self.getSnapshot().value);
      return {
        type: 'stats',
        categories: e.categories,
        reply: (o) => e.reply(ok(status(context, state, o.ok ? o.value : null))),
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
        kill: { actions: ['signal', 'answerOk'] },
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
          on: {
            pause: { target: 'pausing', actions: ['queueFreezeReply', 'freeze'] },
            resume: { actions: 'answerOk' },
            exec: { actions: 'exec' },
          },
        },
        pausing: {
          on: {
            'cgroups.frozen': { target: 'paused', actions: 'answerFreezeReplies' },
            'cgroups.failed': { target: 'running', actions: 'failFreezeReplies' },
            pause: { actions: 'queueFreezeReply' },
            resume: { actions: 'answerBusy' },
            exec: { actions: 'answerBusy' },
            kill: { target: 'thawing', actions: 'thawThenKill' },
            stop: { target: 'thawing', actions: ['thawThenStop', 'queueStopReply'] },
            halt: { target: 'thawing', actions: ['thawThenHalt', 'queueHaltReply'] },
          },
        },
        paused: {
          on: {
            pause: { actions: 'answerOk' },
            resume: { target: 'resuming', actions: ['queueFreezeReply', 'thaw'] },
            exec: { actions: 'answerPaused' },
            kill: { target: 'thawing', actions: 'thawThenKill' },
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
            'cgroups.destroyed': [
              { guard: 'ran', target: '#container.mounted', actions: ['reportExit', 'finishRun'] },
              { target: '#container.mounted', actions: 'finishRun' },
            ],
            'cgroups.failed': [
              { guard: 'ran', target: '#container.mounted', actions: ['reportExit', 'finishRun'] },
              { target: '#container.mounted', actions: 'finishRun' },
            ],
            kill: { actions: 'answerOk' },
            stop: { actions: 'queueStopReply' },
            halt: { actions: 'queueHaltReply' },
            pause: { actions: 'answerNotStarted' },
            exec: { actions: 'answerNotStarted' },
          },
        },
      },
    },
  },
});

function status(c: ContainerContext, state: string, statistics: Statistics | null): ContainerStatus {
  const s: ContainerStatus = { state, mounted: c.device !== undefined, process: null };
  if (c.device !== undefined) s.device = c.device;
  if (c.pid !== undefined && c.runningSince !== undefined) {
    s.process = { pid: c.pid, uptime: Math.round((c.now() - c.runningSince) * 1e6), statistics };
  } else if (c.pid !== undefined) {
    s.process = { pid: c.pid, uptime: 0, statistics };
  }
  if (c.phases) s.startup = c.phases;
  return s;
}
