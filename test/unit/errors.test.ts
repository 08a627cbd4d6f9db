import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { errors, exitSuccess, RuntimeError, systemError } from '../../src/model/errors.js';

const C = 'hello:0.0.1';

describe('RuntimeError wire form', () => {
  // spec/repositories.md §7: variant → display text → API error (externally tagged, snake_case).
  // Typed structurally: RuntimeError<'x'> is not assignable to RuntimeError<ErrorCode> on main (FieldsOf of a union is never).
  type AnyRuntimeError = Pick<RuntimeError, 'toWire' | 'message' | 'code' | 'name'>;
  const cases: [AnyRuntimeError, unknown, string][] = [
    [errors.configuration('bad key'), { configuration: { context: 'bad key' } }, 'invalid configuration: bad key'],
    [errors.invalidContainer(C), { invalid_container: { container: C } }, `invalid container ${C}`],
    [errors.invalidArguments('env'), { invalid_arguments: { cause: 'env' } }, 'invalid arguments env'],
    [errors.mountBusy(C), { mount_busy: { container: C } }, `container ${C} cannot be mounted: busy`],
    [errors.umountBusy(C), { umount_busy: { container: C } }, `container ${C} cannot be unmounted: busy`],
    [errors.started(C), { start_container_started: { container: C } }, `container ${C} failed to start: already started`],
    [errors.isResource(C), { start_container_resource: { container: C } }, `container ${C} failed to start: resources failed to mount`],
    [errors.missingResource(C, 'message', '>=0.0.2'), { start_container_missing_resource: { container: C, resource: 'message', version: '>=0.0.2' } },
      `container ${C} failed to start: resource message version >=0.0.2 is missing`],
    [errors.startFailed(C, 'boom'), { start_container_failed: { container: C, error: 'boom' } }, `container ${C} failed to start: boom`],
    [errors.notStarted(C), { stop_container_not_started: { container: C } }, `container ${C} failed to stop`],
    [errors.invalidRepository('mem'), { invalid_repository: { repository: 'mem' } }, 'invalid repository mem'],
    [errors.installDuplicate(C), { install_duplicate: { container: C } }, `failed to install ${C}: already installed`],
    [errors.critical(C, { exit: { code: 1 } }), { critical_container: { container: C, status: { exit: { code: 1 } } } }, `critical container failure: ${C}`],
    [errors.unexpected('disk on fire'), { unexpected: { error: 'disk on fire' } }, 'disk on fire'],
    [new RuntimeError('duplicate_container', { container: C }), { duplicate_container: { container: C } }, `duplicate container ${C}`],
  ];
  for (const [err, wire, message] of cases) {
    const code = Object.keys(wire as object)[0]!;
    it(`maps ${code} to its wire shape and display text`, () => {
      assert.deepEqual(err.toWire(), wire);
      assert.equal(err.message, message);
      assert.equal(err.code, code);
      assert.equal(err.name, 'RuntimeError');
      // The wire form is plain JSON.
      assert.deepEqual(JSON.parse(JSON.stringify(err.toWire())), wire);
    });
  }

  it('names the container when the error is about one', () => {
    assert.equal(errors.started(C).container, C);
    assert.equal(errors.invalidRepository('mem').container, undefined);
  });

  it('keeps the cause and a failed rollback beside the original', () => {
    const cause = new Error('ENOSPC');
    const e = new RuntimeError('start_container_failed', { container: C, error: 'mount' }, { cause, cleanup: new Error('umount failed') });
    assert.equal(e.cause, cause);
    assert.match(String((e.cleanup as Error).message), /umount failed/);
    assert.equal(errors.startFailed(C, 'x', cause).cause, cause);
  });

  it('turns any thrown value into a RuntimeError, unknown ones into unexpected', () => {
    const known = errors.notStarted(C);
    assert.equal(RuntimeError.from(known), known);
    const plain = RuntimeError.from(new Error('kaput'));
    assert.deepEqual(plain.toWire(), { unexpected: { error: 'kaput' } });
    assert.deepEqual(RuntimeError.from('text').toWire(), { unexpected: { error: 'text' } });
  });
});

describe('exit status and system errors', () => {
  it('counts only exit code 0 as success', () => {
    assert.equal(exitSuccess({ exit: { code: 0 } }), true);
    assert.equal(exitSuccess({ exit: { code: 1 } }), false);
    assert.equal(exitSuccess({ signalled: { signal: 9 } }), false);
  });

  it('builds Node-style errors from native error data', () => {
    const e = systemError({ code: 'EBUSY', errno: 16, syscall: 'mount', path: '/x', message: 'mount `/x`: Device or resource busy' });
    assert.equal(e.message, 'mount `/x`: Device or resource busy');
    assert.equal(e.code, 'EBUSY');
    assert.equal(e.errno, 16);
    assert.equal(e.syscall, 'mount');
    assert.equal(e.path, '/x');
    const bare = systemError({ code: 'ENOENT', message: 'no' });
    assert.equal('syscall' in bare, false);
  });
});
