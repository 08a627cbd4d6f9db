// End to end: the northstar daemon started with `--inspect <bind>`, its page in real
// headless Chromium. Starting the probe container moves its chart's highlight
// to started.running; killing it moves the highlight back to mounted; the
// event log shows the requests and the process facts; the container's
// environment values reach neither the page nor a recording. Saves a
// screenshot under test/fixtures/out (ignored by git).
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { get } from 'node:http';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { fixtureNpk } from '../fixtures/npk.js';
import { Browser, CHROMIUM } from './inspector-cdp.js';
import { prerequisite, privileged } from './privileged.js';
import { startDaemon } from './runtime-harness.js';

const noChromium = existsSync(CHROMIUM) ? undefined : `no ${CHROMIUM} (apt-get install chromium)`;
prerequisite(noChromium);

/** A free loopback port (the config needs a real one; 0 is refused). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', () => r()));
  const { port } = s.address() as { port: number };
  await new Promise((r) => s.close(r));
  return port;
}

const ID = 'inspected:0.0.1';
const SECRET = 'inspected-secret-env-value';

function fetchText(url: string): Promise<string> {
  return new Promise((resolve, reject) => {
    get(url, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve(body));
    }).on('error', reject);
  });
}
const active = (path: string) => `document.querySelector('#chart g.state.active[data-path="${path}"]') !== null`;

describe('the runtime inspector in headless Chromium', noChromium ? { skip: noChromium } : privileged({ cgroups: true }), () => {
  test("a started container's chart highlights running, a kill moves it back to mounted", async (t) => {
    const npk = await fixtureNpk({ name: 'inspected', manifest: { args: ['sleep'], env: { PROBE_SECRET: SECRET } } });
    const port = await freePort();
    const h = await startDaemon(t, { repositories: { default: { npks: [npk] } }, args: ['--inspect', `127.0.0.1:${port}`] });
    const url = `http://127.0.0.1:${port}/`;

    const browser = Browser.launch();
    t.after(() => browser.close());
    const tab = await browser.open(`${url}#${encodeURIComponent(ID)}`);
    await tab.waitFor(`document.getElementById('chart').dataset.session && document.getElementById('title').textContent.startsWith(${JSON.stringify(ID)})`, 'the container to be selected');

    await h.client.start(ID);
    await h.waitFor((n) => typeof n === 'object' && 'started' in n && n.started === ID);
    await tab.waitFor(active('started.running'), 'started.running highlighted');
    await tab.waitFor(active('started'), 'its parent state highlighted too');
    const entry = await tab.evaluate<string>(`document.querySelector('#actors li[data-actor="${ID}"] .state').textContent`);
    assert.equal(entry, 'started.running');

    await h.client.kill(ID, 15);
    await h.waitFor((n) => typeof n === 'object' && 'exit' in n);
    await tab.waitFor(`${active('mounted')} && !(${active('started.running')})`, 'the highlight back on mounted');

    const types = await tab.evaluate<string[]>(`[...document.querySelectorAll('#events tr')].map((tr) => tr.dataset.type)`);
    for (const type of ['start', 'process.spawned', 'process.started', 'kill', 'process.exit']) {
      assert.ok(types.includes(type), `${type} in the event log: ${types.join(', ')}`);
    }
    // The start request carried the manifest (and its env) through the machines: redacted on the way out.
    const start = await tab.evaluate<number>(`Number([...document.querySelectorAll('#events tr')].find((tr) => tr.dataset.type === 'start').dataset.seq)`);
    const detail = await fetchText(`${url}api/history/${encodeURIComponent(ID)}/${start}`);
    assert.match(detail, /"PROBE_SECRET":"‹redacted›"/);
    const recording = await fetchText(`${url}api/export.jsonl`);
    const leak = recording.indexOf(SECRET);
    assert.ok(recording.includes('PROBE_SECRET'), 'the env name is recorded');
    assert.equal(leak, -1, `the env value is not recorded, but it is: …${recording.slice(Math.max(0, leak - 300), leak + 60)}…`);
    assert.ok(!(await tab.evaluate<string>('document.documentElement.outerHTML')).includes(SECRET));
    // The SVG export is laid out in a worker thread, from the bundle too (elkjs resolved from its package).
    assert.match(await fetchText(`${url}api/machines/container.svg`), /data-path="started.running"/);
    const out = join(import.meta.dirname, '../fixtures/out');
    mkdirSync(out, { recursive: true });
    writeFileSync(join(out, 'inspector-runtime.png'), await tab.screenshot());
  });
});
