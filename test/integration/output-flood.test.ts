// A container's output against the real daemon: a container flooding its
// piped stdout leaves the console answering and can be stopped; behind a slow
// log reader the daemon's memory stays bounded (the container is slowed down
// instead) and every line reaches the log intact; an output worker that dies
// is replaced without killing a container. Bounds here, speeds in
// bench/flood.bench.ts.
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';

import { Client, type Notification } from '../../src/client/index.js';
import { packageRoot } from '../../src/native.js';
import { privileged } from './privileged.js';
import { captureOutput, isExit, isStarted, probe, until } from './runtime-checks.js';
import { prepare, startRuntime, type HarnessOptions } from './runtime-harness.js';

const C = 'flood:0.0.1';

function rssMb(pid: number): number {
  const kb = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return kb ? Number(kb[1]) / 1024 : 0;
}

/** Bytes the children of a container's init (the container process) wrote so far (/proc/<pid>/io). */
function written(initPid: number): number {
  let sum = 0;
  for (const c of readFileSync(`/proc/${initPid}/task/${initPid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean)) {
    sum += Number(/^wchar:\s+(\d+)/m.exec(readFileSync(`/proc/${c}/io`, 'utf8'))?.[1] ?? 0);
  }
  return sum;
}

/**
 * The daemon (bin/northstar) with its stderr — the log — where the test says:
 * the harness's startDaemon keeps all output in memory, which a flood must not reach.
 */
async function daemon(t: TestContext, o: HarnessOptions, stderr: 'pipe' | number) {
  const p = await prepare(o);
  const proc: ChildProcess = spawn(join(packageRoot, 'bin', 'northstar'), ['-c', p.configPath], {
    stdio: ['ignore', 'ignore', stderr],
    env: { ...process.env, NSTAR_LOG: 'info' },
  });
  const exited = once(proc, 'exit');
  t.after(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      await exited;
    }
    rmSync(p.dir, { recursive: true, force: true });
  });
  const deadline = Date.now() + 60_000;
  let client: Client | undefined;
  while (!client) {
    if (proc.exitCode !== null) throw new Error(`northstar exited during startup (${proc.exitCode})`);
    try {
      client = await Client.connect(p.url, { subscribe: 10_000 });
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`northstar did not come up: ${(e as Error).message}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  const c = client;
  t.after(() => c.close());
  const seen: Notification[] = [];
  void (async () => {
    try {
      for await (const n of c.notifications()) seen.push(n);
    } catch {
      // closed
    }
  })();
  const waitFor = async (pred: (n: Notification) => boolean, what: string) => {
    await until(() => seen.some(pred), what, 60_000);
  };
  return { proc, client: c, waitFor, dir: p.dir, url: p.url };
}

describe('container output floods', { ...privileged({ cgroups: true }), timeout: 300_000 }, () => {
  test('a container flooding its piped stdout leaves the console answering and can be stopped', async (t) => {
    // Short lines: the most work per byte for whoever splits and logs them.
    const npk = await probe('flood', { manifest: { args: ['flood', '0', '20'] } });
    const d = await daemon(t, { repositories: { fs: { key: true, npks: [npk] } } }, 'pipe');
    // The log, read as fast as it comes (a terminal, journald).
    d.proc.stderr!.resume();
    const lister = await Client.connect(d.url, { timeoutMs: 2000 });
    t.after(() => lister.close());
    await d.client.start(C);
    await d.waitFor(isStarted(C), 'the started notification');
    const pid = (await d.client.inspect(C)).process!.pid;
    await until(() => written(pid) > 10e6, 'the container to write 10 MB', 60_000);
    // The console answers all along the next 10 MB of it, each list within a generous deadline
    // (2 s, ~1000× its idle latency: the main thread used to read the pipe for seconds on end).
    const from = written(pid);
    for (let i = 0; i < 10 || written(pid) < from + 10e6; i++) assert.ok((await lister.list()).includes(C), 'list answers during the flood');
    await d.client.stop(C, 1000);
    await d.waitFor(isExit(C), 'the exit notification');
    await d.client.shutdown();
    assert.equal((await once(d.proc, 'exit'))[0], 0);
  });

  test('behind a slow log reader the daemon stays small and every line reaches the log intact', async (t) => {
    const LINES = 400_000; // 40 MB of 100-byte lines
    const npk = await probe('flood', { manifest: { args: ['flood', String(LINES * 100), '100'] } });
    const d = await daemon(t, { repositories: { fs: { key: true, npks: [npk] } } }, 'pipe');
    const log = d.proc.stderr!;
    log.pause();
    // The log, read at ~4 MB/s and checked line by line: numbered, whole, none missing, in order.
    let next = 0;
    let bad = 0;
    let rest = '';
    let done = false;
    const line = /^\d\d:\d\d:\d\d\.\d{3} flood:0\.0\.1 INFO: flood (\d{10}) (x+)$/;
    const consume = (text: string) => {
      const lines = (rest + text).split('\n');
      rest = lines.pop()!;
      for (const l of lines) {
        if (l.includes('flood:0.0.1 INFO: flood done')) done = true;
        if (!l.includes('flood:0.0.1 INFO: flood ') || done) continue;
        const m = line.exec(l);
        if (!m || Number(m[1]) !== next || m[2].length !== 100 - 18) bad++;
        next = m ? Number(m[1]) + 1 : next + 1;
      }
    };
    let rate = 200_000; // bytes per 50 ms
    const reader = setInterval(() => {
      for (let budget = rate; budget > 0; ) {
        const chunk = log.read() as Buffer | null;
        if (!chunk) break;
        budget -= chunk.length;
        consume(chunk.toString());
      }
    }, 50);
    t.after(() => clearInterval(reader));

    await d.client.start(C);
    await d.waitFor(isStarted(C), 'the started notification');
    const daemonPid = d.proc.pid!;
    await until(() => next > 1000, 'the first flood lines in the log', 60_000);
    const before = rssMb(daemonPid);
    let peak = before;
    await until(() => {
      peak = Math.max(peak, rssMb(daemonPid));
      return done;
    }, 'the whole flood in the log', 240_000);
    rate = 1e9;
    assert.equal(next, LINES, 'every line reached the log');
    assert.equal(bad, 0, 'each line whole and in order');
    assert.ok(peak - before < 200, `RSS grew ${(peak - before).toFixed(1)} MB during a 40 MB flood behind a 4 MB/s reader (${before.toFixed(1)} → ${peak.toFixed(1)} MB)`);
    await d.client.stop(C, 1000);
    await d.waitFor(isExit(C), 'the exit notification');
  });

  test('an output worker that dies is replaced and the containers writing to it live on', async (t) => {
    const npk = await probe('counter', { manifest: { args: ['count', '20'] } });
    const out = captureOutput(t);
    const h = await startRuntime(t, { repositories: { fs: { key: true, npks: [npk] } } });
    const K = 'counter:0.0.1';
    await h.client.start(K);
    await out.waitFor(K, /^count: 3$/);
    const worker = h.runtime.output.thread!;
    await worker.terminate();
    // A closed read end would kill it with SIGPIPE at its next line: it keeps counting instead.
    const last = Number(/\d+$/.exec(out.of(K).filter((l) => l.startsWith('count:')).at(-1)!)![0]);
    await out.waitFor(K, new RegExp(`^count: ${last + 10}$`), 30_000);
    assert.notEqual(h.runtime.output.thread, worker, 'another worker reads the pipe');
    assert.equal(h.notifications.filter(isExit(K)).length, 0, 'the container did not exit');
    await h.client.stop(K, 1000);
    assert.deepEqual(await h.waitFor(isExit(K)), { exit: [K, { signalled: { signal: 15 } }] });
  });
});
