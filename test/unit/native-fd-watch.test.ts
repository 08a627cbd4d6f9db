// The addon's fd watches (native/fd-watch.h): the pidfd exit watch of spawn,
// watchMessages and eventfdWatch share one scheme. Their callbacks run in the
// async context of the code that started them, a callback may close its own
// watch, and a worker's teardown closes the watches it left open. No root.
import assert from 'node:assert/strict';
import { AsyncLocalStorage } from 'node:async_hooks';
import { closeSync, readdirSync, writeSync } from 'node:fs';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';

import { native } from '../../src/native.js';
import { workerEntry } from '../../src/threads.js';

function signal(fd: number, n: number): void {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  writeSync(fd, b);
}

const openFds = () => new Set(readdirSync('/proc/self/fd').map(Number));

test('an exit callback sees the AsyncLocalStorage store of the code that spawned the child', async () => {
  const als = new AsyncLocalStorage<string>();
  const seen = await als.run('spawner', () =>
    new Promise((resolve) => native().spawn({ path: '/bin/true', argv: ['true'], envp: [], fds: [0, 1, 2] }, () => resolve(als.getStore()))),
  );
  assert.equal(seen, 'spawner');
});

test('message and end-of-stream callbacks see the store of the code that started the watch', async () => {
  const als = new AsyncLocalStorage<string>();
  const [a, b] = native().socketpair('seq_packet');
  const seen: unknown[] = [];
  const ended = als.run('watcher', () => new Promise<void>((resolve) => native().watchMessages(b, (m) => {
    seen.push(als.getStore());
    if (!m) resolve();
  })));
  await als.run('writer', async () => {
    native().sendMessage(a, Buffer.from('one'));
    closeSync(a);
    await ended;
  });
  assert.deepEqual(seen, ['watcher', 'watcher']);
});

test('eventfd callbacks see the store of the code that started the watch', async () => {
  const als = new AsyncLocalStorage<string>();
  const fd = native().eventfd();
  const seen = als.run('monitor', () => new Promise((resolve) => {
    const w = native().eventfdWatch(fd, () => {
      resolve(als.getStore());
      w.close();
    });
  }));
  signal(fd, 1);
  assert.equal(await seen, 'monitor');
});

test('a callback that closes its own watch gets no further calls and its fd is closed', async () => {
  const [a, b] = native().socketpair('seq_packet');
  const got: (string | null)[] = [];
  const w = native().watchMessages(b, (m) => {
    got.push(m ? m.toString() : null);
    w.close();
    w.close();
  });
  for (const m of ['one', 'two', 'three']) native().sendMessage(a, Buffer.from(m));
  closeSync(a);
  await new Promise((r) => setTimeout(r, 20));
  assert.deepEqual(got, ['one']);
  assert.ok(!openFds().has(b), 'the watched fd is closed');
});

test('a worker ending with watches open closes their fds in its teardown', async () => {
  const { filename, workerData } = workerEntry(new URL('../fixtures/open-watches.worker.ts', import.meta.url));
  const w = new Worker(new URL(filename), { workerData });
  const got = await new Promise<{ fds: number[]; peer: number }>((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  for (const fd of got.fds) assert.ok(openFds().has(fd), `fd ${fd} is open while the worker runs`);
  await w.terminate();
  closeSync(got.peer);
  const open = openFds();
  for (const fd of got.fds) assert.ok(!open.has(fd), `fd ${fd} is closed once the worker is gone`);
});
