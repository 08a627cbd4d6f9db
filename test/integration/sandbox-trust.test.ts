// Attacks on the container boundary from inside images and manifests: a
// symlink that redirects a mount target to the host, a device node crafted in
// an unsigned image, submounts of a read-only recursive bind, clone under the
// default seccomp profile, and signals to init from its container's uid. Each
// is reproduced against real NPKs mounted by the pool, real starts and real
// namespaces, and passes only with its defence in place.
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';

import { launch } from '../../src/actors/launch/launch.js';
import type { ClientError } from '../../src/client/index.js';
import { MountPool } from '../../src/actors/mount/mount-pool.js';
import type { LaunchSpec } from '../../src/machines/contracts.js';
import { mountInput } from '../../src/machines/plan.js';
import type { ExitStatus } from '../../src/model/errors.js';
import type { Manifest } from '../../src/model/manifest.js';
import { closeNpk, openNpk } from '../../src/npk/npk.js';
import { packNpk } from '../../src/packer/pack.js';
import { buildCloneProbe, buildProbe } from '../fixtures/build.js';
import { fixtureKeys } from '../fixtures/npk.js';
import { eventually, run, sandbox, start, waitForLine } from './launch-fixture.js';
import { privileged } from './privileged.js';
import { startRuntime } from './runtime-harness.js';

const opts = privileged({ tools: ['setpriv'] });
const unique = `${process.pid}-${Date.now().toString(36)}`;

/** The init code paths of older kernels, forced on this one (NSTAR_TEST=1 hooks, sandbox.ts). */
const KERNEL_PATHS = [
  { name: 'openat2 and mount_setattr', hooks: '' },
  { name: 'the O_NOFOLLOW walk and remounts (kernels < 5.6)', hooks: 'no-openat2,no-mount-setattr' },
];

function withHooks(t: TestContext, hooks: string): void {
  if (!hooks) return;
  const saved = { test: process.env.NSTAR_TEST, init: process.env.NSTAR_INIT_TEST };
  process.env.NSTAR_TEST = '1';
  process.env.NSTAR_INIT_TEST = hooks;
  t.after(() => {
    for (const [k, v] of [['NSTAR_TEST', saved.test], ['NSTAR_INIT_TEST', saved.init]] as const) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  });
}

interface Image {
  root: string;
  manifest: Manifest;
  container: string;
}

describe('the trust boundary of images', opts, () => {
  let dir = '';
  let pool: MountPool;
  const mounted: { container: string; target: string }[] = [];

  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'nstar-trust-'));
    pool = new MountPool({ threads: 1, minThreads: 0, idleTimeoutMs: 1000 });
  });

  after(async () => {
    for (const m of mounted) await pool.umount(m).catch(() => undefined);
    await pool?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  /** Packs `stage`d root + probe as name:0.0.1 (signed when `keyed`), mounts it as the runtime does. */
  async function image(name: string, manifest: Partial<Manifest>, stage: (root: string) => void, keyed = false): Promise<Image> {
    const root = join(dir, `stage-${name}`);
    mkdirSync(root, { recursive: true });
    copyFileSync(buildProbe(), join(root, 'probe'));
    chmodSync(join(root, 'probe'), 0o755);
    stage(root);
    const keys = keyed ? await fixtureKeys() : undefined;
    const out = join(dir, `${name}.npk`);
    const full = { name, version: '0.0.1', init: '/probe', uid: 1000, gid: 1000, io: { stdout: 'pipe', stderr: 'pipe' }, ...manifest };
    await packNpk({ manifest: JSON.stringify(toText(full)), root, out, key: keys?.privateKey });
    const npk = await openNpk(out, keys ? { key: keys.publicKey } : {});
    const input = mountInput(npk, keyed, { runDir: join(dir, 'run'), verity: 'auto', loopDeviceTimeoutMs: 5000 });
    try {
      await pool.mount(input);
      mounted.push({ container: input.container, target: input.target });
    } finally {
      closeNpk(npk);
    }
    return { root: input.target, manifest: npk.manifest, container: input.container };
  }

  function spec(img: Image, args: string[], resources: Record<string, string> = {}): LaunchSpec {
    const m = img.manifest;
    return {
      container: img.container, manifest: m, root: img.root, init: '/probe', args,
      env: { PROBE_PARK: '0', NORTHSTAR_NAME: m.name, NORTHSTAR_VERSION: m.version, NORTHSTAR_CONTAINER: img.container },
      runDir: join(dir, 'run'), dataDir: join(dir, 'data'), socketDir: join(dir, 'sockets'), resources,
    };
  }

  async function runIn(img: Image, args: string[], resources?: Record<string, string>): Promise<{ status: ExitStatus; lines: string[] }> {
    const lines: string[] = [];
    const l = await launch(spec(img, args, resources), { output: (_s, line) => lines.push(line) });
    l.openGate();
    return { status: await l.exited, lines };
  }

  for (const k of KERNEL_PATHS) {
    const links: [string, (host: string) => string][] = [
      ['absolute', (host) => host],
      ['climbing', (host) => '../'.repeat(16) + host.slice(1)],
    ];
    for (const [style, text] of links) {
      test(`a${style === 'absolute' ? 'n' : ''} ${style} symlink to the host in an image never takes a mount target out of the root (${k.name})`, async (t) => {
        withHooks(t, k.hooks);
        // The host directory the link names exists: the old code made `created` in it, as root.
        const host = mkdtempSync(join(tmpdir(), `nstar-evil-${unique}-`));
        t.after(() => rmSync(host, { recursive: true, force: true }));
        const name = `evil-${style}-${k.hooks ? 'walk' : 'openat2'}`;
        const img = await image(name, { mounts: { '/proc': { type: 'proc' }, '/evil/created': { type: 'tmpfs', size: 65536 } } }, (root) =>
          symlinkSync(text(host), join(root, 'evil')),
        );
        const r = await runIn(img, ['mounts']).catch((e: Error & { code?: string }) => e);
        assert.ok(!existsSync(join(host, 'created')), 'nothing is created on the host');
        if (r instanceof Error) {
          // Inside the root the link leads nowhere, and the read-only image cannot get the directory.
          assert.equal(r.code, 'start_container_failed');
          assert.match(r.message, /`\/evil(\/created)?`: No such file or directory/);
        } else {
          assert.ok(r.lines.some((l) => l.split(' ')[1] === host + '/created'), `the tmpfs lands inside the root: ${r.lines.join('\n')}`);
        }
      });
    }

    test(`symlinks inside an image still lead mount targets within it (${k.name})`, async (t) => {
      withHooks(t, k.hooks);
      // An absolute link resolved on the host named /usr/lib/<abs> there: the old code created it.
      const abs = `abs-mnt-${unique}-${k.hooks ? 'walk' : 'openat2'}`;
      t.after(() => rmSync(join('/usr/lib', abs), { recursive: true, force: true }));
      const img = await image(
        `links-${k.hooks ? 'walk' : 'openat2'}`,
        {
          mounts: {
            '/proc': { type: 'proc' },
            '/lib/rel-mnt': { type: 'tmpfs', size: 65536 },
            [`/alib/${abs}`]: { type: 'tmpfs', size: 65536 },
          },
        },
        (root) => {
          mkdirSync(join(root, 'usr/lib/rel-mnt'), { recursive: true });
          mkdirSync(join(root, 'usr/lib', abs));
          symlinkSync('usr/lib', join(root, 'lib'));
          symlinkSync('/usr/lib', join(root, 'alib'));
        },
      );
      const { status, lines } = await runIn(img, ['mounts']);
      assert.deepEqual(status, { exit: { code: 0 } });
      const points = lines.map((l) => l.split(' ')[1]);
      assert.ok(points.includes('/usr/lib/rel-mnt'), lines.join('\n'));
      assert.ok(points.includes(`/usr/lib/${abs}`), lines.join('\n'));
      assert.ok(!existsSync(join('/usr/lib', abs)), 'nothing is created on the host');
    });
  }

  test('a symlink in a resource image never binds a host directory into the container', async (t) => {
    const secret = mkdtempSync(join(tmpdir(), `nstar-secret-${unique}-`));
    chmodSync(secret, 0o755);
    writeFileSync(join(secret, 'key'), 'host secret');
    chmodSync(join(secret, 'key'), 0o644);
    t.after(() => rmSync(secret, { recursive: true, force: true }));
    const res = await image('res-evil', { init: undefined, io: undefined, mounts: {} }, (root) => symlinkSync(secret, join(root, 'data')));
    const user = await image('res-user', {
      mounts: { '/proc': { type: 'proc' }, '/res': { type: 'resource', name: 'res-evil', version: '>=0.0.1', dir: '/data', options: [] } },
    }, () => undefined);
    const r = await runIn(user, ['cat', '/res/key'], { '/res': join(res.root, 'data') }).catch((e: Error & { code?: string }) => e);
    if (r instanceof Error) {
      assert.equal(r.code, 'start_container_failed');
      assert.match(r.message, /`\/data`: No such file or directory/);
    } else {
      assert.ok(!r.lines.some((l) => l.includes('host secret')), r.lines.join('\n'));
    }
  });

  test('a repository file replaced by a symlink is not mounted', async () => {
    const target = join(dir, 'linked.npk');
    await packNpk({ manifest: JSON.stringify({ name: 'linked', version: '0.0.1', init: '/probe', uid: 1000, gid: 1000 }), out: target });
    const link = join(dir, 'link.npk');
    symlinkSync(target, link);
    const npk = await openNpk(target, {});
    try {
      const input = mountInput({ ...npk, path: link }, false, { runDir: join(dir, 'run'), verity: 'auto', loopDeviceTimeoutMs: 5000 });
      await assert.rejects(pool.mount(input), /Too many levels of symbolic links/);
      assert.ok(!existsSync(input.target), 'the mount point is gone again');
    } finally {
      closeNpk(npk);
    }
  });

  test('a device node crafted in an unsigned image cannot be opened, while /dev/null and /dev/pts work', async () => {
    const img = await image('devnode', { mounts: { '/proc': { type: 'proc' }, '/dev': { type: 'dev' } } }, (root) => {
      // 1:3 is /dev/null: harmless here, but any major:minor would be honoured the same way.
      execFileSync('mknod', ['-m', '666', join(root, 'crafted'), 'c', '1', '3']);
    });
    const crafted = await runIn(img, ['write', 'x', '/crafted']);
    assert.deepEqual(crafted.status, { exit: { code: 1 } }, crafted.lines.join('\n'));
    assert.ok(crafted.lines.some((l) => /crafted: Permission denied/.test(l)), crafted.lines.join('\n'));
    assert.deepEqual((await runIn(img, ['write', 'x', '/dev/null'])).status, { exit: { code: 0 } });
    const pts = await runIn(img, ['ls', '/dev/pts']);
    assert.ok(pts.lines.includes('ls: ptmx'), pts.lines.join('\n'));
    const mounts = await runIn(img, ['mounts']);
    assert.ok(mounts.lines.some((l) => /^devpts \/dev\/pts devpts rw,nosuid,noexec,/.test(l)), mounts.lines.join('\n'));
    assert.ok(mounts.lines.some((l) => /^tmpfs \/dev tmpfs rw,nosuid,nodev,noexec,/.test(l)), mounts.lines.join('\n'));
    assert.ok(mounts.lines.some((l) => /^\S+ \/ squashfs ro,nosuid,nodev[ ,]/.test(l)), mounts.lines.join('\n'));
    // A new terminal from the container's own devpts instance, through the /dev/ptmx link.
    const ptmx = await runIn(img, ['write', 'x', '/dev/ptmx']);
    assert.deepEqual(ptmx.status, { exit: { code: 0 } }, ptmx.lines.join('\n'));
  });

  test('a resource bound from an unsigned image keeps nosuid and nodev whatever its options list', async () => {
    await image('res-dev', { init: undefined, io: undefined, mounts: {} }, (root) => {
      execFileSync('mknod', ['-m', '666', join(root, 'crafted'), 'c', '1', '3']);
    });
    const user = await image('res-dev-user', {
      mounts: { '/proc': { type: 'proc' }, '/res': { type: 'resource', name: 'res-dev', version: '>=0.0.1', dir: '/', options: [] } },
    }, () => undefined);
    const resources = { '/res': join(dir, 'run', 'res-dev:0.0.1') + '/' };
    const r = await runIn(user, ['write', 'x', '/res/crafted'], resources);
    assert.deepEqual(r.status, { exit: { code: 1 } }, r.lines.join('\n'));
    const mounts = await runIn(user, ['mounts'], resources);
    assert.ok(mounts.lines.some((l) => /^\S+ \/res squashfs ro,nosuid,nodev[ ,]/.test(l)), mounts.lines.join('\n'));
  });

  test('an image from a keyed repository keeps its device nodes (ro,nosuid as Northstar)', async () => {
    const img = await image('devnode-keyed', { mounts: { '/proc': { type: 'proc' } } }, (root) => {
      execFileSync('mknod', ['-m', '666', join(root, 'crafted'), 'c', '1', '3']);
    }, true);
    assert.deepEqual((await runIn(img, ['write', 'x', '/crafted'])).status, { exit: { code: 0 } });
  });
});

describe('the trust boundary of mounts, seccomp and ids', opts, () => {
  for (const k of KERNEL_PATHS) {
    test(`a read-only recursive bind is read-only on its submounts too (${k.name})`, async (t) => {
      withHooks(t, k.hooks);
      const s = sandbox(t);
      const host = mkdtempSync(join(tmpdir(), 'nstar-rec-'));
      chmodSync(host, 0o755);
      mkdirSync(join(host, 'sub'));
      // A writable submount below the bound directory (this test's private mount namespace).
      execFileSync('mount', ['-t', 'tmpfs', '-o', 'mode=1777,size=65536', 'tmpfs', join(host, 'sub')]);
      t.after(() => {
        execFileSync('umount', ['-l', join(host, 'sub')]);
        rmSync(host, { recursive: true, force: true });
      });
      const manifest: Partial<Manifest> = { mounts: { '/proc': { type: 'proc' }, '/host': { type: 'bind', host, options: ['rec', 'nosuid'] } } };
      const sub = await run(t, s, { args: ['write', 'x', '/host/sub/file'], manifest });
      assert.deepEqual(sub.status, { exit: { code: 1 } });
      assert.ok(sub.err.some((l) => /Read-only file system/.test(l)), sub.err.join('\n'));
      assert.ok(!existsSync(join(host, 'sub', 'file')));
      const mounts = await run(t, s, { args: ['mounts'], manifest });
      const line = mounts.out.find((l) => l.split(' ')[1] === '/host/sub') ?? '';
      assert.match(line, /^tmpfs \/host\/sub tmpfs ro,nosuid,/, 'the listed options apply below too');
    });
  }

  test('the default seccomp profile lets a program without capabilities fork and start threads', async (t) => {
    const s = sandbox(t);
    copyFileSync(buildCloneProbe(), join(s.root, 'clone-probe'));
    const r = await run(t, s, { manifest: { init: '/clone-probe', capabilities: [], seccomp: { profile: 'default' } }, args: ['fork-thread'] });
    assert.deepEqual(r.status, { exit: { code: 0 } }, r.out.join('\n'));
    assert.deepEqual(r.out, ['fork-thread: ok']);
  });

  test('the default seccomp profile kills a clone that asks for a new user namespace', async (t) => {
    const s = sandbox(t);
    copyFileSync(buildCloneProbe(), join(s.root, 'clone-probe'));
    const r = await run(t, s, { manifest: { init: '/clone-probe', capabilities: [], seccomp: { profile: 'default' } }, args: ['newuser'] });
    assert.deepEqual(r.status, { signalled: { signal: 31 } }, r.out.join('\n'));
    // Without the filter the kernel lets an unprivileged process make one: seccomp is what refuses.
    const free = await run(t, s, { manifest: { init: '/clone-probe', capabilities: [] }, args: ['newuser'] });
    assert.ok(free.out.length === 1, free.out.join('\n'));
  });

  test('init keeps root ids while the container process runs with the manifest ids', async (t) => {
    const s = sandbox(t);
    const r = await start(t, s, { args: ['sleep'], manifest: { uid: 1000, gid: 1001 } });
    await waitForLine(r, /Sleeping/);
    const status = (pid: number) => readFileSync(`/proc/${pid}/status`, 'utf8');
    const ids = (text: string, key: string) => /^(\w+):\s+(.*)$/m.exec(text.split('\n').find((l) => l.startsWith(`${key}:`)) ?? '')?.[2].split(/\s+/);
    const init = status(r.launched.pid);
    assert.deepEqual(ids(init, 'Uid'), ['0', '0', '0', '0'], 'a host process of the container uid cannot signal init');
    assert.deepEqual(ids(init, 'Gid'), ['0', '0', '0', '0']);
    let child = '';
    assert.ok(await eventually(() => (child = readFileSync(`/proc/${r.launched.pid}/task/${r.launched.pid}/children`, 'utf8').trim()) !== ''));
    const containerPid = Number(child.split(/\s+/)[0]);
    const container = status(containerPid);
    assert.deepEqual(ids(container, 'Uid'), ['1000', '1000', '1000', '1000']);
    assert.deepEqual(ids(container, 'Gid'), ['1001', '1001', '1001', '1001']);
    assert.match(container, /^CapEff:\s+0+$/m);
    // A host process of the container's uid reaches its own container, never init.
    const killAs1000 = (pid: number) =>
      spawnSync('setpriv', ['--reuid=1000', '--regid=1001', '--clear-groups', 'kill', '-0', String(pid)], { encoding: 'utf8' });
    assert.equal(killAs1000(containerPid).status, 0);
    const denied = killAs1000(r.launched.pid);
    assert.notEqual(denied.status, 0);
    assert.match(denied.stderr, /Operation not permitted/);
  });
});

describe('the trust boundary through the runtime', opts, () => {
  test('a start redirected by an image symlink fails with a clear error and the runtime keeps answering', async (t) => {
    const stage = mkdtempSync(join(tmpdir(), 'nstar-trust-rt-'));
    t.after(() => rmSync(stage, { recursive: true, force: true }));
    const host = mkdtempSync(join(tmpdir(), `nstar-evil-${unique}-`));
    t.after(() => rmSync(host, { recursive: true, force: true }));
    const root = join(stage, 'root');
    mkdirSync(root);
    copyFileSync(buildProbe(), join(root, 'probe'));
    chmodSync(join(root, 'probe'), 0o755);
    symlinkSync(host, join(root, 'evil'));
    const manifest = { name: 'evil', version: '0.0.1', init: '/probe', uid: 1000, gid: 1000, mounts: { '/evil/created': { type: 'tmpfs', size: 65536 } } };
    const npk = join(stage, 'evil-0.0.1.npk');
    await packNpk({ manifest: JSON.stringify(manifest), root, out: npk });
    const h = await startRuntime(t, { repositories: { default: { npks: [npk] } } });
    await assert.rejects(h.client.start('evil:0.0.1'), (e: ClientError) => {
      assert.equal(Object.keys(e.wire ?? {})[0], 'start_container_failed');
      assert.match(e.message, /`\/evil`: No such file or directory/);
      return true;
    });
    assert.ok(!existsSync(join(host, 'created')), 'nothing is created on the host');
    assert.ok((await h.client.list()).includes('evil:0.0.1'), 'the runtime keeps answering');
  });
});

/** The manifest in its file form: mount options as "rw,nosuid". */
function toText(m: Record<string, unknown>): Record<string, unknown> {
  const mounts = m.mounts as Record<string, Record<string, unknown>> | undefined;
  if (!mounts) return m;
  return { ...m, mounts: Object.fromEntries(Object.entries(mounts).map(([t, x]) => [t, Array.isArray(x.options) ? { ...x, options: x.options.join(',') } : x])) };
}
