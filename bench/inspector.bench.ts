// What the state-chart inspector costs the runtime: 100 container machines
// (the real container machine with the real launch and cgroups actors; the
// root is a directory, so no mount) cycle start → exit → start, at most
// --parallel starts in flight (100 at once only measures the kernel's
// contention), and each start's latency (request → reply) is measured with the inspector off and on
// (a page connected and reading the event stream). Blocks alternate off/on so
// drift hits both alike; a third mode passes a no-op `inspect` (XState's own
// share of the cost). Prints one JSON line per figure and a summary
// `{"bench":"inspector","ratio_on_vs_off":…}`; the target is ≤ 1.10.
//   node --import tsx bench/inspector.bench.ts [--containers 100] [--cycles 3] [--blocks 4] [--parallel 4]
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { createActor, setup, type AnyActorRef, type EventObject, type InspectionEvent } from 'xstate';
import { CgroupTree } from '../src/actors/cgroups/cgroups.js';
import { launch } from '../src/actors/launch/launch.js';
import { makeActors } from '../src/actors/machine-actors.js';
import { startInspector, type Inspector } from '../src/inspector/inspector.js';
import { containerMachine } from '../src/machines/container.js';
import type { LaunchSpec, MountInput } from '../src/machines/contracts.js';
import type { Result, RuntimeError } from '../src/model/errors.js';
import type { Manifest } from '../src/model/manifest.js';
import { buildProbe } from '../test/fixtures/build.js';

const { values: opts } = parseArgs({
  options: {
    containers: { type: 'string', default: '100' },
    cycles: { type: 'string', default: '3' },
    blocks: { type: 'string', default: '4' },
    parallel: { type: 'string', default: '4' },
  },
});
const N = Number(opts.containers);
const CYCLES = Number(opts.cycles);
const BLOCKS = Number(opts.blocks);
const PARALLEL = Number(opts.parallel);

/** At most `n` holders at a time. */
function semaphore(n: number) {
  let free = n;
  const waiting: (() => void)[] = [];
  return {
    async take(): Promise<void> {
      if (free > 0) return void free--;
      await new Promise<void>((r) => waiting.push(r));
    },
    give(): void {
      const next = waiting.shift();
      if (next) next();
      else free++;
    },
  };
}
const emit = (o: object) => process.stdout.write(JSON.stringify({ bench: 'inspector', ...o }) + '\n');

function manifest(i: number): Manifest {
  return {
    name: `cycle${i}`, version: '0.0.1', init: '/probe', args: ['exit', '0'], env: {}, uid: 1000, gid: 1000,
    mounts: {}, capabilities: [], suppl_groups: [], rlimits: {}, sockets: {},
  };
}

/** A page that reads the stream (and counts what it got), as a browser would. */
function page(inspector: Inspector): { close(): void; received(): number } {
  let bytes = 0;
  const req = request(inspector.url + 'api/stream', (res) => res.on('data', (d: Buffer) => (bytes += d.length)));
  req.on('error', () => undefined);
  req.end();
  return { close: () => req.destroy(), received: () => bytes };
}

/** One block: N machines, each started CYCLES times; returns every start's latency in ms. */
async function block(dir: string, tree: CgroupTree, inspect: ((e: InspectionEvent) => void) | undefined): Promise<number[]> {
  const actors = makeActors({
    mount: async (input: MountInput) => ({ device: 'dir', target: input.target, phases: {} }),
    umount: async () => undefined,
    launch: (spec: LaunchSpec) => launch(spec),
    cgroups: (container, m, pid) => tree.container(container, m.cgroups, pid),
  });
  const logic = containerMachine.provide({ actors: actors as never });
  const ids = Array.from({ length: N }, (_, i) => `cycle${i}:0.0.1`);
  const exits = new Map<string, () => void>();
  const parent = setup({ actors: { container: logic } }).createMachine({
    invoke: ids.map((id, i) => ({
      id, src: 'container' as const,
      input: { id, manifest: manifest(i), mount: { container: id, npkPath: '', fsImgOffset: 0, fsImgSize: 0, target: join(dir, 'root'), verityMode: 'auto' as const, loopDeviceTimeoutMs: 1000 } },
    })),
    on: { 'container.exit': { actions: ({ event }: { event: EventObject }) => exits.get((event as unknown as { id: string }).id)?.() } },
  });
  const system = createActor(parent, inspect ? { inspect } : {}).start();
  const children = system.getSnapshot().children as Record<string, AnyActorRef>;
  const latencies: number[] = [];
  const slots = semaphore(PARALLEL);
  const cycle = async (id: string, i: number) => {
    for (let c = 0; c < CYCLES; c++) {
      const exited = new Promise<void>((resolve) => exits.set(id, resolve));
      const spec: LaunchSpec = {
        container: id, manifest: manifest(i), root: join(dir, 'root'), init: '/probe', args: ['exit', '0'],
        env: { NORTHSTAR_NAME: `cycle${i}`, NORTHSTAR_VERSION: '0.0.1', NORTHSTAR_CONTAINER: id },
        runDir: join(dir, 'run'), dataDir: join(dir, 'data'), socketDir: join(dir, 'sockets'), resources: {},
      };
      await slots.take();
      try {
        const t0 = performance.now();
        const outcome = await new Promise<Result<unknown, RuntimeError>>((reply) =>
          children[id].send({ type: 'start', spec, requestedAt: t0, resolveMs: 0, reply }),
        );
        if (!outcome.ok) throw outcome.error;
        latencies.push(performance.now() - t0);
        await exited;
      } finally {
        slots.give();
      }
    }
  };
  await Promise.all(ids.map((id, i) => cycle(id, i)));
  system.stop();
  return latencies;
}

function stats(xs: number[]) {
  const s = [...xs].sort((a, b) => a - b);
  const q = (p: number) => s[Math.min(s.length - 1, Math.floor(p * s.length))];
  const r = (x: number) => Math.round(x * 1000) / 1000;
  return { n: s.length, median: r(q(0.5)), p95: r(q(0.95)), mean: r(s.reduce((a, b) => a + b, 0) / s.length) };
}

async function main(): Promise<void> {
  if (process.getuid?.() !== 0) throw new Error('bench/inspector: needs root (namespaces, cgroups)');
  if (process.env.NSTAR_BENCH_NS !== '1') {
    const r = spawnSync('unshare', ['--mount', '--propagation', 'private', process.execPath, '--import', 'tsx', ...process.argv.slice(1)], {
      stdio: 'inherit', env: { ...process.env, NSTAR_BENCH_NS: '1' },
    });
    process.exit(r.status ?? 1);
  }
  const dir = mkdtempSync(join(tmpdir(), 'nstar-bench-inspector-'));
  for (const d of ['root', 'run', 'data', 'sockets']) mkdirSync(join(dir, d), { recursive: true });
  copyFileSync(buildProbe(), join(dir, 'root/probe'));
  const off: number[] = [];
  const on: number[] = [];
  const noop: number[] = [];
  let tree: CgroupTree | undefined;
  let inspector: Inspector | undefined;
  let reader: ReturnType<typeof page> | undefined;
  try {
    tree = await CgroupTree.create(`nstar-bench-${process.pid}`);
    inspector = await startInspector({ bind: '127.0.0.1:0' });
    reader = page(inspector);
    await block(dir, tree, undefined); // warm-up
    for (let b = 0; b < BLOCKS; b++) {
      off.push(...(await block(dir, tree, undefined)));
      on.push(...(await block(dir, tree, inspector.inspect)));
      // XState's own share: it builds inspection events whenever an `inspect` is given.
      noop.push(...(await block(dir, tree, () => undefined)));
    }
  } finally {
    reader?.close();
    await inspector?.close();
    await tree?.destroy();
    rmSync(dir, { recursive: true, force: true });
  }
  const a = stats(off);
  const b = stats(on);
  emit({ inspector: 'off', metric: 'start_ms', containers: N, parallel: PARALLEL, ...a });
  emit({ inspector: 'on', metric: 'start_ms', containers: N, parallel: PARALLEL, ...b, streamed_bytes: reader!.received() });
  const c = stats(noop);
  emit({ inspector: 'noop', metric: 'start_ms', containers: N, parallel: PARALLEL, ...c });
  const ratio = Math.round((b.median / a.median) * 1000) / 1000;
  emit({ ratio_on_vs_off: ratio, ratio_noop_vs_off: Math.round((c.median / a.median) * 1000) / 1000, target: 1.1, met: ratio <= 1.1 });
}

await main();
