// The console of the real runtime (spec/behaviours.md §8.3 and the console
// examples of §8.4): version negotiation, the line and NPK size limits, bad
// input, installs of the independent NPK vectors over a raw socket, container
// consoles of the examples, and tokens between two containers.
import assert from 'node:assert/strict';
import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { after, before, describe, test, type TestContext } from 'node:test';
import { fileURLToPath } from 'node:url';

import { Client, ClientError } from '../../src/client/index.js';
import type { LogRecord } from '../../src/log.js';
import { buildExample } from '../../scripts/build-examples.js';
import { RawPeer } from '../unit/console-fake-backend.js';
import { privileged } from './privileged.js';
import { startRuntime } from './runtime-harness.js';

const here = dirname(fileURLToPath(import.meta.url));
const vectors = join(here, '../fixtures/vectors');

/** Log records of the runtime (container output is logged at info with the container as target). */
function logs(t: TestContext) {
  const records: LogRecord[] = [];
  const waiters: { pred: (r: LogRecord) => boolean; resolve: (r: LogRecord) => void }[] = [];
  const on = (m: unknown) => {
    const r = m as LogRecord;
    records.push(r);
    for (const w of waiters.filter((x) => x.pred(r))) {
      waiters.splice(waiters.indexOf(w), 1);
      w.resolve(r);
    }
  };
  subscribe('nstar:log', on);
  t.after(() => unsubscribe('nstar:log', on));
  return {
    records,
    /** The first record (already logged or later) whose message matches. */
    wait(re: RegExp, target?: string): Promise<LogRecord> {
      const pred = (r: LogRecord) => re.test(r.message) && (target === undefined || r.target === target);
      const seen = records.find(pred);
      return seen ? Promise.resolve(seen) : new Promise((resolve) => waiters.push({ pred, resolve }));
    },
  };
}

describe('the runtime console', privileged({ cgroups: true, tools: ['cc'] }), () => {
  let examplesDir = '';
  const examples: Record<string, string> = {};

  before(async () => {
    examplesDir = mkdtempSync(join(tmpdir(), 'nstar-console-examples-'));
    mkdirSync(join(examplesDir, 'out')); // packNpk writes into an existing directory
    for (const name of ['console', 'token-client', 'token-server']) {
      examples[name] = await buildExample(name, join(examplesDir, 'out'), join(examplesDir, 'staging'));
    }
  });
  after(() => rmSync(examplesDir, { recursive: true, force: true }));

  test('version match is acknowledged and list works; a lower minor is refused; a higher patch is accepted', async (t) => {
    const h = await startRuntime(t, { repositories: { mem: { type: 'mem' } } });
    const p = await RawPeer.connect(h.url);
    p.send('{"connect":{"version":"0.9.3","subscribe_notifications":false}}\n{"request":"list"}\n');
    assert.equal(await p.line(), '{"connect_ack":null}');
    assert.equal(await p.line(), '{"response":{"list":[]}}');
    p.close();
    const low = await RawPeer.connect(h.url);
    low.send('{"connect":{"version":"0.8.3","subscribe_notifications":false}}\n');
    assert.deepEqual(await low.closed(), ['{"connect_nack":{"invalid_protocol_version":{"version":"0.9.3"}}}']);
    const higher = await Client.connect(h.url, { version: '0.9.4' });
    assert.deepEqual(await higher.repositories(), ['mem']);
    higher.close();
  });

  test('a request line over 1 MiB and an install over max_npk_install_size close the connection; the runtime serves on', async (t) => {
    const h = await startRuntime(t, { repositories: { mem: { type: 'mem' } } });
    const c = await h.connect();
    const containers = Array.from({ length: 100000 }, (_, i) => `container-${i}:0.0.1`);
    await assert.rejects(c.mount(containers), (e: ClientError) => e.kind === 'closed');
    const p = await RawPeer.connect(h.url);
    await p.handshake();
    p.send('{"request":{"install":{"repository":"mem","size":999999999}}}\n');
    assert.deepEqual(await p.closed(), []);
    for (const junk of [Buffer.from([0xde, 0xad, 0x0a]), '{"request":{"kill":{"container":1}}}\n', '{"request":"format"}\n']) {
      const q = await RawPeer.connect(h.url);
      await q.handshake();
      q.send(junk);
      q.socket.end();
      await q.closed();
    }
    assert.deepEqual(await h.client.list(), [], 'the subscribed client of the harness still works');
  });

  test('the independent NPK vectors install over a raw socket, notify, and uninstall', async (t) => {
    const h = await startRuntime(t, { repositories: { mem: { type: 'mem' } } });
    const p = await RawPeer.connect(h.url);
    await p.handshake();
    for (const f of ['vector-unsigned.npk', 'vector-signed.npk', 'vector-signed-d935-uncompressed.npk']) {
      const bytes = readFileSync(join(vectors, f));
      p.send(`{"request":{"install":{"repository":"mem","size":${bytes.length}}}}\n`);
      p.send(bytes);
      assert.equal(await p.line(), '{"response":{"install":{"ok":{"container":"vector:0.0.1"}}}}', f);
      await h.waitFor((n) => typeof n === 'object' && 'install' in n && n.install === 'vector:0.0.1');
      p.send('{"request":{"inspect":{"container":"vector:0.0.1"}}}\n');
      const inspect = JSON.parse((await p.line())!);
      assert.equal(inspect.response.inspect.ok.data.repository, 'mem', f);
      assert.equal(inspect.response.inspect.ok.data.process, null);
      p.send('{"request":{"uninstall":{"container":"vector:0.0.1","wipe":false}}}\n');
      assert.equal(await p.line(), '{"response":{"uninstall":{"ok":{"container":"vector:0.0.1"}}}}');
      h.notifications.length = 0;
    }
    p.send('{"request":{"install":{"repository":"whooha","size":3}}}\nnpk');
    assert.equal(await p.line(), '{"response":{"install":{"error":{"error":{"invalid_repository":{"repository":"whooha"}}}}}}');
    p.close();
  });

  test('the console example connects with its permissions, is refused repositories, and kills itself', async (t) => {
    const log = logs(t);
    const h = await startRuntime(t, { repositories: { default: { npks: [examples.console!] } } });
    await h.client.start('console:0.0.1');
    await log.wait(/^Container console:0\.0\.1 connected with permissions /);
    const exit = await h.waitFor((n) => typeof n === 'object' && 'exit' in n && n.exit[0] === 'console:0.0.1');
    assert.deepEqual(exit, { exit: ['console:0.0.1', { signalled: { signal: 15 } }] });
    const out = log.records.filter((r) => r.target === 'console:0.0.1').map((r) => r.message);
    assert.ok(out.includes('ident: {"response":{"ident":"console:0.0.1"}}'), out.join('\n'));
    assert.ok(out.includes('repositories: {"response":{"permission_denied":"repositories"}}'), out.join('\n'));
    assert.ok(out.includes('list: {"response":{"list":["console:0.0.1"]}}'), out.join('\n'));
    assert.ok(out.some((l) => l.startsWith('inspect: {"response":{"inspect":{"ok":{"container":"console:0.0.1"')), out.join('\n'));
    assert.ok(out.includes('Killing console:0.0.1 with SIGTERM'), out.join('\n'));
    const [r] = await h.client.umount(['console:0.0.1']);
    assert.deepEqual(r, { ok: { container: 'console:0.0.1' } });
  });

  test('token-client gets a token that token-server verifies through its own console', async (t) => {
    const log = logs(t);
    const h = await startRuntime(t, { repositories: { default: { npks: [examples['token-server']!, examples['token-client']!] } } });
    await h.client.start('token-server:0.0.1');
    await log.wait(/^Listening on /, 'token-server:0.0.1');
    await h.client.start('token-client:0.0.1');
    await log.wait(/^Received: yay!$/, 'token-client:0.0.1');
    const verified = await log.wait(/^Token of token-client: /, 'token-server:0.0.1');
    assert.equal(verified.message, 'Token of token-client: {"response":{"token_verification":"Ok"}}');
    assert.deepEqual(
      await h.waitFor((n) => typeof n === 'object' && 'exit' in n && n.exit[0] === 'token-client:0.0.1'),
      { exit: ['token-client:0.0.1', { exit: { code: 0 } }] },
    );
    await h.client.kill('token-server:0.0.1', 15);
    await h.waitFor((n) => typeof n === 'object' && 'exit' in n && n.exit[0] === 'token-server:0.0.1');
  });

  test('a subscriber gets the shutdown notification before the console closes', async (t) => {
    const h = await startRuntime(t, { repositories: { mem: { type: 'mem' } } });
    await h.stop();
    await h.waitFor((n) => n === 'shutdown');
    await assert.rejects(h.client.list(), (e: ClientError) => e.kind === 'closed');
  });
});
