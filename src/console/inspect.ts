// The console's answer to `inspect`: the runtime's data (model/container-data.ts)
// in the wire's shape, once, for what the client asked. Server side only: it
// serializes the manifest, which the client library need not load. Main thread.
import { manifestToJson } from '../model/manifest.js';
import type { Inspected } from './backend.js';
import type { ContainerData } from './protocol.js';

/**
 * The wire's ContainerData of the runtime's inspect answer, in serde field
 * order. `extended` (the request named `statistics`, our extension): with our
 * additions. Without, a Northstar client gets Northstar's ContainerData only,
 * and the manifest without our keys, which it would refuse (deny_unknown_fields).
 */
export function inspectToWire(d: Inspected, extended: boolean): ContainerData {
  const { restart: _restart, health: _health, ...northstar } = d.manifest;
  const out: ContainerData = {
    manifest: manifestToJson(extended ? d.manifest : northstar),
    repository: d.repository,
    mounted: d.mounted,
    // Northstar's Process.statistics is not optional: unreadable statistics go out as {}.
    process: d.process ? { pid: d.process.pid, uptime: d.process.uptime, statistics: d.process.statistics ?? {} } : null,
  };
  if (!extended) return out;
  out.startup = d.startup ?? null;
  out.state = d.state;
  if (d.restarts) {
    const r = d.restarts;
    out.restarts = { count: r.count, last_reason: r.lastReason, next_attempt_ms: r.nextAttemptMs, gave_up: r.gaveUp };
  }
  if (d.health !== undefined) out.health = d.health && { status: d.health.status, failures: d.health.failures };
  if (d.network !== undefined) out.network = d.network;
  return out;
}
