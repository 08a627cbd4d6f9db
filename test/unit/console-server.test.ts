// The console server against a fake backend over real unix and TCP sockets:
// handshake, limits, permissions, tokens, throttling, install streaming,
// notification fan-out and lag, container consoles, and bad input.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { join } from 'node:path';
import { test } from 'node:test';

import { Client, ClientError } from '../../src/client/index.js';
import { RawPeer, startServer } from './console-fake-backend.js';

/** Two connected unix sockets: [runtime end, container end]. */
async function socketPair(dir: string, name: string): Promise<[net.Socket, net.Socket]> {
  const path = join(dir, name);
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(path, r));
  const accepted = once(srv, 'connection') as Promise<[net.Socket]>;
  const client = net.connect({ path });
  await once(client, 'connect');
  const [server] = await accepted;
  srv.close();
  return [server, client];
}

for (const transport of ['unix', 'tcp'] as const) {
  test(`a client of our version is acknowledged and can list over ${transport}`, async (t) => {
    const { url } = await startServer(t, { transport });
    const c = await Client.connect(url);
    assert.deepEqual(await c.list(), ['hello-world:0.0.1', 'message:0.0.2', 'crashing:0.0.1']);
    c.close();
  });
}

test('a client one minor version lower is refused with connect_nack', async (t) => {
  const { url } = await startServer(t);
  await assert.rejects(Client.connect(url, { version: '0.8.3' }), (e: ClientError) => e.kind === 'invalid_protocol_version');
});

test('a client one patch version higher is acknowledged', async (t) => {
  const { url } = await startServer(t);
  const c = await Client.connect(url, { version: '0.9.4' });
  assert.equal(await c.ident(), 'extern:0.0.0');
  c.close();
});

test('a line longer than max_request_size closes the connection (mount of 100000 containers)', async (t) => {
  const { url, server } = await startServer(t);
  const c = await Client.connect(url);
  const containers = Array.from({ length: 100000 }, (_, i) => `container-${i}:0.0.1`);
  await assert.rejects(c.mount(containers), (e: ClientError) => e.kind === 'closed');
  const d = await Client.connect(url);
  assert.equal(await d.ident(), 'extern:0.0.0', 'the console keeps serving others');
  d.close();
  assert.ok(server.connectionCount <= 2);
});

test('an install larger than max_npk_install_size closes the connection without a response', async (t) => {
  const { url, backend } = await startServer(t);
  const p = await RawPeer.connect(url);
  await p.handshake();
  p.send('{"request":{"install":{"repository":"mem","size":999999999}}}\n');
  assert.deepEqual(await p.closed(), []);
  assert.equal(backend.installs.length, 0);
});

test('a global connection that does not send connect within the deadline is closed silently', async (t) => {
  const { url } = await startServer(t, { server: { handshakeTimeoutMs: 50 } });
  const p = await RawPeer.connect(url);
  assert.deepEqual(await p.closed(), []);
});

test('a first message other than connect closes the connection silently', async (t) => {
  const { url } = await startServer(t);
  const p = await RawPeer.connect(url);
  p.send('{"request":"list"}\n');
  assert.deepEqual(await p.closed(), []);
});

test('bad input closes that connection or gets an error response, and the console keeps serving', async (t) => {
  const { url, backend } = await startServer(t);
  const closes: [string, string | Buffer][] = [
    ['garbage bytes', Buffer.from([0xff, 0x00, 0x13, 0x37, 0x0a])],
    ['invalid JSON', '{"request": list}\n'],
    ['a line of 2 MiB', 'x'.repeat(2 * 1024 * 1024) + '\n'],
    ['a 2 MiB line without newline', 'x'.repeat(2 * 1024 * 1024)],
    ['an install with a negative size', '{"request":{"install":{"repository":"mem","size":-1}}}\n'],
    ['an install with a string size', '{"request":{"install":{"repository":"mem","size":"12"}}}\n'],
  ];
  for (const [what, data] of closes) {
    const p = await RawPeer.connect(url);
    await p.handshake();
    p.send(data);
    const lines = await p.closed();
    assert.ok(lines.every((l) => l.startsWith('{"response":{"error":{"invalid_arguments"')), `${what}: ${lines}`);
  }
  const answers: [string, string, RegExp][] = [
    ['unknown request', '{"request":"format_disk"}', /unknown request `format_disk`/],
    ['unknown struct request', '{"request":{"reboot":{}}}', /unknown request `reboot`/],
    ['wrong field type', '{"request":{"kill":{"container":"c:0.0.1","signal":"TERM"}}}', /request\.kill\.signal: expected an i32/],
    ['missing field', '{"request":{"start":{"container":"c:0.0.1"}}}', /request\.start: missing field `arguments`/],
    ['bad container', '{"request":{"inspect":{"container":"no version"}}}', /request\.inspect\.container: expected a container/],
    ['not a request', '{"response":"shutdown"}', /expected a request message/],
    ['an array', '[1,2,3]', /expected a request message/],
    ['two keys', '{"request":{"kill":{"container":"c:0.0.1","signal":1},"list":null}}', /exactly one key/],
  ];
  const p = await RawPeer.connect(url);
  await p.handshake();
  for (const [what, line, re] of answers) {
    p.send(line + '\n');
    const got = (await p.line())!;
    assert.match(got, /^\{"response":\{"error":\{"invalid_arguments":\{"cause":/, what);
    assert.match(JSON.parse(got).response.error.invalid_arguments.cause, re, what);
  }
  p.send('{"request":"ident"}\n');
  assert.equal(await p.line(), '{"response":{"ident":"extern:0.0.0"}}', 'the same connection still works');
  p.close();

  const half = await RawPeer.connect(url);
  await half.handshake();
  half.send('{"request":{"kill":{"contai');
  half.close();
  const c = await Client.connect(url);
  assert.equal(await c.ident(), 'extern:0.0.0');
  c.close();
  assert.equal(backend.requests.length, 0, 'nothing malformed reached the runtime');
});

test('a \\r\\n line ending is tolerated', async (t) => {
  const { url } = await startServer(t);
  const p = await RawPeer.connect(url);
  p.send('{"connect":{"version":"0.9.3","subscribe_notifications":false}}\r\n{"request":"ident"}\r\n');
  assert.equal(await p.line(), '{"connect_ack":null}');
  assert.equal(await p.line(), '{"response":{"ident":"extern:0.0.0"}}');
  p.close();
});

test('a permission-denied install drains the NPK bytes so they are never parsed as requests', async (t) => {
  const { url, backend } = await startServer(t, { permissions: ['ident', 'list'] });
  const payload = Buffer.from('{"request":"shutdown"}\n{"request":"list"}\n');
  const p = await RawPeer.connect(url);
  await p.handshake();
  p.send(`{"request":{"install":{"repository":"mem","size":${payload.length}}}}\n`);
  p.send(payload);
  assert.equal(
    await p.line(),
    `{"response":{"permission_denied":{"install":{"repository":"mem","size":${payload.length}}}}}`,
  );
  p.send('{"request":"ident"}\n');
  assert.equal(await p.line(), '{"response":{"ident":"extern:0.0.0"}}');
  assert.equal(backend.requests.length, 0, 'the payload never became a request');
  p.close();
});

test('an install stream that stalls longer than npk_stream_timeout closes the connection', async (t) => {
  const { url, backend } = await startServer(t, { options: { npkStreamTimeoutMs: 100 } });
  const p = await RawPeer.connect(url);
  await p.handshake();
  p.send('{"request":{"install":{"repository":"mem","size":1000}}}\n');
  p.send(Buffer.alloc(500));
  assert.deepEqual(await p.closed(), [], 'no response');
  assert.equal(backend.installs.length, 0);
  const c = await Client.connect(url);
  assert.equal(await c.ident(), 'extern:0.0.0');
  c.close();
});

test('an install that ends early closes the connection and the backend sees the error', async (t) => {
  const { url, backend } = await startServer(t);
  const p = await RawPeer.connect(url);
  await p.handshake();
  p.send('{"request":{"install":{"repository":"mem","size":1000}}}\n');
  p.send(Buffer.alloc(10));
  p.socket.end();
  assert.deepEqual(await p.closed(), []);
  assert.equal(backend.installs.length, 0);
});

test('an install streams several MiB to the backend with the bytes intact', async (t) => {
  const { url, backend } = await startServer(t);
  const data = Buffer.alloc(5 * 1024 * 1024 + 17);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff;
  const c = await Client.connect(url);
  let progress = 0;
  const container = await c.install(data, data.length, 'fs', (sent) => (progress = sent));
  assert.equal(container, 'installed-1:0.0.1');
  assert.equal(progress, data.length);
  const { createHash } = await import('node:crypto');
  assert.equal(backend.installs[0]!.sha256, createHash('sha256').update(data).digest('hex'));
  assert.equal(await c.ident(), 'extern:0.0.0', 'the connection continues after the raw bytes');
  c.close();
});

test('requests beyond max_requests_per_sec are delayed, not dropped', async (t) => {
  const { url } = await startServer(t, { options: { maxRequestsPerSec: 5 } });
  const p = await RawPeer.connect(url);
  await p.handshake();
  // 8 requests with 5 per second: the last 3 wait for the window.
  p.send('{"request":"ident"}\n'.repeat(8));
  for (let i = 0; i < 8; i++) assert.equal(await p.line(), '{"response":{"ident":"extern:0.0.0"}}');
  p.close();
});

test('notifications go only to subscribers, and a lagging subscriber is disconnected alone', async (t) => {
  const { url, backend, server } = await startServer(t, { server: { notificationBufferSize: 16 } });
  const fast = await Client.connect(url, { subscribe: 1_000_000 });
  const quiet = await RawPeer.connect(url);
  await quiet.handshake(false);
  const slow = await RawPeer.connect(url);
  await slow.handshake(true);
  slow.socket.pause(); // never reads: the kernel buffers fill, then ours
  const gone = new Promise<string>((resolve) =>
    server.on('disconnected', (_peer, reason: string) => reason === 'notification lag' && resolve(reason)),
  );
  let lagged = false;
  void gone.then(() => (lagged = true));
  // Bursts smaller than the buffer: a reader that keeps up never lags.
  const big = 'x'.repeat(100);
  let sent = 0;
  while (!lagged) {
    for (let i = 0; i < 8; i++, sent++) backend.emit({ type: 'install', container: `${big}:${sent}.0.0` });
    await new Promise((r) => setImmediate(r));
  }
  let received = 0;
  for await (const n of fast.notifications()) {
    assert.deepEqual(n, { install: `${big}:${received}.0.0` });
    if (++received === sent) break;
  }
  assert.equal(received, sent, 'the fast subscriber got every notification');
  quiet.send('{"request":"ident"}\n');
  assert.equal(await quiet.line(), '{"response":{"ident":"extern:0.0.0"}}', 'no notification reached the unsubscribed');
  fast.close();
  quiet.close();
});

test('a container console answers with its permissions and refuses what it lacks', async (t) => {
  const { server, dir } = await startServer(t);
  const [runtimeEnd, containerEnd] = await socketPair(dir, 'pair');
  const logged = server.once('connected', () => undefined);
  assert.ok(logged);
  const handle = server.adopt(runtimeEnd, { container: 'console:0.0.1', permissions: ['ident', 'list'] });
  const c = await Client.fromStream(containerEnd);
  assert.equal(await c.ident(), 'console:0.0.1');
  assert.equal((await c.list()).length, 3);
  await assert.rejects(c.repositories(), (e: ClientError) => e.kind === 'permission_denied');
  await assert.rejects(Client.fromStream((await socketPair(dir, 'pair2'))[1], { subscribe: true, timeoutMs: 200 }));
  handle.close();
  await handle.closed;
  await assert.rejects(c.ident(), (e: ClientError) => e.kind === 'closed');
});

test('a container console has no handshake deadline', async (t) => {
  const { server, dir, url } = await startServer(t, { server: { handshakeTimeoutMs: 20 } });
  const [runtimeEnd, containerEnd] = await socketPair(dir, 'pair');
  server.adopt(runtimeEnd, { container: 'late:0.0.1', permissions: ['ident'] });
  // A silent global connection opened after it is closed by the deadline: the deadline has passed.
  const global = await RawPeer.connect(url);
  assert.deepEqual(await global.closed(), []);
  const c = await Client.fromStream(containerEnd);
  assert.equal(await c.ident(), 'late:0.0.1');
  server.disconnect('late:0.0.1');
  await assert.rejects(c.ident());
});

test('a token created by one container verifies only at its target with the same shared data', async (t) => {
  const { server, dir, url } = await startServer(t);
  const [a1, a2] = await socketPair(dir, 'a');
  const [b1, b2] = await socketPair(dir, 'b');
  server.adopt(a1, { container: 'token-client:0.0.1', permissions: ['ident', 'token_create'] });
  server.adopt(b1, { container: 'token-server:0.0.1', permissions: ['ident', 'token_verification'] });
  const client = await Client.fromStream(a2);
  const srv = await Client.fromStream(b2);
  const token = await client.createToken('token-server', 'hello!');
  assert.equal(Buffer.from(token, 'base64').length, 40);
  assert.match(token, /^[A-Za-z0-9+/]{54}==$/);
  assert.equal(await srv.verifyToken(token, 'token-client', 'hello!'), 'Ok');
  assert.equal(await srv.verifyToken(token, 'token-client', 'hello?'), 'Invalid');
  assert.equal(await srv.verifyToken(token, 'someone-else', 'hello!'), 'Invalid');
  const ext = await Client.connect(url);
  assert.equal(await ext.verifyToken(token, 'token-client', 'hello!'), 'Invalid', 'the target is the verifier');
  await assert.rejects(client.verifyToken(token, 'token-client', 'hello!'), (e: ClientError) => e.kind === 'permission_denied');
  const p = await RawPeer.connect(url);
  await p.handshake();
  p.send('{"request":{"token_verify":{"token":"aGVsbG8h","user":"x","shared":""}}}\n');
  assert.match((await p.line())!, /token of 40 bytes/);
  p.close();
  for (const c of [client, srv, ext]) c.close();
});

test('a unix console replaces a stale socket file', async (t) => {
  const { dir, server } = await startServer(t);
  const path = join(dir, 'stale');
  const { writeFileSync } = await import('node:fs');
  writeFileSync(path, '');
  const url = await server.listen(`unix://${path}`, ['ident']);
  const c = await Client.connect(url);
  assert.equal(await c.ident(), 'extern:0.0.0');
  c.close();
});

test('a unix console socket gets 0600 or the given mode and group whatever the umask; an unknown group leaves no socket', async (t) => {
  const { statSync, existsSync, writeFileSync } = await import('node:fs');
  const { groupId } = await import('../../src/console/server.js');
  const { dir, server } = await startServer(t);
  const old = process.umask(0o000);
  try {
    await server.listen(`unix://${join(dir, 'default')}`, ['ident']);
    const gid = process.getgid!();
    await server.listen(`unix://${join(dir, 'group')}`, ['ident'], {}, { mode: 0o660, group: gid });
    assert.equal(statSync(join(dir, 'default')).mode & 0o7777, 0o600);
    assert.equal(statSync(join(dir, 'group')).mode & 0o7777, 0o660);
    assert.equal(statSync(join(dir, 'group')).gid, gid);
    const { logChannel } = await import('../../src/log.js');
    const warnings: string[] = [];
    const onLog = (m: unknown) => void ((m as { level: string }).level === 'warn' && warnings.push((m as { message: string }).message));
    logChannel.subscribe(onLog);
    try {
      await server.listen(`unix://${join(dir, 'open')}`, ['ident', 'list'], {}, { mode: 0o666 });
    } finally {
      logChannel.unsubscribe(onLog);
    }
    assert.equal(statSync(join(dir, 'open')).mode & 0o7777, 0o666);
    assert.deepEqual(warnings, [`Console socket ${join(dir, 'open')} has mode 0666: any local user may connect, with permissions {ident, list}`]);
    await assert.rejects(server.listen(`unix://${join(dir, 'nogroup')}`, ['ident'], {}, { group: 'no-such-group-nstar' }), /socket_group: no group "no-such-group-nstar" in \/etc\/group/);
    assert.ok(!existsSync(join(dir, 'nogroup')));
  } finally {
    process.umask(old);
  }
  const groups = join(dir, 'group-file');
  writeFileSync(groups, 'root:x:0:\nops:x:4242:alice,bob\nbroken\n');
  assert.equal(groupId('ops', groups), 4242);
  assert.equal(groupId(17, groups), 17);
  assert.throws(() => groupId('broken', groups), /no group "broken"/);
  assert.throws(() => groupId('ops', join(dir, 'missing')), /socket_group: cannot read .*missing to look up group "ops"/);
});

test('the backend failing a request becomes the request\'s unexpected error', async (t) => {
  const { url, backend } = await startServer(t);
  backend.request = async () => {
    throw new Error('boom');
  };
  const p = await RawPeer.connect(url);
  await p.handshake();
  p.send('{"request":{"kill":{"container":"c:0.0.1","signal":9}}}\n{"request":"list"}\n');
  assert.equal(await p.line(), '{"response":{"kill":{"error":{"container":"c:0.0.1","error":{"unexpected":{"error":"boom"}}}}}}');
  assert.equal(await p.line(), '{"response":{"error":{"unexpected":{"error":"boom"}}}}');
  p.close();
});

test('startConsole listens on console.global.bind with its permissions and options', async (t) => {
  const { startConsole } = await import('../../src/console/index.js');
  const { FakeBackend } = await import('./console-fake-backend.js');
  const config = {
    notificationBufferSize: 8,
    console: { global: { bind: 'tcp://127.0.0.1:0', permissions: ['ident'] }, options: { maxRequestsPerSec: 2 } },
  };
  const { server, url } = await startConsole(config, new FakeBackend());
  t.after(() => server.close());
  assert.match(url!, /^tcp:\/\/127\.0\.0\.1:\d+$/);
  assert.equal(server.notificationBufferSize, 8);
  assert.equal(server.containerOptions.maxRequestsPerSec, 2);
  const c = await Client.connect(url!);
  assert.equal(await c.ident(), 'extern:0.0.0');
  await assert.rejects(c.list(), (e: ClientError) => e.kind === 'permission_denied');
  c.close();
  const none = await startConsole({ notificationBufferSize: 8, console: { options: {} } }, new FakeBackend());
  assert.equal(none.url, undefined);
  await none.server.close();
  await assert.rejects(
    startConsole({ notificationBufferSize: 8, console: { global: { bind: 'unix:///nonexistent/dir/console', permissions: 'full' }, options: {} } }, new FakeBackend()),
    /console: cannot listen on unix:\/\/\/nonexistent\/dir\/console: listen E/,
  );
  await assert.rejects(
    startConsole({ notificationBufferSize: 8, console: { global: { bind: 'http://x', permissions: 'full' }, options: {} } }, new FakeBackend()),
    /the scheme must be tcp or unix/,
  );
});

test('a slow sender dribbling a request byte by byte is answered', async (t) => {
  const { url } = await startServer(t);
  const p = await RawPeer.connect(url);
  await p.handshake();
  for (const ch of '{"request":"ident"}\n') {
    p.send(ch);
    await new Promise((r) => setImmediate(r));
  }
  assert.equal(await p.line(), '{"response":{"ident":"extern:0.0.0"}}');
  p.close();
});

test('connections of every kind leave no file descriptors behind', async (t) => {
  const { readdirSync } = await import('node:fs');
  const { native } = await import('../../src/native.js');
  const fds = () => readdirSync('/proc/self/fd').length;
  const { url, server } = await startServer(t);
  // Warm up: the first connection allocates lasting things (e.g. the server's handles).
  const warm = await RawPeer.connect(url);
  await warm.handshake();
  warm.close();
  await new Promise<void>((r) => (server.connectionCount === 0 ? r() : server.once('disconnected', () => r())));
  const before = fds();
  const gone = (n: number) =>
    new Promise<void>((resolve) => {
      let left = n;
      server.on('disconnected', () => --left === 0 && resolve());
    });
  const all = gone(40);
  for (let i = 0; i < 10; i++) {
    const ok = await RawPeer.connect(url);
    await ok.handshake(true);
    ok.close();
    const junk = await RawPeer.connect(url);
    await junk.handshake();
    junk.send('not json\n');
    await junk.closed();
    const nack = await RawPeer.connect(url);
    nack.send('{"connect":{"version":"0.1.0","subscribe_notifications":false}}\n');
    await nack.closed();
    const [ours, theirs] = native().socketpair('stream');
    const h = server.adopt(ours, { container: `c${i}:0.0.1`, permissions: ['ident'] });
    const c = await Client.fromEnv({}, { NORTHSTAR_CONSOLE: String(theirs) });
    assert.equal(await c.ident(), `c${i}:0.0.1`);
    c.close();
    await h.closed;
  }
  await all;
  assert.equal(server.connectionCount, 0);
  assert.equal(fds(), before, 'fd count back to where it was');
});
