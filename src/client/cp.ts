// `nstar cp` on the host's side (spec/streams.md "Copy in / out", as
// `podman cp`): packs a host file or directory into a tar whose entries carry
// the destination's name, and unpacks a copy_out tar into a host path.
// Tar through tar-stream. The host side never follows a symlink that came
// out of the container.
import { createReadStream, createWriteStream, lstatSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, rmSync, statSync, symlinkSync, chmodSync, type Stats } from 'node:fs';
import { once } from 'node:events';
import { tmpdir } from 'node:os';
import { basename, dirname, join, posix } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

import * as tar from 'tar-stream';

import type { ClientApi } from './client-api.js';
import { ClientError } from './errors.js';

/** `CONTAINER:PATH` → its parts; undefined for a host path (or `-`). */
export function containerSpec(s: string): { container: string; path: string } | undefined {
  const m = /^([^/:][^:]*(?::\d+\.\d+\.\d+[^:/]*)?):(\/.*)$/.exec(s);
  return m ? { container: m[1]!, path: m[2]! } : undefined;
}

type Header = Parameters<tar.Pack['entry']>[0];

function put(pack: tar.Pack, header: Header, data?: Buffer): Promise<void> {
  return new Promise((resolve, reject) => pack.entry(header, data ?? Buffer.alloc(0), (e) => (e ? reject(e) : resolve())));
}

async function putFile(pack: tar.Pack, path: string, header: Header, size: number): Promise<void> {
  const done = new Promise<void>((resolve, reject) => {
    const sink = pack.entry({ ...header, size }, (e) => (e ? reject(e) : resolve()));
    createReadStream(path).on('error', reject).pipe(sink as unknown as Writable);
  });
  await done;
}

/** Packs host `src` (a file or directory) into `out` as entries named `name`, `name/...`. */
async function packHost(src: string, name: string, pack: tar.Pack): Promise<void> {
  const walk = async (p: string, n: string, st: Stats): Promise<void> => {
    const meta = { mode: st.mode & 0o7777, mtime: st.mtime };
    if (st.isDirectory()) {
      await put(pack, { name: `${n}/`, type: 'directory', ...meta });
      for (const c of readdirSync(p).sort()) await walk(join(p, c), `${n}/${c}`, lstatSync(join(p, c)));
    } else if (st.isFile()) await putFile(pack, p, { name: n, type: 'file', ...meta }, st.size);
    else if (st.isSymbolicLink()) await put(pack, { name: n, type: 'symlink', linkname: readlinkSync(p), ...meta });
    // Devices, fifos and sockets are not copied.
  };
  await walk(src, name, statSync(src));
  pack.finalize();
}

/** A tar in a temporary file (copy_in announces its size first); removed by `cleanup`. */
async function spool(write: (out: Writable) => Promise<void>): Promise<{ path: string; size: number; cleanup: () => void }> {
  const dir = mkdtempSync(join(tmpdir(), 'nstar-cp-'));
  const path = join(dir, 'tar');
  const cleanup = () => rmSync(dir, { recursive: true, force: true });
  try {
    const out = createWriteStream(path, { mode: 0o600 });
    await write(out);
    return { path, size: statSync(path).size, cleanup };
  } catch (e) {
    cleanup();
    throw e;
  }
}

/** `nstar cp HOST CONTAINER:PATH`: `host` lands at `path`; `-` sends a tar from `stdin` extracted below `path`. */
export async function copyToContainer(client: ClientApi, host: string, container: string, path: string, stdin: Readable): Promise<void> {
  let target = path;
  const t = await spool(async (out) => {
    if (host === '-') return pipeline(stdin, out);
    const name = posix.basename(path);
    if (!name || name === '..' || name === '.') throw new ClientError('protocol', `${path}: name a file or directory to create`);
    target = posix.dirname(path);
    const pack = tar.pack();
    await Promise.all([pipeline(pack as unknown as Readable, out), packHost(host, name, pack)]);
  });
  try {
    await client.copyIn(container, target, createReadStream(t.path, { highWaterMark: 1024 * 1024 }), t.size);
  } finally {
    t.cleanup();
  }
}

/**
 * Unpacks a copy_out tar below `dest` (an existing directory: into it; else
 * the top entry is renamed to `dest`). Names with `..` or a leading `/` are
 * refused, and nothing is written below a symlink the tar created.
 */
async function unpack(source: AsyncIterable<Buffer>, dest: string): Promise<void> {
  let into = dest;
  let rename: string | undefined;
  let destIsDir = false;
  try {
    destIsDir = statSync(dest).isDirectory();
  } catch {
    // missing: created with the top entry's name replaced
  }
  if (!destIsDir) {
    into = dirname(dest);
    rename = basename(dest);
  }
  const links = new Set<string>();
  const ex = tar.extract();
  const feed = (async () => {
    try {
      for await (const c of source) if (!ex.write(c)) await once(ex as never, 'drain');
      ex.end(undefined);
    } catch (e) {
      ex.destroy(e as Error);
    }
  })();
  for await (const entry of ex) {
    const h = entry.header;
    const parts = h.name.split('/').filter((x) => x !== '' && x !== '.');
    if (h.name.startsWith('/') || parts.includes('..')) throw new ClientError('protocol', `refusing tar entry "${h.name}"`);
    if (rename && parts.length > 0) parts[0] = rename;
    for (let i = 1; i < parts.length; i++) {
      if (links.has(parts.slice(0, i).join('/'))) throw new ClientError('protocol', `refusing tar entry "${h.name}" below a symlink`);
    }
    const p = join(into, ...parts);
    const mode = h.mode & 0o777;
    if (h.type === 'directory') {
      mkdirSync(p, { recursive: true });
      chmodSync(p, mode | 0o700);
    } else if (h.type === 'file') {
      rmSync(p, { force: true });
      await pipeline(entry as unknown as Readable, createWriteStream(p, { flags: 'wx', mode }));
      continue;
    } else if (h.type === 'symlink') {
      rmSync(p, { force: true });
      symlinkSync(h.linkname ?? '', p);
      links.add(parts.join('/'));
    }
    entry.resume();
  }
  await feed;
}

/** `nstar cp CONTAINER:PATH HOST`: `-` writes the tar itself to `stdout`. */
export async function copyFromContainer(client: ClientApi, container: string, path: string, host: string, stdout: Writable): Promise<void> {
  const stream = await client.copyOut(container, path);
  async function* payload(): AsyncGenerator<Buffer> {
    for await (const f of stream.frames()) if (f.channel === 1) yield f.payload;
    const end = stream.end as { error?: Record<string, unknown> } | undefined;
    if (end === undefined) throw new ClientError('closed', 'the runtime closed the copy before its end');
    if (end.error) throw ClientError.runtime(end.error as never);
  }
  if (host === '-') {
    for await (const b of payload()) if (!stdout.write(b)) await once(stdout, 'drain');
    return;
  }
  await unpack(payload(), host);
}

