// The runtime's answer to `inspect`: what it knows of one container, in its
// own words. The supervisor assembles it (machines/supervisor-requests.ts);
// the console turns it into Northstar's ContainerData and our extensions for
// the client that asked (inspectToWire, console/protocol.ts). Types only.
import type { Manifest } from './manifest.js';

export interface ContainerData {
  container: string;
  manifest: Manifest;
  repository: string;
  mounted: boolean;
  /** null when not started. */
  process: ProcessStatus | null;
  /** The container machine's state, e.g. "started.running". */
  state: string;
  /** Startup phases of the last start, in ms (resolve, mount, spawn, setup, cgroups, gate_wait, exec, total). */
  startup?: Record<string, number>;
  /** With a manifest `restart` policy: restarts since the last start request, and the next one due. */
  restarts?: RestartStatus;
  /** With a manifest `health` check: its state while running (null otherwise). */
  health?: { status: 'starting' | 'healthy' | 'unhealthy'; failures: number } | null;
}

export interface ProcessStatus {
  pid: number;
  /** Nanoseconds since the container process started. */
  uptime: number;
  /** Statistics by category ("cpu", "memory", ...); null when they could not be read. */
  statistics: Record<string, unknown> | null;
}

export interface RestartStatus {
  count: number;
  /** Why the last restart (or the give-up) happened: "Exit(1)", "Signalled(SIGSEGV)", "unhealthy". */
  lastReason: string | null;
  /** ms until the restart that is due, or null. */
  nextAttemptMs: number | null;
  /** The policy gave up: the container stays down until a start request. */
  gaveUp: boolean;
}
