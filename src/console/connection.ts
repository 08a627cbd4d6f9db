// One console connection: handshake, throttled request loop, permission
// checks, install streaming and the notification queue with the lag rule.
// Main thread.
import type { Duplex } from 'node:stream';

import semver from 'semver';

import { Logger } from '../log.js';
import { RuntimeError } from '../model/errors.js';
import type { Notification } from '../model/notification.js';
import { COMPATIBLE, VERSION } from '../model/version.js';
import { formatPeer, type ConsoleBackend, type ConsoleOptions, type Peer } from './backend.js';
import { encodeMessage, FrameReader, LineTooLong, ReadTimeout } from './codec.js';
import {
  canonicalResponse,
  decodeConnect,
  isAttachedRequest,
  decodeRequest,
  errorResponse,
  notificationToWire,
  ProtocolError,
  requestName,
  type Message,
  type Request,
  type Response,
  type StatCategory,
} from './protocol.js';
import { inspectToWire } from './inspect.js';
import { formatPermissions, requiredPermission, type Permissions } from './permissions.js';
import { Throttle } from './throttle.js';
import { attachedResult, runAttached } from './attached.js';
import type { TokenAuthority } from './token.js';

/** The Rust client copies NPKs with a 1 MiB buffer; we hand the backend chunks of at most this. */
export const INSTALL_CHUNK = 1024 * 1024;

/**
 * Unsent output (replies and notifications the peer has not read yet) above
 * which a connection stops reading requests: a client that never reads
 * cannot make the daemon hold more than this plus one reply.
 */
export const UNSENT_HIGH_WATER = 1024 * 1024;

/** The default overall deadline of an install stream: a floor, plus the time at a slow rate. */
export const INSTALL_TIMEOUT_FLOOR_MS = 60_000;
export const INSTALL_TIMEOUT_RATE = 256 * 1024; // bytes per second

/** `install_timeout` when configured, else proportional to the size with a floor. */
export function installDeadlineMs(size: number, configured: number | undefined): number {
  return configured ?? INSTALL_TIMEOUT_FLOOR_MS + Math.ceil((size / INSTALL_TIMEOUT_RATE) * 1000);
}

/** What a connection needs of its server. */
export interface ConnectionHost {
  readonly backend: ConsoleBackend;
  readonly tokens: TokenAuthority;
  readonly notificationBufferSize: number;
  readonly handshakeTimeoutMs: number;
  /** Overall deadline of one install stream (config install_timeout); undefined: proportional to its size. */
  readonly installTimeoutMs?: number;
  emit(event: 'connected', peer: Peer): boolean;
}

const log = new Logger('console');

/** Ends the connection: invalid framing, a lagging subscriber, a timeout, shutdown. */
class Close extends Error {}

/** The install stream passed its overall deadline. */
class InstallTimeout extends Error {
  override name = 'InstallTimeout';
}

export class Connection {
  readonly closed: Promise<void>;
  closeReason = '';
  private resolveClosed!: () => void;
  private readonly reader: FrameReader;
  private readonly throttle: Throttle;
  private subscribed = false;
  /** Extensions named in `connect.extensions`: their notifications are sent too. */
  private extensions = new Set<string>();
  private shutdownSent = false;
  private ended = false;
  private readonly queue: string[] = [];
  private pumping = false;
  /** A request is being handled: shutdown waits for its response. */
  private inFlight = false;
  private closing = false;

  constructor(
    private readonly server: ConnectionHost,
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

  /** Queues a notification in its wire form; a subscriber more than notificationBufferSize behind is closed. */
  notify(n: Notification): void {
    if (!this.subscribed || this.ended || this.shutdownSent) return;
    const wire = notificationToWire(n, this.extensions);
    if (wire === undefined) return;
    if (wire === 'shutdown') this.shutdownSent = true;
    if (this.queue.length >= this.server.notificationBufferSize) {
      this.lagging('notification lag', `${this.queue.length} notifications unsent`);
      return;
    }
    this.queue.push(encodeMessage({ notification: wire }));
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

  /**
   * One policy for a peer that does not read what it is sent, replies or
   * notifications: it is disconnected, with a log line, instead of growing
   * the daemon.
   */
  private lagging(reason: 'notification lag' | 'reply lag', what: string): void {
    log.warn(`${formatPeer(this.peer)} lags behind (${what}): disconnecting`);
    this.close(reason);
  }

  /**
   * Before the next request is read: while more than UNSENT_HIGH_WATER bytes
   * of output wait for the peer, read nothing (the kernel then pushes back on
   * its writes). A peer that stays there for npk_stream_timeout (the limit of
   * a stalled peer) lags and is closed.
   */
  private async writable(): Promise<void> {
    if (this.socket.writableLength <= UNSENT_HIGH_WATER || this.ended) return;
    const drained = await new Promise<boolean>((resolve) => {
      const done = (v: boolean) => {
        clearTimeout(timer);
        this.socket.removeListener('drain', onDrain);
        this.socket.removeListener('close', onClose);
        resolve(v);
      };
      const onDrain = () => done(true);
      const onClose = () => done(true);
      const timer = setTimeout(() => done(false), this.opts.npkStreamTimeoutMs);
      this.socket.on('drain', onDrain);
      this.socket.on('close', onClose);
    });
    if (!drained && !this.ended) {
      this.lagging('reply lag', `${this.socket.writableLength} bytes of replies unsent for ${this.opts.npkStreamTimeoutMs} ms`);
      throw new Close('reply lag');
    }
  }

  async run(): Promise<void> {
    try {
      if (!(await this.handshake())) return;
      for (;;) {
        await this.throttle.admit();
        await this.writable();
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
    this.extensions = new Set(connect.extensions);
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
    if (isAttachedRequest(req)) return this.attached(req);
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
    if (typeof req === 'object' && 'copy_in' in req) return this.install('', req.copy_in.size, req);
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
    if (typeof req === 'object' && 'inspect' in req) return this.inspect(req.inspect);
    try {
      return await this.server.backend.request(req, this.ctx());
    } catch (e) {
      log.warn(`${formatPeer(this.peer)}: ${requestName(req)} failed: ${(e as Error).message}`);
      return errorResponse(req, RuntimeError.from(e).toWire());
    }
  }

  /** The runtime's answer in the wire's shape, with our additions only for a request that named `statistics`. */
  private async inspect({ container, statistics }: { container: string; statistics?: StatCategory[] }): Promise<Response> {
    try {
      const d = await this.server.backend.inspect(container, statistics, this.ctx());
      return { inspect: { ok: { container, data: inspectToWire(d, statistics !== undefined) } } };
    } catch (e) {
      return { inspect: { error: { container, error: RuntimeError.from(e).toWire() } } };
    }
  }

  /**
   * An attached request (spec/streams.md): a refusal is an ordinary response;
   * an `ok` unsubscribes, goes out after the queued notifications, and hands
   * the connection to the session until it closes.
   */
  private async attached(req: Request): Promise<void> {
    this.inFlight = true;
    try {
      const r = await attachedResult.open(this.server.backend, req, this.perms, this.ctx());
      if (!r.session) return this.send({ response: canonicalResponse(r.response) });
      this.subscribed = false;
      this.queue.push(encodeMessage({ response: canonicalResponse(r.response) }));
      this.pump();
      await attachedResult.drained(this.socket, () => this.queue.length === 0, this.closed);
      await runAttached(this.socket, this.reader, r.session);
      await this.closed;
    } finally {
      this.inFlight = false;
    }
  }

  /**
   * Streams `size` raw bytes to the backend. Over the size limit the
   * connection closes unanswered (before reading). Without permission the
   * bytes are drained (deviation 5: never parsed as JSON).
   */
  private async install(repository: string, size: number, copyIn?: Request & { copy_in: unknown }): Promise<Response> {
    const peer = formatPeer(this.peer);
    if (size > this.opts.maxNpkInstallSize) {
      log.warn(`${peer}: ${copyIn ? 'copy_in' : 'install'} of ${size} bytes exceeds max_npk_install_size ${this.opts.maxNpkInstallSize}`);
      throw new Close('npk too large');
    }
    const req: Request = copyIn ?? { install: { repository, size } };
    let left = size;
    const chunkTimeout = this.opts.npkStreamTimeoutMs;
    const limitMs = installDeadlineMs(size, this.server.installTimeoutMs);
    const deadline = performance.now() + limitMs;
    const reader = this.reader;
    let streamFailure: Error | undefined;
    // Each chunk within npk_stream_timeout, the whole stream within its deadline.
    const data = async function* (): AsyncGenerator<Buffer> {
      while (left > 0) {
        let b: Buffer | null;
        const remaining = deadline - performance.now();
        try {
          if (remaining <= 0) throw new InstallTimeout(`not complete within ${limitMs} ms`);
          b = await reader.readChunk(Math.min(INSTALL_CHUNK, left), Math.min(chunkTimeout, Math.ceil(remaining)));
        } catch (e) {
          streamFailure = e instanceof ReadTimeout && remaining < chunkTimeout ? new InstallTimeout(`not complete within ${limitMs} ms`) : (e as Error);
          throw streamFailure;
        }
        if (b === null) {
          streamFailure = new Error(`npk stream ended with ${left} of ${size} bytes missing`);
          throw streamFailure;
        }
        left -= b.length;
        yield b;
      }
    };
    const aborted = (): never => {
      const why = streamFailure instanceof ReadTimeout ? `no data within ${chunkTimeout} ms` : streamFailure!.message;
      const what = copyIn ? `copy_in of ${size} bytes` : `install of ${size} bytes into ${repository}`;
      log.warn(`${peer}: ${what} aborted after ${size - left} bytes: ${why}`);
      throw new Close(`install stream: ${why}`);
    };
    let result: Response;
    if (!this.perms.has(requiredPermission(req))) {
      result = { permission_denied: req };
    } else {
      try {
        if (copyIn) result = await attachedResult.copyIn(this.server.backend, copyIn, data(), this.ctx());
        else result = { install: await this.server.backend.install(repository, size, data(), this.ctx()) };
      } catch (e) {
        if (streamFailure) aborted();
        result = errorResponse(req, RuntimeError.from(e).toWire());
      }
      if (!streamFailure && typeof result === 'object' && 'install' in result && 'error' in result.install) {
        log.warn(`${peer}: install into ${repository} failed: ${RuntimeError.fromWire(result.install.error.error).message}`);
      }
    }
    if (streamFailure) aborted();
    try {
      for await (const _ of data()) {
        // drained: the bytes belong to this request, not to the next line
      }
    } catch {
      aborted();
    }
    return result;
  }
}

function isInstallAttempt(v: unknown): boolean {
  return typeof v === 'object' && v !== null && ('install' in v || 'copy_in' in v);
}
