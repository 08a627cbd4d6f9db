// Typed contract of the addon's cgroup module (native/cgroup.cc): the eventfd
// that cgroup v1 OOM notification needs, and a watch of it on the calling
// thread's event loop (uv_poll: no threadpool thread is blocked; the callbacks
// run in the async context of the code that started the watch).

export interface EventfdWatch {
  /** Stops watching and closes the fd. Idempotent. */
  close(): void;
}

export interface CgroupNative {
  /** A new non-blocking, close-on-exec eventfd (counter 0). Throws `{code, errno, syscall:'eventfd'}`. */
  eventfd(): number;
  /**
   * Watches an eventfd and takes ownership of it (closed by `close()`).
   * `cb(null, n)` runs on this thread's loop with what the counter accumulated
   * since the last call (n ≥ 1); after `cb(err, 0)` (a read error) the watch is over.
   */
  eventfdWatch(fd: number, cb: (err: { code: string; message: string } | null, count: number) => void): EventfdWatch;
  /**
   * mkdir(path, 0755) of every path, in order, as one libuv threadpool job;
   * `cb` gets one errno per path (0: made).
   */
  cgroupMkdirs(paths: string[], cb: (errnos: number[]) => void): void;
  /**
   * open(O_WRONLY) + one write(2) of `data` + close, for each path in order;
   * stops at the first failure. One result per path: 0 done, an errno of the
   * write, minus the errno of a failed open, ECANCELED for those not tried.
   */
  cgroupWriteAll(paths: string[], data: string): number[];
  /** rmdir of every path, in order; one errno per path (0: removed). */
  cgroupRmdirs(paths: string[]): number[];
}
