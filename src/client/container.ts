// One container as an object (firkin's Container handle, in TypeScript's
// idiom) over a console connection, or in process (`runtime.client()`):
//
//   const client = await connect('unix:///run/northstar/console', { subscribe: true });
//   const c = client.container('hello-world:0.0.1');
//   await c.start();                                   // resolves when running
//   const p = await c.exec(['/bin/sh'], { tty: true }); // p.stdin, p.stdout, p.wait()
//   const { status, stdout } = await c.execWithOutput(['/bin/cat', '/etc/os-release']);
//   await c.copyIn('./conf', '/data/conf');
//   const status = await c.stop({ graceMs: 5000 });     // SIGTERM, SIGKILL after the grace
//
// Attached requests (exec with streams, copyOut) take a console connection
// each (spec/streams.md): the handle opens one per call through
// `client.redial`, so the handle's own connection stays usable; so do logs.
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import type { ContainerData, ExitStatus, Notification, StatCategory } from '../console/protocol.js';
import { STAT_CATEGORIES } from '../console/protocol.js';
import { copyFromContainer, copyToContainer } from './cp.js';
import type { ClientApi, LogChunk } from './client-api.js';
import { ClientError } from './errors.js';
import { collectOutput, ExecProcess, type ExecOutput, type ExecOutputOptions, type ExecStreamOptions } from './process.js';
import { signalNumber, type Signal } from './signals.js';

/** Options of the calls that may wait long. */
export interface Abortable {
  /**
   * Aborting rejects the call with the signal's reason; an aborted signal
   * sends nothing, and what the runtime already started goes on.
   */
  signal?: AbortSignal;
}

export interface StartOptions extends Abortable {
  /** Overrides the manifest's init (`"<INIT>"` stands for it). */
  init?: string;
  /** Overrides the manifest's arguments. */
  args?: string[];
  /** Added to the manifest's environment. */
  env?: Record<string, string>;
}

export interface StopOptions extends Abortable {
  /** How long after SIGTERM the runtime sends SIGKILL (default 10 s). */
  graceMs?: number;
}

export interface ExecOptions extends Abortable {
  env?: Record<string, string>;
}

function abortable<T>(p: Promise<T>, signal: AbortSignal | undefined, cleanup?: () => void): Promise<T> {
  if (!signal) return p;
  if (signal.aborted) {
    cleanup?.();
    return Promise.reject(signal.reason);
  }
  return new Promise((resolve, reject) => {
    const onAbort = () => {
      cleanup?.();
      reject(signal.reason);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    p.then(
      (v) => (signal.removeEventListener('abort', onAbort), resolve(v)),
      (e) => (signal.removeEventListener('abort', onAbort), reject(e)),
    );
  });
}

/** A handle on one installed container, `name:version`. Made by {@link Client.container}. */
export class Container {
  /** @internal */
  constructor(
    private readonly client: ClientApi,
    /** `name:version`. */
    readonly id: string,
  ) {}

  /**
   * Starts the container; resolves once its process runs (the start gate opened).
   * Throws {@link AlreadyRunningError}, {@link NoSuchContainerError}, ... as the runtime answers.
   */
  async start(o: StartOptions = {}): Promise<void> {
    o.signal?.throwIfAborted();
    const p = this.client.start(this.id, { init: o.init ?? null, args: o.args, env: o.env });
    await abortable(p, o.signal);
  }

  /**
   * Stops the container: SIGTERM, then SIGKILL after `graceMs` (firkin's
   * stop_with_grace). Resolves with the exit status when the client is
   * subscribed to notifications (`connect(url, { subscribe: true })`), else with null.
   */
  async stop(o: StopOptions = {}): Promise<ExitStatus | null> {
    o.signal?.throwIfAborted();
    const exited = this.client.subscribed ? this.nextExit() : undefined;
    try {
      await abortable(this.client.stop(this.id, o.graceMs ?? 10_000), o.signal);
    } catch (e) {
      exited?.cancel();
      throw e;
    }
    return exited ? abortable(exited.promise, o.signal, exited.cancel) : null;
  }

  /** Sends a signal (number or name) to the container's init. */
  async kill(signal: Signal = 'SIGTERM'): Promise<void> {
    await this.client.kill(this.id, signalNumber(signal));
  }

  /** Freezes the container's processes (cgroup freezer). */
  async pause(): Promise<void> {
    await this.client.pause(this.id);
  }

  /** Thaws a paused container. */
  async resume(): Promise<void> {
    await this.client.resume(this.id);
  }

  /**
   * Runs `argv[0]` with `argv[1..]` inside the running container, attached:
   * resolves once it runs with a process whose `stdin` (Writable), `stdout`
   * and `stderr` (Readables; with `tty` only stdout) are its streams, with
   * `resize`, `kill` and `wait`. Opens a console connection of its own
   * (closed at the exit). Needs the `exec` permission.
   */
  async exec(argv: readonly string[], o: ExecStreamOptions = {}): Promise<ExecProcess> {
    if (argv.length === 0) throw new TypeError('exec: argv must name the program');
    o.signal?.throwIfAborted();
    const conn = await this.dial('exec');
    try {
      const size = o.tty ? { cols: o.cols ?? 80, rows: o.rows ?? 24 } : {};
      const req = { exec: { container: this.id, path: argv[0]!, arguments: argv.slice(1), environment: o.env ?? {}, wait: false, attach: true, tty: o.tty === true, ...size } };
      const { response, stream } = await abortable(conn.attach(req), o.signal, () => conn.close());
      const pid = (response as { exec: { ok: { pid: number } } }).exec.ok.pid;
      const p = new ExecProcess(stream, pid, o.tty === true);
      const input = o.stdin;
      if (typeof input === 'string' || Buffer.isBuffer(input)) p.stdin.end(input);
      else if (input) void pipeline(input, p.stdin).catch(() => p.close());
      return p;
    } catch (e) {
      conn.close();
      throw e;
    }
  }

  /**
   * Runs `argv` attached and resolves with its exit status and all of its
   * stdout and stderr (firkin's wait_with_output). More than `maxBytes`
   * (default 16 MiB) on either stream kills it and rejects with an
   * {@link OutputTooLargeError}.
   */
  async execWithOutput(argv: readonly string[], o: ExecOutputOptions = {}): Promise<ExecOutput> {
    const max = o.maxBytes ?? 16 * 1024 * 1024;
    if (!Number.isInteger(max) || max < 0) throw new TypeError(`execWithOutput: invalid maxBytes ${o.maxBytes}`);
    const p = await this.exec(argv, { ...o, stdin: o.stdin ?? Buffer.alloc(0) });
    return abortable(collectOutput(p, `exec ${argv[0]} in ${this.id}`, max), o.signal, () => p.close());
  }

  /**
   * Runs `argv` inside the running container, its output to the container's
   * `io`, and resolves with its pid and exit status once it exited (the
   * console's exec with `wait`).
   */
  async run(argv: readonly string[], o: ExecOptions = {}): Promise<{ pid: number; status: ExitStatus }> {
    if (argv.length === 0) throw new TypeError('run: argv must name the program');
    o.signal?.throwIfAborted();
    const p = this.client.exec(this.id, argv[0]!, { args: argv.slice(1), env: o.env, wait: true });
    const r = await abortable(p, o.signal);
    return { pid: r.pid, status: r.status! };
  }

  /**
   * Copies the host file or directory `hostPath` to `containerPath` (as
   * `podman cp`: a directory's content lands below `containerPath/`'s name).
   * The container must run; only writable mounts take it. Needs the `copy` permission.
   */
  async copyIn(hostPath: string, containerPath: string): Promise<void> {
    if (hostPath === '-') throw new TypeError('copyIn: name a host file or directory');
    if (!containerPath.startsWith('/')) throw new TypeError(`copyIn: "${containerPath}" is not an absolute path in the container`);
    await copyToContainer(this.client, hostPath, this.id, containerPath, Readable.from([]));
  }

  /**
   * Copies `containerPath` (a file or directory) out to `hostPath`: into it
   * when it is an existing directory, else as that name. Symlinks from the
   * container are never followed on the host. Needs the `copy` permission.
   */
  async copyOut(containerPath: string, hostPath: string): Promise<void> {
    if (hostPath === '-') throw new TypeError('copyOut: name a host path');
    if (!containerPath.startsWith('/')) throw new TypeError(`copyOut: "${containerPath}" is not an absolute path in the container`);
    const conn = await this.dial('copyOut');
    try {
      await copyFromContainer(conn, this.id, containerPath, hostPath, new Writable({ write: (_c, _e, cb) => cb() }));
    } finally {
      conn.close();
    }
  }

  /**
   * The container's output (spec/streams.md logs): the last `tail` lines (all
   * the runtime keeps when omitted), and with `follow` its new output until it
   * exits, the iteration stops, or `signal` aborts. Chunks are whole lines of
   * stdout or stderr. Needs the `logs` permission.
   *
   * ```ts
   * for await (const { stream, data } of c.logs({ follow: true, tail: 100 })) process.stdout.write(data);
   * ```
   */
  async *logs(o: { tail?: number; follow?: boolean; signal?: AbortSignal } = {}): AsyncGenerator<LogChunk> {
    o.signal?.throwIfAborted();
    const conn = await this.dial('logs');
    const onAbort = () => conn.close();
    o.signal?.addEventListener('abort', onAbort, { once: true });
    try {
      const s = await conn.logs(this.id, { tail: o.tail, follow: o.follow });
      try {
        yield* s;
      } catch (e) {
        // Closed by the abort: the iteration simply ends.
        if (!o.signal?.aborted) throw e;
      }
    } finally {
      o.signal?.removeEventListener('abort', onAbort);
      conn.close();
    }
  }

  /** A new connection for an attached request. */
  private async dial(what: string): Promise<ClientApi> {
    const redial = this.client.redial;
    if (!redial) throw new ClientError('protocol', `${what} needs a connection of its own: use a client made by connect(url) or runtime.client()`);
    return redial();
  }

  /** Starts `argv` inside the running container without waiting; resolves with its pid. */
  async spawn(argv: readonly string[], o: { env?: Record<string, string> } = {}): Promise<number> {
    if (argv.length === 0) throw new TypeError('spawn: argv must name the program');
    return (await this.client.exec(this.id, argv[0]!, { args: argv.slice(1), env: o.env, wait: false })).pid;
  }

  /** Everything the runtime reports: manifest, mount, process, state, last start, statistics. */
  inspect(statistics: readonly StatCategory[] = []): Promise<ContainerData> {
    return this.client.inspect(this.id, statistics);
  }

  /** The cgroup statistics of the running container by category (all by default); null when not running. */
  async statistics(categories: readonly StatCategory[] = STAT_CATEGORIES): Promise<Record<string, unknown> | null> {
    const d = await this.client.inspect(this.id, categories);
    return (d.process?.statistics as Record<string, unknown> | undefined) ?? null;
  }

  /** The phases of the last start in ms (spawn, setup, cgroups, exec, total, ...); null before a start. */
  async startupTiming(): Promise<Record<string, number> | null> {
    return (await this.client.inspect(this.id, [])).startup ?? null;
  }

  /**
   * Resolves with the exit status of the container's next exit (its own, a
   * kill, a stop). Needs a client subscribed to notifications.
   */
  wait(o: Abortable = {}): Promise<ExitStatus> {
    const exited = this.nextExit();
    return abortable(exited.promise, o.signal, exited.cancel);
  }

  private nextExit(): { promise: Promise<ExitStatus>; cancel: () => void } {
    if (!this.client.subscribed) {
      throw new ClientError('protocol', `waiting for ${this.id} to exit needs notifications: connect with { subscribe: true }`);
    }
    let cancel = () => undefined as void;
    const promise = new Promise<ExitStatus>((resolve, reject) => {
      const off = this.client.watch((n: Notification | ClientError) => {
        if (n instanceof ClientError) {
          off();
          reject(n);
        } else if (typeof n === 'object' && 'exit' in n && n.exit[0] === this.id) {
          off();
          resolve(n.exit[1]);
        }
      });
      cancel = off;
    });
    promise.catch(() => undefined);
    return { promise, cancel: () => cancel() };
  }
}
