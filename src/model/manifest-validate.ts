// The semantic rules of Northstar's manifest validation (validation.rs, sched.rs,
// network.rs, seccomp.rs, selinux.rs), plus our deviation: round_robin validates
// like fifo (spec/README.md #2). Throws a ManifestError naming the first problem.
import { checkName, IdError, parseVersion } from './container-id.js';
import { CAPABILITIES, LIMITS, ManifestError, RESERVED_ENV } from './manifest-schema.js';
import type { Manifest, Mount, SchedPolicy, Seccomp } from './manifest-schema.js';
import { validateSupervision } from './manifest-supervision.js';
import { componentProblem } from './safe-path.js';
import { canonicalVersionReq } from './version-req.js';

function fail(path: string, rule: string): never {
  throw new ManifestError(path, rule);
}

const bytes = (s: string): number => Buffer.byteLength(s, 'utf8');

export function validate(m: Manifest): void {
  checkIds(m);
  checkInit(m);
  checkEnv(m.env);
  for (const id of ['uid', 'gid'] as const) {
    if (!Number.isInteger(m[id]) || m[id] < 1 || m[id] > 65535) fail(id, `must be 1..=65535 (root is not allowed), got ${m[id]}`);
  }
  if (m.sched) checkPolicy(m.sched.policy);
  checkMounts(m.mounts);
  if (m.network !== undefined && m.network !== 'host') {
    const ns = m.network.namespace;
    if (bytes(ns) > LIMITS.netnsLength) fail('network.namespace', `network namespace name exceeds ${LIMITS.netnsLength} characters`);
    // The name is a file in /run/netns: one path component, never a way out of it.
    const bad = componentProblem(ns);
    if (bad !== undefined) fail('network.namespace', `invalid network namespace name ${JSON.stringify(ns)}: ${bad}`);
  }
  checkSockets(m.sockets);
  if (m.seccomp) checkSeccomp(m.seccomp);
  if (m.selinux) {
    for (const key of ['mount_context', 'exec'] as const) {
      const ctx = m.selinux[key];
      if (ctx !== undefined) checkSelinuxContext(ctx, `selinux.${key}`);
    }
  }
  checkSet(m.capabilities, 'capabilities');
  m.capabilities.forEach((c, i) => {
    if (!(CAPABILITIES as readonly string[]).includes(c)) fail(`capabilities[${i}]`, `unknown capability "${c}"`);
  });
  checkSuppl(m.suppl_groups);
  checkResource(m);
  validateSupervision(m);
}

function checkIds(m: Manifest): void {
  try {
    checkName(m.name);
  } catch (e) {
    fail('name', e instanceof IdError ? e.message : String(e));
  }
  try {
    if (parseVersion(m.version) !== m.version) fail('version', `must be normalized to major.minor.patch, got "${m.version}"`);
  } catch (e) {
    if (e instanceof ManifestError) throw e;
    fail('version', e instanceof IdError ? e.message : String(e));
  }
}

function checkInit(m: Manifest): void {
  if (m.init === undefined) return;
  const n = [...m.init].length;
  if (n < 1 || n > LIMITS.initLength) fail('init', `length must be 1..=${LIMITS.initLength} characters, got ${n}`);
  if (m.init.includes('\0')) fail('init', 'must not contain a NUL character');
}

function checkEnv(env: Record<string, string>): void {
  const keys = Object.keys(env);
  if (keys.length > LIMITS.envEntries) fail('env', `at most ${LIMITS.envEntries} entries are allowed, got ${keys.length}`);
  for (const k of keys) {
    if (bytes(k) > LIMITS.envKeyLength) fail(`env.${k}`, `variable name exceeds ${LIMITS.envKeyLength} bytes`);
    if (bytes(env[k]!) > LIMITS.envValueLength) fail(`env.${k}`, `value exceeds ${LIMITS.envValueLength} bytes`);
    if ((RESERVED_ENV as readonly string[]).includes(k)) {
      fail(`env.${k}`, `reserved variable name (the runtime sets ${RESERVED_ENV.join(', ')})`);
    }
  }
}

function checkPolicy(p: SchedPolicy): void {
  if (typeof p === 'string') return;
  if ('other' in p || 'batch' in p) {
    const [name, { nice }] = 'other' in p ? ['other', p.other] : ['batch', p.batch];
    if (!Number.isInteger(nice) || nice < -20 || nice > 19) fail(`sched.policy.${name}.nice`, `nice must be -20..=19, got ${nice}`);
    return;
  }
  // Deviation (spec/README.md #2): Northstar rejects every round_robin policy; we validate it like fifo.
  const [name, { priority }] = 'fifo' in p ? ['fifo', p.fifo] : ['round_robin', p.round_robin];
  if (!Number.isInteger(priority) || priority < 1 || priority > 99) {
    fail(`sched.policy.${name}.priority`, `${name} priority must be 1..=99, got ${priority}`);
  }
}

/** Path components as Rust's Path::components sees them ("/a//b/." → ["/", "a", "b"]). */
function components(p: string): string[] {
  const parts = p.split('/').filter((c, i) => c !== '' && !(c === '.' && i > 0));
  return p.startsWith('/') ? ['/', ...parts] : parts;
}

/** A socket name is part of a file name in socket_dir, created and chowned by the runtime. */
function checkSockets(sockets: Record<string, unknown>): void {
  for (const name of Object.keys(sockets)) {
    const bad = componentProblem(name);
    if (bad !== undefined) fail(`sockets.${name}`, `invalid socket name ${JSON.stringify(name)}: ${bad}`);
  }
}

/**
 * A path inside a container root: absolute, without `..` or NUL. Targets are
 * joined to the root on the host before pivot_root, and a resource's dir to
 * the resource's root: `..` would climb out of either.
 */
function checkRootPath(p: string, path: string, what: string): void {
  if (!p.startsWith('/')) fail(path, `${what} must be absolute, got ${JSON.stringify(p)}`);
  if (p.includes('\0')) fail(path, `${what} must not contain a NUL character`);
  if (p.split('/').includes('..')) fail(path, `${what} must not contain "..", got ${JSON.stringify(p)}`);
}

function checkMounts(mounts: Record<string, Mount>): void {
  // Deviation: Northstar checks only bind targets, and only that they are
  // absolute; a relative or `..` target of any type failed only at start.
  for (const t of Object.keys(mounts)) if (mounts[t]!.type !== 'bind') checkRootPath(t, `mounts.${t}`, 'mount target');
  const binds = Object.keys(mounts).filter((t) => mounts[t]!.type === 'bind').sort();
  for (const t of binds) {
    if (!t.startsWith('/')) fail(`mounts.${t}`, 'bind mount target must be absolute');
    checkRootPath(t, `mounts.${t}`, 'bind mount target');
  }
  // Northstar compares each sorted target with the previous one only, which misses
  // "/lib" vs "/lib/a" when "/lib-x" sorts between them; we compare every pair.
  // "/" itself never counts as a prefix (as in Northstar).
  const comps = binds.map(components);
  for (let j = 0; j < binds.length; j++) {
    for (let i = 0; i < binds.length; i++) {
      const a = comps[i]!;
      const b = comps[j]!;
      if (i === j || a.length <= 1 || a.length > b.length) continue;
      if (a.every((c, k) => c === b[k])) fail(`mounts.${binds[j]}`, `bind mount target overlaps ${binds[i]}`);
    }
  }
  for (const [target, m] of Object.entries(mounts)) {
    if (m.type !== 'resource') continue;
    if (m.options.includes('rec')) fail(`mounts.${target}.options`, 'rec is not allowed on a resource mount (non-bind mounts must not be recursive)');
    if (!m.dir.startsWith('/')) fail(`mounts.${target}.dir`, `resource directory must be absolute, got "${m.dir}"`);
    checkRootPath(m.dir, `mounts.${target}.dir`, 'resource directory');
    try {
      canonicalVersionReq(m.version);
    } catch (e) {
      fail(`mounts.${target}.version`, e instanceof Error ? e.message : String(e));
    }
    try {
      checkName(m.name);
    } catch (e) {
      fail(`mounts.${target}.name`, e instanceof Error ? e.message : String(e));
    }
  }
}

function checkSeccomp(s: Seccomp): void {
  for (const [sys, rule] of Object.entries(s.allow ?? {})) {
    if (rule === 'any') continue;
    const p = `seccomp.allow.${sys}.args`;
    const { index, values, mask } = rule.args;
    if (!Number.isInteger(index) || index < 0 || index > LIMITS.seccompArgIndex) {
      fail(`${p}.index`, `argument index must be 0..=${LIMITS.seccompArgIndex} (seccomp_data has 6 arguments), got ${index}`);
    }
    if (values === undefined && mask === undefined) fail(p, "either 'values' or 'mask' must be given");
    if (values !== undefined && values.length > LIMITS.seccompArgValues) {
      fail(`${p}.values`, `at most ${LIMITS.seccompArgValues} values are allowed, got ${values.length}`);
    }
  }
}

function checkSelinuxContext(ctx: string, path: string): void {
  if (ctx.length === 0) fail(path, 'must not be empty');
  if (bytes(ctx) >= LIMITS.selinuxContextLength) fail(path, `context must be shorter than ${LIMITS.selinuxContextLength} bytes`);
  const bad = [...ctx].find((c) => !/^[A-Za-z0-9:_]$/.test(c));
  if (bad !== undefined) fail(path, `invalid character ${JSON.stringify(bad)}: only [A-Za-z0-9:_] are allowed`);
}

function checkSet(items: string[], path: string): void {
  const seen = new Set<string>();
  for (const s of items) {
    if (seen.has(s)) fail(path, `duplicate entry "${s}"`);
    seen.add(s);
  }
}

function checkSuppl(groups: string[]): void {
  checkSet(groups, 'suppl_groups');
  if (groups.length > LIMITS.supplGroups) fail('suppl_groups', `at most ${LIMITS.supplGroups} groups are allowed, got ${groups.length}`);
  groups.forEach((g, i) => {
    if (bytes(g) > LIMITS.supplGroupLength) fail(`suppl_groups[${i}]`, `group name exceeds ${LIMITS.supplGroupLength} bytes`);
  });
}

/** A resource container (no init) must not define what only a running process uses. */
function checkResource(m: Manifest): void {
  if (m.init !== undefined) return;
  const defined: [string, boolean][] = [
    ['args', m.args.length > 0],
    ['env', Object.keys(m.env).length > 0],
    ['autostart', m.autostart !== undefined],
    ['cgroups', m.cgroups !== undefined],
    ['seccomp', m.seccomp !== undefined],
    ['capabilities', m.capabilities.length > 0],
    ['suppl_groups', m.suppl_groups.length > 0],
    ['io', m.io !== undefined],
  ];
  for (const [field, set] of defined) {
    if (set) fail(field, 'a resource container (no init) must not define args, env, autostart, cgroups, seccomp, capabilities, suppl_groups or io');
  }
}
