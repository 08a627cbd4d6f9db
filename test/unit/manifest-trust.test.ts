// The manifest rules that keep names and paths from outside input inside
// their directories (deviation 19 and issue 16): names, socket names, netns
// names, mount targets, resource dirs, YAML aliases, unknown syscalls.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { ManifestError, parseManifest, type Manifest } from '../../src/model/manifest.js';
import { manifestWarnings } from '../../src/model/manifest-warnings.js';
import { MAX_DOCUMENT_BYTES } from '../../src/model/manifest-document.js';
import { packNpk } from '../../src/packer/pack.js';

const BASE = { version: '0.0.1', init: '/probe', uid: 1000, gid: 1000 };

function parse(fields: Record<string, unknown>): Manifest {
  return parseManifest(JSON.stringify({ name: 'app', ...BASE, ...fields }));
}

function rejects(fields: Record<string, unknown>, field: string, rule: RegExp): void {
  assert.throws(
    () => parse(fields),
    (e: unknown) => {
      assert.ok(e instanceof ManifestError, `expected a ManifestError, got ${String(e)}`);
      assert.equal(e.field, field, `field of "${e.message}"`);
      assert.match(e.message, rule);
      return true;
    },
  );
}

describe('names that would address a parent directory', () => {
  it('refuses the names "." and ".."', () => {
    rejects({ name: '..' }, 'name', /"\." and "\.\." are not allowed/);
    rejects({ name: '.' }, 'name', /"\." and "\.\." are not allowed/);
  });

  it('still takes names that merely contain dots', () => {
    for (const name of ['...', '.app', 'app..x']) assert.equal(parse({ name }).name, name);
  });

  it('refuses a resource named ".."', () => {
    rejects({ init: undefined, mounts: { '/r': { type: 'resource', name: '..', version: '>=0.0.1', dir: '/' } } }, 'mounts./r.name', /not allowed/);
  });
});

describe('socket names', () => {
  const sock = { type: 'stream', mode: 0o600 };
  for (const [name, rule] of [
    ['x/../../../victim', /must not contain '\/'/],
    ['..', /must not be "\.\."/],
    ['.', /must not be "\."/],
    ['', /must not be empty/],
  ] as const) {
    it(`refuses ${JSON.stringify(name)}`, () => rejects({ sockets: { [name]: sock } }, `sockets.${name}`, rule));
  }

  it('refuses NUL (the decoder already does)', () => rejects({ sockets: { 'a\0b': sock } }, 'sockets', /NUL/));

  it('takes an ordinary socket name', () => {
    assert.deepEqual(Object.keys(parse({ sockets: { 'my.sock': sock } }).sockets), ['my.sock']);
  });
});

describe('network namespace names', () => {
  it('refuses a path that climbs out of /run/netns', () => {
    const yaml = `name: app\nversion: 0.0.1\ninit: /probe\nuid: 1000\ngid: 1000\nnetwork: !namespace ../../proc/1/ns/net\n`;
    assert.throws(() => parseManifest(yaml), /network\.namespace: invalid network namespace name "\.\.\/\.\.\/proc\/1\/ns\/net"/);
  });

  it('refuses "..", "." and an empty name', () => {
    for (const ns of ['..', '.', '""']) {
      const yaml = `name: app\nversion: 0.0.1\ninit: /probe\nuid: 1000\ngid: 1000\nnetwork: !namespace ${ns}\n`;
      assert.throws(() => parseManifest(yaml), /network/, ns);
    }
  });

  it('takes a plain name', () => {
    const yaml = `name: app\nversion: 0.0.1\ninit: /probe\nuid: 1000\ngid: 1000\nnetwork: !namespace blue\n`;
    assert.deepEqual(parseManifest(yaml).network, { namespace: 'blue' });
  });
});

describe('mount targets and resource dirs', () => {
  it('refuses a resource dir that climbs out of the resource', () => {
    rejects(
      { mounts: { '/r': { type: 'resource', name: 'res', version: '>=0.0.1', dir: '/../../tmp/x' } } },
      'mounts./r.dir',
      /resource directory must not contain "\.\."/,
    );
  });

  it('refuses relative targets of every mount type at install, not only at start', () => {
    rejects({ mounts: { tmp: { type: 'tmpfs', size: 1024 } } }, 'mounts.tmp', /mount target must be absolute/);
    rejects({ mounts: { 'data': { type: 'persist' } } }, 'mounts.data', /must be absolute/);
  });

  it('refuses ".." in targets of every mount type', () => {
    rejects({ mounts: { '/a/../../etc': { type: 'tmpfs', size: 1024 } } }, 'mounts./a/../../etc', /must not contain "\.\."/);
    rejects({ mounts: { '/../x': { type: 'bind', host: '/tmp', options: '' } } }, 'mounts./../x', /must not contain "\.\."/);
    rejects({ mounts: { '/x/..': { type: 'proc' } } }, 'mounts./x/..', /must not contain "\.\."/);
  });

  it('keeps ordinary targets and dirs', () => {
    const m = parse({
      mounts: {
        '/tmp': { type: 'tmpfs', size: 1024 },
        '/res': { type: 'resource', name: 'res', version: '>=0.0.1', dir: '/share/..data' },
      },
    });
    assert.deepEqual(Object.keys(m.mounts).sort(), ['/res', '/tmp']);
  });
});

describe('YAML alias expansion', () => {
  function bomb(levels: number): string {
    const names = 'abcdefghijk';
    const lines = ['name: bomb', 'version: 0.0.1', 'init: /probe', 'uid: 1000', 'gid: 1000', 'custom:'];
    lines.push(`  a: &a [${Array(9).fill('"lol"').join(', ')}]`);
    for (let i = 1; i < levels; i++) lines.push(`  ${names[i]}: &${names[i]} [${Array(9).fill(`*${names[i - 1]}`).join(', ')}]`);
    return lines.join('\n') + '\n';
  }

  it('refuses a 400-byte alias bomb with an error that says so', () => {
    const text = bomb(10);
    assert.ok(text.length < 600, `${text.length} bytes`);
    assert.throws(() => parseManifest(text), /YAML aliases expand to more than \d+ nodes/);
  });

  it('still resolves aliases of ordinary size', () => {
    const m = parseManifest(bomb(2));
    assert.equal(((m.custom as Record<string, unknown[][]>).b).length, 9);
  });

  it('refuses a document larger than the bound', () => {
    const text = `name: app\nversion: 0.0.1\ninit: /probe\nuid: 1000\ngid: 1000\ncustom: "${'x'.repeat(MAX_DOCUMENT_BYTES)}"\n`;
    assert.throws(() => parseManifest(text), new RegExp(`more than ${MAX_DOCUMENT_BYTES}`));
  });

  it('refuses flow collections nested without end, without parsing them as YAML', () => {
    const text = `name: app\nversion: 0.0.1\ninit: /probe\nuid: 1000\ngid: 1000\ncustom: ${'['.repeat(100_000)}\n`;
    assert.throws(() => parseManifest(text), /YAML: flow collections nested deeper than 512/);
  });

  it('still reads flow collections nested a few levels', () => {
    const m = parseManifest(`name: app\nversion: 0.0.1\ninit: /probe\nuid: 1000\ngid: 1000\ncustom: {a: [[1, {b: [2]}]]}\n`);
    assert.deepEqual(JSON.parse(JSON.stringify(m.custom)), { a: [[1, { b: [2] }]] });
  });
});

describe('unknown syscall names', () => {
  it('are accepted, and named in a warning', () => {
    const m = parse({ seccomp: { allow: { read: 'any', frobnicate: 'any', write: 'any', 'nosuch_call': 'any' } } });
    assert.deepEqual(manifestWarnings(m), ['seccomp.allow: "frobnicate", "nosuch_call" are not syscalls on any architecture we know']);
  });

  it('no warning for known names, also of other architectures', () => {
    assert.deepEqual(manifestWarnings(parse({ seccomp: { allow: { read: 'any', chown32: 'any' } } })), []);
    assert.deepEqual(manifestWarnings(parse({})), []);
  });
});

describe('the packer', () => {
  it('refuses to pack a container named ".."', async () => {
    const text = JSON.stringify({ name: '..', ...BASE });
    await assert.rejects(packNpk({ manifest: text, out: '/nonexistent-dir/x.npk' }), /name: invalid name "\.\.": "\." and "\.\." are not allowed/);
  });

  it('refuses to pack a socket name with a slash', async () => {
    const text = JSON.stringify({ name: 'app', ...BASE, sockets: { 'a/../../b': { type: 'stream', mode: 384 } } });
    await assert.rejects(packNpk({ manifest: text, out: '/nonexistent-dir/x.npk' }), /invalid socket name/);
  });
});
