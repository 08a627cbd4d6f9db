// A process started by the handle's attached exec (spec/streams.md), as Node
// streams: `stdin` a Writable, `stdout`/`stderr` Readables fed from one
// connection's frames. One pump reads the frames and stops while the
// Readable a frame belongs to is full: an unread stream stops the reading,
// the daemon's socket fills and the process blocks on its write. Nothing is
// buffered without bound.
import { Readable, Writable } from 'node:stream';

import type { ExitStatus, WireError } from '../console/protocol.js';
import type { AttachedStream } from './attached.js';
import { ClientError } from './errors.js';
import { signalNumber, type Signal } from './signals.js';

/** Options of {@link Container.exec}. */
export interface ExecStreamOptions {
  /** Added to the container's environment for this process. */
  env?: Record<string, string>;
  /** A terminal (from the container's devpts; needs a `dev` mount): no stderr, `resize` works. */
  tty?: boolean;
  /** Terminal size (with `tty`). */
  cols?: number;
  rows?: number;
  /** Sent to the process's stdin, which is then closed; without it `p.stdin` stays open until ended. */
  stdin?: Buffer | string | Readable;
  /** Aborting rejects a pending exec with the reason and closes its connection. */
  signal?: AbortSignal;
}

/** Options of {@link Container.execWithOutput}. */
export interface ExecOutputOptions extends ExecStreamOptions {
  /** The most bytes kept of stdout and of stderr each (default 16 MiB); more kills the process. */
  maxBytes?: number;
}

/** What {@link Container.execWithOutput} resolves with (firkin's wait_with_output). */
export interface ExecOutput {
  status: ExitStatus;
  stdout: Buffer;
  stderr: Buffer;
}

/**
 * The process wrote more than `maxBytes` on one stream: it was killed. (An
 * Error of its own: a ClientError subclass here would be evaluated before
 * ClientError in the module cycle with ./index.ts.)
 */
export class OutputTooLargeError extends Error {
  override name = 'OutputTooLargeError';
  constructor(
    message: string,
    readonly maxBytes: number,
  ) {
    super(message);
  }
}

/** A process inside a container, attached: made by {@link Container.exec}. */
export class ExecProcess {
  /** Its stdin; `end()` closes it (the process reads end of file). Writes after its exit are dropped. */
  readonly stdin: Writable;
  /** Its stdout (with a tty: the terminal's output). */
  readonly stdout: Readable;
  /** Its stderr; with a tty an empty stream that ends at the exit. */
  readonly stderr: Readable;
  private readonly status: Promise<ExitStatus>;
  private exited = false;
  private wakers: { 1?: () => void; 2?: () => void } = {};

  /** @internal */
  constructor(
    private readonly stream: AttachedStream,
    /** The pid in the runtime's pid namespace. */
    readonly pid: number,
    /** Whether it runs on a terminal. */
    readonly tty: boolean,
  ) {
    const wake = (ch: 1 | 2) => () => {
      const w = this.wakers[ch];
      this.wakers[ch] = undefined;
      w?.();
    };
    this.stdout = new Readable({ read: wake(1), destroy: (e, cb) => (wake(1)(), cb(e)) });
    this.stderr = new Readable({ read: wake(2), destroy: (e, cb) => (wake(2)(), cb(e)) });
    this.stdin = new Writable({
      write: (chunk: Buffer, _enc, cb) => {
        if (this.exited) return cb();
        this.stream.stdin(chunk).then(() => cb(), () => cb());
      },
      final: (cb) => {
        if (this.exited) return cb();
        this.stream.closeStdin().then(() => cb(), () => cb());
      },
    });
    this.status = this.pump();
    this.status.catch(() => undefined);
  }

  private async pump(): Promise<ExitStatus> {
    const outs = { 1: this.stdout, 2: this.stderr } as const;
    let failure: Error | undefined;
    try {
      for await (const f of this.stream.frames()) {
        if (f.channel !== 1 && f.channel !== 2) continue;
        const r = outs[f.channel];
        if (r.destroyed) continue;
        if (!r.push(f.payload)) {
          await new Promise<void>((resolve) => (this.wakers[f.channel as 1 | 2] = resolve));
        }
      }
    } catch (e) {
      failure = e as Error;
    }
    this.exited = true;
    for (const r of [this.stdout, this.stderr]) if (!r.destroyed) r.push(null);
    this.stream.close();
    const end = this.stream.end as (ExitStatus & { error?: WireError }) | undefined;
    if (end === undefined) throw new ClientError('closed', `the connection of process ${this.pid} closed before its exit status${failure ? `: ${failure.message}` : ''}`);
    if (end.error) throw ClientError.runtime(end.error);
    return end;
  }

  /** Sets the terminal's size (with `tty`; the process gets SIGWINCH). */
  async resize(cols: number, rows: number): Promise<void> {
    if (!this.tty) throw new TypeError('resize: the process has no terminal (exec with { tty: true })');
    if (!Number.isInteger(cols) || !Number.isInteger(rows) || cols < 1 || rows < 1) throw new TypeError(`resize: invalid size ${cols}x${rows}`);
    if (!this.exited) await this.stream.resize(cols, rows);
  }

  /** Sends a signal (number or name) to this process only (not the container's init). */
  async kill(signal: Signal = 'SIGTERM'): Promise<void> {
    const n = signalNumber(signal);
    if (!this.exited) await this.stream.signal(n);
  }

  /**
   * Resolves with the exit status. Read (or `resume()`) stdout and stderr
   * meanwhile: output nobody reads holds the process on its write.
   */
  wait(): Promise<ExitStatus> {
    return this.status;
  }

  /** Closes the connection: the runtime sends SIGHUP (tty) or closes stdin, then SIGKILL after 5 s. */
  close(): void {
    this.stream.close();
  }
}

/** Collects a process's output up to `maxBytes` per stream; more kills it and rejects. */
export async function collectOutput(p: ExecProcess, what: string, maxBytes: number): Promise<ExecOutput> {
  const bufs = { stdout: [] as Buffer[], stderr: [] as Buffer[] };
  let over: OutputTooLargeError | undefined;
  const drain = async (name: 'stdout' | 'stderr') => {
    let n = 0;
    for await (const chunk of p[name] as AsyncIterable<Buffer>) {
      n += chunk.length;
      if (n > maxBytes) {
        over ??= new OutputTooLargeError(`${what}: ${name} exceeds ${maxBytes} bytes (maxBytes): the process was killed; raise maxBytes or read exec()'s streams`, maxBytes);
        await p.kill('SIGKILL').catch(() => undefined);
        p.close();
        return;
      }
      bufs[name].push(chunk);
    }
  };
  const [status] = await Promise.allSettled([p.wait(), drain('stdout'), drain('stderr')]);
  if (over) throw over;
  if (status.status === 'rejected') throw status.reason;
  return { status: status.value, stdout: Buffer.concat(bufs.stdout), stderr: Buffer.concat(bufs.stderr) };
}
