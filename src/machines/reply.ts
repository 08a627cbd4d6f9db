// One-shot replies (Northstar's oneshot channels): every request event carries
// a `reply` that is settled exactly once, with a value or a RuntimeError.
// Machines call replies from actions; they never throw.
import { constants } from 'node:os';

import type { AnyActorRef, EventObject } from 'xstate';

import { Logger } from '../log.js';
import { err, errors, RuntimeError, type ErrorCode, type ExitStatus, type Result, type SystemErrorData } from '../model/errors.js';
import { withResolvers } from '../model/with-resolvers.js';

export { ok } from '../model/errors.js';

export type Reply<T = void> = (outcome: Result<T, RuntimeError>) => void;

const log = new Logger('machines');

/** Any failure as a reply's error (see toRuntimeError). */
export function fail(error: unknown): { ok: false; error: RuntimeError } {
  return err(toRuntimeError(error));
}

/** A failure as event data: system error data, or a RuntimeError's code, message and fields. */
export type FailureData = SystemErrorData & { fields?: unknown };

/** The failure as data (what the actors put into events). */
export function failureData(e: unknown): FailureData {
  if (e instanceof RuntimeError) return { code: e.code, message: e.message, fields: e.fields };
  const err = e as { code?: unknown; message?: unknown; errno?: number; syscall?: string; path?: string };
  const d: FailureData = {
    code: typeof err?.code === 'string' ? err.code : 'unexpected',
    message: typeof err?.message === 'string' ? err.message : String(e),
  };
  if (typeof err?.errno === 'number') d.errno = err.errno;
  if (typeof err?.syscall === 'string') d.syscall = err.syscall;
  if (typeof err?.path === 'string') d.path = err.path;
  return d;
}

/** The RuntimeError a failure's data describes, when it is one. */
export function runtimeErrorOf(d: FailureData): RuntimeError | undefined {
  if (d.fields === undefined || typeof d.fields !== 'object') return undefined;
  try {
    return new RuntimeError(d.code as ErrorCode, d.fields as never);
  } catch {
    return undefined;
  }
}

/**
 * Any failure as a RuntimeError. Errors from actors may be plain data (they
 * crossed a thread: `{code, errno, syscall, path, message}`); their message is
 * kept, the data rides along as the cause.
 */
export function toRuntimeError(e: unknown): RuntimeError {
  if (e instanceof RuntimeError) return e;
  const own = typeof e === 'object' && e !== null ? runtimeErrorOf(e as FailureData) : undefined;
  if (own) return own;
  if (!(e instanceof Error) && typeof e === 'object' && e !== null && typeof (e as { message?: unknown }).message === 'string') {
    return errors.unexpected((e as { message: string }).message, e) as RuntimeError;
  }
  return RuntimeError.from(e);
}

/**
 * Wraps a reply so that a second settlement is caught: it is an invariant
 * break (a machine answered twice), logged loudly and otherwise dropped. A
 * reply that throws (say, a console writing to a closed connection) is logged:
 * it must not take the machine that answered down with it.
 */
export function once<T>(reply: Reply<T>, what = 'request'): Reply<T> {
  let settled = false;
  return (outcome) => {
    if (settled) {
      log.error(`${what}: reply settled twice (dropped ${JSON.stringify(outcome.ok ? 'ok' : outcome.error.code)})`);
      return;
    }
    settled = true;
    try {
      reply(outcome);
    } catch (e) {
      log.warn(`${what}: the reply failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  };
}

/**
 * A reply owned by an actor that may be stopped before it answers: the stop
 * (`signal` aborts) fails it with `error()`; whichever comes first settles it,
 * and what comes after is dropped without a word.
 */
export function untilAborted<T>(reply: Reply<T>, signal: AbortSignal, error: () => unknown): Reply<T> {
  let settled = false;
  const settle: Reply<T> = (outcome) => {
    if (settled) return;
    settled = true;
    signal.removeEventListener('abort', aborted);
    reply(outcome);
  };
  const aborted = () => settle(fail(error()));
  signal.addEventListener('abort', aborted);
  return settle;
}

/** A reply that resolves or rejects a promise. */
export function deferred<T>(): { reply: Reply<T>; promise: Promise<T> } {
  const d = withResolvers<T>();
  return { reply: once((o) => (o.ok ? d.resolve(o.value) : d.reject(o.error)), 'deferred'), promise: d.promise };
}

/** Sends an event carrying a fresh reply to `ref`, and waits for the answer. */
export function ask<T>(ref: AnyActorRef, make: (reply: Reply<T>) => EventObject): Promise<T> {
  const { reply, promise } = deferred<T>();
  ref.send(make(reply));
  return promise;
}

const SIGNAL_NAMES = new Map(Object.entries(constants.signals).map(([name, n]) => [n as number, name]));

/** "SIGTERM" for 15 (the number itself when it has no name). */
export function signalName(signal: number): string {
  return SIGNAL_NAMES.get(signal) ?? String(signal);
}

/** Northstar's display of an exit status: "Exit(0)", "Signalled(SIGTERM)". */
export function statusText(s: ExitStatus): string {
  return 'exit' in s ? `Exit(${s.exit.code})` : `Signalled(${signalName(s.signalled.signal)})`;
}
