// copy_in / copy_out and inspect's network interfaces (spec/streams.md):
// finds the container's process and ids through the supervisor, then leaves
// the bytes to src/actors/copy.ts. Main thread.
import type { AttachResult } from './console/attached.js';
import { CH_STDOUT } from './console/frames.js';
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
