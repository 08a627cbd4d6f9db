// The runtime's console backend (src/runtime-backend.ts) over a fake
// supervisor: wire requests become supervisor requests, answers and
// RuntimeErrors become the wire variants (checked on the raw lines).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { ConsoleServer } from '../../src/console/server.js';
import type { Supervisor } from '../../src/machines/supervisor.js';
import { consoleBackend } from '../../src/runtime-backend.js';
import type { Notification, Request, RequestEvent } from '../../src/machines/requests.js';
import { errors } from '../../src/model/errors.js';
import { parseManifest } from '../../src/model/manifest.js';
import { RawPeer } from './console-fake-backend.js';

const manifest = parseManifest('name: hello\nversion: 0.0.1\ninit: /hello\nuid: 1000\ngid: 1000\n');

function fakeSupervisor() {
  const asked: Request[] = [];
  const sinks = new Set<(n: Notification) => void>();
  const ask = async (r: Request): Promise<unknown> => {
    asked.push(r);
    const answer = (): unknown => {
      switch (r.type) {
        case 'list':
          return ['hello:0.0.1'];
        case 'repositories':
          return ['mem'];
        case 'mount':
          return [
            { container: 'hello:0.0.1', ok: true },
            { container: 'nope:0.0.1', ok: false, error: errors.invalidContainer('nope:0.0.1') },
          ];
        case 'start':
          if (r.container !== 'hello:0.0.1') throw errors.invalidContainer(r.container);
          return undefined;
        case 'kill':
          throw errors.notStarted(r.container);
        case 'stop':
          return { signalled: { signal: 9 } };
        case 'install':
          return (async () => {
            let n = 0;
            for await (const c of r.data) n += c.length;
            if (r.repository !== 'mem') throw errors.invalidRepository(r.repository);
            return `installed-${n}:0.0.1`;
          })();
        case 'inspect':
          return {
            container: r.container,
            manifest,
            repository: 'mem',
            mounted: true,
            // A pid above PID_MAX_LIMIT: no such process, so inspect finds no network namespace.
            process: { pid: 4194305, uptime: 7, statistics: null },
            state: 'started.running',
            startup: { total: 3.5 },
          };
        case 'exec':
          return { pid: 77, exited: Promise.resolve({ exit: { code: 3 } }) };
        case 'shutdown':
          return undefined;
        default:
          throw new Error('boom');
      }
    };
    return answer();
  };
  // Just what request() and consoleBackend use of the actor: send and on.
  const actor = {
    send(ev: RequestEvent) {
      ask(ev.request).then(
        (value) => ev.reply({ ok: true, value } as never),
        (error) => ev.reply({ ok: false, error } as never),
      );
    },
    on(_type: 'notification', cb: (e: { type: 'notification'; notification: Notification }) => void) {
      const sink = (notification: Notification) => cb({ type: 'notification', notification });
      sinks.add(sink);
      return { unsubscribe: () => sinks.delete(sink) };
    },
  };
  return { supervisor: actor as unknown as Supervisor, asked, emit: (n: Notification) => sinks.forEach((s) => s(n)) };
}

test('wire requests reach the supervisor and its answers come back in wire shape', async (t) => {
  const sup = fakeSupervisor();
  let shutdowns = 0;
  const server = new ConsoleServer(consoleBackend(sup.supervisor, () => shutdowns++));
  t.after(() => server.close());
  const url = await server.listen('tcp://127.0.0.1:0', 'full');
  const p = await RawPeer.connect(url);
  await p.handshake(true);
  const exchange: [string, string][] = [
    ['{"request":"list"}', '{"response":{"list":["hello:0.0.1"]}}'],
    ['{"request":"repositories"}', '{"response":{"repositories":["mem"]}}'],
    [
      '{"request":{"mount":{"containers":["hello:0.0.1","nope:0.0.1"]}}}',
      '{"response":{"mount":[{"ok":{"container":"hello:0.0.1"}},{"error":{"container":"nope:0.0.1","error":{"invalid_container":{"container":"nope:0.0.1"}}}}]}}',
    ],
    ['{"request":{"start":{"container":"hello:0.0.1","init":null,"arguments":[],"environment":{}}}}', '{"response":{"start":{"ok":{"container":"hello:0.0.1"}}}}'],
    [
      '{"request":{"start":{"container":"x:0.0.1","init":null,"arguments":[],"environment":{}}}}',
      '{"response":{"start":{"error":{"container":"x:0.0.1","error":{"invalid_container":{"container":"x:0.0.1"}}}}}}',
    ],
    [
      '{"request":{"kill":{"container":"hello:0.0.1","signal":15}}}',
      '{"response":{"kill":{"error":{"container":"hello:0.0.1","error":{"stop_container_not_started":{"container":"hello:0.0.1"}}}}}}',
    ],
    ['{"request":{"stop":{"container":"hello:0.0.1","grace_ms":500}}}', '{"response":{"stop":{"ok":{"container":"hello:0.0.1"}}}}'],
    [
      '{"request":{"inspect":{"container":"hello:0.0.1","statistics":["cpu","memory"]}}}',
      '{"response":{"inspect":{"ok":{"container":"hello:0.0.1","data":{"manifest":{"name":"hello","version":"0.0.1","init":"/hello","uid":1000,"gid":1000},"repository":"mem","mounted":true,"process":{"pid":4194305,"uptime":7,"statistics":{}},"startup":{"total":3.5},"state":"started.running","network":null}}}}}',
    ],
    [
      '{"request":{"exec":{"container":"hello:0.0.1","path":"/bin/x","arguments":["a"],"environment":{},"wait":true}}}',
      '{"response":{"exec":{"ok":{"container":"hello:0.0.1","pid":77,"status":{"exit":{"code":3}}}}}}',
    ],
    [
      '{"request":{"pause":{"container":"hello:0.0.1"}}}',
      '{"response":{"pause":{"error":{"container":"hello:0.0.1","error":{"unexpected":{"error":"boom"}}}}}}',
    ],
  ];
  for (const [q, a] of exchange) {
    p.send(q + '\n');
    assert.equal(await p.line(), a, q);
  }
  p.send('{"request":{"install":{"repository":"mem","size":4}}}\nabcd');
  assert.equal(await p.line(), '{"response":{"install":{"ok":{"container":"installed-4:0.0.1"}}}}');
  p.send('{"request":{"install":{"repository":"fs","size":2}}}\nxy');
  assert.equal(await p.line(), '{"response":{"install":{"error":{"error":{"invalid_repository":{"repository":"fs"}}}}}}');
  sup.emit({ type: 'exit', container: 'hello:0.0.1', status: { exit: { code: 0 } } });
  assert.equal(await p.line(), '{"notification":{"exit":["hello:0.0.1",{"exit":{"code":0}}]}}');
  assert.deepEqual(sup.asked.find((r) => r.type === 'stop'), { type: 'stop', container: 'hello:0.0.1', graceMs: 500 });
  assert.deepEqual(sup.asked.find((r) => r.type === 'exec'), { type: 'exec', container: 'hello:0.0.1', path: '/bin/x', args: ['a'], env: {} });
  p.send('{"request":"shutdown"}\n');
  assert.equal(await p.line(), '{"response":"shutdown"}');
  assert.equal(shutdowns, 1, 'the runtime was asked to shut down');
  p.close();
});
