// The console listener (spec/console.md §4): the global console on a unix or
// TCP socket, and container consoles on the runtime's end of a socketpair.
// It is independent of the runtime: everything a request does beyond the
// protocol goes through a ConsoleBackend, which the runtime implements over
// its supervisor. The server itself answers `ident`, `token_create` and
// `token_verify` (tokens are per process, keyed by the connection), checks
// permissions, throttles, streams installs and fans out notifications.
// Main thread.
import { EventEmitter } from 'node:events';
import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import type { Duplex } from 'node:stream';

import semver from 'semver';

import { Logger } from '../log.js';
import { RuntimeError } from '../model/errors.js';
import { COMPATIBLE, VERSION } from '../model/version.js';
import { encodeMessage, FrameReader, LineTooLong, ReadTimeout } from './codec.js';
import {
  canonicalResponse,
  decodeConnect,
  decodeRequest,
  errorResponse,
  ProtocolError,
  requestName,
  type InstallResult,
  type Message,
  type Notification,
  type Request,
  type Response,
} from './protocol.js';
import { formatPermissions, permissionSet, requiredPermission, type Permissions } from './permissions.js';
import { Throttle } from './throttle.js';
import { tokens as defaultTokens, type TokenAuthority } from './token.js';

/** Limits of one console (config `console.options` / `console.global.options`; camelCase as in Config). */
export interface ConsoleOptions {
  tokenValidityMs: number;
  maxRequestsPerSec: number;
  maxRequestSize: number;
  maxNpkInstallSize: number;
  npkStreamTimeoutMs: number;
}

export const DEFAULT_CONSOLE_OPTIONS: ConsoleOptions = {
  tokenValidityMs: 60_000,
  maxRequestsPerSec: 1000,
  maxRequestSize: 1024 * 1024,
  maxNpkInstallSize: 256 * 1024 * 1024,
  npkStreamTimeoutMs: 10_000,
};

export const DEFAULT_PORT = 4200;
/** Global connections must send `connect` within this time; container connections have no deadline. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;
/** The Rust client copies NPKs with a 1 MiB buffer; we hand the backend chunks of at most this. */
export const INSTALL_CHUNK = 1024 * 1024;

export type Peer = { type: 'remote'; url: string } | { type: 'container'; container: string };

/** Northstar's Display of a peer: `Remote(tcp://1.2.3.4:5)` or `Container(name:ver)`. */
export function formatPeer(p: Peer): string {
  return p.type === 'remote' ? `Remote(${p.url})` : `Container(${p.container})`;
}

export interface RequestContext {
  peer: Peer;
  /** The container of a container console ("name:version"). */
  container?: string;
}

/**
 * What the runtime provides to the console.
 *
 * - `request` gets every request except `ident`, `token_create`, `token_verify`
 *   and `install` (the server answers the first three, `install` goes to
 *   `install`), only after the permission check. It resolves to the matching
 *   Response variant (`{start: {ok|error}}`, `{list: [...]}`, `"shutdown"`...).
 *   A rejection becomes the request's error variant with `unexpected`.
 *   After answering `shutdown` the runtime shuts down and calls `server.close()`.
 * - `install` consumes `data` (exactly `size` bytes in chunks, each chunk
 *   arriving within `npk_stream_timeout`; the iterator throws when the peer is
 *   too slow or goes away). It may stop reading early (e.g. invalid
 *   repository): the server drains the rest before it answers.
 * - `subscribe` registers the notification sink; it must not block. The
 *   returned function unsubscribes.
 */
export interface ConsoleBackend {
  request(req: Request, ctx: RequestContext): Promise<Response>;
  install(repository: string, size: number, data: AsyncIterable<Buffer>, ctx: RequestContext): Promise<InstallResult>;
  subscribe(cb: (n: Notification) => void): () => void;
}

export interface ServerOptions {
  /** Notifications queued for one connection before it counts as lagging and is closed (config notification_buffer_size). */
  notificationBufferSize?: number;
  /** Options of container consoles (config `console.options`). */
  containerOptions?: Partial<ConsoleOptions>;
  handshakeTimeoutMs?: number;
  tokens?: TokenAuthority;
}

export interface ContainerConsole {
  /** Closes the container's console connection (the container exited). */
  close(): void;
  readonly closed: Promise<void>;
}

/** `unix:///path` or `tcp://host[:port]` (default port 4200). */
export type BindAddress = { type: 'unix'; path: string } | { type: 'tcp'; host: string; port: number };

export function parseBindUrl(url: string): BindAddress {
  if (url.startsWith('unix://')) {
    const path = url.slice('unix://'.length);
    if (!path) throw new Error(`invalid console url "${url}": missing path`);
    return { type: 'unix', path };
  }
  if (url.startsWith('tcp://')) {
    let u: URL;
    try {
      u = new URL(url);
    } catch {
      throw new Error(`invalid console url "${url}"`);
    }
    const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
    if (!host) throw new Error(`invalid console url "${url}": missing host`);
    return { type: 'tcp', host, port: u.port ? Number(u.port) : DEFAULT_PORT };
  }
  throw new Error(`invalid console url "${url}": the scheme must be tcp or unix`);
}

const log = new Logger('console');

interface Listener {
  server: net.Server;
  unixPath?: string;
}

export class ConsoleServer extends EventEmitter {
  private readonly binds: Listener[] = [];
  private readonly connections = new Set<Connection>();
  private unsubscribe: (() => void) | undefined;
  private closing = false;
  readonly notificationBufferSize: number;
  readonly containerOptions: ConsoleOptions;
  readonly handshakeTimeoutMs: number;
  readonly tokens: TokenAuthority;

  constructor(
    readonly backend: ConsoleBackend,
    opts: ServerOptions = {},
  ) {
    super();
    this.notificationBufferSize = opts.notificationBufferSize ?? 128;
    this.containerOptions = { ...DEFAULT_CONSOLE_OPTIONS, ...opts.containerOptions };
    this.handshakeTimeoutMs = opts.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
    this.tokens = opts.tokens ?? defaultTokens;
  }

  /** Open connections (global and container). */
  get connectionCount(): number {
    return this.connections.size;
  }

  /**
   * Listens on `unix:///path` (an existing socket file is replaced) or
   * `tcp://host:port`. Resolves to the bound url (tcp port 0 → the real port).
   */
  async listen(
    url: string,
    permissions: 'full' | readonly string[] | Permissions,
    options: Partial<ConsoleOptions> = {},
  ): Promise<string> {
    const addr = parseBindUrl(url);
    const perms = permissions instanceof Set ? (permissions as Permissions) : permissionSet(permissions as 'full' | string[]);
    const opts = { ...DEFAULT_CONSOLE_OPTIONS, ...options };
    this.ensureSubscribed();
    const server = net.createServer((socket) => {
      const peer: Peer =
        addr.type === 'unix'
          ? { type: 'remote', url: `unix://${addr.path}` }
          : { type: 'remote', url: `tcp://${socket.remoteAddress}:${socket.remotePort}` };
      this.accept(socket, peer, perms, opts, undefined);
    });
    if (addr.type === 'unix') removeStaleSocket(addr.path);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if (addr.type === 'unix') server.listen(addr.path, resolve);
      else server.listen(addr.port, addr.host, resolve);
    });
    server.on('error', (e) => log.warn(`Console listener ${url}: ${e.message}`));
    this.binds.push({ server, unixPath: addr.type === 'unix' ? addr.path : undefined });
    if (addr.type === 'unix') return `unix://${addr.path}`;
    const a = server.address() as net.AddressInfo;
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address;
    log.info(`Console listening on tcp://${host}:${a.port}`);
    return `tcp://${host}:${a.port}`;
  }

  /**
   * Serves a container's console on the runtime's end of its socketpair (an fd
   * this process owns, or a stream). The connection has no handshake deadline
   * and is closed when the container exits (`close()` on the handle).
   */
  adopt(
    fdOrStream: number | Duplex,
    c: { container: string; permissions: 'full' | readonly string[] | Permissions },
  ): ContainerConsole {
    const socket = typeof fdOrStream === 'number' ? new net.Socket({ fd: fdOrStream, readable: true, writable: true }) : fdOrStream;
    const perms = c.permissions instanceof Set ? (c.permissions as Permissions) : permissionSet(c.permissions as 'full' | string[]);
    this.ensureSubscribed();
    const conn = this.accept(socket, { type: 'container', container: c.container }, perms, this.containerOptions, c.container);
    return { close: () => conn.close('container exited'), closed: conn.closed };
  }

  /** Closes every console connection of `container`. */
  disconnect(container: string): void {
    for (const c of this.connections) if (c.container === container) c.close('container exited');
  }

  private accept(socket: Duplex, peer: Peer, perms: Permissions, opts: ConsoleOptions, container: string | undefined): Connection {
    const conn = new Connection(this, socket, peer, perms, opts, container);
    if (this.closing) {
      conn.close('console is shutting down');
      return conn;
    }
    this.connections.add(conn);
    void conn.closed.then(() => {
      this.connections.delete(conn);
      this.emit('disconnected', peer, conn.closeReason);
    });
    void conn.run();
    return conn;
  }

  private ensureSubscribed(): void {
    this.unsubscribe ??= this.backend.subscribe((n) => {
      for (const c of this.connections) c.notify(n);
    });
  }

  /**
   * Stops listening, sends `shutdown` to subscribers that have not seen it
   * (deviation 6) and closes every connection.
   */
  async close(): Promise<void> {
    if (this.closing) return;
    this.closing = true;
    this.unsubscribe?.();
    const stopped = this.binds.map(
      (l) =>
        new Promise<void>((resolve) => {
          l.server.close(() => resolve());
        }),
    );
    const conns = [...this.connections];
    for (const c of conns) c.shutdown();
    await Promise.all([...stopped, ...conns.map((c) => c.closed)]);
    for (const l of this.binds) if (l.unixPath) removeStaleSocket(l.unixPath);
    this.binds.length = 0;
  }
}

function removeStaleSocket(path: string): void {
  if (!existsSync(path)) return;
  const st = lstatSync(path);
  if (st.isDirectory()) throw new Error(`console socket path ${path} is a directory`);
  unlinkSync(path);
}

/** Ends the connection: invalid framing, a lagging subscriber, a timeout, shutdown. */
class Close extends Error {}

class Connection {
  readonly closed: Promise<void>;
  closeReason = '';
  private resolveClosed!: () => void;
  private readonly reader: FrameReader;
  private readonly throttle: Throttle;
  private subscribed = false;
  private shutdownSent = false;
  private ended = false;
  private readonly queue: string[] = [];
  private pumping = false;
  /** A request is being handled: shutdown waits for its response. */
  private inFlight = false;
  private closing = false;

  constructor(
    private readonly server: ConsoleServer,
    private readonly socket: Duplex,
    readonly peer: Peer,
    private readonly perms: Permissions,
    private readonly opts: ConsoleOptions,
    readonly container: string | undefined,
  ) {
    this.closed = new Promise((r) => (this.resolveClosed = r));
    this.reader = new FrameReader(socket, opts.maxRequestSize);
    this.throttle = new Throttle(opts.maxRequestsPerSec);
    socket.on('error', (e) => log.debug(`${formatPeer(peer)}: ${e.message}`));
    socket.on('close', () => this.finish('peer closed'));
  }

  private finish(reason: string): void {
    if (this.ended) return;
    this.ended = true;
    this.closeReason ||= reason;
    this.resolveClosed();
  }

  close(reason: string): void {
    this.closeReason ||= reason;
    if (this.ended) return;
    this.socket.destroy();
    this.finish(reason);
  }

  /**
   * Sends `shutdown` if subscribed, then ends the stream after what is
   * queued. A request in flight (e.g. the `shutdown` request that caused
   * this) gets its response first.
   */
  shutdown(): void {
    if (this.subscribed && !this.shutdownSent) {
      this.shutdownSent = true;
      this.queue.push(encodeMessage({ notification: 'shutdown' }));
    }
    this.closeReason ||= 'console is shutting down';
    this.closing = true;
    this.endWhenIdle();
    // A peer that never reads must not hold the shutdown.
    setTimeout(() => this.close('console is shutting down'), 1000).unref();
  }

  private endWhenIdle(): void {
    if (!this.closing || this.inFlight || this.ended) return;
    this.pump();
    if (this.queue.length === 0) this.socket.end();
    else this.socket.once('drain', () => this.endWhenIdle());
  }

  /** Queues a notification; a subscriber more than notificationBufferSize behind is closed. */
  notify(n: Notification): void {
    if (!this.subscribed || this.ended || this.shutdownSent) return;
    if (n === 'shutdown') this.shutdownSent = true;
    if (this.queue.length >= this.server.notificationBufferSize) {
      log.warn(`${formatPeer(this.peer)} lags behind notifications: disconnecting`);
      this.close('notification lag');
      return;
    }
    this.queue.push(encodeMessage({ notification: n }));
    this.pump();
  }

  private pump(): void {
    if (this.pumping) return;
    while (this.queue.length > 0 && !this.ended) {
      const ok = this.socket.write(this.queue.shift()!);
      if (!ok) {
        this.pumping = true;
        this.socket.once('drain', () => {
          this.pumping = false;
          this.pump();
        });
        return;
      }
    }
  }

  private send(m: Message): void {
    if (!this.ended && !this.socket.writableEnded) this.socket.write(encodeMessage(m));
  }

  async run(): Promise<void> {
    try {
      if (!(await this.handshake())) return;
      for (;;) {
        await this.throttle.admit();
        const line = await this.reader.readLine();
        if (line === null) return this.close('peer closed');
        if (this.closing) continue; // no new requests once shutting down; wait for EOF or the deadline
        await this.message(line);
      }
    } catch (e) {
      if (e instanceof LineTooLong) log.warn(`${formatPeer(this.peer)}: request ${e.message}: closing`);
      else if (e instanceof ReadTimeout) log.warn(`${formatPeer(this.peer)}: ${e.message}: closing`);
      else if (!(e instanceof Close)) log.debug(`${formatPeer(this.peer)}: ${(e as Error).message}`);
      this.close(e instanceof Error ? e.message : String(e));
    }
  }

  /** Reads `connect`; answers ack or nack. False when the connection is done. */
  private async handshake(): Promise<boolean> {
    const timeout = this.container === undefined ? this.server.handshakeTimeoutMs : undefined;
    const line = await this.reader.readLine(timeout);
    if (line === null) return (this.close('peer closed before connect'), false);
    let connect;
    try {
      const v = JSON.parse(line) as Record<string, unknown>;
      if (typeof v !== 'object' || v === null || !('connect' in v)) throw new ProtocolError('expected connect');
      connect = decodeConnect(v.connect);
    } catch {
      return (this.close('first message is not connect'), false);
    }
    const version = semver.valid(connect.version);
    if (!version || !semver.satisfies(version, COMPATIBLE)) {
      log.warn(`${formatPeer(this.peer)}: client version ${connect.version} does not satisfy ${COMPATIBLE}`);
      this.send({ connect_nack: { invalid_protocol_version: { version: VERSION } } });
      this.socket.end();
      return (this.finishAfterFlush('invalid protocol version'), false);
    }
    if (connect.subscribe_notifications && !this.perms.has('notifications')) {
      this.send({ connect_nack: 'permission_denied' });
      this.socket.end();
      return (this.finishAfterFlush('notifications not permitted'), false);
    }
    this.send({ connect_ack: null });
    this.subscribed = connect.subscribe_notifications;
    const p = formatPermissions(this.perms);
    if (this.container) log.info(`Container ${this.container} connected with permissions ${p}`);
    else log.info(`Client ${formatPeer(this.peer)} connected with permissions ${p}`);
    this.server.emit('connected', this.peer);
    return true;
  }

  private finishAfterFlush(reason: string): void {
    this.closeReason ||= reason;
    setTimeout(() => this.close(reason), 1000).unref();
  }

  private async message(line: string): Promise<void> {
    let value: unknown;
    try {
      value = JSON.parse(line);
    } catch {
      // Northstar's codec fails on invalid JSON: the connection ends without a response.
      throw new Close('invalid JSON');
    }
    const tagged = typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : undefined;
    if (!tagged || Object.keys(tagged).length !== 1 || !('request' in tagged)) {
      this.send({ response: { error: { invalid_arguments: { cause: 'expected a request message {"request":...}' } } } });
      return;
    }
    let req: Request;
    try {
      req = decodeRequest(tagged.request);
    } catch (e) {
      const cause = e instanceof ProtocolError ? e.message : String(e);
      this.send({ response: { error: { invalid_arguments: { cause } } } });
      // A broken install request leaves an unknown number of raw bytes behind.
      if (isInstallAttempt(tagged.request)) throw new Close(`invalid install request: ${cause}`);
      return;
    }
    this.inFlight = true;
    try {
      const response = await this.handle(req);
      this.send({ response: canonicalResponse(response) });
    } finally {
      this.inFlight = false;
      this.endWhenIdle();
    }
  }

  private ctx() {
    return { peer: this.peer, container: this.container };
  }

  private ownName(): string {
    return this.container ? this.container.slice(0, this.container.indexOf(':')) : 'extern';
  }

  private async handle(req: Request): Promise<Response> {
    if (typeof req === 'object' && 'install' in req) return this.install(req.install.repository, req.install.size);
    if (!this.perms.has(requiredPermission(req))) return { permission_denied: req };
    if (req === 'ident') return { ident: this.container ?? 'extern:0.0.0' };
    if (typeof req === 'object' && 'token_create' in req) {
      const t = req.token_create;
      return { token: this.server.tokens.create(this.ownName(), t.target, Buffer.from(t.shared, 'base64')) };
    }
    if (typeof req === 'object' && 'token_verify' in req) {
      const t = req.token_verify;
      const r = this.server.tokens.verify(t.token, t.user, this.ownName(), Buffer.from(t.shared, 'base64'), this.opts.tokenValidityMs);
      return { token_verification: r };
    }
    try {
      return await this.server.backend.request(req, this.ctx());
    } catch (e) {
      log.warn(`${formatPeer(this.peer)}: ${requestName(req)} failed: ${(e as Error).message}`);
      return errorResponse(req, RuntimeError.from(e).toWire());
    }
  }

  /**
   * Streams `size` raw bytes to the backend. Over the size limit the
   * connection closes unanswered (before reading). Without permission the
   * bytes are drained (deviation 5: never parsed as JSON).
   */
  private async install(repository: string, size: number): Promise<Response> {
    if (size > this.opts.maxNpkInstallSize) {
      log.warn(`${formatPeer(this.peer)}: install of ${size} bytes exceeds max_npk_install_size ${this.opts.maxNpkInstallSize}`);
      throw new Close('npk too large');
    }
    const req: Request = { install: { repository, size } };
    let left = size;
    const timeout = this.opts.npkStreamTimeoutMs;
    const reader = this.reader;
    let streamFailure: unknown;
    const data = async function* (): AsyncGenerator<Buffer> {
      while (left > 0) {
        let b: Buffer | null;
        try {
          b = await reader.readChunk(Math.min(INSTALL_CHUNK, left), timeout);
        } catch (e) {
          streamFailure = e;
          throw e;
        }
        if (b === null) {
          streamFailure = new Error(`npk stream ended with ${left} of ${size} bytes missing`);
          throw streamFailure;
        }
        left -= b.length;
        yield b;
      }
    };
    let result: Response;
    if (!this.perms.has('install')) {
      result = { permission_denied: req };
    } else {
      try {
        result = { install: await this.server.backend.install(repository, size, data(), this.ctx()) };
      } catch (e) {
        if (streamFailure) throw new Close(`install stream: ${(streamFailure as Error).message}`);
        result = { install: { error: { error: RuntimeError.from(e).toWire() } } };
      }
    }
    if (streamFailure) throw new Close(`install stream: ${(streamFailure as Error).message}`);
    for await (const _ of data()) {
      // drained: the bytes belong to this request, not to the next line
    }
    return result;
  }
}

function isInstallAttempt(v: unknown): boolean {
  return typeof v === 'object' && v !== null && 'install' in v;
}
