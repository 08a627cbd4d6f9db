// The client side of attached requests (spec/streams.md): after the `ok`
// line the connection carries frames only. Reading is pull-based (the
// socket pauses while frames wait unread), writing waits for the socket to
// drain: backpressure both ways.
import type { Duplex } from 'node:stream';

import type { FrameReader } from '../console/codec.js';
import { CH_CLOSE, CH_END, CH_RESIZE, CH_SIGNAL, CH_STDIN, encodeFrame, readFrame, type Frame } from '../console/frames.js';

export { CH_END, CH_STDERR, CH_STDIN, CH_STDOUT } from '../console/frames.js';
export type { Frame } from '../console/frames.js';

/** Daemon frames are at most 64 KiB; we accept up to this much to stay tolerant yet bounded. */
const MAX_FRAME = 16 * 1024 * 1024;

export class AttachedStream {
  /** Channel 3's JSON once it arrived. */
  end: unknown;

  constructor(
    private readonly reader: FrameReader,
    private readonly stream: Duplex,
  ) {}

  /** The daemon's frames in order, channel 3 last; ends when the daemon closes. */
  async *frames(): AsyncGenerator<Frame> {
    for (;;) {
      const f = await readFrame(this.reader, MAX_FRAME);
      if (f === null) return;
      if (f.channel === CH_END) this.end = JSON.parse(f.payload.toString('utf8')) as unknown;
      yield f;
      if (f.channel === CH_END) return;
    }
  }

  /** Sends one frame; resolves when the socket took it. */
  send(channel: number, payload: Buffer | string): Promise<void> {
    return new Promise((resolve, reject) => {
      if (this.stream.destroyed || this.stream.writableEnded) return reject(new Error('connection closed'));
      if (this.stream.write(encodeFrame(channel, payload))) return resolve();
      const done = (e?: Error) => {
        this.stream.off('drain', onDrain);
        this.stream.off('close', onClose);
        if (e) reject(e);
        else resolve();
      };
      const onDrain = () => done();
      const onClose = () => done(new Error('connection closed'));
      this.stream.on('drain', onDrain);
      this.stream.on('close', onClose);
    });
  }

  /** stdin bytes, in frames of at most 64 KiB. */
  async stdin(data: Buffer): Promise<void> {
    for (let o = 0; o < data.length; o += 64 * 1024) await this.send(CH_STDIN, data.subarray(o, o + 64 * 1024));
  }

  closeStdin(): Promise<void> {
    return this.send(CH_CLOSE, Buffer.from([CH_STDIN]));
  }

  resize(cols: number, rows: number): Promise<void> {
    return this.send(CH_RESIZE, JSON.stringify({ cols, rows }));
  }

  signal(signal: number): Promise<void> {
    return this.send(CH_SIGNAL, JSON.stringify({ signal }));
  }

  /** Ends the session from our side (the daemon then ends the process). */
  close(): void {
    this.stream.destroy();
  }

  /** Collects channels 1 and 2 and the end (small outputs: tests, `exec` without a terminal into memory). */
  async collect(): Promise<{ stdout: Buffer; stderr: Buffer; end: unknown }> {
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    for await (const f of this.frames()) {
      if (f.channel === 1) out.push(f.payload);
      else if (f.channel === 2) err.push(f.payload);
    }
    return { stdout: Buffer.concat(out), stderr: Buffer.concat(err), end: this.end };
  }
}
