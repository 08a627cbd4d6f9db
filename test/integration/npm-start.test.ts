// `npm start` wraps the daemon in npm and a TypeScript loader: a SIGTERM or
// SIGINT sent to npm alone (a service manager, `kill`) must shut the daemon
// down in order, as Ctrl-C in a terminal does.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Client } from '../../src/client/index.js';
import { privileged } from './privileged.js';
import { prepare } from './runtime-harness.js';

const root = fileURLToPath(new URL('../..', import.meta.url));

/** Pids of live processes whose command line names `needle` (our config path: only what this test started). */
function processesWith(needle: string): number[] {
  const pids: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (readFileSync(`/proc/${e}/cmdline`, 'utf8').includes(needle)) pids.push(Number(e));
    } catch {
      // gone
    }
  }
  return pids;
}

/** `p`, or a failure naming `what` after `ms` (a daemon left running must fail the test, not hang it). */
async function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([p, new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(what)), ms)))]);
  } finally {
    clearTimeout(timer);
  }
}

async function connectWhenUp(url: string, exited: () => boolean, out: () => string): Promise<Client> {
  const deadline = Date.now() + 120_000;
  for (;;) {
    if (exited()) throw new Error(`npm start exited during startup:\n${out()}`);
    try {
      return await Client.connect(url, { timeoutMs: 2000 });
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`the daemon did not come up: ${(e as Error).message}\n${out()}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

describe('npm start', privileged({ cgroups: true, tools: ['npm'] }), () => {
  for (const sig of ['SIGTERM', 'SIGINT'] as const) {
    test(`${sig} to the npm process shuts the daemon down`, async (t) => {
      const p = await prepare({ repositories: { memory: { type: 'mem' } } });
      t.after(() => rmSync(p.dir, { recursive: true, force: true }));
      const npm = spawn('npm', ['start', '--silent', '--', '-c', p.configPath], {
        cwd: root,
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, NSTAR_LOG: 'info' },
      });
      let out = '';
      npm.stdout.on('data', (d) => (out += d));
      npm.stderr.on('data', (d) => (out += d));
      const exit = once(npm, 'exit');
      t.after(() => {
        // A failed assertion must not leave a daemon behind.
        for (const pid of processesWith(p.configPath)) process.kill(pid, 'SIGKILL');
      });
      const client = await connectWhenUp(p.url, () => npm.exitCode !== null, () => out);
      assert.deepEqual(await client.list(), []);
      assert.ok(processesWith(p.configPath).length > 0, 'the daemon runs');

      npm.kill(sig);
      const [code] = await within(exit, 60_000, `npm start did not exit after ${sig}`);
      await within(client.closed, 60_000, `the daemon kept its console open after ${sig} to npm`);
      assert.equal(code, 0, out);
      assert.match(out, new RegExp(`Received ${sig}: shutting down`));
      assert.match(out, /Shutdown complete/);
      assert.deepEqual(processesWith(p.configPath), [], 'no daemon left');
    });
  }
});
