// The container machine's data: its input and context, and what `inspect`
// reports of them (the state's name on the wire, the status). Pure functions;
// the machine is container.ts, its actions and guards container-actions.ts.
import type { StateValue } from 'xstate';

import type { ExitStatus } from '../model/errors.js';
import type { Manifest } from '../model/manifest.js';
import type { LaunchSpec, MountInput, Phases } from './contracts.js';
import type { ContainerStatus, StartOrder, Statistics } from './container-events.js';
import type { HealthContext } from './container-health.js';
import { NO_RESTARTS, type EndCause, type RestartHistory } from './container-restart.js';
import type { FailureData, Reply } from './reply.js';

export interface ContainerInput {
  /** "name:version". */
  id: string;
  manifest: Manifest;
  /** Everything the mount task needs (the supervisor builds it from the NPK and config). */
  mount: MountInput;
  /** Monotonic ms; defaults to performance.now(). */
  now?: () => number;
}

/** What a kill, stop or halt of a paused container does once the thaw is done. */
export type AfterThaw = { kind: 'kill'; signal: number; reply: Reply } | { kind: 'stop'; graceMs: number } | { kind: 'halt' };

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

export function initialContext(input: ContainerInput): ContainerContext {
  return {
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
  };
}

/**
 * The state as `inspect` and the CLI's STATE column name it: "mounted",
 * "restarting", "started.running": the path of the state, the one mapping
 * from the machine's state value to the wire.
 */
export function stateName(value: StateValue): string {
  if (typeof value === 'string') return value;
  return Object.entries(value)
    .map(([k, v]) => (v === undefined ? k : `${k}.${stateName(v as StateValue)}`))
    .join(',');
}

/** The machine part of `inspect`. */
export function status(c: ContainerContext, state: string, statistics: Statistics | null, health: HealthContext | null): ContainerStatus {
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
