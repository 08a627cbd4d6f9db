// A container whose root is its mounted squashfs image (our packer, the mount
// pool), not a directory: the mount points come from the image, which is
// read-only, and the launch leaves the image mounted for the next start.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { launch } from '../../src/actors/launch/launch.js';
import { MountPool } from '../../src/actors/mount/mount-pool.js';
import type { LaunchSpec } from '../../src/machines/contracts.js';
import type { Manifest } from '../../src/model/manifest.js';
import { closeNpk, openNpk } from '../../src/npk/npk.js';
import { fixtureNpk } from '../fixtures/npk.js';
import { privileged } from './privileged.js';

const opts = privileged({});

describe('containers from mounted images', opts, () => {
  let dir = '';
  let pool: MountPool;
  let root = '';
  let manifest: Manifest;
  const container = 'image-probe:0.0.1';

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'nstar-launch-image-'));
    pool = new MountPool({ threads: 1, minThreads: 0, idleTimeoutMs: 1000 });
    const path = await fixtureNpk({
      name: 'image-probe',
      manifest: {
        mounts: { '/proc': { type: 'proc' }, '/data': { type: 'persist' }, '/tmp': { type: 'tmpfs', size: 100000 } },
        io: { stdout: 'pipe', stderr: 'pipe' },
      },
    });
    const npk = await openNpk(path, {});
    manifest = npk.manifest;
    root = join(dir, 'run', container);
    try {
      await pool.mount({
        container, npkPath: npk.path, fsImgOffset: npk.fsImgOffset, fsImgSize: npk.fsImgSize, target: root,
        verityMode: 'auto', loopDeviceTimeoutMs: 5000,
      });
    } finally {
      closeNpk(npk);
    }
  });

  after(async () => {
    if (root) await pool.umount({ container, target: root }).catch(() => undefined);
    await pool?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  function spec(args: string[]): LaunchSpec {
    return {
      container, manifest, root, init: '/probe', args,
      env: { PROBE_PARK: '0', NORTHSTAR_NAME: 'image-probe', NORTHSTAR_VERSION: '0.0.1', NORTHSTAR_CONTAINER: container },
      runDir: join(dir, 'run'), dataDir: join(dir, 'data'), socketDir: join(dir, 'sockets'), resources: {},
    };
  }

  async function runIn(args: string[]) {
    const lines: string[] = [];
    const l = await launch(spec(args), { output: (_s, line) => lines.push(line) });
    l.openGate();
    return { status: await l.exited, lines };
  }

  test('the probe runs from the squashfs root with the manifest mounts', async () => {
    const { status, lines } = await runIn(['mounts']);
    assert.deepEqual(status, { exit: { code: 0 } });
    assert.ok(lines.some((l) => /^\S+ \/ squashfs ro,/.test(l)), lines.join('\n'));
    assert.ok(lines.some((l) => l.startsWith('proc /proc proc ro,')));
    assert.ok(lines.some((l) => l.startsWith('tmpfs /tmp tmpfs rw,nosuid,nodev,noexec')));
  });

  test('the image root is read-only while persist and tmpfs are writable, across starts', async () => {
    assert.deepEqual((await runIn(['write', 'x', '/probe-copy'])).status, { exit: { code: 1 } });
    assert.deepEqual((await runIn(['write', 'x', '/tmp/f'])).status, { exit: { code: 0 } });
    assert.deepEqual((await runIn(['write', 'kept', '/data/f'])).status, { exit: { code: 0 } });
    const r = await runIn(['read', '/data/f']);
    assert.ok(r.lines.includes('Content of /data/f: kept'), r.lines.join('\n'));
  });
});
