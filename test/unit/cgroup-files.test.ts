// cgroup v2 controller files cannot be exercised for real on the hybrid hosts
// we test on (their cgroup2 mount has no controllers), so the v2 writes,
// statistics and the memory.events monitor run here against a temp directory
// holding files of the same names and contents.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { homeOf, type CgroupLayout, type Controller, type Home } from '../../src/actors/cgroups/cgroup-layout.js';
import { mkdirCgroups, parseBlkioV1, parseFlatKeyed, parseNestedKeyed, parseSingle, rmdirCgroups, writeCgroupFile, writeCgroupFiles } from '../../src/actors/cgroups/cgroup-files.js';
import { parseMemoryEvents, watchOomV2 } from '../../src/actors/cgroups/cgroup-oom.js';
import { planLimits } from '../../src/actors/cgroups/cgroup-plan.js';
import { readStats } from '../../src/actors/cgroups/cgroup-stats.js';
import { waitUntil } from '../../src/actors/cgroups/cgroup-wait.js';
import { applyWrites } from '../../src/actors/cgroups/cgroups.js';
import type { MemoryEvent } from '../../src/machines/contracts.js';
import { Logger } from '../../src/log.js';

const log = new Logger('test');

function tempCgroup(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'nstar-cgroup-unit-'));
  for (const [f, v] of Object.entries(files)) writeFileSync(join(dir, f), v);
  return dir;
}

const V2: CgroupLayout = { v1: [], v2: { mount: '/unused', controllers: ['cpuset', 'cpu', 'io', 'memory', 'pids'] } };

test('the v2 plan lands in the v2 files', (t) => {
  const dir = tempCgroup({ 'memory.max': '', 'memory.low': '', 'cpu.weight': '', 'cpu.max': '', 'io.weight': '', 'cpuset.cpus': '' });
  t.after(() => rmSync(dir, { recursive: true }));
  const plan = planLimits(
    { memory: { oom_monitor: false, memory_hard_limit: 20_000_000, memory_soft_limit: 1_000_000, attrs: {} }, cpu: { shares: 1024, quota: 20_000, cpus: '0-1', attrs: {} }, blkio: { weight: 1000, weight_device: [], throttle_read_bps_device: [], throttle_read_iops_device: [], throttle_write_bps_device: [], throttle_write_iops_device: [], attrs: {} } },
    (c) => homeOf(V2, c),
  );
  const warnings: string[] = [];
  applyWrites(plan.writes, () => dir, (m) => warnings.push(m));
  const read = (f: string) => readFileSync(join(dir, f), 'utf8');
  assert.equal(read('memory.max'), '20000000');
  assert.equal(read('memory.low'), '1000000');
  assert.equal(read('cpu.weight'), '39');
  assert.equal(read('cpu.max'), '20000');
  // No io.bfq.weight here: io.weight on its own scale.
  assert.equal(read('io.weight'), 'default 10000');
  assert.equal(read('cpuset.cpus'), '0-1');
  assert.deepEqual(warnings, []);
});

test('a file the kernel lacks fails naming the file; an optional one is skipped with a warning', (t) => {
  const dir = tempCgroup({ 'memory.limit_in_bytes': '' });
  t.after(() => rmSync(dir, { recursive: true }));
  const v1: CgroupLayout = { v1: [{ mount: '/unused', controllers: ['memory'] }] };
  const warnings: string[] = [];
  const kmem = planLimits({ memory: { oom_monitor: false, kernel_memory_limit: 1, attrs: {} } }, (c) => homeOf(v1, c));
  applyWrites(kmem.writes, () => dir, (m) => warnings.push(m));
  assert.match(warnings[0]!, /memory\.kmem\.limit_in_bytes is not offered by this kernel/);
  const swap = planLimits({ memory: { oom_monitor: false, memory_swap_limit: 1, attrs: {} } }, (c) => homeOf(v1, c));
  assert.throws(() => applyWrites(swap.writes, () => dir, () => undefined), (e: NodeJS.ErrnoException) => {
    assert.equal(e.message, `open \`${join(dir, 'memory.memsw.limit_in_bytes')}\`: No such file or directory`);
    assert.equal(e.code, 'ENOENT');
    assert.equal(e.path, join(dir, 'memory.memsw.limit_in_bytes'));
    return true;
  });
});

test('a failed write names the file and says why like strerror', () => {
  assert.throws(() => writeCgroupFile('/proc/self/stat', 'x'), (e: NodeJS.ErrnoException) => {
    assert.match(e.message, /^(write|open) `\/proc\/self\/stat`: /);
    assert.equal(e.path, '/proc/self/stat');
    return true;
  });
});

test('v2 statistics read cpu.stat, memory.*, io.stat and pids.*', (t) => {
  const dir = tempCgroup({
    'cpu.stat': 'usage_usec 1500\nuser_usec 1000\nsystem_usec 500\nnr_periods 3\nnr_throttled 1\nthrottled_usec 42\n',
    'memory.current': '4096\n', 'memory.peak': '8192\n', 'memory.max': 'max\n', 'memory.stat': 'anon 4096\nfile 0\n',
    'memory.events': 'low 0\nhigh 2\nmax 5\noom 1\noom_kill 1\noom_group_kill 0\n',
    'io.stat': '254:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n',
    'pids.current': '3\n', 'pids.max': 'max\n',
  });
  t.after(() => rmSync(dir, { recursive: true }));
  const dirOf = (c: Controller) => ({ dir, home: homeOf(V2, c) as Home });
  assert.deepEqual(readStats(dirOf, ['cpu', 'memory', 'memory_events', 'io', 'pids']), {
    cpu: { usage_usec: 1500, user_usec: 1000, system_usec: 500, nr_periods: 3, nr_throttled: 1, throttled_usec: 42 },
    memory: { usage_bytes: 4096, max_usage_bytes: 8192, limit_bytes: null, stat: { anon: 4096, file: 0 } },
    memory_events: { low: 0, high: 2, max: 5, oom: 1, oom_kill: 1 },
    io: { '254:0': { rbytes: 4096, wbytes: 8192, rios: 1, wios: 2 } },
    pids: { current: 3, max: null },
  });
  assert.deepEqual(Object.keys(readStats(dirOf, ['pids'])), ['pids']);
});

test('v1 statistics convert cpuacct nanoseconds and blkio lines to the same shape', (t) => {
  const dir = tempCgroup({
    'cpuacct.usage': '2500000\n', 'cpuacct.usage_user': '2000000\n', 'cpuacct.usage_sys': '500000\n',
    'cpu.stat': 'nr_periods 4\nnr_throttled 2\nthrottled_time 3000\n',
    'memory.usage_in_bytes': '100\n', 'memory.max_usage_in_bytes': '200\n', 'memory.limit_in_bytes': '9223372036854771712\n',
    'memory.stat': 'rss 100\n', 'memory.oom_control': 'oom_kill_disable 0\nunder_oom 0\noom_kill 2\n',
    'blkio.throttle.io_service_bytes_recursive': '254:0 Read 4096\n254:0 Write 0\n254:0 Total 4096\nTotal 4096\n',
    'blkio.throttle.io_serviced_recursive': '254:0 Read 1\n254:0 Write 0\nTotal 1\n',
    'pids.current': '1\n', 'pids.max': '64\n',
  });
  t.after(() => rmSync(dir, { recursive: true }));
  const v1: CgroupLayout = { v1: [{ mount: '/x', controllers: ['memory', 'cpu', 'cpuacct', 'blkio', 'pids'] }] };
  const dirOf = (c: Controller) => ({ dir, home: homeOf(v1, c) as Home });
  assert.deepEqual(readStats(dirOf, ['cpu', 'memory', 'memory_events', 'io', 'pids'], 3), {
    cpu: { usage_usec: 2500, user_usec: 2000, system_usec: 500, nr_periods: 4, nr_throttled: 2, throttled_usec: 3 },
    memory: { usage_bytes: 100, max_usage_bytes: 200, limit_bytes: null, stat: { rss: 100 } },
    memory_events: { low: null, high: null, max: null, oom: 3, oom_kill: 2 },
    io: { '254:0': { rbytes: 4096, wbytes: 0, rios: 1, wios: 0 } },
    pids: { current: 1, max: 64 },
  });
});

test('the v2 OOM monitor reports each change of memory.events with its counters', async (t) => {
  const dir = tempCgroup({ 'memory.events': 'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n' });
  t.after(() => rmSync(dir, { recursive: true }));
  const events: MemoryEvent[] = [];
  let wake: () => void = () => undefined;
  const monitor = watchOomV2(dir, (e) => {
    events.push(e);
    wake();
  }, log);
  t.after(() => monitor.stop());
  const got = new Promise<void>((r) => (wake = r));
  writeFileSync(join(dir, 'memory.events'), 'low 0\nhigh 0\nmax 3\noom 1\noom_kill 1\noom_group_kill 0\n');
  await got;
  assert.deepEqual(events[0], { low: 0, high: 0, max: 3, oom: 1, oom_kill: 1 });
  monitor.stop();
  writeFileSync(join(dir, 'memory.events'), 'low 0\nhigh 0\nmax 9\noom 9\noom_kill 9\noom_group_kill 0\n');
  await waitUntil(() => true, { timeoutMs: 1000, what: 'tick' });
  assert.ok(events.every((e) => e.oom !== 9), 'no event after stop()');
});

test('waitUntil wakes on inotify and names what timed out', async (t) => {
  const dir = tempCgroup({ 'cgroup.events': 'populated 1\nfrozen 0\n' });
  t.after(() => rmSync(dir, { recursive: true }));
  const file = join(dir, 'cgroup.events');
  const frozen = waitUntil(() => readFileSync(file, 'utf8').includes('frozen 1'), { watchPath: file, timeoutMs: 5000, what: 'freeze' });
  writeFileSync(file, 'populated 1\nfrozen 1\n');
  await frozen;
  await assert.rejects(
    waitUntil(() => false, { timeoutMs: 20, what: `empty \`${dir}\``, detail: () => 'pids 1 2 still inside' }),
    { code: 'ETIMEDOUT', message: `empty \`${dir}\`: timed out after 20 ms (pids 1 2 still inside)` },
  );
});

test('parsers: single values, flat and nested keyed files', () => {
  assert.equal(parseSingle('max\n'), null);
  assert.equal(parseSingle('42\n'), 42);
  assert.deepEqual(parseFlatKeyed('a 1\nb 2\n\n'), { a: 1, b: 2 });
  assert.deepEqual(parseNestedKeyed('8:0 rbytes=1 wbytes=2\n'), { '8:0': { rbytes: 1, wbytes: 2 } });
  assert.deepEqual(parseBlkioV1('8:0 Read 1\n8:0 Write 2\nTotal 3\n'), { '8:0': { read: 1, write: 2 } });
  assert.deepEqual(parseMemoryEvents('low 1\nhigh 2\nmax 3\noom 4\noom_kill 5\noom_group_kill 6\n'), { low: 1, high: 2, max: 3, oom: 4, oom_kill: 5 });
});

test('the batch calls (one native call per start step) report per path, naming the file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'nstar-cgbatch-'));
  try {
    const a = join(dir, 'a');
    const b = join(dir, 'b');
    mkdirSync(b);
    const made = await mkdirCgroups([a, b, join(dir, 'no/such/parent')]);
    assert.equal(made[0], true);
    assert.equal(made[1], false, 'an existing directory is reported, not an error');
    assert.ok(made[2] instanceof Error && made[2].message === `mkdir \`${join(dir, 'no/such/parent')}\`: No such file or directory`, String(made[2]));

    const f1 = join(a, 'f1');
    const f2 = join(a, 'f2');
    writeFileSync(f1, '');
    writeFileSync(f2, '');
    writeCgroupFiles([f1, f2], '4242');
    assert.equal(readFileSync(f1, 'utf8'), '4242');
    assert.equal(readFileSync(f2, 'utf8'), '4242');
    writeFileSync(f2, '');
    assert.throws(() => writeCgroupFiles([f1, join(a, 'missing'), f2], '7'), { message: `open \`${join(a, 'missing')}\`: No such file or directory`, code: 'ENOENT' });
    assert.equal(readFileSync(f2, 'utf8'), '', 'nothing after the first failure is written');

    const gone = rmdirCgroups([join(dir, 'never-there'), a, b]);
    assert.equal(gone[0], undefined, 'a directory that is gone already is fine');
    assert.equal(gone[1]?.message, `rmdir \`${a}\`: Directory not empty`);
    assert.equal(gone[2], undefined);
    assert.equal(existsSync(b), false);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
