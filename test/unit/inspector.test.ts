// The inspector's parts without a browser: machine graphs, chart layout,
// Mermaid, event recording, and the HTTP/SSE server on a loopback port.
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect } from 'node:net';
import { describe, test } from 'node:test';
import { createActor, fromCallback, fromPromise, setup, waitFor } from 'xstate';
import { chartEdges, chartMermaid, chartSvg, elkBundlePath, layoutChart, type ElkNode } from '../../src/inspector/chart.js';
import { activePaths, eventLabel, leafPaths, machineGraph } from '../../src/inspector/graph.js';
import { exportChart, runtimeMachine } from '../../src/inspector/export.js';
import { parseBind, startInspector } from '../../src/inspector/inspector.js';
import { Recorder, type Change } from '../../src/inspector/recorder.js';
import { REDACTED, redact } from '../../src/inspector/redact.js';
import { ConfigError, parseConfig } from '../../src/model/config.js';
import { insertBySeq, readRecording, parseJsonLines, sortActors } from '../../src/inspector/page/events.js';

const machine = setup({
  actors: { mount: fromPromise(async () => 'ok'), process: fromCallback(() => () => undefined) },
  guards: { critical: () => false },
}).createMachine({
  id: 'container',
  initial: 'installed',
  states: {
    installed: { on: { mount: 'mounting' } },
    mounting: { invoke: { src: 'mount', onDone: 'mounted', onError: 'installed' } },
    mounted: { on: { start: 'starting', umount: 'installed' } },
    starting: { after: { 5000: 'mounted' }, on: { started: 'running' } },
    running: {
      invoke: { src: 'process' },
      initial: 'active',
      states: { active: { on: { pause: 'paused' } }, paused: { on: { resume: 'active' } } },
      on: { exit: [{ target: 'failed', guard: 'critical' }, { target: 'mounted' }] },
    },
    failed: { type: 'final' },
  },
});

const tick = () => new Promise((r) => setImmediate(r));

describe('machine graph', () => {
  test('lists every state by path with its type, parent and initial child', () => {
    const g = machineGraph(machine);
    assert.equal(g.id, 'container');
    const byPath = new Map(g.states.map((s) => [s.path, s]));
    assert.deepEqual([...byPath.keys()], ['', 'installed', 'mounting', 'mounted', 'starting', 'running', 'running.active', 'running.paused', 'failed']);
    assert.equal(byPath.get('')!.initial, 'installed');
    assert.equal(byPath.get('running')!.type, 'compound');
    assert.equal(byPath.get('running')!.initial, 'running.active');
    assert.equal(byPath.get('running.paused')!.parent, 'running');
    assert.equal(byPath.get('failed')!.type, 'final');
    assert.deepEqual(byPath.get('mounting')!.invokes, ['mount']);
  });

  test('labels transitions readably: delays, invoked actors, guards', () => {
    const g = machineGraph(machine);
    const find = (source: string, target: string) => g.transitions.filter((t) => t.source === source && t.target === target);
    assert.deepEqual(find('starting', 'mounted'), [{ source: 'starting', target: 'mounted', event: 'after 5000ms' }]);
    assert.equal(find('mounting', 'mounted')[0].event, 'done: mount');
    assert.equal(find('mounting', 'installed')[0].event, 'error: mount');
    assert.deepEqual(find('running', 'failed'), [{ source: 'running', target: 'failed', event: 'exit', guard: 'critical' }]);
    assert.equal(find('running.paused', 'running.active')[0].event, 'resume');
    assert.equal(eventLabel(''), 'always');
    assert.equal(eventLabel('xstate.after.grace.container.started.stopping'), 'after grace');
  });

  test('snapshot values become leaf paths and active paths', () => {
    assert.deepEqual(leafPaths('mounted'), ['mounted']);
    assert.deepEqual(leafPaths({ running: 'paused' }), ['running.paused']);
    assert.deepEqual(leafPaths({ a: { b: 'c' }, d: 'e' }), ['a.b.c', 'd.e']);
    assert.deepEqual(activePaths(['running.paused']), ['running', 'running.paused']);
  });
});

interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** Absolute boxes of every state node in ELK's layout (the page draws the same). */
function boxesOf(laid: ElkNode): Map<string, Box> {
  const out = new Map<string, Box>();
  const walk = (n: ElkNode) => {
    if (n.id.startsWith('s:')) out.set(n.id.slice(2), { x: n.x!, y: n.y!, w: n.width!, h: n.height! });
    (n.children ?? []).forEach(walk);
  };
  walk(laid);
  return out;
}

describe('chart', () => {
  const inside = (a: Box, b: Box) => a.x >= b.x && a.y >= b.y && a.x + a.w <= b.x + b.w && a.y + a.h <= b.y + b.h;
  const overlap = (a: Box, b: Box) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;

  for (const name of ['test machine', 'container', 'supervisor']) {
    test(`ELK lays out the ${name} chart in a worker: every state inside its parent, siblings apart`, async () => {
      const m = name === 'test machine' ? machine : await runtimeMachine(name);
      const g = machineGraph(m);
      const laid = await layoutChart(g);
      const boxes = boxesOf(laid);
      for (const s of g.states) {
        const b = boxes.get(s.path)!;
        assert.ok(b && b.w > 0 && b.h > 0 && b.x + b.w <= laid.width! && b.y + b.h <= laid.height!, `${s.path} within the chart`);
        if (s.parent !== null) assert.ok(inside(b, boxes.get(s.parent)!), `${s.path} inside ${s.parent}`);
        for (const c of s.children) for (const d of s.children) if (c < d) assert.ok(!overlap(boxes.get(c)!, boxes.get(d)!), `${c} / ${d}`);
      }
      // Every drawn edge has a route and its label a place.
      const { edges } = chartEdges(g);
      const routed = new Map((laid.edges ?? []).map((e) => [e.id, e]));
      for (const e of edges) {
        assert.ok(routed.get(e.id)?.sections?.length, `${e.source} → ${e.target} routed`);
        assert.ok(routed.get(e.id)?.labels?.[0]?.x !== undefined, `${e.source} → ${e.target} labelled`);
      }
    });
  }

  test("parallel transitions share one edge; a compound state's own transitions into its children are header notes", () => {
    const { edges, notes } = chartEdges(machineGraph(machine));
    const running = edges.filter((e) => e.source === 'running' && e.target === 'mounted');
    assert.equal(running.length, 1);
    assert.deepEqual(running[0].lines, ['exit']);
    const g = machineGraph(machine);
    g.transitions.push({ source: 'running', target: 'running.paused', event: 'freeze' });
    assert.deepEqual(chartEdges(g).notes.map((n) => [n.state, n.target, n.events]), [['running', 'running.paused', ['freeze']]]);
    assert.equal(notes.length, 0);
  });

  test('the SVG has one group per state, marks the active ones and escapes labels', async () => {
    const g = machineGraph(machine);
    g.transitions.push({ source: 'installed', target: 'mounted', event: '<script>&' });
    const svg = chartSvg(g, await layoutChart(g), activePaths(['running.paused']));
    assert.equal(svg.match(/<g class="state/g)?.length, g.states.length);
    assert.match(svg, /<g class="state compound[^"]* active" data-path="running">/);
    assert.match(svg, /<g class="state atomic leaf active" data-path="running.paused">/);
    assert.doesNotMatch(svg, /class="[^"]*active[^"]*" data-path="mounted"/);
    assert.ok(!svg.includes('<script>') && svg.includes('&#60;script&#62;&#38;'));
  });

  test('the elkjs bundle is found from the package', () => {
    assert.match(elkBundlePath(), /node_modules\/elkjs\/lib\/elk\.bundled\.js$/);
  });

  test('Mermaid text has the initial states, nesting and labelled transitions', () => {
    const m = chartMermaid(machineGraph(machine));
    assert.match(m, /^stateDiagram-v2\n/);
    assert.match(m, /\[\*\] --> installed/);
    assert.match(m, /state running \{\n\s+\[\*\] --> running_active/);
    assert.match(m, /starting --> mounted : after 5000ms/);
    assert.match(m, /running --> failed : exit \[critical\]/);
    assert.match(m, /failed --> \[\*\]/);
  });
});

describe('chart export', () => {
  test("the runtime's own machines export as SVG with every state, and as Mermaid", async () => {
    for (const name of ['container', 'supervisor']) {
      const m = await runtimeMachine(name);
      const svg = await exportChart(m, 'svg');
      for (const s of machineGraph(m).states) assert.ok(svg.includes(`data-path="${s.path}"`), `${name}: ${s.path}`);
      assert.match(await exportChart(m, 'mermaid'), /^stateDiagram-v2\n\s+\[\*\] --> /);
    }
    const running = await exportChart(await runtimeMachine('container'), 'svg', { active: ['started.running'] });
    assert.match(running, /class="state atomic leaf active" data-path="started.running"/);
    await assert.rejects(runtimeMachine('nope'), /no machine named "nope"/);
  });
});

describe('recorder', () => {
  test('records events with their source and resulting state; ignores non-machine actors', async () => {
    const r = new Recorder();
    const a = createActor(machine, { id: 'hello:0.0.1', inspect: r.inspect }).start();
    a.send({ type: 'mount' });
    await tick();
    await tick();
    a.send({ type: 'start' });
    a.send({ type: 'started' });
    a.send({ type: 'pause' });
    assert.deepEqual(r.actorList().map((x) => [x.id, x.machine]), [['hello:0.0.1', 'container']], 'promise and callback actors are not listed');
    const evs = r.events(a.sessionId).map((e) => [e.label, e.source ?? null, (e.state ?? []).join()]);
    assert.deepEqual(evs, [
      ['xstate.init', null, 'installed'],
      ['mount', null, 'mounting'],
      ['done: mount', 'mount', 'mounted'],
      ['start', null, 'starting'],
      ['started', null, 'running.active'],
      ['pause', null, 'running.paused'],
    ]);
    a.stop();
    await tick();
    assert.equal(r.actorList()[0].status, 'stopped');
  });

  test('keeps a bounded history of events per machine', () => {
    const r = new Recorder({ history: 5 });
    const a = createActor(machine, { inspect: r.inspect }).start();
    a.send({ type: 'mount' });
    for (let i = 0; i < 20; i++) a.send({ type: 'umount' });
    const evs = r.events(a.sessionId);
    assert.equal(evs.length, 5);
    assert.equal(evs[4].seq - evs[0].seq, 4);
    a.stop();
  });

  test('coalesces snapshot changes: listeners hear each actor once per tick', async () => {
    const r = new Recorder();
    const changes: Change[] = [];
    r.subscribe((c) => changes.push(c));
    const a = createActor(machine, { inspect: r.inspect }).start();
    a.send({ type: 'mount' });
    for (let i = 0; i < 50; i++) a.send({ type: 'bogus' } as never);
    await tick();
    const actorChanges = changes.filter((c) => c.kind === 'actor');
    assert.equal(actorChanges.length, 1);
    assert.equal(changes.filter((c) => c.kind === 'event' && c.event.type === 'bogus').length, 50);
    a.stop();
  });

  test('sends a machine definition once per machine type, however many actors run it', () => {
    const r = new Recorder();
    const actors = ['a', 'b', 'c'].map((id) => createActor(machine, { id, inspect: r.inspect }).start());
    assert.equal(r.actorList().length, 3);
    assert.deepEqual(r.machineKeyList(), ['container']);
    const other = setup({}).createMachine({ id: 'container', initial: 'x', states: { x: {} } });
    createActor(other, { inspect: r.inspect }).start();
    assert.deepEqual(r.machineKeyList(), ['container', 'container#2'], 'a different machine with the same id gets its own key');
    actors.forEach((a) => a.stop());
  });

  test('forgets the oldest stopped actors beyond its limit', () => {
    const r = new Recorder({ maxActors: 3 });
    const actors = Array.from({ length: 5 }, () => createActor(machine, { inspect: r.inspect }).start());
    actors.slice(0, 4).forEach((a) => a.stop());
    createActor(machine, { inspect: r.inspect }).start();
    assert.equal(r.actorList().length, 3);
    actors.forEach((a) => a.stop());
  });
});

describe('recorder: names, history, payloads, timers', () => {
  test('a root actor with a generated id is named after its machine', () => {
    const r = new Recorder();
    const a = createActor(machine, { inspect: r.inspect }).start();
    assert.match(a.id, /^x:\d+$/);
    assert.equal(r.actorList()[0].name, 'container');
    assert.equal(r.actorList()[0].idle, true, 'still in its first state');
    a.send({ type: 'mount' });
    assert.equal(r.actorList()[0].idle, false);
    assert.equal(r.events(a.sessionId)[0].name, 'container');
    a.stop();
  });

  test("an actor's history continues across its restarts (a new session under the same id)", () => {
    const r = new Recorder({ history: 100 });
    const first = createActor(machine, { id: 'hello:0.0.1', inspect: r.inspect }).start();
    first.send({ type: 'mount' });
    first.stop();
    const second = createActor(machine, { id: 'hello:0.0.1', inspect: r.inspect }).start();
    const evs = r.events(second.sessionId);
    assert.deepEqual(evs.map((e) => e.type), ['xstate.init', 'mount', 'xstate.init']);
    assert.deepEqual(new Set(evs.map((e) => e.session)), new Set([first.sessionId, second.sessionId]));
    second.stop();
  });

  test('records the transitions an event took and the payload and context, redacted on request', async () => {
    const r = new Recorder();
    const withEnv = setup({ types: { context: {} as { env: Record<string, string>; n: number } } }).createMachine({
      id: 'envy',
      context: { env: { TOKEN_VALUE: 'hunter2' }, n: 0 },
      initial: 'a',
      states: { a: { on: { go: 'b' } }, b: {} },
    });
    const a = createActor(withEnv, { id: 'envy', inspect: r.inspect }).start();
    a.send({ type: 'go', environment: { SECRET: 'hunter2' }, shared: 'aGVsbG8h', reply: () => undefined } as never);
    const go = r.events(a.sessionId).find((e) => e.type === 'go')!;
    assert.deepEqual(go.taken, [{ source: 'a', target: 'b' }]);
    const d = r.detail('envy', go.seq)!;
    assert.deepEqual(d.event, { type: 'go', environment: { SECRET: REDACTED }, shared: REDACTED, reply: '‹function reply›' });
    assert.deepEqual(d.context, { env: { TOKEN_VALUE: REDACTED }, n: 0 });
    assert.ok(!JSON.stringify([...r.recording('envy')]).includes('hunter2'));
    a.stop();
  });

  test('a delayed transition shows as a timer while its state is active', async () => {
    const r = new Recorder();
    const a = createActor(machine, { inspect: r.inspect }).start();
    a.send({ type: 'mount' });
    await waitFor(a, (s) => s.matches('mounted'));
    a.send({ type: 'start' });
    const [t] = r.actorList()[0].timers;
    assert.equal(t.label, 'after 5000ms');
    assert.equal(t.path, 'starting');
    assert.ok(t.due > Date.now() + 4000);
    a.send({ type: 'started' });
    assert.deepEqual(r.actorList()[0].timers, [], 'leaving the state cancels it');
    a.stop();
  });

  test("the supervisor's requests say which request", () => {
    const r = new Recorder();
    const sup = setup({}).createMachine({ id: 'supervisor', on: { request: {} } });
    const a = createActor(sup, { inspect: r.inspect }).start();
    a.send({ type: 'request', request: { type: 'start', container: 'hello:0.0.1', environment: { A: 'x' } } } as never);
    assert.equal(r.events(a.sessionId).at(-1)!.label, 'request: start hello:0.0.1');
    a.stop();
  });
});

describe('[inspector] history', () => {
  const base = 'run_dir = "/r"\ndata_dir = "/d"\nsocket_dir = "/s"\ncgroup = "n"\n[inspector]\nbind = "127.0.0.1:4201"\n';
  test('bounds the events kept per machine; absent, the inspector keeps its default of 1000', () => {
    assert.equal(parseConfig(`${base}history = 50\n`).inspector!.history, 50);
    assert.equal(parseConfig(base).inspector!.history, undefined);
    assert.equal(new Recorder().history, 1000);
    assert.throws(() => parseConfig(`${base}history = 0\n`), (e: unknown) => e instanceof ConfigError && e.field === 'inspector.history');
    assert.throws(() => parseConfig(`${base}history = "many"\n`), (e: unknown) => e instanceof ConfigError && e.field === 'inspector.history');
  });
});

describe('redaction', () => {
  test('takes out environment values and token material, keeps the rest JSON-safe and bounded', () => {
    class Thing {
      method() {}
    }
    const cyclic: Record<string, unknown> = { a: 1 };
    cyclic.self = cyclic;
    const out = redact({
      manifest: { env: { A: 'secret-a' }, name: 'x' },
      spec: { env: ['A=secret'] },
      token: 'abc',
      buf: Buffer.alloc(10),
      when: new Date(0),
      err: new Error('boom'),
      thing: new Thing(),
      cyclic,
      big: 'x'.repeat(5000),
      list: Array.from({ length: 150 }, (_, i) => i),
      map: new Map([['k', 1]]),
    }) as Record<string, unknown>;
    assert.deepEqual(out.manifest, { env: { A: REDACTED }, name: 'x' });
    assert.deepEqual(out.spec, { env: [REDACTED] });
    assert.equal(out.token, REDACTED);
    assert.equal(out.buf, '‹10 bytes›');
    assert.equal(out.when, '1970-01-01T00:00:00.000Z');
    assert.deepEqual(out.err, { error: 'boom' });
    assert.equal(out.thing, '‹Thing›');
    assert.deepEqual(out.cyclic, { a: 1, self: '‹circular›' });
    assert.ok((out.big as string).length < 2100);
    assert.equal((out.list as unknown[]).length, 101);
    assert.deepEqual(out.map, { k: 1 });
    assert.doesNotThrow(() => JSON.stringify(out));
  });
});

describe('page data', () => {
  test('events arriving out of order are kept in seq order, duplicates once', () => {
    const list: { seq: number }[] = [];
    for (const seq of [574, 573, 575, 573, 1]) insertBySeq(list, { seq });
    assert.deepEqual(list.map((e) => e.seq), [1, 573, 574, 575]);
  });

  test('machines sort running first (idle ones after busy ones), stopped last, then by name', () => {
    const a = (name: string, status: string, idle = false) => ({ name, status, idle, session: name });
    assert.deepEqual(sortActors([a('b', 'stopped'), a('y', 'active', true), a('z', 'active'), a('a', 'active')]).map((x) => x.name), ['a', 'z', 'y', 'b']);
  });

  test('a recording reads back into histories and details; other files are refused', () => {
    const text = [
      { kind: 'recording', version: 1, created: 1, machines: { m: { id: 'm', states: [], transitions: [] } } },
      { kind: 'actor', actor: { session: 'x:1', name: 'hello' } },
      { kind: 'event', event: { seq: 2, name: 'hello' }, detail: { event: { type: 'b' }, context: {} } },
      { kind: 'event', event: { seq: 1, name: 'hello' }, detail: { event: { type: 'a' }, context: {} } },
    ].map((l) => JSON.stringify(l)).join('\n');
    const rec = readRecording(parseJsonLines(text));
    assert.deepEqual(rec.histories.get('hello')!.map((e) => e.seq), [1, 2]);
    assert.deepEqual(rec.details.get('hello/1'), { event: { type: 'a' }, context: {} });
    assert.throws(() => readRecording(parseJsonLines('{"hello":1}')), /not an inspector recording/);
    assert.throws(() => parseJsonLines('{nope'), /line 1/);
  });
});

function get(url: string, headers: Record<string, string> = {}): Promise<{ status: number; type: string; body: string }> {
  return new Promise((resolve, reject) => {
    request(url, { headers }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }));
    })
      .on('error', reject)
      .end();
  });
}

describe('inspector server', () => {
  test('parses bind addresses and rejects bad ones', () => {
    assert.deepEqual(parseBind('127.0.0.1:4201'), { host: '127.0.0.1', port: 4201 });
    assert.deepEqual(parseBind('[::1]:0'), { host: '::1', port: 0 });
    assert.throws(() => parseBind('localhost'), /not host:port/);
    assert.throws(() => parseBind('x:70000'), /not host:port/);
  });

  test('serves the page, its assets, actors, events and charts from the package', async (t) => {
    const ins = await startInspector({ bind: '127.0.0.1:0' });
    const a = createActor(machine, { id: 'hello:0.0.1', inspect: ins.inspect }).start();
    t.after(async () => {
      a.stop();
      await ins.close();
    });
    a.send({ type: 'mount' });
    await waitFor(a, (s) => s.matches('mounted'));
    const page = await get(ins.url);
    assert.equal(page.status, 200);
    assert.match(page.body, /<script type="module" src="\/app.js">/);
    assert.doesNotMatch(page.body, /https?:\/\//, 'nothing from the internet');
    for (const asset of ['app.js', 'app.css', 'chart.js', 'events.js']) {
      const r = await get(ins.url + asset);
      assert.equal(r.status, 200);
      assert.doesNotMatch(r.body.replaceAll('http://www.w3.org/2000/svg', ''), /https?:\/\//);
    }
    for (const lib of ['elk.js', 'msgpackr.js']) {
      const r = await get(ins.url + lib);
      assert.equal(r.status, 200, lib);
      assert.match(r.type, /javascript/);
    }
    const { actors } = JSON.parse((await get(ins.url + 'api/actors')).body);
    assert.equal(actors[0].id, 'hello:0.0.1');
    assert.deepEqual(actors[0].state, ['mounted']);
    const events = JSON.parse((await get(`${ins.url}api/actors/${actors[0].session}/events`)).body);
    assert.deepEqual(events.map((e: { label: string }) => e.label), ['xstate.init', 'mount', 'done: mount']);
    const detail = JSON.parse((await get(`${ins.url}api/history/hello:0.0.1/${events[1].seq}`)).body);
    assert.deepEqual(detail.event, { type: 'mount' });
    assert.equal((await get(`${ins.url}api/history/hello:0.0.1/99999`)).status, 404);
    const recording = parseJsonLines((await get(ins.url + 'api/export.jsonl')).body);
    const rec = readRecording(recording);
    assert.deepEqual(rec.histories.get('hello:0.0.1')!.map((e) => e.label), ['xstate.init', 'mount', 'done: mount']);
    assert.ok(rec.machines.get('container')!.states.length > 0);
    const svg = await get(ins.url + 'api/machines/container.svg');
    assert.equal(svg.type, 'image/svg+xml');
    assert.match(svg.body, /data-path="mounting"/);
    assert.match((await get(ins.url + 'api/machines/container.mmd')).body, /^stateDiagram-v2/);
    assert.equal((await get(ins.url + 'api/machines/nope.json')).status, 404);
    assert.equal((await get(ins.url + 'api/actors', { host: 'evil.example:4201' })).status, 403, 'DNS rebinding');
  });

  test('streams actor changes and events to a page over server-sent events', async (t) => {
    const ins = await startInspector({ bind: '127.0.0.1:0' });
    const a = createActor(machine, { id: 'hello:0.0.1', inspect: ins.inspect }).start();
    t.after(async () => {
      a.stop();
      await ins.close();
    });
    const text = await new Promise<string>((resolve, reject) => {
      request(ins.url + 'api/stream', (res) => {
        assert.equal(res.headers['content-type'], 'text/event-stream');
        let buf = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          buf += d;
          if (buf.includes('"state":["mounting"]') && buf.includes('event: actor')) resolve(buf), res.destroy();
        });
        a.send({ type: 'mount' });
      })
        .on('error', reject)
        .end();
    });
    assert.match(text, /event: event\ndata: \{[^\n]*"type":"mount"[^\n]*"state":\["mounting"\]/);
  });

  test('a page that stops reading does not hold the runtime back: changes are dropped and counted', async (t) => {
    const ins = await startInspector({ bind: '127.0.0.1:0', maxBufferedBytes: 64 << 10, history: 10 });
    const a = createActor(machine, { inspect: ins.inspect }).start();
    const port = new URL(ins.url).port;
    const sock = connect(Number(port), '127.0.0.1');
    t.after(async () => {
      sock.destroy();
      a.stop();
      await ins.close();
    });
    await new Promise((r) => sock.once('connect', r));
    sock.write(`GET /api/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n`);
    await new Promise((r) => sock.once('data', r));
    sock.pause();
    // Each event is written to the stuck page until its socket buffers are full.
    const big = 'x'.repeat(4000);
    for (let i = 0; i < 5000; i++) a.send({ type: big } as never);
    assert.equal(ins.recorder.events(a.sessionId).length, 10, 'the runtime side stays bounded');
    let seen = '';
    sock.setEncoding('utf8');
    const dropped = new Promise<number>((resolve) => {
      sock.on('data', (d: string) => {
        seen = (seen + d).slice(-2_000);
        const m = /event: dropped\ndata: \{"count":(\d+)\}/.exec(seen);
        if (m) resolve(Number(m[1]));
      });
    });
    sock.resume();
    const count = await dropped;
    assert.ok(count > 0 && count < 5000, `${count} dropped`);
  });
});
