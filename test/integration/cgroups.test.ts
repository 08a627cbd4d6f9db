// Container cgroups on the real kernel with real processes. The hosts we test
// on are hybrid: every controller on v1 and an empty cgroup2 mount, so the v1
// controller files and the controller-less v2 paths (cgroup.procs,
// cgroup.freeze, cgroup.events, cgroup.kill) run for real here; the v2
// controller files are unit-tested (test/unit/cgroup-files.test.ts).
//
// Every assert.ok has a message: without one, node's assert re-reads the
// call site's source, which spins forever on tsx-transformed files.
//
// Processes are started gated (`read` on stdin, then exec) so that they run
// their workload only once they are in their cgroups, like a container behind
// the start gate.
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdirSync, readdirSync, readFileSync, readlinkSync, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { test, type TestContext } from 'node:test';

import { homeOf, layoutKind, readLayout, withoutV1, type CgroupLayout } from '../../src/actors/cgroups/cgroup-layout.js';
import { waitUntil } from '../../src/actors/cgroups/cgroup-wait.js';
import { CgroupTree, DEFAULT_RT_RUNTIME_US, type ContainerCgroups } from '../../src/actors/cgroups/cgroups.js';
import { stringifyJson } from '../../src/console/codec.js';
import type { MemoryEvent } from '../../src/machines/contracts.js';
import type { CGroups } from '../../src/model/manifest.js';
import { requirePrivileged } from './privileged.js';

const MiB = 1024 * 1024;
let serial = 0;

interface Fixture {
  tree: CgroupTree;
  top: string;
  layout: CgroupLayout;
  /** Starts `sh -c script` waiting on stdin; `go()` lets it run. */
  gated(script: string): { child: ChildProcess; pid: number; go(): void; exited: Promise<[number | null, NodeJS.Signals | null]> };
  mount(controller: 'memory' | 'cpu' | 'cpuacct' | 'cpuset' | 'blkio' | 'freezer' | 'pids'): string;
}

/** Every mount point of the host's cgroup hierarchies (v1 and v2). */
function allMounts(layout: CgroupLayout): string[] {
  return [...layout.v1.map((h) => h.mount), ...(layout.v2 ? [layout.v2.mount] : [])];
}

function leftovers(top: string): string[] {
  return allMounts(readLayout()).flatMap((m) => {
    const prefix = top.split('/')[0]!;
    return readdirSync(m).filter((e) => e.startsWith(prefix)).map((e) => join(m, e));
  });
}

/** A tree under a fresh top cgroup; after the test: processes killed, tree destroyed, nothing of ours left. */
async function fixture(t: TestContext, layout?: CgroupLayout): Promise<Fixture | undefined> {
  if (!requirePrivileged(t, { loop: false, mksquashfs: false, cgroups: true })) return undefined;
  const top = `nstar-test-cg-${process.pid}-${++serial}`;
  const tree = await CgroupTree.create(top, layout ? { layout } : {});
  const children: ChildProcess[] = [];
  t.after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    await tree.destroy();
    assert.deepEqual(leftovers(top), [], 'no cgroup of ours remains');
  });
  const used = layout ?? tree.layout;
  return {
    tree,
    top,
    layout: used,
    gated(script) {
      const child = spawn('sh', ['-c', `read go; ${script}`], { stdio: ['pipe', 'ignore', 'inherit'] });
      children.push(child);
      const exited = once(child, 'exit') as Promise<[number | null, NodeJS.Signals | null]>;
      return { child, pid: child.pid!, go: () => child.stdin!.write('go\n'), exited };
    },
    mount(c) {
      const h = homeOf(used, c);
      assert.ok(h?.version === 1, `${c} is a v1 controller on this host`);
      return h.mount;
    },
  };
}

function cgroupLines(pid: number): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of readFileSync(`/proc/${pid}/cgroup`, 'utf8').trim().split('\n')) {
    // hierarchy-id:controllers:path, and the path may hold colons (hello:0.0.2).
    const [, ctrls, ...path] = line.split(':');
    for (const c of ctrls!.split(',')) out.set(c === '' ? 'v2' : c, path.join(':'));
  }
  return out;
}

/** State letter and utime+stime (ticks) of a process, from /proc/<pid>/stat. */
function procStat(pid: number): { state: string; cpu: number } {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return { state: f[0]!, cpu: Number(f[11]) + Number(f[12]) };
}

const read = (p: string) => readFileSync(p, 'utf8').trim();
const idle = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('the pid lands in <top>/<name> of every hierarchy it uses', async (t) => {
  const f = await fixture(t);
  if (!f) return;
  const p = f.gated('exec sleep 1000');
  const before = cgroupLines(p.pid);
  const h = await f.tree.container('hello:0.0.1', undefined, p.pid);
  const lines = cgroupLines(p.pid);
  for (const c of ['memory', 'cpu', 'cpuacct', 'blkio', 'freezer']) {
    if (homeOf(f.layout, c as 'memory')) assert.equal(lines.get(c), `/${f.top}/hello`, c);
  }
  // A v1 hierarchy serving only cpuset or pids is left out when the manifest sets nothing there.
  for (const c of ['cpuset', 'pids']) {
    const home = homeOf(f.layout, c as 'cpuset');
    if (home?.version !== 1) continue;
    const shared = f.layout.v1.find((x) => x.mount === home.mount)!.controllers.some((x) => ['memory', 'cpu', 'cpuacct', 'blkio', 'freezer'].includes(x));
    assert.equal(lines.get(c), shared ? `/${f.top}/hello` : before.get(c), c);
  }
  // The v2 directory joins where v2 serves a controller; a controller-less one beside a v1 freezer (hybrid) is left out.
  const v2Used = h.paths.some((d) => f.layout.v2 && d.startsWith(`${f.layout.v2.mount}/`));
  if (f.layout.v2) assert.equal(lines.get('v2'), v2Used ? `/${f.top}/hello` : before.get('v2'));
  assert.equal(v2Used, f.tree.hierarchies.some((x) => x.version === 2 && x.controllers.length > 0), 'v2 is used exactly where it serves a controller');
  assert.deepEqual(h.pids(), [p.pid]);
  assert.ok(h.paths.every((d) => d.endsWith(`/${f.top}/hello`)), h.paths.join(' '));
  await h.destroy();
  assert.ok(h.paths.every((d) => !existsSync(d)), 'destroy removes the directory in every hierarchy');
  assert.equal((await p.exited)[1], 'SIGKILL');
});

test('manifest limits are written in v1 naming and read back', async (t) => {
  const f = await fixture(t);
  if (!f) return;
  const disk = readdirSync('/sys/block').find((d) => !d.startsWith('loop') && !d.startsWith('zram')) ?? 'loop0';
  const [major, minor] = read(`/sys/block/${disk}/dev`).split(':').map(Number) as [number, number];
  const weightFile = ['blkio.weight', 'blkio.bfq.weight'].find((w) => existsSync(join(f.mount('blkio'), w)));
  const cgroups: CGroups = {
    memory: {
      oom_monitor: false, memory_hard_limit: 64 * MiB, memory_soft_limit: 32 * MiB, memory_swap_limit: 128 * MiB,
      swappiness: 10, kernel_memory_limit: MiB, attrs: { 'memory.oom_control': '0' },
    },
    cpu: { cpus: '0', mems: '0', shares: 512, quota: 25_000, period: 50_000, attrs: { 'cpu.cfs_burst_us': '1000' } },
    blkio: {
      // blkio.weight (CFQ) or blkio.bfq.weight (BFQ) exists only with a proportional I/O scheduler loaded.
      ...(weightFile ? { weight: 300 } : {}), weight_device: [], throttle_read_bps_device: [{ major, minor, rate: MiB }], throttle_read_iops_device: [],
      throttle_write_bps_device: [], throttle_write_iops_device: [{ major, minor, rate: 100 }], attrs: {},
    },
  };
  const p = f.gated('exec sleep 1000');
  await f.tree.container('limits:1.0.0', cgroups, p.pid);
  const mem = join(f.mount('memory'), f.top, 'limits');
  assert.equal(read(join(mem, 'memory.limit_in_bytes')), String(64 * MiB));
  assert.equal(read(join(mem, 'memory.soft_limit_in_bytes')), String(32 * MiB));
  assert.equal(read(join(mem, 'memory.memsw.limit_in_bytes')), String(128 * MiB));
  assert.equal(read(join(mem, 'memory.swappiness')), '10');
  const cpu = join(f.mount('cpu'), f.top, 'limits');
  assert.equal(read(join(cpu, 'cpu.shares')), '512');
  assert.equal(read(join(cpu, 'cpu.cfs_quota_us')), '25000');
  assert.equal(read(join(cpu, 'cpu.cfs_period_us')), '50000');
  assert.equal(read(join(cpu, 'cpu.cfs_burst_us')), '1000');
  assert.equal(read(join(f.mount('cpuset'), f.top, 'limits', 'cpuset.cpus')), '0');
  const blkio = join(f.mount('blkio'), f.top, 'limits');
  if (weightFile) assert.match(read(join(blkio, weightFile)), /(^|\s)300$/);
  else t.diagnostic('no blkio weight file on this host (no CFQ/BFQ scheduler): weight not tested');
  assert.equal(read(join(blkio, 'blkio.throttle.read_bps_device')), `${major}:${minor} ${MiB}`);
  assert.equal(read(join(blkio, 'blkio.throttle.write_iops_device')), `${major}:${minor} 100`);
  // The pid joined after the limits: it is inside.
  assert.equal(cgroupLines(p.pid).get('memory'), `/${f.top}/limits`);
});

test('a bad manifest value fails with an error naming the file, and leaves nothing behind', async (t) => {
  const f = await fixture(t);
  if (!f) return;
  const p = f.gated('exec sleep 1000');
  const before = cgroupLines(p.pid);
  const quotaFile = join(f.mount('cpu'), f.top, 'bad', 'cpu.cfs_quota_us');
  await assert.rejects(f.tree.container('bad:0.0.1', { cpu: { quota: 10, attrs: {} } }, p.pid), (e: NodeJS.ErrnoException) => {
    assert.equal(e.message, `write \`${quotaFile}\`: Invalid argument`);
    assert.equal(e.code, 'EINVAL');
    assert.equal(e.path, quotaFile);
    return true;
  });
  const bogus = join(f.mount('memory'), f.top, 'bad', 'memory.bogus');
  await assert.rejects(f.tree.container('bad:0.0.1', { memory: { oom_monitor: false, attrs: { 'memory.bogus': '1' } } }, p.pid), {
    code: 'ENOENT',
    message: `open \`${bogus}\`: No such file or directory`,
  });
  // Nothing was created for good, and the process was never moved.
  for (const top of f.tree.topPaths()) assert.deepEqual(readdirSync(top, { withFileTypes: true }).filter((e) => e.isDirectory()), [], top);
  assert.deepEqual(cgroupLines(p.pid), before);
  assert.equal(p.child.exitCode, null);
});

test('a pid that is gone fails naming cgroup.procs and removes what was created', async (t) => {
  const f = await fixture(t);
  if (!f) return;
  const p = f.gated('exit 0');
  p.go();
  await p.exited;
  const procs = join(f.tree.hierarchies[0]!.mount, f.top, 'gone', 'cgroup.procs');
  await assert.rejects(f.tree.container('gone:0.0.1', undefined, p.pid), { code: 'ESRCH', message: `write \`${procs}\`: No such process` });
  for (const top of f.tree.topPaths()) assert.deepEqual(readdirSync(top, { withFileTypes: true }).filter((e) => e.isDirectory()), []);
});

async function freezeStopsBusyLoop(t: TestContext, layout: CgroupLayout | undefined, check: (h: ContainerCgroups, frozen: boolean) => void) {
  const f = await fixture(t, layout);
  if (!f) return;
  const p = f.gated('while :; do :; done');
  const h = await f.tree.container('busy:0.0.1', undefined, p.pid);
  p.go();
  const usage = () => h.stats(['cpu']).cpu!.usage_usec!;
  await waitUntil(() => usage() > 20_000, { timeoutMs: 10_000, what: 'busy loop runs' });

  await h.freeze();
  check(h, true);
  const frozenAt = { usage: usage(), proc: procStat(p.pid) };
  assert.notEqual(frozenAt.proc.state, 'R', 'a frozen task is not running');
  // Only time shows that nothing runs: a busy loop would burn ~100 ms of cpu here.
  await idle(100);
  assert.equal(usage(), frozenAt.usage, 'the cgroup used no cpu while frozen');
  assert.equal(procStat(p.pid).cpu, frozenAt.proc.cpu, 'the process used no cpu while frozen');

  await h.thaw();
  check(h, false);
  await waitUntil(() => usage() > frozenAt.usage + 20_000, { timeoutMs: 10_000, what: 'busy loop resumes' });
  assert.ok(procStat(p.pid).cpu >= frozenAt.proc.cpu, 'cpu time never goes back');
  await h.destroy();
  assert.equal((await p.exited)[1], 'SIGKILL');
}

test('freeze stops a busy loop and thaw resumes it (v1 freezer)', async (t) => {
  const layout = readLayout();
  if (!homeOf(layout, 'freezer') || homeOf(layout, 'freezer')!.version !== 1) return t.skip('no v1 freezer on this host');
  await freezeStopsBusyLoop(t, undefined, (h, frozen) => {
    const dir = h.paths.find((d) => d.includes(homeOf(layout, 'freezer')!.mount))!;
    assert.equal(read(join(dir, 'freezer.state')), frozen ? 'FROZEN' : 'THAWED');
  });
});

test('freeze stops a busy loop and thaw resumes it (v2 cgroup.freeze)', async (t) => {
  const host = readLayout();
  if (!host.v2) return t.skip('no cgroup2 mount on this host');
  const layout = withoutV1(host, 'freezer');
  await freezeStopsBusyLoop(t, layout, (h, frozen) => {
    const dir = h.paths.find((d) => d.startsWith(host.v2!.mount + '/'))!;
    assert.equal(read(join(dir, 'cgroup.freeze')), frozen ? '1' : '0');
    assert.match(read(join(dir, 'cgroup.events')), new RegExp(`^frozen ${frozen ? 1 : 0}$`, 'm'));
  });
});

test('a process allocating beyond memory_hard_limit is OOM-killed and the monitor reports it', async (t) => {
  const f = await fixture(t);
  if (!f) return;
  const cgroups: CGroups = {
    memory: { oom_monitor: true, memory_hard_limit: 16 * MiB, memory_swap_limit: 16 * MiB, swappiness: 0, attrs: {} },
  };
  // tail buffers /dev/zero looking for a newline that never comes.
  const p = f.gated('exec tail /dev/zero');
  const h = await f.tree.container('memeater:0.0.1', cgroups, p.pid);
  const oom = new Promise<MemoryEvent>((resolve) => h.onOom(resolve));
  p.go();
  const event = await oom;
  assert.ok(event.oom !== null && event.oom >= 1, `oom counted: ${JSON.stringify(event)}`);
  const memoryHome = homeOf(f.layout, 'memory')!;
  if (memoryHome.version === 1) {
    // spec/README.md deviation 18: v1 knows only oom (eventfd) and oom_kill.
    assert.deepEqual([event.low, event.high, event.max], [null, null, null]);
    assert.equal(typeof event.oom_kill, 'number');
  }
  const [, signal] = await p.exited;
  assert.equal(signal, 'SIGKILL');
  const ev = h.stats(['memory_events']).memory_events!;
  assert.ok(ev.oom_kill! >= 1, `oom_kill counted: ${JSON.stringify(ev)}`);
  assert.ok(ev.oom! >= 1, `the monitor's count is in the stats: ${JSON.stringify(ev)}`);
  await h.destroy();
});

test('statistics by category have sane values', async (t) => {
  const f = await fixture(t);
  if (!f) return;
  const p = f.gated('exec sh -c "while :; do :; done"');
  const h = await f.tree.container('stats:0.0.1', { memory: { oom_monitor: false, memory_hard_limit: 32 * MiB, attrs: {} } }, p.pid);
  p.go();
  await waitUntil(() => h.stats(['cpu']).cpu!.usage_usec! > 10_000, { timeoutMs: 10_000, what: 'cpu usage grows' });
  const s = h.stats();
  assert.deepEqual(Object.keys(s).sort(), ['cpu', 'io', 'memory', 'memory_events', 'pids']);
  assert.ok(s.cpu!.usage_usec! > 0, JSON.stringify(s.cpu));
  // cpuacct's user/sys split is tick-based, so it need not add up to the usage.
  assert.ok(s.cpu!.user_usec! + s.cpu!.system_usec! > 0, JSON.stringify(s.cpu));
  assert.ok(s.memory!.usage_bytes! > 0, stringifyJson(s.memory));
  assert.equal(s.memory!.limit_bytes, 32 * MiB);
  assert.equal(typeof (s.memory!.stat.rss ?? s.memory!.stat.anon), "number");
  assert.deepEqual(s.pids, { current: 1, max: null });
  assert.equal(typeof s.io, 'object');
  assert.equal(s.memory_events!.oom, null, 'no monitor, no eventfd count');
  assert.deepEqual(Object.keys(h.stats(['pids', 'cpu'])).sort(), ['cpu', 'pids']);
  // The console writes them; counters past 2^53 (v1 memsw limits) are exact bigints.
  assert.doesNotThrow(() => stringifyJson(s));
});

async function destroyKillsEverything(t: TestContext, layout?: CgroupLayout) {
  const f = await fixture(t, layout);
  if (!f) return;
  const p = f.gated('sleep 1000 & sleep 1000 & wait');
  const h = await f.tree.container('crowd:0.0.1', undefined, p.pid);
  p.go();
  await waitUntil(() => h.pids().length === 3, { timeoutMs: 10_000, what: 'three processes inside' });
  const members = h.pids();
  await h.freeze();
  await h.destroy();
  assert.ok(h.paths.every((d) => !existsSync(d)), 'every directory removed');
  assert.equal((await p.exited)[1], 'SIGKILL');
  for (const pid of members) {
    // Gone, or a zombie its new parent has not reaped yet: not running either way.
    const state = existsSync(`/proc/${pid}/stat`) ? procStat(pid).state : 'gone';
    assert.ok(state === 'gone' || state === 'Z', `${pid} is ${state}`);
  }
  await h.destroy(); // idempotent
}

test('destroy kills every process inside, frozen ones too, and removes every directory', async (t) => {
  await destroyKillsEverything(t);
});

test('without a cgroup2 mount (no cgroup.kill) destroy kills pid by pid', async (t) => {
  const host = readLayout();
  if (!homeOf(host, 'freezer')) return t.skip('no v1 freezer on this host');
  await destroyKillsEverything(t, { v1: host.v1 });
});

test('destroying the tree removes live containers and the top cgroup', async (t) => {
  const f = await fixture(t);
  if (!f) return;
  const a = f.gated('exec sleep 1000');
  const b = f.gated('exec sleep 1000');
  await f.tree.container('a:0.0.1', undefined, a.pid);
  await f.tree.container('b:0.0.1', { memory: { oom_monitor: true, attrs: {} } }, b.pid);
  await f.tree.destroy();
  assert.ok(f.tree.topPaths().every((d) => !existsSync(d)), 'every top directory removed');
  assert.equal((await a.exited)[1], 'SIGKILL');
  assert.equal((await b.exited)[1], 'SIGKILL');
  await assert.rejects(f.tree.container('c:0.0.1', undefined, a.pid), /destroyed/);
});

test('two versions of one container get separate cgroups', async (t) => {
  const f = await fixture(t);
  if (!f) return;
  const a = f.gated('exec sleep 1000');
  const b = f.gated('exec sleep 1000');
  const ha = await f.tree.container('hello:0.0.1', undefined, a.pid);
  const hb = await f.tree.container('hello:0.0.2', undefined, b.pid);
  assert.equal(cgroupLines(a.pid).get('memory'), `/${f.top}/hello`);
  assert.equal(cgroupLines(b.pid).get('memory'), `/${f.top}/hello:0.0.2`);
  await hb.destroy();
  assert.ok(ha.paths.every((d) => existsSync(d)), 'the other version is untouched');
  await ha.destroy();
});

test('cgroups.parent places the container outside the top and removes the parent with its last user', async (t) => {
  const f = await fixture(t);
  if (!f) return;
  const parent = `${f.top}-parent/group`;
  const a = f.gated('exec sleep 1000');
  const b = f.gated('exec sleep 1000');
  const ha = await f.tree.container('a:0.0.1', { parent, cpu: { shares: 100, attrs: {} } }, a.pid);
  const hb = await f.tree.container('b:0.0.1', { parent }, b.pid);
  assert.equal(cgroupLines(a.pid).get('cpu'), `/${parent}/a`);
  assert.equal(read(join(f.mount('cpu'), parent, 'a', 'cpu.shares')), '100');
  await ha.destroy();
  assert.ok(existsSync(join(f.mount('cpu'), parent, 'b')), 'the parent stays while b uses it');
  await hb.destroy();
  assert.ok(!existsSync(join(f.mount('cpu'), `${f.top}-parent`)), 'the parent went with its last user');
});

test('a real-time container gets an RT budget in its cpu cgroup and the top, given back on destroy', async (t) => {
  const f = await fixture(t);
  if (!f) return;
  if (homeOf(f.layout, 'cpu')?.version !== 1 || !existsSync(join(f.mount('cpu'), 'cpu.rt_runtime_us'))) {
    return t.skip('no v1 cpu controller with RT group scheduling');
  }
  if (spawnSync('sh', ['-c', 'command -v chrt']).status !== 0) return t.skip('no chrt');
  const topRt = join(f.mount('cpu'), f.top, 'cpu.rt_runtime_us');
  const plain = f.gated('exec sleep 1000');
  await f.tree.container('plain:0.0.1', undefined, plain.pid);
  // Without a budget the kernel refuses an RT policy: the reason for all this.
  assert.notEqual(spawnSync('chrt', ['-f', '-p', '10', String(plain.pid)]).status, 0);

  const rt = f.gated('exec sleep 1000');
  const h = await f.tree.container('fifo:0.0.1', undefined, rt.pid, { realtime: true });
  assert.equal(read(topRt), String(DEFAULT_RT_RUNTIME_US));
  assert.equal(read(join(f.mount('cpu'), f.top, 'fifo', 'cpu.rt_runtime_us')), String(DEFAULT_RT_RUNTIME_US));
  const chrt = spawnSync('chrt', ['-f', '-p', '10', String(rt.pid)], { encoding: 'utf8' });
  assert.equal(chrt.status, 0, chrt.stderr);
  assert.match(spawnSync('chrt', ['-p', String(rt.pid)], { encoding: 'utf8' }).stdout, /SCHED_FIFO/);
  await h.destroy();
  assert.equal(read(topRt), '0');
});

test('the v1 OOM monitor leaves no fd behind', async (t) => {
  const f = await fixture(t);
  if (!f) return;
  // Other fds come and go with the child's pipes; count what the monitor opens.
  const fds = (kind: string) =>
    readdirSync('/proc/self/fd').filter((fd) => {
      try {
        return readlinkSync(`/proc/self/fd/${fd}`).includes(kind);
      } catch {
        return false;
      }
    }).length;
  const p = f.gated('exec sleep 1000');
  const before = { eventfd: fds('eventfd'), oomControl: fds('memory.oom_control') };
  const h = await f.tree.container('fds:0.0.1', { memory: { oom_monitor: true, attrs: {} } }, p.pid);
  assert.equal(fds('eventfd'), before.eventfd + 1, 'one eventfd while monitoring');
  assert.equal(fds('memory.oom_control'), before.oomControl, 'oom_control is closed once registered');
  await h.destroy();
  assert.equal(fds('eventfd'), before.eventfd, 'the eventfd is closed by destroy');
});

test('the host layout is detected', () => {
  const layout = readLayout();
  assert.notEqual(layoutKind(layout), 'none');
});

test('a cgroup2-only layout places, freezes, kills and removes through the v2 core files', async (t) => {
  const host = readLayout();
  if (!host.v2) return t.skip('no cgroup2 mount on this host');
  // The v2 mount alone, as on a pure v2 host (its controllers are bound to v1 here).
  const f = await fixture(t, { v1: [], v2: host.v2 });
  if (!f) return;
  assert.deepEqual(f.tree.hierarchies.map((h) => h.version), [2]);
  const p = f.gated('sleep 1000 & exec sleep 1000');
  const h = await f.tree.container('v2only:0.0.1', undefined, p.pid);
  p.go();
  await waitUntil(() => h.pids().length === 2, { timeoutMs: 10_000, what: 'two processes inside' });
  assert.equal(cgroupLines(p.pid).get('v2'), `/${f.top}/v2only`);
  await h.freeze();
  assert.match(read(join(h.paths[0]!, 'cgroup.events')), /^frozen 1$/m);
  await h.thaw();
  await h.destroy();
  assert.equal((await p.exited)[1], 'SIGKILL');
  assert.ok(!existsSync(h.paths[0]!), 'removed');
});

test('a top cgroup left by a dead instance is taken over and removed at shutdown', async (t) => {
  if (!requirePrivileged(t, { loop: false, mksquashfs: false, cgroups: true })) return;
  const top = `nstar-test-cg-${process.pid}-${++serial}`;
  const layout = readLayout();
  const stale = join(homeOf(layout, 'memory')!.mount, top);
  mkdirSync(stale);
  t.after(() => {
    if (existsSync(stale)) rmdirSync(stale);
  });
  const tree = await CgroupTree.create(top);
  await tree.destroy();
  assert.deepEqual(leftovers(top), []);
});

test('a controller-less cgroup2 mount that cannot be used is left out, the rest works', async (t) => {
  const host = readLayout();
  if (!homeOf(host, 'freezer')) return t.skip('no v1 freezer on this host');
  // Stands for a read-only or otherwise unusable cgroup2 mount of a hybrid host.
  const f = await fixture(t, { v1: host.v1, v2: { mount: '/proc/nstar-no-such-cgroup2', controllers: [] } });
  if (!f) return;
  assert.ok(f.tree.hierarchies.every((h) => h.version === 1), 'only the v1 hierarchies are used');
  const p = f.gated('exec sleep 1000');
  const h = await f.tree.container('nov2:0.0.1', undefined, p.pid);
  assert.deepEqual(h.pids(), [p.pid]);
  await h.destroy();
  assert.equal((await p.exited)[1], 'SIGKILL');
});
