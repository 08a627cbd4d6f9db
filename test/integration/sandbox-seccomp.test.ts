// The seccomp filter compiled from the manifest (src/model/seccomp.ts) as
// nstar-init installs it in the container process and in exec'd processes
// (spec/behaviours.md "Seccomp, exit codes and output").
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { Manifest } from '../../src/model/manifest.js';
import { TEST_CONTAINER_SECCOMP } from '../fixtures/seccomp.js';
import { run, sandbox, start, waitForLine } from './launch-fixture.js';
import { privileged } from './privileged.js';

const opts = privileged({ loop: false, mksquashfs: false });

const seccomp = TEST_CONTAINER_SECCOMP;
const manifest: Partial<Manifest> = { seccomp, mounts: { '/proc': { type: 'proc' } } };

describe('seccomp in containers', opts, () => {
  test('an allowed syscall with an allowed argument succeeds', async (t) => {
    const s = sandbox(t);
    const r = await run(t, s, { args: ['call-delete-module', '1'], manifest });
    assert.deepEqual(r.status, { exit: { code: 0 } });
    assert.ok(r.out.some((l) => l.startsWith('delete_module syscall was successful')), r.out.join('\n'));
  });

  test('an allowed syscall with an argument inside the mask succeeds', async (t) => {
    const s = sandbox(t);
    const r = await run(t, s, { args: ['call-delete-module', '4'], manifest });
    assert.deepEqual(r.status, { exit: { code: 0 } });
  });

  test('a prohibited argument kills the container process with SIGSYS', async (t) => {
    const s = sandbox(t);
    const r = await run(t, s, { args: ['call-delete-module', '7'], manifest });
    assert.deepEqual(r.status, { signalled: { signal: 31 } });
  });

  test('the default profile lets the probe run its commands', async (t) => {
    const s = sandbox(t);
    const sockets: Manifest['sockets'] = { stream: { type: 'stream', mode: 0o666, uid: 1000, gid: 1000 } };
    const m: Partial<Manifest> = { ...manifest, sockets, mounts: { '/proc': { type: 'proc' }, '/unix-sockets': { type: 'sockets' }, '/tmp': { type: 'tmpfs', size: 100000 } } };
    for (const args of [['inspect'], ['env'], ['net'], ['ls', '/'], ['write', 'x', '/tmp/f'], ['socket', 'stream'], ['exit', '3']]) {
      const r = await run(t, s, { args, manifest: m });
      assert.deepEqual(r.status, { exit: { code: args[0] === 'exit' ? 3 : 0 } }, `${args.join(' ')}: ${JSON.stringify(r)}`);
    }
  });

  test('exec runs under the same filter and a violation ends only the exec', async (t) => {
    const s = sandbox(t);
    const r = await start(t, s, { args: ['sleep'], manifest });
    await waitForLine(r, /^Sleeping/);
    const bad = await r.launched.exec({ path: '/probe', args: ['call-delete-module', '7'], env: {} });
    assert.deepEqual(await bad.exited, { signalled: { signal: 31 } });
    const good = await r.launched.exec({ path: '/probe', args: ['call-delete-module', '1'], env: { PROBE_PARK: '0' } });
    assert.deepEqual(await good.exited, { exit: { code: 0 } });
    r.launched.kill(15);
    assert.deepEqual(await r.launched.exited, { signalled: { signal: 15 } });
  });
});
