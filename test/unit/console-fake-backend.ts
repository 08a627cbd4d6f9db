// A ConsoleBackend with a few containers in memory, for console, client and
// CLI tests. It answers like the runtime (spec/console.md §4.7) without
// mounting or starting anything, and records what it was asked.
import { createHash } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import type { ConsoleBackend, RequestContext } from '../../src/console/server.js';
import { ConsoleServer, type ServerOptions } from '../../src/console/server.js';
import type { Inspected } from '../../src/console/backend.js';
import type { InstallResult, Request, Response, StatCategory } from '../../src/console/protocol.js';
import type { ContainerData } from '../../src/model/container-data.js';
import { errors } from '../../src/model/errors.js';
import type { Manifest } from '../../src/model/manifest.js';
import type { Notification } from '../../src/model/notification.js';
import { err, ok } from '../../src/console/protocol.js';

interface Entry {
  repository: string;
  mounted: boolean;
  pid: number | null;
  resource: boolean;
  /** The machine state reported by inspect (our extension); default: what pid and mounted say. */
  state?: string;
  /** The process statistics reported by inspect (default {}). */
  statistics?: Record<string, unknown>;
  /** Supervision (manifest `restart`/`health`) reported by inspect; absent: not reported. */
  restarts?: ContainerData['restarts'];
  health?: ContainerData['health'];
}

/** The empty collections of a parsed manifest, which its serialization leaves out. */
const MANIFEST_DEFAULTS = { args: [], env: {}, mounts: {}, capabilities: [], suppl_groups: [], rlimits: {}, sockets: {} };

export class FakeBackend implements ConsoleBackend {
  readonly containers = new Map<string, Entry>([
    ['hello-world:0.0.1', { repository: 'mem', mounted: false, pid: null, resource: false }],
    ['message:0.0.2', { repository: 'fs', mounted: true, pid: null, resource: true }],
    ['crashing:0.0.1', { repository: 'mem', mounted: true, pid: 4242, resource: false }],
  ]);
  readonly repos = ['mem', 'fs'];
  readonly requests: { req: Request; ctx: RequestContext }[] = [];
  readonly installs: { repository: string; size: number; sha256: string }[] = [];
  private readonly sinks = new Set<(n: Notification) => void>();
  /** When set, install() waits for this before reading (slow consumer tests). */
  installGate: Promise<void> | undefined;
  /** Called after a shutdown request was answered (startServer closes the server, as the runtime does). */
  onShutdown: (() => void) | undefined;

  emit(n: Notification): void {
    for (const s of this.sinks) s(n);
  }

  subscribe(cb: (n: Notification) => void): () => void {
    this.sinks.add(cb);
    return () => this.sinks.delete(cb);
  }

  async install(repository: string, size: number, data: AsyncIterable<Buffer>): Promise<InstallResult> {
    if (!this.repos.includes(repository)) return { error: { error: { invalid_repository: { repository } } } };
    await this.installGate;
    const h = createHash('sha256');
    let n = 0;
    for await (const c of data) {
      h.update(c);
      n += c.length;
    }
    const sha256 = h.digest('hex');
    this.installs.push({ repository, size: n, sha256 });
    const container = `installed-${this.installs.length}:0.0.1`;
    this.containers.set(container, { repository, mounted: false, pid: null, resource: false });
    this.emit({ type: 'install', container });
    return { ok: { container } };
  }

  async inspect(c: string, statistics: StatCategory[] | undefined, ctx: RequestContext): Promise<Inspected> {
    this.requests.push({ req: { inspect: statistics === undefined ? { container: c } : { container: c, statistics } }, ctx });
    const e = this.containers.get(c);
    if (!e) throw errors.invalidContainer(c);
    const [name, version] = c.split(':');
    // Only what a manifest's serialization reads: it comes out as {name, version[, init]}.
    const manifest = { name, version, ...(e.resource ? {} : { init: '/bin/probe' }), ...MANIFEST_DEFAULTS } as unknown as Manifest;
    const data: Inspected = {
      container: c,
      manifest,
      repository: e.repository,
      mounted: e.mounted,
      process: e.pid === null ? null : { pid: e.pid, uptime: 1_500_000_000, statistics: e.statistics ?? {} },
      state: e.state ?? (e.pid !== null ? 'started.running' : e.mounted ? 'mounted' : 'unmounted'),
    };
    if (e.restarts !== undefined) data.restarts = e.restarts;
    if (e.health !== undefined) data.health = e.health;
    return data;
  }

  async request(req: Request, ctx: RequestContext): Promise<Response> {
    this.requests.push({ req, ctx });
    if (req === 'list') return { list: [...this.containers.keys()] };
    if (req === 'repositories') return { repositories: this.repos };
    if (req === 'shutdown') {
      setImmediate(() => this.onShutdown?.());
      return 'shutdown';
    }
    if (typeof req === 'string') throw new Error(`fake backend: unexpected ${req}`);
    if ('mount' in req) {
      return {
        mount: req.mount.containers.map((c) => {
          const e = this.containers.get(c);
          if (!e) return err(c, { invalid_container: { container: c } });
          if (e.mounted) return err(c, { mount_busy: { container: c } });
          e.mounted = true;
          return ok(c);
        }),
      };
    }
    if ('umount' in req) {
      return {
        umount: req.umount.containers.map((c) => {
          const e = this.containers.get(c);
          if (!e) return err(c, { invalid_container: { container: c } });
          if (!e.mounted || e.pid !== null) return err(c, { umount_busy: { container: c } });
          e.mounted = false;
          return ok(c);
        }),
      };
    }
    const [name, body] = Object.entries(req)[0] as [string, { container: string }];
    const c = body.container;
    const e = this.containers.get(c);
    const result = (r: ReturnType<typeof ok>) => ({ [name]: r }) as Response;
    if (name === 'exec') {
      if (!e || e.pid === null) return { exec: { error: { container: c, error: { stop_container_not_started: { container: c } } } } };
      return { exec: { ok: { container: c, pid: 5000, status: (req as { exec: { wait: boolean } }).exec.wait ? { exit: { code: 0 } } : null } } };
    }
    if (!e) return result(err(c, { invalid_container: { container: c } }));
    switch (name) {
      case 'start':
        if (e.pid !== null) return result(err(c, { start_container_started: { container: c } }));
        e.pid = 1000 + this.requests.length;
        e.mounted = true;
        this.emit({ type: 'started', container: c });
        return result(ok(c));
      case 'kill':
      case 'stop':
        if (e.pid === null) return result(err(c, { stop_container_not_started: { container: c } }));
        e.pid = null;
        this.emit({ type: 'exit', container: c, status: { signalled: { signal: 15 } } });
        return result(ok(c));
      case 'pause':
      case 'resume':
        if (e.pid === null) return result(err(c, { stop_container_not_started: { container: c } }));
        e.state = name === 'pause' ? 'started.paused' : 'started.running';
        return result(ok(c));
      case 'uninstall':
        if (e.pid !== null) return result(err(c, { umount_busy: { container: c } }));
        this.containers.delete(c);
        this.emit({ type: 'uninstall', container: c });
        return result(ok(c));
    }
    throw new Error(`fake backend: unexpected request ${name}`);
  }
}

export interface Harness {
  backend: FakeBackend;
  server: ConsoleServer;
  url: string;
  dir: string;
}

/** A server on a fresh unix socket (or tcp on a free port) with a FakeBackend; closed after the test. */
export async function startServer(
  t: { after(fn: () => unknown): void },
  o: {
    transport?: 'unix' | 'tcp';
    permissions?: 'full' | string[];
    options?: Parameters<ConsoleServer['listen']>[2];
    server?: ServerOptions;
  } = {},
): Promise<Harness> {
  const backend = new FakeBackend();
  const server = new ConsoleServer(backend, o.server);
  const dir = mkdtempSync(join(tmpdir(), 'nstar-console-'));
  const bind = o.transport === 'tcp' ? 'tcp://127.0.0.1:0' : `unix://${join(dir, 'console')}`;
  const url = await server.listen(bind, o.permissions ?? 'full', o.options);
  backend.onShutdown = () => void server.close();
  t.after(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });
  return { backend, server, url, dir };
}

/** A raw socket speaking lines, for wire tests that bypass our client and codec. */
export class RawPeer {
  private buf = '';
  private readonly lines: string[] = [];
  private waiter: (() => void) | undefined;
  ended = false;

  constructor(readonly socket: net.Socket) {
    socket.setEncoding('utf8');
    socket.on('data', (d: string) => {
      this.buf += d;
      let i: number;
      while ((i = this.buf.indexOf('\n')) >= 0) {
        this.lines.push(this.buf.slice(0, i));
        this.buf = this.buf.slice(i + 1);
      }
      this.wake();
    });
    socket.on('close', () => {
      this.ended = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  static async connect(url: string): Promise<RawPeer> {
    const s = url.startsWith('unix://')
      ? net.connect({ path: url.slice(7) })
      : net.connect({ host: new URL(url).hostname, port: Number(new URL(url).port) });
    await new Promise<void>((resolve, reject) => {
      s.once('connect', resolve);
      s.once('error', reject);
    });
    return new RawPeer(s);
  }

  private wake(): void {
    const w = this.waiter;
    this.waiter = undefined;
    w?.();
  }

  send(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** The next line, or null when the connection closed first. */
  async line(): Promise<string | null> {
    for (;;) {
      if (this.lines.length > 0) return this.lines.shift()!;
      if (this.ended) return null;
      await new Promise<void>((r) => (this.waiter = r));
    }
  }

  /** Resolves once the server closed the connection; the lines received before are returned. */
  async closed(): Promise<string[]> {
    while (!this.ended) await new Promise<void>((r) => (this.waiter = r));
    return this.lines.splice(0);
  }

  /** Sends connect and expects connect_ack. */
  async handshake(subscribe = false): Promise<void> {
    this.send(`{"connect":{"version":"0.9.3","subscribe_notifications":${subscribe}}}\n`);
    const l = await this.line();
    if (l !== '{"connect_ack":null}') throw new Error(`handshake: got ${l}`);
  }

  close(): void {
    this.socket.destroy();
  }
}
