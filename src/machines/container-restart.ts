// The restart policy's decisions as pure functions (the container machine
// holds the state): was an exit a failure, is a restart due, and after which
// backoff. Like OTP's supervisor intensity: more than `max_restarts` restarts
// within `within` and the container stays down.
import { exitSuccess, type ExitStatus } from '../model/errors.js';
import type { RestartPolicy } from '../model/manifest.js';
import { statusText } from './reply.js';

/** Why a run ended, as far as the policy cares. */
export type EndCause =
  /** A stop, kill, halt (shutdown, uninstall) request ended it: never restarted. */
  | 'requested'
  /** The health check failed `retries` times in a row: a failure whatever the exit status. */
  | 'unhealthy'
  /** It ended by itself (or could not start). */
  | 'own';

export interface RestartHistory {
  /** now() of each restart within the current window (oldest first). */
  times: number[];
  /** Restarts by the policy since the last start request. */
  count: number;
  lastReason?: string;
}

export type Decision =
  | { kind: 'none' }
  | { kind: 'restart'; delayMs: number; attempt: number; reason: string }
  | { kind: 'give_up'; reason: string };

/** Signals a kill request sends to end a container: after one, the exit is the request's. */
const ENDING_SIGNALS = new Set([1, 2, 3, 9, 15]);

export function endsRun(signal: number): boolean {
  return ENDING_SIGNALS.has(signal);
}

/** Why the run ended, in words (inspect's `last_reason`). */
export function reasonOf(status: ExitStatus | undefined, cause: EndCause): string {
  if (cause === 'unhealthy') return 'unhealthy';
  if (!status) return 'failed to start';
  return statusText(status);
}

/** The backoff before restart number n+1 after n within the window: initial·factor^n, at most max. */
export function backoffMs(policy: RestartPolicy, n: number): number {
  const { initial, max, factor } = policy.backoff;
  return Math.min(max, initial * factor ** n);
}

/**
 * What follows an exit. `status` undefined: the run failed before its
 * process started. `sentSignals`: signals of kill requests during the run
 * (an exit by one of them is the request's, not a failure).
 */
export function decide(
  policy: RestartPolicy | undefined,
  history: RestartHistory,
  now: number,
  status: ExitStatus | undefined,
  cause: EndCause,
  sentSignals: readonly number[] = [],
): Decision {
  if (!policy || policy.policy === 'no' || cause === 'requested') return { kind: 'none' };
  if (status && 'signalled' in status && sentSignals.includes(status.signalled.signal)) return { kind: 'none' };
  const failed = cause === 'unhealthy' || !status || !exitSuccess(status);
  if (policy.policy === 'on-failure' && !failed) return { kind: 'none' };
  const reason = reasonOf(status, cause);
  const recent = recentRestarts(history, now, policy);
  if (recent.length >= policy.max_restarts) return { kind: 'give_up', reason };
  return { kind: 'restart', delayMs: backoffMs(policy, recent.length), attempt: history.count + 1, reason };
}

/** Restart times still inside the window ending now. */
export function recentRestarts(history: RestartHistory, now: number, policy: RestartPolicy): number[] {
  return history.times.filter((t) => now - t < policy.within);
}

/** The history after a restart at `now`. */
export function recordRestart(history: RestartHistory, now: number, policy: RestartPolicy, reason: string): RestartHistory {
  return { times: [...recentRestarts(history, now, policy), now], count: history.count + 1, lastReason: reason };
}

export const NO_RESTARTS: RestartHistory = { times: [], count: 0 };
