import assert from 'node:assert/strict';
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it, type TestContext } from 'node:test';

import { checkDir, makeDir, prepareDirs, runtimeDirs, type RuntimeDir } from '../../src/actors/runtime-dirs.js';
import { EMBEDDED_DEFAULT_CONFIG, parseConfig } from '../../src/model/config.js';

const mode = (p: string) => statSync(p).mode & 0o7777;

function tempDir(t: TestContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'nstar-dirs-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** Runs fn under `mask`, restoring the test process's umask after. */
function withUmask<T>(mask: number, fn: () => T): T {
  const old = process.umask(mask);
  try {
    return fn();
  } finally {
    process.umask(old);
  }
}

const repo = (path: string): RuntimeDir => ({ path, mode: 0o700, what: 'repository default', risk: 'could replace the NPKs the runtime mounts', files: true });

describe('runtimeDirs', () => {
  it('gives each directory of the embedded default its mode', () => {
    assert.deepEqual(
      runtimeDirs(parseConfig(EMBEDDED_DEFAULT_CONFIG)).map((d) => [d.what, d.path, d.mode.toString(8), d.files ?? false]),
      [
        ['run_dir', '/run/northstar', '711', false],
        ['data_dir', '/var/lib/northstar/data', '700', false],
        ['socket_dir', '/run/northstar/sockets', '755', false],
        ['repository default', '/var/lib/northstar/repository', '700', true],
        ['the console socket directory', '/run/northstar', '711', false],
      ],
    );
  });
});

describe('makeDir', () => {
  for (const mask of [0o000, 0o277]) {
    it(`sets the modes itself under umask ${mask.toString(8).padStart(3, '0')}: the dir its own, new parents 0755`, (t) => {
      const dir = tempDir(t);
      const target = join(dir, 'a', 'b', 'repository');
      withUmask(mask, () => makeDir(target, 0o700));
      assert.equal(mode(target), 0o700);
      assert.equal(mode(join(dir, 'a')), 0o755);
      assert.equal(mode(join(dir, 'a', 'b')), 0o755);
    });
  }

  it('leaves an existing directory as it is', (t) => {
    const dir = tempDir(t);
    chmodSync(dir, 0o750);
    makeDir(dir, 0o700);
    assert.equal(mode(dir), 0o750);
  });
});

describe('prepareDirs', () => {
  it('makes socket_dir inside run_dir with its own mode, whatever the umask', (t) => {
    const dir = tempDir(t);
    const config = parseConfig(`run_dir = "${dir}/run"
data_dir = "${dir}/lib/data"
socket_dir = "${dir}/run/sockets"
cgroup = "x"
[console.global]
bind = "unix://${dir}/run/console"
permissions = "full"
[repositories.default]
type = { fs = { dir = "${dir}/lib/repository" } }
[repositories.m]
type = "mem"
`);
    withUmask(0o000, () => prepareDirs(config));
    assert.deepEqual(
      ['run', 'run/sockets', 'lib', 'lib/data', 'lib/repository'].map((p) => [p, mode(join(dir, p)).toString(8)]),
      [['run', '711'], ['run/sockets', '755'], ['lib', '755'], ['lib/data', '700'], ['lib/repository', '700']],
    );
  });
});

describe('checkDir', () => {
  it('accepts a root-only directory below /tmp (sticky, owned by root)', (t) => {
    const dir = tempDir(t);
    chmodSync(dir, 0o755);
    checkDir(repo(dir));
  });

  const refusals: [string, number, RegExp][] = [
    ['writable by anyone', 0o777, /writable by anyone \(mode 0777\)/],
    ['writable by its group', 0o775, /writable by its group \(mode 0775\)/],
    ['sticky but writable by anyone', 0o1777, /writable by anyone \(mode 1777\)/],
  ];
  for (const [what, m, rule] of refusals) {
    it(`refuses a directory ${what}, naming it and saying why`, (t) => {
      const dir = join(tempDir(t), 'repository');
      mkdirSync(dir);
      chmodSync(dir, m);
      assert.throws(() => checkDir(repo(dir)), (e: Error) => {
        assert.ok(e.message.startsWith(`repository default ${dir}: `), e.message);
        assert.match(e.message, rule);
        assert.match(e.message, /whoever can write there could replace the NPKs the runtime mounts/);
        assert.match(e.message, new RegExp(`chmod go-w ${dir}`));
        return true;
      });
    });
  }

  it('refuses a directory below a parent others can write to, naming the parent', (t) => {
    const parent = tempDir(t);
    const dir = join(parent, 'repository');
    mkdirSync(dir, { mode: 0o700 });
    chmodSync(parent, 0o777);
    assert.throws(() => checkDir(repo(dir)), new RegExp(`repository default ${dir}: writable by anyone \\(its parent ${parent}\\) \\(mode 0777\\)`));
  });

  it('refuses a repository holding an NPK others can write to, naming the file', (t) => {
    const dir = tempDir(t);
    writeFileSync(join(dir, 'good.npk'), '', { mode: 0o644 });
    writeFileSync(join(dir, 'bad.npk'), '');
    chmodSync(join(dir, 'bad.npk'), 0o666);
    assert.throws(() => checkDir(repo(dir)), new RegExp(`repository default ${dir}: writable by anyone \\(its file bad.npk\\) \\(mode 0666\\).*chmod go-w ${join(dir, 'bad.npk')}`));
    checkDir({ ...repo(dir), files: false });
  });

  it('follows a symlink and checks the real directory', (t) => {
    const base = tempDir(t);
    const real = join(base, 'real');
    mkdirSync(real);
    chmodSync(real, 0o777);
    symlinkSync(real, join(base, 'link'));
    assert.throws(() => checkDir(repo(join(base, 'link'))), new RegExp(`its real path ${real}\\) \\(mode 0777\\)`));
  });

  it('refuses a file where a directory belongs', (t) => {
    const file = join(tempDir(t), 'repository');
    writeFileSync(file, '');
    assert.throws(() => checkDir(repo(file)), new RegExp(`repository default ${file}: is not a directory`));
  });

  it('refuses a directory owned by another uid', { skip: process.getuid?.() === 0 ? undefined : 'chown needs root' }, (t) => {
    const dir = join(tempDir(t), 'repository');
    mkdirSync(dir, { mode: 0o700 });
    chownSync(dir, 4321, 0);
    assert.throws(() => checkDir(repo(dir)), new RegExp(`repository default ${dir}: owned by uid 4321, not by root`));
  });
});
