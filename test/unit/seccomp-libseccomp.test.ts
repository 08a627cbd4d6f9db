// Our seccomp compiler against libseccomp: the same rules compiled by both must
// give the same action for every input, and our syscall tables must agree with
// libseccomp's names. Needs cc and libseccomp-dev (Debian), like the suite's CI.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import type { Seccomp, SeccompRule } from '../../src/model/manifest.js';
import { AUDIT_ARCH, compileSeccomp, syscallNumber, type SeccompArch } from '../../src/model/seccomp.js';
import { BASE, PERSONALITY_VALUES } from '../../src/model/seccomp-default.js';
import { SYSCALLS_AARCH64 } from '../../src/model/syscalls-aarch64.js';
import { SYSCALLS_X86_64 } from '../../src/model/syscalls-x86_64.js';
import { run } from './seccomp-bpf.js';
import { prerequisite } from '../integration/privileged.js';

const source = join(import.meta.dirname, '../fixtures/seccomp/libseccomp-filter.c');
const why = !existsSync('/usr/include/seccomp.h') ? 'no libseccomp headers (apt-get install libseccomp-dev)' : undefined;
prerequisite(why);

const U64 = 0xffffffffffffffffn;
let dir = '';
let tool = '';

function libseccomp(args: string[], input: string): Buffer {
  return execFileSync(tool, args, { input, maxBuffer: 1 << 20 });
}

/** Our allow-map as libseccomp rules (the same semantics, spelled in its terms). */
function referenceRules(allow: Record<string, SeccompRule>, arch: SeccompArch): string {
  const lines: string[] = [];
  const all: Record<string, SeccompRule> = { ...allow, execve: 'any' };
  for (const [name, rule] of Object.entries(all)) {
    const nr = syscallNumber(name, arch);
    if (nr === undefined) continue;
    if (rule === 'any') {
      lines.push(`any ${nr}`);
      continue;
    }
    const { index, values, mask } = rule.args;
    for (const v of values ?? []) lines.push(`eq ${nr} ${index} ${v}`);
    if (mask !== undefined) lines.push(`masked ${nr} ${index} ${~mask & U64}`);
  }
  return lines.join('\n') + '\n';
}

/** The default profile of an empty capability set, spelled out as an allow-map. */
function defaultAsAllow(): Record<string, SeccompRule> {
  const allow: Record<string, SeccompRule> = {};
  for (const n of [...BASE, 'arch_prctl', 'modify_ldt']) allow[n] = 'any';
  allow.personality = { args: { index: 0, values: PERSONALITY_VALUES } };
  return allow;
}

/** Argument values that sit on the edges of the rules: each value, its halves flipped, mask bits. */
const probeValues = [0n, 1n, 2n, 4n, 6n, 7n, 8n, 0x11n, 0x20000n, 0x20008n, 0xffffffffn, 0x1_0000_0001n, 0x1_0000_0008n, 1n << 63n, U64, 0xdeadbeef_00000001n];

describe('seccomp compared with libseccomp', { skip: why }, () => {
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'nstar-seccomp-'));
    tool = join(dir, 'libseccomp-filter');
    execFileSync('cc', ['-O2', '-Wall', '-o', tool, source, '-lseccomp'], { stdio: 'inherit' });
  });
  after(() => rmSync(dir, { recursive: true, force: true }));

  for (const arch of ['x86_64', 'aarch64'] as const) {
    test(`our ${arch} syscall table gives libseccomp's number for every name`, () => {
      const table = arch === 'x86_64' ? SYSCALLS_X86_64 : SYSCALLS_AARCH64;
      const out = libseccomp(['resolve', arch], Object.keys(table).join('\n')).toString();
      const theirs = new Map(out.trim().split('\n').map((l) => l.split(' ')).map(([n, v]) => [n, Number(v)]));
      // libseccomp 2.5.4 predates a few new syscalls; those it knows must agree.
      const known = Object.entries(table).filter(([n]) => (theirs.get(n) ?? -1) >= 0);
      assert.ok(known.length > 300, `${known.length} names known to libseccomp`);
      for (const [name, nr] of known) assert.equal(theirs.get(name), nr, name);
    });
  }

  test('the default profile plus the test container rules act like libseccomp on every syscall and edge argument', () => {
    const allow: Record<string, SeccompRule> = {
      ...defaultAsAllow(),
      delete_module: { args: { index: 1, values: [1n], mask: 0x06n } },
      clone: { args: { index: 0, mask: ~0x7e020000n & U64 } },
      ioctl: { args: { index: 5, values: [0xdeadbeef_00000001n, 7n] } },
    };
    const ours = compileSeccomp({ allow } satisfies Seccomp, 'x86_64');
    const theirs = libseccomp([], referenceRules(allow, 'x86_64'));
    let compared = 0;
    for (const arch of [AUDIT_ARCH.x86_64, AUDIT_ARCH.aarch64]) {
      for (let nr = 0; nr < 460; nr++) {
        for (const nrBits of [0, 0x40000000]) {
          for (const v of nr === 135 || nr === 176 || nr === 56 || nr === 16 ? probeValues : [0n, U64]) {
            const d = { nr: nr | nrBits, arch, args: [v, v, 0n, 0n, 0n, v] };
            assert.equal(run(ours, d).action, run(theirs, d).action, JSON.stringify(d, (_, x) => (typeof x === 'bigint' ? `0x${x.toString(16)}` : x)));
            compared++;
          }
        }
      }
    }
    assert.ok(compared > 1800);
  });
});
