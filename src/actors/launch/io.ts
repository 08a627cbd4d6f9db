// A container's stdio (spec/launch.md §5.4): stdin is /dev/null; stdout and
// stderr are discard (/dev/null), pipe (a unix socketpair whose lines are
// logged at info with the container as target — deviation 15) or inherit
// (the runtime's own fd 1/2). Piped streams are read by the output worker
// (output.ts), never on the main thread. Main thread.
import { closeSync, openSync } from 'node:fs';

import type { Output as OutputMode } from '../../model/manifest.js';
import { native } from '../../native.js';
import { defaultOutput, type AttachedStream, type Output, type OutputSink } from '../output/index.js';

export type { OutputSink } from '../output/index.js';

export interface ContainerIo {
  /** fds 0, 1, 2 for the container (runtime copies; closeChildEnds() after spawn). */
  stdio: [number, number, number];
  /** Closes the runtime's copies of what the container got. */
  closeChildEnds(): void;
  /** Resolves when every piped stream reached EOF (all writers are gone) and its lines were written. */
  drained: Promise<void>;
  /** Stops reading (on failure paths); idempotent. */
  close(): void;
}

/** Resolves when every stream ended, or `ms` after the worker took them all at most. */
export function endedWithin(streams: AttachedStream[], ms: number): Promise<void> {
  const ended = Promise.all(streams.map((s) => s.ended)).then(() => undefined);
  // The grace counts from when the worker reads them: a worker still starting is not a writer left behind.
  return Promise.all(streams.map((s) => s.attached)).then(() => {
    let timer: NodeJS.Timeout | undefined;
    const grace = new Promise<void>((resolve) => (timer = setTimeout(resolve, ms)));
    return Promise.race([ended, grace]).finally(() => clearTimeout(timer));
  });
}

/** Sets up stdio; `sink` gets every line of piped streams (default: log at info, target = container). */
export function containerIo(
  container: string,
  io: { stdout: OutputMode; stderr: OutputMode } | undefined,
  sink?: OutputSink,
  outputs: Output = defaultOutput(),
): ContainerIo & { streams: AttachedStream[] } {
  const devnull = openSync('/dev/null', 'r+');
  const childEnds: number[] = [devnull];
  const pipes: { stream: 'stdout' | 'stderr'; fd: number }[] = [];

  const output = (mode: OutputMode, stream: 'stdout' | 'stderr', inheritFd: number): number => {
    if (mode === 'inherit') return inheritFd;
    if (mode !== 'pipe') return devnull;
    const [ours, theirs] = native().socketpair('stream');
    childEnds.push(theirs);
    pipes.push({ stream, fd: ours });
    return theirs;
  };

  let stdio: [number, number, number];
  try {
    stdio = [devnull, output(io?.stdout ?? 'discard', 'stdout', 1), output(io?.stderr ?? 'discard', 'stderr', 2)];
  } catch (e) {
    for (const p of pipes) closeSync(p.fd);
    for (const fd of childEnds) closeSync(fd);
    throw e;
  }
  // Each start begins the container's ring anew (its last run's lines were kept until now).
  const streams = pipes.map((p, i) => outputs.attach({ target: container, stream: p.stream, fd: p.fd, sink, reset: i === 0 }));
  let childClosed = false;
  return {
    stdio,
    streams,
    closeChildEnds() {
      if (childClosed) return;
      childClosed = true;
      for (const fd of childEnds) closeSync(fd);
    },
    drained: Promise.all(streams.map((s) => s.ended)).then(() => undefined),
    close() {
      for (const s of streams) s.close();
    },
  };
}
