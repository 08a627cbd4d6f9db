// Restart latency of the restart policy against a plain start, in the same run
// and the same runtime (in this process, driven through its console):
//   start    console `start` request → the `started` notification (image mounted at start)
//   restart  the `exit` notification of a run → the `started` notification of the
//            next, for a container with `restart: {policy: always}` and a 0 ms backoff
// Both run the static probe with `exit 0`. Prints one JSON line per figure and
// a summary with the ratio restart ÷ start (medians). Needs root; runs itself
// inside a private mount namespace.
//   node --import tsx bench/restart.bench.ts [--iterations 100] [--warmup 10]
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { parseArgs } from 'node:util';

import { Client, type Notification } from '../src/client/index.js';
import { setLevel } from '../src/log.js';
import { Runtime } from '../src/runtime.js';
import { fixtureNpk } from '../test/fixtures/npk.js';
import { prepare } from '../test/integration/runtime-harness.js';

const { values: opts } = parseArgs({
  options: { iterations: { type: 'string', default: '100' }, warmup: { type: 'string', default: '10' } },
});
const iterations = Number(opts.iterations);
const warmup = Number(opts.warmup);

const emit = (o: object) => process.stdout.write(JSON.stringify({ bench: 'restart', ...o }) + '\n');
const now = () => Number(process.hrtime.bigint()) / 1e6;

function stats(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))]!;
  const r = (x: number) => Math.round(x * 1000) / 1000;
  return { n: s.length, median: r(q(0.5)), p95: r(q(0.95)), min: r(s[0]!), mean: r(s.reduce((a, b) => a + b, 0) / s.length) };
}

/** Notifications with their arrival time, awaited one by one. */
function feed(client: Client) {
  const queue: { n: Notification; at: number }[] = [];
  let wake: (() => void) | undefined;
  void (async () => {
    for await (const n of client.notifications()) {
      queue.push({ n, at: now() });
      wake?.();
    }
  })().catch(() => undefined);
  return async function next(kind: string, id: string): Promise<number> {
    for (;;) {
      const i = queue.findIndex(({ n }) => typeof n === 'object' && kind in n && [(n as Record<string, unknown>)[kind]].flat()[0] === id);
      if (i >= 0) return queue.splice(0, i + 1).at(-1)!.at;
      await new Promise<void>((r) => (wake = r));
    }
  };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/restart: needs root (namespaces, loop devices, cgroups)');
  if (process.env.NSTAR_BENCH_NS !== '1') {
    const r = spawnSync('unshare', ['--mount', '--propagation', 'private', process.execPath, '--import', 'tsx', ...process.argv.slice(1)], {
      stdio: 'inherit', env: { ...process.env, NSTAR_BENCH_NS: '1' },
    });
    process.exit(r.status ?? 1);
  }
  setLevel('error'); // a WARN line per restart would drown the figures
  const manifest = { args: ['exit', '0'] };
  const plain = await fixtureNpk({ name: 'bench-plain', manifest });
  const looping = await fixtureNpk({
    name: 'bench-loop',
    manifest: { ...manifest, restart: { policy: 'always', max_restarts: 1_000_000, within: '1ms', backoff: { initial: '0ms', max: '0ms' } } },
  });
  const p = await prepare({ repositories: { default: { npks: [plain, looping], mountOnStart: true } } });
  const rt = await Runtime.start(p.config);
  const client = await Client.connect(p.url, { subscribe: 100_000, extensions: ['supervision'] });
  try {
    const next = feed(client);
    const start: number[] = [];
    for (let i = 0; i < warmup + iterations; i++) {
      const t0 = now();
      await client.start('bench-plain:0.0.1');
      const t1 = await next('started', 'bench-plain:0.0.1');
      await next('exit', 'bench-plain:0.0.1');
      if (i >= warmup) start.push(t1 - t0);
    }
    const restart: number[] = [];
    await client.start('bench-loop:0.0.1');
    await next('started', 'bench-loop:0.0.1');
    for (let i = 0; i < warmup + iterations; i++) {
      const exited = await next('exit', 'bench-loop:0.0.1');
      const running = await next('started', 'bench-loop:0.0.1');
      if (i >= warmup) restart.push(running - exited);
    }
    await client.stop('bench-loop:0.0.1', 1000).catch(() => undefined);
    const s = stats(start);
    const r = stats(restart);
    emit({ method: 'start', ...s });
    emit({ method: 'restart', ...r });
    emit({ summary: true, start_median_ms: s.median, restart_median_ms: r.median, ratio_restart_vs_start: Math.round((r.median / s.median) * 100) / 100 });
  } finally {
    client.close();
    await rt.shutdown();
    rmSync(p.dir, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`bench/restart: ${e instanceof Error ? e.stack : String(e)}\n`);
  process.exit(1);
});
