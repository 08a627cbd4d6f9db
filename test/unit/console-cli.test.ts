// nstar against a fake backend over a real unix socket.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { formatNotification, formatUptime, main, parseSignal, parseStartArgs, parseTimeout, table } from '../../src/cli/nstar.js';
import { startServer } from './console-fake-backend.js';

async function nstar(args: string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await main(args, { out: (s) => void (out += s), err: (s) => void (err += s), isTTY: false });
  return { code, out, err };
}

test('list prints a table with type, state, pid, uptime and repository, or JSON, or the names', async (t) => {
  const { url, backend } = await startServer(t);
  backend.containers.get('crashing:0.0.1')!.state = 'started.paused';
  const r = await nstar(['-u', url, 'list']);
  assert.equal(r.code, 0, r.err);
  assert.equal(
    r.out,
    [
      'NAME         VERSION  TYPE      STATE      PID   UPTIME  REPOSITORY',
      'crashing     0.0.1    app       paused     4242  1.500s  mem',
      'hello-world  0.0.1    app       unmounted                mem',
      'message      0.0.2    resource  mounted                  fs',
      '',
    ].join('\n'),
  );
  assert.equal((await nstar(['-u', url, 'ls'])).out, r.out);
  const j = await nstar(['-u', url, 'list', '--json']);
  assert.deepEqual(JSON.parse(j.out)[0], {
    container: 'crashing:0.0.1', name: 'crashing', version: '0.0.1', type: 'app', state: 'paused',
    pid: 4242, uptime_ns: 1_500_000_000, repository: 'mem', restarts: null, health: null,
  });
  assert.equal((await nstar(['-u', url, '--json', 'ls'])).out, j.out, 'global --json too');
  assert.equal((await nstar(['-u', url, 'ls', '-q'])).out, 'crashing:0.0.1\nhello-world:0.0.1\nmessage:0.0.2\n');
});

test('list shows RESTARTS and HEALTH once a container is supervised, and notifications name them', async (t) => {
  const { url, backend } = await startServer(t);
  const e = backend.containers.get('crashing:0.0.1')!;
  e.state = 'started.running';
  e.restarts = { count: 2, lastReason: 'exited with code 1', nextAttemptMs: null, gaveUp: false };
  e.health = { status: 'healthy', failures: 0 };
  const r = await nstar(['-u', url, 'list']);
  assert.equal(r.code, 0, r.err);
  const [head, first] = r.out.split('\n');
  assert.match(head!, /REPOSITORY +RESTARTS +HEALTH$/);
  assert.match(first!, /^crashing .* running .* mem +2 +healthy$/);
  const j = JSON.parse((await nstar(['-u', url, 'list', '--json'])).out);
  assert.equal(j[0].restarts, 2);
  assert.equal(j[0].health, 'healthy');
  assert.equal(j[1].restarts, null);
  assert.equal(formatNotification({ restarting: ['c:1.0.0', { attempt: 3, delay_ms: 400, reason: 'exited with code 1' }] }), 'c:1.0.0 restarts in 400 ms (attempt 3: exited with code 1)');
  assert.equal(formatNotification({ gave_up: ['c:1.0.0', { restarts: 5, reason: 'exited with code 1' }] }), 'c:1.0.0 stays down: gave up after 5 restarts (exited with code 1)');
  assert.equal(formatNotification({ unhealthy: 'c:1.0.0' }), 'c:1.0.0 is unhealthy');
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

test('errors say what is wrong and what to do, and exit non-zero', async (t) => {
  const { url, backend } = await startServer(t);
  const notRunning = (verb: string) =>
    `nstar: cannot ${verb} hello-world:0.0.1: it is not running (start it with \`nstar start hello-world:0.0.1\`)\n`;
  for (const [args, verb] of [
    [['kill', 'hello-world:0.0.1'], 'signal'],
    [['exec', '-d', 'hello-world:0.0.1', '/bin/true'], 'run a process in'],
    [['pause', 'hello-world:0.0.1'], 'pause'],
    [['resume', 'hello-world:0.0.1'], 'resume'],
  ] as const) {
    const r = await nstar(['-u', url, ...args]);
    assert.equal(r.code, 1);
    assert.equal(r.err, notRunning(verb));
    assert.doesNotMatch(r.err, /failed to stop/);
  }
  assert.equal((await nstar(['-u', url, 'stop', 'hello-world'])).err, 'nstar: hello-world:0.0.1 is not running: nothing to stop\n');
  const u = await nstar(['-u', url, 'start', 'nope']);
  assert.equal(u.code, 1);
  assert.match(u.err, /no container named "nope" is installed \(`nstar list` shows the installed containers\)/);
  const v = await nstar(['-u', url, 'start', 'nosuch:0.0.1']);
  assert.equal(v.code, 1);
  assert.equal(v.err, 'nstar: no container nosuch:0.0.1 is installed (`nstar list` shows the installed containers)\n');
  const m = await nstar(['-u', url, 'mount', 'hello-world', 'message']);
  assert.equal(m.code, 1);
  assert.equal(m.out, 'mounted hello-world:0.0.1\n');
  assert.equal(m.err, 'nstar: message:0.0.2 is already mounted\n');
  const busy = await nstar(['-u', url, 'uninstall', 'crashing']);
  assert.equal(busy.code, 1);
  assert.equal(busy.err, 'nstar: cannot uninstall crashing:0.0.1: it is running (stop it first: `nstar stop crashing:0.0.1`)\n');
  const again = await nstar(['-u', url, 'start', 'crashing']);
  assert.equal(again.err, 'nstar: crashing:0.0.1 is already running (`nstar stop crashing:0.0.1` stops it)\n');
  // Resume of a running container: the runtime says ok, nstar says there was nothing to do.
  backend.containers.get('crashing:0.0.1')!.state = 'started.running';
  const resume = await nstar(['-u', url, 'resume', 'crashing']);
  assert.equal(resume.code, 1);
  assert.equal(resume.out, '');
  assert.equal(resume.err, 'nstar: crashing:0.0.1 is not paused (it is running): nothing to resume\n');
  backend.containers.get('crashing:0.0.1')!.state = 'started.paused';
  assert.match((await nstar(['-u', url, 'pause', 'crashing'])).err, /crashing:0\.0\.1 is already paused/);
  assert.equal((await nstar(['-u', url, 'resume', 'crashing'])).out, 'resumed crashing:0.0.1\n');
  const repo = await nstar(['-u', url, 'install', fileURLToPath(import.meta.url), 'nope']);
  assert.equal(repo.err, 'nstar: no repository named "nope" (`nstar repositories` lists them)\n');
});

test('a request the console does not permit is named, with where permissions come from', async (t) => {
  const { url } = await startServer(t, { permissions: ['list', 'inspect'] });
  const r = await nstar(['-u', url, 'kill', 'crashing', 'TERM']);
  assert.equal(r.code, 1);
  assert.match(r.err, /^nstar: permission denied: this console does not permit `kill` \(the console's permissions in the config/);
  const n = await nstar(['-u', url, 'notifications']);
  assert.match(n.err, /this console does not permit notifications/);
  // resume looks at the state first when it may; without inspect the runtime alone decides.
  const { url: url2 } = await startServer(t, { permissions: ['list', 'resume'] });
  assert.equal((await nstar(['-u', url2, 'resume', 'crashing'])).out, 'resumed crashing:0.0.1\n');
});

test('kill takes signal names and numbers, as an argument or with -s', async (t) => {
  const { url, backend } = await startServer(t);
  const sent = () => (backend.requests.at(-1)!.req as { kill: { signal: number } }).kill.signal;
  const cases: [string[], number, string][] = [
    [['crashing', 'USR1'], 10, 'SIGUSR1 (10)'],
    [['crashing', 'sigusr2'], 12, 'SIGUSR2 (12)'],
    [['-s', 'SIGHUP', 'crashing'], 1, 'SIGHUP (1)'],
    [['--signal', '9', 'crashing'], 9, 'SIGKILL (9)'],
    [['crashing'], 15, 'SIGTERM (15)'],
  ];
  for (const [args, n, name] of cases) {
    backend.containers.get('crashing:0.0.1')!.pid = 4242;
    const r = await nstar(['-u', url, 'kill', ...args]);
    assert.equal(r.out, `signalled crashing:0.0.1 with ${name}\n`, r.err);
    assert.equal(sent(), n);
  }
  const bad = await nstar(['-u', url, 'kill', 'crashing', 'FROB']);
  assert.equal(bad.code, 1);
  assert.match(bad.err, /unknown signal "FROB" \(examples: TERM, SIGUSR1, 9/);
  assert.match((await nstar(['-u', url, 'kill', 'crashing', '99'])).err, /invalid signal number 99/);
  assert.equal(parseSignal('INT'), 2);
});

test('a name alone must be unique among the installed containers', async (t) => {
  const { url, backend } = await startServer(t);
  backend.containers.set('hello-world:0.0.2', { repository: 'mem', mounted: false, pid: null, resource: false });
  const r = await nstar(['-u', url, 'inspect', 'hello-world']);
  assert.equal(r.code, 1);
  assert.match(r.err, /"hello-world" is ambiguous: hello-world:0\.0\.1, hello-world:0\.0\.2/);
});

test('inspect prints a human view, --json pretty JSON, big integers exact in both', async (t) => {
  const { url, backend } = await startServer(t);
  const big = 9223372036854771712n;
  Object.assign(backend.containers.get('crashing:0.0.1')!, {
    state: 'started.running',
    statistics: { memory: { usage_bytes: 4096, limit_bytes: null, stat: { hierarchical_memory_limit: big, cache: 0 } } },
  });
  const i = await nstar(['-u', url, 'inspect', 'crashing']);
  assert.equal(i.code, 0, i.err);
  assert.equal(
    i.out,
    [
      'container:   crashing:0.0.1',
      'repository:  mem',
      'type:        app (init /bin/probe)',
      'state:       running',
      'mounted:     yes',
      'pid:         4242',
      'uptime:      1.500s',
      'statistics:',
      '  memory:',
      '    usage_bytes: 4096',
      '    limit_bytes: -',
      '    stat:',
      '      hierarchical_memory_limit: 9223372036854771712',
      '      cache: 0',
      '',
    ].join('\n'),
  );
  const j = await nstar(['-u', url, 'inspect', '--json', 'crashing']);
  assert.match(j.out, /^\{\n {2}"manifest"/);
  assert.match(j.out, /"hierarchical_memory_limit": 9223372036854771712,/);
  assert.deepEqual(JSON.parse(j.out).process.pid, 4242);
  const raw = await nstar(['-u', url, '--raw', 'inspect', 'crashing']);
  assert.match(raw.out, /"hierarchical_memory_limit":9223372036854771712,/, 'the runtime sends it exact');
  assert.equal((await nstar(['-u', url, 'repositories'])).out, 'fs\nmem\n');
  assert.equal((await nstar(['-u', url, 'ident'])).out, 'extern:0.0.0\n');
});

test('--raw prints the raw JSON lines exchanged instead of the formatted output', async (t) => {
  const { url } = await startServer(t);
  assert.equal((await nstar(['-u', url, 'ident', '--json'])).out, '{"ident":"extern:0.0.0"}\n');
  const r = await nstar(['-u', url, '--raw', 'ident']);
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

test('notifications -n prints that many notifications, a line each, and exits; --json keeps JSON', async (t) => {
  const { url, backend, server } = await startServer(t);
  const emitAll = () =>
    server.once('connected', () => {
      setImmediate(() => {
        backend.emit({ type: 'started', container: 'a:0.0.1' });
        backend.emit({ type: 'exit', container: 'a:0.0.1', status: { exit: { code: 0 } } });
        backend.emit({ type: 'exit', container: 'a:0.0.1', status: { signalled: { signal: 9 } } });
        backend.emit({ type: 'memory', container: 'a:0.0.1', memory: { low: null, high: null, max: null, oom: 1, oom_kill: 1 } });
        backend.emit({ type: 'install', container: 'b:0.0.1' });
        backend.emit({ type: 'uninstall', container: 'b:0.0.1' });
        backend.emit({ type: 'shutdown' });
      });
    });
  emitAll();
  const r = await nstar(['-u', url, 'notifications', '-n', '7']);
  assert.equal(r.code, 0, r.err);
  assert.equal(
    r.out,
    [
      'started a:0.0.1',
      'a:0.0.1 exited with code 0',
      'a:0.0.1 was killed by SIGKILL (9)',
      'memory event in a:0.0.1: oom 1, oom_kill 1',
      'installed b:0.0.1',
      'uninstalled b:0.0.1',
      'the runtime is shutting down',
      '',
    ].join('\n'),
  );
  emitAll();
  const j = await nstar(['-u', url, 'notifications', '-n', '2', '--json']);
  assert.equal(j.out, '{"started":"a:0.0.1"}\n{"exit":["a:0.0.1",{"exit":{"code":0}}]}\n');
});

test('extension commands stop, exec, pause and resume send their requests', async (t) => {
  const { url, backend } = await startServer(t);
  assert.equal((await nstar(['-u', url, 'pause', 'crashing'])).out, 'paused crashing:0.0.1\n');
  assert.equal((await nstar(['-u', url, 'resume', 'crashing'])).out, 'resumed crashing:0.0.1\n');
  const e = await nstar(['-u', url, 'exec', '-w', 'crashing', '/bin/probe', 'cat', '/etc/hostname']);
  assert.equal(e.out, 'pid 5000 exited with code 0\n');
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
  assert.equal((await nstar(['completion', 'bash'])).out, r.out);
  for (const c of ['list', 'start', 'verify-token', 'notifications', 'stop', 'exec']) assert.match(r.out, new RegExp(`\\b${c}\\b`));
  const dir = mkdtempSync(join(tmpdir(), 'nstar-cli-'));
  const f = join(dir, 'nstar.fish');
  assert.equal((await nstar(['completion', '-s', 'fish', '-o', f])).code, 0);
  assert.match(readFileSync(f, 'utf8'), /complete -c nstar .* -a list/);
  rmSync(dir, { recursive: true });
  assert.equal((await nstar(['completion', '-s', 'tcsh'])).code, 1);
});

test('shutdown asks the runtime, waits for it to close and says what it stopped', async (t) => {
  const { url, backend } = await startServer(t);
  const r = await nstar(['-u', url, 'shutdown']);
  assert.equal(r.code, 0, r.err);
  assert.equal(backend.requests.at(-1)!.req, 'shutdown');
  assert.equal(r.out, 'the runtime shut down\nstopped 1 container: crashing:0.0.1 (pid 4242)\nunmounted 2 containers\n');
});

test('the shell completion runs in bash: commands, flags and installed containers', async (t) => {
  const { url } = await startServer(t);
  const script = (await nstar(['completion', 'bash'])).out;
  const dir = mkdtempSync(join(tmpdir(), 'nstar-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  // `nstar list -q` in the script reaches the fake runtime through a stub on PATH.
  const bin = join(dir, 'nstar');
  writeFileSync(bin, '#!/bin/sh\nprintf "crashing:0.0.1\\nhello-world:0.0.1\\n"\n', { mode: 0o755 });
  const complete = (words: string[]) =>
    execFileSync('bash', ['-c', `${script}\nCOMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _nstar; printf '%s\\n' "\${COMPREPLY[@]}"`], {
      encoding: 'utf8',
      env: { ...process.env, PATH: `${dir}:${process.env.PATH}` },
    }).trim().split('\n');
  assert.deepEqual(complete(['nstar', 'ki']), ['kill']);
  assert.deepEqual(complete(['nstar', '-u', url, 'in']).sort(), ['inspect', 'install']);
  assert.ok(complete(['nstar', 'kill', '-']).includes('--signal'));
  assert.deepEqual(complete(['nstar', 'start', 'hel']), ['hello-world:0.0.1']);
  assert.ok(complete(['nstar', 'uninstall', '--']).includes('--wipe'));
  const zsh = (await nstar(['completion', 'zsh'])).out;
  assert.match(zsh, /^#compdef nstar\n/);
  assert.match(zsh, /'kill:send a signal/);
  if (spawnSync('zsh', ['--version']).status === 0) assert.equal(spawnSync('zsh', ['-n'], { input: zsh }).status, 0);
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

test('install shows a progress bar on a terminal for large files, and none otherwise', async (t) => {
  const { url } = await startServer(t);
  const dir = mkdtempSync(join(tmpdir(), 'nstar-cli-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  const big = join(dir, 'big.npk');
  writeFileSync(big, Buffer.alloc(6 * 1024 * 1024));
  let err = '';
  const code = await main(['-u', url, 'install', big, 'mem'], { out: () => undefined, err: (s) => void (err += s), isTTY: true });
  assert.equal(code, 0, err);
  assert.match(err, /\r\[#{20}\] 100% 6\.0\/6\.0 MiB\n$/);
  const plain = await nstar(['-u', url, 'install', big, 'mem']);
  assert.equal(plain.err, '');
});
