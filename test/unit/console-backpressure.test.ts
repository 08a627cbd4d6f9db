// The console's rule for a peer that does not read its replies (one policy
// with a lagging notification subscriber): above UNSENT_HIGH_WATER unsent
// bytes no further request is read, and a peer that stays there for
// npk_stream_timeout is disconnected. A console with no useful permission
// suffices for the flood, since permission_denied echoes the request.
import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { test } from 'node:test';

import { Client } from '../../src/client/index.js';
import { UNSENT_HIGH_WATER } from '../../src/console/connection.js';
import { RawPeer, startServer } from './console-fake-backend.js';

/** Resolves once the socket drains or closes, whichever comes first, leaving no listener behind. */
function drainOrClose(s: Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      s.off('drain', done);
      s.off('close', done);
      resolve();
    };
    s.on('drain', done);
    s.on('close', done);
  });
}

test('a peer flooding requests without reading stops being read, then is disconnected; others are served', async (t) => {
  const { url, server, backend } = await startServer(t, { permissions: ['ident'], options: { npkStreamTimeoutMs: 300 } });
  const p = await RawPeer.connect(url);
  await p.handshake();
  p.socket.pause();
  const reasons: string[] = [];
  server.on('disconnected', (_peer, reason: string) => reasons.push(reason));
  // permission_denied echoes each 100 KB request: 2,000 of them would be 200 MB of replies.
  const shared = Buffer.alloc(75_000, 1).toString('base64');
  const line = JSON.stringify({ request: { token_create: { target: 'x', shared } } }) + '\n';
  let offered = 0;
  while (!p.socket.destroyed && offered < 2000) {
    if (!p.socket.write(line)) await drainOrClose(p.socket);
    offered++;
  }
  assert.ok(offered < 2000, `all ${offered} requests were taken in: nothing pushed back`);
  await p.closed();
  assert.ok(offered * line.length > UNSENT_HIGH_WATER);
  assert.deepEqual(reasons, ['reply lag']);
  assert.equal(backend.requests.length, 0);
  const c = await Client.connect(url);
  assert.equal(await c.ident(), 'extern:0.0.0');
  c.close();
});
