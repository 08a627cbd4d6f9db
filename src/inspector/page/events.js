// The page's data handling without the DOM: event ordering, machine order,
// recordings. Plain JavaScript for the page, imported by the unit tests too.
// Types: events.d.ts.

/**
 * Inserts an event record into `list` (ascending by seq) where it belongs;
 * returns its index, or -1 for a duplicate. Events reach the page in the
 * order their snapshots settle, not in the order they were sent (a child's
 * event sent while its parent processes one settles first), so appending
 * would misorder them.
 */
export function insertBySeq(list, rec) {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (list[mid].seq < rec.seq) lo = mid + 1;
    else hi = mid;
  }
  if (list[lo]?.seq === rec.seq) return -1;
  list.splice(lo, 0, rec);
  return lo;
}

/** Running machines first (busy, then idle in their first state), stopped ones last; then by name. */
export function sortActors(actors) {
  const rank = (a) => (a.status !== 'active' ? 2 : a.idle ? 1 : 0);
  return [...actors].sort((a, b) => rank(a) - rank(b) || a.name.localeCompare(b.name) || a.session.localeCompare(b.session));
}

/** hh:mm:ss.mmm in local time. */
export function fmtTime(ms) {
  const d = new Date(ms);
  const p = (v, w = 2) => String(v).padStart(w, '0');
  return `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}.${p(d.getMilliseconds(), 3)}`;
}

/**
 * A recording's records (JSON lines decoded, or msgpack values) as the
 * page's data: machine graphs by key, actors, histories by name (ascending
 * seq) and details by "name/seq".
 */
export function readRecording(records) {
  const [head, ...rest] = records;
  if (!head || head.kind !== 'recording' || head.version !== 1) throw new Error('not an inspector recording (version 1)');
  const actors = [];
  const histories = new Map();
  const details = new Map();
  for (const r of rest) {
    if (r.kind === 'actor') actors.push(r.actor);
    else if (r.kind === 'event') {
      const list = histories.get(r.event.name) ?? [];
      insertBySeq(list, r.event);
      histories.set(r.event.name, list);
      details.set(`${r.event.name}/${r.event.seq}`, r.detail);
    }
  }
  return { created: head.created, machines: new Map(Object.entries(head.machines)), actors, histories, details };
}

/** JSON lines text to records (empty lines skipped). */
export function parseJsonLines(text) {
  return text.split('\n').filter((l) => l.trim()).map((l, i) => {
    try {
      return JSON.parse(l);
    } catch (e) {
      throw new Error(`line ${i + 1}: ${e.message}`);
    }
  });
}
