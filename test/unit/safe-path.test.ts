import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { checkComponent, child, componentProblem, PathError, within } from '../../src/model/safe-path.js';

describe('checkComponent', () => {
  it('accepts ordinary names, also ones that start with dots', () => {
    for (const n of ['hello', 'hello:0.0.1', '...', '.hidden', '..x', 'a b', '__proto__']) assert.equal(checkComponent(n), n);
  });

  it('refuses empty, ".", "..", a slash and NUL, naming what and why', () => {
    assert.throws(() => checkComponent('', 'socket name'), /invalid socket name "": must not be empty/);
    assert.throws(() => checkComponent('.'), /must not be "\."/);
    assert.throws(() => checkComponent('..', 'container name'), /invalid container name "\.\.": must not be "\.\."/);
    assert.throws(() => checkComponent('x/../../../victim'), /must not contain '\/'/);
    assert.throws(() => checkComponent('/'), PathError);
    assert.throws(() => checkComponent('a\0b'), /NUL/);
  });

  it('componentProblem answers without throwing', () => {
    assert.equal(componentProblem('ok'), undefined);
    assert.match(componentProblem('..')!, /\.\./);
  });
});

describe('within', () => {
  it('joins below the base, absolute parts taken relative to it', () => {
    assert.equal(within('/run/nstar', 'res:0.0.1', '/share/x'), '/run/nstar/res:0.0.1/share/x');
    assert.equal(within('/run/nstar/res:0.0.1', '/'), '/run/nstar/res:0.0.1/');
    assert.equal(within('/data', 'a/../b'), '/data/b');
  });

  it('refuses any result outside the base', () => {
    assert.throws(() => within('/var/lib/northstar/data', '..'), /leaves \/var\/lib\/northstar\/data/);
    assert.throws(() => within('/run/nstar/res:0.0.1', '/../../tmp/x'), PathError);
    assert.throws(() => within('/run/netns', '../../proc/1/ns/net'), PathError);
    assert.throws(() => within('/data', 'a', '../../..'), PathError);
  });

  it('does not take a sibling with the same prefix for the base', () => {
    assert.throws(() => within('/data', '../data2/x'), PathError);
  });

  it('refuses NUL in any part', () => {
    assert.throws(() => within('/data', 'a\0'), /NUL/);
  });
});

describe('child', () => {
  it('is one component below the base', () => {
    assert.equal(child('/data', 'hello'), '/data/hello');
  });

  it('never is the base itself or its parent', () => {
    assert.throws(() => child('/data', '.'), PathError);
    assert.throws(() => child('/data', '..'), PathError);
    assert.throws(() => child('/data', ''), PathError);
    assert.throws(() => child('/sockets', 'c:0.0.1:x/../../../victim', 'socket file name'), /invalid socket file name/);
  });
});
