// The console's client code (bundled by scripts/bundle.mjs into dist/console/console.js; no
// inline script anywhere: the CSP forbids it). Live updates: one EventSource on /events per
// page. A `change` names the rows of the cluster table that changed (or null: the set of envs
// changed): the cluster page fetches only those rows (/partials/rows?j=...) and the nodes
// table, and replaces them in place; it fetches the whole table when the set changed, when a
// row it was sent is not on the page, or when the stream was reconnected (events may have been
// missed). Updates are applied one after the other, in the order of the events. Other pages
// get `berth-changed` on <body>, which their hx-trigger attributes listen to (htmx then fetches
// the parts again). After each update of the cluster page, `berth-updated` on <body> (detail:
// rows replaced, or -1 for the whole table; ms from the event to the update applied).
/* global htmx */
let queue = Promise.resolve();

async function fetchText(url) {
  const r = await fetch(url, { credentials: 'same-origin', headers: { 'HX-Request': 'true' } });
  if (!r.ok) throw new Error(`${url}: ${r.status}`);
  return r.text();
}

async function full(cluster) {
  cluster.innerHTML = await fetchText(cluster.dataset.full);
  htmx.process(cluster);
  return -1;
}

async function someRows(cluster, rows) {
  if (!rows.every((j) => cluster.querySelector(`tr[data-jname="${CSS.escape(j)}"]`))) return full(cluster);
  const tpl = document.createElement('template');
  tpl.innerHTML = await fetchText(`${cluster.dataset.rows}?j=${rows.map(encodeURIComponent).join(',')}`);
  const got = tpl.content.querySelectorAll('tr[data-jname]');
  const old = [...got].map((tr) => cluster.querySelector(`#envs tr[data-jname="${CSS.escape(tr.dataset.jname)}"]`));
  if (got.length !== rows.length || old.some((o) => !o)) return full(cluster); // gone meanwhile
  got.forEach((tr, i) => { old[i].replaceWith(tr); htmx.process(tr); });
  const nodes = tpl.content.querySelector('#nodes');
  const was = cluster.querySelector('#nodes');
  if (nodes && was) was.replaceWith(nodes);
  return got.length;
}

function update(cluster, rows) {
  const t0 = performance.now();
  queue = queue.then(() => (Array.isArray(rows) ? someRows(cluster, rows) : full(cluster)))
    .then((n) => document.body.dispatchEvent(new CustomEvent('berth-updated', { detail: { rows: n, ms: performance.now() - t0 } })))
    .catch(() => undefined);
}

function start() {
  const src = document.body.dataset.sse;
  if (!src) return;
  const es = new EventSource(src);
  const cluster = document.getElementById('cluster');
  let hellos = 0;
  window.berthEvents = 0;
  es.addEventListener('change', (e) => {
    window.berthEvents++;
    let rows = null;
    try { rows = JSON.parse(e.data).rows; } catch { /* an old agent: redraw */ }
    if (cluster) update(cluster, rows);
    else htmx.trigger(document.body, 'berth-changed');
  });
  es.addEventListener('hello', () => {
    document.body.dataset.live = '1';
    // a reconnection: what changed meanwhile is unknown
    if (hellos++ > 0) { if (cluster) update(cluster, null); else htmx.trigger(document.body, 'berth-changed'); }
  });
}
if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start);
else start();
