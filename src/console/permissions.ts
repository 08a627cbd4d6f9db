// Console permissions (spec/console.md §4.2, §4.6): one name per request,
// except `start`, which needs `start_command` as soon as it overrides init,
// arguments or environment (the fix of audit finding ESR-01-001). Our
// extension requests have their own names, granted by "full".
import { PERMISSIONS as NORTHSTAR_PERMISSIONS } from '../model/manifest.js';
import type { Request } from './protocol.js';

export { NORTHSTAR_PERMISSIONS };

export const EXTENSION_PERMISSIONS = ['stop', 'exec', 'pause', 'resume', 'copy', 'logs'] as const;

export const CONSOLE_PERMISSIONS = [...NORTHSTAR_PERMISSIONS, ...EXTENSION_PERMISSIONS] as const;
export type ConsolePermission = (typeof CONSOLE_PERMISSIONS)[number];

export type Permissions = ReadonlySet<ConsolePermission>;

/**
 * "full" or a list, as in config (`console.global.permissions`) and manifests.
 * Unknown names throw. A list of all 15 Northstar permissions is "full" (that
 * is how Northstar serializes it), so it grants our extensions too.
 */
export function permissionSet(p: 'full' | readonly string[]): Permissions {
  if (p === 'full' || NORTHSTAR_PERMISSIONS.every((x) => p.includes(x))) return new Set(CONSOLE_PERMISSIONS);
  const out = new Set<ConsolePermission>();
  for (const x of p) {
    if (!(CONSOLE_PERMISSIONS as readonly string[]).includes(x)) {
      throw new Error(`unknown console permission "${x}" (known: ${CONSOLE_PERMISSIONS.join(', ')})`);
    }
    out.add(x as ConsolePermission);
  }
  return out;
}

/** The permission a request needs. */
export function requiredPermission(r: Request): ConsolePermission {
  if (typeof r === 'string') return r;
  if ('token_verify' in r) return 'token_verification';
  if ('start' in r) {
    const s = r.start;
    const plain = (s.init ?? null) === null && s.arguments.length === 0 && Object.keys(s.environment).length === 0;
    return plain ? 'start' : 'start_command';
  }
  if ('copy_in' in r || 'copy_out' in r) return 'copy';
  return Object.keys(r)[0] as ConsolePermission;
}

/** For log lines: "{ident, list}" ("full" when all are granted). */
export function formatPermissions(p: Permissions): string {
  if (CONSOLE_PERMISSIONS.every((x) => p.has(x))) return 'full';
  return `{${CONSOLE_PERMISSIONS.filter((x) => p.has(x)).join(', ')}}`;
}
