// The supervisor around a container with a restart policy: resources stay
// held through a restart, the runtime's notifications, and a critical
// container shuts the runtime down only once the policy gives up.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { SimulatedClock } from 'xstate';

import { contentsOf, type Repository } from '../../src/actors/repository/index.js';
import type { Notification } from '../../src/machines/requests.js';
import { createSupervisor, onNotification, request, whenDone, whenReady } from '../../src/machines/supervisor.js';
import { RESTART_DEFAULTS } from '../../src/model/manifest-supervision.js';
import type { RestartPolicy } from '../../src/model/manifest.js';
import { FakeIo, FakeRepository, flush, manifest, resourceManifest } from './machine-fakes.js';

const restart: RestartPolicy = { policy: 'on-failure', ...RESTART_DEFAULTS, max_restarts: 1, backoff: { initial: 100, max: 100, factor: 2 } };
const app = (autostart?: 'critical') =>
  manifest('app', '0.0.1', {
    restart,
    ...(autostart ? { autostart } : {}),
    mounts: { '/res': { type: 'resource', name: 'res', version: '>=0.0.1', dir: '/', options: [] } },
  });

async function boot(autostart?: 'critical') {
  const io = new FakeIo();
  io.autoMount = io.autoUmount = io.autoRun = io.autoExit = true;
  const clock = new SimulatedClock();
  const sup = createSupervisor({
    repositories: [contentsOf(new FakeRepository('mem', [app(autostart), resourceManifest('res', '0.0.1')]) as unknown as Repository)],
    config: { runDir: '/run', dataDir: '/data', socketDir: '/s', verity: 'auto', loopDeviceTimeoutMs: 1000, mountOnStart: [] },
    actors: io.actors(),
    clock,
  });
  const notes: Notification[] = [];
  onNotification(sup, (n) => notes.push(n));
  sup.start();
  await flush();
  return { io, clock, sup, notes };
}

/** A booted supervisor whose app:0.0.1 was started and exited with 2 (its restart policy then backs off). */
async function exitedOnce() {
  const h = await boot();
  await whenReady(h.sup);
  await request(h.sup, { type: 'start', container: 'app:0.0.1', arguments: [], environment: {} });
  h.io.proc('app:0.0.1').exit(2);
  await flush();
  return h;
}

test('a restarting container keeps its resource mounted and busy, and the notifications follow each step', async () => {
  const h = await exitedOnce();
  assert.deepEqual(h.notes.slice(-2), [
    { type: 'exit', container: 'app:0.0.1', status: { exit: { code: 2 } } },
    { type: 'restarting', container: 'app:0.0.1', attempt: 1, delayMs: 100, reason: 'Exit(2)' },
  ]);
  const umount = await request(h.sup, { type: 'umount', containers: ['res:0.0.1'] });
  assert.equal(umount[0]!.ok, false, 'the resource is still in use during the backoff');
  const again = request(h.sup, { type: 'start', container: 'app:0.0.1', arguments: [], environment: {} });
  await assert.rejects(again, (e: { code: string }) => e.code === 'start_container_started');
  h.clock.increment(100);
  await flush();
  assert.deepEqual(h.notes.at(-1), { type: 'started', container: 'app:0.0.1' });
  h.io.proc('app:0.0.1').exit(2);
  await flush();
  assert.deepEqual(h.notes.at(-1), { type: 'gave_up', container: 'app:0.0.1', restarts: 1, reason: 'Exit(2)' });
  const freed = await request(h.sup, { type: 'umount', containers: ['res:0.0.1'] });
  assert.equal(freed[0]!.ok, true, 'given up: the resource is free');
});

test('a stop during the backoff frees the resources', async () => {
  const h = await exitedOnce();
  assert.deepEqual(await request(h.sup, { type: 'stop', container: 'app:0.0.1', graceMs: 1000 }), { exit: { code: 2 } });
  const umount = await request(h.sup, { type: 'umount', containers: ['res:0.0.1'] });
  assert.equal(umount[0]!.ok, true);
});

test('a critical container shuts the runtime down only once its policy gives up', async () => {
  const h = await boot('critical');
  await whenReady(h.sup);
  h.io.proc('app:0.0.1').exit(1);
  await flush();
  assert.ok(h.sup.getSnapshot().matches({ up: 'ready' }), 'a restart is due: no shutdown');
  h.clock.increment(100);
  await flush();
  h.io.proc('app:0.0.1').exit(1);
  const out = await whenDone(h.sup);
  assert.equal(out.error?.code, 'critical_container');
  assert.deepEqual(h.notes.at(-1), { type: 'shutdown' });
});
