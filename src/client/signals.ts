// Signals as the client's callers name them: a number or a Linux name ("TERM",
// "SIGUSR1"). Pure; used by the Container handle and its processes.
/** A signal as a number or a name: 15, "TERM", "SIGTERM". */
export type Signal = number | string;

const SIGNALS: Record<string, number> = {
  SIGHUP: 1, SIGINT: 2, SIGQUIT: 3, SIGILL: 4, SIGTRAP: 5, SIGABRT: 6, SIGBUS: 7, SIGFPE: 8, SIGKILL: 9, SIGUSR1: 10,
  SIGSEGV: 11, SIGUSR2: 12, SIGPIPE: 13, SIGALRM: 14, SIGTERM: 15, SIGSTKFLT: 16, SIGCHLD: 17, SIGCONT: 18, SIGSTOP: 19,
  SIGTSTP: 20, SIGTTIN: 21, SIGTTOU: 22, SIGURG: 23, SIGXCPU: 24, SIGXFSZ: 25, SIGVTALRM: 26, SIGPROF: 27, SIGWINCH: 28,
  SIGIO: 29, SIGPWR: 30, SIGSYS: 31,
};

/** The number of a Linux signal given by number or name. Throws a TypeError naming a bad one. */
export function signalNumber(s: Signal): number {
  if (typeof s === 'number') {
    if (!Number.isInteger(s) || s < 1 || s > 64) throw new TypeError(`invalid signal number ${s}: expected 1..64`);
    return s;
  }
  const up = s.trim().toUpperCase();
  const n = SIGNALS[up.startsWith('SIG') ? up : `SIG${up}`];
  if (n === undefined) throw new TypeError(`unknown signal "${s}" (examples: "TERM", "SIGUSR1", 9)`);
  return n;
}
