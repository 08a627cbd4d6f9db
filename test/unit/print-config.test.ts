// `northstar --print-config`, docs/config.md and examples/northstar.toml:
// the printed config reads back to the same Config, every key it prints is
// documented, and the annotated example is a valid config.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { parse } from 'smol-toml';

import { configToToml } from '../../src/cli/lib/print-config.js';
import { EMBEDDED_DEFAULT_CONFIG, parseConfig } from '../../src/model/config.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const example = join(root, 'examples', 'northstar.toml');

/** The names of every value (not table) of a TOML document; a repository's `type` is one value. */
function keys(t: Record<string, unknown>): string[] {
  return Object.entries(t).flatMap(([k, v]) =>
    typeof v === 'object' && v !== null && !Array.isArray(v) && k !== 'type' ? keys(v as Record<string, unknown>) : [k],
  );
}

test('the printed config reads back to the same config (embedded default and the example)', () => {
  for (const [text, source] of [[EMBEDDED_DEFAULT_CONFIG, 'embedded'], [readFileSync(example, 'utf8'), example]] as const) {
    const config = parseConfig(text, { cpus: 4 });
    const printed = configToToml(config, source);
    assert.match(printed, /^# Effective configuration of the northstar daemon/);
    assert.deepEqual(parseConfig(printed, { cpus: 1 }), config);
  }
});

test('a file mode prints as the octal string the config reads', () => {
  const config = parseConfig(EMBEDDED_DEFAULT_CONFIG);
  Object.assign(config.console.global!, { socketMode: 0o660 });
  assert.match(configToToml(config, 'x'), /\[console\.global\]\nbind = "unix:\/\/\/run\/northstar\/console"\npermissions = "full"\nsocket_mode = "0660"\n/);
});

test('docs/config.md documents every key --print-config prints', () => {
  const doc = readFileSync(join(root, 'docs', 'config.md'), 'utf8');
  const printed = parse(configToToml(parseConfig(readFileSync(example, 'utf8')), 'example'));
  const missing = keys(printed as Record<string, unknown>).filter((k) => !doc.includes(`\`${k}\``));
  assert.deepEqual([...new Set(missing)], []);
});

test('northstar --print-config prints the embedded default, or the -c file, without root or a namespace', () => {
  const r = spawnSync(join(root, 'bin', 'northstar'), ['--print-config'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /\(the embedded default config, no -c given\)/);
  assert.deepEqual(parseConfig(r.stdout, { cpus: 2 }), parseConfig(EMBEDDED_DEFAULT_CONFIG, { cpus: 2 }));
  const c = spawnSync(join(root, 'bin', 'northstar'), ['--print-config', '-c', example], { encoding: 'utf8' });
  assert.equal(c.status, 0, c.stderr);
  assert.match(c.stdout, /\[repositories\.memory\]\ntype = "mem"\nmount_on_start = false\ncapacity_num = 10\ncapacity_size = 100000000\n/);
  const bad = spawnSync(join(root, 'bin', 'northstar'), ['--print-config', '-c', join(root, 'package.json')], { encoding: 'utf8' });
  assert.equal(bad.status, 1);
  assert.match(bad.stderr, /package\.json.*invalid TOML/);
});
