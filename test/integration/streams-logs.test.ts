// The `logs` request against real containers (spec/streams.md "Logs"): the
// ring's last lines of both streams, following new output until the
// container exits, a follower that does not read dropped while the daemon
// keeps answering, a container whose output is not captured refused; and
// `nstar logs` / plain `nstar exec` as a user runs them.
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';

import type { Client, LogChunk } from '../../src/client/index.js';
import { FOLLOW_LIMIT } from '../../src/runtime-logs.js';
import { eventually } from './launch-fixture.js';
import { privileged } from './privileged.js';
import { nstar, packProbe, until } from './runtime-checks.js';
import { startRuntime } from './runtime-harness.js';

const opts = privileged();

function npk(t: TestContext, name: string, args: string[], io: Record<string, string> | null = { stdout: 'pipe', stderr: 'pipe' }): Promise<string> {
  return packProbe(t, { name, version: '0.0.1', args, ...(io ? { io } : {}) });
}

/** Everything of a logs stream as `1:`/`2:`-prefixed lines (the channel each came on). */
async function collect(c: Client, container: string, o: { tail?: number; follow?: boolean } = {}): Promise<{ lines: string[]; end: unknown }> {
  const logs = await c.logs(container, o);
  const text: Record<string, string> = { stdout: '', stderr: '' };
  const lines: string[] = [];
  for await (const chunk of logs) {
    assert.ok(chunk.data.toString().endsWith('\n'), 'whole lines per frame');
    for (const l of chunk.data.toString().split('\n').slice(0, -1)) lines.push(`${chunk.stream === 'stdout' ? 1 : 2}:${l}`);
    text[chunk.stream] += chunk.data.toString();
  }
  return { lines, end: logs.end };
}

/** A raw console connection that sends one request, reads the response line and then reads nothing until rest(). */
async function rawLogs(url: string, request: string): Promise<{ line: string; rest(): Promise<{ bytes: number; last: { channel: number; payload: string } }> }> {
  const sock = net.connect({ path: url.slice('unix://'.length) });
  await once(sock, 'connect');
  sock.write(`{"connect":{"version":"0.9.3","subscribe_notifications":false}}\n{"request":${request}}\n`);
  let buf: Buffer = Buffer.alloc(0);
  const lines: string[] = [];
  while (lines.length < 2) {
    const [d] = (await once(sock, 'data')) as [Buffer];
    buf = Buffer.concat([buf, d]);
    for (let i = buf.indexOf(10); i >= 0 && lines.length < 2; i = buf.indexOf(10)) {
      lines.push(buf.subarray(0, i).toString());
      buf = buf.subarray(i + 1);
    }
  }
  sock.pause();
  return {
    line: lines[1]!,
    async rest() {
      const parts: Buffer[] = [buf];
      sock.on('data', (d: Buffer) => parts.push(d));
      sock.resume();
      await once(sock, 'close');
      const all = Buffer.concat(parts);
      // Walk the frames to the last one.
      let o = 0;
      let last = { channel: -1, payload: '' };
      while (o + 5 <= all.length) {
        const n = all.readUInt32BE(o + 1);
        last = { channel: all[o]!, payload: all.subarray(o + 5, o + 5 + n).toString() };
        o += 5 + n;
      }
      return { bytes: all.length, last };
    },
  };
}

describe('logs', opts, () => {
  test('tail: the last lines of both streams in the order written; the whole ring without tail; kept until uninstall', async (t) => {
    const h = await startRuntime(t, { repositories: { default: { npks: [await npk(t, 'lines', ['flood', String(50 * 100), '100'])] } } });
    await h.client.start('lines:0.0.1');
    const c = () => h.connect();
    await until(async () => (await collect(await c(), 'lines:0.0.1')).lines.at(-1) === '1:Sleeping...', 'the flood reached the ring', 5_000);
    const last = await collect(await c(), 'lines:0.0.1', { tail: 3 });
    assert.deepEqual(last.lines, [`1:flood 0000000049 ${'x'.repeat(100 - 17 - 1)}`, '1:flood done 50', '1:Sleeping...']);
    assert.deepEqual(last.end, {});
    // A detached exec's output goes to the container's ring too: its stderr comes on channel 2.
    const x = await h.client.exec('lines:0.0.1', '/probe', { args: ['crash'], wait: true });
    assert.deepEqual(x.status, { exit: { code: 101 } });
    const all = await collect(await c(), 'lines:0.0.1');
    assert.equal(all.lines[0], '1:Executing "flood"');
    assert.equal(all.lines.length, 1 + 50 + 2 + 2, all.lines.slice(-4).join(' | '));
    assert.deepEqual(all.lines.slice(-2), ['1:Executing "crash"', "2:thread 'main' panicked at 'witness me!'"]);
    assert.deepEqual((await collect(await c(), 'lines:0.0.1', { tail: 0 })).lines, []);
    // The ring outlives the exit, not the container.
    await h.client.stop('lines:0.0.1', 5000);
    assert.equal((await collect(await c(), 'lines:0.0.1', { tail: 1 })).lines[0], "2:thread 'main' panicked at 'witness me!'");
    assert.equal((await h.runtime.output.stats())?.rings, 1);
    await h.client.uninstall('lines:0.0.1');
    await until(async () => (await h.runtime.output.stats())?.rings === 0, 'uninstall forgot the ring', 5_000);
  });

  test('follow: lines printed after the request, then the exit status at the exit', async (t) => {
    const h = await startRuntime(t, { repositories: { default: { npks: [await npk(t, 'counter', ['count', '20'])] } } });
    await h.client.start('counter:0.0.1');
    const logs = await (await h.connect()).logs('counter:0.0.1', { tail: 1, follow: true });
    const seen: number[] = [];
    let stopping: Promise<unknown> | undefined;
    for await (const chunk of logs as AsyncIterable<LogChunk>) {
      assert.equal(chunk.stream, 'stdout');
      for (const l of chunk.data.toString().split('\n').slice(0, -1)) {
        const m = /^count: (\d+)$/.exec(l);
        if (m) seen.push(Number(m[1]));
      }
      // Lines keep coming after the request: stop the container once ten arrived.
      if (seen.length >= 10 && !stopping) stopping = h.client.stop('counter:0.0.1', 5000);
    }
    await stopping;
    assert.ok(seen.length >= 10, `${seen.length} lines`);
    seen.forEach((n, i) => i > 0 && assert.equal(n, seen[i - 1]! + 1, `consecutive: ${seen.join(',')}`));
    assert.deepEqual(logs.end, { signalled: { signal: 15 } });
  });

  test('a follower that does not read is dropped; the daemon keeps answering and sent a bounded amount', async (t) => {
    const h = await startRuntime(t, { repositories: { default: { npks: [await npk(t, 'flooder', ['flood', String(64 << 20), '4096'])] } } });
    const c = await h.connect();
    const logs = await c.logs('flooder:0.0.1', { follow: true }).catch((e: Error) => e);
    // Not started: no follow, the ring (empty) and the end.
    assert.ok(!(logs instanceof Error), String(logs));
    for await (const _ of logs) assert.fail('an empty ring');
    await h.client.start('flooder:0.0.1');
    // A raw peer (our Client would buffer up to 64 MiB itself): the ok line, then it stops reading.
    const stalled = await rawLogs(h.url, '{"logs":{"container":"flooder:0.0.1","follow":true}}');
    assert.equal(stalled.line, '{"response":{"logs":{"ok":{"container":"flooder:0.0.1"}}}}');
    assert.ok(await eventually(() => h.runtime.output.following === 0, 3000), 'the follower was dropped');
    assert.equal((await h.client.inspect('flooder:0.0.1')).process !== null, true, 'the daemon answers');
    const { bytes, last } = await stalled.rest();
    assert.equal(last.channel, 3);
    assert.match(last.payload, /dropped, the client did not read/);
    // What it sent: the queue it was allowed, what was being written and the sockets' buffers.
    assert.ok(bytes < 3 * FOLLOW_LIMIT + (4 << 20), `${bytes} bytes`);
    await h.client.stop('flooder:0.0.1', 5000);
  });

  test('a container whose output is not captured gets an error; an unknown one too', async (t) => {
    const h = await startRuntime(t, { repositories: { default: { npks: [await npk(t, 'quiet', ['sleep'], null)] } } });
    await assert.rejects((await h.connect()).logs('quiet:0.0.1'), /not captured/);
    await assert.rejects((await h.connect()).logs('nope:0.0.1'), /nope/);
    // The refusal left the connection usable.
    const c = await h.connect();
    await assert.rejects(c.logs('quiet:0.0.1'), /not captured/);
    assert.ok((await c.list()).length > 0, 'the connection answers');
  });

  test('nstar logs --tail and -f; plain nstar exec prints the output and exits with the code', async (t) => {
    const h = await startRuntime(t, { repositories: { default: { npks: [await npk(t, 'cli', ['sleep'])] } } });
    await h.client.start('cli:0.0.1');
    const x = await nstar(['-u', h.url, 'exec', 'cli', '/probe', 'crash']);
    assert.equal(x.code, 101, x.err);
    assert.equal(x.out, 'Executing "crash"\n');
    assert.equal(x.err, "thread 'main' panicked at 'witness me!'\n");
    const d = await nstar(['-u', h.url, 'exec', '-d', 'cli', '/probe', 'exit', '3']);
    assert.equal(d.code, 0, d.err);
    assert.match(d.out, /^pid \d+\n$/);
    // The attached exec's output is the caller's; the detached one's goes to the ring.
    const tail2 = async () => (await nstar(['-u', h.url, 'logs', '--tail', '2', 'cli'])).out;
    let last = '';
    await until(async () => (last = await tail2()) === 'Sleeping...\nExecuting "exit"\n', () => `the tail after the exit (last ${JSON.stringify(last)})`, 5_000);
    const f = nstar(['-u', h.url, 'logs', '-f', 'cli']);
    // Before or after the follower is in place: either way the line reaches it (ring or follow).
    await h.client.exec('cli:0.0.1', '/probe', { args: ['echo', 'late'], wait: true });
    await h.client.stop('cli:0.0.1', 5000);
    const fr = await f;
    assert.equal(fr.code, 0, fr.err);
    assert.match(fr.out, /Executing "echo"\nlate\n$/);
  });
});
