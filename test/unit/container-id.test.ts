import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  checkName, checkVersionReq, compareVersions, containerId, IdError, parseContainerId, parseVersion,
} from '../../src/model/container-id.js';

describe('container names', () => {
  it('accepts [0-9A-Za-z._-] with length 1..=1024', () => {
    for (const n of ['hello-world', 'a', 'bla-blah.foo', 'A_b.C-9', 'x'.repeat(1024)]) assert.equal(checkName(n), n);
  });

  it('refuses empty, too long, and names with / : space or non-ASCII', () => {
    assert.throws(() => checkName(''), /length must be 1..=1024/);
    assert.throws(() => checkName('x'.repeat(1025)), /length must be 1..=1024/);
    for (const n of ['a/b', 'a:b', 'a b', 'ünï', 'a\0b']) assert.throws(() => checkName(n), IdError, n);
  });
});

describe('versions', () => {
  it('keeps only major.minor.patch', () => {
    assert.equal(parseVersion('0.0.1'), '0.0.1');
    assert.equal(parseVersion('1.2.3-alpha.1+build.5'), '1.2.3');
    assert.equal(parseVersion(' 1.0.0 '), '1.0.0');
  });

  it('refuses versions that are not major.minor.patch', () => {
    for (const v of ['1.0', '1', 'one', '', '1.0.0.0']) assert.throws(() => parseVersion(v), /invalid version/, v);
  });

  it('orders by major, minor, patch', () => {
    const sorted = ['0.0.10', '0.0.2', '1.0.0', '0.1.0'].sort(compareVersions);
    assert.deepEqual(sorted, ['0.0.2', '0.0.10', '0.1.0', '1.0.0']);
  });

  it('checks version requirements', () => {
    assert.equal(checkVersionReq('>=0.0.1'), '>=0.0.1');
    assert.throws(() => checkVersionReq('not a req'), /invalid version requirement/);
  });
});

describe('container ids', () => {
  it('splits name:version on the first colon', () => {
    assert.deepEqual(parseContainerId('hello-world:0.0.1'), { name: 'hello-world', version: '0.0.1' });
    assert.equal(containerId('hello-world', '0.0.1'), 'hello-world:0.0.1');
  });

  it('refuses "foo:0.0.1:default", a missing version and a missing colon', () => {
    assert.throws(() => parseContainerId('foo:0.0.1:default'), IdError);
    assert.throws(() => parseContainerId('foo:'), /invalid version/);
    assert.throws(() => parseContainerId('foo'), /expected <name>:<version>/);
    assert.throws(() => parseContainerId(':0.0.1'), /invalid name/);
  });
});
