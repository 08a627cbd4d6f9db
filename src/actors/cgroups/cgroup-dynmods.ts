// cgroup favordynmods: fast task migration (config `cgroup_favordynmods`,
// spec/README.md configuration additions). Main thread, once at startup and
// once at shutdown.
//
// Why: moving a pid into a cgroup (the write to cgroup.procs every start
// does) takes the kernel's global cgroup_threadgroup_rwsem for writing, and
// that percpu rwsem waits for an RCU grace period on every first writer —
// 4–16 ms on these machines, more than the whole rest of a start. The
// cgroup2 mount option `favordynmods` (kernel >= 6.0) keeps the lock's
// writer path ready: the same write takes ~30 µs, at the price of slightly
// slower fork and exit (their read side leaves its per-CPU fast path).
// Kernels >= 6.18 additionally switch to a per-process lock for migrations
// the first time the option is set, and keep that switch until reboot.
//
// The option belongs to the cgroup2 root, which is global: it applies to v1
// hierarchies too (one lock serves every hierarchy). So on a host with a
// cgroup2 mount it is set by a remount keeping that mount's other options; a
// pure v1 host gets it through a throwaway cgroup2 mount (which also resets
// the root's other cgroup2 options — nsdelegate, memory_* — harmless where no
// cgroup2 mount exists to use them). Shutdown restores what was there.
// Setting it needs the initial cgroup namespace; elsewhere the kernel
// ignores it, which is reported and otherwise harmless.
import { mkdtempSync, readFileSync, rmdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { Logger } from '../../log.js';
import { native } from '../../native.js';
import { MS } from '../../native-api/loop.js';
import { parseMountinfo } from './cgroup-layout.js';

const log = new Logger('cgroups');

const OPTION = 'favordynmods';

/** The first cgroup2 mount of mountinfo text: mount point and super options ("rw,nsdelegate"). */
export function cgroup2Mount(mountinfo: string): { mount: string; superOptions: string[] } | undefined {
  const { v2Mount, v2Options } = parseMountinfo(mountinfo);
  return v2Mount === undefined ? undefined : { mount: v2Mount, superOptions: v2Options ?? [] };
}

/** The data string of a cgroup2 remount that keeps `current`'s root options and adds or drops favordynmods. */
export function remountData(current: string[], favor: boolean): string {
  const keep = current.filter((o) => o !== 'rw' && o !== 'ro' && o !== OPTION);
  return (favor ? [...keep, OPTION] : keep).join(',');
}

export interface Dynmods {
  /** Whether the option is in effect now (it was already, or we set it). */
  readonly active: boolean;
  /** Whether restore() will clear it: we set it (or a crashed instance whose journal we took over did). */
  readonly owned: boolean;
  /** Puts back what was there before: clears the option when we set it. Idempotent. */
  restore(): void;
}

/** A cgroup2 mount with `data` at a fresh directory, unmounted again: the root flags stay. */
function throughTempMount(data: string): void {
  const dir = mkdtempSync(join(tmpdir(), 'nstar-cgroup2-'));
  try {
    const n = native();
    const r = n.mount('cgroup2', dir, 'cgroup2', MS.NOSUID | MS.NODEV | MS.NOEXEC, data);
    if (!r.ok) throw new Error(`mount cgroup2 at ${dir} with "${data}": ${r.error.message}`);
    const u = n.umount(dir, { detach: true });
    if (!u.ok) throw new Error(`umount ${dir}: ${u.error.message}`);
  } finally {
    rmdirSync(dir);
  }
}

function apply(favor: boolean, readMountinfo: () => string): void {
  const v2 = cgroup2Mount(readMountinfo());
  if (!v2) return throughTempMount(favor ? OPTION : '');
  const data = remountData(v2.superOptions, favor);
  const r = native().mount(null, v2.mount, null, MS.REMOUNT, data);
  if (!r.ok) throw new Error(`remount ${v2.mount} with "${data}": ${r.error.message}`);
}

/** The option as the kernel shows it (super options of a cgroup2 mount); undefined without one to look at. */
function shown(readMountinfo: () => string): boolean | undefined {
  const v2 = cgroup2Mount(readMountinfo());
  return v2 ? v2.superOptions.includes(OPTION) : undefined;
}

/**
 * Sets favordynmods on the cgroup2 root unless it is already set — or sets
 * it again and owns it when `inherited`: a previous instance set it and died
 * before restoring (its journal says so). Never throws: a kernel without the
 * option (< 6.0) or a failed remount is a warning, and starts are merely slower.
 */
export function favorDynmods(
  readMountinfo = () => readFileSync('/proc/self/mountinfo', 'utf8'),
  opts: { inherited?: boolean } = {},
): Dynmods {
  const before = shown(readMountinfo);
  if (before === true && !opts.inherited) {
    log.debug(`cgroup2 ${OPTION} already set`);
    return { active: true, owned: false, restore: () => undefined };
  }
  try {
    apply(true, readMountinfo);
  } catch (e) {
    log.warn(`cgroups: cannot set ${OPTION} (cgroup migrations wait for RCU, starts are slower): ${(e as Error).message}`);
    return { active: false, owned: false, restore: () => undefined };
  }
  const after = shown(readMountinfo);
  if (after === false) {
    // Outside the initial cgroup namespace the kernel accepts the remount and ignores the flags.
    log.warn(`cgroups: the kernel did not take ${OPTION} (not in the initial cgroup namespace?); starts are slower`);
    return { active: false, owned: false, restore: () => undefined };
  }
  log.debug(`cgroup2 ${OPTION} set`);
  let restored = false;
  return {
    active: true,
    owned: true,
    restore() {
      if (restored) return;
      restored = true;
      try {
        apply(false, readMountinfo);
      } catch (e) {
        log.warn(`cgroups: cannot clear ${OPTION} again: ${(e as Error).message}`);
      }
    },
  };
}

/** Clears the option a dead instance left set (its journal says so) when this one does not want it. */
export function clearDynmods(readMountinfo = () => readFileSync('/proc/self/mountinfo', 'utf8')): void {
  if (shown(readMountinfo) === false) return;
  try {
    apply(false, readMountinfo);
  } catch (e) {
    log.warn(`cgroups: cannot clear ${OPTION} left by a previous instance: ${(e as Error).message}`);
  }
}
