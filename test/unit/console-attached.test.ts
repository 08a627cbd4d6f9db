// Attached requests on the wire (spec/streams.md "Frames"): the `ok` line,
// then binary frames both ways, channel 3 last, then close. A raw socket on
// the test's side checks the bytes; the client's AttachedStream is checked
// against the same server.
import assert from 'node:assert/strict';
import net from 'node:net';
import { test } from 'node:test';

import type { AttachResult, FrameIO } from '../../src/console/attached.js';
import type { Request, Response } from '../../src/console/protocol.js';
import { Client } from '../../src/client/index.js';
import { startServer } from './console-fake-backend.js';

/** A raw peer that reads lines until told to switch, then bytes. */
class BytePeer {
  buf = Buffer.alloc(0);
  ended = false;
  private waiter: (() => void) | undefined;
  constructor(readonly socket: net.Socket) {
    socket.on('data', (d: Buffer) => {
      this.buf = Buffer.concat([this.buf, d]);
      this.wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }
  static async connect(url: string): Promise<BytePeer> {
    const s = net.connect({ path: url.slice('unix://'.length) });
    await new Promise<void>((resolve, reject) => (s.once('connect', resolve), s.once('error', reject)));
    const p = new BytePeer(s);
    p.send('{"connect":{"version":"0.9.3","subscribe_notifications":false}}\n');
    assert.equal(await p.line(), '{"connect_ack":null}');
    return p;
  }
  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }
  private async wait(): Promise<void> {
    await new Promise<void>((r) => (this.waiter = r));
  }
  send(d: string | Buffer): void {
    this.socket.write(d);
  }
  async line(): Promise<string | null> {
    for (;;) {
      const i = this.buf.indexOf(0x0a);
      if (i >= 0) {
        const l = this.buf.subarray(0, i).toString();
        this.buf = this.buf.subarray(i + 1);
        return l;
      }
      if (this.ended) return null;
      await this.wait();
    }
  }
  /** Everything until the server closes. */
  async rest(): Promise<Buffer> {
    while (!this.ended) await this.wait();
    return this.buf;
  }
}

const frame = (ch: number, p: string | Buffer) => {
  const b = Buffer.from(p);
  const h = Buffer.alloc(5);
  h[0] = ch;
  h.writeUInt32BE(b.length, 1);
  return Buffer.concat([h, b]);
};

/** An echo session behind `copy_out` of `echo:0.0.1`: stdin frames come back on channel 1 until stdin is closed. */
function echoBackend(backend: object, sessions: { written: number }[] = []): void {
  (backend as { attach: (r: Request) => Promise<AttachResult> }).attach = async (req: Request): Promise<AttachResult> => {
    const r = req as { copy_out: { container: string; path: string } };
    if (r.copy_out.container !== 'echo:0.0.1') {
      return { response: { copy_out: { error: { container: r.copy_out.container, error: { invalid_container: { container: r.copy_out.container } } } } } };
    }
    const response: Response = { copy_out: { ok: { container: 'echo:0.0.1' } } };
    if (r.copy_out.path === '/flood') {
      const s = { written: 0 };
      sessions.push(s);
      return {
        response,
        session: async (io: FrameIO) => {
          const chunk = Buffer.alloc(64 * 1024, 0x61);
          while (!io.gone.aborted) {
            await io.write(1, chunk);
            s.written++;
          }
          return {};
        },
      };
    }
    return {
      response,
      session: async (io: FrameIO) => {
        for await (const f of io.frames()) {
          if (f.channel === 0) await io.write(1, f.payload);
          if (f.channel === 255 && f.payload[0] === 0) break;
        }
        return { exit: { code: 0 } };
      },
    };
  };
}

test('an attached request switches to frames after its ok line: echo, stdin close, channel 3, close', async (t) => {
  const { url, backend } = await startServer(t);
  echoBackend(backend);
  const p = await BytePeer.connect(url);
  p.send('{"request":{"copy_out":{"container":"echo:0.0.1","path":"/x"}}}\n');
  assert.equal(await p.line(), '{"response":{"copy_out":{"ok":{"container":"echo:0.0.1"}}}}');
  p.send(Buffer.concat([frame(0, 'hello'), frame(0, ''), frame(255, Buffer.from([0]))]));
  const rest = await p.rest();
  assert.deepEqual(rest, Buffer.concat([frame(1, 'hello'), frame(3, '{"exit":{"code":0}}')]), 'no empty frame on channel 1; 3 last; then close');
});

test('a refused attached request keeps the connection in JSON mode', async (t) => {
  const { url, backend } = await startServer(t);
  echoBackend(backend);
  const p = await BytePeer.connect(url);
  p.send('{"request":{"copy_out":{"container":"nope:0.0.1","path":"/x"}}}\n');
  assert.equal(
    await p.line(),
    '{"response":{"copy_out":{"error":{"container":"nope:0.0.1","error":{"invalid_container":{"container":"nope:0.0.1"}}}}}}',
  );
  p.send('{"request":"ident"}\n');
  assert.equal(await p.line(), '{"response":{"ident":"extern:0.0.0"}}');
  p.socket.destroy();
});

test('copy_out and copy_in need the copy permission; the copy_in bytes are drained, not parsed', async (t) => {
  const { url, backend } = await startServer(t, { permissions: ['ident'] });
  echoBackend(backend);
  const p = await BytePeer.connect(url);
  p.send('{"request":{"copy_out":{"container":"echo:0.0.1","path":"/x"}}}\n');
  assert.equal(await p.line(), '{"response":{"permission_denied":{"copy_out":{"container":"echo:0.0.1","path":"/x"}}}}');
  p.send('{"request":{"copy_in":{"container":"echo:0.0.1","path":"/x","size":20}}}\n{"request":"list"}\n\n');
  assert.equal(await p.line(), '{"response":{"permission_denied":{"copy_in":{"container":"echo:0.0.1","path":"/x","size":20}}}}');
  p.send('{"request":"ident"}\n');
  assert.equal(await p.line(), '{"response":{"ident":"extern:0.0.0"}}');
  p.socket.destroy();
});

test('an unknown channel or an oversized frame ends the session with an error on channel 3', async (t) => {
  const { url, backend } = await startServer(t);
  echoBackend(backend);
  for (const [bad, what] of [
    [frame(7, 'x'), 'unknown channel 7'],
    [Buffer.from([0, 0, 0x20, 0, 0]), 'exceeds 1048576 bytes'],
  ] as const) {
    const p = await BytePeer.connect(url);
    p.send('{"request":{"copy_out":{"container":"echo:0.0.1","path":"/x"}}}\n');
    await p.line();
    p.send(bad);
    const rest = await p.rest();
    assert.equal(rest[0], 3, 'channel 3');
    const end = JSON.parse(rest.subarray(5).toString()) as { error: { unexpected: { error: string } } };
    assert.match(end.error.unexpected.error, new RegExp(what));
  }
});

test('a client that does not read stops the session at the socket: output is not buffered without bound', async (t) => {
  const { url, backend } = await startServer(t);
  const sessions: { written: number }[] = [];
  echoBackend(backend, sessions);
  const p = await BytePeer.connect(url);
  p.send('{"request":{"copy_out":{"container":"echo:0.0.1","path":"/flood"}}}\n');
  assert.equal(await p.line(), '{"response":{"copy_out":{"ok":{"container":"echo:0.0.1"}}}}');
  p.socket.pause();
  // Wait until the writer is stuck (its count stops moving) while nothing is read.
  let last = -1;
  while (sessions[0]?.written !== last) {
    last = sessions[0]?.written ?? -1;
    await new Promise((r) => setTimeout(r, 300));
  }
  assert.ok(last * 64 * 1024 < 16 * 1024 * 1024, `the session wrote ${last} chunks of 64 KiB without the client reading`);
  p.socket.resume();
  while (sessions[0]!.written <= last + 10) await new Promise((r) => setTimeout(r, 20));
  p.socket.destroy();
});

test('Client.attach: stdin, close of stdin and the end through the AttachedStream', async (t) => {
  const { url, backend } = await startServer(t);
  echoBackend(backend);
  const c = await Client.connect(url);
  const { stream } = await c.attach({ copy_out: { container: 'echo:0.0.1', path: '/x' } });
  await stream.stdin(Buffer.alloc(200 * 1024, 0x62));
  await stream.closeStdin();
  const r = await stream.collect();
  assert.equal(r.stdout.length, 200 * 1024);
  assert.deepEqual(r.end, { exit: { code: 0 } });
  await assert.rejects(c.ident(), /handed to an attached request/);
});
