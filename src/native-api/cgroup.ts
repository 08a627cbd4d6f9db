// Typed contract of the addon's cgroup module (native/cgroup.cc): the eventfd
// that cgroup v1 OOM notification needs, and a watch of it on the calling
// thread's event loop (uv_poll: no threadpool thread is blocked).

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
}
