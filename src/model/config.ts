// The runtime configuration (spec/config.md + "Our configuration additions" in
// spec/README.md): TOML with Northstar's keys, read into a camelCase Config with
// every default filled in. Like serde's deny_unknown_fields, an unknown key is an
// error naming it (except inside [console.global], which Northstar leaves open).
import { availableParallelism } from 'node:os';
import { parse as parseToml } from 'smol-toml';
import { parseBindUrl, type BindAddress } from './bind-url.js';
import { DEFAULT_CONSOLE_OPTIONS, DEFAULT_CONSOLE_PORT, type ConsoleOptions } from './console-options.js';
import { LEVELS, type Level } from './log-level.js';
import { PERMISSIONS, type Permission } from './manifest.js';
import { parseByteSize, parseDuration, UnitError } from './units.js';

export { DEFAULT_CONSOLE_OPTIONS, DEFAULT_CONSOLE_PORT, parseBindUrl, type BindAddress, type ConsoleOptions };

export interface GlobalConsole {
  /** "tcp://host[:port]" (port 4200 when absent) or "unix:///path"; see parseBindUrl. */
  bind: string;
  permissions: Permission[];
  options: ConsoleOptions;
  /** Mode of a unix socket (`socket_mode`, an octal string); DEFAULT_SOCKET_MODE when absent. */
  socketMode?: number;
  /** Group of a unix socket (`socket_group`): a group name or a numeric gid. */
  socketGroup?: string | number;
}

export type RepositoryType = 'mem' | { fs: { dir: string } };

export interface RepositoryConfig {
  type: RepositoryType;
  /** Path to a raw 32-byte ed25519 public key: the repository is verified. */
  key?: string;
  mountOnStart: boolean;
  capacityNum?: number;
  /** Bytes. */
  capacitySize?: number;
}

export type Verity = 'auto' | 'dm' | 'userspace';

export interface Config {
  runDir: string;
  dataDir: string;
  socketDir: string;
  cgroup: string;
  /** Set the cgroup2 `favordynmods` option while running: task migration without an RCU wait per start. */
  cgroupFavordynmods: boolean;
  eventBufferSize: number;
  notificationBufferSize: number;
  loopDeviceTimeoutMs: number;
  /** Overall deadline of one install stream; absent: proportional to its size, with a floor. */
  installTimeoutMs?: number;
  /** At shutdown: SIGTERM, then SIGKILL after this grace (0: SIGKILL at once, Northstar's behaviour). */
  shutdownGraceMs: number;
  /** Bytes of recent piped output kept per container (the ring the `logs` request serves). */
  logBuffer: number;
  verity: Verity;
  pool: { threads: number; minThreads: number; idleTimeoutMs: number };
  /** The live state-chart page; absent means off. bind is "host:port"; history: events kept per machine. */
  inspector?: { bind: string; history?: number };
  log: { level: Level };
  console: { global?: GlobalConsole; options: ConsoleOptions };
  repositories: Record<string, RepositoryConfig>;
  debug: { commands: string[] };
}

/** A bad configuration; the message names the key ("console.options.max_request_size: ..."). */
export class ConfigError extends Error {
  override name = 'ConfigError';

  constructor(
    readonly field: string,
    readonly rule: string,
  ) {
    super(field === '' ? rule : `${field}: ${rule}`);
  }
}

/** The console socket's mode unless `socket_mode` says otherwise: root only (spec/README.md deviation 23). */
export const DEFAULT_SOCKET_MODE = 0o600;

/**
 * What the daemon runs with when started without `-c` (spec/README.md deviation 16):
 * a console on a root-only unix socket with every permission, and one trusted `fs`
 * repository. The repository has no `key` on purpose: a key file that is not there
 * would stop the daemon from starting; give a key in your own config to verify NPKs.
 */
export const EMBEDDED_DEFAULT_CONFIG = `# Embedded default configuration of the northstar daemon (used without -c).
run_dir = "/run/northstar"
data_dir = "/var/lib/northstar/data"
socket_dir = "/run/northstar/sockets"
cgroup = "northstar"
# Container starts move a pid into cgroups: with the cgroup2 option
# favordynmods (set while running, restored at shutdown) that costs ~30 µs
# instead of an RCU grace period (4-16 ms).
cgroup_favordynmods = true
verity = "auto"
loop_device_timeout = "10s"

# Small devices: at most two mount workers, none kept while idle (a worker
# costs ~8 MB); they start again in ~30 ms when a mount comes.
[pool]
threads = 2
min_threads = 0
idle_timeout = "10s"

[log]
level = "info"

[console.global]
bind = "unix:///run/northstar/console"
permissions = "full"

[repositories.default]
type = { fs = { dir = "/var/lib/northstar/repository" } }
`;

type Obj = Record<string, unknown>;

function fail(field: string, rule: string): never {
  throw new ConfigError(field, rule);
}

const join = (path: string, key: string): string => (path === '' ? key : `${path}.${key}`);

function describe(v: unknown): string {
  if (typeof v === 'string') return `the string ${JSON.stringify(v)}`;
  if (typeof v === 'number' || typeof v === 'bigint') return `the number ${v}`;
  if (typeof v === 'boolean') return `the boolean ${v}`;
  if (Array.isArray(v)) return 'an array';
  if (v instanceof Date) return 'a date';
  return 'a table';
}

function table(v: unknown, path: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Date) fail(path, `expected a table, got ${describe(v)}`);
  return v as Obj;
}

function deny(t: Obj, path: string, allowed: readonly string[]): void {
  for (const k of Object.keys(t)) {
    if (!allowed.includes(k)) fail(join(path, k), `unknown key, expected one of: ${allowed.join(', ')}`);
  }
}

function has(t: Obj, key: string): boolean {
  return Object.hasOwn(t, key) && t[key] !== undefined;
}

function need(t: Obj, key: string, path: string): unknown {
  if (!has(t, key)) fail(join(path, key), 'missing required key');
  return t[key];
}

function str(v: unknown, path: string): string {
  if (typeof v !== 'string') fail(path, `expected a string, got ${describe(v)}`);
  if (v.includes('\0')) fail(path, 'must not contain a NUL character');
  return v;
}

function nonEmpty(v: unknown, path: string): string {
  const s = str(v, path);
  if (s === '') fail(path, 'must not be empty');
  return s;
}

function int(v: unknown, path: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  if (typeof v === 'bigint') fail(path, `integer ${v} is too large`);
  if (typeof v !== 'number' || !Number.isInteger(v)) fail(path, `expected an integer, got ${describe(v)}`);
  if (v < min || v > max) fail(path, `must be ${min}..=${max}, got ${v}`);
  return v;
}

function bool(v: unknown, path: string): boolean {
  if (typeof v !== 'boolean') fail(path, `expected true or false, got ${describe(v)}`);
  return v;
}

/** humantime string ("10s", "1m"), as humantime_serde reads it. */
function duration(v: unknown, path: string): number {
  try {
    return parseDuration(str(v, path));
  } catch (e) {
    return fail(path, e instanceof UnitError ? e.message : String(e));
  }
}

/** bytesize string ("100MB" = 100000000, "1MiB" = 1048576); a plain integer is taken as bytes. */
function byteSize(v: unknown, path: string): number {
  if (typeof v !== 'string' && typeof v !== 'number') fail(path, `expected a size such as "100MB", got ${describe(v)}`);
  try {
    return parseByteSize(v);
  } catch (e) {
    return fail(path, e instanceof UnitError ? e.message : String(e));
  }
}

function opt<T>(t: Obj, key: string, path: string, fn: (v: unknown, p: string) => T, dflt: T): T {
  return has(t, key) ? fn(t[key], join(path, key)) : dflt;
}

/**
 * Our console's extension permissions (src/console/permissions.ts
 * EXTENSION_PERMISSIONS; kept here so the model does not import the console):
 * grantable one by one in a config list, included in "full".
 */
export const CONFIG_EXTENSION_PERMISSIONS = ['stop', 'exec', 'pause', 'resume', 'copy', 'logs'] as const;

function permissions(v: unknown, path: string): Permission[] {
  if (typeof v === 'string') {
    if (v.trim() !== 'full') fail(path, `invalid console permission: ${v} (expected "full" or a list)`);
    return [...PERMISSIONS];
  }
  if (!Array.isArray(v)) fail(path, `expected "full" or a list of permissions, got ${describe(v)}`);
  const set = new Set<string>();
  v.forEach((p, i) => {
    const s = str(p, `${path}[${i}]`);
    const known: readonly string[] = [...PERMISSIONS, ...CONFIG_EXTENSION_PERMISSIONS];
    if (!known.includes(s)) fail(`${path}[${i}]`, `unknown permission "${s}", expected one of: ${known.join(', ')}`);
    set.add(s);
  });
  // Extension names ride along in the list (the console's permissionSet knows them).
  return [...PERMISSIONS, ...CONFIG_EXTENSION_PERMISSIONS].filter((p) => set.has(p)) as Permission[];
}

function consoleOptions(v: unknown, path: string): ConsoleOptions {
  const t = table(v, path);
  deny(t, path, ['token_validity', 'max_requests_per_sec', 'max_request_size', 'max_npk_install_size', 'npk_stream_timeout']);
  const d = DEFAULT_CONSOLE_OPTIONS;
  return {
    tokenValidityMs: opt(t, 'token_validity', path, duration, d.tokenValidityMs),
    maxRequestsPerSec: opt(t, 'max_requests_per_sec', path, (x, p) => int(x, p, 1), d.maxRequestsPerSec),
    maxRequestSize: opt(t, 'max_request_size', path, byteSize, d.maxRequestSize),
    maxNpkInstallSize: opt(t, 'max_npk_install_size', path, byteSize, d.maxNpkInstallSize),
    npkStreamTimeoutMs: opt(t, 'npk_stream_timeout', path, duration, d.npkStreamTimeoutMs),
  };
}

function bindUrl(v: unknown, path: string): string {
  const s = str(v, path);
  try {
    parseBindUrl(s);
  } catch (e) {
    fail(path, (e as Error).message);
  }
  return s;
}

/** "0660", "660" or "0o660": permission bits only (no setuid, setgid or sticky bit). */
function socketMode(v: unknown, path: string): number {
  if (typeof v !== 'string') fail(path, `expected an octal string such as "0660", got ${describe(v)}`);
  const m = /^(?:0o?)?([0-7]{1,4})$/.exec(v);
  if (!m) fail(path, `expected an octal mode such as "0660", got "${v}"`);
  const mode = parseInt(m[1]!, 8);
  if (mode > 0o777) fail(path, `only permission bits (at most "0777") are allowed, got "${v}"`);
  return mode;
}

/** A group name (as in /etc/group) or a numeric gid, given as a TOML integer or a string of digits. */
function socketGroup(v: unknown, path: string): string | number {
  if (typeof v === 'number' || typeof v === 'bigint') return int(v, path, 0, 4294967294);
  const s = nonEmpty(v, path);
  if (/^\d+$/.test(s)) return int(Number(s), path, 0, 4294967294);
  if (!/^[A-Za-z_][A-Za-z0-9_.-]*\$?$/.test(s)) fail(path, `invalid group name "${s}": expected a name such as "northstar" or a numeric gid`);
  return s;
}

function globalConsole(v: unknown, path: string): GlobalConsole {
  // No deny_unknown_fields here in Northstar: other keys are ignored.
  const t = table(v, path);
  const g: GlobalConsole = {
    bind: bindUrl(need(t, 'bind', path), join(path, 'bind')),
    permissions: permissions(need(t, 'permissions', path), join(path, 'permissions')),
    options: opt(t, 'options', path, consoleOptions, { ...DEFAULT_CONSOLE_OPTIONS }),
  };
  for (const key of ['socket_mode', 'socket_group']) {
    if (has(t, key) && parseBindUrl(g.bind).kind !== 'unix') fail(join(path, key), `applies to a unix socket only, but bind is "${g.bind}"`);
  }
  if (has(t, 'socket_mode')) g.socketMode = socketMode(t.socket_mode, join(path, 'socket_mode'));
  if (has(t, 'socket_group')) g.socketGroup = socketGroup(t.socket_group, join(path, 'socket_group'));
  return g;
}

function repositoryType(v: unknown, path: string): RepositoryType {
  if (v === 'mem') return 'mem';
  if (typeof v === 'string') fail(path, `unknown repository type "${v}", expected "mem" or { fs = { dir = "<path>" } }`);
  const t = table(v, path);
  deny(t, path, ['fs']);
  const fs = table(need(t, 'fs', path), join(path, 'fs'));
  deny(fs, join(path, 'fs'), ['dir']);
  return { fs: { dir: nonEmpty(need(fs, 'dir', join(path, 'fs')), join(path, 'fs.dir')) } };
}

function repository(v: unknown, path: string): RepositoryConfig {
  const t = table(v, path);
  deny(t, path, ['type', 'key', 'mount_on_start', 'capacity_num', 'capacity_size']);
  const r: RepositoryConfig = {
    type: repositoryType(need(t, 'type', path), join(path, 'type')),
    mountOnStart: opt(t, 'mount_on_start', path, bool, false),
  };
  if (has(t, 'key')) r.key = nonEmpty(t.key, join(path, 'key'));
  if (has(t, 'capacity_num')) r.capacityNum = int(t.capacity_num, join(path, 'capacity_num'), 0, 4294967295);
  if (has(t, 'capacity_size')) r.capacitySize = byteSize(t.capacity_size, join(path, 'capacity_size'));
  return r;
}

function inspectorBind(v: unknown, path: string): string {
  const s = str(v, path);
  const m = /^(\[[0-9A-Fa-f:.]+\]|[^:[\]\s]+):(\d{1,5})$/.exec(s);
  if (!m || Number(m[2]) < 1 || Number(m[2]) > 65535) fail(path, `expected "host:port" such as "127.0.0.1:4201", got "${s}"`);
  return s;
}

const TOP = [
  'run_dir', 'data_dir', 'socket_dir', 'cgroup', 'cgroup_favordynmods', 'event_buffer_size', 'notification_buffer_size',
  'loop_device_timeout', 'console', 'repositories', 'debug', 'verity', 'pool', 'inspector', 'log',
  'install_timeout', 'shutdown_grace', 'log_buffer',
] as const;

/** Reads a decoded TOML table into a Config. `cpus` is the default of pool.threads. */
export function configFromTable(t: Obj, cpus = availableParallelism()): Config {
  deny(t, '', TOP);
  const consoleT = opt(t, 'console', '', table, {} as Obj);
  deny(consoleT, 'console', ['global', 'options']);
  const poolT = opt(t, 'pool', '', table, {} as Obj);
  deny(poolT, 'pool', ['threads', 'min_threads', 'idle_timeout']);
  const logT = opt(t, 'log', '', table, {} as Obj);
  deny(logT, 'log', ['level']);
  const debugT = opt(t, 'debug', '', table, {} as Obj);
  deny(debugT, 'debug', ['commands']);
  const reposT = opt(t, 'repositories', '', table, {} as Obj);

  const threads = opt(poolT, 'threads', 'pool', (v, p) => int(v, p, 1, 1024), Math.max(1, cpus));
  const minThreads = opt(poolT, 'min_threads', 'pool', (v, p) => int(v, p, 0, 1024), 0);
  if (minThreads > threads) fail('pool.min_threads', `must not exceed pool.threads (${threads}), got ${minThreads}`);

  const repositories: Record<string, RepositoryConfig> = {};
  for (const id of Object.keys(reposT)) {
    if (id === '') fail('repositories', 'a repository id must not be empty');
    Object.defineProperty(repositories, id, { value: repository(reposT[id], `repositories.${id}`), enumerable: true, writable: true, configurable: true });
  }

  const config: Config = {
    runDir: nonEmpty(need(t, 'run_dir', ''), 'run_dir'),
    dataDir: nonEmpty(need(t, 'data_dir', ''), 'data_dir'),
    socketDir: nonEmpty(need(t, 'socket_dir', ''), 'socket_dir'),
    cgroup: nonEmpty(need(t, 'cgroup', ''), 'cgroup'),
    cgroupFavordynmods: opt(t, 'cgroup_favordynmods', '', bool, true),
    eventBufferSize: opt(t, 'event_buffer_size', '', (v, p) => int(v, p, 1), 256),
    notificationBufferSize: opt(t, 'notification_buffer_size', '', (v, p) => int(v, p, 1), 128),
    loopDeviceTimeoutMs: opt(t, 'loop_device_timeout', '', duration, 10_000),
    shutdownGraceMs: opt(t, 'shutdown_grace', '', duration, 0),
    logBuffer: opt(t, 'log_buffer', '', (v, p) => {
      const n = byteSize(v, p);
      if (n < 1024 || n > 1 << 30) fail(p, `expected 1KiB..1GiB, got ${n} bytes`);
      return n;
    }, 64 * 1024),
    verity: opt(t, 'verity', '', (v, p) => {
      const s = str(v, p);
      if (s !== 'auto' && s !== 'dm' && s !== 'userspace') fail(p, `expected "auto", "dm" or "userspace", got "${s}"`);
      return s;
    }, 'auto' as Verity),
    pool: { threads, minThreads, idleTimeoutMs: opt(poolT, 'idle_timeout', 'pool', duration, 30_000) },
    log: {
      level: opt(logT, 'level', 'log', (v, p) => {
        const s = str(v, p).toLowerCase();
        if (!(LEVELS as readonly string[]).includes(s)) fail(p, `expected one of ${LEVELS.join(', ')}, got "${s}"`);
        return s as Level;
      }, 'info' as Level),
    },
    console: { options: opt(consoleT, 'options', 'console', consoleOptions, { ...DEFAULT_CONSOLE_OPTIONS }) },
    repositories,
    debug: {
      commands: opt(debugT, 'commands', 'debug', (v, p) => {
        if (!Array.isArray(v)) fail(p, `expected an array of strings, got ${describe(v)}`);
        return v.map((c, i) => str(c, `${p}[${i}]`));
      }, [] as string[]),
    },
  };
  if (has(t, 'install_timeout')) {
    config.installTimeoutMs = duration(t.install_timeout, 'install_timeout');
    if (config.installTimeoutMs <= 0) fail('install_timeout', 'must be longer than 0s');
  }
  if (has(consoleT, 'global')) config.console.global = globalConsole(consoleT.global, 'console.global');
  if (has(t, 'inspector')) {
    const it = table(t.inspector, 'inspector');
    deny(it, 'inspector', ['bind', 'history']);
    config.inspector = { bind: inspectorBind(need(it, 'bind', 'inspector'), 'inspector.bind') };
    // Events kept per machine; the inspector's default (1000) when absent.
    if (has(it, 'history')) config.inspector.history = int(it.history, 'inspector.history', 1, 1_000_000);
  }
  const owner = new Map<string, string>();
  for (const [id, r] of Object.entries(repositories)) {
    if (r.type === 'mem') continue;
    const other = owner.get(r.type.fs.dir);
    if (other !== undefined) fail(`repositories.${id}.type.fs.dir`, `directory ${r.type.fs.dir} is already used by repository ${other}`);
    owner.set(r.type.fs.dir, id);
  }
  return config;
}

/** Parses the runtime's TOML configuration. Throws ConfigError naming the key. */
export function parseConfig(tomlText: string, opts: { cpus?: number } = {}): Config {
  let t: Obj;
  try {
    t = parseToml(tomlText, { integersAsBigInt: 'asNeeded' }) as Obj;
  } catch (e) {
    throw new ConfigError('', `invalid TOML: ${(e as Error).message.split('\n')[0]}`);
  }
  return configFromTable(t, opts.cpus);
}
