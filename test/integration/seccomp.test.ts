// Compiled seccomp programs installed for real: a static loader
// (test/fixtures/seccomp/load-filter.c) installs the filter and execs a static
// program that makes the syscall under test. The kernel's verdict shows as the
// child's exit: allowed calls print, prohibited ones end in SIGSYS (31).
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { compileSeccomp, hostArch } from '../../src/model/seccomp.js';
import { TEST_CONTAINER_SECCOMP } from '../fixtures/seccomp.js';
import { prerequisite } from './privileged.js';

const fixtures = join(import.meta.dirname, '../fixtures/seccomp');

function missingPrerequisite(): string | undefined {
  if (process.platform !== 'linux') return 'not Linux';
  if (!/^Seccomp:\s/m.test(readFileSync('/proc/self/status', 'utf8'))) return 'kernel without seccomp';
  if (spawnSync('sh', ['-c', 'command -v cc']).status !== 0) return 'no C compiler (apt-get install build-essential)';
  return undefined;
}
const why = missingPrerequisite();
prerequisite(why);

let dir = '';
const testContainer = TEST_CONTAINER_SECCOMP;

/** Runs call-syscall under `filter`; returns how it ended and what it printed. */
function underFilter(filter: Buffer, args: string[]): { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string } {
  const file = join(dir, `filter-${Math.random().toString(36).slice(2)}.bpf`);
  writeFileSync(file, filter);
  try {
    const r = spawnSync(join(dir, 'load-filter'), [file, join(dir, 'call-syscall'), ...args], { encoding: 'utf8', timeout: 10_000 });
    if (r.error) throw r.error;
    return { code: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
  } finally {
    rmSync(file, { force: true });
  }
}

describe('seccomp filters installed in a real process', { skip: why }, () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'nstar-seccomp-'));
    const cc = (out: string, src: string, extra: string[] = []) =>
      execFileSync('cc', ['-static', '-O2', '-Wall', ...extra, '-o', join(dir, out), join(fixtures, src)], { stdio: 'inherit' });
    cc('load-filter', 'load-filter.c');
    cc('call-syscall', 'call-syscall.c', ['-pthread']);
  });
  after(() => dir && rmSync(dir, { recursive: true, force: true }));

  test('the default profile lets a static program run and make an allowed syscall', () => {
    const r = underFilter(compileSeccomp({ profile: 'default' }), ['getpid']);
    assert.equal(r.signal, null, r.stderr);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /getpid returned \d+ \(ok\)/);
  });

  test('a syscall outside the profile kills the process with SIGSYS', () => {
    const r = underFilter(compileSeccomp({ profile: 'default' }), ['mount']);
    assert.equal(r.signal, 'SIGSYS');
    assert.equal(r.stdout, '');
  });

  test('delete_module: an allowed value and a masked value pass, a prohibited value is killed', () => {
    const filter = compileSeccomp(testContainer);
    for (const flags of ['1', '4']) {
      const r = underFilter(filter, ['delete-module', flags]);
      assert.equal(r.signal, null, `flags ${flags}: ${r.stderr}`);
      assert.match(r.stdout, /delete-module returned -1/, `flags ${flags}: the kernel answered (EFAULT/EPERM), the filter let it through`);
    }
    const r = underFilter(filter, ['delete-module', '7']);
    assert.equal(r.signal, 'SIGSYS');
  });

  test('personality passes only with a listed persona', () => {
    const filter = compileSeccomp({ profile: 'default' });
    assert.match(underFilter(filter, ['personality', '0xffffffff']).stdout, /personality returned \d+ \(ok\)/);
    assert.equal(underFilter(filter, ['personality', '0x0400000']).signal, 'SIGSYS');
  });

  test('a prohibited syscall in one thread kills the whole process', () => {
    const r = underFilter(compileSeccomp(testContainer), ['thread-delete-module', '7']);
    assert.equal(r.signal, 'SIGSYS');
    assert.equal(r.stdout, '', 'main thread never reached its report');
  });

  test('a filter for another architecture kills the process at its first syscall', () => {
    const other = hostArch() === 'x86_64' ? 'aarch64' : 'x86_64';
    const r = underFilter(compileSeccomp({ profile: 'default' }, other), ['getpid']);
    assert.equal(r.signal, 'SIGSYS');
  });

  test('the kernel accepts a long program with far jumps and applies its last values', () => {
    const values = Array.from({ length: 50 }, (_, i) => BigInt(100 + i));
    const allow = Object.fromEntries(
      ['delete_module', 'init_module', 'finit_module', 'reboot', 'acct', 'chroot', 'mount', 'umount2', 'setns', 'unshare'].map((n) => [
        n,
        { args: { index: 1, values } },
      ]),
    );
    const filter = compileSeccomp({ profile: 'default', allow });
    assert.ok(filter.length / 8 > 2000, `${filter.length / 8} instructions`);
    assert.equal(underFilter(filter, ['delete-module', '149']).signal, null);
    assert.equal(underFilter(filter, ['delete-module', '150']).signal, 'SIGSYS');
  });
});
