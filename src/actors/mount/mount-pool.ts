// The mount pool: main-thread client of the Piscina workers that attach loop
// devices, verify and mount images (ARCHITECTURE.md "Mount path"). Many
// mounts run in parallel; there is no global lock. Main thread only.
//
// Tasks return data; this side turns failures into RuntimeErrors. Abort is
// cooperative (a shared flag the task checks between phases and while
// paused), so an aborted task unwinds its own loop device and target. A worker
// that dies mid-task (terminate, crash) cannot unwind: its loop fd is closed by
// the addon's env cleanup hook (AUTOCLEAR detaches the unmounted device) and
// this side removes the target it left.
//
// trackUnmanagedFds (Piscina's default, true) closes fds a worker opened
// through node:fs when it exits; a task therefore returns data, never an fd.
// Native fds are not tracked by Node: the addon closes those itself.
import { existsSync, rmdirSync } from 'node:fs';

import { MessageChannel } from 'node:worker_threads';

import { Piscina } from 'piscina';

import type { MountInput, MountOutput, UmountInput } from '../../machines/contracts.js';
import { RuntimeError, err, errors, ok, systemError } from '../../model/errors.js';
import type { ErrorCode, Result, SystemErrorData } from '../../model/errors.js';
import { Logger } from '../../log.js';
import { native } from '../../native.js';
import { withResolvers } from '../../model/with-resolvers.js';
import { workerEntry } from '../../threads.js';
import type { BatchItem, MountBatch, MountHooks, MountTask, TaskFailure } from './mount.worker.js';
import { isMountPoint } from './mountinfo.js';

const log = new Logger('mount');

export interface MountPoolOptions {
  /** Workers at most (config pool.threads). */
  threads: number;
  /** Workers kept while idle (config pool.min_threads). */
  minThreads: number;
  /** How long an idle worker above minThreads lives (config pool.idle_timeout). */
  idleTimeoutMs: number;
}

export interface MountOptions {
  signal?: AbortSignal;
  /** Test-only hooks (honoured when NSTAR_TEST=1). */
  hooks?: MountHooks;
}

export class MountPool {
  readonly #pool: Piscina<MountTask, Result<MountOutput | number | undefined, TaskFailure>>;

  constructor(opts: MountPoolOptions) {
    const threads = Math.max(1, Math.floor(opts.threads));
    const { filename, workerData } = workerEntry(new URL('./mount.worker.ts', import.meta.url));
    this.#pool = new Piscina({
      filename,
      workerData,
      maxThreads: threads,
      minThreads: Math.min(Math.max(0, Math.floor(opts.minThreads)), threads),
      idleTimeout: opts.idleTimeoutMs,
      // Each task blocks its thread in syscalls: one task per worker.
      concurrentTasksPerWorker: 1,
    });
  }

  /** The pool's worker threads (tests terminate one to simulate a crash). */
  get threads(): readonly import('node:worker_threads').Worker[] {
    return this.#pool.threads;
  }

  /** Attaches, verifies (keyed repositories) and mounts one image. Rejects with RuntimeError. */
  async mount(input: MountInput, opts: MountOptions = {}): Promise<MountOutput> {
    const aborted = aborter(opts.signal);
    const targetExisted = existsSync(input.target);
    let r: Result<MountOutput | number | undefined, TaskFailure>;
    try {
      if (opts.signal?.aborted) throw opts.signal.reason;
      r = await this.#pool.run({ op: 'mount', input, hooks: opts.hooks, abort: aborted.flag });
    } catch (e) {
      const cleanup = salvage(input.target, targetExisted);
      throw withCleanup(errors.unexpected(`mount ${input.container}: ${(e as Error)?.message ?? String(e)}`, e), cleanup);
    } finally {
      aborted.dispose();
    }
    if (!r.ok) throw mountFailure(input.container, r.error);
    return r.value as MountOutput;
  }

  /** Unmounts and removes the mount point; the loop (and dm) device goes with the mount. */
  async umount(input: UmountInput, opts: { signal?: AbortSignal } = {}): Promise<void> {
    const r = await this.#pool.run({ op: 'umount', input }, { signal: opts.signal ?? null });
    if (r.ok) return;
    if (r.error.error.code === 'EBUSY') throw withCause(errors.umountBusy(input.container), r.error);
    throw failure('umount', input.container, r.error);
  }

  /**
   * Mounts all concurrently; results in request order (Northstar's
   * mount_all). One batch task per thread pulls inputs from a shared counter
   * (no round trip to the main thread per image), as the C reference does.
   * `onResult` sees each result as it arrives.
   */
  async mountAll(
    inputs: MountInput[],
    opts: MountOptions & { onResult?: (index: number, r: Result<MountOutput, RuntimeError>) => void } = {},
  ): Promise<Result<MountOutput, RuntimeError>[]> {
    const results = new Array<Result<MountOutput, RuntimeError> | undefined>(inputs.length);
    const settle = (i: number, r: Result<MountOutput, RuntimeError>) => {
      results[i] = r;
      opts.onResult?.(i, r);
    };
    if (inputs.length <= 1 || opts.hooks) {
      await Promise.all(
        inputs.map((input, i) =>
          this.mount(input, opts).then(
            (value) => settle(i, ok(value)),
            (e: unknown) => settle(i, err(RuntimeError.from(e))),
          ),
        ),
      );
      return results as Result<MountOutput, RuntimeError>[];
    }
    const existed = inputs.map((i) => existsSync(i.target));
    const next = new Int32Array(new SharedArrayBuffer(4));
    const state = new Int32Array(new SharedArrayBuffer(4 * inputs.length));
    const aborted = aborter(opts.signal);
    const onItem = ({ index, result }: BatchItem) => {
      const input = inputs[index]!;
      settle(index, result.ok ? result : err(mountFailure(input.container, result.error)));
    };
    try {
      const tasks = Math.min(this.#pool.maxThreads, inputs.length);
      await Promise.all(Array.from({ length: tasks }, () => this.#batch({ op: 'mountBatch', inputs, next, state, abort: aborted.flag }, onItem)));
    } finally {
      aborted.dispose();
    }
    // What no result came back for: the worker died on it (salvage) or before it.
    return inputs.map((input, i): Result<MountOutput, RuntimeError> => {
      const r = results[i];
      if (r) return r;
      // Started (1) or done with its result lost (2): undo what it may have mounted.
      const started = state[i] !== 0;
      const cleanup = started ? salvage(input.target, existed[i]!) : [];
      const why = started ? 'the worker died while mounting it' : 'the worker died before it started';
      const error = withCleanup(errors.unexpected(`mount ${input.container}: ${why}`), cleanup);
      opts.onResult?.(i, err(error));
      return err(error);
    });
  }

  /**
   * Runs one batch task; resolves once every result it posted has arrived
   * (the task answers with how many it posted: messages on another port may
   * trail the task's own reply).
   */
  async #batch(task: Omit<MountBatch, 'port'>, onItem: (item: BatchItem) => void): Promise<void> {
    const { port1, port2 } = new MessageChannel();
    let received = 0;
    let expected = Infinity;
    const all = withResolvers<void>();
    port1.on('message', (item: BatchItem) => {
      onItem(item);
      if (++received >= expected) all.resolve();
    });
    try {
      const r = await this.#pool.run({ ...task, port: port2 }, { transferList: [port2] });
      expected = r.ok ? (r.value as number) : 0;
      if (received >= expected) all.resolve();
      await all.promise;
    } catch (e) {
      // The worker died: take what already arrived; the caller salvages the rest.
      log.warn(`mount batch: ${(e as Error)?.message ?? String(e)}`);
      await new Promise((resolve) => setImmediate(resolve));
    } finally {
      port1.close();
    }
  }

  /** Waits for running tasks, then stops the workers. */
  async close(): Promise<void> {
    await this.#pool.close();
  }

  /** Stops the workers now; running tasks fail (their devices are cleaned as for a crash). */
  async destroy(): Promise<void> {
    await this.#pool.destroy();
  }
}

/** A shared flag set when `signal` aborts; the task polls it between phases. */
function aborter(signal: AbortSignal | undefined): { flag: Int32Array; dispose(): void } {
  const flag = new Int32Array(new SharedArrayBuffer(4));
  if (!signal) return { flag, dispose() {} };
  const onAbort = () => {
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
  };
  if (signal.aborted) onAbort();
  signal.addEventListener('abort', onAbort, { once: true });
  return { flag, dispose: () => signal.removeEventListener('abort', onAbort) };
}

function mountFailure(container: string, f: TaskFailure): RuntimeError {
  if (f.phase === 'target' && f.error.code === 'EBUSY') return withCause(errors.mountBusy(container), f);
  return failure('mount', container, f);
}

function failure(op: string, container: string, f: TaskFailure): RuntimeError<'unexpected'> {
  return withCleanup(errors.unexpected(`${op} ${container}: ${f.phase}: ${f.error.message}`, systemError(f.error)), f.cleanup ?? []);
}

/** Keeps the errors of a failed rollback beside the original (message and `cleanup`). */
function withCleanup(e: RuntimeError<'unexpected'>, cleanup: SystemErrorData[]): RuntimeError<'unexpected'> {
  if (cleanup.length === 0) return e;
  const msg = `${e.fields.error} (cleanup failed: ${cleanup.map((c) => c.message).join('; ')})`;
  return new RuntimeError('unexpected', { error: msg }, { cause: e.cause, cleanup: cleanup.map(systemError) });
}

function withCause<C extends ErrorCode>(e: RuntimeError<C>, f: TaskFailure): RuntimeError<C> {
  return new RuntimeError(e.code, e.fields, { cause: systemError(f.error) });
}

/**
 * After a worker died mid-task: unmount the target if the task got that far,
 * and remove the directory it created. Its loop device detaches through
 * AUTOCLEAR once the addon's cleanup hook closed the fd and nothing mounts it.
 */
function salvage(target: string, targetExisted: boolean): SystemErrorData[] {
  const errs: SystemErrorData[] = [];
  if (isMountPoint(target)) {
    const r = native().umount(target, { detach: true });
    if (!r.ok) errs.push(r.error);
  }
  if (!targetExisted && existsSync(target)) {
    try {
      rmdirSync(target);
    } catch (e) {
      const x = e as NodeJS.ErrnoException;
      errs.push({ code: x.code ?? 'EIO', syscall: 'rmdir', path: target, message: x.message });
    }
  }
  if (errs.length > 0) log.warn(`cleanup of ${target} after a failed task: ${errs.map((e) => e.message).join('; ')}`);
  return errs;
}

