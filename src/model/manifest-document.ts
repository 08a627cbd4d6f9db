// Reads manifest text into a neutral value tree, trying YAML, then JSON, then
// TOML (Northstar's Manifest::from_str order). The tree is plain JS data plus
// two markers that keep what serde_yaml would see:
//   - Tagged: a YAML local tag (`!fifo {priority: 11}`, `!namespace x`, `!args {...}`),
//     serde_yaml's form of an externally tagged enum variant;
//   - Lit: a plain (unquoted) YAML scalar that resolved to a number, bool or
//     null, with its source text, because serde_yaml hands a plain scalar to a
//     string field as written (`version: 1.0` stays "1.0").
// Integers are bigint (u64 seccomp values exceed 2^53) except from JSON.parse.
import { parse as parseToml } from 'smol-toml';
import { isAlias, isMap, isPair, isScalar, isSeq, parseDocument, type Document, type Node } from 'yaml';
import { ManifestError } from './manifest-schema.js';

export class Tagged {
  constructor(
    readonly tag: string,
    readonly value: unknown,
  ) {}
}

export class Lit {
  constructor(
    readonly value: bigint | number | boolean,
    readonly source: string,
  ) {}
}

export type Format = 'yaml' | 'json' | 'toml';

/**
 * The largest manifest text we read. Real manifests are a few KiB; the yaml
 * library parses well under 1 MB/s on the main thread, so this bounds what
 * one install may cost there (under a second on these machines, measured
 * with 256 KiB of list items or of nested `- `).
 */
export const MAX_DOCUMENT_BYTES = 256 << 10;

/**
 * Flow collections (`[`, `{`) nested deeper than this skip the YAML reader:
 * it overflows its stack at about 800 levels anyway, and takes seconds to get
 * there on a long run of brackets. Counted on the raw text, so brackets inside
 * strings count too, which only a document built to be hostile has this many of.
 */
const MAX_FLOW_DEPTH = 512;

function flowDepth(text: string): number {
  let depth = 0;
  let max = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x5b || c === 0x7b) max = Math.max(max, ++depth);
    else if ((c === 0x5d || c === 0x7d) && depth > 0) depth--;
  }
  return max;
}

/**
 * Nodes the YAML tree may expand to, per byte of text. Without aliases a
 * document has fewer nodes than bytes; nested aliases (`b: &b [*a, *a, ...]`)
 * multiply, so 400 bytes can stand for billions of nodes: an alias bomb.
 */
const NODES_PER_BYTE = 2;
const MIN_NODES = 1024;

/** Counts the nodes fromYaml produces; throws once aliases expand past the bound. */
class Budget {
  private left: number;
  constructor(private readonly limit: number) {
    this.left = limit;
  }
  spend(path: string): void {
    if (--this.left < 0) {
      throw new ManifestError(path, `YAML aliases expand to more than ${this.limit} nodes (an alias bomb?): refused`);
    }
  }
}

/** Sets a key without ever touching the prototype (a manifest may name an env var `__proto__`). */
export function put(obj: Record<string, unknown>, key: string, value: unknown): void {
  Object.defineProperty(obj, key, { value, enumerable: true, writable: true, configurable: true });
}

function isMapping(v: unknown): boolean {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Tagged) && !(v instanceof Lit);
}

function firstLine(e: unknown): string {
  const msg = e instanceof Error ? e.message : String(e);
  return msg.split('\n')[0]!.trim().replace(/:$/, '');
}

/** Parses YAML, then JSON, then TOML; the first that yields a mapping wins. */
export function readDocument(text: string): { value: Record<string, unknown>; format: Format } {
  const size = Buffer.byteLength(text, 'utf8');
  if (size > MAX_DOCUMENT_BYTES) throw new ManifestError('', `the manifest is ${size} bytes, more than ${MAX_DOCUMENT_BYTES}`);
  let yamlError: string;
  const doc = flowDepth(text) > MAX_FLOW_DEPTH ? undefined : parseDocument(text, { intAsBigInt: true, uniqueKeys: false });
  if (doc === undefined) {
    yamlError = `flow collections nested deeper than ${MAX_FLOW_DEPTH}`;
  } else if (doc.errors.length === 0) {
    const value = fromYaml(doc, doc.contents, '', new Budget(MIN_NODES + NODES_PER_BYTE * size));
    if (isMapping(value)) return { value: value as Record<string, unknown>, format: 'yaml' };
    yamlError = 'the document is not a mapping';
  } else {
    yamlError = firstLine(doc.errors[0]);
  }
  try {
    const value: unknown = JSON.parse(text);
    if (isMapping(value)) return { value: value as Record<string, unknown>, format: 'json' };
  } catch {
    // not JSON; TOML is the last resort
  }
  try {
    return { value: parseToml(text, { integersAsBigInt: true }) as Record<string, unknown>, format: 'toml' };
  } catch (e) {
    throw new ManifestError('', `not a YAML, JSON or TOML manifest (YAML: ${yamlError}; TOML: ${firstLine(e)})`);
  }
}

function localTag(node: { tag?: string | undefined }): string | undefined {
  const t = node.tag;
  return t !== undefined && t.startsWith('!') && !t.startsWith('!!') ? t.slice(1) : undefined;
}

// Aliases are resolved here, node by node (the yaml library's maxAliasCount
// guards only its own toJS), so the budget bounds what they expand to.
function fromYaml(doc: Document, node: unknown, path: string, budget: Budget): unknown {
  budget.spend(path);
  if (node === null || node === undefined) return null;
  if (isAlias(node)) return fromYaml(doc, node.resolve(doc), path, budget);
  if (isScalar(node)) {
    const tag = localTag(node);
    const v = node.value;
    let out: unknown;
    if (typeof v === 'string') out = tag !== undefined && v === '' ? null : v;
    else if (v === null || v === undefined) out = null;
    else if (typeof v === 'bigint' || typeof v === 'number' || typeof v === 'boolean') {
      const plain = node.type === 'PLAIN' || node.type === undefined;
      out = plain ? new Lit(v, node.source ?? String(v)) : v;
    } else out = v;
    return tag === undefined ? out : new Tagged(tag, out);
  }
  if (isMap(node)) {
    const obj: Record<string, unknown> = {};
    for (const pair of node.items) {
      if (!isPair(pair)) continue;
      const key = fromYaml(doc, pair.key, path, budget);
      const k = key instanceof Lit ? key.source : key;
      if (typeof k !== 'string') throw new ManifestError(path, `map keys must be strings, got ${JSON.stringify(String(k))}`);
      const p = path === '' ? k : `${path}.${k}`;
      // serde_with maps_duplicate_key_is_error (mounts, rlimits) and serde's duplicate field error.
      if (Object.hasOwn(obj, k)) throw new ManifestError(p, 'duplicate key');
      put(obj, k, fromYaml(doc, pair.value, p, budget));
    }
    const tag = localTag(node);
    return tag === undefined ? obj : new Tagged(tag, obj);
  }
  if (isSeq(node)) {
    const arr = node.items.map((item, i) => fromYaml(doc, item as Node, `${path}[${i}]`, budget));
    const tag = localTag(node);
    return tag === undefined ? arr : new Tagged(tag, arr);
  }
  return null;
}
