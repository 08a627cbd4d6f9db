// The crash journal's file format: appended frames, the last intact one wins,
// a torn or corrupted tail is ignored, compaction past COMPACT_AT, the earlier
// single-msgpack format still read, and remove() only of a file this instance wrote.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import * as zlib from 'node:zlib';

import { pack } from 'msgpackr';

import { COMPACT_AT, crc32, Journal, JOURNAL_FILE } from '../../src/actors/journal.js';

function dir(t: TestContext): string {
  const d = mkdtempSync(join(tmpdir(), 'nstar-journal-'));
  t.after(() => rmSync(d, { recursive: true, force: true }));
  return d;
}

/** A journal just reset in a fresh dir: the dir, the journal, its file. */
function fresh(t: TestContext): { d: string; j: Journal; f: string } {
  const d = dir(t);
  const j = new Journal(d);
  j.reset();
  return { d, j, f: join(d, JOURNAL_FILE) };
}

describe('Journal', () => {
  it('reads back the last state written, by a new instance', (t) => {
    const d = dir(t);
    const j = new Journal(d);
    j.reset();
    j.addMount('/run/x', '/dev/loop3');
    j.addPid(41);
    j.addPid(42);
    j.removePid(41);
    j.addList('cgroups', ['/sys/fs/cgroup/pids/northstar/a']);
    const prev = new Journal(d).readPrevious();
    assert.deepEqual(prev, { pid: process.pid, mounts: { '/run/x': '/dev/loop3' }, cgroups: ['/sys/fs/cgroup/pids/northstar/a'], topCgroups: [], sockets: [], pids: [42] });
    j.remove();
  });

  it('appends one frame per change instead of rewriting the file', (t) => {
    const { d, j, f } = fresh(t);
    const s0 = statSync(f).size;
    j.addPid(7);
    const s1 = statSync(f).size;
    j.addPid(8);
    const s2 = statSync(f).size;
    assert.ok(s1 > s0 && s2 - s1 > s1 - s0 - 2, `grows by a frame per change: ${s0} ${s1} ${s2}`);
    j.remove();
  });

  it('ignores a torn last frame and a corrupted one: the state before them stands', (t) => {
    const { d, j, f } = fresh(t);
    j.addPid(1);
    const good = statSync(f).size;
    j.addPid(2);
    // kill -9 mid-write: the last frame is cut short.
    truncateSync(f, statSync(f).size - 3);
    assert.deepEqual(new Journal(d).readPrevious()?.pids, [1]);
    // A frame whose payload does not match its checksum ends the file too.
    truncateSync(f, good);
    j.addPid(3);
    const bytes = readFileSync(f);
    assert.deepEqual(new Journal(d).readPrevious()?.pids, [1, 2, 3], 'the appended frame is read');
    bytes[bytes.length - 1] ^= 0xff;
    writeFileSync(f, bytes);
    assert.deepEqual(new Journal(d).readPrevious()?.pids, [1]);
    j.remove();
  });

  it('compacts to a single frame past COMPACT_AT', (t) => {
    const { d, j, f } = fresh(t);
    const initial = statSync(f).size;
    let n = 0;
    while (statSync(f).size < COMPACT_AT) {
      j.addPid(++n);
      j.removePid(n);
    }
    j.addPid(99_999);
    assert.ok(statSync(f).size < initial * 3, `rewritten small: ${statSync(f).size} bytes`);
    assert.deepEqual(new Journal(d).readPrevious()?.pids, [99_999]);
    j.remove();
  });

  it('reads a file of the earlier format (one bare msgpack state)', (t) => {
    const d = dir(t);
    writeFileSync(join(d, JOURNAL_FILE), pack({ pid: 12345, mounts: { '/m': '/dev/loop9' }, cgroups: [], topCgroups: ['/t'], sockets: [], pids: [3] }));
    const prev = new Journal(d).readPrevious();
    assert.equal(prev?.pid, 12345);
    assert.deepEqual(prev?.mounts, { '/m': '/dev/loop9' });
    assert.deepEqual(prev?.pids, [3]);
  });

  it('reads garbage as no previous state', (t) => {
    const d = dir(t);
    writeFileSync(join(d, JOURNAL_FILE), 'not a journal at all');
    assert.equal(new Journal(d).readPrevious(), undefined);
    assert.equal(new Journal(join(d, 'missing')).readPrevious(), undefined);
  });

  it('remove() leaves a journal it did not write (another runtime owns run_dir)', (t) => {
    const d = dir(t);
    const owner = new Journal(d);
    owner.reset();
    owner.addPid(5);
    new Journal(d).remove();
    assert.ok(existsSync(join(d, JOURNAL_FILE)), 'the owner’s journal is still there');
    owner.addPid(6);
    assert.deepEqual(new Journal(d).readPrevious()?.pids, [5, 6]);
    owner.remove();
    assert.equal(existsSync(join(d, JOURNAL_FILE)), false);
  });
});

describe('crc32', () => {
  it('is the IEEE CRC-32 (the check value of "123456789" and zlib\'s result)', () => {
    assert.equal(crc32(Buffer.from('123456789')), 0xcbf43926);
    assert.equal(crc32(Buffer.alloc(0)), 0);
    const data = Buffer.from('northstar journal frame');
    const z = (zlib as { crc32?: (b: Buffer) => number }).crc32;
    if (z) assert.equal(crc32(data), z(data));
  });
});
