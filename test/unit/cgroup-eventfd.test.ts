// The addon's eventfd and its uv_poll watch (native/cgroup.cc), which the
// cgroup v1 OOM monitor uses. No root needed: an eventfd is written by hand.
import assert from 'node:assert/strict';
import { readdirSync, readlinkSync, writeSync } from 'node:fs';
import { test } from 'node:test';

import { native } from '../../src/native.js';

function signal(fd: number, n: number): void {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  writeSync(fd, b);
}

function eventfds(): number {
  return readdirSync('/proc/self/fd').filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`).includes('eventfd');
    } catch {
      return false;
    }
  }).length;
}

test('the watch reports what the eventfd counted, on the main loop', async () => {
  const n = native();
  const fd = n.eventfd();
  const counts: number[] = [];
  let wake: () => void = () => undefined;
  const w = n.eventfdWatch(fd, (err, count) => {
    assert.equal(err, null);
    counts.push(count);
    wake();
  });
  const first = new Promise<void>((r) => (wake = r));
  // Two signals before the loop runs arrive as one count of their sum.
  signal(fd, 2);
  signal(fd, 3);
  await first;
  assert.deepEqual(counts, [5]);
  const second = new Promise<void>((r) => (wake = r));
  signal(fd, 1);
  await second;
  assert.deepEqual(counts, [5, 1]);
  w.close();
});

test('close stops the callbacks, closes the fd, and may be called twice', async () => {
  const n = native();
  const before = eventfds();
  const fd = n.eventfd();
  assert.equal(eventfds(), before + 1);
  let calls = 0;
  const w = n.eventfdWatch(fd, () => calls++);
  w.close();
  w.close();
  assert.equal(eventfds(), before, 'the fd is closed by close()');
  await new Promise((r) => setImmediate(r));
  assert.equal(calls, 0);
});

test('a bad argument is a TypeError, not a crash', () => {
  const n = native();
  assert.throws(() => (n.eventfdWatch as unknown as (a: unknown) => void)('x'), TypeError);
});
