// The verity hash tree against an independent implementation (cryptsetup's
// veritysetup, userspace `format` and `verify`), and verifyImage's refusals.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { NpkError } from '../../src/npk/error.js';
import {
  SUPERBLOCK_SIZE, buildHashTree, buildVerity, checkSuperblock, levelSizes, treeSize, verifyImage,
} from '../../src/npk/verity.js';
import { prerequisite } from '../integration/privileged.js';

const dir = mkdtempSync(join(tmpdir(), 'verity-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

function hasVeritysetup(): boolean {
  try {
    execFileSync('veritysetup', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}
const veritysetup = prerequisite(hasVeritysetup() ? undefined : 'no veritysetup (apt-get install cryptsetup-bin)');

function rootHashOf(output: string): string {
  const m = /Root hash:\s*([0-9a-f]{64})/.exec(output);
  assert.ok(m, `no root hash in veritysetup output:\n${output}`);
  return m[1]!;
}

/** Writes `blocks` pseudo-random data blocks and returns the path and data. */
function dataFile(name: string, blocks: number): { path: string; data: Buffer } {
  const data = randomBytes(blocks * 4096);
  const path = join(dir, name);
  writeFileSync(path, data);
  return { path, data };
}

describe('verity hash tree', () => {
  test('level sizes follow the kernel: none for one block, one per 128-fold', () => {
    assert.deepEqual(levelSizes(1), []);
    assert.deepEqual(levelSizes(2), [1]);
    assert.deepEqual(levelSizes(128), [1]);
    assert.deepEqual(levelSizes(129), [2, 1]);
    assert.deepEqual(levelSizes(128 * 128 + 1), [129, 2, 1]);
    assert.equal(treeSize(129), 3 * 4096);
  });

  for (const blocks of [1, 2, 128, 129, 300, 16_385]) {
    test(`the root hash of ${blocks} data blocks equals veritysetup's`, veritysetup, async () => {
      const { path, data } = dataFile(`d${blocks}`, blocks);
      const salt = randomBytes(32);
      const out = execFileSync('veritysetup', [
        'format', path, `${path}.hash`, '--no-superblock', '--hash', 'sha256',
        '--data-block-size', '4096', '--hash-block-size', '4096', '--salt', salt.toString('hex'),
      ]).toString();
      const fd = openSync(path, 'r');
      try {
        const streamed = await buildHashTree({ fd, offset: 0, size: data.length }, salt);
        const inMemory = await buildHashTree(data, salt);
        assert.equal(streamed.rootHash.toString('hex'), rootHashOf(out));
        assert.ok(streamed.tree.equals(inMemory.tree));
        // The tree itself, byte for byte, as veritysetup lays it out (top level first).
        assert.ok(streamed.tree.equals(readFileSync(`${path}.hash`)), 'hash tree differs from veritysetup');
      } finally {
        closeSync(fd);
      }
    });
  }

  test('superblock and tree equal veritysetup format output with the same salt and uuid', veritysetup, async () => {
    const { path, data } = dataFile('sb', 200);
    const salt = randomBytes(32);
    const uuid = randomBytes(16);
    uuid[6] = (uuid[6]! & 0x0f) | 0x40;
    uuid[8] = (uuid[8]! & 0x3f) | 0x80;
    const hex = uuid.toString('hex');
    const uuidText = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
    execFileSync('veritysetup', ['format', path, `${path}.hash`, '--salt', salt.toString('hex'), '--uuid', uuidText]);
    const v = await buildVerity(data, { salt, uuid });
    const theirs = readFileSync(`${path}.hash`);
    assert.ok(v.superblock.equals(theirs.subarray(0, SUPERBLOCK_SIZE)), 'superblock differs from veritysetup');
    assert.ok(v.tree.equals(theirs.subarray(SUPERBLOCK_SIZE)), 'tree differs from veritysetup');
    assert.equal(checkSuperblock(v.superblock, 200 * 4096).dataBlocks, 200);
  });

  test('veritysetup verify accepts an image with our superblock and tree appended', veritysetup, async () => {
    const { path, data } = dataFile('appended', 257);
    const v = await buildVerity(data);
    writeFileSync(path, Buffer.concat([data, v.superblock, v.tree]));
    execFileSync('veritysetup', ['verify', path, path, v.rootHash.toString('hex'), '--hash-offset', String(data.length)]);
  });
});

describe('verifyImage', () => {
  async function sealed(blocks: number): Promise<{ path: string; verity: { rootHash: string; salt: string; dataBlocks: number; verityOffset: number }; size: number }> {
    const data = randomBytes(blocks * 4096);
    const v = await buildVerity(data);
    const prefix = randomBytes(4096); // fs.img sits at an offset inside the NPK
    const path = join(dir, `img-${blocks}-${randomBytes(3).toString('hex')}`);
    writeFileSync(path, Buffer.concat([prefix, data, v.superblock, v.tree]));
    return {
      path,
      size: data.length + SUPERBLOCK_SIZE + v.tree.length,
      verity: { rootHash: v.rootHash.toString('hex'), salt: v.salt.toString('hex'), dataBlocks: blocks, verityOffset: data.length },
    };
  }

  function flipByte(path: string, at: number): void {
    const fd = openSync(path, 'r+');
    const b = Buffer.alloc(1);
    try {
      readSync(fd, b, 0, 1, at);
      b[0] = b[0]! ^ 0xff;
      writeSync(fd, b, 0, 1, at);
    } finally {
      closeSync(fd);
    }
  }

  for (const blocks of [1, 5, 130]) {
    test(`accepts an intact image of ${blocks} blocks read at an offset`, async () => {
      const s = await sealed(blocks);
      const fd = openSync(s.path, 'r');
      try {
        await verifyImage({ fd, offset: 4096, size: s.size, verity: s.verity });
      } finally {
        closeSync(fd);
      }
    });
  }

  test('names the data block that was changed', async () => {
    const s = await sealed(130);
    flipByte(s.path, 4096 + 77 * 4096 + 10);
    const fd = openSync(s.path, 'r');
    try {
      await assert.rejects(verifyImage({ fd, offset: 4096, size: s.size, verity: s.verity }), (e: unknown) => {
        assert.ok(e instanceof NpkError);
        assert.equal(e.code, 'verity_mismatch');
        assert.match(e.message, /fs\.img data block 77 does not match/);
        return true;
      });
    } finally {
      closeSync(fd);
    }
  });

  test('names the hash tree block that was changed', async () => {
    const s = await sealed(130);
    // Tree: level 1 (1 block) then level 0 (2 blocks); change level 0 block 1.
    flipByte(s.path, 4096 + 130 * 4096 + SUPERBLOCK_SIZE + 4096 + 4096 + 5);
    const fd = openSync(s.path, 'r');
    try {
      await assert.rejects(verifyImage({ fd, offset: 4096, size: s.size, verity: s.verity }), /hash tree level 0 block 1 does not match/);
    } finally {
      closeSync(fd);
    }
  });

  test('rejects a wrong root hash and a tree that does not fit fs.img', async () => {
    const s = await sealed(5);
    const fd = openSync(s.path, 'r');
    try {
      const wrong = { ...s.verity, rootHash: '00'.repeat(32) };
      await assert.rejects(verifyImage({ fd, offset: 4096, size: s.size, verity: wrong }), /hash tree level 0 block 0 does not match/);
      await assert.rejects(verifyImage({ fd, offset: 4096, size: s.size - 4096, verity: s.verity }), /need/);
      const short = { ...s.verity, dataBlocks: 4 };
      await assert.rejects(verifyImage({ fd, offset: 4096, size: s.size, verity: short }), /!= verity offset/);
    } finally {
      closeSync(fd);
    }
  });
});

describe('verity superblock checks (deviation 7)', () => {
  const good = (): Buffer => Buffer.from(buildVerityBlock());
  function buildVerityBlock(): Buffer {
    const b = Buffer.alloc(4096);
    b.write('verity\0\0', 0, 'latin1');
    b.writeUInt32LE(1, 8);
    b.writeUInt32LE(1, 12);
    b.write('sha256', 32, 'latin1');
    b.writeUInt32LE(4096, 64);
    b.writeUInt32LE(4096, 68);
    b.writeBigUInt64LE(3n, 72);
    b.writeUInt16LE(32, 80);
    return b;
  }
  const cases: [string, (b: Buffer) => void, RegExp][] = [
    ['bad magic', (b) => b.write('VERITY', 0, 'latin1'), /bad magic/],
    ['version 2', (b) => b.writeUInt32LE(2, 8), /version 2/],
    ['hash type 0', (b) => b.writeUInt32LE(0, 12), /hash type 0/],
    ['algorithm sha1', (b) => { b.fill(0, 32, 64); b.write('sha1', 32, 'latin1'); }, /algorithm "sha1"/],
    ['data block size 512', (b) => b.writeUInt32LE(512, 64), /data block size 512/],
    ['hash block size 1024', (b) => b.writeUInt32LE(1024, 68), /hash block size 1024/],
    ['salt size 16', (b) => b.writeUInt16LE(16, 80), /salt size 16/],
    ['data blocks not matching the offset', (b) => b.writeBigUInt64LE(4n, 72), /4 data blocks × 4096 != verity offset 12288/],
  ];
  test('a well-formed superblock passes', () => {
    assert.equal(checkSuperblock(good(), 3 * 4096).dataBlocks, 3);
  });
  for (const [what, mutate, message] of cases) {
    test(`a superblock with ${what} is refused`, () => {
      const b = good();
      mutate(b);
      assert.throws(() => checkSuperblock(b, 3 * 4096), message);
    });
  }
});
