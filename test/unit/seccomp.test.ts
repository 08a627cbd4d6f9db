// The seccomp compiler, checked by running its programs through a BPF
// interpreter (seccomp-bpf.ts): seccomp_data in, action out.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { ManifestError } from '../../src/model/manifest.js';
import {
  AUDIT_ARCH,
  BPF,
  BPF_MAXINSNS,
  SECCOMP_RET_ALLOW as ALLOW,
  SECCOMP_RET_ERRNO,
  SECCOMP_RET_KILL_PROCESS as KILL,
  compileSeccomp,
  decodeFilter,
  syscallNumber,
  type SeccompArch,
} from '../../src/model/seccomp.js';
import { BASE } from '../../src/model/seccomp-default.js';
import { TEST_CONTAINER_SECCOMP } from '../fixtures/seccomp.js';
import { run } from './seccomp-bpf.js';

const X86 = AUDIT_ARCH.x86_64;
const nr = (name: string, arch: SeccompArch = 'x86_64') => {
  const n = syscallNumber(name, arch);
  assert.notEqual(n, undefined, `${name} on ${arch}`);
  return n as number;
};

/** The action of `filter` for syscall `name` with these args on x86_64. */
function verdict(filter: Buffer, name: string, args: bigint[] = []): number {
  return run(filter, { nr: nr(name), arch: X86, args }).action;
}

const ENOSYS = SECCOMP_RET_ERRNO | 38;
const SIGCHLD = 0x11n;
/** The flags glibc 2.36's pthread_create passes to clone (CLONE_VM|FS|FILES|SIGHAND|THREAD|SYSVSEM|SETTLS|PARENT_SETTID|CHILD_CLEARTID). */
const PTHREAD_FLAGS = 0x003d0f00n;
const NAMESPACE_FLAGS = [0x00020000n, 0x02000000n, 0x04000000n, 0x08000000n, 0x10000000n, 0x20000000n, 0x40000000n];

const testContainer = TEST_CONTAINER_SECCOMP;

describe('compileSeccomp', () => {
  test('a name that is no syscall on the architecture is skipped and told to the caller (the model does not log)', () => {
    const skipped: string[] = [];
    const f = compileSeccomp({ allow: { no_such_call: 'any', read: 'any' } }, 'x86_64', { onSkip: (n, arch) => skipped.push(`${n}@${arch}`) });
    assert.deepEqual(skipped, ['no_such_call@x86_64']);
    assert.equal(verdict(f, 'read'), ALLOW);
  });

  test('the program starts with the architecture check and the x32 guard, as expected opcodes', () => {
    const p = decodeFilter(compileSeccomp({ allow: { read: 'any' } }, 'x86_64'));
    assert.deepEqual(p.slice(0, 6), [
      { code: BPF.LD_W_ABS, jt: 0, jf: 0, k: 4 },
      { code: BPF.JMP_JEQ_K, jt: 1, jf: 0, k: 0xc000003e },
      { code: BPF.RET_K, jt: 0, jf: 0, k: KILL },
      { code: BPF.LD_W_ABS, jt: 0, jf: 0, k: 0 },
      { code: BPF.JMP_JGE_K, jt: 0, jf: 1, k: 0x40000000 },
      { code: BPF.RET_K, jt: 0, jf: 0, k: KILL },
    ]);
  });

  test('a two-syscall aarch64 allow-list compiles to exactly the expected instructions', () => {
    const p = decodeFilter(compileSeccomp({ allow: { read: 'any' } }, 'aarch64'));
    // read = 63, execve = 221 on aarch64; execve is always allowed.
    assert.deepEqual(p, [
      { code: BPF.LD_W_ABS, jt: 0, jf: 0, k: 4 },
      { code: BPF.JMP_JEQ_K, jt: 1, jf: 0, k: 0xc00000b7 },
      { code: BPF.RET_K, jt: 0, jf: 0, k: KILL },
      { code: BPF.LD_W_ABS, jt: 0, jf: 0, k: 0 },
      { code: BPF.JMP_JEQ_K, jt: 2, jf: 0, k: 63 },
      { code: BPF.JMP_JEQ_K, jt: 1, jf: 0, k: 221 },
      { code: BPF.RET_K, jt: 0, jf: 0, k: KILL },
      { code: BPF.RET_K, jt: 0, jf: 0, k: ALLOW },
    ]);
  });

  test('a values rule compares both 32-bit halves of the argument', () => {
    const p = decodeFilter(compileSeccomp({ allow: { personality: { args: { index: 2, values: [0x1_0000_0002n] } } } }, 'aarch64'));
    // Arch check, nr load, jeq personality(92) → block, jeq execve(221) → allow, kill, allow, then the block.
    assert.deepEqual(p.slice(4, 8), [
      { code: BPF.JMP_JEQ_K, jt: 3, jf: 0, k: 92 },
      { code: BPF.JMP_JEQ_K, jt: 1, jf: 0, k: 221 },
      { code: BPF.RET_K, jt: 0, jf: 0, k: KILL },
      { code: BPF.RET_K, jt: 0, jf: 0, k: ALLOW },
    ]);
    assert.deepEqual(p.slice(8), [
      { code: BPF.LD_W_ABS, jt: 0, jf: 0, k: 16 + 8 * 2 },
      { code: BPF.JMP_JEQ_K, jt: 0, jf: 2, k: 2 },
      { code: BPF.LD_W_ABS, jt: 0, jf: 0, k: 16 + 8 * 2 + 4 },
      { code: BPF.JMP_JEQ_K, jt: 1, jf: 0, k: 1 },
      { code: BPF.RET_K, jt: 0, jf: 0, k: KILL },
      { code: BPF.RET_K, jt: 0, jf: 0, k: ALLOW },
    ]);
  });

  test('the default profile allows its base list and kills what it lacks', () => {
    const f = compileSeccomp({ profile: 'default' }, 'x86_64');
    for (const name of ['read', 'write', 'openat', 'exit_group', 'rt_sigreturn', 'arch_prctl', 'futex', 'ptrace']) {
      assert.equal(verdict(f, name), ALLOW, name);
    }
    for (const name of ['mount', 'umount2', 'unshare', 'setns', 'reboot', 'delete_module', 'chroot', 'kexec_load']) {
      assert.equal(verdict(f, name), KILL, name);
    }
  });

  test('the default profile lets fork and threads clone without namespace flags, and clone3 fail with ENOSYS, with no capabilities', () => {
    const f = compileSeccomp({ profile: 'default' }, 'x86_64', { capabilities: [] });
    assert.equal(verdict(f, 'clone', [SIGCHLD]), ALLOW, 'fork');
    assert.equal(verdict(f, 'clone', [PTHREAD_FLAGS]), ALLOW, 'pthread_create');
    for (const ns of NAMESPACE_FLAGS) assert.equal(verdict(f, 'clone', [SIGCHLD | ns]), KILL, `namespace flag 0x${ns.toString(16)}`);
    assert.equal(verdict(f, 'clone3'), ENOSYS, 'libc falls back to clone');
    const a = compileSeccomp({ profile: 'default' }, 'aarch64', { capabilities: [] });
    assert.equal(run(a, { nr: nr('clone3', 'aarch64'), arch: AUDIT_ARCH.aarch64 }).action, ENOSYS);
    assert.equal(run(a, { nr: nr('clone', 'aarch64'), arch: AUDIT_ARCH.aarch64, args: [SIGCHLD] }).action, ALLOW);
  });

  test('an explicit clone3 allow replaces the ENOSYS answer', () => {
    assert.equal(verdict(compileSeccomp({ profile: 'default', allow: { clone3: 'any' } }, 'x86_64'), 'clone3'), ALLOW);
  });

  test('every syscall number gets the verdict the default profile lists for it', () => {
    for (const arch of ['x86_64', 'aarch64'] as const) {
      const f = compileSeccomp({ profile: 'default' }, arch);
      const allowed = new Set(BASE.map((n) => syscallNumber(n, arch)).filter((n) => n !== undefined));
      if (arch === 'x86_64') for (const n of ['arch_prctl', 'modify_ldt']) allowed.add(nr(n));
      const skip = new Set(['personality', 'clone', 'clone3'].map((n) => nr(n, arch)));
      for (let n = 0; n < 1024; n++) {
        if (skip.has(n)) continue;
        const { action } = run(f, { nr: n, arch: AUDIT_ARCH[arch] });
        assert.equal(action, allowed.has(n) ? ALLOW : KILL, `${arch} nr ${n}`);
      }
    }
  });

  test('a syscall from a foreign architecture is killed', () => {
    const f = compileSeccomp({ profile: 'default' }, 'x86_64');
    assert.equal(run(f, { nr: 0, arch: AUDIT_ARCH.aarch64 }).action, KILL);
    assert.equal(run(f, { nr: 0, arch: 0x40000003 /* i386 */ }).action, KILL);
    const a = compileSeccomp({ profile: 'default' }, 'aarch64');
    assert.equal(run(a, { nr: nr('read', 'aarch64'), arch: X86 }).action, KILL);
    assert.equal(run(a, { nr: nr('read', 'aarch64'), arch: AUDIT_ARCH.aarch64 }).action, ALLOW);
  });

  test('an x32 syscall number is killed even where the x86_64 number is allowed', () => {
    const f = compileSeccomp({ profile: 'default' }, 'x86_64');
    assert.equal(run(f, { nr: 0x40000000 | nr('read'), arch: X86 }).action, KILL);
    assert.equal(run(f, { nr: 0xffffffff, arch: X86 }).action, KILL);
  });

  test('personality is allowed only with the listed arg0 values', () => {
    const f = compileSeccomp({ profile: 'default' }, 'x86_64');
    for (const v of [0n, 8n, 0x20000n, 0x20008n, 0xffffffffn]) assert.equal(verdict(f, 'personality', [v]), ALLOW, `0x${v.toString(16)}`);
    for (const v of [1n, 0x20001n, 0x1_0000_0008n, 0xffffffff_ffffffffn]) assert.equal(verdict(f, 'personality', [v]), KILL, `0x${v.toString(16)}`);
  });

  test("the test container's delete_module rule: 1 allowed, 4 masked, 7 prohibited", () => {
    const f = compileSeccomp(testContainer, 'x86_64');
    assert.equal(verdict(f, 'delete_module', [0n, 1n]), ALLOW);
    assert.equal(verdict(f, 'delete_module', [0n, 4n]), ALLOW);
    assert.equal(verdict(f, 'delete_module', [0n, 2n]), ALLOW);
    assert.equal(verdict(f, 'delete_module', [0n, 0n]), ALLOW, 'zero uses no bit outside the mask');
    assert.equal(verdict(f, 'delete_module', [0n, 7n]), KILL);
    assert.equal(verdict(f, 'delete_module', [0n, 8n]), KILL);
    assert.equal(verdict(f, 'delete_module', [0n, 0x1_0000_0001n]), KILL, 'high half differs from value 1');
    assert.equal(verdict(f, 'delete_module', [0n, 0x1_0000_0004n]), KILL, 'high half outside the mask');
    assert.equal(verdict(f, 'delete_module', [1n, 5n]), KILL, 'only args[1] is checked');
    assert.equal(verdict(f, 'clone'), ALLOW);
    assert.equal(verdict(f, 'clone3'), ALLOW);
  });

  test('u64 values above 2^53 are matched exactly on both halves', () => {
    const v = 0xdeadbeef_00000001n;
    const f = compileSeccomp({ allow: { ioctl: { args: { index: 5, values: [v] } } } }, 'x86_64');
    assert.equal(verdict(f, 'ioctl', [0n, 0n, 0n, 0n, 0n, v]), ALLOW);
    assert.equal(verdict(f, 'ioctl', [0n, 0n, 0n, 0n, 0n, v + 1n]), KILL);
    assert.equal(verdict(f, 'ioctl', [0n, 0n, 0n, 0n, 0n, v ^ (1n << 63n)]), KILL);
    assert.equal(verdict(f, 'ioctl', [0n, 0n, 0n, 0n, 0n, 1n]), KILL);
  });

  test('a high-half mask lets exactly the masked high bits through', () => {
    const f = compileSeccomp({ allow: { mmap: { args: { index: 3, mask: 0xff000000_0000000fn } } } }, 'x86_64');
    assert.equal(verdict(f, 'mmap', [0n, 0n, 0n, 0x12000000_00000003n]), ALLOW);
    assert.equal(verdict(f, 'mmap', [0n, 0n, 0n, 0x00100000_00000003n]), KILL);
    assert.equal(verdict(f, 'mmap', [0n, 0n, 0n, 0x10n]), KILL);
  });

  test('capabilities extend the default profile; clone without CAP_SYS_ADMIN may not create namespaces', () => {
    const net = compileSeccomp({ profile: 'default' }, 'x86_64', { capabilities: ['CAP_NET_ADMIN', 'CAP_SYS_TIME'] });
    assert.equal(verdict(net, 'clone', [0x11n]), ALLOW);
    assert.equal(verdict(net, 'clone', [0x003d0f00n /* pthread_create's flags */]), ALLOW);
    for (const ns of NAMESPACE_FLAGS) {
      assert.equal(verdict(net, 'clone', [0x11n | ns]), KILL, `namespace flag 0x${ns.toString(16)}`);
    }
    assert.equal(verdict(net, 'clock_settime'), ALLOW);
    assert.equal(verdict(net, 'mount'), KILL);

    const admin = compileSeccomp({ profile: 'default' }, 'x86_64', { capabilities: ['CAP_SYS_ADMIN'] });
    assert.equal(verdict(admin, 'clone', [0x10000011n]), ALLOW);
    assert.equal(verdict(admin, 'mount'), ALLOW);
    assert.equal(verdict(admin, 'unshare'), ALLOW);
  });

  test('an allow-list without a profile allows only its entries and execve', () => {
    const f = compileSeccomp({ allow: { write: 'any', exit_group: 'any' } }, 'x86_64');
    assert.equal(verdict(f, 'write'), ALLOW);
    assert.equal(verdict(f, 'exit_group'), ALLOW);
    assert.equal(verdict(f, 'execve'), ALLOW);
    assert.equal(verdict(f, 'read'), KILL);
    assert.equal(verdict(f, 'prctl'), KILL);
  });

  test('an "any" rule wins over argument rules for the same syscall', () => {
    const f = compileSeccomp({ profile: 'default', allow: { personality: 'any' } }, 'x86_64');
    assert.equal(verdict(f, 'personality', [0x1234n]), ALLOW);
  });

  test('an unknown syscall name is skipped, as Northstar does (the WARN is given at install)', () => {
    const f = compileSeccomp({ allow: { read: 'any', frobnicate: 'any', open_sesame: 'any' } }, 'x86_64');
    assert.equal(verdict(f, 'read'), ALLOW);
    assert.equal(verdict(f, 'write'), KILL);
  });

  test('a name known only on another architecture is skipped', () => {
    const a = compileSeccomp({ allow: { arch_prctl: 'any', read: 'any', chown32: 'any' } }, 'aarch64');
    assert.equal(run(a, { nr: nr('read', 'aarch64'), arch: AUDIT_ARCH.aarch64 }).action, ALLOW);
    const x = compileSeccomp({ allow: { arch_prctl: 'any' } }, 'x86_64');
    assert.equal(verdict(x, 'arch_prctl'), ALLOW);
  });

  test('malformed argument rules are errors naming the field', () => {
    const bad: [unknown, RegExp][] = [
      [{ args: { index: 6, values: [1n] } }, /index: 6 is not an argument index/],
      [{ args: { index: 0 } }, /needs values or mask/],
      [{ args: { index: 0, values: Array.from({ length: 51 }, (_, i) => BigInt(i)) } }, /at most 50 values/],
      [{ args: { index: 0, values: [-1n] } }, /is not a u64/],
      [{ args: { index: 0, values: [1] } }, /is not a u64/],
      ['some', /expected "any"/],
    ];
    for (const [rule, re] of bad) {
      assert.throws(
        () => compileSeccomp({ allow: { read: rule as 'any' } }, 'x86_64'),
        (e: unknown) => e instanceof ManifestError && /seccomp\.allow\.read/.test(e.message) && re.test(e.message),
        String(re),
      );
    }
  });

  test('blocks and trees longer than a jump can reach still land on every value', () => {
    // 12 syscalls × 50 values: each argument block is ~250 instructions, so the
    // search tree's jumps and the block entries need trampolines.
    const names = ['read', 'write', 'close', 'ioctl', 'mmap', 'lseek', 'brk', 'dup', 'pipe', 'fcntl', 'flock', 'fsync'];
    const values = Array.from({ length: 50 }, (_, i) => BigInt(i) * 0x1_0000_0001n);
    const allow = Object.fromEntries(names.map((n) => [n, { args: { index: 0, values } }]));
    const f = compileSeccomp({ allow }, 'x86_64');
    const program = decodeFilter(f);
    assert.ok(program.length > 2000, `${program.length} instructions`);
    assert.ok(program.some((i) => i.code === BPF.JMP_JA && i.k > 255), 'uses long jumps');
    for (const n of names) {
      for (const v of [values[0], values[25], values[49]]) assert.equal(verdict(f, n, [v]), ALLOW, `${n} ${v}`);
      assert.equal(verdict(f, n, [50n]), KILL);
      assert.equal(verdict(f, n, [49n]), KILL, 'low half alone does not match');
    }
    assert.equal(verdict(f, 'execve'), ALLOW);
    assert.equal(verdict(f, 'getpid'), KILL);
  });

  test('a filter longer than BPF_MAXINSNS is a manifest error', () => {
    const names = Object.keys(Object.fromEntries(BASE.map((n) => [n, 1]))).filter((n) => syscallNumber(n, 'x86_64') !== undefined);
    const values = Array.from({ length: 50 }, (_, i) => BigInt(i));
    const allow = Object.fromEntries(names.slice(0, 25).map((n) => [n, { args: { index: 0, values } }]));
    assert.throws(
      () => compileSeccomp({ allow }, 'x86_64'),
      (e: unknown) => e instanceof ManifestError && e.message.includes(`limit of ${BPF_MAXINSNS} (BPF_MAXINSNS)`),
    );
  });

  test('a syscall is decided in few instructions: the numbers are searched as a tree', () => {
    const f = compileSeccomp({ profile: 'default' }, 'x86_64');
    let worst = 0;
    for (let n = 0; n < 460; n++) worst = Math.max(worst, run(f, { nr: n, arch: X86 }).steps);
    assert.ok(worst < 30, `worst case ${worst} instructions`);
  });
});
