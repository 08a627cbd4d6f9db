// The manifest's unix sockets (spec/launch.md §5.5): created by the runtime
// before the launch, passed to the container as fds, removed at exit.
// Main thread.
import { closeSync, mkdirSync, rmSync } from 'node:fs';
import type { Manifest } from '../../model/manifest.js';
import { checkComponent, child } from '../../model/safe-path.js';
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

/**
 * socket_dir/<name>:<version>:<sock>. The native side unlinks, binds, chmods
 * and chowns this path as root: it must be a file directly in socket_dir.
 */
export function socketPath(socketDir: string, container: string, sock: string): string {
  return child(socketDir, `${container}:${checkComponent(sock, 'socket name')}`, 'socket file name');
}

export function createSockets(socketDir: string, container: string, m: Manifest): ContainerSockets {
  const names = Object.keys(m.sockets).sort();
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
    for (const name of names) {
      const def = m.sockets[name];
      const path = socketPath(socketDir, container, name);
      paths.push(path);
      fds.push(native().unixSocket({ path, type: def.type, mode: def.mode, uid: def.uid, gid: def.gid, passcred: def.passcred }));
    }
  } catch (e) {
    s.closeFds();
    s.unlink();
    throw e;
  }
  return s;
}
