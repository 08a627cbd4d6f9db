// Container names, versions and ids (spec/npk.md §0).
import semver from 'semver';

export class IdError extends Error {
  override name = 'IdError';
}

const NAME = /^[0-9A-Za-z._-]{1,1024}$/;

/** Checks a container name; returns it or throws IdError naming the rule. */
export function checkName(name: string): string {
  if (name.length < 1 || name.length > 1024) throw new IdError(`invalid name "${name}": length must be 1..=1024`);
  if (!NAME.test(name)) throw new IdError(`invalid name "${name}": only [0-9A-Za-z._-] are allowed`);
  // Deviation 19 (spec/README.md): Northstar's character class lets these two
  // through, but a name is a directory under data_dir and run_dir.
  if (name === '.' || name === '..') throw new IdError(`invalid name "${name}": "." and ".." are not allowed`);
  return name;
}

/** Parses a semver version and keeps major.minor.patch only (pre-release and build dropped). */
export function parseVersion(v: string): string {
  const p = semver.parse(String(v).trim());
  if (!p) throw new IdError(`invalid version "${v}"`);
  return `${p.major}.${p.minor}.${p.patch}`;
}

/** Checks a semver requirement such as ">=0.0.1". */
export function checkVersionReq(r: string): string {
  if (semver.validRange(r) === null) throw new IdError(`invalid version requirement "${r}"`);
  return r;
}

export interface ContainerId {
  name: string;
  version: string;
}

/** "name:version", split on the first ':' ("foo:0.0.1:default" fails). */
export function parseContainerId(s: string): ContainerId {
  const i = s.indexOf(':');
  if (i < 0) throw new IdError(`invalid container id "${s}": expected <name>:<version>`);
  return { name: checkName(s.slice(0, i)), version: parseVersion(s.slice(i + 1)) };
}

export function containerId(name: string, version: string): string {
  return `${name}:${version}`;
}

/** Orders versions ascending. */
export function compareVersions(a: string, b: string): number {
  return semver.compare(a, b);
}
