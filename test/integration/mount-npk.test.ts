// Real NPKs through the mount pool: the spec's independently built vectors
// (signed ones verified in userspace) and NPKs packed by our own packer.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { MountPool } from '../../src/actors/mount/mount-pool.js';
import type { MountInput } from '../../src/machines/contracts.js';
import { closeNpk, openNpk } from '../../src/npk/npk.js';
import type { Npk } from '../../src/npk/npk.js';
import { native } from '../../src/native.js';
import { fixtureKeys, fixtureNpk } from '../fixtures/npk.js';
import { loopsBackedBy, mountsUnder } from './mount-images.js';
import { privileged } from './privileged.js';

const vectors = new URL('../fixtures/vectors', import.meta.url).pathname;

describe('mounting NPKs', privileged({ loop: true, mksquashfs: true }), () => {
  let run: string;
  let pool: MountPool;
  const opened: Npk[] = [];

  before(() => {
    run = mkdtempSync(join(tmpdir(), 'nstar-npk-run-'));
    pool = new MountPool({ threads: 2, minThreads: 0, idleTimeoutMs: 1000 });
  });

  after(async () => {
    await pool.close();
    for (const m of mountsUnder(run).reverse()) native().umount(m, { detach: true });
    for (const n of opened) closeNpk(n);
    rmSync(run, { recursive: true, force: true });
  });

  async function open(path: string, key?: Buffer): Promise<Npk> {
    const npk = await openNpk(path, key ? { key } : {});
    opened.push(npk);
    return npk;
  }

  function input(npk: Npk, name: string): MountInput {
    return {
      container: `${npk.manifest.name}:${npk.manifest.version}`,
      npkPath: npk.path,
      fsImgOffset: npk.fsImgOffset,
      fsImgSize: npk.fsImgSize,
      target: join(run, name),
      verityMode: 'auto',
      loopDeviceTimeoutMs: 5000,
      ...(npk.verity ? { verity: npk.verity } : {}),
    };
  }

  async function mountAndRead(npk: Npk, name: string, file: string): Promise<{ text: string; phases: Record<string, number> }> {
    const i = input(npk, name);
    const out = await pool.mount(i);
    try {
      return { text: readFileSync(join(i.target, file), 'utf8'), phases: out.phases };
    } finally {
      await pool.umount(i);
      assert.equal(existsSync(i.target), false);
    }
  }

  for (const [file, signed] of [
    ['vector-signed.npk', true],
    ['vector-signed-d935-uncompressed.npk', true],
    ['vector-unsigned.npk', false],
  ] as const) {
    test(`the spec vector ${file} mounts${signed ? ' after userspace verity' : ''} and /hello reads through it`, async () => {
      const key = signed ? readFileSync(join(vectors, 'vector.pub')) : undefined;
      const npk = await open(join(vectors, file), key);
      assert.equal(npk.fsImgOffset, 4096);
      assert.equal(!!npk.verity, signed);
      const r = await mountAndRead(npk, file, 'hello');
      assert.equal(r.text, 'hello from vector\n');
      assert.equal('verity' in r.phases, signed);
      assert.deepEqual(loopsBackedBy(npk.path), []);
    });
  }

  test('the vectors mount only what fs.img holds: the zip around it stays invisible', async () => {
    const npk = await open(join(vectors, 'vector-unsigned.npk'));
    const i = input(npk, 'listing');
    await pool.mount(i);
    try {
      assert.equal(readFileSync(join(i.target, 'big.txt'), 'utf8'), 'x'.repeat(20000));
      assert.equal(existsSync(join(i.target, 'manifest.yaml')), false);
    } finally {
      await pool.umount(i);
    }
  });

  test('NPKs packed by our packer mount, signed and unsigned', async () => {
    const keys = await fixtureKeys();
    const files = { '/data/greeting': 'hello from our packer\n' };
    const unsigned = await open(await fixtureNpk({ name: 'mount-plain', files }));
    const signed = await open(await fixtureNpk({ name: 'mount-signed', files, key: true }), keys.publicKey);
    assert.ok(signed.verity);
    assert.equal((await mountAndRead(unsigned, 'ours-plain', 'data/greeting')).text, 'hello from our packer\n');
    assert.equal((await mountAndRead(signed, 'ours-signed', 'data/greeting')).text, 'hello from our packer\n');
  });

  test('after the NPK tests no loop device of these files stays attached and no mount remains', () => {
    assert.deepEqual(mountsUnder(run), []);
    for (const n of opened) assert.deepEqual(loopsBackedBy(n.path), []);
  });
});
