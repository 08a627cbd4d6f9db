// Start latency: our launch() against references measured in the same run.
//   floor   bench/start-floor.c: clone(new pid/mnt/ipc/uts/net) + pivot_root + exec, timed in C
//   bwrap   bubblewrap with the same namespaces and the same root
//   crun    `crun run` of an OCI bundle around the same root (in a child whose
//           private mount namespace hides the cgroup2 mount: crun 1.8 refuses hybrid layouts)
//   spawn   Node's own child_process.spawn of the probe, no namespaces (context for bwrap/crun,
//           which are spawned from Node too)
//   ours    launch() → cgroups (when src/actors/cgroups.ts exists) → start gate → exec → exit
// Each iteration starts the static probe with `exit 0` and waits for its exit.
// Prints one JSON line per figure, then a summary line with the ratios
// (ours ÷ reference, medians), and writes bench/out/start.svg.
//   node --import tsx bench/start.bench.ts [--iterations 200] [--warmup 20]
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { LaunchSpec, Launched, Phases } from '../src/machines/contracts.js';
import type { Manifest } from '../src/model/manifest.js';
import type { ContainerCgroupsHandle } from '../src/actors/machine-actors.js';
import { buildProbe } from '../test/fixtures/build.js';

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

type Method = 'floor' | 'bwrap' | 'crun' | 'spawn' | 'ours';
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

/** An OCI bundle whose root is `rootfs`, with the namespaces the others get and no extra mounts. */
function crunBundle(dir: string, rootfs: string): string {
  const bundle = join(dir, 'bundle');
  mkdirSync(bundle, { recursive: true });
  const config = {
    ociVersion: '1.0.0',
    process: { terminal: false, user: { uid: 0, gid: 0 }, args: ['/probe', 'exit', '0'], env: [], cwd: '/' },
    root: { path: rootfs, readonly: true },
    hostname: 'bench',
    mounts: [],
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
  if (r.status !== 0) return `crun child failed: ${r.stderr.trim().split('\n').pop()}`;
  const line = r.stdout.trim().split('\n').find((l) => l.startsWith('{"crun"'));
  return line ? (JSON.parse(line) as { crun: number[] }).crun : 'crun child printed no samples';
}

// ------------------------------------------------------------------ ours

interface Ours {
  once(): Promise<Sample>;
  close(): Promise<void>;
  cgroups: boolean;
}

async function tryImport<T>(rel: string): Promise<T | undefined> {
  try {
    return (await import(pathToFileURL(join(root, rel)).href)) as T;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND') return undefined;
    throw e;
  }
}

function benchManifest(): Manifest {
  return {
    name: 'bench', version: '0.0.1', init: '/probe', args: ['exit', '0'], env: {}, uid: 0, gid: 0,
    mounts: {}, capabilities: [], suppl_groups: [], rlimits: {}, sockets: {},
  };
}

interface CgroupTreeLike {
  container(container: string, cgroups: Manifest['cgroups'], pid: number): Promise<ContainerCgroupsHandle>;
  destroy(): Promise<void>;
}

async function ours(rootfs: string, dir: string): Promise<Ours | string> {
  const mod = await tryImport<{ launch(spec: LaunchSpec): Promise<Launched> }>('src/actors/launch.ts');
  if (!mod) return 'src/actors/launch.ts is not there yet (the launch issue)';
  const cg = await tryImport<{ CgroupTree: { create(top: string): Promise<CgroupTreeLike> } }>('src/actors/cgroups.ts');
  const tree = cg ? await cg.CgroupTree.create(`nstar-bench-${process.pid}`) : undefined;
  const manifest = benchManifest();
  const spec: LaunchSpec = {
    container: 'bench:0.0.1', manifest, root: rootfs, init: '/probe', args: ['exit', '0'],
    env: { NORTHSTAR_NAME: 'bench', NORTHSTAR_VERSION: '0.0.1', NORTHSTAR_CONTAINER: 'bench:0.0.1' },
    runDir: join(dir, 'run'), dataDir: join(dir, 'data'), socketDir: join(dir, 'sockets'), resources: {},
  };
  for (const d of [spec.runDir, spec.dataDir, spec.socketDir]) mkdirSync(d, { recursive: true });
  return {
    cgroups: tree !== undefined,
    async once() {
      const t0 = process.hrtime.bigint();
      const l = await mod.launch(spec);
      const handle = tree ? await tree.container(spec.container, manifest.cgroups, l.pid) : undefined;
      l.openGate();
      const [{ phases }, status] = await Promise.all([l.started, l.exited]);
      const t = ms(t0);
      await handle?.destroy();
      if (!('exit' in status) || status.exit.code !== 0) throw new Error(`bench: probe ended with ${JSON.stringify(status)}`);
      return { ms: t, phases };
    },
    async close() {
      await tree?.destroy();
    },
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
  if (process.getuid?.() !== 0) throw new Error('bench/start: needs root (namespaces, pivot_root, cgroups)');
  if (opts.only === 'crun') return crunChild(opts.rootfs as string);

  const dir = mkdtempSync(join(tmpdir(), 'nstar-bench-start-'));
  const rootfs = join(dir, 'rootfs');
  for (const d of ['proc', 'dev', 'tmp']) mkdirSync(join(rootfs, d), { recursive: true });
  copyFileSync(buildProbe(), join(rootfs, 'probe'));
  const floor = buildFloor(dir);
  const ourRunner = await ours(rootfs, dir);
  const samples: Record<Method, number[]> = { floor: [], bwrap: [], crun: [], spawn: [], ours: [] };
  const phases: Record<string, number[]> = {};
  const runners: [Method, () => Promise<number>][] = [
    ['floor', () => floorOnce(floor, rootfs)],
    ['bwrap', () => timedSpawn('bwrap', bwrapArgs(rootfs))],
    ['spawn', () => timedSpawn(join(rootfs, 'probe'), ['exit', '0'])],
  ];
  if (typeof ourRunner !== 'string') {
    runners.push(['ours', async () => {
      const s = await ourRunner.once();
      for (const [k, v] of Object.entries(s.phases ?? {})) (phases[k] ??= []).push(v);
      return s.ms;
    }]);
  } else emit({ method: 'ours', skipped: ourRunner });

  try {
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
  } finally {
    if (typeof ourRunner !== 'string') await ourRunner.close();
    rmSync(dir, { recursive: true, force: true });
  }

  const rows: { method: string; median: number; p95: number }[] = [];
  for (const [method, xs] of Object.entries(samples)) {
    if (xs.length === 0) continue;
    const s = stats(xs);
    const note = method === 'ours' && typeof ourRunner !== 'string' ? { cgroups: ourRunner.cgroups } : {};
    emit({ method, metric: 'start_exit_ms', ...s, ...note });
    rows.push({ method, median: s.median, p95: s.p95 });
  }
  for (const [phase, xs] of Object.entries(phases)) emit({ method: 'ours', metric: 'phase_ms', phase, ...stats(xs) });

  const med = (m: Method) => (samples[m].length ? stats(samples[m]).median : NaN);
  const ratio = (m: Method) => (samples.ours.length && samples[m].length ? Math.round((med('ours') / med(m)) * 100) / 100 : null);
  const summary = { ratio_vs_crun: ratio('crun'), ratio_vs_bwrap: ratio('bwrap'), ratio_vs_floor: ratio('floor') };
  const target = { crun: 0.5, floor: 3 };
  emit({ ...summary, target, met: summary.ratio_vs_crun !== null && summary.ratio_vs_crun <= target.crun && (summary.ratio_vs_floor ?? Infinity) <= target.floor });

  const out = join(root, 'bench/out');
  mkdirSync(out, { recursive: true });
  writeFileSync(join(out, 'start.svg'), svg(rows));
}

await main();
