// signature.yaml (spec/npk.md §1.3): two YAML documents separated by `---`.
// The first (hashes of comment, manifest and the verity root) is the signed
// payload, byte for byte; the second holds the base64 ed25519 signature.
import { createHash } from 'node:crypto';

import { parse } from 'yaml';

import { NpkError } from './error.js';
import { signEd25519, verifyEd25519 } from './keys.js';

export interface Signature {
  /** sha256 of the zip comment, lowercase hex. */
  metaHash: string;
  /** sha256 of manifest.yaml, lowercase hex. */
  manifestHash: string;
  /** dm-verity root hash, lowercase hex. */
  verityHash: string;
  /** Offset of the verity superblock inside fs.img (the squashfs size). */
  verityOffset: number;
  /** The signed text: the first document including its trailing newline. */
  signed: string;
  /** The raw 64-byte signature. */
  signature: Buffer;
}

export function sha256Hex(data: Buffer | string): string {
  return createHash('sha256').update(data).digest('hex');
}

function sigError(message: string): NpkError {
  return new NpkError('npk_signature', `signature.yaml: ${message}`);
}

/** The first document exactly as Northstar's serde_yaml writes it. */
export function hashesDocument(h: { metaHash: string; manifestHash: string; verityHash: string; verityOffset: number }): string {
  return (
    `meta:\n  hash: ${h.metaHash}\n` +
    `manifest.yaml:\n  hash: ${h.manifestHash}\n` +
    `fs.img:\n  verity-hash: ${h.verityHash}\n  verity-offset: ${h.verityOffset}\n`
  );
}

/** Builds and signs signature.yaml (no trailing newline after the signature, like Northstar). */
export function buildSignature(
  h: { metaHash: string; manifestHash: string; verityHash: string; verityOffset: number },
  seed: Buffer,
): string {
  const doc = hashesDocument(h);
  const sig = signEd25519(seed, Buffer.from(doc, 'utf8'));
  return `${doc}---\nsignature: ${sig.toString('base64')}`;
}

const HEX64 = /^[0-9a-fA-F]{64}$/;

function field(obj: unknown, path: string[]): unknown {
  let cur = obj;
  for (const k of path) {
    if (cur === null || typeof cur !== 'object' || !(k in cur)) throw sigError(`missing ${path.join('.')}`);
    cur = (cur as Record<string, unknown>)[k];
  }
  return cur;
}

function hexField(obj: unknown, path: string[]): string {
  const v = field(obj, path);
  if (typeof v !== 'string' || !HEX64.test(v)) throw sigError(`${path.join('.')} is not a sha256 hex digest`);
  return v.toLowerCase();
}

/** Parses signature.yaml without checking the signature. */
export function parseSignature(text: string): Signature {
  const sep = text.indexOf('---');
  if (sep < 0) throw sigError('no "---" between the hashes and the signature');
  const signed = text.slice(0, sep);
  let hashes: unknown;
  let sigDoc: unknown;
  try {
    hashes = parse(signed);
    sigDoc = parse(text.slice(sep + 3));
  } catch (e) {
    throw sigError(`not YAML: ${(e as Error).message}`);
  }
  const offset = field(hashes, ['fs.img', 'verity-offset']);
  if (typeof offset !== 'number' || !Number.isSafeInteger(offset) || offset < 0) {
    throw sigError('fs.img.verity-offset is not a non-negative integer');
  }
  const b64 = field(sigDoc, ['signature']);
  if (typeof b64 !== 'string' || !/^[A-Za-z0-9+/]+={0,2}$/.test(b64.trim())) throw sigError('signature is not base64');
  const signature = Buffer.from(b64.trim(), 'base64');
  if (signature.length !== 64) throw sigError(`signature is ${signature.length} bytes, expected 64`);
  return {
    metaHash: hexField(hashes, ['meta', 'hash']),
    manifestHash: hexField(hashes, ['manifest.yaml', 'hash']),
    verityHash: hexField(hashes, ['fs.img', 'verity-hash']),
    verityOffset: offset,
    signed,
    signature,
  };
}

/** Checks the signature and the comment and manifest hashes (spec/npk.md §1.3 steps 2-4). */
export function verifySignature(sig: Signature, key: Buffer, comment: Buffer, manifest: Buffer): void {
  if (!verifyEd25519(key, Buffer.from(sig.signed, 'utf8'), sig.signature)) throw sigError('invalid signature');
  const meta = sha256Hex(comment);
  if (meta !== sig.metaHash) {
    throw new NpkError('npk_hash', `signature.yaml: meta hash ${sig.metaHash} does not match the zip comment (sha256 ${meta})`);
  }
  const man = sha256Hex(manifest);
  if (man !== sig.manifestHash) {
    throw new NpkError('npk_hash', `signature.yaml: manifest.yaml hash ${sig.manifestHash} does not match manifest.yaml (sha256 ${man})`);
  }
}
