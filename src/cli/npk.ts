// `npk`: pack, unpack, inspect NPKs and generate keys, with the subcommands
// and flags of Northstar's sextant (spec/npk.md §1.6). bin/npk calls main().
import { mkdir, readFile, stat } from 'node:fs/promises';
import { dirname } from 'node:path';

import { Command, CommanderError, InvalidArgumentError, Option } from 'commander';

import type { Manifest } from '../model/manifest.js';
import { NpkError } from '../npk/error.js';
import { generateKey, readKeyFile } from '../npk/keys.js';
import { manifestYaml, parseManifestText } from '../npk/manifest-io.js';
import { closeNpk, openNpk, type Npk } from '../npk/npk.js';
import { packNpk, type PackProgress } from '../packer/pack.js';
import { COMPRESSIONS, type Compression } from '../packer/squashfs.js';
import { unpackNpk, unsquashfs } from '../packer/unpack.js';
import { verifyImage } from '../npk/verity.js';
import { readAt, readZipDirectory } from '../npk/zip.js';

function positiveInt(v: string): number {
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n <= 0) throw new InvalidArgumentError(`"${v}" is not a positive integer`);
  return n;
}

interface PackFlags {
  manifestPath: string;
  root?: string;
  key?: string;
  out: string;
  compression: Compression;
  blockSize?: number;
  clones?: number;
  mksquashfs?: string;
}

/** A one-line progress display on the terminal, redrawn at most every 100 ms. */
function progressLine(): (p: PackProgress) => void {
  let last = 0;
  return (p) => {
    const now = Date.now();
    if (now - last < 100 && p.done < p.total) return;
    last = now;
    const pct = p.total ? Math.floor((p.done * 100) / p.total) : 100;
    process.stderr.write(`\r${p.phase === 'verity' ? 'hashing fs.img' : 'writing npk   '} ${String(pct).padStart(3)}%${p.done >= p.total ? '\n' : ''}`);
  };
}

/**
 * `-o` that does not exist yet: a path ending in `.npk` is the file to write
 * (its directory is made), anything else a directory to make (sextant's
 * `--out` is a directory), so `-o out/` works on a fresh checkout.
 */
async function prepareOut(out: string): Promise<void> {
  if (await stat(out).catch(() => undefined)) return;
  await mkdir(out.endsWith('.npk') ? dirname(out) : out, { recursive: true });
}

async function pack(f: PackFlags, print: (s: string) => void): Promise<void> {
  await prepareOut(f.out);
  const common = {
    root: f.root, key: f.key, compression: f.compression, blockSize: f.blockSize, mksquashfs: f.mksquashfs,
    progress: !!process.stdout.isTTY,
    onProgress: process.stderr.isTTY ? progressLine() : undefined,
  };
  if (f.clones === undefined) {
    const r = await packNpk({ ...common, manifestPath: f.manifestPath, out: f.out });
    print(r.path);
    return;
  }
  const manifest = parseManifestText(await readFile(f.manifestPath, 'utf8'), f.manifestPath);
  if (manifest.init === undefined) throw new NpkError('npk_pack', `${manifest.name} is a resource container: resources are not cloned`);
  if (!(await stat(f.out).catch(() => undefined))?.isDirectory()) throw new NpkError('npk_pack', `--clones needs --out to be a directory`);
  const digits = String(f.clones).length;
  for (let n = 0; n < f.clones; n++) {
    const clone: Manifest = { ...manifest, name: `${manifest.name}-${String(n).padStart(digits, '0')}` };
    const r = await packNpk({ ...common, manifest: manifestYaml(clone), out: f.out });
    print(r.path);
  }
}

async function inspect(path: string, f: { short?: boolean; key?: string; unsquashfs?: string }, print: (s: string) => void): Promise<void> {
  const key = f.key ? await readKeyFile(f.key) : undefined;
  const npk: Npk = await openNpk(path, { key });
  try {
    if (npk.verity) await verifyImage({ fd: npk.fd, offset: npk.fsImgOffset, size: npk.fsImgSize, verity: npk.verity });
    const m = npk.manifest;
    if (f.short) {
      print(`name: ${m.name}, version: ${m.version}, NPK version: ${npk.version}, resource container: ${m.init === undefined ? 'yes' : 'no'}`);
      return;
    }
    const dir = await readZipDirectory(npk.fd, npk.size);
    print('## Files');
    for (const e of dir.entries) print(`${e.name.padEnd(16)} ${String(e.size).padStart(12)} bytes  Stored  data at ${e.dataStart}`);
    print('');
    print('## manifest.yaml');
    print(npk.manifestText.trimEnd());
    print('');
    print('## signature.yaml');
    const sigEntry = dir.entries.find((e) => e.name === 'signature.yaml');
    print(sigEntry ? (await readAt(npk.fd, sigEntry.dataStart, Math.min(sigEntry.size, 1 << 16), 'signature.yaml')).toString('utf8') : 'No signature found');
    if (key) print(npk.verity ? `Signature and verity hash tree verified (root ${npk.verity.rootHash})` : '');
    for (const w of npk.warnings) print(`warning: ${w}`);
    print('');
    print('## fs.img');
    print((await unsquashfs(['-ll', '-o', String(npk.fsImgOffset), path], f.unsquashfs)).trimEnd());
  } finally {
    closeNpk(npk);
  }
}

function program(print: (s: string) => void): Command {
  const cmd = new Command('npk').description('Pack, unpack and inspect Northstar NPK containers').exitOverride();
  cmd
    .command('pack')
    .description('Pack a root and a manifest into an NPK')
    .requiredOption('-m, --manifest-path <path>', 'manifest (YAML, JSON or TOML)')
    .option('-r, --root <dir>', 'container root (default: empty)')
    .option('-k, --key <file>', 'signing key (raw 32-byte ed25519 seed, <name>.key)')
    .option('-o, --out <dir|file>', 'output directory or file', '.')
    .addOption(new Option('-c, --compression <type>', 'squashfs compression').choices(COMPRESSIONS).default('gzip'))
    .option('-b, --block-size <bytes>', 'squashfs block size', positiveInt)
    .option('--clones <n>', 'write n copies named <name>-<n>', positiveInt)
    .option('--mksquashfs <path>', 'mksquashfs binary')
    .action((f: PackFlags) => pack(f, print));
  cmd
    .command('unpack')
    .description('Extract the entries of an NPK and its root (into <out>/root)')
    .requiredOption('-n, --npk <file>', 'NPK file')
    .requiredOption('-o, --out <dir>', 'output directory')
    .option('--unsquashfs <path>', 'unsquashfs binary')
    .action((f: { npk: string; out: string; unsquashfs?: string }) => unpackNpk(f));
  cmd
    .command('inspect')
    .description('Show the files, manifest, signature and root of an NPK')
    .argument('<npk>', 'NPK file')
    .option('-s, --short', 'one line: name, version, NPK version, resource container')
    .option('-k, --key <file>', 'verify with this public key (raw 32 bytes, <name>.pub)')
    .option('--unsquashfs <path>', 'unsquashfs binary')
    .action((path: string, f: { short?: boolean; key?: string; unsquashfs?: string }) => inspect(path, f, print));
  cmd
    .command('gen-key')
    .description('Generate <name>.key and <name>.pub (refuses to overwrite)')
    .requiredOption('-n, --name <name>', 'key name')
    .requiredOption('-o, --out <dir>', 'output directory')
    .action(async (f: { name: string; out: string }) => {
      const k = await generateKey(f.name, f.out);
      print(`${k.keyPath}\n${k.pubPath}`);
    });
  return cmd;
}

/** Runs the CLI on argv (without node and script); resolves to the exit code. */
export async function main(argv: string[], print: (s: string) => void = (s) => process.stdout.write(s + '\n')): Promise<number> {
  try {
    await program(print).parseAsync(argv, { from: 'user' });
    return 0;
  } catch (e) {
    if (e instanceof CommanderError) return e.exitCode;
    process.stderr.write(`npk: ${(e as Error).message}\n`);
    return 1;
  }
}

