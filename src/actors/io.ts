// A container's stdio (spec/launch.md §5.4): stdin is /dev/null; stdout and
// stderr are discard (/dev/null), pipe (a unix socketpair whose lines are
// logged at info with the container as target — deviation 15) or inherit
// (the runtime's own fd 1/2). Main thread.
import { closeSync, openSync } from 'node:fs';
import { StringDecoder } from 'node:string_decoder';

import { Logger } from '../log.js';
import type { Output } from '../model/manifest.js';
import { native } from '../native.js';

/** Splits a byte stream into lines; a trailing partial line is flushed at end(). */
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
  }

  end(): void {
    this.rest += this.decoder.end();
    if (this.rest !== '') this.onLine(this.rest);
    this.rest = '';
  }
}

export interface ContainerIo {
  /** fds 0, 1, 2 for the container (runtime copies; closeChildEnds() after spawn). */
  stdio: [number, number, number];
  /** Closes the runtime's copies of what the container got. */
  closeChildEnds(): void;
  /** Resolves when every piped stream reached EOF (all writers are gone). */
  drained: Promise<void>;
  /** Stops reading (on failure paths); idempotent. */
  close(): void;
}

export interface OutputSink {
  (stream: 'stdout' | 'stderr', line: string): void;
}

/** Sets up stdio; `sink` gets every line of piped streams (default: log at info, target = container). */
export function containerIo(container: string, io: { stdout: Output; stderr: Output } | undefined, sink?: OutputSink): ContainerIo {
  const log = new Logger(container);
  const emit: OutputSink = sink ?? ((_s, line) => log.info(line));
  const devnull = openSync('/dev/null', 'r+');
  const childEnds: number[] = [devnull];
  const watches: { close(): void }[] = [];
  const waits: Promise<void>[] = [];

  const output = (mode: Output, stream: 'stdout' | 'stderr', inheritFd: number): number => {
    if (mode === 'inherit') return inheritFd;
    if (mode !== 'pipe') return devnull;
    const [ours, theirs] = native().socketpair('stream');
    childEnds.push(theirs);
    const lines = new LineSplitter((l) => emit(stream, l));
    waits.push(
      new Promise<void>((resolve) => {
        watches.push(
          native().watchMessages(ours, (chunk) => {
            if (chunk) return lines.push(chunk);
            lines.end();
            resolve();
          }),
        );
      }),
    );
    return theirs;
  };

  let stdio: [number, number, number];
  try {
    stdio = [devnull, output(io?.stdout ?? 'discard', 'stdout', 1), output(io?.stderr ?? 'discard', 'stderr', 2)];
  } catch (e) {
    for (const w of watches) w.close();
    for (const fd of childEnds) closeSync(fd);
    throw e;
  }
  let childClosed = false;
  return {
    stdio,
    closeChildEnds() {
      if (childClosed) return;
      childClosed = true;
      for (const fd of childEnds) closeSync(fd);
    },
    drained: Promise.all(waits).then(() => undefined),
    close() {
      for (const w of watches.splice(0)) w.close();
    },
  };
}
