// The client's side of the wire: a hand-written server (no codec of ours)
// checks each request line the client writes against spec/console.md and
// answers with the spec's literal response lines.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { Client, ClientError } from '../../src/client/index.js';

/** Serves one connection: acks connect, then answers each expected request line with its response line. */
async function scripted(t: { after(fn: () => unknown): void }, script: [string, string][]) {
  const dir = mkdtempSync(join(tmpdir(), 'nstar-client-golden-'));
  const path = join(dir, 'console');
  const got: string[] = [];
  const server = net.createServer((s) => {
    let buf = '';
    let step = -1;
    s.setEncoding('utf8');
    s.on('data', (d: string) => {
      buf += d;
      let i: number;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        got.push(line);
        if (step === -1) s.write('{"connect_ack":null}\n');
        else s.write((script[step]?.[1] ?? '{"response":"shutdown"}') + '\n');
        step++;
      }
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  t.after(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { url: `unix://${path}`, got };
}

test('every client method writes the request line of spec/console.md and reads the literal response', async (t) => {
  const token = Buffer.alloc(40, 1).toString('base64');
  const script: [string, string][] = [
    ['{"request":"ident"}', '{"response":{"ident":"extern:0.0.0"}}'],
    ['{"request":"list"}', '{"response":{"list":["hello-world:0.0.1","message:0.0.2"]}}'],
    ['{"request":"repositories"}', '{"response":{"repositories":["mem","fs"]}}'],
    ['{"request":{"start":{"container":"c:0.0.1","init":null,"arguments":[],"environment":{}}}}', '{"response":{"start":{"ok":{"container":"c:0.0.1"}}}}'],
    [
      '{"request":{"start":{"container":"c:0.0.1","init":"<INIT>","arguments":["sleep"],"environment":{"K":"V"}}}}',
      '{"response":{"start":{"error":{"container":"c:0.0.1","error":{"start_container_missing_resource":{"container":"c:0.0.1","resource":"test-resource","version":">=0.0.1"}}}}}}',
    ],
    ['{"request":{"kill":{"container":"c:0.0.1","signal":15}}}', '{"response":{"kill":{"ok":{"container":"c:0.0.1"}}}}'],
    [
      '{"request":{"mount":{"containers":["a:0.0.1","foo:0.0.1"]}}}',
      '{"response":{"mount":[{"ok":{"container":"a:0.0.1"}},{"error":{"container":"foo:0.0.1","error":{"invalid_container":{"container":"foo:0.0.1"}}}}]}}',
    ],
    [
      '{"request":{"umount":{"containers":["r:0.0.1"]}}}',
      '{"response":{"umount":[{"error":{"container":"r:0.0.1","error":{"umount_busy":{"container":"user:0.0.1"}}}}]}}',
    ],
    ['{"request":{"uninstall":{"container":"c:0.0.1","wipe":true}}}', '{"response":{"uninstall":{"ok":{"container":"c:0.0.1"}}}}'],
    ['{"request":{"token_create":{"target":"token-server","shared":"aGVsbG8h"}}}', `{"response":{"token":"${token}"}}`],
    [`{"request":{"token_verify":{"token":"${token}","user":"token-client","shared":"aGVsbG8h"}}}`, '{"response":{"token_verification":"Expired"}}'],
    ['{"request":"repositories"}', '{"response":{"permission_denied":"repositories"}}'],
    ['{"request":{"inspect":{"container":"c:0.0.1","statistics":["cpu","memory","memory_events","io","pids"]}}}', '{"response":{"inspect":{"error":{"container":"c:0.0.1","error":{"invalid_container":{"container":"c:0.0.1"}}}}}}'],
    ['{"request":"shutdown"}', '{"response":"shutdown"}'],
  ];
  const { url, got } = await scripted(t, script);
  const c = await Client.connect(url);
  assert.equal(await c.ident(), 'extern:0.0.0');
  assert.deepEqual(await c.list(), ['hello-world:0.0.1', 'message:0.0.2']);
  assert.deepEqual(await c.repositories(), ['mem', 'fs']);
  assert.equal(await c.start('c:0.0.1'), 'c:0.0.1');
  await assert.rejects(c.start('c:0.0.1', { init: '<INIT>', args: ['sleep'], env: { K: 'V' } }), (e: ClientError) => {
    assert.deepEqual(e.wire, { start_container_missing_resource: { container: 'c:0.0.1', resource: 'test-resource', version: '>=0.0.1' } });
    return e.code === 'start_container_missing_resource' && e.message === 'cannot start c:0.0.1: it needs resource test-resource version >=0.0.1, which is not installed (install it first)';
  });
  assert.equal(await c.kill('c:0.0.1', 15), 'c:0.0.1');
  assert.equal((await c.mount(['a:0.0.1', 'foo:0.0.1'])).length, 2);
  assert.deepEqual(await c.umount(['r:0.0.1']), [
    { error: { container: 'r:0.0.1', error: { umount_busy: { container: 'user:0.0.1' } } } },
  ]);
  assert.equal(await c.uninstall('c:0.0.1', true), 'c:0.0.1');
  assert.equal(await c.createToken('token-server', 'hello!'), token);
  assert.equal(await c.verifyToken(token, 'token-client', 'hello!'), 'Expired');
  await assert.rejects(c.repositories(), (e: ClientError) => e.kind === 'permission_denied');
  await assert.rejects(c.inspect('c:0.0.1'), (e: ClientError) => e.kind === 'runtime');
  await c.shutdown();
  assert.deepEqual(got, ['{"connect":{"version":"0.9.3","subscribe_notifications":false}}', ...script.map(([q]) => q)]);
  c.close();
});

test('install writes the request line, flushes, then exactly size raw bytes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nstar-client-golden-'));
  const path = join(dir, 'console');
  let received = Buffer.alloc(0);
  const server = net.createServer((s) => {
    s.on('data', (d: Buffer) => {
      received = Buffer.concat([received, d]);
      const text = received.toString('latin1');
      if (text.split('\n').length === 2 && text.endsWith('\n')) s.write('{"connect_ack":null}\n');
      if (received.length === text.indexOf('\n', text.indexOf('\n') + 1) + 1 + 5) {
        s.write('{"response":{"install":{"ok":{"container":"test-container:0.0.1"}}}}\n');
      }
    });
  });
  await new Promise<void>((r) => server.listen(path, r));
  t.after(() => {
    server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  const c = await Client.connect(`unix://${path}`);
  assert.equal(await c.install(Buffer.from('\x00\x01\n\x02\x03'), 5, 'mem'), 'test-container:0.0.1');
  assert.equal(
    received.toString('latin1'),
    '{"connect":{"version":"0.9.3","subscribe_notifications":false}}\n{"request":{"install":{"repository":"mem","size":5}}}\n\x00\x01\n\x02\x03',
  );
  c.close();
});
