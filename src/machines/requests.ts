// The supervisor's requests and their answers: the runtime API behind the
// console (spec/console.md §4.2 plus our additive extensions stop, exec,
// pause, resume, stats). Container names arrive as "name:version" strings; the
// console has already checked their syntax and the permissions.
import type { ExitStatus } from '../model/errors.js';
import type { RuntimeError } from '../model/errors.js';
import type { ContainerData } from '../model/container-data.js';
import type { Notification } from '../model/notification.js';
import type { Executed, Statistics } from './container-events.js';
import type { Reply } from './reply.js';

// The runtime's words for what it tells and what `inspect` answers; the console translates them (console/protocol.ts).
export type { ContainerData, Notification };

export type Request =
  | { type: 'list' }
  | { type: 'repositories' }
  | { type: 'mount'; containers: string[] }
  | { type: 'umount'; containers: string[] }
  | {
      type: 'start';
      container: string;
      /** Override of the manifest init; "<INIT>" inside it stands for the manifest's init. */
      init?: string | null;
      /** Replace the manifest args when non-empty. */
      arguments: string[];
      /** Replace the manifest env when non-empty; NORTHSTAR_* keys are refused. */
      environment: Record<string, string>;
    }
  | { type: 'kill'; container: string; signal: number }
  /** SIGTERM, SIGKILL after `graceMs` if the process is still there; answered with the exit status. */
  | { type: 'stop'; container: string; graceMs: number }
  | { type: 'install'; repository: string; data: AsyncIterable<Buffer | Uint8Array>; size?: number }
  | { type: 'uninstall'; container: string; wipe: boolean }
  | { type: 'inspect'; container: string; categories?: string[] }
  /** `stdio`: the caller's fds for the process's stdin/stdout/stderr (attached exec; the caller keeps and closes them). */
  | { type: 'exec'; container: string; path: string; args: string[]; env: Record<string, string>; stdio?: [number, number, number]; tty?: boolean }
  | { type: 'pause'; container: string }
  | { type: 'resume'; container: string }
  | { type: 'stats'; container: string; categories?: string[] }
  | { type: 'shutdown' };

export type RequestType = Request['type'];

/** One result per container of a mount/umount request, in request order. */
export type ContainerResult = { container: string; ok: true } | { container: string; ok: false; error: RuntimeError };

export interface Responses {
  list: string[];
  repositories: string[];
  mount: ContainerResult[];
  umount: ContainerResult[];
  start: void;
  kill: void;
  stop: ExitStatus;
  /** The installed container's id. */
  install: string;
  uninstall: void;
  inspect: ContainerData;
  exec: Executed;
  pause: void;
  resume: void;
  stats: Statistics;
  shutdown: void;
}

export type ResponseOf<R extends Request> = Responses[R['type']];

/** The one event the runtime sends for a request. */
export interface RequestEvent<R extends Request = Request> {
  type: 'request';
  request: R;
  reply: Reply<ResponseOf<R>>;
}

/** What the supervisor emits: subscribe with onNotification(sup, …) (supervisor.ts), which guards the listener. */
export interface NotificationEvent {
  type: 'notification';
  notification: Notification;
}
