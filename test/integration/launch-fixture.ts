// Helpers for the launch and sandbox integration tests: a directory root
// holding the static probe, a test-container-like manifest, and a launch that
// collects the container's output lines.
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { TestContext } from 'node:test';

import { launch, type LaunchedContainer } from '../../src/actors/launch/launch.js';
import type { LaunchSpec } from '../../src/machines/contracts.js';
import type { ExitStatus } from '../../src/model/errors.js';
import type { Manifest } from '../../src/model/manifest.js';
import type { SeccompArch } from '../../src/model/seccomp.js';
import { probePath } from '../fixtures/build.js';

export interface Sandbox {
  dir: string;
  root: string;
  runDir: string;
  dataDir: string;
  socketDir: string;
}

/** A temp dir with root/probe, run, data and sockets; removed after the test. */
export function sandbox(t: TestContext): Sandbox {
  const dir = mkdtempSync(join(tmpdir(), 'nstar-launch-'));
  const s = { dir, root: join(dir, 'root'), runDir: join(dir, 'run'), dataDir: join(dir, 'data'), socketDir: join(dir, 'sockets') };
  for (const d of [s.root, s.runDir, s.dataDir, s.socketDir]) mkdirSync(d, { recursive: true });
  copyFileSync(probePath, join(s.root, 'probe'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return s;
}

export function testManifest(over: Partial<Manifest> = {}): Manifest {
  return {
    name: 'test-container',
    version: '0.0.1',
    init: '/probe',
    args: [],
    env: {},
    uid: 1000,
    gid: 1000,
    mounts: { '/proc': { type: 'proc' } },
    capabilities: [],
    suppl_groups: [],
    rlimits: {},
    sockets: {},
    io: { stdout: 'pipe', stderr: 'pipe' },
    ...over,
  };
}

export interface Run {
  launched: LaunchedContainer;
  lines: { stream: 'stdout' | 'stderr'; line: string }[];
  /** stdout lines only */
  stdout(): string[];
}

export interface RunOptions {
  manifest?: Partial<Manifest>;
  args?: string[];
  env?: Record<string, string>;
  resources?: Record<string, string>;
  /** The architecture the manifest's seccomp filter is compiled for (default: this host's). */
  arch?: SeccompArch;
  consoleFd?: number;
  /** A network namespace made ahead of time (NetnsPool.take()); launch() takes it. */
  netnsFd?: number;
  /** Opens the gate right away (default true). */
  gate?: boolean;
  /** Parked Northstar commands exit 0 instead (default true). */
  noPark?: boolean;
}

export function specFor(s: Sandbox, o: RunOptions = {}): LaunchSpec {
  const manifest = testManifest(o.manifest);
  const container = `${manifest.name}:${manifest.version}`;
  return {
    container,
    manifest,
    root: s.root,
    init: manifest.init ?? '/probe',
    args: o.args ?? manifest.args,
    env: {
      ...(o.noPark === false ? {} : { PROBE_PARK: '0' }),
      ...manifest.env,
      ...o.env,
      NORTHSTAR_NAME: manifest.name,
      NORTHSTAR_VERSION: manifest.version,
      NORTHSTAR_CONTAINER: container,
    },
    runDir: s.runDir,
    dataDir: s.dataDir,
    socketDir: s.socketDir,
    resources: o.resources ?? {},
    consoleFd: o.consoleFd,
    netnsFd: o.netnsFd,
  };
}

/** Launches; kills (SIGKILL) and awaits the exit after the test if still running. */
export async function start(t: TestContext, s: Sandbox, o: RunOptions = {}): Promise<Run> {
  const lines: Run['lines'] = [];
  const launched = await launch(specFor(s, o), { output: (stream, line) => lines.push({ stream, line }), arch: o.arch });
  t.after(async () => {
    launched.kill(9);
    await launched.exited.catch(() => undefined);
  });
  if (o.gate !== false) launched.openGate();
  return { launched, lines, stdout: () => lines.filter((l) => l.stream === 'stdout').map((l) => l.line) };
}

/** Launches and waits for the exit: the status and the output. */
export async function run(t: TestContext, s: Sandbox, o: RunOptions = {}): Promise<{ status: ExitStatus; out: string[]; err: string[] }> {
  const r = await start(t, s, o);
  const status = await r.launched.exited;
  return {
    status,
    out: r.lines.filter((l) => l.stream === 'stdout').map((l) => l.line),
    err: r.lines.filter((l) => l.stream === 'stderr').map((l) => l.line),
  };
}

/** Polls `check` on the event loop (no fixed sleeps) until it holds or `tries` run out. */
export async function eventually(check: () => boolean, tries = 500): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (check()) return true;
    await new Promise((r) => setTimeout(r, 10));
  }
  return check();
}

/** Waits until the output has a line matching `re`. */
export async function waitForLine(r: Run, re: RegExp): Promise<string> {
  const ok = await eventually(() => r.lines.some((l) => re.test(l.line)));
  if (!ok) throw new Error(`no output line matched ${re}; got ${JSON.stringify(r.lines)}`);
  return r.lines.find((l) => re.test(l.line))!.line;
}
