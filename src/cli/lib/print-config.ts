// `northstar --print-config`: the effective configuration as TOML, every
// default filled in, in the keys of the file (docs/config.md). In lib/ so
// that scripts/build-js.mjs does not bundle it as an executable. Written from
// the parsed Config by one rule instead of a key list, so a key added to
// Config is printed without touching this file: camelCase becomes snake_case,
// a `...Ms` number is a humantime duration under the name without `Ms`, a
// `...Mode` number an octal string, byte sizes are plain integers (read as
// bytes), and a console permission list
// that has every permission is "full". Reading the output back gives the same
// Config (test/unit/print-config.test.ts).
import { stringify } from 'smol-toml';

import type { Config } from '../../model/config.js';
import { PERMISSIONS } from '../../model/manifest.js';
import { formatDuration } from '../../model/units.js';

const snake = (k: string) => k.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);

/** Tables whose keys are names given by the user (repository ids), kept as they are. */
const NAMED = new Set(['repositories']);

function convert(v: unknown, named = false): unknown {
  if (Array.isArray(v)) return v.map((x) => convert(x));
  if (typeof v !== 'object' || v === null) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) {
    if (x === undefined) continue;
    if (named) {
      out[k] = convert(x);
      continue;
    }
    if (/[a-z]Ms$/.test(k) && typeof x === 'number') {
      out[snake(k.slice(0, -2))] = formatDuration(x);
      continue;
    }
    if (/[a-z]Mode$/.test(k) && typeof x === 'number') {
      // A file mode (console.global.socket_mode) is read as an octal string.
      out[snake(k)] = `0${x.toString(8).padStart(3, '0')}`;
      continue;
    }
    if (k === 'permissions' && Array.isArray(x) && PERMISSIONS.every((p) => x.includes(p))) {
      out[k] = 'full';
      continue;
    }
    out[snake(k)] = convert(x, NAMED.has(k));
  }
  return out;
}

/** TOML that parseConfig reads back into `config`; `source` says where it came from. */
export function configToToml(config: Config, source: string): string {
  const body = stringify(convert(config) as Record<string, unknown>);
  return `# Effective configuration of the northstar daemon (${source}), defaults filled in.\n# Reference: docs/config.md\n${body}\n`;
}
