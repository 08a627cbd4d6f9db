// The output worker: thread entry that reads every piped container stream
// (`io: pipe`, exec output), keeps each container's ring of recent lines,
// writes the lines to the log and forwards them to the main thread where it
// asks for them. Reached through comlink (src/actors/output/output.ts); calls the
// main thread back through comlink on the same port.
//
// Backpressure (ARCHITECTURE.md "Threads and processes"): what waits to be
// written to the log or forwarded is bounded (HIGH_WATER). Above it the
// worker stops reading every pipe; the kernel's socket buffers fill and the
// containers block in write(), as they would behind a slow terminal. Nothing
// is dropped and nothing grows.
//
// fd ownership: the main thread keeps its fd of each pipe; the worker reads a
// dup of it, closed with the socket (also when the worker dies), so the read
// end stays open whatever happens here and no container gets SIGPIPE.
import { fstatSync, write } from 'node:fs';
import { Socket } from 'node:net';
import { parentPort } from 'node:worker_threads';

import { expose, wrap } from 'comlink';
import nodeEndpoint from 'comlink/dist/esm/node-adapter.mjs';

import { formatLine } from '../../log.js';
import { native } from '../../native.js';
import { LineSplitter, OutputRing, type OutputLine, type StreamName } from './output-lines.js';

/** One stream to read. */
export interface AttachOptions {
  id: number;
  /** The main thread's fd of the pipe's read end (it stays the owner; the worker reads a dup). */
  fd: number;
  /** The container: the log target and the ring's key. */
  target: string;
  stream: StreamName;
  /** Write each line to the log (info, the container as target). */
  log: boolean;
  /** Send each line to the main thread (OutputEvents.lines). */
  forward: boolean;
  /** Keep the lines in the container's ring. */
  ring: boolean;
  /** Forget the ring's lines first (a new start). */
  reset?: boolean;
  /** Keep the first `capture` characters of the stream and hand them back at its end (exec). */
  capture?: number;
}

export interface ForwardedLine {
  id: number;
  line: string;
  /** ms since the epoch, when the worker read it. */
  time: number;
  /** The stream asked for its lines (AttachOptions.forward); false when only followers get it. */
  forward: boolean;
  /** The followers (Output.follow) of the stream's container when it was read. */
  followers?: number[];
}

/** The main thread's side, called by the worker. */
export interface OutputEvents {
  /** Resolves when the main thread handled them: the worker sends the next batch only then. */
  lines(batch: ForwardedLine[]): void;
  /** The stream reached its end (or was closed) and every line of it was written and forwarded. */
  ended(id: number, captured?: string): void;
}

export interface OutputStats {
  streams: number;
  paused: boolean;
  /** Characters waiting for the log and for the main thread. */
  queued: { log: number; forward: number };
  rings: number;
  ringBytes: number;
}

/** What waits for the log or the main thread, at most; above it every pipe pauses. */
const HIGH_WATER = 1 << 20;
const LOW_WATER = 256 << 10;
/** pipe(7): a write of at most PIPE_BUF bytes is never interleaved with another writer's (our main thread's own log lines). */
const PIPE_BUF = 4096;
const FILE_CHUNK = 64 << 10;
const FORWARD_BATCH = 64 << 10;

type Marker = () => void;

/**
 * An ordered queue drained by one asynchronous consumer at a time (`take`
 * gets a batch of at most `batch` characters); markers run once everything
 * queued before them was taken.
 */
class Outlet<T> {
  private items: (T | Marker)[] = [];
  private busy = false;
  queued = 0;

  constructor(
    private readonly take: (items: T[]) => Promise<void>,
    private readonly size: (item: T) => number,
    private readonly batch: number,
    private readonly onLow: () => void,
  ) {}

  push(item: T): void {
    this.items.push(item);
    this.queued += this.size(item);
    if (!this.busy) this.next();
  }

  /** Resolves once everything pushed so far was taken. */
  flushed(): Promise<void> {
    return new Promise((resolve) => {
      this.items.push(resolve);
      if (!this.busy) this.next();
    });
  }

  private next(): void {
    while (typeof this.items[0] === 'function') (this.items.shift() as Marker)();
    if (this.items.length === 0) return;
    const taken: T[] = [];
    let chars = 0;
    while (this.items.length > 0 && typeof this.items[0] !== 'function') {
      const n = this.size(this.items[0] as T);
      if (taken.length > 0 && chars + n > this.batch) break;
      taken.push(this.items.shift() as T);
      chars += n;
    }
    this.busy = true;
    void this.take(taken).then(() => {
      this.busy = false;
      this.queued -= chars;
      if (this.queued < LOW_WATER) this.onLow();
      this.next();
    });
  }
}

/** Writes text to the log fd with fs.write (process.stderr in a worker is relayed through the main thread). */
function logWriter(fd: number): { chunk: number; take: (lines: string[]) => Promise<void> } {
  let chunk = PIPE_BUF;
  try {
    if (fstatSync(fd).isFile()) chunk = FILE_CHUNK;
  } catch {
    // a closed fd: writes fail below and the log is dropped
  }
  let broken = false;
  const writeAll = (buf: Buffer, done: () => void, off = 0, backoff = 0): void => {
    write(fd, buf, off, buf.length - off, null, (err, n) => {
      if (err?.code === 'EAGAIN' || err?.code === 'EINTR') {
        // A non-blocking sink (Node made the main thread's stderr so) that is full: try again soon.
        const wait = Math.min(50, backoff * 2 || 1);
        setTimeout(() => writeAll(buf, done, off, wait), wait);
        return;
      }
      // The log is gone (EPIPE, EBADF, ...): lines are dropped, the pipes keep being read.
      if (err) broken = true;
      if (!err && off + n < buf.length) return writeAll(buf, done, off + n);
      done();
    });
  };
  return {
    chunk,
    take: (lines) =>
      new Promise((resolve) => {
        if (broken) return resolve();
        writeAll(Buffer.from(lines.join('')), resolve);
      }),
  };
}

interface Stream {
  o: AttachOptions;
  socket: Socket;
  lines: LineSplitter;
  captured?: string;
  ended: boolean;
}

const events = wrap<OutputEvents>(nodeEndpoint(parentPort!));
const streams = new Map<number, Stream>();
const rings = new Map<string, OutputRing>();
/** Per container, the followers (logs `follow`) that get its new lines. */
const followers = new Map<string, Set<number>>();
let ringBytes = 64 << 10;
let paused = false;
let now = new Date();

const onLow = () => {
  if (!paused || logOut.queued >= LOW_WATER || forwardOut.queued >= LOW_WATER) return;
  paused = false;
  for (const s of streams.values()) s.socket.resume();
};

let logOut = new Outlet<string>(async () => undefined, (l) => l.length, PIPE_BUF, onLow);
const forwardOut = new Outlet<ForwardedLine>(
  (batch) => Promise.resolve(events.lines(batch)).catch(() => undefined),
  (l) => l.line.length + 32,
  FORWARD_BATCH,
  onLow,
);

function pauseIfFull(): void {
  if (paused || (logOut.queued < HIGH_WATER && forwardOut.queued < HIGH_WATER)) return;
  paused = true;
  for (const s of streams.values()) s.socket.pause();
}

function ringOf(target: string): OutputRing {
  let r = rings.get(target);
  if (!r) rings.set(target, (r = new OutputRing(ringBytes)));
  return r;
}

function onLine(s: Stream, line: string): void {
  const { o } = s;
  if (o.ring) ringOf(o.target).push(o.stream, line);
  if (o.log) logOut.push(formatLine(now, 'info', o.target, line) + '\n');
  const f = followers.get(o.target);
  if (o.forward || f) forwardOut.push({ id: o.id, line, time: now.getTime(), forward: o.forward, ...(f ? { followers: [...f] } : {}) });
  if (s.captured !== undefined && s.captured.length < o.capture!) s.captured += line + '\n';
}

async function end(s: Stream): Promise<void> {
  if (s.ended) return;
  s.ended = true;
  s.lines.end();
  s.socket.destroy();
  streams.delete(s.o.id);
  await Promise.all([logOut.flushed(), forwardOut.flushed()]);
  await events.ended(s.o.id, s.captured);
}

const api = {
  init(o: { logFd: number; ringBytes: number }): void {
    ringBytes = o.ringBytes;
    const w = logWriter(o.logFd);
    logOut = new Outlet<string>(w.take, (l) => l.length, w.chunk, onLow);
  },

  attach(o: AttachOptions): void {
    if (o.reset) rings.delete(o.target);
    // The dup is ours: the socket closes it, the main thread's fd stays open.
    const socket = new Socket({ fd: native().dup(o.fd), readable: true, writable: false, allowHalfOpen: true });
    const s: Stream = { o, socket, ended: false, lines: new LineSplitter((l) => onLine(s, l)) };
    if (o.capture !== undefined) s.captured = '';
    streams.set(o.id, s);
    socket.on('data', (chunk: Buffer) => {
      now = new Date();
      s.lines.push(chunk);
      pauseIfFull();
    });
    // A reset or any other read error ends the stream like EOF.
    socket.on('end', () => void end(s));
    socket.on('error', () => void end(s));
    if (paused) socket.pause();
  },

  /** Stops reading a stream (it ends as at EOF). */
  close(id: number): void {
    const s = streams.get(id);
    if (s) void end(s);
  },

  tail(target: string, count?: number): OutputLine[] {
    return rings.get(target)?.tail(count) ?? [];
  },

  /**
   * The ring's last `count` lines and, from the same instant, every new line of
   * `target` forwarded to follower `id`: nothing is lost or repeated between the two.
   */
  follow(id: number, target: string, count?: number): OutputLine[] {
    let f = followers.get(target);
    if (!f) followers.set(target, (f = new Set()));
    f.add(id);
    return rings.get(target)?.tail(count) ?? [];
  },

  unfollow(id: number, target: string): void {
    const f = followers.get(target);
    f?.delete(id);
    if (f?.size === 0) followers.delete(target);
  },

  forget(target: string): void {
    rings.delete(target);
  },

  stats(): OutputStats {
    let bytes = 0;
    for (const r of rings.values()) bytes += r.size;
    return { streams: streams.size, paused, queued: { log: logOut.queued, forward: forwardOut.queued }, rings: rings.size, ringBytes: bytes };
  },
};

export type OutputWorkerApi = typeof api;

expose(api, nodeEndpoint(parentPort!));
