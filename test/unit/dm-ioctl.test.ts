// Golden bytes of the dm_ioctl buffers and the dm-verity table. The goldens
// were printed by a C program that fills the kernel's own structs
// (linux/dm-ioctl.h); where gcc and the header exist, the last test rebuilds
// that program and compares again, so the two sides stay independent.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';

import {
  DM,
  DM_FLAGS,
  devCreate,
  devRemove,
  devResume,
  dmIoctlBuffer,
  replyDevice,
  tableLoad,
  verityTarget,
} from '../../src/actors/mount/dm-ioctl.js';

const NAME = 'northstar-test';
const UUID = '0b8c1c3e-6f0a-4f7e-9d2b-1a2b3c4d5e6f';
const ROOT = 'ab'.repeat(32);
const SALT = 'cd'.repeat(32);
const PARAMS = `1 /dev/loop3 /dev/loop3 4096 4096 5 6 sha256 ${ROOT} ${SALT}`;

/** "<length> <offset>:<hex of a non-zero run> ..." — the C program's format. */
function sparse(b: Buffer): string {
  const runs: string[] = [`${b.length}`];
  let i = 0;
  while (i < b.length) {
    if (b[i] === 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < b.length && b[j] !== 0) j++;
    runs.push(`${i}:${b.subarray(i, j).toString('hex')}`);
    i = j;
  }
  return runs.join(' ');
}

const GOLDEN = {
  create:
    '312 0:04 12:3801 16:3801 48:6e6f727468737461722d74657374 176:30623863316333652d366630612d346637652d396432622d316132623363346435653666',
  load:
    '528 0:04 12:1002 16:3801 20:01 28:01 48:6e6f727468737461722d74657374 320:28 332:d8 336:766572697479 352:' +
    Buffer.from(`${PARAMS}`).toString('hex'),
  resume: '312 0:04 12:3801 16:3801 48:6e6f727468737461722d74657374',
  remove: '312 0:04 12:3801 16:3801 30:02 48:6e6f727468737461722d74657374',
};

const verity = () => verityTarget({ device: '/dev/loop3', dataBlocks: 5, rootHash: ROOT, salt: SALT });

test('the dm-verity table names the loop device twice, skips the superblock block, and spans the data in sectors', () => {
  const t = verity();
  assert.equal(t.params, PARAMS);
  assert.equal(t.type, 'verity');
  assert.equal(t.sectorStart, 0);
  assert.equal(t.length, 40); // 5 blocks of 4096 bytes = verity_offset / 512
});

test('DEV_CREATE carries version 4.0.0, sizes, name and uuid at the kernel offsets', () => {
  assert.equal(sparse(devCreate(NAME, UUID)), GOLDEN.create);
});

test('TABLE_LOAD carries one read-only verity target with its NUL-terminated, 8-byte padded parameters', () => {
  const b = tableLoad(NAME, verity());
  assert.equal(sparse(b), GOLDEN.load);
  assert.equal(b.length % 8, 0);
  assert.equal(b[b.length - 1], 0);
});

test('resume is DEV_SUSPEND without the suspend flag; the removal after mount is deferred', () => {
  assert.equal(sparse(devResume(NAME)), GOLDEN.resume);
  assert.equal(sparse(devRemove(NAME, true)), GOLDEN.remove);
  assert.equal(devRemove(NAME, false).readUInt32LE(28), 0);
  assert.equal(DM_FLAGS.DEFERRED_REMOVE, 0x20000);
});

test('the ioctl request numbers are _IOWR(0xfd, nr, struct dm_ioctl)', () => {
  assert.equal(DM.DEV_CREATE, 0xc138fd03);
  assert.equal(DM.TABLE_LOAD, 0xc138fd09);
  assert.equal(DM.DEV_SUSPEND, 0xc138fd06);
  assert.equal(DM.DEV_REMOVE, 0xc138fd04);
});

test('a reply device number decodes to major and minor (huge_encode_dev)', () => {
  const b = Buffer.alloc(312);
  // major 253, minor 0x1234: (minor & 0xff) | (major << 8) | ((minor & ~0xff) << 12)
  b.writeBigUInt64LE(BigInt(0x34 | (253 << 8)) | (0x1200n << 12n), 40);
  assert.deepEqual(replyDevice(b), { major: 253, minor: 0x1234 });
});

test('names, uuids and tables that do not fit are refused with a clear error', () => {
  assert.throws(() => dmIoctlBuffer({ name: 'x'.repeat(128) }), /longer than 127 bytes/);
  assert.throws(() => dmIoctlBuffer({ name: 'a', uuid: 'u'.repeat(129) }), /uuid/);
  assert.throws(() => dmIoctlBuffer({ name: 'a\0b' }), /NUL/);
  assert.throws(() => verityTarget({ device: '/dev/loop0', dataBlocks: 5, rootHash: 'AB'.repeat(32), salt: SALT }), /root hash/);
  assert.throws(() => verityTarget({ device: '/dev/loop0', dataBlocks: 0, rootHash: ROOT, salt: SALT }), /data blocks/);
});

const GOLD_C = String.raw`// Builds the dm_ioctl buffers with the kernel's own structs and prints the
// non-zero byte runs: the independent side of the golden tests.
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <linux/types.h>
#include <linux/dm-ioctl.h>

static void dump(const char* label, unsigned char* b, size_t n) {
  printf("%s %zu", label, n);
  size_t i = 0;
  while (i < n) {
    if (!b[i]) { i++; continue; }
    size_t j = i;
    while (j < n && b[j]) j++;
    printf(" %zu:", i);
    for (size_t k = i; k < j; k++) printf("%02x", b[k]);
    i = j;
  }
  printf("\n");
}

static void header(struct dm_ioctl* io, size_t size, const char* name, const char* uuid, __u32 flags, __u32 targets) {
  io->version[0] = 4; io->version[1] = 0; io->version[2] = 0;
  io->data_size = size; io->data_start = sizeof *io; io->target_count = targets; io->flags = flags;
  strcpy(io->name, name);
  if (uuid) strcpy(io->uuid, uuid);
}

int main(int argc, char** argv) {
  const char* name = argv[1]; const char* uuid = argv[2]; const char* params = argv[3];
  unsigned long long blocks = strtoull(argv[4], 0, 10);
  unsigned char buf[4096];
  memset(buf, 0, sizeof buf);
  header((struct dm_ioctl*)buf, sizeof(struct dm_ioctl), name, uuid, 0, 0);
  dump("create", buf, sizeof(struct dm_ioctl));
  memset(buf, 0, sizeof buf);
  size_t plen = strlen(params) + 1;
  size_t spec = sizeof(struct dm_target_spec) + (plen + 7) / 8 * 8;
  header((struct dm_ioctl*)buf, sizeof(struct dm_ioctl) + spec, name, 0, DM_READONLY_FLAG, 1);
  struct dm_target_spec* t = (struct dm_target_spec*)(buf + sizeof(struct dm_ioctl));
  t->sector_start = 0; t->length = blocks * 8; t->status = 0; t->next = spec;
  strcpy(t->target_type, "verity");
  memcpy(buf + sizeof(struct dm_ioctl) + sizeof *t, params, plen);
  dump("load", buf, sizeof(struct dm_ioctl) + spec);
  memset(buf, 0, sizeof buf);
  header((struct dm_ioctl*)buf, sizeof(struct dm_ioctl), name, 0, 0, 0);
  dump("resume", buf, sizeof(struct dm_ioctl));
  memset(buf, 0, sizeof buf);
  header((struct dm_ioctl*)buf, sizeof(struct dm_ioctl), name, 0, DM_DEFERRED_REMOVE, 0);
  dump("remove", buf, sizeof(struct dm_ioctl));
  printf("ioctls %#lx %#lx %#lx %#lx\n", (unsigned long)DM_DEV_CREATE, (unsigned long)DM_TABLE_LOAD, (unsigned long)DM_DEV_SUSPEND, (unsigned long)DM_DEV_REMOVE);
  return 0;
}
`;

function hasCompiler(): string | undefined {
  if (!existsSync('/usr/include/linux/dm-ioctl.h')) return 'no linux/dm-ioctl.h';
  try {
    execFileSync('sh', ['-c', 'command -v gcc'], { stdio: 'ignore' });
    return undefined;
  } catch {
    return 'no gcc';
  }
}

test('the buffers equal what C builds with the kernel header', { skip: hasCompiler() }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'nstar-dmgold-'));
  try {
    writeFileSync(join(dir, 'gold.c'), GOLD_C);
    execFileSync('gcc', ['-o', join(dir, 'gold'), join(dir, 'gold.c')]);
    const out = execFileSync(join(dir, 'gold'), [NAME, UUID, PARAMS, '5'], { encoding: 'utf8' });
    const lines = Object.fromEntries(out.trim().split('\n').map((l) => [l.slice(0, l.indexOf(' ')), l.slice(l.indexOf(' ') + 1)]));
    assert.equal(sparse(devCreate(NAME, UUID)), lines.create);
    assert.equal(sparse(tableLoad(NAME, verity())), lines.load);
    assert.equal(sparse(devResume(NAME)), lines.resume);
    assert.equal(sparse(devRemove(NAME, true)), lines.remove);
    assert.equal(lines.ioctls, [DM.DEV_CREATE, DM.TABLE_LOAD, DM.DEV_SUSPEND, DM.DEV_REMOVE].map((n) => `0x${n.toString(16)}`).join(' '));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
