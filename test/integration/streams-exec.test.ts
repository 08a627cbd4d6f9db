// Attached exec through the console against a real container (spec/streams.md
// "Attached exec"): stdin to stdout through the process, stderr apart, the
// exit status on channel 3, the container's environment with the request's
// on top, signals to the exec'd process only, and an early close that leaves
// no process behind.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';

import { packageRoot } from '../../src/native.js';
import { eventually } from './launch-fixture.js';
import { privileged } from './privileged.js';
import { nstar, packProbe } from './runtime-checks.js';
import { startRuntime } from './runtime-harness.js';

const opts = privileged();
const C = 'att:0.0.1';

function npk(t: TestContext, mounts: Record<string, unknown> = {}): Promise<string> {
  return packProbe(t, { name: 'att', version: '0.0.1', env: { FROM_MANIFEST: 'm', OVERRIDE: 'manifest' }, mounts });
}

const exec = (path: string, args: string[], env: Record<string, string> = {}) => ({
  exec: { container: C, path, arguments: args, environment: env, wait: false, attach: true },
});

describe('attached exec', opts, () => {
  test('stdin through the process to stdout, stderr apart, the exit code last', async (t) => {
    const h = await startRuntime(t, { repositories: { default: { npks: [await npk(t)] } } });
    await h.client.start(C);
    const c = await h.connect();
    const { response, stream } = await c.attach(exec('/probe', ['relay', '7']));
    assert.ok('exec' in (response as object));
    const input = Buffer.alloc(3 * 1024 * 1024 + 17, 0x41);
    const sent = (async () => {
      await stream.stdin(input);
      await stream.closeStdin();
    })();
    const r = await stream.collect();
    await sent;
    const banner = 'Executing "relay"\n';
    assert.equal(r.stdout.subarray(0, banner.length).toString(), banner);
    assert.ok(r.stdout.subarray(banner.length).equals(input), 'every byte, in order');
    assert.equal(r.stderr.toString(), `relayed ${input.length}\n`);
    assert.deepEqual(r.end, { exit: { code: 7 } });
  });

  test('the container environment, then the request environment on top', async (t) => {
    const h = await startRuntime(t, { repositories: { default: { npks: [await npk(t)] } } });
    await h.client.start(C);
    const c = await h.connect();
    const { stream } = await c.attach(exec('/probe', ['env'], { OVERRIDE: 'request', EXTRA: 'x' }));
    const r = await stream.collect();
    const out = r.stdout.toString();
    for (const l of ['FROM_MANIFEST=m', 'OVERRIDE=request', 'EXTRA=x', 'NORTHSTAR_NAME=att', 'NORTHSTAR_VERSION=0.0.1', 'NORTHSTAR_CONTAINER=att:0.0.1']) {
      assert.ok(out.includes(l), `${l} in ${out}`);
    }
    assert.ok(!out.includes('OVERRIDE=manifest'));
  });

  test("a signal frame reaches the exec'd process; closing early leaves no process behind", async (t) => {
    const h = await startRuntime(t, { repositories: { default: { npks: [await npk(t)] } } });
    await h.client.start(C);
    const init = (await h.client.inspect(C)).process!.pid;
    let c = await h.connect();
    let a = await c.attach(exec('/probe', ['sleep']));
    await a.stream.signal(15);
    assert.deepEqual((await a.stream.collect()).end, { signalled: { signal: 15 } });
    assert.equal((await h.client.inspect(C)).process!.pid, init, 'the container lives on');

    c = await h.connect();
    a = await c.attach(exec('/probe', ['relay']));
    const pid = (a.response as { exec: { ok: { pid: number } } }).exec.ok.pid;
    assert.ok(existsSync(`/proc/${pid}`));
    a.stream.close();
    // stdin closes: relay reaches EOF and exits; it is reaped (no zombie left).
    assert.ok(await eventually(() => !existsSync(`/proc/${pid}`)), `pid ${pid} is gone`);

    c = await h.connect();
    a = await c.attach(exec('/probe', ['sleep']));
    const sleeper = (a.response as { exec: { ok: { pid: number } } }).exec.ok.pid;
    a.stream.close();
    // It ignores the closed stdin: SIGKILL after the grace.
    assert.ok(await eventually(() => !existsSync(`/proc/${sleeper}`), 1000), `pid ${sleeper} is gone`);
    assert.equal((await h.client.inspect(C)).process!.pid, init);
  });

  test('nstar exec -i pipes our stdin, prints the output and exits with the process code', async (t) => {
    const h = await startRuntime(t, { repositories: { default: { npks: [await npk(t)] } } });
    await h.client.start(C);
    const r = await nstar(['-u', h.url, 'exec', '-i', 'att', '/probe', 'relay', '3'], Buffer.from('hello through\n'));
    assert.equal(r.code, 3, r.err);
    assert.equal(r.out, 'Executing "relay"\nhello through\n');
    assert.equal(r.err, 'relayed 14\n');
    const plain = await nstar(['-u', h.url, 'exec', '-a', 'att', '/probe', 'echo', 'hi']);
    assert.equal(plain.code, 0, plain.err);
    assert.equal(plain.out, 'Executing "echo"\nhi\n');
  });

  test('a terminal from the container devpts: its name, size, session, a resize, and SIGHUP on close', async (t) => {
    const h = await startRuntime(t, { repositories: { default: { npks: [await npk(t, { '/dev': { type: 'dev' } })] } } });
    await h.client.start(C);
    const c = await h.connect();
    const { stream } = await c.attach({ exec: { ...exec('/probe', ['tty']).exec, tty: true, cols: 100, rows: 30 } });
    let out = '';
    const frames = stream.frames();
    while (!/foreground=\d/.test(out)) {
      const f = (await frames.next()).value!;
      assert.notEqual(f.channel, 2, 'no stderr with a tty');
      if (f.channel === 1) out += f.payload.toString();
    }
    assert.match(out, /isatty=1 tty=\/dev\/pts\/\d+ size=100x30 leader=1 foreground=1/);
    await stream.resize(132, 43);
    for (;;) {
      const { value: f, done } = await frames.next();
      if (done) break;
      if (f.channel === 1) out += f.payload.toString();
    }
    assert.match(out, /resized=132x43/);
    assert.deepEqual(stream.end, { exit: { code: 0 } });

    const c2 = await h.connect();
    const a = await c2.attach({ exec: { ...exec('/probe', ['sleep']).exec, tty: true } });
    const pid = (a.response as { exec: { ok: { pid: number } } }).exec.ok.pid;
    a.stream.close();
    assert.ok(await eventually(() => !existsSync(`/proc/${pid}`)), 'SIGHUP ends it');
  });

  test('nstar exec -it through a real terminal (script): raw keys, the remote line discipline, the exit code', async (t) => {
    const h = await startRuntime(t, { repositories: { default: { npks: [await npk(t, { '/dev': { type: 'dev' } })] } } });
    await h.client.start(C);
    const cmd = `${join(packageRoot, 'bin', 'nstar')} -u ${h.url} exec -it att /probe relay 5`;
    const p = spawn('script', ['-qec', cmd, '/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
    t.after(() => p.kill('SIGKILL'));
    let out = '';
    p.stdout.on('data', (d) => (out += d));
    const code = new Promise<number | null>((r) => p.on('close', (c) => r(c)));
    assert.ok(await eventually(() => out.includes('Executing "relay"'), 3000), out);
    // Typed into our terminal: a line, then ^D, which only the container's terminal turns into end of file.
    p.stdin.write('hello there\r');
    assert.ok(await eventually(() => out.includes('hello there'), 1000), out);
    p.stdin.write('\x04');
    assert.equal(await code, 5, out);
    // Echoed by the container's terminal, then written back by relay; "relayed 12": ^D reached it as end of file.
    assert.equal(out.match(/hello there\r+\n/g)?.length, 2, out);
    assert.match(out, /relayed 12\r+\n/);
  });

  test('exec errors stay JSON responses; tty needs a dev mount', async (t) => {
    const h = await startRuntime(t, { repositories: { default: { npks: [await npk(t)] } } });
    const c = await h.connect();
    await assert.rejects(c.attach(exec('/probe', [])), /failed to stop|not started/);
    await h.client.start(C);
    await assert.rejects(c.attach({ exec: { ...exec('/probe', []).exec, tty: true } }), /tty needs a `dev` mount/);
    assert.equal(await c.ident(), 'extern:0.0.0', 'the connection stays in JSON mode');
  });
});
