// Network namespaces made ahead of time. A container without a `network`
// entry gets a new namespace with lo up (deviation 14); creating it inside
// the clone of its init is the largest part of that clone (~0.4 ms of ~0.6
// here), on the main thread and on the start's critical path. The pool keeps
// one namespace ready, made by a short-lived native thread (netnsCreate), lo
// already up; launch() hands its fd to init, which only joins it (setns: no
// rtnl_lock on the start path). When none is ready (a burst of starts, or the
// kernel refused), launch() falls back to CLONE_NEWNET. The next one is made
// once the container that took one runs (refill()): measured, one made
// during the clone slows that clone as much as CLONE_NEWNET would, and one
// made during init's setup (mounts, pivot_root) triples that setup. Main thread.
import { closeSync } from 'node:fs';

import { Logger } from '../../log.js';
import { native } from '../../native.js';

const log = new Logger('launch');

export class NetnsPool {
  private readonly ready: number[] = [];
  private inFlight = 0;
  private closed = false;
  private warned = false;
  private readonly idle: (() => void)[] = [];

  /** `size` namespaces kept ready (each holds a namespace with its lo device: a few KB of kernel memory). */
  constructor(private readonly size = 1) {
    this.refill();
  }

  /**
   * A prepared namespace's fd, now the caller's; undefined when none is
   * ready. Call refill() once the container that uses it runs: making a
   * namespace while another is cloned or set up slows those (kernel locks
   * they share).
   */
  take(): number | undefined {
    return this.ready.shift();
  }

  /** Resolves once no namespace is being made (one is ready, or making it failed). */
  async settled(): Promise<void> {
    while (this.inFlight > 0) await new Promise<void>((resolve) => this.idle.push(resolve));
  }

  /** Closes the ready namespaces and waits for those being made (their fds are closed too). */
  async close(): Promise<void> {
    this.closed = true;
    for (const fd of this.ready.splice(0)) closeSync(fd);
    await this.settled();
  }

  /** Starts making namespaces until `size` are ready or under way. */
  refill(): void {
    while (!this.closed && this.ready.length + this.inFlight < this.size) {
      this.inFlight++;
      native().netnsCreate((err, fd) => {
        this.inFlight--;
        if (err || fd === undefined) {
          // EPERM, ENOSPC (user.max_net_namespaces), ...: starts clone their own; the next refill() tries again.
          if (!this.warned) log.debug(`cannot make a network namespace ahead of time: ${err?.message ?? 'no fd'}`);
          this.warned = true;
        } else if (this.closed) closeSync(fd);
        else this.ready.push(fd);
        if (this.inFlight === 0) for (const wake of this.idle.splice(0)) wake();
      });
    }
  }
}
