// Version requirements as Northstar writes them: the Rust `semver` crate's
// VersionReq, which is NOT node-semver's range syntax:
//   - comparators are separated by commas (">=1.0.0, <2.0.0"); node-semver wants spaces;
//   - a bare version means caret ("1.2.3" = "^1.2.3"); in node-semver it means exactly 1.2.3;
//   - there is no "||" and no hyphen range ("1.0.0 - 2.0.0").
// Resolve resource requirements with these helpers, never with semver.satisfies on
// the raw string.
import semver from 'semver';

export class VersionReqError extends Error {
  override name = 'VersionReqError';
}

const COMPARATOR = /^(=|>=|<=|>|<|~|\^)?\s*([0-9*xX][0-9A-Za-z.*-]*)$/;

interface Comparator {
  op: string;
  version: string;
}

function comparators(req: string): Comparator[] {
  if (typeof req !== 'string' || req.trim() === '') throw new VersionReqError(`invalid version requirement "${req}": empty`);
  if (req.trim() === '*') return [{ op: '', version: '*' }];
  return req.split(',').map((part) => {
    const m = COMPARATOR.exec(part.trim());
    if (!m) throw new VersionReqError(`invalid version requirement "${req}": cannot read comparator "${part.trim()}"`);
    const version = m[2]!.replace(/[xX]/g, '*');
    const wildcard = version.includes('*');
    const op = m[1] ?? (wildcard ? '' : '^');
    if (semver.validRange(op + version) === null) throw new VersionReqError(`invalid version requirement "${req}": "${part.trim()}" is not a version comparator`);
    return { op, version };
  });
}

/** Checks a requirement and returns its canonical form, as Rust's VersionReq displays it ("1.2.3" → "^1.2.3"). */
export function canonicalVersionReq(req: string): string {
  return comparators(req).map((c) => c.op + c.version).join(', ');
}

/** The node-semver range with the same meaning ("1.2.3, <2" → "^1.2.3 <2"). */
export function versionReqRange(req: string): string {
  return comparators(req).map((c) => c.op + c.version).join(' ');
}

/** True if the version satisfies the Northstar requirement. */
export function satisfiesReq(version: string, req: string): boolean {
  return semver.satisfies(version, versionReqRange(req));
}

/** The highest version that satisfies the requirement (spec/README.md deviation 1), or null. */
export function maxSatisfyingReq(versions: readonly string[], req: string): string | null {
  return semver.maxSatisfying([...versions], versionReqRange(req));
}
