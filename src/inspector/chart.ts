// Draws a machine graph (graph.ts) as SVG, laid out here without libraries:
// the children of each compound state are ranked by breadth-first distance
// from its initial state and stacked in rows (parallel regions sit side by
// side); left to right by default (TB: top to bottom). Forward transitions
// are curves between neighbouring sides, the others loop around the outside.
// Also exports Mermaid text for docs.
// Every state is a <g class="state" data-path="..."> so the page can mark the
// active ones by class.
import type { ChartGraph, ChartState, ChartTransition } from './graph.js';

export interface Box {
  x: number;
  y: number;
  w: number;
  h: number;
}
export interface ChartLayout {
  width: number;
  height: number;
  boxes: Map<string, Box>;
}

const PAD = 14;
const HEADER = 24;
const GAP_X_MIN = 34;
const GAP_Y = 46;
const LEAF_H = 34;
const CHAR_W = 7.4;

const textWidth = (s: string) => s.length * CHAR_W;
const labelText = (t: ChartTransition) => (t.guard ? `${t.event} [${t.guard}]` : t.event);

/** The child of `ancestor` that contains `path`, or undefined when `path` is not below it. */
function childUnder(ancestor: string, path: string): string | undefined {
  const prefix = ancestor === '' ? '' : `${ancestor}.`;
  if (path === ancestor || !path.startsWith(prefix)) return undefined;
  const rest = path.slice(prefix.length).split('.')[0];
  return prefix + rest;
}

/** Rows of child paths: breadth-first from the initial child over sibling-level edges. */
function rows(state: ChartState, graph: ChartGraph): string[][] {
  if (state.type === 'parallel') return [state.children];
  const next = new Map<string, string[]>(state.children.map((c) => [c, []]));
  for (const t of graph.transitions) {
    const s = childUnder(state.path, t.source);
    const d = childUnder(state.path, t.target);
    if (s && d && s !== d) next.get(s)!.push(d);
  }
  const rank = new Map<string, number>();
  const start = state.initial ?? state.children[0];
  const queue = start ? [start] : [];
  if (start) rank.set(start, 0);
  while (queue.length) {
    const c = queue.shift()!;
    for (const d of next.get(c) ?? []) if (!rank.has(d)) rank.set(d, rank.get(c)! + 1), queue.push(d);
  }
  let extra = Math.max(-1, ...rank.values());
  for (const c of state.children) if (!rank.has(c)) rank.set(c, ++extra);
  const out: string[][] = [];
  for (const c of state.children) (out[rank.get(c)!] ??= []).push(c);
  return out.filter(Boolean);
}

/** TB: ranks are rows, top to bottom. LR: ranks are columns, left to right (fits wide screens). */
export type Direction = 'TB' | 'LR';

interface Size {
  w: number;
  h: number;
  ranks: string[][];
}

/** Sizes and positions (absolute) of every state box. */
export function layoutChart(graph: ChartGraph, dir: Direction = 'LR'): ChartLayout {
  const byPath = new Map(graph.states.map((s) => [s.path, s]));
  // Left to right, forward labels sit between the columns: leave room for them.
  const labelW = Math.max(0, ...graph.transitions.map((t) => labelText(t).length * 6.2 + 16));
  const GAP_X = dir === 'LR' ? Math.min(130, Math.max(GAP_X_MIN, labelW)) : GAP_X_MIN;
  const sizes = new Map<string, Size>();
  const measure = (path: string): Size => {
    const s = byPath.get(path)!;
    let size: Size;
    if (s.children.length === 0) {
      size = { w: Math.max(84, textWidth(s.key) + 28), h: LEAF_H, ranks: [] };
    } else {
      const ranks = rows(s, graph);
      const dims = ranks.map((r) => r.map(measure));
      // Along a rank the boxes sit side by side (TB) or stacked (LR).
      const along = (d: Size[], gap: number, k: 'w' | 'h') => d.reduce((a, x) => a + x[k], 0) + gap * (d.length - 1);
      const across = (d: Size[], k: 'w' | 'h') => Math.max(...d.map((x) => x[k]));
      const title = textWidth(s.key) + 2 * PAD;
      if (dir === 'TB') {
        const w = Math.max(title, ...dims.map((d) => along(d, GAP_X, 'w') + 2 * PAD)) + 2 * GAP_X; // right: room for back edges
        const h = HEADER + PAD + dims.reduce((a, d) => a + across(d, 'h'), 0) + GAP_Y * (dims.length - 1) + PAD;
        size = { w, h, ranks };
      } else {
        const w = Math.max(title, 2 * PAD + dims.reduce((a, d) => a + across(d, 'w'), 0) + GAP_X * (dims.length - 1));
        const h = HEADER + PAD + Math.max(...dims.map((d) => along(d, GAP_Y / 2, 'h'))) + PAD + GAP_Y; // bottom: room for back edges
        size = { w, h, ranks };
      }
    }
    sizes.set(path, size);
    return size;
  };
  const boxes = new Map<string, Box>();
  const place = (path: string, x: number, y: number): void => {
    const { w, h, ranks } = sizes.get(path)!;
    boxes.set(path, { x, y, w, h });
    let main = dir === 'TB' ? y + HEADER + PAD : x + PAD;
    for (const r of ranks) {
      const dims = r.map((c) => sizes.get(c)!);
      if (dir === 'TB') {
        const rowW = dims.reduce((a, d) => a + d.w, 0) + GAP_X * (r.length - 1);
        let cx = x + (w - 2 * GAP_X - rowW) / 2;
        r.forEach((c, i) => (place(c, cx, main), (cx += dims[i].w + GAP_X)));
        main += Math.max(...dims.map((d) => d.h)) + GAP_Y;
      } else {
        const colW = Math.max(...dims.map((d) => d.w));
        const colH = dims.reduce((a, d) => a + d.h, 0) + (GAP_Y / 2) * (r.length - 1);
        let cy = y + HEADER + PAD + (h - HEADER - 2 * PAD - GAP_Y - colH) / 2;
        r.forEach((c, i) => (place(c, main + (colW - dims[i].w) / 2, cy), (cy += dims[i].h + GAP_Y / 2)));
        main += colW + GAP_X;
      }
    }
  };
  const { w, h } = measure('');
  place('', 10, 10);
  return { width: w + 20, height: h + 20, boxes };
}

const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const n = (v: number) => Math.round(v * 10) / 10;

function edgePath(t: ChartTransition, a: Box, b: Box, lane: number, dir: Direction): { d: string; lx: number; ly: number } {
  const c = (x1: number, y1: number, cx1: number, cy1: number, cx2: number, cy2: number, x2: number, y2: number) =>
    `M${n(x1)},${n(y1)} C${n(cx1)},${n(cy1)} ${n(cx2)},${n(cy2)} ${n(x2)},${n(y2)}`;
  if (dir === 'LR') {
    if (t.source === t.target) {
      const x = a.x + a.w / 2, y = a.y + a.h;
      return { d: c(x - 8, y, x - 30, y + 40, x + 30, y + 40, x + 8, y), lx: x, ly: y + 36 };
    }
    if (b.x >= a.x + a.w) {
      const x1 = a.x + a.w, y1 = a.y + a.h / 2 + lane * 6;
      const x2 = b.x, y2 = b.y + b.h / 2 + lane * 6;
      const mx = (x1 + x2) / 2;
      return { d: c(x1, y1, mx, y1, mx, y2, x2, y2), lx: mx, ly: (y1 + y2) / 2 - 6 };
    }
    // Back, vertical, or out of a compound state: around the bottom.
    const x1 = a.x + a.w / 2 + lane * 8, y1 = a.y + a.h;
    const x2 = b.x + b.w / 2 - lane * 8, y2 = b.y + b.h;
    const bulge = Math.max(y1, y2) + 28 + lane * 14;
    return { d: c(x1, y1, x1, bulge, x2, bulge, x2, y2), lx: (x1 + x2) / 2, ly: bulge - 2 };
  }
  if (t.source === t.target) {
    const x = a.x + a.w, y = a.y + a.h / 2;
    return { d: c(x, y - 8, x + 40, y - 30, x + 40, y + 30, x, y + 8), lx: x + 36, ly: y };
  }
  if (b.y >= a.y + a.h) {
    const x1 = a.x + a.w / 2 + lane * 10, y1 = a.y + a.h;
    const x2 = b.x + b.w / 2 + lane * 10, y2 = b.y;
    const my = (y1 + y2) / 2;
    return { d: c(x1, y1, x1, my, x2, my, x2, y2), lx: (x1 + x2) / 2, ly: my };
  }
  // Up, sideways, or out of a compound state: around the right side.
  const x1 = a.x + a.w, y1 = a.y + a.h / 2 + lane * 6;
  const x2 = b.x + b.w, y2 = b.y + b.h / 2 - lane * 6;
  const bulge = Math.max(x1, x2) + 30 + lane * 14;
  return { d: c(x1, y1, bulge, y1, bulge, y2, x2, y2), lx: bulge - 6, ly: (y1 + y2) / 2 };
}

/** The chart as a standalone SVG document; `active` paths get class "active". */
export function chartSvg(graph: ChartGraph, active: Iterable<string> = [], dir: Direction = 'LR'): string {
  const { width, height, boxes } = layoutChart(graph, dir);
  const on = new Set(active);
  const parts: string[] = [];
  // Compound states first (outer to inner), leaves on top of the edges.
  const ordered = [...graph.states].sort((x, y) => x.path.split('.').length - y.path.split('.').length);
  for (const s of ordered.filter((s) => s.children.length > 0)) parts.push(stateSvg(s, boxes.get(s.path)!, on));
  const lanes = new Map<string, number>();
  const labels: string[] = [];
  for (const t of graph.transitions) {
    const a = boxes.get(t.source), b = boxes.get(t.target);
    if (!a || !b) continue;
    const key = [t.source, t.target].sort().join('|');
    const lane = lanes.get(key) ?? 0;
    lanes.set(key, lane + 1);
    const { d, lx, ly } = edgePath(t, a, b, lane, dir);
    const label = labelText(t);
    parts.push(`<path class="edge" data-event="${esc(t.event)}" d="${d}" marker-end="url(#arrow)"/>`);
    labels.push(`<text class="edge-label" x="${n(lx)}" y="${n(ly + 4)}" text-anchor="middle">${esc(label)}</text>`);
  }
  for (const s of graph.states.filter((s) => s.children.length === 0)) parts.push(stateSvg(s, boxes.get(s.path)!, on));
  for (const s of graph.states) {
    if (!s.initial) continue;
    const b = boxes.get(s.initial)!;
    parts.push(`<circle class="initial" cx="${n(b.x - 12)}" cy="${n(b.y + 10)}" r="4"/>`);
  }
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="${n(width + 80)}" height="${n(height + 40)}" viewBox="0 0 ${n(width + 80)} ${n(height + 40)}" font-family="sans-serif" font-size="12">`,
    '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="#555"/></marker></defs>',
    `<style>${SVG_STYLE}</style>`,
    ...parts,
    ...labels,
    '</svg>',
  ].join('\n');
}

/** Works standalone (exported files) and in the page, which may override it. */
const SVG_STYLE = [
  '.state rect{fill:#fff;stroke:#667;stroke-width:1.2}',
  '.state.compound>rect{fill:#f4f6f9;stroke:#99a}',
  '.state.final>rect{stroke-width:3}',
  '.state.active>rect{fill:#d6f5e3;stroke:#1a8a4a;stroke-width:2.5}',
  '.state.compound.active>rect{fill:#eefaf3}',
  '.state text{fill:#223}',
  '.edge{fill:none;stroke:#777;stroke-width:1.2}',
  '.edge-label{fill:#345;font-size:11px;paint-order:stroke;stroke:#fff;stroke-width:3px}',
  '.initial{fill:#333}',
].join('');

function stateSvg(s: ChartState, b: Box, active: Set<string>): string {
  const cls = ['state', s.type, s.children.length ? 'compound' : 'leaf', active.has(s.path) ? 'active' : ''].filter(Boolean).join(' ');
  const leaf = s.children.length === 0;
  const ty = leaf ? b.y + b.h / 2 + 4 : b.y + 16;
  const tx = leaf ? b.x + b.w / 2 : b.x + PAD;
  const anchor = leaf ? 'middle' : 'start';
  const title = s.invokes.length ? `<title>invokes: ${esc(s.invokes.join(', '))}</title>` : '';
  return `<g class="${cls}" data-path="${esc(s.path)}">${title}<rect x="${n(b.x)}" y="${n(b.y)}" width="${n(b.w)}" height="${n(b.h)}" rx="${leaf ? 8 : 10}"/><text x="${n(tx)}" y="${n(ty)}" text-anchor="${anchor}"${leaf ? '' : ' font-weight="bold"'}>${esc(s.key)}</text></g>`;
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
