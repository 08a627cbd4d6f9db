// The host side of a launch plan (machines/launch-plan.ts): the facts the
// plan asks for (paths that exist, the group file, SELinux, the test hooks),
// read from this host, and the persist directory the plan asks for.
// Main thread.
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync } from 'node:fs';

import type { LaunchHost, LaunchPlan } from '../../machines/launch-plan.js';
import type { SeccompArch } from '../../model/seccomp.js';
import { TEST } from './launch-protocol.js';

/**
 * This host as one launch sees it. The group file is read at most once, and
 * only when the plan needs it (a `dev` mount, supplementary groups); SELinux
 * is probed only for a manifest with selinux.exec.
 */
export function hostView(arch?: SeccompArch): LaunchHost {
  let groups: string | undefined;
  return {
    ...(arch !== undefined ? { arch } : {}),
    exists: existsSync,
    groupFile() {
      if (groups === undefined) {
        try {
          groups = readFileSync('/etc/group', 'utf8');
        } catch {
          // no group database: every name is unknown
          groups = '';
        }
      }
      return groups;
    },
    selinux: () => existsSync('/sys/fs/selinux/enforce'),
    ...testHooks(),
  };
}

/** mkdir -p, chmod 0700 and chown uid:gid of the persist dir, on every start. */
export function preparePersist(persist: LaunchPlan['persist']): void {
  if (persist === undefined) return;
  mkdirSync(persist.dir, { recursive: true });
  chmodSync(persist.dir, 0o700);
  chownSync(persist.dir, persist.uid, persist.gid);
}

/** NSTAR_INIT_TEST=no-openat2,no-mount-setattr (with NSTAR_TEST=1): init takes older kernels' paths. */
function testHooks(): { test?: number } {
  if (process.env.NSTAR_TEST !== '1' || !process.env.NSTAR_INIT_TEST) return {};
  const words = process.env.NSTAR_INIT_TEST.split(',');
  const test = (words.includes('no-openat2') ? TEST.noOpenat2 : 0) | (words.includes('no-mount-setattr') ? TEST.noMountSetattr : 0);
  return test ? { test } : {};
}
