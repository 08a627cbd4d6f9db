// The manifest's unix sockets (spec/launch.md §5.5): created by the runtime
// before the launch as the launch plan lists them, passed to the container
// as fds, removed at exit.
// Main thread.
import { closeSync, mkdirSync, rmSync } from 'node:fs';
import type { SocketPlan } from '../../machines/launch-plan.js';
import { native } from '../../native.js';

export interface ContainerSockets {
  /** Runtime-side fds, sorted by socket name (closed by close()). */
  fds: number[];
  /** Socket names in the same order. */
  names: string[];
  /** Paths of the socket files. */
  paths: string[];
  /** Closes the fds (they are the container's now) — call after the spawn. */
  closeFds(): void;
  /** Removes the socket files (at container exit). */
  unlink(): void;
}

/** Makes the plan's sockets (socket_dir/<name>:<version>:<sock>), in its order. */
export function createSockets(socketDir: string, sockets: SocketPlan[]): ContainerSockets {
  const names = sockets.map((d) => d.name);
  const fds: number[] = [];
  const paths: string[] = [];
  const s: ContainerSockets = {
    fds,
    names,
    paths,
    closeFds() {
      for (const fd of fds.splice(0)) closeSync(fd);
    },
    unlink() {
      for (const p of paths) rmSync(p, { force: true });
    },
  };
  if (names.length === 0) return s;
  mkdirSync(socketDir, { recursive: true });
  try {
    for (const def of sockets) {
      paths.push(def.path);
      fds.push(native().unixSocket({ path: def.path, type: def.type, mode: def.mode, uid: def.uid, gid: def.gid, passcred: def.passcred }));
    }
  } catch (e) {
    s.closeFds();
    s.unlink();
    throw e;
  }
  return s;
}
