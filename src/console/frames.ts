// Binary frames of attached requests (spec/streams.md "Frames"): after the
// `ok` line of an attached request the connection carries only
//   channel (u8) | length (u32 BE) | payload
// Both sides use this module: encoding, and a reader that pulls whole frames
// out of the FrameReader which already holds bytes read after the `ok` line.
import type { FrameReader } from './codec.js';

export const CH_STDIN = 0;
export const CH_STDOUT = 1;
export const CH_STDERR = 2;
/** The end: JSON exit status, `{}` or `{"error":...}`; the daemon closes after it. */
export const CH_END = 3;
export const CH_RESIZE = 4;
export const CH_SIGNAL = 5;
export const CH_CLOSE = 255;

/** Daemon → client frames carry at most this much payload. */
export const MAX_OUT_FRAME = 64 * 1024;
/** A client frame larger than this is a protocol error. */
export const MAX_IN_FRAME = 1024 * 1024;

export const CLIENT_CHANNELS: ReadonlySet<number> = new Set([CH_STDIN, CH_RESIZE, CH_SIGNAL, CH_CLOSE]);

export interface Frame {
  channel: number;
  payload: Buffer;
}

export class FrameError extends Error {
  override name = 'FrameError';
}

export function frameHeader(channel: number, length: number): Buffer {
  const h = Buffer.allocUnsafe(5);
  h.writeUInt8(channel, 0);
  h.writeUInt32BE(length, 1);
  return h;
}

export function encodeFrame(channel: number, payload: Buffer | string): Buffer {
  const p = typeof payload === 'string' ? Buffer.from(payload) : payload;
  return Buffer.concat([frameHeader(channel, p.length), p]);
}

/** Splits `data` into frames of at most MAX_OUT_FRAME bytes (none for an empty buffer). */
export function encodeChunks(channel: number, data: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let o = 0; o < data.length; o += MAX_OUT_FRAME) out.push(encodeFrame(channel, data.subarray(o, o + MAX_OUT_FRAME)));
  return out;
}

async function exactly(reader: FrameReader, n: number, atStart: boolean): Promise<Buffer | null> {
  const parts: Buffer[] = [];
  let have = 0;
  while (have < n) {
    const b = await reader.readChunk(n - have);
    if (b === null) {
      if (atStart && have === 0) return null;
      throw new FrameError(`connection ended inside a frame (${have} of ${n} bytes)`);
    }
    parts.push(b);
    have += b.length;
  }
  return parts.length === 1 ? parts[0]! : Buffer.concat(parts);
}

/**
 * The next frame, or null at a clean end of stream. `maxPayload` bounds what
 * one frame may announce (the reader never buffers more than that plus its
 * own high-water mark); `allowed` rejects unknown channels before reading
 * their payload.
 */
export async function readFrame(reader: FrameReader, maxPayload: number, allowed?: ReadonlySet<number>): Promise<Frame | null> {
  const h = await exactly(reader, 5, true);
  if (h === null) return null;
  const channel = h.readUInt8(0);
  const length = h.readUInt32BE(1);
  if (allowed && !allowed.has(channel)) throw new FrameError(`unknown channel ${channel}`);
  if (length > maxPayload) throw new FrameError(`frame of ${length} bytes on channel ${channel} exceeds ${maxPayload} bytes`);
  const payload = length === 0 ? Buffer.alloc(0) : await exactly(reader, length, false);
  return { channel, payload: payload! };
}
