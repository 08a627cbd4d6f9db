// A running container's health check as a child machine of its container
// machine (spawned on entering `started.running`, stopped on leaving it, so
// a paused container is not checked). It only keeps time and counts: the
// container machine runs each check through its process actor's exec path
// (the container's namespaces, cgroups, ids, seccomp) and answers with
// `health.result`.
//
//   starting ─start_period─▶ probing ─ok─▶ waiting ─interval─▶ probing
//                              │ fail/timeout: failures+1 (retries in a row ─▶ unhealthy)
import { and, assign, sendParent, setup } from 'xstate';

import type { HealthCheck } from '../model/manifest.js';

export type HealthStatus = 'starting' | 'healthy' | 'unhealthy';

export interface HealthContext {
  check: HealthCheck;
  status: HealthStatus;
  /** Failures in a row. */
  failures: number;
  /** Number of the check in flight; a late answer of an older one is ignored. */
  seq: number;
}

/** Child → container. */
export type HealthReport =
  /** Run check `seq` now. */
  | { type: 'health.exec'; seq: number }
  /** Check `seq` ran out of time: its process may be killed. */
  | { type: 'health.timeout'; seq: number }
  | { type: 'health.changed'; status: HealthStatus; failures: number };

/** Container → child. */
export type HealthEvent = { type: 'health.result'; seq: number; ok: boolean };

export const healthMachine = setup({
  types: {} as { context: HealthContext; events: HealthEvent; input: { check: HealthCheck } },
  delays: {
    startPeriod: ({ context }) => context.check.start_period,
    interval: ({ context }) => context.check.interval,
    timeout: ({ context }) => context.check.timeout,
  },
  guards: {
    current: ({ context, event }) => event.seq === context.seq,
    passed: ({ context, event }) => event.seq === context.seq && event.ok,
    lastStraw: ({ context }) => context.failures + 1 >= context.check.retries,
    becameHealthy: ({ context }) => context.status !== 'healthy',
  },
  actions: {
    next: assign({ seq: ({ context }) => context.seq + 1 }),
    exec: sendParent(({ context }): HealthReport => ({ type: 'health.exec', seq: context.seq })),
    timedOut: sendParent(({ context }): HealthReport => ({ type: 'health.timeout', seq: context.seq })),
    pass: assign({ failures: 0, status: 'healthy' as HealthStatus }),
    failOnce: assign({ failures: ({ context }) => context.failures + 1 }),
    markUnhealthy: assign({ status: 'unhealthy' as HealthStatus }),
    report: sendParent(({ context }): HealthReport => ({ type: 'health.changed', status: context.status, failures: context.failures })),
  },
}).createMachine({
  id: 'health',
  context: ({ input }) => ({ check: input.check, status: 'starting', failures: 0, seq: 0 }),
  initial: 'starting',
  states: {
    starting: {
      after: { startPeriod: 'probing' },
    },
    probing: {
      entry: ['next', 'exec'],
      after: {
        timeout: [
          { guard: 'lastStraw', target: 'unhealthy', actions: ['timedOut', 'failOnce'] },
          { target: 'waiting', actions: ['timedOut', 'failOnce'] },
        ],
      },
      on: {
        'health.result': [
          { guard: and(['passed', 'becameHealthy']), target: 'waiting', actions: ['pass', 'report'] },
          { guard: 'passed', target: 'waiting', actions: 'pass' },
          { guard: 'current', target: 'failing' },
        ],
      },
    },
    // A check failed: count it, then wait or give the verdict.
    failing: {
      always: [
        { guard: 'lastStraw', target: 'unhealthy', actions: 'failOnce' },
        { target: 'waiting', actions: 'failOnce' },
      ],
    },
    waiting: {
      after: { interval: 'probing' },
    },
    unhealthy: {
      entry: ['markUnhealthy', 'report'],
    },
  },
});
