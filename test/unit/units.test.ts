import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { formatDuration, parseByteSize, parseDuration, UnitError } from '../../src/model/units.js';

describe('parseDuration', () => {
  it('reads single humantime components', () => {
    assert.equal(parseDuration('10s'), 10_000);
    assert.equal(parseDuration('1m'), 60_000);
    assert.equal(parseDuration('2min'), 120_000);
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('1h'), 3_600_000);
    assert.equal(parseDuration('3days'), 3 * 86_400_000);
    assert.equal(parseDuration('1500us'), 1.5);
  });

  it('adds components separated by spaces or written together', () => {
    assert.equal(parseDuration('1h 30m'), 5_400_000);
    assert.equal(parseDuration('1h30m'), 5_400_000);
    assert.equal(parseDuration('  1m 5s 250ms '), 65_250);
  });

  it('tells minutes (m) from months (M)', () => {
    assert.equal(parseDuration('1M'), 2_630_016_000);
  });

  it('refuses a number without a unit, naming the need for one', () => {
    assert.throws(() => parseDuration('10'), /time unit needed/);
  });

  it('refuses unknown units, fractions and empty text', () => {
    assert.throws(() => parseDuration('10parsecs'), /unknown time unit "parsecs"/);
    assert.throws(() => parseDuration('1.5s'), UnitError);
    assert.throws(() => parseDuration(''), /empty/);
    assert.throws(() => parseDuration('s'), /expected a number/);
  });
});

describe('formatDuration', () => {
  it('writes humantime text that parses back to the same value', () => {
    for (const ms of [0, 1, 500, 10_000, 60_000, 5_400_000, 65_250, 86_400_000 + 1, 0.5]) {
      assert.equal(parseDuration(formatDuration(ms)), ms);
    }
    assert.equal(formatDuration(5_400_000), '1h 30m');
    assert.equal(formatDuration(10_000), '10s');
    assert.equal(formatDuration(0), '0s');
    assert.equal(formatDuration(1500), '1s 500ms');
  });

  it('refuses negative durations', () => {
    assert.throws(() => formatDuration(-1), UnitError);
  });
});

describe('parseByteSize', () => {
  it('reads decimal units as powers of ten like the bytesize crate', () => {
    assert.equal(parseByteSize('100MB'), 100_000_000);
    assert.equal(parseByteSize('100kB'), 100_000);
    assert.equal(parseByteSize('100GB'), 100_000_000_000);
    assert.equal(parseByteSize('1M'), 1_000_000);
    assert.equal(parseByteSize('10 mb'), 10_000_000);
  });

  it('reads binary units as powers of two', () => {
    assert.equal(parseByteSize('1MiB'), 1_048_576);
    assert.equal(parseByteSize('1Mi'), 1_048_576);
    assert.equal(parseByteSize('256MiB'), 256 * 1024 * 1024);
    assert.equal(parseByteSize('4KiB'), 4096);
  });

  it('reads plain integers, numbers and fractions', () => {
    assert.equal(parseByteSize('4096'), 4096);
    assert.equal(parseByteSize('4096B'), 4096);
    assert.equal(parseByteSize(20_480_000), 20_480_000);
    assert.equal(parseByteSize(10n), 10);
    assert.equal(parseByteSize('1.5KB'), 1500);
  });

  it('refuses unknown units, negative numbers and garbage, naming the value', () => {
    assert.throws(() => parseByteSize('10 parsecs'), /unknown unit "parsecs"/);
    assert.throws(() => parseByteSize('-1'), /"-1"/);
    assert.throws(() => parseByteSize(-1), UnitError);
    assert.throws(() => parseByteSize('MB'), UnitError);
    assert.throws(() => parseByteSize('1e3'), UnitError);
    assert.throws(() => parseByteSize('100000PB'), /too large/);
  });
});
