// The whole runtime, real parts: a probe NPK started through the console
// reports `started`, runs inside its cgroups, and its exact exit status comes
// back as an `exit` notification; shutdown leaves nothing mounted.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';

import { fixtureNpk } from '../fixtures/npk.js';
import { privileged } from './privileged.js';
import { startRuntime } from './runtime-harness.js';

describe('runtime smoke', privileged({ cgroups: true }), () => {
  test('a started probe exits with its exact status and the runtime unmounts it at shutdown', async (t) => {
    const npk = await fixtureNpk({ name: 'smoke', manifest: { args: ['exit', '7'] }, key: true });
    const h = await startRuntime(t, { repositories: { default: { npks: [npk], key: true } } });
    assert.deepEqual(await h.client.list(), ['smoke:0.0.1']);
    await h.client.start('smoke:0.0.1');
    await h.waitFor((n) => typeof n === 'object' && 'started' in n && n.started === 'smoke:0.0.1');
    const exit = await h.waitFor((n) => typeof n === 'object' && 'exit' in n);
    assert.deepEqual(exit, { exit: ['smoke:0.0.1', { exit: { code: 7 } }] });
    const data = await h.client.inspect('smoke:0.0.1');
    assert.equal(data.mounted, true);
    assert.equal(data.process, null);
    await h.stop();
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
    assert.ok(!mounts.includes(h.config.runDir), `mounts left under ${h.config.runDir}`);
  });
});
