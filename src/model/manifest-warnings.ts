// What a valid manifest holds that is worth telling at install. Apart from
// manifest-validate.ts because it needs the syscall tables (seccomp.ts), which
// themselves import the manifest types.
import type { Manifest } from './manifest.js';
import { isKnownSyscall } from './seccomp.js';

/**
 * Names in `seccomp.allow` that are no syscall we know: Northstar accepts and
 * ignores them (spec/manifest.md), so a typo silently allows nothing.
 */
export function manifestWarnings(m: Manifest): string[] {
  const unknown = Object.keys(m.seccomp?.allow ?? {}).filter((n) => !isKnownSyscall(n));
  if (unknown.length === 0) return [];
  const names = unknown.map((n) => JSON.stringify(n)).join(', ');
  return [`seccomp.allow: ${names} ${unknown.length === 1 ? 'is not a syscall' : 'are not syscalls'} on any architecture we know`];
}
