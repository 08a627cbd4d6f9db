// The contracts between the machines (decisions, no I/O) and the actors (I/O).
// Types only. The I/O modules implement these shapes as plain async APIs;
// src/actors/machine-actors.ts adapts them into XState actors, and tests
// replace them with fakes through `.provide()`.
import type { ExitStatus } from '../model/errors.js';
import type { VerityInfo } from '../model/verity-info.js';
import type { Manifest } from '../model/manifest.js';
import type { MemoryEvent } from '../model/notification.js';

/** Milliseconds per named phase ("open", "attach", "verity", "mount"; "spawn", "setup", "cgroups", "gate_wait", "exec", "total"). */
export type Phases = Record<string, number>;

// Result (model/errors.ts) and VerityInfo (model/verity-info.ts) are shared with
// npk/ and native-api/, below the machines: they live in the model.
export type { Result } from '../model/errors.js';
export type { VerityInfo } from '../model/verity-info.js';
// The memory counters of an OOM event, sent on as they are in the `c_group` notification.
export type { MemoryEvent } from '../model/notification.js';

// ---------------------------------------------------------------- mount (pool)

export type VerityMode = 'auto' | 'dm' | 'userspace';


export interface MountInput {
  container: string;
  /** A path a worker can open: the NPK file, or /proc/<pid>/fd/<n> of a memfd. */
  npkPath: string;
  /** Absolute offset and size of fs.img inside the NPK. */
  fsImgOffset: number;
  fsImgSize: number;
  /** The mount point, run_dir/<name>:<version>. Created by the task, removed on umount. */
  target: string;
  /** Present for keyed repositories: never mount such an image unverified. */
  verity?: VerityInfo;
  verityMode: VerityMode;
  /** selinux.mount_context, applied only where the host has SELinux. */
  selinuxContext?: string;
  loopDeviceTimeoutMs: number;
}

export interface MountOutput {
  /** /dev/loopN or /dev/dm-N. */
  device: string;
  target: string;
  dmName?: string;
  phases: Phases;
}

export interface UmountInput {
  container: string;
  target: string;
  /** The block device mounted there (MountOutput.device): a verity one is waited for until it is gone. */
  device?: string;
}

// ---------------------------------------------------------------- process (main thread)

export interface LaunchSpec {
  container: string;
  manifest: Manifest;
  /** The container's root: the mounted image (or a plain directory in tests). */
  root: string;
  /** Executable path inside the root (manifest init, or the start request's override). */
  init: string;
  /** argv[1..] (argv[0] is init). */
  args: string[];
  /** The complete environment, NORTHSTAR_NAME/VERSION/CONTAINER included. */
  env: Record<string, string>;
  runDir: string;
  dataDir: string;
  socketDir: string;
  /** Resource mounts resolved to host directories: target → run_dir/<res>:<ver>/<dir>. */
  resources: Record<string, string>;
  // Set by the runtime at launch, as launchNeeds (launch-plan.ts) asks:
  /** The container end of the console socketpair, when manifest.console is set. */
  consoleFd?: number;
  /**
   * A network namespace made ahead of time (netns-pool.ts) for a container
   * that gets a new one: init joins it instead of the clone creating one.
   * launch() takes ownership and closes it.
   */
  netnsFd?: number;
}

/** A launched container: init exists and waits at the start gate. */
/** An additional process to run inside a running container (exec request). */
export interface ExecRequest {
  /** Executable inside the container's root. */
  path: string;
  /** argv[1..] (argv[0] is path). */
  args: string[];
  /** Set on top of the container's environment (manifest env, start environment, NORTHSTAR_NAME/VERSION/CONTAINER). */
  env: Record<string, string>;
  /** The caller's fds for stdin/stdout/stderr (attached exec): passed to the process as they are, not captured. */
  stdio?: [number, number, number];
  /** With `stdio`: stdin is a terminal the process takes as its controlling tty in a new session. */
  tty?: boolean;
}

/** A process started by exec: its host pid and its own exit status to come (the container's is reported separately). */
export interface Executed {
  /** Host pid of the new process (its pid-namespace pid when it was gone before it could be looked up). */
  pid: number;
  exited: Promise<ExitStatus>;
}

export interface Launched {
  /** Host pid of nstar-init (PID 1 of the container's pid namespace). */
  pid: number;
  /** Opens the start gate: call only once the pid is in all its cgroups. */
  openGate(): void;
  /** Resolves when the container process has exec'd (or rejects when it could not). */
  started: Promise<{ phases: Phases }>;
  /** Resolves with the container process's exact exit status, after init has exited. */
  exited: Promise<ExitStatus>;
  /** Signals the container's process group (ESRCH ignored). */
  kill(signal: number): void;
  /** Runs an additional process inside the running container (exec request). */
  exec?(req: ExecRequest): Promise<Executed>;
}

// Process actor events (to the parent machine):
//   { type: 'process.spawned', pid }            init exists, blocked at the gate
//   { type: 'process.started', pid, phases }    the container process runs
//   { type: 'process.exit', status }            it ended (after init exited)
//   { type: 'process.failed', error }           launch failed (RuntimeError data)
// Events to the process actor:
//   { type: 'gate.open' }                       after cgroups hold the pid
//   { type: 'signal', signal }
//   { type: 'exec', exec, reply }               exec into the running container

// ---------------------------------------------------------------- cgroups (main thread)

/** One container's cgroups as the container machine uses them (actors/cgroups/cgroup-container.ts implements it). */
export interface ContainerCgroupsHandle {
  freeze(): Promise<void>;
  thaw(): Promise<void>;
  onOom(cb: (m: MemoryEvent) => void): void;
  destroy(): Promise<void>;
  /** Statistics by category (all when none are named); sync or async. */
  stats?(categories?: readonly string[]): object | Promise<object>;
}

// cgroups actor events (to the parent machine):
//   { type: 'cgroups.ready' }                   the pid is in every hierarchy
//   { type: 'cgroups.frozen' } / { type: 'cgroups.thawed' } / { type: 'cgroups.destroyed' }
//   { type: 'cgroups.oom', memory: MemoryEvent }
//   { type: 'cgroups.failed', error }
// Events to the cgroups actor (invoked for the whole run; see container-events.ts):
//   { type: 'attach', pid } / { type: 'freeze' } / { type: 'thaw' } / { type: 'destroy' } /
//   { type: 'stats', categories?, reply }
