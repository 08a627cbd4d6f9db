// Reading and verifying NPKs: the independent vectors, and every bad input of
// the NPK issue, each refused with an error naming the problem.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, fstatSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { NpkError } from '../../src/npk/error.js';
import { generateKey, publicKeyOf } from '../../src/npk/keys.js';
import { manifestYaml } from '../../src/npk/manifest-io.js';
import { closeNpk, openNpk, type Npk } from '../../src/npk/npk.js';
import { buildSignature, sha256Hex } from '../../src/npk/signature.js';
import { buildVerity, verifyImage } from '../../src/npk/verity.js';
import { StoredZipWriter, readZipDirectory } from '../../src/npk/zip.js';

const vectors = join(dirname(fileURLToPath(import.meta.url)), '../fixtures/vectors');
const vectorKey = readFileSync(join(vectors, 'vector.pub'));
const dir = mkdtempSync(join(tmpdir(), 'npk-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const META = 'version: 0.9.3\n';
const MANIFEST = 'name: crafted\nversion: 0.0.1\nuid: 1000\ngid: 1000\n';

interface Part {
  name: string;
  data: Buffer;
  align?: number;
}

/** A zip of Stored entries built in memory with our writer. */
async function zipOf(parts: Part[], comment = META): Promise<Buffer> {
  const chunks: Buffer[] = [];
  const zip = new StoredZipWriter(async (d) => void chunks.push(Buffer.from(d)));
  for (const p of parts) await zip.addBuffer(p.name, p.data, p.align ?? 1);
  await zip.finish(Buffer.from(comment));
  return Buffer.concat(chunks);
}

/** The entries of an NPK file by name. */
async function entriesOf(path: string): Promise<Map<string, Buffer>> {
  const fd = openSync(path, 'r');
  try {
    const d = await readZipDirectory(fd, fstatSync(fd).size);
    const file = readFileSync(path);
    return new Map(d.entries.map((e) => [e.name, file.subarray(e.dataStart, e.dataStart + e.size)]));
  } finally {
    closeSync(fd);
  }
}

let n = 0;
function write(data: Buffer): string {
  const p = join(dir, `f${n++}.npk`);
  writeFileSync(p, data);
  return p;
}

/** Opens, asserts it fails with NpkError `code` and a message matching `message`. */
async function refused(data: Buffer | string, key: Buffer | undefined, code: string, message: RegExp): Promise<void> {
  const path = typeof data === 'string' ? data : write(data);
  await assert.rejects(openNpk(path, { key }), (e: unknown) => {
    assert.ok(e instanceof NpkError, `not an NpkError: ${String(e)}`);
    assert.match(e.message, message);
    assert.equal(e.code, code, e.message);
    return true;
  });
}

async function withNpk<T>(path: string, key: Buffer | undefined, fn: (npk: Npk) => Promise<T>): Promise<T> {
  const npk = await openNpk(path, { key });
  try {
    return await fn(npk);
  } finally {
    closeNpk(npk);
  }
}

/** A signed crafted NPK: squashfs stand-in data + verity, signed with a fresh key. */
async function signedParts(opts: { blocks?: number; verityOffset?: number; mutateSuperblock?: (b: Buffer) => void } = {}) {
  const keys = await generateKey(`k${n++}`, dir);
  const seed = readFileSync(keys.keyPath);
  const data = Buffer.alloc((opts.blocks ?? 3) * 4096, 0x5a);
  const v = await buildVerity(data);
  opts.mutateSuperblock?.(v.superblock);
  const fsImg = Buffer.concat([data, v.superblock, v.tree]);
  const sign = (h: Partial<{ metaHash: string; manifestHash: string; verityHash: string; verityOffset: number }> = {}) =>
    buildSignature(
      {
        metaHash: sha256Hex(META),
        manifestHash: sha256Hex(MANIFEST),
        verityHash: v.rootHash.toString('hex'),
        verityOffset: opts.verityOffset ?? data.length,
        ...h,
      },
      seed,
    );
  return { key: keys.publicKey, seed, fsImg, sign };
}

describe('the independent vectors', () => {
  for (const [file, signed] of [
    ['vector-signed.npk', true],
    ['vector-signed-d935-uncompressed.npk', true],
    ['vector-unsigned.npk', false],
  ] as const) {
    test(`${file} opens${signed ? ', verifies with vector.pub' : ''} and has fs.img at 4096`, async () => {
      await withNpk(join(vectors, file), signed ? vectorKey : undefined, async (npk) => {
        assert.equal(npk.manifest.name, 'vector');
        assert.equal(npk.manifest.version, '0.0.1');
        assert.equal(npk.manifest.init, undefined);
        assert.equal(npk.version, '0.9.3');
        assert.equal(npk.fsImgOffset, 4096);
        assert.deepEqual(npk.warnings, []);
        if (signed) {
          assert.ok(npk.verity);
          assert.equal(npk.verity.rootHash, npk.signature?.verityHash);
          await verifyImage({ fd: npk.fd, offset: npk.fsImgOffset, size: npk.fsImgSize, verity: npk.verity });
        } else {
          assert.equal(npk.verity, undefined);
        }
      });
    });
  }

  test('our manifest serialization reproduces the vectors\' manifest.yaml byte for byte', async () => {
    await withNpk(join(vectors, 'vector-signed.npk'), vectorKey, async (npk) => {
      assert.equal(manifestYaml(npk.manifest), npk.manifestText);
    });
  });

  test('the signed vector also opens without a key (signature ignored, no verity)', async () => {
    await withNpk(join(vectors, 'vector-signed.npk'), undefined, async (npk) => {
      assert.equal(npk.verity, undefined);
      assert.equal(npk.manifest.name, 'vector');
    });
  });

  test('a signed vector is refused with a different key', async () => {
    const other = publicKeyOf(Buffer.alloc(32, 7));
    await refused(join(vectors, 'vector-signed.npk'), other, 'npk_signature', /signature\.yaml: invalid signature/);
  });

  test('the unsigned vector is refused by a keyed repository', async () => {
    await refused(join(vectors, 'vector-unsigned.npk'), vectorKey, 'npk_signature', /signature\.yaml: missing, but the repository has a key/);
  });

  test('a misaligned re-zip of the signed vector is accepted with a warning and still verifies', async () => {
    const e = await entriesOf(join(vectors, 'vector-signed.npk'));
    const data = await zipOf([
      { name: 'manifest.yaml', data: e.get('manifest.yaml')! },
      { name: 'signature.yaml', data: e.get('signature.yaml')! },
      { name: 'fs.img', data: e.get('fs.img')!, align: 1 },
    ]);
    await withNpk(write(data), vectorKey, async (npk) => {
      assert.notEqual(npk.fsImgOffset % 4096, 0);
      assert.match(npk.warnings.join('\n'), /fs\.img data at offset \d+ is not 4096-aligned/);
      await verifyImage({ fd: npk.fd, offset: npk.fsImgOffset, size: npk.fsImgSize, verity: npk.verity! });
    });
  });

  test('a tampered zip comment of the signed vector fails the meta hash', async () => {
    const e = await entriesOf(join(vectors, 'vector-signed.npk'));
    const data = await zipOf(
      [
        { name: 'manifest.yaml', data: e.get('manifest.yaml')! },
        { name: 'signature.yaml', data: e.get('signature.yaml')! },
        { name: 'fs.img', data: e.get('fs.img')!, align: 4096 },
      ],
      'version: 0.9.4\n',
    );
    await refused(data, vectorKey, 'npk_hash', /meta hash .* does not match the zip comment/);
  });

  test('a tampered manifest of the signed vector fails the manifest hash', async () => {
    const e = await entriesOf(join(vectors, 'vector-signed.npk'));
    const data = await zipOf([
      { name: 'manifest.yaml', data: Buffer.from(e.get('manifest.yaml')!.toString().replace('1000', '1001')) },
      { name: 'signature.yaml', data: e.get('signature.yaml')! },
      { name: 'fs.img', data: e.get('fs.img')!, align: 4096 },
    ]);
    await refused(data, vectorKey, 'npk_hash', /manifest\.yaml hash .* does not match manifest\.yaml/);
  });

  test('a tampered signature of the signed vector is invalid', async () => {
    const e = await entriesOf(join(vectors, 'vector-signed.npk'));
    const sig = e.get('signature.yaml')!.toString();
    const b64 = /signature: (\S+)/.exec(sig)![1]!;
    const raw = Buffer.from(b64, 'base64');
    raw[5] = raw[5]! ^ 1;
    const data = await zipOf([
      { name: 'manifest.yaml', data: e.get('manifest.yaml')! },
      { name: 'signature.yaml', data: Buffer.from(sig.replace(b64, raw.toString('base64'))) },
      { name: 'fs.img', data: e.get('fs.img')!, align: 4096 },
    ]);
    await refused(data, vectorKey, 'npk_signature', /invalid signature/);
  });

  test('a changed hash in the signed document is an invalid signature', async () => {
    const e = await entriesOf(join(vectors, 'vector-signed.npk'));
    const sig = e.get('signature.yaml')!.toString().replace('verity-offset: 4096', 'verity-offset: 8192');
    const data = await zipOf([
      { name: 'manifest.yaml', data: e.get('manifest.yaml')! },
      { name: 'signature.yaml', data: Buffer.from(sig) },
      { name: 'fs.img', data: e.get('fs.img')!, align: 4096 },
    ]);
    await refused(data, vectorKey, 'npk_signature', /invalid signature/);
  });
});

describe('bad input is refused with an error naming the problem', () => {
  const fsImg = Buffer.alloc(8192, 1);
  const good = (): Promise<Buffer> =>
    zipOf([
      { name: 'manifest.yaml', data: Buffer.from(MANIFEST) },
      { name: 'fs.img', data: fsImg, align: 4096 },
    ]);

  test('a well-formed crafted NPK opens (the baseline of the cases below)', async () => {
    await withNpk(write(await good()), undefined, async (npk) => assert.equal(npk.manifest.name, 'crafted'));
  });

  test('not a zip', async () => {
    await refused(Buffer.from('name: not a zip\n'.repeat(100)), undefined, 'npk_zip', /not a zip archive/);
    await refused(Buffer.alloc(0), undefined, 'npk_zip', /too small/);
  });

  test('a truncated file', async () => {
    const full = readFileSync(join(vectors, 'vector-signed.npk'));
    await refused(full.subarray(0, full.length - 5), undefined, 'npk_zip', /no end of central directory record/);
    await refused(full.subarray(0, 6000), undefined, 'npk_zip', /not a zip archive \(or truncated\)/);
  });

  test('a FIFO or a directory instead of a file, without blocking', async () => {
    const fifo = join(dir, 'fifo');
    execFileSync('mkfifo', [fifo]);
    await refused(fifo, undefined, 'npk_io', /not a regular file/);
    await refused(dir, undefined, 'npk_io', /not a regular file/);
    await refused(join(dir, 'missing.npk'), undefined, 'npk_io', /ENOENT/);
  });

  test('a missing manifest.yaml', async () => {
    await refused(await zipOf([{ name: 'fs.img', data: fsImg, align: 4096 }]), undefined, 'npk_entry', /manifest\.yaml: missing from the archive/);
  });

  test('a missing fs.img', async () => {
    await refused(await zipOf([{ name: 'manifest.yaml', data: Buffer.from(MANIFEST) }]), undefined, 'npk_entry', /fs\.img: missing from the archive/);
  });

  test('a compressed entry', async () => {
    const z = await good();
    const cd = z.lastIndexOf(Buffer.from('PK\x01\x02', 'latin1'), z.length - 1);
    // The central directory's first entry is manifest.yaml: set method 8 there and in its local header.
    const first = z.indexOf(Buffer.from('PK\x01\x02', 'latin1'));
    assert.ok(first > 0 && cd > 0);
    z.writeUInt16LE(8, first + 10);
    z.writeUInt16LE(8, 0 + 8);
    await refused(z, undefined, 'npk_entry', /manifest\.yaml: entry is compressed \(method 8\); NPK entries must be Stored/);
  });

  test('a zip comment with a too old format version, and none at all', async () => {
    const parts = [
      { name: 'manifest.yaml', data: Buffer.from(MANIFEST) },
      { name: 'fs.img', data: fsImg, align: 4096 },
    ];
    await refused(await zipOf(parts, 'version: 0.8.9\n'), undefined, 'npk_version', /NPK version format 0\.8\.9 doesn't match required version >=0\.9/);
    await refused(await zipOf(parts, ''), undefined, 'npk_version', /missing NPK format version/);
    await withNpk(write(await zipOf(parts, 'version: 1.2.0\n')), undefined, async (npk) => assert.equal(npk.version, '1.2.0'));
  });

  test('an invalid manifest', async () => {
    const z = await zipOf([
      { name: 'manifest.yaml', data: Buffer.from('name: a/b\nversion: 0.0.1\nuid: 1000\ngid: 1000\n') },
      { name: 'fs.img', data: fsImg, align: 4096 },
    ]);
    await refused(z, undefined, 'npk_manifest', /manifest\.yaml: .*name/);
    const root = await zipOf([
      { name: 'manifest.yaml', data: Buffer.from('name: a\nversion: 0.0.1\nuid: 0\ngid: 1000\n') },
      { name: 'fs.img', data: fsImg, align: 4096 },
    ]);
    await refused(root, undefined, 'npk_manifest', /manifest\.yaml: .*uid/);
  });

  test('a zip64 end record and zip64 entry sizes are read', async () => {
    const z = await good();
    const eocd = z.lastIndexOf(Buffer.from('PK\x05\x06', 'latin1'));
    const count = z.readUInt16LE(eocd + 10);
    const cdSize = z.readUInt32LE(eocd + 12);
    const cdOffset = z.readUInt32LE(eocd + 16);
    // Rewrite fs.img's central entry with saturated sizes and a zip64 extra field.
    const cd = Buffer.from(z.subarray(cdOffset, cdOffset + cdSize));
    const second = cd.indexOf(Buffer.from('PK\x01\x02', 'latin1'), 4);
    const entry = Buffer.from(cd.subarray(second));
    const extra = Buffer.alloc(4 + 16);
    extra.writeUInt16LE(1, 0);
    extra.writeUInt16LE(16, 2);
    extra.writeBigUInt64LE(BigInt(fsImg.length), 4);
    extra.writeBigUInt64LE(BigInt(fsImg.length), 12);
    entry.writeUInt32LE(0xffffffff, 20);
    entry.writeUInt32LE(0xffffffff, 24);
    entry.writeUInt16LE(extra.length, 30);
    const nameEnd = 46 + entry.readUInt16LE(28);
    const newCd = Buffer.concat([cd.subarray(0, second), entry.subarray(0, nameEnd), extra, entry.subarray(nameEnd)]);
    const rec = Buffer.alloc(56);
    rec.writeUInt32LE(0x06064b50, 0);
    rec.writeBigUInt64LE(44n, 4);
    rec.writeBigUInt64LE(BigInt(count), 24);
    rec.writeBigUInt64LE(BigInt(count), 32);
    rec.writeBigUInt64LE(BigInt(newCd.length), 40);
    rec.writeBigUInt64LE(BigInt(cdOffset), 48);
    const loc = Buffer.alloc(20);
    loc.writeUInt32LE(0x07064b50, 0);
    loc.writeBigUInt64LE(BigInt(cdOffset + newCd.length), 8);
    loc.writeUInt32LE(1, 16);
    const end = Buffer.from(z.subarray(eocd));
    end.writeUInt16LE(0xffff, 8);
    end.writeUInt16LE(0xffff, 10);
    end.writeUInt32LE(0xffffffff, 12);
    end.writeUInt32LE(0xffffffff, 16);
    const zip64 = Buffer.concat([z.subarray(0, cdOffset), newCd, rec, loc, end]);
    await withNpk(write(zip64), undefined, async (npk) => {
      assert.equal(npk.fsImgSize, fsImg.length);
      assert.equal(npk.fsImgOffset % 4096, 0);
    });
  });

  test('duplicated entries', async () => {
    const z = await zipOf([
      { name: 'manifest.yaml', data: Buffer.from(MANIFEST) },
      { name: 'manifest.yaml', data: Buffer.from(MANIFEST) },
      { name: 'fs.img', data: fsImg, align: 4096 },
    ]);
    await refused(z, undefined, 'npk_zip', /duplicate entry manifest\.yaml/);
  });

  test('overlapping entries', async () => {
    const z = await good();
    // Grow manifest.yaml's declared size (central directory) so its data covers fs.img's header.
    const first = z.indexOf(Buffer.from('PK\x01\x02', 'latin1'));
    z.writeUInt32LE(MANIFEST.length + 100, first + 20);
    z.writeUInt32LE(MANIFEST.length + 100, first + 24);
    await refused(z, undefined, 'npk_zip', /entries manifest\.yaml and fs\.img overlap/);
  });

  test('huge declared sizes are refused without allocating them', async () => {
    const z = await good();
    const cds = [z.indexOf(Buffer.from('PK\x01\x02', 'latin1'))];
    cds.push(z.indexOf(Buffer.from('PK\x01\x02', 'latin1'), cds[0]! + 4));
    z.writeUInt32LE(0xfffffff0, cds[1]! + 20);
    z.writeUInt32LE(0xfffffff0, cds[1]! + 24);
    await refused(z, undefined, 'npk_zip', /fs\.img: declared size 4294967280 .* runs past the archive data/);
    // A central directory claiming 65535 entries in a few bytes.
    const y = await good();
    const eocd = y.lastIndexOf(Buffer.from('PK\x05\x06', 'latin1'));
    y.writeUInt16LE(0xfffe, eocd + 8);
    y.writeUInt16LE(0xfffe, eocd + 10);
    await refused(y, undefined, 'npk_zip', /central directory claims 65534 entries/);
    // A manifest.yaml beyond the limit.
    const big = await zipOf([
      { name: 'manifest.yaml', data: Buffer.alloc(2 << 20, 0x20) },
      { name: 'fs.img', data: fsImg, align: 4096 },
    ]);
    await refused(big, undefined, 'npk_entry', /manifest\.yaml: 2097152 bytes exceeds the limit/);
  });

  test('a signature missing in a keyed repository', async () => {
    const s = await signedParts();
    const z = await zipOf([
      { name: 'manifest.yaml', data: Buffer.from(MANIFEST) },
      { name: 'fs.img', data: s.fsImg, align: 4096 },
    ]);
    await refused(z, s.key, 'npk_signature', /signature\.yaml: missing/);
  });

  test('a crafted signed NPK opens and verifies (the baseline of the signed cases)', async () => {
    const s = await signedParts({ blocks: 200 });
    const z = await zipOf([
      { name: 'manifest.yaml', data: Buffer.from(MANIFEST) },
      { name: 'signature.yaml', data: Buffer.from(s.sign()) },
      { name: 'fs.img', data: s.fsImg, align: 4096 },
    ]);
    await withNpk(write(z), s.key, async (npk) => {
      assert.equal(npk.verity?.dataBlocks, 200);
      await verifyImage({ fd: npk.fd, offset: npk.fsImgOffset, size: npk.fsImgSize, verity: npk.verity! });
    });
  });

  test('a signed manifest hash that does not match', async () => {
    const s = await signedParts();
    const z = await zipOf([
      { name: 'manifest.yaml', data: Buffer.from(MANIFEST) },
      { name: 'signature.yaml', data: Buffer.from(s.sign({ manifestHash: sha256Hex('other') })) },
      { name: 'fs.img', data: s.fsImg, align: 4096 },
    ]);
    await refused(z, s.key, 'npk_hash', /manifest\.yaml hash/);
  });

  test('a verity offset beyond fs.img', async () => {
    const s = await signedParts();
    const z = await zipOf([
      { name: 'manifest.yaml', data: Buffer.from(MANIFEST) },
      { name: 'signature.yaml', data: Buffer.from(s.sign({ verityOffset: 1 << 30 })) },
      { name: 'fs.img', data: s.fsImg, align: 4096 },
    ]);
    await refused(z, s.key, 'npk_verity', /verity offset 1073741824 lies beyond fs\.img/);
  });

  test('a bad verity superblock', async () => {
    const s = await signedParts({ mutateSuperblock: (b) => b.write('nope', 0, 'latin1') });
    const z = await zipOf([
      { name: 'manifest.yaml', data: Buffer.from(MANIFEST) },
      { name: 'signature.yaml', data: Buffer.from(s.sign()) },
      { name: 'fs.img', data: s.fsImg, align: 4096 },
    ]);
    await refused(z, s.key, 'npk_verity', /verity superblock: bad magic/);
  });

  test('a malformed signature.yaml', async () => {
    const s = await signedParts();
    for (const [text, message] of [
      ['meta:\n  hash: 12\n', /no "---"/],
      [s.sign().replace(/signature: .*/, 'signature: not-base64'), /signature is not base64/],
      [s.sign().replace(/verity-hash: .*/, 'verity-hash: zz'), /fs\.img\.verity-hash is not a sha256 hex digest/],
    ] as const) {
      const z = await zipOf([
        { name: 'manifest.yaml', data: Buffer.from(MANIFEST) },
        { name: 'signature.yaml', data: Buffer.from(text) },
        { name: 'fs.img', data: s.fsImg, align: 4096 },
      ]);
      await refused(z, s.key, 'npk_signature', message);
    }
  });
});

describe('file descriptors', () => {
  test('a failed open closes the fd it opened; closeNpk closes the NPK fd once', async () => {
    const before = fdCount();
    for (let i = 0; i < 20; i++) await openNpk(join(vectors, 'vector-unsigned.npk'), { key: vectorKey }).catch(() => undefined);
    assert.equal(fdCount(), before);
    const npk = await openNpk(join(vectors, 'vector-unsigned.npk'));
    assert.equal(fdCount(), before + 1);
    closeNpk(npk);
    closeNpk(npk);
    assert.equal(fdCount(), before);
  });

  test('a caller-owned fd is used as is and left open on failure', async () => {
    const fd = openSync(join(vectors, 'vector-unsigned.npk'), 'r');
    try {
      await assert.rejects(openNpk({ fd, path: 'memfd' }, { key: vectorKey }));
      fstatSync(fd); // still open
      const npk = await openNpk({ fd, path: 'memfd' });
      assert.equal(npk.fd, fd);
      assert.equal(npk.path, 'memfd');
    } finally {
      closeSync(fd);
    }
  });
});

function fdCount(): number {
  return readdirSync('/proc/self/fd').length;
}
