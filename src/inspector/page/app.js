// The inspector page: machine list, chart of the selected machine with its
// active states highlighted, and the event log. Plain browser JavaScript, no
// libraries, served by src/inspector/inspector.ts. Live updates arrive as
// server-sent events from /api/stream; charts are SVG rendered by the server
// (one per machine type) and highlighted here by class.
'use strict';

const $ = (id) => document.getElementById(id);
const actors = new Map(); // session → ActorInfo
const charts = new Map(); // machine key → SVG text
const MAX_ROWS = 500;
let selected = null;
let events = []; // EventRecord, oldest first

function activePaths(leaves) {
  const out = new Set();
  for (const leaf of leaves) {
    const parts = leaf.split('.');
    for (let i = 1; i <= parts.length; i++) out.add(parts.slice(0, i).join('.'));
  }
  return out;
}

const stateText = (a) => (a.state.length ? a.state.join(', ') : '—') + (a.status !== 'active' ? ` (${a.status})` : '');

function renderActors() {
  const filter = $('actor-filter').value.trim().toLowerCase();
  const list = [...actors.values()].sort((a, b) => a.id.localeCompare(b.id));
  const ul = $('actors');
  ul.replaceChildren();
  for (const a of list) {
    if (filter && !`${a.id} ${a.machine} ${a.state.join(' ')}`.toLowerCase().includes(filter)) continue;
    const li = document.createElement('li');
    li.dataset.session = a.session;
    li.dataset.actor = a.id;
    li.className = (a.session === selected ? 'selected ' : '') + (a.status !== 'active' ? 'stopped' : '');
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = a.id;
    const st = document.createElement('span');
    st.className = 'state';
    st.textContent = stateText(a);
    li.append(name, st);
    li.onclick = () => select(a.session);
    ul.append(li);
  }
}

function highlight() {
  const a = actors.get(selected);
  if (!a) return;
  const on = activePaths(a.state);
  for (const g of $('chart').querySelectorAll('g.state')) g.classList.toggle('active', on.has(g.dataset.path));
  $('current').textContent = stateText(a);
}

async function select(session) {
  selected = session;
  const a = actors.get(session);
  if (!a) return;
  location.hash = encodeURIComponent(a.id);
  $('title').textContent = `${a.id} · ${a.machine}`;
  for (const [link, ext] of [['svg-link', 'svg'], ['mmd-link', 'mmd']]) {
    $(link).href = `/api/machines/${encodeURIComponent(a.machine)}.${ext}`;
    $(link).hidden = false;
  }
  renderActors();
  if (!charts.has(a.machine)) {
    const r = await fetch(`/api/machines/${encodeURIComponent(a.machine)}.svg`);
    charts.set(a.machine, r.ok ? await r.text() : `<p>no chart: ${r.status}</p>`);
  }
  if (selected !== session) return;
  $('chart').innerHTML = charts.get(a.machine);
  $('chart').dataset.machine = a.machine;
  $('chart').dataset.session = session;
  highlight();
  await loadEvents();
}

async function loadEvents() {
  const sessions = $('all-actors').checked ? [...actors.keys()] : selected ? [selected] : [];
  const lists = await Promise.all(sessions.map((s) => fetch(`/api/actors/${encodeURIComponent(s)}/events`).then((r) => r.json())));
  events = lists.flat().sort((x, y) => x.seq - y.seq);
  renderEvents();
}

function fmtTime(ms) {
  const d = new Date(ms);
  const p = (n, w = 2) => String(n).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

function eventRow(e, fresh) {
  const tr = document.createElement('tr');
  tr.dataset.type = e.type;
  tr.title = e.type;
  if (fresh) tr.className = 'fresh';
  for (const text of [fmtTime(e.time), e.actor, e.label, e.source ?? '', (e.state ?? []).join(', ')]) {
    const td = document.createElement('td');
    td.textContent = text;
    tr.append(td);
  }
  return tr;
}

function matches(e) {
  const f = $('event-filter').value.trim().toLowerCase();
  return !f || `${e.actor} ${e.type} ${e.label} ${e.source ?? ''} ${(e.state ?? []).join(' ')}`.toLowerCase().includes(f);
}

function renderEvents() {
  const shown = events.filter(matches).slice(-MAX_ROWS).reverse();
  $('events').replaceChildren(...shown.map((e) => eventRow(e, false)));
  $('event-count').textContent = `${shown.length} of ${events.length} events`;
}

function onEvent(e) {
  if (!$('all-actors').checked && e.session !== selected) return;
  events.push(e);
  if (events.length > MAX_ROWS * 2) events = events.slice(-MAX_ROWS);
  if (!matches(e)) return;
  const body = $('events');
  body.prepend(eventRow(e, true));
  while (body.children.length > MAX_ROWS) body.lastChild.remove();
  $('event-count').textContent = `${body.children.length} of ${events.length} events`;
}

function onActor(a) {
  const isNew = !actors.has(a.session);
  actors.set(a.session, a);
  renderActors();
  if (a.session === selected) highlight();
  if (!selected || (isNew && !actors.has(selected))) pickDefault();
}

function pickDefault() {
  const wanted = decodeURIComponent(location.hash.slice(1));
  const list = [...actors.values()];
  const a = list.find((x) => x.id === wanted) ?? list.find((x) => x.parent) ?? list[0];
  if (a) select(a.session);
}

async function loadAll() {
  const r = await fetch('/api/actors').then((x) => x.json());
  actors.clear();
  for (const a of r.actors) actors.set(a.session, a);
  renderActors();
  if (selected && actors.has(selected)) await select(selected);
  else pickDefault();
}

function connect() {
  const es = new EventSource('/api/stream');
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

$('actor-filter').oninput = renderActors;
$('event-filter').oninput = renderEvents;
$('all-actors').onchange = loadEvents;
connect();
