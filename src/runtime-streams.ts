// copy_in / copy_out and inspect's network interfaces (spec/streams.md):
// finds the container's process and ids through the supervisor, then leaves
// the bytes to src/actors/copy/copy.ts. Main thread.
import type { AttachResult } from './console/attached.js';
import { once } from 'node:events';
import { closeSync, fchmodSync, fchownSync } from 'node:fs';
import type { Readable, Writable } from 'node:stream';
import tty from 'node:tty';
import net from 'node:net';

import { CH_CLOSE, CH_RESIZE, CH_SIGNAL, CH_STDERR, CH_STDIN, CH_STDOUT } from './console/frames.js';
import type { ExitStatus } from './model/errors.js';
import type { Request, Response } from './console/protocol.js';
import { copyIn, copyOut, openRoot, type CopyTarget } from './actors/copy/index.js';
import { request, type Supervisor } from './machines/supervisor.js';
import { errors, RuntimeError } from './model/errors.js';
import { native } from './native.js';
import { netInterfacesOf } from './native-api/netif.js';
import { O_PATH, RESOLVE_IN_ROOT, RESOLVE_NO_MAGICLINKS } from './native-api/copy.js';
import type { NetworkInterface } from './console/protocol.js';
import { Logger } from './log.js';

const log = new Logger('runtime');

const wireError = (e: unknown) => RuntimeError.from(e).toWire();

/** The started container's process and ids; an error when it is not started. */
async function target(sup: Supervisor, container: string): Promise<CopyTarget> {
  const d = await request(sup, { type: 'inspect', container, categories: [] });
  if (!d.process) throw errors.unexpected(`container ${container} is not started: its mount namespace is the view a copy needs`);
  return {
    pid: d.process.pid,
    uid: d.manifest.uid,
    gid: d.manifest.gid,
    stillRunning: async (pid) => (await request(sup, { type: 'inspect', container, categories: [] })).process?.pid === pid,
  };
}

export async function copyInRequest(
  sup: Supervisor,
  r: { container: string; path: string; size: number },
  data: AsyncIterable<Buffer>,
): Promise<Response> {
  try {
    await copyIn(await target(sup, r.container), r.path, data);
    return { copy_in: { ok: { container: r.container } } };
  } catch (e) {
    return { copy_in: { error: { container: r.container, error: wireError(e) } } };
  }
}

export async function attachRequest(sup: Supervisor, req: Request): Promise<AttachResult> {
  if (typeof req === 'object' && 'copy_out' in req) {
    const { container, path } = req.copy_out;
    try {
      const t = await target(sup, container);
      await checkSource(t, path);
      return {
        response: { copy_out: { ok: { container } } },
        session: async (io) => {
          await copyOut(t, path, (b) => io.write(CH_STDOUT, b), io.gone);
          return {};
        },
      };
    } catch (e) {
      return { response: { copy_out: { error: { container, error: wireError(e) } } } };
    }
  }
  if (typeof req === 'object' && 'exec' in req) return attachedExec(sup, req.exec);
  throw errors.unexpected(`unsupported attached request ${JSON.stringify(req).slice(0, 100)}`);
}

/** `inspect`'s interfaces of a started container (null when not started or unreadable, e.g. it just exited). */
export async function networkOf(pid: number | undefined): Promise<NetworkInterface[] | null> {
  if (pid === undefined) return null;
  try {
    const list = await netInterfacesOf(native(), pid);
    return list.map((i) => ({ name: i.name, mac: i.mac, up: i.up, addresses: i.addresses }));
  } catch (e) {
    log.debug(`network interfaces of pid ${pid}: ${(e as Error).message}`);
    return null;
  }
}

/** How long a process may run on after its client went away (stdin closed), before SIGKILL. */
const DETACH_GRACE_MS = 5000;
/** Channel 3 waits at most this long for output after the exit (a descendant may hold the pipes). */
const OUTPUT_GRACE_MS = 1000;

type ExecBody = Extract<Request, { exec: unknown }>['exec'];

/**
 * `exec` with `attach` (spec/streams.md): the process's stdin/stdout/stderr
 * are socketpairs whose other ends the daemon relays to frames 0/1/2; a
 * full client socket pauses the reading of its output (the process blocks
 * on write), a full stdin pauses the reading of frames.
 */
async function attachedExec(sup: Supervisor, r: ExecBody): Promise<AttachResult> {
  const container = r.container;
  const refuse = (e: unknown): AttachResult => ({ response: { exec: { error: { container, error: wireError(e) } } } });
  let io: ExecIo;
  try {
    io = r.tty ? await ptyIo(sup, container, r.cols ?? 80, r.rows ?? 24) : pipeIo();
  } catch (e) {
    return refuse(e);
  }
  let x: { pid: number; exited: Promise<ExitStatus> };
  try {
    x = await request(sup, { type: 'exec', container, path: r.path, args: r.arguments, env: r.environment, stdio: io.theirs, tty: r.tty === true });
  } catch (e) {
    io.closeOurs();
    return refuse(e);
  } finally {
    // init holds its copies (or the exec failed): theirs go either way.
    io.closeTheirs();
  }
  const { stdin, outputs } = io.open();
  let status: ExitStatus | undefined;
  const exited = x.exited.then((s) => (status = s));
  return {
    response: { exec: { ok: { container, pid: x.pid, status: null } } },
    session: async (fio) => {
      const relay = (sock: Readable, channel: number) =>
        new Promise<void>((resolve) => {
          sock.on('data', (d: Buffer) => {
            sock.pause();
            fio.write(channel, d).then(
              () => sock.resume(),
              () => sock.destroy(),
            );
          });
          // A pty master reads EIO once the last slave fd closed: that is its end of file.
          sock.on('error', () => resolve());
          sock.once('end', () => resolve());
          sock.once('close', () => resolve());
        });
      const output = Promise.all(outputs.map(([sock, ch]) => relay(sock, ch)));
      let killTimer: NodeJS.Timeout | undefined;
      const detach = () => {
        // Without a tty the process sees its stdin close; with one, a hangup.
        if (r.tty) {
          if (status === undefined) signal(x.pid, 1);
        } else stdin.end();
        killTimer ??= setTimeout(() => {
          if (status === undefined) signal(x.pid, 9);
        }, DETACH_GRACE_MS);
      };
      fio.gone.addEventListener('abort', detach);
      const json = (b: Buffer) => JSON.parse(b.toString('utf8')) as Record<string, unknown>;
      const input = (async () => {
        for await (const f of fio.frames()) {
          if (f.channel === CH_STDIN && !stdin.writableEnded) {
            if (!stdin.write(f.payload)) await Promise.race([once(stdin, 'drain'), once(stdin, 'close')]);
          } else if (f.channel === CH_CLOSE && f.payload[0] === CH_STDIN) {
            // A terminal has no end of input short of the process leaving: ^D is the user's.
            if (!r.tty) stdin.end();
          } else if (f.channel === CH_SIGNAL) {
            const n = json(f.payload).signal;
            if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 64) throw errors.unexpected(`invalid signal frame ${f.payload.toString('utf8').slice(0, 40)}`);
            if (status === undefined) signal(x.pid, n);
          } else if (f.channel === CH_RESIZE && io.resize) {
            const { cols, rows } = json(f.payload);
            const ok = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= 65535;
            if (!ok(cols) || !ok(rows)) throw errors.unexpected(`invalid resize frame ${f.payload.toString('utf8').slice(0, 40)}`);
            io.resize(cols as number, rows as number);
          }
        }
      })();
      let inputError: unknown;
      input.catch((e) => {
        inputError = e;
        detach();
      });
      try {
        await exited;
        await Promise.race([output, new Promise((res) => setTimeout(res, OUTPUT_GRACE_MS).unref())]);
        if (inputError) throw inputError;
        return status;
      } finally {
        fio.gone.removeEventListener('abort', detach);
        if (killTimer) clearTimeout(killTimer);
        stdin.destroy();
        for (const [sock] of outputs) sock.destroy();
        io.closeRest();
      }
    },
  };
}

/** The stdio of an attached exec: the fds init passes to the process, and the daemon's streams. */
interface ExecIo {
  theirs: [number, number, number];
  closeTheirs(): void;
  /** Before open(): the daemon's fds go too (the exec failed). */
  closeOurs(): void;
  open(): { stdin: Writable; outputs: [Readable, number][] };
  resize?(cols: number, rows: number): void;
  /** After the session: what open() did not hand to a stream. */
  closeRest(): void;
}

function closeQuietly(fd: number): void {
  try {
    closeSync(fd);
  } catch {
    // already closed
  }
}

/** Three socketpairs: stdin, stdout, stderr. */
function pipeIo(): ExecIo {
  const pairs = [0, 1, 2].map(() => native().socketpair('stream'));
  return {
    theirs: pairs.map((p) => p[1]!) as [number, number, number],
    closeTheirs: () => pairs.forEach((p) => closeQuietly(p[1]!)),
    closeOurs: () => pairs.forEach((p) => closeQuietly(p[0]!)),
    open() {
      const stdin = new net.Socket({ fd: pairs[0]![0]!, readable: false, writable: true });
      const stdout = new net.Socket({ fd: pairs[1]![0]!, readable: true, writable: false });
      const stderr = new net.Socket({ fd: pairs[2]![0]!, readable: true, writable: false });
      for (const x of [stdin, stdout, stderr]) x.on('error', () => undefined);
      return { stdin, outputs: [[stdout, CH_STDOUT], [stderr, CH_STDERR]] };
    },
    closeRest: () => undefined,
  };
}

/** A pty of the container's devpts (its `dev` mount), the slave owned by the container's ids. */
async function ptyIo(sup: Supervisor, container: string, cols: number, rows: number): Promise<ExecIo> {
  const t = await target(sup, container);
  const root = await openRoot(t);
  let pty: { master: number; slave: number; index: number };
  try {
    pty = native().ptyOpen(root);
  } catch (e) {
    throw errors.unexpected(`container ${container} has no devpts for a terminal (tty needs a \`dev\` mount): ${(e as Error).message}`);
  } finally {
    closeSync(root);
  }
  fchownSync(pty.slave, t.uid, t.gid);
  fchmodSync(pty.slave, 0o620);
  native().ptyResize(pty.master, cols, rows);
  const writeFd = native().dupFd(pty.master);
  return {
    theirs: [pty.slave, pty.slave, pty.slave],
    closeTheirs: () => closeQuietly(pty.slave),
    closeOurs: () => [pty.master, writeFd].forEach(closeQuietly),
    open() {
      const out = new tty.ReadStream(pty.master);
      const stdin = new tty.WriteStream(writeFd);
      out.on('error', () => undefined);
      stdin.on('error', () => undefined);
      return { stdin, outputs: [[out, CH_STDOUT]] };
    },
    resize: (c, r) => native().ptyResize(pty.master, c, r),
    closeRest: () => undefined,
  };
}

/** Signals the exec'd process only (never its container's init); a process already gone is fine. */
function signal(pid: number, n: number): void {
  try {
    process.kill(pid, n);
  } catch {
    // ESRCH: it exited meanwhile
  }
}

/**
 * A copy_out source that cannot be resolved is an error response, not an
 * `ok` followed by an error on channel 3 (that is for reads failing half-way).
 */
async function checkSource(t: CopyTarget, path: string): Promise<void> {
  if (!path.startsWith('/') || path.split('/').includes('..')) throw errors.unexpected(`path "${path}" must be absolute and without ".."`);
  const root = await openRoot(t);
  try {
    closeSync(native().openat2(root, path, O_PATH, 0, RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS));
  } catch (e) {
    const code = (e as { code?: string }).code;
    throw errors.unexpected(code === 'ENOENT' ? `${path}: no such file or directory inside the container` : (e as Error).message);
  } finally {
    closeSync(root);
  }
}
