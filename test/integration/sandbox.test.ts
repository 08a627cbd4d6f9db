// The container's sandbox as the probe sees it from inside: root, mounts,
// persist dir, network, unix sockets, scheduling. Directory roots; real
// namespaces.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, fstatSync, mkdirSync, readdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { NetnsPool } from '../../src/actors/launch/netns-pool.js';
import type { Manifest } from '../../src/model/manifest.js';
import { privileged } from './privileged.js';
import { run, sandbox, start, waitForLine } from './launch-fixture.js';

const opts = privileged({ loop: false, mksquashfs: false });

function mountLine(out: string[], target: string): string | undefined {
  return out.find((l) => l.split(' ')[1] === target);
}

describe('container sandbox', opts, () => {
  test('pivot_root leaves only the container root visible', async (t) => {
    const s = sandbox(t);
    writeFileSync(join(s.root, 'only-in-root'), 'x');
    const { out } = await run(t, s, { args: ['ls', '/'] });
    const names = out.filter((l) => l.startsWith('ls: ')).map((l) => l.slice(4)).sort();
    assert.deepEqual(names, ['only-in-root', 'probe', 'proc']);
    const hostOnly = await run(t, s, { args: ['exists', '/etc/hostname'] });
    assert.deepEqual(hostOnly.status, { exit: { code: 1 } });
  });

  test('/proc is mounted read-only', async (t) => {
    const s = sandbox(t);
    const { out } = await run(t, s, { args: ['mounts'] });
    assert.match(mountLine(out, '/proc') ?? '', /^proc \/proc proc ro,/);
  });

  test('a bind mount is read-only unless rw, with its flags applied', async (t) => {
    const s = sandbox(t);
    const host = join(s.dir, 'host');
    mkdirSync(host);
    writeFileSync(join(host, 'file'), 'from the host');
    const ro: Partial<Manifest> = { mounts: { '/proc': { type: 'proc' }, '/host': { type: 'bind', host, options: ['nosuid', 'nodev'] } } };
    const cat = await run(t, s, { args: ['read', '/host/file'], manifest: ro });
    assert.ok(cat.out.includes('Content of /host/file: from the host'), cat.out.join('\n'));
    const mounts = await run(t, s, { args: ['mounts'], manifest: ro });
    assert.match(mountLine(mounts.out, '/host') ?? '', /^\S+ \/host \w+ ro,(\w+,)*nosuid,(\w+,)*nodev/);
    const denied = await run(t, s, { args: ['write', 'x', '/host/new'], manifest: ro });
    assert.deepEqual(denied.status, { exit: { code: 1 } });
    assert.ok(!existsSync(join(host, 'new')));

    const rw: Partial<Manifest> = { mounts: { '/host': { type: 'bind', host, options: ['rw'] } }, uid: 1000, gid: 1000 };
    execFileSync('chown', ['1000:1000', host]);
    const wrote = await run(t, s, { args: ['write', 'hello', '/host/new'], manifest: rw });
    assert.deepEqual(wrote.status, { exit: { code: 0 } });
    assert.equal(readFileSync(join(host, 'new'), 'utf8'), 'hello');
  });

  test('a bind mount of a missing host path is skipped', async (t) => {
    const s = sandbox(t);
    const { status } = await run(t, s, { args: ['exit', '0'], manifest: { mounts: { '/gone': { type: 'bind', host: '/no/such/dir', options: [] } } } });
    assert.deepEqual(status, { exit: { code: 0 } });
  });

  test('a resource is mounted ro, nosuid, nodev and noexec from its host directory', async (t) => {
    const s = sandbox(t);
    const res = join(s.runDir, 'test-resource:0.0.1');
    mkdirSync(res);
    writeFileSync(join(res, 'hello'), 'hello from test resource');
    const manifest: Partial<Manifest> = {
      mounts: {
        '/proc': { type: 'proc' },
        '/resource': { type: 'resource', name: 'test-resource', version: '>=0.0.1', dir: '/', options: ['nosuid', 'nodev', 'noexec'] },
      },
    };
    const r = await run(t, s, { args: ['cat', '/resource/hello'], manifest, resources: { '/resource': res } });
    assert.ok(r.out.includes('hello from test resource'), r.out.join('\n'));
    const m = await run(t, s, { args: ['mounts'], manifest, resources: { '/resource': res } });
    assert.match(mountLine(m.out, '/resource') ?? '', /^\S+ \/resource \w+ ro,(\w+,)*nosuid,(\w+,)*nodev,(\w+,)*noexec/);
  });

  test('a missing resource directory fails the launch with start_container_missing_resource', async (t) => {
    const s = sandbox(t);
    const manifest: Partial<Manifest> = { mounts: { '/resource': { type: 'resource', name: 'res', version: '>=1.0.0', dir: '/', options: [] } } };
    await assert.rejects(start(t, s, { manifest, resources: { '/resource': join(s.runDir, 'res:1.0.0') } }), (e: { code?: string }) => e.code === 'start_container_missing_resource');
  });

  test('tmpfs is mounted with its size, mode 1777 and nosuid, nodev, noexec', async (t) => {
    const s = sandbox(t);
    const manifest: Partial<Manifest> = { mounts: { '/proc': { type: 'proc' }, '/tmpfs': { type: 'tmpfs', size: 20480000 } } };
    const { out } = await run(t, s, { args: ['mounts'], manifest });
    assert.match(mountLine(out, '/tmpfs') ?? '', /^tmpfs \/tmpfs tmpfs rw,nosuid,nodev,noexec,.*size=20000k/);
    const st = await run(t, s, { args: ['stat', '/tmpfs'], manifest });
    assert.ok(st.out.includes('stat: mode=1777 uid=0 gid=0 size=40'), st.out.join('\n'));
  });

  test('the persist dir is owned by the container uid, mode 0700, and survives restarts', async (t) => {
    const s = sandbox(t);
    const manifest: Partial<Manifest> = { uid: 1234, gid: 2345, mounts: { '/data': { type: 'persist' } } };
    const w = await run(t, s, { args: ['write', 'Hello!', '/data/file'], manifest });
    assert.deepEqual(w.status, { exit: { code: 0 } });
    assert.ok(w.out.includes('Writing Hello! to /data/file'));
    const dir = join(s.dataDir, 'test-container');
    const st = statSync(dir);
    assert.equal(st.uid, 1234);
    assert.equal(st.gid, 2345);
    assert.equal(st.mode & 0o7777, 0o700);
    const r = await run(t, s, { args: ['read', '/data/file'], manifest });
    assert.ok(r.out.includes('Content of /data/file: Hello!'), r.out.join('\n'));
    assert.equal(statSync(join(dir, 'file')).uid, 1234);
  });

  test('without a network entry the container has only lo', async (t) => {
    const s = sandbox(t);
    const { out } = await run(t, s, { args: ['net'] });
    assert.deepEqual(out.filter((l) => l.startsWith('net: ')), ['net: lo']);
  });

  test('a network namespace made ahead of time (NetnsPool) is joined instead of a new one, with lo up', privileged({ loop: false, mksquashfs: false, tools: ['nsenter', 'ip'] }), async (t) => {
    const s = sandbox(t);
    const pool = new NetnsPool();
    t.after(() => pool.close());
    await pool.settled();
    const fd = pool.take();
    assert.ok(fd !== undefined, 'the pool made a namespace');
    const ino = fstatSync(fd).ino;
    const r = await start(t, s, { args: ['sleep'], netnsFd: fd });
    await r.launched.started;
    assert.equal(statSync(`/proc/${r.launched.pid}/ns/net`).ino, ino, 'init is in the prepared namespace');
    assert.notEqual(ino, statSync('/proc/self/ns/net').ino, 'which is not the host one');
    const lo = execFileSync('nsenter', [`--net=/proc/${r.launched.pid}/ns/net`, 'ip', '-o', 'link', 'show'], { encoding: 'utf8' });
    assert.equal(lo.trim().split('\n').length, 1, `only lo: ${lo}`);
    assert.match(lo, /^1: lo: <LOOPBACK,UP,LOWER_UP>/, 'lo is up');
    // The pool refills with a different namespace.
    pool.refill();
    await pool.settled();
    const next = pool.take();
    assert.ok(next !== undefined);
    t.after(() => closeSync(next));
    assert.notEqual(fstatSync(next).ino, ino);
  });

  test('a prepared network namespace is not used by a container with network host (and is closed)', async (t) => {
    const s = sandbox(t);
    const pool = new NetnsPool();
    t.after(() => pool.close());
    await pool.settled();
    const fd = pool.take()!;
    const ns = readlinkSync(`/proc/self/fd/${fd}`);
    const r = await start(t, s, { args: ['sleep'], manifest: { network: 'host' }, netnsFd: fd });
    await r.launched.started;
    assert.equal(readlinkSync(`/proc/${r.launched.pid}/ns/net`), readlinkSync('/proc/self/ns/net'));
    const held = readdirSync('/proc/self/fd').filter((f) => {
      try {
        return readlinkSync(`/proc/self/fd/${f}`) === ns;
      } catch {
        return false;
      }
    });
    assert.deepEqual(held, [], `launch() closed the fd it was given (${ns})`);
  });

  test('network host shares the runtime network namespace', async (t) => {
    const s = sandbox(t);
    const r = await start(t, s, { args: ['sleep'], manifest: { network: 'host' } });
    await r.launched.started;
    assert.equal(readlinkSync(`/proc/${r.launched.pid}/ns/net`), readlinkSync('/proc/self/ns/net'));
    assert.notEqual(readlinkSync(`/proc/${r.launched.pid}/ns/mnt`), readlinkSync('/proc/self/ns/mnt'));
  });

  test('a named network namespace is joined', privileged({ loop: false, mksquashfs: false, tools: ['ip'] }), async (t) => {
    const s = sandbox(t);
    const name = `nstar-test-${process.pid}`;
    execFileSync('ip', ['netns', 'add', name]);
    t.after(() => execFileSync('ip', ['netns', 'delete', name]));
    const r = await start(t, s, { args: ['sleep'], manifest: { network: { namespace: name } } });
    await r.launched.started;
    assert.equal(statSync(`/proc/${r.launched.pid}/ns/net`).ino, statSync(`/run/netns/${name}`).ino);
  });

  test('a missing named network namespace fails the start clearly', async (t) => {
    const s = sandbox(t);
    const r = await start(t, s, { args: ['sleep'], manifest: { network: { namespace: 'no-such-netns' } } });
    const check = (e: { code?: string; message?: string }) =>
      e.code === 'start_container_failed' && /open `\/run\/netns\/no-such-netns`: No such file or directory/.test(e.message ?? '');
    await assert.rejects(r.launched.started, check);
    await assert.rejects(r.launched.exited, check);
  });

  test('the hostname is the runtime host name in a UTS namespace of its own', async (t) => {
    const s = sandbox(t);
    const { out } = await run(t, s, { args: ['hostname'] });
    assert.ok(out.includes(`hostname: ${hostname()}`), out.join('\n'));
  });

  test('unix sockets of the three types are connectable and the no-permission one is refused', async (t) => {
    const s = sandbox(t);
    const sockets: Manifest['sockets'] = {
      datagram: { type: 'datagram', mode: 0o666, uid: 1000, gid: 1000, passcred: true },
      stream: { type: 'stream', mode: 0o666, uid: 1000, gid: 1000, passcred: true },
      'seq-packet': { type: 'seq_packet', mode: 0o666, uid: 1000, gid: 1000, passcred: true },
      no_permission: { type: 'datagram', mode: 0, passcred: false },
    };
    const manifest: Partial<Manifest> = { sockets, mounts: { '/unix-sockets': { type: 'sockets' } } };
    for (const name of ['datagram', 'stream', 'seq-packet', 'no_permission']) {
      const r = await run(t, s, { args: ['socket', name], manifest });
      assert.deepEqual(r.status, { exit: { code: 0 } }, `${name}: ${JSON.stringify(r)}`);
      assert.ok(r.out.includes(`Connecting to /unix-sockets/test-container:0.0.1:${name}`));
    }
    const st = statSync(join(s.socketDir, 'test-container:0.0.1:stream'), { throwIfNoEntry: false });
    assert.equal(st, undefined, 'socket files are removed at exit');
  });

  test('socket files carry the manifest mode and owner while the container runs', async (t) => {
    const s = sandbox(t);
    const manifest: Partial<Manifest> = { sockets: { hello: { type: 'datagram', mode: 0o640, uid: 1000, gid: 1001 } } };
    const r = await start(t, s, { args: ['sleep'], manifest });
    await waitForLine(r, /^Sleeping/);
    const st = statSync(join(s.socketDir, 'test-container:0.0.1:hello'));
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o640);
    assert.equal(st.uid, 1000);
    assert.equal(st.gid, 1001);
  });

  test('sched policies: fifo with priority, idle, other and batch with nice', async (t) => {
    const s = sandbox(t);
    const cases: [Manifest['sched'], string[]][] = [
      [{ policy: { fifo: { priority: 11 } } }, ['sched_getscheduler: 1', 'sched_priority: 11']],
      [{ policy: { round_robin: { priority: 5 } } }, ['sched_getscheduler: 2', 'sched_priority: 5']],
      [{ policy: 'idle' }, ['sched_getscheduler: 5']],
      [{ policy: { other: { nice: 0 } } }, ['sched_getscheduler: 0', 'getpriority: 0']],
      [{ policy: { other: { nice: 7 } } }, ['sched_getscheduler: 0', 'getpriority: 7']],
      [{ policy: { other: { nice: -5 } } }, ['sched_getscheduler: 0', 'getpriority: -5']],
      [{ policy: { batch: { nice: 3 } } }, ['sched_getscheduler: 3', 'getpriority: 3']],
    ];
    for (const [sched, expect] of cases) {
      const { out, status } = await run(t, s, { args: ['sched'], manifest: { sched } });
      assert.deepEqual(status, { exit: { code: 0 } }, JSON.stringify(sched));
      for (const e of expect) assert.ok(out.includes(e), `${JSON.stringify(sched)}: ${e} in ${out}`);
    }
  });

  test('a sched policy the kernel refuses fails the start naming sched_setscheduler', async (t) => {
    const s = sandbox(t);
    // SCHED_DEADLINE needs sched_setattr with runtime/deadline/period, which the manifest cannot give.
    const r = await start(t, s, { args: ['sched'], manifest: { sched: { policy: 'deadline' } } });
    await assert.rejects(r.launched.started, /sched_setscheduler `\/probe`: Invalid argument/);
    assert.deepEqual(await r.launched.exited, { exit: { code: 101 } });
  });
});
