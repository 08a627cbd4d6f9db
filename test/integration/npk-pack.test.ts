// Packing with mksquashfs and checking the result with independent tools:
// unzip (Stored entries), unsquashfs (pseudo mount points and /dev nodes, the
// root tree), veritysetup verify (our hash tree and root hash).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';

import { main } from '../../src/cli/npk.js';
import { generateKey } from '../../src/npk/keys.js';
import { closeNpk, openNpk } from '../../src/npk/npk.js';
import { packNpk } from '../../src/packer/pack.js';
import { COMPRESSIONS } from '../../src/packer/squashfs.js';
import { verifyImage } from '../../src/npk/verity.js';
import { fixtureKeys, fixtureNpk } from '../fixtures/npk.js';
import { privileged } from './privileged.js';

const req = privileged({ loop: false, tools: ['unsquashfs', 'unzip', 'veritysetup'] });
const dir = mkdtempSync(join(tmpdir(), 'npk-pack-test-'));
after(() => rmSync(dir, { recursive: true, force: true }));

const MANIFEST = `name: packed
version: 0.1.0
init: /bin/app
uid: 1000
gid: 1001
mounts:
  /dev:
    type: dev
  /proc:
    type: proc
  /lib:
    type: bind
    host: /lib
  /data:
    type: persist
  /run/x/tmp:
    type: tmpfs
    size: 100000
  /res:
    type: resource
    name: r
    version: '>=0.0.1'
    dir: /
`;

/** A root with files of several modes, a nested empty dir and a symlink. */
function makeRoot(): string {
  const root = join(dir, `root-${Math.random().toString(16).slice(2)}`);
  mkdirSync(join(root, 'bin'), { recursive: true });
  mkdirSync(join(root, 'etc/deep/er'), { recursive: true });
  mkdirSync(join(root, 'empty'));
  writeFileSync(join(root, 'bin/app'), Buffer.alloc(200_000, 'a'));
  chmodSync(join(root, 'bin/app'), 0o755);
  writeFileSync(join(root, 'etc/conf'), 'conf\n');
  chmodSync(join(root, 'etc/conf'), 0o640);
  writeFileSync(join(root, 'etc/deep/er/secret'), 'secret\n');
  chmodSync(join(root, 'etc/deep/er/secret'), 0o600);
  chmodSync(join(root, 'etc/deep'), 0o750);
  symlinkSync('/bin/app', join(root, 'bin/link'));
  return root;
}

/** Every path below `root` with its type, mode and content (uid/gid separately). */
function tree(root: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (rel: string): void => {
    for (const name of readdirSync(join(root, rel)).sort()) {
      const p = join(rel, name);
      const st = lstatSync(join(root, p));
      const mode = (st.mode & 0o7777).toString(8);
      if (st.isSymbolicLink()) out.set(p, `link ${readlinkSync(join(root, p))}`);
      else if (st.isDirectory()) {
        out.set(p, `dir ${mode}`);
        walk(p);
      } else if (st.isFile()) out.set(p, `file ${mode} ${readFileSync(join(root, p)).toString('base64').slice(0, 40)} ${st.size}`);
      else out.set(p, `other ${mode}`);
    }
  };
  walk('');
  return out;
}

function available(): string[] {
  const help = execFileSync('sh', ['-c', 'mksquashfs -help 2>&1 || true']).toString();
  const list = help.slice(help.indexOf('Compressors available'));
  return COMPRESSIONS.filter((c) => c === 'none' || new RegExp(`^\\s+${c}\\b`, 'm').test(list));
}

async function cli(...argv: string[]): Promise<{ code: number; out: string }> {
  const lines: string[] = [];
  const code = await main(argv, (s) => lines.push(s));
  return { code, out: lines.join('\n') };
}

describe('packing', req, () => {
  const keyDir = join(dir, 'keys');
  mkdirSync(keyDir);
  const keysP = generateKey('pack', keyDir);
  const manifestPath = join(dir, 'manifest.yaml');
  writeFileSync(manifestPath, MANIFEST);

  for (const compression of available()) {
    for (const signed of [true, false]) {
      test(`a ${signed ? 'signed' : 'unsigned'} ${compression} pack opens, lists its pseudo entries and unpacks to the same tree`, async () => {
        const keys = await keysP;
        const root = makeRoot();
        const out = join(dir, `out-${compression}-${signed}`);
        mkdirSync(out);
        const args = ['pack', '-m', manifestPath, '-r', root, '-o', out, '-c', compression, ...(signed ? ['-k', keys.keyPath] : [])];
        const packed = await cli(...args);
        assert.equal(packed.code, 0);
        const path = join(out, 'packed-0.1.0.npk');
        assert.equal(packed.out, path);
        assert.deepEqual(readdirSync(out), ['packed-0.1.0.npk'], 'no temporary files are left');

        // unzip: three Stored entries in Northstar's order.
        const listing = execFileSync('unzip', ['-v', path]).toString();
        const names = [...listing.matchAll(/Stored\s+\d+\s+0%.*\s(\S+)$/gm)].map((m) => m[1]);
        assert.deepEqual(names, signed ? ['manifest.yaml', 'signature.yaml', 'fs.img'] : ['manifest.yaml', 'fs.img']);
        assert.doesNotMatch(listing, /Defl/);
        assert.match(execFileSync('unzip', ['-z', path]).toString(), /version: 0\.9\.3/);

        const npk = await openNpk(path, signed ? { key: keys.publicKey } : {});
        try {
          assert.equal(npk.fsImgOffset % 4096, 0);
          assert.equal(npk.manifest.gid, 1001);
          if (signed) await verifyImage({ fd: npk.fd, offset: npk.fsImgOffset, size: npk.fsImgSize, verity: npk.verity! });
          else assert.equal(npk.signature, undefined);
          // unsquashfs at the fs.img offset: pseudo mount points and device nodes.
          const ll = execFileSync('unsquashfs', ['-lln', '-o', String(npk.fsImgOffset), path]).toString();
          for (const [p, mode] of [['dev', 'drwxr-xr-x'], ['proc', 'dr--r--r--'], ['lib', 'dr-xr-xr-x'], ['data', 'drwxr-xr-x'], ['run', 'drwxr-xr-x'], ['run/x/tmp', 'drwxr-xr-x'], ['res', 'dr-xr-xr-x']]) {
            assert.match(ll, new RegExp(`^${mode} 1000/1001 .* squashfs-root/${p}$`, 'm'), `${p} ${mode}`);
          }
          for (const [d, mm] of [['null', '1,\\s+3'], ['zero', '1,\\s+5'], ['full', '1,\\s+7'], ['random', '1,\\s+8'], ['urandom', '1,\\s+9'], ['tty', '5,\\s+0']]) {
            assert.match(ll, new RegExp(`^crw-rw-rw- 1000/1001\\s+${mm} .* squashfs-root/dev/${d}$`, 'm'), `/dev/${d}`);
          }
          assert.match(ll, /squashfs-root\/dev\/stdout -> \/proc\/self\/fd\/1$/m);
          if (signed) {
            // veritysetup verifies fs.img (data, superblock and tree) against the signed root hash.
            const img = join(out, 'fs.img');
            writeFileSync(img, readFileSync(path).subarray(npk.fsImgOffset, npk.fsImgOffset + npk.fsImgSize));
            execFileSync('veritysetup', ['verify', img, img, npk.verity!.rootHash, '--hash-offset', String(npk.verity!.verityOffset)]);
            rmSync(img);
          }
        } finally {
          closeNpk(npk);
        }

        const short = await cli('inspect', '-s', path);
        assert.equal(short.out, 'name: packed, version: 0.1.0, NPK version: 0.9.3, resource container: no');

        const unpacked = join(out, 'unpacked');
        assert.equal((await cli('unpack', '-n', path, '-o', unpacked)).code, 0);
        assert.ok(existsSync(join(unpacked, 'manifest.yaml')));
        assert.ok(!existsSync(join(unpacked, 'fs.img')));
        const got = tree(join(unpacked, 'root'));
        for (const [p, v] of tree(root)) assert.equal(got.get(p), v, p);
        const st = lstatSync(join(unpacked, 'root/etc/deep/er/secret'));
        assert.deepEqual([st.uid, st.gid], [1000, 1001]);
        assert.equal(got.get('dev/null'), 'other 666');
      });
    }
  }

  test('/dev nodes and links carry their SELinux labels (deviation 9)', { skip: hasXattrTool() ? undefined : 'neither getfattr nor python3' }, async () => {
    const out = join(dir, 'labels');
    mkdirSync(out);
    const r = await packNpk({ manifestPath, root: makeRoot(), out });
    const unpacked = join(out, 'u');
    assert.equal((await cli('unpack', '-n', r.path, '-o', unpacked)).code, 0);
    const label = (p: string): string => readLabel(p);
    assert.equal(label(join(unpacked, 'root/dev/null')), 'u:object_r:null_device:s0');
    assert.equal(label(join(unpacked, 'root/dev/full')), 'u:object_r:full_device:s0');
    assert.equal(label(join(unpacked, 'root/dev/urandom')), 'u:object_r:random_device:s0');
    assert.equal(label(join(unpacked, 'root/dev/fd')), 'u:r:su:s0');
  });

  test('a root that already has /dev keeps its files beside the device nodes', async () => {
    const root = makeRoot();
    mkdirSync(join(root, 'dev'));
    writeFileSync(join(root, 'dev/keep'), 'keep\n');
    const out = join(dir, 'devroot');
    mkdirSync(out);
    const r = await packNpk({ manifestPath, root, out });
    const npk = await openNpk(r.path);
    try {
      const ll = execFileSync('unsquashfs', ['-ll', '-o', String(npk.fsImgOffset), r.path]).toString();
      assert.match(ll, /squashfs-root\/dev\/keep$/m);
      assert.match(ll, /squashfs-root\/dev\/null$/m);
      assert.match(ll, /squashfs-root\/bin\/app$/m);
      assert.doesNotMatch(ll, /dev_1/);
    } finally {
      closeNpk(npk);
    }
  });

  test('a pack without a root holds only the pseudo entries; out as a file path is used as is', async () => {
    const out = join(dir, 'named.npk');
    const r = await packNpk({ manifest: 'name: res\nversion: 0.0.2\nuid: 1\ngid: 1\n', out });
    assert.equal(r.path, out);
    const res = await cli('inspect', '-s', out);
    assert.equal(res.out, 'name: res, version: 0.0.2, NPK version: 0.9.3, resource container: yes');
    // Only staged /dev as a source: it stays a directory in the image, not the image root.
    const dev = await packNpk({ manifest: 'name: dev\nversion: 0.0.1\nuid: 1\ngid: 1\nmounts:\n  /dev:\n    type: dev\n', out: join(dir, 'dev.npk') });
    const long = await cli('inspect', dev.path);
    assert.match(long.out, /squashfs-root\/dev\/null$/m);
  });

  test('progress reports hashing and writing up to their totals', async () => {
    const seen: { phase: string; done: number; total: number }[] = [];
    const out = join(dir, 'progress.npk');
    await packNpk({ manifestPath, root: makeRoot(), out, key: (await keysP).keyPath, onProgress: (p) => seen.push(p) });
    for (const phase of ['verity', 'zip']) {
      const last = seen.filter((p) => p.phase === phase).at(-1);
      assert.ok(last && last.done === last.total && last.total > 0, `${phase} progress reaches its total`);
    }
  });

  test('with mksquashfs 4.6 the /dev labels go in as x pseudo lines and the root is the only source', async () => {
    const record = join(dir, 'record');
    const fake = join(dir, 'mksquashfs-4.6');
    writeFileSync(
      fake,
      `#!/bin/sh\n[ "$1" = -version ] && { echo "mksquashfs version 4.6.1 (2023/03/25)"; exit 0; }\n` +
        `echo "$@" > ${record}.args\nwhile [ "$1" != -pf ]; do shift; done\ncp "$2" ${record}.pseudo\nexit 3\n`,
    );
    chmodSync(fake, 0o755);
    const root = makeRoot();
    await assert.rejects(packNpk({ manifestPath, root, out: join(dir, 'x.npk'), mksquashfs: fake, compression: 'zstd', blockSize: 65536 }), /exit 3/);
    const args = readFileSync(`${record}.args`, 'utf8').trim().split(' ');
    assert.equal(args[0], root);
    assert.ok(args[1]!.endsWith('fs.img'));
    for (const a of ['-noappend', '-force-uid 1000', '-force-gid 1001', '-comp zstd', '-b 65536']) assert.ok(args.join(' ').includes(a), a);
    const pseudo = readFileSync(`${record}.pseudo`, 'utf8');
    assert.match(pseudo, /^\/dev\/null c 666 1000 1001 1 3\n\/dev\/null x security\.selinux=u:object_r:null_device:s0$/m);
    assert.match(pseudo, /^\/dev\/fd s 777 1000 1001 \/proc\/self\/fd$/m);
  });

  test('JSON and TOML manifests pack to the same manifest.yaml as YAML', async () => {
    const json = join(dir, 'm.json');
    const toml = join(dir, 'm.toml');
    writeFileSync(json, JSON.stringify({ name: 'fmt', version: '1.2.3', init: '/x', uid: 7, gid: 8, mounts: { '/proc': { type: 'proc' } } }));
    writeFileSync(toml, 'name = "fmt"\nversion = "1.2.3"\ninit = "/x"\nuid = 7\ngid = 8\n[mounts."/proc"]\ntype = "proc"\n');
    const texts: string[] = [];
    for (const m of [json, toml]) {
      const r = await packNpk({ manifestPath: m, out: `${m}.npk` });
      const npk = await openNpk(r.path);
      texts.push(npk.manifestText);
      closeNpk(npk);
    }
    assert.equal(texts[0], texts[1]);
    assert.equal(texts[0], 'name: fmt\nversion: 1.2.3\ninit: /x\nuid: 7\ngid: 8\nmounts:\n  /proc:\n    type: proc\n');
  });

  test('a failing mksquashfs leaves no NPK and no temporary file behind', async () => {
    const fake = join(dir, 'fake-mksquashfs');
    writeFileSync(fake, '#!/bin/sh\n[ "$1" = -version ] && { echo "mksquashfs version 4.6.1 (2023/03/25)"; exit 0; }\necho "FATAL ERROR: disk on fire" >&2\nexit 1\n');
    chmodSync(fake, 0o755);
    const out = join(dir, 'failing');
    mkdirSync(out);
    const r = await cli('pack', '-m', manifestPath, '-r', makeRoot(), '-o', out, '--mksquashfs', fake);
    assert.equal(r.code, 1);
    assert.deepEqual(readdirSync(out), []);
    await assert.rejects(packNpk({ manifestPath, root: makeRoot(), out, mksquashfs: fake }), /fake-mksquashfs failed \(exit 1\): FATAL ERROR: disk on fire/);
  });

  test('bad pack input is named: missing root, missing manifest, wrong key size', async () => {
    await assert.rejects(packNpk({ manifestPath, root: join(dir, 'nope'), out: dir }), /root .*nope: ENOENT/);
    await assert.rejects(packNpk({ manifestPath: join(dir, 'nope.yaml'), out: dir }), /manifest .*nope\.yaml: ENOENT/);
    await assert.rejects(packNpk({ manifestPath, out: join(dir, 'no/such/dir/x.npk') }), /out .*x\.npk: directory .*no\/such\/dir does not exist/);
    const bad = join(dir, 'bad.key');
    writeFileSync(bad, 'short');
    await assert.rejects(packNpk({ manifestPath, out: dir, key: bad }), /key .*bad\.key: 5 bytes, expected 32/);
  });

  test('--clones writes numbered copies of the container', async () => {
    const out = join(dir, 'clones');
    mkdirSync(out);
    const r = await cli('pack', '-m', manifestPath, '-o', out, '--clones', '12');
    assert.equal(r.code, 0);
    const files = readdirSync(out).sort();
    assert.equal(files.length, 12);
    assert.equal(files[0], 'packed-00-0.1.0.npk');
    assert.equal(files[11], 'packed-11-0.1.0.npk');
  });

  test('gen-key writes 32-byte key files and refuses to overwrite them', async () => {
    const out = join(dir, 'gen');
    mkdirSync(out);
    assert.equal((await cli('gen-key', '-n', 'k', '-o', out)).code, 0);
    assert.equal(readFileSync(join(out, 'k.key')).length, 32);
    assert.equal(readFileSync(join(out, 'k.pub')).length, 32);
    assert.equal((await cli('gen-key', '-n', 'k', '-o', out)).code, 1);
  });

  test('npk inspect lists the vectors and verifies the signed ones with vector.pub', async () => {
    const vectors = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '../fixtures/vectors');
    for (const f of ['vector-signed.npk', 'vector-signed-d935-uncompressed.npk']) {
      const r = await cli('inspect', '-k', join(vectors, 'vector.pub'), join(vectors, f));
      assert.equal(r.code, 0);
      assert.match(r.out, /Signature and verity hash tree verified/);
      assert.match(r.out, /squashfs-root\/big\.txt/);
      assert.match(r.out, /squashfs-root\/hello/);
    }
    const u = await cli('inspect', join(vectors, 'vector-unsigned.npk'));
    assert.match(u.out, /No signature found/);
  });

  test('fixtureNpk packs once per content and signs with fixtureKeys', async () => {
    const a = await fixtureNpk({ name: 'fixture-check', key: true, files: { '/etc/hello': 'hello\n' } });
    const b = await fixtureNpk({ name: 'fixture-check', key: true, files: { '/etc/hello': 'hello\n' } });
    const c = await fixtureNpk({ name: 'fixture-check', key: true, files: { '/etc/hello': 'other\n' } });
    assert.equal(a, b);
    assert.notEqual(a, c);
    const npk = await openNpk(a, { key: (await fixtureKeys()).publicKey });
    try {
      assert.equal(npk.manifest.init, '/probe');
      const ll = execFileSync('unsquashfs', ['-ll', '-o', String(npk.fsImgOffset), a]).toString();
      assert.match(ll, /^-rwxr-xr-x .* squashfs-root\/probe$/m);
      assert.match(ll, /squashfs-root\/etc\/hello$/m);
    } finally {
      closeNpk(npk);
    }
  });
});

function hasXattrTool(): boolean {
  for (const [cmd, args] of [['getfattr', ['--version']], ['python3', ['-c', 'import os; os.getxattr']]] as const) {
    try {
      execFileSync(cmd, args, { stdio: 'ignore' });
      return true;
    } catch {
      // try the next tool
    }
  }
  return false;
}

/** security.selinux of a file or link (not followed): getfattr, else python3. */
function readLabel(p: string): string {
  try {
    return execFileSync('getfattr', ['-h', '--only-values', '-n', 'security.selinux', p]).toString().replace(/\0$/, '');
  } catch {
    const script = 'import os,sys; print(os.getxattr(sys.argv[1], "security.selinux", follow_symlinks=False).decode().rstrip("\\0"))';
    return execFileSync('python3', ['-c', script, p]).toString().trim();
  }
}

describe('npk pack -o', privileged({ loop: false, tools: ['mksquashfs'] }), () => {
  test('a directory that does not exist yet is created (for a .npk path: its directory)', async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'npk-out-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const manifestPath = join(dir, 'manifest.yaml');
    writeFileSync(manifestPath, 'name: res\nversion: 0.1.0\nuid: 1000\ngid: 1000\n');
    const out = join(dir, 'fresh', 'out') + '/';
    const r = await cli('pack', '-m', manifestPath, '-o', out);
    assert.equal(r.code, 0, r.out);
    assert.deepEqual(readdirSync(out), ['res-0.1.0.npk']);
    const file = join(dir, 'fresh2', 'sub', 'mine.npk');
    assert.equal((await cli('pack', '-m', manifestPath, '-o', file)).code, 0);
    assert.ok(existsSync(file));
  });
});
