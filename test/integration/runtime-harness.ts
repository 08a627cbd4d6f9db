// A real runtime for integration tests: temp dirs, a config with the given
// repositories (fixture NPKs copied in), a unique top cgroup, a console on a
// unix socket, and a subscribed client. In-process (`startRuntime`) or as the
// `northstar` daemon in a child process (`startDaemon`, for signals, exit
// codes and kill -9). Everything is torn down in t.after, even on failure.
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { TestContext } from 'node:test';

import { Client, type Notification } from '../../src/client/index.js';
import { setLevel } from '../../src/log.js';
import { parseConfig, type Config } from '../../src/model/config.js';
import { packageRoot } from '../../src/native.js';
import { Runtime } from '../../src/runtime.js';
import { fixtureKeys } from '../fixtures/npk.js';

export interface RepoSpec {
  /** `mem` repositories start empty. */
  type?: 'fs' | 'mem';
  /** NPK files copied into an fs repository before the runtime starts. */
  npks?: string[];
  /** Verify with the fixture key (true) or the raw public key at this path. */
  key?: boolean | string;
  mountOnStart?: boolean;
  capacityNum?: number;
  /** bytesize string or number of bytes. */
  capacitySize?: string | number;
}

export interface HarnessOptions {
  repositories?: Record<string, RepoSpec>;
  /** Extra TOML appended to the config (top-level keys must come before tables: use `[section]` forms). */
  extraToml?: string;
  /** Top-level TOML keys (e.g. `loop_device_timeout = "5s"`). */
  topToml?: string;
  /** The top-level cgroup name (default: unique per call); pin it to restart on the same cgroups. */
  cgroup?: string;
  /** Extra keys of [console.global] (e.g. `socket_mode = "0660"`). */
  consoleToml?: string;
  /** false: leave run/data/socket and empty repository dirs for the runtime to make. */
  createDirs?: boolean;
}

export interface Harness {
  dir: string;
  configPath: string;
  config: Config;
  url: string;
  /** A client subscribed to notifications. */
  client: Client;
  /** Every notification the client received so far. */
  notifications: Notification[];
  /** Resolves with the first notification (already received or later) matching `pred`. */
  waitFor(pred: (n: Notification) => boolean, timeoutMs?: number): Promise<Notification>;
  /** Another client (closed at teardown). */
  connect(subscribe?: boolean): Promise<Client>;
  /** The repository directory of an fs repository. */
  repoDir(id: string): string;
}

export interface InProcessHarness extends Harness {
  runtime: Runtime;
  stop(): Promise<void>;
}

export interface DaemonHarness extends Harness {
  proc: ChildProcess;
  /** stdout+stderr of the daemon so far. */
  output(): string;
  /** Resolves with the exit code (or signal) once the daemon exits. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

let seq = 0;
const SHUTDOWN_TIMEOUT_MS = 30_000;

function toml(s: string): string {
  return JSON.stringify(s);
}

/** Writes the dirs and config; returns the paths. */
export async function prepare(o: HarnessOptions = {}, dir = mkdtempSync(join(tmpdir(), 'nstar-rt-'))) {
  const repos = o.repositories ?? { default: {} };
  const keys = await fixtureKeys();
  const lines = [
    `run_dir = ${toml(join(dir, 'run'))}`,
    `data_dir = ${toml(join(dir, 'data'))}`,
    `socket_dir = ${toml(join(dir, 'sockets'))}`,
    `cgroup = ${toml(o.cgroup ?? `nstar-test-${process.pid}-${++seq}`)}`,
    o.topToml ?? '',
    '[pool]',
    'threads = 2',
    'min_threads = 0',
    'idle_timeout = "5s"',
    '[log]',
    'level = "warn"',
    '[console.global]',
    `bind = ${toml(`unix://${join(dir, 'console')}`)}`,
    'permissions = "full"',
    o.consoleToml ?? '',
  ];
  for (const [id, r] of Object.entries(repos)) {
    lines.push(`[repositories.${id}]`);
    if (r.type === 'mem') lines.push('type = "mem"');
    else {
      const rd = join(dir, 'repos', id);
      if (o.createDirs !== false || r.npks?.length) mkdirSync(rd, { recursive: true });
      for (const npk of r.npks ?? []) copyFileSync(npk, join(rd, basename(npk)));
      lines.push(`type = { fs = { dir = ${toml(rd)} } }`);
    }
    if (typeof r.key === 'string') lines.push(`key = ${toml(r.key)}`);
    else if (r.key) {
      const keyPath = join(dir, 'fixture.pub');
      if (!existsSync(keyPath)) writeFileSync(keyPath, keys.publicKey);
      lines.push(`key = ${toml(keyPath)}`);
    }
    if (r.mountOnStart) lines.push('mount_on_start = true');
    if (r.capacityNum !== undefined) lines.push(`capacity_num = ${r.capacityNum}`);
    if (r.capacitySize !== undefined) lines.push(`capacity_size = ${typeof r.capacitySize === 'string' ? toml(r.capacitySize) : r.capacitySize}`);
  }
  if (o.extraToml) lines.push(o.extraToml);
  const text = lines.join('\n') + '\n';
  const configPath = join(dir, 'northstar.toml');
  writeFileSync(configPath, text);
  const config = parseConfig(text);
  if (o.createDirs !== false) for (const d of [config.runDir, config.dataDir, config.socketDir]) mkdirSync(d, { recursive: true });
  return { dir, configPath, config, url: `unix://${join(dir, 'console')}` };
}

async function clientParts(t: TestContext, url: string) {
  const clients: Client[] = [];
  const connect = async (subscribe = false) => {
    const c = await Client.connect(url, { subscribe: subscribe ? 10_000 : false });
    clients.push(c);
    return c;
  };
  const client = await connect(true);
  const notifications: Notification[] = [];
  const waiters = new Set<{ pred: (n: Notification) => boolean; resolve: (n: Notification) => void }>();
  void (async () => {
    try {
      for await (const n of client.notifications()) {
        notifications.push(n);
        for (const w of waiters) if (w.pred(n)) (waiters.delete(w), w.resolve(n));
      }
    } catch {
      // closed
    }
  })();
  const waitFor = (pred: (n: Notification) => boolean, timeoutMs = 30_000) => {
    const seen = notifications.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise<Notification>((resolve, reject) => {
      const w = { pred, resolve: (n: Notification) => (clearTimeout(timer), resolve(n)) };
      const timer = setTimeout(() => {
        waiters.delete(w);
        reject(new Error(`no matching notification within ${timeoutMs} ms; got ${JSON.stringify(notifications)}`));
      }, timeoutMs);
      waiters.add(w);
    });
  };
  t.after(() => clients.forEach((c) => c.close()));
  return { client, notifications, waitFor, connect };
}

/** The runtime in this process. */
export async function startRuntime(t: TestContext, o: HarnessOptions = {}): Promise<InProcessHarness> {
  const p = await prepare(o);
  setLevel((process.env.NSTAR_LOG as never) ?? 'warn');
  let runtime: Runtime | undefined;
  t.after(async () => {
    // A shutdown that never completes (e.g. a crashed container actor) fails
    // the test instead of hanging the whole run.
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`runtime shutdown did not complete within ${SHUTDOWN_TIMEOUT_MS} ms`)), SHUTDOWN_TIMEOUT_MS);
    });
    try {
      await Promise.race([runtime?.shutdown(), hung]);
    } finally {
      clearTimeout(timer);
    }
    rmSync(p.dir, { recursive: true, force: true });
  });
  runtime = await Runtime.start(p.config);
  const parts = await clientParts(t, p.url);
  return {
    ...p,
    ...parts,
    runtime,
    repoDir: (id) => join(p.dir, 'repos', id),
    stop: async () => {
      await runtime!.shutdown();
    },
  };
}

/** The `northstar` daemon (bin/northstar -c) in a child process. */
export async function startDaemon(
  t: TestContext,
  o: HarnessOptions & { reuse?: { dir: string }; args?: string[]; umask?: number } = {},
): Promise<DaemonHarness> {
  const p = await prepare(o, o.reuse?.dir);
  const argv = [join(packageRoot, 'bin', 'northstar'), '-c', p.configPath, ...(o.args ?? [])];
  // With `umask`, the daemon inherits that umask from a shell (as from a careless init).
  const [cmd, ...args] = o.umask === undefined ? argv : ['sh', '-c', `umask ${o.umask.toString(8).padStart(3, '0')} && exec "$@"`, 'sh', ...argv];
  const proc = spawn(cmd!, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, NSTAR_LOG: process.env.NSTAR_LOG ?? 'info' },
  });
  let out = '';
  proc.stdout!.on('data', (d) => (out += d));
  proc.stderr!.on('data', (d) => (out += d));
  const exited = once(proc, 'exit').then(([code, signal]) => ({ code: code as number | null, signal: signal as NodeJS.Signals | null }));
  t.after(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGTERM');
      await exited;
    }
    if (!o.reuse) rmSync(p.dir, { recursive: true, force: true });
  });
  // The console socket appears once the runtime listens; the handshake proves it.
  const deadline = Date.now() + 60_000;
  let parts: Awaited<ReturnType<typeof clientParts>> | undefined;
  while (!parts) {
    if (proc.exitCode !== null || proc.signalCode !== null) throw new Error(`northstar exited during startup:\n${out}`);
    try {
      parts = await clientParts(t, p.url);
    } catch (e) {
      if (Date.now() > deadline) throw new Error(`northstar did not come up: ${(e as Error).message}\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  return { ...p, ...parts, proc, output: () => out, exited, repoDir: (id) => join(p.dir, 'repos', id) };
}
