// Client library for the console (spec/tools.md §9.1, the package export
// "./client"). Connects over unix or TCP sockets (or the NORTHSTAR_CONSOLE fd
// inside a container), performs the handshake, sends one request at a time
// and yields notifications as an async iterator.
//
//   const client = await Client.connect('unix:///run/northstar/console', { subscribe: true });
//   await client.start('hello-world:0.0.1');
//   for await (const n of client.notifications()) console.log(n);
import { createReadStream, statSync } from 'node:fs';
import net from 'node:net';
import type { Duplex, Readable } from 'node:stream';

import type { WireError } from '../model/errors.js';
import { parseBindUrl, type BindAddress } from '../model/bind-url.js';
import { DEFAULT_CONSOLE_PORT } from '../model/console-options.js';
import { VERSION } from '../model/version.js';
import { withResolvers } from '../model/with-resolvers.js';
import { encodeMessage, FrameReader, parseJson } from '../console/codec.js';
import { AttachedStream } from './attached.js';
import { Container } from './container.js';
import type { ClientApi, LogChunk } from './client-api.js';
import { ClientError } from './errors.js';
import type { Action } from './messages.js';
import {
  STAT_CATEGORIES,
  canonicalRequest,
  decodeMessage,
  type Connect,
  type ContainerData,
  type ContainerResult,
  type ExitStatus,
  type Message,
  type Notification,
  type Request,
  type Response,
  type StatCategory,
  type VerificationResult,
} from '../console/protocol.js';

export type * from '../console/protocol.js';
export { explain, type Action } from './messages.js';
export { AlreadyRunningError, BusyError, ClientError, NoSuchContainerError, NoSuchRepositoryError, NotRunningError, StartError, type ClientErrorKind } from './errors.js';
export type { ClientApi, LogChunk } from './client-api.js';
export { signalNumber, type Signal } from './signals.js';
export { Container, type Abortable, type ExecOptions, type StartOptions, type StopOptions } from './container.js';
export { AttachedStream } from './attached.js';
export { ExecProcess, OutputTooLargeError, type ExecStreamOptions, type ExecOutput, type ExecOutputOptions } from './process.js';

/**
 * Where `nstar` looks without `-u` (deviation 16): the embedded default
 * config's socket, then Northstar's default. A constant, not parsed from the
 * embedded config, so importing the client does no work (a test keeps them equal).
 */
export const DEFAULT_URLS: readonly string[] = ['unix:///run/northstar/console', `tcp://localhost:${DEFAULT_CONSOLE_PORT}`];
export const DEFAULT_TIMEOUT_MS = 10_000;
/** The TCP/unix connect itself (Northstar's nstar hard-codes 5 s). */
export const CONNECT_TIMEOUT_MS = 5_000;

/** Connects to a console url (`unix:///path`, `tcp://host:port`) and performs the handshake; see {@link Client.connect}. */
export function connect(url: string, opts: ConnectOptions = {}): Promise<Client> {
  return Client.connect(url, opts);
}

export interface ConnectOptions {
  /** Subscribe to notifications; a number is the buffer size (default 100). Overflow: `lagged_notifications`. */
  subscribe?: boolean | number;
  /** Connect and handshake deadline (default 10 s). */
  timeoutMs?: number;
  /** The version announced in `connect` (default ours, 0.9.3). */
  version?: string;
  /** Sees every line read and written (nstar -j). */
  onRaw?: (direction: 'read' | 'write', line: string) => void;
  /** Extensions whose notifications we want too (e.g. "supervision": restarting, gave_up, healthy, unhealthy). */
  extensions?: string[];
}

interface Pending {
  resolve: (r: Response) => void;
  reject: (e: Error) => void;
  /** An attached request: an `ok` ends line mode (spec/streams.md). */
  attached?: boolean;
}

function withTimeout<T>(p: Promise<T>, ms: number, what: string, onTimeout?: () => void): Promise<T> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => {
      onTimeout?.();
      reject(new ClientError('timeout', `${what}: timeout after ${ms} ms`));
    }, ms);
    p.then(
      (v) => (clearTimeout(t), resolve(v)),
      (e) => (clearTimeout(t), reject(e)),
    );
  });
}

/** Opens the transport of a console url: `unix:///path` or `tcp://host[:port]`. */
export function openSocket(url: string, timeoutMs = CONNECT_TIMEOUT_MS): Promise<net.Socket> {
  let addr: BindAddress;
  try {
    addr = parseBindUrl(url);
  } catch (e) {
    return Promise.reject(new ClientError('protocol', (e as Error).message));
  }
  const opts: net.NetConnectOpts = addr.kind === 'unix' ? { path: addr.path } : { host: addr.host, port: addr.port };
  return new Promise((resolve, reject) => {
    const s = net.connect(opts);
    const t = setTimeout(() => {
      s.destroy();
      reject(new ClientError('timeout', `connect to ${url}: timeout after ${timeoutMs} ms`));
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(t);
      s.removeListener('error', reject);
      resolve(s);
    });
    s.once('error', (e) => {
      clearTimeout(t);
      reject(new ClientError('closed', `connect to ${url}: ${e.message}`));
    });
  });
}

/** Client.logs' answer: iterate it for the chunks; an error end (e.g. a dropped follower) throws. */
export class LogStream implements AsyncIterable<LogChunk> {
  /** The end frame: `{}`, or with `follow` the container's exit status. */
  end: unknown;

  constructor(
    private readonly s: AttachedStream,
    private readonly container: string,
  ) {}

  async *[Symbol.asyncIterator](): AsyncGenerator<LogChunk> {
    for await (const f of this.s.frames()) {
      if (f.channel === 1 || f.channel === 2) yield { stream: f.channel === 1 ? 'stdout' : 'stderr', data: f.payload };
    }
    this.end = this.s.end;
    const err = (this.end as { error?: WireError } | undefined)?.error;
    if (err) throw ClientError.runtime(err, 'logs', this.container);
    if (this.end === undefined) throw new ClientError('closed', `the runtime closed the logs of ${this.container} without an end`);
  }

  /** Stops following (the runtime then drops its side). */
  close(): void {
    this.s.close();
  }
}

export class Client implements ClientApi {
  private readonly reader: FrameReader;
  private readonly pending: Pending[] = [];
  private readonly notes: Notification[] = [];
  private noteWaiter: (() => void) | undefined;
  private lagged = false;
  private closedError: ClientError | undefined;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly handshake = withResolvers<void>();
  private readonly capacity: number;
  private resolveClosed!: () => void;
  private readonly watchers = new Set<(n: Notification | ClientError) => void>();
  /**
   * Opens another connection to the same console, unsubscribed (the handle's
   * attached requests take a connection each); unset on a caller's stream.
   */
  redial?: () => Promise<Client>;
  /** Resolves once the connection is closed, by either side (the runtime closes its consoles last at shutdown). */
  readonly closed: Promise<void> = new Promise((r) => (this.resolveClosed = r));

  private constructor(
    private readonly stream: Duplex,
    private readonly opts: ConnectOptions,
  ) {
    this.capacity = opts.subscribe === true ? 100 : typeof opts.subscribe === 'number' ? opts.subscribe : 0;
    this.reader = new FrameReader(stream, 64 * 1024 * 1024);
    this.handshake.promise.catch(() => undefined);
    stream.on('error', () => undefined);
  }

  /** Connects to `url` and performs the handshake. */
  static async connect(url: string, opts: ConnectOptions = {}): Promise<Client> {
    const timeout = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const socket = await openSocket(url, Math.min(CONNECT_TIMEOUT_MS, timeout));
    const c = await Client.fromStream(socket, opts);
    c.redial = () => Client.connect(url, { ...opts, subscribe: false });
    return c;
  }

  /** Tries each url in turn (nstar without -u); the error names all that failed. */
  static async connectFirst(urls: readonly string[], opts: ConnectOptions = {}): Promise<Client> {
    const failures: string[] = [];
    for (const url of urls) {
      try {
        return await Client.connect(url, opts);
      } catch (e) {
        if (e instanceof ClientError && e.kind !== 'closed' && e.kind !== 'timeout') throw e;
        failures.push((e as Error).message);
      }
    }
    throw new ClientError('closed', `no console reachable: ${failures.join('; ')}`);
  }

  /** Inside a container: the console fd passed as NORTHSTAR_CONSOLE. */
  static async fromEnv(opts: ConnectOptions = {}, env: NodeJS.ProcessEnv = process.env): Promise<Client> {
    const v = env.NORTHSTAR_CONSOLE;
    if (v === undefined) throw new ClientError('closed', 'NORTHSTAR_CONSOLE is not set: the container has no console');
    const fd = Number(v);
    if (!Number.isInteger(fd) || fd < 0) throw new ClientError('protocol', `NORTHSTAR_CONSOLE="${v}" is not an fd number`);
    return Client.fromStream(new net.Socket({ fd, readable: true, writable: true }), opts);
  }

  /** Handshake over an already open stream. */
  static async fromStream(stream: Duplex, opts: ConnectOptions = {}): Promise<Client> {
    const c = new Client(stream, opts);
    const connect: Connect = { version: opts.version ?? VERSION, subscribe_notifications: c.capacity > 0 };
    // Sent only when asked: Northstar's own connect has no such field.
    if (opts.extensions && opts.extensions.length > 0) connect.extensions = [...opts.extensions];
    c.write({ connect });
    void c.readLoop();
    await withTimeout(c.handshake.promise, opts.timeoutMs ?? DEFAULT_TIMEOUT_MS, 'handshake', () => stream.destroy());
    return c;
  }

  private write(m: Message): void {
    const line = encodeMessage(m);
    this.opts.onRaw?.('write', line.slice(0, -1));
    this.stream.write(line);
  }

  private fail(e: ClientError): void {
    if (this.closedError) return;
    this.closedError = e;
    this.resolveClosed();
    for (const w of this.watchers) w(e);
    this.handshake.reject(e);
    for (const p of this.pending.splice(0)) p.reject(e);
    this.wakeNotes();
  }

  private async readLoop(): Promise<void> {
    let handshaken = false;
    try {
      for (;;) {
        const line = await this.reader.readLine();
        if (line === null) break;
        this.opts.onRaw?.('read', line);
        const m = decodeMessage(parseJson(line));
        if (!handshaken) {
          if ('connect_ack' in m) {
            handshaken = true;
            this.handshake.resolve();
          } else if ('connect_nack' in m) {
            const n = m.connect_nack;
            if (n === 'permission_denied')
              throw new ClientError(
                'connect_permission_denied',
                'connect: this console does not permit notifications (its permissions must include `notifications`); connect without subscribing',
              );
            throw new ClientError(
              'invalid_protocol_version',
              `connect: the runtime (version ${n.invalid_protocol_version.version}) refused our protocol version`,
            );
          } else throw new ClientError('protocol', `expected connect_ack, got ${line.slice(0, 80)}`);
        } else if ('notification' in m) this.pushNote(m.notification);
        else if ('response' in m) {
          const p = this.pending.shift();
          if (!p) throw new ClientError('protocol', `a response without a request: ${line.slice(0, 80)}`);
          p.resolve(m.response);
          // The rest of the connection is frames, read by the AttachedStream.
          if (p.attached && isOk(m.response)) return;
        } else throw new ClientError('protocol', `unexpected message ${line.slice(0, 80)}`);
      }
      this.fail(new ClientError('closed', 'the runtime closed the connection'));
    } catch (e) {
      this.fail(e instanceof ClientError ? e : new ClientError('closed', `connection: ${(e as Error).message}`));
      this.stream.destroy();
    }
  }

  private pushNote(n: Notification): void {
    for (const w of this.watchers) w(n);
    if (this.notes.length >= this.capacity) this.lagged = true;
    else this.notes.push(n);
    this.wakeNotes();
  }

  private wakeNotes(): void {
    const w = this.noteWaiter;
    this.noteWaiter = undefined;
    w?.();
  }

  /** Notifications as they arrive; ends when the connection closes, throws `lagged_notifications` after an overflow. */
  async *notifications(): AsyncGenerator<Notification> {
    for (;;) {
      if (this.notes.length > 0) {
        yield this.notes.shift()!;
        continue;
      }
      if (this.lagged) throw new ClientError('lagged_notifications', 'notifications lagged: the buffer overflowed');
      if (this.closedError) return;
      await new Promise<void>((r) => (this.noteWaiter = r));
    }
  }

  /** Whether this connection receives notifications (`subscribe` at connect). */
  get subscribed(): boolean {
    return this.capacity > 0;
  }

  /**
   * Calls `fn` with every notification as it arrives, beside the iterator, and
   * once with the error when the connection ends. Returns the unsubscribe.
   */
  watch(fn: (n: Notification | ClientError) => void): () => void {
    if (this.closedError) {
      fn(this.closedError);
      return () => undefined;
    }
    this.watchers.add(fn);
    return () => void this.watchers.delete(fn);
  }

  /** A handle on the container `name:version` (nothing is sent until it is used). */
  container(id: string): Container {
    return new Container(this, id);
  }

  [Symbol.asyncIterator](): AsyncGenerator<Notification> {
    return this.notifications();
  }

  /** Sends one request and resolves to its response; requests are serialized. */
  request(req: Request, rawBody?: (s: Duplex) => Promise<void>): Promise<Response> {
    const run = async (): Promise<Response> => {
      if (this.closedError) throw this.closedError;
      const response = new Promise<Response>((resolve, reject) => this.pending.push({ resolve, reject }));
      this.write({ request: canonicalRequest(req) });
      if (rawBody) {
        const body = rawBody(this.stream).catch((e: Error) => {
          throw this.closedError ?? new ClientError('closed', `sending data: ${e.message}`);
        });
        const [r] = await Promise.all([response, body]);
        return r;
      }
      return response;
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  /**
   * Sends an attached request (spec/streams.md). An `ok` response hands the
   * connection to the returned stream: this client takes no further
   * requests. A refusal throws like any request and leaves the client usable.
   */
  async attach(req: Request): Promise<{ response: Response; stream: AttachedStream }> {
    const run = async () => {
      if (this.closedError) throw this.closedError;
      const response = new Promise<Response>((resolve, reject) => this.pending.push({ resolve, reject, attached: true }));
      this.write({ request: canonicalRequest(req) });
      return response;
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    const r = await p;
    const variant = typeof req === 'string' ? req : Object.keys(req)[0]!;
    const body = expect(r, variant) as { error?: { error: WireError } };
    if (body.error) throw ClientError.runtime(body.error.error);
    this.closedError = new ClientError('closed', 'the connection was handed to an attached request');
    this.chain = Promise.reject(this.closedError);
    this.chain.catch(() => undefined);
    return { response: r, stream: new AttachedStream(this.reader, this.stream) };
  }

  /** copy_out: a tar of `path` (its entries named relative to the parent of `path`) as it arrives. */
  async copyOut(container: string, path: string): Promise<AttachedStream> {
    return (await this.attach({ copy_out: { container, path } })).stream;
  }

  /**
   * logs (spec/streams.md): the container's recent output (the last `tail`
   * lines, all the runtime keeps when omitted) and with `follow` its new output
   * until it exits or the stream is closed. Hands the connection over, like attach.
   */
  async logs(container: string, opts: { tail?: number; follow?: boolean } = {}): Promise<LogStream> {
    const req = { logs: { container, ...(opts.tail !== undefined ? { tail: opts.tail } : {}), ...(opts.follow ? { follow: true } : {}) } };
    try {
      return new LogStream((await this.attach(req)).stream, container);
    } catch (e) {
      throw e instanceof ClientError && e.wire ? ClientError.runtime(e.wire, 'logs', container) : e;
    }
  }

  /** copy_in: extracts the `size` bytes of tar in `data` below `path`. */
  async copyIn(container: string, path: string, data: Readable | Buffer, size: number): Promise<string> {
    const r = await this.request({ copy_in: { container, path, size } }, async (s) => {
      if (Buffer.isBuffer(data)) return writeAll(s, data);
      let sent = 0;
      for await (const chunk of data as AsyncIterable<Buffer>) {
        await writeAll(s, chunk);
        sent += chunk.length;
      }
      if (sent !== size) throw new Error(`the tar stream had ${sent} bytes, announced ${size}`);
    });
    return unwrap(expect(r, 'copy_in') as ContainerResult, 'copy');
  }

  close(): void {
    this.stream.end();
    this.stream.destroy();
    this.fail(new ClientError('closed', 'the client closed the connection'));
  }

  // ---- typed requests ----------------------------------------------------

  async ident(): Promise<string> {
    return expect(await this.request('ident'), 'ident') as string;
  }

  async list(): Promise<string[]> {
    return expect(await this.request('list'), 'list') as string[];
  }

  async repositories(): Promise<string[]> {
    return expect(await this.request('repositories'), 'repositories') as string[];
  }

  /** Starts with the manifest's init, args and env unless given (`<INIT>` stands for the manifest init). */
  async start(container: string, o: { init?: string | null; args?: string[]; env?: Record<string, string> } = {}): Promise<string> {
    const r = await this.request({
      start: { container, init: o.init ?? null, arguments: o.args ?? [], environment: o.env ?? {} },
    });
    return unwrap(expect(r, 'start') as ContainerResult, 'start');
  }

  /** Northstar's start_command: init override (`<INIT>` for the manifest's), arguments and environment. */
  startCommand(container: string, init: string | null, args: string[], env: Record<string, string>): Promise<string> {
    return this.start(container, { init, args, env });
  }

  async kill(container: string, signal = 15): Promise<string> {
    return unwrap(expect(await this.request({ kill: { container, signal } }), 'kill') as ContainerResult, 'kill');
  }

  /** Extension: SIGTERM, SIGKILL when still running after the grace. */
  async stop(container: string, graceMs: number): Promise<string> {
    return unwrap(expect(await this.request({ stop: { container, grace_ms: graceMs } }), 'stop') as ContainerResult, 'stop');
  }

  /** Extension: runs `path` in the running container; with `wait` resolves after its exit with the status. */
  async exec(
    container: string,
    path: string,
    o: { args?: string[]; env?: Record<string, string>; wait?: boolean } = {},
  ): Promise<{ pid: number; status: ExitStatus | null }> {
    const r = await this.request({
      exec: { container, path, arguments: o.args ?? [], environment: o.env ?? {}, wait: o.wait ?? false },
    });
    const e = expect(r, 'exec') as { ok: { pid: number; status: ExitStatus | null } } | { error: { error: WireError } };
    if ('error' in e) throw ClientError.runtime(e.error.error, 'exec', container);
    return { pid: e.ok.pid, status: e.ok.status };
  }

  async pause(container: string): Promise<string> {
    return unwrap(expect(await this.request({ pause: { container } }), 'pause') as ContainerResult, 'pause');
  }

  async resume(container: string): Promise<string> {
    return unwrap(expect(await this.request({ resume: { container } }), 'resume') as ContainerResult, 'resume');
  }

  /** Streams `size` bytes from `data` after the request line; resolves to the installed container. */
  async install(
    data: Readable | Buffer,
    size: number,
    repository: string,
    onProgress?: (sent: number, size: number) => void,
  ): Promise<string> {
    const r = await this.request({ install: { repository, size } }, async (s) => {
      if (Buffer.isBuffer(data)) {
        await writeAll(s, data);
        onProgress?.(data.length, size);
        return;
      }
      let sent = 0;
      for await (const chunk of data as AsyncIterable<Buffer>) {
        await writeAll(s, chunk);
        sent += chunk.length;
        onProgress?.(sent, size);
      }
      if (sent !== size) throw new Error(`the npk stream had ${sent} bytes, announced ${size}`);
    });
    const i = expect(r, 'install') as { ok: { container: string } } | { error: { error: WireError } };
    if ('error' in i) throw ClientError.runtime(i.error.error, 'install');
    return i.ok.container;
  }

  async installFile(path: string, repository: string, onProgress?: (sent: number, size: number) => void): Promise<string> {
    const size = statSync(path).size;
    return this.install(createReadStream(path, { highWaterMark: 1024 * 1024 }), size, repository, onProgress);
  }

  async uninstall(container: string, wipe = false): Promise<string> {
    return unwrap(expect(await this.request({ uninstall: { container, wipe } }), 'uninstall') as ContainerResult, 'uninstall');
  }

  /** Asks the runtime to shut down; the result is ignored (the connection closes). */
  async shutdown(): Promise<void> {
    await this.request('shutdown').catch(() => undefined);
  }

  async mount(containers: string[]): Promise<ContainerResult[]> {
    return expect(await this.request({ mount: { containers } }), 'mount') as ContainerResult[];
  }

  async umount(containers: string[]): Promise<ContainerResult[]> {
    return expect(await this.request({ umount: { containers } }), 'umount') as ContainerResult[];
  }

  /** Mounts every installed container (Northstar's mount_all). */
  async mountAll(): Promise<ContainerResult[]> {
    return this.mount(await this.list());
  }

  /** Unmounts every installed container (Northstar's umount_all). */
  async umountAll(): Promise<ContainerResult[]> {
    return this.umount(await this.list());
  }

  /**
   * Inspects with the statistics of `statistics` (default: every category).
   * Sending the field marks us as a client that knows our extensions, so
   * the answer also carries the startup phases and the machine state.
   */
  async inspect(container: string, statistics: readonly StatCategory[] = STAT_CATEGORIES): Promise<ContainerData> {
    const req: Request = { inspect: { container, statistics: [...statistics] } };
    const i = expect(await this.request(req), 'inspect') as
      | { ok: { data: ContainerData } }
      | { error: { error: WireError } };
    if ('error' in i) throw ClientError.runtime(i.error.error, 'inspect', container);
    return i.ok.data;
  }

  /** A token for `target`; `shared` is the data both sides agree on. */
  async createToken(target: string, shared: Buffer | string): Promise<string> {
    const r = await this.request({ token_create: { target, shared: Buffer.from(shared).toString('base64') } });
    return expect(r, 'token') as string;
  }

  async verifyToken(token: string, user: string, shared: Buffer | string): Promise<VerificationResult> {
    const r = await this.request({ token_verify: { token, user, shared: Buffer.from(shared).toString('base64') } });
    return expect(r, 'token_verification') as VerificationResult;
  }
}

function writeAll(s: Duplex, b: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    if (s.destroyed || s.writableEnded) return reject(new Error('connection closed'));
    const ok = s.write(b, (e) => (e ? reject(e) : undefined));
    if (ok) resolve();
    else {
      const onDrain = () => (s.off('close', onClose), resolve());
      const onClose = () => (s.off('drain', onDrain), reject(new Error('connection closed')));
      s.once('drain', onDrain);
      s.once('close', onClose);
    }
  });
}

/** The body of the expected response variant; permission_denied and error become ClientErrors. */
function expect(r: Response, variant: string): unknown {
  if (typeof r === 'object' && r !== null) {
    if ('permission_denied' in r) {
      const req = r.permission_denied;
      const name = typeof req === 'string' ? req : Object.keys(req)[0];
      throw new ClientError(
        'permission_denied',
        `permission denied: this console does not permit \`${name}\` (the console's permissions in the config, or the container manifest's console permissions, must include it)`,
      );
    }
    if ('error' in r) throw ClientError.runtime(r.error);
    if (variant in r) return (r as Record<string, unknown>)[variant];
  } else if (r === variant) return r;
  throw new ClientError('protocol', `expected a ${variant} response, got ${JSON.stringify(r).slice(0, 120)}`);
}

function isOk(r: Response): boolean {
  if (typeof r !== 'object' || r === null) return false;
  const v = Object.values(r)[0] as unknown;
  return typeof v === 'object' && v !== null && 'ok' in v;
}

function unwrap(r: ContainerResult, action: Action): string {
  if ('error' in r) throw ClientError.runtime(r.error.error, action, r.error.container);
  return r.ok.container;
}
