// Golden wire tests: a raw socket writes the literal JSON lines of
// spec/console.md §4.1–4.3 and compares the raw reply lines byte for byte.
// Neither our client nor our codec is on the test's side of the socket.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { test } from 'node:test';

import type { AttachResult, FrameIO } from '../../src/console/attached.js';
import type { Request } from '../../src/console/protocol.js';
import { RawPeer, startServer } from './console-fake-backend.js';

async function exchange(url: string, lines: string[], subscribe = false): Promise<string[]> {
  const p = await RawPeer.connect(url);
  await p.handshake(subscribe);
  const out: string[] = [];
  for (const l of lines) {
    p.send(l + '\n');
    out.push((await p.line())!);
  }
  p.close();
  return out;
}

test('the handshake answers connect with {"connect_ack":null}', async (t) => {
  const { url } = await startServer(t);
  const p = await RawPeer.connect(url);
  p.send('{"connect":{"version":"0.9.3","subscribe_notifications":true}}\n');
  assert.equal(await p.line(), '{"connect_ack":null}');
  p.close();
});

test('a client version below 0.9 gets connect_nack with our version and the connection closes', async (t) => {
  const { url } = await startServer(t);
  const p = await RawPeer.connect(url);
  p.send('{"connect":{"version":"0.8.3","subscribe_notifications":false}}\n');
  assert.deepEqual(await p.closed(), ['{"connect_nack":{"invalid_protocol_version":{"version":"0.9.3"}}}']);
});

test('subscribing without the notifications permission gets {"connect_nack":"permission_denied"}', async (t) => {
  const { url } = await startServer(t, { permissions: ['ident', 'list'] });
  const p = await RawPeer.connect(url);
  p.send('{"connect":{"version":"0.9.3","subscribe_notifications":true}}\n');
  assert.deepEqual(await p.closed(), ['{"connect_nack":"permission_denied"}']);
});

const GOLDEN: [string, string][] = [
  ['{"request":"ident"}', '{"response":{"ident":"extern:0.0.0"}}'],
  ['{"request":"list"}', '{"response":{"list":["hello-world:0.0.1","message:0.0.2","crashing:0.0.1"]}}'],
  ['{"request":"repositories"}', '{"response":{"repositories":["mem","fs"]}}'],
  [
    '{"request":{"inspect":{"container":"c:0.0.1"}}}',
    '{"response":{"inspect":{"error":{"container":"c:0.0.1","error":{"invalid_container":{"container":"c:0.0.1"}}}}}}',
  ],
  [
    '{"request":{"inspect":{"container":"message:0.0.2"}}}',
    '{"response":{"inspect":{"ok":{"container":"message:0.0.2","data":{"manifest":{"name":"message","version":"0.0.2"},"repository":"fs","mounted":true,"process":null}}}}}',
  ],
  [
    '{"request":{"inspect":{"container":"crashing:0.0.1"}}}',
    '{"response":{"inspect":{"ok":{"container":"crashing:0.0.1","data":{"manifest":{"name":"crashing","version":"0.0.1","init":"/bin/probe"},"repository":"mem","mounted":true,"process":{"pid":4242,"uptime":1500000000,"statistics":{}}}}}}}',
  ],
  [
    '{"request":{"kill":{"container":"hello-world:0.0.1","signal":15}}}',
    '{"response":{"kill":{"error":{"container":"hello-world:0.0.1","error":{"stop_container_not_started":{"container":"hello-world:0.0.1"}}}}}}',
  ],
  [
    '{"request":{"mount":{"containers":["hello-world:0.0.1","foo:0.0.1"]}}}',
    '{"response":{"mount":[{"ok":{"container":"hello-world:0.0.1"}},{"error":{"container":"foo:0.0.1","error":{"invalid_container":{"container":"foo:0.0.1"}}}}]}}',
  ],
  [
    '{"request":{"start":{"container":"hello-world:0.0.1","init":null,"arguments":[],"environment":{}}}}',
    '{"response":{"start":{"ok":{"container":"hello-world:0.0.1"}}}}',
  ],
  [
    '{"request":{"start":{"container":"hello-world:0.0.1","arguments":["sleep"],"environment":{"K":"V"}}}}',
    '{"response":{"start":{"error":{"container":"hello-world:0.0.1","error":{"start_container_started":{"container":"hello-world:0.0.1"}}}}}}',
  ],
  [
    '{"request":{"kill":{"container":"hello-world:0.0.1","signal":15}}}',
    '{"response":{"kill":{"ok":{"container":"hello-world:0.0.1"}}}}',
  ],
  [
    '{"request":{"umount":{"containers":["hello-world:0.0.1"]}}}',
    '{"response":{"umount":[{"ok":{"container":"hello-world:0.0.1"}}]}}',
  ],
  [
    '{"request":{"umount":{"containers":["crashing:0.0.1"]}}}',
    '{"response":{"umount":[{"error":{"container":"crashing:0.0.1","error":{"umount_busy":{"container":"crashing:0.0.1"}}}}]}}',
  ],
  [
    '{"request":{"uninstall":{"container":"c:0.0.1","wipe":true}}}',
    '{"response":{"uninstall":{"error":{"container":"c:0.0.1","error":{"invalid_container":{"container":"c:0.0.1"}}}}}}',
  ],
  [
    '{"request":{"uninstall":{"container":"hello-world:0.0.1","wipe":true}}}',
    '{"response":{"uninstall":{"ok":{"container":"hello-world:0.0.1"}}}}',
  ],
  // spec/streams.md: tty needs attach; a runtime without attached sessions refuses copy_out in JSON mode.
  [
    '{"request":{"exec":{"container":"c:0.0.1","path":"/bin/sh","tty":true}}}',
    '{"response":{"error":{"invalid_arguments":{"cause":"request.exec.tty: needs `attach`"}}}}',
  ],
  [
    '{"request":{"copy_out":{"container":"c:0.0.1","path":"/data"}}}',
    '{"response":{"copy_out":{"error":{"container":"c:0.0.1","error":{"unexpected":{"error":"this runtime does not support attached requests"}}}}}}',
  ],
  // Last: the fake runtime closes its console after a shutdown, as the runtime does.
  ['{"request":"shutdown"}', '{"response":"shutdown"}'],
];

test('every request of spec/console.md §4.2 gets the literal response line', async (t) => {
  const { url } = await startServer(t);
  const got = await exchange(
    url,
    GOLDEN.map(([q]) => q),
  );
  assert.deepEqual(got, GOLDEN.map(([, a]) => a));
});

test('requests without their permission are echoed back as permission_denied', async (t) => {
  const { url, backend } = await startServer(t, { permissions: ['ident', 'start'] });
  const got = await exchange(url, [
    '{"request":"repositories"}',
    '{"request":{"kill":{"container":"c:0.0.1","signal":15}}}',
    '{"request":{"start":{"container":"c:0.0.1","arguments":["sleep"],"environment":{}}}}',
    '{"request":{"start":{"container":"hello-world:0.0.1","init":null,"arguments":[],"environment":{}}}}',
  ]);
  assert.deepEqual(got, [
    '{"response":{"permission_denied":"repositories"}}',
    '{"response":{"permission_denied":{"kill":{"container":"c:0.0.1","signal":15}}}}',
    '{"response":{"permission_denied":{"start":{"container":"c:0.0.1","init":null,"arguments":["sleep"],"environment":{}}}}}',
    '{"response":{"start":{"ok":{"container":"hello-world:0.0.1"}}}}',
  ]);
  assert.equal(backend.requests.length, 1, 'only the permitted start reached the runtime');
});

test('install with 12345 raw bytes answers with the container, an invalid repository without a container field', async (t) => {
  const { url, backend } = await startServer(t);
  const p = await RawPeer.connect(url);
  await p.handshake();
  p.send('{"request":{"install":{"repository":"mem","size":12345}}}\n');
  p.send(Buffer.alloc(12345, 7));
  assert.equal(await p.line(), '{"response":{"install":{"ok":{"container":"installed-1:0.0.1"}}}}');
  p.send(Buffer.concat([Buffer.from('{"request":{"install":{"repository":"whooha","size":3}}}\nabc')]));
  assert.equal(await p.line(), '{"response":{"install":{"error":{"error":{"invalid_repository":{"repository":"whooha"}}}}}}');
  p.send('{"request":"ident"}\n');
  assert.equal(await p.line(), '{"response":{"ident":"extern:0.0.0"}}', 'the 3 bytes were drained, not parsed');
  assert.equal(backend.installs[0]!.size, 12345);
  p.close();
});

test('notifications of spec/console.md §4.3 reach a subscriber as literal lines', async (t) => {
  const { url, backend } = await startServer(t);
  const p = await RawPeer.connect(url);
  await p.handshake(true);
  backend.emit({ type: 'started', container: 'c:0.0.1' });
  backend.emit({ type: 'exit', container: 'c:0.0.1', status: { signalled: { signal: 15 } } });
  backend.emit({ type: 'exit', container: 'c:0.0.1', status: { exit: { code: 101 } } });
  backend.emit({ type: 'install', container: 'c:0.0.1' });
  backend.emit({ type: 'uninstall', container: 'c:0.0.1' });
  backend.emit({ type: 'memory', container: 'memeater:0.0.1', memory: { low: 0, high: 0, max: 5, oom: 1, oom_kill: 1 } });
  backend.emit({ type: 'memory', container: 'memeater:0.0.1', memory: { low: null, high: null, max: null, oom: 2, oom_kill: 1 } });
  const want = [
    '{"notification":{"started":"c:0.0.1"}}',
    '{"notification":{"exit":["c:0.0.1",{"signalled":{"signal":15}}]}}',
    '{"notification":{"exit":["c:0.0.1",{"exit":{"code":101}}]}}',
    '{"notification":{"install":"c:0.0.1"}}',
    '{"notification":{"uninstall":"c:0.0.1"}}',
    '{"notification":{"c_group":["memeater:0.0.1",{"memory":{"low":0,"high":0,"max":5,"oom":1,"oom_kill":1}}]}}',
    '{"notification":{"c_group":["memeater:0.0.1",{"memory":{"low":null,"high":null,"max":null,"oom":2,"oom_kill":1}}]}}',
  ];
  for (const w of want) assert.equal(await p.line(), w);
  p.close();
});

test('a notification may arrive between a request and its response', async (t) => {
  const { url } = await startServer(t);
  const p = await RawPeer.connect(url);
  await p.handshake(true);
  p.send('{"request":{"start":{"container":"hello-world:0.0.1","init":null,"arguments":[],"environment":{}}}}\n');
  assert.equal(await p.line(), '{"notification":{"started":"hello-world:0.0.1"}}');
  assert.equal(await p.line(), '{"response":{"start":{"ok":{"container":"hello-world:0.0.1"}}}}');
  p.close();
});

test('extension requests answer in the same externally tagged shape', async (t) => {
  const { url } = await startServer(t);
  const got = await exchange(url, [
    '{"request":{"stop":{"container":"crashing:0.0.1","grace_ms":1000}}}',
    '{"request":{"pause":{"container":"crashing:0.0.1"}}}',
    '{"request":{"resume":{"container":"hello-world:0.0.1"}}}',
    '{"request":{"exec":{"container":"hello-world:0.0.1","path":"/bin/probe","arguments":[],"environment":{},"wait":true}}}',
  ]);
  assert.deepEqual(got, [
    '{"response":{"stop":{"ok":{"container":"crashing:0.0.1"}}}}',
    '{"response":{"pause":{"error":{"container":"crashing:0.0.1","error":{"stop_container_not_started":{"container":"crashing:0.0.1"}}}}}}',
    '{"response":{"resume":{"error":{"container":"hello-world:0.0.1","error":{"stop_container_not_started":{"container":"hello-world:0.0.1"}}}}}}',
    '{"response":{"exec":{"error":{"container":"hello-world:0.0.1","error":{"stop_container_not_started":{"container":"hello-world:0.0.1"}}}}}}',
  ]);
});

test('a subscriber gets {"notification":"shutdown"} before the console closes', async (t) => {
  const { url, server } = await startServer(t);
  const p = await RawPeer.connect(url);
  await p.handshake(true);
  const q = await RawPeer.connect(url);
  await q.handshake(false);
  await server.close();
  assert.deepEqual(await p.closed(), ['{"notification":"shutdown"}']);
  assert.deepEqual(await q.closed(), [], 'a connection without subscription gets no notification');
});

test('the independent NPK vectors stream through a raw install byte for byte', async (t) => {
  const { existsSync, readFileSync } = await import('node:fs');
  const { createHash } = await import('node:crypto');
  const { dirname, join } = await import('node:path');
  const { fileURLToPath } = await import('node:url');
  const here = dirname(fileURLToPath(import.meta.url));
  const dir = [join(here, '../fixtures/vectors'), '/work/shared/spec/vectors'].find((d) => existsSync(join(d, 'vector.pub')));
  if (!dir) return t.skip('no NPK vectors (test/fixtures/vectors)');
  const { url, backend } = await startServer(t);
  const p = await RawPeer.connect(url);
  await p.handshake();
  const files = ['vector-signed.npk', 'vector-unsigned.npk', 'vector-signed-d935-uncompressed.npk'];
  for (const [i, f] of files.entries()) {
    const bytes: Buffer = readFileSync(join(dir, f));
    p.send(`{"request":{"install":{"repository":"mem","size":${bytes.length}}}}\n`);
    p.send(bytes);
    assert.equal(await p.line(), `{"response":{"install":{"ok":{"container":"installed-${i + 1}:0.0.1"}}}}`);
    assert.equal(backend.installs[i]!.sha256, createHash('sha256').update(bytes).digest('hex'), f);
  }
  p.close();
});

test('connections log "Client <peer> connected" and "Container <c> connected" with their permissions', async (t) => {
  const { subscribe, unsubscribe } = await import('node:diagnostics_channel');
  const net = await import('node:net');
  const { join } = await import('node:path');
  const lines: string[] = [];
  const onLog = (r: unknown) => lines.push((r as { message: string }).message);
  subscribe('nstar:log', onLog);
  t.after(() => unsubscribe('nstar:log', onLog));
  const { url, server, dir } = await startServer(t, { permissions: ['ident', 'list'] });
  const p = await RawPeer.connect(url);
  await p.handshake();
  const path = join(dir, 'pair');
  const srv = net.createServer((s) => server.adopt(s, { container: 'console:0.0.1', permissions: ['ident', 'notifications', 'inspect', 'kill', 'list'] }));
  await new Promise<void>((r) => srv.listen(path, r));
  const q = new RawPeer(net.connect({ path }));
  await q.handshake(true);
  srv.close();
  assert.ok(lines.includes(`Client Remote(${url}) connected with permissions {ident, list}`), lines.join('\n'));
  assert.ok(lines.includes('Container console:0.0.1 connected with permissions {ident, inspect, kill, list, notifications}'), lines.join('\n'));
  p.close();
  q.close();
});

test('a shutdown request closing the console still gets its response, then the shutdown notification', async (t) => {
  const { url, server, backend } = await startServer(t);
  const original = backend.request.bind(backend);
  backend.request = async (req, ctx) => {
    // The runtime begins shutting down (and closes the console) while it answers.
    if (req === 'shutdown') void server.close();
    return original(req, ctx);
  };
  const p = await RawPeer.connect(url);
  await p.handshake(true);
  p.send('{"request":"shutdown"}\n');
  assert.deepEqual(await p.closed(), ['{"response":"shutdown"}', '{"notification":"shutdown"}']);
});

test('inspect carries startup phases and state only when the request names statistics (our extension)', async (t) => {
  const { url, backend } = await startServer(t);
  const original = backend.inspect.bind(backend);
  backend.inspect = async (c, statistics, ctx) => ({ ...(await original(c, statistics, ctx)), startup: { total: 4.25 }, state: 'mounted' });
  const got = await exchange(url, [
    '{"request":{"inspect":{"container":"message:0.0.2"}}}',
    '{"request":{"inspect":{"container":"message:0.0.2","statistics":["cpu"]}}}',
  ]);
  assert.deepEqual(got, [
    '{"response":{"inspect":{"ok":{"container":"message:0.0.2","data":{"manifest":{"name":"message","version":"0.0.2"},"repository":"fs","mounted":true,"process":null}}}}}',
    '{"response":{"inspect":{"ok":{"container":"message:0.0.2","data":{"manifest":{"name":"message","version":"0.0.2"},"repository":"fs","mounted":true,"process":null,"startup":{"total":4.25},"state":"mounted"}}}}}',
  ]);
  assert.deepEqual(backend.requests.at(-1)!.req, { inspect: { container: 'message:0.0.2', statistics: ['cpu'] } });
});

test('logs (spec/streams.md): the request line, its permission, a bad tail, then frames 1/2 in the order written and 3 last', async (t) => {
  const { url, backend } = await startServer(t, { permissions: ['ident', 'logs'] });
  const { writeLines } = await import('../../src/runtime-logs.js');
  (backend as unknown as { attach: (r: Request) => Promise<AttachResult> }).attach = async (r) => {
    const { container } = (r as { logs: { container: string } }).logs;
    return {
      response: { logs: { ok: { container } } },
      session: async (io: FrameIO) => {
        await writeLines(io, [
          { stream: 'stdout', line: 'one' },
          { stream: 'stdout', line: 'two' },
          { stream: 'stderr', line: 'oops' },
          { stream: 'stdout', line: 'three' },
        ]);
        return {};
      },
    };
  };
  const denied = await startServer(t, { permissions: ['ident'] });
  assert.deepEqual(await exchange(denied.url, ['{"request":{"logs":{"container":"c:0.0.1","tail":100,"follow":true}}}']), [
    '{"response":{"permission_denied":{"logs":{"container":"c:0.0.1","tail":100,"follow":true}}}}',
  ]);
  assert.deepEqual(await exchange(url, ['{"request":{"logs":{"container":"c:0.0.1","tail":-1}}}']), [
    '{"response":{"error":{"invalid_arguments":{"cause":"request.logs.tail: expected an unsigned integer, got -1"}}}}',
  ]);
  // Bytes, not lines, from here: a raw socket that keeps everything until the daemon closes.
  const sock = net.connect({ path: url.slice('unix://'.length) });
  const got: Buffer[] = [];
  sock.on('data', (d: Buffer) => got.push(d));
  sock.write('{"connect":{"version":"0.9.3","subscribe_notifications":false}}\n{"request":{"logs":{"container":"c:0.0.1","tail":100}}}\n');
  await once(sock, 'close');
  const frame = (ch: number, s: string) => Buffer.concat([Buffer.from([ch, 0, 0, 0, s.length]), Buffer.from(s)]);
  const expected = Buffer.concat([
    Buffer.from('{"connect_ack":null}\n{"response":{"logs":{"ok":{"container":"c:0.0.1"}}}}\n'),
    frame(1, 'one\ntwo\n'),
    frame(2, 'oops\n'),
    frame(1, 'three\n'),
    frame(3, '{}'),
  ]);
  assert.deepEqual(Buffer.concat(got), expected);
});
