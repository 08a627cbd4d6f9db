// Charts for exports (SVG files, the inspector's .svg URLs): the same ELK
// graph and SVG drawing as the page (page/chart.js), laid out by elkjs in a
// worker thread — its layout takes 100–400 ms of CPU, which must not stall the
// daemon's event loop. Each machine type is laid out once and cached by the
// caller. Also exports Mermaid text for docs.
import { createRequire } from 'node:module';
import { Worker } from 'node:worker_threads';
import type { ElkNode } from 'elkjs/lib/elk-api.js';
import type { ChartGraph } from './graph.js';
import { chartSvg as drawSvg, elkGraph } from './page/chart.js';

export { activePaths, chartEdges, elkGraph } from './page/chart.js';
export type { ElkNode };

const require = createRequire(import.meta.url);

/**
 * elkjs's self-contained browser build, resolved from the package (not from
 * this module's directory: in the daemon bundle, dist/cli/, that is elsewhere).
 */
export function elkBundlePath(): string {
  return require.resolve('elkjs/lib/elk.bundled.js');
}

// CommonJS source for an eval'd worker: plain JavaScript, so it runs the same
// from the TypeScript sources and from the bundle.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const ELK = require(workerData.elk);
new ELK().layout(workerData.graph).then(
  (laid) => parentPort.postMessage({ laid }),
  (e) => parentPort.postMessage({ error: String(e && e.message || e) }),
);`;

/** ELK's layout of a machine graph, computed in a worker thread. */
export function layoutChart(graph: ChartGraph): Promise<ElkNode> {
  return new Promise((resolve, reject) => {
    const worker = new Worker(WORKER, { eval: true, workerData: { elk: elkBundlePath(), graph: elkGraph(graph) } });
    let settled = false;
    worker.once('message', (m: { laid?: ElkNode; error?: string }) => {
      settled = true;
      if (m.laid) resolve(m.laid);
      else reject(new Error(`chart layout of ${graph.id}: ${m.error}`));
      void worker.terminate();
    });
    worker.once('error', (e) => {
      settled = true;
      reject(new Error(`chart layout of ${graph.id}: ${e.message}`));
    });
    worker.once('exit', (code) => {
      if (!settled) reject(new Error(`chart layout of ${graph.id}: the worker exited with ${code}`));
    });
  });
}

/** The chart as a standalone SVG document; `active` paths get class "active". */
export function chartSvg(graph: ChartGraph, laid: ElkNode, active: Iterable<string> = []): string {
  return drawSvg(graph, laid, { active });
}

/** The chart as Mermaid `stateDiagram-v2` text. */
export function chartMermaid(graph: ChartGraph): string {
  const id = (path: string) => (path === '' ? 'root' : path.replace(/[^A-Za-z0-9_]/g, '_'));
  const byPath = new Map(graph.states.map((s) => [s.path, s]));
  const lines = ['stateDiagram-v2'];
  const emit = (path: string, indent: string): void => {
    const s = byPath.get(path)!;
    if (s.initial) lines.push(`${indent}[*] --> ${id(s.initial)}`);
    for (const c of s.children) {
      const child = byPath.get(c)!;
      if (child.key !== id(c)) lines.push(`${indent}state "${child.key.replace(/"/g, "'")}" as ${id(c)}`);
      if (child.children.length) {
        lines.push(`${indent}state ${id(c)} {`);
        emit(c, indent + '  ');
        lines.push(`${indent}}`);
      }
      if (child.type === 'final') lines.push(`${indent}${id(c)} --> [*]`);
    }
  };
  emit('', '  ');
  for (const t of graph.transitions) {
    if (t.source === '' || t.target === '') continue;
    const label = (t.guard ? `${t.event} [${t.guard}]` : t.event).replace(/[:;]/g, ' ');
    lines.push(`  ${id(t.source)} --> ${id(t.target)} : ${label}`);
  }
  return lines.join('\n') + '\n';
}
