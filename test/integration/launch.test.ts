// launch(): the process side of a container — exit statuses, ids, caps,
// rlimits, fds, namespaces, the start gate, exec, signals, and no leaks.
// Real namespaces with a directory root holding the static probe.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, readlinkSync, closeSync } from 'node:fs';
import { describe, test } from 'node:test';

import { launch } from '../../src/actors/launch/launch.js';
import { logChannel, type LogRecord } from '../../src/log.js';
import { native } from '../../src/native.js';
import { privileged } from './privileged.js';
import { eventually, run, sandbox, specFor, start, waitForLine } from './launch-fixture.js';

const opts = privileged({ loop: false, mksquashfs: false });

describe('container processes', opts, () => {
  test('exit codes 0, 1, 10, 127, 128 and 255 are reported exactly', async (t) => {
    const s = sandbox(t);
    for (const code of [0, 1, 10, 127, 128, 255]) {
      const { status } = await run(t, s, { args: ['exit', String(code)] });
      assert.deepEqual(status, { exit: { code } });
    }
  });

  test('a crash is exit code 101 and an abort is signal 6', async (t) => {
    const s = sandbox(t);
    assert.deepEqual((await run(t, s, { args: ['crash'] })).status, { exit: { code: 101 } });
    assert.deepEqual((await run(t, s, { args: ['abort'] })).status, { signalled: { signal: 6 } });
  });

  test('stdout and stderr lines of an io pipe container are captured separately', async (t) => {
    const s = sandbox(t);
    const a = await run(t, s, { args: ['print', 'hello stdout', '--io', 'stdout'] });
    assert.ok(a.out.includes('hello stdout'), JSON.stringify(a));
    const b = await run(t, s, { args: ['print', 'hello stderr', '--io', 'stderr'] });
    assert.ok(b.err.includes('hello stderr'), JSON.stringify(b));
    assert.ok(!b.out.includes('hello stderr'));
  });

  test('io pipe output is logged at info with the container as the target', async (t) => {
    const s = sandbox(t);
    const records: LogRecord[] = [];
    const collect = (r: unknown) => records.push(r as LogRecord);
    logChannel.subscribe(collect);
    t.after(() => logChannel.unsubscribe(collect));
    const l = await launch(specFor(s, { args: ['print', 'to the log', '--io', 'stderr'] }));
    l.openGate();
    await l.exited;
    assert.ok(
      records.some((r) => r.level === 'info' && r.target === 'test-container:0.0.1' && r.message === 'to the log'),
      JSON.stringify(records.filter((r) => r.target === 'test-container:0.0.1')),
    );
  });

  test('io discard drops the output', async (t) => {
    const s = sandbox(t);
    const r = await run(t, s, { args: ['print', 'dropped'], manifest: { io: { stdout: 'discard', stderr: 'discard' } } });
    assert.deepEqual(r.status, { exit: { code: 0 } });
    assert.deepEqual(r.out, []);
  });

  test('args and the environment reach the container process', async (t) => {
    const s = sandbox(t);
    const echo = await run(t, s, { args: ['echo', 'a b', 'c'] });
    assert.ok(echo.out.includes('a b c'));
    const env = await run(t, s, { args: ['env'], env: { HELLO: 'world' } });
    for (const e of ['HELLO=world', 'NORTHSTAR_NAME=test-container', 'NORTHSTAR_VERSION=0.0.1', 'NORTHSTAR_CONTAINER=test-container:0.0.1']) {
      assert.ok(env.out.includes(`env: ${e}`), `${e} in ${env.out}`);
    }
  });

  test('the container runs with the manifest uid and gid, as pid 2 under init with session 1', async (t) => {
    const s = sandbox(t);
    for (const [uid, gid] of [[10, 20], [1000, 1000], [3000, 4000]]) {
      const { out } = await run(t, s, { args: ['ids'], manifest: { uid, gid } });
      assert.ok(out.includes(`getuid: ${uid}`), out.join('\n'));
      assert.ok(out.includes(`getgid: ${gid}`));
      assert.ok(out.includes('getppid: 1'));
      assert.ok(out.includes('getsid: 1'));
      assert.ok(out.includes('getpid: 2'));
    }
  });

  test('supplementary groups are resolved by name on the host and unknown ones skipped', async (t) => {
    const s = sandbox(t);
    const group = readFileSync('/etc/group', 'utf8').split('\n').find((l) => l.startsWith('daemon:'));
    if (!group) return t.skip('no daemon group in /etc/group');
    const gid = Number(group.split(':')[2]);
    const { out } = await run(t, s, { args: ['ids'], manifest: { suppl_groups: ['daemon', 'no-such-group-here'] } });
    assert.ok(out.includes(`getgroups: [${gid}]`), out.join('\n'));
  });

  test('an empty capability set leaves all five sets empty', async (t) => {
    const s = sandbox(t);
    const { out } = await run(t, s, { args: ['caps'] });
    for (const set of ['ambient', 'bounding', 'effective', 'inheritable', 'permitted']) assert.ok(out.includes(`caps ${set}: {}`), out.join('\n'));
  });

  test('configured capabilities are exactly the sets the container gets', async (t) => {
    const s = sandbox(t);
    const { out } = await run(t, s, { args: ['caps'], manifest: { capabilities: ['CAP_KILL', 'CAP_NET_RAW'] } });
    for (const set of ['ambient', 'bounding', 'effective', 'inheritable', 'permitted']) assert.ok(out.includes(`caps ${set}: {5, 13}`), out.join('\n'));
  });

  test('rlimits are set as configured', async (t) => {
    const s = sandbox(t);
    const { out } = await run(t, s, { args: ['limits'], manifest: { rlimits: { nproc: { soft: 10000, hard: 20000 }, nofile: { soft: 100, hard: 200 } } } });
    assert.ok(out.some((l) => /^Max processes\s+10000\s+20000\s+processes/.test(l)), out.join('\n'));
    assert.ok(out.some((l) => /^Max open files\s+100\s+200\s+files/.test(l)), out.join('\n'));
  });

  test('the container has exactly fds 0, 1, 2, the console and one per socket', async (t) => {
    const s = sandbox(t);
    const [ours, theirs] = native().socketpair('stream');
    t.after(() => closeSync(ours));
    const sockets = {
      datagram: { type: 'datagram' as const, mode: 0o666 },
      stream: { type: 'stream' as const, mode: 0o666 },
      seq: { type: 'seq_packet' as const, mode: 0o666 },
    };
    const { out } = await run(t, s, { args: ['fds'], manifest: { sockets }, consoleFd: theirs });
    assert.ok(out.includes('total: 7'), out.join('\n'));
    const env = await run(t, s, { args: ['env'], manifest: { sockets } });
    assert.ok(env.out.includes('env: NORTHSTAR_SOCKET_datagram=3'), env.out.join('\n'));
    assert.ok(env.out.includes('env: NORTHSTAR_SOCKET_seq=4'));
    assert.ok(env.out.includes('env: NORTHSTAR_SOCKET_stream=5'));
  });

  test('the console fd reaches the container as NORTHSTAR_CONSOLE', async (t) => {
    const s = sandbox(t);
    const [ours, theirs] = native().socketpair('stream');
    const got: Buffer[] = [];
    const w = native().watchMessages(ours, (m) => {
      if (!m) return;
      got.push(m);
      // The probe writes the line and its newline separately: answer once, at the newline.
      if (m.includes('\n')) native().sendMessage(ours, Buffer.from('{"pong":1}\n'));
    });
    t.after(() => w.close());
    const { out, status } = await run(t, s, { args: ['console', '{"ping":1}'], consoleFd: theirs });
    assert.deepEqual(status, { exit: { code: 0 } });
    assert.equal(Buffer.concat(got).toString(), '{"ping":1}\n');
    assert.ok(out.includes('console: {"pong":1}'), out.join('\n'));
  });

  test('the container gets its own pid, mount, uts, ipc and net namespaces', async (t) => {
    const s = sandbox(t);
    const r = await start(t, s, { args: ['sleep'] });
    await r.launched.started;
    for (const ns of ['pid', 'mnt', 'uts', 'ipc', 'net']) {
      assert.notEqual(readlinkSync(`/proc/${r.launched.pid}/ns/${ns}`), readlinkSync(`/proc/self/ns/${ns}`), ns);
    }
    r.launched.kill(9);
    assert.deepEqual(await r.launched.exited, { signalled: { signal: 9 } });
  });

  test('the container process does not run before the start gate opens', async (t) => {
    const s = sandbox(t);
    const r = await start(t, s, { args: ['print', 'ran'], gate: false });
    await r.launched.ready;
    // Init waits at the gate: it has no child, and nothing was printed.
    assert.equal(readFileSync(`/proc/${r.launched.pid}/task/${r.launched.pid}/children`, 'utf8').trim(), '');
    assert.deepEqual(r.lines, []);
    r.launched.openGate();
    const { phases } = await r.launched.started;
    for (const p of ['spawn', 'setup', 'gate_wait', 'exec']) assert.equal(typeof phases[p], 'number', p);
    assert.deepEqual(await r.launched.exited, { exit: { code: 0 } });
    assert.ok(r.stdout().includes('ran'));
  });

  test('a stop signal while init waits at the gate ends the start at once', async (t) => {
    const s = sandbox(t);
    const r = await start(t, s, { args: ['print', 'never'], gate: false });
    await r.launched.ready;
    r.launched.kill(15);
    assert.deepEqual(await r.launched.exited, { signalled: { signal: 15 } });
    await assert.rejects(r.launched.started, /exited before the container started/);
    assert.deepEqual(r.lines, []);
  });

  test('kill signals the whole process group', async (t) => {
    const s = sandbox(t);
    const r = await start(t, s, { args: ['fork', '3'] });
    await waitForLine(r, /^Sleeping/);
    const children = readFileSync(`/proc/${r.launched.pid}/task/${r.launched.pid}/children`, 'utf8').trim().split(/\s+/);
    const container = Number(children[0]);
    const grandchildren = readFileSync(`/proc/${container}/task/${container}/children`, 'utf8').trim().split(/\s+/).map(Number);
    assert.equal(grandchildren.length, 3);
    r.launched.kill(15);
    assert.deepEqual(await r.launched.exited, { signalled: { signal: 15 } });
    for (const p of [r.launched.pid, container, ...grandchildren]) assert.ok(!existsSync(`/proc/${p}`), `pid ${p} is gone`);
  });

  test('init reaps orphans: no zombies are left in the container', async (t) => {
    const s = sandbox(t);
    const r = await start(t, s, { args: ['fork', '5', 'orphan'] });
    await waitForLine(r, /^Sleeping/);
    const zombies = () => {
      const kids = readFileSync(`/proc/${r.launched.pid}/task/${r.launched.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
      return kids.filter((k) => / Z /.test(readFileSync(`/proc/${k}/stat`, 'utf8').replace(/^.*\)/, '')));
    };
    // The orphans exit 50 ms after their parents; init must reap each.
    const kidsOf = () => readFileSync(`/proc/${r.launched.pid}/task/${r.launched.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean);
    assert.ok(await eventually(() => kidsOf().length === 1 && zombies().length === 0), `children ${kidsOf()} zombies ${zombies()}`);
  });

  test('exec runs a process inside the running container with its own status', async (t) => {
    const s = sandbox(t);
    const r = await start(t, s, { args: ['sleep'], manifest: { uid: 1234, gid: 4321, mounts: { '/proc': { type: 'proc' }, '/tmp': { type: 'tmpfs', size: 100000 } } } });
    await r.launched.started;
    const e = await r.launched.exec({ path: '/probe', args: ['ids'], env: { A: '1' } });
    assert.ok(e.pid > 0 && e.nsPid > 2, JSON.stringify(e));
    assert.deepEqual(await e.exited, { exit: { code: 0 } });
    const { stdout } = await e.output;
    assert.match(stdout, /getppid: 1\n/);
    assert.match(stdout, /getuid: 1234\n/);
    assert.match(stdout, /getgid: 4321\n/);
    const mounts = await r.launched.exec({ path: '/probe', args: ['mounts'], env: {} });
    assert.match((await mounts.output).stdout, /^tmpfs \/tmp tmpfs /m);
    const three = await r.launched.exec({ path: '/probe', args: ['exit', '3'], env: {} });
    assert.deepEqual(await three.exited, { exit: { code: 3 } });
    // The container keeps running.
    assert.ok(existsSync(`/proc/${r.launched.pid}`));
    await assert.rejects(r.launched.exec({ path: '/nope', args: [], env: {} }), /exec in test-container:0\.0\.1: execve: No such file/);
    r.launched.kill(9);
    await r.launched.exited;
    await assert.rejects(r.launched.exec({ path: '/probe', args: [], env: {} }), (e: { code?: string }) => e.code === 'stop_container_not_started');
  });

  test('an exec pid is a host pid inside the container pid namespace, and exec processes end with the container', async (t) => {
    const s = sandbox(t);
    const r = await start(t, s, { args: ['sleep'] });
    await r.launched.started;
    const main = Number(readFileSync(`/proc/${r.launched.pid}/task/${r.launched.pid}/children`, 'utf8').trim().split(/\s+/)[0]);
    const e = await r.launched.exec({ path: '/probe', args: ['sleep'], env: {} });
    assert.notEqual(e.pid, e.nsPid);
    assert.equal(readlinkSync(`/proc/${e.pid}/ns/pid`), readlinkSync(`/proc/${r.launched.pid}/ns/pid`));
    assert.equal(readlinkSync(`/proc/${e.pid}/ns/mnt`), readlinkSync(`/proc/${r.launched.pid}/ns/mnt`));
    // The container process ends: init reports it, exits, and the kernel ends the rest.
    process.kill(main, 'SIGKILL');
    assert.deepEqual(await r.launched.exited, { signalled: { signal: 9 } });
    assert.deepEqual(await e.exited, { signalled: { signal: 9 } });
    assert.ok(!existsSync(`/proc/${e.pid}`));
  });

  test('an exec requested right after the gate opens waits for the container process', async (t) => {
    const s = sandbox(t);
    const r = await start(t, s, { args: ['sleep'], gate: false });
    await assert.rejects(r.launched.exec({ path: '/probe', args: ['exit', '0'], env: {} }), (e: { code?: string }) => e.code === 'stop_container_not_started');
    r.launched.openGate();
    const e = await r.launched.exec({ path: '/probe', args: ['exit', '5'], env: {} });
    assert.deepEqual(await e.exited, { exit: { code: 5 } });
  });

  test('an exec whose background child keeps its stdout open still reports its exit', async (t) => {
    const s = sandbox(t);
    const r = await start(t, s, { args: ['sleep'] });
    await r.launched.started;
    const e = await r.launched.exec({ path: '/probe', args: ['fork', '1', 'detach'], env: {} });
    assert.deepEqual(await e.exited, { exit: { code: 0 } });
    r.launched.kill(9);
    await r.launched.exited;
    // The background child died with the container: the output ends too.
    assert.match((await e.output).stdout, /^forked: \d+$/m);
  });

  test('io inherit writes to the runtime process stdout', async (t) => {
    const s = sandbox(t);
    const script = `
      import { launch } from ${JSON.stringify(new URL('../../src/actors/launch/launch.js', import.meta.url).href)};
      const l = await launch(JSON.parse(process.argv[1]));
      l.openGate();
      await l.exited;
    `;
    const spec = specFor(s, { args: ['print', 'inherited line'], manifest: { io: { stdout: 'inherit', stderr: 'discard' } } });
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    const code = await new Promise((r) => child.once('exit', r));
    assert.equal(code, 0);
    assert.match(out, /^inherited line$/m);
  });

  test('an init path that does not exist fails the start and exits 101', async (t) => {
    const s = sandbox(t);
    const r = await start(t, s, { manifest: { init: '/missing' } });
    await assert.rejects(r.launched.started, /execve `\/missing`: No such file or directory/);
    assert.deepEqual(await r.launched.exited, { exit: { code: 101 } });
  });

  test('a start/stop cycle leaks no fds and leaves no processes in the runtime', async (t) => {
    const s = sandbox(t);
    const sockets = { dgram: { type: 'datagram' as const, mode: 0o600 }, stream: { type: 'stream' as const, mode: 0o600 } };
    const fds = () => readdirSync('/proc/self/fd').sort();
    // The first launch loads the addon; measure from the second on.
    await run(t, s, { args: ['exit', '0'], manifest: { sockets } });
    const before = fds();
    for (let i = 0; i < 20; i++) {
      const r = await start(t, s, { args: i % 2 ? ['exit', '0'] : ['sleep'], manifest: { sockets } });
      await r.launched.started;
      if (i % 2 === 0) r.launched.kill(9);
      await r.launched.exited;
    }
    assert.ok(await eventually(() => fds().join() === before.join()), `${before} vs ${fds()}`);
    assert.deepEqual(readdirSync(s.socketDir), []);
    const mine = readFileSync(`/proc/self/task/${process.pid}/children`, 'utf8').trim();
    assert.equal(mine, '');
  });

  test('killing the runtime process kills its containers (PDEATHSIG)', async (t) => {
    const s = sandbox(t);
    const script = `
      import { launch } from ${JSON.stringify(new URL('../../src/actors/launch/launch.js', import.meta.url).href)};
      const spec = JSON.parse(process.argv[1]);
      const l = await launch(spec);
      l.openGate();
      await l.started;
      console.log(l.pid);
    `;
    const spec = specFor(s, { args: ['sleep'] });
    const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script, JSON.stringify(spec)], { stdio: ['ignore', 'pipe', 'inherit'] });
    const pid = await new Promise<number>((resolve, reject) => {
      child.stdout.once('data', (d: Buffer) => resolve(Number(d.toString().trim())));
      child.once('exit', (c) => reject(new Error(`runtime exited ${c}`)));
    });
    assert.ok(existsSync(`/proc/${pid}`));
    child.kill('SIGKILL');
    await new Promise((r) => child.once('exit', r));
    assert.ok(await eventually(() => !existsSync(`/proc/${pid}`)), `init ${pid} survived its runtime`);
  });

  test('many launches run side by side', async (t) => {
    const s = sandbox(t);
    const spec = specFor(s, { args: ['exit', '7'] });
    const all = await Promise.all(Array.from({ length: 16 }, () => launch(spec)));
    for (const l of all) l.openGate();
    const statuses = await Promise.all(all.map((l) => l.exited));
    for (const st of statuses) assert.deepEqual(st, { exit: { code: 7 } });
  });
});
