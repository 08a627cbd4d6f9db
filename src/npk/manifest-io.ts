// The manifest as the NPK code sees it: parse + validate of manifest.yaml
// text, and its re-serialization when packing. The real implementation is
// the model's (src/model/manifest.ts). Until it lands there, a minimal local
// stand-in keeps the NPK code usable.
// TODO(npk): drop the stand-in once parseManifest/manifestToYaml are on main.
import { parse, stringify } from 'yaml';
import semver from 'semver';

import * as model from '../model/manifest.js';
import type { Manifest, Mount, MountOption } from '../model/manifest.js';
import { NpkError } from './error.js';

type ModelFns = Partial<Pick<typeof model, 'parseManifest' | 'manifestToYaml'>>;
const fns = model as ModelFns;

/** Parses and validates manifest text (YAML, JSON or TOML). Throws NpkError('npk_manifest'). */
export function parseManifestText(text: string, what = 'manifest.yaml'): Manifest {
  try {
    return typeof fns.parseManifest === 'function' ? fns.parseManifest(text) : fallbackParse(text);
  } catch (e) {
    if (e instanceof NpkError) throw e;
    throw new NpkError('npk_manifest', `${what}: ${(e as Error).message}`, { cause: e });
  }
}

/** Northstar's serde_yaml form of `m`: what manifest.yaml inside an NPK holds. */
export function manifestYaml(m: Manifest): string {
  return typeof fns.manifestToYaml === 'function' ? fns.manifestToYaml(m) : fallbackYaml(m);
}

const NAME = /^[0-9A-Za-z._-]{1,1024}$/;

function fallbackParse(text: string): Manifest {
  const raw = parse(text, { logLevel: 'silent' }) as Record<string, unknown> | null;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new Error('not a YAML mapping');
  const name = raw.name;
  if (typeof name !== 'string' || !NAME.test(name)) throw new Error(`invalid name ${JSON.stringify(name)}`);
  const v = semver.parse(String(raw.version ?? ''));
  if (!v) throw new Error(`invalid version ${JSON.stringify(raw.version)}`);
  for (const k of ['uid', 'gid'] as const) {
    const n = raw[k];
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 65535) throw new Error(`${k} must be an integer in 1..=65535`);
  }
  const mounts: Record<string, Mount> = {};
  for (const [target, m] of Object.entries((raw.mounts ?? {}) as Record<string, Record<string, unknown>>)) {
    const options = typeof m.options === 'string' ? (m.options.split(',').map((s) => s.trim()).filter(Boolean) as MountOption[]) : [];
    mounts[target] = { ...m, ...('host' in m || m.type === 'resource' ? { options } : {}) } as Mount;
  }
  return {
    ...(raw as object),
    name,
    version: `${v.major}.${v.minor}.${v.patch}`,
    args: (raw.args as string[]) ?? [],
    env: (raw.env as Record<string, string>) ?? {},
    mounts,
    capabilities: (raw.capabilities as string[]) ?? [],
    suppl_groups: (raw.suppl_groups as string[]) ?? [],
    rlimits: (raw.rlimits as Manifest['rlimits']) ?? {},
    sockets: (raw.sockets as Manifest['sockets']) ?? {},
  } as Manifest;
}

function fallbackYaml(m: Manifest): string {
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(m)) {
    if (v === undefined) continue;
    if (Array.isArray(v) && v.length === 0) continue;
    if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0) continue;
    out[k] = v;
  }
  if (out.mounts) {
    out.mounts = Object.fromEntries(
      Object.entries(m.mounts).map(([t, mt]) => {
        if (!('options' in mt)) return [t, mt];
        const { options, ...rest } = mt;
        return [t, options.length ? { ...rest, options: options.join(',') } : rest];
      }),
    );
  }
  return stringify(out);
}
