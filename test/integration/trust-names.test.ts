// Names, paths and manifests from outside input, tried as an attacker would
// against the real runtime (issue 16, items 1-4 and 8): hand-made NPKs (the
// packer refuses to write them) installed and started through the console.
// Each attack is refused with an error naming what is wrong, nothing outside
// the container's directories changes, and the daemon keeps answering.
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test, type TestContext } from 'node:test';

import { Client, ClientError } from '../../src/client/index.js';
import { fixtureNpk } from '../fixtures/npk.js';
import { withManifest } from '../fixtures/npk-raw.js';
import { privileged } from './privileged.js';
import { assertNoTestCgroups, captureLog, captureOutput, isExit, PIPE, wireError } from './runtime-checks.js';
import { startDaemon, startRuntime, type Harness } from './runtime-harness.js';

/** Manifest text (JSON, which every manifest reader takes) with the fixture's defaults. */
function manifestText(fields: Record<string, unknown>): string {
  return JSON.stringify({ version: '0.0.1', init: '/probe', uid: 1000, gid: 1000, args: ['sleep'], ...fields });
}

/** An unsigned NPK around the probe whose manifest.yaml is `text`, written into the test dir. */
async function hostileNpk(dir: string, file: string, text: string): Promise<string> {
  const base = await fixtureNpk({ name: 'hostile-base', manifest: { args: ['sleep'] } });
  mkdirSync(join(dir, 'hostile'), { recursive: true });
  return withManifest(base, text, { out: join(dir, 'hostile', file) });
}

/** The install's error text, whatever error kind carries it. */
async function installError(h: Harness, npk: string, repo: string): Promise<string> {
  return JSON.stringify(await wireError(h.client.installFile(npk, repo)));
}

async function stillAnswers(h: Harness): Promise<void> {
  assert.ok(Array.isArray(await h.client.list()), 'the runtime answers list');
}

describe('trust boundary: names and paths from manifests and clients', privileged({ cgroups: true }), () => {
  test('a container named ".." never touches data_dir\'s parent: install, load, start and uninstall with wipe are refused', async (t) => {
    const h = await startRuntime(t, { repositories: { fs: {}, mem: { type: 'mem' } } });
    const parent = join(h.config.dataDir, '..');
    chmodSync(parent, 0o755);
    const before = statSync(parent);
    const text = manifestText({ name: '..', mounts: { '/data': { type: 'persist' } } });
    const npk = await hostileNpk(h.dir, 'dots.npk', text);

    for (const repo of ['mem', 'fs']) {
      const e = await installError(h, npk, repo);
      assert.match(e, /name: invalid name/, e);
      assert.match(e, /are not allowed/, e);
    }
    // The console does not take ".." as a name either.
    for (const p of [h.client.start('..:0.0.1'), h.client.uninstall('..:0.0.1', true)]) {
      const w = JSON.stringify(await wireError(p));
      assert.match(w, /invalid_arguments|invalid_container/, w);
    }
    await stillAnswers(h);
    assert.deepEqual(await h.client.list(), []);
    const after = statSync(parent);
    assert.equal(after.mode, before.mode, 'mode of data_dir\'s parent unchanged');
    assert.equal(after.uid, before.uid, 'owner of data_dir\'s parent unchanged');
    assert.equal(after.gid, before.gid, 'group of data_dir\'s parent unchanged');
    assert.ok(existsSync(h.config.dataDir), 'data_dir still exists');
  });

  test('a ".." NPK already in an fs repository is skipped at load; start and uninstall with wipe of it leave data_dir\'s parent alone', async (t) => {
    // Placed where an older runtime would have installed it.
    const seed = await startRuntime(t, { repositories: { fs: {} } });
    const npk = await hostileNpk(seed.dir, 'dots.npk', manifestText({ name: '..', mounts: { '/data': { type: 'persist' } } }));
    await seed.stop();
    const h = await startRuntime(t, { repositories: { fs: { npks: [npk] } } });
    const parent = join(h.config.dataDir, '..');
    chmodSync(parent, 0o755);
    const before = statSync(parent);
    // Whatever the answers, the start (mkdir, chmod 0700, chown of the persist dir)
    // and the wipe (rm -rf of it) must not reach data_dir's parent.
    await h.client.start('..:0.0.1').catch(() => undefined);
    await h.client.uninstall('..:0.0.1', true).catch(() => undefined);
    assert.ok(existsSync(parent) && existsSync(h.repoDir('fs')), 'data_dir\'s parent and the repository are still there');
    const after = statSync(parent);
    assert.deepEqual([after.mode, after.uid, after.gid], [before.mode, before.uid, before.gid], 'mode, owner, group of data_dir\'s parent');
    assert.deepEqual(await h.client.list(), [], 'the ".." NPK is not loaded');
    await stillAnswers(h);
  });

  test('a socket name that climbs out of socket_dir is refused at install; the victim file stays', async (t) => {
    const h = await startRuntime(t, { repositories: { mem: { type: 'mem' } } });
    // join(socket_dir, "c:0.0.1:x/../../victim") is <test dir>/victim.
    const victim = join(h.config.socketDir, '..', 'victim');
    writeFileSync(victim, 'precious');
    const npk = await hostileNpk(h.dir, 'sock.npk', manifestText({ name: 'sock', sockets: { 'x/../../victim': { type: 'stream', mode: 0o666 } } }));
    const e = await installError(h, npk, 'mem');
    assert.match(e, /invalid socket name/, e);
    await wireError(h.client.start('sock:0.0.1'));
    assert.equal(readFileSync(victim, 'utf8'), 'precious');
    await stillAnswers(h);
  });

  for (const [what, fields, rule] of [
    ['a resource dir that climbs out of the resource', { mounts: { '/r': { type: 'resource', name: 'res', version: '>=0.0.1', dir: '/../../tmp/x' } } }, /resource directory must not contain/],
    ['a netns name that climbs out of /run/netns', { network: { namespace: '../../proc/1/ns/net' } }, /invalid network namespace name/],
    ['a relative mount target', { mounts: { tmp: { type: 'tmpfs', size: 65536 } } }, /mount target must be absolute/],
    ['a mount target with ".."', { mounts: { '/x/../../../tmp': { type: 'tmpfs', size: 65536 } } }, /mount target must not contain/],
  ] as const) {
    test(`${what} is refused at install with an error naming it`, async (t) => {
      const h = await startRuntime(t, { repositories: { mem: { type: 'mem' } } });
      const npk = await hostileNpk(h.dir, 'bad.npk', manifestText({ name: 'bad', ...fields }));
      const e = await installError(h, npk, 'mem');
      assert.match(e, rule, e);
      assert.deepEqual(await h.client.list(), []);
    });
  }

  test('unknown syscall names in seccomp.allow are installed, with a warning naming them', async (t) => {
    const logs = captureLog(t);
    const h = await startRuntime(t, { repositories: { mem: { type: 'mem' } } });
    const npk = await fixtureNpk({ name: 'typo', manifest: { args: ['sleep'], seccomp: { allow: { read: 'any', frobnicate: 'any' } } } });
    assert.equal(await h.client.installFile(npk, 'mem'), 'typo:0.0.1');
    const warn = logs.find((r) => r.level === 'warn' && r.message.includes('frobnicate'));
    assert.ok(warn, `a warning naming frobnicate; got ${JSON.stringify(logs.filter((r) => r.level === 'warn'))}`);
    assert.match(warn.message, /"frobnicate" is not a syscall/);
    // And it starts: the unknown name is skipped at start, not an error (the
    // filter allows little else, so the process ends soon after).
    await h.client.start('typo:0.0.1');
    await h.waitFor((n) => typeof n === 'object' && 'exit' in n && n.exit[0] === 'typo:0.0.1');
  });

  test('repository names that are Object.prototype members are unknown repositories', async (t) => {
    const h = await startRuntime(t, { repositories: { mem: { type: 'mem' } } });
    const npk = await fixtureNpk({ name: 'proto', manifest: { args: ['sleep'] } });
    for (const repo of ['__proto__', 'constructor', 'toString', 'hasOwnProperty']) {
      assert.deepEqual(await wireError(h.client.installFile(npk, repo)), { invalid_repository: { repository: repo } }, repo);
    }
    await stillAnswers(h);
    assert.equal(await h.client.installFile(npk, 'mem'), 'proto:0.0.1');
  });

  test('a YAML alias bomb in an unkeyed repository is refused, and the daemon answers list right after', { timeout: 120_000 }, async (t) => {
    const h = await startDaemon(t, { repositories: { mem: { type: 'mem' } } });
    const names = 'abcdefghi';
    const lines = ['name: bomb', 'version: 0.0.1', 'init: /probe', 'uid: 1000', 'gid: 1000', 'custom:'];
    lines.push(`  a: &a [${Array(9).fill('"lol"').join(', ')}]`);
    for (let i = 1; i < names.length; i++) lines.push(`  ${names[i]}: &${names[i]} [${Array(9).fill(`*${names[i - 1]}`).join(', ')}]`);
    lines.push('  all: *i');
    const npk = await hostileNpk(h.dir, 'bomb.npk', lines.join('\n') + '\n');
    // An unbounded expansion blocks the daemon's event loop: no answer, and no
    // SIGTERM handling either. Give it a few seconds, then SIGKILL it and fail.
    const c = await Client.connect(h.url, { timeoutMs: 5_000 });
    t.after(() => c.close());
    let timer: NodeJS.Timeout | undefined;
    const hung = new Promise<'hung'>((resolve) => (timer = setTimeout(() => resolve('hung'), 10_000)));
    const r = await Promise.race([c.installFile(npk, 'mem').then(() => undefined, (e: unknown) => e), hung]);
    clearTimeout(timer);
    if (r === 'hung' || (r instanceof ClientError && r.kind === 'timeout')) {
      h.proc.kill('SIGKILL');
      assert.fail('the daemon did not answer the install of an alias bomb');
    }
    assert.ok(r instanceof ClientError && r.wire, `expected a runtime error, got ${String(r)}`);
    assert.match(JSON.stringify(r.wire), /YAML aliases expand to more than \d+ nodes/);
    assert.deepEqual(await c.list(), []);
  });
});

describe('trust boundary: resources of keyed containers', privileged({ cgroups: true }), () => {
  const res = (version: string, key: boolean) =>
    fixtureNpk({ name: 'shared-res', version, key, noProbe: true, files: { '/hello': `shared-res ${version}${key ? ' signed' : ''}` }, manifest: { init: undefined } });
  const app = () =>
    fixtureNpk({
      name: 'keyed-app',
      key: true,
      manifest: { args: ['cat', '/res/hello'], env: { PROBE_PARK: '0' }, io: PIPE, mounts: { '/res': { type: 'resource', name: 'shared-res', version: '>=0.0.1', dir: '/' } } },
    });

  async function setup(t: TestContext, signed: string[]) {
    const out = captureOutput(t);
    const h = await startRuntime(t, { repositories: { signed: { key: true, npks: signed }, mem: { type: 'mem' } } });
    t.after(() => assertNoTestCgroups());
    assert.equal(await h.client.installFile(await res('9.0.0', false), 'mem'), 'shared-res:9.0.0');
    return { h, out };
  }

  test('a container from a keyed repository gets the signed lower version, not the unsigned higher one', async (t) => {
    const { h, out } = await setup(t, [await app(), await res('0.0.1', true)]);
    await h.client.start('keyed-app:0.0.1');
    assert.equal(await out.waitFor('keyed-app:0.0.1', /shared-res/), 'shared-res 0.0.1 signed');
    await h.waitFor(isExit('keyed-app:0.0.1'));
    assert.equal((await h.client.inspect('shared-res:9.0.0')).mounted, false, 'the unsigned resource was never mounted');
  });

  test('with only an unsigned candidate the start fails with start_container_missing_resource saying so', async (t) => {
    const { h } = await setup(t, [await app()]);
    const w = await wireError(h.client.start('keyed-app:0.0.1'));
    assert.deepEqual(w, {
      start_container_missing_resource: {
        container: 'keyed-app:0.0.1',
        resource: 'shared-res',
        version: '>=0.0.1 from a keyed repository (unsigned shared-res:9.0.0 not used)',
      },
    });
    assert.equal((await h.client.inspect('shared-res:9.0.0')).mounted, false);
    await stillAnswers(h);
  });
});
