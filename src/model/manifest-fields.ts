// The field readers every manifest decoder shares (manifest-decode.ts and
// manifest-supervision.ts): serde's type checks with errors that name the
// field path.
import { Lit, Tagged } from './manifest-document.js';
import { ManifestError } from './manifest-schema.js';

export type Obj = Record<string, unknown>;

export function fail(path: string, rule: string): never {
  throw new ManifestError(path, rule);
}

export function join(path: string, key: string): string {
  return path === '' ? key : `${path}.${key}`;
}

export function describe(v: unknown): string {
  if (v === null || v === undefined) return 'null';
  if (v instanceof Tagged) return `a tagged value !${v.tag}`;
  if (v instanceof Lit) return describe(v.value);
  if (typeof v === 'string') return `the string ${JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)}`;
  if (typeof v === 'bigint') return `the integer ${v}`;
  if (typeof v === 'number') return Number.isInteger(v) ? `the integer ${v}` : `the number ${v}`;
  if (typeof v === 'boolean') return `the boolean ${v}`;
  if (Array.isArray(v)) return 'a sequence';
  return 'a map';
}

/** A string; plain YAML scalars that look like numbers or bools are taken as written (serde_yaml does so). */
export function str(v: unknown, path: string): string {
  const s = v instanceof Lit ? v.source : v;
  if (typeof s !== 'string') fail(path, `expected a string, got ${describe(v)}`);
  if (s.includes('\0')) fail(path, 'must not contain a NUL character');
  return s;
}

export function int(v: unknown, path: string, [min, max]: readonly [bigint, bigint]): bigint {
  const x = v instanceof Lit ? v.value : v;
  let n: bigint;
  if (typeof x === 'bigint') n = x;
  else if (typeof x === 'number' && Number.isInteger(x)) n = BigInt(x);
  else fail(path, `expected an integer, got ${describe(v)}`);
  if (n < min || n > max) fail(path, `integer ${n} out of range ${min}..=${max}`);
  return n;
}

export function map(v: unknown, path: string): Obj {
  if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Tagged || v instanceof Lit) {
    fail(path, `expected a map, got ${describe(v)}`);
  }
  return v as Obj;
}

/** serde's deny_unknown_fields: names the first unknown key and what is allowed. */
export function denyUnknown(obj: Obj, path: string, allowed: readonly string[]): void {
  for (const k of Object.keys(obj)) {
    if (!allowed.includes(k)) fail(join(path, k), `unknown field, expected one of: ${allowed.join(', ')}`);
  }
}
