// Builds the example containers: compiles each examples/<name>/main.c as a
// static executable (no host /lib binds needed) into a staging root, copies
// examples/<name>/root/ when present, and packs an NPK signed with the example
// key into the output directory (default examples/out/repository).
//
//   node --import tsx scripts/build-examples.ts [--out <dir>] [--only a,b]
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

import { parseManifest } from '../src/model/manifest.js';
import { packNpk } from '../src/packer/pack.js';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const examplesDir = join(root, 'examples');
export const exampleKey = join(examplesDir, 'keys', 'northstar.key');
export const examplePublicKey = join(examplesDir, 'keys', 'northstar.pub');

/** Example directories (those with a manifest). */
export function exampleNames(): string[] {
  return readdirSync(examplesDir)
    .filter((n) => existsSync(join(examplesDir, n, 'manifest.yaml')))
    .sort();
}

function compile(src: string, out: string): void {
  execFileSync(
    'cc',
    ['-static', '-O2', '-D_GNU_SOURCE', '-Wall', '-I', join(examplesDir, 'lib'), '-o', out, src, '-lpthread'],
    { stdio: ['ignore', 'inherit', 'inherit'] },
  );
}

/** Builds one example's NPK into `outDir`; returns its path. */
export async function buildExample(name: string, outDir: string, staging: string): Promise<string> {
  const dir = join(examplesDir, name);
  const manifestPath = join(dir, 'manifest.yaml');
  const manifest = parseManifest(readFileSync(manifestPath, 'utf8'));
  const stage = join(staging, name);
  rmSync(stage, { recursive: true, force: true });
  mkdirSync(stage, { recursive: true });
  if (existsSync(join(dir, 'root'))) cpSync(join(dir, 'root'), stage, { recursive: true });
  if (existsSync(join(dir, 'main.c'))) {
    if (!manifest.init) throw new Error(`examples/${name}: main.c but no init in the manifest`);
    compile(join(dir, 'main.c'), join(stage, manifest.init));
  }
  const packed = await packNpk({ manifestPath, root: stage, out: outDir, key: exampleKey });
  return packed.path;
}

export async function buildExamples(outDir: string, only?: string[]): Promise<string[]> {
  mkdirSync(outDir, { recursive: true });
  const staging = join(root, 'examples', 'out', 'staging');
  const names = exampleNames().filter((n) => !only || only.includes(n));
  const built: string[] = [];
  for (const name of names) built.push(await buildExample(name, outDir, staging));
  rmSync(staging, { recursive: true, force: true });
  return built;
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values } = parseArgs({ options: { out: { type: 'string' }, only: { type: 'string' } } });
  const out = resolve(values.out ?? join(examplesDir, 'out', 'repository'));
  const built = await buildExamples(out, values.only?.split(','));
  for (const b of built) console.log(b);
}
