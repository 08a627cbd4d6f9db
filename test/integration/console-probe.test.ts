// Container consoles through the probe's `console` subcommand (issue 10):
// a probe with console permissions [ident, list] gets answers to those and
// permission_denied for what it lacks; a token created by one probe verifies
// in another (spec/behaviours.md, console example behaviours).
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';

import { privileged } from './privileged.js';
import { captureOutput, probe } from './runtime-checks.js';
import { startRuntime } from './runtime-harness.js';

const CONNECT = JSON.stringify({ connect: { version: '0.9.3', subscribe_notifications: false } });
const req = (r: unknown) => JSON.stringify({ request: r });
const SHARED = Buffer.from('hello!').toString('base64');

function consoleProbe(name: string, permissions: string[]) {
  return probe(name, { manifest: { console: { permissions }, args: ['console', CONNECT] } });
}

/** The reply lines ("console: <json>") a probe printed, parsed. */
async function replies(out: ReturnType<typeof captureOutput>, c: string, count: number): Promise<unknown[]> {
  await out.waitFor(c, /^console: /, 20_000, count);
  return out
    .of(c)
    .filter((l) => l.startsWith('console: '))
    .map((l) => JSON.parse(l.slice('console: '.length)));
}

describe('container console via the probe', privileged({ cgroups: true }), () => {
  test('a probe is answered what its permissions allow and refused the rest', async (t) => {
    const npk = await consoleProbe('cprobe', ['ident', 'list']);
    const h = await startRuntime(t, { repositories: { default: { npks: [npk], key: true } } });
    const out = captureOutput(t);
    await h.client.start('cprobe:0.0.1', { args: ['console', CONNECT, req('ident'), req('list'), req('repositories')] });
    const r = await replies(out, 'cprobe:0.0.1', 4);
    assert.deepEqual(r[0], { connect_ack: null });
    assert.deepEqual(r[1], { response: { ident: 'cprobe:0.0.1' } });
    assert.deepEqual(r[2], { response: { list: ['cprobe:0.0.1'] } });
    assert.deepEqual(r[3], { response: { permission_denied: 'repositories' } });
  });

  test('a token created by one probe verifies in another, and not for another user', async (t) => {
    const creator = await consoleProbe('creator', ['ident', 'token_create']);
    const verifier = await consoleProbe('verifier', ['ident', 'token_verification']);
    const h = await startRuntime(t, { repositories: { default: { npks: [creator, verifier], key: true } } });
    const out = captureOutput(t);
    await h.client.start('creator:0.0.1', {
      args: ['console', CONNECT, req({ token_create: { target: 'verifier', shared: SHARED } })],
    });
    const created = (await replies(out, 'creator:0.0.1', 2))[1] as { response: { token: string } };
    const token = created.response.token;
    assert.match(token, /^[A-Za-z0-9+/]{54}==$/);
    await h.client.start('verifier:0.0.1', {
      args: [
        'console',
        CONNECT,
        req({ token_verify: { token, user: 'creator', shared: SHARED } }),
        req({ token_verify: { token, user: 'someone-else', shared: SHARED } }),
      ],
    });
    const r = await replies(out, 'verifier:0.0.1', 3);
    assert.deepEqual(r[1], { response: { token_verification: 'Ok' } });
    assert.deepEqual(r[2], { response: { token_verification: 'Invalid' } });
  });
});
