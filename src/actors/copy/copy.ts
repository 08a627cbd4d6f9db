// copy_in / copy_out on the main thread's side: opens the container's root
// as /proc/<pid>/root, checks the pid still is the container's, then hands
// the fd to a worker (copy.worker.ts) and moves bytes between it and the
// console with a credit of COPY_WINDOW messages each way.
import { closeSync, constants as C, openSync } from 'node:fs';
import { Worker } from 'node:worker_threads';

import { workerEntry } from '../../threads.js';
import { O_PATH } from '../../native-api/copy.js';

/** Messages in flight between the main thread and a copy worker (each at most 1 MiB). */
export const COPY_WINDOW = 4;

export interface CopyJob {
  op: 'in' | 'out';
  rootFd: number;
  path: string;
  uid: number;
  gid: number;
}

export type ToCopy = { type: 'data'; chunk: Uint8Array } | { type: 'end' } | { type: 'abort' } | { type: 'ack' };
export type FromCopy = { type: 'data'; chunk: Uint8Array } | { type: 'ack' } | { type: 'done' } | { type: 'error'; message: string };

export class CopyFailed extends Error {
  override name = 'CopyFailed';
}

export interface CopyTarget {
  pid: number;
  uid: number;
  gid: number;
  /** Resolves to whether `pid` still is the container's process (checked after the root is open). */
  stillRunning(pid: number): Promise<boolean>;
}

/** An fd of the container's root view; the pid is checked after the open so a reused pid is never trusted. */
export async function openRoot(t: CopyTarget): Promise<number> {
  const fd = openSync(`/proc/${t.pid}/root`, O_PATH | C.O_DIRECTORY);
  if (!(await t.stillRunning(t.pid))) {
    closeSync(fd);
    throw new CopyFailed('the container exited');
  }
  return fd;
}

function start(job: CopyJob): Worker {
  const { filename, workerData } = workerEntry(new URL('./copy.worker.ts', import.meta.url), { ...job });
  return new Worker(new URL(filename), { workerData, resourceLimits: { maxOldGenerationSizeMb: 64 } });
}

/** Waits for the worker's end; rejects with its error message. */
function outcome(w: Worker, onData?: (chunk: Uint8Array) => void, onAck?: () => void): Promise<void> {
  return new Promise((resolve, reject) => {
    w.on('message', (m: FromCopy) => {
      if (m.type === 'data') onData?.(m.chunk);
      else if (m.type === 'ack') onAck?.();
      else if (m.type === 'done') resolve();
      else reject(new CopyFailed(m.message));
    });
    w.on('error', (e) => reject(new CopyFailed(`copy worker: ${e.message}`)));
    w.on('exit', (code) => reject(new CopyFailed(`copy worker exited with ${code}`)));
  });
}

/** Extracts the tar in `data` below `path`; resolves once every file is in place. */
export async function copyIn(t: CopyTarget, path: string, data: AsyncIterable<Buffer>): Promise<void> {
  const rootFd = await openRoot(t);
  const w = start({ op: 'in', rootFd, path, uid: t.uid, gid: t.gid });
  let credit = COPY_WINDOW;
  let wake: (() => void) | undefined;
  let finished = false;
  const done = outcome(w, undefined, () => {
    credit++;
    wake?.();
  });
  done.then(
    () => ((finished = true), wake?.()),
    () => ((finished = true), wake?.()),
  );
  try {
    try {
      for await (const chunk of data) {
        while (credit <= 0 && !finished) await new Promise<void>((r) => (wake = r));
        if (finished) break; // the worker failed: the connection drains the rest
        credit--;
        // Moved, not cloned: a clone of a view copies its whole ArrayBuffer, which may be a shared pool.
        const own = chunk.byteOffset === 0 && chunk.byteLength === chunk.buffer.byteLength && !(chunk.buffer instanceof SharedArrayBuffer);
        const moved = own ? chunk : new Uint8Array(chunk);
        w.postMessage({ type: 'data', chunk: moved } satisfies ToCopy, [moved.buffer as ArrayBuffer]);
      }
      if (!finished) w.postMessage({ type: 'end' } satisfies ToCopy);
    } catch (e) {
      w.postMessage({ type: 'abort' } satisfies ToCopy);
      await done.catch(() => undefined);
      throw e;
    }
    await done;
  } finally {
    await w.terminate();
    closeSync(rootFd);
  }
}

/** Streams a tar of `path` to `write` (which applies the client's backpressure). */
export async function copyOut(t: CopyTarget, path: string, write: (b: Buffer) => Promise<void>, gone: AbortSignal): Promise<void> {
  const rootFd = await openRoot(t);
  const w = start({ op: 'out', rootFd, path, uid: t.uid, gid: t.gid });
  let chain = Promise.resolve();
  let writeFailure: unknown;
  const done = outcome(w, (chunk) => {
    chain = chain.then(async () => {
      if (writeFailure) return;
      try {
        await write(Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));
        w.postMessage({ type: 'ack' } satisfies ToCopy);
      } catch (e) {
        writeFailure = e;
      }
    });
  });
  const onGone = () => void w.terminate();
  gone.addEventListener('abort', onGone);
  try {
    await done;
    await chain;
    if (writeFailure) throw writeFailure;
  } finally {
    gone.removeEventListener('abort', onGone);
    await w.terminate();
    closeSync(rootFd);
  }
}
