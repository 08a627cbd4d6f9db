import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createActor, setup, SimulatedClock, waitFor, type AnyActorRef, type EventObject } from 'xstate';

import { containerMachine, SIGKILL, SIGTERM, stateName } from '../../src/machines/container.js';
import { statusText } from '../../src/machines/reply.js';
import type { ContainerStatus, Executed } from '../../src/machines/container-events.js';
import type { LaunchSpec } from '../../src/machines/contracts.js';
import type { ExitStatus } from '../../src/model/errors.js';
import type { Manifest } from '../../src/model/manifest.js';
import {
  FakeIo,
  flush,
  manifest,
  recorder,
  resourceManifest,
  send,
  settledError,
  settledOk,
  unsettled,
} from './machine-fakes.js';

const ID = 'hello:0.0.1';

function spec(m: Manifest): LaunchSpec {
  return {
    container: `${m.name}:${m.version}`,
    manifest: m,
    root: `/run/${m.name}:${m.version}`,
    init: m.init ?? '',
    args: [],
    env: {},
    runDir: '/run',
    dataDir: '/data',
    socketDir: '/sockets',
    resources: {},
  };
}

/** One container machine under a recording parent, with fake actors and a simulated clock. */
function harness(m: Manifest = manifest('hello', '0.0.1')) {
  const io = new FakeIo();
  const clock = new SimulatedClock();
  let now = 0;
  const reports: EventObject[] = [];
  const logic = containerMachine.provide({ actors: io.actors() });
  const id = `${m.name}:${m.version}`;
  const parent = setup({ actors: { c: logic } }).createMachine({
    invoke: {
      id: 'c',
      src: 'c',
      input: { id, manifest: m, mount: mountInput(id), now: () => now },
    },
    on: { '*': { actions: ({ event }) => reports.push(event) } },
  });
  const actor = createActor(parent, { clock }).start();
  const c = actor.getSnapshot().children.c as AnyActorRef;
  return {
    io,
    clock,
    reports,
    c,
    m,
    advance(ms: number) {
      now += ms;
      clock.increment(ms);
    },
    state: () => stateName(c.getSnapshot().value),
    req<T = void>(type: string, extra: Record<string, unknown> = {}) {
      const r = recorder<T>();
      send(c, { type, ...extra, reply: r });
      return r;
    },
    start() {
      return this.req('start', { spec: spec(m), requestedAt: now, resolveMs: 0.25 });
    },
    /** start → mounted → running. */
    async running() {
      const r = this.start();
      await mounted(this);
      await io.run(id);
      settledOk(r);
      assert.equal(this.state(), 'started.running');
    },
  };
}

/** Answers the mount in flight and waits until the machine has left `mounting`. */
async function mounted(h: { io: FakeIo; c: AnyActorRef }, device = '/dev/loop7'): Promise<void> {
  await flush(); // the mount actor starts with the transition's actions
  const m = h.io.mounts.shift();
  assert.ok(m, 'a mount is in flight');
  m.resolve({ device, target: m.input.target, phases: {} });
  await waitFor(h.c, (s) => !s.matches('mounting'));
}

function mountInput(id: string) {
  return {
    container: id,
    npkPath: `/repo/${id}.npk`,
    fsImgOffset: 4096,
    fsImgSize: 8192,
    target: `/run/${id}`,
    verityMode: 'auto' as const,
    loopDeviceTimeoutMs: 10_000,
  };
}

test('a start mounts, spawns, confines, opens the gate only after cgroups are ready, and runs', async () => {
  const h = harness();
  const r = h.start();
  assert.equal(h.state(), 'mounting');
  await flush();
  h.advance(3);
  h.io.mounts.shift()!.resolve({ device: '/dev/loop7', target: `/run/${ID}`, phases: {} });
  await flush();
  assert.equal(h.state(), 'started.spawning');
  const p = h.io.proc(ID);
  assert.equal(p.input.container, ID);
  p.spawned(100);
  await flush();
  assert.equal(h.state(), 'started.confining');
  assert.deepEqual(h.io.cg(ID).got, [{ type: 'attach', pid: 100 }]);
  assert.deepEqual(p.got, [], 'the gate stays shut until the pid is in its cgroups');
  h.advance(2);
  h.io.cg(ID).send({ type: 'cgroups.ready' });
  assert.deepEqual(p.got, [{ type: 'gate.open' }]);
  unsettled(r);
  p.started(100);
  settledOk(r);
  assert.equal(h.state(), 'started.running');
  assert.ok(h.reports.some((e) => e.type === 'container.started'));

  const inspect = h.req<ContainerStatus>('inspect');
  await flush();
  const s = settledOk(inspect);
  assert.equal(s.mounted, true);
  assert.equal(s.process?.pid, 100);
  assert.deepEqual(s.process?.statistics, { pids: { current: 1 }, categories: 'all' });
  assert.equal(s.startup?.mount, 3);
  assert.equal(s.startup?.cgroups, 2);
  assert.equal(s.startup?.resolve, 0.25);
  assert.equal(s.startup?.total, 5);
  assert.equal(s.startup?.exec, 1);
});

test('a failed mount returns to unmounted and answers both the mount and the held start with errors', async () => {
  const h = harness();
  const m = h.req('mount');
  const s = h.start();
  await flush();
  h.io.mounts.shift()!.reject({ code: 'EBUSY', message: 'mount `/run/x`: Device or resource busy' });
  await waitFor(h.c, (snapshot) => !snapshot.matches('mounting'));
  assert.equal(h.state(), 'unmounted');
  settledError(m, 'unexpected');
  const f = settledError(s, 'start_container_failed');
  assert.match(String(f.error), /Device or resource busy/);
});

test('starting a resource container answers start_container_resource in every idle state', async () => {
  const h = harness(resourceManifest('res', '1.0.0'));
  settledError(h.start(), 'start_container_resource');
  const m = h.req('mount');
  settledError(h.start(), 'start_container_resource');
  await mounted(h);
  settledOk(m);
  assert.equal(h.state(), 'mounted');
  settledError(h.start(), 'start_container_resource');
  assert.equal(h.io.processes.size, 0);
});

test('mounting a mounted container answers mount_busy, an ensure-mount is fine', async () => {
  const h = harness();
  const a = h.req('mount');
  const busy = h.req('mount');
  const waiter = h.req('mount', { ensure: true });
  settledError(busy, 'mount_busy');
  await mounted(h);
  settledOk(a);
  settledOk(waiter);
  settledError(h.req('mount'), 'mount_busy');
  settledOk(h.req('mount', { ensure: true }));
  assert.equal(h.io.mounts.length, 0, 'one mount only');
});

test('umount answers umount_busy when not mounted or started, and unmounts a mounted container', async () => {
  const h = harness();
  settledError(h.req('umount'), 'umount_busy');
  await h.running();
  settledError(h.req('umount'), 'umount_busy');
  h.io.proc(ID).exit(0);
  await flush();
  assert.equal(h.state(), 'mounted');
  const u = h.req('umount');
  assert.equal(h.state(), 'unmounting');
  await flush();
  assert.deepEqual(h.io.umounts[0]!.input, { container: ID, target: `/run/${ID}`, device: '/dev/loop7' });
  h.io.umounts.shift()!.resolve();
  await flush();
  settledOk(u);
  assert.equal(h.state(), 'unmounted');
});

test('a start that arrives while unmounting waits for the umount, then mounts again and starts', async () => {
  const h = harness();
  h.req('mount');
  await mounted(h);
  const u = h.req('umount');
  const s = h.start();
  const m = h.req('mount', { ensure: true });
  settledError(h.req('umount'), 'umount_busy');
  unsettled(s);
  await flush();
  h.io.umounts.shift()!.resolve();
  await waitFor(h.c, (snapshot) => !snapshot.matches('unmounting'));
  settledOk(u);
  assert.equal(h.state(), 'mounting');
  await mounted(h, '/dev/loop2');
  settledOk(m);
  await h.io.run(ID);
  settledOk(s);
});

test('a failed umount returns to mounted with the error', async () => {
  const h = harness();
  h.req('mount');
  await mounted(h);
  const u = h.req('umount');
  await flush();
  h.io.umounts.shift()!.reject({ code: 'EBUSY', message: 'umount `/run/x`: Device or resource busy' });
  await waitFor(h.c, (snapshot) => !snapshot.matches('unmounting'));
  settledError(u, 'unexpected');
  assert.equal(h.state(), 'mounted');
});

test('a second start of a started container answers start_container_started', async () => {
  const h = harness();
  const a = h.start();
  settledError(h.start(), 'start_container_started');
  await mounted(h);
  await h.io.run(ID);
  settledOk(a);
  settledError(h.start(), 'start_container_started');
});

test('kill, stop, pause, resume and exec of a container that is not started answer stop_container_not_started', () => {
  const h = harness();
  for (const [type, extra] of [
    ['kill', { signal: 15 }],
    ['stop', { graceMs: 100 }],
    ['pause', {}],
    ['resume', {}],
    ['exec', { exec: { path: '/x', args: [], env: {} } }],
  ] as const) {
    settledError(h.req(type, extra), 'stop_container_not_started');
  }
  settledOk(h.req('halt'));
});

test('kill signals the process group and answers at once; the exit is reported after the cgroups are gone', async () => {
  const h = harness();
  h.io.autoDestroy = false;
  await h.running();
  const k = h.req('kill', { signal: SIGTERM });
  settledOk(k);
  assert.deepEqual(h.io.proc(ID).signals(), [SIGTERM]);
  h.io.proc(ID).signalled(SIGTERM);
  assert.equal(h.state(), 'started.exiting');
  assert.ok(h.io.cg(ID).types().includes('destroy'));
  assert.ok(!h.reports.some((e) => e.type === 'container.exit'), 'no exit before the cgroups are destroyed');
  h.io.cg(ID).send({ type: 'cgroups.destroyed' });
  assert.equal(h.state(), 'mounted');
  const exit = h.reports.find((e) => e.type === 'container.exit') as unknown as { id: string; status: ExitStatus };
  assert.deepEqual(exit, { type: 'container.exit', id: ID, status: { signalled: { signal: SIGTERM } } });
});

test('stop: a process that exits before the grace ends is never SIGKILLed and the reply comes at once', async () => {
  const h = harness();
  await h.running();
  const s = h.req<ExitStatus>('stop', { graceMs: 10_000 });
  assert.equal(h.state(), 'started.stopping');
  assert.deepEqual(h.io.proc(ID).signals(), [SIGTERM]);
  h.advance(5);
  h.io.proc(ID).signalled(SIGTERM);
  assert.deepEqual(settledOk(s), { signalled: { signal: SIGTERM } });
  h.advance(20_000);
  assert.deepEqual(h.io.proc(ID).signals(), [SIGTERM], 'no SIGKILL after the exit');
  assert.equal(h.state(), 'mounted');
});

test('stop: a process still there when the grace ends gets SIGKILL, and the reply waits for its exit', async () => {
  const h = harness();
  await h.running();
  const s = h.req<ExitStatus>('stop', { graceMs: 1000 });
  const again = h.req<ExitStatus>('stop', { graceMs: 5 });
  h.advance(999);
  assert.deepEqual(h.io.proc(ID).signals(), [SIGTERM]);
  h.advance(1);
  assert.equal(h.state(), 'started.killing');
  assert.deepEqual(h.io.proc(ID).signals(), [SIGTERM, SIGKILL]);
  unsettled(s);
  h.io.proc(ID).signalled(SIGKILL);
  assert.deepEqual(settledOk(s), { signalled: { signal: SIGKILL } });
  assert.deepEqual(settledOk(again), { signalled: { signal: SIGKILL } });
});

test('halt SIGKILLs a running container and answers after the exit', async () => {
  const h = harness();
  await h.running();
  const r = h.req('halt');
  assert.deepEqual(h.io.proc(ID).signals(), [SIGKILL]);
  unsettled(r);
  h.io.proc(ID).signalled(SIGKILL);
  settledOk(r);
});

test('pause freezes and resume thaws the cgroups', async () => {
  const h = harness();
  await h.running();
  const p = h.req('pause');
  assert.equal(h.state(), 'started.pausing');
  unsettled(p);
  h.io.cg(ID).send({ type: 'cgroups.frozen' });
  settledOk(p);
  assert.equal(h.state(), 'started.paused');
  settledOk(h.req('pause'));
  settledError(h.req('exec', { exec: { path: '/x', args: [], env: {} } }), 'unexpected');
  const r = h.req('resume');
  assert.equal(h.state(), 'started.resuming');
  h.io.cg(ID).send({ type: 'cgroups.thawed' });
  settledOk(r);
  assert.equal(h.state(), 'started.running');
  assert.deepEqual(h.io.cg(ID).types().slice(1), ['freeze', 'thaw']);
});

test('kill of a paused container thaws it first, then signals it', async () => {
  const h = harness();
  await h.running();
  h.req('pause');
  h.io.cg(ID).send({ type: 'cgroups.frozen' });
  const k = h.req('kill', { signal: SIGKILL });
  assert.equal(h.state(), 'started.thawing');
  assert.deepEqual(h.io.proc(ID).signals(), [], 'no signal while frozen');
  unsettled(k);
  h.io.cg(ID).send({ type: 'cgroups.thawed' });
  settledOk(k);
  assert.deepEqual(h.io.proc(ID).signals(), [SIGKILL]);
  h.io.proc(ID).signalled(SIGKILL);
  assert.equal(h.state(), 'mounted');
});

test('stop of a paused container thaws it, then runs the grace', async () => {
  const h = harness();
  await h.running();
  h.req('pause');
  h.io.cg(ID).send({ type: 'cgroups.frozen' });
  const s = h.req<ExitStatus>('stop', { graceMs: 100 });
  h.advance(500);
  assert.deepEqual(h.io.proc(ID).signals(), [], 'the grace starts after the thaw');
  h.io.cg(ID).send({ type: 'cgroups.thawed' });
  assert.deepEqual(h.io.proc(ID).signals(), [SIGTERM]);
  h.advance(100);
  assert.deepEqual(h.io.proc(ID).signals(), [SIGTERM, SIGKILL]);
  h.io.proc(ID).signalled(SIGKILL);
  assert.deepEqual(settledOk(s), { signalled: { signal: SIGKILL } });
});

test('a cgroups failure aborts the start: SIGKILL, no gate, a start_container_failed reply and no exit report', async () => {
  const h = harness();
  const r = h.start();
  await mounted(h);
  h.io.proc(ID).spawned(5);
  h.io.cg(ID).send({ type: 'cgroups.failed', error: { code: 'EACCES', message: 'mkdir `/sys/fs/cgroup/x`: Permission denied' } });
  assert.equal(h.state(), 'started.aborting');
  assert.deepEqual(h.io.proc(ID).got, [{ type: 'signal', signal: SIGKILL }]);
  h.io.proc(ID).signalled(SIGKILL);
  const f = settledError(r, 'start_container_failed');
  assert.match(String(f.error), /Permission denied/);
  assert.equal(h.state(), 'mounted');
  assert.ok(!h.reports.some((e) => e.type === 'container.exit' || e.type === 'container.started'));
});

test('a launch failure answers start_container_failed and returns to mounted', async () => {
  const h = harness();
  const r = h.start();
  await mounted(h);
  h.io.proc(ID).send({ type: 'process.failed', error: { code: 'ENOENT', message: 'execve `/probe`: No such file or directory' } });
  assert.match(String(settledError(r, 'start_container_failed').error), /No such file/);
  assert.equal(h.state(), 'mounted');
});

test('exec goes to the process actor of a running container', async () => {
  const h = harness();
  await h.running();
  const r = h.req<Executed>('exec', { exec: { path: '/probe', args: ['print', 'hi'], env: {} } });
  assert.equal(settledOk(r).pid, 777);
  assert.deepEqual(
    h.io.proc(ID).got.filter((c) => c.type === 'exec').map((c) => (c as { exec: unknown }).exec),
    [{ path: '/probe', args: ['print', 'hi'], env: {} }],
  );
});

test('inspect of an idle container has no process; stats categories pass through', async () => {
  const h = harness();
  const i = h.req<ContainerStatus>('inspect');
  assert.deepEqual(settledOk(i), { state: 'unmounted', mounted: false, process: null });
  await h.running();
  const j = h.req<ContainerStatus>('inspect', { categories: ['memory'] });
  assert.deepEqual(settledOk(j).process?.statistics, { pids: { current: 1 }, categories: ['memory'] });
});

test('an OOM event is reported to the parent', async () => {
  const h = harness();
  await h.running();
  const memory = { low: null, high: null, max: null, oom: 1, oom_kill: 1 };
  h.io.cg(ID).send({ type: 'cgroups.oom', memory });
  assert.deepEqual(h.reports.at(-1), { type: 'container.oom', id: ID, memory });
});

test('after close, starts are refused, also one held while mounting', async () => {
  const h = harness();
  const s = h.start();
  send(h.c, { type: 'close' });
  await mounted(h);
  settledError(s, 'start_container_failed');
  assert.equal(h.state(), 'mounted');
  settledError(h.start(), 'start_container_failed');
  assert.equal(h.io.processes.size, 0);
});

test('a stop during the start kills the process; a start that still completes is answered ok', async () => {
  const h = harness();
  const r = h.start();
  await mounted(h);
  h.io.proc(ID).spawned(5);
  h.io.cg(ID).send({ type: 'cgroups.ready' });
  const s = h.req<ExitStatus>('stop', { graceMs: 50 });
  h.io.proc(ID).started(5);
  settledOk(r);
  h.io.proc(ID).signalled(SIGTERM);
  assert.deepEqual(settledOk(s), { signalled: { signal: SIGTERM } });
  assert.ok(h.reports.some((e) => e.type === 'container.exit'));
});

test('exit statuses display like Northstar: Exit(0), Signalled(SIGTERM)', () => {
  assert.equal(statusText({ exit: { code: 0 } }), 'Exit(0)');
  assert.equal(statusText({ signalled: { signal: 15 } }), 'Signalled(SIGTERM)');
  assert.equal(statusText({ signalled: { signal: 31 } }), 'Signalled(SIGSYS)');
});

test('a stop before the gate opens kills at once: nstar-init ignores SIGTERM', async () => {
  const h = harness();
  const r = h.start();
  await mounted(h);
  h.io.proc(ID).spawned(5);
  const s = h.req<ExitStatus>('stop', { graceMs: 10_000 });
  assert.deepEqual(h.io.proc(ID).signals(), [SIGKILL]);
  h.io.proc(ID).signalled(SIGKILL);
  assert.deepEqual(settledOk(s), { signalled: { signal: SIGKILL } });
  settledError(r, 'start_container_failed');
});

test('a huge grace is clamped to what a timer can hold, not turned into an immediate SIGKILL', async () => {
  const h = harness();
  await h.running();
  h.req<ExitStatus>('stop', { graceMs: 1e12 });
  h.advance(1);
  assert.deepEqual(h.io.proc(ID).signals(), [SIGTERM]);
  h.advance(2 ** 31 - 1);
  assert.deepEqual(h.io.proc(ID).signals(), [SIGTERM, SIGKILL]);
});

test('every state has one name on the wire: its path, such as mounted or started.running', () => {
  const names: Record<string, string> = {};
  const walk = (node: { path: string[]; states: Record<string, unknown> }) => {
    const children = Object.values(node.states) as (typeof node)[];
    if (children.length === 0) {
      // A leaf is at most two deep (no parallel states): its value is its name or { parent: leaf }.
      const [top, leaf] = node.path as [string, string | undefined];
      names[node.path.join('.')] = stateName(leaf === undefined ? top : { [top]: leaf });
    }
    children.forEach(walk);
  };
  walk(containerMachine.root as never);
  assert.deepEqual(names, {
    unmounted: 'unmounted',
    mounting: 'mounting',
    mounted: 'mounted',
    unmounting: 'unmounting',
    restarting: 'restarting',
    'started.spawning': 'started.spawning',
    'started.confining': 'started.confining',
    'started.gating': 'started.gating',
    'started.running': 'started.running',
    'started.pausing': 'started.pausing',
    'started.paused': 'started.paused',
    'started.resuming': 'started.resuming',
    'started.thawing': 'started.thawing',
    'started.stopping': 'started.stopping',
    'started.killing': 'started.killing',
    'started.aborting': 'started.aborting',
    'started.exiting': 'started.exiting',
  });
});
