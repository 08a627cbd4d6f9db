// The manifest keys `restart` and `health`: defaults, round trips, and
// errors that name the field; manifests without them are untouched.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { manifestToJson, manifestToYaml, parseManifest } from '../../src/model/manifest.js';

const BASE = 'name: app\nversion: 0.0.1\ninit: /probe\nuid: 1000\ngid: 1000\n';

test('restart and health get their defaults and survive YAML and JSON round trips', () => {
  const m = parseManifest(`${BASE}restart:\n  policy: 'no'\n  backoff: {factor: 1.5}\nhealth:\n  exec: [/probe, check, '1']\n  timeout: 500ms\n`);
  assert.deepEqual(m.restart, { policy: 'no', max_restarts: 5, within: 60_000, backoff: { initial: 100, max: 30_000, factor: 1.5 }, stop_grace: 5000 });
  assert.deepEqual(m.health, { exec: ['/probe', 'check', '1'], interval: 10_000, timeout: 500, retries: 3, start_period: 5000 });
  assert.deepEqual(parseManifest(manifestToYaml(m)), m);
  assert.deepEqual(parseManifest(JSON.stringify(manifestToJson(m))), m);
});

test('a manifest without them serializes without them', () => {
  const m = parseManifest(BASE);
  assert.equal('restart' in m || 'health' in m, false);
  assert.equal(manifestToYaml(m), BASE);
});

test('bad values are refused with the field named', () => {
  const cases: [string, RegExp][] = [
    ['restart: {}', /restart\.policy: missing required field/],
    ['restart: {policy: sometimes}', /restart\.policy: unknown policy "sometimes"/],
    ['restart: {policy: always, max_restarts: -1}', /restart\.max_restarts: integer -1 out of range/],
    ['restart: {policy: always, within: 10}', /restart\.within: .*time unit needed/],
    ['restart: {policy: always, backoff: {initial: 1s, max: 10ms}}', /restart\.backoff\.max: must not be less than initial/],
    ['restart: {policy: always, backoff: {factor: 0.5}}', /restart\.backoff\.factor: expected a number from 1 to 100/],
    ['restart: {policy: always, within: 100d}', /restart\.within: must be between/],
    ['restart: {policy: always, jitter: 1}', /restart\.jitter: unknown field/],
    ['health: {interval: 1s}', /health\.exec: missing required field/],
    ['health: {exec: []}', /health\.exec: must name the check program/],
    ['health: {exec: [check]}', /health\.exec\[0\]: must be an absolute path/],
    ['health: {exec: [/c], retries: 0}', /health\.retries: integer 0 out of range/],
  ];
  for (const [yaml, want] of cases) assert.throws(() => parseManifest(`${BASE}${yaml}\n`), want, yaml);
  const resource = 'name: res\nversion: 0.0.1\nuid: 1000\ngid: 1000\n';
  assert.throws(() => parseManifest(`${resource}restart: {policy: always}\n`), /restart: a resource container/);
  assert.throws(() => parseManifest(`${resource}health: {exec: [/c]}\n`), /health: a resource container/);
});
