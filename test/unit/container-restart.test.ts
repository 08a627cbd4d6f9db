// The restart policy and the health check of one container machine, on
// XState's simulated clock: no test waits for real time.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { createActor, setup, SimulatedClock, type AnyActorRef, type EventObject } from 'xstate';

import { containerMachine, SIGKILL, SIGTERM, stateName } from '../../src/machines/container.js';
import type { ContainerStatus } from '../../src/machines/container-events.js';
import { backoffMs, decide, NO_RESTARTS } from '../../src/machines/container-restart.js';
import type { ExitStatus } from '../../src/model/errors.js';
import { HEALTH_DEFAULTS, RESTART_DEFAULTS } from '../../src/model/manifest-supervision.js';
import type { HealthCheck, Manifest, RestartPolicy } from '../../src/model/manifest.js';
import { FakeIo, flush, manifest, recorder, send, settledOk } from './machine-fakes.js';

const ID = 'crash:0.0.1';

function policy(over: Partial<RestartPolicy> = {}): RestartPolicy {
  return { policy: 'on-failure', ...RESTART_DEFAULTS, backoff: { initial: 100, max: 1000, factor: 2 }, ...over };
}

function harness(restart?: RestartPolicy, health?: HealthCheck) {
  const over: Partial<Manifest> = {};
  if (restart) over.restart = restart;
  if (health) over.health = health;
  const m = manifest('crash', '0.0.1', over);
  const io = new FakeIo();
  io.autoMount = true;
  io.autoRun = true;
  const clock = new SimulatedClock();
  let now = 0;
  const reports: EventObject[] = [];
  const parent = setup({ actors: { c: containerMachine.provide({ actors: io.actors() }) } }).createMachine({
    invoke: {
      id: 'c',
      src: 'c',
      input: {
        id: ID,
        manifest: m,
        mount: { container: ID, npkPath: '/x.npk', fsImgOffset: 0, fsImgSize: 4096, target: `/run/${ID}`, verityMode: 'auto' as const, loopDeviceTimeoutMs: 1000 },
        now: () => now,
      },
    },
    on: { '*': { actions: ({ event }) => reports.push(event) } },
  });
  const actor = createActor(parent, { clock }).start();
  const c = actor.getSnapshot().children.c as AnyActorRef;
  const h = {
    io,
    reports,
    c,
    async advance(ms: number) {
      now += ms;
      clock.increment(ms);
      await flush();
    },
    state: () => stateName(c.getSnapshot().value),
    req<T = void>(type: string, extra: Record<string, unknown> = {}) {
      const r = recorder<T>();
      send(c, { type, ...extra, reply: r });
      return r;
    },
    launches: () => io.processes.get(ID)?.length ?? 0,
    of: (type: string) => reports.filter((e) => e.type === type) as (EventObject & Record<string, unknown>)[],
    async start() {
      const r = h.req('start', {
        spec: { container: ID, manifest: m, root: '/r', init: '/probe', args: [], env: { A: 'b' }, runDir: '/run', dataDir: '/d', socketDir: '/s', resources: {} },
        requestedAt: now,
      });
      await flush();
      settledOk(r);
      assert.equal(h.state(), 'started.running');
    },
    async end(status: ExitStatus) {
      io.proc(ID).send({ type: 'process.exit', status });
      await flush();
    },
    async inspect() {
      const r = h.req<ContainerStatus>('inspect');
      await flush();
      return settledOk(r);
    },
  };
  return h;
}

const crash: ExitStatus = { exit: { code: 1 } };

test('backoff doubles from initial up to max, one restart after each crash', async () => {
  const h = harness(policy({ max_restarts: 10 }));
  await h.start();
  const delays: number[] = [];
  for (let i = 0; i < 6; i++) {
    await h.end(crash);
    assert.equal(h.state(), 'restarting');
    const r = h.of('container.restarting').at(-1)!;
    delays.push(r.delayMs as number);
    assert.equal(r.attempt, i + 1);
    await h.advance((r.delayMs as number) - 1);
    assert.equal(h.launches(), i + 1, 'not before the backoff has passed');
    await h.advance(1);
    assert.equal(h.state(), 'started.running');
    assert.equal(h.launches(), i + 2);
  }
  assert.deepEqual(delays, [100, 200, 400, 800, 1000, 1000]);
  assert.equal(h.of('container.started').length, 7);
  assert.ok(h.of('container.exit').every((e) => e.restarting === true));
  assert.equal(h.of('container.idle').length, 0);
});

test('past max_restarts within the window the container stays down and the parent hears gave_up', async () => {
  const h = harness(policy({ max_restarts: 2 }));
  await h.start();
  for (let i = 0; i < 2; i++) {
    await h.end(crash);
    await h.advance(1000);
    assert.equal(h.state(), 'started.running');
  }
  await h.end({ signalled: { signal: 11 } });
  assert.equal(h.state(), 'mounted');
  const g = h.of('container.gave_up');
  assert.equal(g.length, 1);
  assert.equal(g[0]!.restarts, 2);
  assert.equal(g[0]!.reason, 'Signalled(SIGSEGV)');
  assert.equal(h.of('container.exit').at(-1)!.restarting, undefined, 'the last exit is final');
  await h.advance(60_000);
  assert.equal(h.launches(), 3, 'nothing restarts after giving up');
  const s = await h.inspect();
  assert.deepEqual(s.restarts, { count: 2, lastReason: 'Signalled(SIGSEGV)', nextAttemptMs: null, gaveUp: true });
  // A start request begins a new history.
  await h.start();
  assert.deepEqual((await h.inspect()).restarts, { count: 0, lastReason: null, nextAttemptMs: null, gaveUp: false });
});

test('restarts older than the window do not count, and the backoff starts over', async () => {
  const h = harness(policy({ max_restarts: 2, within: 5000 }));
  await h.start();
  for (let i = 0; i < 2; i++) {
    await h.end(crash);
    await h.advance(1000);
  }
  await h.advance(10_000); // runs well past the window
  await h.end(crash);
  assert.equal(h.state(), 'restarting');
  assert.equal(h.of('container.restarting').at(-1)!.delayMs, 100);
  assert.equal(h.of('container.gave_up').length, 0);
});

test('a stop, a terminating kill or a halt never restarts, even with policy always', async () => {
  for (const how of ['stop', 'kill', 'halt'] as const) {
    const h = harness(policy({ policy: 'always' }));
    h.io.autoExit = true;
    await h.start();
    if (how === 'stop') h.req('stop', { graceMs: 1000 });
    if (how === 'kill') h.req('kill', { signal: SIGTERM });
    if (how === 'halt') h.req('halt');
    await flush();
    assert.equal(h.state(), 'mounted', how);
    await h.advance(60_000);
    assert.equal(h.launches(), 1, `${how}: no restart`);
    assert.equal(h.of('container.restarting').length, 0);
  }
});

test('an exit by the signal a kill request sent is not a failure; another signal is', async () => {
  const h = harness(policy());
  await h.start();
  h.req('kill', { signal: 10 });
  await flush();
  await h.end({ signalled: { signal: 10 } });
  assert.equal(h.state(), 'mounted');
  await h.start();
  h.req('kill', { signal: 10 });
  await flush();
  await h.end({ signalled: { signal: 6 } });
  assert.equal(h.state(), 'restarting');
});

test('on-failure leaves a clean exit alone; always restarts it', async () => {
  const a = harness(policy());
  await a.start();
  await a.end({ exit: { code: 0 } });
  assert.equal(a.state(), 'mounted');
  const b = harness(policy({ policy: 'always' }));
  await b.start();
  await b.end({ exit: { code: 0 } });
  assert.equal(b.state(), 'restarting');
});

test('a stop during the backoff cancels the restart and answers with the last exit', async () => {
  const h = harness(policy());
  await h.start();
  await h.end(crash);
  assert.equal(h.state(), 'restarting');
  assert.equal((await h.inspect()).restarts?.nextAttemptMs, 100);
  const r = h.req<ExitStatus>('stop', { graceMs: 5000 });
  await flush();
  assert.deepEqual(settledOk(r), crash);
  assert.equal(h.state(), 'mounted');
  assert.equal(h.of('container.idle').length, 1);
  await h.advance(10_000);
  assert.equal(h.launches(), 1);
});

test('shutdown (close) during the backoff cancels the restart', async () => {
  const h = harness(policy());
  await h.start();
  await h.end(crash);
  send(h.c, { type: 'close' });
  await flush();
  assert.equal(h.state(), 'mounted');
  await h.advance(10_000);
  assert.equal(h.launches(), 1);
});

test('without a restart key nothing restarts and inspect has no restarts field', async () => {
  const h = harness();
  await h.start();
  await h.end(crash);
  assert.equal(h.state(), 'mounted');
  const s = await h.inspect();
  assert.equal('restarts' in s, false);
  assert.equal('health' in s, false);
});

test('failing health checks in a row make it unhealthy: stopped with stop_grace, then restarted', async () => {
  const check: HealthCheck = { ...HEALTH_DEFAULTS, exec: ['/probe', 'check'], start_period: 1000, interval: 500, timeout: 200, retries: 2 };
  const h = harness(policy({ stop_grace: 3000 }), check);
  await h.start();
  await h.advance(999);
  assert.equal(h.io.proc(ID).got.filter((c) => c.type === 'exec').length, 0, 'nothing during start_period');
  await h.advance(1);
  const exec = h.io.proc(ID).got.find((c) => c.type === 'exec');
  assert.deepEqual(exec && exec.type === 'exec' && exec.exec, { path: '/probe', args: ['check'], env: { A: 'b' } });
  assert.equal(h.of('container.health').at(-1)?.status, 'healthy');
  assert.deepEqual((await h.inspect()).health, { status: 'healthy', failures: 0 });

  h.io.execExit = () => Promise.resolve({ exit: { code: 1 } });
  await h.advance(500);
  assert.deepEqual((await h.inspect()).health, { status: 'healthy', failures: 1 });
  assert.equal(h.state(), 'started.running');
  await h.advance(500);
  assert.equal(h.of('container.health').at(-1)?.status, 'unhealthy');
  assert.equal(h.state(), 'started.stopping');
  assert.deepEqual(h.io.proc(ID).signals(), [SIGTERM]);
  await h.advance(3000);
  assert.deepEqual(h.io.proc(ID).signals(), [SIGTERM, SIGKILL], 'SIGKILL after stop_grace');
  await h.end({ signalled: { signal: SIGKILL } });
  assert.equal(h.state(), 'restarting');
  assert.equal(h.of('container.restarting').at(-1)!.reason, 'unhealthy');
  await h.advance(100);
  assert.equal(h.launches(), 2);
});

test('a health check that outlives its timeout counts as a failure and its process is killed', async () => {
  const check: HealthCheck = { ...HEALTH_DEFAULTS, exec: ['/probe', 'hang'], start_period: 0, interval: 500, timeout: 200, retries: 3 };
  const h = harness(undefined, check);
  h.io.execExit = () => new Promise(() => undefined);
  await h.start();
  await h.advance(0);
  await h.advance(200);
  assert.ok(h.io.proc(ID).got.some((c) => c.type === 'signal' && c.pid === 777 && c.signal === SIGKILL));
  assert.deepEqual((await h.inspect()).health, { status: 'starting', failures: 1 });
  // SimulatedClock starts timers set while it fires at the new time: step timer by timer.
  for (const ms of [500, 200, 500]) await h.advance(ms);
  assert.equal(h.of('container.health').length, 0);
  await h.advance(200);
  assert.equal(h.of('container.health').at(-1)?.status, 'unhealthy');
  assert.equal(h.state(), 'started.running', 'without a restart policy unhealthy is only reported');
});

test('decide: the pure policy', () => {
  const p = policy({ max_restarts: 1 });
  assert.deepEqual(decide(p, NO_RESTARTS, 0, crash, 'requested'), { kind: 'none' });
  assert.deepEqual(decide(undefined, NO_RESTARTS, 0, crash, 'own'), { kind: 'none' });
  assert.deepEqual(decide(p, NO_RESTARTS, 0, undefined, 'own'), { kind: 'restart', delayMs: 100, attempt: 1, reason: 'failed to start' });
  assert.deepEqual(decide(p, { times: [0], count: 1 }, 10, crash, 'own'), { kind: 'give_up', reason: 'Exit(1)' });
  assert.equal(backoffMs(policy({ backoff: { initial: 0, max: 0, factor: 2 } }), 5), 0);
});
