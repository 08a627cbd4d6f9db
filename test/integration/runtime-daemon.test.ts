// The `northstar` daemon as a separate process: an install into an fs
// repository and a container's persistent data survive a SIGTERM and a
// restart on the same directories; each instance exits 0 and leaves nothing.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, test } from 'node:test';

import { privileged } from './privileged.js';
import { cgroupDirs, isExit, loopsBackedBy, probe, until } from './runtime-checks.js';
import { startDaemon } from './runtime-harness.js';

describe('runtime: the daemon across a restart', { ...privileged({ cgroups: true }), timeout: 120_000 }, () => {
  test('installed containers and persistent data survive a SIGTERM and a restart of the daemon', async (t) => {
    const C = 'keeper:0.0.1';
    const npk = await probe('keeper', { manifest: { mounts: { '/data': { type: 'persist' } } } });
    const a = await startDaemon(t, { repositories: { fs: { key: true } } });
    await a.client.installFile(npk, 'fs');
    await a.client.start(C, { args: ['write', 'Hello!', '/data/file'], env: { PROBE_PARK: '0' } });
    assert.deepEqual(await a.waitFor(isExit(C)), { exit: [C, { exit: { code: 0 } }] });
    a.proc.kill('SIGTERM');
    assert.deepEqual(await a.exited, { code: 0, signal: null });

    const b = await startDaemon(t, { repositories: { fs: { key: true } }, reuse: { dir: a.dir } });
    assert.deepEqual(await b.client.list(), [C]);
    assert.equal((await b.client.inspect(C)).repository, 'fs');
    await b.client.start(C, { args: ['read', '/data/file'] });
    assert.deepEqual(await b.waitFor(isExit(C)), { exit: [C, { exit: { code: 0 } }] });
    // The daemon logged the line before it sent the exit; its stdout pipe is another channel than the console.
    await until(() => /Content of \/data\/file: Hello!/.test(b.output()), 'the data read back in the daemon output');
    await b.client.uninstall(C, true);
    await b.client.shutdown();
    assert.deepEqual(await b.exited, { code: 0, signal: null });
    assert.deepEqual(loopsBackedBy(a.dir), [], 'no loop device left');
    for (const h of [a, b]) {
      assert.ok(!readFileSync('/proc/self/mountinfo', 'utf8').includes(h.dir), 'nothing mounted under the test dir');
      assert.deepEqual(cgroupDirs(h.config.cgroup), [], 'no cgroup left');
    }
  });
});
