// Reading the runtime's configuration file: the one piece of I/O in front of
// the pure parser (model/config.ts), kept out of the model so the model does
// none. Errors name the file.
import { readFile } from 'node:fs/promises';

import { type Config, ConfigError, parseConfig } from './model/config.js';

/** Reads and parses a configuration file; errors name the file. */
export async function loadConfig(path: string, opts: { cpus?: number } = {}): Promise<Config> {
  const text = await readFile(path, 'utf8');
  try {
    return parseConfig(text, opts);
  } catch (e) {
    if (e instanceof ConfigError) throw new ConfigError(e.field === '' ? path : `${path}: ${e.field}`, e.rule);
    throw e;
  }
}
