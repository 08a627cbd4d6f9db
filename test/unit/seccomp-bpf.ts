// A small classic-BPF interpreter for seccomp programs, used by the seccomp
// tests: struct seccomp_data in, the filter's return action out. It also checks
// what the kernel's loader (bpf_check_classic + seccomp_check_filter) checks:
// known opcodes, absolute word loads inside seccomp_data, forward jumps that
// land inside the program, and a program ending in `ret`.
import { BPF_MAXINSNS, decodeFilter, type Insn } from '../../src/model/seccomp.js';

export interface SeccompData {
  nr: number;
  arch: number;
  ip?: bigint;
  args?: bigint[];
}

const LD_W_ABS = 0x20;
const RET_K = 0x06;
const JA = 0x05;
const JEQ_K = 0x15;
const JGT_K = 0x25;
const JGE_K = 0x35;
const JSET_K = 0x45;
const ALU_AND_K = 0x54;

/** Throws when the kernel would refuse the program. */
export function checkProgram(program: Insn[]): void {
  if (program.length === 0 || program.length > BPF_MAXINSNS) throw new Error(`bad length ${program.length}`);
  program.forEach((insn, pc) => {
    const reach = (off: number) => {
      if (pc + 1 + off >= program.length) throw new Error(`jump out of range at ${pc}`);
    };
    switch (insn.code) {
      case LD_W_ABS:
        if (insn.k % 4 !== 0 || insn.k >= 64) throw new Error(`bad load offset ${insn.k} at ${pc}`);
        break;
      case JA:
        reach(insn.k);
        break;
      case JEQ_K:
      case JGT_K:
      case JGE_K:
      case JSET_K:
        reach(insn.jt);
        reach(insn.jf);
        break;
      case RET_K:
      case ALU_AND_K:
        break;
      default:
        throw new Error(`unknown opcode 0x${insn.code.toString(16)} at ${pc}`);
    }
  });
  if (program[program.length - 1].code !== RET_K) throw new Error('program does not end in ret');
}

function word(d: SeccompData, offset: number): number {
  if (offset === 0) return d.nr >>> 0;
  if (offset === 4) return d.arch >>> 0;
  const field = offset < 16 ? (d.ip ?? 0n) : (d.args?.[(offset - 16) >> 3] ?? 0n);
  // Little-endian: the low half of each u64 comes first.
  return Number((offset % 8 === 0 ? field : field >> 32n) & 0xffffffffn);
}

/** Runs the filter; returns the action (the k of the `ret` reached) and how many instructions ran. */
export function run(filter: Buffer, d: SeccompData): { action: number; steps: number } {
  const program = decodeFilter(filter);
  checkProgram(program);
  let a = 0;
  for (let pc = 0, steps = 1; ; pc++, steps++) {
    const { code, jt, jf, k } = program[pc];
    switch (code) {
      case LD_W_ABS:
        a = word(d, k);
        break;
      case ALU_AND_K:
        a = (a & k) >>> 0;
        break;
      case JA:
        pc += k;
        break;
      case JEQ_K:
        pc += a === k ? jt : jf;
        break;
      case JGT_K:
        pc += a > k ? jt : jf;
        break;
      case JGE_K:
        pc += a >= k ? jt : jf;
        break;
      case JSET_K:
        pc += (a & k) !== 0 ? jt : jf;
        break;
      case RET_K:
        return { action: k >>> 0, steps };
    }
  }
}
