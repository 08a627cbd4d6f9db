// A machine graph (graph.ts) as an ELK graph, and ELK's layout of it as SVG.
// Plain JavaScript without imports: the page loads it as a module next to
// elkjs's bundled build, and Node imports the same file for exports (the
// layout itself runs in elkjs: in the browser, or in a worker thread, never
// on the daemon's main thread). Types: chart.d.ts.
//
// Parallel transitions between one pair of states are one edge with one
// label (a line per guard). Transitions a compound state takes from any of
// its children ("started: stop → stopping") are listed in its header rather
// than drawn: as edges they would all start at its border and cross the
// whole box. Every state is a <g class="state" data-path="..."> and every
// edge a <g class="edge" data-events="..."> so the page marks them by class.

export const STATE_FONT = 13;
export const LABEL_FONT = 12;
const NOTE_FONT = 12;
const LINE = 15;
const LEAF_H = 28;
const PAD = 10;

/** Text width in px: a fixed estimate unless the page passes a measured one. */
export const estimateWidth = (text, size, bold = false) => text.length * size * (bold ? 0.64 : 0.6);

const esc = (s) => String(s).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
const n = (v) => Math.round(v * 10) / 10;
const nodeId = (path) => `s:${path}`;
const isBelow = (path, ancestor) => (ancestor === '' ? path !== '' : path.startsWith(`${ancestor}.`));

/** Every active state path (leaves and their ancestors). */
export function activePaths(leaves) {
  const out = new Set();
  for (const leaf of leaves) {
    const parts = leaf.split('.');
    for (let i = 1; i <= parts.length; i++) out.add(parts.slice(0, i).join('.'));
  }
  return [...out];
}

/** "kill | stop | halt" style lines: one per guard, wrapped at about `max` characters. */
function labelLines(transitions, max = 18) {
  const byGuard = new Map();
  // The same event to the same target with and without a guard differs only in its actions.
  const unguarded = new Set(transitions.filter((t) => !t.guard).map((t) => t.event));
  for (const t of transitions) {
    const g = t.guard && !unguarded.has(t.event) ? t.guard : '';
    const list = byGuard.get(g) ?? [];
    if (!list.includes(t.event)) list.push(t.event);
    byGuard.set(g, list);
  }
  const lines = [];
  for (const [guard, events] of byGuard) {
    let cur = '';
    for (const e of events) {
      if (cur && cur.length + e.length + 3 > max) lines.push(cur), (cur = e);
      else cur = cur ? `${cur} | ${e}` : e;
    }
    lines.push(guard ? `${cur} [${guard}]` : cur);
  }
  return lines;
}

/**
 * Edges (merged per source/target pair) and header notes (a compound
 * state's own transitions into its children).
 */
export function chartEdges(graph) {
  const pairs = new Map();
  for (const t of graph.transitions) {
    const key = `${t.source}\u0000${t.target}`;
    const p = pairs.get(key) ?? { source: t.source, target: t.target, transitions: [] };
    p.transitions.push(t);
    pairs.set(key, p);
  }
  const edges = [];
  const notes = [];
  let i = 0;
  for (const p of pairs.values()) {
    const events = [...new Set(p.transitions.map((t) => t.event))];
    const lines = labelLines(p.transitions);
    if (p.source !== '' && isBelow(p.target, p.source)) notes.push({ state: p.source, target: p.target, events, lines });
    else edges.push({ id: `e${i++}`, source: p.source, target: p.target, events, lines });
  }
  return { edges, notes };
}

const keyOf = (graph, path) => graph.states.find((s) => s.path === path)?.key ?? path;
const noteText = (graph, note) => `${note.lines.join(' · ')} → ${keyOf(graph, note.target)}`;

/** A compound state's notes, joined into lines of about `max` characters. */
function noteLines(graph, notes, path, max = 64) {
  const lines = [];
  for (const note of notes.filter((x) => x.state === path)) {
    const text = noteText(graph, note);
    const last = lines[lines.length - 1];
    if (last && last.text.length + text.length + 5 <= max) (last.text += `   ·   ${text}`), last.notes.push(note);
    else lines.push({ text, notes: [note] });
  }
  return lines;
}
const invokeText = (s) => (s.invokes.length ? `⚙ ${s.invokes.join(', ')}` : '');

// ELK reads most layered options from each compound node's own graph, also
// with INCLUDE_CHILDREN: every compound gets them. Linear segments keep
// chains straight and the chart narrow; model-order cycle breaking would
// read better but crashes elkjs 0.12 on hierarchical graphs.
const LAYERED = {
  'elk.algorithm': 'layered',
  'elk.direction': 'DOWN',
  'elk.edgeRouting': 'ORTHOGONAL',
  'elk.layered.nodePlacement.strategy': 'LINEAR_SEGMENTS',
  'elk.layered.spacing.nodeNodeBetweenLayers': '16',
  'elk.layered.spacing.edgeNodeBetweenLayers': '8',
  'elk.layered.spacing.edgeEdgeBetweenLayers': '6',
  'elk.spacing.nodeNode': '14',
  'elk.spacing.edgeEdge': '6',
  'elk.spacing.edgeLabel': '2',
  'elk.spacing.edgeNode': '8',
  'elk.layered.compaction.postCompaction.strategy': 'EDGE_LENGTH',
};

/** The ELK input for a machine graph: compound states as nested nodes, labels sized by `measure`. */
export function elkGraph(graph, measure = estimateWidth) {
  const { edges, notes } = chartEdges(graph);
  const nodes = new Map();
  const initials = [];
  for (const s of graph.states) {
    const title = measure(s.key, STATE_FONT, true);
    const inv = invokeText(s);
    const invW = inv ? measure(inv, NOTE_FONT) : 0;
    let node;
    if (s.children.length === 0) {
      node = { id: nodeId(s.path), width: Math.max(64, title + 2 * PAD, invW + 2 * PAD), height: LEAF_H + (inv ? LINE - 2 : 0) };
    } else {
      const own = noteLines(graph, notes, s.path);
      const lines = own.length;
      const minW = Math.max(title + (inv ? 16 + invW : 0), ...own.map((x) => measure(x.text, NOTE_FONT))) + 2 * PAD;
      node = {
        id: nodeId(s.path),
        children: [],
        layoutOptions: {
          ...LAYERED,
          'elk.padding': `[top=${26 + lines * LINE},left=${PAD},bottom=${PAD},right=${PAD}]`,
          'elk.nodeSize.constraints': 'MINIMUM_SIZE',
          'elk.nodeSize.minimum': `(${n(minW)},40)`,
        },
      };
      if (s.initial) {
        node.children.push({ id: `i:${s.path}`, width: 10, height: 10 });
        initials.push({ id: `ie:${s.path}`, sources: [`i:${s.path}`], targets: [nodeId(s.initial)] });
      }
    }
    nodes.set(s.path, node);
    if (s.parent !== null) nodes.get(s.parent).children.push(node);
  }
  const elkEdges = edges.map((e) => ({
    id: e.id,
    sources: [nodeId(e.source)],
    targets: [nodeId(e.target)],
    labels: [{ text: e.lines.join('\n'), width: Math.max(...e.lines.map((l) => measure(l, LABEL_FONT))) + 4, height: e.lines.length * LINE }],
  }));
  return {
    id: 'root',
    layoutOptions: { ...LAYERED, 'elk.hierarchyHandling': 'INCLUDE_CHILDREN', 'elk.json.shapeCoords': 'ROOT', 'elk.json.edgeCoords': 'ROOT', 'elk.padding': '[top=8,left=8,bottom=8,right=8]' },
    children: [nodes.get('')],
    edges: [...elkEdges, ...initials],
  };
}

/** Polyline with softened corners through an ELK edge section. */
function sectionPath(sec) {
  const pts = [sec.startPoint, ...(sec.bendPoints ?? []), sec.endPoint];
  let d = `M${n(pts[0].x)},${n(pts[0].y)}`;
  for (let i = 1; i < pts.length - 1; i++) {
    const [a, b, c] = [pts[i - 1], pts[i], pts[i + 1]];
    const r = Math.min(6, Math.hypot(b.x - a.x, b.y - a.y) / 2, Math.hypot(c.x - b.x, c.y - b.y) / 2);
    const ax = b.x - (Math.sign(b.x - a.x) * r), ay = b.y - (Math.sign(b.y - a.y) * r);
    const cx = b.x + (Math.sign(c.x - b.x) * r), cy = b.y + (Math.sign(c.y - b.y) * r);
    d += ` L${n(ax)},${n(ay)} Q${n(b.x)},${n(b.y)} ${n(cx)},${n(cy)}`;
  }
  const last = pts[pts.length - 1];
  return `${d} L${n(last.x)},${n(last.y)}`;
}

/**
 * ELK's layout as an SVG document. `active`: state paths to mark; `taken`:
 * edge ids of the transition just taken (marked and animated by the page).
 */
export function chartSvg(graph, laid, opts = {}) {
  const on = new Set(opts.active ?? []);
  const { edges, notes } = chartEdges(graph);
  const boxes = new Map();
  const walk = (node) => {
    boxes.set(node.id, node);
    (node.children ?? []).forEach(walk);
  };
  walk(laid);
  const box = (path) => boxes.get(nodeId(path));
  const parts = [];
  const states = [...graph.states].sort((a, b) => (a.path === '' ? 0 : a.path.split('.').length) - (b.path === '' ? 0 : b.path.split('.').length));
  for (const s of states.filter((x) => x.children.length > 0)) parts.push(compoundSvg(graph, s, box(s.path), notes, on));
  const byId = new Map((laid.edges ?? []).map((e) => [e.id, e]));
  for (const e of edges) {
    const out = byId.get(e.id);
    if (!out?.sections?.length) continue;
    const label = out.labels?.[0];
    const text = label
      ? `<text class="edge-label" x="${n(label.x + 2)}" y="${n(label.y)}">${e.lines.map((l, i) => `<tspan x="${n(label.x + 2)}" dy="${i === 0 ? LABEL_FONT : LINE}">${esc(l)}</tspan>`).join('')}</text>`
      : '';
    parts.push(
      `<g class="edge" data-id="${e.id}" data-source="${esc(e.source)}" data-target="${esc(e.target)}" data-events="${esc(e.events.join('\n'))}">` +
        `<title>${esc(`${keyOf(graph, e.source)} → ${keyOf(graph, e.target)}: ${e.lines.join(', ')}`)}</title>` +
        out.sections.map((sec) => `<path d="${sectionPath(sec)}" marker-end="url(#arrow)"/>`).join('') +
        text +
        '</g>',
    );
  }
  for (const s of graph.states.filter((x) => x.initial)) {
    const b = boxes.get(`i:${s.path}`);
    const e = byId.get(`ie:${s.path}`);
    if (b) parts.push(`<circle class="initial" cx="${n(b.x + 5)}" cy="${n(b.y + 5)}" r="4.5"/>`);
    if (e?.sections) parts.push(...e.sections.map((sec) => `<path class="initial-edge" d="${sectionPath(sec)}" marker-end="url(#arrow)"/>`));
  }
  for (const s of graph.states.filter((x) => x.children.length === 0)) parts.push(leafSvg(s, box(s.path), on));
  const w = n(laid.width ?? 100), h = n(laid.height ?? 100);
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" font-family="sans-serif" font-size="${STATE_FONT}">`,
    '<defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" markerWidth="9" markerHeight="9" orient="auto-start-reverse"><path d="M0,0L10,5L0,10z" fill="context-stroke"/></marker></defs>',
    `<style>${SVG_STYLE}</style>`,
    ...parts,
    '</svg>',
  ].join('\n');
}

/** Works standalone (exported files) and in the page, which adds its own rules. */
export const SVG_STYLE = [
  '.state rect{fill:#fff;stroke:#667;stroke-width:1.2}',
  '.state.compound>rect{fill:#f4f6f9;stroke:#99a}',
  '.state.final>rect{stroke-width:3}',
  '.state.active>rect{fill:#d6f5e3;stroke:#1a8a4a;stroke-width:2.5}',
  '.state.compound.active>rect{fill:#f0faf4}',
  '.state text{fill:#223}',
  '.state .invokes,.state .notes{font-size:12px;fill:#556}',
  '.edge path{fill:none;stroke:#778;stroke-width:1.3}',
  '.edge-label{fill:#345;font-size:12px}',
  '.initial{fill:#333}',
  '.initial-edge{fill:none;stroke:#333;stroke-width:1.2}',
].join('');

function compoundSvg(graph, s, b, notes, on) {
  const cls = ['state', s.type, 'compound', on.has(s.path) ? 'active' : ''].filter(Boolean).join(' ');
  const lines = [];
  let y = b.y + 18;
  lines.push(`<text class="title" x="${n(b.x + PAD)}" y="${n(y)}" font-weight="bold">${esc(s.key)}</text>`);
  const inv = invokeText(s);
  if (inv) lines.push(`<text class="invokes" x="${n(b.x + b.width - PAD)}" y="${n(y)}" text-anchor="end">${esc(inv)}</text>`);
  for (const line of noteLines(graph, notes, s.path)) {
    y += LINE;
    const spans = line.notes.map(
      (note, i) =>
        `${i ? '<tspan>   ·   </tspan>' : ''}<tspan class="note" data-source="${esc(s.path)}" data-target="${esc(note.target)}" data-events="${esc(note.events.join('\n'))}">${esc(noteText(graph, note))}</tspan>`,
    );
    lines.push(`<text class="notes" x="${n(b.x + PAD)}" y="${n(y)}">${spans.join('')}</text>`);
  }
  return `<g class="${cls}" data-path="${esc(s.path)}"><rect x="${n(b.x)}" y="${n(b.y)}" width="${n(b.width)}" height="${n(b.height)}" rx="10"/>${lines.join('')}</g>`;
}

function leafSvg(s, b, on) {
  const cls = ['state', s.type, 'leaf', on.has(s.path) ? 'active' : ''].filter(Boolean).join(' ');
  const inv = invokeText(s);
  const cx = b.x + b.width / 2;
  const title = `<text class="title" x="${n(cx)}" y="${n(b.y + 18)}" text-anchor="middle">${esc(s.key)}</text>`;
  const invokes = inv ? `<text class="invokes" x="${n(cx)}" y="${n(b.y + 18 + LINE - 2)}" text-anchor="middle">${esc(inv)}</text>` : '';
  return `<g class="${cls}" data-path="${esc(s.path)}"><rect x="${n(b.x)}" y="${n(b.y)}" width="${n(b.width)}" height="${n(b.height)}" rx="8"/>${title}${invokes}</g>`;
}

/** Whether a state path is `p` or below it. */
export const within = (path, p) => path === p || isBelow(path, p);
