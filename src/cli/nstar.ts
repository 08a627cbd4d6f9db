// `nstar`: the console command line (spec/tools.md §9.2) plus our extension
// commands (stop, exec, pause, resume). Without `-u` it tries the embedded
// default config's unix socket, then tcp://localhost:4200 (deviation 16).
// Exit code 0 on success, 1 with the runtime's error message otherwise.
import { readFileSync, statSync, writeFileSync } from 'node:fs';

import { Command, CommanderError, Option } from 'commander';

import { Client, ClientError, DEFAULT_URLS, type ConnectOptions } from '../client/index.js';
import { containerSpec, copyFromContainer, copyToContainer } from '../client/cp.js';
import type { ContainerData, ContainerResult, StatCategory } from '../console/protocol.js';
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

function completionScript(shell: string, commands: string[]): string {
  const words = commands.join(' ');
  switch (shell) {
    case 'bash':
      return `# nstar bash completion\n_nstar() {\n  local cur=\${COMP_WORDS[COMP_CWORD]}\n  if [ "$COMP_CWORD" -eq 1 ]; then COMPREPLY=( $(compgen -W "${words}" -- "$cur") ); fi\n}\ncomplete -F _nstar nstar\n`;
    case 'zsh':
      return `#compdef nstar\n_nstar() {\n  local -a cmds\n  cmds=(${words})\n  _arguments '1: :->cmd' '*:: :->args'\n  [[ $state == cmd ]] && compadd -a cmds\n}\n_nstar "$@"\n`;
    case 'fish':
      return commands.map((c) => `complete -c nstar -n __fish_use_subcommand -a ${c}\n`).join('');
    default:
      throw new UsageError(`unsupported shell "${shell}" (bash, zsh, fish)`);
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
  ) {}

  async connect(subscribe: number | false = false): Promise<Client> {
    if (this.client) return this.client;
    const opts: ConnectOptions = {
      timeoutMs: parseTimeout(this.g.timeout),
      subscribe: subscribe === false ? false : subscribe,
    };
    if (this.g.json) opts.onRaw = (_dir, line) => this.io.out(line + '\n');
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
    if (matches.length === 0) throw new UsageError(`no container named "${c}" is installed`);
    throw new UsageError(`"${c}" is ambiguous: ${matches.join(', ')} (give name:version)`);
  }

  /** An error line on stderr (also with -j). */
  fail(s: string): void {
    this.io.err(`nstar: ${s}\n`);
  }

  /** Normal output; with -j the raw JSON lines are the output. */
  print(s: string): void {
    if (!this.g.json) this.io.out(s.endsWith('\n') ? s : s + '\n');
  }
}

function reportResults(s: Session, verb: string, results: ContainerResult[]): boolean {
  let ok = true;
  for (const r of results) {
    if ('ok' in r) s.print(`${verb} ${r.ok.container}`);
    else {
      ok = false;
      const e = ClientError.runtime(r.error.error);
      s.fail(`failed to ${verb.replace(/ed$/, '')} ${r.error.container}: ${e.message}`);
    }
  }
  return ok;
}

async function list(s: Session): Promise<void> {
  const client = await s.connect();
  const containers = (await client.list()).sort();
  const rows: string[][] = [];
  for (const c of containers) {
    const [name, version] = [c.slice(0, c.indexOf(':')), c.slice(c.indexOf(':') + 1)];
    let d: ContainerData | undefined;
    try {
      d = await client.inspect(c, []);
    } catch (e) {
      if (!(e instanceof ClientError && e.kind === 'runtime')) throw e;
    }
    const manifest = (d?.manifest ?? {}) as { init?: unknown };
    rows.push([
      name,
      version,
      d?.repository ?? '',
      d ? (manifest.init === undefined ? 'resource' : 'app') : '',
      d ? (d.mounted ? 'yes' : 'no') : '',
      d?.process ? String(d.process.pid) : '',
      d?.process ? formatUptime(d.process.uptime) : '',
    ]);
  }
  s.print(table(['Name', 'Version', 'Repository', 'Type', 'Mounted', 'PID', 'Uptime'], rows));
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

function build(io: CliIo, run: (fn: (s: Session) => Promise<boolean | void | number>) => Promise<void>): Command {
  const program = new Command('nstar')
    .description('Northstar console client')
    .version(VERSION)
    .addOption(new Option('-u, --url <url>', `console url (default: ${DEFAULT_URLS.join(', then ')})`))
    .option('-j, --json', 'print the raw JSON lines exchanged with the runtime')
    .option('-t, --timeout <duration>', 'connect and handshake timeout', '10s')
    .enablePositionalOptions()
    .exitOverride()
    .configureOutput({ writeOut: io.out, writeErr: io.err })
    .showHelpAfterError();

  program
    .command('list')
    .alias('ls')
    .description('list containers')
    .action(() => run(list));
  program
    .command('repositories')
    .alias('repos')
    .description('list repositories')
    .action(() => run(async (s) => s.print((await (await s.connect()).repositories()).sort().join('\n'))));
  program
    .command('mount')
    .description('mount containers')
    .argument('<containers...>')
    .action((cs: string[]) =>
      run(async (s) => reportResults(s, 'mounted', await (await s.connect()).mount(await Promise.all(cs.map((c) => s.resolve(c)))))),
    );
  program
    .command('umount')
    .description('unmount containers')
    .argument('<containers...>')
    .action((cs: string[]) =>
      run(async (s) => reportResults(s, 'umounted', await (await s.connect()).umount(await Promise.all(cs.map((c) => s.resolve(c)))))),
    );
  program
    .command('start')
    .description('start a container: start <c> [KEY=VAL]... [init] [args...] (<INIT> stands for the manifest init)')
    .argument('<container>')
    .argument('[rest...]')
    .passThroughOptions()
    .action((c: string, rest: string[]) =>
      run(async (s) => {
        const { env, init, args } = parseStartArgs(rest);
        s.print(`started ${await (await s.connect()).start(await s.resolve(c), { init, args, env })}`);
      }),
    );
  program
    .command('kill')
    .description('send a signal to a container')
    .argument('<container>')
    .argument('[signal]', 'signal number', '15')
    .action((c: string, sig: string) =>
      run(async (s) => {
        const signal = Number(sig);
        if (!Number.isInteger(signal)) throw new UsageError(`invalid signal "${sig}": expected a number`);
        s.print(`signalled ${await (await s.connect()).kill(await s.resolve(c), signal)} with ${signal}`);
      }),
    );
  program
    .command('stop')
    .description('stop a container: SIGTERM, then SIGKILL after the grace period (extension)')
    .argument('<container>')
    .argument('[grace]', 'grace period', '10s')
    .action((c: string, grace: string) =>
      run(async (s) => s.print(`stopped ${await (await s.connect()).stop(await s.resolve(c), parseTimeout(grace))}`)),
    );
  program
    .command('exec')
    .description('run a process inside a running container (extension)')
    .argument('<container>')
    .argument('<path>')
    .argument('[args...]')
    .option('-w, --wait', 'wait for the exit status')
    .option('-e, --env <KEY=VAL...>', 'environment')
    .option('-a, --attach', "attach: the process's output on ours, its exit code as ours")
    .option('-i, --interactive', 'attach with our stdin piped to the process')
    .option('-t, --tty', 'a terminal (with -i: ours in raw mode, resized with it)')
    .passThroughOptions()
    .action((c: string, path: string, args: string[], o: { wait?: boolean; env?: string[]; attach?: boolean; interactive?: boolean; tty?: boolean }) =>
      run(async (s) => {
        const env = parseStartArgs(o.env ?? []).env;
        if (o.attach || o.interactive || o.tty) return execAttached(await s.connect(), await s.resolve(c), path, args, env, o.interactive === true, o.tty === true);
        const r = await (await s.connect()).exec(await s.resolve(c), path, { args, env, wait: o.wait === true });
        s.print(r.status ? `pid ${r.pid} exited with ${JSON.stringify(r.status)}` : `pid ${r.pid}`);
        if (r.status && !('exit' in r.status && r.status.exit.code === 0)) return false;
      }),
    );
  for (const [name, verb, desc] of [
    ['pause', 'paused', 'freeze a container (extension)'],
    ['resume', 'resumed', 'thaw a paused container (extension)'],
  ] as const) {
    program
      .command(name)
      .description(desc)
      .argument('<container>')
      .action((c: string) => run(async (s) => s.print(`${verb} ${await (await s.connect())[name](await s.resolve(c))}`)));
  }
  program
    .command('install')
    .description('install an npk into a repository')
    .argument('<npk>')
    .argument('<repository>')
    .action((npk: string, repo: string) =>
      run(async (s) => {
        let size: number;
        try {
          size = statSync(npk).size;
        } catch (e) {
          throw new UsageError(`cannot read ${npk}: ${(e as Error).message}`);
        }
        const p = progress(io, size);
        s.print(`installed ${await (await s.connect()).installFile(npk, repo, p)}`);
      }),
    );
  program
    .command('uninstall')
    .description('uninstall a container')
    .argument('<container>')
    .option('-w, --wipe', 'also remove its persistent data')
    .action((c: string, o: { wipe?: boolean }) =>
      run(async (s) => s.print(`uninstalled ${await (await s.connect()).uninstall(await s.resolve(c), o.wipe === true)}`)),
    );
  program
    .command('shutdown')
    .description('shut the runtime down')
    .action(() => run(async (s) => void (await (await s.connect()).shutdown())));
  program
    .command('notifications')
    .description('print notifications')
    .option('-n, --number <n>', 'exit after n notifications')
    .action((o: { number?: string }) =>
      run(async (s) => {
        const n = o.number === undefined ? Infinity : Number(o.number);
        if (!(n >= 0)) throw new UsageError(`invalid number "${o.number}"`);
        const client = await s.connect(100);
        let seen = 0;
        if (seen >= n) return;
        for await (const note of client.notifications()) {
          s.print(JSON.stringify(note));
          if (++seen >= n) break;
        }
      }),
    );
  program
    .command('inspect')
    .description('inspect a container (pretty JSON)')
    .argument('<container>')
    .option('-s, --statistics <categories>', `statistics to collect: ${STAT_CATEGORIES.join(',')} (extension)`)
    .action((c: string, o: { statistics?: string }) =>
      run(async (s) => {
        let cats: StatCategory[] | undefined;
        if (o.statistics !== undefined) {
          cats = o.statistics.split(',').filter(Boolean) as StatCategory[];
          const bad = cats.find((x) => !(STAT_CATEGORIES as readonly string[]).includes(x));
          if (bad) throw new UsageError(`unknown statistics category "${bad}" (${STAT_CATEGORIES.join(', ')})`);
        }
        const d = await (await s.connect()).inspect(await s.resolve(c), cats);
        s.print(JSON.stringify(d, null, 2));
      }),
    );
  program
    .command('token')
    .description('create a token for target with shared data')
    .argument('<target>')
    .argument('<shared>')
    .action((target: string, shared: string) =>
      run(async (s) => s.print(`created token ${await (await s.connect()).createToken(target, shared)}`)),
    );
  program
    .command('verify-token')
    .description('verify a token')
    .argument('<token>')
    .argument('<user>')
    .argument('<shared>')
    .action((token: string, user: string, shared: string) =>
      run(async (s) => {
        const r = await (await s.connect()).verifyToken(token, user, shared);
        s.print(r);
        if (r !== 'Ok') return false;
      }),
    );
  program
    .command('ident')
    .description('print the identity of this console connection')
    .action(() => run(async (s) => s.print(await (await s.connect()).ident())));
  program
    .command('seccomp')
    .description('print a manifest seccomp section allowing the syscalls of an strace log')
    .argument('<strace.log>')
    .option('--no-default-profile', 'list every syscall instead of those beyond the default profile')
    .action((file: string, o: { defaultProfile: boolean }) =>
      run(async () => {
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
  program
    .command('completion')
    .description('print a shell completion script')
    .requiredOption('-s, --shell <shell>', 'bash, zsh or fish')
    .option('-o, --output <file>', 'write to a file')
    .action((o: { shell: string; output?: string }) =>
      run(async () => {
        const script = completionScript(
          o.shell,
          program.commands.map((c) => c.name()),
        );
        if (o.output) writeFileSync(o.output, script);
        else io.out(script);
      }),
    );
  return program;
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
  const { stream } = await client.attach({ exec: { container, path, arguments: args, environment: env, wait: false, attach: true, tty, ...size } });
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
  if (end?.error) throw ClientError.runtime(end.error as never);
  throw new ClientError('closed', 'the runtime closed the session before the exit status');
}

/** `nstar cp` (spec/streams.md, as `podman cp`); the tar work is in src/client/cp.ts. */
function addCopyCommand(program: Command, run: (fn: (s: Session) => Promise<boolean | void | number>) => Promise<void>): void {
  program
    .command('cp')
    .description('copy files between a container and the host: CONTAINER:PATH HOSTPATH or HOSTPATH CONTAINER:PATH (- is a tar on stdin/stdout; extension)')
    .argument('<from>')
    .argument('<to>')
    .action((from: string, to: string) =>
      run(async (s) => {
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
  const run = async (fn: (s: Session) => Promise<boolean | void | number>): Promise<void> => {
    const s = new Session(program.opts<Globals>(), io);
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
