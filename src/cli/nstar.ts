// `nstar`: the console command line (spec/tools.md §9.2) plus our extension
// commands (stop, exec, pause, resume). Without `-u` it tries the embedded
// default config's unix socket, then tcp://localhost:4200 (deviation 16).
// Human output by default; `--json` prints one JSON document per command for
// scripts (big integers exact), `--raw` the JSON lines exchanged.
// Exit code 0 on success, 1 with a message naming what is wrong and what to do.
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { constants } from 'node:os';

import { Command, CommanderError, Option } from 'commander';

import { Client, ClientError, DEFAULT_URLS, type AttachedStream, type ConnectOptions } from '../client/index.js';
import { containerSpec, copyFromContainer, copyToContainer } from '../client/cp.js';
import { stringifyJson } from '../console/codec.js';
import type { ContainerData, ContainerResult, ExitStatus, Notification, StatCategory } from '../console/protocol.js';
import { STAT_CATEGORIES } from '../console/protocol.js';
import { BASE, BASE_BY_ARCH } from '../model/seccomp-default.js';
import { hostArch } from '../model/seccomp.js';
import { VERSION } from '../model/version.js';

export interface CliIo {
  out(s: string): void;
  err(s: string): void;
  /** Whether `out` is a terminal (progress bars). */
  isTTY: boolean;
}

const processIo: CliIo = {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  isTTY: process.stdout.isTTY === true,
};

interface Globals {
  url?: string;
  json?: boolean;
  raw?: boolean;
  timeout: string;
}

class UsageError extends Error {}

/** "10s", "500ms", "2m", "1h" or plain seconds. */
export function parseTimeout(s: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)?$/.exec(s.trim());
  if (!m) throw new UsageError(`invalid duration "${s}" (examples: 10s, 500ms, 2m)`);
  const n = Number(m[1]);
  const unit = m[2] ?? 's';
  return Math.round(n * { ms: 1, s: 1000, m: 60_000, h: 3_600_000 }[unit]!);
}

/** Uptime in ns as "1h 2m 3s" (milliseconds below a minute). */
export function formatUptime(ns: number): string {
  const ms = Math.floor(ns / 1e6);
  if (ms < 60_000) return `${(ms / 1000).toFixed(ms < 10_000 ? 3 : 1)}s`;
  const s = Math.floor(ms / 1000);
  const parts: string[] = [];
  const d = Math.floor(s / 86400);
  if (d) parts.push(`${d}d`);
  const h = Math.floor((s % 86400) / 3600);
  if (h) parts.push(`${h}h`);
  const mi = Math.floor((s % 3600) / 60);
  if (mi) parts.push(`${mi}m`);
  if (s % 60) parts.push(`${s % 60}s`);
  return parts.join(' ');
}

/** Columns padded to the widest cell. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (r: string[]) => r.map((c, i) => (i === r.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}

/** A signal as kill(1) takes it: 10, USR1, SIGUSR1 (any case). */
export function parseSignal(s: string): number {
  const t = s.trim();
  if (/^\d+$/.test(t)) {
    const n = Number(t);
    if (n < 1 || n > 64) throw new UsageError(`invalid signal number ${t}: expected 1..64`);
    return n;
  }
  const up = t.toUpperCase();
  const n = (constants.signals as Record<string, number>)[up.startsWith('SIG') ? up : `SIG${up}`];
  if (n === undefined) throw new UsageError(`unknown signal "${s}" (examples: TERM, SIGUSR1, 9; \`kill -l\` lists them)`);
  return n;
}

/** "SIGUSR1 (10)", or the number alone for a signal without a name. */
export function signalName(n: number): string {
  const name = Object.entries(constants.signals).find(([k, v]) => v === n && k !== 'SIGIOT' && k !== 'SIGPOLL')?.[0];
  return name ? `${name} (${n})` : String(n);
}

/** How a process ended, in words. */
export function formatExit(s: ExitStatus): string {
  return 'exit' in s ? `exited with code ${s.exit.code}` : `was killed by ${signalName(s.signalled.signal)}`;
}

/** The state of a container as `nstar list` shows it: unmounted, mounted, running, paused, ... */
export function stateOf(d: ContainerData): string {
  const s = d.state;
  if (s !== undefined) {
    if (s === 'started.running') return 'running';
    if (s === 'started.paused' || s === 'started.pausing' || s === 'started.resuming') return s.slice('started.'.length);
    if (/^started\.(stopping|killing|aborting|exiting|thawing)/.test(s)) return 'stopping';
    if (s.startsWith('started')) return 'starting';
    if (['unmounted', 'mounting', 'mounted', 'unmounting', 'restarting'].includes(s)) return s;
  }
  return d.process ? 'running' : d.mounted ? 'mounted' : 'unmounted';
}

/** One human line per notification. */
export function formatNotification(n: Notification): string {
  if (n === 'shutdown') return 'the runtime is shutting down';
  if ('started' in n) return `started ${n.started}`;
  if ('exit' in n) return `${n.exit[0]} ${formatExit(n.exit[1])}`;
  if ('install' in n) return `installed ${n.install}`;
  if ('uninstall' in n) return `uninstalled ${n.uninstall}`;
  if ('c_group' in n) {
    const [c, { memory }] = n.c_group;
    const events = Object.entries(memory)
      .filter(([, v]) => v !== null)
      .map(([k, v]) => `${k} ${v}`);
    return `memory event in ${c}: ${events.join(', ') || 'no counters'}`;
  }
  if ('restarting' in n) {
    const [c, r] = n.restarting;
    return `${c} restarts in ${r.delay_ms} ms (attempt ${r.attempt}: ${r.reason})`;
  }
  if ('gave_up' in n) return `${n.gave_up[0]} stays down: gave up after ${n.gave_up[1].restarts} restarts (${n.gave_up[1].reason})`;
  if ('healthy' in n) return `${n.healthy} is healthy`;
  if ('unhealthy' in n) return `${n.unhealthy} is unhealthy`;
  return stringifyJson(n);
}

function scalar(v: unknown): string {
  if (v === null || v === undefined) return '-';
  if (typeof v === 'string') return v;
  return stringifyJson(v);
}

/** Nested statistics as indented `key: value` lines (big integers exact). */
function tree(v: unknown, indent: string): string[] {
  if (typeof v !== 'object' || v === null) return [`${indent}${scalar(v)}`];
  const lines: string[] = [];
  for (const [k, x] of Object.entries(v)) {
    if (typeof x === 'object' && x !== null && !Array.isArray(x)) {
      lines.push(`${indent}${k}:`, ...tree(x, indent + '  '));
    } else lines.push(`${indent}${k}: ${Array.isArray(x) ? x.map(scalar).join(', ') : scalar(x)}`);
  }
  return lines;
}

const ms = (n: number) => `${Number.isInteger(n) ? n : n.toFixed(2)} ms`;

/** `nstar inspect` for people; `--json` has everything, the manifest included. */
export function formatInspect(container: string, d: ContainerData): string {
  const m = (d.manifest ?? {}) as { init?: string; args?: string[] };
  const rows: [string, string][] = [
    ['container', container],
    ['repository', d.repository],
    ['type', m.init === undefined ? 'resource' : `app (init ${[m.init, ...(m.args ?? [])].join(' ')})`],
    ['state', stateOf(d)],
    ['mounted', d.mounted ? 'yes' : 'no'],
  ];
  if (d.process) rows.push(['pid', String(d.process.pid)], ['uptime', formatUptime(d.process.uptime)]);
  if (d.startup) {
    const { total, ...phases } = d.startup;
    const parts = Object.entries(phases).map(([k, v]) => `${k} ${ms(v)}`);
    rows.push(['last start', `${total === undefined ? '' : ms(total)}${parts.length ? ` (${parts.join(', ')})` : ''}`]);
  }
  const w = Math.max(...rows.map(([k]) => k.length)) + 3;
  const lines = rows.map(([k, v]) => `${(k + ':').padEnd(w)}${v}`);
  const stats = d.process?.statistics;
  if (stats && typeof stats === 'object' && Object.keys(stats).length > 0) lines.push('statistics:', ...tree(stats, '  '));
  return lines.join('\n') + '\n';
}

/** Every command's options, for completion: the long and short flags. */
function flagsOf(c: Command): string[] {
  return c.options.flatMap((o) => [o.long, o.short].filter((x): x is string => !!x));
}

/** Commands whose first argument is an installed container. */
const CONTAINER_ARG = /^<?container/;

/**
 * A bash or zsh completion script generated from the commander definitions:
 * commands and aliases, each command's flags, installed container names
 * (from `nstar list -q` against the running daemon) and file names for files.
 */
export function completionScript(shell: string, program: Command): string {
  const cmds = program.commands.filter((c) => c.name() !== 'help');
  const names = cmds.flatMap((c) => [c.name(), ...c.aliases()]);
  const globals = flagsOf(program);
  const cases = cmds.map((c) => {
    const first = c.registeredArguments[0];
    const kind = first === undefined ? 'none' : CONTAINER_ARG.test(first.name()) ? 'container' : 'file';
    return { pattern: [c.name(), ...c.aliases()].join('|'), flags: [...flagsOf(c), '--help'].join(' '), kind };
  });
  switch (shell) {
    case 'bash':
      return [
        '# nstar bash completion: source <(nstar completion bash)',
        '_nstar() {',
        '  local cur="${COMP_WORDS[COMP_CWORD]}" cmd="" i',
        '  for ((i = 1; i < COMP_CWORD; i++)); do',
        '    case "${COMP_WORDS[i]}" in',
        '      -u|--url|-t|--timeout) ((i++)) ;;',
        '      -*) ;;',
        '      *) cmd="${COMP_WORDS[i]}"; break ;;',
        '    esac',
        '  done',
        '  if [ -z "$cmd" ]; then',
        `    COMPREPLY=( $(compgen -W "${[...names, ...globals].join(' ')}" -- "$cur") )`,
        '    return',
        '  fi',
        '  local flags="" kind=none',
        '  case "$cmd" in',
        ...cases.map((c) => `    ${c.pattern}) flags="${c.flags}"; kind=${c.kind} ;;`),
        '  esac',
        '  if [[ "$cur" == -* ]]; then',
        '    COMPREPLY=( $(compgen -W "$flags" -- "$cur") )',
        '  elif [ "$kind" = container ]; then',
        '    COMPREPLY=( $(compgen -W "$(nstar list -q 2>/dev/null)" -- "$cur") )',
        '  elif [ "$kind" = file ]; then',
        '    COMPREPLY=( $(compgen -f -- "$cur") )',
        '  fi',
        '}',
        'complete -F _nstar nstar',
        '',
      ].join('\n');
    case 'zsh':
      return [
        '#compdef nstar',
        '# nstar zsh completion: nstar completion zsh > "${fpath[1]}/_nstar"',
        '_nstar() {',
        '  local -a cmds',
        `  cmds=(${cmds.map((c) => `'${c.name()}:${c.description().replace(/'/g, "'\\''").replace(/:/g, '\\:')}'`).join(' ')})`,
        '  local i=2 cmd=',
        '  while (( i < CURRENT )); do',
        '    case ${words[i]} in',
        '      -u|--url|-t|--timeout) (( i += 2 )) ;;',
        '      -*) (( i++ )) ;;',
        '      *) cmd=${words[i]}; break ;;',
        '    esac',
        '  done',
        '  if [[ -z $cmd ]]; then',
        "    _describe 'command' cmds",
        '    return',
        '  fi',
        '  case $cmd in',
        ...cases.map((c) => {
          const flags = c.flags.split(' ').map((f) => `'${f}'`).join(' ');
          const arg =
            c.kind === 'container'
              ? "compadd -- ${(f)\"$(nstar list -q 2>/dev/null)\"}"
              : c.kind === 'file'
                ? '_files'
                : ':';
          return `    ${c.pattern}) if [[ $PREFIX == -* ]]; then compadd -- ${flags}; else ${arg}; fi ;;`;
        }),
        '  esac',
        '}',
        'if [ "$funcstack[1]" = "_nstar" ]; then _nstar "$@"; else compdef _nstar nstar; fi',
        '',
      ].join('\n');
    case 'fish':
      return names.map((c) => `complete -c nstar -n __fish_use_subcommand -a ${c}\n`).join('');
    default:
      throw new UsageError(`unsupported shell "${shell}" (bash, zsh or fish)`);
  }
}

/** A syscall name at the start of an strace line (`123 openat(`, `[pid 123] read(`). */
const STRACE_SYSCALL = /^(?:\[pid\s+\d+\]\s+|\d+\s+)?([a-z_][a-z0-9_]*)\(/;

/**
 * `nstar seccomp`: the syscalls an strace log shows, as a manifest `seccomp`
 * section in YAML. With a default-profile base list, only the syscalls the
 * profile lacks are listed under `allow` (and `profile: default` is set).
 */
export function seccompFromStrace(log: string, base?: ReadonlySet<string>): string {
  const names = new Set<string>();
  for (const line of log.split('\n')) {
    const m = STRACE_SYSCALL.exec(line.trim());
    if (m && !(base?.has(m[1]!) ?? false)) names.add(m[1]!);
  }
  const lines: string[] = [];
  if (base) lines.push('profile: default');
  const sorted = [...names].sort();
  if (sorted.length > 0) lines.push('allow:', ...sorted.map((n) => `  ${n}: any`));
  return lines.join('\n') + '\n';
}

class Session {
  private client: Client | undefined;

  constructor(
    private readonly g: Globals,
    private readonly io: CliIo,
    /** --json given to the command or globally. */
    readonly json: boolean,
  ) {}

  async connect(subscribe: number | false = false): Promise<Client> {
    if (this.client) return this.client;
    const opts: ConnectOptions = {
      timeoutMs: parseTimeout(this.g.timeout),
      subscribe: subscribe === false ? false : subscribe,
    };
    // A subscriber wants the supervision notifications too (restarting, gave_up, healthy, unhealthy).
    if (subscribe !== false) opts.extensions = ['supervision'];
    if (this.g.raw) opts.onRaw = (_dir, line) => this.io.out(line + '\n');
    this.client = this.g.url ? await Client.connect(this.g.url, opts) : await Client.connectFirst(DEFAULT_URLS, opts);
    return this.client;
  }

  close(): void {
    this.client?.close();
  }

  /** `name:version` as given, or the only installed version of `name`. */
  async resolve(c: string): Promise<string> {
    if (c.includes(':')) return c;
    const matches = (await (await this.connect()).list()).filter((x) => x.slice(0, x.indexOf(':')) === c).sort();
    if (matches.length === 1) return matches[0]!;
    if (matches.length === 0) throw new UsageError(`no container named "${c}" is installed (\`nstar list\` shows the installed containers)`);
    throw new UsageError(`"${c}" is ambiguous: ${matches.join(', ')} (give name:version)`);
  }

  /** An error line on stderr (also with --json). */
  fail(s: string): void {
    this.io.err(`nstar: ${s}\n`);
  }

  /** The human text, or with --json the value as one JSON document; nothing with --raw. */
  emit(human: string, json: unknown, indent?: number): void {
    if (this.g.raw) return;
    const s = this.json ? stringifyJson(json, indent) : human;
    if (s !== '') this.io.out(s.endsWith('\n') ? s : s + '\n');
  }
}

function reportResults(s: Session, verb: 'mounted' | 'umounted', results: ContainerResult[]): boolean {
  const action = verb === 'mounted' ? 'mount' : 'umount';
  const lines: string[] = [];
  const json: unknown[] = [];
  for (const r of results) {
    if ('ok' in r) {
      lines.push(`${verb} ${r.ok.container}`);
      json.push({ container: r.ok.container, ok: true });
    } else {
      const e = ClientError.runtime(r.error.error, action, r.error.container);
      s.fail(e.message);
      json.push({ container: r.error.container, ok: false, error: { kind: e.code, message: e.message } });
    }
  }
  s.emit(lines.join('\n'), json);
  return results.every((r) => 'ok' in r);
}

interface Row {
  container: string;
  name: string;
  version: string;
  type: 'app' | 'resource' | null;
  state: string | null;
  pid: number | null;
  uptime_ns: number | null;
  repository: string | null;
  /** Restarts since the last start request (manifest `restart`), else null. */
  restarts: number | null;
  /** The health check's state (manifest `health`) while running, else null. */
  health: string | null;
}

async function rows(client: Client): Promise<Row[]> {
  const out: Row[] = [];
  for (const c of (await client.list()).sort()) {
    let d: ContainerData | undefined;
    try {
      d = await client.inspect(c, []);
    } catch (e) {
      // Uninstalled between the list and the inspect.
      if (!(e instanceof ClientError && e.kind === 'runtime')) throw e;
    }
    const manifest = (d?.manifest ?? {}) as { init?: unknown };
    out.push({
      container: c,
      name: c.slice(0, c.indexOf(':')),
      version: c.slice(c.indexOf(':') + 1),
      type: d ? (manifest.init === undefined ? 'resource' : 'app') : null,
      state: d ? stateOf(d) : null,
      pid: d?.process?.pid ?? null,
      uptime_ns: d?.process?.uptime ?? null,
      repository: d?.repository ?? null,
      restarts: d?.restarts?.count ?? null,
      health: d?.health?.status ?? null,
    });
  }
  return out;
}

async function list(s: Session, o: { quiet?: boolean }): Promise<void> {
  const client = await s.connect();
  if (o.quiet) {
    const names = (await client.list()).sort();
    s.emit(names.join('\n'), names);
    return;
  }
  const rs = await rows(client);
  // RESTARTS and HEALTH only when some container has a restart policy or a health check.
  const supervised = rs.some((r) => r.restarts !== null || r.health !== null);
  const cells = rs.map((r) => [
    r.name,
    r.version,
    r.type ?? '',
    r.state ?? '',
    r.pid === null ? '' : String(r.pid),
    r.uptime_ns === null ? '' : formatUptime(r.uptime_ns),
    r.repository ?? '',
    ...(supervised ? [r.restarts === null ? '' : String(r.restarts), r.health ?? ''] : []),
  ]);
  const head = ['NAME', 'VERSION', 'TYPE', 'STATE', 'PID', 'UPTIME', 'REPOSITORY', ...(supervised ? ['RESTARTS', 'HEALTH'] : [])];
  s.emit(table(head, cells), rs);
}

/** `start <c> [KEY=VAL]... [init] [args...]` */
export function parseStartArgs(rest: string[]): { env: Record<string, string>; init: string | null; args: string[] } {
  const env: Record<string, string> = {};
  let i = 0;
  for (; i < rest.length && /^[A-Za-z_][A-Za-z0-9_]*=/.test(rest[i]!); i++) {
    const kv = rest[i]!;
    const eq = kv.indexOf('=');
    env[kv.slice(0, eq)] = kv.slice(eq + 1);
  }
  return { env, init: rest[i] ?? null, args: rest.slice(i + 1) };
}

function progress(io: CliIo, size: number): ((sent: number) => void) | undefined {
  if (!io.isTTY || size < 4 * 1024 * 1024) return undefined;
  let last = -1;
  return (sent) => {
    const pct = Math.floor((sent / size) * 100);
    if (pct === last) return;
    last = pct;
    const bar = '#'.repeat(Math.floor(pct / 5)).padEnd(20);
    const mib = (n: number) => (n / 1048576).toFixed(1);
    io.err(`\r[${bar}] ${String(pct).padStart(3)}% ${mib(sent)}/${mib(size)} MiB`);
    if (sent >= size) io.err('\n');
  };
}

type Run = (o: { json?: boolean }, fn: (s: Session) => Promise<boolean | void | number>) => Promise<void>;

function build(io: CliIo, run: Run): Command {
  const program = new Command('nstar')
    .description('Northstar console client')
    .version(VERSION)
    .addOption(new Option('-u, --url <url>', `console url (default: ${DEFAULT_URLS.join(', then ')})`))
    .option('-j, --json', 'print each result as JSON (for scripts)')
    .option('--raw', 'print the raw JSON lines exchanged with the runtime instead')
    .option('-t, --timeout <duration>', 'connect and handshake timeout', '10s')
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .showHelpAfterError();
  /** A subcommand that takes --json after its name too. */
  const command = (name: string) => program.command(name).option('-j, --json', 'print the result as JSON');

  command('list')
    .alias('ls')
    .description('list containers: name, version, type, state, pid, uptime, repository')
    .option('-q, --quiet', 'print the container names only')
    .action((o: { json?: boolean; quiet?: boolean }) => run(o, (s) => list(s, o)));
  command('repositories')
    .alias('repos')
    .description('list repositories')
    .action((o) =>
      run(o, async (s) => {
        const r = (await (await s.connect()).repositories()).sort();
        s.emit(r.join('\n'), r);
      }),
    );
  for (const [name, verb] of [['mount', 'mounted'], ['umount', 'umounted']] as const) {
    command(name)
      .description(`${name === 'mount' ? 'mount' : 'unmount'} containers`)
      .argument('<containers...>')
      .action((cs: string[], o) =>
        run(o, async (s) => {
          const client = await s.connect();
          return reportResults(s, verb, await client[name](await Promise.all(cs.map((c) => s.resolve(c)))));
        }),
      );
  }
  command('start')
    .description('start a container: start <c> [KEY=VAL]... [init] [args...] (<INIT> stands for the manifest init)')
    .argument('<container>')
    .argument('[rest...]')
    .passThroughOptions()
    .action((c: string, rest: string[], o) =>
      run(o, async (s) => {
        const { env, init, args } = parseStartArgs(rest);
        const started = await (await s.connect()).start(await s.resolve(c), { init, args, env });
        s.emit(`started ${started}`, { started });
      }),
    );
  command('kill')
    .description('send a signal to a container (default SIGTERM): kill <c> [signal], kill -s USR1 <c>')
    .argument('<container>')
    .argument('[signal]', 'signal: a name (TERM, SIGUSR1) or a number')
    .option('-s, --signal <signal>', 'signal: a name (TERM, SIGUSR1) or a number')
    .action((c: string, sig: string | undefined, o: { json?: boolean; signal?: string }) =>
      run(o, async (s) => {
        if (sig !== undefined && o.signal !== undefined) throw new UsageError('give the signal once: as -s or as the second argument');
        const signal = parseSignal(sig ?? o.signal ?? 'TERM');
        const container = await (await s.connect()).kill(await s.resolve(c), signal);
        s.emit(`signalled ${container} with ${signalName(signal)}`, { signalled: container, signal });
      }),
    );
  command('stop')
    .description('stop a container: SIGTERM, then SIGKILL after the grace period (extension)')
    .argument('<container>')
    .argument('[grace]', 'grace period', '10s')
    .action((c: string, grace: string, o) =>
      run(o, async (s) => {
        const stopped = await (await s.connect()).stop(await s.resolve(c), parseTimeout(grace));
        s.emit(`stopped ${stopped}`, { stopped });
      }),
    );
  command('exec')
    .description('run a process inside a running container (extension)')
    .argument('<container>')
    .argument('<path>')
    .argument('[args...]')
    .option('-d, --detach', 'only start it and print its pid (its output goes to the container\'s)')
    .option('-w, --wait', 'detached, but wait for the exit status and print it')
    .option('-e, --env <KEY=VAL...>', 'environment')
    .option('-a, --attach', "the default: the process's output on ours, its exit code as ours")
    .option('-i, --interactive', 'attach with our stdin piped to the process')
    .option('-t, --tty', 'a terminal (with -i: ours in raw mode, resized with it)')
    .passThroughOptions()
    .action((c: string, path: string, args: string[], o: { json?: boolean; detach?: boolean; wait?: boolean; env?: string[]; attach?: boolean; interactive?: boolean; tty?: boolean }) =>
      run(o, async (s) => {
        const env = parseStartArgs(o.env ?? []).env;
        const detached = o.detach === true || o.wait === true;
        if (detached && (o.attach || o.interactive || o.tty)) throw new UsageError('-d/-w run the process detached: they do not go with -a, -i or -t');
        const container = await s.resolve(c);
        // As `podman exec`: attached unless asked otherwise.
        if (!detached) return execAttached(await s.connect(), container, path, args, env, o.interactive === true, o.tty === true);
        const r = await (await s.connect()).exec(container, path, { args, env, wait: o.wait === true });
        s.emit(r.status ? `pid ${r.pid} ${formatExit(r.status)}` : `pid ${r.pid}`, { container, pid: r.pid, status: r.status });
        if (r.status && !('exit' in r.status && r.status.exit.code === 0)) return false;
      }),
    );
  command('pause')
    .description('freeze a running container (extension)')
    .argument('<container>')
    .action((c: string, o) => run(o, (s) => pauseOrResume(s, c, 'pause')));
  command('resume')
    .description('thaw a paused container (extension)')
    .argument('<container>')
    .action((c: string, o) => run(o, (s) => pauseOrResume(s, c, 'resume')));
  command('install')
    .description('install an npk into a repository (a progress bar on a terminal)')
    .argument('<npk>')
    .argument('<repository>')
    .action((npk: string, repo: string, o) =>
      run(o, async (s) => {
        let size: number;
        try {
          size = statSync(npk).size;
        } catch (e) {
          throw new UsageError(`cannot read ${npk}: ${(e as Error).message}`);
        }
        const installed = await (await s.connect()).installFile(npk, repo, progress(io, size));
        s.emit(`installed ${installed}`, { installed });
      }),
    );
  command('uninstall')
    .description('uninstall a container')
    .argument('<container>')
    .option('-w, --wipe', 'also remove its persistent data')
    .action((c: string, o: { json?: boolean; wipe?: boolean }) =>
      run(o, async (s) => {
        const uninstalled = await (await s.connect()).uninstall(await s.resolve(c), o.wipe === true);
        s.emit(`uninstalled ${uninstalled}`, { uninstalled });
      }),
    );
  command('shutdown')
    .description('shut the runtime down: stops the running containers, unmounts all')
    .action((o) => run(o, shutdown));
  command('notifications')
    .description('print notifications, one line each (--json: the JSON of each)')
    .option('-n, --number <n>', 'exit after n notifications')
    .action((o: { json?: boolean; number?: string }) =>
      run(o, async (s) => {
        const n = o.number === undefined ? Infinity : Number(o.number);
        if (!(n >= 0)) throw new UsageError(`invalid number "${o.number}"`);
        const client = await s.connect(100);
        let seen = 0;
        if (seen >= n) return;
        for await (const note of client.notifications()) {
          s.emit(formatNotification(note), note);
          if (++seen >= n) break;
        }
      }),
    );
  command('inspect')
    .description('inspect a container: state, pid, uptime, last start, statistics (--json: everything)')
    .argument('<container>')
    .option('-s, --statistics <categories>', `statistics to collect: ${STAT_CATEGORIES.join(',')} (extension)`)
    .action((c: string, o: { json?: boolean; statistics?: string }) =>
      run(o, async (s) => {
        let cats: StatCategory[] | undefined;
        if (o.statistics !== undefined) {
          cats = o.statistics.split(',').filter(Boolean) as StatCategory[];
          const bad = cats.find((x) => !(STAT_CATEGORIES as readonly string[]).includes(x));
          if (bad) throw new UsageError(`unknown statistics category "${bad}" (${STAT_CATEGORIES.join(', ')})`);
        }
        const container = await s.resolve(c);
        const d = await (await s.connect()).inspect(container, cats);
        s.emit(formatInspect(container, d), d, 2);
      }),
    );
  command('token')
    .description('create a token for target with shared data')
    .argument('<target>')
    .argument('<shared>')
    .action((target: string, shared: string, o) =>
      run(o, async (s) => {
        const token = await (await s.connect()).createToken(target, shared);
        s.emit(`created token ${token}`, { token });
      }),
    );
  command('verify-token')
    .description('verify a token')
    .argument('<token>')
    .argument('<user>')
    .argument('<shared>')
    .action((token: string, user: string, shared: string, o) =>
      run(o, async (s) => {
        const r = await (await s.connect()).verifyToken(token, user, shared);
        s.emit(r, { result: r });
        if (r !== 'Ok') return false;
      }),
    );
  command('ident')
    .description('print the identity of this console connection')
    .action((o) =>
      run(o, async (s) => {
        const ident = await (await s.connect()).ident();
        s.emit(ident, { ident });
      }),
    );
  program
    .command('seccomp')
    .description('print a manifest seccomp section allowing the syscalls of an strace log')
    .argument('<strace.log>')
    .option('--no-default-profile', 'list every syscall instead of those beyond the default profile')
    .action((file: string, o: { defaultProfile: boolean }) =>
      run({}, async () => {
        let log: string;
        try {
          log = readFileSync(file, 'utf8');
        } catch (e) {
          throw new UsageError(`cannot read ${file}: ${(e as Error).message}`);
        }
        const base = new Set([...BASE, ...BASE_BY_ARCH[hostArch()]]);
        io.out(seccompFromStrace(log, o.defaultProfile ? base : undefined));
      }),
    );
  addCopyCommand(program, run);
  addLogsCommand(program, run);
  program
    .command('completion')
    .description('print a shell completion script: source <(nstar completion bash)')
    .argument('[shell]', 'bash, zsh or fish')
    .option('-s, --shell <shell>', 'bash, zsh or fish')
    .option('-o, --output <file>', 'write to a file')
    .action((shell: string | undefined, o: { shell?: string; output?: string }) =>
      run({}, async () => {
        const sh = shell ?? o.shell;
        if (sh === undefined) throw new UsageError('which shell? nstar completion bash|zsh|fish');
        const script = completionScript(sh, program);
        if (o.output) writeFileSync(o.output, script);
        else io.out(script);
      }),
    );
  return program;
}

/** The machine state when the runtime reports it (our extension), mapped as in `list`. */
/** The runtime answers a second pause (or resume) with ok (idempotent); a person wants to know. */
async function pauseOrResume(s: Session, c: string, verb: 'pause' | 'resume'): Promise<void> {
  const client = await s.connect();
  const container = await s.resolve(c);
  const state = await stateIfKnown(client, container);
  if (verb === 'pause' && state === 'paused') throw new UsageError(`${container} is already paused (\`nstar resume ${container}\` thaws it)`);
  if (verb === 'resume' && state === 'running') throw new UsageError(`${container} is not paused (it is running): nothing to resume`);
  const done = verb === 'pause' ? 'paused' : 'resumed';
  s.emit(`${done} ${await client[verb](container)}`, { [done]: container });
}

async function stateIfKnown(client: Client, container: string): Promise<string | undefined> {
  try {
    const d = await client.inspect(container, []);
    return d.state === undefined ? undefined : stateOf(d);
  } catch (e) {
    // A console that permits pause/resume but not inspect: the runtime decides alone.
    if (e instanceof ClientError && e.kind === 'permission_denied') return undefined;
    throw e;
  }
}

/** How long `shutdown` waits for the runtime to finish (its stops take at most their grace each). */
const SHUTDOWN_WAIT_MS = 120_000;

/** Shuts the runtime down and says what that stopped: the containers that ran and were mounted. */
async function shutdown(s: Session): Promise<void> {
  const client = await s.connect();
  const before = await rows(client);
  const running = before.filter((r) => r.pid !== null);
  const mounted = before.filter((r) => r.state !== null && r.state !== 'unmounted');
  await client.shutdown();
  // The runtime closes its consoles after it stopped and unmounted everything.
  let timer: NodeJS.Timeout | undefined;
  const done = await Promise.race([
    client.closed.then(() => true),
    new Promise<false>((r) => (timer = setTimeout(() => r(false), SHUTDOWN_WAIT_MS))),
  ]);
  clearTimeout(timer);
  if (!done) {
    s.emit(`the runtime is shutting down (still busy after ${SHUTDOWN_WAIT_MS / 1000}s)`, { shutdown: false });
    return;
  }
  const names = (rs: Row[]) => rs.map((r) => (r.pid === null ? r.container : `${r.container} (pid ${r.pid})`)).join(', ');
  const lines = ['the runtime shut down'];
  lines.push(running.length ? `stopped ${running.length} container${running.length > 1 ? 's' : ''}: ${names(running)}` : 'no container was running');
  if (mounted.length) lines.push(`unmounted ${mounted.length} container${mounted.length > 1 ? 's' : ''}`);
  s.emit(lines.join('\n'), { shutdown: true, stopped: running.map((r) => r.container), unmounted: mounted.map((r) => r.container) });
}

/**
 * `nstar exec -a/-i` (spec/streams.md attached exec, as `docker exec`):
 * frames 1/2 to our stdout/stderr, our stdin to frame 0 with -i, SIGINT and
 * SIGTERM forwarded, and the process's exit code (128 + signal) as ours.
 */
async function execAttached(
  client: Client,
  container: string,
  path: string,
  args: string[],
  env: Record<string, string>,
  interactive: boolean,
  tty: boolean,
): Promise<number> {
  // A terminal without a size (0x0, e.g. under script(1)) leaves the daemon's default.
  const size = tty && process.stdout.isTTY && process.stdout.columns > 0 && process.stdout.rows > 0 ? { cols: process.stdout.columns, rows: process.stdout.rows } : {};
  let stream: AttachedStream;
  try {
    ({ stream } = await client.attach({ exec: { container, path, arguments: args, environment: env, wait: false, attach: true, tty, ...size } }));
  } catch (e) {
    // A refusal says which container and what to do, as the detached exec does.
    throw e instanceof ClientError && e.wire ? ClientError.runtime(e.wire, 'exec', container) : e;
  }
  // Our terminal in raw mode: keys (^C included) go to the remote terminal as they are.
  const raw = tty && interactive && process.stdin.isTTY;
  if (raw) process.stdin.setRawMode(true);
  const onResize = () => {
    if (process.stdout.columns > 0 && process.stdout.rows > 0) void stream.resize(process.stdout.columns, process.stdout.rows).catch(() => undefined);
  };
  if (tty && process.stdout.isTTY) process.stdout.on('resize', onResize);
  const forward = (sig: NodeJS.Signals) => () => void stream.signal(sig === 'SIGINT' ? 2 : 15).catch(() => undefined);
  const onInt = forward('SIGINT');
  const onTerm = forward('SIGTERM');
  process.on('SIGINT', onInt);
  process.on('SIGTERM', onTerm);
  if (interactive) {
    void (async () => {
      try {
        for await (const chunk of process.stdin as AsyncIterable<Buffer>) await stream.stdin(chunk);
        await stream.closeStdin();
      } catch {
        // the session ended first
      }
    })();
  }
  try {
    for await (const f of stream.frames()) {
      const out = f.channel === 1 ? process.stdout : f.channel === 2 ? process.stderr : undefined;
      if (out && !out.write(f.payload)) await new Promise((r) => out.once('drain', r));
    }
  } finally {
    process.off('SIGINT', onInt);
    process.off('SIGTERM', onTerm);
    process.stdout.off('resize', onResize);
    if (raw) process.stdin.setRawMode(false);
    if (interactive) process.stdin.destroy();
  }
  const end = stream.end as { exit?: { code: number }; signalled?: { signal: number }; error?: Record<string, unknown> } | undefined;
  if (end?.exit) return end.exit.code;
  if (end?.signalled) return 128 + end.signalled.signal;
  if (end?.error) throw ClientError.runtime(end.error as never, 'exec', container);
  throw new ClientError('closed', 'the runtime closed the session before the exit status');
}

/** `nstar logs [-f] [--tail N] CONTAINER` (spec/streams.md, as `podman logs`): stdout and stderr lines on ours. */
function addLogsCommand(program: Command, run: Run): void {
  program
    .command('logs')
    .description("print a container's captured output (io: pipe); -f follows it until the container exits (extension)")
    .argument('<container>')
    .option('-f, --follow', 'keep printing new output until the container exits (^C stops)')
    .option('-n, --tail <lines>', 'only the last N lines (default: all the runtime keeps)')
    .action((c: string, o: { follow?: boolean; tail?: string }) =>
      run({}, async (s) => {
        let tail: number | undefined;
        if (o.tail !== undefined) {
          tail = Number(o.tail);
          if (!/^\d+$/.test(o.tail) || !Number.isSafeInteger(tail)) throw new UsageError(`--tail: expected a number of lines, got "${o.tail}"`);
        }
        const logs = await (await s.connect()).logs(await s.resolve(c), { tail, follow: o.follow === true });
        let stopped = false;
        const stop = () => {
          stopped = true;
          logs.close();
        };
        process.once('SIGINT', stop);
        try {
          for await (const chunk of logs) {
            const out = chunk.stream === 'stdout' ? process.stdout : process.stderr;
            if (!out.write(chunk.data)) await new Promise((r) => out.once('drain', r));
          }
        } catch (e) {
          // ^C while following is the way out, not an error.
          if (!stopped) throw e;
        } finally {
          process.off('SIGINT', stop);
        }
      }),
    );
}

/** `nstar cp` (spec/streams.md, as `podman cp`); the tar work is in src/client/cp.ts. */
function addCopyCommand(program: Command, run: Run): void {
  program
    .command('cp')
    .description('copy files between a container and the host: CONTAINER:PATH HOSTPATH or HOSTPATH CONTAINER:PATH (- is a tar on stdin/stdout; extension)')
    .argument('<from>')
    .argument('<to>')
    .action((from: string, to: string) =>
      run({}, async (s) => {
        const src = containerSpec(from);
        const dst = containerSpec(to);
        if ((src === undefined) === (dst === undefined)) throw new UsageError('nstar cp: exactly one of the two paths must be CONTAINER:PATH');
        if (src) await copyFromContainer(await s.connect(), await s.resolve(src.container), src.path, to, process.stdout);
        else await copyToContainer(await s.connect(), from, await s.resolve(dst!.container), dst!.path, process.stdin);
      }),
    );
}

/** Runs nstar with `argv` (without node and script); resolves to the exit code. */
export async function main(argv: string[], io: CliIo = processIo): Promise<number> {
  let code = 0;
  let program: Command;
  const run: Run = async (o, fn) => {
    const g = program.opts<Globals>();
    const s = new Session(g, io, o.json === true || g.json === true);
    try {
      const r = await fn(s);
      if (r === false) code = 1;
      else if (typeof r === 'number') code = r;
    } catch (e) {
      code = 1;
      io.err(`nstar: ${e instanceof Error ? e.message : String(e)}\n`);
    } finally {
      s.close();
    }
  };
  program = build(io, run);
  try {
    await program.parseAsync(argv, { from: 'user' });
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode === 0 ? 0 : e.exitCode || 2;
    io.err(`nstar: ${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
  if (argv.length === 0) {
    program.outputHelp({ error: true });
    return 2;
  }
  return code;
}
