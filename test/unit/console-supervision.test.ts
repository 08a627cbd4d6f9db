// Our supervision extension on the console: restarting / gave_up / healthy /
// unhealthy notifications reach only clients that name the extension in
// `connect`, and inspect's restarts and health fields only clients that use
// the inspect extension. Northstar's clients see the console unchanged.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { Client } from '../../src/client/index.js';
import type { Notification, Response } from '../../src/console/protocol.js';
import { ConsoleServer } from '../../src/console/server.js';
import type { RequestEvent } from '../../src/machines/requests.js';
import type { Supervisor } from '../../src/machines/supervisor.js';
import { parseManifest } from '../../src/model/manifest.js';
import { consoleBackend } from '../../src/runtime-backend.js';
import { RawPeer, startServer } from './console-fake-backend.js';

const RESTARTING: Notification = { restarting: ['crashing:0.0.1', { attempt: 1, delay_ms: 100, reason: 'Exit(101)' }] };

test('supervision notifications reach only subscribers that opted in, in order with the others', async (t) => {
  const { url, backend } = await startServer(t);
  const northstar = await RawPeer.connect(url);
  await northstar.handshake(true);
  const ours = await Client.connect(url, { subscribe: true, extensions: ['supervision'] });
  const plain = await Client.connect(url, { subscribe: true });
  backend.emit({ type: 'exit', container: 'crashing:0.0.1', status: { exit: { code: 101 } } });
  backend.emit({ type: 'restarting', container: 'crashing:0.0.1', attempt: 1, delayMs: 100, reason: 'Exit(101)' });
  backend.emit({ type: 'health', container: 'crashing:0.0.1', status: 'unhealthy' });
  backend.emit({ type: 'gave_up', container: 'crashing:0.0.1', restarts: 5, reason: 'Exit(101)' });
  backend.emit({ type: 'started', container: 'crashing:0.0.1' });
  const got: Notification[] = [];
  for await (const n of ours.notifications()) if (got.push(n) === 5) break;
  assert.deepEqual(got.slice(1, 4), [RESTARTING, { unhealthy: 'crashing:0.0.1' }, { gave_up: ['crashing:0.0.1', { restarts: 5, reason: 'Exit(101)' }] }]);
  assert.equal(await northstar.line(), '{"notification":{"exit":["crashing:0.0.1",{"exit":{"code":101}}]}}');
  assert.equal(await northstar.line(), '{"notification":{"started":"crashing:0.0.1"}}', 'nothing of ours in between');
  const seen: Notification[] = [];
  for await (const n of plain.notifications()) if (seen.push(n) === 2) break;
  assert.deepEqual(seen.map((n) => Object.keys(n as object)[0]), ['exit', 'started']);
  northstar.close();
  ours.close();
  plain.close();
});

test('inspect shows restarts and health only with the inspect extension, in a fixed field order', async (t) => {
  const { url, backend } = await startServer(t);
  const e = backend.containers.get('crashing:0.0.1')!;
  // In an order of their own: the console writes them in serde's.
  e.health = { failures: 2, status: 'healthy' };
  e.restarts = { gaveUp: false, nextAttemptMs: null, lastReason: 'unhealthy', count: 3 };
  const p = await RawPeer.connect(url);
  await p.handshake(false);
  p.send('{"request":{"inspect":{"container":"crashing:0.0.1"}}}\n');
  const northstar = (await p.line())!;
  assert.doesNotMatch(northstar, /restarts|health/);
  p.send('{"request":{"inspect":{"container":"crashing:0.0.1","statistics":[]}}}\n');
  const ours = (await p.line())!;
  assert.match(ours, /"restarts":\{"count":3,"last_reason":"unhealthy","next_attempt_ms":null,"gave_up":false\},"health":\{"status":"healthy","failures":2\}/);
  p.close();
});

test('the runtime backend leaves restart and health out of the manifest a Northstar client inspects', async (t) => {
  const manifest = parseManifest(
    'name: app\nversion: 0.0.1\ninit: /probe\nuid: 1000\ngid: 1000\nrestart: {policy: always}\nhealth: {exec: [/probe, check]}\n',
  );
  const data = { container: 'app:0.0.1', manifest, repository: 'mem', mounted: true, process: null, state: 'restarting' };
  const sup = {
    send: (e: RequestEvent) => e.reply({ ok: true, value: { ...data, restarts: { count: 1, lastReason: 'Exit(1)', nextAttemptMs: 90, gaveUp: false } } } as never),
    on: () => ({ unsubscribe: () => undefined }),
  } as unknown as Supervisor;
  const server = new ConsoleServer(consoleBackend(sup, () => undefined));
  t.after(() => server.close());
  const p = await RawPeer.connect(await server.listen('tcp://127.0.0.1:0', 'full'));
  await p.handshake(false);
  p.send('{"request":{"inspect":{"container":"app:0.0.1"}}}\n');
  const northstar = JSON.parse((await p.line())!) as { response: { inspect: { ok: { data: Record<string, unknown> } } } };
  assert.deepEqual(Object.keys(northstar.response.inspect.ok.data), ['manifest', 'repository', 'mounted', 'process']);
  assert.deepEqual(Object.keys(northstar.response.inspect.ok.data.manifest as object), ['name', 'version', 'init', 'uid', 'gid']);
  p.send('{"request":{"inspect":{"container":"app:0.0.1","statistics":[]}}}\n');
  const ours = JSON.parse((await p.line())!) as { response: { inspect: { ok: { data: Record<string, unknown> } } } };
  const m = ours.response.inspect.ok.data.manifest as Record<string, unknown>;
  assert.deepEqual(m.restart, { policy: 'always', max_restarts: 5, within: '1m', backoff: { initial: '100ms', max: '30s', factor: 2 }, stop_grace: '5s' });
  assert.deepEqual(ours.response.inspect.ok.data.restarts, { count: 1, last_reason: 'Exit(1)', next_attempt_ms: 90, gave_up: false });
  p.close();
});
