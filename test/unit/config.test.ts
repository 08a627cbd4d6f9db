import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  ConfigError, DEFAULT_CONSOLE_OPTIONS, DEFAULT_SOCKET_MODE, EMBEDDED_DEFAULT_CONFIG, parseBindUrl, parseConfig,
} from '../../src/model/config.js';
import { loadConfig } from '../../src/config-file.js';
import { PERMISSIONS } from '../../src/model/manifest.js';

const BASE = `
run_dir = "target/northstar/run"
data_dir = "target/northstar/data"
socket_dir = "target/northstar/sockets"
cgroup = "northstar"
`;

function rejects(toml: string, field: string, rule: RegExp): void {
  assert.throws(
    () => parseConfig(toml, { cpus: 4 }),
    (e: unknown) => {
      assert.ok(e instanceof ConfigError, `expected a ConfigError, got ${String(e)}`);
      assert.equal(e.field, field, `field of "${e.message}"`);
      if (field !== '') assert.ok(e.message.startsWith(`${field}: `), e.message);
      assert.match(e.message, rule);
      return true;
    },
  );
}

describe('parseConfig', () => {
  it('fills in every default of a minimal config', () => {
    assert.deepEqual(parseConfig(BASE, { cpus: 4 }), {
      runDir: 'target/northstar/run',
      dataDir: 'target/northstar/data',
      socketDir: 'target/northstar/sockets',
      cgroup: 'northstar',
      cgroupFavordynmods: true,
      eventBufferSize: 256,
      notificationBufferSize: 128,
      loopDeviceTimeoutMs: 10_000,
      shutdownGraceMs: 0,
      logBuffer: 65_536,
      verity: 'auto',
      pool: { threads: 4, minThreads: 0, idleTimeoutMs: 30_000 },
      log: { level: 'info' },
      console: {
        options: { tokenValidityMs: 60_000, maxRequestsPerSec: 1000, maxRequestSize: 1_048_576, maxNpkInstallSize: 268_435_456, npkStreamTimeoutMs: 10_000 },
      },
      repositories: {},
      debug: { commands: [] },
    });
  });

  it('reads shutdown_grace and install_timeout; install_timeout is absent by default (proportional to the size)', () => {
    const c = parseConfig(`shutdown_grace = "5s"\ninstall_timeout = "2m"\n${BASE}`);
    assert.equal(c.shutdownGraceMs, 5000);
    assert.equal(c.installTimeoutMs, 120_000);
    assert.equal(parseConfig(BASE).installTimeoutMs, undefined);
    assert.throws(() => parseConfig(`install_timeout = "0s"\n${BASE}`), /install_timeout: must be longer than 0s/);
    assert.throws(() => parseConfig(`shutdown_grace = "soon"\n${BASE}`), /shutdown_grace: invalid duration/);
  });

  it("reads Northstar's sample northstar.toml", () => {
    const c = parseConfig(`${BASE}
event_buffer_size = 256
notification_buffer_size = 64
loop_device_timeout = "5s"

[console.options]
token_validity = "1m"
max_requests_per_sec = 10
max_request_size = "1M"
max_npk_install_size = "100MB"
npk_stream_timeout = "5s"

[console.global]
bind = "tcp://localhost:4200"
permissions = "full"

[debug]
commands = ["sudo strace -f -s 256 -p <PID>", "sudo perf record -p <PID> -o /tmp/perf-<PID>-<CONTAINER>.perf -g -F 99"]

[repositories.memory]
type = "mem"
key = "examples/northstar.pub"
capacity_num = 10
capacity_size = "100MB"

[repositories.default]
type = { fs = { dir = "target/northstar/repository" } }
key = "examples/northstar.pub"
mount_on_start = true
`, { cpus: 2 });
    assert.equal(c.notificationBufferSize, 64);
    assert.equal(c.loopDeviceTimeoutMs, 5000);
    // bytesize semantics: "1M" is a decimal megabyte; the *default* is 1 MiB.
    assert.deepEqual(c.console.options, { tokenValidityMs: 60_000, maxRequestsPerSec: 10, maxRequestSize: 1_000_000, maxNpkInstallSize: 100_000_000, npkStreamTimeoutMs: 5000 });
    assert.deepEqual(c.console.global, { bind: 'tcp://localhost:4200', permissions: [...PERMISSIONS], options: { ...DEFAULT_CONSOLE_OPTIONS } });
    assert.equal(c.debug.commands.length, 2);
    assert.deepEqual(c.repositories.memory, { type: 'mem', key: 'examples/northstar.pub', mountOnStart: false, capacityNum: 10, capacitySize: 100_000_000 });
    assert.deepEqual(c.repositories.default, { type: { fs: { dir: 'target/northstar/repository' } }, key: 'examples/northstar.pub', mountOnStart: true });
  });

  it('reads log_buffer as a byte size and refuses one too small to hold a line', () => {
    assert.equal(parseConfig(`log_buffer = "1MiB"\n${BASE}`).logBuffer, 1_048_576);
    assert.throws(() => parseConfig(`log_buffer = 10\n${BASE}`), (e: unknown) => e instanceof ConfigError && /log_buffer: expected 1KiB\.\.1GiB, got 10 bytes/.test(e.message));
  });

  it('reads binary sizes exactly: "1MiB" is 1048576', () => {
    const c = parseConfig(`${BASE}\n[console.options]\nmax_request_size = "1MiB"\nmax_npk_install_size = 4096\n`);
    assert.equal(c.console.options.maxRequestSize, 1_048_576);
    assert.equal(c.console.options.maxNpkInstallSize, 4096);
  });

  it('reads our additions: verity, cgroup_favordynmods, pool, inspector, log', () => {
    const c = parseConfig(`${BASE}
verity = "userspace"
cgroup_favordynmods = false
[pool]
threads = 2
min_threads = 1
idle_timeout = "1m 30s"
[inspector]
bind = "127.0.0.1:4201"
[log]
level = "DEBUG"
`);
    assert.equal(c.verity, 'userspace');
    assert.equal(c.cgroupFavordynmods, false);
    assert.deepEqual(c.pool, { threads: 2, minThreads: 1, idleTimeoutMs: 90_000 });
    assert.deepEqual(c.inspector, { bind: '127.0.0.1:4201' });
    assert.deepEqual(c.log, { level: 'debug' });
  });

  it('takes a list of console permissions in a fixed order', () => {
    const c = parseConfig(`${BASE}\n[console.global]\nbind = "unix:///tmp/n.sock"\npermissions = ["list", "ident", "list"]\n[console.global.options]\nmax_requests_per_sec = 5\n`);
    assert.deepEqual(c.console.global?.permissions, ['ident', 'list']);
    assert.equal(c.console.global?.options.maxRequestsPerSec, 5);
  });

  it('ignores unknown keys in [console.global], which Northstar leaves open', () => {
    const c = parseConfig(`${BASE}\n[console.global]\nbind = "tcp://127.0.0.1"\npermissions = "full"\nfuture = 1\n`);
    assert.equal(c.console.global?.bind, 'tcp://127.0.0.1');
  });

  it('reads the console socket access keys: socket_mode as octal, socket_group as a name or gid', () => {
    const unix = (extra: string) => parseConfig(`${BASE}[console.global]\nbind = "unix:///run/n/console"\npermissions = "full"\n${extra}`).console.global!;
    assert.equal(unix('').socketMode, undefined, 'absent: the server applies DEFAULT_SOCKET_MODE');
    assert.equal(DEFAULT_SOCKET_MODE, 0o600);
    assert.equal(unix('socket_mode = "0660"\n').socketMode, 0o660);
    assert.equal(unix('socket_mode = "660"\n').socketMode, 0o660);
    assert.equal(unix('socket_mode = "0o600"\n').socketMode, 0o600);
    assert.equal(unix('socket_mode = "0000"\n').socketMode, 0);
    assert.equal(unix('socket_group = "northstar"\n').socketGroup, 'northstar');
    assert.equal(unix('socket_group = "_nstar-ops.1"\n').socketGroup, '_nstar-ops.1');
    assert.equal(unix('socket_group = 1234\n').socketGroup, 1234);
    assert.equal(unix('socket_group = "1234"\n').socketGroup, 1234);
    assert.deepEqual(unix('socket_mode = "0660"\nsocket_group = "adm"\n'), {
      bind: 'unix:///run/n/console', permissions: [...PERMISSIONS], options: { ...DEFAULT_CONSOLE_OPTIONS }, socketMode: 0o660, socketGroup: 'adm',
    });
  });

  const unixConsole = (extra: string, bind = 'unix:///run/n/console') => `${BASE}[console.global]\nbind = "${bind}"\npermissions = "full"\n${extra}`;
  const socketCases: [string, string, string, RegExp][] = [
    ['a socket_mode given as a number', unixConsole('socket_mode = 660\n'), 'console.global.socket_mode', /expected an octal string such as "0660", got the number 660/],
    ['a socket_mode with a digit 8', unixConsole('socket_mode = "0680"\n'), 'console.global.socket_mode', /expected an octal mode such as "0660", got "0680"/],
    ['a socket_mode in words', unixConsole('socket_mode = "rw-rw----"\n'), 'console.global.socket_mode', /expected an octal mode/],
    ['an empty socket_mode', unixConsole('socket_mode = ""\n'), 'console.global.socket_mode', /expected an octal mode/],
    ['a socket_mode with the setuid bit', unixConsole('socket_mode = "4660"\n'), 'console.global.socket_mode', /only permission bits \(at most "0777"\)/],
    ['a socket_mode on a tcp console', unixConsole('socket_mode = "0660"\n', 'tcp://localhost:4200'), 'console.global.socket_mode', /applies to a unix socket only, but bind is "tcp:\/\/localhost:4200"/],
    ['a socket_group on a tcp console', unixConsole('socket_group = "adm"\n', 'tcp://localhost:4200'), 'console.global.socket_group', /applies to a unix socket only/],
    ['an empty socket_group', unixConsole('socket_group = ""\n'), 'console.global.socket_group', /must not be empty/],
    ['a socket_group with a colon', unixConsole('socket_group = "adm:x"\n'), 'console.global.socket_group', /invalid group name "adm:x"/],
    ['a socket_group with a slash', unixConsole('socket_group = "../adm"\n'), 'console.global.socket_group', /invalid group name/],
    ['a negative socket_group', unixConsole('socket_group = -1\n'), 'console.global.socket_group', /must be 0\.\.=4294967294, got -1/],
    ['a socket_group past the gid range', unixConsole('socket_group = 4294967295\n'), 'console.global.socket_group', /must be 0\.\.=4294967294/],
    ['a socket_group that is a table', unixConsole('socket_group = { name = "adm" }\n'), 'console.global.socket_group', /expected a string, got a table/],
  ];
  for (const [what, toml, field, rule] of socketCases) {
    it(`rejects ${what}, naming the key`, () => rejects(toml, field, rule));
  }

  const cases: [string, string, string, RegExp][] = [
    ['an unknown top-level key', `${BASE}log_dir = "x"\n`, 'log_dir', /unknown key/],
    ['a missing run_dir', BASE.replace(/run_dir.*\n/, ''), 'run_dir', /missing required key/],
    ['a missing cgroup', BASE.replace(/cgroup.*\n/, ''), 'cgroup', /missing required key/],
    ['an empty socket_dir', BASE.replace('"target/northstar/sockets"', '""'), 'socket_dir', /must not be empty/],
    ['a duration without unit', `${BASE}loop_device_timeout = "10"\n`, 'loop_device_timeout', /time unit needed/],
    ['a duration as a number', `${BASE}loop_device_timeout = 10\n`, 'loop_device_timeout', /expected a string/],
    ['a zero event buffer', `${BASE}event_buffer_size = 0\n`, 'event_buffer_size', /must be 1/],
    ['a cgroup_favordynmods that is not a boolean', `${BASE}cgroup_favordynmods = "yes"\n`, 'cgroup_favordynmods', /expected true or false, got the string "yes"/],
    ['a bad verity mode', `${BASE}verity = "sometimes"\n`, 'verity', /"auto", "dm" or "userspace"/],
    ['an unknown console options key', `${BASE}[console.options]\nmax_request = "1M"\n`, 'console.options.max_request', /unknown key/],
    ['an unknown console key', `${BASE}[console.debug]\nx = 1\n`, 'console.debug', /unknown key/],
    ['a bad size', `${BASE}[console.options]\nmax_request_size = "1 parsec"\n`, 'console.options.max_request_size', /unknown unit "parsec"/],
    ['an http console url', `${BASE}[console.global]\nbind = "http://localhost:4200"\npermissions = "full"\n`, 'console.global.bind', /scheme must be tcp or unix/],
    ['a unix url without a path', `${BASE}[console.global]\nbind = "unix://"\npermissions = "full"\n`, 'console.global.bind', /needs a socket path/],
    ['a console without permissions', `${BASE}[console.global]\nbind = "tcp://localhost"\n`, 'console.global.permissions', /missing required key/],
    ['an unknown permission', `${BASE}[console.global]\nbind = "tcp://localhost"\npermissions = ["fly"]\n`, 'console.global.permissions[0]', /unknown permission "fly"/],
    ['permissions "most"', `${BASE}[console.global]\nbind = "tcp://localhost"\npermissions = "most"\n`, 'console.global.permissions', /invalid console permission/],
    ['an unknown repository key', `${BASE}[repositories.a]\ntype = "mem"\nverify = true\n`, 'repositories.a.verify', /unknown key/],
    ['an unknown repository type', `${BASE}[repositories.a]\ntype = "disk"\n`, 'repositories.a.type', /unknown repository type "disk"/],
    ['an fs repository without dir', `${BASE}[repositories.a]\ntype = { fs = {} }\n`, 'repositories.a.type.fs.dir', /missing required key/],
    ['a repository without type', `${BASE}[repositories.a]\nkey = "k"\n`, 'repositories.a.type', /missing required key/],
    ['a negative capacity', `${BASE}[repositories.a]\ntype = "mem"\ncapacity_num = -1\n`, 'repositories.a.capacity_num', /must be 0/],
    ['two fs repositories on one directory', `${BASE}[repositories.a]\ntype = { fs = { dir = "/r" } }\n[repositories.b]\ntype = { fs = { dir = "/r" } }\n`, 'repositories.b.type.fs.dir', /already used by repository a/],
    ['an unknown debug key', `${BASE}[debug]\nconsole = "tcp://localhost:4200"\n`, 'debug.console', /unknown key/],
    ['a debug command that is not a string', `${BASE}[debug]\ncommands = [1]\n`, 'debug.commands[0]', /expected a string/],
    ['min_threads above threads', `${BASE}[pool]\nthreads = 2\nmin_threads = 3\n`, 'pool.min_threads', /must not exceed pool.threads \(2\)/],
    ['zero pool threads', `${BASE}[pool]\nthreads = 0\n`, 'pool.threads', /must be 1/],
    ['an inspector bind without port', `${BASE}[inspector]\nbind = "127.0.0.1"\n`, 'inspector.bind', /host:port/],
    ['an unknown log level', `${BASE}[log]\nlevel = "loud"\n`, 'log.level', /expected one of error, warn, info, debug, trace/],
    ['an unknown pool key', `${BASE}[pool]\nworkers = 2\n`, 'pool.workers', /unknown key/],
    ['broken TOML', `${BASE}[[[`, '', /invalid TOML/],
  ];
  for (const [what, toml, field, rule] of cases) {
    it(`rejects ${what}, naming the key`, () => rejects(toml, field, rule));
  }
});

describe('parseBindUrl', () => {
  it('defaults the tcp port to 4200 and reads unix paths', () => {
    assert.deepEqual(parseBindUrl('tcp://localhost'), { kind: 'tcp', host: 'localhost', port: 4200 });
    assert.deepEqual(parseBindUrl('tcp://127.0.0.1:4300'), { kind: 'tcp', host: '127.0.0.1', port: 4300 });
    assert.deepEqual(parseBindUrl('tcp://[::1]:4200'), { kind: 'tcp', host: '::1', port: 4200 });
    assert.deepEqual(parseBindUrl('unix:///run/northstar/console'), { kind: 'unix', path: '/run/northstar/console' });
  });

  it('refuses other schemes and malformed urls', () => {
    assert.throws(() => parseBindUrl('http://localhost'), /tcp or unix/);
    assert.throws(() => parseBindUrl('localhost:4200'), /tcp or unix/);
    assert.throws(() => parseBindUrl('not a url'), /invalid console url/);
    assert.throws(() => parseBindUrl('unix://'), /invalid console url "unix:\/\/": unix needs a socket path/);
    assert.throws(() => parseBindUrl('tcp://'), /tcp needs a host/);
  });
});

describe('EMBEDDED_DEFAULT_CONFIG', () => {
  it('is the documented default: root-only unix console with full permissions and one fs repository', () => {
    const c = parseConfig(EMBEDDED_DEFAULT_CONFIG, { cpus: 3 });
    assert.equal(c.runDir, '/run/northstar');
    assert.equal(c.dataDir, '/var/lib/northstar/data');
    assert.equal(c.socketDir, '/run/northstar/sockets');
    assert.equal(c.cgroup, 'northstar');
    assert.equal(c.cgroupFavordynmods, true);
    assert.equal(c.verity, 'auto');
    assert.equal(c.log.level, 'info');
    assert.deepEqual(c.console.global, { bind: 'unix:///run/northstar/console', permissions: [...PERMISSIONS], options: { ...DEFAULT_CONSOLE_OPTIONS } });
    assert.deepEqual(c.repositories, { default: { type: { fs: { dir: '/var/lib/northstar/repository' } }, mountOnStart: false } });
    // Sized for a small device, whatever its CPU count: two workers, none kept idle.
    assert.deepEqual(c.pool, { threads: 2, minThreads: 0, idleTimeoutMs: 10_000 });
    assert.equal(c.loopDeviceTimeoutMs, 10_000);
  });
});

describe('loadConfig', () => {
  it('reads a file and names it in errors', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'nstar-config-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const good = join(dir, 'good.toml');
    writeFileSync(good, BASE);
    assert.equal((await loadConfig(good)).cgroup, 'northstar');
    const bad = join(dir, 'bad.toml');
    writeFileSync(bad, `${BASE}oops = 1\n`);
    await assert.rejects(loadConfig(bad), (e: unknown) => e instanceof ConfigError && e.message.startsWith(`${bad}: oops: unknown key, expected one of: run_dir, data_dir, socket_dir, cgroup, cgroup_favordynmods, event_buffer_size, notification_buffer_size, loop_device_timeout, console, repositories, debug, verity, pool, inspector, log`));
    await assert.rejects(loadConfig(join(dir, 'missing.toml')), { code: 'ENOENT' });
  });
});
