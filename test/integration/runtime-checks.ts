// Shared pieces of the runtime integration tests (runtime-*.test.ts): the
// fixture NPKs, notification predicates, container output capture, and the
// leak check run after each test (no mount under the test dir, no loop device
// backed by a file of the test or by one of its memfds, no cgroup of the test).
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

import type { ClientError, Notification } from '../../src/client/index.js';
import type { LogRecord } from '../../src/log.js';
import { packageRoot } from '../../src/native.js';
import { packNpk } from '../../src/packer/pack.js';
import { buildProbe } from '../fixtures/build.js';
import { fixtureKeys, fixtureNpk } from '../fixtures/npk.js';
import type { Harness, InProcessHarness } from './runtime-harness.js';

export const PIPE = { stdout: 'pipe', stderr: 'pipe' } as const;

/** The test container: the probe with the test resource (any version ≥ 0.0.1) at /resource. */
export function testContainer(o: { name?: string; version?: string; manifest?: Record<string, unknown> } = {}) {
  return fixtureNpk({
    name: o.name ?? 'test-container',
    version: o.version ?? '0.0.1',
    key: true,
    manifest: {
      args: ['sleep'],
      io: PIPE,
      mounts: { '/resource': { type: 'resource', name: 'test-resource', version: '>=0.0.1', dir: '/' } },
      ...o.manifest,
    },
  });
}

/** A plain probe container without resources. */
export function probe(name: string, o: { version?: string; manifest?: Record<string, unknown> } = {}) {
  return fixtureNpk({ name, version: o.version ?? '0.0.1', key: true, manifest: { args: ['sleep'], io: PIPE, ...o.manifest } });
}

/** The test resource; version 0.0.2 also holds /v2. */
export function testResource(version = '0.0.1') {
  const files: Record<string, string> = { '/hello': `hello from test resource ${version}` };
  if (version !== '0.0.1') files['/v2'] = 'v2';
  return fixtureNpk({ name: 'test-resource', version, key: true, noProbe: true, files, manifest: { init: undefined } });
}

/** `count` probe containers that differ only in their names (clones). */
export function clones(prefix: string, count: number): Promise<string[]> {
  return Promise.all(Array.from({ length: count }, (_, i) => probe(`${prefix}-${i}`)));
}

type N = Notification;
const obj = (n: N): Record<string, unknown> | undefined => (typeof n === 'object' && n !== null ? (n as Record<string, unknown>) : undefined);

export const isStarted = (c: string) => (n: N) => obj(n)?.started === c;
export const isExit = (c: string) => (n: N) => {
  const e = obj(n)?.exit as [string, unknown] | undefined;
  return Array.isArray(e) && e[0] === c;
};
export const isInstall = (c: string) => (n: N) => obj(n)?.install === c;
export const isUninstall = (c: string) => (n: N) => obj(n)?.uninstall === c;
export const isCgroup = (c: string) => (n: N) => {
  const e = obj(n)?.c_group as [string, unknown] | undefined;
  return Array.isArray(e) && e[0] === c;
};

/** The `exit` notifications of one container so far, in order. */
export function exitsOf(h: Harness, c: string): unknown[] {
  return h.notifications.filter(isExit(c)).map((n) => (obj(n)!.exit as [string, unknown])[1]);
}

/** Waits for the nth (1-based) exit notification of a container; returns its status. */
export async function nthExit(h: Harness, c: string, nth: number, timeoutMs = 20_000): Promise<unknown> {
  let seen = 0;
  await h.waitFor((n) => isExit(c)(n) && ++seen >= nth, timeoutMs).catch(() => undefined);
  const all = exitsOf(h, c);
  assert.ok(all.length >= nth, `expected ${nth} exit notifications of ${c}, got ${JSON.stringify(all)}`);
  return all[nth - 1];
}

/** The wire error of a rejected client call. */
export async function wireError(p: Promise<unknown>): Promise<Record<string, unknown>> {
  try {
    await p;
  } catch (e) {
    const w = (e as ClientError).wire;
    assert.ok(w, `expected a runtime error, got ${(e as Error).message}`);
    return w as unknown as Record<string, unknown>;
  }
  assert.fail('expected the request to fail');
}

/** Every log record (all levels) while the test runs. */
export function captureLog(t: TestContext): LogRecord[] {
  const records: LogRecord[] = [];
  const fn = (m: unknown) => void records.push(m as LogRecord);
  subscribe('nstar:log', fn);
  t.after(() => unsubscribe('nstar:log', fn));
  return records;
}

/**
 * Resolves once `pred` holds (polled every 20 ms; it may be async); rejects
 * naming `what` after `ms` (a function: said as it is at the timeout).
 */
export async function until(pred: () => boolean | Promise<boolean>, what: string | (() => string), ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${typeof what === 'function' ? what() : what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Lines the containers printed (io: pipe → log records with the container as target). */
export function captureOutput(t: TestContext) {
  const lines: LogRecord[] = [];
  const waiters = new Set<() => void>();
  const on = (m: unknown) => {
    lines.push(m as LogRecord);
    for (const w of waiters) w();
  };
  subscribe('nstar:log', on);
  t.after(() => unsubscribe('nstar:log', on));
  const of = (c: string) => lines.filter((r) => r.target === c).map((r) => r.message);
  return {
    of,
    /** Resolves with the `nth` (1-based) line of container `c` matching `re`. */
    waitFor(c: string, re: RegExp, timeoutMs = 20_000, nth = 1): Promise<string> {
      return new Promise((resolve, reject) => {
        const check = () => {
          const l = of(c).filter((m) => re.test(m))[nth - 1];
          if (l === undefined) return false;
          waiters.delete(w);
          clearTimeout(timer);
          resolve(l);
          return true;
        };
        const w = () => void check();
        const timer = setTimeout(() => {
          waiters.delete(w);
          reject(new Error(`${c} printed nothing matching ${re} within ${timeoutMs} ms: ${JSON.stringify(of(c))}`));
        }, timeoutMs);
        if (!check()) waiters.add(w);
      });
    },
  };
}

// ---------------------------------------------------------------- leaks

interface Loop {
  device: string;
  backing: string;
}

function loops(): Loop[] {
  const out: Loop[] = [];
  for (const e of readdirSync('/sys/block')) {
    if (!e.startsWith('loop')) continue;
    try {
      out.push({ device: `/dev/${e}`, backing: readFileSync(`/sys/block/${e}/loop/backing_file`, 'utf8').trim() });
    } catch {
      // not attached
    }
  }
  return out;
}

/** Attached loop devices whose backing file path contains `part`. */
export function loopsBackedBy(part: string): string[] {
  return loops()
    .filter((l) => l.backing.includes(part))
    .map((l) => `${l.device} ${l.backing}`);
}

/** Names of this process's NPK memfds ("/memfd:npk-… (deleted)"), i.e. mem repository contents. */
function ourMemfds(): string[] {
  const names: string[] = [];
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const l = readlinkSync(`/proc/self/fd/${fd}`);
      if (l.startsWith('/memfd:npk-')) names.push(l);
    } catch {
      // closed meanwhile
    }
  }
  return names;
}

/** The cgroup directories named `name` in every hierarchy. */
export function cgroupDirs(name: string): string[] {
  return readdirSync('/sys/fs/cgroup')
    .map((h) => `/sys/fs/cgroup/${h}/${name}`)
    .concat(`/sys/fs/cgroup/${name}`)
    .filter((p) => existsSync(p));
}

/**
 * Tracks what a runtime of the harness may leak. `sample()` remembers the mem
 * repositories' memfds (call it while they exist, e.g. after installs);
 * `assertClean()` stops the runtime and checks everything is gone.
 */
export function leakCheck(h: InProcessHarness) {
  const memfds = new Set<string>();
  const sample = () => ourMemfds().forEach((m) => memfds.add(m));
  return {
    sample,
    async assertClean(): Promise<void> {
      sample();
      await h.stop();
      const mounts = readFileSync('/proc/self/mountinfo', 'utf8')
        .split('\n')
        .filter((l) => l.includes(h.dir));
      assert.deepEqual(mounts, [], 'mounts left under the test dir');
      const leaked = loops().filter((l) => l.backing.startsWith(h.dir) || memfds.has(l.backing));
      assert.deepEqual(leaked, [], 'loop devices left');
      assert.deepEqual(cgroupDirs(h.config.cgroup), [], 'cgroups left');
    },
  };
}

/** No cgroup of this test process's runtimes is left (suite-level check). */
export function assertNoTestCgroups(): void {
  const prefix = `nstar-test-${process.pid}-`;
  const left = readdirSync('/sys/fs/cgroup').flatMap((h) => {
    try {
      return readdirSync(`/sys/fs/cgroup/${h}`)
        .filter((e) => e.startsWith(prefix))
        .map((e) => `${h}/${e}`);
    } catch {
      return [];
    }
  });
  assert.deepEqual(left, [], 'cgroups of this test process left');
}

/**
 * A staging directory (named `prefix`…, removed after the test) holding
 * `root/` with the probe as `/probe`: where a test packs its own NPK.
 */
export function probeStage(t: TestContext, prefix: string): { stage: string; root: string } {
  const stage = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(stage, { recursive: true, force: true }));
  const root = join(stage, 'root');
  mkdirSync(root);
  copyFileSync(buildProbe(), join(root, 'probe'));
  chmodSync(join(root, 'probe'), 0o755);
  return { stage, root };
}

/**
 * An unsigned NPK of the probe with `manifest` (init, uid and gid default to
 * /probe and 1000), packed in a probeStage; `fill` adds to its root first.
 */
export async function packProbe(
  t: TestContext,
  manifest: { name: string; version: string } & Record<string, unknown>,
  fill?: (root: string) => void,
): Promise<string> {
  const { stage, root } = probeStage(t, `nstar-${manifest.name}-`);
  fill?.(root);
  const out = join(stage, `${manifest.name}-${manifest.version}.npk`);
  await packNpk({ manifest: JSON.stringify({ init: '/probe', uid: 1000, gid: 1000, ...manifest }), root, out });
  return out;
}

/**
 * Runs bin/nstar as a child (asynchronously: the runtime answers from this
 * process), with `stdin` (empty when absent) as its input.
 */
export function nstar(args: string[], stdin?: Buffer): Promise<{ code: number | null; out: string; outBytes: Buffer; err: string }> {
  return new Promise((resolve) => {
    const p = spawn(join(packageRoot, 'bin', 'nstar'), args, { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    p.stdout.on('data', (d: Buffer) => out.push(d));
    p.stderr.on('data', (d) => (err += d));
    p.stdin.end(stdin ?? Buffer.alloc(0));
    p.on('close', (code) => {
      const outBytes = Buffer.concat(out);
      resolve({ code, out: outBytes.toString(), outBytes, err });
    });
  });
}

/**
 * `count` clones packed by the npk CLI (`npk pack --clones`), named
 * `<prefix>-<nn>` (zero-padded), signed with the fixture key, into a temp dir
 * removed after the test. Returns the NPK paths.
 */
export async function cliClones(t: TestContext, prefix: string, count: number): Promise<string[]> {
  const { stage: dir, root } = probeStage(t, 'nstar-clones-');
  const manifest = join(dir, 'manifest.yaml');
  writeFileSync(manifest, `name: ${prefix}\nversion: 0.0.1\ninit: /probe\nargs:\n  - sleep\nuid: 1000\ngid: 1000\n`);
  const out = join(dir, 'out');
  mkdirSync(out);
  const keys = await fixtureKeys();
  const r = spawnSync(join(packageRoot, 'bin', 'npk'), ['pack', '-m', manifest, '-r', root, '-k', keys.privateKey, '-o', out, '--clones', String(count)], {
    encoding: 'utf8',
  });
  assert.equal(r.status, 0, `npk pack --clones failed: ${r.stderr}`);
  const paths = r.stdout.split('\n').filter((l) => l.trim() !== '');
  assert.equal(paths.length, count, r.stdout);
  return paths;
}
