// Our two manifest keys beyond Northstar: `restart` (a restart policy with an
// intensity limit and exponential backoff) and `health` (a check run inside
// the container). Both are optional; a manifest without them is Northstar's
// and serializes exactly as before. Northstar's parser denies unknown fields,
// so an NPK that uses them does not load on Northstar (docs/deviations.md).
// Decoding, validation and the serde shape of both live here, so the rest of
// the manifest pipeline only calls in.
import { join, map, denyUnknown, int, str } from './manifest-fields.js';
import { Lit } from './manifest-document.js';
import { ManifestError, type HealthCheck, type RestartPolicy, type RestartPolicyName } from './manifest-schema.js';
import { formatDuration, parseDuration, UnitError } from './units.js';

export type { HealthCheck, RestartPolicy, RestartPolicyName } from './manifest-schema.js';

export const RESTART_DEFAULTS: Omit<RestartPolicy, 'policy'> = {
  max_restarts: 5,
  within: 60_000,
  backoff: { initial: 100, max: 30_000, factor: 2 },
  stop_grace: 5_000,
};

export const HEALTH_DEFAULTS: Omit<HealthCheck, 'exec'> = { interval: 10_000, timeout: 2_000, retries: 3, start_period: 5_000 };

const POLICIES: readonly RestartPolicyName[] = ['no', 'on-failure', 'always'];
/** setTimeout's limit (~24.8 days): a longer delay would fire at once. */
const MAX_MS = 2 ** 31 - 1;

function fail(path: string, rule: string): never {
  throw new ManifestError(path, rule);
}

function has(o: Record<string, unknown>, k: string): boolean {
  return Object.hasOwn(o, k) && o[k] !== null && o[k] !== undefined;
}

/** A humantime duration string ("100ms", "1m 30s"), in ms, within setTimeout's range. */
function duration(v: unknown, path: string, min: number): number {
  let ms: number;
  try {
    ms = parseDuration(str(v, path));
  } catch (e) {
    return fail(path, e instanceof UnitError ? e.message : String(e));
  }
  if (ms < min || ms > MAX_MS) fail(path, `must be between ${formatDuration(min)} and ${formatDuration(MAX_MS)}, got ${formatDuration(ms)}`);
  return ms;
}

function count(v: unknown, path: string, min: number, max: number): number {
  return Number(int(v, path, [BigInt(min), BigInt(max)]));
}

function factor(v: unknown, path: string): number {
  const x = v instanceof Lit ? v.value : v;
  const n = typeof x === 'bigint' ? Number(x) : x;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 1 || n > 100) fail(path, 'expected a number from 1 to 100');
  return n;
}

export function decodeRestart(v: unknown, path: string): RestartPolicy {
  const r = map(v, path);
  denyUnknown(r, path, ['policy', 'max_restarts', 'within', 'backoff', 'stop_grace']);
  if (!has(r, 'policy')) fail(join(path, 'policy'), `missing required field (one of: ${POLICIES.join(', ')})`);
  const policy = str(r.policy, join(path, 'policy'));
  if (!(POLICIES as readonly string[]).includes(policy)) fail(join(path, 'policy'), `unknown policy "${policy}", expected one of: ${POLICIES.join(', ')}`);
  const d = RESTART_DEFAULTS;
  const out: RestartPolicy = {
    policy: policy as RestartPolicyName,
    max_restarts: has(r, 'max_restarts') ? count(r.max_restarts, join(path, 'max_restarts'), 0, 1_000_000) : d.max_restarts,
    within: has(r, 'within') ? duration(r.within, join(path, 'within'), 1) : d.within,
    backoff: { ...d.backoff },
    stop_grace: has(r, 'stop_grace') ? duration(r.stop_grace, join(path, 'stop_grace'), 0) : d.stop_grace,
  };
  if (has(r, 'backoff')) {
    const bp = join(path, 'backoff');
    const b = map(r.backoff, bp);
    denyUnknown(b, bp, ['initial', 'max', 'factor']);
    if (has(b, 'initial')) out.backoff.initial = duration(b.initial, join(bp, 'initial'), 0);
    if (has(b, 'max')) out.backoff.max = duration(b.max, join(bp, 'max'), 0);
    if (has(b, 'factor')) out.backoff.factor = factor(b.factor, join(bp, 'factor'));
    if (out.backoff.max < out.backoff.initial) {
      fail(join(bp, 'max'), `must not be less than initial (${formatDuration(out.backoff.initial)}), got ${formatDuration(out.backoff.max)}`);
    }
  }
  return out;
}

export function decodeHealth(v: unknown, path: string): HealthCheck {
  const h = map(v, path);
  denyUnknown(h, path, ['exec', 'interval', 'timeout', 'retries', 'start_period']);
  const ep = join(path, 'exec');
  if (!has(h, 'exec')) fail(ep, 'missing required field (the check command: [/path, args...])');
  if (!Array.isArray(h.exec)) fail(ep, 'expected a sequence: [/path, args...]');
  const exec = h.exec.map((a, i) => str(a, `${ep}[${i}]`));
  if (exec.length === 0) fail(ep, 'must name the check program');
  if (!exec[0]!.startsWith('/')) fail(`${ep}[0]`, `must be an absolute path inside the container, got "${exec[0]}"`);
  const d = HEALTH_DEFAULTS;
  return {
    exec,
    interval: has(h, 'interval') ? duration(h.interval, join(path, 'interval'), 1) : d.interval,
    timeout: has(h, 'timeout') ? duration(h.timeout, join(path, 'timeout'), 1) : d.timeout,
    retries: has(h, 'retries') ? count(h.retries, join(path, 'retries'), 1, 1_000_000) : d.retries,
    start_period: has(h, 'start_period') ? duration(h.start_period, join(path, 'start_period'), 0) : d.start_period,
  };
}

/** A resource has nothing to restart or check. */
export function validateSupervision(m: { init?: string; restart?: RestartPolicy; health?: HealthCheck }): void {
  if (m.init !== undefined) return;
  if (m.restart) fail('restart', 'a resource container (no init) cannot have a restart policy');
  if (m.health) fail('health', 'a resource container (no init) cannot have a health check');
}

/** The serde shape: every field written, durations as humantime strings (parse reads them back). */
export function restartTree(r: RestartPolicy): Record<string, unknown> {
  return {
    policy: r.policy,
    max_restarts: r.max_restarts,
    within: formatDuration(r.within),
    backoff: { initial: formatDuration(r.backoff.initial), max: formatDuration(r.backoff.max), factor: r.backoff.factor },
    stop_grace: formatDuration(r.stop_grace),
  };
}

export function healthTree(h: HealthCheck): Record<string, unknown> {
  return {
    exec: [...h.exec],
    interval: formatDuration(h.interval),
    timeout: formatDuration(h.timeout),
    retries: h.retries,
    start_period: formatDuration(h.start_period),
  };
}
