// Event payloads and machine contexts as plain JSON for the page and for
// recordings, with secrets taken out on the way: the values of environment
// maps (a manifest's `env`, a start's `environment`, an exec's `env`) and
// token material (`shared`, `token`) never leave the daemon. Everything else
// is bounded (depth, keys, items, string length) and made JSON-safe:
// functions (reply callbacks), actor references, buffers and class instances
// become short descriptions.

export const REDACTED = '‹redacted›';

/** Keys whose whole value is secret. */
// manifestText: a manifest's YAML, env values included.
const SECRET_KEYS = new Set(['shared', 'token', 'password', 'secret', 'key_data', 'manifestText']);
/** Keys whose value is a map of names to secret values: the names stay. */
const SECRET_MAPS = new Set(['env', 'environment']);

const MAX_DEPTH = 8;
const MAX_KEYS = 100;
const MAX_ITEMS = 100;
const MAX_STRING = 2000;

export function redact(value: unknown): unknown {
  return walk(value, 0, new WeakSet());
}

function walk(v: unknown, depth: number, seen: WeakSet<object>): unknown {
  if (v === null || typeof v === 'boolean' || typeof v === 'number') return typeof v === 'number' && !Number.isFinite(v) ? String(v) : v;
  if (typeof v === 'string') return v.length > MAX_STRING ? `${v.slice(0, MAX_STRING)}… (${v.length} chars)` : v;
  if (typeof v === 'bigint') return `${v}n`;
  if (typeof v === 'undefined') return undefined;
  if (typeof v === 'function') return `‹function ${v.name || 'anonymous'}›`;
  if (typeof v === 'symbol') return v.toString();
  const o = v as object;
  if (seen.has(o)) return '‹circular›';
  if (depth >= MAX_DEPTH) return '‹…›';
  if (Buffer.isBuffer(o) || o instanceof Uint8Array) return `‹${o.byteLength} bytes›`;
  if (o instanceof Date) return o.toISOString();
  if (o instanceof Error) return { error: o.message, ...(o.name !== 'Error' ? { name: o.name } : {}) };
  // XState actor references (spawned or invoked children held in context).
  if ('sessionId' in o && 'send' in o && typeof (o as { send: unknown }).send === 'function') return `‹actor ${(o as { id?: string }).id ?? ''}›`;
  seen.add(o);
  try {
    if (Array.isArray(o)) {
      const out = o.slice(0, MAX_ITEMS).map((x) => walk(x, depth + 1, seen) ?? null);
      if (o.length > MAX_ITEMS) out.push(`… ${o.length - MAX_ITEMS} more`);
      return out;
    }
    if (o instanceof Map) return walk(Object.fromEntries([...o.entries()].slice(0, MAX_KEYS).map(([k, x]) => [String(k), x])), depth, seen);
    if (o instanceof Set) return walk([...o].slice(0, MAX_ITEMS), depth, seen);
    const proto = Object.getPrototypeOf(o);
    if (proto !== Object.prototype && proto !== null && !isPlainData(o)) return `‹${proto?.constructor?.name ?? 'object'}›`;
    const out: Record<string, unknown> = {};
    const keys = Object.keys(o);
    for (const k of keys.slice(0, MAX_KEYS)) {
      const x = (o as Record<string, unknown>)[k];
      if (SECRET_KEYS.has(k) && x !== undefined && x !== null) out[k] = REDACTED;
      else if (SECRET_MAPS.has(k) && x && typeof x === 'object' && !Array.isArray(x)) out[k] = Object.fromEntries(Object.keys(x).slice(0, MAX_KEYS).map((name) => [name, REDACTED]));
      else if (SECRET_MAPS.has(k) && Array.isArray(x)) out[k] = x.map(() => REDACTED);
      else {
        const w = walk(x, depth + 1, seen);
        if (w !== undefined) out[k] = w;
      }
    }
    if (keys.length > MAX_KEYS) out['…'] = `${keys.length - MAX_KEYS} more keys`;
    return out;
  } finally {
    seen.delete(o);
  }
}

/** Objects of a class that still read as data (no methods of their own beyond the constructor). */
function isPlainData(o: object): boolean {
  const proto = Object.getPrototypeOf(o) as object;
  return Object.getOwnPropertyNames(proto).every((n) => n === 'constructor');
}
