import assert from 'node:assert/strict';
import { test } from 'node:test';

import { fromPromise, SimulatedClock } from 'xstate';

import { contentsOf, type Repository } from '../../src/actors/repository/index.js';
import type { NpkInfo } from '../../src/machines/plan.js';
import type { ContainerData, ContainerResult, Notification, Request } from '../../src/machines/requests.js';
import {
  createSupervisor,
  onNotification,
  whenDone,
  whenReady,
  type InstallInput,
  type Supervisor,
  type SupervisorConfig,
  type UninstallInput,
} from '../../src/machines/supervisor.js';
import type { ExitStatus, RuntimeError } from '../../src/model/errors.js';
import type { Manifest } from '../../src/model/manifest.js';
import {
  FakeIo,
  FakeRepository,
  flush,
  manifest,
  recorder,
  resourceManifest,
  settledError,
  settledOk,
  stream,
  unsettled,
  type Recorded,
} from './machine-fakes.js';

const CONFIG: SupervisorConfig = {
  runDir: '/run/ns',
  dataDir: '/data',
  socketDir: '/sockets',
  verity: 'auto',
  loopDeviceTimeoutMs: 10_000,
  mountOnStart: [],
};

const res = (v: string) => resourceManifest('res', v);
const user = (over: Partial<Manifest> = {}) =>
  manifest('app', '0.0.1', {
    mounts: { '/res': { type: 'resource', name: 'res', version: '>=0.0.1', dir: '/', options: [] } },
    ...over,
  });

interface Setup {
  repos?: FakeRepository[];
  config?: Partial<SupervisorConfig>;
  autoRun?: boolean;
  /** Real timers instead of the simulated clock. */
  realClock?: boolean;
}

async function boot(opts: Setup = {}) {
  const io = new FakeIo();
  io.autoMount = true;
  io.autoUmount = true;
  io.autoRun = opts.autoRun ?? true;
  io.autoExit = true;
  const repos = opts.repos ?? [new FakeRepository('mem', [user(), res('0.0.1')])];
  const wiped: string[] = [];
  const clock = new SimulatedClock();
  const byId = (id: string) => repos.find((r) => r.id === id)!;
  const actors = {
    ...io.actors(),
    install: fromPromise<NpkInfo, InstallInput>(({ input }) => byId(input.repository).insert(input.data)),
    uninstall: fromPromise<void, UninstallInput>(async ({ input }) => {
      await byId(input.repository).remove(input.container);
      if (input.wipe) wiped.push(input.wipe);
    }),
  };
  const sup = createSupervisor({
    repositories: repos.map((r) => contentsOf(r as unknown as Repository)),
    config: { ...CONFIG, ...opts.config },
    actors,
    ...(opts.realClock ? {} : { clock }),
  });
  const notifications: Notification[] = [];
  onNotification(sup, (n) => notifications.push(n));
  const replies: Recorded<unknown>[] = [];
  sup.start();
  const h = {
    sup,
    io,
    repos,
    wiped,
    clock,
    notifications,
    /** Sends a request with a recording reply. */
    req<T = unknown>(request: Request): Recorded<T> {
      const r = recorder<T>();
      replies.push(r as Recorded<unknown>);
      sup.send({ type: 'request', request, reply: r as never });
      return r;
    },
    /** Sends a request and waits for the settled reply. */
    async ask<T = unknown>(request: Request): Promise<Recorded<T>> {
      const r = h.req<T>(request);
      await flush();
      return r;
    },
    start(container: string, over: Partial<Extract<Request, { type: 'start' }>> = {}) {
      return h.ask({ type: 'start', container, arguments: [], environment: {}, ...over });
    },
    /** Every reply of the test was settled exactly once. */
    allSettledOnce() {
      for (const r of replies) assert.equal(r.calls.length, 1, 'a reply was not settled exactly once');
    },
  };
  await flush();
  return h;
}

function mounted(sup: Supervisor, id: string): boolean {
  const ref = sup.getSnapshot().context.containers[id]?.ref;
  return ref?.getSnapshot().hasTag('mounted') ?? false;
}

function state(sup: Supervisor, id: string): string {
  return JSON.stringify(sup.getSnapshot().context.containers[id]!.ref.getSnapshot().value);
}

test('list and repositories answer what the repositories hold', async () => {
  const h = await boot({ repos: [new FakeRepository('mem', [user()]), new FakeRepository('fs', [res('0.0.1')])] });
  await whenReady(h.sup);
  assert.deepEqual((settledOk(await h.ask({ type: 'list' })) as string[]).sort(), ['app:0.0.1', 'res:0.0.1']);
  assert.deepEqual(settledOk(await h.ask({ type: 'repositories' })), ['mem', 'fs']);
  h.allSettledOnce();
});

test('a start mounts the resource and the container, runs it and notifies started; inspect shows the process', async () => {
  const h = await boot();
  settledOk(await h.start('app:0.0.1'));
  assert.ok(mounted(h.sup, 'res:0.0.1') && mounted(h.sup, 'app:0.0.1'));
  assert.deepEqual(h.notifications, [{ type: 'started', container: 'app:0.0.1' }]);
  const spec = h.io.proc('app:0.0.1').input;
  assert.deepEqual(spec.resources, { '/res': '/run/ns/res:0.0.1/' });
  assert.equal(spec.root, '/run/ns/app:0.0.1');
  assert.deepEqual(spec.env, { NORTHSTAR_NAME: 'app', NORTHSTAR_VERSION: '0.0.1', NORTHSTAR_CONTAINER: 'app:0.0.1' });
  const data = settledOk(await h.ask<ContainerData>({ type: 'inspect', container: 'app:0.0.1' }));
  assert.equal(data.container, 'app:0.0.1');
  assert.equal(data.repository, 'mem');
  assert.equal(data.mounted, true);
  assert.equal(data.manifest.name, 'app');
  assert.match(data.state, /started\.running/);
  assert.ok(data.process && data.process.pid >= 1000);
  assert.ok(data.startup && data.startup.total !== undefined);
  const idle = settledOk(await h.ask<ContainerData>({ type: 'inspect', container: 'res:0.0.1' }));
  assert.equal(idle.process, null);
  h.allSettledOnce();
});

test('start errors follow Northstar: unknown, resource, missing resource, reserved env', async () => {
  const h = await boot({ repos: [new FakeRepository('mem', [user(), res('0.0.1'), manifest('lonely', '1.0.0', { mounts: { '/r': { type: 'resource', name: 'nope', version: '>=2', dir: '/', options: [] } } })])] });
  settledError(await h.start('unknown:0.0.12'), 'invalid_container');
  settledError(await h.start('res:0.0.1'), 'start_container_resource');
  const f = settledError(await h.start('lonely:1.0.0'), 'start_container_missing_resource');
  assert.deepEqual(f, { container: 'lonely:1.0.0', resource: 'nope', version: '>=2' });
  settledError(await h.start('app:0.0.1', { environment: { NORTHSTAR_X: '1' } }), 'invalid_arguments');
  assert.equal(h.io.processes.size, 0);
  assert.ok(!mounted(h.sup, 'res:0.0.1'), 'nothing is mounted for a refused start');
  h.allSettledOnce();
});

test('resources resolve to the highest installed version that satisfies the requirement', async () => {
  const h = await boot({
    repos: [new FakeRepository('mem', [user(), res('0.0.1'), res('0.0.3'), res('0.0.2'), res('1.0.0')])],
  });
  const u = user({ mounts: { '/res': { type: 'resource', name: 'res', version: '>=0.0.1 <1.0.0', dir: 'data', options: [] } } });
  const h2 = await boot({ repos: [new FakeRepository('mem', [u, res('0.0.1'), res('0.0.3'), res('0.0.2'), res('1.0.0')])] });
  settledOk(await h2.start('app:0.0.1'));
  assert.deepEqual(h2.io.proc('app:0.0.1').input.resources, { '/res': '/run/ns/res:0.0.3/data' });
  assert.ok(mounted(h2.sup, 'res:0.0.3'));
  assert.ok(!mounted(h2.sup, 'res:0.0.1') && !mounted(h2.sup, 'res:1.0.0'));
  settledOk(await h.start('app:0.0.1'));
  assert.deepEqual(h.io.proc('app:0.0.1').input.resources, { '/res': '/run/ns/res:1.0.0/' });
});

test('init override with <INIT>, argument and environment overrides reach the launch spec', async () => {
  const h = await boot({ repos: [new FakeRepository('mem', [manifest('app', '0.0.1', { args: ['sleep'], env: { A: '1' } })])] });
  settledOk(await h.start('app:0.0.1', { init: '<INIT>', arguments: ['print', 'hi'], environment: { B: '2' } }));
  const spec = h.io.proc('app:0.0.1').input;
  assert.equal(spec.init, '/probe');
  assert.deepEqual(spec.args, ['print', 'hi']);
  assert.equal(spec.env.B, '2');
  assert.equal(spec.env.A, undefined, 'a non-empty environment replaces the manifest env');
  const h2 = await boot({ repos: [new FakeRepository('mem', [manifest('app', '0.0.1', { args: ['sleep'], env: { A: '1' } })])] });
  settledOk(await h2.start('app:0.0.1'));
  assert.deepEqual(h2.io.proc('app:0.0.1').input.args, ['sleep']);
  assert.equal(h2.io.proc('app:0.0.1').input.env.A, '1');
});

test('a second start, and a start of another version of the same name, answer start_container_started', async () => {
  const h = await boot({ repos: [new FakeRepository('mem', [manifest('app', '0.0.1'), manifest('app', '0.0.2')])] });
  const a = h.req({ type: 'start', container: 'app:0.0.1', arguments: [], environment: {} });
  const b = h.req({ type: 'start', container: 'app:0.0.1', arguments: [], environment: {} });
  const c = h.req({ type: 'start', container: 'app:0.0.2', arguments: [], environment: {} });
  await flush();
  settledOk(a);
  assert.deepEqual(settledError(b, 'start_container_started'), { container: 'app:0.0.1' });
  assert.deepEqual(settledError(c, 'start_container_started'), { container: 'app:0.0.1' });
  h.allSettledOnce();
});

test('a failed start frees the container before its client hears of it: a start sent from the reply is not refused as started', async () => {
  const h = await boot();
  h.io.autoMount = false;
  const start: Request = { type: 'start', container: 'app:0.0.1', arguments: [], environment: {} };
  const first = recorder<unknown>();
  const again = recorder<unknown>();
  h.sup.send({
    type: 'request',
    request: start,
    reply: (o) => {
      first(o);
      h.io.autoMount = true;
      h.sup.send({ type: 'request', request: start, reply: again as never });
    },
  });
  await flush();
  h.io.mounts.shift()!.reject({ code: 'EIO', message: 'mount `/run/ns/res:0.0.1`: Input/output error' });
  await flush();
  settledError(first, 'start_container_failed');
  settledOk(again);
});

test('a mount and a start in flight when the supervisor is stopped are answered', async () => {
  const h = await boot();
  h.io.autoMount = false;
  const m = h.req({ type: 'mount', containers: ['app:0.0.1'] });
  const s = h.req({ type: 'start', container: 'app:0.0.1', arguments: [], environment: {} });
  await flush();
  h.sup.stop();
  for (const r of [m, s]) {
    settledError(r, 'unexpected');
    assert.match((r.calls[0] as { error: Error }).error.message, /the runtime shut down/);
  }
});

test('kill checks the container, its state and the signal number', async () => {
  const h = await boot();
  settledError(await h.ask({ type: 'kill', container: 'foo:0.0.1', signal: 15 }), 'invalid_container');
  settledError(await h.ask({ type: 'kill', container: 'app:0.0.1', signal: 15 }), 'stop_container_not_started');
  settledOk(await h.start('app:0.0.1'));
  settledError(await h.ask({ type: 'kill', container: 'app:0.0.1', signal: 99 }), 'unexpected');
  settledOk(await h.ask({ type: 'kill', container: 'app:0.0.1', signal: 15 }));
  await flush();
  assert.deepEqual(h.notifications.at(-1), { type: 'exit', container: 'app:0.0.1', status: { signalled: { signal: 15 } } });
  h.allSettledOnce();
});

test('mount answers per container in request order; a mounted container answers mount_busy', async () => {
  const h = await boot();
  const r = settledOk(await h.ask<ContainerResult[]>({ type: 'mount', containers: ['res:0.0.1', 'foo:0.0.1'] }));
  assert.equal(r.length, 2);
  assert.deepEqual(r[0], { container: 'res:0.0.1', ok: true });
  assert.equal(r[1]!.ok, false);
  assert.equal((r[1] as { error: RuntimeError }).error.code, 'invalid_container');
  const again = settledOk(await h.ask<ContainerResult[]>({ type: 'mount', containers: ['res:0.0.1'] }));
  assert.equal((again[0] as { error: RuntimeError }).error.code, 'mount_busy');
  assert.ok(!mounted(h.sup, 'app:0.0.1'), 'only the listed containers are mounted');
  h.allSettledOnce();
});

test('umount of a resource in use names its user; after the user stops it succeeds', async () => {
  const h = await boot();
  const notMounted = settledOk(await h.ask<ContainerResult[]>({ type: 'umount', containers: ['res:0.0.1'] }));
  assert.deepEqual((notMounted[0] as { error: RuntimeError }).error.fields, { container: 'res:0.0.1' });
  settledOk(await h.start('app:0.0.1'));
  const busy = settledOk(await h.ask<ContainerResult[]>({ type: 'umount', containers: ['res:0.0.1', 'app:0.0.1', 'x:1.0.0'] }));
  assert.deepEqual(
    busy.map((r) => (r.ok ? 'ok' : [r.error.code, r.error.fields])),
    [
      ['umount_busy', { container: 'app:0.0.1' }],
      ['umount_busy', { container: 'app:0.0.1' }],
      ['invalid_container', { container: 'x:1.0.0' }],
    ],
  );
  const stop = await h.ask<ExitStatus>({ type: 'stop', container: 'app:0.0.1', graceMs: 1000 });
  assert.deepEqual(settledOk(stop), { signalled: { signal: 15 } });
  const ok = settledOk(await h.ask<ContainerResult[]>({ type: 'umount', containers: ['res:0.0.1', 'app:0.0.1'] }));
  assert.deepEqual(ok, [
    { container: 'res:0.0.1', ok: true },
    { container: 'app:0.0.1', ok: true },
  ]);
  assert.ok(!mounted(h.sup, 'res:0.0.1'));
  h.allSettledOnce();
});

test('a container started again after its resource was unmounted gets the resource mounted again', async () => {
  const h = await boot();
  settledOk(await h.start('app:0.0.1'));
  settledOk(await h.ask({ type: 'stop', container: 'app:0.0.1', graceMs: 100 }));
  settledOk(await h.ask({ type: 'umount', containers: ['res:0.0.1'] }));
  assert.ok(!mounted(h.sup, 'res:0.0.1'));
  settledOk(await h.start('app:0.0.1'));
  assert.ok(mounted(h.sup, 'res:0.0.1'));
});

test('stop with grace: SIGKILL after the grace when SIGTERM is ignored', async () => {
  const h = await boot();
  h.io.ignoreTerm = true;
  settledOk(await h.start('app:0.0.1'));
  const s = await h.ask<ExitStatus>({ type: 'stop', container: 'app:0.0.1', graceMs: 2000 });
  unsettled(s);
  h.clock.increment(1999);
  await flush();
  assert.deepEqual(h.io.proc('app:0.0.1').signals(), [15]);
  h.clock.increment(1);
  await flush();
  assert.deepEqual(settledOk(s), { signalled: { signal: 9 } });
  assert.deepEqual(h.notifications.at(-1), { type: 'exit', container: 'app:0.0.1', status: { signalled: { signal: 9 } } });
});

test('pause and resume go through the cgroups; stats come by category', async () => {
  const h = await boot();
  settledError(await h.ask({ type: 'pause', container: 'app:0.0.1' }), 'stop_container_not_started');
  settledError(await h.ask({ type: 'stats', container: 'app:0.0.1' }), 'stop_container_not_started');
  settledOk(await h.start('app:0.0.1'));
  settledOk(await h.ask({ type: 'pause', container: 'app:0.0.1' }));
  assert.match(state(h.sup, 'app:0.0.1'), /paused/);
  settledOk(await h.ask({ type: 'resume', container: 'app:0.0.1' }));
  assert.match(state(h.sup, 'app:0.0.1'), /running/);
  const stats = settledOk(await h.ask({ type: 'stats', container: 'app:0.0.1', categories: ['memory'] }));
  assert.deepEqual(stats, { pids: { current: 1 }, categories: ['memory'] });
  const exec = settledOk(await h.ask<{ pid: number }>({ type: 'exec', container: 'app:0.0.1', path: '/probe', args: [], env: {} }));
  assert.equal(exec.pid, 777);
  h.allSettledOnce();
});

test('install keeps the NPK, notifies, and refuses unknown repositories and duplicates', async () => {
  const mem = new FakeRepository('mem');
  const fs = new FakeRepository('fs');
  const h = await boot({ repos: [mem, fs] });
  assert.equal(settledOk(await h.ask({ type: 'install', repository: 'mem', data: stream(user()) })), 'app:0.0.1');
  assert.deepEqual(h.notifications, [{ type: 'install', container: 'app:0.0.1' }]);
  assert.deepEqual(settledOk(await h.ask({ type: 'list' })), ['app:0.0.1']);
  assert.deepEqual(settledError(await h.ask({ type: 'install', repository: 'whooha', data: stream(user()) }), 'invalid_repository'), {
    repository: 'whooha',
  });
  const same = settledError(await h.ask({ type: 'install', repository: 'mem', data: stream(user()) }), 'unexpected');
  assert.match(String(same.error), /already in repository mem/);
  settledError(await h.ask({ type: 'install', repository: 'fs', data: stream(user()) }), 'install_duplicate');
  assert.deepEqual(fs.removed, ['app:0.0.1'], 'the copy in the other repository is removed');
  assert.equal(fs.containers.size, 0);
  assert.equal(mem.containers.size, 1);
  h.allSettledOnce();
});

test('an installed container can be started', async () => {
  const h = await boot({ repos: [new FakeRepository('mem', [res('0.0.1')])] });
  settledOk(await h.ask({ type: 'install', repository: 'mem', data: stream(user()) }));
  settledOk(await h.start('app:0.0.1'));
});

test('uninstall: unknown, started and in-use containers are refused; a mounted one is unmounted, removed and wiped', async () => {
  const h = await boot();
  settledError(await h.ask({ type: 'uninstall', container: 'fckptn:0.0.1', wipe: false }), 'invalid_container');
  settledOk(await h.start('app:0.0.1'));
  assert.deepEqual(settledError(await h.ask({ type: 'uninstall', container: 'app:0.0.1', wipe: true }), 'umount_busy'), {
    container: 'app:0.0.1',
  });
  assert.deepEqual(settledError(await h.ask({ type: 'uninstall', container: 'res:0.0.1', wipe: true }), 'umount_busy'), {
    container: 'app:0.0.1',
  });
  settledOk(await h.ask({ type: 'stop', container: 'app:0.0.1', graceMs: 10 }));
  settledOk(await h.ask({ type: 'uninstall', container: 'app:0.0.1', wipe: true }));
  assert.deepEqual(h.io.umounts.length, 0);
  assert.deepEqual(h.wiped, ['/data/app']);
  assert.deepEqual(h.notifications.at(-1), { type: 'uninstall', container: 'app:0.0.1' });
  assert.deepEqual(settledOk(await h.ask({ type: 'list' })), ['res:0.0.1']);
  assert.equal(h.sup.getSnapshot().children['app:0.0.1'], undefined, 'its machine is stopped');
  settledError(await h.start('app:0.0.1'), 'invalid_container');
  h.allSettledOnce();
});

test('a failed umount aborts the uninstall and keeps the container', async () => {
  const h = await boot();
  settledOk(await h.ask({ type: 'mount', containers: ['app:0.0.1'] }));
  h.io.autoUmount = false;
  const u = await h.ask({ type: 'uninstall', container: 'app:0.0.1', wipe: false });
  h.io.umounts.shift()!.reject({ code: 'EBUSY', message: 'umount `/run/ns/app:0.0.1`: Device or resource busy' });
  await flush();
  settledError(u, 'unexpected');
  assert.ok(settledOk(await h.ask<string[]>({ type: 'list' })).includes('app:0.0.1'));
  h.io.autoUmount = true;
  settledOk(await h.ask({ type: 'uninstall', container: 'app:0.0.1', wipe: false }));
});

test('mount_on_start mounts the containers of those repositories at boot', async () => {
  const h = await boot({
    repos: [new FakeRepository('mem', [res('0.0.1')]), new FakeRepository('fs', [user()])],
    config: { mountOnStart: ['fs'] },
  });
  await whenReady(h.sup);
  assert.ok(mounted(h.sup, 'app:0.0.1'));
  assert.ok(!mounted(h.sup, 'res:0.0.1'));
});

test('autostart: relaxed failures only warn, critical ones abort the startup with the error', async () => {
  const relaxed = await boot({
    repos: [new FakeRepository('mem', [user({ autostart: 'relaxed' }), manifest('ok', '1.0.0', { autostart: 'relaxed' })])],
  });
  await whenReady(relaxed.sup);
  assert.deepEqual(relaxed.notifications, [{ type: 'started', container: 'ok:1.0.0' }]);

  const critical = await boot({ repos: [new FakeRepository('mem', [user({ autostart: 'critical' })])] });
  await assert.rejects(whenReady(critical.sup), (e: RuntimeError) => e.code === 'start_container_missing_resource');
  const out = await whenDone(critical.sup);
  assert.equal(out.error?.code, 'start_container_missing_resource');
  assert.deepEqual(critical.notifications, [{ type: 'shutdown' }]);
});

test('a critical container that exits with failure shuts the runtime down with critical_container', async () => {
  const h = await boot({ repos: [new FakeRepository('mem', [user({ autostart: 'critical' }), res('0.0.1'), manifest('other', '1.0.0')])] });
  await whenReady(h.sup);
  settledOk(await h.start('other:1.0.0'));
  h.io.proc('app:0.0.1').exit(1);
  const out = await whenDone(h.sup);
  assert.equal(out.error?.code, 'critical_container');
  assert.deepEqual(out.error?.fields, { container: 'app:0.0.1', status: { exit: { code: 1 } } });
  assert.deepEqual(h.io.proc('other:1.0.0').signals(), [9], 'the other containers are killed');
  assert.deepEqual(h.notifications.at(-1), { type: 'shutdown' });
  assert.ok(!mounted(h.sup, 'app:0.0.1') && !mounted(h.sup, 'res:0.0.1'));
});

test('a critical container that exits with success does not shut the runtime down', async () => {
  const h = await boot({ repos: [new FakeRepository('mem', [manifest('c', '1.0.0', { autostart: 'critical' })])] });
  await whenReady(h.sup);
  h.io.proc('c:1.0.0').exit(0);
  await flush();
  assert.ok(h.sup.getSnapshot().matches({ up: 'ready' }));
});

test('shutdown kills every started container, unmounts users before resources, notifies, and refuses later requests', async () => {
  const h = await boot({ repos: [new FakeRepository('mem', [user(), res('0.0.1'), manifest('idle', '1.0.0')])] });
  settledOk(await h.start('app:0.0.1'));
  settledOk(await h.ask({ type: 'mount', containers: ['idle:1.0.0'] }));
  h.io.autoUmount = false;
  const s = h.req({ type: 'shutdown' });
  settledOk(s);
  const late = await h.ask({ type: 'list' });
  settledError(late, 'unexpected');
  await flush();
  assert.deepEqual(h.io.proc('app:0.0.1').signals(), [9]);
  // Users first: app and idle, then the resource.
  assert.deepEqual(h.io.umounts.map((u) => u.input.container).sort(), ['app:0.0.1', 'idle:1.0.0']);
  for (const u of h.io.umounts.splice(0)) u.resolve();
  await flush();
  assert.deepEqual(h.io.umounts.map((u) => u.input.container), ['res:0.0.1']);
  h.io.umounts.shift()!.resolve();
  const out = await whenDone(h.sup);
  assert.deepEqual(out, {});
  assert.deepEqual(h.notifications.slice(-2), [{ type: 'exit', container: 'app:0.0.1', status: { signalled: { signal: 9 } } }, { type: 'shutdown' }]);
  h.allSettledOnce();
});

test('a start in flight when the shutdown comes is answered, and nothing stays mounted', async () => {
  const h = await boot({ autoRun: false });
  h.io.autoMount = false;
  const s = h.req({ type: 'start', container: 'app:0.0.1', arguments: [], environment: {} });
  await flush();
  settledOk(h.req({ type: 'shutdown' }));
  await flush();
  for (const m of h.io.mounts.splice(0)) m.resolve({ device: '/dev/loop0', target: m.input.target, phases: {} });
  await flush();
  h.io.autoMount = true;
  await flush();
  for (const m of h.io.mounts.splice(0)) m.resolve({ device: '/dev/loop0', target: m.input.target, phases: {} });
  await whenDone(h.sup);
  assert.equal(s.calls.length, 1);
  assert.ok(!s.calls[0]!.ok);
  assert.equal(h.io.processes.size, 0, 'no process started after the shutdown began');
  assert.ok(!mounted(h.sup, 'app:0.0.1') && !mounted(h.sup, 'res:0.0.1'));
  h.allSettledOnce();
});

test('random request storms settle every reply exactly once and shut down clean', async () => {
  let seed = 42;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  const ids = ['app:0.0.1', 'res:0.0.1', 'other:1.0.0', 'nope:1.0.0'];
  for (let round = 0; round < 20; round++) {
    const h = await boot({ repos: [new FakeRepository('mem', [user(), res('0.0.1')]), new FakeRepository('fs', [manifest('other', '1.0.0')])] });
    for (let step = 0; step < 40; step++) {
      const container = ids[rnd(ids.length)]!;
      const requests: Request[] = [
        { type: 'start', container, arguments: [], environment: {} },
        { type: 'kill', container, signal: 15 },
        { type: 'stop', container, graceMs: 10 },
        { type: 'mount', containers: [container, ids[rnd(ids.length)]!] },
        { type: 'umount', containers: [container] },
        { type: 'uninstall', container, wipe: rnd(2) === 0 },
        { type: 'install', repository: rnd(2) ? 'mem' : 'fs', data: stream(rnd(2) ? user() : res('0.0.1')) },
        { type: 'pause', container },
        { type: 'resume', container },
        { type: 'inspect', container },
        { type: 'list' },
      ];
      h.req(requests[rnd(requests.length)]!);
      if (rnd(3) === 0) await flush();
      if (rnd(4) === 0) h.clock.increment(10);
    }
    await flush();
    h.req({ type: 'shutdown' });
    for (let i = 0; i < 5; i++) {
      h.clock.increment(10);
      await flush();
    }
    await whenDone(h.sup);
    h.allSettledOnce();
    for (const id of Object.keys(h.sup.getSnapshot().context.containers)) {
      assert.ok(!mounted(h.sup, id), `${id} is still mounted after the shutdown (round ${round})`);
    }
  }
});

test('with the default clock, a stop whose grace ends sends SIGKILL on a real timer', async () => {
  const h = await boot({ realClock: true });
  h.io.ignoreTerm = true;
  settledOk(await h.start('app:0.0.1'));
  const s = h.req<ExitStatus>({ type: 'stop', container: 'app:0.0.1', graceMs: 20 });
  await new Promise((r) => setTimeout(r, 60));
  await flush();
  assert.deepEqual(settledOk(s), { signalled: { signal: 9 } });
  assert.equal(h.sup.getSnapshot().status, 'active');
});

test('two installs of one NPK racing into one repository: one wins, the other is refused, nothing is removed', async () => {
  const mem = new FakeRepository('mem');
  mem.racy = true;
  const h = await boot({ repos: [mem] });
  const a = h.req({ type: 'install', repository: 'mem', data: stream(user()) });
  const b = h.req({ type: 'install', repository: 'mem', data: stream(user()) });
  await flush();
  settledOk(a);
  assert.match(String(settledError(b, 'unexpected').error), /already in repository mem/);
  assert.deepEqual(mem.removed, []);
  assert.deepEqual(settledOk(await h.ask({ type: 'list' })), ['app:0.0.1']);
});

test('a reply that throws does not take the supervisor down', async () => {
  const h = await boot();
  h.sup.send({
    type: 'request',
    request: { type: 'list' },
    reply: () => {
      throw new Error('write after end');
    },
  });
  h.sup.send({
    type: 'request',
    request: { type: 'kill', container: 'app:0.0.1', signal: 15 },
    reply: () => {
      throw new Error('write after end');
    },
  });
  await flush();
  assert.equal(h.sup.getSnapshot().status, 'active');
  settledOk(await h.start('app:0.0.1'));
});

test('a notification listener that throws does not take the supervisor down', async () => {
  const h = await boot();
  onNotification(h.sup, () => {
    throw new Error('subscriber gone');
  });
  settledOk(await h.start('app:0.0.1'));
  assert.equal(h.sup.getSnapshot().status, 'active');
  assert.deepEqual(h.notifications, [{ type: 'started', container: 'app:0.0.1' }]);
});

test('install, start, stop and uninstall ten times over: the container machine is replaced cleanly each time', async () => {
  const mem = new FakeRepository('mem', [res('0.0.1')]);
  const h = await boot({ repos: [mem] });
  for (let i = 0; i < 10; i++) {
    assert.equal(settledOk(await h.ask({ type: 'install', repository: 'mem', data: stream(user()) })), 'app:0.0.1');
    settledOk(await h.start('app:0.0.1'));
    settledOk(await h.ask({ type: 'stop', container: 'app:0.0.1', graceMs: 100 }));
    settledOk(await h.ask({ type: 'uninstall', container: 'app:0.0.1', wipe: true }));
  }
  assert.deepEqual(settledOk(await h.ask({ type: 'list' })), ['res:0.0.1']);
  assert.equal(h.notifications.filter((n) => n.type === 'exit').length, 10);
  assert.deepEqual(Object.keys(h.sup.getSnapshot().children).sort(), ['res:0.0.1'], 'no flow or machine left behind');
  h.allSettledOnce();
});

test('flow ids are reused: a thousand installs and uninstalls see a handful of done event types, not one per request', async () => {
  // XState memoizes each state node's transitions per event type, and a flow's
  // done event type carries its actor id: unique ids grew that cache forever.
  const mem = new FakeRepository('mem', [res('0.0.1')]);
  const h = await boot({ repos: [mem] });
  const types = new Set<string>();
  h.sup.system.inspect((e) => {
    if (e.type === '@xstate.event' && e.event.type.startsWith('xstate.done.actor.')) types.add(e.event.type);
  });
  for (let i = 0; i < 1000; i++) {
    settledOk(await h.ask({ type: 'install', repository: 'mem', data: stream(user()) }));
    settledOk(await h.ask({ type: 'uninstall', container: 'app:0.0.1', wipe: false }));
  }
  assert.ok(types.size <= 10, `${types.size} distinct done event types: ${[...types].slice(0, 5).join(', ')}…`);
  h.allSettledOnce();
});
