// Compiles a manifest's `seccomp` section into a classic BPF program
// (struct sock_filter[], 8 bytes per instruction, little-endian) that
// nstar-init installs with PR_SET_NO_NEW_PRIVS + SECCOMP_SET_MODE_FILTER.
// Semantics follow Northstar 0.9 (spec/launch.md §5.6): an allow-list; a
// wrong architecture or anything not allowed ends in SECCOMP_RET_KILL_PROCESS
// (the container sees Signalled(31)). Unlike Northstar's linear list, the
// syscall numbers are searched with a binary tree of `jge`s.
// Deviation 21: the default profile allows `clone` without namespace flags
// whatever the capabilities and answers `clone3` with ENOSYS, as Docker's
// does: clone3 passes its flags in memory a filter cannot read, and libc
// falls back to clone on ENOSYS, so fork() and threads work.
import { ManifestError, type Seccomp, type SeccompArgs } from './manifest.js';
import { BASE, BASE_BY_ARCH, BY_CAPABILITY, CLONE_MASK, PERSONALITY_VALUES } from './seccomp-default.js';
import { SYSCALLS_AARCH64 } from './syscalls-aarch64.js';
import { SYSCALLS_X86_64 } from './syscalls-x86_64.js';

export type SeccompArch = 'x86_64' | 'aarch64';

// <linux/filter.h>
export const BPF = {
  LD_W_ABS: 0x20, // BPF_LD | BPF_W | BPF_ABS
  JMP_JA: 0x05,
  JMP_JEQ_K: 0x15,
  JMP_JGE_K: 0x35,
  JMP_JSET_K: 0x45,
  RET_K: 0x06,
} as const;
/** The kernel refuses longer programs (<linux/bpf_common.h>). */
export const BPF_MAXINSNS = 4096;

// <linux/seccomp.h>
export const SECCOMP_RET_KILL_PROCESS = 0x80000000;
export const SECCOMP_RET_ALLOW = 0x7fff0000;
export const SECCOMP_RET_ERRNO = 0x00050000;
/** asm-generic/errno.h */
export const ENOSYS = 38;

// <linux/audit.h>: EM_* | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE
export const AUDIT_ARCH: Record<SeccompArch, number> = { x86_64: 0xc000003e, aarch64: 0xc00000b7 };
/** x86_64 syscall numbers with this bit set are the x32 ABI: never allowed. */
export const X32_SYSCALL_BIT = 0x40000000;

/** Offsets into struct seccomp_data { int nr; u32 arch; u64 ip; u64 args[6]; }. */
export const SECCOMP_DATA = { nr: 0, arch: 4, argLow: (i: number) => 16 + 8 * i, argHigh: (i: number) => 20 + 8 * i };

const TABLES: Record<SeccompArch, Readonly<Record<string, number>>> = {
  x86_64: SYSCALLS_X86_64,
  aarch64: SYSCALLS_AARCH64,
};

const U64_MAX = 0xffffffffffffffffn;

export interface CompileOptions {
  /** The manifest's capability set: the default profile grows with it (spec/seccomp-default.md). */
  capabilities?: Iterable<string>;
  /** Told of every allowed name that is no syscall on the architecture (skipped; the caller may log it). */
  onSkip?: (name: string, arch: SeccompArch) => void;
}

/** The architecture this process runs on, as the compiler names it. */
export function hostArch(): SeccompArch {
  if (process.arch === 'x64') return 'x86_64';
  if (process.arch === 'arm64') return 'aarch64';
  throw new Error(`seccomp: unsupported architecture ${process.arch} (only x86_64 and aarch64)`);
}

/** The syscall number of `name` on `arch`, or undefined. */
export function syscallNumber(name: string, arch: SeccompArch): number | undefined {
  const table = TABLES[arch];
  return Object.hasOwn(table, name) ? table[name] : undefined;
}

/**
 * Compiles `seccomp` for `arch` (default: the host's). Throws ManifestError for a
 * name that is a syscall on no supported architecture, for malformed argument
 * rules, and for a program longer than BPF_MAXINSNS. A name known only on the
 * other architecture is skipped, like Northstar skips names it cannot resolve.
 */
export function compileSeccomp(seccomp: Seccomp, arch: SeccompArch = hostArch(), opts: CompileOptions = {}): Buffer {
  if (!Object.hasOwn(TABLES, arch)) throw new Error(`seccomp: unsupported architecture ${String(arch)}`);
  const rules = collectRules(seccomp, arch, new Set(opts.capabilities ?? []), opts.onSkip);
  const program = assemble(filterProgram(arch, rules));
  if (program.length > BPF_MAXINSNS) {
    throw new ManifestError(
      `seccomp: the filter needs ${program.length} BPF instructions, more than the kernel's limit of ${BPF_MAXINSNS} (BPF_MAXINSNS); allow fewer syscalls or values`,
    );
  }
  return encode(program);
}

// ------------------------------------------------------------------ rules

/** What allows one syscall: anything, or any of these argument checks; or an errno it fails with, unrun. */
type Rule = 'any' | SeccompArgs[] | { errno: number };

function collectRules(seccomp: Seccomp, arch: SeccompArch, caps: Set<string>, onSkip: CompileOptions['onSkip']): Map<number, Rule> {
  const rules = new Map<number, Rule>();
  const add = (name: string, rule: Rule): void => {
    const nr = syscallNumber(name, arch);
    if (nr === undefined) return;
    const had = rules.get(nr);
    // Any allow replaces an errno answer; allows add up.
    if (had === 'any' || rule === 'any') rules.set(nr, 'any');
    else if (!Array.isArray(rule)) rules.set(nr, had ?? rule);
    else rules.set(nr, [...(Array.isArray(had) ? had : []), ...rule]);
  };
  if (seccomp.profile === 'default') {
    for (const name of [...BASE, ...BASE_BY_ARCH[arch]]) {
      add(name, name === 'personality' ? [{ index: 0, values: PERSONALITY_VALUES }] : 'any');
    }
    for (const cap of caps) for (const name of BY_CAPABILITY[cap] ?? []) add(name, 'any');
    // With CAP_SYS_ADMIN `clone` is 'any' already, which absorbs this.
    add('clone', [{ index: 0, mask: CLONE_MASK }]);
    add('clone3', { errno: ENOSYS });
  } else if (seccomp.profile !== undefined) {
    throw new ManifestError(`seccomp.profile: unknown profile "${String(seccomp.profile)}" (only "default")`);
  }
  const allow = seccomp.allow ?? {};
  checkNames(Object.keys(allow), arch, onSkip);
  for (const [name, rule] of Object.entries(allow)) add(name, normalizeRule(name, rule));
  // The filter is installed before execve(init): Northstar always allows execve.
  add('execve', 'any');
  return rules;
}

/** A syscall on some architecture we know (or a 32-bit name the default profile lists). */
export function isKnownSyscall(name: string): boolean {
  return PROFILE_NAMES.has(name) || Object.values(TABLES).some((t) => Object.hasOwn(t, name));
}

/** Names of other architectures' syscalls (32-bit variants and the like) that the default profile lists. */
const PROFILE_NAMES = new Set([...BASE, ...Object.values(BASE_BY_ARCH).flat(), ...Object.values(BY_CAPABILITY).flat()]);

/**
 * Names that are no syscall on `arch` are skipped, as in Northstar
 * (spec/manifest.md: unknown names are silently ignored): manifests written for
 * other targets still run, and a typo was already named in a WARN at install
 * (`isKnownSyscall`).
 */
function checkNames(names: string[], arch: SeccompArch, onSkip: CompileOptions['onSkip']): void {
  if (onSkip === undefined) return;
  for (const n of names) {
    if (syscallNumber(n, arch) === undefined) onSkip(n, arch);
  }
}

function normalizeRule(name: string, rule: unknown): Rule {
  if (rule === 'any') return 'any';
  const args = (rule as { args?: SeccompArgs } | null)?.args;
  if (typeof args !== 'object' || args === null) {
    throw new ManifestError(`seccomp.allow.${name}: expected "any" or {args: {index, values?, mask?}}`);
  }
  const where = `seccomp.allow.${name}.args`;
  if (!Number.isInteger(args.index) || args.index < 0 || args.index > 5) {
    throw new ManifestError(`${where}.index: ${String(args.index)} is not an argument index 0..5`);
  }
  if (args.values === undefined && args.mask === undefined) throw new ManifestError(`${where}: needs values or mask`);
  if (args.values !== undefined && (!Array.isArray(args.values) || args.values.length > 50)) {
    throw new ManifestError(`${where}.values: expected at most 50 values`);
  }
  for (const v of [...(args.values ?? []), ...(args.mask === undefined ? [] : [args.mask])]) {
    if (typeof v !== 'bigint' || v < 0n || v > U64_MAX) throw new ManifestError(`${where}: ${String(v)} is not a u64 (bigint)`);
  }
  return [args];
}

// ------------------------------------------------------------------ program

interface Label {
  readonly name: string;
}
/** One item of the symbolic program: a statement, a conditional jump to labels, or a label. */
type Item =
  | { op: 'stmt'; code: number; k: number }
  | { op: 'jump'; code: number; k: number; t: Label; f: Label }
  | { op: 'label'; label: Label };

class Builder {
  readonly items: Item[] = [];
  private n = 0;
  label(name: string): Label {
    return { name: `${name}${this.n++}` };
  }
  place(label: Label): void {
    this.items.push({ op: 'label', label });
  }
  load(offset: number): void {
    this.items.push({ op: 'stmt', code: BPF.LD_W_ABS, k: offset });
  }
  ret(action: number): void {
    this.items.push({ op: 'stmt', code: BPF.RET_K, k: action });
  }
  jump(code: number, k: number, t: Label, f: Label): void {
    this.items.push({ op: 'jump', code, k: k >>> 0, t, f });
  }
}

/** Syscalls per leaf of the search tree: below this a linear `jeq` run is cheaper than more `jge`s. */
const LEAF = 4;

function filterProgram(arch: SeccompArch, rules: Map<number, Rule>): Item[] {
  const b = new Builder();
  const archKill = b.label('kill');
  const nr = b.label('nr');
  b.load(SECCOMP_DATA.arch);
  b.jump(BPF.JMP_JEQ_K, AUDIT_ARCH[arch], nr, archKill);
  b.place(archKill);
  b.ret(SECCOMP_RET_KILL_PROCESS);
  b.place(nr);
  b.load(SECCOMP_DATA.nr);
  if (arch === 'x86_64') {
    // x32 shares AUDIT_ARCH_X86_64; its numbers carry bit 30.
    const x32Kill = b.label('kill');
    const native = b.label('native');
    b.jump(BPF.JMP_JGE_K, X32_SYSCALL_BIT, x32Kill, native);
    b.place(x32Kill);
    b.ret(SECCOMP_RET_KILL_PROCESS);
    b.place(native);
  }
  searchTree(b, [...rules].sort((x, y) => x[0] - y[0]));
  return b.items;
}

/** A binary search over sorted syscall numbers; the accumulator holds nr. */
function searchTree(b: Builder, entries: [number, Rule][]): void {
  if (entries.length <= LEAF) return leaf(b, entries);
  const mid = entries.length >> 1;
  const low = b.label('low');
  const high = b.label('high');
  b.jump(BPF.JMP_JGE_K, entries[mid][0], high, low);
  b.place(low);
  searchTree(b, entries.slice(0, mid));
  b.place(high);
  searchTree(b, entries.slice(mid));
}

function leaf(b: Builder, entries: [number, Rule][]): void {
  const allow = b.label('allow');
  const blocks: [Label, Exclude<Rule, 'any'>][] = [];
  for (const [nr, rule] of entries) {
    const next = b.label('next');
    const target = rule === 'any' ? allow : b.label(`rule${nr}_`);
    if (rule !== 'any') blocks.push([target, rule]);
    b.jump(BPF.JMP_JEQ_K, nr, target, next);
    b.place(next);
  }
  b.ret(SECCOMP_RET_KILL_PROCESS);
  if (entries.some(([, rule]) => rule === 'any')) {
    b.place(allow);
    b.ret(SECCOMP_RET_ALLOW);
  }
  for (const [label, rule] of blocks) {
    b.place(label);
    if (Array.isArray(rule)) argChecks(b, rule);
    else b.ret(SECCOMP_RET_ERRNO | (rule.errno & 0xffff));
  }
}

/** Allows when any check matches; a value matches only if both 32-bit halves are equal. */
function argChecks(b: Builder, checks: SeccompArgs[]): void {
  const allow = b.label('allow');
  for (const { index, values, mask } of checks) {
    for (const v of values ?? []) bothHalves(b, index, BPF.JMP_JEQ_K, v, true, allow);
    // The argument may only use bits inside the mask: (arg & ~mask) == 0 for both halves.
    if (mask !== undefined) bothHalves(b, index, BPF.JMP_JSET_K, ~mask & U64_MAX, false, allow);
  }
  b.ret(SECCOMP_RET_KILL_PROCESS);
  b.place(allow);
  b.ret(SECCOMP_RET_ALLOW);
}

/**
 * Jumps to `then` when the test `code` with `k` comes out `want` for both
 * 32-bit halves of argument `index` (BPF loads 32 bits at a time); otherwise
 * goes on after the check.
 */
function bothHalves(b: Builder, index: number, code: number, k: bigint, want: boolean, then: Label): void {
  const high = b.label('high');
  const next = b.label('next');
  const test = (half: number, pass: Label) => (want ? b.jump(code, half, pass, next) : b.jump(code, half, next, pass));
  b.load(SECCOMP_DATA.argLow(index));
  test(low32(k), high);
  b.place(high);
  b.load(SECCOMP_DATA.argHigh(index));
  test(high32(k), then);
  b.place(next);
}

const low32 = (v: bigint): number => Number(v & 0xffffffffn);
const high32 = (v: bigint): number => Number((v >> 32n) & 0xffffffffn);

// ------------------------------------------------------------------ assembler

/** One struct sock_filter. */
export interface Insn {
  code: number;
  jt: number;
  jf: number;
  k: number;
}

/**
 * Resolves labels into jump offsets. Conditional jumps reach at most 255
 * instructions ahead (jt/jf are u8); a farther target gets an unconditional
 * `ja` (32-bit offset) right after the jump, as a trampoline. Adding
 * trampolines can push other targets out of reach, so this repeats until no
 * jump changes; sizes only grow, so it ends.
 */
function assemble(items: Item[]): Insn[] {
  const far = items.map(() => ({ t: false, f: false }));
  for (;;) {
    const at = new Map<Label, number>();
    let pc = 0;
    items.forEach((it, i) => {
      if (it.op === 'label') at.set(it.label, pc);
      else pc += it.op === 'stmt' ? 1 : 1 + Number(far[i].t) + Number(far[i].f);
    });
    let grew = false;
    const out: Insn[] = [];
    items.forEach((it, i) => {
      if (it.op === 'stmt') out.push({ code: it.code, jt: 0, jf: 0, k: it.k });
      if (it.op !== 'jump') return;
      const next = out.length + 1;
      const tramp = [far[i].t && it.t, far[i].f && it.f].filter((l): l is Label => l !== false);
      const offset = (l: Label, isFar: boolean): number => (isFar ? tramp.indexOf(l) : target(at, l) - next);
      const jt = offset(it.t, far[i].t);
      const jf = offset(it.f, far[i].f);
      if (jt > 255) (far[i].t = true), (grew = true);
      if (jf > 255) (far[i].f = true), (grew = true);
      out.push({ code: it.code, jt, jf, k: it.k });
      for (const l of tramp) out.push({ code: BPF.JMP_JA, jt: 0, jf: 0, k: target(at, l) - out.length - 1 });
    });
    if (!grew) return out;
  }
}

function target(at: Map<Label, number>, l: Label): number {
  const pc = at.get(l);
  if (pc === undefined) throw new Error(`seccomp: internal error: label ${l.name} is never placed`);
  return pc;
}

function encode(program: Insn[]): Buffer {
  const buf = Buffer.alloc(program.length * 8);
  program.forEach((insn, i) => {
    if (insn.jt < 0 || insn.jf < 0) throw new Error(`seccomp: internal error: backward jump at ${i}`);
    buf.writeUInt16LE(insn.code, i * 8);
    buf.writeUInt8(insn.jt, i * 8 + 2);
    buf.writeUInt8(insn.jf, i * 8 + 3);
    buf.writeUInt32LE(insn.k >>> 0, i * 8 + 4);
  });
  return buf;
}

/** The instructions of a compiled program (for tests and debugging). */
export function decodeFilter(buf: Buffer): Insn[] {
  if (buf.length % 8 !== 0) throw new Error(`seccomp: a filter is a multiple of 8 bytes, not ${buf.length}`);
  const out: Insn[] = [];
  for (let o = 0; o < buf.length; o += 8) {
    out.push({ code: buf.readUInt16LE(o), jt: buf.readUInt8(o + 2), jf: buf.readUInt8(o + 3), k: buf.readUInt32LE(o + 4) });
  }
  return out;
}
