// Pure pieces of container output handling, shared by the output worker and
// its tests: a line splitter with a bounded line and a byte-bounded ring of
// recent lines. No I/O; any thread.
import { StringDecoder } from 'node:string_decoder';

const MAX_LINE = 64 * 1024;

/** Splits a byte stream into lines (at most MAX_LINE characters); a trailing partial line is flushed at end(). */
export class LineSplitter {
  private rest = '';
  // A multi-byte character may be split across chunks.
  private readonly decoder = new StringDecoder('utf8');
  constructor(private readonly onLine: (line: string) => void) {}

  push(chunk: Buffer): void {
    const text = this.rest + this.decoder.write(chunk);
    const lines = text.split('\n');
    this.rest = lines.pop() ?? '';
    for (const l of lines) this.onLine(l);
    // A container that never writes a newline must not grow our memory.
    if (this.rest.length >= MAX_LINE) {
      this.onLine(this.rest);
      this.rest = '';
    }
  }

  end(): void {
    this.rest += this.decoder.end();
    if (this.rest !== '') this.onLine(this.rest);
    this.rest = '';
  }
}

export type StreamName = 'stdout' | 'stderr';

export interface OutputLine {
  stream: StreamName;
  line: string;
}

// What one entry costs beyond its characters (object, array slot): counted so
// that a flood of empty lines is bounded too.
const ENTRY_OVERHEAD = 32;

/** The last lines of one container's output, both streams together, at most `capacity` bytes (approximately: characters + a fixed cost per line). */
export class OutputRing {
  private entries: OutputLine[] = [];
  private head = 0;
  private bytes = 0;

  constructor(readonly capacity: number) {}

  push(stream: StreamName, line: string): void {
    // A line larger than the whole ring keeps its end, like a terminal's scrollback.
    const kept = line.length + ENTRY_OVERHEAD > this.capacity ? line.slice(-(this.capacity - ENTRY_OVERHEAD)) : line;
    if (kept.length + ENTRY_OVERHEAD > this.capacity) return;
    this.entries.push({ stream, line: kept });
    this.bytes += kept.length + ENTRY_OVERHEAD;
    while (this.bytes > this.capacity) {
      this.bytes -= this.entries[this.head].line.length + ENTRY_OVERHEAD;
      this.head++;
    }
    // Drop the evicted slots now and then, not on every line.
    if (this.head > 1024 && this.head * 2 > this.entries.length) {
      this.entries = this.entries.slice(this.head);
      this.head = 0;
    }
  }

  /** The last `count` lines (all when omitted), oldest first. */
  tail(count?: number): OutputLine[] {
    const live = this.entries.length - this.head;
    const n = count === undefined ? live : Math.max(0, Math.min(count, live));
    return this.entries.slice(this.entries.length - n);
  }

  /** Bytes held (approximately, as counted against the capacity). */
  get size(): number {
    return this.bytes;
  }
}
