// The pure parts of launch: the sandbox plan (mount list, caps, sched,
// rlimits) and the wire to nstar-init. No root needed.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { LineSplitter } from '../../src/actors/launch/io.js';
import { encodeExec, encodeSpec, parseInitMessage, T, type InitSpec } from '../../src/actors/launch/launch-protocol.js';
import {
  capabilityMask, MS_BIND, MS_NODEV, MS_NOEXEC, MS_NOSUID, MS_RDONLY, MS_REC, MS_REMOUNT, planMounts, planSandbox, resolveGroups, schedOf,
} from '../../src/actors/launch/sandbox.js';
import type { LaunchSpec } from '../../src/machines/contracts.js';
import type { Manifest } from '../../src/model/manifest.js';

function manifest(over: Partial<Manifest> = {}): Manifest {
  return {
    name: 'test-container', version: '0.0.1', init: '/probe', args: [], env: {}, uid: 1000, gid: 1000,
    mounts: {}, capabilities: [], suppl_groups: [], rlimits: {}, sockets: {}, ...over,
  };
}

function spec(m: Manifest, resources: Record<string, string> = {}): LaunchSpec {
  return {
    container: `${m.name}:${m.version}`, manifest: m, root: '/run/test-container:0.0.1', init: '/probe', args: [], env: {},
    runDir: '/run', dataDir: '/data', socketDir: '/sockets', resources,
  };
}

const all = { exists: () => true };

test('mounts are planned parents first with Northstar flags for each type', () => {
  const m = manifest({
    mounts: {
      '/tmpfs': { type: 'tmpfs', size: 20480000 },
      '/proc': { type: 'proc' },
      '/dev': { type: 'dev' },
      '/data': { type: 'persist' },
      '/lib': { type: 'bind', host: '/lib', options: ['nosuid', 'nodev'] },
      '/lib/x': { type: 'bind', host: '/x', options: ['rw', 'rec', 'nosuid'] },
      '/sys': { type: 'sysfs' },
      '/unix-sockets': { type: 'sockets' },
      '/resource': { type: 'resource', name: 'r', version: '>=0.0.1', dir: '/', options: ['nosuid', 'nodev', 'noexec', 'rw'] },
    },
  });
  const ops = planMounts(spec(m, { '/resource': '/run/r:0.0.1/' }), all);
  assert.deepEqual(ops, [
    { flags: MS_BIND, source: '/data/test-container', target: '/data', fstype: '', data: '' },
    { flags: MS_REMOUNT | MS_BIND | MS_NODEV | MS_NOSUID | MS_NOEXEC, source: '', target: '/data', fstype: '', data: '' },
    { flags: MS_NOSUID | MS_NOEXEC | MS_NODEV, source: 'tmpfs', target: '/dev', fstype: 'tmpfs', data: 'mode=755,size=65536' },
    ...['full', 'null', 'random', 'tty', 'urandom', 'zero'].map((n) => ({ flags: MS_BIND, source: `/dev/${n}`, target: `/dev/${n}`, fstype: '', data: '' })),
    { flags: MS_NOSUID | MS_NOEXEC, source: 'devpts', target: '/dev/pts', fstype: 'devpts', data: 'newinstance,ptmxmode=0666,mode=0620' },
    { symlink: 'pts/ptmx', target: '/dev/ptmx' },
    { symlink: '/proc/self/fd', target: '/dev/fd' },
    { symlink: '/proc/self/fd/0', target: '/dev/stdin' },
    { symlink: '/proc/self/fd/1', target: '/dev/stdout' },
    { symlink: '/proc/self/fd/2', target: '/dev/stderr' },
    { flags: MS_BIND, source: '/lib', target: '/lib', fstype: '', data: '' },
    { flags: MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | MS_RDONLY, source: '', target: '/lib', fstype: '', data: '' },
    { flags: MS_BIND | MS_REC, source: '/x', target: '/lib/x', fstype: '', data: '' },
    { flags: MS_REMOUNT | MS_BIND | MS_REC | MS_NOSUID, source: '', target: '/lib/x', fstype: '', data: '' },
    { flags: MS_RDONLY | MS_NOSUID | MS_NOEXEC | MS_NODEV, source: 'proc', target: '/proc', fstype: 'proc', data: '' },
    { flags: MS_BIND, source: '/', target: '/resource', fstype: '', data: '', sourceRoot: '/run/r:0.0.1' },
    { flags: MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, source: '', target: '/resource', fstype: '', data: '' },
    { flags: MS_RDONLY | MS_NOSUID | MS_NOEXEC | MS_NODEV, source: 'sysfs', target: '/sys', fstype: 'sysfs', data: '' },
    { flags: MS_NODEV | MS_NOSUID | MS_NOEXEC, source: 'tmpfs', target: '/tmpfs', fstype: 'tmpfs', data: 'size=20480000,mode=1777' },
    { flags: MS_BIND, source: '/sockets', target: '/unix-sockets', fstype: '', data: '' },
  ]);
});

test('a dev mount gets the tty group as devpts gid and only the host nodes that exist', () => {
  const m = manifest({ mounts: { '/dev': { type: 'dev' } } });
  const ops = planMounts(spec(m), { exists: (p) => p !== '/dev/tty', ttyGid: () => 5 });
  assert.ok(!ops.some((o) => o.target === '/dev/tty'));
  assert.ok(ops.some((o) => 'data' in o && o.data === 'newinstance,ptmxmode=0666,mode=0620,gid=5'));
  assert.ok(!ops.some((o) => o.target === '/dev/fd'), 'the fd links only come with a /proc mount');
});

test('a resource directory outside the run directory is refused', () => {
  const m = manifest({ mounts: { '/r': { type: 'resource', name: 'res', version: '>=1.0.0', dir: '/', options: [] } } });
  assert.throws(() => planMounts(spec(m, { '/r': '/tmp/elsewhere' }), all), /not inside the run directory/);
});

test('bind mounts of host paths that do not exist are skipped', () => {
  const m = manifest({ mounts: { '/lib64': { type: 'bind', host: '/lib64', options: [] } } });
  assert.deepEqual(planMounts(spec(m), { exists: () => false }), []);
});

test('a resource without a resolved host directory is start_container_missing_resource', () => {
  const m = manifest({ mounts: { '/r': { type: 'resource', name: 'res', version: '>=1.0.0', dir: '/', options: [] } } });
  assert.throws(() => planMounts(spec(m), all), (e: { code?: string; fields?: unknown }) =>
    e.code === 'start_container_missing_resource' && JSON.stringify(e.fields) === '{"container":"test-container:0.0.1","resource":"res","version":">=1.0.0"}');
});

test('capability names map to their kernel numbers and unknown names are refused', () => {
  assert.equal(capabilityMask([]), 0n);
  assert.equal(capabilityMask(['CAP_CHOWN', 'CAP_KILL', 'CAP_MKNOD', 'CAP_CHECKPOINT_RESTORE']), (1n << 0n) | (1n << 5n) | (1n << 27n) | (1n << 40n));
  assert.throws(() => capabilityMask(['CAP_SYS_MKNOD']), /unknown capability CAP_SYS_MKNOD/);
});

test('sched policies map to SCHED_* with priority or nice', () => {
  assert.equal(schedOf(undefined), undefined);
  assert.deepEqual(schedOf({ fifo: { priority: 11 } }), { policy: 1, priority: 11 });
  assert.deepEqual(schedOf({ round_robin: { priority: 2 } }), { policy: 2, priority: 2 });
  assert.deepEqual(schedOf({ other: { nice: -3 } }), { policy: 0, priority: 0, nice: -3 });
  assert.deepEqual(schedOf({ batch: { nice: 4 } }), { policy: 3, priority: 0, nice: 4 });
  assert.deepEqual(schedOf('idle'), { policy: 5, priority: 0 });
  assert.deepEqual(schedOf('deadline'), { policy: 6, priority: 0 });
});

test('supplementary groups resolve through the group file and unknown names are skipped', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nstar-groups-'));
  try {
    const file = join(dir, 'group');
    writeFileSync(file, 'root:x:0:\nsrc:x:40:\ninet:x:3003:a,b\n');
    assert.deepEqual(resolveGroups('c:0.0.1', ['inet', 'nope', 'src'], file), [3003, 40]);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('the sandbox plan carries ids, rlimits, network mode and env', () => {
  const m = manifest({ uid: 10, gid: 20, rlimits: { nproc: { soft: 10000, hard: 20000 }, core: {} }, network: { namespace: 'blue' } });
  const p = planSandbox(spec(m), { A: 'b' }, 2, all);
  assert.equal(p.uid, 10);
  assert.equal(p.gid, 20);
  assert.deepEqual(p.rlimits, [{ resource: 6, soft: 10000, hard: 20000 }, { resource: 4, soft: undefined, hard: undefined }]);
  assert.deepEqual(p.net, { mode: 'join', name: 'blue' });
  assert.deepEqual(planSandbox(spec(manifest({ network: 'host' })), {}, 0, all).net, { mode: 'host' });
  assert.deepEqual(planSandbox(spec(manifest()), {}, 0, all).net, { mode: 'new' });
  assert.deepEqual(p.env, ['A=b']);
  assert.equal(p.nfds, 2);
});

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

test('a mount target that is relative or climbs out of the root is refused', () => {
  for (const target of ['relative', '/a/../../etc', '/..']) {
    const m = manifest({ mounts: { [target]: { type: 'proc' } } });
    assert.throws(() => planMounts(spec(m), all), /invalid mount target/);
  }
});
