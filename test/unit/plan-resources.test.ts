// Resource resolution and the paths a launch spec is built from (plan.ts).
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { launchSpec, persistPath, resolveResources, runRoot } from '../../src/machines/plan.js';
import { parseManifest } from '../../src/model/manifest.js';
import { PathError } from '../../src/model/safe-path.js';

const app = parseManifest(
  JSON.stringify({
    name: 'app', version: '0.0.1', init: '/probe', uid: 1000, gid: 1000,
    mounts: { '/res': { type: 'resource', name: 'shared-res', version: '>=0.0.1', dir: '/' } },
  }),
);

const candidates = [
  { id: 'shared-res:9.0.0', keyed: false },
  { id: 'shared-res:0.0.1', keyed: true },
  { id: 'other:1.0.0', keyed: true },
];

describe('resource resolution', () => {
  it('an unkeyed container takes the highest matching version, signed or not', () => {
    const r = resolveResources('app:0.0.1', app, candidates, false);
    assert.ok(r.ok);
    assert.equal(r.value[0]!.container, 'shared-res:9.0.0');
  });

  it('a keyed container takes the highest matching version from keyed repositories only', () => {
    const r = resolveResources('app:0.0.1', app, candidates, true);
    assert.ok(r.ok);
    assert.equal(r.value[0]!.container, 'shared-res:0.0.1');
  });

  it('with only unsigned candidates a keyed container fails with start_container_missing_resource saying why', () => {
    const r = resolveResources('app:0.0.1', app, [{ id: 'shared-res:9.0.0', keyed: false }], true);
    assert.ok(!r.ok);
    assert.equal(r.error.code, 'start_container_missing_resource');
    assert.deepEqual(r.error.toWire(), {
      start_container_missing_resource: {
        container: 'app:0.0.1',
        resource: 'shared-res',
        version: '>=0.0.1 from a keyed repository (unsigned shared-res:9.0.0 not used)',
      },
    });
    assert.match(r.error.message, /resource shared-res version >=0.0.1 from a keyed repository \(unsigned shared-res:9\.0\.0 not used\) is missing/);
  });

  it('with no candidate at all the error is Northstar\'s', () => {
    const r = resolveResources('app:0.0.1', app, [], true);
    assert.ok(!r.ok);
    assert.deepEqual(r.error.toWire(), {
      start_container_missing_resource: { container: 'app:0.0.1', resource: 'shared-res', version: '>=0.0.1' },
    });
  });
});

describe('paths built from names', () => {
  it('run root and persist dir are one component below their base', () => {
    assert.equal(runRoot('/run/nstar', 'app:0.0.1'), '/run/nstar/app:0.0.1');
    assert.equal(persistPath('/data', 'app'), '/data/app');
    assert.throws(() => persistPath('/data', '..'), PathError);
    assert.throws(() => persistPath('/data', '.'), PathError);
    assert.throws(() => runRoot('/run/nstar', '../x'), PathError);
  });

  it('a resource dir never leaves the resource\'s root, even when a manifest object skipped validation', () => {
    const dirs = { runDir: '/run/nstar', dataDir: '/data', socketDir: '/sockets' };
    const ok = launchSpec(app, '/probe', [], {}, [{ target: '/res', container: 'shared-res:0.0.1', dir: '/share' }], dirs);
    assert.equal(ok.resources['/res'], '/run/nstar/shared-res:0.0.1/share');
    assert.throws(
      () => launchSpec(app, '/probe', [], {}, [{ target: '/res', container: 'shared-res:0.0.1', dir: '/../../tmp/x' }], dirs),
      /leaves \/run\/nstar\/shared-res:0\.0\.1/,
    );
  });
});

describe('network namespace names at start', () => {
  it('a name that would leave /run/netns fails the launch spec, even when a manifest object skipped validation', () => {
    const dirs = { runDir: '/run/nstar', dataDir: '/data', socketDir: '/sockets' };
    const m = { ...app, mounts: {}, network: { namespace: '../../proc/1/ns/net' } };
    assert.throws(() => launchSpec(m, '/probe', [], {}, [], dirs), /invalid network namespace name/);
    assert.equal(launchSpec({ ...m, network: { namespace: 'blue' } }, '/probe', [], {}, [], dirs).container, 'app:0.0.1');
  });
});
