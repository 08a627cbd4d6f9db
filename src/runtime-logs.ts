// The `logs` console request (spec/streams.md "Logs"): a container's ring of
// recent output as frames, then with `follow` its new lines until it exits
// or the client closes. The lines come from the output worker
// (src/actors/output/output.ts); this module only bounds what waits for the client.
// Main thread.
import type { AttachResult, FrameIO } from './console/attached.js';
import { CH_STDERR, CH_STDOUT } from './console/frames.js';
import type { Output, OutputLine } from './actors/output/index.js';
import { onNotification, request, type Supervisor } from './machines/supervisor.js';
import { errors, RuntimeError, type ExitStatus } from './model/errors.js';

/**
 * Characters a follower may have waiting for its client, beyond what the socket
 * holds; above it the follower is dropped, like a lagging notification subscriber.
 */
export const FOLLOW_LIMIT = 1 << 20;
/** At the container's exit, how long its last lines may take to reach us (a descendant may keep its pipes open). */
const DRAIN_GRACE_MS = 1000;

type LogsBody = { container: string; tail?: number; follow?: boolean };

const channelOf = (l: OutputLine) => (l.stream === 'stderr' ? CH_STDERR : CH_STDOUT);

/** Writes lines in order, consecutive lines of one stream in one write (io.write splits into frames). */
export async function writeLines(io: FrameIO, lines: OutputLine[]): Promise<void> {
  let i = 0;
  while (i < lines.length) {
    const ch = channelOf(lines[i]!);
    let text = '';
    while (i < lines.length && channelOf(lines[i]!) === ch && text.length < 64 << 10) text += lines[i++]!.line + '\n';
    await io.write(ch, Buffer.from(text));
  }
}

export async function logsRequest(sup: Supervisor, output: Output, r: LogsBody): Promise<AttachResult> {
  const { container } = r;
  const refuse = (e: unknown): AttachResult => ({ response: { logs: { error: { container, error: RuntimeError.from(e).toWire() } } } });
  // Listening before the inspect: an exit between the two is not missed.
  let exited: ExitStatus | undefined;
  let onExit: (() => void) | undefined;
  const sub = onNotification(sup, (n) => {
    if (n.type === 'exit' && n.container === container) {
      exited = n.status;
      onExit?.();
    }
  });
  let follow: boolean;
  try {
    const d = await request(sup, { type: 'inspect', container, categories: [] });
    const io = d.manifest.io;
    if (io?.stdout !== 'pipe' && io?.stderr !== 'pipe') {
      throw errors.unexpected(`the output of ${container} is not captured: neither its io.stdout nor its io.stderr is \`pipe\``);
    }
    follow = r.follow === true && d.process !== null && d.process !== undefined && exited === undefined;
  } catch (e) {
    sub.unsubscribe();
    return refuse(e);
  }
  if (!follow) {
    sub.unsubscribe();
    let lines: OutputLine[];
    try {
      lines = await output.tail(container, r.tail);
    } catch (e) {
      return refuse(e);
    }
    return {
      response: { logs: { ok: { container } } },
      session: async (io) => {
        await writeLines(io, lines);
        return {};
      },
    };
  }

  // Follow: what the client has not taken yet waits here, bounded.
  let queue: OutputLine[] = [];
  let queued = 0;
  let wake: (() => void) | undefined;
  let failure: Error | undefined;
  let fail!: (e: Error) => void;
  // A write blocked on a client that does not read must not keep the session: it races this.
  const failed = new Promise<never>((_, reject) => (fail = reject));
  failed.catch(() => undefined);
  const stopWith = (e: Error) => {
    failure ??= e;
    fail(failure);
    wake?.();
  };
  let follower: Awaited<ReturnType<Output['follow']>>;
  try {
    follower = await output.follow(container, r.tail, {
      line(l) {
        if (failure) return;
        queue.push(l);
        queued += l.line.length + 1;
        if (queued > FOLLOW_LIMIT) {
          queue = [];
          queued = 0;
          stopWith(errors.unexpected(`logs of ${container}: dropped, the client did not read (more than ${FOLLOW_LIMIT} bytes waiting)`));
        }
        wake?.();
      },
      lost: (e) => stopWith(errors.unexpected(`logs of ${container}: ${e.message}`)),
    });
  } catch (e) {
    sub.unsubscribe();
    return refuse(e);
  }
  let ended = false;
  onExit = () => {
    // Its last lines reach the ring (and us) once its pipes are read to their end.
    const grace = new Promise<void>((res) => setTimeout(res, DRAIN_GRACE_MS).unref());
    void Promise.race([output.drained(container), grace]).then(() => {
      ended = true;
      wake?.();
    });
  };
  if (exited !== undefined) onExit();
  return {
    response: { logs: { ok: { container } } },
    session: async (io) => {
      const gone = () => wake?.();
      io.gone.addEventListener('abort', gone);
      try {
        await Promise.race([writeLines(io, follower.tail), failed]);
        for (;;) {
          if (failure) throw failure;
          if (io.gone.aborted) return {};
          if (queue.length > 0) {
            const batch = queue;
            queue = [];
            queued = 0;
            await Promise.race([writeLines(io, batch), failed]);
            continue;
          }
          if (ended) return exited ?? {};
          await new Promise<void>((res) => (wake = res));
          wake = undefined;
        }
      } finally {
        io.gone.removeEventListener('abort', gone);
        follower.stop();
        sub.unsubscribe();
      }
    },
  };
}
