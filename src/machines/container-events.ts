// The vocabulary of one container machine: requests in (each with a one-shot
// reply), facts from its child actors (`source.fact`), and what it tells its
// parent (the supervisor). Types only.
import type { RestartStatus } from '../model/container-data.js';
import type { ExitStatus } from '../model/errors.js';
import type { ExecRequest, Executed, LaunchSpec, MemoryEvent, MountOutput, Phases } from './contracts.js';

export type { ExecRequest, Executed } from './contracts.js';
import type { HealthEvent, HealthReport, HealthStatus } from './container-health.js';
import type { FailureData, Reply } from './reply.js';

/** Statistics by category ("cpu", "memory", "memory_events", "blkio", "pids"), as the cgroups module reports them. */
export type Statistics = Record<string, unknown>;

/** What a container machine knows about itself (the machine part of `inspect`). */
export interface ContainerStatus {
  /** The machine state, e.g. "mounted" or "started.running". */
  state: string;
  mounted: boolean;
  /** The block device backing the mount, when mounted. */
  device?: string;
  process: null | {
    pid: number;
    /** Nanoseconds since the container process started. */
    uptime: number;
    /** null when the statistics could not be read. */
    statistics: Statistics | null;
  };
  /** Startup phases of the last start, in ms (resolve, mount, spawn, setup, cgroups, gate_wait, exec, total). */
  startup?: Phases;
  /** With a manifest `restart` policy: restarts since the last start request, and the next one due. */
  restarts?: RestartStatus;
  /** With a manifest `health` check: its state while running (null otherwise). */
  health?: { status: HealthStatus; failures: number } | null;
}

export interface StartOrder {
  spec: LaunchSpec;
  reply: Reply;
  /** ms the supervisor spent resolving resources and mounting them. */
  resolveMs?: number;
  /** now() when the request arrived; base of the `total` phase. */
  requestedAt?: number;
}

/** Requests (from the supervisor). */
export type ContainerRequest =
  /** Mount. `ensure`: a mounted container is fine and an in-flight mount is awaited (resources of a start). */
  | { type: 'mount'; ensure?: boolean; reply: Reply }
  | { type: 'umount'; reply: Reply }
  | ({ type: 'start' } & StartOrder)
  | { type: 'kill'; signal: number; reply: Reply }
  /** SIGTERM, then SIGKILL when the process is still there after `graceMs`. Replied at the exit. */
  | { type: 'stop'; graceMs: number; reply: Reply<ExitStatus> }
  /** SIGKILL and wait for the exit (shutdown). A container that is not started answers at once. */
  | { type: 'halt'; reply: Reply }
  | { type: 'pause'; reply: Reply }
  | { type: 'resume'; reply: Reply }
  | { type: 'exec'; exec: ExecRequest; reply: Reply<Executed> }
  | { type: 'inspect'; categories?: string[]; reply: Reply<ContainerStatus> }
  /** The runtime is shutting down: refuse further starts. */
  | { type: 'close' };

/** Facts from the invoked actors (see contracts.ts and src/actors/machine-actors.ts). */
export type ActorFact =
  | { type: 'process.spawned'; pid: number }
  | { type: 'process.started'; pid: number; phases: Phases }
  | { type: 'process.exit'; status: ExitStatus }
  | { type: 'process.failed'; error: FailureData }
  | { type: 'cgroups.ready' }
  | { type: 'cgroups.frozen' }
  | { type: 'cgroups.thawed' }
  | { type: 'cgroups.destroyed' }
  | { type: 'cgroups.oom'; memory: MemoryEvent }
  | { type: 'cgroups.failed'; error: FailureData };

/** The health check: the child machine's reports and the answers of the checks it asked for. */
export type HealthFact = HealthReport | HealthEvent | { type: 'health.forked'; seq: number; pid: number };

export type ContainerEvent = ContainerRequest | ActorFact | HealthFact;

/** Events to the process actor. */
export type ProcessCommand =
  | { type: 'gate.open' }
  /** To the container's process group, or to `pid` (a health check's process) when given. */
  | { type: 'signal'; signal: number; pid?: number }
  | { type: 'exec'; exec: ExecRequest; reply: Reply<Executed> };

/** Events to the cgroups actor. */
export type CgroupsCommand =
  | { type: 'attach'; pid: number }
  | { type: 'freeze' }
  | { type: 'thaw' }
  | { type: 'destroy' }
  | { type: 'stats'; categories?: string[]; reply: Reply<Statistics> };

/** What a container machine tells its parent. */
export type ContainerReport =
  | { type: 'container.started'; id: string; pid: number }
  /** `restarting`: the restart policy starts it again after a backoff. */
  | { type: 'container.exit'; id: string; status: ExitStatus; restarting?: boolean }
  | { type: 'container.restarting'; id: string; attempt: number; delayMs: number; reason: string }
  /** More than max_restarts within the window: it stays down. */
  | { type: 'container.gave_up'; id: string; restarts: number; reason: string; ran: boolean }
  /** A due restart was cancelled, or failed to start with no more to come: its resources are free. */
  | { type: 'container.idle'; id: string }
  | { type: 'container.health'; id: string; status: HealthStatus }
  | { type: 'container.oom'; id: string; memory: MemoryEvent };

export type { MountOutput, RestartStatus };
