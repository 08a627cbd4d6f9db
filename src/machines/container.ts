// One container's whole life as an explicit state machine. Decisions only:
// every I/O step is an invoked actor (`mount`, `umount`, `process`,
// `cgroups`) supplied with `.provide()` — src/actors/machine-actors.ts in the
// runtime, fakes in tests. Requests carry a one-shot reply (reply.ts), settled
// exactly once on every path. This file holds the states; the actions,
// guards and default actors are container-actions.ts, the context and what
// `inspect` reports of it container-state.ts.
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
import { setup } from 'xstate';

import { actions, actors, delays, guards, type ContainerTypes } from './container-actions.js';
import { initialContext } from './container-state.js';

export { SIGKILL, SIGTERM } from './container-actions.js';
export { stateName, type ContainerContext, type ContainerInput } from './container-state.js';

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

/** A mount request where the container is mounted: fine for a start's resources (`ensure`), else mount_busy. */
const MOUNT_WHEN_MOUNTED = [{ guard: 'ensure', actions: 'answerOk' }, { actions: 'answerMountBusy' }] as const;

/** What a start meets first wherever it may mount: a resource, or a runtime that is shutting down. */
const REFUSE_START = [
  { guard: 'isResource', actions: 'answerIsResource' },
  { guard: 'closed', actions: 'answerClosed' },
] as const;

/**
 * What the states without a process (unmounted, mounting, mounted,
 * unmounting, restarting) answer alike; each spreads it first and overrides
 * what it does differently.
 */
const IDLE = {
  mount: MOUNT_WHEN_MOUNTED,
  umount: { actions: 'answerUmountBusy' },
  kill: { actions: 'answerNotStarted' },
  stop: { actions: 'answerNotStarted' },
  pause: { actions: 'answerNotStarted' },
  resume: { actions: 'answerNotStarted' },
  exec: { actions: 'answerNotStarted' },
  halt: { actions: 'answerOk' },
  inspect: { actions: 'inspectIdle' },
} as const;

export const containerMachine = setup({ types: {} as ContainerTypes, actors, guards, delays, actions }).createMachine({
  id: 'container',
  context: ({ input }) => initialContext(input),
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
        ...IDLE,
        mount: { target: 'mounting', actions: 'queueMountReply' },
        start: [...REFUSE_START, { target: 'mounting', actions: 'holdStart' }],
      },
    },
    mounting: {
      entry: 'beginMount',
      invoke: {
        src: 'mount',
        input: ({ context }) => context.mountInput,
        onDone: {
          target: 'mounted',
          actions: [{ type: 'recordMount', params: ({ event }) => ({ device: event.output.device }) }, 'answerMountReplies'],
        },
        onError: { target: 'unmounted', actions: { type: 'failMount', params: ({ event }) => ({ error: event.error }) } },
      },
      on: {
        ...IDLE,
        mount: [{ guard: 'ensure', actions: 'queueMountReply' }, { actions: 'answerMountBusy' }],
        start: [...REFUSE_START, { guard: 'holdsStart', actions: 'answerStarted' }, { actions: 'holdStart' }],
        // Shutdown waits for an in-flight mount, so that its umount pass sees it.
        halt: { actions: 'queueMountReply' },
      },
    },
    mounted: {
      tags: ['mounted'],
      always: [
        { guard: 'closedWithHeldStart', actions: 'refuseHeldStart' },
        { guard: 'holdsStart', target: 'started', actions: 'takeHeldStart' },
      ],
      on: {
        ...IDLE,
        start: [...REFUSE_START, { target: 'started', actions: 'takeStart' }],
        umount: { target: 'unmounting', actions: 'keepUmountReply' },
      },
    },
    unmounting: {
      tags: ['mounted'],
      invoke: {
        src: 'umount',
        input: ({ context }) => ({ container: context.id, target: context.mountInput.target, ...(context.device ? { device: context.device } : {}) }),
        onDone: { target: 'unmounted', actions: 'recordUmount' },
        onError: { target: 'mounted', actions: { type: 'failUmount', params: ({ event }) => ({ error: event.error }) } },
      },
      on: {
        ...IDLE,
        // Wanted again while it goes away: mount once the umount is done.
        mount: { actions: 'queueMountReply' },
        start: [...REFUSE_START, { guard: 'holdsStart', actions: 'answerStarted' }, { actions: 'holdStart' }],
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
        ...IDLE,
        stop: { target: 'mounted', actions: ['cancelRestart', 'answerLastExit', 'reportIdle'] },
        kill: { target: 'mounted', actions: ['cancelRestart', 'answerOk', 'reportIdle'] },
        halt: { target: 'mounted', actions: ['cancelRestart', 'answerOk', 'reportIdle'] },
        start: { actions: 'answerStarted' },
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
        mount: MOUNT_WHEN_MOUNTED,
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
  },
});
