// Main-thread side of the output worker (output.worker.ts): container output
// leaves the main thread, which runs the supervisor, the pidfd watches and the
// console and must never spend unbounded time on a container's bytes.
//
// The worker starts with the first piped stream, lives as long as its Output
// (the runtime's, or the process-wide default for a bare launch()) and keeps
// the process alive only while it has streams to read. A worker that dies is started
// again and gets every stream back: the main thread keeps its own fd of each
// pipe's read end (the worker reads a dup), so the containers never see their
// pipe closed; at most the lines the dead worker had read but not written are
// lost. Main thread.
import { closeSync } from 'node:fs';
import { Worker } from 'node:worker_threads';

import { expose, releaseProxy, wrap, type Remote } from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';

import { customSink, enabled, formatLine, LOG_FD, logChannel, Logger, type LogRecord } from '../../log.js';
import { workerEntry } from '../../threads.js';
import type { OutputLine, StreamName } from './output-lines.js';
import type { ForwardedLine, OutputEvents, OutputStats, OutputWorkerApi } from './output.worker.js';

export type { OutputLine } from './output-lines.js';

export interface OutputSink {
  (stream: StreamName, line: string): void;
}

export interface OutputOptions {
  /** Bytes of recent output kept per container (config `log_buffer`). */
  ringBytes?: number;
}

export interface AttachRequest {
  /** The container: log target and ring key. */
  target: string;
  stream: StreamName;
  /** The pipe's read end; the Output owns it from now on and closes it at the end. */
  fd: number;
  /** Gets every line instead of the log (tests, tools). */
  sink?: OutputSink;
  /** Keep the lines in the container's ring (default true). */
  ring?: boolean;
  /** A new start: the ring forgets the previous run's lines. */
  reset?: boolean;
  /** Keep the first `capture` characters and resolve `ended` with them (exec). */
  capture?: number;
}

export interface AttachedStream {
  /** Settles once the worker took the stream (the drain grace counts from there). */
  attached: Promise<void>;
  /** Resolves at the stream's end, after its lines were written and delivered (with the capture, if asked). */
  ended: Promise<string | undefined>;
  /** Stops reading; `ended` resolves soon after. */
  close(): void;
}

/** A container's new lines as they come (logs `follow`). */
export interface Follower {
  /** The ring's lines at the moment the following began. */
  tail: OutputLine[];
  /** Stops the lines; idempotent. */
  stop(): void;
}

export interface FollowHandlers {
  line(l: OutputLine): void;
  /** The following ended on our side (the output worker died): no more lines come. */
  lost(reason: Error): void;
}

interface Live {
  id: number;
  req: AttachRequest;
  closing: boolean;
  attached: () => void;
  ended: (captured: string | undefined) => void;
}

export const DEFAULT_RING_BYTES = 64 << 10;
const log = new Logger('output');
const MAX_RESTART_DELAY_MS = 30_000;

export class Output {
  private worker?: Worker;
  private remote?: Remote<OutputWorkerApi>;
  private died?: Promise<never>;
  private readonly streams = new Map<number, Live>();
  private readonly followers = new Map<number, { target: string; h: FollowHandlers }>();
  private readonly drainWaiters = new Set<{ target: string; done: () => void }>();
  private seq = 0;
  private closed = false;
  private restartDelay = 0;
  private restartTimer?: NodeJS.Timeout;

  constructor(private readonly o: OutputOptions = {}) {}

  /** The worker thread, while one runs (tests terminate it to simulate a crash). */
  get thread(): Worker | undefined {
    return this.worker;
  }

  /** Followers (logs `follow`) being served now (tests, stats). */
  get following(): number {
    return this.followers.size;
  }

  /** Reads `req.fd` in the worker from now on. */
  attach(req: AttachRequest): AttachedStream {
    if (this.closed) throw new Error('output: attach after close');
    let attached!: () => void;
    let ended!: (captured: string | undefined) => void;
    const a = new Promise<void>((r) => (attached = r));
    const e = new Promise<string | undefined>((r) => (ended = r));
    const live: Live = { id: ++this.seq, req, closing: false, attached, ended };
    this.streams.set(live.id, live);
    this.send(live, req.reset === true);
    if (this.worker && this.streams.size === 1) this.holdWhileReading(this.worker);
    return {
      attached: a,
      ended: e,
      close: () => {
        if (live.closing || !this.streams.has(live.id)) return;
        live.closing = true;
        if (this.remote) this.remote.close(live.id).catch(() => undefined);
      },
    };
  }

  /** The last `count` lines of a container's output (all the ring holds when omitted). */
  async tail(target: string, count?: number): Promise<OutputLine[]> {
    if (!this.remote) return [];
    return Promise.race([this.remote.tail(target, count), this.died!]);
  }

  /**
   * The last `count` lines of `target` (all when omitted) and from then on its
   * new lines, until stop(). The handlers run on this thread for every line
   * without waiting: a follower bounds what it keeps itself.
   */
  async follow(target: string, count: number | undefined, h: FollowHandlers): Promise<Follower> {
    if (this.closed) throw new Error('output: follow after close');
    const remote = this.start();
    if (!remote) throw new Error('the output worker is restarting');
    const id = ++this.seq;
    // Registered before asking: lines for this id only come after the worker's answer.
    this.followers.set(id, { target, h });
    const stop = () => {
      if (!this.followers.delete(id)) return;
      if (this.remote === remote) remote.unfollow(id, target).catch(() => undefined);
    };
    try {
      const tail = await Promise.race([remote.follow(id, target, count), this.died!]);
      return { tail, stop };
    } catch (e) {
      stop();
      throw e;
    }
  }

  /** Resolves once no stream of `target` is being read any more (its output reached the rings). */
  drained(target: string): Promise<void> {
    return new Promise((done) => {
      if (![...this.streams.values()].some((l) => l.req.target === target)) return done();
      this.drainWaiters.add({ target, done });
    });
  }

  /** Drops a container's ring (uninstall). */
  forget(target: string): void {
    this.remote?.forget(target).catch(() => undefined);
  }

  /** The worker's queues and rings (bench, tests); undefined while no worker runs. */
  async stats(): Promise<OutputStats | undefined> {
    if (!this.remote) return undefined;
    return Promise.race([this.remote.stats(), this.died!]);
  }

  /** Stops the worker; streams still open end now (their fds are closed). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.restartTimer);
    const w = this.worker;
    const remote = this.remote;
    this.worker = undefined;
    this.remote = undefined;
    if (remote) remote[releaseProxy]();
    if (w) await w.terminate();
    for (const live of [...this.streams.values()]) this.finish(live.id, undefined);
    this.dropFollowers(new Error('the runtime is shutting down'));
  }

  private dropFollowers(reason: Error): void {
    const all = [...this.followers.values()];
    this.followers.clear();
    for (const f of all) f.h.lost(reason);
  }

  private send(live: Live, reset: boolean): void {
    if (live.closing) return this.finish(live.id, undefined);
    const remote = this.start();
    if (!remote) return; // sent when the worker is back
    const { req } = live;
    // Decided per stream, when it starts: the log level and whether anyone on
    // this thread listens to log records (tests, tools) or replaced the sink.
    const info = enabled('info');
    const forward = req.sink !== undefined || logChannel.hasSubscribers || (info && customSink() !== undefined);
    const opts = {
      id: live.id, fd: req.fd, target: req.target, stream: req.stream, ring: req.ring ?? true, reset,
      log: req.sink === undefined && info && customSink() === undefined, forward,
      ...(req.capture !== undefined ? { capture: req.capture } : {}),
    };
    remote.attach(opts).then(live.attached, (e: unknown) => {
      // The worker could not read it (dup failed: fds exhausted): end it rather than leave it unread.
      log.warn(`${req.target}: cannot read its ${req.stream}: ${(e as Error).message}`);
      this.finish(live.id, undefined);
    });
  }

  /** The worker's api, starting the worker when none runs; undefined while a restart waits. */
  private start(): Remote<OutputWorkerApi> | undefined {
    if (this.remote) return this.remote;
    if (this.restartTimer) return undefined;
    const { filename, workerData } = workerEntry(new URL('./output.worker.ts', import.meta.url));
    const w = new Worker(new URL(filename), { workerData, name: 'nstar-output' });
    const remote = wrap<OutputWorkerApi>(nodeEndpoint(w));
    expose(this.events(), nodeEndpoint(w));
    this.holdWhileReading(w);
    this.worker = w;
    this.remote = remote;
    let fail!: (e: Error) => void;
    this.died = new Promise<never>((_, reject) => (fail = reject));
    this.died.catch(() => undefined);
    w.on('error', (e) => log.error(`Output worker failed: ${e.stack ?? e.message}`));
    w.once('exit', (code) => {
      fail(new Error(`the output worker exited (code ${code})`));
      if (this.worker === w) this.restart(code);
    });
    remote.init({ logFd: LOG_FD, ringBytes: this.o.ringBytes ?? DEFAULT_RING_BYTES }).then(
      () => (this.restartDelay = 0),
      () => undefined,
    );
    return remote;
  }

  private restart(code: number): void {
    this.worker = undefined;
    this.remote = undefined;
    // The dead worker's subscriptions are gone with it: a follower is told, not left waiting.
    this.dropFollowers(new Error(`the output worker exited (code ${code})`));
    // Streams being closed are done (the dead worker's dups died with it); the rest go to the next worker.
    for (const live of [...this.streams.values()]) if (live.closing) this.finish(live.id, undefined);
    if (this.closed) return;
    log.warn(`The output worker exited (code ${code}) with ${this.streams.size} stream(s) open: starting another`);
    const again = () => {
      this.restartTimer = undefined;
      for (const live of this.streams.values()) this.send(live, false);
    };
    // A worker that dies at once again (it cannot load) is retried ever more slowly.
    if (this.restartDelay === 0) {
      this.restartDelay = 100;
      again();
    } else {
      this.restartTimer = setTimeout(again, this.restartDelay).unref();
      this.restartDelay = Math.min(MAX_RESTART_DELAY_MS, this.restartDelay * 2);
    }
  }

  /** The worker keeps the process alive while it has streams to read (their lines are not lost at exit), never after. */
  private holdWhileReading(w: Worker): void {
    if (this.streams.size > 0) w.ref();
    else w.unref();
  }

  private finish(id: number, captured: string | undefined): void {
    const live = this.streams.get(id);
    if (!live) return;
    this.streams.delete(id);
    if (this.worker && this.streams.size === 0) this.holdWhileReading(this.worker);
    closeSync(live.req.fd);
    live.attached();
    live.ended(captured);
    const target = live.req.target;
    if (this.drainWaiters.size > 0 && ![...this.streams.values()].some((l) => l.req.target === target)) {
      for (const w of [...this.drainWaiters]) {
        if (w.target !== target) continue;
        this.drainWaiters.delete(w);
        w.done();
      }
    }
  }

  private events(): OutputEvents {
    return {
      lines: (batch: ForwardedLine[]) => {
        for (const l of batch) this.deliver(l);
      },
      ended: (id, captured) => this.finish(id, captured),
    };
  }

  private deliver(l: ForwardedLine): void {
    const live = this.streams.get(l.id);
    if (!live) return;
    const { req } = live;
    if (l.followers) {
      for (const id of l.followers) this.followers.get(id)?.h.line({ stream: req.stream, line: l.line });
    }
    if (!l.forward) return;
    if (req.sink) return req.sink(req.stream, l.line);
    const time = new Date(l.time);
    if (logChannel.hasSubscribers) logChannel.publish({ time, level: 'info', target: req.target, message: l.line } satisfies LogRecord);
    const sink = customSink();
    if (sink && enabled('info')) sink(formatLine(time, 'info', req.target, l.line));
  }
}

let shared: Output | undefined;

/** The process-wide Output of a launch() without a runtime's own (tests, tools). */
export function defaultOutput(): Output {
  return (shared ??= new Output());
}
