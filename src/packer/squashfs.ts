// fs.img: the squashfs image of a container root, made by mksquashfs with
// pseudo definitions for the manifest's mount points and /dev nodes
// (spec/npk.md §1.5).
//
// mksquashfs 4.6 takes everything as pseudo lines, xattrs (`x`) included.
// Debian 12 ships 4.5.1, which has no `x` lines (deviation 12): there the
// /dev nodes and links are staged as real files in a scratch tree, labelled
// with setxattr, and given to mksquashfs as extra sources (4.5.1 keeps the
// xattrs of source files). Directories stay pseudo lines in both cases.
import { execFile, spawn } from 'node:child_process';
import { cp, lstat, mkdir, mkdtemp, readdir, rm, symlink, chmod, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';

import { Logger } from '../log.js';
import type { Manifest, Mount } from '../model/manifest.js';
import { NpkError } from '../npk/error.js';

const execFileAsync = promisify(execFile);
const log = new Logger('npk');

export const COMPRESSIONS = ['none', 'gzip', 'lzo', 'xz', 'zstd', 'lz4'] as const;
export type Compression = (typeof COMPRESSIONS)[number];

export interface PseudoEntry {
  path: string;
  kind: 'd' | 'c' | 's';
  /** Octal mode text as in the pseudo line, e.g. "755". */
  mode: string;
  major?: number;
  minor?: number;
  /** Symlink target. */
  target?: string;
  /** security.selinux label. */
  selinux?: string;
}

/** Deviation 9: each device gets its own label (Northstar's table is permuted). */
const DEVICES: { name: string; major: number; minor: number; label: string }[] = [
  { name: 'full', major: 1, minor: 7, label: 'u:object_r:full_device:s0' },
  { name: 'null', major: 1, minor: 3, label: 'u:object_r:null_device:s0' },
  { name: 'random', major: 1, minor: 8, label: 'u:object_r:random_device:s0' },
  { name: 'tty', major: 5, minor: 0, label: 'u:object_r:owntty_device:s0' },
  { name: 'urandom', major: 1, minor: 9, label: 'u:object_r:random_device:s0' },
  { name: 'zero', major: 1, minor: 5, label: 'u:object_r:zero_device:s0' },
];
const LINK_LABEL = 'u:r:su:s0';

function dirMode(m: Mount): string {
  switch (m.type) {
    case 'bind':
      return m.options.includes('rw') ? '755' : '555';
    case 'proc':
    case 'sysfs':
      return '444';
    case 'resource':
      return '555';
    default:
      return '755';
  }
}

/** Every path level of `path` ("/a/b" → "/a", "/a/b"). */
function levels(path: string): string[] {
  const parts = path.split('/').filter(Boolean);
  return parts.map((_, i) => '/' + parts.slice(0, i + 1).join('/'));
}

/** The pseudo entries for a manifest, in Northstar's order: sorted mount targets, each path level once. */
export function pseudoEntries(manifest: Manifest): PseudoEntry[] {
  const out: PseudoEntry[] = [];
  const seen = new Set<string>();
  const dir = (path: string, mode: string): void => {
    if (seen.has(path)) return;
    seen.add(path);
    out.push({ path, kind: 'd', mode });
  };
  const targets = Object.keys(manifest.mounts).sort();
  for (const t of targets) for (const l of levels(t)) dir(l, dirMode(manifest.mounts[t]!));
  const hasProc = manifest.mounts['/proc']?.type === 'proc';
  for (const t of targets) {
    if (manifest.mounts[t]!.type !== 'dev') continue;
    const base = t === '/' ? '' : t.replace(/\/+$/, '');
    for (const d of DEVICES) {
      out.push({ path: `${base}/${d.name}`, kind: 'c', mode: '666', major: d.major, minor: d.minor, selinux: d.label });
    }
    if (hasProc) {
      dir('/proc/self', '777');
      dir('/proc/self/fd', '777');
      const links: [string, string][] = [['fd', '/proc/self/fd'], ['stdin', '/proc/self/fd/0'], ['stdout', '/proc/self/fd/1'], ['stderr', '/proc/self/fd/2']];
      for (const [name, target] of links) out.push({ path: `${base}/${name}`, kind: 's', mode: '777', target, selinux: LINK_LABEL });
    }
  }
  return out;
}

/** Pseudo definition lines; `x` lines only when the tool takes them (>= 4.6). */
export function pseudoLines(entries: PseudoEntry[], uid: number, gid: number, xattrs: boolean): string {
  const lines: string[] = [];
  for (const e of entries) {
    if (e.kind === 'd') lines.push(`${e.path} d ${e.mode} ${uid} ${gid}`);
    else if (e.kind === 'c') lines.push(`${e.path} c ${e.mode} ${uid} ${gid} ${e.major} ${e.minor}`);
    else lines.push(`${e.path} s ${e.mode} ${uid} ${gid} ${e.target}`);
    if (xattrs && e.selinux) lines.push(`${e.path} x security.selinux=${e.selinux}`);
  }
  return lines.length ? lines.join('\n') + '\n' : '';
}

/** major.minor of `mksquashfs -version` (3rd word of the first line). */
export async function mksquashfsVersion(bin = 'mksquashfs'): Promise<[number, number]> {
  let stdout: string;
  try {
    ({ stdout } = await execFileAsync(bin, ['-version']));
  } catch (e) {
    throw new NpkError('npk_pack', `${bin}: cannot run (${(e as Error).message}); install squashfs-tools`, { cause: e });
  }
  const word = stdout.split('\n')[0]?.split(/\s+/)[2] ?? '';
  const m = /^(\d+)\.(\d+)/.exec(word);
  if (!m) throw new NpkError('npk_pack', `${bin}: cannot parse version from "${stdout.split('\n')[0]}"`);
  const v: [number, number] = [Number(m[1]), Number(m[2])];
  if (v[0] < 4 || (v[0] === 4 && v[1] < 5)) throw new NpkError('npk_pack', `${bin}: version ${word} is too old (need >= 4.5)`);
  return v;
}

function compressionArgs(c: Compression): string[] {
  return c === 'none' ? ['-noI', '-noD', '-noF', '-noX', '-no-fragments'] : ['-comp', c];
}

/** Sets security.selinux labels (symlinks not followed). Tools tried: setfattr, python3. */
async function setLabels(items: { path: string; label: string }[]): Promise<void> {
  if (items.length === 0) return;
  try {
    for (const i of items) await execFileAsync('setfattr', ['-h', '-n', 'security.selinux', '-v', i.label, i.path]);
    return;
  } catch {
    // fall through to python3
  }
  const script =
    'import os,sys\nfor p,l in zip(sys.argv[1::2],sys.argv[2::2]): os.setxattr(p,"security.selinux",l.encode(),follow_symlinks=False)';
  try {
    await execFileAsync('python3', ['-c', script, ...items.flatMap((i) => [i.path, i.label])]);
  } catch (e) {
    log.warn(`/dev SELinux labels not set (neither setfattr nor python3 could set xattrs): ${(e as Error).message.split('\n')[0]}`);
  }
}

async function exists(p: string): Promise<boolean> {
  return lstat(p).then(
    () => true,
    () => false,
  );
}

/**
 * Stages every entry under a top-level directory that holds a labelled entry (devices,
 * links) in `stage`, labels set. A top-level directory the root also has is copied in
 * first, so the staged one replaces it; existing directories keep their mode (as
 * mksquashfs keeps a source directory over a pseudo one). Returns the entries left
 * for pseudo lines.
 */
async function stageLabelled(root: string, stage: string, entries: PseudoEntry[]): Promise<PseudoEntry[]> {
  const tops = new Set(entries.filter((e) => e.selinux).map((e) => levels(e.path)[0]!));
  for (const top of tops) {
    if (await exists(join(root, top))) {
      await cp(join(root, top), join(stage, top), { recursive: true, preserveTimestamps: true, verbatimSymlinks: true });
    }
  }
  const labels: { path: string; label: string }[] = [];
  for (const e of entries) {
    if (!tops.has(levels(e.path)[0]!)) continue;
    const p = join(stage, e.path);
    if (e.kind === 'd') {
      if (!(await exists(p))) {
        await mkdir(p, { recursive: true });
        await chmod(p, parseInt(e.mode, 8));
      }
      continue;
    }
    await mkdir(dirname(p), { recursive: true });
    if (await exists(p)) await rm(p, { recursive: true, force: true });
    if (e.kind === 'c') await execFileAsync('mknod', ['-m', e.mode, p, 'c', String(e.major), String(e.minor)]);
    else await symlink(e.target!, p);
    if (e.selinux) labels.push({ path: p, label: e.selinux });
  }
  await setLabels(labels);
  return entries.filter((e) => !tops.has(levels(e.path)[0]!));
}

export interface SquashfsOptions {
  root: string;
  image: string;
  manifest: Manifest;
  compression?: Compression;
  blockSize?: number;
  mksquashfs?: string;
  /** Let mksquashfs draw its progress bar on the terminal. */
  progress?: boolean;
}

/** Runs mksquashfs; the image ends padded to 4096 bytes (mksquashfs's default). */
export async function buildSquashfs(opts: SquashfsOptions): Promise<void> {
  const bin = opts.mksquashfs ?? 'mksquashfs';
  const [major, minor] = await mksquashfsVersion(bin);
  const xattrLines = major > 4 || (major === 4 && minor >= 6);
  const { uid, gid } = opts.manifest;
  let entries = pseudoEntries(opts.manifest);
  const scratch = await mkdtemp(join(tmpdir(), 'npk-pack-'));
  try {
    let sources = [opts.root];
    const extra: string[] = [];
    const canStage = process.getuid?.() === 0;
    if (!xattrLines && entries.some((e) => e.selinux)) {
      if (canStage) {
        const stage = join(scratch, 'stage');
        await mkdir(stage);
        entries = await stageLabelled(opts.root, stage, entries);
        const staged = await readdir(stage);
        const rootEntries = (await readdir(opts.root)).filter((n) => !staged.includes(n));
        sources = [...rootEntries.map((n) => join(opts.root, n)), ...staged.map((n) => join(stage, n))];
        const rootMode = (await stat(opts.root)).mode & 0o7777;
        extra.push('-root-mode', rootMode.toString(8));
        if (sources.length === 1) extra.push('-keep-as-directory');
      } else {
        log.warn(`${bin} ${major}.${minor} takes no xattr pseudo lines and staging /dev nodes needs root: /dev labels are left out`);
      }
    }
    const pseudo = join(scratch, 'pseudo');
    await writeFile(pseudo, pseudoLines(entries, uid, gid, xattrLines));
    const args = [
      ...sources, opts.image, '-noappend',
      ...(opts.progress ? [] : ['-no-progress', '-quiet']),
      '-force-uid', String(uid), '-force-gid', String(gid),
      '-pf', pseudo,
      ...(opts.blockSize ? ['-b', String(opts.blockSize)] : []),
      ...compressionArgs(opts.compression ?? 'gzip'),
      ...extra,
    ];
    await run(bin, args, !!opts.progress);
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

function run(bin: string, args: string[], progress: boolean): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { stdio: ['ignore', progress ? 'inherit' : 'pipe', 'pipe'] });
    let output = '';
    const keep = (d: Buffer): void => {
      output = (output + d.toString()).slice(-8192);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    child.on('error', (e) => reject(new NpkError('npk_pack', `${bin}: ${e.message}`, { cause: e })));
    child.on('close', (code, signal) => {
      if (code === 0) resolve();
      else {
        const tail = output.trim().split('\n').slice(-6).join('\n');
        reject(new NpkError('npk_pack', `${bin} failed (${signal ?? `exit ${code}`}): ${tail}`));
      }
    });
  });
}
