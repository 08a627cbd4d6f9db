// Paths built from outside input: container names and versions, socket names,
// netns names, resource directories. A manifest or a console client chooses
// them; the runtime mkdirs, chowns, binds and removes what they name, as root.
// So every such path is built here, and a result that would leave its base
// directory is an error, never a path.
import { isAbsolute, join, relative } from 'node:path';

export class PathError extends Error {
  override name = 'PathError';
}

/**
 * Checks one path component from outside input: non-empty, no '/', no NUL,
 * not '.' or '..'. Returns it; throws PathError naming `what` and the rule.
 */
export function checkComponent(s: string, what = 'name'): string {
  const bad = componentProblem(s);
  if (bad !== undefined) throw new PathError(`invalid ${what} ${JSON.stringify(s)}: ${bad}`);
  return s;
}

/** Why `s` is not a single path component, or undefined when it is one. */
export function componentProblem(s: string): string | undefined {
  if (s.length === 0) return 'must not be empty';
  if (s.includes('\0')) return 'must not contain a NUL character';
  if (s.includes('/')) return "must not contain '/'";
  if (s === '.' || s === '..') return `must not be "${s}"`;
  return undefined;
}

/**
 * `base` joined with `parts` (absolute parts are taken relative to base, as
 * path.join does). The result is `base` itself or below it; anything else
 * (`..` climbing out) throws PathError.
 */
export function within(base: string, ...parts: string[]): string {
  for (const p of parts) {
    if (p.includes('\0')) throw new PathError(`invalid path ${JSON.stringify(p)} under ${base}: must not contain a NUL character`);
  }
  const out = join(base, ...parts);
  const rel = relative(base, out);
  if (rel === '..' || rel.startsWith('../') || isAbsolute(rel)) {
    throw new PathError(`path ${JSON.stringify(parts.join('/'))} leaves ${base}`);
  }
  return out;
}

/** `base/<name>` for a single component `name` (checked with checkComponent). */
export function child(base: string, name: string, what = 'name'): string {
  return within(base, checkComponent(name, what));
}
