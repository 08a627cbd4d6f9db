// Container ids and request names from console clients (issue 16): "." and
// ".." are no names, and only our own request decoders decode.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';

import { decodeRequest, ProtocolError } from '../../src/console/protocol.js';

describe('console ids', () => {
  it('refuses container ids named "." or ".."', () => {
    for (const id of ['..:0.0.1', '.:0.0.1']) {
      assert.throws(() => decodeRequest({ start: { container: id, arguments: [], environment: {} } }), ProtocolError, id);
      assert.throws(() => decodeRequest({ uninstall: { container: id, wipe: true } }), ProtocolError, id);
      assert.throws(() => decodeRequest({ mount: { containers: ['ok:0.0.1', id] } }), ProtocolError, id);
    }
  });

  it('still takes names that merely contain dots', () => {
    assert.deepEqual(decodeRequest({ kill: { container: '...:0.0.1', signal: 15 } }), { kill: { container: '...:0.0.1', signal: 15 } });
  });

  it('refuses a token target named ".."', () => {
    assert.throws(() => decodeRequest({ token_create: { target: '..', shared: '' } }), ProtocolError);
  });

  it('Object.prototype members are no requests', () => {
    for (const n of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      assert.throws(() => decodeRequest({ [n]: {} }), /unknown request/, n);
      assert.throws(() => decodeRequest(n), /unknown request/, n);
    }
  });

  it('an environment variable named __proto__ is a variable, not the prototype', () => {
    const r = decodeRequest({ start: { container: 'c:0.0.1', arguments: [], environment: JSON.parse('{"__proto__":"x","A":"b"}') } });
    const env = (r as { start: { environment: Record<string, string> } }).start.environment;
    assert.deepEqual(Object.keys(env), ['__proto__', 'A']);
    assert.equal(Object.getPrototypeOf(env), Object.prototype);
  });
});
