// What the benchmarks read of a daemon process from /proc.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

/** The resident set of `pid` in MB. */
export function rssMb(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for ${pid}`);
  return Number(m[1]) / 1024;
}

/** The node process under `unshare` (bin/northstar execs unshare, which execs node). */
export function nodePid(pid: number): number {
  for (let i = 0; i < 50; i++) {
    if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'node') return pid;
    const kids = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    if (kids.length === 1) pid = Number(kids[0]);
    else spawnSync('sleep', ['0.1']);
  }
  return pid;
}
