// The pure parts of launch: the wire to nstar-init and the output's line
// splitting. No root needed. The plan itself: plan-launch.test.ts.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { LineSplitter } from '../../src/actors/output/output-lines.js';
import { encodeExec, encodeSpec, parseInitMessage, T } from '../../src/actors/launch/launch-protocol.js';
import type { InitSpec } from '../../src/machines/launch-plan.js';
import { MS_BIND } from '../../src/machines/sandbox-plan.js';

/** Reads back the TLV records of an encoded spec. */
function records(buf: Buffer): [number, Buffer][] {
  const out: [number, Buffer][] = [];
  for (let off = 0; off < buf.length; ) {
    const tag = buf.readUInt32LE(off);
    const len = buf.readUInt32LE(off + 4);
    out.push([tag, buf.subarray(off + 8, off + 8 + len)]);
    off += 8 + len;
  }
  return out;
}

test('the spec encodes as TLV records with NUL-terminated strings and little-endian numbers', () => {
  const s: InitSpec = {
    name: 'c:0.0.1', root: '/r', net: { mode: 'new' }, mounts: [{ flags: MS_BIND, source: '/a', target: '/b', fstype: '', data: '' }],
    uid: 1000, gid: 1001, groups: [7], rlimits: [{ resource: 6, soft: 5 }], sched: { policy: 1, priority: 11 },
    caps: 1n << 40n, seccomp: Buffer.from([1, 2, 3, 4, 5, 6, 7, 8]), init: '/probe', args: ['x'], env: ['K=V'], nfds: 3,
  };
  const r = records(encodeSpec(s));
  const get = (t: number) => r.filter(([tag]) => tag === t).map(([, b]) => b);
  assert.equal(get(T.NAME)[0].toString(), 'c:0.0.1\0');
  assert.equal(get(T.ROOT)[0].toString(), '/r\0');
  assert.deepEqual([...get(T.NET)[0]], [0, 0, 0, 0, 0]);
  const mount = get(T.MOUNT)[0];
  assert.equal(mount.readBigUInt64LE(0), BigInt(MS_BIND));
  assert.equal(mount.subarray(8).toString(), '/a\0/b\0\0\0\0', 'an empty source root: a host path');
  assert.equal(get(T.UID)[0].readUInt32LE(0), 1000);
  assert.equal(get(T.GROUP)[0].readUInt32LE(0), 7);
  const rl = get(T.RLIMIT)[0];
  assert.equal(rl.readUInt32LE(0), 6);
  assert.equal(rl.readBigUInt64LE(8), 5n);
  assert.equal(rl.readBigUInt64LE(16), 0xffffffffffffffffn, 'a missing hard limit is RLIM_INFINITY');
  const sched = get(T.SCHED)[0];
  assert.deepEqual([sched.readInt32LE(0), sched.readInt32LE(4), sched.readInt32LE(8)], [1, 11, 1000]);
  assert.equal(get(T.CAPS)[0].readBigUInt64LE(0), 1n << 40n);
  assert.deepEqual([...get(T.SECCOMP)[0]], [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.equal(get(T.INIT)[0].toString(), '/probe\0');
  assert.equal(get(T.ARG)[0].toString(), 'x\0');
  assert.equal(get(T.ENV)[0].toString(), 'K=V\0');
  assert.equal(get(T.NFDS)[0].readUInt32LE(0), 3);
});

test('symlink steps keep their place in the mount list, resource binds carry their image root, test hooks go last', () => {
  const s: InitSpec = {
    name: 'c:0.0.1', root: '/r', net: { mode: 'new' },
    mounts: [
      { flags: 0, source: 'tmpfs', target: '/dev', fstype: 'tmpfs', data: '' },
      { symlink: 'pts/ptmx', target: '/dev/ptmx' },
      { flags: MS_BIND, source: '/data', target: '/res', fstype: '', data: '', sourceRoot: '/run/res:1.0.0' },
    ],
    uid: 0, gid: 0, groups: [], rlimits: [], caps: 0n, init: '/probe', args: [], env: [], nfds: 0, test: 3,
  };
  const r = records(encodeSpec(s)).filter(([tag]) => tag === T.MOUNT || tag === T.SYMLINK || tag === T.TEST);
  assert.deepEqual(r.map(([tag]) => tag), [T.MOUNT, T.SYMLINK, T.MOUNT, T.TEST]);
  assert.equal(r[1][1].toString(), '/dev/ptmx\0pts/ptmx\0');
  assert.equal(r[2][1].subarray(8).toString(), '/data\0/res\0\0\0/run/res:1.0.0\0');
  assert.equal(r[3][1].readUInt32LE(0), 3);
  assert.ok(!records(encodeSpec({ ...s, test: undefined })).some(([tag]) => tag === T.TEST), 'no hooks, no record');
});

test('a NUL byte inside a string is refused before it reaches init', () => {
  assert.throws(() => encodeExec(1, '/probe', ['a\0b'], []), /NUL byte/);
});

test('exec requests start with X and the request id', () => {
  const b = encodeExec(42, '/probe', ['ids'], ['A=1']);
  assert.equal(b.toString('latin1', 0, 1), 'X');
  assert.equal(b.readUInt32LE(1), 42);
  const r = records(b.subarray(5));
  assert.deepEqual(r.map(([t]) => t), [T.INIT, T.ARG, T.ENV]);
});

test("init's messages parse into typed events", () => {
  const p = (s: string) => parseInitMessage(Buffer.from(s));
  assert.deepEqual(p('ready 1234'), { type: 'ready', setupUs: 1234 });
  assert.deepEqual(p('error 2 open\t/run/netns/a b'), { type: 'error', errno: 2, syscall: 'open', path: '/run/netns/a b' });
  assert.deepEqual(p('started 2 350'), { type: 'started', nsPid: 2, execUs: 350 });
  assert.deepEqual(p('failed 2 execve'), { type: 'failed', errno: 2, step: 'execve' });
  assert.deepEqual(p('exit code 255'), { type: 'exit', status: { exit: { code: 255 } } });
  assert.deepEqual(p('exit signal 31'), { type: 'exit', status: { signalled: { signal: 31 } } });
  assert.deepEqual(p('forked 3 17'), { type: 'forked', id: 3, nsPid: 17 });
  assert.deepEqual(p('execfailed 3 13 execve'), { type: 'execfailed', id: 3, errno: 13, step: 'execve' });
  assert.deepEqual(p('execexit 3 signal 9'), { type: 'execexit', id: 3, status: { signalled: { signal: 9 } } });
  assert.equal(p('what').type, 'unknown');
});

test('output is split into lines across chunks, the last partial line flushed at the end', () => {
  const lines: string[] = [];
  const s = new LineSplitter((l) => lines.push(l));
  s.push(Buffer.from('hel'));
  s.push(Buffer.from('lo\nwor'));
  s.push(Buffer.from('ld\n\nlast'));
  const euro = Buffer.from('\n€\n');
  s.push(euro.subarray(0, 2));
  s.push(euro.subarray(2));
  s.end();
  assert.deepEqual(lines, ['hello', 'world', '', 'last', '€']);
});

test('a line without a newline is cut at 64 KiB instead of growing without bound', () => {
  const lines: string[] = [];
  const s = new LineSplitter((l) => lines.push(l));
  for (let i = 0; i < 20; i++) s.push(Buffer.alloc(4096, 0x61));
  assert.equal(lines.length, 1);
  assert.equal(lines[0].length, 65536);
  s.end();
  assert.equal(lines.length, 2);
  assert.equal(lines[1].length, 20 * 4096 - 65536);
});
