// The output ring: byte-bounded, oldest lines out first, both streams in the order written.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { OutputRing } from '../../src/actors/output/output-lines.js';

test('the ring keeps the last lines of both streams within its capacity', () => {
  const ring = new OutputRing(1024);
  for (let i = 0; i < 10_000; i++) ring.push(i % 2 ? 'stderr' : 'stdout', `line ${i}`);
  assert.ok(ring.size <= 1024, `holds ${ring.size} bytes`);
  const all = ring.tail();
  assert.equal(all.at(-1)!.line, 'line 9999');
  assert.equal(all.at(-1)!.stream, 'stderr');
  assert.equal(all.at(-2)!.stream, 'stdout');
  const first = Number(all[0].line.slice(5));
  assert.deepEqual(all.map((l) => l.line), Array.from({ length: 10_000 - first }, (_, i) => `line ${first + i}`), 'consecutive, oldest first');
  assert.deepEqual(ring.tail(2).map((l) => l.line), ['line 9998', 'line 9999']);
  assert.deepEqual(ring.tail(0), []);
});

test('a line longer than the ring keeps its end; empty lines are bounded too', () => {
  const ring = new OutputRing(1024);
  ring.push('stdout', 'a'.repeat(5000) + 'END');
  const [only] = ring.tail();
  assert.ok(only.line.endsWith('END') && only.line.length < 1024);
  for (let i = 0; i < 100_000; i++) ring.push('stdout', '');
  assert.ok(ring.tail().length <= 1024 / 32, 'a fixed cost per line');
});
