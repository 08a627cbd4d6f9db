// Crash recovery (spec/README.md deviation 17, "Beyond Northstar"): before a
// runtime starts, it cleans what a dead instance left behind — container inits
// still alive, mounts under run_dir, loop devices backed by our NPKs, cgroups
// under our top level, socket files, the old journal. Nothing is adopted.
// Main thread, at startup only.
import { existsSync, readdirSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

import { Logger } from '../log.js';
import { parseContainerId } from '../model/container-id.js';
import { native } from '../native.js';
import { Journal, type JournalState } from './journal.js';
import { dmNameOf, readMounts, removeVerityDevice } from './mount/index.js';

const log = new Logger('recovery');

export interface RecoveryInput {
  runDir: string;
  socketDir: string;
  /** Top-level cgroup name (config.cgroup). */
  cgroup: string;
  /** Directories of fs repositories: loop devices backed by files there are ours. */
  repositoryDirs: string[];
}

export interface RecoveryReport {
  killed: number[];
  unmounted: string[];
  /** dm-verity devices over our loop devices that a dead instance left unmounted. */
  verity: string[];
  detached: string[];
  cgroups: string[];
  sockets: string[];
  /** Empty mount-point directories (`run_dir/<name>:<version>`) a crash left behind. */
  mountpoints: string[];
}

/** Cleans leftovers of a previous instance. Throws if that instance is still alive. */
export function recover(input: RecoveryInput, journal: Journal): RecoveryReport {
  const prev = journal.readPrevious();
  if (prev && prev.pid !== process.pid && isRuntimeAlive(prev.pid)) {
    throw new Error(`another runtime (pid ${prev.pid}) owns ${input.runDir}`);
  }
  const report: RecoveryReport = { killed: [], unmounted: [], verity: [], detached: [], cgroups: [], sockets: [], mountpoints: [] };
  if (prev) report.killed = killLeftoverInits(prev);
  report.unmounted = unmountUnder(input.runDir);
  // A verity device holds its loop device open: the devices go first.
  report.verity = removeVerityDevices(input, prev);
  report.detached = detachLoops(input, prev);
  report.cgroups = removeCgroups(input.cgroup, prev);
  report.sockets = removeSockets(input.socketDir);
  report.mountpoints = removeMountpoints(input.runDir);
  const did = Object.values(report).reduce((n, l: unknown[]) => n + l.length, 0);
  if (did > 0) log.warn(`Cleaned leftovers of a previous instance: ${JSON.stringify(report)}`);
  return report;
}

function isRuntimeAlive(pid: number): boolean {
  try {
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
    return cmd.includes('northstar') || cmd.includes('main.ts');
  } catch {
    return false;
  }
}

function comm(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Inits die with their runtime (PDEATHSIG); any survivor is killed, never adopted. */
function killLeftoverInits(prev: JournalState): number[] {
  const killed: number[] = [];
  for (const pid of prev.pids) {
    const c = comm(pid);
    if (c === undefined || !c.startsWith('nstar-init')) continue;
    try {
      process.kill(pid, 'SIGKILL');
      killed.push(pid);
    } catch {
      // Already gone.
    }
  }
  return killed;
}

/** Mount points of this namespace at or below `dir`, deepest first. */
export function mountsUnder(dir: string): string[] {
  const prefix = dir.endsWith('/') ? dir : `${dir}/`;
  const out = readMounts().map((m) => m.target).filter((t) => t.startsWith(prefix));
  return out.sort((a, b) => b.length - a.length);
}

function unmountUnder(runDir: string): string[] {
  const done: string[] = [];
  for (const target of mountsUnder(runDir)) {
    const r = native().umount(target, { detach: true });
    if (!r.ok) {
      log.warn(`umount ${target}: ${r.error.message}`);
      continue;
    }
    done.push(target);
    try {
      rmdirSync(target);
    } catch {
      // A non-empty or busy directory stays; it is not a mount any more.
    }
  }
  return done;
}

/** Whether loop device `dev` (e.g. "loop3") is backed by one of our NPKs (repository files, memfds named npk-*). */
function isOurLoop(dev: string, input: RecoveryInput, known: Set<string>): boolean {
  let backing: string;
  try {
    backing = readFileSync(`/sys/block/${dev}/loop/backing_file`, 'utf8').trim();
  } catch {
    return false; // not attached
  }
  return (
    known.has(`/dev/${dev}`) ||
    backing.startsWith('/memfd:npk-') ||
    input.repositoryDirs.some((d) => backing.startsWith(d.endsWith('/') ? d : `${d}/`))
  );
}

function blockDevices(prefix: string): string[] {
  try {
    return readdirSync('/sys/block').filter((d) => d.startsWith(prefix));
  } catch {
    return [];
  }
}

/**
 * Our dm-verity devices (`northstar-*` over a loop device of ours) that are
 * mounted nowhere: a dead instance made them and died before its mount, or
 * its deferred removal never came. Removed at once (not deferred).
 */
function removeVerityDevices(input: RecoveryInput, prev: JournalState | undefined): string[] {
  const done: string[] = [];
  const blocks = new Map<string, string>();
  const known = new Set(Object.values(prev?.mounts ?? {}));
  const mounted = new Set(readMounts().map((m) => m.source));
  for (const dev of blockDevices('dm-')) {
    const name = dmNameOf(dev);
    if (name === undefined) continue; // gone meanwhile
    let slaves: string[];
    try {
      slaves = readdirSync(`/sys/block/${dev}/slaves`);
    } catch {
      continue; // gone meanwhile
    }
    if (!name.startsWith('northstar-') || mounted.has(`/dev/${dev}`) || mounted.has(`/dev/mapper/${name}`)) continue;
    if (!slaves.some((s) => isOurLoop(s, input, known))) continue;
    // Busy: a mount just detached (unmountUnder) still holds it; the kernel
    // removes it when that goes, and we wait for that below.
    let r = removeVerityDevice(name, false);
    if (!r.ok && r.error.code === 'EBUSY') r = removeVerityDevice(name, true);
    if (r.ok) {
      done.push(name);
      blocks.set(name, dev);
    } else log.warn(`dm remove ${name}: ${r.error.message}`);
  }
  // Deferred removals finish asynchronously; their loop devices stay attached
  // until then. Startup waits a bounded while so what it reports is gone.
  const deadline = Date.now() + VERITY_GONE_MS;
  const pending = () => done.filter((name) => dmNameOf(blocks.get(name)!) === name);
  while (pending().length > 0 && Date.now() < deadline) Atomics.wait(SLEEP, 0, 0, 20);
  for (const name of pending()) log.warn(`dm device ${name} is still there after ${VERITY_GONE_MS} ms`);
  return done;
}

const VERITY_GONE_MS = 3000;
const SLEEP = new Int32Array(new SharedArrayBuffer(4));

/**
 * Loop devices backed by our NPKs (repository files, or memfds named npk-*)
 * and mounted nowhere. AUTOCLEAR detaches most of them once their mount is
 * gone; this catches a device attached but never mounted by a dead instance.
 */
function detachLoops(input: RecoveryInput, prev: JournalState | undefined): string[] {
  const done: string[] = [];
  const known = new Set(Object.values(prev?.mounts ?? {}));
  const mounted = new Set(readMounts().map((m) => m.source));
  for (const dev of blockDevices('loop')) {
    if (!isOurLoop(dev, input, known) || mounted.has(`/dev/${dev}`)) continue;
    const r = native().loopDetach(`/dev/${dev}`);
    if (r.ok) done.push(`/dev/${dev}`);
    else log.warn(`detach /dev/${dev}: ${r.error.message}`);
  }
  return done;
}

/** Hierarchy roots to look in: every v1 controller mount and the cgroup2 mount. */
function cgroupRoots(): string[] {
  return readMounts().filter((m) => m.fstype === 'cgroup' || m.fstype === 'cgroup2').map((m) => m.target);
}

/** Kills what still runs in our cgroups and removes them, deepest first. */
function removeCgroups(top: string, prev: JournalState | undefined): string[] {
  const dirs = new Set<string>(prev?.cgroups ?? []);
  for (const root of cgroupRoots()) {
    const t = join(root, top);
    if (existsSync(t)) for (const d of walk(t)) dirs.add(d);
  }
  const sorted = [...dirs].filter((d) => existsSync(d)).sort((a, b) => b.length - a.length);
  const done: string[] = [];
  for (const d of sorted) {
    killProcs(d);
    waitEmpty(d, 2000);
    try {
      rmdirSync(d);
      done.push(d);
    } catch (e) {
      log.warn(`rmdir ${d}: ${(e as Error).message}`);
    }
  }
  return done;
}

/** Waits (bounded) until no task is left in the cgroup: killed tasks take a moment to exit. */
function waitEmpty(dir: string, timeoutMs: number): void {
  const deadline = Date.now() + timeoutMs;
  const pause = new Int32Array(new SharedArrayBuffer(4));
  while (Date.now() < deadline) {
    let procs = '';
    try {
      procs = readFileSync(join(dir, 'cgroup.procs'), 'utf8').trim();
    } catch {
      return;
    }
    if (procs === '') return;
    Atomics.wait(pause, 0, 0, 10);
  }
}

function walk(dir: string): string[] {
  const out = [dir];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) out.push(...walk(join(dir, e.name)));
  }
  return out;
}

function killProcs(dir: string): void {
  const kill = join(dir, 'cgroup.kill');
  if (existsSync(kill)) {
    try {
      writeFileSync(kill, '1');
      return;
    } catch {
      // Fall through to per-pid kills.
    }
  }
  try {
    const pids = readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean);
    for (const p of pids) {
      try {
        process.kill(Number(p), 'SIGKILL');
      } catch {
        // Gone.
      }
    }
  } catch {
    // No procs file: nothing to kill.
  }
}

/**
 * Mount points are named after their container; a crash between mkdir and
 * mount, or after umount and before rmdir, leaves them empty. Only empty
 * directories with a container id as name go (rmdir refuses anything else):
 * socket_dir or the console socket may live in run_dir too.
 */
function removeMountpoints(runDir: string): string[] {
  const done: string[] = [];
  let entries;
  try {
    entries = readdirSync(runDir, { withFileTypes: true });
  } catch {
    return done;
  }
  for (const e of entries) {
    if (!e.isDirectory() || !isContainerId(e.name)) continue;
    const dir = join(runDir, e.name);
    try {
      rmdirSync(dir);
      done.push(dir);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code !== 'ENOTEMPTY' && code !== 'EEXIST') log.warn(`rmdir ${dir}: ${(err as Error).message}`);
    }
  }
  return done;
}

function isContainerId(name: string): boolean {
  try {
    parseContainerId(name);
    return true;
  } catch {
    return false;
  }
}

/** Container sockets are named <name>:<version>:<socket>; a dead runtime's are stale. */
function removeSockets(socketDir: string): string[] {
  const done: string[] = [];
  if (!existsSync(socketDir)) return done;
  for (const f of readdirSync(socketDir)) {
    if (f.split(':').length !== 3) continue;
    rmSync(join(socketDir, f), { force: true });
    done.push(join(socketDir, f));
  }
  return done;
}
