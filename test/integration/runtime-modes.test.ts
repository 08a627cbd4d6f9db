// File modes of the real daemon started under `umask 000` (issue 16, item 7):
// what it makes is root-only unless someone else needs it (socket_dir 0755),
// the console socket is 0600 or what socket_mode/socket_group say, containers
// get umask 022, a repository directory others can write to stops the start
// with the reason (as does an NPK in it that others can write to), and an
// unkeyed repository is named in a WARN line.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, copyFileSync, existsSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';

import { packageRoot } from '../../src/native.js';
import { privileged } from './privileged.js';
import { cgroupDirs, isStarted, probe } from './runtime-checks.js';
import { prepare, startDaemon } from './runtime-harness.js';

const mode = (p: string) => statSync(p).mode & 0o7777;
const octal = (m: number) => m.toString(8).padStart(4, '0');

/** The umask line of /proc/<pid>/status ("0022"). */
function umaskOf(pid: number): string {
  return /^Umask:\s*(\d+)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 'unknown';
}

/** The daemon on `configPath`, expected to stop on its own: its exit code and output. */
async function runToExit(t: TestContext, configPath: string): Promise<{ code: number | null; out: string }> {
  const proc = spawn('sh', ['-c', 'umask 000 && exec "$@"', 'sh', join(packageRoot, 'bin', 'northstar'), '-c', configPath], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  t.after(() => {
    if (proc.exitCode === null && proc.signalCode === null) proc.kill('SIGKILL');
  });
  let out = '';
  proc.stdout.on('data', (d) => (out += d));
  proc.stderr.on('data', (d) => (out += d));
  const [code] = await once(proc, 'exit');
  return { code: code as number | null, out };
}

describe('runtime: file modes under an inherited umask 000', { ...privileged({ cgroups: true }), timeout: 120_000 }, () => {
  test('the daemon makes its dirs, console socket and journal root-only, socket_dir 0755, and warns of the unkeyed repository', async (t) => {
    const C = 'modes:0.0.1';
    const h = await startDaemon(t, { umask: 0o000, createDirs: false, repositories: { default: {} } });
    const modes = Object.fromEntries(
      [
        ['console', join(h.dir, 'console')],
        ['run_dir', h.config.runDir],
        ['data_dir', h.config.dataDir],
        ['socket_dir', h.config.socketDir],
        ['repository', h.repoDir('default')],
        ['repository parent', join(h.dir, 'repos')],
        ['journal', join(h.config.runDir, 'northstar.journal')],
      ].map(([what, p]) => [what, octal(mode(p!))]),
    );
    assert.deepEqual(modes, {
      console: '0600',
      run_dir: '0711',
      data_dir: '0700',
      socket_dir: '0755',
      repository: '0700',
      'repository parent': '0755',
      journal: '0600',
    });
    assert.ok(statSync(join(h.dir, 'console')).isSocket());
    assert.match(h.output(), new RegExp(`WARN: Repository default \\(fs ${h.repoDir('default')}\\) is unkeyed: its NPKs are neither signature-checked nor verified`));
    assert.equal(h.output().match(/is unkeyed/g)?.length, 1, 'one WARN line per unkeyed repository');

    // The container does not inherit the daemon's umask 077: nstar-init sets 022.
    // Its manifest socket has the manifest's mode, set after the bind.
    const npk = await probe('modes', { manifest: { sockets: { s: { type: 'stream', mode: 0o640 } }, mounts: { '/sockets': { type: 'sockets' } } } });
    await h.client.installFile(npk, 'default');
    await h.client.start(C);
    await h.waitFor(isStarted(C));
    const pid = (await h.client.inspect(C)).process?.pid;
    assert.ok(pid, 'the started container has a pid');
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    assert.deepEqual([pid, ...children].map(umaskOf), [pid, ...children].map(() => '0022'));
    assert.equal(octal(mode(join(h.config.socketDir, `${C}:s`))), '0640');
    await h.client.shutdown();
    assert.deepEqual(await h.exited, { code: 0, signal: null });
    assert.ok(!existsSync(join(h.dir, 'console')), 'the console socket is removed at shutdown');
  });

  test('socket_mode and socket_group set the console socket mode and group', async (t) => {
    const h = await startDaemon(t, { umask: 0o000, repositories: { m: { type: 'mem', key: true } }, consoleToml: 'socket_mode = "0660"\nsocket_group = 4242' });
    const st = statSync(join(h.dir, 'console'));
    assert.equal(octal(st.mode & 0o7777), '0660');
    assert.equal(st.gid, 4242);
    assert.equal(st.uid, 0);
    assert.doesNotMatch(h.output(), /is unkeyed/, 'a keyed repository is not warned about');
  });

  test('a socket_group name is looked up in /etc/group; an unknown one stops the start with the reason', async (t) => {
    const group = readFileSync('/etc/group', 'utf8').split('\n')[1]!.split(':');
    const h = await startDaemon(t, { repositories: { m: { type: 'mem', key: true } }, consoleToml: `socket_group = "${group[0]}"` });
    assert.equal(statSync(join(h.dir, 'console')).gid, Number(group[2]));
    await h.client.shutdown();
    await h.exited;

    const p = await prepare({ repositories: { m: { type: 'mem', key: true } }, consoleToml: 'socket_group = "no-such-group-nstar"' });
    t.after(() => rmSync(p.dir, { recursive: true, force: true }));
    const { code, out } = await runToExit(t, p.configPath);
    assert.equal(code, 1, out);
    assert.match(out, /socket_group: no group "no-such-group-nstar" in \/etc\/group/);
    assert.ok(!existsSync(join(p.dir, 'console')), 'no console socket left behind');
  });

  const refusals: [string, (repo: string) => Promise<string>, RegExp][] = [
    ['a repository directory writable by anyone', async (repo) => (chmodSync(repo, 0o777), repo), /writable by anyone \(mode 0777\)/],
    ['a repository directory writable by its group', async (repo) => (chmodSync(repo, 0o770), repo), /writable by its group \(mode 0770\)/],
    [
      'an NPK in the repository that anyone may write to',
      async (repo) => {
        const npk = join(repo, 'writable.npk');
        copyFileSync(await probe('writable'), npk);
        chmodSync(npk, 0o666);
        return npk;
      },
      /writable by anyone \(its file writable\.npk\) \(mode 0666\)/,
    ],
  ];
  for (const [what, spoil, rule] of refusals) {
    test(`${what} is refused with the reason, and the daemon exits 1`, async (t) => {
      const p = await prepare({ repositories: { default: {} } });
      t.after(() => rmSync(p.dir, { recursive: true, force: true }));
      const dir = join(p.dir, 'repos', 'default');
      const spoiled = await spoil(dir);
      const before = octal(mode(spoiled));
      const { code, out } = await runToExit(t, p.configPath);
      assert.equal(code, 1, out);
      assert.match(out, new RegExp(`Failed to run the runtime: repository default ${dir}: `));
      assert.match(out, rule);
      assert.match(out, /whoever can write there could replace the NPKs the runtime mounts/);
      assert.match(out, new RegExp(`chmod go-w ${spoiled}`));
      assert.ok(!existsSync(join(p.dir, 'console')), 'no console socket: refused before listening');
      assert.ok(!existsSync(join(p.config.runDir, 'northstar.journal')), 'no journal: refused before anything else');
      assert.deepEqual(cgroupDirs(p.config.cgroup), [], 'no cgroup made');
      assert.equal(octal(mode(spoiled)), before, 'left as it was');
    });
  }
});
