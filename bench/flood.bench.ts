// Output flood: console latency and daemon memory while a container writes a
// flood to its piped stdout (bench/README.md "flood").
//   file   the daemon's log (stderr) goes to a file
//   slow   the daemon's log goes to a pipe read at 1 MB/s
// Every 100 ms a second client sends `list` (sequentially); RSS of the
// daemon's node process is sampled every 100 ms. The reference, measured in
// the same run on the same daemon: `list` latency and RSS while idle, before
// the flood. One JSON line per case:
//   {"bench":"flood","sink":"file","mb":300,...,"lat_max_ms":..,"rss_growth_mb":..,"ok":true}
//   node --import tsx bench/flood.bench.ts [--mb 300] [--slow-seconds 60] [--slow-rate 1000000]
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, copyFileSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { Client } from '../src/client/index.js';
import { buildProbe } from '../test/fixtures/build.js';
import { fixtureNpk } from '../test/fixtures/npk.js';
import { nodePid, rssMb } from './proc.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const { values: args } = parseArgs({
  options: { mb: { type: 'string', default: '300' }, 'slow-seconds': { type: 'string', default: '60' }, 'slow-rate': { type: 'string', default: '1000000' } },
});
const MB = Number(args.mb);
const SLOW_SECONDS = Number(args['slow-seconds']);
const SLOW_RATE = Number(args['slow-rate']);
const LINE = 100;
const C = 'flood:0.0.1';
const TARGET_LAT_MS = 100;
const TARGET_RSS_MB = 50;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Bytes the container process (init's child) wrote so far. */
function written(initPid: number): number {
  let sum = 0;
  try {
    for (const c of readFileSync(`/proc/${initPid}/task/${initPid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) {
      sum += Number(/^wchar:\s+(\d+)/m.exec(readFileSync(`/proc/${c}/io`, 'utf8'))?.[1] ?? 0);
    }
  } catch {
    // exited
  }
  return sum;
}

const pct = (sorted: number[], p: number) => sorted[Math.min(sorted.length - 1, Math.floor((sorted.length * p) / 100))] ?? 0;
const r1 = (n: number) => +n.toFixed(1);

/** `list` every 100 ms and RSS every 100 ms until stopped. */
function sampler(client: Client, pid: number) {
  const lat: number[] = [];
  let peak = 0;
  let on = true;
  const loop = (async () => {
    while (on) {
      const t0 = performance.now();
      await client.list();
      const ms = performance.now() - t0;
      lat.push(ms);
      await sleep(Math.max(0, 100 - ms));
    }
  })();
  const rss = setInterval(() => (peak = Math.max(peak, rssMb(pid))), 100);
  return {
    async stop() {
      on = false;
      await loop;
      clearInterval(rss);
      peak = Math.max(peak, rssMb(pid));
      const s = [...lat].sort((a, b) => a - b);
      return { n: s.length, p50: pct(s, 50), p99: pct(s, 99), max: s.at(-1) ?? 0, peak };
    },
  };
}

async function daemon(dir: string, npk: string, stderr: number | 'pipe'): Promise<{ proc: ChildProcess; client: Client; probe: Client; pid: number }> {
  const repo = join(dir, 'repo');
  mkdirSync(repo, { recursive: true });
  copyFileSync(npk, join(repo, 'flood.npk'));
  const config = join(dir, 'northstar.toml');
  writeFileSync(config, [
    `run_dir = "${dir}/run"`, `data_dir = "${dir}/data"`, `socket_dir = "${dir}/sockets"`,
    `cgroup = "nstar-bench-flood-${process.pid}"`,
    '[log]', 'level = "info"',
    '[console.global]', `bind = "unix://${dir}/console"`, 'permissions = "full"',
    '[repositories.default]', `type = { fs = { dir = "${repo}" } }`,
  ].join('\n') + '\n');
  const proc = spawn(join(root, 'bin', 'northstar'), ['-c', config], { stdio: ['ignore', 'ignore', stderr], env: { ...process.env, NSTAR_LOG: 'info' } });
  let client: Client | undefined;
  for (let i = 0; i < 300 && !client; i++) {
    client = await Client.connect(`unix://${dir}/console`, { subscribe: 1000 }).catch(() => undefined);
    if (!client) await sleep(100);
  }
  if (!client) throw new Error('the daemon did not come up');
  const probe = await Client.connect(`unix://${dir}/console`, { timeoutMs: 120_000 });
  return { proc, client, probe, pid: nodePid(proc.pid!) };
}

/** Counts exit notifications; `exits(n)` resolves once n were seen. */
function exitCounter(client: Client) {
  let seen = 0;
  void (async () => {
    try {
      for await (const n of client.notifications()) if (typeof n === 'object' && n !== null && 'exit' in n) seen++;
    } catch {
      // closed
    }
  })();
  return async (n: number) => {
    while (seen < n) await sleep(20);
  };
}

async function run(sink: 'file' | 'slow', npk: string): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'nstar-bench-flood-'));
  const logPath = join(dir, 'daemon.log');
  const logFd = openSync(logPath, 'w');
  const d = await daemon(dir, npk, sink === 'file' ? logFd : 'pipe');
  let reader: NodeJS.Timeout | undefined;
  let logged = 0;
  try {
    if (sink === 'slow') {
      const log = d.proc.stderr!;
      log.pause();
      // 1 MB/s in 50 ms portions.
      reader = setInterval(() => {
        for (let budget = SLOW_RATE / 20; budget > 0; ) {
          const chunk = log.read() as Buffer | null;
          if (!chunk) break;
          budget -= chunk.length;
          logged += chunk.length;
        }
      }, 50);
    }
    // The reference: idle latency and RSS of the same daemon (the output worker started by a first short run).
    const exits = exitCounter(d.client);
    await d.client.start(C, { args: ['flood', String(1000 * LINE), String(LINE)] });
    await sleep(1000);
    await d.client.kill(C, 9);
    await exits(1);
    const idle = sampler(d.probe, d.pid);
    await sleep(3000);
    const ref = await idle.stop();

    const t0 = performance.now();
    await d.client.start(C, { args: ['flood', String(MB * 1e6), String(LINE)] });
    const pid = (await d.client.inspect(C)).process!.pid;
    const s = sampler(d.probe, d.pid);
    const deadline = sink === 'slow' ? t0 + SLOW_SECONDS * 1000 : Infinity;
    let bytes = 0;
    while (performance.now() < deadline) {
      bytes = Math.max(bytes, written(pid));
      if (bytes >= MB * 1e6) break;
      await sleep(100);
    }
    const secs = (performance.now() - t0) / 1000;
    const f = await s.stop();
    await d.client.kill(C, 9);
    await exits(2);
    if (sink === 'file') logged = statSync(logPath).size;
    const growth = f.peak - ref.peak;
    console.log(JSON.stringify({
      bench: 'flood', sink, mb_written: r1(bytes / 1e6), secs: r1(secs), mb_per_s: r1(bytes / 1e6 / secs), mb_logged: r1(logged / 1e6), lists: f.n,
      lat_p50_ms: r1(f.p50), lat_p99_ms: r1(f.p99), lat_max_ms: r1(f.max),
      idle_lat_p50_ms: r1(ref.p50), idle_lat_max_ms: r1(ref.max), lat_max_ratio_vs_idle: r1(f.max / Math.max(ref.max, 0.1)),
      rss_before_mb: r1(ref.peak), rss_peak_mb: r1(f.peak), rss_growth_mb: r1(growth),
      ok: f.max < TARGET_LAT_MS && growth < TARGET_RSS_MB,
    }));
    await d.client.shutdown().catch(() => undefined);
  } finally {
    clearInterval(reader);
    d.proc.stderr?.resume();
    d.client.close();
    d.probe.close();
    if (d.proc.exitCode === null) await new Promise((r) => d.proc.once('exit', r));
    closeSync(logFd);
    rmSync(dir, { recursive: true, force: true });
  }
}

await buildProbe();
const npk = await fixtureNpk({ name: 'flood', manifest: { args: ['flood', '0'], io: { stdout: 'pipe', stderr: 'pipe' } } });
await run('file', npk);
await run('slow', npk);
