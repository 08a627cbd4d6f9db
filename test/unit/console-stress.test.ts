// The stress tool against the fake backend: it cycles every startable
// container and reports its iterations.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { main } from '../../src/cli/stress.js';
import { startServer } from './console-fake-backend.js';

async function stress(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { out: (s) => void (out += s), err: (s) => void (err += s), isTTY: false });
  return { code, out, err };
}

test('start-stop-umount cycles only startable containers and prints the iterations', async (t) => {
  const { url, backend } = await startServer(t);
  backend.containers.get('crashing:0.0.1')!.pid = null;
  const r = await stress(['-u', url, '-m', 'start-stop-umount', '-d', '300ms', '-i', '0s']);
  assert.equal(r.code, 0, r.err);
  const m = /^iterations: (\d+)\n$/.exec(r.out);
  assert.ok(m && Number(m[1]) > 0, r.out);
  const started = new Set(backend.requests.flatMap(({ req }) => (typeof req === 'object' && 'start' in req ? [req.start.container] : [])));
  assert.deepEqual([...started].sort(), ['crashing:0.0.1', 'hello-world:0.0.1'], 'the resource is never started');
});

test('install-uninstall reinstalls on every uninstall notification', async (t) => {
  const { url, backend } = await startServer(t);
  const dir = mkdtempSync(join(tmpdir(), 'nstar-stress-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  writeFileSync(join(dir, 'x.npk'), 'npk');
  const r = await stress(['-u', url, '-m', 'install-uninstall', '-d', '200ms', '--npk', join(dir, 'x.npk'), '--repository', 'mem']);
  assert.equal(r.code, 0, r.err);
  assert.ok(backend.installs.length >= 2, `installs: ${backend.installs.length}`);
});

test('monkey ignores errors, and bad modes or missing npk are usage errors', async (t) => {
  const { url } = await startServer(t);
  const r = await stress(['-u', url, '-m', 'monkey', '-d', '100ms']);
  assert.equal(r.code, 0, r.err);
  assert.match(r.out, /^iterations: \d+\n$/);
  assert.notEqual((await stress(['-m', 'dance'])).code, 0);
  const n = await stress(['-u', url, '-m', 'install-uninstall', '-d', '10ms']);
  assert.equal(n.code, 1);
  assert.match(n.err, /needs --npk and --repository/);
});
