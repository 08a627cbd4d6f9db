// Helpers of the tests that run only inside the kernel lane's guest
// (test/kernel/lane.ts): a kernel with device-mapper and a pure cgroup2
// hierarchy mounted at /sys/fs/cgroup. The daemon runs in its own mount
// namespace, so its mounts are read from /proc/<pid>/mountinfo.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { basename, join } from 'node:path';

import { loopsBackedBy } from '../../integration/runtime-checks.js';
import type { DaemonHarness } from '../../integration/runtime-harness.js';

/** describe() options: these tests need the guest's kernel; elsewhere they skip saying so. */
export function guestOnly(): { skip?: string } {
  return process.env.NSTAR_KERNEL_LANE === '1' ? {} : { skip: 'runs in the kernel lane guest (npm run test:kernel)' };
}

export const read = (p: string) => readFileSync(p, 'utf8').trim();

/** The mount at `target` in the mount namespace of `pid`: its source and fs type. */
export function mountAt(pid: number, target: string): { source: string; fstype: string } | undefined {
  for (const line of readFileSync(`/proc/${pid}/mountinfo`, 'utf8').split('\n')) {
    if (line.split(' ')[4] !== target) continue;
    const [fstype = '', source = ''] = line.split(' - ')[1]!.split(' ');
    return { source, fstype };
  }
  return undefined;
}

/** Where a container of the daemon is mounted (run_dir/<name>:<version>), as the daemon sees it. */
export function containerMount(h: DaemonHarness, id: string) {
  return mountAt(h.proc.pid!, join(h.config.runDir, id));
}

export function dmsetup(...args: string[]): string {
  return execFileSync('dmsetup', args, { encoding: 'utf8' }).trim();
}

/** Names of the device-mapper devices the runtime made (northstar-<random>). */
export function northstarDmDevices(): string[] {
  return readdirSync('/sys/block')
    .filter((d) => d.startsWith('dm-'))
    .flatMap((d) => {
      try {
        return [read(`/sys/block/${d}/dm/name`)];
      } catch {
        return []; // being removed: the kernel answers EINVAL, then the entry goes
      }
    })
    .filter((n) => n.startsWith('northstar-'));
}

/** The dm device /dev/dm-N: its name and the one device below it (the loop device). */
export function dmDevice(dev: string): { name: string; below: string } {
  const block = `/sys/block/${basename(dev)}`;
  const slaves = readdirSync(join(block, 'slaves'));
  assert.equal(slaves.length, 1, `${dev} sits on one device: ${slaves.join(' ')}`);
  return { name: read(join(block, 'dm/name')), below: slaves[0]! };
}

/** Resolves once `check` (sync or async) holds, polling every 200 ms; rejects naming `what` after `ms`. */
export async function eventually(check: () => boolean | Promise<boolean>, what: string, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

/** Drops the page cache, dentries and inodes: the next read goes to the device again. */
export function dropCaches(): void {
  writeFileSync('/proc/sys/vm/drop_caches', '3');
}

/** The container's cgroup on the pure v2 hierarchy. */
export function cgroupOf(h: DaemonHarness, name: string): string {
  return join('/sys/fs/cgroup', h.config.cgroup, name);
}

/**
 * Waits until the dm devices not in `before` are gone. The kernel removes a
 * verity device whose removal was deferred (DM_DEFERRED_REMOVE, set while it
 * is mounted) from a workqueue after the umount's last close: soon after,
 * not within the umount.
 */
export async function dmDevicesGone(before: string[], what: string): Promise<void> {
  const ours = () => northstarDmDevices().filter((d) => !before.includes(d));
  await eventually(() => ours().length === 0, `${what}: ${ours().join(' ')}`, 10_000);
}

/** Shuts the daemon down through its console; it exits 0 and leaves no dm device (beyond `dmBefore`), loop device, mount or cgroup. */
export async function shutdownClean(h: DaemonHarness, dmBefore: string[] = []): Promise<void> {
  await h.client.shutdown();
  const e = await h.exited;
  assert.equal(e.code, 0, `the daemon exits 0:\n${h.output()}`);
  await dmDevicesGone(dmBefore, 'no dm device of the runtime is left');
  assert.deepEqual(loopsBackedBy(h.dir), [], 'no loop device backed by our NPKs is left');
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(h.dir));
  assert.deepEqual(mounts, [], 'nothing is mounted under the test dir');
  assert.ok(!existsSync(join('/sys/fs/cgroup', h.config.cgroup)), `the top cgroup ${h.config.cgroup} is removed`);
}
