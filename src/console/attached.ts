// The daemon side of attached requests (spec/streams.md): once the `ok` line
// is out, the connection belongs to one session that talks in frames
// (frames.ts) until it sends channel 3 and closes. Main thread.
//
// Backpressure: `write` resolves only when the socket took the bytes (a
// session that awaits it stops reading its source while the client does not
// read); `frames()` pulls from the connection's FrameReader, which pauses the
// socket while more than its high-water mark waits unread.
import type { Duplex } from 'node:stream';

import { errors, RuntimeError } from '../model/errors.js';
import type { AttachedSession, AttachResult, ConsoleBackend, FrameIO, RequestContext } from './backend.js';
import type { FrameReader } from './codec.js';
import type { Permissions } from './permissions.js';
import { requiredPermission } from './permissions.js';
import { CH_END, CLIENT_CHANNELS, encodeFrame, frameHeader, MAX_OUT_FRAME, FrameError, MAX_IN_FRAME, readFrame, type Frame } from './frames.js';
import { errorResponse, type Request, type Response } from './protocol.js';

export type { AttachResult, AttachedSession, FrameIO } from './backend.js';

class PeerGone extends Error {
  override name = 'PeerGone';
}

function writeBuffer(socket: Duplex, b: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    if (socket.destroyed || socket.writableEnded) return reject(new PeerGone('the client closed the connection'));
    if (socket.write(b)) return resolve();
    const done = (e?: Error) => {
      socket.off('drain', onDrain);
      socket.off('close', onClose);
      if (e) reject(e);
      else resolve();
    };
    const onDrain = () => done();
    const onClose = () => done(new PeerGone('the client closed the connection'));
    socket.on('drain', onDrain);
    socket.on('close', onClose);
  });
}

/**
 * Runs `session` over `socket` and ends the connection: channel 3 with the
 * session's result (or its error, or the client's protocol error), then close.
 * Never rejects.
 */
export async function runAttached(socket: Duplex, reader: FrameReader, session: AttachedSession): Promise<void> {
  const ac = new AbortController();
  const onClose = () => ac.abort();
  socket.once('close', onClose);
  // A client gone before the session began (while the ok line waited) must not leave it waiting forever.
  if (socket.destroyed) ac.abort();
  let protocolError: FrameError | undefined;
  const io: FrameIO = {
    gone: ac.signal,
    async write(channel, data) {
      // Header and payload as two writes: the payload is not copied again.
      for (let o = 0; o < data.length; o += MAX_OUT_FRAME) {
        const p = data.subarray(o, o + MAX_OUT_FRAME);
        socket.write(frameHeader(channel, p.length));
        await writeBuffer(socket, p);
      }
    },
    async *frames() {
      for (;;) {
        let f: Frame | null;
        try {
          f = await readFrame(reader, MAX_IN_FRAME, CLIENT_CHANNELS);
        } catch (e) {
          if (e instanceof FrameError) protocolError = e;
          throw e;
        }
        if (f === null) return;
        yield f;
      }
    },
  };
  let end: unknown;
  try {
    end = await session(io);
    if (protocolError) throw protocolError;
  } catch (e) {
    const err = protocolError ?? e;
    end = { error: RuntimeError.from(err instanceof FrameError ? errors.unexpected(`protocol error: ${err.message}`) : err).toWire() };
  }
  socket.off('close', onClose);
  if (!socket.destroyed && !socket.writableEnded) {
    // Not awaited: a client that stopped reading (a dropped logs follower) would hold us here forever.
    socket.write(encodeFrame(CH_END, JSON.stringify(end ?? {})));
    socket.end();
    // A client that never reads must not hold the socket open.
    setTimeout(() => socket.destroy(), 5000).unref();
  }
}

/** What connection.ts asks of this module; kept here so the connection only delegates. */
export const attachedResult = {
  /** Checks and opens an attached request: container consoles, permission, backend support. */
  async open(backend: ConsoleBackend, req: Request, perms: Permissions, ctx: RequestContext): Promise<AttachResult> {
    // The one connection a container inherits must stay its console.
    if (ctx.container !== undefined) {
      return { response: errorResponse(req, errors.unexpected('attached requests are refused on a container console').toWire()) };
    }
    if (!perms.has(requiredPermission(req))) return { response: { permission_denied: req } };
    if (!backend.attach) return { response: errorResponse(req, errors.unexpected('this runtime does not support attached requests').toWire()) };
    try {
      return await backend.attach(req, ctx);
    } catch (e) {
      return { response: errorResponse(req, RuntimeError.from(e).toWire()) };
    }
  },

  /** `copy_in` through the backend (after the permission check). */
  async copyIn(backend: ConsoleBackend, req: Request & { copy_in: unknown }, data: AsyncIterable<Buffer>, ctx: RequestContext): Promise<Response> {
    const r = (req as { copy_in: { container: string; path: string; size: number } }).copy_in;
    if (!backend.copyIn) throw errors.unexpected('this runtime does not support copy_in');
    return backend.copyIn(r, data, ctx);
  },

  /** Resolves once `empty()` holds (the notification queue went out) or the connection closed. */
  async drained(socket: Duplex, empty: () => boolean, closed: Promise<void>): Promise<void> {
    while (!empty()) {
      const gone = await Promise.race([
        new Promise<boolean>((r) => socket.once('drain', () => r(false))),
        closed.then(() => true),
      ]);
      if (gone) return;
    }
  },
};
