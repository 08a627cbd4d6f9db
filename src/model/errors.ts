// One runtime error type; its codes are the wire error names of Northstar's
// model::Error (spec/repositories.md §7, spec/console.md §4.2). Internal causes
// stay internal: toWire() is the single conversion to what clients see.

/** How a container process ended (wire shape). */
export type ExitStatus = { exit: { code: number } } | { signalled: { signal: number } };

export function exitSuccess(s: ExitStatus): boolean {
  return 'exit' in s && s.exit.code === 0;
}

/** The wire form of an error: externally tagged, snake_case. */
export type WireError =
  | { configuration: { context: string } }
  | { duplicate_container: { container: string } }
  | { invalid_container: { container: string } }
  | { invalid_arguments: { cause: string } }
  | { mount_busy: { container: string } }
  | { umount_busy: { container: string } }
  | { start_container_started: { container: string } }
  | { start_container_resource: { container: string } }
  | { start_container_missing_resource: { container: string; resource: string; version: string } }
  | { start_container_failed: { container: string; error: string } }
  | { stop_container_not_started: { container: string } }
  | { invalid_repository: { repository: string } }
  | { install_duplicate: { container: string } }
  | { critical_container: { container: string; status: ExitStatus } }
  | { unexpected: { error: string } };

export type ErrorCode = WireError extends infer W ? (W extends Record<infer K, unknown> ? K & string : never) : never;

/** A system error as it crosses threads: shaped like Node's own. */
export interface SystemErrorData {
  code: string;
  errno?: number;
  syscall?: string;
  path?: string;
  message: string;
}

/**
 * A value or an error, as data: what crosses threads (never a thrown error with
 * custom properties; E is then SystemErrorData or a richer failure record) and
 * what a machine's reply carries (E is RuntimeError there).
 */
export type Result<T, E = SystemErrorData> = { ok: true; value: T } | { ok: false; error: E };

export function ok<T>(value: T): { ok: true; value: T } {
  return { ok: true, value };
}

export function err<E>(error: E): { ok: false; error: E } {
  return { ok: false, error };
}

// Distributive: FieldsOf<ErrorCode> is the union of every variant's fields.
type FieldsOf<C extends ErrorCode> = C extends ErrorCode ? Extract<WireError, Record<C, unknown>>[C] : never;

const MESSAGES: { [C in ErrorCode]: (f: FieldsOf<C>) => string } = {
  configuration: (f) => `invalid configuration: ${f.context}`,
  duplicate_container: (f) => `duplicate container ${f.container}`,
  invalid_container: (f) => `invalid container ${f.container}`,
  invalid_arguments: (f) => `invalid arguments ${f.cause}`,
  mount_busy: (f) => `container ${f.container} cannot be mounted: busy`,
  umount_busy: (f) => `container ${f.container} cannot be unmounted: busy`,
  start_container_started: (f) => `container ${f.container} failed to start: already started`,
  start_container_resource: (f) => `container ${f.container} failed to start: resources failed to mount`,
  start_container_missing_resource: (f) =>
    `container ${f.container} failed to start: resource ${f.resource} version ${f.version} is missing`,
  start_container_failed: (f) => `container ${f.container} failed to start: ${f.error}`,
  stop_container_not_started: (f) => `container ${f.container} failed to stop`,
  invalid_repository: (f) => `invalid repository ${f.repository}`,
  install_duplicate: (f) => `failed to install ${f.container}: already installed`,
  critical_container: (f) => `critical container failure: ${f.container}`,
  unexpected: (f) => f.error,
};

export class RuntimeError<C extends ErrorCode = ErrorCode> extends Error {
  /** An error of a failed rollback, kept beside the original. */
  cleanup?: unknown;

  constructor(
    readonly code: C,
    readonly fields: FieldsOf<C>,
    options?: { cause?: unknown; cleanup?: unknown },
  ) {
    super(MESSAGES[code](fields as never), options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'RuntimeError';
    if (options?.cleanup !== undefined) this.cleanup = options.cleanup;
  }

  /** The container this error is about, when it names one. */
  get container(): string | undefined {
    const f = this.fields as { container?: unknown };
    return typeof f.container === 'string' ? f.container : undefined;
  }

  toWire(): WireError {
    return { [this.code]: this.fields } as unknown as WireError;
  }

  /** The error a wire error stands for (e.g. to log what a client was answered). */
  static fromWire(w: WireError): RuntimeError {
    const [code, fields] = Object.entries(w)[0] as [ErrorCode, never];
    return new RuntimeError(code, fields);
  }

  /** Any thrown value as a RuntimeError (unknown errors become `unexpected`). */
  static from(e: unknown): RuntimeError {
    if (e instanceof RuntimeError) return e;
    const msg = e instanceof Error ? e.message : String(e);
    return new RuntimeError('unexpected', { error: msg }, { cause: e });
  }
}

/** Shorthand constructors, named after the wire codes. */
export const errors = {
  configuration: (context: string) => new RuntimeError('configuration', { context }),
  invalidContainer: (container: string) => new RuntimeError('invalid_container', { container }),
  invalidArguments: (cause: string) => new RuntimeError('invalid_arguments', { cause }),
  mountBusy: (container: string) => new RuntimeError('mount_busy', { container }),
  umountBusy: (container: string) => new RuntimeError('umount_busy', { container }),
  started: (container: string) => new RuntimeError('start_container_started', { container }),
  isResource: (container: string) => new RuntimeError('start_container_resource', { container }),
  missingResource: (container: string, resource: string, version: string) =>
    new RuntimeError('start_container_missing_resource', { container, resource, version }),
  startFailed: (container: string, error: string, cause?: unknown) =>
    new RuntimeError('start_container_failed', { container, error }, { cause }),
  notStarted: (container: string) => new RuntimeError('stop_container_not_started', { container }),
  invalidRepository: (repository: string) => new RuntimeError('invalid_repository', { repository }),
  installDuplicate: (container: string) => new RuntimeError('install_duplicate', { container }),
  critical: (container: string, status: ExitStatus) => new RuntimeError('critical_container', { container, status }),
  unexpected: (error: string, cause?: unknown) => new RuntimeError('unexpected', { error }, { cause }),
};

/** A Node-style Error from system error data (the message reads "mount `/x`: Device or resource busy"). */
export function systemError(d: SystemErrorData): NodeJS.ErrnoException {
  const e = new Error(d.message) as NodeJS.ErrnoException;
  e.code = d.code;
  if (d.errno !== undefined) e.errno = d.errno;
  if (d.syscall !== undefined) e.syscall = d.syscall;
  if (d.path !== undefined) e.path = d.path;
  return e;
}
