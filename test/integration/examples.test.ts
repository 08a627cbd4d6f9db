// The example containers (issue 11, spec/behaviours.md §8.4) against the real
// runtime: built once from examples/ (static C, signed with the example key),
// installed and uninstalled in a mem and an fs repository, mounted and
// unmounted together, and each example's behaviour checked through the console
// and the container output (logged at info with the container as target).
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';

import type { Notification } from '../../src/client/index.js';
import type { LogRecord } from '../../src/log.js';
import { buildExamples, examplePublicKey, examplesDir } from '../../scripts/build-examples.js';
import { privileged } from './privileged.js';
import { captureLog, until } from './runtime-checks.js';
import { startDaemon, startRuntime, type InProcessHarness } from './runtime-harness.js';

let outDir = '';
let npks: string[] = [];
/** Container id (name:version) → NPK path. */
const byId = new Map<string, string>();

function idOf(npk: string): string {
  // <name>-<version>.npk, the packer's naming; names may contain dashes.
  const m = /^(.*)-(\d+\.\d+\.\d+[^-]*)\.npk$/.exec(basename(npk));
  assert.ok(m, `npk name ${npk}`);
  return `${m[1]}:${m[2]}`;
}



const exitOf = (c: string) => (n: Notification) => typeof n === 'object' && 'exit' in n && n.exit[0] === c;

/** Lines a container printed so far. */
/** The container's process below init. */
function childOf(pid: number): number {
  return Number(readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/)[0]);
}

const output = (logs: LogRecord[], id: string) => logs.filter((r) => r.target === id).map((r) => r.message);

async function withExamples(t: TestContext): Promise<InProcessHarness> {
  return startRuntime(t, { repositories: { default: { npks, key: examplePublicKey } } });
}

describe('example containers', privileged({ cgroups: true }), () => {
  before(async () => {
    outDir = mkdtempSync(join(tmpdir(), 'nstar-examples-'));
    npks = await buildExamples(outDir);
    for (const n of npks) byId.set(idOf(n), n);
  });
  after(() => rmSync(outDir, { recursive: true, force: true }));

  test('every example directory is built into a signed NPK', () => {
    const dirs = readdirSync(examplesDir).filter((d) => existsSync(join(examplesDir, d, 'manifest.yaml')));
    assert.equal(npks.length, dirs.length);
    for (const id of ['hello-world:0.0.1', 'message:0.0.1', 'message:0.0.2', 'crashing:0.0.1', 'token-server:0.0.1']) {
      assert.ok(byId.has(id), `${id} among ${[...byId.keys()].join(', ')}`);
    }
  });

  test('all examples install into a mem and an fs repository and uninstall again', { timeout: 120_000 }, async (t) => {
    const h = await startRuntime(t, {
      repositories: { mem: { type: 'mem', key: examplePublicKey }, fs: { key: examplePublicKey } },
    });
    const ids = [...byId.keys()].sort();
    for (const repo of ['mem', 'fs']) {
      for (const [id, npk] of byId) assert.equal(await h.client.installFile(npk, repo), id);
      assert.deepEqual((await h.client.list()).sort(), ids, `all installed in ${repo}`);
      for (const id of ids) assert.equal((await h.client.inspect(id)).repository, repo);
      if (repo === 'fs') assert.equal(readdirSync(h.repoDir('fs')).filter((f) => f.endsWith('.npk')).length, ids.length);
      for (const id of ids) await h.client.uninstall(id);
      assert.deepEqual(await h.client.list(), [], `all uninstalled from ${repo}`);
      if (repo === 'fs') assert.deepEqual(readdirSync(h.repoDir('fs')).filter((f) => f.endsWith('.npk')), []);
    }
    for (const id of ids) {
      assert.ok(h.notifications.some((n) => typeof n === 'object' && 'install' in n && n.install === id), `install of ${id} notified`);
      assert.ok(h.notifications.some((n) => typeof n === 'object' && 'uninstall' in n && n.uninstall === id), `uninstall of ${id} notified`);
    }
  });

  test('all examples mount and unmount together', { timeout: 120_000 }, async (t) => {
    // Like Northstar's mount_umount: installed into a running runtime (so
    // hello-world is not autostarted), then mount_all(list()) and umount_all.
    const h = await startRuntime(t, { repositories: { mem: { type: 'mem', key: examplePublicKey } } });
    for (const npk of npks) await h.client.installFile(npk, 'mem');
    const ids = (await h.client.list()).sort();
    assert.equal(ids.length, byId.size);
    const mounted = await h.client.mount(ids);
    assert.deepEqual(mounted, ids.map((container) => ({ ok: { container } })));
    for (const id of ids) assert.equal((await h.client.inspect(id)).mounted, true, `${id} mounted`);
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
    for (const id of ids) assert.ok(mounts.includes(join(h.config.runDir, id)), `${id} under run_dir`);
    const unmounted = await h.client.umount(ids);
    assert.deepEqual(unmounted, ids.map((container) => ({ ok: { container } })));
    for (const id of ids) assert.equal((await h.client.inspect(id)).mounted, false, `${id} unmounted`);
    assert.ok(!readFileSync('/proc/self/mountinfo', 'utf8').includes(h.config.runDir), 'nothing left under run_dir');
  });

  test('hello-world is autostarted from a repository and greets', { timeout: 30_000 }, async (t) => {
    const logs = captureLog(t);
    const h = await withExamples(t);
    // Autostart happens during boot, before our client subscribes: no `started` to wait for.
    assert.ok((await h.client.inspect('hello-world:0.0.1')).process, 'hello-world runs');
    await until(() => output(logs, 'hello-world:0.0.1').some((l) => /hello/i.test(l)), 'hello-world output', 15_000);
    // A mounted container cannot be mounted again (Northstar: MountBusy).
    assert.deepEqual(await h.client.mount(['hello-world:0.0.1']), [
      { error: { container: 'hello-world:0.0.1', error: { mount_busy: { container: 'hello-world:0.0.1' } } } },
    ]);
  });

  test('crashing exits with 101', { timeout: 30_000 }, async (t) => {
    const h = await withExamples(t);
    await h.client.start('crashing:0.0.1');
    const exit = await h.waitFor(exitOf('crashing:0.0.1'), 10_000);
    assert.deepEqual(exit, { exit: ['crashing:0.0.1', { exit: { code: 101 } }] });
  });

  test('hello-resource prints the message of the highest matching resource, 0.0.2', { timeout: 30_000 }, async (t) => {
    const logs = captureLog(t);
    const h = await withExamples(t);
    const want = readFileSync(join(examplesDir, 'message-0.0.2', 'root', 'hello'), 'utf8').trim();
    assert.notEqual(want, readFileSync(join(examplesDir, 'message-0.0.1', 'root', 'hello'), 'utf8').trim());
    await h.client.start('hello-resource:0.0.1');
    await until(() => output(logs, 'hello-resource:0.0.1').some((l) => l.includes('Content of /message/hello')), 'hello-resource output', 15_000);
    const line = output(logs, 'hello-resource:0.0.1').find((l) => l.includes('Content of /message/hello'))!;
    assert.equal(line, `0: Content of /message/hello: ${want}`);
    assert.equal(logs.find((r) => r.target === 'hello-resource:0.0.1')!.level, 'info');
    assert.equal((await h.client.inspect('message:0.0.2')).mounted, true);
    assert.equal((await h.client.inspect('message:0.0.1')).mounted, false);
  });

  test('memeater is killed by its memory limit and the OOM is notified as c_group', { timeout: 30_000 }, async (t) => {
    const h = await withExamples(t);
    await h.client.start('memeater:0.0.1');
    const oom = await h.waitFor((n) => typeof n === 'object' && 'c_group' in n && n.c_group[0] === 'memeater:0.0.1', 20_000);
    assert.ok('c_group' in (oom as object));
    const mem = (oom as { c_group: [string, { memory: { oom_kill: number | null; oom: number | null } }] }).c_group[1].memory;
    assert.ok((mem.oom_kill ?? 0) > 0 || (mem.oom ?? 0) > 0, `oom counters: ${JSON.stringify(mem)}`);
    const exit = await h.waitFor(exitOf('memeater:0.0.1'), 10_000);
    assert.deepEqual(exit, { exit: ['memeater:0.0.1', { signalled: { signal: 9 } }] });
  });

  test('console gets permission_denied for repositories and answers what it may ask', { timeout: 30_000 }, async (t) => {
    const logs = captureLog(t);
    const h = await withExamples(t);
    await h.client.start('console:0.0.1');
    // The example kills itself with SIGTERM through its console at the end.
    const exit = await h.waitFor(exitOf('console:0.0.1'), 15_000);
    assert.deepEqual(exit, { exit: ['console:0.0.1', { signalled: { signal: 15 } }] });
    const out = output(logs, 'console:0.0.1');
    const repos = out.find((l) => l.startsWith('repositories:'));
    assert.ok(repos, `console output: ${out.join('\n')}`);
    assert.match(repos, /permission_denied/);
    assert.match(out.find((l) => l.startsWith('ident:'))!, /console:0\.0\.1/);
    assert.match(out.find((l) => l.startsWith('list:'))!, /hello-world:0\.0\.1/);
  });

  test('a token created by token-client is verified by token-server', { timeout: 30_000 }, async (t) => {
    const logs = captureLog(t);
    const h = await withExamples(t);
    await h.client.start('token-server:0.0.1');
    await until(() => output(logs, 'token-server:0.0.1').some((l) => l.includes('Listening')), 'token-server listening', 15_000);
    await h.client.start('token-client:0.0.1');
    const exit = await h.waitFor(exitOf('token-client:0.0.1'), 15_000);
    assert.deepEqual(exit, { exit: ['token-client:0.0.1', { exit: { code: 0 } }] }, output(logs, 'token-client:0.0.1').join('\n'));
    assert.ok(output(logs, 'token-client:0.0.1').includes('Received: yay!'), output(logs, 'token-client:0.0.1').join('\n'));
    assert.ok(output(logs, 'token-server:0.0.1').some((l) => l.startsWith('Token of token-client:') && l.includes('Ok')));
  });

  test('sockets receives on its manifest socket what it sends through /unix-sockets', { timeout: 30_000 }, async (t) => {
    const logs = captureLog(t);
    const h = await withExamples(t);
    await h.client.start('sockets:0.0.1');
    await until(() => output(logs, 'sockets:0.0.1').includes('Received Hello!'), 'the echo', 15_000);
    assert.ok(existsSync(join(h.config.socketDir, 'sockets:0.0.1:hello')));
  });

  test('custom reads its manifest custom field, which inspect returns', { timeout: 30_000 }, async (t) => {
    const logs = captureLog(t);
    const h = await withExamples(t);
    const data = await h.client.inspect('custom:0.0.1');
    assert.deepEqual((data.manifest as { custom?: unknown }).custom, { properties: { hello: 'again' } });
    await h.client.start('custom:0.0.1');
    await until(() => output(logs, 'custom:0.0.1').includes('hello again'), `custom output: ${output(logs, 'custom:0.0.1')}`, 15_000);
  });

  test('seccomp runs under the default seccomp filter', { timeout: 30_000 }, async (t) => {
    const logs = captureLog(t);
    const h = await withExamples(t);
    await h.client.start('seccomp:0.0.1');
    await until(() => output(logs, 'seccomp:0.0.1').some((l) => l.includes('still alive under the default seccomp profile')), 'seccomp output', 15_000);
    const proc = childOf((await h.client.inspect('seccomp:0.0.1')).process!.pid);
    assert.match(readFileSync(`/proc/${proc}/status`, 'utf8'), /^Seccomp:\s+2$/m, 'filter mode');
  });

  test('inspect dumps its ids, mounts and limits as the manifest sets them', { timeout: 30_000 }, async (t) => {
    const logs = captureLog(t);
    const h = await withExamples(t);
    await h.client.start('inspect:0.0.1');
    await until(() => output(logs, 'inspect:0.0.1').some((l) => /max processes/i.test(l)), `inspect output: ${output(logs, 'inspect:0.0.1').join('\n')}`, 15_000);
    const out = output(logs, 'inspect:0.0.1');
    assert.ok(out.includes('getuid: 1000') && out.includes('getgid: 1000'), out.join('\n'));
    assert.ok(out.some((l) => /^\s*tmpfs \/tmp tmpfs /.test(l)), 'the /tmp tmpfs');
    assert.ok(out.some((l) => /Max processes\s+1000\s+2000/.test(l)), 'the nproc rlimit');
  });

  test('cpueater spins in the cpu-intense cgroup with cpu shares 100', { timeout: 30_000 }, async (t) => {
    const logs = captureLog(t);
    const h = await withExamples(t);
    await h.client.start('cpueater:0.0.1');
    await until(() => output(logs, 'cpueater:0.0.1').some((l) => l.startsWith('Eating CPU with 4 threads')), 'cpueater output', 15_000);
    const proc = childOf((await h.client.inspect('cpueater:0.0.1')).process!.pid);
    const cpu = readFileSync(`/proc/${proc}/cgroup`, 'utf8').split('\n').find((l) => /:(cpu,cpuacct|cpu):/.test(l) || /^\d+:cpu:/.test(l));
    assert.ok(cpu, readFileSync(`/proc/${proc}/cgroup`, 'utf8'));
    const path = cpu.split(':')[2]!;
    assert.match(path, /\/cpu-intense\/cpueater$/);
    assert.equal(readFileSync(join('/sys/fs/cgroup/cpu', path, 'cpu.shares'), 'utf8').trim(), '100');
    await h.client.kill('cpueater:0.0.1', 9);
    await h.waitFor(exitOf('cpueater:0.0.1'));
  });

  test('persistence keeps its data over a restart of the runtime and uninstall with wipe removes it', { timeout: 60_000 }, async (t) => {
    const npk = byId.get('persistence:0.0.1')!;
    const repositories = { default: { npks: [npk], key: examplePublicKey } };
    const id = 'persistence:0.0.1';
    const first = await startDaemon(t, { repositories });
    await first.client.start(id);
    await until(() => first.output().includes('Start number 1'), 'first start', 10_000);
    await until(() => first.output().includes('Content of /data/file: Hello!'), 'the data written', 10_000);
    // The daemon logs container output at info with the container as target.
    assert.match(first.output(), /\d\d:\d\d:\d\d\.\d{3} persistence:0\.0\.1 INFO: Start number 1\n/);
    await first.client.shutdown();
    assert.equal((await first.exited).code, 0, first.output());

    const dataDir = first.config.dataDir;
    assert.ok(readdirSync(dataDir).length > 0, 'data on disk after shutdown');
    const second = await startDaemon(t, { repositories, reuse: { dir: first.dir } });
    await second.client.start(id);
    await until(() => second.output().includes('Start number 2'), `second start: ${second.output()}`, 10_000);
    await second.client.kill(id, 9);
    await second.waitFor(exitOf(id));
    await second.client.uninstall(id, true);
    assert.deepEqual(readdirSync(dataDir), [], 'wipe removed the data');
    assert.deepEqual(await second.client.list(), []);
    await second.client.shutdown();
    assert.equal((await second.exited).code, 0);
  });
});
