// launch(): spawns nstar-init for a container and drives it over its control
// socket (native/init/protocol.h). Main thread.
//
// Order (ARCHITECTURE.md "Threads and processes"): launch() resolves as soon
// as init exists; init sets the sandbox up while the caller creates cgroups
// and moves `pid` into them; only then does the caller open the start gate,
// and init forks the container process — which therefore never runs outside
// its cgroups. `exited` settles once init is reaped, its control socket is
// closed and piped output is drained, so no log line arrives after it.
//
// What to do comes from the launch plan (machines/launch-plan.ts), computed
// here from the spec and this host; launch() only executes it.
//
// Errors: what fails before init exists (the plan, persist dir, sockets,
// spawn) rejects launch() itself; a sandbox setup error inside init
// (errno + syscall + path, e.g. "open `/run/netns/x`: No such file or
// directory") rejects `ready`, `started` and `exited` with
// start_container_failed; an init that cannot be exec'd rejects `started`
// and the exit status is exit 101, as in Northstar.
//
// fd ownership: launch() takes `spec.consoleFd` and closes it (the container
// has its own copy), on success and on failure.
import { closeSync, openSync, readFileSync } from 'node:fs';
import { performance } from 'node:perf_hooks';
import { getSystemErrorMap } from 'node:util';

import { Logger } from '../../log.js';
import { errors, RuntimeError, systemError, type ExitStatus, type SystemErrorData } from '../../model/errors.js';
import type { SeccompArch } from '../../model/seccomp.js';
import { withResolvers, type Deferred } from '../../model/with-resolvers.js';
import type { ExecRequest, Executed, LaunchSpec, Launched, Phases } from '../../machines/contracts.js';
import { planLaunch } from '../../machines/launch-plan.js';
import { initBinaryPath, native } from '../../native.js';
import type { SpawnedChild } from '../../native-api/process.js';
import { containerIo, endedWithin, type ContainerIo, type OutputSink } from './io.js';
import { encodeExec, encodeGate, encodeSpec, parseInitMessage, type InitMessage } from './launch-protocol.js';
import { defaultOutput, type AttachedStream, type Output } from '../output/index.js';
import { hostView, preparePersist } from './sandbox.js';
import { createSockets, type ContainerSockets } from './sockets.js';

/** What launch knows of an exec'd process beyond the machines' Executed. */
export interface LaunchedExec extends Executed {
  /** Its pid inside the container's pid namespace. */
  nsPid: number;
  /** stdout and stderr, captured (at most 1 MiB each; each line is also logged at info with the container as target). */
  output: Promise<{ stdout: string; stderr: string }>;
}

export interface LaunchedContainer extends Launched {
  /** Resolves when init finished the sandbox setup and waits at the start gate (rejects like `started`). */
  ready: Promise<{ setupMs: number }>;
  /** Runs an additional process inside the running container (same namespaces, root, cgroups, ids, caps, seccomp). */
  exec(req: ExecRequest): Promise<LaunchedExec>;
}

export interface LaunchOptions {
  /** Receives every line of `io: pipe` output instead of the default logger. */
  output?: OutputSink;
  /** Reads the piped streams (the runtime's; default: the process-wide one). */
  outputs?: Output;
  /** The architecture the seccomp filter is compiled for (default: this host's; tests take the other one). */
  arch?: SeccompArch;
}

const log = new Logger('launch');
/** Where the plan's notes are logged. */
const noteLog = { sandbox: new Logger('sandbox'), seccomp: new Logger('seccomp') };
const CAPTURE_LIMIT = 1 << 20;
/**
 * How long output may still arrive after a process ended. Normally EOF comes
 * at once (everything holding the stream died with it), but a process can
 * leave a writer behind: a background child of an exec'd process, or a
 * stream fd handed out through a unix socket.
 */
const DRAIN_GRACE_MS = 1000;

function errnoData(errno: number, syscall: string, path: string): SystemErrorData {
  const [code, lower] = getSystemErrorMap().get(-errno) ?? [`E${errno}`, `error ${errno}`];
  // libuv's texts are strerror's, lower-cased: match the addon's messages.
  const text = lower.charAt(0).toUpperCase() + lower.slice(1);
  const message = `${syscall}${path ? ` \`${path}\`` : ''}: ${text}`;
  return { code, errno, syscall, ...(path ? { path } : {}), message };
}

/** A Deferred that never reports an unhandled rejection (consumers may watch only one of its promises). */
function quietDeferred<T>(): Deferred<T> {
  const d = withResolvers<T>();
  d.promise.catch(() => undefined);
  return d;
}

/** The host pid of a process in init's namespace: the child of init whose innermost NSpid matches. */
function hostPidOf(initPid: number, nsPid: number): number | undefined {
  try {
    const children = readFileSync(`/proc/${initPid}/task/${initPid}/children`, 'utf8').trim().split(/\s+/);
    for (const c of children) {
      const status = readFileSync(`/proc/${c}/status`, 'utf8');
      const ns = /^NSpid:\s+(.*)$/m.exec(status)?.[1].trim().split(/\s+/);
      if (ns && Number(ns[ns.length - 1]) === nsPid) return Number(c);
    }
  } catch {
    // it already exited
  }
  return undefined;
}

export async function launch(spec: LaunchSpec, opts: LaunchOptions = {}): Promise<LaunchedContainer> {
  return new Launch(spec, opts).start();
}

interface PendingExec {
  forked: Deferred<LaunchedExec>;
  exited: Deferred<ExitStatus>;
  output: Promise<{ stdout: string; stderr: string }>;
  status?: ExitStatus;
  streams: AttachedStream[];
}

class Launch {
  private readonly t0 = performance.now();
  private readonly started = quietDeferred<{ phases: Phases }>();
  private readonly ready = quietDeferred<{ setupMs: number }>();
  private readonly exited = quietDeferred<ExitStatus>();
  private child?: SpawnedChild;
  private control = -1;
  private readonly phases: Phases = {};
  private spawnedAt = 0;
  private readyAt?: number;
  private gateAt?: number;
  private running = false;
  private setupError?: RuntimeError<'start_container_failed'>;
  private containerStatus?: ExitStatus;
  private initStatus?: ExitStatus;
  private controlClosed = false;
  private ioDrained = false;
  private io?: ContainerIo & { streams: AttachedStream[] };
  private draining = false;
  private settled = false;
  private readonly execs = new Map<number, PendingExec>();
  private execSeq = 0;
  private sockets?: ContainerSockets;

  private readonly outputs: Output;

  constructor(
    private readonly spec: LaunchSpec,
    private readonly opts: LaunchOptions,
  ) {
    this.outputs = opts.outputs ?? defaultOutput();
  }

  async start(): Promise<LaunchedContainer> {
    const { spec } = this;
    const closeOnError: number[] = spec.consoleFd !== undefined ? [spec.consoleFd] : [];
    if (spec.netnsFd !== undefined) closeOnError.push(spec.netnsFd);
    let io: ReturnType<typeof containerIo> | undefined;
    let sockets: ReturnType<typeof createSockets> | undefined;
    try {
      const plan = planLaunch(spec, hostView(this.opts.arch));
      for (const n of plan.notes) noteLog[n.logger][n.level](n.text);
      preparePersist(plan.persist);
      sockets = createSockets(spec.socketDir, plan.sockets);
      // In the plan's order: the container sees them from 3 on (NORTHSTAR_CONSOLE, NORTHSTAR_SOCKET_*).
      const extra = [...(plan.console ? [spec.consoleFd!] : []), ...sockets.fds];
      const netns = plan.netns ? [spec.netnsFd!] : undefined;

      io = containerIo(spec.container, spec.manifest.io, this.opts.output, this.outputs);
      const [ours, theirs] = native().socketpair('seq_packet');
      closeOnError.push(theirs);
      this.control = ours;
      native().sendMessage(ours, encodeSpec(plan.init), netns);
      this.child = native().spawn(
        { path: initBinaryPath(), argv: ['nstar-init', spec.container], envp: [], fds: [...io.stdio, theirs, ...extra], cloneFlags: plan.cloneFlags },
        (status) => this.onInitExit(status),
      );
      this.spawnedAt = performance.now();
      this.phases.spawn = this.spawnedAt - this.t0;
    } catch (e) {
      io?.close();
      io?.closeChildEnds();
      sockets?.closeFds();
      sockets?.unlink();
      for (const fd of closeOnError) closeSync(fd);
      if (this.control >= 0) closeSync(this.control);
      throw e instanceof RuntimeError ? e : errors.startFailed(spec.container, (e as Error).message, e);
    }
    // The container owns these now.
    io.closeChildEnds();
    sockets.closeFds();
    for (const fd of closeOnError) closeSync(fd);
    this.sockets = sockets;
    this.io = io;
    io.drained.then(() => {
      this.ioDrained = true;
      this.maybeSettle();
    });
    native().watchMessages(this.control, (m) => (m ? this.onMessage(parseInitMessage(m)) : this.onControlClosed()));
    return this.handle();
  }

  private handle(): LaunchedContainer {
    const child = this.child!;
    return {
      pid: child.pid,
      openGate: () => this.openGate(),
      ready: this.ready.promise,
      started: this.started.promise,
      exited: this.exited.promise,
      kill: (signal: number) => {
        child.signalGroup(signal);
      },
      exec: (req) => this.exec(req),
    };
  }

  /** False when init is gone (its exit is reported through the pidfd and the socket's EOF). */
  private send(msg: Buffer, fds?: number[]): boolean {
    if (this.controlClosed) return false;
    try {
      native().sendMessage(this.control, msg, fds);
      return true;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'EPIPE' || (e as NodeJS.ErrnoException).code === 'ECONNRESET') return false;
      throw e;
    }
  }

  private openGate(): void {
    if (this.gateAt !== undefined) return;
    this.gateAt = performance.now();
    this.send(encodeGate());
  }

  private fail(message: string, cause?: unknown): RuntimeError<'start_container_failed'> {
    return errors.startFailed(this.spec.container, message, cause);
  }

  private onMessage(m: InitMessage): void {
    switch (m.type) {
      case 'ready':
        this.readyAt = performance.now();
        this.phases.setup = m.setupUs / 1000;
        this.ready.resolve({ setupMs: this.phases.setup });
        break;
      case 'error': {
        const data = errnoData(m.errno, m.syscall, m.path);
        this.setupError = this.fail(data.message, systemError(data));
        this.ready.reject(this.setupError);
        this.started.reject(this.setupError);
        break;
      }
      case 'started': {
        this.running = true;
        this.phases.gate_wait = this.readyAt !== undefined && this.gateAt !== undefined ? Math.max(0, this.gateAt - this.readyAt) : 0;
        this.phases.exec = m.execUs / 1000;
        this.started.resolve({ phases: { ...this.phases } });
        break;
      }
      case 'failed': {
        const data = errnoData(m.errno, m.step, this.spec.init);
        this.started.reject(this.fail(data.message, systemError(data)));
        break;
      }
      case 'exit':
        this.running = false;
        this.containerStatus = m.status;
        break;
      case 'forked':
      case 'execfailed':
      case 'execexit':
        this.onExecMessage(m);
        break;
      default:
        log.warn(`${this.spec.container}: unexpected message from nstar-init: ${m.text}`);
    }
  }

  private onInitExit(status: ExitStatus | SystemErrorData): void {
    if ('exit' in status || 'signalled' in status) this.initStatus = status as ExitStatus;
    else {
      // waitid itself failed: the process is gone from our view but its status
      // is unknown. Reported as SIGKILL (what ends a container we cannot wait
      // for), and said so, never silently.
      log.error(`${this.spec.container}: waiting for nstar-init failed (${status.message}): reported as killed by SIGKILL`);
      this.initStatus = { signalled: { signal: 9 } };
    }
    this.maybeSettle();
  }

  private onControlClosed(): void {
    this.controlClosed = true;
    this.running = false;
    this.maybeSettle();
  }

  private maybeSettle(): void {
    if (this.settled || !this.initStatus || !this.controlClosed) return;
    if (!this.ioDrained) {
      if (this.draining) return;
      this.draining = true;
      // Init is gone: whatever still holds the output gets a short grace.
      void endedWithin(this.io!.streams, DRAIN_GRACE_MS).then(() => {
        this.io!.close();
        this.ioDrained = true;
        this.maybeSettle();
      });
      return;
    }
    this.settled = true;
    this.sockets?.unlink();
    const status = this.containerStatus ?? this.initStatus;
    // Errors (with their stack traces) only for what is still open: a normal exit settled both long ago.
    if (!this.ready.settled) this.ready.reject(this.fail(`nstar-init exited before its setup completed (${JSON.stringify(this.initStatus)})`));
    if (!this.started.settled) this.started.reject(this.fail(`nstar-init exited before the container started (${JSON.stringify(this.initStatus)})`));
    // Processes still running from exec requests died with the namespace.
    for (const [id, p] of this.execs) {
      p.forked.reject(errors.notStarted(this.spec.container));
      p.status ??= { signalled: { signal: 9 } };
      void endedWithin(p.streams, DRAIN_GRACE_MS).then(() => p.exited.resolve(p.status!));
      this.execs.delete(id);
    }
    if (this.setupError) this.exited.reject(this.setupError);
    else this.exited.resolve(status);
  }

  // ---------------------------------------------------------------- exec

  private async exec(req: ExecRequest): Promise<LaunchedExec> {
    // Between the gate and `started`, wait for the container process to exist.
    if (!this.running && this.gateAt !== undefined && !this.settled) await this.started.promise.catch(() => undefined);
    if (!this.running || this.controlClosed) throw errors.notStarted(this.spec.container);
    const id = ++this.execSeq;
    if (req.stdio) return this.execAttached(id, req, req.stdio);
    const { devnull, out, err } = execFds();
    // Exec output takes the container's path: read in the output worker, logged, kept in its ring.
    const streams = [out[0], err[0]].map((fd, i) =>
      this.outputs.attach({ target: this.spec.container, stream: i === 0 ? 'stdout' : 'stderr', fd, capture: CAPTURE_LIMIT }),
    );
    const output = Promise.all(streams.map((s) => s.ended)).then(([stdout, stderr]) => ({ stdout: stdout ?? '', stderr: stderr ?? '' }));
    const pending: PendingExec = { forked: quietDeferred<LaunchedExec>(), exited: quietDeferred<ExitStatus>(), output, streams };
    this.execs.set(id, pending);
    try {
      if (!this.send(encodeExec(id, req.path, req.args, this.execEnv(req)), [devnull, out[1], err[1]])) throw errors.notStarted(this.spec.container);
    } catch (e) {
      this.execs.delete(id);
      throw e;
    } finally {
      // init holds its own copies now (or the request failed): ours go either way.
      for (const fd of [devnull, out[1], err[1]]) closeSync(fd);
    }
    return pending.forked.promise;
  }

  /** The container's environment as its init got it (without the fds only init holds), then the request's. */
  private execEnv(req: ExecRequest): string[] {
    return Object.entries({ ...this.spec.env, ...req.env }).map(([k, v]) => `${k}=${v}`);
  }

  /** An exec whose stdio are the caller's fds (spec/streams.md attached exec): nothing captured here. */
  private execAttached(id: number, req: ExecRequest, stdio: [number, number, number]): Promise<LaunchedExec> {
    const pending: PendingExec = { forked: quietDeferred<LaunchedExec>(), exited: quietDeferred<ExitStatus>(), output: Promise.resolve({ stdout: '', stderr: '' }), streams: [] };
    this.execs.set(id, pending);
    if (!this.send(encodeExec(id, req.path, req.args, this.execEnv(req), req.tty === true), stdio)) {
      this.execs.delete(id);
      throw errors.notStarted(this.spec.container);
    }
    return pending.forked.promise;
  }

  private onExecMessage(m: Extract<InitMessage, { type: 'forked' | 'execfailed' | 'execexit' }>): void {
    const p = this.execs.get(m.id);
    if (!p) return;
    if (m.type === 'forked') {
      p.forked.resolve({ pid: hostPidOf(this.child!.pid, m.nsPid) ?? m.nsPid, nsPid: m.nsPid, exited: p.exited.promise, output: p.output });
    } else if (m.type === 'execfailed') {
      const data = errnoData(m.errno, m.step, '');
      p.forked.reject(errors.unexpected(`exec in ${this.spec.container}: ${data.message}`, systemError(data)));
      this.execs.delete(m.id);
    } else {
      p.status = m.status;
      void endedWithin(p.streams, DRAIN_GRACE_MS).then(() => p.exited.resolve(m.status));
      this.execs.delete(m.id);
    }
  }
}

/** /dev/null for an exec's stdin and a socketpair for each of its outputs; none left open if one fails. */
function execFds(): { devnull: number; out: [number, number]; err: [number, number] } {
  const opened: number[] = [];
  try {
    const devnull = openSync('/dev/null', 'r+');
    opened.push(devnull);
    const out = native().socketpair('stream');
    opened.push(...out);
    const err = native().socketpair('stream');
    opened.push(...err);
    return { devnull, out, err };
  } catch (e) {
    for (const fd of opened) closeSync(fd);
    throw e;
  }
}
