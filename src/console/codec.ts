// Newline-delimited JSON framing (tokio's LinesCodec + serde_json in
// Northstar) over a byte stream that also carries raw NPK bytes after an
// install request. One reader per connection pulls either a line or a chunk
// of raw bytes from the same buffer, so bytes the line reader already holds
// are handed to the install stream (spec/console.md §4.4 step 4).
import type { Duplex } from 'node:stream';

import { isInteger, isSafeNumber, parse as losslessParse, stringify as losslessStringify } from 'lossless-json';

import type { Message } from './protocol.js';

/** A line (without "\n") was longer than the allowed maximum. */
export class LineTooLong extends Error {
  override name = 'LineTooLong';
  constructor(readonly max: number) {
    super(`line longer than ${max} bytes`);
  }
}

/** No data arrived within the deadline. */
export class ReadTimeout extends Error {
  override name = 'ReadTimeout';
  constructor(readonly ms: number) {
    super(`no data within ${ms} ms`);
  }
}

/**
 * JSON text of a value; a bigint (a u64 counter past 2^53, such as cgroup v1's
 * hierarchical_memory_limit) is written as its exact integer, as serde writes a
 * u64. JSON.stringify refuses bigint: only then the slower lossless writer runs.
 */
export function stringifyJson(v: unknown, space?: number): string {
  try {
    return JSON.stringify(v, null, space);
  } catch (e) {
    if (!(e instanceof TypeError)) throw e;
    const s = losslessStringify(v, null, space);
    if (s === undefined) throw e;
    return s;
  }
}

/** One JSON line of a message. serde writes no spaces; JSON.stringify neither. */
export function encodeMessage(m: Message): string {
  return stringifyJson(m) + '\n';
}

const exactNumber = (s: string): number | bigint => (isInteger(s) && !isSafeNumber(s) ? BigInt(s) : Number(s));

/**
 * Parses JSON keeping integers past 2^53 exact (as bigint; the rest stay
 * numbers). JSON.parse rounds them (9223372036854771712 → ...772000); only a
 * line with a run of 16 digits can hold one, so the rest takes the fast path.
 */
export function parseJson(text: string): unknown {
  if (!/\d{16}/.test(text)) return JSON.parse(text);
  return losslessParse(text, null, exactNumber);
}

/** Parses one line; throws SyntaxError on invalid JSON. */
export function parseLine(line: string): unknown {
  return JSON.parse(line);
}

/**
 * Pulls lines and raw chunks from a stream. The stream is paused while more
 * than `highWater` bytes wait unread, so a fast sender cannot grow memory.
 */
export class FrameReader {
  /**
   * Received bytes as the chunks the socket delivered: appending never
   * copies what is already held (a paused stream holding a MiB would
   * otherwise copy it again for every 64 KiB that arrives).
   */
  private chunks: Buffer[] = [];
  private size = 0;
  private ended = false;
  private failure: Error | undefined;
  private wake: (() => void) | undefined;
  private readonly highWater: number;

  constructor(
    private readonly stream: Duplex,
    readonly maxLine: number,
  ) {
    this.highWater = Math.max(maxLine + 1, 1 << 20);
    stream.on('data', (d: Buffer) => {
      this.chunks.push(d);
      this.size += d.length;
      if (this.size > this.highWater) stream.pause();
      this.notify();
    });
    stream.on('end', () => {
      this.ended = true;
      this.notify();
    });
    stream.on('close', () => {
      this.ended = true;
      this.notify();
    });
    stream.on('error', (e) => {
      this.failure = e;
      this.notify();
    });
  }

  /** Bytes received but not yet read. */
  get buffered(): number {
    return this.size;
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }

  /** The held bytes as one buffer (for line scanning). */
  private get buf(): Buffer {
    if (this.chunks.length > 1) this.chunks = [Buffer.concat(this.chunks)];
    return this.chunks[0] ?? Buffer.alloc(0);
  }

  /** Removes and returns the first `n` bytes (n <= the first chunk's length). */
  private takeHead(n: number): Buffer {
    const head = this.chunks[0]!;
    let out: Buffer;
    if (n === head.length) {
      out = head;
      this.chunks.shift();
    } else {
      out = head.subarray(0, n);
      this.chunks[0] = head.subarray(n);
    }
    this.size -= n;
    if (this.size <= this.highWater && this.stream.isPaused()) this.stream.resume();
    return out;
  }

  private take(n: number): Buffer {
    void this.buf;
    return this.takeHead(n);
  }

  /** Waits for more data, EOF or an error; rejects with ReadTimeout after `timeoutMs`. */
  private more(timeoutMs?: number): Promise<void> {
    return new Promise((resolve, reject) => {
      let timer: NodeJS.Timeout | undefined;
      this.wake = () => {
        if (timer) clearTimeout(timer);
        resolve();
      };
      if (timeoutMs !== undefined) {
        timer = setTimeout(() => {
          this.wake = undefined;
          reject(new ReadTimeout(timeoutMs));
        }, timeoutMs);
      }
      if (this.stream.isPaused() && this.size <= this.highWater) this.stream.resume();
    });
  }

  /**
   * The next line without its "\n" (and a trailing "\r"), or null at EOF.
   * A partial line at EOF is dropped: the peer is gone, nothing could answer it.
   * Throws LineTooLong, ReadTimeout, or the stream's error.
   */
  async readLine(timeoutMs?: number): Promise<string | null> {
    let scanned = 0;
    for (;;) {
      const i = this.buf.indexOf(0x0a, scanned);
      if (i >= 0) {
        let end = i;
        if (end > 0 && this.buf[end - 1] === 0x0d) end--;
        if (end > this.maxLine) throw new LineTooLong(this.maxLine);
        const line = this.take(i + 1).subarray(0, end).toString('utf8');
        return line;
      }
      scanned = this.buf.length;
      if (this.buf.length > this.maxLine + 1) throw new LineTooLong(this.maxLine);
      if (this.failure) throw this.failure;
      if (this.ended) return null;
      await this.more(timeoutMs);
    }
  }

  /** Up to `max` raw bytes, or null at EOF; ReadTimeout when nothing arrives in `timeoutMs`. */
  async readChunk(max: number, timeoutMs?: number): Promise<Buffer | null> {
    for (;;) {
      if (this.size > 0) {
        // At most the first chunk: no copy, and a caller's piece never pins the rest.
        const head = this.chunks[0]!;
        const n = Math.min(max, head.length);
        return n === head.length ? this.takeHead(n) : Buffer.from(this.takeHead(n));
      }
      if (this.failure) throw this.failure;
      if (this.ended) return null;
      await this.more(timeoutMs);
    }
  }

  /**
   * Exactly `size` raw bytes as chunks of at most `chunk` bytes, each arriving
   * within `timeoutMs`. Throws when the stream ends early.
   */
  async *readExactly(size: number, chunk: number, timeoutMs?: number): AsyncGenerator<Buffer> {
    let left = size;
    while (left > 0) {
      const b = await this.readChunk(Math.min(chunk, left), timeoutMs);
      if (b === null) throw new Error(`stream ended with ${left} of ${size} bytes missing`);
      left -= b.length;
      yield b;
    }
  }
}
