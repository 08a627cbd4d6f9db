import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { canonicalVersionReq, maxSatisfyingReq, satisfiesReq, versionReqRange, VersionReqError } from '../../src/model/version-req.js';

describe('Rust semver version requirements', () => {
  it('reads a bare version as caret, like the Rust semver crate', () => {
    assert.equal(canonicalVersionReq('1.2.3'), '^1.2.3');
    assert.equal(satisfiesReq('1.9.0', '1.2.3'), true);
    assert.equal(satisfiesReq('2.0.0', '1.2.3'), false);
    assert.equal(satisfiesReq('0.0.4', '0.0.3'), false);
  });

  it('reads comma-separated comparators', () => {
    assert.equal(canonicalVersionReq('>= 1.0.0 ,<2.0.0'), '>=1.0.0, <2.0.0');
    assert.equal(versionReqRange('>=1.0.0, <2.0.0'), '>=1.0.0 <2.0.0');
    assert.equal(satisfiesReq('1.5.0', '>=1.0.0, <2.0.0'), true);
    assert.equal(satisfiesReq('2.0.0', '>=1.0.0, <2.0.0'), false);
  });

  it('keeps operators, partial versions and wildcards', () => {
    assert.equal(canonicalVersionReq('>=0.0.1'), '>=0.0.1');
    assert.equal(canonicalVersionReq('~1.2'), '~1.2');
    assert.equal(canonicalVersionReq('=1.2'), '=1.2');
    assert.equal(canonicalVersionReq('1.x'), '1.*');
    assert.equal(canonicalVersionReq('*'), '*');
    assert.equal(satisfiesReq('1.2.9', '=1.2'), true);
    assert.equal(satisfiesReq('5.0.0', '*'), true);
  });

  it('picks the highest satisfying version (spec/README.md deviation 1)', () => {
    assert.equal(maxSatisfyingReq(['0.0.1', '0.0.2', '0.0.3'], '>=0.0.2'), '0.0.3');
    assert.equal(maxSatisfyingReq(['0.0.1'], '>=0.0.2'), null);
  });

  it('refuses node-only syntax and garbage', () => {
    for (const r of ['', '1.0.0 || 2.0.0', '1.0.0 - 2.0.0', 'latest', '>=', 'v1.0.0', '>=1.0.0,']) {
      assert.throws(() => canonicalVersionReq(r), VersionReqError, r);
    }
  });
});
