// What the console shares with the runtime: the limits of a console, who is
// on the other end of a connection, and the ConsoleBackend the runtime
// implements. Types and two small helpers only.
import type { ConsoleOptions } from '../model/console-options.js';
import type { Frame } from './frames.js';
import type { ContainerData } from '../model/container-data.js';
import type { Notification } from '../model/notification.js';
import type { InstallResult, NetworkInterface, Request, Response, StatCategory } from './protocol.js';

// The model's, shared with the configuration that sets them.
export { DEFAULT_CONSOLE_OPTIONS, DEFAULT_CONSOLE_PORT, type ConsoleOptions } from '../model/console-options.js';

/** Global connections must send `connect` within this time; container connections have no deadline. */
export const HANDSHAKE_TIMEOUT_MS = 10_000;

export type Peer = { type: 'remote'; url: string } | { type: 'container'; container: string };

/** Northstar's Display of a peer: `Remote(tcp://1.2.3.4:5)` or `Container(name:ver)`. */
export function formatPeer(p: Peer): string {
  return p.type === 'remote' ? `Remote(${p.url})` : `Container(${p.container})`;
}

export interface RequestContext {
  peer: Peer;
  /** The container of a container console ("name:version"). */
  container?: string;
}

/**
 * What the runtime provides to the console.
 *
 * - `request` gets every request except `ident`, `token_create`, `token_verify`,
 *   `install` and `inspect` (the server answers the first three, `install`
 *   and `inspect` go to their methods), only after the permission check. It resolves to the matching
 *   Response variant (`{start: {ok|error}}`, `{list: [...]}`, `"shutdown"`...).
 *   A rejection becomes the request's error variant with `unexpected`.
 *   After answering `shutdown` the runtime shuts down and calls `server.close()`.
 * - `install` consumes `data` (exactly `size` bytes in chunks, each chunk
 *   arriving within `npk_stream_timeout`; the iterator throws when the peer is
 *   too slow or goes away). It may stop reading early (e.g. invalid
 *   repository): the server drains the rest before it answers.
 * - `inspect` answers with the runtime's data; the console builds the wire's
 *   ContainerData from it for what the client asked (inspectToWire). A
 *   rejection becomes inspect's error variant.
 * - `subscribe` registers the notification sink; it must not block. The
 *   returned function unsubscribes. Notifications come in the runtime's
 *   words; each connection turns them into the wire's (notificationToWire).
 */
export interface ConsoleBackend {
  request(req: Request, ctx: RequestContext): Promise<Response>;
  install(repository: string, size: number, data: AsyncIterable<Buffer>, ctx: RequestContext): Promise<InstallResult>;
  inspect(container: string, statistics: StatCategory[] | undefined, ctx: RequestContext): Promise<Inspected>;
  subscribe(cb: (n: Notification) => void): () => void;
  /**
   * Attached requests (spec/streams.md: `copy_out`, `exec` with `attach`),
   * after the permission check. A result with a session switches the
   * connection to frames after its `ok` line; without one (an error) the
   * connection stays in JSON mode. Absent: such requests get an error.
   */
  attach?(req: Request, ctx: RequestContext): Promise<AttachResult>;
  /** `copy_in`: consumes exactly `size` tar bytes like `install` consumes an NPK; resolves to the `copy_in` response. */
  copyIn?(req: { container: string; path: string; size: number }, data: AsyncIterable<Buffer>, ctx: RequestContext): Promise<Response>;
}

/** The runtime's inspect answer, with the network namespace's interfaces when asked with the extension. */
export type Inspected = ContainerData & { network?: NetworkInterface[] | null };

export interface FrameIO {
  /** Sends `data` on `channel` in frames of at most 64 KiB; resolves once the socket accepted them. Rejects after the peer left. */
  write(channel: number, data: Buffer): Promise<void>;
  /** The client's frames until it half-closes; throws FrameError on an unknown channel or an oversized frame. */
  frames(): AsyncGenerator<Frame>;
  /** Aborted when the client goes away before the session ended. */
  readonly gone: AbortSignal;
}

/** Runs after the `ok` line; resolves to what channel 3 carries (`{}`, `{"exit":...}`); a throw becomes `{"error":...}`. */
export type AttachedSession = (io: FrameIO) => Promise<unknown>;

/** The backend's answer to an attached request: a refusal has no session and keeps the connection in JSON mode. */
export interface AttachResult {
  response: Response;
  session?: AttachedSession;
}
