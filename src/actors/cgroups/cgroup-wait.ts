// Waiting for a cgroup to reach a state (frozen, thawed, empty), bounded.
// Where the kernel notifies (v2 cgroup.events: `frozen`, `populated`) the
// wait is woken by inotify; v1 files (freezer.state, cgroup.procs) do not
// notify, so the check is repeated with a short backoff (1 ms doubling to
// 32 ms). The check also runs on that timer when watching, so a missed
// notification costs at most 32 ms, never a hang. Main thread.
import { watch, type FSWatcher } from 'node:fs';

export interface WaitOptions {
  /** A file whose inotify events should re-run the check (v2 cgroup.events). */
  watchPath?: string;
  timeoutMs: number;
  /** Describes the state on timeout: "freeze `/sys/fs/cgroup/...`". */
  what: string;
  /** What the check saw last, for the timeout message. */
  detail?: () => string;
}

export class CgroupTimeoutError extends Error {
  readonly code = 'ETIMEDOUT';
}

/** Resolves once `check()` returns true; rejects after timeoutMs or when check throws. */
export function waitUntil(check: () => boolean, opts: WaitOptions): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let watcher: FSWatcher | undefined;
    let timer: NodeJS.Timeout | undefined;
    let delay = 1;
    let done = false;
    const finish = (err?: Error) => {
      if (done) return;
      done = true;
      watcher?.close();
      clearTimeout(timer);
      clearTimeout(deadline);
      if (err) reject(err);
      else resolve();
    };
    const run = () => {
      if (done) return;
      try {
        if (check()) finish();
      } catch (e) {
        finish(e as Error);
      }
    };
    const tick = () => {
      run();
      if (done) return;
      timer = setTimeout(tick, delay);
      delay = Math.min(delay * 2, 32);
    };
    const deadline = setTimeout(() => {
      run();
      const detail = opts.detail ? ` (${opts.detail()})` : '';
      finish(new CgroupTimeoutError(`${opts.what}: timed out after ${opts.timeoutMs} ms${detail}`));
    }, opts.timeoutMs);
    if (opts.watchPath) {
      try {
        // Watch first, then check: a change between the two is not lost.
        watcher = watch(opts.watchPath, run);
        watcher.on('error', () => undefined);
      } catch {
        // Without inotify the timer alone does the work.
      }
    }
    tick();
  });
}
