// The `northstar` daemon (bin/northstar enters a private mount namespace
// before Node starts). Loads the config — the embedded default when no `-c` is
// given (spec/README.md deviation 16) — runs the runtime (which makes and
// checks its dirs) until SIGINT/SIGTERM/SIGHUP or a shutdown request, and
// exits 0, or 1 with the reason.
import { Command } from 'commander';

import { loadConfig } from '../config-file.js';
import { Logger, parseLevel, setLevel } from '../log.js';
import { EMBEDDED_DEFAULT_CONFIG, parseConfig, type Config } from '../model/config.js';
import { VERSION } from '../model/version.js';
import { Runtime } from '../runtime.js';
import { configToToml } from './lib/print-config.js';

const log = new Logger('northstar');

interface Options {
  config?: string;
  inspect?: string | boolean;
  disableMountNamespace?: boolean;
  printConfig?: boolean;
}

function parseArgs(argv: string[]): Options {
  const program = new Command('northstar')
    .description('Northstar-compatible embedded container runtime')
    .version(VERSION)
    .option('-c, --config <toml>', 'configuration file (default: the embedded default config)')
    .option('-d, --disable-mount-namespace', 'do not run in a private mount namespace (bin/northstar enters it)')
    .option('--inspect [bind]', 'serve the live state-chart inspector (default 127.0.0.1:4201; overrides [inspector])')
    .option('--print-config', 'print the effective configuration (TOML, defaults filled in) and exit')
    .exitOverride();
  program.parse(argv, { from: 'user' });
  return program.opts<Options>();
}

async function configFrom(opts: Options): Promise<Config> {
  if (opts.config) return loadConfig(opts.config);
  log.info('No config given (-c): using the embedded default config');
  return parseConfig(EMBEDDED_DEFAULT_CONFIG);
}

/**
 * The daemon's own files are its own (spec/README.md deviation 23): whatever
 * umask it inherited (000 under a careless init), what it creates without an
 * explicit mode is root-only. Where others need access (socket_dir, the
 * console socket's mode and group), the mode is set explicitly; containers
 * get 022 from nstar-init, not this.
 */
export const DAEMON_UMASK = 0o077;

export async function main(argv: string[]): Promise<number> {
  process.umask(DAEMON_UMASK);
  let opts: Options;
  try {
    opts = parseArgs(argv);
  } catch (e) {
    const code = (e as { exitCode?: number }).exitCode;
    return code ?? 1;
  }
  if (opts.printConfig) {
    try {
      const config = opts.config ? await loadConfig(opts.config) : parseConfig(EMBEDDED_DEFAULT_CONFIG);
      process.stdout.write(configToToml(config, opts.config ?? 'the embedded default config, no -c given'));
      return 0;
    } catch (e) {
      process.stderr.write(`northstar: ${e instanceof Error ? e.message : String(e)}\n`);
      return 1;
    }
  }
  let runtime: Runtime | undefined;
  try {
    const config = await configFrom(opts);
    if (opts.inspect) config.inspector = { ...config.inspector, bind: opts.inspect === true ? '127.0.0.1:4201' : opts.inspect };
    const level = parseLevel(process.env.NSTAR_LOG) ?? config.log.level;
    setLevel(level);
    runtime = await Runtime.start(config);
    const rt = runtime;
    for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
      process.on(sig, () => {
        log.info(`Received ${sig}: shutting down`);
        void rt.shutdown();
      });
    }
    const result = await runtime.stopped;
    if (!result.ok) {
      log.error(`Runtime stopped: ${result.reason}`);
      return 1;
    }
    return 0;
  } catch (e) {
    log.error(`Failed to run the runtime: ${e instanceof Error ? e.message : String(e)}`);
    if (runtime) await runtime.shutdown().catch(() => undefined);
    return 1;
  }
}
