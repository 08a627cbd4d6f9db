// Wire types of Northstar 0.9's console (spec/console.md §4) and their
// decoders. The JSON shapes follow serde: `Message` is untagged (one key),
// inner enums are externally tagged and snake_case, `Option` is `null`.
// Our extensions (stop, exec, pause, resume, inspect statistics) are extra
// variants: a Northstar client never sends them, so it never sees them.
//
// Decoders validate a parsed JSON value and throw ProtocolError naming the
// path and what is wrong ("request.kill.signal: expected an i32, got \"x\"").
import type { ExitStatus, WireError } from '../model/errors.js';
import type { MemoryEvent, Notification as RuntimeNotification } from '../model/notification.js';

export type { ExitStatus, MemoryEvent, WireError };

/** "name:version". */
export type Container = string;

export interface Connect {
  version: string;
  subscribe_notifications: boolean;
  /**
   * Ours: the extensions whose notifications this client understands (see
   * EXTENSIONS). Northstar's Connect has no deny_unknown_fields, so a Northstar
   * runtime ignores it; a Northstar client never sends it and so never gets a
   * notification variant it cannot parse.
   */
  extensions?: string[];
}

/** Extensions a client may name in `connect.extensions`. */
export const EXTENSIONS = ['supervision'] as const;

/** A notification on the wire (spec/console.md §4.3). Containers are named "name:version". */
export type Notification =
  | 'shutdown'
  | { started: Container }
  | { exit: [Container, ExitStatus] }
  | { install: Container }
  | { uninstall: Container }
  | { c_group: [Container, { memory: MemoryEvent }] }
  // Extension `supervision` (restart policy and health check): sent only to
  // clients that name it in `connect.extensions`.
  | { restarting: [Container, { attempt: number; delay_ms: number; reason: string }] }
  | { gave_up: [Container, { restarts: number; reason: string }] }
  | { healthy: Container }
  | { unhealthy: Container };

/**
 * The wire form of a runtime notification for a client that named
 * `extensions` in its connect; undefined when the notification belongs to an
 * extension the client did not name (a Northstar client cannot parse it).
 */
export function notificationToWire(n: RuntimeNotification, extensions: ReadonlySet<string>): Notification | undefined {
  const supervision = extensions.has('supervision');
  switch (n.type) {
    case 'shutdown':
      return 'shutdown';
    case 'started':
      return { started: n.container };
    case 'exit':
      return { exit: [n.container, n.status] };
    case 'install':
      return { install: n.container };
    case 'uninstall':
      return { uninstall: n.container };
    case 'memory':
      return { c_group: [n.container, { memory: n.memory }] };
    case 'restarting':
      return supervision ? { restarting: [n.container, { attempt: n.attempt, delay_ms: n.delayMs, reason: n.reason }] } : undefined;
    case 'gave_up':
      return supervision ? { gave_up: [n.container, { restarts: n.restarts, reason: n.reason }] } : undefined;
    case 'health':
      if (!supervision) return undefined;
      return n.status === 'unhealthy' ? { unhealthy: n.container } : { healthy: n.container };
  }
}

export type ConnectNack = { invalid_protocol_version: { version: string } } | 'permission_denied';

export type Message =
  | { connect: Connect }
  | { connect_ack: null }
  | { connect_nack: ConnectNack }
  | { request: Request }
  | { response: Response }
  | { notification: Notification };

/** Statistic categories of our `inspect` extension (spec/README.md "Beyond Northstar"). */
// The same names as src/actors/cgroups/cgroup-stats.ts.
export const STAT_CATEGORIES = ['cpu', 'memory', 'memory_events', 'io', 'pids'] as const;
export type StatCategory = (typeof STAT_CATEGORIES)[number];

export type Request =
  | 'ident'
  | 'list'
  | 'repositories'
  | 'shutdown'
  /** `statistics` is our extension: the categories to collect (absent: the runtime's default). */
  | { inspect: { container: Container; statistics?: StatCategory[] } }
  | { install: { repository: string; size: number } }
  | { kill: { container: Container; signal: number } }
  | { mount: { containers: Container[] } }
  | { umount: { containers: Container[] } }
  | {
      start: {
        container: Container;
        init?: string | null;
        arguments: string[];
        environment: Record<string, string>;
      };
    }
  /** `shared` is base64. */
  | { token_create: { target: string; shared: string } }
  | { token_verify: { token: string; user: string; shared: string } }
  | { uninstall: { container: Container; wipe: boolean } }
  // Extensions.
  /** SIGTERM, then SIGKILL when still running after `grace_ms`. */
  | { stop: { container: Container; grace_ms: number } }
  /** Runs `path` inside the running container; with `wait` the response carries the exit status. */
  | {
      exec: {
        container: Container;
        path: string;
        arguments: string[];
        environment: Record<string, string>;
        wait: boolean;
        /** spec/streams.md: stdio relayed as frames after the `ok` line; `wait` is then ignored. */
        attach?: boolean;
        tty?: boolean;
        cols?: number;
        rows?: number;
      };
    }
  /** spec/streams.md: `size` bytes of a POSIX tar follow the line, extracted below `path`. */
  | { copy_in: { container: Container; path: string; size: number } }
  /** spec/streams.md: the `ok` line, then a tar of `path` on channel 1. */
  | { copy_out: { container: Container; path: string } }
  /** spec/streams.md: the `ok` line, then the last `tail` lines (all when absent) and, with `follow`, new ones. */
  | { logs: { container: Container; tail?: number; follow?: boolean } }
  | { pause: { container: Container } }
  | { resume: { container: Container } };

export type RequestName = Request extends infer R ? (R extends string ? R : keyof R & string) : never;

/** The extension request names (not part of Northstar 0.9). */
export const EXTENSION_REQUESTS = ['stop', 'exec', 'pause', 'resume', 'copy_in', 'copy_out', 'logs'] as const;

export type ContainerResult = { ok: { container: Container } } | { error: { container: Container; error: WireError } };

export interface ProcessData {
  pid: number;
  /** Nanoseconds. */
  uptime: number;
  /** Opaque cgroups statistics (cgroups-rs JSON in Northstar). */
  statistics: unknown;
}

export interface ContainerData {
  /** The manifest in its serde JSON shape. */
  manifest: unknown;
  repository: string;
  mounted: boolean;
  process: ProcessData | null;
  /** Extension: the phases of the last start in ms (spawn, setup, cgroups, gate_wait, exec, total, ...). */
  startup?: Record<string, number> | null;
  /** Extension: machine state, e.g. "paused". */
  state?: string;
  /** Extension (manifest `restart`): restarts since the last start request, why the last, ms until the next. */
  restarts?: RestartData;
  /** Extension (manifest `health`): the health check's state while running, else null. */
  health?: HealthData | null;
  /** Extension: the interfaces of a started container's network namespace (spec/streams.md). */
  network?: NetworkInterface[] | null;
}

export interface RestartData {
  count: number;
  last_reason: string | null;
  next_attempt_ms: number | null;
  gave_up: boolean;
}

export interface HealthData {
  status: 'starting' | 'healthy' | 'unhealthy';
  /** Failed checks in a row. */
  failures: number;
}

export interface NetworkInterface {
  name: string;
  mac: string | null;
  up: boolean;
  addresses: { family: 'inet' | 'inet6'; address: string; prefix: number }[];
}

export type InspectResult =
  | { ok: { container: Container; data: ContainerData } }
  | { error: { container: Container; error: WireError } };

export type InstallResult = { ok: { container: Container } } | { error: { error: WireError } };

export type ExecResult =
  | { ok: { container: Container; pid: number; status: ExitStatus | null } }
  | { error: { container: Container; error: WireError } };

export type VerificationResult = 'Ok' | 'Invalid' | 'Expired' | 'Future';

export type Response =
  | 'shutdown'
  | { inspect: InspectResult }
  | { ident: Container }
  | { install: InstallResult }
  | { kill: ContainerResult }
  | { list: Container[] }
  | { mount: ContainerResult[] }
  | { permission_denied: Request }
  | { repositories: string[] }
  | { start: ContainerResult }
  | { token: string }
  | { token_verification: VerificationResult }
  | { umount: ContainerResult[] }
  | { uninstall: ContainerResult }
  // Extensions.
  | { stop: ContainerResult }
  | { exec: ExecResult }
  | { pause: ContainerResult }
  | { resume: ContainerResult }
  | { copy_in: ContainerResult }
  | { copy_out: ContainerResult }
  | { logs: ContainerResult }
  /** A request the runtime could not understand (well-formed JSON of a wrong shape). */
  | { error: WireError };

export class ProtocolError extends Error {
  override name = 'ProtocolError';
}

// ---- validation helpers ----------------------------------------------------

type Json = unknown;

function describe(v: Json): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  const s = JSON.stringify(v);
  return s.length > 40 ? `${s.slice(0, 40)}...` : s;
}

function fail(path: string, what: string, v: Json): never {
  throw new ProtocolError(`${path}: expected ${what}, got ${describe(v)}`);
}

function isObject(v: Json): v is Record<string, Json> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function str(v: Json, path: string): string {
  if (typeof v !== 'string') fail(path, 'a string', v);
  return v;
}

function nonNul(v: Json, path: string): string {
  const s = str(v, path);
  if (s.includes('\0')) throw new ProtocolError(`${path}: contains a NUL byte`);
  return s;
}

function bool(v: Json, path: string): boolean {
  if (typeof v !== 'boolean') fail(path, 'a boolean', v);
  return v;
}

function int(v: Json, path: string, min: number, max: number, what: string): number {
  if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max) fail(path, what, v);
  return v;
}

const u64 = (v: Json, p: string) => int(v, p, 0, Number.MAX_SAFE_INTEGER, 'an unsigned integer');
const i32 = (v: Json, p: string) => int(v, p, -(2 ** 31), 2 ** 31 - 1, 'an i32');

const CONTAINER = /^[0-9A-Za-z._-]{1,1024}:\d+\.\d+\.\d+([-+][0-9A-Za-z.+-]*)?$/;

/** `.` and `..` match the character class but are no names (deviation 19: they address a parent directory). */
const dots = (name: string): boolean => name === '.' || name === '..';

function container(v: Json, path: string): Container {
  const s = str(v, path);
  if (!CONTAINER.test(s) || dots(s.slice(0, s.indexOf(':')))) fail(path, 'a container "<name>:<version>"', v);
  return s;
}

function name(v: Json, path: string): string {
  const s = str(v, path);
  if (!/^[0-9A-Za-z._-]{1,1024}$/.test(s) || dots(s)) fail(path, 'a container name', v);
  return s;
}

function base64(v: Json, path: string): string {
  const s = str(v, path);
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) fail(path, 'base64 (standard, padded)', v);
  return s;
}

function array<T>(v: Json, path: string, item: (x: Json, p: string) => T): T[] {
  if (!Array.isArray(v)) fail(path, 'an array', v);
  return v.map((x, i) => item(x, `${path}[${i}]`));
}

function stringMap(v: Json, path: string): Record<string, string> {
  if (!isObject(v)) fail(path, 'an object of strings', v);
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) {
    nonNul(k, `${path} key`);
    // Defined, not assigned: a variable named `__proto__` is a variable, not the prototype.
    Object.defineProperty(out, k, { value: nonNul(x, `${path}.${k}`), enumerable: true, writable: true, configurable: true });
  }
  return out;
}

/** The single key of an externally tagged enum value, or the string of a unit variant. */
function variant(v: Json, path: string, what: string): [string, Json] {
  if (typeof v === 'string') return [v, undefined];
  if (!isObject(v)) fail(path, what, v);
  const keys = Object.keys(v);
  if (keys.length !== 1) throw new ProtocolError(`${path}: expected ${what} with exactly one key, got ${keys.length} keys`);
  return [keys[0]!, v[keys[0]!]];
}

/** serde rejects unknown fields of our structs only where Northstar does; we report missing ones. */
function fields(v: Json, path: string, required: string[]): Record<string, Json> {
  if (!isObject(v)) fail(path, 'an object', v);
  for (const f of required) if (!(f in v)) throw new ProtocolError(`${path}: missing field \`${f}\``);
  return v;
}

type Decoder<T> = (v: Json, path: string) => T;

/** A struct whose fields are all required, each checked by its decoder; the fields come out in the decoders' (serde) order. */
function struct<T>(v: Json, path: string, decoders: { [K in keyof T]: Decoder<T[K]> }): T {
  const f = fields(v, path, Object.keys(decoders));
  const out: Record<string, unknown> = {};
  for (const [k, d] of Object.entries(decoders) as [string, Decoder<unknown>][]) out[k] = d(f[k], `${path}.${k}`);
  return out as T;
}

const containers: Decoder<Container[]> = (v, p) => array(v, p, container);

function unit(v: Json, path: string, n: string): void {
  if (v !== undefined) throw new ProtocolError(`${path}: \`${n}\` takes no fields`);
}

// ---- requests ---------------------------------------------------------------

const REQUEST_DECODERS: Record<string, (v: Json, p: string) => Request> = {
  ident: (v, p) => (unit(v, p, 'ident'), 'ident'),
  list: (v, p) => (unit(v, p, 'list'), 'list'),
  repositories: (v, p) => (unit(v, p, 'repositories'), 'repositories'),
  shutdown: (v, p) => (unit(v, p, 'shutdown'), 'shutdown'),
  inspect: (v, p) => {
    const f = fields(v, p, ['container']);
    const r: { container: Container; statistics?: StatCategory[] } = { container: container(f.container, `${p}.container`) };
    if (f.statistics !== undefined && f.statistics !== null) {
      r.statistics = array(f.statistics, `${p}.statistics`, (x, q) => {
        const s = str(x, q);
        if (!(STAT_CATEGORIES as readonly string[]).includes(s)) fail(q, `one of ${STAT_CATEGORIES.join(', ')}`, x);
        return s as StatCategory;
      });
    }
    return { inspect: r };
  },
  install: (v, p) => ({ install: struct(v, p, { repository: nonNul, size: u64 }) }),
  kill: (v, p) => ({ kill: struct(v, p, { container, signal: i32 }) }),
  mount: (v, p) => ({ mount: struct(v, p, { containers }) }),
  umount: (v, p) => ({ umount: struct(v, p, { containers }) }),
  start: (v, p) => {
    const f = fields(v, p, ['container', 'arguments', 'environment']);
    const init = f.init === undefined || f.init === null ? null : nonNul(f.init, `${p}.init`);
    return {
      start: {
        container: container(f.container, `${p}.container`),
        init,
        arguments: array(f.arguments, `${p}.arguments`, nonNul),
        environment: stringMap(f.environment, `${p}.environment`),
      },
    };
  },
  token_create: (v, p) => ({ token_create: struct(v, p, { target: name, shared: base64 }) }),
  token_verify: (v, p) => {
    const f = fields(v, p, ['token', 'user', 'shared']);
    const token = base64(f.token, `${p}.token`);
    if (Buffer.from(token, 'base64').length !== 40) fail(`${p}.token`, 'a token of 40 bytes', f.token);
    return {
      token_verify: { token, user: name(f.user, `${p}.user`), shared: base64(f.shared, `${p}.shared`) },
    };
  },
  uninstall: (v, p) => ({ uninstall: struct(v, p, { container, wipe: bool }) }),
  stop: (v, p) => ({ stop: struct(v, p, { container, grace_ms: u64 }) }),
  exec: (v, p) => {
    const f = fields(v, p, ['container', 'path']);
    return {
      exec: {
        container: container(f.container, `${p}.container`),
        path: nonNul(f.path, `${p}.path`),
        arguments: f.arguments === undefined ? [] : array(f.arguments, `${p}.arguments`, nonNul),
        environment: f.environment === undefined ? {} : stringMap(f.environment, `${p}.environment`),
        wait: f.wait === undefined ? false : bool(f.wait, `${p}.wait`),
        ...execAttach(f, p),
      },
    };
  },
  copy_in: (v, p) => ({ copy_in: struct(v, p, { container, path: nonNul, size: u64 }) }),
  copy_out: (v, p) => ({ copy_out: struct(v, p, { container, path: nonNul }) }),
  logs: (v, p) => {
    const f = fields(v, p, ['container']);
    const out: { container: Container; tail?: number; follow?: boolean } = { container: container(f.container, `${p}.container`) };
    if (f.tail !== undefined && f.tail !== null) out.tail = u64(f.tail, `${p}.tail`);
    if (f.follow !== undefined && f.follow !== null) out.follow = bool(f.follow, `${p}.follow`);
    return { logs: out };
  },
  pause: (v, p) => ({ pause: struct(v, p, { container }) }),
  resume: (v, p) => ({ resume: struct(v, p, { container }) }),
};

/** The attached exec fields (spec/streams.md); absent when not attached, so a plain exec keeps its old shape. */
function execAttach(f: Record<string, Json>, p: string): { attach?: boolean; tty?: boolean; cols?: number; rows?: number } {
  const out: { attach?: boolean; tty?: boolean; cols?: number; rows?: number } = {};
  if (f.attach !== undefined && f.attach !== null) out.attach = bool(f.attach, `${p}.attach`);
  if (f.tty !== undefined && f.tty !== null) out.tty = bool(f.tty, `${p}.tty`);
  const u16 = (v: Json, q: string) => int(v, q, 1, 65535, 'a terminal size (1..65535)');
  if (f.cols !== undefined && f.cols !== null) out.cols = u16(f.cols, `${p}.cols`);
  if (f.rows !== undefined && f.rows !== null) out.rows = u16(f.rows, `${p}.rows`);
  if (out.tty && !out.attach) throw new ProtocolError(`${p}.tty: needs \`attach\``);
  if ((out.cols !== undefined || out.rows !== undefined) && !out.tty) throw new ProtocolError(`${p}: cols/rows need \`tty\``);
  return out;
}

/** Requests that switch their connection to frames after an `ok` (spec/streams.md). */
export function isAttachedRequest(r: Request): boolean {
  return typeof r === 'object' && ('copy_out' in r || 'logs' in r || ('exec' in r && r.exec.attach === true));
}

/** Validates the value of a `request` message. */
export function decodeRequest(v: Json, path = 'request'): Request {
  const [n, body] = variant(v, path, 'a request');
  // Own keys only: `constructor` or `toString` name no request.
  const dec = Object.hasOwn(REQUEST_DECODERS, n) ? REQUEST_DECODERS[n] : undefined;
  if (!dec) throw new ProtocolError(`${path}: unknown request \`${n}\``);
  return dec(body, `${path}.${n}`);
}

/** The name of a request's variant. */
export function requestName(r: Request): RequestName {
  return (typeof r === 'string' ? r : Object.keys(r)[0]) as RequestName;
}

export function decodeConnect(v: Json, path = 'connect'): Connect {
  const f = fields(v, path, ['version', 'subscribe_notifications']);
  const c: Connect = {
    version: str(f.version, `${path}.version`),
    subscribe_notifications: bool(f.subscribe_notifications, `${path}.subscribe_notifications`),
  };
  // Unknown extension names are ignored: a newer client may know more than this runtime.
  if (f.extensions !== undefined && f.extensions !== null) c.extensions = array(f.extensions, `${path}.extensions`, str);
  return c;
}

/** Client side: which message a line carries. The inner value is checked lightly (it comes from the runtime). */
export function decodeMessage(v: Json): Message {
  const [n, body] = variant(v, 'message', 'a message');
  switch (n) {
    case 'connect':
      return { connect: decodeConnect(body) };
    case 'connect_ack':
      return { connect_ack: null };
    case 'connect_nack':
      if (body !== 'permission_denied' && !isObject(body)) fail('connect_nack', 'a nack reason', body);
      return { connect_nack: body as ConnectNack };
    case 'request':
      return { request: decodeRequest(body) };
    case 'response':
      if (typeof body !== 'string' && !isObject(body)) fail('response', 'a response', body);
      return { response: body as Response };
    case 'notification':
      if (typeof body !== 'string' && !isObject(body)) fail('notification', 'a notification', body);
      return { notification: body as Notification };
    default:
      throw new ProtocolError(`message: unknown variant \`${n}\``);
  }
}

// ---- construction in serde field order ----------------------------------------

export const ok = (container: Container): ContainerResult => ({ ok: { container } });
export const err = (container: Container, error: WireError): ContainerResult => ({ error: { container, error } });

/** Serializes a request with Northstar's field order and `null` for an absent init. */
export function canonicalRequest(r: Request): Request {
  if (typeof r === 'string') return r;
  if ('start' in r) {
    const s = r.start;
    return { start: { container: s.container, init: s.init ?? null, arguments: s.arguments, environment: s.environment } };
  }
  return r;
}

/** Rebuilds container results in serde order ({container, error}), whatever order the backend used. */
function canonResult(r: ContainerResult): ContainerResult {
  return 'ok' in r ? ok(r.ok.container) : err(r.error.container, r.error.error);
}

/** Requests about one container whose response is a ContainerResult. */
const SINGLE_RESULT: ReadonlySet<string> = new Set(['kill', 'start', 'uninstall', 'stop', 'pause', 'resume', 'copy_in', 'copy_out', 'logs']);
/** Requests about several containers whose response is one ContainerResult each. */
const LIST_RESULT: ReadonlySet<string> = new Set(['mount', 'umount']);

/** A response with its fields in the order Northstar serializes them. */
export function canonicalResponse(r: Response): Response {
  if (typeof r === 'string') return r;
  const [n, v] = Object.entries(r)[0] as [string, never];
  if (SINGLE_RESULT.has(n)) return { [n]: canonResult(v) } as Response;
  if (LIST_RESULT.has(n)) return { [n]: (v as ContainerResult[]).map(canonResult) } as Response;
  switch (n) {
    case 'install': {
      const i = v as InstallResult;
      return 'ok' in i ? { install: { ok: { container: i.ok.container } } } : { install: { error: { error: i.error.error } } };
    }
    case 'exec': {
      const e = v as ExecResult;
      return 'ok' in e
        ? { exec: { ok: { container: e.ok.container, pid: e.ok.pid, status: e.ok.status } } }
        : { exec: { error: { container: e.error.container, error: e.error.error } } };
    }
    case 'permission_denied':
      return { permission_denied: canonicalRequest(v) };
    default:
      return r;
  }
}

/** The error answer to a request the backend failed on (an exception, not a result). */
export function errorResponse(req: Request, error: WireError): Response {
  if (typeof req === 'string') return { error };
  const [n, body] = Object.entries(req)[0] as [string, Record<string, unknown>];
  const c = typeof body.container === 'string' ? body.container : '';
  // exec's and inspect's errors have the shape of a ContainerResult's.
  if (SINGLE_RESULT.has(n) || n === 'exec' || n === 'inspect') return { [n]: err(c, error) } as Response;
  if (LIST_RESULT.has(n)) return { [n]: (body.containers as string[]).map((x) => err(x, error)) } as Response;
  return n === 'install' ? { install: { error: { error } } } : { error };
}
