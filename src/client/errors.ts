// The client's errors: ClientError and, for the runtime's errors a caller
// tells apart, one subclass each. Apart from index.ts so the handle's modules
// (container.ts, cp.ts, process.ts) need not import the Client they hang off.
import { RuntimeError, type ErrorCode, type WireError } from '../model/errors.js';
import { explain, type Action } from './messages.js';

export type ClientErrorKind =
  | 'runtime'
  | 'permission_denied'
  | 'invalid_protocol_version'
  | 'connect_permission_denied'
  | 'closed'
  | 'lagged_notifications'
  | 'protocol'
  | 'timeout';

export class ClientError extends Error {
  override name = 'ClientError';
  constructor(
    readonly kind: ClientErrorKind,
    message: string,
    /** The runtime's error for kind "runtime". */
    readonly wire?: WireError,
  ) {
    super(message);
  }

  /**
   * The runtime's error as the class of its kind (NotRunningError, ...); with
   * the action that failed, the message says what to do (./messages.ts).
   */
  static runtime(wire: WireError, action?: Action, container?: string): ClientError {
    const Class = RUNTIME_ERRORS[Object.keys(wire)[0] as ErrorCode] ?? ClientError;
    if (action) return new Class('runtime', explain(action, container, wire), wire);
    const [code, fields] = Object.entries(wire)[0] as [ErrorCode, never];
    let msg: string;
    try {
      msg = new RuntimeError(code, fields).message;
    } catch {
      msg = JSON.stringify(wire);
    }
    return new Class('runtime', msg, wire);
  }

  /** The wire error's kind ("stop_container_not_started", ...) for kind "runtime". */
  get code(): ErrorCode | undefined {
    return this.wire ? (Object.keys(this.wire)[0] as ErrorCode) : undefined;
  }
}

/** `invalid_container`: no such container is installed. */
export class NoSuchContainerError extends ClientError {
  override name = 'NoSuchContainerError';
}
/** `stop_container_not_started`: the container is not running (kill, stop, exec, pause, resume). */
export class NotRunningError extends ClientError {
  override name = 'NotRunningError';
}
/** `start_container_started`: it (or another version of it) is already running. */
export class AlreadyRunningError extends ClientError {
  override name = 'AlreadyRunningError';
}
/** `mount_busy`, `umount_busy`: mounted already, or in use by a running container. */
export class BusyError extends ClientError {
  override name = 'BusyError';
}
/** `start_container_failed`, `start_container_resource`, `start_container_missing_resource`. */
export class StartError extends ClientError {
  override name = 'StartError';
}
/** `invalid_repository`: no repository of that name. */
export class NoSuchRepositoryError extends ClientError {
  override name = 'NoSuchRepositoryError';
}

const RUNTIME_ERRORS: Partial<Record<ErrorCode, new (kind: ClientErrorKind, message: string, wire?: WireError) => ClientError>> = {
  invalid_container: NoSuchContainerError,
  stop_container_not_started: NotRunningError,
  start_container_started: AlreadyRunningError,
  mount_busy: BusyError,
  umount_busy: BusyError,
  start_container_failed: StartError,
  start_container_resource: StartError,
  start_container_missing_resource: StartError,
  invalid_repository: NoSuchRepositoryError,
};
