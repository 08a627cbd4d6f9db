import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createActor, setup, type AnyActorRef } from 'xstate';

import { debugArgv, ioFrom, makeActors, type Io } from '../../src/actors/machine-actors.js';
import type { ContainerCgroupsHandle } from '../../src/machines/contracts.js';
import { containerMachine } from '../../src/machines/container.js';
import type { ContainerStatus, Executed } from '../../src/machines/container-events.js';
import type { LaunchSpec, Launched, MemoryEvent } from '../../src/machines/contracts.js';
import type { Reply } from '../../src/machines/reply.js';
import { errors, type ExitStatus } from '../../src/model/errors.js';
import { withResolvers } from '../../src/model/with-resolvers.js';
import { flush, manifest, recorder, settledError, settledOk } from './machine-fakes.js';

const ID = 'hello:0.0.1';
const M = manifest('hello', '0.0.1');

/** An Io whose launch and cgroups are driven by the test, recording every call in order. */
function fakeIo() {
  const calls: string[] = [];
  const exited = withResolvers<ExitStatus>();
  const started = withResolvers<{ phases: Record<string, number> }>();
  let oom: ((m: MemoryEvent) => void) | undefined;
  const cgroupsReady = withResolvers<ContainerCgroupsHandle>();
  const launched: Launched = {
    pid: 321,
    openGate: () => calls.push('openGate'),
    started: started.promise,
    exited: exited.promise,
    kill: (s) => calls.push(`kill ${s}`),
    exec: async (req) => {
      calls.push(`exec ${req.path}`);
      return { pid: 555, exited: Promise.resolve({ exit: { code: 3 } }) };
    },
  };
  const handle: ContainerCgroupsHandle = {
    freeze: async () => {
      calls.push('freeze');
    },
    thaw: async () => {
      calls.push('thaw');
    },
    onOom: (cb) => {
      oom = cb;
    },
    destroy: async () => {
      calls.push('destroy');
    },
    stats: (c) => ({ asked: c ?? 'all' }),
  };
  const io: Io = {
    mount: async (input) => {
      calls.push(`mount ${input.container}`);
      return { device: '/dev/loop3', target: input.target, phases: {} };
    },
    umount: async (input) => {
      calls.push(`umount ${input.container}`);
    },
    launch: async (spec: LaunchSpec) => {
      calls.push(`launch ${spec.init}`);
      return launched;
    },
    cgroups: (container, _m, pid) => {
      calls.push(`cgroups ${container} ${pid}`);
      return cgroupsReady.promise;
    },
    onMounted: (i) => calls.push(`onMounted ${i.target}`),
    onUnmounted: (i) => calls.push(`onUnmounted ${i.target}`),
    onSpawned: (c, pid) => calls.push(`onSpawned ${c} ${pid}`),
    onExited: (c, pid) => calls.push(`onExited ${c} ${pid}`),
    spawnDebug: (c, argv) => calls.push(`debug ${c} ${argv.join(' ')}`),
  };
  return { io, calls, exited, started, cgroupsReady, handle, oom: (m: MemoryEvent) => oom?.(m), launched };
}

function machine(io: Io) {
  const reports: { type: string }[] = [];
  const logic = containerMachine.provide({ actors: makeActors(io, { debugCommands: ['strace -c -p <PID>', 'echo <CONTAINER>'] }) });
  const parent = setup({ actors: { c: logic } }).createMachine({
    invoke: {
      id: 'c',
      src: 'c',
      input: {
        id: ID,
        manifest: M,
        mount: { container: ID, npkPath: '/x.npk', fsImgOffset: 0, fsImgSize: 1, target: `/run/${ID}`, verityMode: 'auto', loopDeviceTimeoutMs: 1 },
      },
    },
    on: { '*': { actions: ({ event }) => reports.push(event) } },
  });
  const actor = createActor(parent).start();
  const c = actor.getSnapshot().children.c as AnyActorRef;
  const stop = () => actor.stop();
  const req = <T = void>(type: string, extra: Record<string, unknown> = {}) => {
    const r = recorder<T>();
    c.send({ type, ...extra, reply: r as Reply<T> });
    return r;
  };
  return { c, reports, req, stop };
}

/** A machine over `f` whose cgroups and start succeeded: its container runs. */
async function running(f: ReturnType<typeof fakeIo>) {
  const m = machine(f.io);
  m.req('start', { spec: SPEC });
  await flush();
  f.cgroupsReady.resolve(f.handle);
  f.started.resolve({ phases: {} });
  await flush();
  return m;
}

const SPEC: LaunchSpec = {
  container: ID,
  manifest: M,
  root: `/run/${ID}`,
  init: '/probe',
  args: [],
  env: {},
  runDir: '/run',
  dataDir: '/data',
  socketDir: '/s',
  resources: {},
};

test('the real adapters: the gate opens only after the cgroups exist, and the exit is reported after they are destroyed', async () => {
  const f = fakeIo();
  const m = machine(f.io);
  const start = m.req('start', { spec: SPEC });
  await flush();
  assert.deepEqual(f.calls, [
    `mount ${ID}`,
    `onMounted /run/${ID}`,
    'launch /probe',
    `onSpawned ${ID} 321`,
    `debug ${ID} strace -c -p 321`,
    `debug ${ID} echo ${ID}`,
    `cgroups ${ID} 321`,
  ]);
  f.cgroupsReady.resolve(f.handle);
  await flush();
  assert.equal(f.calls.at(-1), 'openGate');
  f.started.resolve({ phases: { exec: 1 } });
  await flush();
  settledOk(start);

  const inspect = m.req<ContainerStatus>('inspect', { categories: ['pids'] });
  await flush();
  assert.deepEqual(settledOk(inspect).process?.statistics, { asked: ['pids'] });

  f.oom({ low: null, high: null, max: null, oom: 1, oom_kill: 0 });
  assert.equal(m.reports.at(-1)?.type, 'container.oom');

  const exec = m.req<Executed>('exec', { exec: { path: '/probe', args: [], env: {} } });
  await flush();
  assert.equal(settledOk(exec).pid, 555);

  settledOk(m.req('kill', { signal: 15 }));
  assert.equal(f.calls.at(-1), 'kill 15');
  f.exited.resolve({ signalled: { signal: 15 } });
  await flush();
  const destroyAt = f.calls.indexOf('destroy');
  assert.ok(destroyAt > 0, 'cgroups destroyed');
  assert.equal(m.reports.at(-1)?.type, 'container.exit');
  assert.equal(f.calls.filter((c) => c === 'destroy').length, 1, 'destroyed once');

  const umount = m.req('umount');
  await flush();
  settledOk(umount);
  assert.deepEqual(f.calls.slice(-2), [`umount ${ID}`, `onUnmounted /run/${ID}`]);
});

test('the real adapters: a cgroups failure kills the waiting init and fails the start', async () => {
  const f = fakeIo();
  const m = machine(f.io);
  const start = m.req('start', { spec: SPEC });
  await flush();
  f.cgroupsReady.reject(Object.assign(new Error('mkdir `/sys/fs/cgroup/x`: Permission denied'), { code: 'EACCES' }));
  await flush();
  assert.equal(f.calls.at(-1), 'kill 9');
  assert.ok(!f.calls.includes('openGate'));
  f.exited.resolve({ signalled: { signal: 9 } });
  await flush();
  assert.match(String(settledError(start, 'start_container_failed').error), /Permission denied/);
});

test('the real adapters: freeze and thaw run in the order asked, and kill of a paused container thaws first', async () => {
  const f = fakeIo();
  const m = await running(f);
  const pause = m.req('pause');
  const kill = m.req('kill', { signal: 9 });
  await flush();
  settledOk(pause);
  settledOk(kill);
  assert.deepEqual(f.calls.slice(-3), ['freeze', 'thaw', 'kill 9']);
});

test('the real adapters: exec into a launch without exec support answers an error', async () => {
  const f = fakeIo();
  delete f.launched.exec;
  const m = await running(f);
  const exec = m.req('exec', { exec: { path: '/x', args: [], env: {} } });
  settledError(exec, 'unexpected');
});

test('the uninstall actor removes, wipes, and only warns when the wipe fails', async () => {
  const f = fakeIo();
  const wiped: string[] = [];
  f.io.wipe = async (dir) => {
    wiped.push(dir);
    if (dir === '/data/bad') throw new Error('rm `/data/bad`: Permission denied');
  };
  const removed: string[] = [];
  const repository = {
    id: 'mem',
    containers: new Map(),
    insert: async () => {
      throw new Error('unused');
    },
    remove: async (c: string) => {
      removed.push(c);
    },
    close: async () => undefined,
  };
  const actors = makeActors({ ...f.io, repositories: new Map([['mem', repository]]) });
  for (const wipe of ['/data/app', '/data/bad']) {
    const a = createActor(actors.uninstall, { input: { repository: 'mem', container: 'app:0.0.1', wipe } });
    const done = new Promise<void>((resolve, reject) => a.subscribe({ complete: resolve, error: reject }));
    a.start();
    await done;
  }
  assert.deepEqual(removed, ['app:0.0.1', 'app:0.0.1']);
  assert.deepEqual(wiped, ['/data/app', '/data/bad']);
});

test('debug command templates get the pid and container substituted and are split on whitespace', () => {
  assert.deepEqual(debugArgv('  sudo strace -c  -p <PID> -o /tmp/<CONTAINER>-<PID>.txt ', 42, 'a:0.0.1'), [
    'sudo',
    'strace',
    '-c',
    '-p',
    '42',
    '-o',
    '/tmp/a:0.0.1-42.txt',
  ]);
});

test('ioFrom maps the real modules and asks for an RT budget only for real-time policies', async () => {
  const asked: unknown[] = [];
  const handle = {} as ContainerCgroupsHandle;
  const io = ioFrom({
    pool: { mount: async (i) => ({ device: '/dev/loop0', target: i.target, phases: {} }), umount: async () => undefined },
    tree: {
      container: async (c, cg, pid, opts) => {
        asked.push([c, cg, pid, opts]);
        return handle;
      },
    },
    launch: async () => {
      throw new Error('unused');
    },
  });
  const cg = { memory: { oom_monitor: true, attrs: {} } };
  assert.equal(await io.cgroups('a:1.0.0', manifest('a', '1.0.0', { cgroups: cg }), 7), handle);
  await io.cgroups('b:1.0.0', manifest('b', '1.0.0', { sched: { policy: { fifo: { priority: 10 } } } }), 8);
  assert.deepEqual(asked, [
    ['a:1.0.0', cg, 7, { realtime: false }],
    ['b:1.0.0', undefined, 8, { realtime: true }],
  ]);
});

test("the real adapters: a launch's own start error reaches the start reply unchanged", async () => {
  for (const error of [errors.missingResource(ID, 'res', '>=1.0.0'), errors.startFailed(ID, 'clone3: Operation not permitted')]) {
    const f = fakeIo();
    f.io.launch = async () => {
      throw error;
    };
    const m = machine(f.io);
    const start = m.req('start', { spec: SPEC });
    await flush();
    assert.equal(start.calls.length, 1);
    const o = start.calls[0]!;
    assert.ok(!o.ok);
    assert.equal(o.error.code, error.code);
    assert.deepEqual(o.error.fields, error.fields);
    assert.equal(o.error.message, error.message, 'not wrapped twice');
  }
});

test('the real adapters: a machine stopped abruptly kills its process and removes its cgroups instead of leaking them', async () => {
  const f = fakeIo();
  const m = await running(f);
  m.stop();
  await flush();
  assert.ok(f.calls.includes('kill 9'));
  assert.ok(f.calls.includes('destroy'));
});
