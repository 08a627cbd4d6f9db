// One-shot replies (Northstar's oneshot channels): every request event carries
// a `reply` that is settled exactly once, with a value or a RuntimeError.
// Machines call replies from actions; they never throw.
import { constants } from 'node:os';

import type { AnyActorRef, EventObject } from 'xstate';

import { Logger } from '../log.js';
import { errors, RuntimeError, type ExitStatus } from '../model/errors.js';

export type Outcome<T> = { ok: true; value: T } | { ok: false; error: RuntimeError };
export type Reply<T = void> = (outcome: Outcome<T>) => void;

const log = new Logger('machines');

export function ok<T>(value: T): Outcome<T> {
  return { ok: true, value };
}

export function fail(error: unknown): Outcome<never> {
  return { ok: false, error: toRuntimeError(error) };
}

/**
 * Any failure as a RuntimeError. Errors from actors may be plain data (they
 * crossed a thread: `{code, errno, syscall, path, message}`); their message is
 * kept, the data rides along as the cause.
 */
export function toRuntimeError(e: unknown): RuntimeError {
  if (e instanceof RuntimeError) return e;
  if (!(e instanceof Error) && typeof e === 'object' && e !== null && typeof (e as { message?: unknown }).message === 'string') {
    return errors.unexpected((e as { message: string }).message, e) as RuntimeError;
  }
  return RuntimeError.from(e);
}

/**
 * Wraps a reply so that a second settlement is caught: it is an invariant
 * break (a machine answered twice), logged loudly and otherwise dropped.
 */
export function once<T>(reply: Reply<T>, what = 'request'): Reply<T> {
  let settled = false;
  return (outcome) => {
    if (settled) {
      log.error(`${what}: reply settled twice (dropped ${JSON.stringify(outcome.ok ? 'ok' : outcome.error.code)})`);
      return;
    }
    settled = true;
    reply(outcome);
  };
}

/** A reply that resolves or rejects a promise. */
export function deferred<T>(): { reply: Reply<T>; promise: Promise<T> } {
  let reply!: Reply<T>;
  const promise = new Promise<T>((resolve, reject) => {
    reply = once((o) => (o.ok ? resolve(o.value) : reject(o.error)), 'deferred');
  });
  return { reply, promise };
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
