// Load benchmark of parallel mount (ARCHITECTURE.md "Mount path").
//
//   node --import tsx bench/mount.bench.ts [--n 1,8,32,128] [--threads 1,2,4,8] [--reps 3] [--svg bench/mount.svg]
//
// Mount-all and umount-all of N images through the MountPool for each pool
// size, against references measured in the same run: bench/mount-ref.c doing
// the same LOOP_CONFIGURE + mount with pthreads (the physical limit here), and
// "classic" SET_FD + SET_STATUS64 behind one lock (as Northstar does it).
// Prints one JSON line per configuration, then a summary line with the
// ratios; writes an SVG plot of wall time against N. Root only; re-executes
// itself inside a private mount namespace.
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { MountPool } from '../src/actors/mount/mount-pool.js';
import type { MountInput } from '../src/machines/contracts.js';
import { generateKey } from '../src/npk/keys.js';
import { closeNpk, openNpk } from '../src/npk/npk.js';
import { packNpk } from '../src/packer/pack.js';
import type { Image } from '../test/integration/mount-images.js';
import { mountPlot } from './mount-plot.js';
import type { Series } from './mount-plot.js';

const here = dirname(fileURLToPath(import.meta.url));

const { values } = parseArgs({
  options: {
    n: { type: 'string', default: '1,8,32,128' },
    threads: { type: 'string', default: '1,2,4,8' },
    reps: { type: 'string', default: '3' },
    svg: { type: 'string', default: join(here, 'mount.svg') },
    'summary-threads': { type: 'string', default: '4' },
  },
});
const Ns = values.n.split(',').map(Number);
const Ts = values.threads.split(',').map(Number);
const reps = Number(values.reps);
const summaryThreads = Number(values['summary-threads']);

function reexecInPrivateNamespace(): void {
  if (process.env.NSTAR_BENCH_NS === '1') return;
  if (process.getuid?.() !== 0) {
    console.error('bench/mount: needs root (loop devices, mount)');
    process.exit(1);
  }
  const r = spawnSync('unshare', ['--mount', '--propagation', 'private', process.execPath, ...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, NSTAR_BENCH_NS: '1' },
  });
  process.exit(r.status ?? 1);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)]!;
}
const round = (x: number) => Math.round(x * 1000) / 1000;

interface Run {
  mount_ms: number;
  umount_ms: number;
  lat_ms: number[];
}

function summarize(runs: Run[]) {
  const lat = runs.flatMap((r) => r.lat_ms);
  return {
    mount_ms: round(median(runs.map((r) => r.mount_ms))),
    umount_ms: round(median(runs.map((r) => r.umount_ms))),
    lat_p50_ms: round(percentile(lat, 50)),
    lat_p90_ms: round(percentile(lat, 90)),
    lat_p99_ms: round(percentile(lat, 99)),
  };
}

async function poolRun(pool: MountPool, inputs: MountInput[]): Promise<Run> {
  const lat: number[] = [];
  const t0 = performance.now();
  const results = await pool.mountAll(inputs, { onResult: () => lat.push(performance.now() - t0) });
  const mount_ms = performance.now() - t0;
  const failed = results.find((r) => !r.ok);
  if (failed && !failed.ok) throw failed.error;
  const t1 = performance.now();
  await Promise.all(inputs.map((i) => pool.umount(i)));
  return { mount_ms, umount_ms: performance.now() - t1, lat_ms: lat };
}

function cRun(bin: string, mode: 'configure' | 'classic', threads: number, inputs: MountInput[]): Run {
  const lines = inputs.map((i) => `${i.npkPath} ${i.fsImgOffset} ${i.fsImgSize} ${i.target}`).join('\n');
  const out = execFileSync(bin, [mode, String(threads)], { input: lines, encoding: 'utf8' });
  return JSON.parse(out) as Run;
}

/** N copies of one NPK packed by our packer (signed: with a fresh key), opened to learn offsets and verity. */
async function images(dir: string, count: number, signed: boolean): Promise<Image[]> {
  const kind = signed ? 'signed' : 'unsigned';
  const root = join(dir, `${kind}.root`);
  mkdirSync(root, { recursive: true });
  writeFileSync(join(root, 'hello'), 'hello from the bench\n');
  writeFileSync(join(root, 'data.bin'), randomBytes(192 * 1024));
  const key = signed ? await generateKey('bench', dir) : undefined;
  const packed = await packNpk({
    manifest: `name: bench-${kind}\nversion: 0.0.1\ninit: /hello\nuid: 1000\ngid: 1000\n`,
    root,
    out: join(dir, `${kind}-0.npk`),
    ...(key ? { key: key.keyPath } : {}),
  });
  const npk = await openNpk(packed.path, key ? { key: key.publicKey } : {});
  const first: Image = { path: npk.path, offset: npk.fsImgOffset, size: npk.fsImgSize, ...(npk.verity ? { verity: npk.verity } : {}) };
  closeNpk(npk);
  const out = [first];
  for (let k = 1; k < count; k++) {
    const p = join(dir, `${kind}-${k}.npk`);
    copyFileSync(first.path, p);
    out.push({ ...first, path: p });
  }
  return out;
}

function inputsFor(imgs: Image[], run: string, n: number): MountInput[] {
  return imgs.slice(0, n).map((img, k) => ({
    container: `bench${k}:0.0.1`,
    npkPath: img.path,
    fsImgOffset: img.offset,
    fsImgSize: img.size,
    target: join(run, `bench${k}:0.0.1`),
    verityMode: 'userspace',
    loopDeviceTimeoutMs: 10_000,
    ...(img.verity ? { verity: img.verity } : {}),
  }));
}

async function main(): Promise<void> {
  reexecInPrivateNamespace();
  const dir = mkdtempSync(join(tmpdir(), 'nstar-bench-mount-'));
  const run = join(dir, 'run');
  mkdirSync(run);
  try {
    const bin = join(dir, 'mount-ref');
    execFileSync('cc', ['-O2', '-pthread', '-o', bin, join(here, 'mount-ref.c')]);
    const maxN = Math.max(...Ns);
    const unsigned = await images(dir, maxN, false);
    const signed = await images(dir, maxN, true);
    const series = new Map<string, Series>();
    const add = (name: string, n: number, ms: number) => {
      const s = series.get(name) ?? { name, points: [] };
      s.points.push([n, ms]);
      series.set(name, s);
    };
    const table = new Map<string, number>();

    for (const threads of Ts) {
      const pool = new MountPool({ threads, minThreads: threads, idleTimeoutMs: 60_000 });
      // Warm up: start every worker (tsx and the addon load once per thread).
      await poolRun(pool, inputsFor(unsigned, run, threads * 2));
      for (const n of Ns) {
        for (const kind of ['unsigned', 'signed']) {
          const inputs = inputsFor(kind === 'signed' ? signed : unsigned, run, n);
          const runs: Run[] = [];
          for (let r = 0; r < reps; r++) runs.push(await poolRun(pool, inputs));
          const s = summarize(runs);
          console.log(JSON.stringify({ bench: 'mount', mode: 'pool', npk: kind, n, threads, ...s }));
          add(`pool ${kind === 'signed' ? 'signed ' : ''}t=${threads}`, n, s.mount_ms);
          if (kind === 'unsigned') table.set(`pool ${n} ${threads}`, s.mount_ms);
        }
        const inputs = inputsFor(unsigned, run, n);
        const cruns = Array.from({ length: reps }, () => cRun(bin, 'configure', threads, inputs));
        const c = summarize(cruns);
        console.log(JSON.stringify({ bench: 'mount', mode: 'c', npk: 'unsigned', n, threads, ...c }));
        add(`C t=${threads}`, n, c.mount_ms);
        table.set(`c ${n} ${threads}`, c.mount_ms);
      }
      await pool.close();
    }
    // Classic: one lock around the attach, so thread count barely matters.
    for (const n of Ns) {
      const inputs = inputsFor(unsigned, run, n);
      const k = summarize(Array.from({ length: reps }, () => cRun(bin, 'classic', summaryThreads, inputs)));
      console.log(JSON.stringify({ bench: 'mount', mode: 'classic', npk: 'unsigned', n, threads: summaryThreads, ...k }));
      add('classic SET_FD, one lock', n, k.mount_ms);
      table.set(`classic ${n}`, k.mount_ms);
    }

    const pool = table.get(`pool ${maxN} ${summaryThreads}`);
    const c = table.get(`c ${maxN} ${summaryThreads}`);
    const classic = table.get(`classic ${maxN}`);
    if (pool !== undefined && c !== undefined && classic !== undefined) {
      console.log(
        JSON.stringify({
          bench: 'mount',
          n: maxN,
          threads: summaryThreads,
          pool_ms: pool,
          c_ms: c,
          classic_ms: classic,
          ratio_vs_c: round(pool / c),
          ratio_vs_classic: round(pool / classic),
        }),
      );
    }
    writeFileSync(values.svg, mountPlot([...series.values()]));
    console.error(`bench/mount: plot written to ${values.svg}`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
