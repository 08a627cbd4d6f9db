// The stress tool's monkey mode (random start/kill/mount/umount of every
// container, several clients at once) against a real runtime: afterwards the
// runtime still answers, list and inspect agree with each other, an orderly
// shutdown completes, and nothing is left (mounts, loop devices, cgroups).
// The README's 60 s figure is `nstar-stress -m monkey -d 60s` by hand; the
// suite runs a shorter burst (NSTAR_STRESS_SECONDS to change it).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { main as stress } from '../../src/cli/stress.js';
import { privileged } from './privileged.js';
import { assertNoTestCgroups, leakCheck, probe, testResource } from './runtime-checks.js';
import { startRuntime } from './runtime-harness.js';

const SECONDS = Number(process.env.NSTAR_STRESS_SECONDS ?? 15);

describe('stress', privileged({ cgroups: true }), () => {
  test('monkey mode leaves a consistent, responsive runtime and nothing behind', async (t) => {
    const npks = await Promise.all([
      ...['m1', 'm2', 'm3', 'm4'].map((n) => probe(n)),
      probe('mr', { manifest: { mounts: { '/res': { type: 'resource', name: 'test-resource', version: '0.0.1', dir: '/' } } } }),
      testResource(),
    ]);
    const h = await startRuntime(t, { repositories: { default: { npks, key: true } } });
    const leaks = leakCheck(h);
    let out = '';
    const io = { out: (s: string) => void (out += s), err: (s: string) => void (out += s), isTTY: false };
    const runs = await Promise.all(
      [0, 1, 2].map(() => stress(['-u', h.url, '-m', 'monkey', '-d', `${SECONDS}s`, '-r', '20ms', '-i', '0ms'], io)),
    );
    assert.deepEqual(runs, [0, 0, 0], `stress failed:\n${out}`);
    const iterations = [...out.matchAll(/iterations: (\d+)/g)].map((m) => Number(m[1]));
    assert.equal(iterations.length, 3, out);
    assert.ok(iterations.every((n) => n > 10), `too few monkey actions: ${iterations.join(', ')}`);
    leaks.sample();

    // Still responsive and self-consistent.
    const list = (await h.client.list()).sort();
    assert.equal(list.length, 6, `list: ${list.join(', ')}`);
    for (const c of list) {
      const d = await h.client.inspect(c);
      if (d.process !== null) assert.equal(d.mounted, true, `${c} runs but is not mounted`);
    }
    // Everything can still be started and stopped cleanly.
    for (const c of list.filter((c) => c.startsWith('m'))) {
      const d = await h.client.inspect(c);
      if (d.process === null) await h.client.start(c);
    }
    await leaks.assertClean();
    assertNoTestCgroups();
  });
});
