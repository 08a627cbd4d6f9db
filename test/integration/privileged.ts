// Decides whether a privileged integration test runs. Outside CI a missing
// prerequisite skips with a stated reason; under CI=true it is a failure.
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { TestContext } from 'node:test';

export interface Prerequisites {
  loop?: boolean;
  mksquashfs?: boolean;
  cgroups?: boolean;
  tools?: string[];
}

function hasTool(name: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** Why the privileged tests cannot run here, or undefined when they can. */
export function missing(req: Prerequisites = {}): string | undefined {
  if (process.getuid?.() !== 0) return 'not root';
  if (req.loop !== false && !existsSync('/dev/loop-control')) return 'no /dev/loop-control';
  if (req.mksquashfs !== false && !hasTool('mksquashfs')) return 'no mksquashfs (apt-get install squashfs-tools)';
  if (req.cgroups && !existsSync('/sys/fs/cgroup')) return 'no /sys/fs/cgroup';
  for (const t of req.tools ?? []) if (!hasTool(t)) return `no ${t}`;
  return undefined;
}

/**
 * The one rule for any missing prerequisite (root, a tool, a header, a browser):
 * given why a test cannot run (undefined: it can), options for describe()/test()
 * that skip it outside CI; under CI=true it throws instead.
 */
export function prerequisite(why: string | undefined): { skip?: string } {
  if (!why) return {};
  if (process.env.CI === 'true') throw new Error(`prerequisite missing under CI: ${why}`);
  return { skip: why };
}

/** Options for describe()/test(): `{ skip: reason }` outside CI; throws under CI=true. */
export function privileged(req: Prerequisites = {}): { skip?: string } {
  return prerequisite(missing(req));
}

/** For use inside a test: skips (or fails under CI) when a prerequisite is missing. */
export function requirePrivileged(t: TestContext, req: Prerequisites = {}): boolean {
  const { skip } = prerequisite(missing(req));
  if (skip === undefined) return true;
  t.skip(skip);
  return false;
}
