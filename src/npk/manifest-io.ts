// The manifest as the NPK code sees it: parse + validate of manifest text
// (the model's parseManifest: YAML, then JSON, then TOML), errors turned into
// NpkError naming the file; and Northstar's serde_yaml form for packing.
import { manifestToYaml, parseManifest, type Manifest } from '../model/manifest.js';
import { NpkError } from './error.js';

/** Parses and validates manifest text. Throws NpkError('npk_manifest') naming `what`. */
export function parseManifestText(text: string, what = 'manifest.yaml'): Manifest {
  try {
    return parseManifest(text);
  } catch (e) {
    throw new NpkError('npk_manifest', `${what}: ${(e as Error).message}`, { cause: e });
  }
}

/** Northstar's serde_yaml form of `m`: what manifest.yaml inside an NPK holds. */
export function manifestYaml(m: Manifest): string {
  return manifestToYaml(m);
}
