// The real runtime, "mod install" of spec/behaviours.md and the repository
// rules of spec/repositories.md: install and uninstall through the console
// into fs and mem repositories (keyed with the fixture key), duplicates,
// capacity limits, wipe, persistence across a restart, and installs that fail
// or are interrupted leaving no file behind. Nothing may be left after a test.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, describe, test } from 'node:test';

import { Client, type Notification } from '../../src/client/index.js';
import { logChannel, type LogRecord } from '../../src/log.js';
import { Runtime } from '../../src/runtime.js';
import { fixtureNpk } from '../fixtures/npk.js';
import { privileged } from './privileged.js';
import {
  assertNoTestCgroups,
  captureOutput,
  isExit,
  isInstall,
  isStarted,
  isUninstall,
  leakCheck,
  nthExit,
  probe,
  testContainer,
  testResource,
  wireError,
  until,
} from './runtime-checks.js';
import { prepare, startRuntime } from './runtime-harness.js';

const TC = 'test-container:0.0.1';
const TR = 'test-resource:0.0.1';

/** The repositories of Northstar's test harness (spec/behaviours.md §8.1), all keyed. */
const REPOS = {
  mem: { type: 'mem', key: true },
  fs: { key: true },
  limited_num_mem: { type: 'mem', key: true, capacityNum: 1 },
  limited_num_fs: { key: true, capacityNum: 1 },
  limited_size_mem: { type: 'mem', key: true, capacitySize: 1000 },
  limited_size_fs: { key: true, capacitySize: 1000 },
} as const;

const files = (dir: string) => readdirSync(dir).sort();

describe('runtime: install and uninstall', privileged({ cgroups: true }), () => {
  after(() => assertNoTestCgroups());

  test('install and uninstall ten times into mem and fs, each announced by a notification', async (t) => {
    const h = await startRuntime(t, { repositories: REPOS });
    const leaks = leakCheck(h);
    const tc = await testContainer();
    assert.deepEqual((await h.client.repositories()).sort(), Object.keys(REPOS).sort());
    for (const repo of ['mem', 'fs']) {
      for (let i = 1; i <= 10; i++) {
        assert.equal(await h.client.installFile(tc, repo), TC);
        await h.waitFor((n) => isInstall(TC)(n) && h.notifications.filter(isInstall(TC)).length >= i + (repo === 'fs' ? 10 : 0));
        assert.deepEqual(await h.client.list(), [TC]);
        assert.equal((await h.client.inspect(TC)).repository, repo);
        if (repo === 'fs') assert.deepEqual(files(h.repoDir('fs')), [`${TC}.npk`]);
        if (repo === 'mem') leaks.sample();
        await h.client.uninstall(TC, true);
        await h.waitFor((n) => isUninstall(TC)(n) && h.notifications.filter(isUninstall(TC)).length >= i + (repo === 'fs' ? 10 : 0));
        assert.deepEqual(await h.client.list(), []);
        if (repo === 'fs') assert.deepEqual(files(h.repoDir('fs')), []);
      }
    }
    assert.equal(h.notifications.filter(isInstall(TC)).length, 20);
    assert.equal(h.notifications.filter(isUninstall(TC)).length, 20);
    await leaks.assertClean();
  });

  test('a container installed into fs starts, stops and uninstalls five times', async (t) => {
    const h = await startRuntime(t, { repositories: REPOS });
    const leaks = leakCheck(h);
    const [tc, tr] = [await testContainer(), await testResource()];
    await h.client.installFile(tr, 'mem');
    leaks.sample();
    for (let i = 1; i <= 5; i++) {
      await h.client.installFile(tc, 'fs');
      await h.client.start(TC);
      await h.waitFor((n) => isStarted(TC)(n) && h.notifications.filter(isStarted(TC)).length >= i);
      await h.client.kill(TC, 15);
      assert.deepEqual(await nthExit(h, TC, i), { signalled: { signal: 15 } });
      await h.client.uninstall(TC);
      assert.ok(!existsSync(join(h.repoDir('fs'), `${TC}.npk`)));
    }
    await h.client.uninstall(TR);
    await leaks.assertClean();
  });

  test('a duplicate install is refused in the same and in another repository, and the new copy is gone', async (t) => {
    const h = await startRuntime(t, { repositories: REPOS });
    const leaks = leakCheck(h);
    const tc = await testContainer();
    await h.client.installFile(tc, 'mem');
    leaks.sample();
    // Same repository: Northstar's repository refuses it ("already in …"), as `unexpected` (spec/console.md §4.7).
    const same = await wireError(h.client.installFile(tc, 'mem'));
    assert.match(JSON.stringify(same), /already/, JSON.stringify(same));
    // Another repository: install_duplicate, and the copy in fs is removed.
    assert.deepEqual(await wireError(h.client.installFile(tc, 'fs')), { install_duplicate: { container: TC } });
    assert.deepEqual(files(h.repoDir('fs')), []);
    assert.equal((await h.client.inspect(TC)).repository, 'mem');
    // And the other way round: fs first, then mem.
    await h.client.uninstall(TC);
    await h.client.installFile(tc, 'fs');
    assert.deepEqual(await wireError(h.client.installFile(tc, 'mem')), { install_duplicate: { container: TC } });
    assert.deepEqual(await wireError(h.client.installFile(tc, 'fs')), await wireError(h.client.installFile(tc, 'fs')));
    assert.deepEqual(files(h.repoDir('fs')), [`${TC}.npk`]);
    assert.deepEqual(await h.client.list(), [TC]);
    assert.equal(h.notifications.filter(isInstall(TC)).length, 2, 'a refused install is not announced');
    await leaks.assertClean();
  });

  test('an unknown repository answers invalid_repository and the connection stays usable', async (t) => {
    const h = await startRuntime(t, { repositories: REPOS });
    const leaks = leakCheck(h);
    assert.deepEqual(await wireError(h.client.installFile(await testContainer(), 'whooha')), {
      invalid_repository: { repository: 'whooha' },
    });
    assert.deepEqual(await h.client.list(), []);
    await leaks.assertClean();
  });

  test('capacity_num and capacity_size refuse installs in mem and fs repositories', async (t) => {
    const h = await startRuntime(t, { repositories: REPOS });
    const leaks = leakCheck(h);
    const [tc, tr] = [await testContainer(), await testResource()];
    assert.ok(statSync(tr).size > 1000);
    for (const repo of ['limited_num_mem', 'limited_num_fs']) {
      assert.equal(await h.client.installFile(tr, repo), TR);
      leaks.sample();
      const e = await wireError(h.client.installFile(tc, repo));
      assert.match(JSON.stringify(e), /max number of containers/, `${repo}: ${JSON.stringify(e)}`);
      assert.deepEqual(await h.client.list(), [TR]);
      await h.client.uninstall(TR);
    }
    assert.deepEqual(files(h.repoDir('limited_num_fs')), []);
    for (const repo of ['limited_size_mem', 'limited_size_fs']) {
      const e = await wireError(h.client.installFile(tr, repo));
      assert.match(JSON.stringify(e), /limit/, `${repo}: ${JSON.stringify(e)}`);
      assert.deepEqual(await h.client.list(), []);
    }
    assert.deepEqual(files(h.repoDir('limited_size_fs')), [], 'a refused fs install leaves no file');
    assert.equal(h.notifications.filter(isInstall(TR)).length, 2);
    await leaks.assertClean();
  });

  test('installs that fail verification or are cut off leave no file and no container', async (t) => {
    const h = await startRuntime(t, { repositories: REPOS });
    const leaks = leakCheck(h);
    const dir = h.repoDir('fs');
    // Not signed, into a keyed repository.
    const unsigned = await fixtureNpk({ name: 'unsigned', manifest: { args: ['sleep'] } });
    for (const repo of ['fs', 'mem']) {
      const e = await wireError(h.client.installFile(unsigned, repo));
      assert.ok('unexpected' in e, JSON.stringify(e));
    }
    // Garbage of the announced size.
    const garbage = Buffer.alloc(4096, 0x5a);
    assert.ok('unexpected' in (await wireError(h.client.install(garbage, garbage.length, 'fs'))));
    assert.deepEqual(files(dir), []);

    // Cut off: half of the NPK, then the client goes away.
    const tc = readFileSync(await testContainer());
    const c = await h.connect();
    let sentHalf!: () => void;
    const half = new Promise<void>((r) => (sentHalf = r));
    const stream = Readable.from(
      (async function* () {
        yield tc.subarray(0, tc.length >> 1);
        sentHalf();
        await new Promise(() => undefined);
      })(),
    );
    const cut = c.install(stream, tc.length, 'fs').catch((e: Error) => e);
    await half;
    await until(() => files(dir).some((f) => f.startsWith('.partial-')), 'the install streams into a partial file', 20_000);
    c.close();
    assert.ok((await cut) instanceof Error);
    await until(() => files(dir).length === 0, 'the partial file is removed', 20_000);
    assert.deepEqual(await h.client.list(), []);
    assert.equal(h.notifications.filter((n) => isInstall('unsigned:0.0.1')(n) || isInstall(TC)(n)).length, 0);
    // The runtime still installs afterwards.
    assert.equal(await h.client.install(tc, tc.length, 'fs'), TC);
    assert.deepEqual(files(dir), [`${TC}.npk`]);
    await leaks.assertClean();
  });

  test('uninstall with wipe removes the persistent data, without wipe it stays', async (t) => {
    const npk = await probe('persistence', { manifest: { mounts: { '/data': { type: 'persist' } } } });
    const h = await startRuntime(t, { repositories: REPOS });
    const leaks = leakCheck(h);
    const out = captureOutput(t);
    const C = 'persistence:0.0.1';
    const data = join(h.config.dataDir, 'persistence');
    await h.client.installFile(npk, 'mem');
    leaks.sample();
    await h.client.start(C, { args: ['write', 'Hello!', '/data/file'], env: { PROBE_PARK: '0' } });
    assert.deepEqual(await nthExit(h, C, 1), { exit: { code: 0 } });
    assert.equal(readFileSync(join(data, 'file'), 'utf8'), 'Hello!');
    await h.client.uninstall(C, false);
    assert.ok(existsSync(join(data, 'file')), 'uninstall without wipe keeps the data');
    await h.client.installFile(npk, 'mem');
    leaks.sample();
    await h.client.start(C, { args: ['read', '/data/file'] });
    assert.deepEqual(await nthExit(h, C, 2), { exit: { code: 0 } });
    await out.waitFor(C, /^Content of \/data\/file: Hello!$/);
    await h.client.uninstall(C, true);
    await h.waitFor((n) => isUninstall(C)(n) && h.notifications.filter(isUninstall(C)).length === 2);
    assert.ok(!existsSync(data), 'uninstall with wipe removes data_dir/<name>');
    await leaks.assertClean();
  });

  test('uninstall of a started container is refused and the container keeps running', async (t) => {
    const h = await startRuntime(t, { repositories: REPOS });
    const leaks = leakCheck(h);
    const C = 'sleeper:0.0.1';
    await h.client.installFile(await probe('sleeper'), 'mem');
    leaks.sample();
    await h.client.start(C);
    await h.waitFor(isStarted(C));
    assert.deepEqual(await wireError(h.client.uninstall(C, true)), { umount_busy: { container: C } });
    assert.notEqual((await h.client.inspect(C)).process, null);
    assert.deepEqual(await h.client.list(), [C]);
    await h.client.kill(C, 9);
    await h.waitFor(isExit(C));
    await h.client.uninstall(C, true);
    assert.deepEqual(await h.client.list(), []);
    await leaks.assertClean();
  });
});

describe('runtime: fs repositories across restarts', privileged({ cgroups: true }), () => {
  after(() => assertNoTestCgroups());

  test('installed containers and persistent data survive a restart; an invalid NPK is skipped and reported', async (t) => {
    const p = await prepare({ repositories: { fs: { key: true } } });
    const runtimes: Runtime[] = [];
    const clients: Client[] = [];
    t.after(async () => {
      clients.forEach((c) => c.close());
      for (const r of runtimes) await r.shutdown();
      rmSync(p.dir, { recursive: true, force: true });
    });
    const boot = async () => {
      const rt = await Runtime.start(p.config);
      runtimes.push(rt);
      const c = await Client.connect(p.url, { subscribe: 1000 });
      clients.push(c);
      const seen: Notification[] = [];
      void (async () => {
        try {
          for await (const n of c.notifications()) seen.push(n);
        } catch {
          // closed
        }
      })();
      return { rt, c, seen };
    };
    const C = 'persistence:0.0.1';
    const npk = await probe('persistence', { manifest: { mounts: { '/data': { type: 'persist' } } } });

    const a = await boot();
    await a.c.installFile(npk, 'fs');
    await a.c.start(C, { args: ['write', 'Hello!', '/data/file'], env: { PROBE_PARK: '0' } });
    await until(() => a.seen.some(isExit(C)), 'the writer exits', 20_000);
    assert.deepEqual(a.seen.find(isExit(C)), { exit: [C, { exit: { code: 0 } }] });
    assert.deepEqual((await a.rt.shutdown()).ok, true);
    a.c.close();

    // Junk beside the NPK: skipped at start (deviation 4), reported in the log.
    const junk = join(p.dir, 'repos', 'fs', 'junk.npk');
    writeFileSync(junk, 'this is no npk');
    const warnings: LogRecord[] = [];
    const onLog = (m: unknown) => void ((m as LogRecord).level === 'warn' && warnings.push(m as LogRecord));
    logChannel.subscribe(onLog);
    let b: Awaited<ReturnType<typeof boot>>;
    try {
      b = await boot();
    } finally {
      logChannel.unsubscribe(onLog);
    }
    assert.deepEqual(await b.c.list(), [C]);
    assert.ok(warnings.some((w) => w.message.includes(junk)), JSON.stringify(warnings));
    const out = captureOutput(t);
    await b.c.start(C, { args: ['read', '/data/file'] });
    await until(() => b.seen.some(isExit(C)), 'the reader exits', 20_000);
    assert.deepEqual(b.seen.find(isExit(C)), { exit: [C, { exit: { code: 0 } }] });
    await out.waitFor(C, /^Content of \/data\/file: Hello!$/);
    assert.equal((await b.rt.shutdown()).ok, true);
    const mounts = readFileSync('/proc/self/mountinfo', 'utf8');
    assert.ok(!mounts.includes(p.dir), 'nothing mounted under the test dir');
  });
});

