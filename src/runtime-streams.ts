// copy_in / copy_out and inspect's network interfaces (spec/streams.md):
// finds the container's process and ids through the supervisor, then leaves
// the bytes to src/actors/copy.ts. Main thread.
import type { AttachResult } from './console/attached.js';
import { once } from 'node:events';
import { closeSync } from 'node:fs';
import net from 'node:net';

import { CH_CLOSE, CH_SIGNAL, CH_STDERR, CH_STDIN, CH_STDOUT } from './console/frames.js';
import type { ExitStatus } from './model/errors.js';
import type { Request, Response } from './console/protocol.js';
import { copyIn, copyOut, type CopyTarget } from './actors/copy.js';
import { request, type Supervisor } from './machines/supervisor.js';
import { errors, RuntimeError } from './model/errors.js';
import { native } from './native.js';
import { netInterfacesOf } from './native-api/netif.js';
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
  if (r.tty) return refuse(errors.unexpected('exec with tty is not supported yet'));
  const pairs = [0, 1, 2].map(() => native().socketpair('stream'));
  const theirs = pairs.map((p) => p[1]!) as [number, number, number];
  let x: { pid: number; exited: Promise<ExitStatus> };
  try {
    x = await request(sup, { type: 'exec', container, path: r.path, args: r.arguments, env: r.environment, stdio: theirs });
  } catch (e) {
    for (const p of pairs) p.forEach((fd) => closeSync(fd));
    return refuse(e);
  } finally {
    // init holds its copies (or the exec failed): ours go either way.
    for (const fd of theirs) {
      try {
        closeSync(fd);
      } catch {
        // closed above
      }
    }
  }
  const stdin = new net.Socket({ fd: pairs[0]![0]!, readable: false, writable: true });
  const stdout = new net.Socket({ fd: pairs[1]![0]!, readable: true, writable: false });
  const stderr = new net.Socket({ fd: pairs[2]![0]!, readable: true, writable: false });
  for (const s of [stdin, stdout, stderr]) s.on('error', () => undefined);
  let status: ExitStatus | undefined;
  const exited = x.exited.then((s) => (status = s));
  return {
    response: { exec: { ok: { container, pid: x.pid, status: null } } },
    session: async (io) => {
      const relay = (sock: net.Socket, channel: number) =>
        new Promise<void>((resolve) => {
          sock.on('data', (d: Buffer) => {
            sock.pause();
            io.write(channel, d).then(
              () => sock.resume(),
              () => sock.destroy(),
            );
          });
          sock.once('end', () => resolve());
          sock.once('close', () => resolve());
        });
      const output = Promise.all([relay(stdout, CH_STDOUT), relay(stderr, CH_STDERR)]);
      let killTimer: NodeJS.Timeout | undefined;
      const detach = () => {
        stdin.end();
        killTimer ??= setTimeout(() => {
          if (status === undefined) signal(x.pid, 9);
        }, DETACH_GRACE_MS);
      };
      io.gone.addEventListener('abort', detach);
      const input = (async () => {
        for await (const f of io.frames()) {
          if (f.channel === CH_STDIN && !stdin.writableEnded) {
            if (!stdin.write(f.payload)) await Promise.race([once(stdin, 'drain'), once(stdin, 'close')]);
          } else if (f.channel === CH_CLOSE && f.payload[0] === CH_STDIN) stdin.end();
          else if (f.channel === CH_SIGNAL) {
            const n = (JSON.parse(f.payload.toString('utf8')) as { signal?: unknown }).signal;
            if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 64) throw errors.unexpected(`invalid signal frame ${f.payload.toString('utf8').slice(0, 40)}`);
            if (status === undefined) signal(x.pid, n);
          }
          // Channel 4 (terminal size) has no meaning without a tty.
        }
      })();
      let inputError: unknown;
      input.catch((e) => {
        inputError = e;
        detach();
      });
      try {
        await exited;
        await Promise.race([output, new Promise((r) => setTimeout(r, OUTPUT_GRACE_MS).unref())]);
        if (inputError) throw inputError;
        return status;
      } finally {
        io.gone.removeEventListener('abort', detach);
        if (killTimer) clearTimeout(killTimer);
        for (const s of [stdin, stdout, stderr]) s.destroy();
      }
    },
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
