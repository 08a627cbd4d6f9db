// The inspector page in real headless Chromium: a small container-like
// machine runs with the inspector attached; the page must show its chart with
// the current state highlighted, move the highlight live, and list the events.
// Saves a screenshot under test/fixtures/out (ignored by git).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { createActor, fromPromise, setup, type AnyActorRef } from 'xstate';
import { startInspector, type Inspector } from '../../src/inspector/inspector.js';
import { Browser, CHROMIUM, type Tab } from './inspector-cdp.js';

const why = existsSync(CHROMIUM) ? undefined : `no ${CHROMIUM} (apt-get install chromium)`;
if (why && process.env.CI === 'true') throw new Error(`prerequisite missing under CI: ${why}`);

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

  const active = (path: string) => `document.querySelector('#chart g.state.active[data-path="${path}"]') !== null`;

  test("the page lists the container and highlights its current state in the chart", async () => {
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
    await tab.waitFor(`[...document.querySelectorAll('#events tr')].some((tr) => tr.dataset.type === 'kill')`, 'the kill event row');
    const rows = await tab.evaluate<string[][]>(
      `[...document.querySelectorAll('#events tr')].map((tr) => [...tr.children].map((td) => td.textContent))`,
    );
    const types = rows.map((r) => r[2]);
    for (const t of ['kill', 'start', 'done: mountImage', 'mount']) assert.ok(types.includes(t), `${t} in ${types.join(', ')}`);
    const kill = rows.find((r) => r[2] === 'kill')!;
    assert.equal(kill[1], 'probe:0.0.1');
    assert.equal(kill[4], 'mounted', 'the resulting state');
    assert.equal(rows.find((r) => r[2] === 'done: mountImage')![3], 'mountImage', 'the source actor');

    const out = join(import.meta.dirname, '../fixtures/out');
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'inspector.png'), await tab.screenshot());
  });

  test('the event filter narrows the log', async () => {
    await tab.evaluate(`(() => { const f = document.getElementById('event-filter'); f.value = 'kill'; f.dispatchEvent(new Event('input')); })()`);
    const types = await tab.evaluate<string[]>(`[...document.querySelectorAll('#events tr')].map((tr) => tr.dataset.type)`);
    assert.deepEqual(types, ['kill']);
  });
});
