// Daemon memory: RSS of the `northstar` daemon's Node process
//   idle        booted, no container running, pool workers idle-stopped (min_threads = 0)
//   running10   10 containers running
//   warm        right after mounting many containers (pool workers alive)
// against a reference measured in the same run: a bare Node process that
// loads nothing (`node -e` with a timer). One JSON line each:
//   {"bench":"memory","case":"idle","rss_mb":..,"node_rss_mb":..,"ratio":..}
//   node --import tsx bench/memory.bench.ts
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Client } from '../src/client/index.js';
import { fixtureNpk } from '../test/fixtures/npk.js';
import { buildProbe } from '../test/fixtures/build.js';
import { nodePid, rssMb } from './proc.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const IDLE_TIMEOUT_MS = 2000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function bareNodeRss(): Promise<number> {
  const p = spawn(process.execPath, ['-e', 'setInterval(() => {}, 1000)'], { stdio: 'ignore' });
  await sleep(1500);
  const rss = rssMb(p.pid!);
  p.kill();
  return rss;
}

async function main(): Promise<void> {
  await buildProbe();
  const dir = mkdtempSync(join(tmpdir(), 'nstar-bench-mem-'));
  const repo = join(dir, 'repo');
  mkdirSync(repo, { recursive: true });
  const names: string[] = [];
  for (let i = 0; i < 10; i++) {
    const npk = await fixtureNpk({ name: `mem${i}`, manifest: { args: ['sleep', '3600'] } });
    copyFileSync(npk, join(repo, `mem${i}.npk`));
    names.push(`mem${i}:0.0.1`);
  }
  const config = join(dir, 'northstar.toml');
  writeFileSync(
    config,
    [
      `run_dir = "${dir}/run"`,
      `data_dir = "${dir}/data"`,
      `socket_dir = "${dir}/sockets"`,
      `cgroup = "nstar-bench-mem-${process.pid}"`,
      '[pool]',
      'threads = 2',
      'min_threads = 0',
      `idle_timeout = "${IDLE_TIMEOUT_MS}ms"`,
      '[log]',
      'level = "warn"',
      '[console.global]',
      `bind = "unix://${dir}/console"`,
      'permissions = "full"',
      '[repositories.default]',
      `type = { fs = { dir = "${repo}" } }`,
    ].join('\n') + '\n',
  );
  const daemon = spawn(join(root, 'bin', 'northstar'), ['-c', config], { stdio: ['ignore', 'inherit', 'inherit'] });
  try {
    let client: Client | undefined;
    for (let i = 0; i < 200 && !client; i++) {
      client = await Client.connect(`unix://${dir}/console`).catch(() => undefined);
      if (!client) await sleep(100);
    }
    if (!client) throw new Error('the daemon did not come up');
    const pid = nodePid(daemon.pid!);
    const node = await bareNodeRss();
    const report = (c: string, rss: number) =>
      console.log(JSON.stringify({ bench: 'memory', case: c, rss_mb: +rss.toFixed(1), node_rss_mb: +node.toFixed(1), ratio: +(rss / node).toFixed(2) }));

    await sleep(IDLE_TIMEOUT_MS + 1500);
    report('idle', rssMb(pid));

    await client.mount(names);
    report('warm', rssMb(pid));

    for (const n of names) await client.start(n);
    await sleep(IDLE_TIMEOUT_MS + 1500);
    report('running10', rssMb(pid));
    const threads = readdirSync(`/proc/${pid}/task`).length;
    console.log(JSON.stringify({ bench: 'memory', case: 'threads_running10', threads }));
    await client.shutdown().catch(() => undefined);
    client.close();
  } finally {
    await new Promise((r) => (daemon.exitCode !== null ? r(null) : daemon.once('exit', r)));
    rmSync(dir, { recursive: true, force: true });
  }
}

await main();
