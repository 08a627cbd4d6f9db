// The runtime's notifications (spec/console.md §4.3) in Northstar's serde shape,
// which the supervisor emits and the console sends as they are: one type for
// both, here below them. Types and one predicate.
import type { ExitStatus } from './errors.js';

/** A cgroup memory event: the counters of memory.events (cgroup v2) or the OOM count (v1); null when unknown. */
export interface MemoryEvent {
  low: number | null;
  high: number | null;
  max: number | null;
  oom: number | null;
  oom_kill: number | null;
}

/** Containers are named "name:version". */
export type Notification =
  | 'shutdown'
  | { started: string }
  | { exit: [string, ExitStatus] }
  | { install: string }
  | { uninstall: string }
  | { c_group: [string, { memory: MemoryEvent }] }
  // Extension `supervision` (restart policy and health check): the console sends
  // these only to clients that name it in `connect.extensions`.
  | { restarting: [string, { attempt: number; delay_ms: number; reason: string }] }
  | { gave_up: [string, { restarts: number; reason: string }] }
  | { healthy: string }
  | { unhealthy: string };

/** The extension a notification variant belongs to; undefined for Northstar's own. */
export function notificationExtension(n: Notification): string | undefined {
  if (typeof n !== 'object') return undefined;
  return 'restarting' in n || 'gave_up' in n || 'healthy' in n || 'unhealthy' in n ? 'supervision' : undefined;
}
