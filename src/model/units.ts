// Human durations and byte sizes as Northstar's config and manifests write them.
// Durations follow the humantime crate ("10s", "1m", "500ms", "1h 30m", "2min"):
// integer amounts, a unit is required, components may be separated by spaces.
// Byte sizes follow the bytesize crate: a number (may have a fraction) and an
// optional case-insensitive unit. "k", "kb", "m", "mb", ... are powers of TEN
// ("100MB" = 100000000, "1M" = 1000000); "ki", "kib", "mi", "mib", ... are powers
// of two ("1MiB" = 1048576). A plain integer is a number of bytes.

export class UnitError extends Error {
  override name = 'UnitError';
}

const MS_PER: Record<string, number> = {
  nanos: 1e-6, nsec: 1e-6, ns: 1e-6,
  usec: 1e-3, us: 1e-3, 'µs': 1e-3,
  millis: 1, msec: 1, ms: 1,
  seconds: 1000, second: 1000, secs: 1000, sec: 1000, s: 1000,
  minutes: 60_000, minute: 60_000, mins: 60_000, min: 60_000, m: 60_000,
  hours: 3_600_000, hour: 3_600_000, hrs: 3_600_000, hr: 3_600_000, h: 3_600_000,
  days: 86_400_000, day: 86_400_000, d: 86_400_000,
  weeks: 604_800_000, week: 604_800_000, w: 604_800_000,
  // humantime: a month is 30.44 days, a year 365.25 days.
  months: 2_630_016_000, month: 2_630_016_000, M: 2_630_016_000,
  years: 31_557_600_000, year: 31_557_600_000, y: 31_557_600_000,
};

/** Parses a humantime duration ("10s", "1h 30m", "500ms") into milliseconds (ns/us give fractions). */
export function parseDuration(text: string): number {
  if (typeof text !== 'string') throw new UnitError(`invalid duration ${String(text)}: expected a string such as "10s"`);
  const s = text.trim();
  if (s === '') throw new UnitError('invalid duration "": value was empty');
  const re = /(\d+)\s*([A-Za-zµ]*)\s*/y;
  let total = 0;
  let pos = 0;
  while (pos < s.length) {
    re.lastIndex = pos;
    const m = re.exec(s);
    if (!m) throw new UnitError(`invalid duration "${text}": expected a number at "${s.slice(pos)}"`);
    const [, amount, unit] = m;
    if (unit === '') throw new UnitError(`invalid duration "${text}": time unit needed, for example ${amount}sec or ${amount}ms`);
    const factor = Object.hasOwn(MS_PER, unit!) ? MS_PER[unit!] : undefined;
    if (factor === undefined) throw new UnitError(`invalid duration "${text}": unknown time unit "${unit}", supported units: ns, us, ms, sec, min, hours, days, weeks, months, years (and few variations)`);
    total += Number(amount) * factor;
    pos = re.lastIndex;
  }
  if (!Number.isFinite(total)) throw new UnitError(`invalid duration "${text}": number is too large`);
  return total;
}

const FORMAT_UNITS: [string, number][] = [
  ['y', 31_557_600_000], ['M', 2_630_016_000], ['d', 86_400_000], ['h', 3_600_000],
  ['m', 60_000], ['s', 1000], ['ms', 1], ['us', 1e-3], ['ns', 1e-6],
];

/** Formats milliseconds like humantime's format_duration ("1h 30m", "10s", "0s"); parseDuration reads it back. */
export function formatDuration(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0) throw new UnitError(`cannot format duration ${ms}`);
  // Work in whole nanoseconds so fractions of a millisecond survive.
  let ns = Math.round(ms * 1e6);
  const parts: string[] = [];
  for (const [unit, unitMs] of FORMAT_UNITS) {
    const unitNs = Math.round(unitMs * 1e6);
    const n = Math.floor(ns / unitNs);
    if (n > 0) {
      parts.push(`${n}${unit}`);
      ns -= n * unitNs;
    }
  }
  return parts.length === 0 ? '0s' : parts.join(' ');
}

const BYTE_UNITS: Record<string, number> = {
  b: 1,
  k: 1e3, kb: 1e3, m: 1e6, mb: 1e6, g: 1e9, gb: 1e9, t: 1e12, tb: 1e12, p: 1e15, pb: 1e15,
  ki: 2 ** 10, kib: 2 ** 10, mi: 2 ** 20, mib: 2 ** 20, gi: 2 ** 30, gib: 2 ** 30,
  ti: 2 ** 40, tib: 2 ** 40, pi: 2 ** 50, pib: 2 ** 50,
};

/**
 * Parses a bytesize string ("100MB" = 100000000, "1MiB" = 1048576, "4096") or a
 * non-negative integer into a number of bytes. Results above 2^53 are refused
 * (they could not be represented exactly).
 */
export function parseByteSize(value: string | number | bigint): number {
  if (typeof value === 'number' || typeof value === 'bigint') {
    const n = Number(value);
    if (!Number.isSafeInteger(n) || n < 0) throw new UnitError(`invalid byte size ${String(value)}: expected a non-negative integer`);
    return n;
  }
  if (typeof value !== 'string') throw new UnitError(`invalid byte size ${String(value)}: expected a string such as "100MB"`);
  const m = /^\s*(\d+(?:\.\d*)?|\.\d+)\s*([A-Za-z]*)\s*$/.exec(value);
  if (!m) throw new UnitError(`invalid byte size "${value}": expected a number and a unit such as "100MB" or "1MiB"`);
  const unit = m[2]!.toLowerCase();
  const factor = unit === '' ? 1 : BYTE_UNITS[unit];
  if (factor === undefined) throw new UnitError(`invalid byte size "${value}": unknown unit "${m[2]}" (use B, KB, MB, GB, TB, PB or KiB, MiB, GiB, TiB, PiB)`);
  // bytesize truncates the product towards zero (`(v * unit) as u64`).
  const n = Math.trunc(Number(m[1]) * factor);
  if (!Number.isSafeInteger(n)) throw new UnitError(`invalid byte size "${value}": too large`);
  return n;
}
