// Framing, request decoding, permissions, tokens and the throttle, without sockets.
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { test } from 'node:test';

import { encodeMessage, FrameReader, LineTooLong, ReadTimeout } from '../../src/console/codec.js';
import { inspectToWire } from '../../src/console/inspect.js';
import { EXTENSION_PERMISSIONS, NORTHSTAR_PERMISSIONS, permissionSet, requiredPermission } from '../../src/console/permissions.js';
import { CONFIG_EXTENSION_PERMISSIONS, parseConfig } from '../../src/model/config.js';
import { parseManifest } from '../../src/model/manifest.js';
import { canonicalResponse, decodeMessage, decodeRequest, ProtocolError, type Request } from '../../src/console/protocol.js';
import { Throttle, type ThrottleClock } from '../../src/console/throttle.js';
import { TokenAuthority } from '../../src/console/token.js';

test('the frame reader splits lines, strips \\r and hands following bytes to raw reads', async () => {
  const s = new PassThrough();
  const r = new FrameReader(s, 100);
  s.write('{"a":1}\r\n{"b"');
  s.write(':2}\nRAWBYTES');
  assert.equal(await r.readLine(), '{"a":1}');
  assert.equal(await r.readLine(), '{"b":2}');
  assert.equal((await r.readChunk(3))!.toString(), 'RAW');
  assert.equal((await r.readChunk(100))!.toString(), 'BYTES');
  s.end('tail without newline');
  assert.equal(await r.readLine(), null, 'a partial line at EOF is dropped');
});

test('a line of exactly max bytes passes and one byte more fails, with or without newline', async () => {
  const s = new PassThrough();
  const r = new FrameReader(s, 10);
  s.write('0123456789\n01234567890\n');
  assert.equal(await r.readLine(), '0123456789');
  await assert.rejects(r.readLine(), LineTooLong);
  const s2 = new PassThrough();
  const r2 = new FrameReader(s2, 10);
  s2.write('x'.repeat(50));
  await assert.rejects(r2.readLine(), LineTooLong);
});

test('a read with a deadline rejects with ReadTimeout when nothing arrives', async () => {
  const r = new FrameReader(new PassThrough(), 10);
  await assert.rejects(r.readLine(5), ReadTimeout);
  await assert.rejects(r.readChunk(10, 5), ReadTimeout);
});

test('messages encode as one compact JSON line', () => {
  assert.equal(encodeMessage({ connect_ack: null }), '{"connect_ack":null}\n');
  assert.equal(
    encodeMessage({ connect: { version: '0.9.3', subscribe_notifications: true } }),
    '{"connect":{"version":"0.9.3","subscribe_notifications":true}}\n',
  );
});

test('every request of spec/console.md decodes to itself', () => {
  const reqs: unknown[] = [
    'ident',
    'list',
    'repositories',
    'shutdown',
    { inspect: { container: 'c:0.0.1' } },
    { install: { repository: 'mem', size: 12345 } },
    { kill: { container: 'c:0.0.1', signal: 15 } },
    { mount: { containers: ['a:0.0.1', 'foo:0.0.1'] } },
    { umount: { containers: ['r:0.0.1'] } },
    { start: { container: 'c:0.0.1', init: null, arguments: ['sleep'], environment: { K: 'V' } } },
    { token_create: { target: 'token-server', shared: 'aGVsbG8h' } },
    { token_verify: { token: Buffer.alloc(40).toString('base64'), user: 'token-client', shared: 'aGVsbG8h' } },
    { uninstall: { container: 'c:0.0.1', wipe: true } },
    { stop: { container: 'c:0.0.1', grace_ms: 5000 } },
    { exec: { container: 'c:0.0.1', path: '/bin/sh', arguments: ['-c', 'true'], environment: {}, wait: true } },
    { pause: { container: 'c:0.0.1' } },
    { resume: { container: 'c:0.0.1' } },
    { inspect: { container: 'c:0.0.1', statistics: ['cpu', 'memory'] } },
  ];
  for (const r of reqs) assert.deepEqual(decodeRequest(r), r);
  assert.deepEqual(decodeRequest({ start: { container: 'c:0.0.1', arguments: [], environment: {} } }), {
    start: { container: 'c:0.0.1', init: null, arguments: [], environment: {} },
  });
});

test('malformed requests are rejected with the path and what is wrong', () => {
  const cases: [unknown, RegExp][] = [
    [42, /request: expected a request, got 42/],
    ['reboot', /unknown request `reboot`/],
    [{ kill: { container: 'c:0.0.1' } }, /request\.kill: missing field `signal`/],
    [{ kill: { container: 'c:0.0.1', signal: 2 ** 31 } }, /request\.kill\.signal: expected an i32/],
    [{ install: { repository: 'mem', size: -5 } }, /request\.install\.size: expected an unsigned integer, got -5/],
    [{ install: { repository: 'mem', size: 1.5 } }, /request\.install\.size/],
    [{ mount: { containers: ['ok:0.0.1', 'bad'] } }, /request\.mount\.containers\[1\]: expected a container/],
    [{ start: { container: 'c:0.0.1', arguments: ['a\0b'], environment: {} } }, /arguments\[0\]: contains a NUL byte/],
    [{ start: { container: 'c:0.0.1', arguments: [], environment: { K: 1 } } }, /environment\.K: expected a string/],
    [{ token_create: { target: 'a:b', shared: '' } }, /target: expected a container name/],
    [{ token_create: { target: 'a', shared: '%%%' } }, /shared: expected base64/],
  ];
  for (const [v, re] of cases) {
    assert.throws(() => decodeRequest(v), (e: Error) => e instanceof ProtocolError && re.test(e.message), JSON.stringify(v));
  }
  assert.throws(() => decodeRequest({ list: {} }), /`list` takes no fields/);
});

test('client-side message decoding recognizes every top-level variant', () => {
  assert.deepEqual(decodeMessage({ connect_ack: null }), { connect_ack: null });
  assert.deepEqual(decodeMessage({ connect_nack: 'permission_denied' }), { connect_nack: 'permission_denied' });
  assert.deepEqual(decodeMessage({ response: 'shutdown' }), { response: 'shutdown' });
  assert.deepEqual(decodeMessage({ notification: 'shutdown' }), { notification: 'shutdown' });
  assert.throws(() => decodeMessage({ bogus: 1 }), /unknown variant `bogus`/);
});

test('responses are reordered into serde field order whatever order the backend used', () => {
  const r = canonicalResponse({
    start: { error: { error: { invalid_container: { container: 'c:0.0.1' } }, container: 'c:0.0.1' } },
  } as never);
  assert.equal(JSON.stringify(r), '{"start":{"error":{"container":"c:0.0.1","error":{"invalid_container":{"container":"c:0.0.1"}}}}}');
});

test("inspect's data goes out in serde field order, our additions only for the extension", () => {
  const manifest = parseManifest('name: c\nversion: 0.0.1\ninit: /probe\nuid: 1\ngid: 1\nrestart: {policy: always}\n');
  const d = {
    state: 'started.running',
    restarts: { gaveUp: false, nextAttemptMs: null, lastReason: null, count: 0 },
    process: { statistics: null, uptime: 5, pid: 7 },
    mounted: true,
    repository: 'mem',
    manifest,
    container: 'c:0.0.1',
  };
  assert.equal(
    JSON.stringify(inspectToWire(d, false)),
    '{"manifest":{"name":"c","version":"0.0.1","init":"/probe","uid":1,"gid":1},"repository":"mem","mounted":true,"process":{"pid":7,"uptime":5,"statistics":{}}}',
  );
  assert.equal(
    JSON.stringify(inspectToWire({ ...d, network: null }, true)).replace(/"manifest":\{.*?\}\}/, '"manifest":…'),
    '{"manifest":…,"repository":"mem","mounted":true,"process":{"pid":7,"uptime":5,"statistics":{}},"startup":null,"state":"started.running",' +
      '"restarts":{"count":0,"last_reason":null,"next_attempt_ms":null,"gave_up":false},"network":null}',
  );
  assert.ok('restart' in (inspectToWire(d, true).manifest as object), 'the extension keeps the manifest whole');
});

const COPY_ONLY = 'run_dir = "r"\ndata_dir = "d"\nsocket_dir = "s"\ncgroup = "n"\n[console.global]\nbind = "unix:///tmp/n.sock"\npermissions = ["copy", "list"]\n';

test('start needs start_command as soon as it overrides init, arguments or environment', () => {
  const start = (init: string | null, args: string[], env: Record<string, string>): Request => ({
    start: { container: 'c:0.0.1', init, arguments: args, environment: env },
  });
  assert.equal(requiredPermission(start(null, [], {})), 'start');
  assert.equal(requiredPermission(start('<INIT>', [], {})), 'start_command');
  assert.equal(requiredPermission(start(null, ['x'], {})), 'start_command');
  assert.equal(requiredPermission(start(null, [], { A: 'b' })), 'start_command');
  assert.equal(requiredPermission({ token_verify: { token: '', user: 'u', shared: '' } }), 'token_verification');
  assert.equal(requiredPermission('list'), 'list');
  assert.equal(requiredPermission({ stop: { container: 'c:0.0.1', grace_ms: 1 } }), 'stop');
  assert.equal(requiredPermission({ copy_out: { container: 'c:0.0.1', path: '/d' } }), 'copy');
  assert.equal(requiredPermission({ copy_in: { container: 'c:0.0.1', path: '/d', size: 0 } }), 'copy');
  assert.equal(requiredPermission({ logs: { container: 'c:0.0.1', tail: 5, follow: true } }), 'logs');
  assert.equal(permissionSet('full').size, 21);
  assert.equal(permissionSet([...NORTHSTAR_PERMISSIONS]).size, 21, 'all 15 of Northstar is full, extensions included');
  assert.equal(permissionSet(NORTHSTAR_PERMISSIONS.filter((x) => x !== 'kill')).has('stop'), false);
  assert.throws(() => permissionSet(['list', 'root']), /unknown console permission "root"/);
  assert.deepEqual([...CONFIG_EXTENSION_PERMISSIONS], [...EXTENSION_PERMISSIONS], 'config knows every extension permission');
  assert.deepEqual([...permissionSet(parseConfig(COPY_ONLY).console.global!.permissions)], ['list', 'copy']);
});

test('tokens verify as Ok, Invalid, Expired and Future on a simulated clock', () => {
  let now = 0;
  const key = Buffer.alloc(32, 1);
  const a = new TokenAuthority(key, { now: () => now });
  now = 5000; // first use: START
  now = 7500;
  const token = a.create('token-client', 'token-server', Buffer.from('hello!'));
  const bytes = Buffer.from(token, 'base64');
  assert.equal(bytes.length, 40);
  assert.equal(bytes.readBigUInt64BE(0), 0n, 'START is the first use, so 0 s');
  assert.equal(a.verify(token, 'token-client', 'token-server', Buffer.from('hello!'), 60_000), 'Ok');
  assert.equal(a.verify(token, 'token-client', 'token-server', Buffer.from('hello'), 60_000), 'Invalid');
  assert.equal(a.verify(token, 'token-client', 'extern', Buffer.from('hello!'), 60_000), 'Invalid');
  now += 60_000;
  assert.equal(a.verify(token, 'token-client', 'token-server', Buffer.from('hello!'), 60_000), 'Ok', 'exactly at validity');
  now += 1;
  assert.equal(a.verify(token, 'token-client', 'token-server', Buffer.from('hello!'), 60_000), 'Expired');
  const future = Buffer.from(bytes);
  future.writeBigUInt64BE(10_000n, 0);
  assert.equal(a.verify(future.toString('base64'), 'token-client', 'token-server', Buffer.from('hello!'), 60_000), 'Future');
  const other = new TokenAuthority(Buffer.alloc(32, 2), { now: () => now });
  assert.equal(other.verify(token, 'token-client', 'token-server', Buffer.from('hello!'), 1e12), 'Invalid', 'another process key');
});

test('the token MAC follows spec/console.md §4.5 byte for byte', async () => {
  const { createHmac } = await import('node:crypto');
  const key = Buffer.alloc(32, 9);
  let now = 0;
  const a = new TokenAuthority(key, { now: () => now });
  a.create('x', 'y', Buffer.alloc(0)); // START
  now = 3_700;
  const token = Buffer.from(a.create('user', 'target', Buffer.from('shared')), 'base64');
  const H = (x: string) => createHmac('sha256', key).update(x).digest();
  const time = Buffer.alloc(16);
  time.writeBigUInt64BE(3000n, 8);
  const mac = createHmac('sha256', key).update(time).update(H('user')).update(H('target')).update(H('shared')).digest();
  assert.equal(token.readBigUInt64BE(0), 3n);
  assert.deepEqual(token.subarray(8), mac);
});

test('the throttle delays the message after max within a sliding second and never rejects', async () => {
  let now = 0;
  const slept: number[] = [];
  const clock: ThrottleClock = {
    now: () => now,
    sleep: async (ms) => {
      slept.push(ms);
      now += ms;
    },
  };
  const th = new Throttle(3, 1000, clock);
  for (let i = 0; i < 3; i++) {
    await th.admit();
    now += 100;
  }
  assert.deepEqual(slept, []);
  await th.admit(); // at 300: window holds 0,100,200 → wait until 1000
  assert.deepEqual(slept, [700]);
  assert.equal(now, 1000);
  await th.admit(); // window 100,200,1000 → until 1100
  assert.deepEqual(slept, [700, 100]);
  assert.throws(() => new Throttle(0), /at least 1/);
});
