// Regenerates the inspector screenshots in docs/: the container chart of a
// running and of a paused container, in headless Chromium at 1400×900 (the
// size the chart must fit readably). The machines are the runtime's real
// supervisor and container machines over fake I/O (test/integration/inspector-demo.ts),
// so no root is needed.
//   node --import tsx scripts/screenshots.ts
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import { Browser } from '../test/integration/inspector-cdp.js';
import { HELLO, startDemo, startHello } from '../test/integration/inspector-demo.js';

const docs = join(resolve(dirname(fileURLToPath(import.meta.url)), '..'), 'docs');
const active = (path: string) => `document.querySelector('#chart g.state.active[data-path="${path}"]') !== null`;

const demo = await startDemo();
const browser = Browser.launch({ width: 1400, height: 900 });
try {
  mkdirSync(docs, { recursive: true });
  await startHello(demo);
  const tab = await browser.open('about:blank');
  await tab.setViewport(1400, 900);
  await tab.navigate(`${demo.inspector.url}#${encodeURIComponent(HELLO)}`);
  await tab.waitFor(active('started.running'), 'started.running highlighted');
  // Let the taken edge's animation end: the screenshot shows it marked, not mid-dash.
  await new Promise((r) => setTimeout(r, 1800));
  writeFileSync(join(docs, 'inspector-running.png'), await tab.screenshot());
  await demo.ask({ type: 'pause', container: HELLO });
  await tab.waitFor(active('started.paused'), 'started.paused highlighted');
  await new Promise((r) => setTimeout(r, 1800));
  writeFileSync(join(docs, 'inspector-paused.png'), await tab.screenshot());
  console.log(`screenshots: ${join(docs, 'inspector-running.png')}, ${join(docs, 'inspector-paused.png')}`);
} finally {
  await browser.close();
  await demo.close();
}
