// The log levels, most severe first: the configuration's `log.level` (config.ts)
// and the logger (src/log.ts) share them.
export const LEVELS = ['error', 'warn', 'info', 'debug', 'trace'] as const;
export type Level = (typeof LEVELS)[number];
