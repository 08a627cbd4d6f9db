// One small logger. Lines look like Northstar's:
//   09:12:03.412 hello-world:0.0.1 INFO: Hello from hello-world
// The target is the module or, for container output, the container id.
import { channel } from 'node:diagnostics_channel';

export const LEVELS = ['error', 'warn', 'info', 'debug', 'trace'] as const;
export type Level = (typeof LEVELS)[number];

export interface LogRecord {
  time: Date;
  level: Level;
  target: string;
  message: string;
}

/** Every record, also those below the printed level, for tests and tools that want them. */
export const logChannel = channel('nstar:log');

let threshold: number = LEVELS.indexOf(parseLevel(process.env.NSTAR_LOG) ?? 'info');
let sink: (line: string) => void = (line) => process.stderr.write(line + '\n');

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

function stamp(d: Date): string {
  const p = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
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
    sink(`${stamp(rec.time)} ${this.target} ${level.toUpperCase()}: ${message}`);
  }

  error(m: string): void { this.log('error', m); }
  warn(m: string): void { this.log('warn', m); }
  info(m: string): void { this.log('info', m); }
  debug(m: string): void { this.log('debug', m); }
  trace(m: string): void { this.log('trace', m); }
}

export const log = new Logger('northstar');
