// The fs and mem repositories' install path without a runtime: streams that
// overlap count against capacity_size together, and file system failures
// become named errors of the install, never an 'error' event.
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { FsRepository } from '../../src/actors/repository/repository.js';
import { RuntimeError } from '../../src/model/errors.js';

/** An iterable fed by hand: `push` a chunk, `end` it. */
function feed() {
  const chunks: Buffer[] = [];
  let wake: (() => void) | undefined;
  let ended = false;
  return {
    push(b: Buffer) {
      chunks.push(b);
      wake?.();
    },
    end() {
      ended = true;
      wake?.();
    },
    async *[Symbol.asyncIterator]() {
      for (;;) {
        if (chunks.length > 0) yield chunks.shift()!;
        else if (ended) return;
        else await new Promise<void>((r) => (wake = r));
      }
    },
  };
}

const tick = () => new Promise((r) => setImmediate(r));

function tempRepo(t: { after(fn: () => void): void }, capacitySize?: number) {
  const dir = mkdtempSync(join(tmpdir(), 'nstar-repo-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return { dir, repo: new FsRepository(dir, { id: 'fs', capacitySize }) };
}

test('two installs streaming at once count together against capacity_size; the refused one leaves no file', async (t) => {
  const { dir, repo } = tempRepo(t, 1000);
  await repo.load();
  const a = feed();
  const b = feed();
  const pa = repo.insert(a).catch((e: unknown) => e);
  a.push(Buffer.alloc(600));
  // The first install's bytes are in its partial file (so counted) before the
  // second begins: otherwise whichever stream reads second is the refused one.
  const partialSize = () => readdirSync(dir).map((n) => statSync(join(dir, n)).size)[0] ?? 0;
  for (const end = Date.now() + 10_000; partialSize() < 600; ) {
    if (Date.now() > end) throw new Error('the first install never wrote its 600 bytes');
    await new Promise((r) => setTimeout(r, 5));
  }
  const pb = repo.insert(b).catch((e: unknown) => e);
  b.push(Buffer.alloc(600)); // 1,200 bytes streaming: over the limit
  // A guard against the old behaviour (the second stream waiting for the first), not a timing assertion.
  const eb = await Promise.race([pb, new Promise((r) => setTimeout(() => r('the second install waits for the first'), 5000).unref())]);
  assert.ok(eb instanceof RuntimeError && /size limit \(1000 bytes\) reached/.test(eb.message), String(eb));
  a.end(); // not an NPK: refused when opened, after the stream
  assert.ok((await pa) instanceof Error);
  assert.deepEqual(readdirSync(dir), []);
});

test('an install into a removed directory is a configuration error naming it, and nothing throws later', async (t) => {
  const { dir, repo } = tempRepo(t);
  await repo.load();
  rmSync(dir, { recursive: true });
  const data = feed();
  data.push(Buffer.alloc(100));
  data.end();
  const e = await repo.insert(data).catch((x: unknown) => x);
  assert.ok(e instanceof RuntimeError, String(e));
  assert.deepEqual(e.toWire(), { configuration: { context: `repository fs: directory ${dir} is missing` } });
  await tick();
});
