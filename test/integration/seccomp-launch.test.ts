// Seccomp through launch(): the filter the launch plan compiles from a manifest, installed by
// nstar-init before no_new_privs and the capability drop (spec/launch.md §5.2
// step 14). The test container's argument rules are covered by
// sandbox-seccomp.test.ts; these are the edges of custom allow-lists.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import type { Manifest, Seccomp, SeccompRule } from '../../src/model/manifest.js';
import { hostArch } from '../../src/model/seccomp.js';
import { run, sandbox } from './launch-fixture.js';
import { privileged } from './privileged.js';

const opts = privileged({ loop: false, mksquashfs: false });

/** What the static probe itself calls for `exit N` (strace), plus `write` for its output. */
const PROBE_SYSCALLS = [
  'arch_prctl', 'brk', 'exit_group', 'getrandom', 'mprotect', 'newfstatat', 'fstat', 'prlimit64', 'readlink',
  'readlinkat', 'rseq', 'set_robust_list', 'set_tid_address', 'write',
];
/** What nstar-init's container child calls after the filter is in place: no_new_privs and the capability drop. */
const INIT_TAIL = ['prctl', 'capget', 'capset'];

const allow = (names: string[]): Record<string, SeccompRule> => Object.fromEntries(names.map((n) => [n, 'any' as const]));
const manifest = (seccomp: Seccomp): Partial<Manifest> => ({ seccomp, mounts: {} });

describe('seccomp filters from manifests through launch', opts, () => {
  test("a custom allow-list with prctl, capset and the program's own syscalls runs it", async (t) => {
    const seccomp: Seccomp = { allow: allow([...INIT_TAIL, ...PROBE_SYSCALLS]) };
    const r = await run(t, sandbox(t), { args: ['exit', '3'], manifest: manifest(seccomp) });
    assert.deepEqual(r.status, { exit: { code: 3 } }, JSON.stringify(r));
  });

  test('a custom allow-list without prctl kills the process before it execs, as in Northstar', async (t) => {
    const seccomp: Seccomp = { allow: allow(['capget', 'capset', ...PROBE_SYSCALLS]) };
    const r = await run(t, sandbox(t), { args: ['exit', '3'], manifest: manifest(seccomp) });
    assert.deepEqual(r.status, { signalled: { signal: 31 } });
    assert.deepEqual(r.out, [], 'the probe never ran');
  });

  test('a syscall the custom list lacks kills the running program with SIGSYS', async (t) => {
    const seccomp: Seccomp = { allow: allow([...INIT_TAIL, ...PROBE_SYSCALLS.filter((n) => n !== 'getrandom')]) };
    const r = await run(t, sandbox(t), { args: ['exit', '3'], manifest: manifest(seccomp) });
    assert.deepEqual(r.status, { signalled: { signal: 31 } });
  });

  test('a filter compiled for the other architecture kills the container process', async (t) => {
    const seccomp: Seccomp = { profile: 'default' };
    const other = hostArch() === 'x86_64' ? 'aarch64' : 'x86_64';
    const r = await run(t, sandbox(t), { args: ['exit', '0'], manifest: manifest(seccomp), arch: other });
    assert.deepEqual(r.status, { signalled: { signal: 31 } });
  });

  test('capabilities widen the default profile: CAP_SYS_MODULE allows delete_module, CAP_SYS_ADMIN does not', async (t) => {
    const seccomp: Seccomp = { profile: 'default' };
    const s = sandbox(t);
    const withModule = await run(t, s, {
      args: ['call-delete-module', '7'],
      manifest: { ...manifest(seccomp), capabilities: ['CAP_SYS_MODULE'] },
    });
    assert.deepEqual(withModule.status, { exit: { code: 0 } }, JSON.stringify(withModule));
    const withAdmin = await run(t, s, {
      args: ['call-delete-module', '7'],
      manifest: { ...manifest(seccomp), capabilities: ['CAP_SYS_ADMIN'] },
    });
    assert.deepEqual(withAdmin.status, { signalled: { signal: 31 } });
  });
});
