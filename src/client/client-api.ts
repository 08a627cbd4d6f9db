// What the Container handle (container.ts) and the copy helpers (cp.ts) use of
// a console client, as an interface: Client (index.ts) implements it, and the
// handle's modules import this instead of index.ts, which re-exports them.
import type { Readable } from 'node:stream';

import type { AttachedStream } from './attached.js';
import type { ClientError } from './errors.js';
import type { ContainerData, ExitStatus, Notification, Request, Response, StatCategory } from '../console/protocol.js';

/** A chunk of a container's output: whole lines, each ending in a newline. */
export interface LogChunk {
  stream: 'stdout' | 'stderr';
  data: Buffer;
}

export interface ClientApi {
  /** Whether this connection receives notifications (`subscribe` at connect). */
  readonly subscribed: boolean;
  /** Opens another connection like this one, for attached requests; unset on a caller's stream. */
  redial?: () => Promise<ClientApi>;
  watch(fn: (n: Notification | ClientError) => void): () => void;
  attach(req: Request): Promise<{ response: Response; stream: AttachedStream }>;
  close(): void;
  start(container: string, o?: { init?: string | null; args?: string[]; env?: Record<string, string> }): Promise<string>;
  kill(container: string, signal?: number): Promise<string>;
  stop(container: string, graceMs: number): Promise<string>;
  pause(container: string): Promise<string>;
  resume(container: string): Promise<string>;
  exec(
    container: string,
    path: string,
    o?: { args?: string[]; env?: Record<string, string>; wait?: boolean },
  ): Promise<{ pid: number; status: ExitStatus | null }>;
  inspect(container: string, statistics?: readonly StatCategory[]): Promise<ContainerData>;
  copyIn(container: string, path: string, data: Readable | Buffer, size: number): Promise<string>;
  copyOut(container: string, path: string): Promise<AttachedStream>;
  logs(container: string, opts?: { tail?: number; follow?: boolean }): Promise<AsyncIterable<LogChunk>>;
}
