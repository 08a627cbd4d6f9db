// Typed contract of the addon's process functions: spawn (native/spawn.cc),
// watchMessages (native/messages.cc), netnsCreate (native/netns.cc). Main
// thread only: the watches poll fds on the calling thread's libuv loop, and
// their callbacks run in the async context of the code that started them.
import type { ExitStatus, SystemErrorData } from '../model/errors.js';

// Namespace flags for SpawnOptions.cloneFlags (linux/sched.h).
export const CLONE_NEWNS = 0x00020000;
export const CLONE_NEWCGROUP = 0x02000000;
export const CLONE_NEWUTS = 0x04000000;
export const CLONE_NEWIPC = 0x08000000;
export const CLONE_NEWPID = 0x20000000;
export const CLONE_NEWNET = 0x40000000;

export interface SpawnOptions {
  /** Absolute path of the program to execve. */
  path: string;
  /** argv including argv[0]. */
  argv: string[];
  /** "KEY=value" entries. */
  envp: string[];
  /** fds[i] becomes fd i of the child; every other fd is closed at exec. At most 64. */
  fds: number[];
  /** Namespace flags (CLONE_NEW*) added to CLONE_PIDFD. */
  cloneFlags?: number;
}

/** A child created by spawn(): the addon owns its pidfd until it is reaped. */
export interface SpawnedChild {
  /** Host pid. */
  pid: number;
  /** The pidfd (owned by the addon, closed at reap: do not close or keep it). */
  pidfd: number;
  /** pidfd_send_signal to the child itself; false once reaped or gone. */
  signal(signal: number): boolean;
  /** kill(-pid, signal): the child's whole process group (it is a session leader); false once reaped or gone. */
  signalGroup(signal: number): boolean;
  /** True once waitid has reaped it. */
  reaped(): boolean;
}

export interface MessageWatch {
  /** Stops watching and closes the fd (no further callbacks). */
  close(): void;
}

export interface ProcessNative {
  /**
   * clone(CLONE_VM | CLONE_VFORK | CLONE_PIDFD | cloneFlags) + execve, as posix_spawn
   * (no copy of Node's page tables). The child gets PDEATHSIG=SIGKILL,
   * its own session (setsid), default signal dispositions and an empty mask.
   * Returns once the child has exec'd; an exec failure throws a system error
   * naming the step (`execve`, `dup2`, ...) and the child is already reaped.
   * `onExit` runs once on the main loop after waitid(P_PIDFD) reaped it
   * (a system error object if waitid itself failed).
   */
  spawn(opts: SpawnOptions, onExit: (status: ExitStatus | SystemErrorData) => void): SpawnedChild;
  /**
   * Watches a socket fd (takes ownership): every recv() result as a Buffer —
   * one message for datagram/seq_packet sockets — then `null` once at EOF or
   * error, after which the fd is closed. At most a few recv() per event-loop
   * turn: a peer writing faster than we read cannot hold the loop.
   */
  watchMessages(fd: number, onMessage: (msg: Buffer | null) => void): MessageWatch;
  /**
   * A new network namespace, made by a short-lived thread off the main loop:
   * `fd` (O_CLOEXEC) refers to it; nothing runs in it until a process joins
   * it with setns. An errno error (e.g. EPERM) when it cannot be made.
   */
  netnsCreate(cb: (err: SystemErrorData | null, fd?: number) => void): void;
}
