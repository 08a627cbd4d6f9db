// The kernel lane (`npm run test:kernel`): the guest tests run in a QEMU guest
// booted from Debian's kernel (kernel.ts), where device-mapper exists and
// cgroup2 is the only hierarchy — the two production paths this host's
// kernel cannot run. The guest sees the host's root read-only over 9p and
// runs the bundled tests (bundle.ts) under node's test runner; its output is
// relayed here, its exit code becomes ours.
//
//   node --import tsx test/kernel/lane.ts             every guest test
//   node --import tsx test/kernel/lane.ts <file>...   the given test files
//
// Outside CI a missing prerequisite (root, qemu, the kernel package) skips the
// lane with the reason; under CI=true it fails. TCG, not KVM: nested KVM hangs
// early in boot on the machines this runs on.
import { spawn, spawnSync } from 'node:child_process';
import { createInterface } from 'node:readline';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';

import { packageRoot } from '../../src/native.js';
import { bundleTests } from './bundle.js';
import { packOnHost } from './guest/fixtures.js';
import { guestKernel, Missing, type GuestKernel } from './kernel.js';

/** The whole guest, boot to power-off; the CI budget for the lane is 15 minutes. */
const GUEST_TIMEOUT_S = Number(process.env.NSTAR_KERNEL_TIMEOUT ?? 840);
const QEMU = 'qemu-system-x86_64';
/** Printed by command.sh once the guest runs our command: what comes before is firmware and kernel. */
const MARKER = 'lane: guest up';

/** The lane's test files: the guest's own checks, then runtime integration tests that hold on any cgroup layout. */
export function laneFiles(): string[] {
  const guest = join(packageRoot, 'test/kernel/guest');
  const own = readdirSync(guest).filter((f) => f.endsWith('.test.ts')).sort().map((f) => join(guest, f));
  const integration = (process.env.NSTAR_KERNEL_INTEGRATION ?? INTEGRATION.join(' ')).split(/\s+/).filter(Boolean);
  return [...own, ...integration.map((f) => join(packageRoot, 'test/integration', f))];
}

/**
 * The runtime's integration tests that also run in the guest: start/stop and errors, exec,
 * pause/resume, statistics, OOM, recovery after kill -9, shutdown cleanliness.
 * NSTAR_KERNEL_INTEGRATION="a.test.ts b.test.ts" picks others. runtime-mount.test.ts runs
 * here too: under dm-verity an umount answers once the verity device (held a moment longer by an
 * exiting container's mount namespace) is gone.
 */
const INTEGRATION = [
  'runtime-smoke.test.ts', 'runtime-start.test.ts',
  'ext-lifecycle.test.ts', 'ext-recovery.test.ts', 'cgroups-launch.test.ts', 'runtime-mount.test.ts',
];

function hasTool(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

function prerequisites(): GuestKernel {
  if (process.getuid?.() !== 0) throw new Missing('not root');
  if (!hasTool(QEMU)) throw new Missing(`no ${QEMU} (apt-get install qemu-system-x86)`);
  return guestKernel();
}

/** Host-side builds the guest needs and cannot do on its read-only root. */
function buildOnHost(): void {
  for (const args of [['scripts/build-native.mjs'], ['scripts/build-js.mjs'], ['--import', 'tsx', 'test/fixtures/build.ts']]) {
    const r = spawnSync(process.execPath, args, { cwd: packageRoot, encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`kernel lane: node ${args.join(' ')} failed:\n${r.stdout}${r.stderr}`);
  }
  mkdirSync(join(packageRoot, 'test/fixtures/out'), { recursive: true });
}

/** The script the guest's init runs once the host's root is its own (init.sh). */
function commandScript(bundles: string[]): string {
  const out = join(packageRoot, 'test/fixtures/out');
  const env = ['CI', 'NSTAR_LOG', 'NSTAR_STRESS_SECONDS'].filter((k) => process.env[k] !== undefined).map((k) => `export ${k}=${JSON.stringify(process.env[k])}`);
  return [
    'set -e',
    'export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root NO_COLOR=1 NSTAR_TEST=1 NSTAR_KERNEL_LANE=1',
    ...env,
    `cd ${JSON.stringify(packageRoot)}`,
    `echo "${MARKER}: $(uname -r), $(cat /sys/fs/cgroup/cgroup.controllers | tr ' ' ,), $(nproc) cpus"`,
    // Fixture NPKs missing on the host are packed in the guest: a tmpfs
    // overlay makes test/fixtures/out writable there, and nothing reaches the host.
    'mkdir -p /tmp/lane-fixtures/up /tmp/lane-fixtures/work',
    `mount -t overlay overlay -o lowerdir=${out},upperdir=/tmp/lane-fixtures/up,workdir=/tmp/lane-fixtures/work ${out}`,
    `exec node --test --test-concurrency=1 --test-timeout=300000 --test-reporter=spec ${bundles.map((b) => JSON.stringify(relative(packageRoot, b))).join(' ')}`,
    '',
  ].join('\n');
}

function qemuArgs(k: GuestKernel, results: string): string[] {
  return [
    '-accel', 'tcg', '-m', '2048', '-smp', '2',
    '-nographic', '-no-reboot',
    '-kernel', k.vmlinuz, '-initrd', k.initramfs,
    '-append', 'console=ttyS0 quiet loglevel=3 panic=-1',
    '-virtfs', 'local,path=/,mount_tag=host,security_model=passthrough,multidevs=remap,readonly=on',
    '-virtfs', `local,path=${results},mount_tag=results,security_model=passthrough`,
    // A block device for io.max and io.weight: loop devices would do for
    // blk-throttle, a virtio disk is what a target has.
    '-drive', `file=${join(results, 'disk.img')},if=virtio,format=raw`,
  ];
}

/**
 * Boots the guest and relays its output from MARKER on; resolves with the
 * guest command's exit code (undefined: it never finished) and the counts of
 * the test runner's summary (`ℹ pass 12`).
 */
async function boot(k: GuestKernel, results: string): Promise<{ code?: number; counts: Record<string, number> }> {
  const child = spawn('timeout', ['-k', '10', String(GUEST_TIMEOUT_S), QEMU, ...qemuArgs(k, results)], { stdio: ['ignore', 'pipe', 'pipe'] });
  const stop = () => child.kill('SIGTERM');
  process.once('SIGINT', stop).once('SIGTERM', stop);
  const early: string[] = [];
  const counts: Record<string, number> = {};
  let relaying = false;
  for (const stream of [child.stdout, child.stderr]) {
    createInterface({ input: stream }).on('line', (raw) => {
      // Firmware and serial console escapes (cursor, colours, reset) and CRs.
      // eslint-disable-next-line no-control-regex
      const line = raw.replace(/\x1b\[[0-9;?]*[a-zA-Z]|\x1bc|\r/g, '');
      if (line.includes(MARKER)) relaying = true;
      if (!relaying) return void early.push(line);
      if (/\] reboot: Power down$/.test(line)) return;
      const c = /^ℹ (\w+) (\d+)$/.exec(line);
      if (c) counts[c[1]!] = Number(c[2]);
      console.log(line);
    });
  }
  const exit = await new Promise<number | null>((r) => child.on('exit', (c) => r(c)));
  process.off('SIGINT', stop).off('SIGTERM', stop);
  const file = join(results, 'exit-code');
  if (existsSync(file)) return { code: Number(readFileSync(file, 'utf8').trim()), counts };
  console.error(`kernel lane: the guest did not finish (${exit === 124 ? `timed out after ${GUEST_TIMEOUT_S} s` : `qemu exited ${exit}`})`);
  if (!relaying) console.error(early.slice(-40).join('\n'));
  return { counts };
}

export async function main(argv: string[]): Promise<number> {
  let kernel: GuestKernel;
  try {
    kernel = prerequisites();
  } catch (e) {
    if (!(e instanceof Missing)) throw e;
    if (process.env.CI === 'true') {
      console.error(`kernel lane: prerequisite missing under CI: ${e.message}`);
      return 1;
    }
    console.log(`kernel lane skipped: ${e.message}`);
    return 0;
  }
  buildOnHost();
  await packOnHost();
  const files = argv.length ? argv.map((a) => resolve(a)) : laneFiles();
  const bundles = await bundleTests(files);
  const results = mkdtempSync(join(tmpdir(), 'nstar-lane-'));
  try {
    writeFileSync(join(results, 'command.sh'), commandScript(bundles));
    writeFileSync(join(results, 'disk.img'), '');
    truncateSync(join(results, 'disk.img'), 64 << 20);
    console.log(`kernel lane: ${kernel.version} under TCG, ${files.length} test files`);
    const { code, counts } = await boot(kernel, results);
    const failed = (counts.fail ?? 0) + (counts.cancelled ?? 0);
    console.log(`kernel: ${counts.pass ?? 0} passed, ${code === 0 ? failed : Math.max(failed, 1)} failed, ${counts.skipped ?? 0} skipped`);
    return code ?? 1;
  } finally {
    rmSync(results, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) process.exitCode = await main(process.argv.slice(2));
