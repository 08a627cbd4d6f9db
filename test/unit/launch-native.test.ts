// The addon's spawn and fd helpers without namespaces (no root needed):
// fork-child hygiene (signal dispositions, mask, fds, session), exact exit
// statuses through the pidfd, exec failures, sockets and SCM_RIGHTS.
import assert from 'node:assert/strict';
import { closeSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { initBinaryPath, native } from '../../src/native.js';
import type { ExitStatus } from '../../src/model/errors.js';

/** Runs `sh -c script` with stdout captured; resolves with its status and output. */
function sh(script: string, extra: number[] = []): Promise<{ status: unknown; out: string; pid: number }> {
  const [ours, theirs] = native().socketpair('stream');
  const chunks: Buffer[] = [];
  let pid = 0;
  return new Promise((resolve) => {
    let status: unknown;
    let eof = false;
    const done = () => status !== undefined && eof && resolve({ status, out: Buffer.concat(chunks).toString(), pid });
    native().watchMessages(ours, (m) => {
      if (m) return chunks.push(m);
      eof = true;
      done();
    });
    const child = native().spawn({ path: '/bin/sh', argv: ['sh', '-c', script], envp: ['PATH=/usr/bin:/bin'], fds: [0, theirs, 2, ...extra] }, (s) => {
      status = s;
      done();
    });
    pid = child.pid;
    closeSync(theirs);
  });
}

test('a spawned child starts with default signal dispositions and an empty signal mask', async () => {
  // Node itself ignores SIGPIPE; the child must not inherit that.
  const { out, status } = await sh('grep -E "^(SigBlk|SigIgn)" /proc/self/status');
  assert.deepEqual(status, { exit: { code: 0 } });
  assert.match(out, /^SigBlk:\s+0+$/m);
  assert.match(out, /^SigIgn:\s+0+$/m);
});

test('a spawned child has exactly the fds it was given, renumbered from 0', async () => {
  const [a, b] = native().socketpair('datagram');
  try {
    const { out } = await sh('ls /proc/$$/fd', [a]);
    assert.deepEqual(out.trim().split(/\s+/).sort(), ['0', '1', '2', '3']);
  } finally {
    closeSync(a);
    closeSync(b);
  }
});

test('a spawned child leads its own session and process group', async () => {
  const { out, pid } = await sh('cut -d" " -f5,6 /proc/$$/stat');
  assert.equal(out.trim(), `${pid} ${pid}`);
});

test('exit codes and signals come back exactly through the pidfd', async () => {
  assert.deepEqual((await sh('exit 42')).status, { exit: { code: 42 } });
  assert.deepEqual((await sh('kill -TERM $$')).status, { signalled: { signal: 15 } });
});

test('signal and signalGroup reach a running child and report false once it is reaped', async () => {
  let resolveExit!: (s: ExitStatus) => void;
  const exited = new Promise<ExitStatus>((r) => (resolveExit = r));
  const c = native().spawn({ path: '/bin/sleep', argv: ['sleep', '100'], envp: [], fds: [0, 1, 2] }, (s) => resolveExit(s as ExitStatus));
  assert.equal(c.reaped(), false);
  assert.equal(c.signalGroup(9), true);
  assert.deepEqual(await exited, { signalled: { signal: 9 } });
  assert.equal(c.reaped(), true);
  assert.equal(c.signal(9), false);
  assert.equal(c.signalGroup(9), false);
});

test('a program that cannot be executed is a system error naming execve, and leaves no zombie', () => {
  assert.throws(
    () => native().spawn({ path: '/no/such/program', argv: ['x'], envp: [], fds: [0, 1, 2] }, () => assert.fail('no exit callback')),
    (e: NodeJS.ErrnoException) => e.code === 'ENOENT' && e.syscall === 'execve' && e.message === 'execve `/no/such/program`: No such file or directory',
  );
  const children = readFileSync(`/proc/self/task/${process.pid}/children`, 'utf8').trim();
  assert.equal(children, '');
});

test('unixSocket binds with the mode, replaces a stale file and listens for stream sockets', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nstar-sock-'));
  try {
    const path = join(dir, 'c:0.0.1:s');
    const fds = [native().unixSocket({ path, type: 'stream', mode: 0o640, passcred: true })];
    closeSync(fds[0]);
    fds.push(native().unixSocket({ path, type: 'seq_packet', mode: 0o600 }));
    assert.ok(statSync(path).isSocket());
    assert.equal(statSync(path).mode & 0o777, 0o600);
    closeSync(fds[1]);
    assert.throws(() => native().unixSocket({ path: join(dir, 'x'.repeat(200)), type: 'datagram', mode: 0o600 }), /ENAMETOOLONG|name too long/i);
    assert.throws(() => native().unixSocket({ path: join(dir, 'y'), type: 'raw' as never, mode: 0o600 }), /stream, datagram or seq_packet/);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('sendMessage passes fds with SCM_RIGHTS and watchMessages keeps message boundaries', async () => {
  const [a, b] = native().socketpair('seq_packet');
  const got: string[] = [];
  const closed = new Promise<void>((resolve) => native().watchMessages(b, (m) => (m ? got.push(m.toString()) : resolve())));
  native().sendMessage(a, Buffer.from('one'));
  native().sendMessage(a, Buffer.from('two'), [0]);
  closeSync(a);
  await closed;
  assert.deepEqual(got, ['one', 'two']);
});

test('memfd and seals: a sealed memfd refuses writes', () => {
  const fd = native().memfdCreate('nstar-test', 0x2 /* MFD_ALLOW_SEALING */);
  try {
    native().addSeals(fd, 0x8 /* F_SEAL_WRITE */);
    assert.ok(readdirSync('/proc/self/fd').includes(String(fd)));
    assert.throws(() => writeSync(fd, 'x'), /EPERM/);
  } finally {
    closeSync(fd);
  }
  assert.throws(() => native().addSeals(-1, 1), (e: NodeJS.ErrnoException) => e.code === 'EBADF');
});

/** Runs nstar-init (no namespaces) with `spec` as its first message; its messages and exit. */
async function initWith(spec: Buffer): Promise<{ messages: string[]; status: unknown }> {
  const [ours, theirs] = native().socketpair('seq_packet');
  native().sendMessage(ours, spec);
  const messages: string[] = [];
  const closed = new Promise<void>((resolve) => native().watchMessages(ours, (m) => (m ? messages.push(m.toString()) : resolve())));
  const exited = new Promise((resolve) => native().spawn({ path: initBinaryPath(), argv: ['nstar-init'], envp: [], fds: [0, 1, 2, theirs] }, resolve));
  closeSync(theirs);
  await closed;
  return { messages, status: await exited };
}

test('nstar-init refuses a spec without root or init, naming the problem', async () => {
  const r = await initWith(Buffer.from([0xff, 0, 0, 0, 0, 0, 0, 0]));
  assert.deepEqual(r, { messages: ['error 22 spec\troot and init are required'], status: { exit: { code: 1 } } });
});

test('nstar-init refuses a truncated record and an unterminated string', async () => {
  const truncated = Buffer.from([1, 0, 0, 0, 100, 0, 0, 0, 0x2f]);
  assert.deepEqual((await initWith(truncated)).messages, ['error 22 spec\ttruncated record']);
  const unterminated = Buffer.from([1, 0, 0, 0, 2, 0, 0, 0, 0x2f, 0x61]);
  assert.deepEqual((await initWith(unterminated)).messages, ['error 22 spec\tunterminated string']);
});
