// One small logger. Lines look like Northstar's:
//   09:12:03.412 hello-world:0.0.1 INFO: Hello from hello-world
// The target is the module or, for container output, the container id.
import { channel } from 'node:diagnostics_channel';
import { LEVELS, type Level } from './model/log-level.js';

export { LEVELS, type Level };

export interface LogRecord {
  time: Date;
  level: Level;
  target: string;
  message: string;
}

/** Every record, also those below the printed level, for tests and tools that want them. */
export const logChannel = channel('nstar:log');

/** The fd the log goes to (stderr): the output worker writes container lines to it with fs.write. */
export const LOG_FD = 2;

let threshold: number = LEVELS.indexOf(parseLevel(process.env.NSTAR_LOG) ?? 'info');
let stderrGuarded = false;
const toStderr = (line: string) => {
  // A log reader that went away (EPIPE) must not take the daemon down with an
  // unhandled 'error': the lines are lost, the runtime goes on.
  if (!stderrGuarded) {
    stderrGuarded = true;
    process.stderr.on('error', () => undefined);
  }
  process.stderr.write(line + '\n');
};
let sink: (line: string) => void = toStderr;

export function parseLevel(s: string | undefined): Level | undefined {
  if (!s) return undefined;
  const l = s.toLowerCase();
  return (LEVELS as readonly string[]).includes(l) ? (l as Level) : undefined;
}

export function setLevel(level: Level): void {
  threshold = LEVELS.indexOf(level);
}

export function setSink(fn: (line: string) => void): void {
  sink = fn;
}

/** True when records of `level` are printed. */
export function enabled(level: Level): boolean {
  return LEVELS.indexOf(level) <= threshold;
}

/** The sink set with setSink, or undefined while the log goes to LOG_FD. */
export function customSink(): ((line: string) => void) | undefined {
  return sink === toStderr ? undefined : sink;
}

function stamp(d: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/** One printed log line, without its newline. */
export function formatLine(time: Date, level: Level, target: string, message: string): string {
  return `${stamp(time)} ${target} ${level.toUpperCase()}: ${message}`;
}

export class Logger {
  constructor(readonly target: string) {}

  child(target: string): Logger {
    return new Logger(target);
  }

  log(level: Level, message: string): void {
    const rec: LogRecord = { time: new Date(), level, target: this.target, message };
    if (logChannel.hasSubscribers) logChannel.publish(rec);
    if (LEVELS.indexOf(level) > threshold) return;
    sink(formatLine(rec.time, level, this.target, message));
  }

  error(m: string): void { this.log('error', m); }
  warn(m: string): void { this.log('warn', m); }
  info(m: string): void { this.log('info', m); }
  debug(m: string): void { this.log('debug', m); }
  trace(m: string): void { this.log('trace', m); }
}

export const log = new Logger('northstar');
