// The runtime's notifications: what the supervisor tells its subscribers,
// in the runtime's own words. The console turns each into Northstar's wire
// shape (spec/console.md §4.3) or an extension's, in one function
// (notificationToWire, src/console/protocol.ts). Types only.
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
  /** The runtime is going down: the last notification. */
  | { type: 'shutdown' }
  | { type: 'started'; container: string }
  | { type: 'exit'; container: string; status: ExitStatus }
  | { type: 'install'; container: string }
  | { type: 'uninstall'; container: string }
  /** A cgroup memory event (OOM, or a limit reached). */
  | { type: 'memory'; container: string; memory: MemoryEvent }
  /** The restart policy restarts the container after `delayMs`. */
  | { type: 'restarting'; container: string; attempt: number; delayMs: number; reason: string }
  /** The restart policy stopped restarting after `restarts` restarts. */
  | { type: 'gave_up'; container: string; restarts: number; reason: string }
  /** The health check changed its verdict. */
  | { type: 'health'; container: string; status: 'healthy' | 'unhealthy' };
