// The runtime: wires the supervisor (decisions) to the real actors (mount
// pool, launch, cgroups, repositories), the console and the inspector, in the
// order of spec/launch.md §5.8. Main thread.
//
// Startup: make and check the runtime's dirs (runtime-dirs.ts: refused when
// others can write to them), one WARN per unkeyed repository → clean what a
// dead instance left (journal, deviation 17) → top cgroup → mount pool →
// repositories → console → supervisor boot (mount_on_start, autostart) →
// "Runtime up and running".
// Shutdown (request, signal, critical exit): the supervisor kills every
// container and unmounts everything, emits `shutdown`; then the console
// closes, the pool stops, the top cgroup goes, the journal is removed →
// "Shutdown complete".
import { spawn } from 'node:child_process';
import { closeSync } from 'node:fs';
import net from 'node:net';
import { readFile } from 'node:fs/promises';

import type { InspectionEvent } from 'xstate';

import { CgroupTree } from './actors/cgroups/index.js';
import { Journal } from './actors/journal.js';
import { launch, NetnsPool } from './actors/launch/index.js';
import { LineSplitter, Output } from './actors/output/index.js';
import { ioFrom, makeActors, type Io } from './actors/machine-actors.js';
import { MountPool } from './actors/mount/index.js';
import { recover } from './actors/recovery.js';
import { contentsOf, FsRepository, MemRepository, type Repository } from './actors/repository/index.js';
import { prepareDirs } from './actors/runtime-dirs.js';
import { consoleBackend } from './runtime-backend.js';
import { startConsole, type ConsoleServer, type ContainerConsole } from './console/index.js';
import { Logger } from './log.js';
import type { LaunchSpec } from './machines/contracts.js';
import { launchNeeds } from './machines/launch-plan.js';
import { createSupervisor, request, supervisorConfig, whenDone, whenReady, type Supervisor } from './machines/supervisor.js';
import type { Config } from './model/config.js';
import { RuntimeError } from './model/errors.js';
import { native } from './native.js';

const log = new Logger('runtime');

export interface RuntimeOptions {
  /** XState inspection observer (the state-chart inspector, tests). */
  inspect?: (e: InspectionEvent) => void;
}

export interface Stopped {
  ok: boolean;
  reason?: string;
}

/** What has been set up so far; torn down in reverse on shutdown or a failed start. */
interface Parts {
  journal: Journal;
  tree?: CgroupTree;
  pool?: MountPool;
  /** Network namespaces made ahead of time for containers that get a new one. */
  netns?: NetnsPool;
  repositories: Repository[];
  console?: ConsoleServer;
  consoles: Map<string, ContainerConsole>;
  inspector?: { close(): Promise<void> };
  /** Reads the containers' piped output off the main thread; keeps their rings. */
  output: Output;
}

export class Runtime {
  readonly stopped: Promise<Stopped>;
  private resolveStopped!: (s: Stopped) => void;
  private teardown?: Promise<void>;
  /** The bound console url (tcp port 0 resolved), when a global console is configured. */
  consoleUrl?: string;
  inspectorUrl?: string;

  private constructor(
    readonly config: Config,
    private readonly parts: Parts,
    private sup?: Supervisor,
  ) {
    this.stopped = new Promise((r) => (this.resolveStopped = r));
  }

  /** The containers' output: their rings, and the worker thread that reads it. */
  get output(): Output {
    return this.parts.output;
  }

  get supervisor(): Supervisor {
    if (!this.sup) throw new Error('the runtime is not started');
    return this.sup;
  }

  static async start(config: Config, opts: RuntimeOptions = {}): Promise<Runtime> {
    const parts: Parts = { journal: new Journal(config.runDir), repositories: [], consoles: new Map(), output: new Output({ ringBytes: config.logBuffer }) };
    const rt = new Runtime(config, parts);
    try {
      await rt.boot(opts);
    } catch (e) {
      await rt.tearDown();
      throw e;
    }
    return rt;
  }

  private async boot(opts: RuntimeOptions): Promise<void> {
    const { config, parts } = this;
    prepareDirs(config);
    for (const line of unkeyedWarnings(config)) log.warn(line);
    const inheritedDynmods = parts.journal.readPrevious()?.favordynmods === true;
    const report = recover(
      {
        runDir: config.runDir,
        socketDir: config.socketDir,
        cgroup: config.cgroup,
        repositoryDirs: Object.values(config.repositories).flatMap((r) => (typeof r.type === 'object' ? [r.type.fs.dir] : [])),
      },
      parts.journal,
    );
    const cleaned = Object.values(report).reduce((n, l: unknown[]) => n + l.length, 0);
    if (cleaned > 0) log.warn(`Cleaned what a previous instance left: ${JSON.stringify(report)}`);
    parts.journal.reset();

    parts.tree = await CgroupTree.create(config.cgroup, { favorDynmods: config.cgroupFavordynmods, inheritedDynmods });
    if (parts.tree.ownsDynmods) parts.journal.update((s) => (s.favordynmods = true));
    parts.journal.addList('topCgroups', parts.tree.topPaths());
    parts.pool = new MountPool(config.pool);
    parts.netns = new NetnsPool();
    parts.repositories = await loadRepositories(config);

    let inspect = opts.inspect;
    if (config.inspector) {
      // Loaded only when configured: the inspector is a development tool.
      const { startInspector } = await import('./inspector/inspector.js');
      const inspector = await startInspector({ bind: config.inspector.bind, history: config.inspector.history });
      parts.inspector = inspector;
      this.inspectorUrl = inspector.url;
      const outer = inspect;
      inspect = (e) => {
        inspector.inspect(e);
        outer?.(e);
      };
      log.info(`Inspector on ${inspector.url}`);
    }

    const sup = createSupervisor({
      repositories: parts.repositories.map(contentsOf),
      config: supervisorConfig(config),
      actors: makeActors(this.io(), { debugCommands: config.debug.commands }),
      inspect,
    });
    this.sup = sup;

    const { server, url } = await startConsole(config, consoleBackend(sup, () => void this.shutdown(), parts.output));
    parts.console = server;
    this.consoleUrl = url;
    if (url) log.info(`Console on ${url}`);

    sup.start();
    try {
      await whenReady(sup);
    } catch (e) {
      // The supervisor's shutdown (kill, umount) runs before the pool and cgroups go.
      await whenDone(sup).catch(() => undefined);
      throw e;
    }
    log.info('Runtime up and running');
    void whenDone(sup).then(
      (out) => this.finish(out.error),
      (e) => this.finish(RuntimeError.from(e)),
    );
  }

  /**
   * One console connection without a socket file (the in-process transport,
   * `embedded(runtime)` in the client): a socketpair whose one end this
   * runtime's console server serves as a global console with `permissions`;
   * returns the other end, for a `Client`.
   */
  openConsole(permissions: 'full' | readonly string[] = 'full'): net.Socket {
    const server = this.parts.console;
    if (!server || this.teardown) throw new Error('the runtime is not running: no console to connect to');
    const [ours, theirs] = native().socketpair('stream');
    server.serve(new net.Socket({ fd: ours, readable: true, writable: true }), permissions);
    return new net.Socket({ fd: theirs, readable: true, writable: true });
  }

  /** Asks for an orderly shutdown; resolves when it is complete. */
  async shutdown(): Promise<Stopped> {
    const sup = this.sup;
    if (sup && sup.getSnapshot().status === 'active') {
      await request(sup, { type: 'shutdown' }).catch((e) => log.debug(`shutdown: ${(e as Error).message}`));
    } else if (!this.teardown) {
      await this.finish(undefined);
    }
    return this.stopped;
  }

  private async finish(error: RuntimeError | undefined): Promise<void> {
    if (error) log.error(`Shutting down: ${error.message}`);
    await this.tearDown();
    log.info('Shutdown complete');
    this.resolveStopped(error ? { ok: false, reason: error.message } : { ok: true });
  }

  /** Reverse of boot; each step runs even when an earlier one failed. */
  private tearDown(): Promise<void> {
    this.teardown ??= (async () => {
      const { parts } = this;
      const step = async (what: string, fn: () => unknown) => {
        try {
          await fn();
        } catch (e) {
          log.warn(`Shutdown: ${what}: ${(e as Error).message}`);
        }
      };
      for (const c of parts.consoles.values()) c.close();
      if (parts.console) await step('console', () => parts.console!.close());
      if (parts.inspector) await step('inspector', () => parts.inspector!.close());
      if (parts.pool) await step('mount pool', () => parts.pool!.close());
      if (parts.netns) await step('network namespaces', () => parts.netns!.close());
      for (const r of parts.repositories) await step(`repository ${r.id}`, () => r.close());
      if (parts.tree) await step('cgroups', () => parts.tree!.destroy());
      await step('output', () => parts.output.close());
      await step('journal', () => parts.journal.remove());
    })();
    return this.teardown;
  }

  /** The real I/O behind the machines' actors, with the journal and console hooks. */
  private io(): Io {
    const { parts } = this;
    return ioFrom(
      { pool: parts.pool!, tree: parts.tree!, launch: (spec) => this.launch(spec) },
      {
        onMounted: (_input, out) => parts.journal.addMount(out.target, out.device),
        onUnmounted: (input) => parts.journal.removeMount(input.target),
        onSpawned: (_container, pid) => parts.journal.addPid(pid),
        onExited: (container, pid) => {
          parts.journal.removePid(pid);
          parts.consoles.get(container)?.close();
          parts.consoles.delete(container);
        },
        spawnDebug: (container, argv) => spawnDebug(container, argv),
        repositories: new Map(parts.repositories.map((r) => [r.id, r])),
      },
    );
  }

  /** What the launch plan needs opened (launchNeeds: a prepared namespace, the console's socketpair), then launched. */
  private async launch(spec: LaunchSpec): Promise<Awaited<ReturnType<typeof launch>>> {
    const m = spec.manifest;
    const full: LaunchSpec = { ...spec };
    const needs = launchNeeds(m, this.parts.console !== undefined);
    if (needs.netns) full.netnsFd = this.parts.netns?.take();
    let ours: number | undefined;
    if (needs.console) {
      const [a, b] = native().socketpair('stream');
      ours = a;
      full.consoleFd = b;
    }
    try {
      // The next namespace is made while this container runs: made during its
      // clone or its init's setup, it would slow them (kernel locks they share).
      const launched = await launch(full, { outputs: this.parts.output }).catch((e: unknown) => {
        this.parts.netns?.refill();
        throw e;
      });
      launched.started.then(
        () => this.parts.netns?.refill(),
        () => this.parts.netns?.refill(),
      );
      if (ours !== undefined) {
        this.parts.consoles.set(
          spec.container,
          this.parts.console!.adopt(ours, { container: spec.container, permissions: m.console!.permissions }),
        );
      }
      return launched;
    } catch (e) {
      if (ours !== undefined) closeSync(ours);
      throw e;
    }
  }
}

/** One line per repository without a key: what it holds is neither signature-checked nor verity-verified (SECURITY.md). */
export function unkeyedWarnings(config: Config): string[] {
  return Object.entries(config.repositories)
    .filter(([, r]) => r.key === undefined)
    .map(([id, r]) => {
      const where = r.type === 'mem' ? 'mem' : `fs ${r.type.fs.dir}`;
      return `Repository ${id} (${where}) is unkeyed: its NPKs are neither signature-checked nor verified; give it a key to verify them (see SECURITY.md)`;
    });
}

async function loadRepositories(config: Config): Promise<Repository[]> {
  const repos: Repository[] = [];
  for (const [id, r] of Object.entries(config.repositories)) {
    const key = r.key ? await readKey(id, r.key) : undefined;
    const opts = { id, key, capacityNum: r.capacityNum, capacitySize: r.capacitySize };
    if (r.type === 'mem') {
      repos.push(new MemRepository(opts));
      continue;
    }
    const repo = new FsRepository(r.type.fs.dir, opts);
    const { skipped } = await repo.load();
    for (const s of skipped) log.warn(`Repository ${id}: skipped ${s.path}: ${s.error}`);
    log.info(`Repository ${id}: ${repo.containers.size} containers in ${r.type.fs.dir}`);
    repos.push(repo);
  }
  return repos;
}

async function readKey(repository: string, path: string): Promise<Buffer> {
  let key: Buffer;
  try {
    key = await readFile(path);
  } catch (e) {
    throw new Error(`repository ${repository}: cannot read key ${path}: ${(e as Error).message}`);
  }
  if (key.length !== 32) throw new Error(`repository ${repository}: key ${path} has ${key.length} bytes, expected a raw 32-byte ed25519 public key`);
  return key;
}

/** A debug command: output logged with the container as target; not killed at the container's exit. */
function spawnDebug(container: string, argv: string[]): void {
  const clog = new Logger(container);
  const [cmd, ...args] = argv;
  if (!cmd) return;
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  child.on('error', (e) => clog.warn(`debug command ${cmd}: ${e.message}`));
  for (const s of [child.stdout, child.stderr]) {
    s.on('error', (e) => clog.warn(`debug command ${cmd}: output: ${e.message}`));
    // Bounded lines, as a container's own output (a command that never writes a newline must not grow our memory).
    const lines = new LineSplitter((l) => clog.info(l));
    s.on('data', (d: Buffer) => lines.push(d));
    s.on('end', () => lines.end());
  }
}
