// The inspector page in real headless Chromium. First a small container-like
// machine: its chart, the live highlight, the event log. Then the runtime's
// real supervisor and container machines (over the fake I/O of the machine
// tests, test/integration/inspector-demo.ts) at 1400×900: the container chart
// fits readably without overlaps, events open their payloads, the scrubber
// travels back, a recording replays in a page with no live data, and a secret
// environment value never reaches the page or a recording. Screenshots go to
// test/fixtures/out (ignored by git).
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createActor, fromPromise, setup, type AnyActorRef } from 'xstate';
import { startInspector, type Inspector } from '../../src/inspector/inspector.js';
import { Browser, CHROMIUM, type Tab } from './inspector-cdp.js';
import { HELLO, SECRET, startDemo, startHello, type Demo } from './inspector-demo.js';
import { prerequisite } from './privileged.js';

const why = existsSync(CHROMIUM) ? undefined : `no ${CHROMIUM} (apt-get install chromium)`;
prerequisite(why);

const out = join(import.meta.dirname, '../fixtures/out');
const active = (path: string) => `document.querySelector('#chart g.state.active[data-path="${path}"]') !== null`;

function get(url: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    request(url, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (d: Buffer) => chunks.push(d));
      res.on('end', () => resolve(Buffer.concat(chunks)));
    })
      .on('error', reject)
      .end();
  });
}

const container = setup({
  types: { events: {} as { type: 'mount' } | { type: 'start' } | { type: 'kill' } | { type: 'umount' } },
  actors: { mountImage: fromPromise(async () => '/run/probe:0.0.1') },
}).createMachine({
  id: 'container',
  initial: 'installed',
  states: {
    installed: { on: { mount: 'mounting' } },
    mounting: { invoke: { src: 'mountImage', onDone: 'mounted', onError: 'installed' } },
    mounted: { on: { start: 'running', umount: 'installed' } },
    running: { on: { kill: 'mounted' } },
  },
});

describe('inspector page in headless Chromium', { skip: why }, () => {
  let inspector: Inspector;
  let actor: AnyActorRef;
  let browser: Browser;
  let tab: Tab;

  before(async () => {
    inspector = await startInspector({ bind: '127.0.0.1:0' });
    actor = createActor(container, { id: 'probe:0.0.1', inspect: inspector.inspect }).start();
    actor.send({ type: 'mount' });
    await new Promise<void>((resolve) => {
      const sub = actor.subscribe((s) => s.matches('mounted') && (sub.unsubscribe(), resolve()));
    });
    actor.send({ type: 'start' });
    browser = Browser.launch();
  });

  after(async () => {
    await browser?.close();
    actor?.stop();
    await inspector?.close();
  });

  test('the page lists the container and highlights its current state in the chart', async () => {
    tab = await browser.open(inspector.url);
    await tab.waitFor(active('running'), 'running highlighted');
    assert.equal(await tab.evaluate(`document.querySelectorAll('#chart g.state.active').length`), 1);
    const entry = await tab.evaluate<string>(`document.querySelector('#actors li[data-actor="probe:0.0.1"] .state')?.textContent`);
    assert.equal(entry, 'running');
    const states = await tab.evaluate<string[]>(`[...document.querySelectorAll('#chart g.state')].map((g) => g.dataset.path)`);
    assert.deepEqual(states.sort(), ['', 'installed', 'mounted', 'mounting', 'running']);
    await tab.waitFor(`document.getElementById('conn').textContent === 'live'`, 'the event stream to connect');
  });

  test('the highlight moves live when the machine changes state, and the log shows the events', async () => {
    actor.send({ type: 'kill' });
    await tab.waitFor(`${active('mounted')} && !(${active('running')})`, 'the highlight to move to mounted');
    await tab.waitFor(`document.querySelector('#chart g.edge.taken[data-source="running"][data-target="mounted"]') !== null`, 'the kill edge marked as taken');
    await tab.waitFor(`[...document.querySelectorAll('#events tr')].some((tr) => tr.dataset.type === 'kill')`, 'the kill event row');
    const rows = await tab.evaluate<{ name: string; source: string; cells: string[] }[]>(
      `[...document.querySelectorAll('#events tr')].map((tr) => ({ name: tr.dataset.name, source: tr.dataset.source, cells: [...tr.children].map((td) => td.textContent) }))`,
    );
    const types = rows.map((r) => r.cells[1]);
    for (const t of ['kill', 'start', 'done: mountImage', 'mount']) assert.ok(types.includes(t), `${t} in ${types.join(', ')}`);
    const kill = rows.find((r) => r.cells[1] === 'kill')!;
    assert.equal(kill.name, 'probe:0.0.1');
    assert.equal(kill.cells[2], 'mounted', 'the resulting state');
    assert.equal(rows.find((r) => r.cells[1] === 'done: mountImage')!.source, 'mountImage', 'the source actor');
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'inspector.png'), await tab.screenshot());
  });

  test('the event filter narrows the log', async () => {
    await tab.evaluate(`(() => { const f = document.getElementById('event-filter'); f.value = 'kill'; f.dispatchEvent(new Event('input')); })()`);
    const types = await tab.evaluate<string[]>(`[...document.querySelectorAll('#events tr')].map((tr) => tr.dataset.type)`);
    assert.deepEqual(types, ['kill']);
  });
});

describe("the runtime's machines in the inspector at 1400×900", { skip: why }, () => {
  let demo: Demo;
  let browser: Browser;
  let tab: Tab;
  const W = 1400;
  const H = 900;

  before(async () => {
    demo = await startDemo();
    await startHello(demo);
    browser = Browser.launch({ width: W, height: H });
    tab = await browser.open('about:blank');
    await tab.setViewport(W, H);
    await tab.navigate(`${demo.inspector.url}#${encodeURIComponent(HELLO)}`);
    await tab.waitFor(active('started.running'), 'started.running highlighted');
  });

  after(async () => {
    await browser?.close();
    await demo?.close();
  });

  test('machines are named (the supervisor is "supervisor"), sorted running first, and filter by state', async () => {
    const names = await tab.evaluate<string[]>(`[...document.querySelectorAll('#actors li')].map((li) => li.dataset.name)`);
    // hello-world and the supervisor left their first states; crashing was never mounted.
    assert.deepEqual(names, [HELLO, 'supervisor', 'crashing:0.0.1']);
    await tab.evaluate(`(() => { const s = document.getElementById('state-filter'); s.value = 'started.running'; s.dispatchEvent(new Event('change')); })()`);
    assert.deepEqual(await tab.evaluate<string[]>(`[...document.querySelectorAll('#actors li')].map((li) => li.dataset.name)`), [HELLO]);
    await tab.evaluate(`(() => { const s = document.getElementById('state-filter'); s.value = ''; s.dispatchEvent(new Event('change')); })()`);
  });

  test('the container chart fits the window at its default zoom: no overlapping boxes, every label inside and at least 11 px', async () => {
    const r = await tab.evaluate<{
      boxes: { path: string; leaf: boolean; x: number; y: number; w: number; h: number }[];
      labels: { text: string; x: number; y: number; w: number; h: number; px: number }[];
      area: { x: number; y: number; w: number; h: number };
    }>(`(() => {
      const box = (el) => { const b = el.getBoundingClientRect(); return { x: b.x, y: b.y, w: b.width, h: b.height }; };
      const boxes = [...document.querySelectorAll('#chart g.state')].map((g) => ({ path: g.dataset.path, leaf: g.classList.contains('leaf'), ...box(g.querySelector('rect')) }));
      const labels = [...document.querySelectorAll('#chart text')].map((t) => ({
        text: t.textContent, ...box(t), px: parseFloat(getComputedStyle(t).fontSize) * t.getScreenCTM().a,
      }));
      return { boxes, labels, area: box(document.getElementById('chart')) };
    })()`);
    assert.ok(r.boxes.length >= 18, `${r.boxes.length} states drawn`);
    const overlap = (a: typeof r.area, b: typeof r.area) => a.x < b.x + b.w && b.x < a.x + a.w && a.y < b.y + b.h && b.y < a.y + a.h;
    const contains = (a: typeof r.area, b: typeof r.area) => a.x <= b.x && a.y <= b.y && a.x + a.w >= b.x + b.w && a.y + a.h >= b.y + b.h;
    for (const a of r.boxes) {
      for (const b of r.boxes) {
        if (a.path >= b.path) continue;
        // Boxes are nested (a compound and its descendants) or apart.
        assert.ok(!overlap(a, b) || contains(a, b) || contains(b, a), `${a.path} and ${b.path} overlap`);
      }
    }
    const leaves = r.boxes.filter((b) => b.leaf);
    for (const l of r.labels) {
      assert.ok(l.px >= 11 - 0.01, `"${l.text}" is ${l.px.toFixed(1)} px`);
      assert.ok(l.x >= r.area.x && l.y >= r.area.y && l.x + l.w <= r.area.x + r.area.w && l.y + l.h <= r.area.y + r.area.h, `"${l.text}" inside the chart area`);
      assert.ok(l.x >= 0 && l.y >= 0 && l.x + l.w <= W && l.y + l.h <= H, `"${l.text}" inside the window`);
    }
    const edgeLabels = await tab.evaluate<{ text: string; x: number; y: number; w: number; h: number }[]>(
      `[...document.querySelectorAll('#chart .edge-label')].map((t) => { const b = t.getBoundingClientRect(); return { text: t.textContent, x: b.x, y: b.y, w: b.width, h: b.height }; })`,
    );
    for (const l of edgeLabels) for (const b of leaves) assert.ok(!overlap(l, b), `label "${l.text}" over state ${b.path}`);
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'inspector-container.png'), await tab.screenshot());
  });

  test('the newest-first log is in event order, whatever order events arrive in', async () => {
    await tab.evaluate(`(() => { const c = document.getElementById('all-actors'); c.checked = true; c.dispatchEvent(new Event('change')); })()`);
    await tab.waitFor(`[...document.querySelectorAll('#events tr')].some((tr) => tr.dataset.name === 'supervisor')`, 'every machine in the log');
    // The container's mount (sent while the supervisor handles the request) settles, and reaches the page, before the request does.
    await demo.ask({ type: 'mount', containers: ['crashing:0.0.1'] });
    await tab.waitFor(`[...document.querySelectorAll('#events tr')].some((tr) => tr.dataset.name === 'supervisor' && tr.dataset.type.startsWith('xstate.done.actor.mountFlow'))`, 'the mount of crashing');
    const seqs = await tab.evaluate<number[]>(`[...document.querySelectorAll('#events tr')].map((tr) => Number(tr.dataset.seq))`);
    assert.ok(seqs.length > 10);
    for (let i = 1; i < seqs.length; i++) assert.ok(seqs[i - 1] > seqs[i], `row ${i}: ${seqs[i - 1]} above ${seqs[i]}`);
    await tab.evaluate(`(() => { const c = document.getElementById('all-actors'); c.checked = false; c.dispatchEvent(new Event('change')); })()`);
  });

  test("clicking an event shows its payload and the context after it, with the environment's values redacted", async () => {
    const at = await tab.evaluate<{ x: number; y: number }>(`(() => {
      const tr = [...document.querySelectorAll('#events tr')].find((r) => r.dataset.type === 'start');
      const b = tr.getBoundingClientRect();
      return { x: b.x + b.width / 2, y: b.y + b.height / 2 };
    })()`);
    await tab.click(at.x, at.y);
    await tab.waitFor(`!document.getElementById('event-detail').hidden && document.getElementById('detail-body').textContent.includes('payload')`, 'the payload');
    const text = await tab.evaluate<string>(`(() => { document.querySelectorAll('#detail-body details').forEach((d) => (d.open = true)); return document.getElementById('detail-body').innerText; })()`);
    assert.match(text, /type: "start"/);
    assert.match(text, /GREETING: "‹redacted›"/);
    assert.match(text, /context/);
    assert.match(text, /manifest/);
    const html = await tab.evaluate<string>('document.documentElement.outerHTML');
    assert.ok(!html.includes(SECRET), 'the secret is not in the page');
    // The row is the time travel's position: the chart shows the state after the start.
    await tab.waitFor(`${active('mounting')} && !(${active('started')})`, 'the chart at the start event');
    writeFileSync(join(out, 'inspector-payload.png'), await tab.screenshot());
  });

  test('the scrubber shows an earlier state; "live" returns to now', async () => {
    await tab.evaluate(`(() => { const s = document.getElementById('scrubber'); s.value = '0'; s.dispatchEvent(new Event('input')); })()`);
    await tab.waitFor(`${active('unmounted')} && !(${active('started.running')})`, 'the initial state');
    assert.match(await tab.evaluate<string>(`document.getElementById('scrub-label').textContent`), /^1\/\d+ .* xstate\.init → unmounted$/);
    await tab.evaluate(`document.getElementById('live').click()`);
    await tab.waitFor(active('started.running'), 'back to started.running');
  });

  test('a delayed transition shows its remaining time on its state', async () => {
    demo.io.ignoreTerm = true;
    demo.sup.send({ type: 'request', request: { type: 'stop', container: HELLO, graceMs: 60_000 }, reply: () => undefined } as never);
    await tab.waitFor(active('started.stopping'), 'stopping');
    await tab.waitFor(`/after grace · 5\\d\\.\\d s/.test(document.querySelector('#chart g.state[data-path="started.stopping"] text.timer')?.textContent ?? '')`, 'the grace timer');
    demo.sup.send({ type: 'request', request: { type: 'kill', container: HELLO, signal: 9 }, reply: () => undefined } as never);
    await tab.waitFor(active('mounted'), 'mounted after the kill');
    assert.equal(await tab.evaluate(`document.querySelectorAll('#chart text.timer').length`), 0);
  });

  test('a recording (JSON lines and msgpack) holds no secret and replays offline in a page without live data', async (t) => {
    const jsonl = (await get(`${demo.inspector.url}api/export.jsonl`)).toString();
    const msgpack = await get(`${demo.inspector.url}api/export.msgpack`);
    assert.match(jsonl, /^\{"kind":"recording","version":1/);
    assert.ok(jsonl.includes('GREETING'), 'the environment names are there');
    assert.ok(!jsonl.includes(SECRET), 'the secret is not');
    assert.ok(!msgpack.includes(SECRET));
    const dir = mkdtempSync(join(tmpdir(), 'nstar-inspector-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'session.jsonl'), jsonl);
    writeFileSync(join(dir, 'session.msgpack'), msgpack);
    // Another inspector with nothing to show: the data comes from the file alone.
    const empty = await startInspector({ bind: '127.0.0.1:0' });
    t.after(() => empty.close());
    for (const file of ['session.jsonl', 'session.msgpack']) {
      const replay = await browser.open(`${empty.url}#${encodeURIComponent(HELLO)}`);
      await replay.waitFor(`document.getElementById('conn').textContent === 'live'`, 'the empty page');
      assert.equal(await replay.evaluate(`document.querySelectorAll('#actors li').length`), 0);
      await replay.setFiles('#open-recording', [join(dir, file)]);
      await replay.waitFor(`document.documentElement.dataset.replay === ${JSON.stringify(file)} && ${active('mounted')}`, `${file} replayed`);
      const names = await replay.evaluate<string[]>(`[...document.querySelectorAll('#actors li')].map((li) => li.dataset.name)`);
      assert.ok(names.includes(HELLO) && names.includes('supervisor'), names.join(', '));
      await replay.evaluate(`(() => { const s = document.getElementById('scrubber'); s.value = '0'; s.dispatchEvent(new Event('input')); })()`);
      await replay.waitFor(active('unmounted'), 'travel back in the recording');
      await replay.evaluate(`[...document.querySelectorAll('#events tr')].find((r) => r.dataset.type === 'start').click()`);
      await replay.waitFor(`document.getElementById('detail-body').textContent.includes('GREETING')`, 'a payload from the recording');
    }
  });

  test('?snapshot renders once without a live connection, so headless captures end', async (t) => {
    const snap = await browser.open(`${demo.inspector.url}?snapshot#${encodeURIComponent(HELLO)}`);
    await snap.waitFor(`document.documentElement.dataset.ready === 'true'`, 'the snapshot');
    assert.equal(await snap.evaluate(`document.getElementById('conn').textContent`), 'snapshot');
    assert.ok(await snap.evaluate<boolean>(`document.querySelectorAll('#chart g.state').length > 10`));
    const streams = await snap.evaluate<number>(`performance.getEntriesByType('resource').filter((e) => e.name.includes('/api/stream')).length`);
    assert.equal(streams, 0);
    // Chromium's own --screenshot with a virtual time budget exits once the page is idle.
    const dir = mkdtempSync(join(tmpdir(), 'nstar-inspector-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const shot = join(dir, 'snapshot.png');
    const proc = spawn(CHROMIUM, ['--headless', '--no-sandbox', '--disable-gpu', `--user-data-dir=${dir}/profile`, '--window-size=1400,900', '--virtual-time-budget=5000', `--screenshot=${shot}`, `${demo.inspector.url}?snapshot`], { stdio: 'ignore' });
    const killer = setTimeout(() => proc.kill('SIGKILL'), 60_000);
    const code = await new Promise<number | null>((r) => proc.once('exit', (c) => r(c)));
    clearTimeout(killer);
    assert.equal(code, 0, 'chromium --screenshot finished');
    assert.ok(existsSync(shot));
  });
});
