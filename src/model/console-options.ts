// A console's limits and its default port: the configuration (config.ts) reads
// them, the console server (src/console/) applies them, the client
// (src/client/) dials the port. Apart from config.ts so the client and the
// console do not load the TOML parser for them.

/** Limits of one console (config `console.options` / `console.global.options`). */
export interface ConsoleOptions {
  tokenValidityMs: number;
  maxRequestsPerSec: number;
  /** Bytes. */
  maxRequestSize: number;
  /** Bytes. */
  maxNpkInstallSize: number;
  npkStreamTimeoutMs: number;
}

/** Northstar's console port, when a tcp:// url names none. */
export const DEFAULT_CONSOLE_PORT = 4200;

export const DEFAULT_CONSOLE_OPTIONS: Readonly<ConsoleOptions> = Object.freeze({
  tokenValidityMs: 60_000,
  maxRequestsPerSec: 1000,
  maxRequestSize: 1024 * 1024,
  maxNpkInstallSize: 256 * 1024 * 1024,
  npkStreamTimeoutMs: 10_000,
});
