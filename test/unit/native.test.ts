import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { test } from 'node:test';
import { Worker } from 'node:worker_threads';

import { ADDON_ABI, initBinaryPath, native } from '../../src/native.js';
import { workerEntry } from '../../src/threads.js';

test('the addon loads on the main thread', () => {
  assert.equal(native().abiVersion(), ADDON_ABI);
});

test('the addon loads inside a worker thread too', async () => {
  const { filename, workerData } = workerEntry(new URL('../fixtures/load-native.worker.ts', import.meta.url));
  const w = new Worker(new URL(filename), { workerData });
  const got = await new Promise((resolve, reject) => {
    w.once('message', resolve);
    w.once('error', reject);
  });
  await w.terminate();
  assert.equal(got, 1);
});

test('the nstar-init helper is built as a static executable', () => {
  assert.ok(existsSync(initBinaryPath()));
});
