// The Container handle over a console (a fake backend on a real unix
// socket), and the runnable example of docs/library.md.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  AlreadyRunningError,
  ClientError,
  connect,
  NoSuchContainerError,
  NotRunningError,
  signalNumber,
} from '../../src/index.js';
import { startServer } from './console-fake-backend.js';
import { runDocExample } from '../fixtures/doc-example.js';

test('start, run, pause, resume, stop with its exit status, wait, kill by name', async (t) => {
  const { url, backend } = await startServer(t);
  const client = await connect(url, { subscribe: true });
  t.after(() => client.close());
  const c = client.container('hello-world:0.0.1');
  await c.start({ args: ['a'], env: { K: 'V' } });
  assert.deepEqual(backend.requests.at(-1)!.req, { start: { container: 'hello-world:0.0.1', init: null, arguments: ['a'], environment: { K: 'V' } } });
  assert.deepEqual(await c.run(['/bin/probe', 'true']), { pid: 5000, status: { exit: { code: 0 } } });
  assert.equal(await c.spawn(['/bin/probe']), 5000);
  await c.pause();
  await c.resume();
  assert.deepEqual(await c.statistics(['memory']), {});
  assert.equal(await c.startupTiming(), null);
  await assert.rejects(c.start(), (e: unknown) => e instanceof AlreadyRunningError && e.code === 'start_container_started');
  assert.deepEqual(await c.stop({ graceMs: 1000 }), { signalled: { signal: 15 } });
  assert.deepEqual(backend.requests.at(-1)!.req, { stop: { container: 'hello-world:0.0.1', grace_ms: 1000 } });
  await assert.rejects(c.kill('USR1'), (e: unknown) => e instanceof NotRunningError && e instanceof ClientError && /not running/.test(e.message));

  await c.start();
  const exited = c.wait();
  await client.container('hello-world:0.0.1').kill('SIGUSR1');
  assert.deepEqual(backend.requests.at(-1)!.req, { kill: { container: 'hello-world:0.0.1', signal: 10 } });
  assert.deepEqual(await exited, { signalled: { signal: 15 } }, 'the fake reports every kill as 15');
  await assert.rejects(client.container('nope:0.0.1').start(), NoSuchContainerError);
});

test('an aborted wait rejects with the reason; wait without notifications says how to get them', async (t) => {
  const { url } = await startServer(t);
  const client = await connect(url, { subscribe: true });
  t.after(() => client.close());
  const ac = new AbortController();
  const w = client.container('crashing:0.0.1').wait({ signal: ac.signal });
  ac.abort(new Error('enough'));
  await assert.rejects(w, /enough/);
  await assert.rejects(client.container('crashing:0.0.1').stop({ signal: AbortSignal.abort(new Error('early')) }), /early/);
  const plain = await connect(url);
  t.after(() => plain.close());
  assert.throws(() => plain.container('crashing:0.0.1').wait(), /needs notifications: connect with \{ subscribe: true \}/);
  assert.equal(await plain.container('crashing:0.0.1').stop(), null);
  // A connection that ends fails the waiters.
  const w2 = client.container('hello-world:0.0.1').wait();
  client.close();
  await assert.rejects(w2, (e: unknown) => e instanceof ClientError && e.kind === 'closed');
});

test('signals by number or name', () => {
  assert.equal(signalNumber('TERM'), 15);
  assert.equal(signalNumber('sigusr2'), 12);
  assert.equal(signalNumber(9), 9);
  assert.throws(() => signalNumber('FROB'), /unknown signal "FROB"/);
  assert.throws(() => signalNumber(0), /invalid signal number 0/);
});

test('the example of docs/library.md runs', async (t) => {
  const { url, backend } = await startServer(t);
  const lines = await runDocExample(t, { NORTHSTAR_URL: url });
  const names = backend.requests.map((r) => (typeof r.req === 'string' ? r.req : Object.keys(r.req)[0]));
  assert.deepEqual(names, ['start', 'exec', 'pause', 'resume', 'inspect', 'inspect', 'stop', 'kill']);
  assert.match(lines.at(-1)!, /cannot signal hello-world:0\.0\.1: it is not running/);
});
