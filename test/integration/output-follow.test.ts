// Output.follow (the `logs` follow path) on a real output worker and real
// socketpairs: the tail and the new lines without a gap or a repeat between
// them, stop() ends the lines, and a worker that dies tells its followers.
import assert from 'node:assert/strict';
import { closeSync, writeSync } from 'node:fs';
import { test } from 'node:test';

import { Output, type OutputLine } from '../../src/actors/output/output.js';
import { native } from '../../src/native.js';
import { until } from './runtime-checks.js';

test('a follower gets the tail, then every new line once; stop ends them; a dead worker is reported', async (t) => {
  const out = new Output({ ringBytes: 1 << 20 });
  t.after(() => out.close());
  const [ours, theirs] = native().socketpair('stream');
  t.after(() => closeSync(theirs));
  out.attach({ target: 'f:0.0.1', stream: 'stderr', fd: ours, sink: () => undefined });
  for (let i = 0; i < 100; i++) writeSync(theirs, `line ${i}\n`);
  await until(async () => (await out.tail('f:0.0.1')).length === 100, 'the 100 lines in the ring', 5_000);

  const got: OutputLine[] = [];
  let lost: Error | undefined;
  // Lines written while the follow is being set up land in the tail or in the lines, never both.
  const writer = (async () => {
    for (let i = 100; i < 300; i++) {
      writeSync(theirs, `line ${i}\n`);
      if (i % 20 === 0) await new Promise((r) => setImmediate(r));
    }
  })();
  const f = await out.follow('f:0.0.1', 10, { line: (l) => got.push(l), lost: (e) => (lost = e) });
  await writer;
  await until(() => Number(/\d+$/.exec((got.at(-1) ?? f.tail.at(-1)!).line)![0]) === 299, 'line 299 at the follower', 5_000);
  const numbers = [...f.tail, ...got].map((l) => Number(/\d+$/.exec(l.line)![0]));
  assert.equal(f.tail.length, 10);
  numbers.forEach((n, i) => i > 0 && assert.equal(n, numbers[i - 1]! + 1, `no gap, no repeat: ${numbers.join(',')}`));
  assert.ok(got.every((l) => l.stream === 'stderr'));
  assert.equal(out.following, 1);

  f.stop();
  assert.equal(out.following, 0);
  const before = got.length;
  writeSync(theirs, 'after stop\n');
  await until(async () => (await out.tail('f:0.0.1', 1))[0]?.line === 'after stop', 'the line after stop in the ring', 5_000);
  assert.equal(got.length, before, 'no lines after stop');

  const g = await out.follow('f:0.0.1', 0, { line: () => undefined, lost: (e) => (lost = e) });
  assert.deepEqual(g.tail, []);
  await out.thread!.terminate();
  await until(() => lost !== undefined, 'the dead worker reported', 5_000);
  assert.match(lost!.message, /output worker exited/);
  assert.equal(out.following, 0);
});
