// The inspector page: machine list, the selected machine's chart (laid out
// here by elkjs, once per machine type) with its active states, the
// transition just taken and running timers, the event log with payloads, and
// a scrubber over the recorded history. Served by src/inspector/inspector.ts;
// no files from the internet.
//
// Three modes: live (server-sent events from /api/stream), snapshot (?snapshot:
// render once, open no connection and start no timers, so headless captures
// with --virtual-time-budget finish), and replay (a recording opened from a
// file: no server needed for its data).
import { LABEL_FONT, activePaths, chartSvg, elkGraph } from '/chart.js';
import { fmtTime, insertBySeq, parseJsonLines, readRecording, sortActors } from '/events.js';

const $ = (id) => document.getElementById(id);
const params = new URLSearchParams(location.search);
const MAX_ROWS = 500;
/** Labels never below 11 px at the default zoom. */
const MIN_ZOOM = 11 / LABEL_FONT;

const app = {
  mode: params.has('snapshot') ? 'snapshot' : 'live',
  actors: new Map(), // session → ActorInfo
  graphs: new Map(), // machine key → ChartGraph
  layouts: new Map(), // machine key → Promise<ELK layout>
  histories: new Map(), // name → EventRecord[] (ascending seq)
  details: null, // replay: Map "name/seq" → detail
  selected: null, // session
  cursor: null, // seq shown by time travel; null: live
  zoom: null, // null: fit
  source: null, // EventSource
  flashed: 0, // seq of the last animated transition
};

// --- data -----------------------------------------------------------------

async function getJson(url) {
  const r = await fetch(url);
  if (!r.ok) throw new Error(`${url}: ${r.status} ${await r.text()}`);
  return r.json();
}

async function graphOf(key) {
  if (!app.graphs.has(key)) app.graphs.set(key, await getJson(`/api/machines/${encodeURIComponent(key)}.json`));
  return app.graphs.get(key);
}

const canvas = document.createElement('canvas').getContext('2d');
function measure(text, size, bold = false) {
  canvas.font = `${bold ? 'bold ' : ''}${size}px sans-serif`;
  return canvas.measureText(text).width;
}

function layoutOf(key, graph) {
  if (!app.layouts.has(key)) app.layouts.set(key, new ELK().layout(elkGraph(graph, measure)));
  return app.layouts.get(key);
}

const historyOf = (a) => (a ? app.histories.get(a.name) ?? [] : []);

async function loadHistory(a) {
  if (app.mode === 'replay') return;
  const list = await getJson(`/api/actors/${encodeURIComponent(a.session)}/events`);
  const h = app.histories.get(a.name) ?? [];
  for (const e of list) insertBySeq(h, e);
  app.histories.set(a.name, h);
}

async function detailOf(e) {
  if (app.mode === 'replay') return app.details.get(`${e.name}/${e.seq}`);
  return getJson(`/api/history/${encodeURIComponent(e.name)}/${e.seq}`);
}

// --- machine list ---------------------------------------------------------

const stateText = (a) => (a.state.length ? a.state.join(', ') : '—') + (a.status !== 'active' ? ` (${a.status})` : '');

function renderActors() {
  const filter = $('actor-filter').value.trim().toLowerCase();
  const wanted = $('state-filter').value;
  const states = new Set();
  const ul = $('actors');
  ul.replaceChildren();
  for (const a of sortActors(app.actors.values())) {
    a.state.forEach((s) => states.add(s));
    if (filter && !`${a.name} ${a.id} ${a.machine} ${a.state.join(' ')}`.toLowerCase().includes(filter)) continue;
    if (wanted && !activePaths(a.state).includes(wanted)) continue;
    const li = document.createElement('li');
    li.dataset.session = a.session;
    li.dataset.actor = a.id;
    li.dataset.name = a.name;
    li.className = (a.session === app.selected ? 'selected ' : '') + (a.status !== 'active' ? 'stopped' : '');
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = a.name;
    name.title = `${a.id} · ${a.machine}`;
    const st = document.createElement('span');
    st.className = 'state';
    st.textContent = stateText(a);
    li.append(name, st);
    li.onclick = () => select(a.session);
    ul.append(li);
  }
  const sel = $('state-filter');
  const known = new Set([...sel.options].map((o) => o.value));
  for (const s of [...states].flatMap((l) => activePaths([l])).sort()) {
    if (known.has(s)) continue;
    known.add(s);
    sel.append(new Option(s, s));
  }
}

// --- chart ----------------------------------------------------------------

async function renderChart(a) {
  let graph;
  let laid;
  try {
    graph = await graphOf(a.machine);
    laid = await layoutOf(a.machine, graph);
  } catch (e) {
    app.layouts.delete(a.machine);
    $('chart').textContent = `no chart for ${a.machine}: ${e.message ?? e}`;
    return;
  }
  if (app.selected !== a.session) return;
  $('chart').innerHTML = chartSvg(graph, laid);
  $('chart').dataset.machine = a.machine;
  $('chart').dataset.session = a.session;
  applyZoom();
  highlight();
}

function applyZoom() {
  const svg = $('chart').querySelector('svg');
  if (!svg) return;
  const w = Number(svg.getAttribute('viewBox').split(' ')[2]);
  const h = Number(svg.getAttribute('viewBox').split(' ')[3]);
  const area = $('chart');
  const fit = Math.min((area.clientWidth - 16) / w, (area.clientHeight - 16) / h, 1.25);
  const k = app.zoom ?? Math.max(MIN_ZOOM, fit);
  svg.setAttribute('width', String(Math.round(w * k)));
  svg.setAttribute('height', String(Math.round(h * k)));
  svg.style.marginTop = `${Math.max(8, (area.clientHeight - h * k) / 2)}px`;
  $('chart').dataset.zoom = k.toFixed(3);
}

function zoomBy(f) {
  const svg = $('chart').querySelector('svg');
  if (!svg) return;
  const current = Number($('chart').dataset.zoom || 1);
  app.zoom = Math.min(4, Math.max(0.25, current * f));
  applyZoom();
}

/** The event the chart shows: the one time travel picked, or the newest. */
function shownEvent(a) {
  const h = historyOf(a);
  if (app.cursor === null) return h[h.length - 1];
  return h.find((e) => e.seq === app.cursor);
}

function highlight() {
  const a = app.actors.get(app.selected);
  const chart = $('chart');
  if (!a || !chart.querySelector('svg')) return;
  const past = app.cursor !== null;
  const ev = shownEvent(a);
  const leaves = past ? ev?.state ?? [] : a.state;
  const on = new Set(activePaths(leaves));
  for (const g of chart.querySelectorAll('g.state')) {
    g.classList.toggle('active', on.has(g.dataset.path));
    g.classList.toggle('past', past);
  }
  // The transition(s) the shown event took; animated once when it is new.
  const taken = ev?.taken ?? [];
  const hit = (el) => taken.some((t) => t.source === el.dataset.source && t.target === el.dataset.target);
  for (const el of chart.querySelectorAll('g.edge, tspan.note')) el.classList.toggle('taken', hit(el));
  if (ev && !past && ev.seq !== app.flashed) {
    app.flashed = ev.seq;
    for (const el of chart.querySelectorAll('g.edge.flash')) el.classList.remove('flash');
    for (const el of chart.querySelectorAll('g.edge.taken')) {
      void el.getBoundingClientRect();
      el.classList.add('flash');
      el.addEventListener('animationend', () => el.classList.remove('flash'), { once: true });
    }
  }
  $('current').textContent = past ? `${leaves.join(', ')} (at ${fmtTime(ev.time)})` : stateText(a);
  $('current').classList.toggle('past', past);
  drawTimers(a, past);
  renderScrubber(a);
}

/** "after grace · 3.2 s" above each state with a running delayed transition. */
function drawTimers(a, past) {
  const chart = $('chart');
  chart.querySelectorAll('text.timer').forEach((t) => t.remove());
  if (past) return;
  for (const t of a.timers ?? []) {
    const g = chart.querySelector(`g.state[data-path="${CSS.escape(t.path)}"]`);
    const rect = g?.querySelector('rect');
    if (!rect) continue;
    const left = Math.max(0, (t.due - Date.now()) / 1000);
    const text = document.createElementNS('http://www.w3.org/2000/svg', 'text');
    text.setAttribute('class', 'timer');
    text.setAttribute('x', String(Number(rect.getAttribute('x')) + Number(rect.getAttribute('width')) / 2));
    text.setAttribute('y', String(Number(rect.getAttribute('y')) - 4));
    text.setAttribute('text-anchor', 'middle');
    text.textContent = `⏱ ${t.label} · ${left.toFixed(1)} s`;
    g.append(text);
  }
}

// --- scrubber and time travel ---------------------------------------------

function renderScrubber(a) {
  const h = historyOf(a);
  const s = $('scrubber');
  s.max = String(Math.max(0, h.length - 1));
  const i = app.cursor === null ? h.length - 1 : h.findIndex((e) => e.seq === app.cursor);
  s.value = String(Math.max(0, i));
  s.disabled = h.length === 0;
  const e = h[i];
  $('scrub-label').textContent = e ? `${i + 1}/${h.length} · ${fmtTime(e.time)} · ${e.label} → ${(e.state ?? []).join(', ')}` : 'no events recorded';
  $('live').classList.toggle('on', app.cursor === null);
  $('live').textContent = app.mode === 'replay' ? 'latest' : 'live';
}

function travelTo(seq) {
  const a = app.actors.get(app.selected);
  const h = historyOf(a);
  app.cursor = seq === null || seq === h[h.length - 1]?.seq ? null : seq;
  highlight();
  markRows();
}

// --- event log ------------------------------------------------------------

function logEvents() {
  const a = app.actors.get(app.selected);
  const lists = $('all-actors').checked ? [...app.histories.values()] : [historyOf(a)];
  const out = [];
  for (const l of lists) for (const e of l) insertBySeq(out, e);
  return out;
}

function matches(e) {
  const f = $('event-filter').value.trim().toLowerCase();
  return !f || `${e.name} ${e.type} ${e.label} ${e.source ?? ''} ${(e.state ?? []).join(' ')}`.toLowerCase().includes(f);
}

function eventRow(e, fresh) {
  const tr = document.createElement('tr');
  tr.dataset.type = e.type;
  tr.dataset.seq = String(e.seq);
  tr.dataset.name = e.name;
  tr.dataset.source = e.source ?? '';
  tr.title = `${e.name}: ${e.label} (${e.type})${e.source ? ` from ${e.source}` : ''}`;
  if (fresh) tr.className = 'fresh';
  const label = $('all-actors').checked ? `${e.name}: ${e.label}` : e.label;
  for (const text of [fmtTime(e.time), label, (e.state ?? []).join(', ')]) {
    const td = document.createElement('td');
    td.textContent = text;
    tr.append(td);
  }
  tr.onclick = () => openEvent(e);
  return tr;
}

function renderEvents() {
  const all = logEvents();
  const shown = all.filter(matches).slice(-MAX_ROWS).reverse();
  $('events').replaceChildren(...shown.map((e) => eventRow(e, false)));
  $('event-count').textContent = `${shown.length} of ${all.length} events`;
  markRows();
}

/** Newest first, in seq order, whatever order rows arrive in. */
function addRow(e) {
  if (!matches(e)) return;
  const body = $('events');
  const row = eventRow(e, true);
  const after = [...body.children].find((tr) => Number(tr.dataset.seq) < e.seq);
  body.insertBefore(row, after ?? null);
  while (body.children.length > MAX_ROWS) body.lastChild.remove();
  $('event-count').textContent = `${body.children.length} of ${logEvents().length} events`;
}

function markRows() {
  for (const tr of $('events').children) {
    const seq = Number(tr.dataset.seq);
    tr.classList.toggle('selected', seq === app.cursor);
    tr.classList.toggle('future', app.cursor !== null && seq > app.cursor);
  }
}

async function openEvent(e) {
  const a = [...app.actors.values()].find((x) => x.name === e.name);
  if (a && a.session !== app.selected) await select(a.session);
  travelTo(e.seq);
  $('detail-title').textContent = `#${e.seq} ${e.label} · ${fmtTime(e.time)}`;
  $('event-detail').hidden = false;
  $('event-detail').dataset.seq = String(e.seq);
  const body = $('detail-body');
  body.textContent = 'loading…';
  try {
    const d = await detailOf(e);
    if (!d) throw new Error('no longer in the history');
    body.replaceChildren(
      heading(`${e.type}${e.source ? ` from ${e.source}` : ''}`),
      jsonTree('payload', d.event, true),
      heading(`context after it (→ ${(e.state ?? []).join(', ')})`),
      jsonTree('context', d.context, true),
    );
  } catch (err) {
    body.textContent = `no payload: ${err.message}`;
  }
}

function heading(text) {
  const h = document.createElement('h3');
  h.textContent = text;
  return h;
}

/** A collapsible JSON tree: objects and arrays as <details>, the top levels open. */
function jsonTree(key, v, open, depth = 0) {
  const wrap = document.createElement('div');
  wrap.className = 'json';
  if (v !== null && typeof v === 'object') {
    const d = document.createElement('details');
    d.open = open || depth < 1;
    const s = document.createElement('summary');
    const entries = Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v);
    s.innerHTML = `<span class="k"></span> <span class="z">${Array.isArray(v) ? `[${v.length}]` : `{${entries.length}}`}</span>`;
    s.firstChild.textContent = key;
    d.append(s, ...entries.map(([k, x]) => jsonTree(String(k), x, false, depth + 1)));
    wrap.append(d);
  } else {
    const leaf = document.createElement('div');
    leaf.className = 'leaf';
    const k = document.createElement('span');
    k.className = 'k';
    k.textContent = `${key}: `;
    const val = document.createElement('span');
    val.className = typeof v === 'string' ? 's' : typeof v === 'number' ? 'n' : 'z';
    val.textContent = typeof v === 'string' ? JSON.stringify(v) : String(v);
    leaf.append(k, val);
    wrap.append(leaf);
  }
  return wrap;
}

// --- selection --------------------------------------------------------------

async function select(session) {
  const a = app.actors.get(session);
  if (!a) return;
  const changed = app.selected !== session;
  app.selected = session;
  if (changed) app.cursor = null;
  if (app.mode !== 'replay') history.replaceState(null, '', `${location.search}#${encodeURIComponent(a.name)}`);
  $('title').textContent = `${a.name} · ${a.machine}`;
  for (const [link, ext] of [['svg-link', 'svg'], ['mmd-link', 'mmd']]) {
    $(link).href = `/api/machines/${encodeURIComponent(a.machine)}.${ext}`;
    $(link).hidden = app.mode === 'replay';
  }
  renderActors();
  await loadHistory(a).catch((e) => console.warn(e));
  await renderChart(a);
  renderEvents();
}

function pickDefault() {
  const wanted = decodeURIComponent(location.hash.slice(1));
  const list = sortActors(app.actors.values());
  const a = list.find((x) => x.name === wanted || x.id === wanted) ?? list.find((x) => x.parent) ?? list[0];
  return a ? select(a.session) : undefined;
}

// --- live -------------------------------------------------------------------

function onActor(a) {
  const known = app.actors.get(a.session);
  app.actors.set(a.session, a);
  renderActors();
  if (a.session === app.selected) highlight();
  if (!app.selected || (!known && !app.actors.has(app.selected))) pickDefault();
}

function onEvent(e) {
  const h = app.histories.get(e.name) ?? [];
  app.histories.set(e.name, h);
  if (insertBySeq(h, e) < 0) return;
  const a = app.actors.get(app.selected);
  if ($('all-actors').checked || e.name === a?.name) addRow(e);
  if (e.name === a?.name) highlight();
}

async function loadAll() {
  const r = await getJson('/api/actors');
  app.actors.clear();
  for (const a of r.actors) app.actors.set(a.session, a);
  renderActors();
  if (app.selected && app.actors.has(app.selected)) await select(app.selected);
  else await pickDefault();
}

function connect() {
  const es = new EventSource('/api/stream');
  app.source = es;
  es.onopen = () => {
    $('conn').textContent = 'live';
    $('conn').className = 'conn live';
    loadAll();
  };
  es.onerror = () => {
    $('conn').textContent = 'reconnecting…';
    $('conn').className = 'conn';
  };
  es.addEventListener('actor', (m) => onActor(JSON.parse(m.data)));
  es.addEventListener('event', (m) => onEvent(JSON.parse(m.data)));
  es.addEventListener('dropped', (m) => {
    const { count } = JSON.parse(m.data);
    $('notice').textContent = `this page fell behind: ${count} updates dropped, reloaded`;
    $('notice').hidden = false;
    loadAll();
  });
}

// --- replay -----------------------------------------------------------------

/** Opens a recording (JSON lines or msgpack) in this page; the live connection closes. */
async function openRecording(name, bytes) {
  const text = new TextDecoder().decode(bytes.subarray(0, 1));
  const records = text === '{' ? parseJsonLines(new TextDecoder().decode(bytes)) : msgpackr.unpackMultiple(bytes);
  const rec = readRecording(records);
  app.source?.close();
  app.source = null;
  app.mode = 'replay';
  app.actors = new Map(rec.actors.map((a) => [a.session, a]));
  app.graphs = rec.machines;
  app.layouts = new Map();
  app.histories = rec.histories;
  app.details = rec.details;
  app.selected = null;
  app.cursor = null;
  $('conn').textContent = `replay: ${name}`;
  $('conn').className = 'conn replay';
  for (const id of ['export-jsonl', 'export-msgpack']) $(id).hidden = true;
  $('event-detail').hidden = true;
  renderActors();
  await pickDefault();
  document.documentElement.dataset.replay = name;
}
window.openRecording = openRecording;

// --- wiring -----------------------------------------------------------------

$('actor-filter').oninput = renderActors;
$('state-filter').onchange = renderActors;
$('event-filter').oninput = renderEvents;
$('all-actors').onchange = async () => {
  if ($('all-actors').checked) await Promise.all([...app.actors.values()].map((a) => loadHistory(a).catch(() => undefined)));
  renderEvents();
};
$('fit').onclick = () => ((app.zoom = null), applyZoom());
$('zoom-in').onclick = () => zoomBy(1.2);
$('zoom-out').onclick = () => zoomBy(1 / 1.2);
$('chart').addEventListener('wheel', (ev) => {
  if (!ev.ctrlKey) return;
  ev.preventDefault();
  zoomBy(ev.deltaY < 0 ? 1.1 : 1 / 1.1);
}, { passive: false });
// Drag to pan.
$('chart').addEventListener('pointerdown', (ev) => {
  const el = $('chart');
  const start = { x: ev.clientX, y: ev.clientY, left: el.scrollLeft, top: el.scrollTop };
  el.classList.add('panning');
  const move = (m) => {
    el.scrollLeft = start.left - (m.clientX - start.x);
    el.scrollTop = start.top - (m.clientY - start.y);
  };
  const up = () => {
    el.classList.remove('panning');
    window.removeEventListener('pointermove', move);
    window.removeEventListener('pointerup', up);
  };
  window.addEventListener('pointermove', move);
  window.addEventListener('pointerup', up);
});
window.addEventListener('resize', applyZoom);
$('scrubber').oninput = () => {
  const h = historyOf(app.actors.get(app.selected));
  const e = h[Number($('scrubber').value)];
  if (e) travelTo(e.seq);
};
$('live').onclick = () => travelTo(null);
$('detail-close').onclick = () => ($('event-detail').hidden = true);
$('open-recording').onchange = async () => {
  const f = $('open-recording').files[0];
  if (!f) return;
  try {
    await openRecording(f.name, new Uint8Array(await f.arrayBuffer()));
  } catch (e) {
    $('notice').textContent = `${f.name}: ${e.message}`;
    $('notice').hidden = false;
  }
};

if (app.mode === 'snapshot') {
  $('conn').textContent = 'snapshot';
  loadAll().finally(() => (document.documentElement.dataset.ready = 'true'));
} else {
  connect();
  // Timers count down between updates.
  setInterval(() => {
    const a = app.actors.get(app.selected);
    if (a?.timers?.length) drawTimers(a, app.cursor !== null);
  }, 250);
}
