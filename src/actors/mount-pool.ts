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
import { existsSync, readFileSync, rmdirSync } from 'node:fs';

import { Piscina } from 'piscina';

import type { MountInput, MountOutput, UmountInput } from '../machines/contracts.js';
import { RuntimeError, errors, systemError } from '../model/errors.js';
import type { ErrorCode, SystemErrorData } from '../model/errors.js';
import { Logger } from '../log.js';
import { native } from '../native.js';
import { workerEntry } from '../threads.js';
import type { MountHooks, MountTask, TaskFailure, TaskResult } from './mount.worker.js';

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

export type MountResult = { ok: true; value: MountOutput } | { ok: false; error: RuntimeError };

export class MountPool {
  readonly #pool: Piscina<MountTask, TaskResult<MountOutput | undefined>>;

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
    let r: TaskResult<MountOutput | undefined>;
    try {
      if (opts.signal?.aborted) throw opts.signal.reason;
      r = await this.#pool.run({ op: 'mount', input, hooks: opts.hooks, abort: aborted.flag });
    } catch (e) {
      const cleanup = salvage(input.target, targetExisted);
      throw withCleanup(errors.unexpected(`mount ${input.container}: ${(e as Error)?.message ?? String(e)}`, e), cleanup);
    } finally {
      aborted.dispose();
    }
    if (!r.ok && r.phase === 'target' && r.error.code === 'EBUSY') throw withCause(errors.mountBusy(input.container), r);
    if (!r.ok) throw failure('mount', input.container, r);
    return r.value as MountOutput;
  }

  /** Unmounts and removes the mount point; the loop (and dm) device goes with the mount. */
  async umount(input: UmountInput, opts: { signal?: AbortSignal } = {}): Promise<void> {
    const r = await this.#pool.run({ op: 'umount', input }, { signal: opts.signal ?? null });
    if (r.ok) return;
    if (r.error.code === 'EBUSY') throw withCause(errors.umountBusy(input.container), r);
    throw failure('umount', input.container, r);
  }

  /** Mounts all concurrently; results in request order (Northstar's mount_all). */
  async mountAll(inputs: MountInput[], opts: MountOptions = {}): Promise<MountResult[]> {
    const settled = await Promise.allSettled(inputs.map((i) => this.mount(i, opts)));
    return settled.map((s): MountResult =>
      s.status === 'fulfilled' ? { ok: true, value: s.value } : { ok: false, error: RuntimeError.from(s.reason) },
    );
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

function isMountPoint(target: string): boolean {
  const lines = readFileSync('/proc/self/mountinfo', 'utf8').split('\n');
  return lines.some((l) => l.split(' ')[4] === target);
}
