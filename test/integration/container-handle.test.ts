// The Container handle against a real runtime and real containers: attached
// exec as Node streams (stdin through the process to stdout, stderr apart,
// the exit code, a terminal), execWithOutput with its bound, copyIn/copyOut,
// over the console socket and in process (`embedded(runtime)`, no socket).
import assert from 'node:assert/strict';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';

import { connect, embedded, OutputTooLargeError, type Client } from '../../src/index.js';
import { buildProbe } from '../fixtures/build.js';
import { privileged } from './privileged.js';
import { packProbe } from './runtime-checks.js';
import { startRuntime, type InProcessHarness } from './runtime-harness.js';
import { runDocExample } from '../fixtures/doc-example.js';

const opts = privileged();
const C = 'handle:0.0.1';

function npk(t: TestContext): Promise<string> {
  const manifest = {
    name: 'handle',
    version: '0.0.1',
    mounts: { '/dev': { type: 'dev' }, '/data': { type: 'persist' } },
    io: { stdout: 'pipe', stderr: 'pipe' },
  };
  return packProbe(t, manifest, (root) => {
    // The docs' example names the program /bin/probe.
    mkdirSync(join(root, 'bin'));
    copyFileSync(buildProbe(), join(root, 'bin', 'probe'));
    chmodSync(join(root, 'bin', 'probe'), 0o755);
  });
}

async function runtime(t: TestContext): Promise<InProcessHarness> {
  const h = await startRuntime(t, { repositories: { default: { npks: [await npk(t)] } } });
  // The init waits (probe without a command sleeps) so that exec has a container to enter.
  await h.client.start(C, { args: ['sleep'] });
  return h;
}

const banner = (cmd: string) => `Executing "${cmd}"\n`;

/** The calls of the handle, run once over a socket and once in process. */
async function exercise(t: TestContext, client: Client): Promise<void> {
  const c = client.container(C);

  // stdin through the process to stdout; stderr apart; the exit code.
  const p = await c.exec(['/probe', 'relay', '3']);
  assert.ok(p.pid > 0);
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  p.stdout.on('data', (d: Buffer) => out.push(d));
  p.stderr.on('data', (d: Buffer) => err.push(d));
  const input = Buffer.alloc(300 * 1024 + 5, 0x61);
  p.stdin.write('echo ');
  p.stdin.end(input);
  assert.deepEqual(await p.wait(), { exit: { code: 3 } });
  const stdout = Buffer.concat(out);
  assert.equal(stdout.subarray(0, banner('relay').length).toString(), banner('relay'));
  assert.ok(stdout.subarray(banner('relay').length).equals(Buffer.concat([Buffer.from('echo '), input])), 'every byte, in order');
  assert.equal(Buffer.concat(err).toString(), `relayed ${input.length + 5}\n`);

  // Backpressure: a stdout nobody reads holds at most its high-water mark and
  // one frame (64 KiB); the rest waits in the process, not in memory here.
  const held = await c.exec(['/probe', 'relay', '0']);
  held.stderr.resume();
  const big = Buffer.alloc(8 * 1024 * 1024, 0x62);
  const finished = new Promise<void>((r) => held.stdin.end(big, () => r()));
  while (held.stdout.readableLength < held.stdout.readableHighWaterMark) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 300));
  assert.ok(held.stdout.readableLength <= held.stdout.readableHighWaterMark + 64 * 1024, `${held.stdout.readableLength} bytes held unread`);
  let got = 0;
  for await (const chunk of held.stdout as AsyncIterable<Buffer>) got += chunk.length;
  await finished;
  assert.equal(got, banner('relay').length + big.length);
  assert.deepEqual(await held.wait(), { exit: { code: 0 } });

  // A terminal: isatty, its size, a resize (the probe prints the size after SIGWINCH).
  const tty = await c.exec(['/probe', 'tty'], { tty: true, cols: 100, rows: 30 });
  let text = '';
  let seen: () => void;
  const first = new Promise<void>((r) => (seen = r));
  tty.stdout.on('data', (d: Buffer) => {
    text += d.toString();
    if (text.includes('isatty=')) seen();
  });
  tty.stderr.resume();
  await first;
  assert.match(text, /isatty=1 tty=\/dev\/pts\/\d+ size=100x30/);
  await tty.resize(120, 40);
  assert.deepEqual(await tty.wait(), { exit: { code: 0 } });
  assert.match(text, /resized=120x40/);

  // A kill by name reaches the exec'd process.
  const sleeper = await c.exec(['/probe', 'sleep'], { tty: true });
  sleeper.stdout.resume();
  await sleeper.kill('SIGKILL');
  assert.deepEqual(await sleeper.wait(), { signalled: { signal: 9 } });

  // execWithOutput, and its bound.
  const r = await c.execWithOutput(['/probe', 'relay', '0'], { stdin: 'hello' });
  assert.deepEqual(r.status, { exit: { code: 0 } });
  assert.equal(r.stdout.toString(), `${banner('relay')}hello`);
  assert.equal(r.stderr.toString(), 'relayed 5\n');
  await assert.rejects(c.execWithOutput(['/probe', 'relay', '0'], { stdin: Buffer.alloc(4096), maxBytes: 1024 }), OutputTooLargeError);

  // copyIn / copyOut round trip.
  const host = mkdtempSync(join(tmpdir(), 'nstar-handle-cp-'));
  t.after(() => rmSync(host, { recursive: true, force: true }));
  mkdirSync(join(host, 'conf', 'sub'), { recursive: true });
  writeFileSync(join(host, 'conf', 'a.txt'), 'alpha');
  writeFileSync(join(host, 'conf', 'sub', 'b.txt'), 'beta');
  await c.copyIn(join(host, 'conf'), '/data/conf');
  assert.deepEqual((await c.execWithOutput(['/probe', 'exists', '/data/conf/sub/b.txt'])).status, { exit: { code: 0 } });
  await c.copyOut('/data/conf', join(host, 'back'));
  assert.equal(readFileSync(join(host, 'back', 'a.txt'), 'utf8'), 'alpha');
  assert.equal(readFileSync(join(host, 'back', 'sub', 'b.txt'), 'utf8'), 'beta');

  // logs: the init's output from the ring; a follow ends when its signal aborts.
  let logged = '';
  for await (const chunk of c.logs({ tail: 10 })) logged += chunk.data.toString();
  assert.match(logged, /Sleeping\.\.\.\n$/, logged);
  const ac = new AbortController();
  let followed = 0;
  for await (const chunk of c.logs({ follow: true, signal: ac.signal })) {
    followed += chunk.data.length;
    ac.abort();
  }
  assert.ok(followed > 0, 'the follow gave the ring first');

  // The handle's own connection is still usable after the attached calls.
  assert.equal(((await c.inspect()).manifest as { name: string }).name, 'handle');
}

describe('the Container handle', opts, () => {
  test('over the console socket: exec streams, a terminal, execWithOutput, copy', async (t) => {
    const h = await runtime(t);
    const client = await connect(h.url);
    t.after(() => client.close());
    await exercise(t, client);
  });

  test('in process: the same calls without a socket', async (t) => {
    const h = await runtime(t);
    const client = await embedded(h.runtime, { subscribe: true });
    t.after(() => client.close());
    await exercise(t, client);
    // Permissions of the in-process console apply as on a socket.
    const limited = await embedded(h.runtime, { permissions: ['inspect'] });
    t.after(() => limited.close());
    await assert.rejects(limited.container(C).execWithOutput(['/probe', 'true']), /permission denied/);
  });

  test('the exec and copy example of docs/library.md runs', async (t) => {
    const h = await runtime(t);
    const lines = await runDocExample(t, { NORTHSTAR_URL: h.url, NORTHSTAR_CONTAINER: C }, '## Exec streams and copy');
    assert.deepEqual(lines, ['relay: {"exit":{"code":0}} ping', 'echo: {"exit":{"code":0}} hi', 'copied back: x=1']);
  });
});
