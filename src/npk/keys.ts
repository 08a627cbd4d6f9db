// Ed25519 keys in Northstar's file format: `<name>.key` is the raw 32-byte
// secret seed, `<name>.pub` the raw 32-byte public key (ed25519-dalek 2).
// node:crypto wants DER, so the raw bytes are wrapped in fixed PKCS#8/SPKI
// prefixes (RFC 8410).
import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from 'node:crypto';
import { open, readFile } from 'node:fs/promises';
import { join } from 'node:path';

import { NpkError } from './error.js';

const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');

/**
 * Public keys of small order (the identity and torsion points, canonical encodings) that
 * ed25519-dalek's verify_strict refuses; OpenSSL accepts them, so we refuse them here.
 */
const WEAK_PUBLIC_KEYS = new Set([
  '0100000000000000000000000000000000000000000000000000000000000000',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0000000000000000000000000000000000000000000000000000000000000080',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac037a',
  'c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc05',
  '26e8958fc2b227b045c3f489f2ef98f0d5dfac05d3c63339b13802886d53fc85',
]);

export function publicKeyObject(raw: Buffer): KeyObject {
  if (raw.length !== 32) throw new NpkError('npk_key', `public key: ${raw.length} bytes, expected a raw 32-byte ed25519 key`);
  if (WEAK_PUBLIC_KEYS.has(raw.toString('hex'))) throw new NpkError('npk_key', 'public key: weak (small-order) ed25519 key');
  return createPublicKey({ key: Buffer.concat([SPKI_PREFIX, raw]), format: 'der', type: 'spki' });
}

export function privateKeyObject(seed: Buffer): KeyObject {
  if (seed.length !== 32) throw new NpkError('npk_key', `private key: ${seed.length} bytes, expected a raw 32-byte ed25519 seed`);
  return createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
}

/** The raw public key of a raw seed. */
export function publicKeyOf(seed: Buffer): Buffer {
  const der = createPublicKey(privateKeyObject(seed)).export({ format: 'der', type: 'spki' });
  return Buffer.from(der.subarray(der.length - 32));
}

export function signEd25519(seed: Buffer, data: Buffer): Buffer {
  return sign(null, data, privateKeyObject(seed));
}

/** Verifies a 64-byte signature; false for any mismatch (OpenSSL also refuses non-canonical S). */
export function verifyEd25519(publicKey: Buffer, data: Buffer, signature: Buffer): boolean {
  if (signature.length !== 64) return false;
  return verify(null, data, publicKeyObject(publicKey), signature);
}

/** Reads a raw key file (seed or public key), naming the file when it is not 32 bytes. */
export async function readKeyFile(path: string): Promise<Buffer> {
  let raw: Buffer;
  try {
    raw = await readFile(path);
  } catch (e) {
    throw new NpkError('npk_key', `key ${path}: ${(e as Error).message}`, { cause: e });
  }
  if (raw.length !== 32) throw new NpkError('npk_key', `key ${path}: ${raw.length} bytes, expected 32 (raw ed25519)`);
  return raw;
}

/** Generates `<dir>/<name>.key` and `<dir>/<name>.pub`; refuses to overwrite either (like sextant). */
export async function generateKey(name: string, dir: string): Promise<{ keyPath: string; pubPath: string; publicKey: Buffer }> {
  const { privateKey, publicKey } = generateKeyPairSync('ed25519');
  const seed = Buffer.from(privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(PKCS8_PREFIX.length));
  const pub = Buffer.from(publicKey.export({ format: 'der', type: 'spki' }).subarray(SPKI_PREFIX.length));
  const keyPath = join(dir, `${name}.key`);
  const pubPath = join(dir, `${name}.pub`);
  await writeNew(keyPath, seed, 0o600);
  await writeNew(pubPath, pub, 0o644);
  return { keyPath, pubPath, publicKey: pub };
}

async function writeNew(path: string, data: Buffer, mode: number): Promise<void> {
  let fh;
  try {
    fh = await open(path, 'wx', mode);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    throw new NpkError('npk_key', code === 'EEXIST' ? `${path} already exists` : `${path}: ${(e as Error).message}`, { cause: e });
  }
  try {
    await fh.writeFile(data);
  } finally {
    await fh.close();
  }
}
