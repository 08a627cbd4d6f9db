// The client library: container consoles over a real socketpair fd (in a
// child process, as a container sees it), notifications, request order,
// installs from a path, and failures.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import type net from 'node:net';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Client, ClientError } from '../../src/client/index.js';
import { startServer } from './console-fake-backend.js';

const here = dirname(fileURLToPath(import.meta.url));
const child = join(here, 'client-from-env.child.ts');
// The independent NPK vectors (spec/vectors), copied into the repository by the npk tests' fixtures.
const vectorDir = [join(here, '../fixtures/vectors'), '/work/shared/spec/vectors'].find((d) => existsSync(join(d, 'vector.pub')));

function spawnChild(mode: string) {
  return spawn(process.execPath, ['--import', 'tsx', child, mode], {
    stdio: ['ignore', 'pipe', 'inherit', 'pipe'],
    env: { ...process.env, NORTHSTAR_CONSOLE: '3' },
  });
}

async function exited(p: ReturnType<typeof spawn>): Promise<number | null> {
  if (p.exitCode !== null) return p.exitCode;
  return new Promise((r) => p.once('exit', (code) => r(code)));
}

test('a container process finds its console through NORTHSTAR_CONSOLE and gets only its permissions', async (t) => {
  const { server } = await startServer(t);
  const p = spawnChild('client');
  server.adopt(p.stdio[3] as net.Socket, { container: 'console:0.0.1', permissions: ['ident', 'list'] });
  let out = '';
  p.stdout!.on('data', (d) => (out += d));
  assert.equal(await exited(p), 0);
  assert.deepEqual(JSON.parse(out), {
    ident: 'console:0.0.1',
    list: ['hello-world:0.0.1', 'message:0.0.2', 'crashing:0.0.1'],
    repositories: 'permission_denied',
  });
});

test('the server adopts a socketpair fd number as a container console', async () => {
  const p = spawnChild('server');
  const c = await Client.fromStream(p.stdio[3] as net.Socket);
  assert.equal(await c.ident(), 'child:0.0.1');
  await assert.rejects(c.repositories(), (e: ClientError) => e.kind === 'permission_denied');
  c.close();
  assert.equal(await exited(p), 0, 'the server saw the close and ended');
});

test('fromEnv without NORTHSTAR_CONSOLE names the missing variable', async () => {
  await assert.rejects(Client.fromEnv({}, {}), /NORTHSTAR_CONSOLE is not set/);
  await assert.rejects(Client.fromEnv({}, { NORTHSTAR_CONSOLE: 'x' }), /not an fd number/);
});

test('notifications come as an async iterator, and overflowing the buffer ends it with lagged_notifications', async (t) => {
  const { url, backend } = await startServer(t);
  const c = await Client.connect(url, { subscribe: 2 });
  for (let i = 0; i < 5; i++) backend.emit({ type: 'install', container: `x:0.0.${i}` });
  await c.ident(); // the notifications were sent before this response
  const got: unknown[] = [];
  await assert.rejects(
    (async () => {
      for await (const n of c) got.push(n);
    })(),
    (e: ClientError) => e.kind === 'lagged_notifications',
  );
  assert.deepEqual(got, [{ install: 'x:0.0.0' }, { install: 'x:0.0.1' }]);
  c.close();
});

test('the notification iterator ends when the runtime closes the connection', async (t) => {
  const { url, backend, server } = await startServer(t);
  const c = await Client.connect(url, { subscribe: true });
  backend.emit({ type: 'started', container: 'a:0.0.1' });
  const got: unknown[] = [];
  const done = (async () => {
    for await (const n of c.notifications()) got.push(n);
  })();
  await c.ident();
  await server.close();
  await done;
  assert.deepEqual(got, [{ started: 'a:0.0.1' }, 'shutdown']);
});

test('concurrent requests on one client are answered in order', async (t) => {
  const { url } = await startServer(t);
  const c = await Client.connect(url);
  const results = await Promise.all(
    Array.from({ length: 30 }, (_, i) => (i % 3 === 0 ? c.ident() : i % 3 === 1 ? c.repositories() : c.list())),
  );
  results.forEach((r, i) => {
    if (i % 3 === 0) assert.equal(r, 'extern:0.0.0');
    else if (i % 3 === 1) assert.deepEqual(r, ['mem', 'fs']);
    else assert.equal((r as string[]).length, 3);
  });
  c.close();
});

for (const vector of ['vector-signed.npk', 'vector-unsigned.npk', 'vector-signed-d935-uncompressed.npk']) {
  test(`installFile streams ${vector} byte for byte`, { skip: vectorDir ? undefined : 'no NPK vectors (test/fixtures/vectors)' }, async (t) => {
    const { url, backend } = await startServer(t, { transport: 'tcp' });
    const path = join(vectorDir!, vector);
    const c = await Client.connect(url);
    assert.equal(await c.installFile(path, 'mem'), 'installed-1:0.0.1');
    assert.equal(backend.installs[0]!.sha256, createHash('sha256').update(readFileSync(path)).digest('hex'));
    c.close();
  });
}

test('runtime errors carry the wire error and its message', async (t) => {
  const { url } = await startServer(t);
  const c = await Client.connect(url);
  await assert.rejects(c.start('nope:0.0.1'), (e: ClientError) => {
    assert.equal(e.kind, 'runtime');
    assert.deepEqual(e.wire, { invalid_container: { container: 'nope:0.0.1' } });
    assert.equal(e.message, 'no container nope:0.0.1 is installed (`nstar list` shows the installed containers)');
    return true;
  });
  await assert.rejects(c.install(Buffer.from('abc'), 3, 'nope'), /no repository named "nope"/);
  assert.equal(await c.ident(), 'extern:0.0.0');
  const results = await c.umount(['crashing:0.0.1', 'message:0.0.2']);
  assert.deepEqual(results, [
    { error: { container: 'crashing:0.0.1', error: { umount_busy: { container: 'crashing:0.0.1' } } } },
    { ok: { container: 'message:0.0.2' } },
  ]);
  c.close();
});

test('a request on a closed connection fails with kind closed', async (t) => {
  const { url, server } = await startServer(t);
  const c = await Client.connect(url);
  await server.close();
  await assert.rejects(c.list(), (e: ClientError) => e.kind === 'closed');
});

test('connectFirst falls back to the next url and names all failures when none answers', async (t) => {
  const { url } = await startServer(t);
  const c = await Client.connectFirst(['unix:///nonexistent/console', url]);
  assert.equal(await c.ident(), 'extern:0.0.0');
  c.close();
  await assert.rejects(
    Client.connectFirst(['unix:///nonexistent/a', 'unix:///nonexistent/b']),
    /no console reachable: connect to unix:\/\/\/nonexistent\/a: .*; connect to unix:\/\/\/nonexistent\/b/,
  );
});

test('a native socketpair serves a container console in-process: adopt(fd) on one end, fromEnv on the other', async (t) => {
  const { native } = await import('../../src/native.js');
  const { server } = await startServer(t);
  const [runtimeFd, containerFd] = native().socketpair('stream');
  const handle = server.adopt(runtimeFd, { container: 'pair:0.0.1', permissions: ['ident'] });
  const c = await Client.fromEnv({}, { NORTHSTAR_CONSOLE: String(containerFd) });
  assert.equal(await c.ident(), 'pair:0.0.1');
  handle.close();
  await handle.closed;
  await assert.rejects(c.ident(), (e: ClientError) => e.kind === 'closed');
  c.close();
});

test('mountAll and umountAll act on every installed container, startCommand sends the overrides', async (t) => {
  const { url, backend } = await startServer(t);
  const c = await Client.connect(url);
  const mounted = await c.mountAll();
  assert.deepEqual(
    mounted.map((r) => ('ok' in r ? r.ok.container : `!${r.error.container}`)),
    ['hello-world:0.0.1', '!message:0.0.2', '!crashing:0.0.1'],
  );
  const umounted = await c.umountAll();
  assert.deepEqual(
    umounted.map((r) => ('ok' in r ? r.ok.container : `!${r.error.container}`)),
    ['hello-world:0.0.1', 'message:0.0.2', '!crashing:0.0.1'],
  );
  await c.startCommand('hello-world:0.0.1', '<INIT>', ['a'], { K: 'V' });
  assert.deepEqual(backend.requests.at(-1)!.req, {
    start: { container: 'hello-world:0.0.1', init: '<INIT>', arguments: ['a'], environment: { K: 'V' } },
  });
  c.close();
});
