// The console listener (spec/console.md §4): the global console on a unix or
// TCP socket, and container consoles on the runtime's end of a socketpair.
// It is independent of the runtime: everything a request does beyond the
// protocol goes through a ConsoleBackend (backend.ts), which the runtime
// implements over its supervisor. Each connection (connection.ts) answers
// `ident`, `token_create` and `token_verify` itself (tokens are per process,
// keyed by the connection), checks permissions, throttles, streams installs
// and queues notifications.
// Main thread.
import { EventEmitter } from 'node:events';
import { chmodSync, chownSync, existsSync, lstatSync, readFileSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import type { Duplex } from 'node:stream';

import { Logger } from '../log.js';
import { parseBindUrl } from '../model/bind-url.js';
import { DEFAULT_SOCKET_MODE } from '../model/config.js';
import { DEFAULT_CONSOLE_OPTIONS, HANDSHAKE_TIMEOUT_MS, type ConsoleBackend, type ConsoleOptions, type Peer } from './backend.js';
import { Connection } from './connection.js';
import { formatPermissions, permissionSet, type Permissions } from './permissions.js';
import { tokens as defaultTokens, type TokenAuthority } from './token.js';

export * from './backend.js';
export { INSTALL_CHUNK } from './connection.js';

export interface ServerOptions {
  /** Notifications queued for one connection before it counts as lagging and is closed (config notification_buffer_size). */
  notificationBufferSize?: number;
  /** Options of container consoles (config `console.options`). */
  containerOptions?: Partial<ConsoleOptions>;
  handshakeTimeoutMs?: number;
  /** Overall deadline of one install stream (config install_timeout); absent: proportional to its size. */
  installTimeoutMs?: number;
  tokens?: TokenAuthority;
}

/** Who may connect to a unix console socket (config `socket_mode`, `socket_group`). */
export interface SocketAccess {
  /** Permission bits; DEFAULT_SOCKET_MODE (0600, root only) when absent. */
  mode?: number;
  /** A group name (resolved with /etc/group) or a numeric gid. */
  group?: string | number;
}

export interface ContainerConsole {
  /** Closes the container's console connection (the container exited). */
  close(): void;
  readonly closed: Promise<void>;
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
  readonly installTimeoutMs?: number;
  readonly tokens: TokenAuthority;

  constructor(
    readonly backend: ConsoleBackend,
    opts: ServerOptions = {},
  ) {
    super();
    this.notificationBufferSize = opts.notificationBufferSize ?? 128;
    this.containerOptions = { ...DEFAULT_CONSOLE_OPTIONS, ...opts.containerOptions };
    this.handshakeTimeoutMs = opts.handshakeTimeoutMs ?? HANDSHAKE_TIMEOUT_MS;
    this.installTimeoutMs = opts.installTimeoutMs;
    this.tokens = opts.tokens ?? defaultTokens;
  }

  /** Open connections (global and container). */
  get connectionCount(): number {
    return this.connections.size;
  }

  /**
   * Listens on `unix:///path` (an existing socket file is replaced) or
   * `tcp://host:port`. Resolves to the bound url (tcp port 0 → the real port).
   * A unix socket gets `access.mode` (0600 by default) and group whatever the
   * umask: connecting to it is getting a console with `permissions`.
   */
  async listen(
    url: string,
    permissions: 'full' | readonly string[] | Permissions,
    options: Partial<ConsoleOptions> = {},
    access: SocketAccess = {},
  ): Promise<string> {
    const addr = parseBindUrl(url);
    // Resolved before binding: an unknown group leaves no socket behind.
    const gid = access.group === undefined ? undefined : groupId(access.group);
    const perms = permissions instanceof Set ? (permissions as Permissions) : permissionSet(permissions as 'full' | string[]);
    const opts = { ...DEFAULT_CONSOLE_OPTIONS, ...options };
    this.ensureSubscribed();
    const server = net.createServer((socket) => {
      const peer: Peer =
        addr.kind === 'unix'
          ? { type: 'remote', url: `unix://${addr.path}` }
          : { type: 'remote', url: `tcp://${socket.remoteAddress}:${socket.remotePort}` };
      this.accept(socket, peer, perms, opts, undefined);
    });
    if (addr.kind === 'unix') removeStaleSocket(addr.path);
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      if (addr.kind === 'unix') server.listen(addr.path, resolve);
      else server.listen(addr.port, addr.host, resolve);
    });
    server.on('error', (e) => log.warn(`Console listener ${url}: ${e.message}`));
    this.binds.push({ server, unixPath: addr.kind === 'unix' ? addr.path : undefined });
    if (addr.kind === 'unix') {
      // Until this chmod the socket has the mode the umask gave it at bind
      // (the daemon's 077: root only); close() removes it when either fails.
      if (gid !== undefined) chownSync(addr.path, -1, gid);
      const mode = access.mode ?? DEFAULT_SOCKET_MODE;
      chmodSync(addr.path, mode);
      if (mode & 0o002) log.warn(`Console socket ${addr.path} has mode ${mode.toString(8).padStart(4, '0')}: any local user may connect, with permissions ${formatPermissions(perms)}`);
      return `unix://${addr.path}`;
    }
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

  /**
   * Serves a console on a stream the runtime's own process opened (an
   * in-process client, `Runtime.client()`): a global console with `permissions`.
   */
  serve(stream: Duplex, permissions: 'full' | readonly string[] | Permissions, options: Partial<ConsoleOptions> = {}): void {
    const perms = permissions instanceof Set ? (permissions as Permissions) : permissionSet(permissions as 'full' | string[]);
    this.ensureSubscribed();
    this.accept(stream, { type: 'remote', url: 'embedded:' }, perms, { ...DEFAULT_CONSOLE_OPTIONS, ...options }, undefined);
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

/** A numeric gid as is; a group name looked up in the host's group database (/etc/group). */
export function groupId(group: string | number, groupFile = '/etc/group'): number {
  if (typeof group === 'number') return group;
  let text: string;
  try {
    text = readFileSync(groupFile, 'utf8');
  } catch (e) {
    throw new Error(`socket_group: cannot read ${groupFile} to look up group "${group}": ${(e as Error).message}`);
  }
  for (const line of text.split('\n')) {
    const [name, , gid] = line.split(':');
    if (name === group && gid !== undefined && /^\d+$/.test(gid)) return Number(gid);
  }
  throw new Error(`socket_group: no group "${group}" in ${groupFile}`);
}

function removeStaleSocket(path: string): void {
  if (!existsSync(path)) return;
  const st = lstatSync(path);
  if (st.isDirectory()) throw new Error(`console socket path ${path} is a directory`);
  unlinkSync(path);
}
