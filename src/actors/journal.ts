// The runtime's crash journal: a small msgpackr file in run_dir that says what
// this instance owns — mounts, loop devices, cgroup directories, socket files.
// Rewritten (write temp + rename) on every change, so a kill -9 at any point
// leaves either the old or the new state, never a torn file. A restart reads
// it to clean what the dead instance left (spec/README.md deviation 17).
// Main thread.
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { pack, unpack } from 'msgpackr';

export interface JournalState {
  /** Pid of the runtime that wrote it. */
  pid: number;
  /** Mount target → device (loop or dm). */
  mounts: Record<string, string>;
  /** Cgroup directories created for containers (deepest first on removal). */
  cgroups: string[];
  /** Top-level cgroup directories. */
  topCgroups: string[];
  /** Container socket files. */
  sockets: string[];
  /** Host pids of running container inits. */
  pids: number[];
}

export const JOURNAL_FILE = 'northstar.journal';

function empty(): JournalState {
  return { pid: process.pid, mounts: {}, cgroups: [], topCgroups: [], sockets: [], pids: [] };
}

export class Journal {
  private state: JournalState = empty();
  readonly path: string;

  constructor(runDir: string) {
    this.path = join(runDir, JOURNAL_FILE);
  }

  /** The state a previous instance left, or undefined when there is none (or it is unreadable). */
  readPrevious(): JournalState | undefined {
    try {
      const s = unpack(readFileSync(this.path)) as Partial<JournalState>;
      return { ...empty(), ...s };
    } catch {
      return undefined;
    }
  }

  get current(): Readonly<JournalState> {
    return this.state;
  }

  update(fn: (s: JournalState) => void): void {
    fn(this.state);
    this.flush();
  }

  addMount(target: string, device: string): void {
    this.update((s) => (s.mounts[target] = device));
  }

  removeMount(target: string): void {
    this.update((s) => delete s.mounts[target]);
  }

  addList(key: 'cgroups' | 'topCgroups' | 'sockets', items: string[]): void {
    this.update((s) => s[key].push(...items.filter((i) => !s[key].includes(i))));
  }

  removeList(key: 'cgroups' | 'topCgroups' | 'sockets', items: string[]): void {
    this.update((s) => (s[key] = s[key].filter((i) => !items.includes(i))));
  }

  addPid(pid: number): void {
    this.update((s) => s.pids.push(pid));
  }

  removePid(pid: number): void {
    this.update((s) => (s.pids = s.pids.filter((p) => p !== pid)));
  }

  /** Starts a fresh journal for this instance. */
  reset(): void {
    this.state = empty();
    this.flush();
  }

  /** Removes the file at a clean shutdown. */
  remove(): void {
    rmSync(this.path, { force: true });
  }

  private flush(): void {
    const tmp = `${this.path}.tmp`;
    writeFileSync(tmp, pack(this.state));
    renameSync(tmp, this.path);
  }
}
