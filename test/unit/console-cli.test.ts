// nstar against a fake backend over a real unix socket.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import { formatUptime, main, parseStartArgs, parseTimeout, table } from '../../src/cli/nstar.js';
import { startServer } from './console-fake-backend.js';

async function nstar(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { out: (s) => void (out += s), err: (s) => void (err += s), isTTY: false });
  return { code, out, err };
}

test('list prints an aligned table with type, mount state, pid and uptime', async (t) => {
  const { url } = await startServer(t);
  const r = await nstar(['-u', url, 'list']);
  assert.equal(r.code, 0, r.err);
  assert.equal(
    r.out,
    [
      'Name         Version  Repository  Type      Mounted  PID   Uptime',
      'crashing     0.0.1    mem         app       yes      4242  1.500s',
      'hello-world  0.0.1    mem         app       no',
      'message      0.0.2    fs          resource  yes',
      '',
    ].join('\n'),
  );
  assert.equal((await nstar(['-u', url, 'ls'])).out, r.out);
});

test('start passes KEY=VAL pairs, an init and arguments and needs start_command for them', async (t) => {
  const { url, backend } = await startServer(t);
  const r = await nstar(['-u', url, 'start', 'hello-world', 'A=1', 'B=x=y', '<INIT>', '--flag', 'arg']);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, 'started hello-world:0.0.1\n');
  assert.deepEqual(backend.requests.at(-1)!.req, {
    start: { container: 'hello-world:0.0.1', init: '<INIT>', arguments: ['--flag', 'arg'], environment: { A: '1', B: 'x=y' } },
  });
  assert.deepEqual(parseStartArgs([]), { env: {}, init: null, args: [] });
});

test('errors print the runtime message and exit non-zero', async (t) => {
  const { url } = await startServer(t);
  const r = await nstar(['-u', url, 'kill', 'hello-world:0.0.1']);
  assert.equal(r.code, 1);
  assert.equal(r.err, 'nstar: container hello-world:0.0.1 failed to stop\n');
  const u = await nstar(['-u', url, 'start', 'nope']);
  assert.equal(u.code, 1);
  assert.match(u.err, /no container named "nope" is installed/);
  const m = await nstar(['-u', url, 'mount', 'hello-world', 'message']);
  assert.equal(m.code, 1);
  assert.equal(m.out, 'mounted hello-world:0.0.1\nfailed to mount message:0.0.2: container message:0.0.2 cannot be mounted: busy\n');
});

test('a name alone must be unique among the installed containers', async (t) => {
  const { url, backend } = await startServer(t);
  backend.containers.set('hello-world:0.0.2', { repository: 'mem', mounted: false, pid: null, resource: false });
  const r = await nstar(['-u', url, 'inspect', 'hello-world']);
  assert.equal(r.code, 1);
  assert.match(r.err, /"hello-world" is ambiguous: hello-world:0\.0\.1, hello-world:0\.0\.2/);
});

test('inspect prints pretty JSON, repositories and ident print plain lines', async (t) => {
  const { url } = await startServer(t);
  const i = await nstar(['-u', url, 'inspect', 'crashing']);
  assert.equal(i.code, 0, i.err);
  assert.deepEqual(JSON.parse(i.out).process, { pid: 4242, uptime: 1500000000, statistics: {} });
  assert.match(i.out, /^\{\n {2}"manifest"/);
  assert.equal((await nstar(['-u', url, 'repositories'])).out, 'fs\nmem\n');
  assert.equal((await nstar(['-u', url, 'ident'])).out, 'extern:0.0.0\n');
});

test('-j prints the raw JSON lines exchanged instead of the formatted output', async (t) => {
  const { url } = await startServer(t);
  const r = await nstar(['-u', url, '-j', 'ident']);
  assert.equal(
    r.out,
    '{"connect":{"version":"0.9.3","subscribe_notifications":false}}\n{"connect_ack":null}\n{"request":"ident"}\n{"response":{"ident":"extern:0.0.0"}}\n',
  );
});

test('install streams the file, uninstall -w wipes, and the runtime sees both', async (t) => {
  const { url, backend } = await startServer(t);
  const dir = mkdtempSync(join(tmpdir(), 'nstar-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const npk = join(dir, 'x.npk');
  writeFileSync(npk, Buffer.alloc(3 * 1024 * 1024 + 5, 1));
  const r = await nstar(['-u', url, 'install', npk, 'mem']);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, 'installed installed-1:0.0.1\n');
  assert.equal(backend.installs[0]!.size, 3 * 1024 * 1024 + 5);
  const u = await nstar(['-u', url, 'uninstall', '-w', 'installed-1']);
  assert.equal(u.out, 'uninstalled installed-1:0.0.1\n');
  assert.deepEqual(backend.requests.at(-1)!.req, { uninstall: { container: 'installed-1:0.0.1', wipe: true } });
  const missing = await nstar(['-u', url, 'install', join(dir, 'nope.npk'), 'mem']);
  assert.equal(missing.code, 1);
  assert.match(missing.err, /cannot read .*nope\.npk/);
});

test('token prints "created token" and verify-token checks it on the same console', async (t) => {
  const { url } = await startServer(t);
  const c = await nstar(['-u', url, 'token', 'extern', 'hello']);
  const m = /^created token (\S{56})\n$/.exec(c.out);
  assert.ok(m, c.out);
  const v = await nstar(['-u', url, 'verify-token', m[1]!, 'extern', 'hello']);
  assert.equal(v.out, 'Ok\n');
  const bad = await nstar(['-u', url, 'verify-token', m[1]!, 'extern', 'other']);
  assert.equal(bad.out, 'Invalid\n');
  assert.equal(bad.code, 1);
});

test('notifications -n prints that many notifications and exits', async (t) => {
  const { url, backend, server } = await startServer(t);
  server.once('connected', () => {
    setImmediate(() => {
      backend.emit({ started: 'a:0.0.1' });
      backend.emit({ exit: ['a:0.0.1', { exit: { code: 0 } }] });
      backend.emit({ install: 'b:0.0.1' });
    });
  });
  const r = await nstar(['-u', url, 'notifications', '-n', '2']);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, '{"started":"a:0.0.1"}\n{"exit":["a:0.0.1",{"exit":{"code":0}}]}\n');
});

test('extension commands stop, exec, pause and resume send their requests', async (t) => {
  const { url, backend } = await startServer(t);
  assert.equal((await nstar(['-u', url, 'pause', 'crashing'])).out, 'paused crashing:0.0.1\n');
  assert.equal((await nstar(['-u', url, 'resume', 'crashing'])).out, 'resumed crashing:0.0.1\n');
  const e = await nstar(['-u', url, 'exec', '-w', 'crashing', '/bin/probe', 'cat', '/etc/hostname']);
  assert.equal(e.out, 'pid 5000 exited with {"exit":{"code":0}}\n');
  assert.deepEqual(backend.requests.at(-1)!.req, {
    exec: { container: 'crashing:0.0.1', path: '/bin/probe', arguments: ['cat', '/etc/hostname'], environment: {}, wait: true },
  });
  assert.equal((await nstar(['-u', url, 'stop', 'crashing', '2s'])).out, 'stopped crashing:0.0.1\n');
  assert.deepEqual(backend.requests.at(-1)!.req, { stop: { container: 'crashing:0.0.1', grace_ms: 2000 } });
});

test('an unreachable console fails with the url in the message', async () => {
  const r = await nstar(['-u', 'unix:///nonexistent/console', '-t', '1s', 'list']);
  assert.equal(r.code, 1);
  assert.match(r.err, /connect to unix:\/\/\/nonexistent\/console/);
  const bad = await nstar(['-u', 'http://x', 'list']);
  assert.match(bad.err, /scheme must be tcp or unix/);
});

test('completion prints a script naming every command, or writes it to a file', async () => {
  const r = await nstar(['completion', '-s', 'bash']);
  assert.equal(r.code, 0);
  for (const c of ['list', 'start', 'verify-token', 'notifications', 'stop', 'exec']) assert.match(r.out, new RegExp(`\\b${c}\\b`));
  const dir = mkdtempSync(join(tmpdir(), 'nstar-cli-'));
  const f = join(dir, 'nstar.fish');
  assert.equal((await nstar(['completion', '-s', 'fish', '-o', f])).code, 0);
  assert.match(readFileSync(f, 'utf8'), /complete -c nstar .* -a list/);
  rmSync(dir, { recursive: true });
  assert.equal((await nstar(['completion', '-s', 'tcsh'])).code, 1);
});

test('shutdown asks the runtime and succeeds even though the console closes', async (t) => {
  const { url, backend } = await startServer(t);
  const r = await nstar(['-u', url, 'shutdown']);
  assert.equal(r.code, 0, r.err);
  assert.equal(backend.requests.at(-1)!.req, 'shutdown');
});

test('usage errors exit non-zero without contacting the runtime', async () => {
  assert.notEqual((await nstar(['frobnicate'])).code, 0);
  assert.notEqual((await nstar(['kill'])).code, 0);
  assert.equal((await nstar(['--help'])).code, 0);
});

test('durations, uptimes and tables format like nstar', () => {
  assert.equal(parseTimeout('10s'), 10_000);
  assert.equal(parseTimeout('250ms'), 250);
  assert.equal(parseTimeout('2m'), 120_000);
  assert.equal(parseTimeout('3'), 3000);
  assert.throws(() => parseTimeout('soon'), /invalid duration "soon"/);
  assert.equal(formatUptime(1_500_000_000), '1.500s');
  assert.equal(formatUptime(3_723_000_000_000), '1h 2m 3s');
  assert.equal(table(['A', 'Bee'], [['xx', 'y']]), 'A   Bee\nxx  y\n');
});

test('seccompFromStrace lists the syscalls of an strace log beyond the default profile', async () => {
  const { seccompFromStrace } = await import('../../src/cli/nstar.js');
  const log = [
    '1234  execve("/bin/x", ["x"], 0x7ff /* 3 vars */) = 0',
    '[pid  1235] openat(AT_FDCWD, "/etc/passwd", O_RDONLY) = 3',
    'read(3, "root", 4096) = 4',
    '1235  <... read resumed>"x", 1) = 1',
    '1235  --- SIGCHLD {si_signo=SIGCHLD} ---',
    '1235  +++ exited with 0 +++',
    'mount("none", "/mnt", "tmpfs", 0, NULL) = -1 EPERM',
  ].join('\n');
  assert.equal(seccompFromStrace(log), 'allow:\n  execve: any\n  mount: any\n  openat: any\n  read: any\n');
  assert.equal(seccompFromStrace(log, new Set(['execve', 'openat', 'read'])), 'profile: default\nallow:\n  mount: any\n');
  assert.equal(seccompFromStrace('', new Set()), 'profile: default\n');
});

test('nstar seccomp prints the syscalls beyond the default profile, or all with --no-default-profile', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nstar-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const log = join(dir, 'strace.log');
  writeFileSync(log, '100 read(3, "", 1) = 0\n100 mount("a", "b", NULL, 0, NULL) = -1 EPERM\n100 reboot(0) = -1 EPERM\n');
  const r = await nstar(['seccomp', log]);
  assert.equal(r.code, 0, r.err);
  assert.equal(r.out, 'profile: default\nallow:\n  mount: any\n  reboot: any\n');
  assert.equal((await nstar(['seccomp', log, '--no-default-profile'])).out, 'allow:\n  mount: any\n  read: any\n  reboot: any\n');
  const missing = await nstar(['seccomp', join(dir, 'nope.log')]);
  assert.equal(missing.code, 1);
  assert.match(missing.err, /cannot read .*nope\.log/);
});

test('without -u nstar looks for the embedded default config\'s socket first', async () => {
  const { DEFAULT_URLS } = await import('../../src/client/index.js');
  const { EMBEDDED_DEFAULT_CONFIG, parseConfig } = await import('../../src/model/config.js');
  assert.deepEqual(DEFAULT_URLS, [parseConfig(EMBEDDED_DEFAULT_CONFIG).console.global!.bind, 'tcp://localhost:4200']);
  const { startConsole } = await import('../../src/console/index.js');
  type Slice = Parameters<typeof startConsole>[0];
  const slice: Slice = parseConfig(EMBEDDED_DEFAULT_CONFIG); // the runtime's Config fits the console's slice
  assert.ok(slice.console.global);
});
