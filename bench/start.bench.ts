// Start latency: our launch() against references measured in the same run.
//   floor   bench/start-floor.c: clone(new pid/mnt/ipc/uts/net) + pivot_root + exec, timed in C
//   bwrap   bubblewrap with the same namespaces and the same root
//   crun    `crun run` of an OCI bundle around the same root (in a child whose
//           private mount namespace hides the cgroup2 mount: crun 1.8 refuses hybrid layouts)
//   spawn   Node's own child_process.spawn of the probe, no namespaces (context for bwrap/crun,
//           which are spawned from Node too)
//   ours    launch() → cgroups → start gate → exec → exit, on an already mounted image
//           (with the runtime's start aids: cgroup favordynmods, a network namespace made ahead)
// Each iteration starts the static probe with `exit 0` and waits for its exit.
// Every method runs on the same root: a fixture NPK (our packer around the
// probe) mounted once through the mount pool. Also measured for ours alone:
//   ours_cold  mount the NPK (pool: loop attach + squashfs) + the start above
//   ours_stop  SIGTERM to a sleeping probe → its exit reported
//   ours_runtime  the whole runtime in this process: console request `start` →
//              supervisor → container machine → launch → the `exit` notification
// Prints one JSON line per figure (medians, p95; startup phases of ours), then
// a summary line with the ratios (ours ÷ reference, medians), and writes
// bench/out/start.svg. Runs itself inside a private mount namespace.
//   node --import tsx bench/start.bench.ts [--iterations 200] [--warmup 20]
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { ContainerCgroupsHandle, LaunchSpec, Launched, Phases } from '../src/machines/contracts.js';
import type { Manifest } from '../src/model/manifest.js';
import { cgroup2Mount } from '../src/actors/cgroups/cgroup-dynmods.js';
import { MountPool } from '../src/actors/mount/mount-pool.js';
import { NetnsPool } from '../src/actors/launch/netns-pool.js';
import { closeNpk, openNpk } from '../src/npk/npk.js';
import type { MountInput } from '../src/machines/contracts.js';
import { fixtureNpk } from '../test/fixtures/npk.js';
import { prepare } from '../test/integration/runtime-harness.js';
import { Client } from '../src/client/index.js';
import { Runtime } from '../src/runtime.js';
import { setLevel } from '../src/log.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: opts } = parseArgs({
  options: {
    iterations: { type: 'string', default: '200' },
    warmup: { type: 'string', default: '20' },
    only: { type: 'string' },
    rootfs: { type: 'string' },
  },
});
const iterations = Number(opts.iterations);
const warmup = Number(opts.warmup);

type Method = 'floor' | 'bwrap' | 'crun' | 'spawn' | 'ours' | 'ours_cold' | 'ours_stop' | 'ours_runtime';
interface Sample {
  ms: number;
  phases?: Phases;
}

const emit = (o: object) => process.stdout.write(JSON.stringify({ bench: 'start', ...o }) + '\n');
const ms = (t0: bigint) => Number(process.hrtime.bigint() - t0) / 1e6;

// ------------------------------------------------------------------ references

/** Spawns a command, resolves with the ms from spawn to exit; rejects on a non-zero exit. */
function timedSpawn(cmd: string, args: string[]): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = process.hrtime.bigint();
    const child = spawn(cmd, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let err = '';
    child.stderr.on('data', (d: Buffer) => (err += d));
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      const t = ms(t0);
      if (code === 0) resolve(t);
      else reject(new Error(`${cmd} ${args.join(' ')}: ${signal ?? `exit ${code}`}: ${err.trim()}`));
    });
  });
}

function buildFloor(dir: string): string {
  const out = join(dir, 'start-floor');
  const r = spawnSync('cc', ['-O2', '-Wall', '-o', out, join(root, 'bench/start-floor.c')], { stdio: 'inherit' });
  if (r.status !== 0) throw new Error('bench: building bench/start-floor.c failed');
  return out;
}

/** One floor iteration: the C program times clone → reaped exit itself. */
function floorOnce(floor: string, rootfs: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(floor, [rootfs, '1', '/probe', 'exit', '0'], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.on('error', reject);
    child.on('exit', (code) => (code === 0 ? resolve(Number(out.trim()) / 1e6) : reject(new Error(`start-floor: exit ${code}`))));
  });
}

const bwrapArgs = (rootfs: string) => [
  '--unshare-pid', '--unshare-net', '--unshare-ipc', '--unshare-uts',
  '--ro-bind', rootfs, '/', '--die-with-parent', '--', '/probe', 'exit', '0',
];

/** An OCI bundle whose root is `rootfs`, with the namespaces the others get and only the /dev crun needs. */
function crunBundle(dir: string, rootfs: string): string {
  const bundle = join(dir, 'bundle');
  mkdirSync(bundle, { recursive: true });
  const config = {
    ociVersion: '1.0.0',
    process: { terminal: false, user: { uid: 1000, gid: 1000 }, args: ['/probe', 'exit', '0'], env: [], cwd: '/' },
    root: { path: rootfs, readonly: true },
    hostname: 'bench',
    // crun creates the default device nodes in /dev; the image is read-only.
    mounts: [{ destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'noexec', 'mode=755', 'size=64k'] }],
    linux: {
      namespaces: ['pid', 'network', 'ipc', 'uts', 'mount'].map((type) => ({ type })),
    },
  };
  writeFileSync(join(bundle, 'config.json'), JSON.stringify(config));
  return bundle;
}

/** Runs in a child (`--only crun`) inside a private mount namespace without the cgroup2 mount. */
async function crunChild(rootfs: string): Promise<void> {
  const u = spawnSync('umount', ['/sys/fs/cgroup/unified']);
  if (u.status !== 0 && !/not mounted|no mount point/.test(String(u.stderr))) throw new Error(`umount /sys/fs/cgroup/unified: ${u.stderr}`);
  const dir = mkdtempSync(join(tmpdir(), 'nstar-bench-crun-'));
  try {
    const bundle = crunBundle(dir, rootfs);
    const samples: number[] = [];
    for (let i = 0; i < warmup + iterations; i++) {
      const t = await timedSpawn('crun', ['--root', join(dir, 'state'), 'run', '--bundle', bundle, `nstar-bench-${process.pid}-${i}`]);
      if (i >= warmup) samples.push(t);
    }
    process.stdout.write(JSON.stringify({ crun: samples }) + '\n');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function measureCrun(rootfs: string): number[] | string {
  const r = spawnSync(
    'unshare',
    ['--mount', '--propagation', 'private', process.execPath, '--import', 'tsx', fileURLToPath(import.meta.url),
      '--only', 'crun', '--rootfs', rootfs, '--iterations', String(iterations), '--warmup', String(warmup)],
    { cwd: root, encoding: 'utf8', maxBuffer: 16 << 20 },
  );
  if (r.status !== 0) return `crun child failed: ${r.stderr.trim().split('\n').filter((l) => /Error/.test(l)).slice(0, 2).join(' / ')}`;
  const line = r.stdout.trim().split('\n').find((l) => l.startsWith('{"crun"'));
  return line ? (JSON.parse(line) as { crun: number[] }).crun : 'crun child printed no samples';
}

// ------------------------------------------------------------------ ours

interface Ours {
  /** launch → cgroups → gate → exit on `root`. */
  once(root: string, args?: string[]): Promise<Sample>;
  /** A sleeping probe on `root`: started → SIGTERM → exited. */
  stop(root: string): Promise<number>;
  close(): Promise<void>;
}

async function tryImport<T>(rel: string): Promise<T | undefined> {
  try {
    return (await import(pathToFileURL(join(root, rel)).href)) as T;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') return undefined;
    throw e;
  }
}

const MANIFEST = { name: 'bench', version: '0.0.1', init: '/probe', uid: 1000, gid: 1000 };

function benchManifest(): Manifest {
  return { ...MANIFEST, args: ['exit', '0'], env: {}, mounts: {}, capabilities: [], suppl_groups: [], rlimits: {}, sockets: {} };
}

interface CgroupTreeLike {
  container(container: string, cgroups: Manifest['cgroups'], pid: number): Promise<ContainerCgroupsHandle>;
  destroy(): Promise<void>;
}

async function ours(dir: string): Promise<Ours | string> {
  const mod = await tryImport<{ launch(spec: LaunchSpec): Promise<Launched> }>('src/actors/launch/launch.ts');
  if (!mod) return 'src/actors/launch/launch.ts is not there yet (the launch issue)';
  const cg = await tryImport<{ CgroupTree: { create(top: string, opts?: { favorDynmods?: boolean }): Promise<CgroupTreeLike> } }>('src/actors/cgroups/cgroups.ts');
  if (!cg) return 'src/actors/cgroups/cgroups.ts is not there yet (the cgroups issue)';
  // As the runtime does by default (config cgroup_favordynmods): no RCU wait per cgroup.procs write.
  // The option is global, so the references measured in this run (crun) get it too.
  const tree = await cg.CgroupTree.create(`nstar-bench-${process.pid}`, { favorDynmods: true });
  const manifest = benchManifest();
  const base = {
    container: 'bench:0.0.1', manifest, init: '/probe',
    env: { NORTHSTAR_NAME: 'bench', NORTHSTAR_VERSION: '0.0.1', NORTHSTAR_CONTAINER: 'bench:0.0.1' },
    runDir: join(dir, 'run'), dataDir: join(dir, 'data'), socketDir: join(dir, 'sockets'), resources: {},
  };
  for (const d of [base.runDir, base.dataDir, base.socketDir]) mkdirSync(d, { recursive: true });
  // As the runtime does: a network namespace made ahead of time (off the main thread) per start.
  const netns = new NetnsPool();
  /** The runtime's start order: launch, cgroups (the pid joins them), then the gate. */
  const start = async (rootfs: string, args: string[]) => {
    const l = await mod.launch({ ...base, root: rootfs, args, netnsFd: netns.take() }).catch((e: unknown) => {
      netns.refill();
      throw e;
    });
    l.started.then(() => netns.refill(), () => netns.refill());
    try {
      const c0 = process.hrtime.bigint();
      const handle = await tree.container(base.container, manifest.cgroups, l.pid);
      const cgroupsMs = ms(c0);
      l.openGate();
      return { l, handle, cgroupsMs };
    } catch (e) {
      l.kill(9);
      await l.exited.catch(() => undefined);
      throw e;
    }
  };
  return {
    async once(rootfs, args = ['exit', '0']) {
      const t0 = process.hrtime.bigint();
      const { l, handle, cgroupsMs } = await start(rootfs, args);
      // launch reports what it measures itself; cgroups and total are the
      // caller's (the container machine's in the runtime), measured here alike.
      const started = l.started.then((s) => ({ phases: { ...s.phases, cgroups: cgroupsMs, total: ms(t0) } }));
      const [{ phases }, status] = await Promise.all([started, l.exited]);
      const t = ms(t0);
      await handle.destroy();
      if (!('exit' in status) || status.exit.code !== 0) throw new Error(`bench: probe ended with ${JSON.stringify(status)}`);
      return { ms: t, phases };
    },
    async stop(rootfs) {
      const { l, handle } = await start(rootfs, ['sleep']);
      await l.started;
      // A running container, as a stop finds it: the next network namespace is made by now.
      await netns.settled();
      const t0 = process.hrtime.bigint();
      l.kill(15);
      const status = await l.exited;
      const t = ms(t0);
      await handle.destroy();
      if (!('signalled' in status)) throw new Error(`bench: sleeping probe ended with ${JSON.stringify(status)}`);
      return t;
    },
    close: async () => {
      await netns.close();
      await tree.destroy();
    },
  };
}

/** The runtime in this process with the bench NPK mounted at start, driven through its console. */
async function runtimeRunner(npk: string) {
  const p = await prepare({ repositories: { default: { npks: [npk], mountOnStart: true } } });
  const rt = await Runtime.start(p.config);
  const client = await Client.connect(p.url, { subscribe: 10_000 }).catch(async (e) => {
    await rt.shutdown();
    rmSync(p.dir, { recursive: true, force: true });
    throw e;
  });
  const notifications = client.notifications()[Symbol.asyncIterator]();
  return {
    async once(): Promise<number> {
      const t0 = process.hrtime.bigint();
      await client.start('bench:0.0.1');
      for (;;) {
        const { value: n, done } = await notifications.next();
        if (done) throw new Error('bench: the console closed');
        if (typeof n === 'object' && n !== null && 'exit' in n) {
          const [, status] = (n as { exit: [string, { exit?: { code: number } }] }).exit;
          if (status.exit?.code !== 0) throw new Error(`bench: probe ended with ${JSON.stringify(status)}`);
          return ms(t0);
        }
      }
    },
    async close(): Promise<void> {
      client.close();
      await rt.shutdown();
      rmSync(p.dir, { recursive: true, force: true });
    },
  };
}

/** The fixture NPK, and a way to mount it at a fresh target through the mount pool. */
async function image(dir: string) {
  // crun wants /dev and /proc directories in the root.
  const files = { '/dev/.keep': '', '/proc/.keep': '' };
  const path = await fixtureNpk({ name: 'bench', version: '0.0.1', manifest: { uid: 1000, gid: 1000, args: ['exit', '0'] }, files });
  const npk = await openNpk(path);
  const { fsImgOffset, fsImgSize } = npk;
  closeNpk(npk);
  const pool = new MountPool({ threads: 1, minThreads: 1, idleTimeoutMs: 60_000 });
  let n = 0;
  const input = (): MountInput => ({
    container: 'bench:0.0.1', npkPath: path, fsImgOffset, fsImgSize, target: join(dir, 'images', `bench-${n++}`),
    verityMode: 'auto', loopDeviceTimeoutMs: 10_000,
  });
  mkdirSync(join(dir, 'images'), { recursive: true });
  return {
    path,
    async mount(): Promise<{ target: string; umount(): Promise<void> }> {
      const i = input();
      await pool.mount(i);
      return { target: i.target, umount: () => pool.umount({ container: i.container, target: i.target }) };
    },
    close: () => pool.close(),
  };
}

// ------------------------------------------------------------------ figures

function stats(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  const r = (x: number) => Math.round(x * 1000) / 1000;
  return { n: s.length, median: r(q(0.5)), p95: r(q(0.95)), min: r(s[0]), mean: r(s.reduce((a, b) => a + b, 0) / s.length) };
}

function svg(rows: { method: string; median: number; p95: number }[]): string {
  const w = 640, bar = 28, gap = 14, left = 110, top = 30;
  const max = Math.max(...rows.map((r) => r.p95)) * 1.1;
  const x = (v: number) => left + ((w - left - 80) * v) / max;
  const body = rows.map((r, i) => {
    const y = top + i * (bar + gap);
    return [
      `<text x="${left - 8}" y="${y + bar / 2 + 5}" text-anchor="end">${r.method}</text>`,
      `<rect x="${left}" y="${y}" width="${x(r.median) - left}" height="${bar}" fill="${r.method.startsWith('ours') ? '#2a7' : '#789'}"/>`,
      `<line x1="${x(r.median)}" x2="${x(r.p95)}" y1="${y + bar / 2}" y2="${y + bar / 2}" stroke="#333"/>`,
      `<text x="${x(r.p95) + 6}" y="${y + bar / 2 + 5}">${r.median.toFixed(2)} ms (p95 ${r.p95.toFixed(2)})</text>`,
    ].join('');
  });
  const h = top + rows.length * (bar + gap) + 10;
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" font-family="sans-serif" font-size="13">` +
    `<text x="${left}" y="18" font-weight="bold">Start → exit latency, median bar, p95 whisker</text>${body.join('')}</svg>\n`;
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/start: needs root (namespaces, pivot_root, loop devices, cgroups)');
  if (process.env.NSTAR_BENCH_NS !== '1') {
    // Like the daemon: a private mount namespace entered before Node starts, so nothing leaks on a crash.
    const r = spawnSync('unshare', ['--mount', '--propagation', 'private', process.execPath, '--import', 'tsx', ...process.argv.slice(1)], {
      stdio: 'inherit', env: { ...process.env, NSTAR_BENCH_NS: '1' },
    });
    process.exit(r.status ?? 1);
  }
  if (opts.only === 'crun') return crunChild(opts.rootfs as string);
  setLevel('warn'); // one log line per container exit would drown the figures

  const dir = mkdtempSync(join(tmpdir(), 'nstar-bench-start-'));
  // Undone in reverse, also when a step fails half-way.
  const cleanup: (() => unknown)[] = [() => rmSync(dir, { recursive: true, force: true })];
  try {
    await measure(dir, cleanup);
  } finally {
    for (const undo of cleanup.reverse()) await undo();
  }
}

async function measure(dir: string, cleanup: (() => unknown)[]): Promise<void> {
  const img = await image(dir);
  cleanup.push(() => img.close());
  const mounted = await img.mount();
  cleanup.push(() => mounted.umount());
  const rootfs = mounted.target;
  const floor = buildFloor(dir);
  const ourRunner = await ours(dir);
  if (typeof ourRunner !== 'string') cleanup.push(() => ourRunner.close());
  // Whether cgroup migrations ran without an RCU wait in this run (for every method alike).
  const v2 = cgroup2Mount(readFileSync('/proc/self/mountinfo', 'utf8'));
  emit({ favordynmods: v2 ? v2.superOptions.includes('favordynmods') : 'no cgroup2 mount to show it' });
  const runtime = await runtimeRunner(img.path);
  cleanup.push(() => runtime.close());
  const samples: Record<Method, number[]> = { floor: [], bwrap: [], crun: [], spawn: [], ours: [], ours_cold: [], ours_stop: [], ours_runtime: [] };
  const phases: Record<string, number[]> = {};
  const runners: [Method, () => Promise<number>][] = [
    ['floor', () => floorOnce(floor, rootfs)],
    ['bwrap', () => timedSpawn('bwrap', bwrapArgs(rootfs))],
    ['spawn', () => timedSpawn(join(rootfs, 'probe'), ['exit', '0'])],
  ];
  if (typeof ourRunner !== 'string') {
    runners.push(['ours', async () => {
      const s = await ourRunner.once(rootfs);
      for (const [k, v] of Object.entries(s.phases ?? {})) (phases[k] ??= []).push(v);
      return s.ms;
    }]);
    runners.push(['ours_cold', async () => {
      const t0 = process.hrtime.bigint();
      const m = await img.mount();
      try {
        await ourRunner.once(m.target);
        return ms(t0);
      } finally {
        await m.umount();
      }
    }]);
    runners.push(['ours_stop', () => ourRunner.stop(rootfs)]);
    runners.push(['ours_runtime', () => runtime.once()]);
  } else emit({ method: 'ours', skipped: ourRunner });

  // Interleaved, so drift (caches, other load) hits every method alike.
  for (let i = 0; i < warmup + iterations; i++) {
    for (const [method, once] of runners) {
      const t = await once();
      if (i >= warmup) samples[method].push(t);
    }
    if (i === warmup - 1) for (const k of Object.keys(phases)) phases[k] = [];
  }
  const crun = measureCrun(rootfs);
  if (typeof crun === 'string') emit({ method: 'crun', skipped: crun });
  else samples.crun = crun;

  const rows: { method: string; median: number; p95: number }[] = [];
  for (const [method, xs] of Object.entries(samples)) {
    if (xs.length === 0) continue;
    const s = stats(xs);
    emit({ method, metric: method === 'ours_stop' ? 'stop_exit_ms' : 'start_exit_ms', ...s });
    rows.push({ method, median: s.median, p95: s.p95 });
  }
  for (const [phase, xs] of Object.entries(phases)) emit({ method: 'ours', metric: 'phase_ms', phase, ...stats(xs) });

  // The headline is the whole runtime's start (what a user waits for); `ours` is launch() + cgroups alone.
  const headline: Method = samples.ours_runtime.length ? 'ours_runtime' : 'ours';
  const med = (m: Method) => (samples[m].length ? stats(samples[m]).median : NaN);
  const ratio = (m: Method) => (samples[headline].length && samples[m].length ? Math.round((med(headline) / med(m)) * 100) / 100 : null);
  const summary = { measured: headline, ratio_vs_crun: ratio('crun'), ratio_vs_bwrap: ratio('bwrap'), ratio_vs_floor: ratio('floor') };
  const target = { crun: 0.5, floor: 3 };
  emit({ ...summary, target, met: summary.ratio_vs_crun !== null && summary.ratio_vs_crun <= target.crun && (summary.ratio_vs_floor ?? Infinity) <= target.floor });

  const out = join(root, 'bench/out');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'start.svg'), svg(rows));
}

await main();
