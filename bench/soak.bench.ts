// Soak: the daemon's RSS, open fds and threads every 100 cycles over N
// start→exit cycles of a container with piped output (the output worker's
// path), then N install→uninstall cycles (bench/README.md "soak"). The
// reference, measured in the same run: the same daemon's figures after the
// first 100 cycles (warm-up). Prints a JSON line per sample and one summary
// per phase with the slopes per 1000 cycles after warm-up (least squares):
//   {"bench":"soak","phase":"start_exit","cycles":3000,"rss_slope_mb_per_1000":..,"fd_slope_per_1000":..,...}
//   node --import tsx bench/soak.bench.ts [--cycles 3000]     (or SOAK_CYCLES=300)
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { Client } from '../src/client/index.js';
import { buildProbe } from '../test/fixtures/build.js';
import { fixtureNpk } from '../test/fixtures/npk.js';
import { nodePid } from './proc.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({ options: { cycles: { type: 'string', default: process.env.SOAK_CYCLES ?? '3000' } } });
const CYCLES = Number(args.cycles);
const EVERY = 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Sample { cycle: number; rss: number; fds: number; threads: number }

function sample(pid: number, cycle: number): Sample {
  const rss = Number(/^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
  return { cycle, rss: +rss.toFixed(1), fds: readdirSync(`/proc/${pid}/fd`).length, threads: readdirSync(`/proc/${pid}/task`).length };
}

/** Least-squares slope of y over x, per 1000 x. */
function slope(points: [number, number][]): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((s, p) => s + p[0], 0) / n;
  const my = points.reduce((s, p) => s + p[1], 0) / n;
  const num = points.reduce((s, p) => s + (p[0] - mx) * (p[1] - my), 0);
  const den = points.reduce((s, p) => s + (p[0] - mx) ** 2, 0);
  return den === 0 ? 0 : (num / den) * 1000;
}

async function phase(name: string, pid: number, cycle: (i: number) => Promise<void>): Promise<void> {
  const samples: Sample[] = [sample(pid, 0)];
  let errors = 0;
  const t0 = performance.now();
  for (let i = 1; i <= CYCLES; i++) {
    await cycle(i).catch(() => errors++);
    if (i % EVERY === 0) {
      const s = sample(pid, i);
      samples.push(s);
      console.log(JSON.stringify({ bench: 'soak', phase: name, ...s }));
    }
  }
  const secs = (performance.now() - t0) / 1000;
  const warm = samples.filter((s) => s.cycle >= EVERY);
  const ref = warm[0] ?? samples[0];
  const last = samples.at(-1)!;
  console.log(JSON.stringify({
    bench: 'soak', phase: name, cycles: CYCLES, errors, per_s: +(CYCLES / secs).toFixed(1),
    rss_start_mb: samples[0].rss, rss_ref_mb: ref.rss, rss_end_mb: last.rss, rss_end_ratio_vs_ref: +(last.rss / ref.rss).toFixed(3),
    rss_slope_mb_per_1000: +slope(warm.map((s) => [s.cycle, s.rss])).toFixed(2),
    fds_ref: ref.fds, fds_end: last.fds, fd_slope_per_1000: +slope(warm.map((s) => [s.cycle, s.fds])).toFixed(2),
    threads_ref: ref.threads, threads_end: last.threads,
  }));
}

async function main(): Promise<void> {
  await buildProbe();
  const dir = mkdtempSync(join(tmpdir(), 'nstar-bench-soak-'));
  const repo = join(dir, 'repo');
  mkdirSync(repo, { recursive: true });
  const C = 'soak:0.0.1';
  const I = 'soak-install:0.0.1';
  const npk = await fixtureNpk({ name: 'soak', manifest: { args: ['echo', 'hello from a soak cycle'], io: { stdout: 'pipe', stderr: 'pipe' } } });
  const installNpk = await fixtureNpk({ name: 'soak-install', manifest: { args: ['exit'] } });
  copyFileSync(npk, join(repo, 'soak.npk'));
  const config = join(dir, 'northstar.toml');
  writeFileSync(config, [
    `run_dir = "${dir}/run"`, `data_dir = "${dir}/data"`, `socket_dir = "${dir}/sockets"`,
    `cgroup = "nstar-bench-soak-${process.pid}"`,
    '[log]', 'level = "warn"',
    '[console.global]', `bind = "unix://${dir}/console"`, 'permissions = "full"',
    '[repositories.default]', `type = { fs = { dir = "${repo}" } }`,
    '[repositories.mem]', 'type = "mem"',
  ].join('\n') + '\n');
  const daemon = spawn(join(root, 'bin', 'northstar'), ['-c', config], { stdio: ['ignore', 'inherit', 'inherit'] });
  try {
    let client: Client | undefined;
    for (let i = 0; i < 300 && !client; i++) {
      client = await Client.connect(`unix://${dir}/console`, { subscribe: 10_000 }).catch(() => undefined);
      if (!client) await sleep(100);
    }
    if (!client) throw new Error('the daemon did not come up');
    const c = client;
    const pid = nodePid(daemon.pid!);
    let exits = 0;
    void (async () => {
      try {
        for await (const n of c.notifications()) if (typeof n === 'object' && n !== null && 'exit' in n) exits++;
      } catch {
        // closed
      }
    })();
    await phase('start_exit', pid, async (i) => {
      await c.start(C);
      while (exits < i) await sleep(1);
    });
    await phase('install_uninstall', pid, async () => {
      await c.installFile(installNpk, 'mem');
      await c.uninstall(I);
    });
    await c.shutdown().catch(() => undefined);
    c.close();
  } finally {
    await new Promise((r) => (daemon.exitCode !== null ? r(null) : daemon.once('exit', r)));
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
